"""Report figures: matplotlib (Agg) → PNG bytes. Each function takes a Collection and returns
``None`` when its data was not recorded, so a partial result tree simply has fewer figures.

Plotting only draws recorded numbers; lines that average over languages or seeds say so in their
labels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from metaxlm.report import verdict as V
from metaxlm.report.collect import Collection, Run

COLORS = {"single": "#1f77b4", "meta": "#d62728", "en-only": "#2ca02c", "none": "#7f7f7f",
          "majority": "#000000", "lexical": "#8c564b"}
_EXTRA = ["#9467bd", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e"]
PHASE_STYLES = ["-", "--", ":", "-."]


@dataclass
class Figure:
    name: str  # file stem
    title: str
    caption: str
    png: bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3,
                         "figure.dpi": 100, "savefig.dpi": 100})
    return plt


def color(variant: str, variants: list[str] | None = None) -> str:
    base = variant.split("@")[0]
    if base in COLORS and "@" not in variant:
        return COLORS[base]
    others = [v for v in (variants or []) if v not in COLORS]
    i = others.index(variant) if variant in others else sum(map(ord, variant))
    return _EXTRA[i % len(_EXTRA)]


def _png(fig, tight: bool = True) -> bytes:
    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.1)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _int_ticks(ax, axis: str = "x") -> None:
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def _nan(xs) -> list[float]:
    """Recorded values with None (undefined, e.g. CKA of a constant layer) as NaN, so lines break there."""
    return [float("nan") if x is None else float(x) for x in xs]


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _regime(run: Run) -> str:
    return str(run.meta.get("regime") or run.results.get("pretrain", {}).get("regime") or run.name)


def _train_runs(col: Collection) -> list[Run]:
    runs = [r for r in col.train_runs() if any(m.get("type") in ("train", "val") for m in r.metrics)]
    order = {v: i for i, v in enumerate(col.variants())}
    return sorted(runs, key=lambda r: (order.get(_regime(r), 99), str(r.meta.get("seed")), r.name))


# -- training curves ----------------------------------------------------------------------------
def training_loss(col: Collection) -> Figure | None:
    runs = [r for r in _train_runs(col) if any(m.get("type") == "train" for m in r.metrics)]
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    phases_seen: list[str] = []
    labelled: set[str] = set()
    for r in runs:
        regime = _regime(r)
        pts = [m for m in r.metrics if m.get("type") == "train" and m.get("loss") is not None]
        segs: dict[str, list] = {}
        for m in pts:
            segs.setdefault(str(m.get("phase") or "train"), []).append(m)
        for ph, ms in segs.items():
            if ph not in phases_seen:
                phases_seen.append(ph)
            x = [m.get("tokens_seen", m.get("step")) for m in ms]
            y = [m["loss"] for m in ms]
            lab = f"{regime} · {ph}"
            ax.plot(x, y, PHASE_STYLES[phases_seen.index(ph) % 4], color=color(regime, col.variants()),
                    alpha=0.8, lw=1.2, label=None if lab in labelled else lab)
            labelled.add(lab)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("training MLM loss")
    ax.set_title("Training loss by phase (one line per pretraining run; line style = phase)")
    ax.legend(fontsize=8, ncol=2)
    return Figure("training-loss", "Training loss by phase",
                  "MLM loss over tokens seen, from each training run's metrics.jsonl; colour = regime, "
                  "line style = phase.", _png(fig))


def validation_loss(col: Collection) -> Figure | None:
    runs = [r for r in _train_runs(col) if sum(m.get("type") == "val" for m in r.metrics) >= 2]
    if not runs:
        return None
    by_regime: dict[str, Run] = {}
    for r in runs:  # first seed of each regime
        by_regime.setdefault(_regime(r), r)
    plt = _plt()
    n = len(by_regime)
    fig, axes = plt.subplots(1, n, figsize=(min(13, 3.4 * n + 1), 3.4), sharey=True, squeeze=False)
    for ax, (regime, r) in zip(axes[0], by_regime.items()):
        vals = [m for m in r.metrics if m.get("type") == "val" and isinstance(m.get("val_loss"), dict)]
        langs = sorted({lg for m in vals for lg in m["val_loss"]}, key=lambda x: (x != "en", x))
        for lg in langs:
            pts = [(m.get("tokens_seen", m.get("step")), m["val_loss"].get(lg)) for m in vals
                   if m["val_loss"].get(lg) is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", lw=1.5 if lg == "en" else 1,
                    label=lg, color="black" if lg == "en" else None)
        ax.set_title(f"{regime} (seed {r.meta.get('seed', '?')})")
        ax.set_xlabel("tokens seen")
    axes[0][0].set_ylabel("validation loss")
    axes[0][-1].legend(fontsize=8, title="language")
    return Figure("validation-loss", "Validation loss per language",
                  "Per-language validation MLM loss over tokens seen (first seed of each regime).", _png(fig))


# -- transfer -------------------------------------------------------------------------------------
def gap_vs_english(col: Collection) -> Figure | None:
    tasks = col.transfer_tasks()
    if not tasks:
        return None
    task = tasks[0]
    en_m = V.Metric("x", "english", "", task, read=lambda p, c: V._summary((p.get("gaps") or {}).get("en_score")))
    gap_m = V.Metric("y", "transfer", "", task,
                     read=lambda p, c: V._summary((p.get("gaps") or {}).get("transfer_gap_mean")))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    any_pt = False
    variants = col.variants()
    drawn: list[str] = []
    for v in variants:
        es = col.find(v, task)
        xs, ys = [], []
        for e in es:
            x, _ = en_m.value(e.payload)
            y, _ = gap_m.value(e.payload)
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if not xs:
            continue
        any_pt = True
        k = len(drawn)
        drawn.append(v)
        if v in ("majority", "lexical"):
            ax.scatter(xs, ys, facecolors="none", edgecolors=color(v, variants), marker="s", s=150, linewidths=1.5,
                       label=f"{v} (control)", zorder=2)
            continue
        size = max(25, 140 - 30 * k)  # later variants smaller, so identical points stay visible
        marker = "s" if v == "none" else "o"
        ax.scatter(xs, ys, color=color(v, variants), marker=marker, s=size, alpha=0.8, zorder=3 + k,
                   label=f"{v} ({len(xs)} pretraining seed{'s' if len(xs) != 1 else ''})")
        if len(set(zip(xs, ys))) > 1:  # the mean, when the seeds differ
            ax.scatter([_mean(xs)], [_mean(ys)], color=color(v, variants), marker="X", s=90, edgecolor="white",
                       zorder=20)
    if not any_pt:
        plt.close(fig)
        return None
    first = next((e.payload for e in col.entries if e.name == task), None)
    ax.set_xlabel(f"English {V.task_metric_name(first, 'score')} (en_score)")
    ax.set_ylabel("transfer gap (en − mean of targets)")
    ax.set_title(f"{task}: transfer gap vs English score (X = mean over seeds; lower gap is better)")
    ax.legend(fontsize=8)
    return Figure("gap-vs-english", "Transfer gap vs English score",
                  "Each point is one pretraining seed (the `none` control: filled squares; majority / lexical: "
                  "hollow squares; identical points are drawn as concentric markers). Up = larger loss when moving "
                  "from English to the target languages.", _png(fig))


# -- retrieval ------------------------------------------------------------------------------------
def _sweep_lines(col: Collection, name: str, split_pref: tuple[str, ...]) -> tuple[dict[str, list[float]], str]:
    """(variant → per-layer value averaged over languages and seeds of the recorded sweep, split(s) used)."""
    out = {}
    used: set = set()
    for v in col.variants():
        per_seed = []
        for e in col.find(v, name):
            sweep = e.payload.get("sweep") or {}
            pooling = (e.payload.get("headline") or {}).get("pooling") or next(iter(sweep), None)
            by_lang = sweep.get(pooling) or {}
            # one split for every language (test when any language has it; a shared "dev-pair" curve has
            # only dev and is left out then)
            split = next((sp for sp in split_pref if any(isinstance(x, dict) and isinstance(x.get(sp), list)
                                                         for x in by_lang.values())), None)
            rows = [x[split] for x in by_lang.values() if isinstance(x, dict) and isinstance(x.get(split), list)
                    and x[split]]
            if rows:
                L = min(len(r) for r in rows)
                per_seed.append([_mean([r[i] for r in rows]) for i in range(L)])
                used.add(split)
        if per_seed:
            L = min(len(r) for r in per_seed)
            out[v] = [_mean([r[i] for r in per_seed]) for i in range(L)]
    return out, "/".join(sorted(used))


def retrieval_by_layer(col: Collection) -> Figure | None:
    tat, tsplit = _sweep_lines(col, "tatoeba", ("test", "dev"))
    bucc, bsplit = _sweep_lines(col, "bucc", ("test", "dev"))
    panels = [(k, d) for k, d in ((f"Tatoeba accuracy ({tsplit})", tat), (f"BUCC F1 ({bsplit})", bucc)) if d]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels) + 0.5, 3.6), squeeze=False)
    variants = col.variants()
    for ax, (title, d) in zip(axes[0], panels):
        for v, ys in d.items():
            ax.plot(range(len(ys)), _nan(ys), marker="o", ms=3, color=color(v, variants), label=v)
        if title.startswith("Tatoeba"):
            ch = next((e.payload.get("mean", {}).get("chance") for e in col.entries if e.name == "tatoeba"
                       and (e.payload.get("mean") or {}).get("chance") is not None), None)
            if ch is not None:
                ax.axhline(ch, color="black", ls=":", lw=1, label=f"chance ({ch:.3g})")
        ax.set_title(f"{title} by layer, mean over languages")
        ax.set_xlabel("layer (0 = embeddings)")
        _int_ticks(ax)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return Figure("retrieval-by-layer", "Tatoeba / BUCC by layer",
                  "Layer sweeps as recorded (Tatoeba: test split when recorded, else dev; headline pooling), "
                  "averaged over languages and seeds.", _png(fig))


def probe_by_layer(col: Collection) -> Figure | None:
    """The frozen-encoder probe's accuracy per layer (``probe.curve`` of ``TASK-probe`` results): English
    dev (what chose the layer) and the mean over target languages on test, averaged over seeds."""
    from metaxlm.report.collect import PROBE_SUFFIX, task_title

    task = next((t for t in col.transfer_tasks() if t.endswith(PROBE_SUFFIX)), None)
    if task is None:
        return None
    lines: dict[str, tuple[list, list, list]] = {}
    for v in col.variants():
        curves = [(e.payload.get("probe") or {}).get("curve") for e in col.find(v, task)]
        curves = [c for c in curves if isinstance(c, dict) and c.get("layers") and c.get("dev")]
        if not curves:
            continue
        layers = curves[0]["layers"]
        dev = [_mean([c["dev"][i] for c in curves]) for i in range(len(layers))]
        tgt = [_mean([_mean([ys[i] for lg, ys in (c.get("test") or {}).items() if lg != "en"]) for c in curves])
               for i in range(len(layers))]
        lines[v] = (layers, dev, tgt)
    if not lines:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.6), squeeze=False)
    variants = col.variants()
    for ax, k, title in ((axes[0][0], 1, "English dev (chooses the layer)"),
                         (axes[0][1], 2, "target languages, test (mean)")):
        for v, line in lines.items():
            ax.plot(line[0], _nan(line[k]), marker="o", ms=3, color=color(v, variants), label=v)
        ax.set_title(f"{task_title(task)}: {title}")
        ax.set_xlabel("layer (0 = embeddings)")
        _int_ticks(ax)
    axes[0][1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return Figure("probe-by-layer", "Frozen-encoder probe by layer",
                  "Accuracy of the linear probe trained on English at each layer (its chosen pooling and C), as "
                  "recorded, averaged over seeds; the headline uses the layer chosen on English dev.", _png(fig))


# -- alignment ------------------------------------------------------------------------------------
def cka_by_layer(col: Collection) -> Figure | None:
    variants = [v for v in col.variants() if col.find(v, "align")]
    if not variants:
        return None
    plt = _plt()
    n = len(variants)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 0.6, 3.0 * rows + 0.3), sharey=True,
                             squeeze=False)
    for i, v in enumerate(variants):
        ax = axes[i // cols][i % cols]
        es = col.find(v, "align")
        langs = sorted({lg for e in es for lg in (e.payload.get("cka") or {})})
        layers = es[0].payload.get("layers") or []
        for lg in langs:
            seqs = [((e.payload.get("cka") or {}).get(lg) or {}).get("values") for e in es]
            seqs = [s for s in seqs if s]
            if not seqs:
                continue
            L = min(len(s) for s in seqs)
            ax.plot(layers[:L] if len(layers) >= L else range(L), _nan([_mean([s[j] for s in seqs]) for j in range(L)]),
                    lw=1, alpha=0.8, label=lg)
        means = [e.payload.get("mean_cka") for e in es if e.payload.get("mean_cka")]
        if means:
            L = min(len(m) for m in means)
            xs = layers[:L] if len(layers) >= L else range(L)
            ax.plot(xs, _nan([_mean([m[j] for m in means]) for j in range(L)]), color="black", lw=2.2, label="mean")
        ax.set_title(f"{v} ({len(es)} seed{'s' if len(es) != 1 else ''})", color=color(v, col.variants()))
        ax.set_xlabel("layer")
        _int_ticks(ax)
        if i % cols == 0:
            ax.set_ylabel("CKA en↔xx")
        ax.set_ylim(0, 1.02)
        if i == 0 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    return Figure("cka-by-layer", "CKA en↔xx by layer",
                  "Linear CKA between English and each language's representations of the same sentences, per "
                  "layer (mean over seeds); black = mean over languages. The `none` panel is the random-encoder "
                  "reference.", _png(fig))


def cka_heatmaps(col: Collection) -> list[Figure]:
    """One figure with a heatmap per model pair (up to three per row)."""
    import numpy as np

    panels = []
    for e in col.pairs:
        matrix = e.payload.get("matrix")
        models = e.payload.get("models") or [{}, {}]
        if not matrix or not isinstance(matrix, list):
            continue
        try:
            m = np.array([_nan(row) for row in matrix], dtype=float)
        except (TypeError, ValueError):
            continue
        if m.ndim != 2 or m.size == 0:
            continue
        a = (models[0] or {}).get("label", "A")
        b = (models[1] or {}).get("label", "B") if len(models) > 1 else "B"
        layers = e.payload.get("layers")
        if isinstance(layers, list) and len(layers) == 2 and all(isinstance(x, list) for x in layers):
            la, lb = layers
        elif isinstance(layers, list) and all(isinstance(x, int) for x in layers):
            la = lb = layers
        else:
            la, lb = list(range(m.shape[0])), list(range(m.shape[1]))
        panels.append((a, b, m, la, lb))
    if not panels:
        return []
    plt = _plt()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols + 0.8, 3.9 * rows), squeeze=False)
    im = None
    for k, (a, b, m, la, lb) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        im = ax.imshow(np.ma.masked_invalid(m), origin="lower", vmin=0, vmax=1, cmap="viridis")
        if len(la) == m.shape[0] and len(lb) == m.shape[1]:
            ax.set_yticks(range(m.shape[0]), [str(x) for x in la])
            ax.set_xticks(range(m.shape[1]), [str(x) for x in lb])
        ax.set_ylabel(f"{a} layer")
        ax.set_xlabel(f"{b} layer")
        ax.grid(False)
        if m.shape[0] <= 13 and m.shape[1] <= 13:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    x = m[i, j]
                    ax.text(j, i, "—" if np.isnan(x) else f"{x:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if np.isnan(x) or x < 0.6 else "black")
        ax.set_title(f"{a} × {b}")
    for j in range(len(panels), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, label="linear CKA")
    names = ", ".join(f"{a} × {b}" for a, b, *_ in panels)
    return [Figure("cka-pairs", "Model × model CKA",
                   f"Linear CKA between every layer of one model and every layer of the other on the same English "
                   f"sentences ({names}).", _png(fig, tight=False))]


# -- curves over pretraining ------------------------------------------------------------------
def _final_tokens(e) -> int | None:
    run = e.train_run
    if run is None:
        return None
    pre = run.results.get("pretrain") or {}
    for c in pre.get("checkpoints") or []:
        if c.get("name") == "final" and c.get("tokens_seen") is not None:
            return int(c["tokens_seen"])
    ts = pre.get("tokens_seen")
    if isinstance(ts, dict) and ts:
        return int(sum(v for v in ts.values() if isinstance(v, (int, float))))
    return None


def curves(col: Collection) -> Figure | None:
    if not col.curves:
        return None
    tasks = col.transfer_tasks()
    t = tasks[0] if tasks else None
    specs = []
    if t:
        specs.append((f"{t} mean target score", t, lambda p, c: V._summary((p.get("gaps") or {}).get("target_mean"))))
        specs.append((f"{t} English score", t, lambda p, c: V._summary((p.get("gaps") or {}).get("en_score"))))
    specs.append(("Tatoeba accuracy", "tatoeba", lambda p, c: V._summary((p.get("mean") or {}).get("acc_cosine"))))
    specs.append(("mean CKA en↔xx (last layer)", "align",
                  lambda p, c: V._summary((p.get("mean_cka") or [None])[-1])))
    specs = [s for s in specs if any(e.name == s[1] for e in col.curves)]
    if not specs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(specs), figsize=(3.6 * len(specs) + 0.6, 3.7), squeeze=False)
    variants = col.variants()
    for ax, (title, name, read) in zip(axes[0], specs):
        m = V.Metric("c", "", title, name, read=read)
        for v in variants:
            pts: dict[int, list[float]] = {}
            for e in col.curves + col.entries:
                if e.variant != v or e.name != name:
                    continue
                tok = e.tokens if e.tokens is not None else _final_tokens(e)
                if tok is None:
                    continue
                x, _ = m.value(e.payload)
                if x is not None:
                    pts.setdefault(tok, []).append(x)
            if v == "none" and pts:
                ax.axhline(_mean([y for ys in pts.values() for y in ys]), color=color("none"), ls="--", lw=1,
                           label="none (no pretraining)")
                continue
            if len(pts) < 2:
                continue
            xs = sorted(pts)
            ax.plot(xs, [_mean(pts[x]) for x in xs], marker="o", ms=3, color=color(v, variants), label=v)
        ax.set_title(title)
        ax.set_xlabel("tokens seen")
    handles: dict = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return Figure("curves", "Metrics over pretraining",
                  "Each metric at intermediate checkpoints (tokens-N) and at the end of pretraining, per regime "
                  "(mean over the seeds evaluated at that point); dashed grey: the `none` control.",
                  _png(fig, tight=not handles))


def all_figures(col: Collection) -> list[Figure]:
    figs = []
    for f in (training_loss, validation_loss, gap_vs_english, probe_by_layer, retrieval_by_layer, cka_by_layer):
        fig = f(col)
        if fig is not None:
            figs.append(fig)
    figs.extend(cka_heatmaps(col))
    c = curves(col)
    if c is not None:
        figs.append(c)
    return figs
