"""Transfer end to end with a tiny random-init encoder: encoding, batching, determinism, every task
and both controls through the CLI, and every bad input as one line + exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from metaxlm.eval.finetune import (FineTuner, FinetuneParams, collate, encode_sequence, encode_tokens,
                                   length_batches, lr_grid_around)
from metaxlm.eval.formats import SeqExample, TokExample, load_task
from metaxlm.eval.tasks import TASKS
from metaxlm.models import resolve_model

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
TASKS_DIR = FIX / "tasks"
BENCH = FIX / "bench"
FAST = ("--seeds", "0", "--epochs", "1", "--batch-size", "8", "--lr", "5e-4")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    texts = [line for p in sorted(FIX.rglob("*")) if p.is_file() and p.suffix in (".tsv", ".txt", ".conllu")
             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "model", texts, mlm=True, max_positions=130)


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _result(out: Path, task: str) -> dict:
    return json.loads((out / "results" / f"{task}.json").read_text(encoding="utf-8"))


def _ok(res):
    assert res.exit_code == 0, res.output
    return res


def _bad(res, needle: str):
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------------------------
# encoding and batching


def test_token_encoding_labels_first_subword_and_splits_long_sentences(tokenizer):
    words = ["Internationalization", "of", "antidisestablishmentarianism", "works", "in", "Berlin"] * 4
    tags = ["B-ORG", "O", "O", "O", "O", "B-LOC"] * 4
    l2i = {t: i for i, t in enumerate(TASKS["ner"].labels)}
    feats = encode_tokens(tokenizer, [TokExample("s", words, tags)], max_length=16, label2id=l2i)
    assert len(feats) > 1  # over-long: split into chunks
    assert all(len(f["input_ids"]) <= 16 for f in feats)
    seen = []
    for f in feats:
        assert f["input_ids"][0] == tokenizer.cls_token_id and f["input_ids"][-1] == tokenizer.sep_token_id
        labelled = [i for i, x in enumerate(f["labels"]) if x != -100]
        assert labelled == f["word_pos"]  # only first subwords carry a label
        seen += [TASKS["ner"].labels[f["labels"][p]] for p in f["word_pos"]]
    assert seen == tags  # every word exactly once, in order
    assert [f["start"] for f in feats][0] == 0


def test_sequence_encoding_pairs_and_truncation(tokenizer):
    exs = [SeqExample("1", "a long sentence " * 40, "and another one", "entailment")]
    f = encode_sequence(tokenizer, exs, max_length=20, label2id={"entailment": 0})[0]
    assert len(f["input_ids"]) == 20 and f["label"] == 0
    assert f["input_ids"].count(tokenizer.sep_token_id) >= 2


def test_length_batches_and_dynamic_padding():
    lengths = [5, 50, 7, 30, 3, 40, 9]
    pred = length_batches(lengths, 3, sort=True)
    assert [lengths[i] for i in pred[0]] == [50, 40, 30]
    assert sorted(i for b in pred for i in b) == list(range(7))
    import random

    train = length_batches(lengths, 2, rng=random.Random(0))
    assert sorted(i for b in train for i in b) == list(range(7))
    assert train == length_batches(lengths, 2, rng=random.Random(0))
    batch = collate([{"input_ids": [1, 2, 3]}, {"input_ids": [4]}], pad_id=9)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert collate([{"input_ids": [4]}], pad_id=9, pad_to=4)["input_ids"].shape == (1, 4)


def test_token_predictions_map_back_to_words(tiny_model_dir):
    spec = TASKS["pos"]
    data = load_task(spec, TASKS_DIR / "pos")
    ft = FineTuner(resolve_model(str(tiny_model_dir)), spec, data.labels, FinetuneParams(lr=5e-4, epochs=1, max_length=8))
    ft.fit(data.train, data.dev, 0, lambda ex, p: 0.0)
    long = TokExample("x", ["word"] * 25, ["NOUN"] * 25)
    pred = ft.predict([long, *data.test["de"]])
    assert [len(p) for p in pred] == [25, 3, 3]
    assert all(t in spec.labels for p in pred for t in p)


# --------------------------------------------------------------------------------------------
# end to end through the CLI


def test_topic_end_to_end(cli, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    res = _ok(cli("eval", "topic", "--model", tiny_model_dir, "--data", BENCH, *FAST[:-2], "--out", out,
                  "--save-predictions"))
    assert "topic" in res.output and "gap" in res.output
    r = _result(out, "topic")
    assert r["schema_version"] == 1 and r["kind"] == "transfer"
    assert r["task"]["name"] == "topic" and r["task"]["metric"] == "accuracy" and len(r["task"]["data_hash"]) == 64
    assert r["model"]["source"] == "local"
    assert r["config"]["lr_grid"] == list(lr_grid_around(1e-3)) and r["config"]["max_length"] == 64  # width, task
    assert set(r["config"]) >= {"lr", "epochs", "batch_size", "max_length", "warmup_ratio", "train_size", "seeds",
                                "patience", "max_steps", "min_steps", "eval_every"}
    assert r["protocol"] == "finetune" and "probe" not in r
    assert r["languages"][0] == "en" and {"de", "fr"} <= set(r["languages"])
    s = r["per_seed"][0]
    assert len(r["per_seed"]) == 1 and s["best_epoch"] == 1
    assert [x["lr"] for x in s["lr_search"]] == r["config"]["lr_grid"] and s["lr"] in r["config"]["lr_grid"]
    assert s["best_dev"] == max(x["best_dev"] for x in s["lr_search"]) == s["dev_history"][-1]["dev"]
    assert s["best_step"] == s["stop_step"] == s["max_steps"] == s["steps_per_epoch"]  # one epoch, one evaluation
    for lang in r["languages"]:
        assert set(r["scores"][lang]) == {"accuracy", "macro_f1"}
        assert r["scores"][lang]["accuracy"]["n"] == 1
    g = r["gaps"]
    assert set(g) == {"en_score", "train_minus_test", "target_mean", "transfer_gap_mean", "transfer_gap", "paired_gap"}
    en = r["scores"]["en"]["accuracy"]["mean"]
    de = r["scores"]["de"]["accuracy"]["mean"]
    assert g["transfer_gap"]["de"]["mean"] == pytest.approx(en - de)
    assert set(g["paired_gap"]) == set(r["languages"]) - {"en"}
    assert set(r["majority"]) == set(r["languages"])
    assert isinstance(r["collapsed"], dict) and r["timing"]["seconds"] > 0 and "torch" in r["versions"]
    assert (out / r["predictions"]["0"]["de"]).is_file()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "eval" and meta["status"] == "done"


def test_topic_default_data_and_run_dir_phase(cli, tiny_model_dir, tmp_path, monkeypatch):
    run = tmp_path / "meta-run"
    for phase in ("english", "final"):
        shutil.copytree(tiny_model_dir, run / "checkpoints" / phase)
    (run / "meta.json").write_text(json.dumps({"kind": "pretrain", "git_sha": "abc123"}))
    monkeypatch.setenv("METAXLM_BENCHMARK", str(BENCH))
    monkeypatch.chdir(tmp_path)
    _ok(cli("eval", "topic", "--model", f"{run}@english", *FAST, "--train-size", "10"))
    outs = list((tmp_path / "runs").glob("eval-topic-meta-run@english-*"))
    assert len(outs) == 1
    r = _result(outs[0], "topic")
    assert r["model"]["phase"] == "english" and r["model"]["revision"] == "abc123"
    assert r["config"]["train_size"] == 10 and r["per_seed"][0]["train_size"] == 10


@pytest.mark.parametrize("data", ["xnli", "xnli-xtreme"])
def test_xnli_end_to_end(cli, tiny_model_dir, tmp_path, data):
    out = tmp_path / "run"
    _ok(cli("eval", "xnli", "--model", tiny_model_dir, "--data", TASKS_DIR / data, *FAST, "--out", out,
            "--languages", "de"))
    r = _result(out, "xnli")
    assert r["languages"] == ["en", "de"] and r["task"]["labels"] == ["entailment", "neutral", "contradiction"]
    assert r["per_seed"][0]["paired_n"] == {"de": 4}


def test_pawsx_ner_pos_end_to_end(cli, tiny_model_dir, tmp_path):
    for task, data, metric in [("pawsx", "pawsx", "accuracy"), ("ner", "ner", "span_f1"),
                               ("pos", "pos", "token_accuracy")]:
        out = tmp_path / task
        _ok(cli("eval", task, "--model", tiny_model_dir, "--data", TASKS_DIR / data, *FAST, "--out", out))
        r = _result(out, task)
        assert r["task"]["metric"] == metric and r["languages"] == ["en", "de", "fr"]
        assert 0.0 <= r["scores"]["de"][metric]["mean"] <= 1.0
    assert _result(tmp_path / "ner", "ner")["gaps"]["paired_gap"] == {}


def test_seed_determinism(tiny_model_dir, tmp_path):
    from metaxlm.eval.transfer import TransferConfig, run_transfer

    cfg = TransferConfig(task="topic", model=str(tiny_model_dir), data=str(BENCH), seeds=2, epochs=2,
                         batch_size=8, save_predictions=True, lr_grid=(5e-4, 1e-3))
    a = _result(run_transfer(cfg, tmp_path / "a", show=False), "topic")
    b = _result(run_transfer(cfg, tmp_path / "b", show=False), "topic")
    strip = lambda r: [{k: v for k, v in s.items() if k != "seconds"} for s in r["per_seed"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert a["scores"]["en"]["accuracy"]["n"] == 2 and [s["seed"] for s in a["per_seed"]] == [0, 1]
    for lang in a["languages"]:
        assert (tmp_path / "a" / a["predictions"]["1"][lang]).read_text() == \
            (tmp_path / "b" / b["predictions"]["1"][lang]).read_text()


def test_same_seed_same_weights(tiny_model_dir):
    import torch

    spec = TASKS["topic"]
    data = load_task(spec, BENCH)
    ft = FineTuner(resolve_model(str(tiny_model_dir)), spec, data.labels, FinetuneParams(lr=5e-4, epochs=1, batch_size=8))
    states = []
    for seed in (3, 3, 4):
        ft.fit(data.train, data.dev, seed, lambda ex, p: 0.0)
        states.append({k: v.clone() for k, v in ft.model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# --------------------------------------------------------------------------------------------
# controls through the same path


def test_majority_control_through_the_cli(cli, tmp_path):
    out = tmp_path / "maj"
    _ok(cli("eval", "topic", "--model", "majority", "--data", BENCH, "--seeds", "0,1", "--out", out))
    r = _result(out, "topic")
    assert r["model"]["source"] == "control" and r["model"]["label"] == "majority"
    td = load_task(TASKS["topic"], BENCH)
    from collections import Counter

    counts = Counter(e.label for e in td.train)
    top = max(counts, key=lambda k: (counts[k], -[e.label for e in td.train].index(k)))
    for lang, exs in td.test.items():
        expected = sum(e.label == top for e in exs) / len(exs)
        assert r["scores"][lang]["accuracy"]["mean"] == pytest.approx(expected)
        assert r["majority"][lang] == pytest.approx(expected)
        assert r["collapsed"][lang] == [0, 1]  # a constant predictor is flagged, by construction
    _ok(cli("eval", "pos", "--model", "majority", "--data", TASKS_DIR / "pos", "--seeds", "0", "--out", tmp_path / "p"))


def _lexical_fixture(root: Path) -> Path:
    t = root / "topic"
    t.mkdir(parents=True)
    (t / "labels.json").write_text(json.dumps(["games", "graphics"]))
    head = "id\tlabel\ttext\n"
    train = [("g1", "games", "chess board game"), ("g2", "games", "chess puzzle game"),
             ("g3", "games", "chess engine game"), ("p1", "graphics", "pixel image editor"),
             ("p2", "graphics", "pixel photo editor")]
    (t / "train.tsv").write_text(head + "".join(f"{i}\t{lab}\t{x}\n" for i, lab, x in train))
    (t / "dev.tsv").write_text(head + "d1\tgames\tchess game\nd2\tgraphics\tpixel editor\n"
                                 "d3\tgraphics\tphoto image\n")
    (t / "test-en.tsv").write_text(head + "a\tgames\tchess game\nb\tgraphics\tpixel editor\n"
                                   "c\tgraphics\tphoto image\nd\tgames\tpuzzle game\n")
    # German: shared surface strings (chess, pixel) carry over; nothing else does
    (t / "test-de.tsv").write_text(head + "a\tgames\tSchach chess Spiel\nb\tgraphics\tpixel Bildbearbeitung\n"
                                   "c\tgraphics\tFotobild\nd\tgames\tRätselspiel\n")
    return root


def test_lexical_control_hand_computed(cli, tmp_path):
    data = _lexical_fixture(tmp_path / "lex")
    out = tmp_path / "lexrun"
    _ok(cli("eval", "topic", "--model", "lexical", "--data", data, "--seeds", "0", "--out", out,
            "--save-predictions"))
    r = _result(out, "topic")
    assert r["model"]["source"] == "control" and r["model"]["label"] == "lexical"
    assert r["scores"]["en"]["accuracy"]["mean"] == 1.0
    # a, b by shared strings; c has no known word → the prior (games, 3 of 5) → wrong; d → games, right
    assert r["scores"]["de"]["accuracy"]["mean"] == pytest.approx(0.75)
    assert r["gaps"]["transfer_gap"]["de"]["mean"] == pytest.approx(0.25)
    assert r["gaps"]["paired_gap"]["de"]["mean"] == pytest.approx(0.25)
    assert r["majority"] == {"en": 0.5, "de": 0.5}
    assert r["config"]["lexical_C"] == 10.0  # the first C that gets English dev right


def test_lexical_refuses_token_tasks(cli):
    _bad(cli("eval", "ner", "--model", "lexical", "--data", TASKS_DIR / "ner", "--seeds", "0"),
         "classification tasks")


# --------------------------------------------------------------------------------------------
# bad input: one line, exit code 2


def test_bad_data_inputs(cli, tiny_model_dir, tmp_path):
    m = str(tiny_model_dir)
    _bad(cli("eval", "xnli", "--model", m, "--data", TASKS_DIR / "malformed" / "xnli-columns", *FAST),
         "test-en.tsv:3: expected 3 tab-separated columns, found 1")
    _bad(cli("eval", "pawsx", "--model", m, "--data", TASKS_DIR / "malformed" / "pawsx-label", *FAST),
         "train.tsv:4: label '2' is not in the task's label set")
    _bad(cli("eval", "ner", "--model", m, "--data", TASKS_DIR / "malformed" / "ner-label", *FAST),
         "label 'B-COMPANY'")
    _bad(cli("eval", "pos", "--model", m, "--data", TASKS_DIR / "malformed" / "pos-columns", *FAST),
         "en_bad-ud-train.conllu:4: expected 10")
    _bad(cli("eval", "xnli", "--model", m, "--data", TASKS_DIR / "xnli-xtreme", "--languages", "sw", *FAST),
         "missing test file for language 'sw'")
    _bad(cli("eval", "xnli", "--model", m, "--data", TASKS_DIR / "malformed" / "xnli-empty-test", *FAST),
         "empty test (en) set")
    _bad(cli("eval", "ner", "--model", m, "--data", TASKS_DIR / "pos", *FAST), "missing split train for language en")
    _bad(cli("eval", "ner", "--model", m, *FAST), "needs --data")
    _bad(cli("eval", "topic", "--model", m, "--data", BENCH, "--train-size", "100000", *FAST), "larger than")
    _bad(cli("eval", "topic", "--model", m, "--data", BENCH, "--seeds", "2,4"), "must be consecutive")
    assert not (tmp_path / "runs").exists()


def test_bad_model_inputs(cli, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _bad(cli("eval", "topic", "--model", empty, "--data", BENCH, *FAST), "no config.json")
    small = tmp_path / "small"
    shutil.copytree(tiny_model_dir, small)
    cfg = json.loads((small / "config.json").read_text())
    cfg["vocab_size"] = 50
    (small / "config.json").write_text(json.dumps(cfg))
    _bad(cli("eval", "topic", "--model", small, "--data", BENCH, *FAST), "tokenizer has")
    _bad(cli("eval", "topic", "--model", "some-org/some-encoder", "--data", BENCH, *FAST),
         "no hub is reachable")
    remote = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg.update({"model_type": "custom-remote-encoder", "auto_map": {"AutoConfig": "conf.MyConfig",
                                                                  "AutoModel": "model.MyModel"}})
    (remote / "config.json").write_text(json.dumps(cfg))
    (remote / "conf.py").write_text("raise SystemExit('remote code must never run')\n")
    res = cli("eval", "topic", "--model", remote, "--data", BENCH, *FAST)
    _bad(res, str(remote))
