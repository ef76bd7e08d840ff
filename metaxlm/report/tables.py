"""The report's tables as plain strings (header + rows, :class:`~metaxlm.report.document.Table`), built from a
:class:`~metaxlm.report.summary.Summary` for the report document and the terminal headline."""

from __future__ import annotations

from metaxlm.report import verdict as V
from metaxlm.report.document import Table
from metaxlm.report.summary import Row, Summary

NA = "n/a"  # a control that does not apply to a metric (e.g. majority class for retrieval)


def cell(s: V.Sample | None, digits: int = 3) -> str:
    if s is None or s.mean is None:
        return V.NOT_RUN
    if s.n >= 2 and s.ci95 is not None:
        half = (s.ci95[1] - s.ci95[0]) / 2
        return f"{s.mean:.{digits}f} ± {half:.{digits}f} (n={s.n})"
    return f"{s.mean:.{digits}f} (n=1)"


def _applies(variant: str, row: Row) -> bool:
    if variant == "majority":
        return row.metric.claim != "alignment" and (row.metric.control_check or row.samples.get(variant) is not None)
    if variant == "lexical":
        return row.metric.claim != "alignment"
    return True


def _verdict_class(v: str) -> str:
    return "v-" + v.replace(" ", "-")


def _control_text(row: Row, variants: list[str]) -> str:
    if not row.metric.control_check:
        return NA
    if row.samples.get("none") is None:
        return "none control not run"
    parts = []
    for v in variants:
        if v in row.verdict.controls:
            status, d = row.verdict.controls[v]
            word = {V.BEATS_CONTROL: "beats", V.BELOW_CONTROL: "does not beat"}.get(status)
            parts.append(f"{v} {word} ({V.fmt_delta(d, 3)})" if word else f"{v}: {status}")
    return "; ".join(parts) or V.NOT_RUN


def methods_note(used: list[tuple[Row, V.Delta]]) -> str:
    """"Intervals — GROUP rows: METHOD; …" for the (row, delta) pairs of one table (one method: just it)."""
    by: dict[str, list[str]] = {}
    for row, d in used:
        if d.delta is None or not d.method:
            continue
        groups = by.setdefault(d.method, [])
        g = row.metric.group or row.metric.label
        if g not in groups:
            groups.append(g)
    if not by:
        return ""
    if len(by) == 1:
        return f"Intervals: {next(iter(by))}."
    return "Intervals — " + "; ".join(f"{', '.join(groups)}: {m}" for m, groups in by.items()) + "."


def headline(s: Summary) -> Table:
    header = ["Claim", "Metric", "single", "meta", "meta − single (95% CI)", "Verdict", "vs `none` control"]
    rows, classes, used = [], [], []
    for r in s.rows:
        rows.append([V.CLAIMS[r.metric.claim], r.metric.label, cell(r.samples.get("single")),
                     cell(r.samples.get("meta")), V.fmt_delta(r.verdict.comparison), r.verdict.verdict,
                     _control_text(r, ["single", "meta"])])
        classes.append(["", "", "num", "num", "num", _verdict_class(r.verdict.verdict), "small"])
        used += [(r, r.verdict.comparison)] + [(r, d) for _, d in r.verdict.controls.values()]
    return Table(header, rows, classes, note=methods_note(used) + " Cells: mean ± half-width of the 95% t-interval "
                 "over seeds (n = seeds).")


def controls(s: Summary) -> Table:
    pretrained = [v for v in s.pretrained]
    ctrl = [v for v in ("none", "majority", "lexical") if v in s.variants]
    header = ["Metric"] + pretrained + [f"{v} (control)" for v in ctrl] + ["chance"]
    rows, classes = [], []
    for r in s.rows:
        line = [r.metric.label]
        cls = [""]
        for v in pretrained:
            line.append(cell(r.samples.get(v)))
            st = r.verdict.controls.get(v, ("",))[0]
            cls.append("num " + ("beats" if st == V.BEATS_CONTROL else "below" if st == V.BELOW_CONTROL else ""))
        for v in ctrl:
            line.append(cell(r.samples.get(v)) if _applies(v, r) else NA)
            cls.append("num ctrl")
        if r.chance is not None:
            line.append(f"{r.chance:.3f}")
        elif r.metric.key == "align.mean_cka":
            line.append("see none")
        else:
            line.append(NA)
        cls.append("num ctrl")
        rows.append(line)
        classes.append(cls)
    used = [(r, d) for r in s.rows for _, d in r.verdict.controls.values()]
    return Table(header, rows, classes,
                 note="Green: beats the `none` control with confidence (the 95% interval of model − none lies above "
                      "zero); red: does not. Chance: 1/#labels (classification), 1/n (Tatoeba); for CKA the "
                      "reference is the random-init `none` encoder. " + methods_note(used))


def control_deltas(s: Summary) -> Table | None:
    """Every pretrained model minus every control (``none``, majority, lexical) that applies to a row, with
    the 95% interval and verdict (paired bootstrap where per-item outcomes are recorded). None when no
    control was run."""
    ctrl = [v for v in ("none", "majority", "lexical") if v in s.variants]
    if not ctrl:
        return None
    header = ["Metric", "Model"] + [f"− {c}" for c in ctrl]
    rows, classes, used = [], [], []
    for r in s.rows:
        if not r.metric.control_check:
            continue
        for v in s.pretrained:
            if r.samples.get(v) is None:
                continue
            line, cls = [r.metric.label, v], ["", ""]
            for c in ctrl:
                if not _applies(c, r) or r.samples.get(c) is None:
                    line.append(NA if not _applies(c, r) else V.NOT_RUN)
                    cls.append("num")
                    continue
                d = r.delta(c, v)
                used.append((r, d))
                word = {V.BETTER: "beats", V.WORSE: "below"}.get(d.verdict, d.verdict)
                line.append(f"{V.fmt_delta(d)}: {word}")
                cls.append("num wrap " + ("beats" if d.verdict == V.BETTER else
                                          "below" if d.verdict == V.WORSE else ""))
            rows.append(line)
            classes.append(cls)
    if not rows:
        return None
    return Table(header, rows, classes,
                 note="model − control; \"beats\" / \"below\": the 95% interval lies above / below zero. "
                      + methods_note(used))


def per_language(s: Summary, task: str) -> Table:
    d = s.per_language[task]
    variants = [v for v in s.variants if v in d["cells"]]
    header = ["Language"] + [f"{v}" for v in variants]
    rows, classes = [], []
    for lg in d["langs"]:
        line, cls = [lg], [""]
        for v in variants:
            score, gap = d["cells"][v].get(lg, (None, None))
            text = cell(score)
            if lg != "en" and gap is not None:
                text += f"; gap {cell(gap)}"
            c, n = (d.get("collapsed") or {}).get(v, {}).get(lg, (0, 0))
            if c and v != "majority":  # the majority control is collapsed by definition
                text += f"; collapsed {c}/{n}"
            line.append(text)
            cls.append("num wrap")
        rows.append(line)
        classes.append(cls)
    return Table(header, rows, classes,
                 note=f"Each cell: {d['metric']} on that language; gap = paired gap, the English score minus the "
                      "target-language score on the same (translated) test items, as recorded per fine-tuning seed "
                      "(lower is better). ± is the half-width of the 95% t-interval over seeds (exact t quantile). "
                      "\"collapsed k/n\": k of n fine-tuning "
                      "runs "
                      "scored at majority-class level on that language.")


def _fmt_secs(x) -> str:
    if not isinstance(x, (int, float)):
        return ""
    if x >= 3600:
        return f"{x / 3600:.1f} h"
    if x >= 60:
        return f"{x / 60:.1f} min"
    return f"{x:.1f} s"


def provenance(s: Summary, training: bool = True) -> Table:
    """Training runs (``training=True``) or every other run (evaluations, probes, comparisons)."""
    sel = [p for p in s.provenance if bool(p["kind"] == "train" or p["regime"]) == training]
    if training:
        header = ["Run", "Regime", "Seed", "Status", "git sha", "Wall time", "Created"]
        rows = [[p["run"], str(p["regime"]), str(p["seed"]), p["status"], p["git_sha"], _fmt_secs(p["wall_s"]),
                 p["created"]] for p in sel]
    else:
        header = ["Run", "Kind", "Model", "Results", "Status", "git sha", "Wall time", "Created"]
        rows = [[p["run"], p["kind"], p["model"], p["results"], p["status"], p["git_sha"], _fmt_secs(p["wall_s"]),
                 p["created"]] for p in sel]
    return Table(header, rows, [["small"] * len(header) for _ in rows])


def environment(s: Summary) -> Table:
    hw = sorted({p["hardware"] for p in s.provenance if p["hardware"]})
    vs = sorted({p["versions"] for p in s.provenance if p["versions"]})
    sha = sorted({p["git_sha"] for p in s.provenance if p["git_sha"]})
    rows = [["hardware", h] for h in hw] + [["library versions", v] for v in vs]
    if sha:
        rows.append(["git sha" if len(sha) == 1 else f"git sha ({len(sha)} different code versions!)",
                     ", ".join(sha)])
    rows += [[f"data hash ({k})", v] for k, v in s.data_hashes]
    return Table(["What", "Value"], rows, [["", "small"] for _ in rows])


def steps(s: Summary) -> Table:
    """The comparison's steps with their wall times (from steps.json)."""
    rows = [[x["step"], x["status"] + (" (skipped: already done)" if x["skipped"] else ""), _fmt_secs(x["seconds"])]
            for x in s.steps]
    total = sum(x["seconds"] for x in s.steps if isinstance(x["seconds"], (int, float)))
    if rows:
        rows.append(["total", "", _fmt_secs(total)])
    return Table(["Step", "Status", "Wall time"], rows, [["small", "small", "num"] for _ in rows])


CONTRASTS = (("meta", "single"), ("meta", "en-only"), ("single", "en-only"))


def contrasts(s: Summary) -> Table | None:
    """Pairwise regime differences (b − a with the Welch interval and verdict): what the English phase and
    the multilingual phase each contribute. None when fewer than two of the regimes have results."""
    pairs = [(b, a) for b, a in CONTRASTS if b in s.variants and a in s.variants]
    if len(pairs) < 2:
        return None
    header = ["Metric"] + [f"{b} − {a}" for b, a in pairs]
    rows, classes, used = [], [], []
    for r in s.rows:
        line, cls = [r.metric.label], [""]
        for b, a in pairs:
            d = r.delta(a, b)
            used.append((r, d))
            line.append(V.NOT_RUN if d.delta is None else f"{V.fmt_delta(d)}: {d.verdict}")
            cls.append("num wrap " + _verdict_class(d.verdict))
        rows.append(line)
        classes.append(cls)
    return Table(header, rows, classes,
                 note="meta − en-only: both start on English; meta spends the rest of the budget on multilingual "
                      "data, en-only on more English — the contribution of the multilingual phase. "
                      "single − en-only: "
                      "multilingual vs English data for the whole budget. " + methods_note(used))


def per_seed(s: Summary) -> Table:
    """The per-seed numbers every interval above is computed from (for auditing a verdict)."""
    rows = []
    for r in s.rows:
        for v, smp in r.samples.items():
            if smp is None:
                continue
            seeds = ", ".join("?" if x is None else str(x) for x in smp.seeds) if smp.seeds else ""
            rows.append([r.metric.label, v, ", ".join(f"{x:.4f}" for x in smp.values), smp.unit, seeds])
    return Table(["Metric", "Model", "Values", "Over", "Pretraining seed(s)"], rows,
                 [["small"] * 5 for _ in rows])


def comparison_line(c: dict) -> str:
    """One sentence describing a comparison directory (preset, seeds, status, wall time)."""
    parts = [f"Comparison `{c['path']}`"]
    if c.get("preset"):
        parts.append(f"preset `{c['preset']}`")
    if c.get("regimes"):
        parts.append("regimes " + ", ".join(map(str, c["regimes"])))
    if c.get("seeds") is not None:
        seeds = c["seeds"] if isinstance(c["seeds"], list) else [c["seeds"]]
        parts.append("pretraining seeds " + ", ".join(map(str, seeds)))
    if c.get("benchmark"):
        parts.append(f"benchmark `{c['benchmark']}`")
    if c.get("status"):
        parts.append(f"status {c['status']}")
    if isinstance(c.get("wall_seconds"), (int, float)):
        parts.append(f"wall time {_fmt_secs(c['wall_seconds'])}")
    return "; ".join(parts) + "."
