"""`metaxlm compare --preset smoke` end to end through the CLI, resume, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

BENCH = FIXTURES / "bench"


def _steps(cmp: Path) -> dict:
    return json.loads((cmp / "steps.json").read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke comparison shared by the tests below (it is the expensive part)."""
    from typer.testing import CliRunner

    from metaxlm.cli import app

    cmp = tmp_path_factory.mktemp("cmp") / "smoke"
    r = CliRunner().invoke(app, ["compare", "--preset", "smoke", "--data", str(BENCH), "--out", str(cmp)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return cmp, r.output


def test_smoke_comparison_writes_everything(smoke):
    cmp, output = smoke
    assert (cmp / "report.html").is_file() and (cmp / "report.md").is_file()
    steps = _steps(cmp)
    assert all(v["status"] == "done" for v in steps.values()), steps
    for regime in ("single", "meta", "en-only", "none"):
        assert (cmp / "train" / f"{regime}-s0" / "checkpoints" / "final" / "config.json").is_file()
        for sub in ("eval/topic", "eval/tatoeba", "eval/bucc", "probe/align"):
            run = cmp / sub / f"{regime}-s0"
            assert json.loads((run / "meta.json").read_text())["status"] == "done", run
    for control in ("majority", "lexical"):
        assert (cmp / "eval" / "topic" / control / "results" / "topic.json").is_file()
    for regime in ("single", "meta", "en-only", "none"):  # the frozen-encoder probe protocol too
        result = json.loads((cmp / "eval" / "topic-probe" / f"{regime}-s0" / "results" / "topic.json").read_text())
        assert result["protocol"] == "probe" and result["item_ids"] and result["per_seed"][0]["items"]
    md = (cmp / "report.md").read_text()
    assert "| English generalization | topic (probe) accuracy, English (en_score) |" in md
    assert "paired bootstrap over" in md  # per-item records: paired intervals
    assert (cmp / "probe" / "pair" / "meta-s0--single-s0" / "results").is_dir()
    assert json.loads((cmp / "meta.json").read_text())["status"] == "done"
    assert "report" in output
    # every regime read the corpus through the same token cache entries (tokenized once)
    caches = {regime: {lang: t["cache"] for lang, t in json.loads(
        (cmp / "train" / f"{regime}-s0" / "meta.json").read_text())["data"]["tokens"].items()}
        for regime in ("single", "meta", "en-only", "none")}
    assert len({json.dumps(c, sort_keys=True) for c in caches.values()}) == 1


def test_compare_corpus_option_reaches_training(tmp_path, cli):
    import shutil

    from metaxlm.compare import plan_training, resolve_config

    corpus = tmp_path / "corpus"
    shutil.copytree(BENCH / "corpus", corpus)
    plan = plan_training(tmp_path / "c", resolve_config("smoke", {"corpus": str(corpus)}), BENCH)
    trains = [s for s in plan.steps if s.id.startswith("train:")]
    assert trains and all(str(s.run.args[0].corpus) == str(corpus) for s in trains)
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--corpus", f"en={tmp_path / 'nope.txt'}",
            "--out", tmp_path / "x")
    assert r.exit_code == 2 and "does not exist" in r.output and not (tmp_path / "x").exists()


def test_both_protocols_are_planned(tmp_path):
    """topic runs under both protocols: TASK:<model> fine-tunes, TASK-probe:<model> probes the frozen encoder
    (probe settings on top of topic's); controls run once; --force topic-probe redoes only the probes."""
    import metaxlm.compare as C

    config = C.resolve_config("smoke", {"probe": {"eval_batch_size": 4}})
    assert config.protocols == ("finetune", "probe")
    plan = C.plan_training(tmp_path / "c", config, BENCH)
    steps = C.plan_analyses(plan)
    ids = [s.id for s in steps]
    assert {"topic:meta-s0", "topic-probe:meta-s0", "topic-probe:none-s0", "topic:majority"} <= set(ids)
    assert not any(i.startswith("topic-probe:") and i.split(":")[1] in ("majority", "lexical") for i in ids)
    probe = next(s for s in steps if s.id == "topic-probe:meta-s0")
    tcfg = probe.run.args[0]
    assert tcfg["protocol"] == "probe" and tcfg["eval_batch_size"] == 4 and tcfg["max_length"] == 32
    assert probe.out == tmp_path / "c" / "eval" / "topic-probe" / "meta-s0"
    assert next(s for s in steps if s.id == "topic:meta-s0").run.args[0]["protocol"] == "finetune"
    assert C._forced(plan.steps + steps, ("topic-probe",)) == {i for i in ids if i.startswith("topic-probe:")}
    assert not any(i.startswith("topic-probe:") for i in C._forced(plan.steps + steps, ("topic",)))
    only = C.resolve_config("smoke", {"protocols": ["finetune"]})
    assert not any("probe" in s.id.split(":")[0] for s in C.plan_analyses(C.plan_training(tmp_path / "d", only, BENCH)))


def test_rerun_skips_finished_steps(smoke, cli):
    cmp, _ = smoke
    before = (cmp / "train" / "meta-s0" / "meta.json").read_text()
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", cmp)
    assert r.exit_code == 0, r.output
    assert all(v.get("skipped") for k, v in _steps(cmp).items() if k not in ("data", "report"))
    assert (cmp / "train" / "meta-s0" / "meta.json").read_text() == before


def test_interrupted_step_is_redone_and_training_kept(smoke, cli, monkeypatch, tmp_path):
    import shutil

    import metaxlm.compare as C

    cmp, _ = smoke
    copy = tmp_path / "cmp"
    shutil.copytree(cmp, copy)
    # force the align steps, and interrupt the first one
    calls = {"n": 0}
    real = C._align

    def interrupted(c, out):
        calls["n"] += 1
        if calls["n"] == 1:
            (out / "partial").mkdir(parents=True)
            raise KeyboardInterrupt
        return real(c, out)

    monkeypatch.setattr(C, "_align", interrupted)
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", copy, "--force", "align")
    assert r.exit_code == 130, r.output  # Ctrl-C: click exits with 130
    assert json.loads((copy / "meta.json").read_text())["status"] == "failed"
    train_meta = (copy / "train" / "meta-s0" / "meta.json").read_text()
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", copy)
    assert r.exit_code == 0, r.output
    assert json.loads((copy / "meta.json").read_text())["status"] == "done"
    assert (copy / "train" / "meta-s0" / "meta.json").read_text() == train_meta  # not retrained
    assert not (copy / "probe" / "align" / "single-s0" / "partial").exists()
    assert list((copy / "replaced").iterdir())  # forced outputs were moved aside, not overwritten


@pytest.mark.parametrize("args, needle", [
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--set", "train.bogus=1"], "unknown key 'bogus'"),
    (["--set", "topic.epochs=many"], "expected an integer"),
    (["--regimes", "single", "--force", "nonsense"], "--force nonsense: no such step"),
])
def test_bad_input(cli, tmp_path, args, needle):
    out = tmp_path / "c"
    r = cli("compare", "--data", BENCH, "--out", out, *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("args, needle", [
    (["--task", "foo={bench}"], "--task foo="),
    (["--task", "xnli={tmp}/nope"], "nope does not exist"),
    (["--model", "{tmp}/nope"], "--model {tmp}/nope: model"),
    (["--model", "someone/no-such-model"], "could not load 'someone/no-such-model' from the model hub"),
    (["--regimes", "single,metta"], "regime 'metta' is unknown"),
    (["--data", "{tmp}/nope"], "the directory does not exist"),
    (["--data", "{tmp}"], "not a metaxlm benchmark"),
    (["--set", "tokenizer.vocab_size=5"], "vocab_size 5 is not a usable vocabulary size"),
    (["--set", "tokenizer.model_type=wordpiece"], "choose unigram or bpe"),
    (["--force", "train:metta-s0"], "--force train:metta-s0: no such step in this comparison"),
    (["--force", "data"], "--force data: rebuild the benchmark"),
    # train.KEY that compare sets per training run itself: would be silently ignored
    (["--set", "train.regime=meta"], "compare.train.regime: compare sets it for every training run, so it would "
                                     "be ignored; regimes are chosen with --regimes"),
    (["--set", "train.seed=3"], "pretraining seeds are chosen with --seeds"),
    (["--set", "train.vocab_size=500"], "--set tokenizer.vocab_size=N"),
    (["--curves", "--set", "train.checkpoint_points=[0.5]"], "with --curves the checkpoints are curve_points"),
    (["--protocols", "finetune,tune"], "protocols must name each of finetune, probe"),
    (["--set", "probe.bogus=1"], "unknown key 'bogus'"),
    (["--set", "topic.protocol=probe"], "set transfer protocols with protocols=[finetune,probe]"),
    (["--force", "topic-probe:nobody"], "--force topic-probe:nobody: no such step in this comparison"),
])
def test_bad_input_fails_before_anything_is_written(cli, tmp_path, monkeypatch, args, needle):
    """Each of these used to train the tokenizer (or every regime) first, or write config.yaml."""
    import metaxlm.compare as C

    def no_step(*a, **k):
        raise AssertionError("a step ran before the input was checked")

    monkeypatch.setattr(C, "_run_step", no_step)
    out = tmp_path / "c"
    fill = {"bench": str(BENCH), "tmp": str(tmp_path)}
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", out, *[a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle.format(**fill) in lines[0], r.output
    assert not out.exists()  # no config.yaml: the corrected rerun is not "different settings"


def test_bad_force_leaves_a_finished_comparison_alone(smoke, cli):
    cmp, _ = smoke
    before = {n: (cmp / n).read_bytes() for n in ("meta.json", "steps.json", "config.yaml")}
    for name in ("topic:nobody", "train:metta-s0", "data"):
        r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", cmp, "--force", name)
        assert r.exit_code == 2 and f"--force {name}:" in r.output, r.output
    assert {n: (cmp / n).read_bytes() for n in before} == before  # still done, nothing changed
    assert json.loads(before["meta.json"])["status"] == "done"
    assert not (cmp / ".lock").exists()


def test_different_settings_are_refused(smoke, cli):
    cmp, _ = smoke
    r = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", cmp, "--set", "train.lr=0.5")
    assert r.exit_code == 2 and "different settings" in r.output
