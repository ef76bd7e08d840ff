"""`metaxlm train` / `metaxlm tokenizer train` through the CLI: the happy path and every bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from _train_support import FIXTURE_CORPUS, make_corpus

from metaxlm.train import loop as loop_mod
from metaxlm.train import mlm as mlm_mod
from metaxlm.train import train_tokenizer

TINY = ["--model-size", "tiny", "--total-tokens", "2048", "--seq-len", "32", "--batch-size", "8", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def _fails(result, needle):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    return lines[0]


def test_train_with_the_default_benchmark(cli, tmp_path, monkeypatch):
    bench = tmp_path / "bench"
    shutil.copytree(FIXTURE_CORPUS, bench / "corpus")
    monkeypatch.setenv("METAXLM_BENCHMARK", str(bench))
    r = cli("train", "--regime", "meta", "--out", tmp_path / "run", *TINY, "--checkpoint-points", "0.5")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "english", "final", "multilingual", "tokens-1024"]
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["regime"] == "meta"


def test_tokenizer_cli(cli, tmp_path):
    r = cli("tokenizer", "train", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "tok", "--vocab-size", "200",
            "--type", "bpe")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    _fails(cli("tokenizer", "train", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "tok"), "already exists")
    _fails(cli("tokenizer", "train", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "t2", "--type", "wp"),
           "'wp' is not one of 'unigram', 'bpe'")


def test_bad_inputs(cli, tmp_path, tok):
    out = tmp_path / "run"
    c = make_corpus(tmp_path / "c", {"en": 30, "de": 30})
    # missing corpus file / directory
    _fails(cli("train", "--corpus", f"en={tmp_path / 'nope.txt'}", "--out", out, *TINY), "does not exist")
    _fails(cli("train", "--corpus", tmp_path / "nodir", "--out", out, *TINY), "does not exist")
    # empty corpus file
    (tmp_path / "empty.txt").write_text("\n\n")
    _fails(cli("train", "--corpus", f"en={tmp_path / 'empty.txt'}", "--out", out, *TINY), "is empty")
    # non-UTF-8 bytes: file:line
    (tmp_path / "bad.txt").write_bytes("gut\nsehr gut\n".encode() + b"schlecht \xe4\n")
    msg = _fails(cli("train", "--corpus", f"en={c / 'en.txt'}", "--corpus", f"de={tmp_path / 'bad.txt'}",
                     "--out", out, *TINY), "invalid UTF-8")
    assert "bad.txt:3:" in msg
    # a phase naming a language with no corpus
    _fails(cli("train", "--regime", "meta", "--corpus", f"de={c / 'de.txt'}", "--out", out, *TINY),
           "phase 'english' names language 'en', which has no corpus")
    (tmp_path / "p.yaml").write_text("regime: mine\nphases:\n  - {name: a, languages: [en]}\n"
                                     "  - {name: b, languages: [sw]}\n")
    _fails(cli("train", "--config", tmp_path / "p.yaml", "--corpus", c, "--out", out, *TINY),
           "phase 'b' names language 'sw'")
    # unknown config key, wrong type
    (tmp_path / "k.yaml").write_text("regime: single\nlearning_rate: 0.1\n")
    _fails(cli("train", "--config", tmp_path / "k.yaml", "--corpus", c, "--out", out), "unknown key 'learning_rate'")
    (tmp_path / "t.yaml").write_text("batch_size: many\n")
    _fails(cli("train", "--config", tmp_path / "t.yaml", "--corpus", c, "--out", out), "batch_size: expected an integer")
    (tmp_path / "m.yaml").write_text("model_args: {hidden_sise: 8}\n")
    _fails(cli("train", "--config", tmp_path / "m.yaml", "--corpus", c, "--out", out, *TINY),
           "model_args: unknown key 'hidden_sise'")
    _fails(cli("train", "--regime", "metta", "--corpus", c, "--out", out, *TINY), "regime 'metta' is unknown")
    _fails(cli("train", "--model-size", "huge", "--corpus", c, "--out", out), "'huge' is not one of 'tiny', 'demo', 'small', 'base'")
    # a tokenizer whose vocabulary does not match the model
    (tmp_path / "v.yaml").write_text("model_args: {vocab_size: 100}\n")
    _fails(cli("train", "--config", tmp_path / "v.yaml", "--tokenizer", tok, "--corpus", c, "--out", out, *TINY),
           "the vocabulary does not match the model")
    _fails(cli("train", "--tokenizer", tmp_path / "notok", "--corpus", c, "--out", out, *TINY), "does not exist")
    assert not out.exists()  # nothing half-written by any of the above
    # resume of nothing; a finished run is never overwritten
    _fails(cli("train", "--resume", out), "no training run to resume")
    assert cli("train", "--corpus", c, "--tokenizer", tok, "--out", out, *TINY).exit_code == 0
    _fails(cli("train", "--corpus", c, "--tokenizer", tok, "--out", out, *TINY), "never overwritten")
    _fails(cli("train", "--resume", out), "never overwritten")
    _fails(cli("train", "--resume", out, "--regime", "meta"), "drop --regime")


def test_nan_loss_through_the_cli(cli, tmp_path, tok, monkeypatch):
    real = mlm_mod.masked_lm_loss_sum

    def inf_loss(model, x, m, y):
        s = real(model, x, m, y)
        return s * float("inf") if model.training else s

    monkeypatch.setattr(mlm_mod, "masked_lm_loss_sum", inf_loss)
    monkeypatch.setattr(loop_mod, "masked_lm_loss_sum", inf_loss)
    out = tmp_path / "run"
    msg = _fails(cli("train", "--corpus", FIXTURE_CORPUS, "--tokenizer", tok, "--out", out, *TINY),
                 "training diverged")
    assert "inf" in msg and "no training state was saved yet" in msg
    assert json.loads((out / "meta.json").read_text())["status"] == "failed"
