"""``metaxlm probe align``: how aligned are languages inside an encoder, layer by layer?

A model is a path (run, checkpoint, HF directory, hub id) or, from Python, any object with
``encode(sentences) -> array`` (:class:`metaxlm.encode.Encoder`: one layer, its output, pooling
``"encoder"``); ``prefix`` goes before every sentence (e5-style ``"query: "``).

One model (``AlignConfig(models=("runs/meta",))``): on parallel sentences, for every layer and every
target language, linear CKA between the English and the translated sentence embeddings
(:mod:`metaxlm.probe.cka`) and top-1 cosine retrieval accuracy xx→en
(:func:`metaxlm.eval.retrieval.knn`), each with a percentile bootstrap 95% interval over sentences
(the same resamples for both numbers). Writes ``results/align.json`` (docs/results.md,
``kind: "align"``) and ``plots/align.{png,svg}``.

Two models (``models=(A, B)``): the layer × layer CKA matrix between A and B on the same English
sentences, and both models' per-layer CKA(en, xx) curves on one plot: ``results/align-pair.json``
(``kind: "align_pair"``), ``plots/align-pair-matrix.{png,svg}``, ``plots/align-pair-curves.{png,svg}``.

Inputs: the default benchmark's N-way set ``parallel/nway.tsv`` (``--data DIR`` for another
benchmark directory; with two models, ``--data`` may be given once per model, and both inputs must
then hold the same languages and English sentences), or line-aligned files
``--pair LANG=EN_FILE,XX_FILE`` (given once per language).

Cost of the intervals: each (layer, language) bootstrap is exact and takes O(n²·(d + B)) time for
n sentences and B resamples (about 2 CPU-seconds at n = 2,000, d = 768, B = 1,000); for much larger
line-aligned files use ``--max-sentences`` or fewer ``--bootstrap`` resamples.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from metaxlm import progress, rundir
from metaxlm.devices import check_device, device_meta, resolve_device
from metaxlm.errors import UserError
from metaxlm.eval.retrieval import faiss_backend, faiss_gpu, knn
from metaxlm.encode import Encoder, as_model, check_loadable
from metaxlm.models import ModelRef
from metaxlm.paths import check_output, default_benchmark_dir
from metaxlm.probe import cka as C


@dataclass(frozen=True)
class AlignConfig:
    """Everything one alignment probe depends on (written to the run's config.yaml)."""

    models: tuple[Any, ...]  # one model, or two for the layer × layer comparison: paths, or encode() objects
    data: tuple[str, ...] = ()  # benchmark directories: none = the default benchmark; one per model allowed
    pairs: tuple[str, ...] = ()  # "LANG=EN_FILE,XX_FILE" line-aligned files (replace the benchmark)
    languages: tuple[str, ...] = ()  # target languages to probe; empty = all in the inputs
    layers: tuple[int, ...] = ()  # layers to probe (0 = embeddings); empty = all
    pooling: str = "mean"  # mean | cls ("encoder" when every model is an encode() object)
    debiased: bool = False  # unbiased-HSIC CKA (needs ≥ 4 sentences)
    max_sentences: Optional[int] = None  # use the first N sentences of every language
    bootstrap: int = 1000  # resamples for the 95% intervals (single model)
    seed: int = 0  # bootstrap seed
    batch_size: int = 64
    max_length: int = 128
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N (metaxlm.devices)
    prefix: str = ""  # put before every sentence (e5-style "query: ")

    def __post_init__(self):
        from metaxlm.encode import OBJECT_POOLING, POOLINGS, adopt_model

        check_device(self.device)
        adopt_model(self, "models")  # encode() objects: wrapped, so config.yaml describes them
        if self.models and all(isinstance(m, Encoder) for m in self.models):
            object.__setattr__(self, "pooling", OBJECT_POOLING)
        elif self.pooling not in POOLINGS:
            raise UserError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}")
        checks = [
            (1 <= len(self.models) <= 2, f"give one or two models (--model), got {len(self.models)}"),
            (len(self.data) <= len(self.models),
             f"--data was given {len(self.data)} times for {len(self.models)} model(s): give it once, "
             "or once per model"),
            (not (self.data and self.pairs), "give either --data or --pair inputs, not both"),
            (self.max_sentences is None or self.max_sentences >= 1, "max_sentences must be at least 1"),
            (self.bootstrap >= 1, "bootstrap must be at least 1 resample"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.max_length >= 2, "max_length must be at least 2"),
            (all(layer >= 0 for layer in self.layers), "layers are numbered from 0 (embeddings)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)


# -- inputs --------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """Parallel sentences per target language: ``{lang: (english, translations)}`` and provenance."""

    sentences: dict[str, tuple[list[str], list[str]]]
    data: dict  # {source, data_dir | files, data_hash}


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def _sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()


def load_nway(bench: Path) -> Inputs:
    """``BENCH/parallel/nway.tsv``: header ``en <xx> ...``, one English paragraph and its translations a line."""
    path = bench / "parallel" / "nway.tsv"
    if not bench.is_dir():
        raise UserError(f"no benchmark at {bench}: run `metaxlm data build`, or pass --data DIR or --pair LANG=EN,XX")
    lines = _read_lines(path, "N-way parallel file")
    if not lines:
        raise UserError(f"{path} is empty: it needs a header row (en <xx> ...) and at least one line of sentences")
    header = lines[0].split("\t")
    if header[0] != "en" or len(header) < 2 or len(set(header)) != len(header):
        raise UserError(f"{path}: the header must be 'en' followed by distinct language codes, got {lines[0]!r}")
    rows = lines[1:]
    if not rows:
        raise UserError(f"{path} holds no sentences (only a header): empty input")
    cols: list[list[str]] = [[] for _ in header]
    for i, row in enumerate(rows, start=2):
        fields = row.split("\t")
        if len(fields) != len(header):
            raise UserError(f"{path} line {i} has {len(fields)} fields but the header has {len(header)}: "
                            "every line needs one sentence per language")
        for c, f in zip(cols, fields):
            c.append(f)
    sents = {lang: (cols[0], cols[j]) for j, lang in enumerate(header) if j > 0}
    return Inputs(sents, {"source": "benchmark/parallel/nway.tsv", "data_dir": str(bench),
                          "data_hash": _sha256_files([path])})


_PAIR = re.compile(r"^([A-Za-z_-]+)=([^,]+),(.+)$")


def load_pairs(specs: tuple[str, ...]) -> Inputs:
    """``LANG=EN_FILE,XX_FILE`` line-aligned files, one spec per language."""
    sents: dict[str, tuple[list[str], list[str]]] = {}
    files: dict[str, list[str]] = {}
    read: list[Path] = []
    for spec in specs:
        m = _PAIR.match(spec)
        if not m:
            raise UserError(f"--pair {spec!r}: write LANG=EN_FILE,XX_FILE (e.g. de=test.en,test.de)")
        lang, en_file, xx_file = m.group(1), Path(m.group(2)), Path(m.group(3))
        if lang == "en" or lang in sents:
            raise UserError(f"--pair {spec!r}: language {lang!r} is " + ("the English side" if lang == "en"
                                                                        else "given twice"))
        en = _read_lines(en_file, "--pair English file")
        xx = _read_lines(xx_file, f"--pair {lang} file")
        if len(en) != len(xx):
            raise UserError(f"--pair {lang}: {en_file} has {len(en)} lines but {xx_file} has {len(xx)}; "
                            "files aligned by line must have the same number of lines")
        if not en:
            raise UserError(f"--pair {lang}: {en_file} and {xx_file} are empty: empty input")
        sents[lang] = (en, xx)
        files[lang] = [str(en_file), str(xx_file)]
        read += [en_file, xx_file]
    return Inputs(sents, {"source": "pairs", "files": files, "data_hash": _sha256_files(read)})


def load_inputs(cfg: AlignConfig, data: Optional[str]) -> Inputs:
    """The inputs of one model: pairs, a benchmark directory, or the default benchmark; languages
    selected and sentences capped as configured."""
    if cfg.pairs:
        inp = load_pairs(cfg.pairs)
    else:
        inp = load_nway(Path(data).expanduser() if data else default_benchmark_dir())
    if cfg.languages:
        missing = [lang for lang in cfg.languages if lang not in inp.sentences]
        if missing:
            raise UserError(f"language {missing[0]!r} is not in the inputs ({inp.data['source']} has "
                            f"{', '.join(inp.sentences)}); pick from those")
        inp.sentences = {lang: inp.sentences[lang] for lang in cfg.languages}
    if cfg.max_sentences is not None:
        k = cfg.max_sentences
        inp.sentences = {lang: (en[:k], xx[:k]) for lang, (en, xx) in inp.sentences.items()}
    need = 4 if cfg.debiased else 2
    for lang, (en, _) in inp.sentences.items():
        if len(en) < need:
            what = "debiased CKA (the unbiased HSIC estimator)" if cfg.debiased else "CKA"
            raise UserError(f"{lang}: {len(en)} sentence(s) is too few for {what}, which needs at least {need}; "
                            "use more sentences" + (" or drop --debiased" if cfg.debiased else ""))
    return inp


# -- helpers -------------------------------------------------------------------------------------

def default_out(labels: list[str]) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "-vs-".join(re.sub(r"[^A-Za-z0-9._@-]+", "_", lb) or "model" for lb in labels)
    return Path("runs") / f"probe-align-{safe}-{stamp}"


def _resolve_layers(ref: ModelRef | Encoder, wanted: tuple[int, ...]) -> list[int]:
    from metaxlm.encode import check_layer, num_layers

    for layer in wanted:
        check_layer(ref, layer)
    return sorted(set(wanted)) if wanted else list(range(num_layers(ref) + 1))


class _Embedded:
    """One model's embeddings of every distinct input sentence, encoded once: ``(layers, N, d)``."""

    def __init__(self, cfg: AlignConfig, ref: ModelRef | Encoder, inp: Inputs, layers: list[int], device):
        from metaxlm.encode import encode_layers

        self.index: dict[str, int] = {}
        for en, xx in inp.sentences.values():
            for s in en + xx:
                self.index.setdefault(s, len(self.index))
        self.emb = encode_layers(ref, list(self.index), poolings=(cfg.pooling,), batch_size=cfg.batch_size,
                                 max_length=cfg.max_length, device=device, desc=f"encode {ref.label}",
                                 layers=layers, prefix=cfg.prefix)[cfg.pooling]

    def __call__(self, sentences: list[str]) -> np.ndarray:
        return self.emb[:, [self.index[s] for s in sentences]]


def _english(inp: Inputs) -> list[str]:
    """The distinct English sentences of all languages, in order of first appearance."""
    return list(dict.fromkeys(s for en, _ in inp.sentences.values() for s in en))


def retrieval_hits(xx: np.ndarray, en: np.ndarray, gpu: int | None = None) -> np.ndarray:
    """Per sentence: is the nearest English sentence (cosine) of translation i English sentence i?
    (Searched on faiss GPU ``gpu``; None: the CPU.)"""
    _, ids = knn(xx, en, 1, gpu=gpu)
    return ids[:, 0] == np.arange(len(xx))


# -- the probe -----------------------------------------------------------------------------------

def run_align(config: AlignConfig, out: str | Path | None = None) -> Path:
    """Run the probe; returns the run directory (results/align.json or results/align-pair.json)."""
    t0 = time.perf_counter()
    if out is not None:
        out = check_output(out, "run directory")
    device = resolve_device(config.device)
    refs = [as_model(m) for m in config.models]
    layers = [_resolve_layers(r, config.layers) for r in refs]
    inputs = [load_inputs(config, config.data[0] if config.data else None)]
    if len(refs) == 2:
        inputs.append(load_inputs(config, config.data[1]) if len(config.data) == 2 else inputs[0])
        _check_same_inputs(inputs[0], inputs[1], refs)
    labels = _labels(refs)
    for r in refs:
        check_loadable(r)  # a broken tokenizer is refused before the run directory exists
    run = rundir.create(out or check_output(default_out(labels)), config, kind="probe", seed=config.seed,
                        extra_meta={"command": "probe align", "models": [r.describe() for r in refs],
                                    **device_meta(device)})
    try:
        embs = [_Embedded(config, r, inp, ls, device) for r, inp, ls in zip(refs, inputs, layers)]
        if len(refs) == 1:
            payload = _single(config, refs[0], inputs[0], layers[0], embs[0], faiss_gpu(device))
            name = "align"
        else:
            payload = _pair(config, refs, labels, inputs, layers, embs)
            name = "align-pair"
        payload["timing"] = {"seconds": round(time.perf_counter() - t0, 3)}
        payload["versions"] = rundir.library_versions()
        run.write_result(name, payload)
        from metaxlm.probe import plots

        if len(refs) == 1:
            plots.plot_align(payload, run.path / "plots")
        else:
            plots.plot_align_pair(payload, run.path / "plots")
    except BaseException as e:
        run.failed(f"{type(e).__name__}: {e}")
        raise
    run.done()
    return run.path


def _labels(refs: list[ModelRef | Encoder]) -> list[str]:
    labels = [r.label or r.spec for r in refs]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [f"A:{labels[0]}", f"B:{labels[1]}"]
    return labels


def _check_same_inputs(a: Inputs, b: Inputs, refs: list[ModelRef | Encoder]) -> None:
    la, lb = list(a.sentences), list(b.sentences)
    if sorted(la) != sorted(lb):
        raise UserError(f"mismatched languages between the two models' inputs: {refs[0].label} has "
                        f"{', '.join(la)}, {refs[1].label} has {', '.join(lb)}; give both models the same languages")
    for lang in la:
        if a.sentences[lang][0] != b.sentences[lang][0]:
            raise UserError(f"{lang}: the two models' inputs have different English sentences; the layer × layer "
                            "CKA needs the same sentences for both (use the same --data)")


def _config_info(cfg: AlignConfig, inp: Inputs) -> dict:
    ns = sorted({len(en) for en, _ in inp.sentences.values()})
    return {"pooling": cfg.pooling, "debiased": cfg.debiased,
            "n_sentences": ns[0] if len(ns) == 1 else {lang: len(en) for lang, (en, _) in inp.sentences.items()},
            "bootstrap": cfg.bootstrap, "seed": cfg.seed}


def _single(cfg: AlignConfig, ref: ModelRef | Encoder, inp: Inputs, layers: list[int], emb: _Embedded,
            gpu: int | None = None) -> dict:
    langs = list(inp.sentences)
    cka_out: dict[str, dict] = {}
    ret_out: dict[str, dict] = {}
    notes: list[str] = []
    weights: dict[int, np.ndarray] = {}
    with progress.task(f"CKA {ref.label}", total=len(langs) * len(layers)) as bar:
        for lang in langs:
            en, xx = (emb(side) for side in inp.sentences[lang])
            n = en.shape[1]
            W = weights.setdefault(n, C.bootstrap_weights(n, cfg.bootstrap, cfg.seed))
            cv, cc, rv, rc = [], [], [], []
            for li, layer in enumerate(layers):
                try:
                    r = C.bootstrap_cka(en[li], xx[li], debiased=cfg.debiased, weights=W)
                    cv.append(r["value"])
                    cc.append(r["ci95"])
                except C.CKAError as e:  # e.g. cls pooling at layer 0: the same vector for every sentence
                    notes.append(f"{lang} layer {layer}: CKA undefined ({e})")
                    cv.append(None)
                    cc.append(None)
                hits = retrieval_hits(xx[li], en[li], gpu).astype(np.float64)
                rv.append(float(hits.mean()))
                rc.append(C.percentile_interval(W.T @ hits / n))
                bar.advance(1, lang=lang)
            cka_out[lang] = {"values": cv, "ci95": cc}
            ret_out[lang] = {"values": rv, "ci95": rc}
    mean = [_mean([cka_out[lang]["values"][i] for lang in langs]) for i in range(len(layers))]
    payload = {"kind": "align", "model": ref.describe(), "data": inp.data, "config": _config_info(cfg, inp),
               "languages": langs, "layers": layers, "cka": cka_out, "retrieval": ret_out, "mean_cka": mean,
               "search_backend": faiss_backend(gpu)}
    if notes:
        payload["notes"] = notes
    return payload


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if len(vals) == len(values) and vals else None


def _pair(cfg: AlignConfig, refs, labels, inputs: list[Inputs], layers, embs: list[_Embedded]) -> dict:
    langs = list(inputs[0].sentences)
    per_model: dict[str, dict[str, list[float | None]]] = {}
    notes: list[str] = []
    with progress.task("CKA " + " vs ".join(labels), total=2 * len(langs) + 1) as bar:
        for label, emb, inp, ls in zip(labels, embs, inputs, layers):
            per_model[label] = {}
            for lang in langs:
                en, xx = (emb(side) for side in inp.sentences[lang])
                per_model[label][lang] = [_cka(en[i], xx[i], cfg.debiased, notes, f"{label} {lang} layer {ls[i]}")
                                          for i in range(len(ls))]
                bar.advance(1)
        english = _english(inputs[0])
        matrix = _matrix(cfg, embs[0](english), embs[1](english), layers, labels, notes)
        bar.advance(1)
    conf = {**_config_info(cfg, inputs[0]), "n_english": len(english)}
    del conf["bootstrap"], conf["seed"]  # no intervals here
    payload = {"kind": "align_pair", "models": [r.describe() for r in refs], "data": inputs[0].data,
               "config": conf, "languages": langs, "layers": layers, "matrix": matrix, "per_model": per_model}
    if notes:
        payload["notes"] = notes
    return payload


def _matrix(cfg: AlignConfig, ea: np.ndarray, eb: np.ndarray, layers, labels, notes: list[str]) -> list:
    """Layer × layer CKA; a layer whose embedding is the same for every sentence (e.g. cls pooling at
    layer 0) gets None entries and a note."""
    ok = []
    for label, e, ls in zip(labels, (ea, eb), layers):
        ok.append([i for i in range(len(ls)) if np.any(e[i] != e[i][:1])])
        notes += [f"{label} layer {ls[i]}: the same English embedding for every sentence; CKA undefined"
                  for i in range(len(ls)) if i not in ok[-1]]
    matrix: list[list[float | None]] = [[None] * len(layers[1]) for _ in layers[0]]
    if ok[0] and ok[1]:
        try:
            m = C.cka_matrix(ea[ok[0]], eb[ok[1]], debiased=cfg.debiased)
        except C.CKAError as e:
            raise UserError(f"layer × layer CKA on {len(ea[0])} English sentences: {e}") from None
        for a, i in enumerate(ok[0]):
            for b, j in enumerate(ok[1]):
                matrix[i][j] = float(m[a, b])
    return matrix


def _cka(x: np.ndarray, y: np.ndarray, debiased: bool, notes: list[str], where: str) -> float | None:
    try:
        return C.linear_cka(x, y, debiased=debiased)
    except C.CKAError as e:
        notes.append(f"{where}: CKA undefined ({e})")
        return None
