"""Paired statistics for a report: model-vs-model deltas over recorded per-item outcomes.

A transfer result with per-item records (docs/results.md: ``task.item_stat``, ``item_ids``,
``per_seed[k].items``) lets two models be compared on the *same* test items: the interval of a delta
comes from :func:`metaxlm.stats.bootstrap_languages` (items resampled jointly for both models,
pretraining and fine-tuning seeds resampled for each model) instead of Welch's interval over a
handful of seeds. Pure functions over payloads already read by :mod:`.collect`: nothing here loads
a model or touches disk. The metric is recomputed on *resamples* of recorded outcomes only (that is
the bootstrap), never re-evaluated; the point estimate shown is the recorded one.

Pairing needs the same test items: two models are paired only when their results name the same
``data_hash`` and the same ``item_ids`` for every language; otherwise (or for results written
before items were recorded) the row falls back to Welch's interval, and says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from metaxlm import stats

TOLERANCE = 1e-6  # items must reproduce the recorded per-seed score to this precision


@dataclass(frozen=True)
class ModelItems:
    """One model's per-item records for one task: ``runs[p][f][lang]`` = (n, 2) ratio arrays."""

    variant: str
    item_stat: str
    signature: str  # data hash + item ids: equal signatures = the same test items
    n_items: dict  # lang → number of test items
    runs: tuple  # [pretraining seed][fine-tuning run] → {lang: ndarray}

    @property
    def fine_tuning(self) -> tuple[int, ...]:
        return tuple(len(r) for r in self.runs)


def _signature(payload: dict) -> str:
    ids = payload.get("item_ids") or {}
    blob = json.dumps({"data_hash": (payload.get("task") or {}).get("data_hash"),
                       "item_ids": {k: list(v) for k, v in sorted(ids.items())}}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def model_items(variant: str, payloads: Sequence[dict]) -> tuple[ModelItems | None, str]:
    """(records, "") from a model's transfer results (one per pretraining seed), or (None, why not)."""
    if not payloads:
        return None, "not run"
    stat = {str((p.get("task") or {}).get("item_stat") or "") for p in payloads}
    if "" in stat or not all(isinstance(p.get("item_ids"), dict) for p in payloads):
        return None, "no per-item records"
    if len(stat) != 1 or len({_signature(p) for p in payloads}) != 1:
        return None, "its pretraining seeds were scored on different test items"
    item_stat = stat.pop()
    metric = (payloads[0].get("task") or {}).get("metric") or "accuracy"
    runs = []
    try:
        for p in payloads:
            ids = p["item_ids"]
            runs_p = []
            for s in p.get("per_seed") or []:
                items = s.get("items")
                if not isinstance(items, dict) or set(items) != set(ids):
                    return None, "no per-item records"
                run = {}
                for lang, rows in items.items():
                    r = stats.item_ratios(item_stat, rows)
                    if len(r) != len(ids[lang]):
                        return None, "per-item records do not match item_ids"
                    recorded = ((s.get("scores") or {}).get(lang) or {}).get(metric)
                    if recorded is not None and abs(float(stats.ratio_metric(r.sum(axis=0))) - recorded) > TOLERANCE:
                        return None, "per-item records do not reproduce the recorded scores"
                    run[lang] = r
                runs_p.append(run)
            if not runs_p:
                return None, "no per-item records"
            runs.append(tuple(runs_p))
    except (ValueError, TypeError, KeyError):
        return None, "per-item records are malformed"
    ids = payloads[0]["item_ids"]
    return ModelItems(variant, item_stat, _signature(payloads[0]), {k: len(v) for k, v in ids.items()},
                      tuple(runs)), ""


@dataclass
class TaskDraws:
    """Bootstrap draws of every model of one transfer task (per language), and why others have none."""

    task: str
    resamples: int
    seed: int
    models: dict = field(default_factory=dict)  # variant → ModelItems
    draws: dict = field(default_factory=dict)  # variant → {lang: (resamples,) array}
    missing: dict = field(default_factory=dict)  # variant → reason


def task_draws(task: str, payloads: dict[str, list[dict]], *, resamples: int = 2000, seed: int = 0) -> TaskDraws:
    """``payloads[variant]``: that variant's results for ``task``, one per pretraining seed."""
    out = TaskDraws(task, resamples, seed)
    groups: dict[str, dict[str, tuple]] = {}
    for variant, ps in payloads.items():
        mi, why = model_items(variant, ps)
        if mi is None:
            out.missing[variant] = why
            continue
        out.models[variant] = mi
        groups.setdefault(mi.signature, {})[variant] = mi.runs
    for group in groups.values():  # each set of test items is bootstrapped on its own
        try:
            out.draws.update(stats.bootstrap_languages(group, resamples=resamples, seed=seed))
        except ValueError as e:
            for v in group:
                out.models.pop(v, None)
                out.missing[v] = str(e)
    return out


# -- one headline row ----------------------------------------------------------------------------
ROW_KINDS = ("en_score", "target_mean", "transfer_gap_mean")


@dataclass
class RowDraws:
    """Per-variant bootstrap draws of one row's metric (``en_score``, ``target_mean`` or
    ``transfer_gap_mean``) and what :meth:`method` needs to describe them."""

    kind: str
    task: TaskDraws
    draws: dict = field(default_factory=dict)  # variant → (resamples,) array
    langs: dict = field(default_factory=dict)  # variant → languages the metric averages

    def reason(self, a: str, b: str) -> str | None:
        """Why ``a`` and ``b`` cannot be paired (None when they can)."""
        for v in (a, b):
            if v not in self.draws:
                return self.task.missing.get(v) or "no per-item records"
        if self.task.models[a].signature != self.task.models[b].signature:
            return "different test items"
        return None

    def method(self, a: str, b: str) -> str:
        ma, mb = self.task.models[a], self.task.models[b]
        n = sorted(set(ma.n_items.values()))
        items = f"{n[0]:,}" if len(n) == 1 else f"{n[0]:,}–{n[-1]:,}"
        parts = [f"{items} test items per language"]
        ft = sorted({f for m in (ma, mb) for f in m.fine_tuning})
        pt = sorted({len(m.runs) for m in (ma, mb)})
        if ft[-1] > 1:
            parts.append(f"{_count(ft)} fine-tuning seeds")
        if pt[-1] > 1:
            parts.append(f"{_count(pt)} pretraining seeds")
        return (f"{'hierarchical ' if pt[-1] > 1 else ''}paired bootstrap over {' × '.join(parts)}, "
                f"{self.task.resamples:,} resamples, 95% percentile interval")


def _count(xs: list[int]) -> str:
    return str(xs[0]) if len(xs) == 1 else f"{xs[0]}–{xs[-1]}"


def row_draws(kind: str, task: TaskDraws) -> RowDraws:
    """The draws of ``kind`` for every variant with per-item records: English, the mean over target
    languages (each language's items resampled on their own, then the per-language metrics averaged,
    as the recorded mean is), or English minus that mean."""
    if kind not in ROW_KINDS:
        raise ValueError(f"unknown row kind {kind!r}")
    out = RowDraws(kind, task)
    for v, by_lang in task.draws.items():
        targets = sorted(lg for lg in by_lang if lg != "en")
        if kind == "en_score":
            if "en" not in by_lang:
                continue
            out.draws[v], out.langs[v] = by_lang["en"], ["en"]
            continue
        if not targets or (kind == "transfer_gap_mean" and "en" not in by_lang):
            continue
        mean = np.mean([by_lang[lg] for lg in targets], axis=0)
        out.draws[v] = mean if kind == "target_mean" else by_lang["en"] - mean
        out.langs[v] = targets
    return out
