"""Model cards: the README.md of every checkpoint directory (pure text + what a training run writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _train_support import FIXTURE_CORPUS, tiny

from metaxlm.train.checkpoints import model_card

SHA = "ab" * 32


def _context(**kw):
    ctx = {
        "run_dir": "/runs/meta-s0", "regime": "meta", "seed": 3, "alpha": 0.3, "total_tokens": 2048,
        "tokens_per_step": 256, "languages": ["de", "en"],
        "phases": [
            {"name": "english", "languages": ["en"], "tokens": 1024, "steps": 4, "fraction": 0.5,
             "sampling": {"en": 1.0}},
            {"name": "multilingual", "languages": ["de", "en"], "tokens": 1024, "steps": 4, "fraction": 0.5,
             "sampling": {"de": 0.45, "en": 0.55}},
        ],
        "model": {"preset": "tiny", "parameters": 44652, "model_type": "xlm-roberta", "num_hidden_layers": 2,
                  "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 300,
                  "max_position_embeddings": 514, "seq_len": 32},
        "data": {"de": {"path": "/data/de.txt", "sha256": SHA, "train_tokens": 1999, "lines": 60},
                 "en": {"path": "/data/en|x.txt", "sha256": "cd" * 32, "train_tokens": 2103, "lines": 61}},
        "tokenizer": {"type": "Unigram", "vocab_size": 300, "sha256": "ef" * 32},
        "metaxlm_version": "0.1.0", "git_sha": "0123abc", "versions": {"torch": "2.13.0"},
    }
    ctx.update(kw)
    return ctx


CKPT = {"name": "final", "step": 8, "tokens_seen": 2048, "phase": "multilingual",
        "tokens_seen_by_lang": {"de": 448, "en": 1600}, "regime": "meta", "seed": 3}


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


def test_card_front_matter_and_sections():
    text = model_card(CKPT, _context(), Path("/runs/meta-s0/checkpoints/final"))
    front = _front(text)
    assert front == {"library_name": "transformers", "pipeline_tag": "fill-mask", "language": ["de", "en"],
                     "tags": ["metaxlm", "regime-meta", "masked-lm"]}
    for needle in ("`meta` regime", "seed 3", "2,048 tokens", "step 8 of 8", "phase `multilingual`",
                   "| english | en | 1,024 | 50.0% | 4 | en 100.0% |",
                   "| multilingual | de, en | 1,024 | 50.0% | 4 | de 45.0%, en 55.0% |",
                   "| de | 448 |", "| en | 1,600 |", "| total | 2,048 |",
                   "44,652 parameters", "2 layers, hidden size 32",
                   f"| de | /data/de.txt | `{SHA}` | 60 | 1,999 |", "/data/en\\|x.txt",  # a | in a path is escaped
                   "Unigram, 300 pieces", "ef" * 32, "metaxlm 0.1.0", "`0123abc`", "`/runs/meta-s0`",
                   "torch 2.13.0",
                   "AutoModelForMaskedLM.from_pretrained('/runs/meta-s0/checkpoints/final')",
                   "AutoTokenizer.from_pretrained('/runs/meta-s0/checkpoints/final')"):
        assert needle in text, needle
    # pure: the same inputs give the same text
    assert text == model_card(CKPT, _context(), Path("/runs/meta-s0/checkpoints/final"))


def test_card_of_the_none_control():
    ckpt = {**CKPT, "step": 0, "tokens_seen": 0, "phase": None, "tokens_seen_by_lang": {"de": 0, "en": 0},
            "regime": "none"}
    text = model_card(ckpt, _context(regime="none", phases=[]), "/r/checkpoints/final")
    assert _front(text)["tags"] == ["metaxlm", "regime-none", "masked-lm"]
    assert "Not pretrained: the random initialisation (seed 3)" in text and "No phase" in text
    assert "| total | 0 |" in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from metaxlm.train import train, train_tokenizer

    root = tmp_path_factory.mktemp("card")
    tok = train_tokenizer(FIXTURE_CORPUS, root / "tok", vocab_size=300)
    return train(tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, checkpoint_points=(0.25,)), root / "run")


def test_every_checkpoint_of_a_run_has_its_card(trained):
    from transformers import AutoModelForMaskedLM

    run = Path(trained)
    meta = json.loads((run / "meta.json").read_text())
    res = json.loads((run / "results" / "pretrain.json").read_text())
    names = [c["name"] for c in res["checkpoints"]]
    assert names == ["tokens-768", "english", "multilingual", "final"]
    for name in names:
        d = run / "checkpoints" / name
        info = json.loads((d / "checkpoint.json").read_text())
        text = (d / "README.md").read_text(encoding="utf-8")
        front = _front(text)
        assert front["library_name"] == "transformers" and front["pipeline_tag"] == "fill-mask"
        assert front["language"] == ["de", "en", "fr"] and "regime-meta" in front["tags"]
        assert f"checkpoint `{name}`" in text and f"{info['tokens_seen']:,} tokens" in text
        for lang, n in info["tokens_seen_by_lang"].items():
            assert f"| {lang} | {n:,} |" in text
        for lang, d_ in meta["data"]["tokens"].items():  # corpus hashes from the token cache
            assert d_["sha256"] in text and d_["tokenizer_sha256"] in text
        assert str(run.resolve()) in text and str(d.resolve()) in text
        if meta.get("git_sha"):
            assert meta["git_sha"] in text
        n_params = sum(p.numel() for p in AutoModelForMaskedLM.from_pretrained(str(d)).parameters())
        assert f"{n_params:,} parameters" in text
    eng = (run / "checkpoints" / "english" / "README.md").read_text()
    assert "phase `english`" in eng and "| fr | 0 |" in eng
