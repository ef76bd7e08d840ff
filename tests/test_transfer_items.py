"""Per-item records: rows reproduce every metric, by hand, on random predictions and on the
predictions recorded by real runs (fine-tuned model and controls)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from metaxlm.eval import scores as S

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
TASKS_DIR = FIX / "tasks"
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def test_rows_by_hand():
    assert S.compute_item_rows("correct", ["a", "b", "c"], ["a", "c", "c"]) == [1, 0, 1]
    assert S.compute_item_rows("correct_total", [["N", "V"], ["D"]], [["N", "N"], ["D"]]) == [[1, 2], [1, 1]]
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"], ["I-PER"]]  # a lone I- starts an entity
    assert S.compute_item_rows("tp_fp_fn", gold, pred) == [[1, 0, 1], [1, 1, 0], [0, 1, 0]]
    rows = S.compute_item_rows("tp_fp_fn", gold, pred)
    assert S.metric_from_items("tp_fp_fn", rows) == pytest.approx(S.compute_span_f1(gold, pred)) == pytest.approx(4 / 7)
    assert S.metric_from_items("correct", []) == S.metric_from_items("tp_fp_fn", [[0, 0, 0]]) == 0.0
    assert [S.item_stat(m) for m in ("accuracy", "token_accuracy", "span_f1")] == ["correct", "correct_total",
                                                                                   "tp_fp_fn"]
    with pytest.raises(ValueError):
        S.compute_item_rows("correct", ["a"], [])
    with pytest.raises(ValueError):
        S.metric_from_items("auc", [1])


def test_rows_reproduce_the_metrics_on_random_predictions():
    rng = random.Random(0)
    for trial in range(30):
        gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 25))]
        pred = [[rng.choice(TAGS) if rng.random() < 0.5 else t for t in s] for s in gold]
        ner = S.compute_item_rows("tp_fp_fn", gold, pred)
        assert S.metric_from_items("tp_fp_fn", ner) == pytest.approx(S.compute_span_f1(gold, pred), abs=1e-12)
        pos = S.compute_item_rows("correct_total", gold, pred)
        assert S.metric_from_items("correct_total", pos) == pytest.approx(S.compute_token_accuracy(gold, pred))
        flat_g, flat_p = [s[0] for s in gold], [s[0] for s in pred]
        acc = S.compute_item_rows("correct", flat_g, flat_p)
        assert S.metric_from_items("correct", acc) == pytest.approx(S.compute_accuracy(flat_g, flat_p))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    texts = [line for p in sorted(FIX.rglob("*")) if p.is_file() and p.suffix in (".tsv", ".txt", ".conllu")
             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return make_tiny_xlmr(tmp_path_factory.mktemp("items") / "model", texts, mlm=True, max_positions=130)


def _check_items(r: dict) -> None:
    stat, metric = r["task"]["item_stat"], r["task"]["metric"]
    assert stat == S.item_stat(metric)
    for s in r["per_seed"]:
        assert list(s["items"]) == r["languages"] == list(r["item_ids"])
        for lang in r["languages"]:
            assert len(s["items"][lang]) == len(r["item_ids"][lang]) == r["sizes"]["test"][lang]
            assert S.metric_from_items(stat, s["items"][lang]) == pytest.approx(s["scores"][lang][metric], abs=1e-12)


@pytest.mark.parametrize("task,model,data", [
    ("topic", "tiny", BENCH), ("ner", "tiny", TASKS_DIR / "ner"), ("pos", "majority", TASKS_DIR / "pos"),
    ("topic", "lexical", BENCH),
])
def test_recorded_items_reproduce_recorded_scores(cli, tiny_model_dir, tmp_path, task, model, data):
    out = tmp_path / "run"
    m = tiny_model_dir if model == "tiny" else model
    res = cli("eval", task, "--model", m, "--data", data, "--seeds", "0,1", "--epochs", "1", "--batch-size", "8",
              "--lr", "1e-3", "--save-predictions", "--out", out)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results" / f"{task}.json").read_text())
    assert r["protocol"] == "finetune" and len(r["per_seed"]) == 2
    _check_items(r)
    # the ids are the test files' ids, in order (what the predictions file lists too)
    lines = (out / r["predictions"]["1"]["en"]).read_text().splitlines()[1:]
    assert [x.split("\t")[0] for x in lines] == r["item_ids"]["en"]
