"""``metaxlm eval bucc``: BUCC-style parallel sentence mining for any encoder.

For each language, sentences of both pools are embedded (every layer, each pooling), candidates are
mined with margin scoring (Artetxe & Schwenk 2019; :mod:`metaxlm.eval.retrieval`), and:

- the headline layer/pooling is the one with the best mean **dev** F1 (or fixed with ``layer``;
  ``headline.layer_choice`` is ``"dev"`` or ``"user"``, as for Tatoeba);
- the threshold is the one maximising F1 on the **dev** gold; it is applied to **test**, giving the
  reported precision, recall and F1;
- ``average_precision`` is threshold-free (test ranking, recall over all test gold pairs);
- ``oracle_f1`` / ``oracle_threshold`` tune the threshold on test itself — an upper bound, labelled
  as such, never the headline.

With ``dedup`` (default) identical sentences are embedded and mined once, and a mined pair stands
for every id pair holding those two texts.

Surface overlap (:mod:`metaxlm.eval.overlap`, from the texts of each gold pair): ``bands[band]``
gives test precision, recall and F1 at the dev-tuned threshold restricted to the gold pairs (recall)
and extracted candidates (precision) whose overlap is in the band; ``subsets["low-overlap"]`` mines
again with the pools cut to the low band (the sentences of mid- and high-overlap gold pairs
removed from both sides, dev and test), threshold tuned on that dev subset, with every field of
``scores`` / ``mean``.

Data without dev gold is refused (one line naming the splits that have gold), unlike Tatoeba, which
then fixes the layer (:func:`metaxlm.eval.tatoeba.no_dev_layer`): here a fixed layer would not be
enough, since the F1 threshold itself must be tuned on gold other than the test gold. BUCC 2018
ships gold for two splits (``sample`` and ``training``): use one as dev, the other as test.

Result: ``RUN/results/bucc.json`` (docs/results.md, ``kind: "bucc"``), ``RUN/plots/bucc-layers.png``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from metaxlm import rundir
from metaxlm.config import to_dict
from metaxlm.devices import device_meta, resolve_device
from metaxlm.errors import UserError
from metaxlm.eval import overlap as O
from metaxlm.eval import retrieval as R
from metaxlm.eval.bitext_formats import MiningSet, files_hash, find_bucc, load_bucc, load_bucc_hf
from metaxlm.eval.tatoeba import EncodingOptions, choose_headline, default_out, plot_sweep


@dataclass(frozen=True)
class BuccConfig(EncodingOptions):
    model: str  # a model path or hub id; from Python also an encode() object (metaxlm.encode.Encoder)
    data: Optional[Path] = None  # benchmark directory (mining/) or BUCC 2018 files; default benchmark
    languages: tuple[str, ...] = ()
    dev_split: str = "dev"  # BUCC 2018 names it "sample" or "training"
    test_split: str = "test"
    margin: Literal["ratio", "distance", "absolute"] = "ratio"
    k: int = 4
    retrieval: Literal["fwd", "bwd", "intersect", "max"] = "max"
    dedup: bool = True
    sweep: bool = True  # with a fixed layer, still record dev F1 at every layer

    def __post_init__(self):
        super().__post_init__()
        if self.k < 1:
            raise UserError(f"k must be at least 1, got {self.k}")
        if self.dev_split == self.test_split:
            raise UserError(f"the dev split and the test split are both {self.dev_split!r}: the threshold must "
                            "be tuned on other data than it is scored on")


@dataclass
class Mined:
    """Candidates of one split in id space: pairs (xx index, en index), scores, correctness."""

    pairs: np.ndarray
    scores: np.ndarray
    correct: np.ndarray
    n_gold: int


def _pool_texts(texts: list[str], dedup: bool) -> tuple[list[str], list[list[int]]]:
    if not dedup:
        return texts, [[i] for i in range(len(texts))]
    firsts, groups = R.dedup_texts(texts)
    return [texts[i] for i in firsts], groups


def mine_split(ms: MiningSet, ex: np.ndarray, ee: np.ndarray, groups: tuple[list, list], config: BuccConfig,
               gpu: int | None = None) -> Mined:
    """Mine pairs between the (possibly deduplicated) pools and mark which are gold (search on faiss GPU
    ``gpu``, None: the CPU)."""
    pairs, scores = R.compute_mined_pairs(ex, ee, k=config.k, margin=config.margin, retrieval=config.retrieval,
                                          gpu=gpu)
    pairs, scores = R.expand_dedup_pairs(pairs, scores, groups[0], groups[1])
    xi = {x: i for i, x in enumerate(ms.xx_ids)}
    ei = {e: i for i, e in enumerate(ms.en_ids)}
    gold = {(xi[a], ei[b]) for a, b in ms.gold}
    correct = np.array([(a, b) in gold for a, b in pairs.tolist()], bool)
    return Mined(pairs, scores, correct, len(gold))


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def score_language(dev: Mined, test: Mined) -> dict:
    """Dev-tuned threshold applied to test, threshold-free AP, and the labelled test-tuned oracle."""
    tuned = R.compute_best_threshold(dev.scores, dev.correct, dev.n_gold)
    applied = R.compute_prf(test.scores, test.correct, test.n_gold, tuned["threshold"])
    oracle = R.compute_best_threshold(test.scores, test.correct, test.n_gold)
    return {
        "threshold": _finite(tuned["threshold"]),
        "precision": applied["precision"],
        "recall": applied["recall"],
        "f1": applied["f1"],
        "average_precision": R.compute_average_precision(test.scores, test.correct, test.n_gold),
        "oracle_f1": oracle["f1"],
        "oracle_threshold": _finite(oracle["threshold"]),
        "n_gold": test.n_gold,
        "n_candidates": int(len(test.scores)),
        "n_extracted": applied["n_extracted"],
        "dev_f1": tuned["f1"],
        "dev_n_gold": dev.n_gold,
    }


MEAN_KEYS = ("f1", "precision", "recall", "average_precision", "oracle_f1")


def compute_band_prf(ms: MiningSet, test: Mined, threshold: float | None) -> dict[str, dict]:
    """``{band: {precision, recall, f1, n_gold, n_extracted}}`` at ``threshold`` (None: nothing extracted).

    A gold pair's band is that of its two texts; an extracted candidate's band is that of the texts it
    links (a correct candidate is a gold pair, so it falls in its gold band)."""
    xi = {x: i for i, x in enumerate(ms.xx_ids)}
    ei = {e: i for i, e in enumerate(ms.en_ids)}
    gold_band = O.compute_bands([O.compute_overlap(ms.xx[xi[a]], ms.en[ei[b]]) for a, b in ms.gold])
    keep = test.scores >= threshold if threshold is not None else np.zeros(len(test.scores), bool)
    pairs = test.pairs[keep]
    cand_band = O.compute_bands([O.compute_overlap(ms.xx[a], ms.en[b]) for a, b in pairs.tolist()])
    correct = test.correct[keep]
    out = {}
    for name, _, _ in O.BANDS:
        n_gold = gold_band.count(name)
        in_band = np.asarray(cand_band, dtype=object) == name
        n_ext = int(in_band.sum())
        tp = int(correct[in_band].sum()) if n_ext else 0
        prec = tp / n_ext if n_ext else None
        rec = tp / n_gold if n_gold else None
        f1 = (2 * prec * rec / (prec + rec) if prec and rec else 0.0) if prec is not None and rec is not None else None
        out[name] = {"precision": prec, "recall": rec, "f1": f1, "n_gold": n_gold, "n_extracted": n_ext}
    return out


def low_overlap_subset(ms: MiningSet) -> MiningSet:
    """``ms`` without the sentences of its mid- and high-overlap gold pairs (on both sides)."""
    xi = {x: i for i, x in enumerate(ms.xx_ids)}
    ei = {e: i for i, e in enumerate(ms.en_ids)}
    drop_x, drop_e, gold = set(), set(), []
    for a, b in ms.gold:
        if O.band_of(O.compute_overlap(ms.xx[xi[a]], ms.en[ei[b]])) == "low":
            gold.append((a, b))
        else:
            drop_x.add(a)
            drop_e.add(b)
    kx = [i for i, x in enumerate(ms.xx_ids) if x not in drop_x]
    ke = [i for i, e in enumerate(ms.en_ids) if e not in drop_e]
    return MiningSet(ms.lang, ms.split, [ms.xx_ids[i] for i in kx], [ms.xx[i] for i in kx],
                     [ms.en_ids[i] for i in ke], [ms.en[i] for i in ke], gold, ms.files)


def _rows(texts: list[str], pool: list[str]) -> np.ndarray:
    """Row of each text of ``texts`` in the encoded ``pool`` (its first occurrence)."""
    first: dict[str, int] = {}
    for i, t in enumerate(pool):
        first.setdefault(t, i)
    return np.array([first[t] for t in texts], np.int64)


def run_bucc(config: BuccConfig, out: str | Path | None = None) -> Path:
    """Evaluate, write the run directory, return its path."""
    from metaxlm.encode import as_model, check_layer, check_loadable, encode_layers, num_layers
    from metaxlm.paths import check_output, default_benchmark_dir

    t0 = time.time()
    if out is not None:
        out = check_output(out, "run directory")
    device = resolve_device(config.device)
    gpu = R.faiss_gpu(device)
    ref = as_model(config.model)  # a path (ModelRef) or an encode() object (Encoder)
    check_layer(ref, config.layer)
    d = Path(config.data) if config.data is not None else default_benchmark_dir()
    hub = str(config.data).startswith("hf:")  # a hub dataset (metaxlm.eval.hub; default google/xtreme)
    if not hub and not d.is_dir():
        hint = ("build it with 'metaxlm data build' or pass --data" if config.data is None
                else "give a benchmark directory or a directory of BUCC files")
        raise UserError(f"{d} does not exist: {hint}")
    sets = (load_bucc_hf if hub else load_bucc)(str(config.data) if hub else d, config.languages or None,
                                                dev_split=config.dev_split, test_split=config.test_split)
    no_dev = [lang for lang, by in sets.items() if "dev" not in by]
    if no_dev:
        others = [] if hub else sorted(set(find_bucc(d).get(no_dev[0], {})) - {config.test_split})
        hint = (f"name one of the other splits with gold ({', '.join(others)}) with --dev-split" if others else
                f"the only split with gold is {config.test_split!r}; split its gold into a dev and a test part")
        raise UserError(f"{d}: no {no_dev[0]}-en.{config.dev_split}.gold: the F1 threshold is tuned on dev gold, "
                        f"never on test; {hint}")
    files = [f for by in sets.values() for s in by.values() for f in s.files]
    data = {"source": "hf" if hub else "benchmark/mining" if (d / "mining").is_dir() else "bucc2018",
            "data_dir": str(config.data) if hub else str(d / "mining") if (d / "mining").is_dir() else str(d),
            "data_hash": files_hash(files),
            "dev_split": config.dev_split, "test_split": config.test_split}
    n_layers = num_layers(ref)
    check_loadable(ref)  # a broken tokenizer is refused before the run directory exists
    run = rundir.create(out or check_output(default_out("bucc", ref.label)), config, kind="eval", seed=None,
                        extra_meta={"command": "eval bucc", "model": ref.describe(), **device_meta(device)})
    try:
        layers = list(range(n_layers + 1)) if (config.layer is None or config.sweep) else [config.layer]
        slot = {layer: i for i, layer in enumerate(layers)}  # layer -> index in the encoded arrays

        def encode(texts, desc):
            return encode_layers(ref, texts, config.poolings, batch_size=config.batch_size,
                                 max_length=config.max_length, exclude_special=config.exclude_special,
                                 device=device, desc=desc, layers=layers, prefix=config.prefix)

        emb: dict = {}
        for lang, by in sets.items():
            for split, ms in by.items():
                xt, xg = _pool_texts(ms.xx, config.dedup)
                et, eg = _pool_texts(ms.en, config.dedup)
                emb[lang, split] = (encode(xt, f"encode {lang} {split}"), encode(et, f"encode en ({lang} {split})"),
                                    (xg, eg))
        swept = layers if (config.layer is None or config.sweep) else []
        sweep: dict = {p: {} for p in config.poolings}
        dev_curves: dict = {p: [] for p in config.poolings}
        for p in config.poolings:
            for lang in sets:
                ex, ee, groups = emb[lang, "dev"]
                curve = []
                for li in swept:
                    m = mine_split(sets[lang]["dev"], ex[p][slot[li]], ee[p][slot[li]], groups, config, gpu)
                    curve.append(R.compute_best_threshold(m.scores, m.correct, m.n_gold)["f1"])
                if curve:
                    sweep[p][lang] = {"dev": curve}
                    dev_curves[p].append(curve)
        headline = choose_headline(dev_curves, config.poolings, config.layer, n_layers)
        hl, hp = headline["layer"], headline["pooling"]
        scores, test_mined = {}, {}
        for lang in sets:
            mined = {}
            for split in ("dev", "test"):
                ex, ee, groups = emb[lang, split]
                mined[split] = mine_split(sets[lang][split], ex[hp][slot[hl]], ee[hp][slot[hl]], groups, config, gpu)
            scores[lang] = score_language(mined["dev"], mined["test"])
            test_mined[lang] = mined["test"]
        mean = {k: float(np.mean([scores[lang][k] for lang in scores])) for k in MEAN_KEYS}
        bands: dict = {name: {"scores": {}} for name, _, _ in O.BANDS}
        low_scores, too_few = {}, []
        for lang in sets:
            for name, v in compute_band_prf(sets[lang]["test"], test_mined[lang], scores[lang]["threshold"]).items():
                bands[name]["scores"][lang] = v
            mined = {}
            for split in ("dev", "test"):
                sub = low_overlap_subset(sets[lang][split])
                if not sub.gold or not sub.xx or not sub.en:
                    break
                ex, ee, _ = emb[lang, split]
                xt, xg = _pool_texts(sub.xx, config.dedup)
                et, eg = _pool_texts(sub.en, config.dedup)
                full_x, _ = _pool_texts(sets[lang][split].xx, config.dedup)
                full_e, _ = _pool_texts(sets[lang][split].en, config.dedup)
                mined[split] = mine_split(sub, ex[hp][slot[hl]][_rows(xt, full_x)],
                                          ee[hp][slot[hl]][_rows(et, full_e)], (xg, eg), config, gpu)
            if len(mined) == 2:
                low_scores[lang] = score_language(mined["dev"], mined["test"])
            else:
                too_few.append(lang)
        for name, b in bands.items():
            vals = {k: [v[k] for v in b["scores"].values() if v[k] is not None] for k in ("precision", "recall", "f1")}
            b["mean"] = {k: (float(np.mean(v)) if v else None) for k, v in vals.items()}
            b["mean"]["n_gold"] = sum(v["n_gold"] for v in b["scores"].values())
        subsets = {O.LOW: {"languages": list(low_scores), "scores": low_scores, "too_few": too_few,
                           "mean": {k: (float(np.mean([low_scores[lang][k] for lang in low_scores]))
                                        if low_scores else None) for k in MEAN_KEYS}}}
        payload = {
            "kind": "bucc",
            "model": ref.describe(),
            "data": data,
            "config": {**to_dict(config), "pooling": hp, "num_layers": n_layers},
            "headline": headline,
            "languages": list(sets),
            "scores": scores,
            "mean": mean,
            "overlap": {"definition": O.DEFINITION, "bands": {name: [lo, hi if hi != float("inf") else None]
                                                              for name, lo, hi in O.BANDS}},
            "bands": bands,
            "subsets": subsets,
            "sweep": {p: v for p, v in sweep.items() if v},
            "conventions": {
                "threshold": "margin score cut-off chosen to maximise F1 on the dev gold; pairs with "
                             "score >= threshold are extracted (null: no correct dev candidate)",
                "precision/recall/f1": "test, with the dev-tuned threshold; recall over all test gold pairs",
                "average_precision": "threshold-free: area under the test precision-recall curve of the ranked "
                                     "candidates, recall over all test gold pairs",
                "oracle_f1": "ORACLE: best F1 with the threshold tuned on test itself (upper bound, not a result)",
                "sweep": "dev F1 at the best dev threshold (per layer and pooling)",
            },
            "search_backend": R.faiss_backend(gpu),
            "timing": {"seconds": round(time.time() - t0, 3)},
            "versions": rundir.library_versions(),
        }
        run.write_result("bucc", payload)
        if payload["sweep"]:
            plot_sweep(run.path / "plots" / "bucc-layers.png", payload["sweep"], headline,
                       ylabel="dev F1 (best dev threshold)", title=f"BUCC mining by layer — {ref.label}")
        run.done(summary={"f1": mean["f1"], "headline": headline})
    except BaseException as e:
        run.failed(f"{type(e).__name__}: {e}")
        raise
    return run.path
