"""Trackers: metrics.jsonl records mirrored to TensorBoard / W&B through RunDir sinks (no network)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from _train_support import FIXTURE_CORPUS, interrupt_at, tiny

from metaxlm import rundir, trackers
from metaxlm.errors import UserError
from metaxlm.trackers import TensorBoardSink, WandbSink, open_tracker, record_scalars

TINY = ["--model", "tiny", "--total-tokens", "3072", "--seq-len", "32", "--batch-size", "8", "--vocab-size", "300"]


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


needs_tb = pytest.mark.skipif(not _has_tensorboard(), reason="tensorboard is not installed (pip install tensorboard)")


class FakeWriter:
    instances: list["FakeWriter"] = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: list[tuple[str, float, int]] = []
        self.flushes = 0
        self.closed = False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, global_step):
        self.scalars.append((tag, value, global_step))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed = True


# -- pure parts ------------------------------------------------------------------------------------
def test_record_scalars_flattens_numbers_only():
    import numpy as np

    rec = {"type": "train", "step": 7, "phase": "english", "loss": 2.5, "lr": np.float64(1e-3), "n": np.int64(3),
           "tokens_seen_by_lang": {"de": 0, "en": 256}, "ok": True, "none": None, "val": {"x": {"y": 1}}}
    assert record_scalars(rec) == {"train/loss": 2.5, "train/lr": 1e-3, "train/n": 3.0,
                                   "train/tokens_seen_by_lang/de": 0.0, "train/tokens_seen_by_lang/en": 256.0,
                                   "train/val/x/y": 1.0}
    assert record_scalars({"acc": 0.5}) == {"metrics/acc": 0.5}


def test_tensorboard_sink_with_a_fake_writer(tmp_path):
    sink = TensorBoardSink(tmp_path / "tb", purge_step=5, writer_factory=FakeWriter)
    w = FakeWriter.instances[-1]
    assert w.log_dir == str(tmp_path / "tb") and w.purge_step == 5 and (tmp_path / "tb").is_dir()
    sink.log({"type": "val", "step": 5, "val_loss": {"en": 3.0}})
    sink.log({"type": "epoch", "acc": 0.5})  # no step: the next one
    sink.log({"type": "epoch", "acc": 0.6})
    assert w.scalars == [("val/val_loss/en", 3.0, 5), ("epoch/acc", 0.5, 6), ("epoch/acc", 0.6, 7)]
    assert w.flushes == 3
    sink.close()
    assert w.closed


def test_run_dir_sinks(tmp_path, capsys):
    run = rundir.create(tmp_path / "run", {"a": 1}, kind="eval", seed=0)
    got = []

    class Good:
        closed = False

        def log(self, record):
            got.append(record)

        def close(self):
            Good.closed = True

    class Bad:
        def log(self, record):
            raise RuntimeError("disk gone")

        def close(self):
            pass

    assert run.attach(None) is None  # the "none" tracker
    run.attach(Good())
    run.attach(Bad())
    run.log({"type": "train", "step": 1, "loss": 1.0})
    run.log({"type": "train", "step": 2, "loss": 0.5})
    assert [r["step"] for r in got] == [1, 2]
    assert [r["step"] for r in run.metrics()] == [1, 2]  # metrics.jsonl has every record
    err = capsys.readouterr().err
    assert err.count("Bad stopped logging (RuntimeError: disk gone)") == 1  # one warning, then dropped
    run.done()
    assert Good.closed


def test_unknown_and_missing_trackers(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown; choose one of none, tensorboard, wandb"):
        open_tracker("mlflow", tmp_path)
    assert open_tracker("none", tmp_path) is None and open_tracker(None, tmp_path) is None
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "wandb") else real(name, *a))
    with pytest.raises(UserError, match=r"`pip install tensorboard`"):
        open_tracker("tensorboard", tmp_path)
    with pytest.raises(UserError, match=r"`pip install wandb`"):
        open_tracker("wandb", tmp_path)
    assert not (tmp_path / "tb").exists() and not (tmp_path / "wandb").exists()


def test_missing_package_refused_before_the_run_exists(cli, tmp_path, monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    out = tmp_path / "run"
    r = cli("train", "--corpus", FIXTURE_CORPUS, "--out", out, "--tracker", "wandb", *TINY)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "--tracker wandb" in lines[0] and "pip install wandb" in lines[0], r.output
    assert not out.exists()


def _fake_wandb(calls):
    class FakeRun:
        def __init__(self, **kw):
            calls.append(("init", kw))

        def log(self, data, step):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    return types.SimpleNamespace(init=lambda **kw: FakeRun(**kw))


def test_wandb_sink_offline_and_resumes_its_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    calls = []
    sink = WandbSink(tmp_path / "run", config={"seed": 1}, module=_fake_wandb(calls))
    sink.log({"type": "train", "step": 3, "loss": 1.5, "phase": "x"})
    sink.log({"type": "note", "text": "no numbers"})  # nothing to log
    sink.close()
    init = calls[0][1]
    assert init["mode"] == "offline" and init["dir"] == str(tmp_path / "run") and init["project"] == "metaxlm"
    assert init["resume"] == "allow" and init["config"] == {"seed": 1} and init["name"] == "run"
    assert calls[1:] == [("log", {"train/loss": 1.5}, 3), ("finish",)]
    run_id = (tmp_path / "run" / "wandb" / WandbSink.ID_FILE).read_text().strip()
    assert init["id"] == run_id
    # a resumed run continues the same W&B run; WANDB_MODE set by the user wins
    monkeypatch.setenv("WANDB_MODE", "online")
    calls2 = []
    WandbSink(tmp_path / "run", module=_fake_wandb(calls2)).close()
    assert calls2[0][1]["id"] == run_id and calls2[0][1]["mode"] == "online"


def test_wandb_through_open_tracker(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "wandb" else real(name, *a))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    sink = open_tracker("wandb", tmp_path / "r", config={"k": 1})
    assert isinstance(sink, WandbSink) and calls[0][1]["mode"] == "offline"


# -- a real training run -----------------------------------------------------------------------------
def _events(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for r in rundir.iter_metrics(run):
        for tag, v in record_scalars(r).items():
            out.setdefault(tag, []).append((r["step"], v))
    return out


def _assert_same(events, expected):
    assert set(events) == set(expected)
    for tag, want in expected.items():
        got = events[tag]
        assert [s for s, _ in got] == [s for s, _ in want], tag  # every step once, in order
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-30), tag


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from metaxlm.train import train_tokenizer

    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


@needs_tb
def test_cli_training_with_tensorboard(cli, tmp_path, tok):
    out = tmp_path / "run"
    r = cli("train", "--regime", "meta", "--corpus", FIXTURE_CORPUS, "--tokenizer", tok, "--out", out,
            "--tracker", "tensorboard", *TINY)
    assert r.exit_code == 0, r.output
    assert (out / "config.yaml").read_text().count("tracker: tensorboard") == 1
    events, expected = _events(out / "tb"), _expected(out)
    assert {"train/loss", "train/lr", "val/val_loss/en", "train/tokens_seen_by_lang/de"} <= set(events)
    _assert_same(events, expected)


@needs_tb
def test_resume_continues_the_tensorboard_log(tmp_path, monkeypatch, tok):
    from metaxlm.train import train

    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, tracker="tensorboard")
    undo = interrupt_at(monkeypatch, 7)  # steps 5-7 are logged after the state saved at step 4
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut")
    undo()
    cut = tmp_path / "cut"
    assert max(r["step"] for r in rundir.iter_metrics(cut)) == 7
    before = _events(cut / "tb")
    assert max(s for s, _ in before["train/loss"]) == 7
    train(None, cut, resume=True)
    assert json.loads((cut / "meta.json").read_text())["status"] == "done"
    # steps 5-7 were trained twice: TensorBoard shows each once, with the values metrics.jsonl kept
    _assert_same(_events(cut / "tb"), _expected(cut))


def test_resume_may_switch_the_tracker_on(tmp_path, monkeypatch, tok):
    from metaxlm.train import train

    monkeypatch.setattr(trackers, "_summary_writer", lambda: FakeWriter)
    undo = interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok), tmp_path / "r")
    undo()
    FakeWriter.instances.clear()
    train(None, tmp_path / "r", resume=True, resume_changes={"tracker": "tensorboard"})
    w = FakeWriter.instances[-1]
    assert w.purge_step == 5 and w.closed  # the state was saved at step 4
    assert min(s for _, _, s in w.scalars) == 5
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["resumed"][-1]["changes"] == {"tracker": {"from": "none", "to": "tensorboard"}}
    assert "tracker: tensorboard" in (tmp_path / "r" / "config.yaml").read_text()


def test_finetuning_logs_its_dev_curve_and_scores(tmp_path):
    from metaxlm.eval.transfer import _log_seed

    run = rundir.create(tmp_path / "run", {"x": 1}, kind="eval", seed=0)
    seen = []
    run.attach(types.SimpleNamespace(log=seen.append, close=lambda: None))
    rec = {"dev_history": [{"step": 10, "epoch": 1, "dev": 0.4}, {"step": 20, "epoch": 2, "dev": 0.5}],
           "best_step": 20, "en_train": {"accuracy": 0.9}, "scores": {"en": {"accuracy": 0.6}, "de": {"accuracy": 0.3}}}
    _log_seed(run, 3, rec, "accuracy")
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [ln["type"] for ln in lines] == ["finetune-seed3", "finetune-seed3", "scores-seed3"]
    assert lines[1]["dev"] == 0.5 and lines[2]["test"] == {"en": 0.6, "de": 0.3}
    assert len(seen) == 3  # every record also reached the tracker


@needs_tb
def test_cli_eval_with_tensorboard(cli, tmp_path):
    bench = Path(__file__).parent / "fixtures" / "bench"
    out = tmp_path / "ev"
    r = cli("eval", "topic", "--model", "majority", "--data", bench, "--seeds", "0", "--tracker", "tensorboard",
            "--out", out)
    assert r.exit_code == 0, r.output
    events = _events(out / "tb")
    assert "scores-seed0/test/en" in events and "scores-seed0/en_train" in events
