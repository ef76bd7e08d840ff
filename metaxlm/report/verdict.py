"""The verdict logic: pure functions, no I/O.

For each claim metric, two models are compared by the 95% interval of their difference (``meta −
single``, a model − the ``none`` control, ...):

- a **paired bootstrap over test items** (:mod:`metaxlm.report.paired`) when both results record
  per-item outcomes on the same test items (transfer tasks): items resampled jointly for both models,
  nested with the fine-tuning seeds (and pretraining seeds when there are several), percentile
  interval;
- otherwise **Welch's t-interval on the difference of per-seed means** (unequal variances,
  Welch–Satterthwaite degrees of freedom rounded down, which is conservative; exact t quantiles),
  labelled with why it was used (Tatoeba, BUCC and CKA record no per-item outcomes; older transfer
  results neither).

Every :class:`Delta` names its ``method``; the report prints it under every table. The verdict is

- ``better`` / ``worse`` when the 95% interval excludes 0 (direction-aware: for a transfer gap,
  lower is better);
- ``no significant difference`` when it contains 0;
- ``not enough seeds`` when there are no per-item records and either side has fewer than two values
  (no variance, no interval);
- ``not run`` when either side has no result;
- ``below control`` when the pretrained models (``single`` and ``meta``) do not beat the ``none``
  control (random initialisation, same architecture) with confidence: then a difference between
  regimes says nothing about pretraining.

Which numbers are "per seed": one value per pretraining seed (a model's mean over its fine-tuning
seeds, as recorded); when a regime has a single pretraining seed, the recorded per-fine-tuning-seed
values are used instead and the unit is said so (:attr:`Sample.unit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from metaxlm.stats import percentile_interval, t_quantile_975

BETTER = "better"
WORSE = "worse"
NO_DIFF = "no significant difference"
NOT_ENOUGH = "not enough seeds"
NOT_RUN = "not run"
BELOW_CONTROL = "below control"
BEATS_CONTROL = "beats control"
NO_CONTROL = "no control"

WELCH = "Welch's t-interval on the difference of means (95%, Welch–Satterthwaite degrees of freedom rounded down)"

CLAIMS = {
    "english": "English generalization",
    "transfer": "Cross-lingual transfer",
    "alignment": "Alignment of representations",
}


# -- samples -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """Per-seed values of one metric for one model variant."""

    values: tuple[float, ...]
    unit: str  # "pretraining seeds" | "fine-tuning seeds" | "run"
    seeds: tuple = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        if len(self.values) < 2:
            return 0.0 if self.values else None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    @property
    def ci95(self) -> tuple[float, float] | None:
        """t-interval of the mean (None with fewer than two values)."""
        if len(self.values) < 2:
            return None
        half = t_quantile_975(len(self.values) - 1) * self.std / math.sqrt(len(self.values))
        return (self.mean - half, self.mean + half)


def make_sample(points: Sequence[tuple[object, float, Sequence[float]]]) -> Sample | None:
    """``points``: one ``(seed, mean, per-fine-tuning-seed values)`` per pretraining seed.

    Two or more pretraining seeds: one value each (its recorded mean). One: its fine-tuning-seed values
    when there are several, else the single value."""
    points = [p for p in points if p[1] is not None]
    if not points:
        return None
    if len(points) >= 2:
        return Sample(tuple(float(p[1]) for p in points), "pretraining seeds", tuple(p[0] for p in points))
    seed, mean, values = points[0]
    values = [float(v) for v in (values or []) if v is not None]
    if len(values) >= 2:
        return Sample(tuple(values), "fine-tuning seeds", (seed,))
    return Sample((float(mean),), "run", (seed,))


# -- comparisons ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delta:
    """``b − a`` with a 95% interval (``ci`` None when it cannot be computed) and how it was computed."""

    delta: float | None
    ci: tuple[float, float] | None
    dof: float | None  # Welch's degrees of freedom (None for the bootstrap)
    n_a: int
    n_b: int
    verdict: str
    method: str = ""


def welch_delta(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> Delta:
    """Difference of means ``mean(b) − mean(a)`` with Welch's 95% t-interval and a verdict."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if not a or not b:
        return Delta(None, None, None, len(a), len(b), NOT_RUN)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    d = mb - ma
    if len(a) < 2 or len(b) < 2:
        return Delta(d, None, None, len(a), len(b), NOT_ENOUGH)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se2 = va / len(a) + vb / len(b)
    if se2 <= 0:  # identical values on both sides: the difference is exact
        ci, dof = (d, d), float(len(a) + len(b) - 2)
    else:
        dof = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
        half = t_quantile_975(max(1, int(math.floor(dof + 1e-9)))) * math.sqrt(se2)
        ci = (d - half, d + half)
    return Delta(d, ci, dof, len(a), len(b), _verdict(d, ci, higher_is_better), WELCH)


def _verdict(d: float, ci: tuple[float, float], higher_is_better: bool) -> str:
    """better / worse when the interval excludes 0 (an exact interval: the sign of ``d``)."""
    if ci[0] > 0 or (ci[0] == ci[1] and d > 0):
        return BETTER if higher_is_better else WORSE
    if ci[1] < 0 or (ci[0] == ci[1] and d < 0):
        return WORSE if higher_is_better else BETTER
    return NO_DIFF


def bootstrap_delta(draws_a: np.ndarray, draws_b: np.ndarray, delta: float, higher_is_better: bool = True,
                    method: str = "paired bootstrap") -> Delta:
    """``delta`` (the recorded ``b − a``) with the 95% percentile interval of the paired bootstrap
    draws ``draws_b − draws_a`` (same resamples of the same items on both sides)."""
    ci = percentile_interval(np.asarray(draws_b) - np.asarray(draws_a))
    return Delta(delta, ci, None, len(draws_a), len(draws_b), _verdict(delta, ci, higher_is_better), method)


def _unit(s: Sample | None) -> str:
    return f"{s.n} {s.unit}" if s is not None and s.unit != "run" else "one run"


def compare(samples: dict, a: str, b: str, higher_is_better: bool = True, paired=None) -> Delta:
    """``b − a`` for two variants of one row: the paired bootstrap when ``paired`` (a
    :class:`~metaxlm.report.paired.RowDraws`) can pair them, else Welch's interval over seeds, whose
    ``method`` says why the bootstrap was not used."""
    sa, sb = samples.get(a), samples.get(b)
    why = "no per-item records"
    if paired is not None and sa is not None and sb is not None:
        why = paired.reason(a, b)
        if why is None:
            return bootstrap_delta(paired.draws[a], paired.draws[b], sb.mean - sa.mean, higher_is_better,
                                   paired.method(a, b))
    d = welch_delta(sa.values if sa else [], sb.values if sb else [], higher_is_better)
    units = sorted({_unit(sa), _unit(sb)})
    return replace(d, method=f"Welch's t-interval over {' and '.join(units)} ({why}; 95%, Welch–Satterthwaite "
                             "degrees of freedom rounded down)")


def control_status(model: Sample | None, control: Sample | None, higher_is_better: bool = True,
                   delta: Delta | None = None) -> tuple[str, Delta]:
    """Does ``model`` beat the ``none`` control with confidence? (``beats control`` only when the
    95% interval of model − control — ``delta``, default Welch's — lies entirely on the good side;
    otherwise ``below control``.)"""
    d = delta if delta is not None else welch_delta(control.values if control else [],
                                                    model.values if model else [], higher_is_better)
    if model is None:
        return NOT_RUN, d
    if control is None:
        return NO_CONTROL, d
    if d.verdict == NOT_ENOUGH:
        return NOT_ENOUGH, d
    return (BEATS_CONTROL if d.verdict == BETTER else BELOW_CONTROL), d


@dataclass(frozen=True)
class RowVerdict:
    comparison: Delta  # meta − single
    controls: dict  # variant → (status, Delta vs none)
    verdict: str


def row_verdict(samples: dict[str, Sample | None], higher_is_better: bool = True, control_check: bool = True,
                a: str = "single", b: str = "meta", paired=None) -> RowVerdict:
    """Verdict of one headline row from per-variant samples (``single``, ``meta``, ``none``, ...) and,
    when recorded, per-item bootstrap draws (``paired``, see :func:`compare`).

    The comparison is ``b − a``. When the row is checked against the control and neither ``a`` nor
    ``b`` beats ``none`` with confidence, the verdict is ``below control``."""
    comp = compare(samples, a, b, higher_is_better, paired)
    none = samples.get("none")
    controls = {}
    if control_check:
        for v in samples:  # every model except the controls themselves
            if v in ("none", "majority", "lexical") or samples.get(v) is None:
                continue
            controls[v] = control_status(samples[v], none, higher_is_better,
                                         compare(samples, "none", v, higher_is_better, paired))
    verdict = comp.verdict
    if control_check and none is not None and comp.verdict not in (NOT_RUN,):
        statuses = [controls[v][0] for v in (a, b) if v in controls]
        if statuses and all(s == BELOW_CONTROL for s in statuses):
            verdict = BELOW_CONTROL
    return RowVerdict(comp, controls, verdict)


# -- metrics -------------------------------------------------------------------------------------
def _summary(d) -> tuple[float | None, list[float]]:
    if isinstance(d, dict):
        return d.get("mean"), list(d.get("values") or ([] if d.get("mean") is None else [d["mean"]]))
    if isinstance(d, (int, float)):
        return float(d), [float(d)]
    return None, []


def _layer_index(payload: dict, layer) -> int | None:
    layers = payload.get("layers")
    if layer is None:
        return None
    if isinstance(layers, list) and layer in layers:
        return layers.index(layer)
    return layer if isinstance(layer, int) else None


@dataclass(frozen=True)
class Metric:
    """One row of the headline table: where its recorded number lives and how to read it."""

    key: str
    claim: str  # english / transfer / alignment
    label: str
    name: str  # result name: a transfer task name, "tatoeba", "bucc", "align"
    higher_is_better: bool = True
    control_check: bool = True  # compare against the none control (not for gaps)
    group: str = ""  # what the table notes call rows sharing a method ("topic (probe)", "Tatoeba")
    read: Callable[[dict, dict], tuple[float | None, list[float]]] = field(default=None, compare=False,
                                                                         repr=False)

    def value(self, payload: dict, ctx: dict | None = None) -> tuple[float | None, list[float]]:
        """(mean, per-fine-tuning-seed values) recorded in ``payload``; (None, []) when absent."""
        try:
            return self.read(payload, ctx or {})
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return None, []


def _gap(key: str):
    return lambda p, ctx: _summary((p.get("gaps") or {}).get(key))


def _mean_key(key: str, subset: str | None = None):
    def read(p, ctx):
        node = p if subset is None else ((p.get("subsets") or {}).get(subset) or {})
        v = (node.get("mean") or {}).get(key)
        return (float(v), [float(v)]) if v is not None else (None, [])
    return read


LOW_OVERLAP = "low-overlap"


def has_low_overlap(payloads: Sequence[dict]) -> bool:
    """Whether any retrieval result records the low-overlap subset (eval tatoeba / bucc since 0.2)."""
    return any(LOW_OVERLAP in (p.get("subsets") or {}) for p in payloads)


def headline_layer(payload: dict, ctx: dict) -> int | None:
    """The layer at which CKA is read: the align result's own ``headline.layer`` when recorded, else the
    Tatoeba headline layer of the same model (``ctx['tatoeba_layer']``), else the last layer."""
    layer = (payload.get("headline") or {}).get("layer")
    if layer is None:
        layer = ctx.get("tatoeba_layer")
    layers = payload.get("layers") or list(range(len(payload.get("mean_cka") or [])))
    if layer is None or layer not in layers:
        layer = layers[-1] if layers else None
    return layer


def _cka(p, ctx):
    layer = headline_layer(p, ctx)
    idx = _layer_index(p, layer)
    vals = p.get("mean_cka") or []
    if idx is None or idx >= len(vals) or vals[idx] is None:
        return None, []
    return float(vals[idx]), [float(vals[idx])]


def task_metric_name(payload: dict | None, default: str = "score") -> str:
    return str(((payload or {}).get("task") or {}).get("metric") or default)


def metrics_for(tasks: Sequence[str], names: Sequence[str], metric_names: dict[str, str] | None = None,
                low_overlap: bool = False) -> list[Metric]:
    """The headline rows: per transfer task (``topic`` always, others when present) English score,
    mean target score and transfer gap; Tatoeba accuracy and mean CKA en↔xx always; BUCC F1 when
    present; with ``low_overlap``, Tatoeba accuracy (and BUCC F1) on the low-overlap pairs too."""
    from metaxlm.report.collect import PROBE_SUFFIX, base_task

    metric_names = metric_names or {}
    out: list[Metric] = []
    order = ["topic"] + [x for x in tasks if x != "topic"]
    probes = any(t.endswith(PROBE_SUFFIX) for t in order)

    def name(t: str) -> str:  # "topic", or with both protocols "topic (fine-tuned)" / "topic (probe)"
        if t.endswith(PROBE_SUFFIX):
            return f"{base_task(t)} (probe)"
        return f"{t} (fine-tuned)" if probes else t

    for t in order:
        m = metric_names.get(t, "accuracy")
        out.append(Metric(f"{t}.en_score", "english", f"{name(t)} {m}, English (en_score)", t, group=name(t),
                          read=_gap("en_score")))
    for t in order:
        m = metric_names.get(t, "accuracy")
        out.append(Metric(f"{t}.target_mean", "transfer", f"{name(t)} {m}, mean over target languages", t,
                          group=name(t), read=_gap("target_mean")))
        out.append(Metric(f"{t}.transfer_gap_mean", "transfer",
                          f"{name(t)} transfer gap (en − targets; lower is better)",
                          t, higher_is_better=False, control_check=False, group=name(t),
                          read=_gap("transfer_gap_mean")))
    out.append(Metric("tatoeba.acc", "alignment", "Tatoeba accuracy (cosine, both directions, headline layer)",
                      "tatoeba", group="Tatoeba", read=_mean_key("acc_cosine")))
    if low_overlap:
        out.append(Metric("tatoeba.acc_low", "alignment", "Tatoeba accuracy on the low-overlap pairs "
                          "(character 4-gram Dice < 0.1, headline layer)", "tatoeba", group="Tatoeba",
                          read=_mean_key("acc_cosine", LOW_OVERLAP)))
    out.append(Metric("align.mean_cka", "alignment",
                      "mean CKA en↔xx (at the model's Tatoeba headline layer, else the last layer)", "align",
                      group="CKA", read=_cka))
    if "bucc" in names:
        out.append(Metric("bucc.f1", "alignment", "BUCC F1 (mean over languages)", "bucc", group="BUCC",
                          read=_mean_key("f1")))
        if low_overlap:
            out.append(Metric("bucc.f1_low", "alignment", "BUCC F1 on the low-overlap gold pairs", "bucc",
                              group="BUCC", read=_mean_key("f1", LOW_OVERLAP)))
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "not run" if x is None else f"{x:.{digits}f}"


def fmt_delta(d: Delta, digits: int = 3) -> str:
    if d.delta is None:
        return "not run"
    s = f"{d.delta:+.{digits}f}"
    if d.ci is not None:
        s += f" [{d.ci[0]:+.{digits}f}, {d.ci[1]:+.{digits}f}]"
    else:
        s += " (no CI: one seed)"
    return s
