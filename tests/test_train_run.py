"""End-to-end runs of the loop on tiny models: regimes, checkpoints, determinism, resume, failures."""

from __future__ import annotations

import json

import pytest
import torch
from _train_support import FIXTURE_CORPUS, interrupt_at, tiny

from metaxlm import rundir
from metaxlm.errors import UserError
from metaxlm.train import train, train_tokenizer
from metaxlm.train import loop as loop_mod
from metaxlm.train import mlm as mlm_mod


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def _weights(ckpt):
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def _train_losses(run):
    return [r["loss"] for r in rundir.iter_metrics(run) if r["type"] == "train"]


def test_meta_regime_end_to_end(tmp_path, tok):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    run = train(tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, checkpoint_points=(0.25, 0.5)),
                tmp_path / "meta")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and meta["regime"] == "meta" and meta["kind"] == "train"
    res = json.loads((run / "results" / "pretrain.json").read_text())
    assert res["kind"] == "pretrain" and res["regime"] == "meta"
    assert [(p["name"], p["steps"]) for p in res["phases"]] == [("english", 6), ("multilingual", 6)]
    names = [c["name"] for c in res["checkpoints"]]
    assert names == ["tokens-768", "tokens-1536", "english", "multilingual", "final"]
    assert set(res["final_val_loss"]) == {"de", "en", "fr"}
    # the English phase sees only English tokens
    lines = [r for r in rundir.iter_metrics(run) if r["type"] == "train"]
    for r in lines:
        if r["phase"] == "english":
            assert r["tokens_seen_by_lang"]["de"] == 0 and r["tokens_seen_by_lang"]["fr"] == 0
    assert lines[-1]["tokens_seen_by_lang"]["de"] > 0 and lines[-1]["tokens_seen"] == 12 * 8 * 32
    assert sum(res["tokens_seen"].values()) == 12 * 8 * 32
    eng = json.loads((run / "checkpoints" / "english" / "checkpoint.json").read_text())
    assert eng["tokens_seen_by_lang"] == {"de": 0, "en": 6 * 8 * 32, "fr": 0}
    vals = [r for r in rundir.iter_metrics(run) if r["type"] == "val"]
    assert [v["step"] for v in vals] == [0, 5, 6, 10, 12]
    # every checkpoint is a plain Hugging Face directory
    for name in names:
        m = AutoModelForMaskedLM.from_pretrained(str(run / "checkpoints" / name))
        t = AutoTokenizer.from_pretrained(str(run / "checkpoints" / name))
        out = m(**t("Ein Werkzeug", return_tensors="pt"))
        assert out.logits.shape[-1] == m.config.vocab_size == len(t)
    assert not (run / "state").exists()  # the training state goes once the run is done
    assert (run / "config.yaml").read_text().startswith("regime: meta")
    # a finished run is never overwritten
    with pytest.raises(UserError, match="never overwritten"):
        train(tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok), run)
    with pytest.raises(UserError, match="never overwritten"):
        train(None, run, resume=True)


def test_single_and_none_and_seeds(tmp_path, tok):
    a = train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, seed=1), tmp_path / "a")
    b = train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, seed=1), tmp_path / "b")
    c = train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, seed=2), tmp_path / "c")
    assert _train_losses(a) == _train_losses(b)
    assert _train_losses(a) != _train_losses(c)
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == ["final", "multilingual"]
    n = train(tiny(regime="none", corpus=FIXTURE_CORPUS, tokenizer=tok, seed=1), tmp_path / "none")
    assert sorted(p.name for p in (n / "checkpoints").iterdir()) == ["final"]
    res = json.loads((n / "results" / "pretrain.json").read_text())
    assert res["phases"] == [] and res["checkpoints"] == [{"name": "final", "tokens_seen": 0, "step": 0}]
    # none = the same random initialisation the pretrained models started from
    init = loop_mod.build_model(loop_mod.model_config("tiny", {}, 300, 32), 1)
    w = _weights(n / "checkpoints" / "final")
    for k, v in init.state_dict().items():
        if k in w:
            assert torch.equal(w[k], v), k


def test_trains_its_own_tokenizer(tmp_path):
    run = train(tiny(regime="en-only", corpus=FIXTURE_CORPUS, vocab_size=250, total_tokens=8 * 32 * 3),
                tmp_path / "r")
    from transformers import AutoTokenizer

    assert (run / "tokenizer" / "tokenizer.json").is_file()
    assert len(AutoTokenizer.from_pretrained(str(run / "checkpoints" / "final"))) <= 250
    res = json.loads((run / "results" / "pretrain.json").read_text())
    assert res["tokens_seen"]["de"] == 0 and res["tokens_seen"]["en"] == 3 * 8 * 32


def test_resume_after_interrupt_equals_uninterrupted(tmp_path, tok, monkeypatch):
    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, checkpoint_points=(0.25,), save_every=3,
               model_args={"hidden_dropout_prob": 0.1})
    full = train(cfg, tmp_path / "full")

    undo = interrupt_at(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut")
    undo()
    cut = tmp_path / "cut"
    assert json.loads((cut / "meta.json").read_text())["status"] == "running"
    assert max(r["step"] for r in rundir.iter_metrics(cut)) == 8
    with pytest.raises(UserError, match="--resume"):
        train(cfg, cut)
    train(None, cut, resume=True)
    for name in ("english", "multilingual", "final", "tokens-768"):
        wa, wb = _weights(full / "checkpoints" / name), _weights(cut / "checkpoints" / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    strip = [{k: v for k, v in r.items() if k not in ("tokens_per_s", "tokens_per_cpu_s")} for r in rundir.iter_metrics(full)]
    assert strip == [{k: v for k, v in r.items() if k not in ("tokens_per_s", "tokens_per_cpu_s")} for r in rundir.iter_metrics(cut)]


def test_nan_loss_stops_and_marks_failed(tmp_path, tok, monkeypatch):
    real = mlm_mod.masked_lm_loss_sum
    calls = {"n": 0}

    def poisoned(model, x, m, y):
        calls["n"] += 1
        s = real(model, x, m, y)
        return s * float("nan") if model.training and calls["n"] > 8 else s

    monkeypatch.setattr(mlm_mod, "masked_lm_loss_sum", poisoned)
    monkeypatch.setattr(loop_mod, "masked_lm_loss_sum", poisoned)
    with pytest.raises(UserError, match=r"diverged.*nan.*step 6.*last good state.*step 4"):
        train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok), tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == "failed" and "diverged" in meta["failure"]
    assert (tmp_path / "r" / "state" / "state.pt").is_file()


def test_resume_refuses_a_changed_corpus(tmp_path, tok, monkeypatch):
    from _train_support import make_corpus

    corpus = make_corpus(tmp_path / "c", {"en": 40, "de": 40})
    undo = interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(regime="single", corpus=corpus, tokenizer=tok), tmp_path / "r")
    undo()
    with open(corpus / "de.txt", "a", encoding="utf-8") as f:
        f.write("ein neuer Satz\n")
    with pytest.raises(UserError, match="changed since the run started"):
        train(None, tmp_path / "r", resume=True)


class _Payload:
    """A pickle that would create a file when loaded (what a crafted state.pt can do with pickle)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_crafted_state_file_cannot_run_code(tmp_path, tok, monkeypatch):
    undo = interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, save_every=2), tmp_path / "run")
    undo()
    state = tmp_path / "run" / "state" / "state.pt"
    assert state.is_file()
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "model": _Payload(marker)}, state)
    with pytest.raises(UserError, match="not a training state metaxlm can load safely.*no code in it ran"):
        train(None, tmp_path / "run", resume=True)
    assert not marker.exists()
