"""Plots of the alignment probe, drawn from the result payloads alone (PNG and SVG, Agg backend)."""

from __future__ import annotations

from pathlib import Path


def _num(values) -> list[float]:
    """None (an undefined value) → NaN, which matplotlib leaves as a gap."""
    return [float("nan") if v is None else v for v in values]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def plot_align(payload: dict, out_dir: Path) -> list[Path]:
    """``align.{png,svg}``: CKA(en, xx) and top-1 retrieval accuracy per layer, 95% bands."""
    plt = _pyplot()
    layers = payload["layers"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, key, title in ((axes[0], "cka", "linear CKA(en, xx)" + (" (debiased)" if payload["config"]["debiased"]
                                                                     else "")),
                           (axes[1], "retrieval", "top-1 retrieval accuracy xx→en (cosine)")):
        for lang in payload["languages"]:
            vals, ci = payload[key][lang]["values"], payload[key][lang]["ci95"]
            line, = ax.plot(layers, _num(vals), marker="o", label=lang)
            ax.fill_between(layers, _num([c and c[0] for c in ci]), _num([c and c[1] for c in ci]),
                            color=line.get_color(), alpha=0.2)
        if key == "cka":
            ax.plot(layers, _num(payload["mean_cka"]), color="black", linestyle="--", label="mean")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_title(title)
        ax.set_xticks(layers)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{payload['model']['label']}: {payload['config']['pooling']} pooling, "
                 f"bands = bootstrap 95% ({payload['config']['bootstrap']} resamples)")
    paths = _save(fig, out_dir, "align")
    plt.close(fig)
    return paths


def plot_align_pair(payload: dict, out_dir: Path) -> list[Path]:
    """``align-pair-matrix``: layer × layer CKA heatmap; ``align-pair-curves``: both models' CKA(en, xx)."""
    plt = _pyplot()
    (la, lb), labels = payload["layers"], list(payload["per_model"])
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(lb), 1.2 + 0.45 * len(la)), constrained_layout=True)
    im = ax.imshow([_num(row) for row in payload["matrix"]], vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(lb)), [str(v) for v in lb])
    ax.set_yticks(range(len(la)), [str(v) for v in la])
    ax.set_xlabel(f"{labels[1]} layer")
    ax.set_ylabel(f"{labels[0]} layer")
    ax.set_title("linear CKA on English sentences")
    fig.colorbar(im, ax=ax)
    paths = _save(fig, out_dir, "align-pair-matrix")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m, (label, layers, style) in enumerate(zip(labels, (la, lb), ("-", "--"))):
        for k, lang in enumerate(payload["languages"]):
            ax.plot(layers, _num(payload["per_model"][label][lang]), linestyle=style, marker="o" if m == 0 else "s",
                    color=colors[k % len(colors)], label=f"{label} {lang}")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("linear CKA(en, xx)" + (" (debiased)" if payload["config"]["debiased"] else ""))
    ax.set_title(f"{labels[0]} (solid) vs {labels[1]} (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    paths += _save(fig, out_dir, "align-pair-curves")
    plt.close(fig)
    return paths
