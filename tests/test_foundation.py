"""Config validation, run directories, model resolution, CLI root."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from metaxlm import config as cfg
from metaxlm import rundir
from metaxlm.errors import UserError
from metaxlm.models import resolve_model
from metaxlm.stats import summarize


@dataclass(frozen=True)
class Inner:
    name: str
    steps: int = 10


@dataclass(frozen=True)
class Outer:
    lr: float = 1e-3
    mode: Literal["a", "b"] = "a"
    langs: tuple[str, ...] = ("en",)
    inner: tuple[Inner, ...] = field(default_factory=tuple)
    limit: Optional[int] = None


def test_build_converts_and_validates():
    c = cfg.build(Outer, {"lr": 1, "langs": ["en", "de"], "inner": [{"name": "x"}], "limit": None})
    assert c.lr == 1.0 and c.langs == ("en", "de") and c.inner == (Inner("x", 10),)
    assert cfg.to_dict(c)["inner"] == [{"name": "x", "steps": 10}]


@pytest.mark.parametrize("data, needle", [
    ({"lrr": 1}, "unknown key 'lrr'"),
    ({"lr": "fast"}, "config.lr: expected a number"),
    ({"mode": "c"}, "not allowed"),
    ({"langs": "en"}, "expected a list"),
    ({"inner": [{"steps": 3}]}, "missing required key 'name'"),
    ({"inner": [{"name": "x", "steps": True}]}, "expected an integer"),
])
def test_build_rejects(data, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        cfg.build(Outer, data)


def test_run_dir_lifecycle(tmp_path):
    run = rundir.create(tmp_path / "r", {"a": 1}, kind="test", seed=3)
    assert (run.path / "config.yaml").read_text().startswith("a: 1")
    assert run.meta["status"] == "running" and run.meta["seed"] == 3
    run.log({"step": 1, "loss": 2.0})
    run.write_result("x", {"kind": "mteb_export", "format": "f", "exported": [], "skipped": [], "comparable": [],
                           "not_comparable": []})  # a payload must fit its kind's schema (metaxlm.results)
    assert run.results()["x"]["schema_version"] == rundir.SCHEMA_VERSION
    with pytest.raises(UserError, match="this process is still writing"):  # its own live run
        rundir.create(tmp_path / "r", {}, kind="test", seed=3)
    with pytest.raises(UserError, match="--resume"):  # a training run is resumed, never restarted
        rundir.create(tmp_path / "r", {}, kind="test", seed=3, retry=False)
    run.done()
    with pytest.raises(UserError, match="never overwritten"):
        rundir.create(tmp_path / "r", {}, kind="test", seed=3, resume=True)
    assert run.metrics() == [{"step": 1, "loss": 2.0}]
    assert not list(run.path.glob(".*.tmp"))


def test_metrics_skip_a_cut_line(tmp_path):
    run = rundir.create(tmp_path / "r", {}, kind="test", seed=0)
    run.log({"step": 1})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 2, "lo')
    assert run.metrics() == [{"step": 1}]


def test_resolve_model(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "final").mkdir(parents=True)
    (run / "checkpoints" / "english").mkdir(parents=True)
    for d in ("final", "english"):
        (run / "checkpoints" / d / "config.json").write_text("{}")
    (run / "meta.json").write_text(json.dumps({"git_sha": "abc"}))
    ref = resolve_model(str(run))
    assert ref.source == "run" and ref.phase == "final" and ref.revision == "abc"
    assert resolve_model(f"{run}@english").phase == "english"
    assert resolve_model(str(run / "checkpoints" / "english")).phase == "english"
    with pytest.raises(UserError, match="available: english, final"):
        resolve_model(str(run), phase="multi")
    assert resolve_model("xlm-roberta-base").source == "hub"
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_summarize():
    s = summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0
    assert s["ci95"][0] == pytest.approx(2 - 4.302653 / 3 ** 0.5)  # exact t quantile, 2 degrees of freedom
    assert summarize([0.5])["ci95"] == [0.5, 0.5]


def test_cli_root(cli):
    r = cli("--version")
    assert r.exit_code == 0 and "metaxlm" in r.output
    assert cli("--help").exit_code == 0


def test_loaders_turn_failures_into_one_line(tmp_path):
    """Config, tokenizer and model loading share one error path: local failures name the path,
    hub failures say no hub is reachable and suggest a local directory."""
    from metaxlm.models import load_config, load_model, load_tokenizer

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "xlm-roberta", "vocab_size": 10}')
    ref = resolve_model(str(d))
    assert load_config(ref).vocab_size == 10
    with pytest.raises(UserError, match="no tokenizer files .*save one with tokenizer.save_pretrained"):
        load_tokenizer(ref)
    with pytest.raises(UserError, match=r"m: could not load the model \("):
        load_model(ref)
    hub = resolve_model("nobody/no-such-model")
    for load in (load_config, load_tokenizer, load_model):
        with pytest.raises(UserError, match="no hub is reachable"):
            load(hub)
