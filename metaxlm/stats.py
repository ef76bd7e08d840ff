"""Small pure statistics shared by evaluations and reports (no I/O).

Two kinds of interval live here:

- :func:`summarize`: mean, std and a Student-t 95% interval over seeds (exact quantiles from scipy);
- the **paired hierarchical bootstrap** over recorded per-item outcomes (:func:`bootstrap_languages`),
  used by reports to compare two models evaluated on the same test items.

Per-item outcomes (``item_stat`` of a transfer result) are reduced to a (numerator, denominator) pair
per item so that every metric is a ratio of sums, recomputed on any resample by one matrix product:

============== ============================ ====================== ==========================
item_stat      entry per test item          (numerator, denominator) metric on a set of items
============== ============================ ====================== ==========================
correct        0 or 1                       (correct, 1)           accuracy
correct_total  [n_correct, n] (a sentence)  (n_correct, n)         token accuracy Σcorrect/Σn
tp_fp_fn       [tp, fp, fn] (a sentence)    (2tp, 2tp + fp + fn)   micro F1 (0 when Σ = 0)
============== ============================ ====================== ==========================
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping, Sequence

import numpy as np

ITEM_STATS = ("correct", "correct_total", "tp_fp_fn")


def t_quantile_975(dof: float) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom (two-sided 95%): scipy's
    inverse t CDF (``scipy.special.stdtrit``, what ``scipy.stats.t.ppf`` computes, without importing
    scipy.stats)."""
    from scipy.special import stdtrit

    if not dof >= 1:
        raise ValueError("need at least one degree of freedom")
    return float(stdtrit(dof, 0.975))


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample std and a 95% t-interval over seeds: ``{"mean","std","ci95","n","values"}``.

    With one value the interval collapses to the value (std 0): no uncertainty can be claimed.
    """
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0, "values": []}
    mean = sum(vals) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": [mean, mean], "n": 1, "values": vals}
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n, "values": vals}


# -- per-item metrics ---------------------------------------------------------------------------
def item_ratios(item_stat: str, rows: Sequence) -> np.ndarray:
    """``(n, 2)`` float array of (numerator, denominator) per item (table in the module docstring).

    A wrong ``item_stat`` or a malformed entry is a ValueError."""
    if item_stat not in ITEM_STATS:
        raise ValueError(f"unknown item_stat {item_stat!r}; expected one of {', '.join(ITEM_STATS)}")
    a = np.asarray(rows, dtype=np.float64)
    if item_stat == "correct":
        if a.ndim != 1 or (a.size and not np.isin(a, (0.0, 1.0)).all()):
            raise ValueError("item_stat 'correct' needs one 0/1 entry per item")
        return np.stack([a, np.ones_like(a)], axis=1)
    width = 2 if item_stat == "correct_total" else 3
    if a.size == 0:
        return np.zeros((0, 2))
    if a.ndim != 2 or a.shape[1] != width or (a < 0).any():
        raise ValueError(f"item_stat {item_stat!r} needs one list of {width} non-negative counts per item")
    if item_stat == "correct_total":
        if (a[:, 0] > a[:, 1]).any():
            raise ValueError("item_stat 'correct_total': n_correct exceeds n")
        return a.copy()
    tp, fp, fn = a[:, 0], a[:, 1], a[:, 2]
    return np.stack([2 * tp, 2 * tp + fp + fn], axis=1)


def ratio_metric(sums: np.ndarray) -> np.ndarray:
    """Σnumerator / Σdenominator along the last axis (size 2); 0 where the denominator is 0."""
    num, den = sums[..., 0], sums[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def item_metric(item_stat: str, rows: Sequence) -> float:
    """The metric of a set of per-item entries: accuracy (``correct``), Σcorrect/Σn
    (``correct_total``) or micro F1 = 2ΣTP / (2ΣTP + ΣFP + ΣFN) (``tp_fp_fn``)."""
    return float(ratio_metric(item_ratios(item_stat, rows).sum(axis=0)))


# -- the paired hierarchical bootstrap ----------------------------------------------------------
def _rng(seed: int, key: str) -> np.random.Generator:
    """An independent stream per ``key`` (a language, a model), fixed by ``seed``."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def item_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n)`` multiplicities of ``n`` items drawn with replacement (rows sum to ``n``), as
    float32: the sums they weight are of small integer counts, exact in float32 below 2**24."""
    if n < 1:
        raise ValueError("need at least one item")
    idx = rng.integers(0, n, size=(resamples, n), dtype=np.int64)
    idx += (np.arange(resamples, dtype=np.int64) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def run_weights(fine_tuning_seeds: Sequence[int], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, R)`` weights of a model's R runs (pretraining seed p has ``fine_tuning_seeds[p]``
    fine-tuning runs, in order), each row summing to 1, from the two seed levels of the bootstrap:

    pretraining seeds are drawn with replacement (when there are two or more), then, for every draw,
    that seed's fine-tuning runs with replacement (when two or more); a run's weight is how often it
    was drawn, divided by (#pretraining draws × its seed's #fine-tuning runs). Without resampling
    (one seed of each) every run weighs as in the recorded mean: 1 / (P · F_p)."""
    counts = [int(f) for f in fine_tuning_seeds]
    if not counts or min(counts) < 1:
        raise ValueError("every pretraining seed needs at least one fine-tuning run")
    P, starts = len(counts), np.cumsum([0] + counts)
    w = np.zeros((resamples, starts[-1]))
    rows = np.arange(resamples)
    outer = rng.integers(0, P, size=(resamples, P)) if P > 1 else np.zeros((resamples, 1), dtype=int)
    for j in range(outer.shape[1]):
        for p in range(P):
            hit = outer[:, j] == p
            if not hit.any():
                continue
            f = counts[p]
            if f == 1:
                w[hit, starts[p]] += 1.0 / (P * f)
                continue
            inner = rng.integers(0, f, size=(resamples, f))
            for k in range(f):
                np.add.at(w, (rows[hit], starts[p] + inner[hit, k]), 1.0 / (P * f))
    return w


def bootstrap_languages(models: Mapping[str, Sequence[Sequence[Mapping[str, np.ndarray]]]], *,
                        resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Bootstrap distributions of every model's per-language metric, paired over test items.

    ``models[name][p][f][lang]`` is the ``(n_lang, 2)`` :func:`item_ratios` array of fine-tuning run f
    of pretraining seed p, items in the same order for every model and run. Per resample:

    1. items: one multiset of each language's items (drawn with replacement, independently per
       language), **shared by every model** — the pairing;
    2. seeds: for each model independently, :func:`run_weights` (pretraining seeds, then fine-tuning
       runs within each);
    3. the metric is recomputed for every run on the resampled items and averaged with the run weights.

    Returns ``{name: {lang: (resamples,) array}}``. The difference of two models' arrays is the
    bootstrap distribution of their paired difference. Same ``seed``, same numbers."""
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    langs: list[str] = []
    for runs in models.values():
        for runs_p in runs:
            for run in runs_p:
                langs += [lg for lg in run if lg not in langs]
    rw = {name: run_weights([len(r) for r in runs], resamples, _rng(seed, "model:" + name))
          for name, runs in models.items()}
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in models}
    for lang in langs:
        flat = {name: [run.get(lang) for runs_p in runs for run in runs_p] for name, runs in models.items()}
        have = {name: xs for name, xs in flat.items() if all(x is not None for x in xs)}
        sizes = {len(x) for xs in have.values() for x in xs}
        if not have:
            continue
        if len(sizes) != 1:
            raise ValueError(f"{lang}: runs have different numbers of items ({sorted(sizes)}); cannot pair them")
        W = item_weights(sizes.pop(), resamples, _rng(seed, "items:" + lang))
        for name, xs in have.items():
            X = np.concatenate(xs, axis=1)
            if len(X) * X.max(initial=0.0) >= 2 ** 24:  # float32 sums might not be exact: weight in float64
                sums = W.astype(np.float64) @ X
            else:
                sums = (W @ X.astype(np.float32)).astype(np.float64)  # (B, 2R), exact integer sums
            per_run = ratio_metric(sums.reshape(resamples, len(xs), 2))  # (B, R)
            out[name][lang] = (per_run * rw[name]).sum(axis=1)
    return out


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap ``draws`` (linear interpolation between order statistics)."""
    a = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(draws, dtype=np.float64), [a, 1 - a])
    return float(lo), float(hi)
