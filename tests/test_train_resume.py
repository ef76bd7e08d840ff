"""`train --resume` with changes (--lr, --total-tokens, --device, --threads), the refusals of every
other option, the extended schedule, and the budget sanity caps (max_steps, max_epochs)."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml
from _train_support import FIXTURE_CORPUS, interrupt_at, tiny

from metaxlm import rundir
from metaxlm.errors import UserError
from metaxlm.train import PhaseConfig, TrainConfig, train, train_tokenizer
from metaxlm.train.config import ScheduleExtension
from metaxlm.train.regimes import extend_phases, lr_at, resolve_phases

TPS = 8 * 32  # tokens per step of tiny()


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def _weights(ckpt):
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _train_lines(run):
    return [r for r in rundir.iter_metrics(run) if r["type"] == "train"]


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "tokens_per_cpu_s")} for r in rows]


def _cut(cfg, out, monkeypatch, at: int):
    """Start ``cfg`` into ``out`` and interrupt it when the loop reaches step ``at``."""
    undo = interrupt_at(monkeypatch, at)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out)
    undo()
    return out


def _meta(run):
    return json.loads((run / "meta.json").read_text())


def _config(run):
    return yaml.safe_load((run / "config.yaml").read_text())


# -- the schedule of an extended budget (pure functions) -------------------------------------------
def test_extension_keeps_the_plan_up_to_the_resume_step_and_decays_to_the_new_end():
    c = TrainConfig(regime="meta", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3, warmup=0.1)
    old = resolve_phases(c, ["de", "en"], c.total_tokens, 100, c.lr)
    ext = extend_phases(c, ["de", "en"], 20_000, step=60)
    new = resolve_phases(ext, ["de", "en"], ext.total_tokens, 100, ext.lr)
    # every phase but the last keeps its steps; the last one gets the extra 100 steps
    assert [(p.name, p.start, p.steps) for p in old] == [("english", 0, 50), ("multilingual", 50, 50)]
    assert [(p.name, p.start, p.steps) for p in new] == [("english", 0, 50), ("multilingual", 50, 150)]
    assert ext.schedule_extensions == (ScheduleExtension(step=60, from_steps=100, to_steps=200),)
    lo = [lr_at(old, s, c.warmup) for s in range(100)]
    ln = [lr_at(new, s, ext.warmup) for s in range(200)]
    assert ln[:61] == lo[:61]  # the steps before the resume (and the resume step itself) are the plan's
    assert all(a > b for a, b in zip(ln[60:], ln[61:]))  # then a linear decay from there ...
    assert ln[199] == pytest.approx(lo[60] / 140, rel=1e-9)  # ... to zero at the new end (step 200)
    steps = [b - a for a, b in zip(ln[61:], ln[62:])]
    assert max(steps) == pytest.approx(min(steps), rel=1e-6)


def test_extensions_chain_and_keep_the_warmup():
    c = TrainConfig(regime="single", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3, warmup=0.1)
    # extended in the warmup (step 4 of 10): the warmup keeps its 10 steps, the decay ends at the new end
    e = extend_phases(c, ["en"], 30_000, step=4)
    ph = resolve_phases(e, ["en"], e.total_tokens, 100, e.lr)
    lrs = [lr_at(ph, s, e.warmup) for s in range(300)]
    assert lrs[9] == pytest.approx(1e-3) and lrs[4] == pytest.approx(5e-4)
    assert lrs[10] == pytest.approx(1e-3) and lrs[11] == pytest.approx(1e-3 * (1 - 1 / 290))
    # two extensions at the same step are one extension to the last end
    once = extend_phases(c, ["en"], 40_000, step=50)
    twice = extend_phases(extend_phases(c, ["en"], 20_000, step=50), ["en"], 40_000, step=50)
    a, b = (resolve_phases(x, ["en"], x.total_tokens, 100, x.lr) for x in (once, twice))
    assert [lr_at(a, s, 0.1) for s in range(400)] == pytest.approx([lr_at(b, s, 0.1) for s in range(400)], rel=1e-12)
    # a later extension continues from the value the first one gives
    later = extend_phases(extend_phases(c, ["en"], 20_000, step=50), ["en"], 40_000, step=120)
    ph1 = resolve_phases(extend_phases(c, ["en"], 20_000, step=50), ["en"], 20_000, 100, 1e-3)
    ph2 = resolve_phases(later, ["en"], 40_000, 100, 1e-3)
    assert [lr_at(ph2, s, 0.1) for s in range(121)] == [lr_at(ph1, s, 0.1) for s in range(121)]
    assert lr_at(ph2, 399, 0.1) < lr_at(ph2, 398, 0.1) < lr_at(ph1, 120, 0.1)


def test_extension_refusals():
    langs = ["de", "en"]
    c = TrainConfig(regime="single", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3)
    with pytest.raises(UserError, match="adds no optimizer step"):
        extend_phases(c, langs, 10_040, step=5)
    with pytest.raises(UserError, match="trains no steps"):
        extend_phases(TrainConfig(regime="none", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3), langs,
                      20_000, step=0)
    cos = TrainConfig(regime="x", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3,
                      phases=(PhaseConfig("a", ("en",), schedule="cosine"),))
    with pytest.raises(UserError, match="cosine schedule of its own"):
        extend_phases(cos, langs, 20_000, step=5)
    # a constant last phase keeps its warmup's length in steps
    const = TrainConfig(regime="x", batch_size=10, seq_len=10, total_tokens=10_000, lr=1e-3,
                        phases=(PhaseConfig("a", ("en",), schedule="constant", warmup=0.2),))
    e = extend_phases(const, langs, 20_000, step=5)
    assert e.phases[0].warmup == pytest.approx(20.0) and e.phases[0].steps == 200


# -- resumed runs -----------------------------------------------------------------------------------
def test_plain_resume_is_recorded(tmp_path, tok, monkeypatch):
    run = _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3), tmp_path / "r",
               monkeypatch, 8)
    before = (run / "config.yaml").read_bytes()
    train(None, run, resume=True, resume_changes={"lr": 2e-3, "total_tokens": 12 * TPS})  # the same values
    assert (run / "config.yaml").read_bytes() == before  # no change: config.yaml untouched
    [rec] = _meta(run)["resumed"]
    assert rec["step"] == 6 and rec["changes"] == {} and rec["at"]
    assert not any("resumed" in w for w in json.loads((run / "results" / "pretrain.json").read_text())["warnings"])


def test_resume_with_a_lower_lr(tmp_path, tok, monkeypatch):
    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3)
    full = train(cfg, tmp_path / "full")
    cut = _cut(cfg, tmp_path / "cut", monkeypatch, 8)
    train(None, cut, resume=True, resume_changes={"lr": 1e-3})
    a, b = _train_lines(full), _train_lines(cut)
    assert len(a) == len(b) == 12
    assert _strip(a[:6]) == _strip(b[:6])  # steps 1-6 come from before the resume (state at step 6)
    assert [r["lr"] for r in b[6:]] == [r["lr"] / 2 for r in a[6:]]  # steps 7-12: the new peak, same shape
    assert _config(cut)["lr"] == 1e-3
    [rec] = _meta(cut)["resumed"]
    assert rec["step"] == 6 and rec["changes"] == {"lr": {"from": 2e-3, "to": 1e-3}}
    res = json.loads((cut / "results" / "pretrain.json").read_text())
    assert res["config"]["lr"] == 1e-3
    assert any("resumed at step 6 with lr 0.002 → 0.001" in w for w in res["warnings"])
    assert not _same_weights(full / "checkpoints" / "final", cut / "checkpoints" / "final")
    assert _same_weights(full / "checkpoints" / "english", cut / "checkpoints" / "english")  # written before


def test_budget_extension_and_exact_resume_after_it(tmp_path, tok, monkeypatch):
    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3, checkpoint_points=(0.5,))
    full = train(cfg, tmp_path / "full")
    ext = _cut(cfg, tmp_path / "ext", monkeypatch, 8)
    train(None, ext, resume=True, resume_changes={"total_tokens": 16 * TPS, "lr": 1e-3})
    # the same extension, interrupted again after it and resumed with no change: the same run, exactly
    again = _cut(cfg, tmp_path / "again", monkeypatch, 8)
    undo = interrupt_at(monkeypatch, 14)
    with pytest.raises(KeyboardInterrupt):
        train(None, again, resume=True, resume_changes={"total_tokens": 16 * TPS, "lr": 1e-3})
    undo()
    assert _config(again)["total_tokens"] == 16 * TPS  # recorded before the first step after the change
    train(None, again, resume=True)
    for name in ("english", "multilingual", "final", "tokens-1536", "tokens-2048"):
        assert _same_weights(ext / "checkpoints" / name, again / "checkpoints" / name), name
    assert _strip(_train_lines(ext)) == _strip(_train_lines(again))
    assert [r["changes"] for r in _meta(again)["resumed"]] == [
        {"total_tokens": {"from": 12 * TPS, "to": 16 * TPS}, "lr": {"from": 2e-3, "to": 1e-3}}, {}]

    res = json.loads((ext / "results" / "pretrain.json").read_text())
    # the last phase got the 4 extra steps; the English phase is unchanged
    assert [(p["name"], p["steps"]) for p in res["phases"]] == [("english", 6), ("multilingual", 10)]
    assert sum(res["tokens_seen"].values()) == 16 * TPS
    # checkpoint points are fractions of the budget in effect: 0.5 of 12 steps was written before the
    # resume (tokens-1536), 0.5 of the new 16 steps after it (tokens-2048); each name is the tokens seen
    assert [c["name"] for c in res["checkpoints"]] == ["tokens-1536", "english", "tokens-2048", "multilingual",
                                                       "final"]
    assert _same_weights(full / "checkpoints" / "english", ext / "checkpoints" / "english")
    conf = _config(ext)
    assert conf["total_tokens"] == 16 * TPS and conf["regime"] == "meta"
    assert [(p["name"], p["steps"]) for p in conf["phases"]] == [("english", 6), ("multilingual", 10)]
    assert conf["schedule_extensions"] == [{"step": 6, "from_steps": 12, "to_steps": 16}]
    # the learning rate: the plan's up to step 6, then half of it (lr 1e-3), decaying to zero at step 16
    la, lb = [r["lr"] for r in _train_lines(full)], [r["lr"] for r in _train_lines(ext)]
    assert lb[:6] == la[:6] and lb[6] == pytest.approx(la[6] / 2)
    assert all(x > y for x, y in zip(lb[6:], lb[7:])) and lb[-1] == pytest.approx(lb[6] / 10)
    assert any("total_tokens 3072 → 4096" in w for w in res["warnings"])


def test_extension_with_no_saved_state_is_a_new_plan(tmp_path, tok, monkeypatch):
    """Killed before the first saved state: the run restarts at step 0 with the new budget as its plan."""
    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=50)
    cut = _cut(cfg, tmp_path / "cut", monkeypatch, 3)
    train(None, cut, resume=True, resume_changes={"total_tokens": 16 * TPS})
    fresh = train(tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=50, total_tokens=16 * TPS),
                  tmp_path / "fresh")
    assert _same_weights(fresh / "checkpoints" / "final", cut / "checkpoints" / "final")
    assert _config(cut).get("schedule_extensions") == [] and _config(cut)["phases"] is None
    assert _meta(cut)["resumed"][0]["step"] == 0


@pytest.mark.parametrize("changes, needle", [
    ({"seed": 1}, "drop --seed: it would change the run (the seed fixes the initialisation"),
    ({"batch_size": 4}, "drop --batch-size: it would change the run"),
    ({"corpus": "x"}, "drop --corpus"),
    ({"total_tokens": 6 * TPS}, "budget can only grow"),
    ({"total_tokens": 12 * TPS + 5}, "adds no optimizer step"),
    ({"lr": -1.0}, "lr must be a finite number > 0"),
    ({"threads": 0}, "threads must be at least 1"),
    ({"device": "tpu"}, "tpu"),
])
def test_refused_changes_write_nothing(tmp_path, tok, monkeypatch, changes, needle):
    run = _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3), tmp_path / "r",
               monkeypatch, 8)
    before = {n: (run / n).read_bytes() for n in ("config.yaml", "meta.json", "metrics.jsonl")}
    with pytest.raises(UserError, match=re.escape(needle)):
        train(None, run, resume=True, resume_changes=changes)
    assert {n: (run / n).read_bytes() for n in before} == before
    assert not (run / rundir.LOCK_NAME).exists()


def test_device_and_threads_change_on_resume(tmp_path, tok, monkeypatch):
    run = _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3), tmp_path / "r",
               monkeypatch, 8)
    train(None, run, resume=True, resume_changes={"device": "cpu", "threads": 1})
    assert _config(run)["device"] == "cpu" and _config(run)["threads"] == 1
    assert _meta(run)["resumed"][0]["changes"] == {"device": {"from": "auto", "to": "cpu"},
                                                   "threads": {"from": None, "to": 1}}
    assert _meta(run)["status"] == "done" and _meta(run)["device"] == "cpu"


# -- the CLI ----------------------------------------------------------------------------------------
def _fails(result, needle):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    return lines[0]


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory, tok):
    """An interrupted run (state at step 6) that the refusals below must leave alone."""
    with pytest.MonkeyPatch.context() as mp:
        return _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3),
                    tmp_path_factory.mktemp("cut") / "r", mp, 8)


@pytest.mark.parametrize("option, value", [
    ("--seed", "0"), ("--batch-size", "8"), ("--seq-len", "32"), ("--grad-accum", "1"), ("--alpha", "0.3"),
    ("--meta-split", "0.5"), ("--languages", "en,de"), ("--vocab-size", "300"), ("--checkpoint-points", "0.5"),
    ("--regime", "meta"), ("--model-size", "tiny"), ("--corpus", "x"), ("--tokenizer", "x"),
])
def test_cli_refuses_what_would_change_the_run(cli, cut_run, option, value):
    run = cut_run
    msg = _fails(cli("train", "--resume", run, option, value), f"--resume: drop {option}: it would change the run")
    assert "--lr, --total-tokens, --device, --threads" in msg
    assert _meta(run).get("resumed") is None


def test_cli_resume_with_changes(cli, tmp_path, tok, monkeypatch):
    run = _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3), tmp_path / "r",
               monkeypatch, 8)
    _fails(cli("train", "--resume", run, "--config", tmp_path / "c.yaml"), "drop --config")
    _fails(cli("train", "--resume", run, "--out", tmp_path / "o"), "drop --out")
    r = cli("train", "--resume", run, "--lr", "1e-3", "--total-tokens", str(14 * TPS), "--device", "cpu",
            "--threads", "1")
    assert r.exit_code == 0, r.output
    assert set(_meta(run)["resumed"][0]["changes"]) == {"lr", "total_tokens", "device", "threads"}
    assert _meta(run)["steps"] == 14


# -- budget sanity caps -----------------------------------------------------------------------------
def test_absurd_budgets_are_refused_before_the_run_exists(tmp_path, tok):
    out = tmp_path / "r"
    with pytest.raises(UserError, match=r"total_tokens = 1,000,000,000,000,000,000 is 3,906,250,000,000,000 "
                                        r"optimizer steps .* more than max_steps = 1,000,000,000: give a realistic "
                                        r"--total-tokens"):
        train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, total_tokens=10**18), out)
    with pytest.raises(UserError, match=r"repeat the (de|en|fr|\w+) corpus [\d,]+ times .* more than max_epochs = "
                                        r"1000: give --total-tokens [\d,]+ or less"):
        train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, total_tokens=TPS * 10**6), out)
    assert not out.exists()
    # the caps are config keys
    with pytest.raises(UserError, match="more than max_steps = 5"):
        train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, max_steps=5), out)
    with pytest.raises(UserError, match="more than max_epochs = 0.01"):
        train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, max_epochs=0.01), out)
    assert not out.exists()
    # a budget extension on resume is checked the same way, before anything is written
    assert train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok), out) == out  # default caps: tiny runs pass


def test_budget_cap_with_the_runs_own_tokenizer(tmp_path, cli):
    """The tokenizer is trained by the run: the epochs are known only then, before the first step."""
    r = cli("train", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "r", "--model-size", "tiny", "--seq-len", "32",
            "--batch-size", "8", "--vocab-size", "300", "--total-tokens", str(TPS * 10**6))
    _fails(r, "more than max_epochs = 1000")
    assert _meta(tmp_path / "r")["status"] == "failed"
    assert not (tmp_path / "r" / "checkpoints").exists()
    r = cli("train", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "s", "--model-size", "tiny",
            "--total-tokens", str(10**18))
    _fails(r, "more than max_steps")
    assert not (tmp_path / "s").exists()


def test_extension_beyond_the_cap_is_refused_on_resume(tmp_path, tok, monkeypatch):
    run = _cut(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=3), tmp_path / "r",
               monkeypatch, 8)
    before = (run / "config.yaml").read_bytes()
    with pytest.raises(UserError, match="more than max_epochs"):
        train(None, run, resume=True, resume_changes={"total_tokens": TPS * 10**6})
    with pytest.raises(UserError, match="more than max_steps"):
        train(None, run, resume=True, resume_changes={"total_tokens": 10**18})
    assert (run / "config.yaml").read_bytes() == before


def test_extension_of_a_run_that_trained_its_tokenizer(tmp_path, monkeypatch):
    """The run's own tokenizer (RUN/tokenizer) is used for the budget check before anything is written."""
    cfg = tiny(regime="single", corpus=FIXTURE_CORPUS, vocab_size=250, save_every=3)
    run = _cut(cfg, tmp_path / "r", monkeypatch, 8)
    before = {n: (run / n).read_bytes() for n in ("config.yaml", "meta.json")}
    with pytest.raises(UserError, match="more than max_epochs"):
        train(None, run, resume=True, resume_changes={"total_tokens": TPS * 10**6})
    assert {n: (run / n).read_bytes() for n in before} == before  # not marked failed, nothing recorded
    train(None, run, resume=True, resume_changes={"total_tokens": 14 * TPS})
    assert _meta(run)["status"] == "done" and _meta(run)["steps"] == 14
