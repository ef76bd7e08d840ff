"""Metric functions against hand-computed values; majority class; collapse; gap arithmetic."""

from __future__ import annotations

import pytest

from metaxlm.eval import scores as S


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert S.compute_accuracy(gold, pred) == pytest.approx(3 / 5)
    # a: tp1 fp1 fn1 → 2/4; b: tp2 fp1 fn0 → 4/5; c: tp0 fp0 fn1 → 0
    assert S.compute_macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a label in the set but absent from gold and pred is left out
    assert S.compute_macro_f1(gold, pred, ["a", "b", "c", "d"]) == pytest.approx((0.5 + 0.8) / 3)
    with pytest.raises(ValueError):
        S.compute_accuracy(["a"], [])


def test_token_accuracy_and_span_f1_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    assert S.compute_token_accuracy(gold, pred) == pytest.approx(4 / 6)
    # gold spans: PER, LOC, ORG; predicted: PER, ORG, LOC(wrong place) → P 2/3, R 2/3
    assert S.compute_span_f1(gold, pred) == pytest.approx(2 / 3)
    # a partially matched span does not count
    assert S.compute_span_f1([["B-PER", "I-PER"]], [["B-PER", "O"]]) == 0.0
    assert S.compute_span_f1([["O", "O"]], [["O", "O"]]) == 0.0
    with pytest.raises(ValueError):
        S.compute_token_accuracy([["O"]], [["O", "O"]])


def test_pos_labels_are_not_mangled():
    # seqeval would read "ADP"/"DET" as chunk tags; token accuracy compares them as they are
    assert S.compute_token_accuracy([["ADP", "DET", "B-X"]], [["ADP", "DET", "I-X"]]) == pytest.approx(2 / 3)


def test_compute_metrics_dispatch():
    m = S.compute_metrics(["accuracy", "macro_f1"], ["x", "y"], ["x", "x"], ["x", "y"])
    assert m == {"accuracy": 0.5, "macro_f1": pytest.approx((2 / 3 + 0) / 2)}


def test_majority():
    assert S.majority_label(["b", "a", "a", "b", "c"]) == "b"  # tie → first seen
    assert S.majority_label([["O", "B-PER"], ["O"]]) == "O"
    assert S.majority_score("accuracy", ["a", "a", "b"], ["a", "b", "b", "b"]) == 0.25
    assert S.majority_score("token_accuracy", [["NOUN", "NOUN", "DET"]], [["DET", "NOUN"]]) == 0.5
    assert S.majority_score("span_f1", [["O", "B-PER"], ["O"]], [["B-PER", "O"]]) == 0.0


def test_collapse_detection():
    assert S.is_collapsed(0.40, 0.25, ["a", "a", "a"])  # one class for everything
    assert S.is_collapsed(0.254, 0.25, ["a", "b"])  # at the majority level
    assert not S.is_collapsed(0.40, 0.25, ["a", "b"])
    assert S.is_collapsed(0.0, 0.0, [["O", "B-PER"]])


def test_gap_arithmetic():
    g = S.seed_gaps({"en": 0.8, "de": 0.6, "fr": 0.5}, en_train=0.9, paired={"de": (0.75, 0.6)})
    assert g["en_score"] == 0.8
    assert g["train_minus_test"] == pytest.approx(0.1)
    assert g["target_mean"] == pytest.approx(0.55)
    assert g["transfer_gap_mean"] == pytest.approx(0.25)
    assert g["transfer_gap"] == {"de": pytest.approx(0.2), "fr": pytest.approx(0.3)}
    assert g["paired_gap"] == {"de": pytest.approx(0.15)}
    only_en = S.seed_gaps({"en": 0.7})
    assert only_en["target_mean"] is None and only_en["transfer_gap"] == {}


def test_aggregate_gaps_over_seeds():
    a = S.seed_gaps({"en": 0.8, "de": 0.6}, 0.9)
    b = S.seed_gaps({"en": 0.6, "de": 0.6}, 0.7)
    agg = S.aggregate_gaps([a, b])
    assert agg["en_score"]["mean"] == pytest.approx(0.7)
    assert agg["en_score"]["n"] == 2 and agg["en_score"]["std"] == pytest.approx(0.1414213, rel=1e-5)
    assert agg["transfer_gap"]["de"]["values"] == [pytest.approx(0.2), pytest.approx(0.0)]
    assert agg["transfer_gap_mean"]["mean"] == pytest.approx(0.1)
    assert agg["train_minus_test"]["mean"] == pytest.approx(0.1)
    assert agg["paired_gap"] == {}
    lo, hi = agg["en_score"]["ci95"]
    assert lo < 0.7 < hi
