"""Pure metric and gap arithmetic for transfer results (no I/O, no models).

Sequence tasks get lists of labels; token tasks get lists of tag lists (one per sentence).
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from metaxlm.stats import summarize

COLLAPSE_TOLERANCE = 0.005  # a primary score within this of the majority-class score counts as collapsed


def compute_accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if len(gold) != len(pred):
        raise ValueError("gold and predictions differ in length")
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def compute_macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of per-class F1 over ``labels`` (default: classes present in gold or pred);
    a class with no gold and no predicted item is left out, one with 0 precision and recall counts 0."""
    if len(gold) != len(pred):
        raise ValueError("gold and predictions differ in length")
    classes = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    f1s = []
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s) if f1s else 0.0


def compute_token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    flat_g = [t for s in gold for t in s]
    flat_p = [t for s in pred for t in s]
    if any(len(g) != len(p) for g, p in zip(gold, pred)) or len(gold) != len(pred):
        raise ValueError("gold and predicted tag sequences differ in length")
    return compute_accuracy(flat_g, flat_p)


def compute_span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Entity-level micro F1 (seqeval, conlleval-style chunking)."""
    from seqeval.metrics import f1_score

    if not any(t != "O" for s in gold for t in s) and not any(t != "O" for s in pred for t in s):
        return 0.0
    return float(f1_score([list(s) for s in gold], [list(s) for s in pred], zero_division=0))


METRICS = {
    "accuracy": lambda g, p, labels: compute_accuracy(g, p),
    "macro_f1": lambda g, p, labels: compute_macro_f1(g, p, labels),
    "token_accuracy": lambda g, p, labels: compute_token_accuracy(g, p),
    "span_f1": lambda g, p, labels: compute_span_f1(g, p),
}


def compute_metrics(metrics: Sequence[str], gold: Sequence, pred: Sequence,
                    labels: Sequence[str] | None = None) -> dict[str, float]:
    return {m: float(METRICS[m](gold, pred, labels)) for m in metrics}


# --------------------------------------------------------------------------------------------
# majority class


def majority_label(train_labels: Sequence) -> str:
    """Most frequent label (flattened for token tasks); ties go to the first seen."""
    flat = [t for s in train_labels for t in s] if train_labels and isinstance(train_labels[0], (list, tuple)) \
        else list(train_labels)
    if not flat:
        raise ValueError("no training labels")
    counts = Counter(flat)
    best = max(counts.values())
    return next(x for x in flat if counts[x] == best)


def constant_predictions(gold: Sequence, label: str) -> list:
    if gold and isinstance(gold[0], (list, tuple)):
        return [[label] * len(s) for s in gold]
    return [label] * len(gold)


def majority_score(metric: str, train_labels: Sequence, gold: Sequence, labels: Sequence[str] | None = None) -> float:
    """The ``metric`` of always predicting the English-train majority label on ``gold``."""
    lab = majority_label(train_labels)
    return compute_metrics([metric], gold, constant_predictions(gold, lab), labels)[metric]


def is_collapsed(score: float, majority: float, pred: Sequence, tolerance: float = COLLAPSE_TOLERANCE) -> bool:
    """A run is collapsed when it predicts one class for everything, or scores no better than the
    majority class (within ``tolerance``)."""
    flat = [t for s in pred for t in s] if pred and isinstance(pred[0], (list, tuple)) else list(pred)
    return len(set(flat)) <= 1 or score <= majority + tolerance


# --------------------------------------------------------------------------------------------
# gaps


def seed_gaps(scores: Mapping[str, float], en_train: float | None = None,
              paired: Mapping[str, tuple[float, float]] | None = None) -> dict:
    """Gaps for one seed from primary scores per language (``"en"`` required).

    Returns ``{en_score, train_minus_test, target_mean, transfer_gap_mean, transfer_gap: {lang},
    paired_gap: {lang}}``; ``paired`` maps a language to (English score, target score) on the items
    both test sets share.
    """
    en = scores["en"]
    targets = {k: v for k, v in scores.items() if k != "en"}
    gap = {k: en - v for k, v in targets.items()}
    target_mean = sum(targets.values()) / len(targets) if targets else None
    return {
        "en_score": en,
        "train_minus_test": (en_train - en) if en_train is not None else None,
        "target_mean": target_mean,
        "transfer_gap_mean": (en - target_mean) if target_mean is not None else None,
        "transfer_gap": gap,
        "paired_gap": {k: e - t for k, (e, t) in (paired or {}).items()},
    }


def aggregate_gaps(per_seed: Sequence[dict]) -> dict:
    """Summaries over seeds of :func:`seed_gaps` outputs (None values are left out)."""
    def summ(vals):
        return summarize([v for v in vals if v is not None])

    out = {}
    for key in ("en_score", "train_minus_test", "target_mean", "transfer_gap_mean"):
        out[key] = summ([g[key] for g in per_seed])
    for key in ("transfer_gap", "paired_gap"):
        langs = []
        for g in per_seed:
            langs += [k for k in g[key] if k not in langs]
        out[key] = {lang: summ([g[key].get(lang) for g in per_seed]) for lang in langs}
    return out


# --------------------------------------------------------------------------------------------
# per-item records (paired statistics read these; docs/results.md)

ITEM_STATS = {"accuracy": "correct", "token_accuracy": "correct_total", "span_f1": "tp_fp_fn"}


def item_stat(metric: str) -> str:
    """How one test item is recorded for ``metric``: ``correct`` (0/1), ``correct_total``
    ([n_correct_words, n_words]) or ``tp_fp_fn`` ([tp, fp, fn] entity counts)."""
    return ITEM_STATS[metric]


def _entities(tags: Sequence[str]) -> set:
    from seqeval.metrics.sequence_labeling import get_entities

    return set(get_entities(list(tags)))


def compute_item_rows(stat: str, gold: Sequence, pred: Sequence) -> list:
    """One row per item, in order: ``correct`` → 0/1; ``correct_total`` → [n_correct, n]; ``tp_fp_fn`` →
    [tp, fp, fn] of seqeval's entity chunks in that sentence (their sums give seqeval's micro F1)."""
    if len(gold) != len(pred):
        raise ValueError("gold and predictions differ in length")
    if stat == "correct":
        return [int(g == p) for g, p in zip(gold, pred)]
    if any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted tag sequences differ in length")
    if stat == "correct_total":
        return [[sum(a == b for a, b in zip(g, p)), len(g)] for g, p in zip(gold, pred)]
    if stat == "tp_fp_fn":
        rows = []
        for g, p in zip(gold, pred):
            eg, ep = _entities(g), _entities(p)
            tp = len(eg & ep)
            rows.append([tp, len(ep) - tp, len(eg) - tp])
        return rows
    raise ValueError(f"unknown item_stat {stat!r}; choose one of {', '.join(sorted(set(ITEM_STATS.values())))}")


def metric_from_items(stat: str, rows: Sequence) -> float:
    """The metric the rows record: ``correct`` → mean; ``correct_total`` → Σcorrect / Σn; ``tp_fp_fn``
    → micro F1 2·tp / (2·tp + fp + fn). No item (or nothing to count) → 0.0, as the metrics do."""
    if stat == "correct":
        return sum(rows) / len(rows) if rows else 0.0
    if stat == "correct_total":
        n = sum(r[1] for r in rows)
        return sum(r[0] for r in rows) / n if n else 0.0
    if stat == "tp_fp_fn":
        tp, fp, fn = (sum(r[i] for r in rows) for i in range(3))
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    raise ValueError(f"unknown item_stat {stat!r}; choose one of {', '.join(sorted(set(ITEM_STATS.values())))}")
