"""``metaxlm eval tatoeba``: Tatoeba-style bitext retrieval for any encoder, every layer, both poolings.

Every layer × pooling is swept (cosine top-1 accuracy, mean of both directions) on dev and test and
stored; the headline layer and pooling are chosen on **dev** (mean over languages), fixed with
``layer``, or — when the data has no dev split (LASER's Tatoeba files are a test set only) — fixed
at :func:`no_dev_layer`, ``round(2L/3)`` of an ``L``-layer encoder: XTREME's convention for
Tatoeba and BUCC with mBERT / XLM-R base is layer 8 of 12 (``--specific_layer 7`` over the 12
transformer layers, embeddings excluded; here layer 0 is the embeddings, so it is layer 8). With a
fixed layer the first of ``poolings`` is the headline pooling. Never chosen on test. The headline
records how: ``layer_choice`` ``"dev"``, ``"user"`` (``--layer``) or ``"fixed: no dev split"``. At
the headline all conventions of :data:`metaxlm.eval.retrieval.TATOEBA_CONVENTIONS` are reported
on test.

Surface overlap (:mod:`metaxlm.eval.overlap`, computed from the test texts): ``bands`` gives the
cosine top-1 accuracy of the test queries in each overlap band (retrieving in the whole test set),
and ``subsets["low-overlap"]`` is the low band as a set of its own (retrieval among its pairs only)
with every field of the overall ``scores`` / ``mean``.

Result: ``RUN/results/tatoeba.json`` (docs/results.md, ``kind: "tatoeba"``) and
``RUN/plots/tatoeba-layers.png``.
"""

from __future__ import annotations

import dataclasses

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from metaxlm import rundir
from metaxlm.config import to_dict
from metaxlm.devices import check_device, device_meta, resolve_device
from metaxlm.errors import UserError
from metaxlm.eval import overlap as O
from metaxlm.eval import retrieval as R
from metaxlm.eval.bitext_formats import (ParallelSet, files_hash, is_tatoeba_dir, load_benchmark_parallel,
                                         load_pair, load_tatoeba_dir, load_tatoeba_hf)

DEV_PAIR = "dev-pair"  # sweep key of a dev pair shared by several languages


@dataclass(frozen=True, kw_only=True)
class EncodingOptions:
    """How sentences are encoded: the fields every retrieval config shares, checked once."""

    poolings: tuple[str, ...] = ("mean", "cls")
    layer: Optional[int] = None  # fix the headline layer instead of choosing it on dev (no dev: no_dev_layer)
    batch_size: int = 64
    max_length: int = 128
    exclude_special: bool = False
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N (metaxlm.devices)
    prefix: str = ""  # put before every sentence (e5-style "query: ")

    def __post_init__(self):
        from metaxlm.encode import adopt_model

        check_device(self.device)
        adopt_model(self)  # an encode() object as model: wrapped (config.yaml describes it), pooling "encoder"
        if self.layer is not None and self.layer < 0:
            raise UserError(f"--layer must be 0 (embeddings) or more, got {self.layer}")
        if self.batch_size < 1 or self.max_length < 2:
            raise UserError("batch_size must be at least 1 and max_length at least 2")


@dataclass(frozen=True)
class TatoebaConfig(EncodingOptions):
    model: str  # a model path or hub id; from Python also an encode() object (metaxlm.encode.Encoder)
    data: Optional[Path] = None  # benchmark or LASER Tatoeba directory (default: the default benchmark)
    src: Optional[Path] = None  # line-aligned pair instead of a directory: xx side ...
    tgt: Optional[Path] = None  # ... and English side
    dev_src: Optional[Path] = None  # a dev pair to choose the layer on
    dev_tgt: Optional[Path] = None
    languages: tuple[str, ...] = ()  # empty: every language found (with src/tgt: the pair's code)
    margin_k: int = 4
    max_pairs: Optional[int] = None  # at most this many pairs per language and split (evenly spaced)

    def __post_init__(self):
        super().__post_init__()
        if self.margin_k < 1:
            raise UserError(f"margin_k must be at least 1, got {self.margin_k}")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise UserError(f"max_pairs must be at least 2, got {self.max_pairs}")
        if (self.src is None) != (self.tgt is None):
            raise UserError("give both --src (xx sentences) and --tgt (English sentences), or neither")
        if (self.dev_src is None) != (self.dev_tgt is None):
            raise UserError("give both --dev-src and --dev-tgt, or neither")
        if self.src is not None and self.data is not None:
            raise UserError("give either a data directory or --src/--tgt files, not both")
        if self.src is not None and len(self.languages) > 1:
            raise UserError("--src/--tgt hold one language: give at most one --lang")


def default_out(command: str, label: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in label) or "model"
    return Path("runs") / f"{command}-{safe}-{stamp}"


def _load(config: TatoebaConfig) -> tuple[dict[str, dict[str, ParallelSet]], dict[str, ParallelSet], dict]:
    """(per-language sets by split, extra dev sets by sweep key, data description)."""
    from metaxlm.paths import default_benchmark_dir

    extra: dict[str, ParallelSet] = {}
    if config.src is not None:
        lang = config.languages[0] if config.languages else "xx"
        sets = {lang: {"test": load_pair(config.src, config.tgt, lang=lang, split="test")}}
        source, data_dir = "pair", str(Path(config.src).parent)
    elif str(config.data).startswith("hf:"):  # a hub dataset (metaxlm.eval.hub; default google/xtreme)
        sets = load_tatoeba_hf(str(config.data), config.languages or None)
        source, data_dir = "hf", str(config.data)
    else:
        d = Path(config.data) if config.data is not None else default_benchmark_dir()
        if not d.is_dir():
            hint = ("build it with 'metaxlm data build' or pass a data directory"
                    if config.data is None else "give a benchmark directory, a Tatoeba directory or --src/--tgt")
            raise UserError(f"{d} does not exist: {hint}")
        if (d / "parallel").is_dir():
            sets = load_benchmark_parallel(d, config.languages or None)
            source, data_dir = "benchmark/parallel", str(d / "parallel")
        elif is_tatoeba_dir(d):
            sets = load_tatoeba_dir(d, config.languages or None)
            source, data_dir = "tatoeba", str(d)
        else:
            raise UserError(f"{d} holds neither a benchmark (parallel/) nor Tatoeba files "
                            "(tatoeba.<iso3>-eng.<iso3>); give --src/--tgt for other line-aligned files")
    for lang, by_split in sets.items():
        if "test" not in by_split:
            raise UserError(f"{data_dir}: no test split for {lang}")
    if config.dev_src is not None:
        langs = list(sets)
        if len(langs) == 1:
            sets[langs[0]]["dev"] = load_pair(config.dev_src, config.dev_tgt, lang=langs[0], split="dev")
        else:
            extra[DEV_PAIR] = load_pair(config.dev_src, config.dev_tgt, lang=DEV_PAIR, split="dev")
    if config.max_pairs is not None:
        sets = {lang: {split: _cap(ps, config.max_pairs) for split, ps in by.items()} for lang, by in sets.items()}
        extra = {k: _cap(ps, config.max_pairs) for k, ps in extra.items()}
    files = [f for by in sets.values() for s in by.values() for f in s.files]
    files += [f for s in extra.values() for f in s.files]
    return sets, extra, {"source": source, "data_dir": data_dir, "data_hash": files_hash(files)}


def _cap(ps: ParallelSet, n: int) -> ParallelSet:
    """At most ``n`` pairs, evenly spaced through the file (files are ordered by document)."""
    if len(ps.xx) <= n:
        return ps
    idx = np.unique(np.linspace(0, len(ps.xx) - 1, n).round().astype(int))
    return dataclasses.replace(ps, xx=[ps.xx[i] for i in idx], en=[ps.en[i] for i in idx])


def _encode(ref, sentences: list[str], config, device, desc: str) -> dict[str, np.ndarray]:
    from metaxlm.encode import encode_layers

    return encode_layers(ref, sentences, config.poolings, batch_size=config.batch_size,
                         max_length=config.max_length, exclude_special=config.exclude_special,
                         device=device, desc=desc, prefix=config.prefix)


LAYER_CHOICES = ("dev", "user", "fixed: no dev split")  # how the headline layer was chosen
NO_DEV_RULE = "round(2L/3) (XTREME: layer 8 of 12 for base models)"


def no_dev_layer(n_layers: int) -> int:
    """The headline layer when there is no dev split to choose it on: ``round(2L/3)`` of an
    ``n_layers``-layer encoder (0 = embeddings), XTREME's middle-to-upper layer (8 of 12)."""
    return min(max(int(round(2 * n_layers / 3)), 0), n_layers)


def choose_headline(dev_curves: dict[str, list[list[float]]], poolings, layer: int | None,
                    n_layers: int | None = None) -> dict:
    """Best (pooling, layer) by the mean over dev sets; ``dev_curves[pooling]`` = per-set curves.

    ``layer`` given: that layer (``layer_choice`` ``"user"``). No dev curve at all: layer
    :func:`no_dev_layer` of ``n_layers`` (``"fixed: no dev split"``). Both take the first pooling."""
    if layer is not None:
        return {"layer": layer, "pooling": poolings[0], "selected_on": "fixed", "layer_choice": "user"}
    if not any(dev_curves.get(p) for p in poolings):
        if n_layers is None:
            raise ValueError("no dev curves and no n_layers: cannot fix the headline layer")
        return {"layer": no_dev_layer(n_layers), "pooling": poolings[0], "selected_on": "fixed",
                "layer_choice": "fixed: no dev split", "layer_rule": NO_DEV_RULE}
    best = None
    for p in poolings:
        mean = np.mean(np.array(dev_curves[p], dtype=np.float64), axis=0)
        li = int(np.argmax(mean))
        if best is None or mean[li] > best[0]:
            best = (float(mean[li]), li, p)
    return {"layer": best[1], "pooling": best[2], "selected_on": "dev", "layer_choice": "dev", "dev_score": best[0]}


def run_tatoeba(config: TatoebaConfig, out: str | Path | None = None) -> Path:
    """Evaluate, write the run directory, return its path."""
    from metaxlm.encode import as_model, check_layer, check_loadable, num_layers
    from metaxlm.paths import check_output

    t0 = time.time()
    if out is not None:
        out = check_output(out, "run directory")
    device = resolve_device(config.device)
    gpu = R.faiss_gpu(device)
    ref = as_model(config.model)  # a path (ModelRef) or an encode() object (Encoder)
    check_layer(ref, config.layer)
    sets, extra, data = _load(config)  # no dev split (e.g. LASER Tatoeba files): the layer is fixed below
    n_layers = num_layers(ref)
    check_loadable(ref)  # a broken tokenizer is refused before the run directory exists
    run = rundir.create(out or check_output(default_out("tatoeba", ref.label)), config, kind="eval", seed=None,
                        extra_meta={"command": "eval tatoeba", "model": ref.describe(), **device_meta(device)})
    try:
        sweep: dict = {p: {} for p in config.poolings}
        dev_curves: dict[str, list] = {p: [] for p in config.poolings}
        test_emb: dict[str, tuple[dict, dict]] = {}
        items = [(lang, split, s) for lang, by in sets.items() for split, s in sorted(by.items())]
        items += [(key, "dev", s) for key, s in extra.items()]
        for lang, split, s in items:
            ex = _encode(ref, s.xx, config, device, f"encode {lang} {split}")
            ee = _encode(ref, s.en, config, device, f"encode en ({lang} {split})")
            for p in config.poolings:
                curve = [R.compute_accuracy_cosine(ex[p][li], ee[p][li], gpu=gpu) for li in range(n_layers + 1)]
                sweep[p].setdefault(lang, {})[split] = curve
                if split == "dev":
                    dev_curves[p].append(curve)
            if split == "test":
                test_emb[lang] = (ex, ee)
        headline = choose_headline(dev_curves, config.poolings, config.layer, n_layers)
        hl, hp = headline["layer"], headline["pooling"]
        scores = {}
        for lang, (ex, ee) in test_emb.items():
            s = sets[lang]["test"]
            scores[lang] = R.compute_tatoeba(ex[hp][hl], ee[hp][hl], k=config.margin_k, x_texts=s.xx, y_texts=s.en,
                                             gpu=gpu)
        keys = list(next(iter(scores.values())))
        mean = {k: float(np.mean([scores[lang][k] for lang in scores])) for k in keys}
        by_overlap = overlap_results({lang: sets[lang]["test"] for lang in test_emb},
                                     {lang: (ex[hp][hl], ee[hp][hl]) for lang, (ex, ee) in test_emb.items()},
                                     k=config.margin_k, gpu=gpu)
        payload = {
            "kind": "tatoeba",
            "model": ref.describe(),
            "data": data,
            "config": {**to_dict(config), "num_layers": n_layers},
            "headline": headline,
            "languages": list(sets),
            "scores": scores,
            "mean": mean,
            **by_overlap,
            "sweep": sweep,
            "conventions": R.TATOEBA_CONVENTIONS,
            "search_backend": R.faiss_backend(gpu),
            "timing": {"seconds": round(time.time() - t0, 3)},
            "versions": rundir.library_versions(),
        }
        run.write_result("tatoeba", payload)
        plot_sweep(run.path / "plots" / "tatoeba-layers.png", sweep, headline,
                   ylabel="top-1 accuracy (cosine, mean of both directions)",
                   title=f"Tatoeba retrieval by layer — {ref.label}",
                   chance={lang: scores[lang]["chance"] for lang in scores})
        run.done(summary={"acc_cosine": mean["acc_cosine"], "headline": headline})
    except BaseException as e:
        run.failed(f"{type(e).__name__}: {e}")
        raise
    return run.path


BAND_METRICS = ("acc_cosine_xx2en", "acc_cosine_en2xx", "acc_cosine")


def _mean_over(scores: dict[str, dict], keys) -> dict:
    """Mean of each key over the languages that have a value for it (None when none has)."""
    out = {}
    for k in keys:
        vals = [s[k] for s in scores.values() if s.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def overlap_results(tests: dict[str, ParallelSet], emb: dict[str, tuple[np.ndarray, np.ndarray]], *,
                    k: int, gpu: int | None = None) -> dict:
    """``overlap``, ``bands`` and ``subsets`` of a Tatoeba result from the test texts and the headline
    embeddings ``emb[lang] = (xx, en)``.

    - ``overlap``: the definition, and per language the mean/median overlap and the share per band;
    - ``bands[band]``: ``scores[lang]`` = cosine top-1 accuracy (:data:`BAND_METRICS`) of the queries
      whose pair is in the band, retrieving among all test sentences, with ``n``; ``mean`` over the
      languages with pairs in the band (``n``: their sum);
    - ``subsets["low-overlap"]``: the low band as its own set (``scores[lang]`` with every field of
      :func:`metaxlm.eval.retrieval.compute_tatoeba`, ``mean``); a language with fewer than 2 low pairs
      is left out and listed in ``too_few``.
    """
    summary, per_band, low_scores, too_few = {}, {name: {} for name, _, _ in O.BANDS}, {}, []
    for lang, s in tests.items():
        ov = O.compute_overlaps(s.xx, s.en)
        bands = O.compute_bands(ov)
        summary[lang] = O.compute_overlap_summary(ov)
        x, y = (R.l2_normalize(a) for a in emb[lang])
        if gpu is None:
            _, x2y, _, y2x = R.knn_both(x, y, 1, 1, normalized=True)
        else:
            x2y, y2x = R.knn(x, y, 1, normalized=True, gpu=gpu)[1], R.knn(y, x, 1, normalized=True, gpu=gpu)[1]
        idx = np.arange(len(x))
        hx, he = (x2y[:, 0] == idx).astype(float), (y2x[:, 0] == idx).astype(float)
        means = O.compute_band_means({"acc_cosine_xx2en": hx, "acc_cosine_en2xx": he, "acc_cosine": (hx + he) / 2},
                                     bands)
        for name in per_band:
            per_band[name][lang] = means[name]
        low = np.flatnonzero(np.asarray(bands) == "low")
        if len(low) < 2:
            too_few.append(lang)
            continue
        low_scores[lang] = R.compute_tatoeba(x[low], y[low], k=k, x_texts=[s.xx[i] for i in low],
                                             y_texts=[s.en[i] for i in low], gpu=gpu)
    bands_out = {}
    for name, by_lang in per_band.items():
        have = {lang: v for lang, v in by_lang.items() if v["n"]}
        bands_out[name] = {"scores": by_lang,
                           "mean": {**_mean_over(have, BAND_METRICS), "n": sum(v["n"] for v in by_lang.values())}}
    low_keys = list(next(iter(low_scores.values()))) if low_scores else []
    return {
        "overlap": {"definition": O.DEFINITION, "bands": {name: [lo, hi if hi != float("inf") else None]
                                                          for name, lo, hi in O.BANDS},
                    "scores": summary},
        "bands": bands_out,
        "subsets": {O.LOW: {"languages": list(low_scores), "scores": low_scores,
                            "mean": _mean_over(low_scores, low_keys), "too_few": too_few}},
    }


def plot_sweep(path: Path, sweep: dict, headline: dict, *, ylabel: str, title: str,
               chance: dict | None = None) -> Path:
    """One panel per pooling: a line per language and split over layers; the headline layer marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pools = list(sweep)
    fig, axes = plt.subplots(1, len(pools), figsize=(5.5 * len(pools), 4), squeeze=False, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, p in zip(axes[0], pools):
        for i, (lang, by_split) in enumerate(sorted(sweep[p].items())):
            c = colors[i % len(colors)]
            for split, curve in sorted(by_split.items()):
                ax.plot(range(len(curve)), curve, color=c, marker="o", ms=3,
                        linestyle="--" if split == "dev" else "-", label=f"{lang} {split}")
        if chance:
            ax.axhline(float(np.mean(list(chance.values()))), color="grey", linestyle=":", label="chance (test)")
        if p == headline["pooling"]:
            ax.axvline(headline["layer"], color="black", alpha=0.3,
                       label=f"headline layer ({headline.get('layer_choice') or headline['selected_on']})")
        ax.set_title(f"pooling: {p}")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
