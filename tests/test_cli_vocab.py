"""One CLI vocabulary (metaxlm.cli.vocab): shared options, listed choices, deprecated spellings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _models import make_tiny_xlmr
from _train_support import FIXTURE_CORPUS

from metaxlm.cli import vocab
from metaxlm.errors import UserError

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    vocab._told.clear()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr")


def _warnings(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("warning:") and "deprecated" in ln]


def test_split_and_seeds():
    assert vocab.split_list(["de,fr", " ja ", ""]) == ["de", "fr", "ja"]
    assert vocab.split_list("de") == ["de"] and vocab.split_list(None) == []
    assert vocab.seeds("0, 1,2") == [0, 1, 2] and vocab.seeds(None) is None
    for bad in ("a,b", "", "1,1"):
        with pytest.raises(UserError, match="--seeds"):
            vocab.seeds(bad)


@pytest.mark.parametrize("command, shown", [
    (["train"], ["--model-size", "tiny|demo|small|base", "--languages", "-l", "none|tensorboard|wandb"]),
    (["tokenizer", "train"], ["unigram|bpe", "--languages"]),
    (["eval", "bucc"], ["ratio|distance|absolute", "fwd|bwd|intersect|max", "--languages", "-l"]),
    (["eval", "tatoeba"], ["--languages", "-l", "--out"]),
    (["eval", "topic"], ["finetune|probe", "first|every", "--languages", "--seeds"]),
    (["probe", "align"], ["mean|cls", "--languages"]),
    (["compare"], ["--languages", "--seeds", "--out"]),
])
def test_help_lists_the_choices(cli, command, shown):
    r = cli(*command, "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for needle in shown:
        assert needle in text, (needle, r.output)
    assert "--lang " not in text  # deprecated spellings are hidden


def test_train_model_is_deprecated_but_works(cli, tmp_path):
    args = ["--corpus", FIXTURE_CORPUS, "--total-tokens", "1024", "--seq-len", "32", "--batch-size", "8",
            "--vocab-size", "300", "--out"]
    r = cli("train", "-m", "tiny", *args, tmp_path / "old")
    assert r.exit_code == 0, r.output
    assert len(_warnings(r)) == 1 and "--model-size" in _warnings(r)[0]
    assert "model: tiny" in (tmp_path / "old" / "config.yaml").read_text()
    r = cli("train", "--model", "tiny", "--model-size", "demo", *args, tmp_path / "clash")
    assert r.exit_code == 2 and "disagree" in r.output and not (tmp_path / "clash").exists()


def test_lang_is_deprecated_but_works(cli, model, tmp_path):
    r = cli("eval", "tatoeba", "-m", model, "--data", BENCH, "--lang", "fr", "--layer", "1", "-o", tmp_path / "t")
    assert r.exit_code == 0, r.output
    assert len(_warnings(r)) == 1 and "--languages" in _warnings(r)[0]
    res = json.loads((tmp_path / "t" / "results" / "tatoeba.json").read_text())
    assert list(res["languages"]) == ["fr"]
    r = cli("eval", "tatoeba", "-m", model, "--data", BENCH, "-l", "fr", "--layer", "1", "-o", tmp_path / "u")
    assert r.exit_code == 0 and not _warnings(r)


def test_a_choice_outside_the_list_is_one_line(cli, tmp_path):
    r = cli("train", "--model-size", "huge", "--corpus", FIXTURE_CORPUS, "--out", tmp_path / "x")
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'huge' is not one of 'tiny', 'demo', 'small', 'base'" in lines[0]
    assert "Value error" not in lines[0]


def test_eval_seeds_list_and_the_deprecated_count(cli, tmp_path):
    from metaxlm.cli.transfer import _seed_range

    assert _seed_range("0,1,2", None) == (0, 3) and _seed_range("5", None) == (0, 5)
    assert _seed_range("0", None) == (0, 1) and _seed_range("3,4", None) == (3, 2)
    assert _seed_range("2", 7) == (7, 2)
    with pytest.raises(UserError, match="consecutive"):
        _seed_range("1,3", None)
    vocab._told.clear()
    r = cli("eval", "topic", "--model", "majority", "--data", BENCH, "--seeds", "2", "--out", tmp_path / "old")
    assert r.exit_code == 0, r.output
    assert len(_warnings(r)) == 1 and "--seeds 0,1,2" in _warnings(r)[0]
    res = json.loads((tmp_path / "old" / "results" / "topic.json").read_text())
    assert res["config"]["seeds"] == [0, 1]
    r = cli("eval", "topic", "--model", "majority", "--data", BENCH, "--seeds", "3,4", "-o", tmp_path / "new")
    assert r.exit_code == 0 and not _warnings(r)
    assert json.loads((tmp_path / "new" / "results" / "topic.json").read_text())["config"]["seeds"] == [3, 4]
