"""What a report says, independent of its format: tables, verdicts and sentences built from a
:class:`~metaxlm.report.collect.Collection`. The report document (:mod:`.sections`) is built from a
:class:`Summary`.

Everything here reads recorded numbers; the only arithmetic is aggregation of per-seed recorded
values (means over seeds, the Welch interval of :mod:`metaxlm.report.verdict`) and the paired
bootstrap over recorded per-item outcomes (:mod:`metaxlm.report.paired`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from metaxlm.report import paired as P
from metaxlm.report import verdict as V
from metaxlm.report.collect import CONTROL_LABELS, Collection, Entry, base_task, task_title

RESAMPLES = 2000  # paired bootstrap resamples per report (seeded: the same report twice, the same numbers)

NOT_RUN = V.NOT_RUN


@dataclass
class Row:
    metric: V.Metric
    samples: dict[str, V.Sample | None]  # variant → sample (None: not run)
    verdict: V.RowVerdict
    chance: float | None
    ctx_notes: list[str] = field(default_factory=list)
    paired: P.RowDraws | None = None  # per-item bootstrap draws (transfer rows with per-item records)

    def delta(self, a: str, b: str) -> V.Delta:
        """``b − a`` on this row, by the same method as its verdict."""
        return V.compare(self.samples, a, b, self.metric.higher_is_better, self.paired)


@dataclass
class Summary:
    title: str
    generated_at: str
    roots: list[str]
    variants: list[str]  # every variant with results, display order
    pretrained: list[str]  # variants that are pretrained models (single, meta, en-only, others)
    rows: list[Row]
    claim_statements: dict[str, list[str]]  # claim → sentences about the none control
    what_this_shows: list[str]
    per_language: dict[str, dict]  # task → {"langs", "metric", "cells": {variant: {lang: (score, gap)}},
    #                                        "collapsed": {variant: {lang: (collapsed runs, runs)}}}
    provenance: list[dict]
    data_hashes: list[tuple[str, str]]
    problems: list[str]
    notes: list[str]  # ``notes`` recorded inside result files (e.g. undefined CKA at a layer)
    steps: list[dict]  # steps.json of the comparison(s): step, status, seconds
    comparisons: list[dict]  # each comparison directory: path, preset, status, wall_seconds, benchmark, seeds
    units: list[str]  # notes on which seeds the intervals are over
    has_curves: bool
    statistics: list[str] = field(default_factory=list)  # how the intervals were computed, in sentences


def _point(metric: V.Metric, e: Entry, ctx: dict):
    mean, values = metric.value(e.payload, ctx)
    return (e.seed, mean, values)


def _ctx_for(col: Collection, e: Entry) -> dict:
    """Extra context to read a metric: the Tatoeba headline layer of the same model and seed."""
    for t in col.find(e.variant, "tatoeba", e.tokens):
        if t.seed == e.seed:
            return {"tatoeba_layer": (t.payload.get("headline") or {}).get("layer")}
    return {}


def layer_choice(payload: dict) -> str | None:
    """How a retrieval result's headline layer was chosen: ``headline.layer_choice`` (``"dev"``,
    ``"user"``, ``"fixed: no dev split"``); results written before it was recorded: ``selected_on``
    ``"dev"`` → ``"dev"``, ``"fixed"`` (then only ``--layer``) → ``"user"``."""
    h = payload.get("headline") or {}
    choice = h.get("layer_choice")
    if choice is None:
        choice = {"dev": "dev", "fixed": "user"}.get(h.get("selected_on"))
    return choice


def _tatoeba_label(col: Collection, label: str) -> str:
    """The Tatoeba row's label, with how the headline layer was chosen when any result did not choose it
    on dev (``…; layer choice: fixed: no dev split (layer 8)``); unchanged when all chose on dev."""
    by: dict[str, set] = {}
    for e in col.entries:
        if e.name == "tatoeba":
            choice = layer_choice(e.payload)
            if choice is not None:
                by.setdefault(choice, set()).add((e.payload.get("headline") or {}).get("layer"))
    if not by or set(by) == {"dev"}:
        return label
    parts = []
    for choice in sorted(by):
        layers = sorted(x for x in by[choice] if isinstance(x, int))
        parts.append(choice + (f" (layer {', '.join(map(str, layers))})" if layers and choice != "dev" else ""))
    return f"{label}; layer choice: {', '.join(parts)}"


def _task_of(variant: str, name: str) -> str:
    """Controls (majority, lexical) predict without an encoder: a probe row shows their fine-tuning-protocol
    result of the same task."""
    return base_task(name) if variant in CONTROL_LABELS else name


def sample_for(col: Collection, variant: str, metric: V.Metric, tokens: int | None = None) -> V.Sample | None:
    entries = col.find(variant, _task_of(variant, metric.name), tokens)
    return V.make_sample([_point(metric, e, _ctx_for(col, e)) for e in entries])


def chance_for(col: Collection, metric: V.Metric) -> float | None:
    """Chance level, as recorded: 1/#labels for classification, ``mean.chance`` (1/n) for Tatoeba."""
    for e in col.entries:
        if e.name != metric.name:
            continue
        if metric.key.endswith((".en_score", ".target_mean")):
            labels = (e.payload.get("task") or {}).get("labels")
            if labels:
                return 1.0 / len(labels)
        if metric.key in ("tatoeba.acc", "tatoeba.acc_low"):
            node = e.payload if metric.key == "tatoeba.acc" else (e.payload.get("subsets") or {}).get(V.LOW_OVERLAP) or {}
            c = (node.get("mean") or {}).get("chance")
            if c is not None:
                return float(c)
    return None


def _majority_fallback(col: Collection, metric: V.Metric) -> V.Sample | None:
    """Majority-class numbers recorded inside every transfer result (``majority: {lang: x}``), used when
    no separate majority control result exists."""
    for e in col.entries:
        if e.kind != "transfer" or e.name != metric.name or not isinstance(e.payload.get("majority"), dict):
            continue
        maj = e.payload["majority"]
        if metric.key.endswith(".en_score") and maj.get("en") is not None:
            return V.Sample((float(maj["en"]),), "run")
        if metric.key.endswith(".target_mean"):
            t = [float(v) for k, v in maj.items() if k != "en" and v is not None]
            if t:
                return V.Sample((sum(t) / len(t),), "run")
    return None


def _provenance(col: Collection) -> list[dict]:
    out = []
    for r in col.runs:
        meta = r.meta
        if not meta and not r.results:
            continue
        wall = None
        pre = r.results.get("pretrain") or {}
        if pre.get("wall_seconds") is not None:
            wall = pre["wall_seconds"]
        else:
            secs = [(p.get("timing") or {}).get("seconds") for p in r.results.values()]
            secs = [s for s in secs if isinstance(s, (int, float))]
            wall = sum(secs) if secs else None
        rel = r.path
        for root in col.roots:
            try:
                rel = r.path.relative_to(root)
                rel = Path(root.name) / rel if str(rel) != "." else Path(root.name)
                break
            except ValueError:
                continue
        hw = meta.get("hardware") or {}
        hw_s = ", ".join(f"{k}={v}" for k, v in hw.items()) if isinstance(hw, dict) else str(hw)
        vers = meta.get("versions") or next((p.get("versions") for p in r.results.values() if p.get("versions")), {})
        vers_s = ", ".join(f"{k} {v}" for k, v in vers.items()) if isinstance(vers, dict) else str(vers or "")
        labels = []
        for p in r.results.values():
            blocks = p.get("models") or [p.get("model")]
            for m in blocks:
                if isinstance(m, dict) and (m.get("label") or m.get("spec")):
                    lab = str(m.get("label") or m.get("spec"))
                    if lab not in labels:
                        labels.append(lab)
        out.append({
            "run": str(rel), "model": " × ".join(labels), "kind": r.kind or "?",
            "regime": meta.get("regime") or pre.get("regime") or "",
            "seed": meta.get("seed") if meta.get("seed") is not None else "",
            "status": meta.get("status") or "", "results": ", ".join(sorted(r.results)) or "",
            "git_sha": (meta.get("git_sha") or "")[:12], "created": meta.get("created_at") or "",
            "wall_s": wall, "hardware": hw_s, "versions": vers_s, "config": r.config_text or "",
        })
    return out


def _data_hashes(col: Collection) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for e in col.entries + col.curves:
        p = e.payload
        for block in (p.get("task"), p.get("data")):
            if isinstance(block, dict) and block.get("data_hash"):
                where = block.get("data_dir") or block.get("source") or e.name
                seen.setdefault(f"{e.name}: {where}", str(block["data_hash"]))
    return sorted(seen.items())


def _per_language(col: Collection, variants: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for task in col.transfer_tasks():
        langs: list[str] = []
        metric = None
        cells: dict[str, dict] = {}
        collapsed: dict[str, dict] = {}
        for v in variants:
            entries = col.find(v, task)
            if not entries:
                continue
            cell: dict[str, tuple] = {}
            for e in entries:
                metric = metric or V.task_metric_name(e.payload)
                for lg in e.payload.get("languages") or list((e.payload.get("scores") or {}).keys()):
                    if lg not in langs:
                        langs.append(lg)
            coll: dict[str, list[int]] = {}
            for e in entries:
                n_runs = len(e.payload.get("per_seed") or []) or 1
                for lg in langs:
                    c = coll.setdefault(lg, [0, 0])
                    c[0] += len((e.payload.get("collapsed") or {}).get(lg) or [])
                    c[1] += n_runs
            collapsed[v] = {lg: tuple(c) for lg, c in coll.items()}
            for lg in langs:
                m = metric or "accuracy"
                score = V.make_sample([(e.seed, *V._summary(((e.payload.get("scores") or {}).get(lg) or {}).get(m)))
                                       for e in entries])
                gap = V.make_sample([(e.seed, *V._summary(((e.payload.get("gaps") or {}).get("paired_gap") or {})
                                                          .get(lg))) for e in entries]) if lg != "en" else None
                cell[lg] = (score, gap)
            cells[v] = cell
        if cells:
            langs = (["en"] if "en" in langs else []) + [x for x in langs if x != "en"]
            out[task] = {"langs": langs, "metric": metric or "accuracy", "cells": cells, "collapsed": collapsed,
                         "title": task_title(task)}
    if any(t != base_task(t) for t in out):  # both protocols: name the fine-tuning one too
        for t, d in out.items():
            if t == base_task(t):
                d["title"] = f"{t} (fine-tuned)"
    return out


def _claim_statements(rows: list[Row], pretrained: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for claim in V.CLAIMS:
        lines = []
        for row in rows:
            if row.metric.claim != claim or not row.metric.control_check:
                continue
            none = row.samples.get("none")
            present = [v for v in pretrained if row.samples.get(v) is not None]
            if not present:
                continue
            if none is None:
                lines.append(f"{row.metric.label}: the `none` control was not run, so it cannot be said whether "
                             "pretraining helps.")
                continue
            beat = [v for v in present if row.verdict.controls.get(v, ("",))[0] == V.BEATS_CONTROL]
            fewer = [v for v in present if row.verdict.controls.get(v, ("",))[0] == V.NOT_ENOUGH]
            below = [v for v in present if v not in beat and v not in fewer]
            parts = []
            if beat:
                parts.append(f"{_join(beat)} beat{'s' if len(beat) == 1 else ''} the `none` control with confidence")
            if below:
                parts.append(f"{_join(below)} do{'es' if len(below) == 1 else ''} NOT beat the `none` control "
                             "with confidence")
            if fewer:
                parts.append(f"{_join(fewer)}: too few seeds to say")
            lines.append(f"{row.metric.label}: " + "; ".join(parts) + ".")
        out[claim] = lines
    return out


def _join(xs: list[str]) -> str:
    xs = [f"`{x}`" for x in xs]
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def _what_this_shows(rows: list[Row]) -> list[str]:
    by_claim: dict[str, list[Row]] = {}
    for r in rows:
        by_claim.setdefault(r.metric.claim, []).append(r)
    out = []
    below: list[str] = []
    any_effect = False
    for claim, title in V.CLAIMS.items():
        rs = [r for r in by_claim.get(claim, []) if r.verdict.verdict != V.NOT_RUN]
        if not rs:
            have = sorted({v for r in by_claim.get(claim, []) for v, smp in r.samples.items()
                           if smp is not None and v not in CONTROL_LABELS})
            if have:
                out.append(f"{title}: only {_join(have)} {'has' if len(have) == 1 else 'have'} results; "
                           "`single` and `meta` both need them for a comparison.")
            else:
                out.append(f"{title}: not run.")
            continue
        main = rs[0]
        v = main.verdict.verdict
        d = main.verdict.comparison
        if v == V.BELOW_CONTROL:
            out.append(f"{title}: neither `single` nor `meta` beats the randomly initialised `none` control on "
                       f"{main.metric.label} with confidence, so the difference between regimes "
                       f"({V.fmt_delta(d)}) says nothing about pretraining.")
        elif v in (V.BETTER, V.WORSE):
            any_effect = True
            out.append(f"{title}: meta-pretraining is {v} than single-phase pretraining on {main.metric.label} "
                       f"(meta − single {V.fmt_delta(d)}, 95% interval: {d.method}).")
        elif v == V.NO_DIFF:
            out.append(f"{title}: no significant difference between meta and single on {main.metric.label} "
                       f"(meta − single {V.fmt_delta(d)}).")
        else:
            out.append(f"{title}: {v} on {main.metric.label} (meta − single {V.fmt_delta(d)}); run more seeds "
                       "for an interval.")
        for r in rs:
            if r.metric.control_check and r.samples.get("none") is not None and r.verdict.controls and \
                    all(r.verdict.controls.get(x, ("",))[0] != V.BEATS_CONTROL for x in ("single", "meta")):
                below.append(r.metric.label)
    if below:
        out.append("Pretrained models do not beat the randomly initialised `none` control with confidence on: "
                   + "; ".join(below) + ". On these metrics this run shows the pipeline, not the effect of "
                   "pretraining. Measured so far: on 2 CPU cores, up to 24M tokens per regime, pretraining beat "
                   "`none` on English topic accuracy only; the `gpu` preset (`metaxlm compare --preset gpu`) is "
                   "sized to show the effect on every claim but has not been run on a GPU yet (README, "
                   "Calibration).")
    elif any_effect:
        out.append("Differences marked better/worse have 95% intervals (method under each table) that exclude zero; "
                   "\"no significant difference\" means the interval contains zero, not that the regimes are equal.")
    return out


def _budget_warnings(col: Collection) -> list[str]:
    """Pretraining runs whose budget repeated a language's corpus (recorded by the trainer)."""
    out = []
    for run in col.runs:
        for w in (run.results.get("pretrain") or {}).get("warnings") or []:
            out.append(f"**Budget warning** ({run.path.name}): {w}.")
    return out


def _notes(col: Collection, limit: int = 40) -> list[str]:
    out = []
    for e in col.entries + col.curves + col.pairs:
        for n in e.payload.get("notes") or []:
            who = e.variant if e.kind != "align_pair" else "pair"
            out.append(f"{who}{'' if e.seed is None else f' seed {e.seed}'} {e.name}: {n}")
    if len(out) > limit:
        out = out[:limit] + [f"… and {len(out) - limit} more (see the result files)"]
    return out


def _collapse_sentences(per_language: dict[str, dict]) -> list[str]:
    out = []
    for task, d in per_language.items():
        parts = []
        for v, by in (d.get("collapsed") or {}).items():
            if v in CONTROL_LABELS:
                continue
            c, n = by.get("en", (0, 0))
            if c:
                parts.append(f"`{v}` {c}/{n}")
        if parts:
            out.append(f"{task}: fine-tuning runs that collapsed to the majority class in English (recorded by the "
                       f"evaluation): {', '.join(parts)}. Collapsed runs score at majority level whatever the encoder, "
                       "so they hide any effect of pretraining; fine-tune longer or on more data.")
    return out


def _comparisons(col: Collection) -> list[dict]:
    import yaml

    out = []
    for r in col.runs:
        if r.kind != "compare":
            continue
        try:
            cfg = yaml.safe_load(r.config_text or "") or {}
        except yaml.YAMLError:
            cfg = {}
        cfg = cfg if isinstance(cfg, dict) else {}
        out.append({"path": str(r.path), "preset": cfg.get("preset") or r.meta.get("preset"),
                    "status": r.meta.get("status"), "wall_seconds": r.meta.get("wall_seconds"),
                    "benchmark": r.meta.get("benchmark") or cfg.get("data"),
                    "seeds": cfg.get("seeds") or r.meta.get("seed"), "regimes": cfg.get("regimes")})
    return out


def _task_draws(col: Collection, variants: list[str], tasks: list[str], resamples: int, seed: int) -> dict:
    out = {}
    for t in tasks:
        payloads = {v: [e.payload for e in col.find(v, _task_of(v, t))] for v in variants}
        payloads = {v: ps for v, ps in payloads.items() if ps}
        out[t] = P.task_draws(t, payloads, resamples=resamples, seed=seed)
    return out


def _statistics(rows: list[Row], draws: dict, resamples: int, seed: int) -> list[str]:
    paired = [r for r in rows if r.paired is not None and r.paired.draws]
    out = []
    if paired:
        out.append(
            f"Transfer rows: paired bootstrap over the recorded per-item outcomes ({resamples:,} resamples, seed "
            f"{seed}). Each resample draws the test items of every language with replacement — the same items for "
            "both models of a comparison — and, for each model independently, its pretraining seeds (when there are "
            "several) and then the fine-tuning seeds of each drawn pretraining seed, all with replacement; the "
            "metric (accuracy, Σcorrect/Σn or micro F1) is recomputed for every drawn run on the drawn items and "
            "averaged like the recorded mean (over fine-tuning seeds, then pretraining seeds). A mean over target "
            "languages resamples each language's items on their own and averages the per-language metrics. The "
            "interval is the 2.5–97.5% percentile interval of the resampled differences; a verdict (better / "
            "worse, beats / below control) needs it to exclude zero. The difference shown is the recorded one.")
    fallback = sorted({f"{v} ({t})" for t, d in draws.items() for v, why in d.missing.items()
                       if v not in CONTROL_LABELS or why != "no per-item records"})
    if fallback:
        out.append("Without per-item records on the same test items (" + ", ".join(fallback) + ") a comparison "
                   "falls back to Welch's t-interval over seeds, and its method says so.")
    out.append("Tatoeba, BUCC and CKA record no per-item outcomes: their rows use Welch's t-interval on the "
               "difference of per-seed means (exact t quantiles, Welch–Satterthwaite degrees of freedom rounded "
               "down); with one value per side there is no interval (\"not enough seeds\").")
    return out


def build_summary(col: Collection, title: str = "metaxlm comparison report", *, resamples: int = RESAMPLES,
                  seed: int = 0) -> Summary:
    variants = col.variants()
    # variants with a pretraining curve only (tokens-N results, no end point) still show in tables
    pretrained = [v for v in variants if v not in CONTROL_LABELS and v != "none"]
    tasks = col.transfer_tasks()
    metric_names = {}
    for t in tasks:
        for e in col.entries + col.curves:
            if e.name == t:
                metric_names[t] = V.task_metric_name(e.payload, "accuracy")
                break
    rows: list[Row] = []
    units: set[str] = set()
    draws = _task_draws(col, variants + [v for v in CONTROL_LABELS if v not in variants], tasks, resamples, seed)
    low = V.has_low_overlap([e.payload for e in col.entries if e.name in ("tatoeba", "bucc")])
    for m in V.metrics_for(tasks, col.names(), metric_names, low_overlap=low):
        if m.key == "tatoeba.acc":
            m = dataclasses.replace(m, label=_tatoeba_label(col, m.label))
        samples = {v: sample_for(col, v, m) for v in variants}
        if "majority" not in {e.variant for e in col.entries if e.name == _task_of("majority", m.name)} \
                and m.claim != "alignment" \
                and m.control_check:
            fb = _majority_fallback(col, m)
            if fb is not None:
                samples["majority"] = fb
        for s in samples.values():
            if s is not None and s.n >= 2:
                units.add(s.unit)
        kind = m.key.rsplit(".", 1)[-1]
        paired = P.row_draws(kind, draws[m.name]) if m.name in draws and kind in P.ROW_KINDS else None
        rows.append(Row(m, samples, V.row_verdict(samples, m.higher_is_better, m.control_check, paired=paired),
                        chance_for(col, m), paired=paired))
    all_variants = list(variants)
    if any("majority" in r.samples for r in rows) and "majority" not in all_variants:
        all_variants.append("majority")
    unit_notes = []
    if "pretraining seeds" in units:
        unit_notes.append("Cells and Welch intervals are over pretraining seeds (each seed's value is its recorded "
                          "mean over fine-tuning seeds).")
    if "fine-tuning seeds" in units:
        unit_notes.append("Where a regime has one pretraining seed, cells and Welch intervals are over its "
                          "fine-tuning seeds only, and paired bootstrap intervals over its fine-tuning seeds and test "
                          "items: they show fine-tuning and test-set noise, not pretraining noise.")
    per_lang = _per_language(col, list(variants))
    comparisons = _comparisons(col)
    shows = _budget_warnings(col) + _what_this_shows(rows) + _collapse_sentences(per_lang)
    presets = sorted({str(c["preset"]) for c in comparisons if c.get("preset")})
    if presets:
        shows = [x.replace("this run shows the pipeline", f"this run (preset {', '.join(presets)}) shows the pipeline")
                 for x in shows]
    return Summary(
        title=title,
        generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        roots=[str(r) for r in col.roots],
        variants=all_variants,
        pretrained=pretrained,
        rows=rows,
        claim_statements=_claim_statements(rows, pretrained),
        what_this_shows=shows,
        per_language=per_lang,
        provenance=_provenance(col),
        data_hashes=_data_hashes(col),
        problems=list(col.problems),
        notes=_notes(col),
        comparisons=comparisons,
        steps=[{"comparison": cmp, "step": k, "status": str(v.get("status", "")) if isinstance(v, dict) else "",
                "seconds": v.get("seconds") if isinstance(v, dict) else None,
                "skipped": bool(v.get("skipped")) if isinstance(v, dict) else False}
               for cmp, steps in col.steps.items() if isinstance(steps, dict) for k, v in steps.items()],
        units=unit_notes,
        has_curves=bool(col.curves),
        statistics=_statistics(rows, draws, resamples, seed),
    )
