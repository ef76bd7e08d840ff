"""Sentence embeddings from every layer of an encoder, cached on disk.

:func:`encode_layers` runs a model once over a list of sentences and returns, per pooling, an array
``(num_layers + 1, n, hidden)`` float32 where index 0 is the embedding layer and index ``i`` the
output of transformer layer ``i``. Poolings:

- ``mean``: average over real tokens (padding masked out); with ``exclude_special=True`` special
  tokens (``<s>``, ``</s>``, ...) are left out too (a sentence made only of special tokens falls
  back to all its real tokens);
- ``cls``: the first token (``<s>`` / ``[CLS]``).

Sentences are sorted by length into dynamic batches (original order restored), run under
``torch.inference_mode`` and, on GPU, bf16 (or fp16) autocast (:mod:`metaxlm.devices`); pooling is
done in float32. ``device``: ``auto`` (default; CUDA when present), ``cpu``, ``cuda``, ``cuda:N``.

Results are cached under ``metaxlm.paths.cache_dir() / "embeddings"``, one ``.npy`` per (pooling,
layer), keyed by the model's identity (path plus name, size, mtime and content hash of every file in the
model directory), a hash of the sentences, ``max_length``, ``exclude_special`` and the precision: a layer ×
pooling sweep, or a second evaluation on the same data, does not re-encode. ``layers=[...]`` keeps
only some layers (memory: ``len(layers) × n × hidden`` floats per pooling, for large pools).
``prefix`` is put before every sentence (e5-style encoders want ``"query: "``); the cache key hashes
the prefixed sentences.

**Encoder objects.** Besides a model path (:class:`~metaxlm.models.ModelRef`), every function here
takes an :class:`Encoder`: any object with ``encode(sentences) -> array (n, d)`` (as MTEB's models
have), wrapped with an optional ``name``. It has one layer, its output (layer 0, pooling
``"encoder"``: it pools itself); batching, ``max_length`` and the device are its own business.
Its identity is the name, class and ``repr`` (memory addresses left out); it is cached only when
named (give a new name when the encoder changes). :func:`as_model` turns what a config holds (a
path string or an object) into a ``ModelRef`` or an ``Encoder``; :func:`adopt_model` is what
configs call in ``__post_init__``: config.yaml then records the encoder's description, never the
object.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from metaxlm.devices import autocast, pick_precision, resolve_device
from metaxlm.errors import UserError
from metaxlm.models import (ModelRef, check_tokenizer_matches, load_config, load_model, load_tokenizer,
                            resolve_model)

POOLINGS = ("mean", "cls")
OBJECT_POOLING = "encoder"  # the one pooling of an Encoder object: its own output
CACHE_VERSION = 2

_file_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def _sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _file_hashes[key] = h.hexdigest()
    return _file_hashes[key]


@dataclass(frozen=True)
class Encoder:
    """An object with ``encode(sentences) -> array (n, d)``, described by its fields (config.yaml and
    results record them); the object itself is :attr:`obj`, not a field."""

    name: str | None  # user-given; also the cache key (None: never cached)
    class_name: str  # module.qualname of the object's class
    repr: str  # repr(obj), memory addresses left out, at most 300 characters

    source = "object"
    path = phase = run_dir = revision = None

    @classmethod
    def wrap(cls, obj: Any, name: str | None = None) -> "Encoder":
        if isinstance(obj, Encoder):
            return obj if name is None or name == obj.name else obj.named(name)
        if not callable(getattr(obj, "encode", None)):
            raise UserError(f"model {_short(obj)} is neither a model path nor an object with "
                            "encode(sentences) -> array: give a run/model directory, a hub id or such an object")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise UserError(f"encoder name {name!r} must be a non-empty string (it is the cache key)")
        t = type(obj)
        enc = cls(name=name, class_name=f"{t.__module__}.{t.__qualname__}", repr=_short(obj))
        object.__setattr__(enc, "obj", obj)
        return enc

    def named(self, name: str) -> "Encoder":
        return Encoder.wrap(self.obj, name) if name != self.name else self

    @property
    def label(self) -> str:
        return self.name or self.class_name.rsplit(".", 1)[-1]

    @property
    def spec(self) -> str:
        return f"object:{self.label}"

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "path": None, "source": "object", "phase": None, "run_dir": None,
                "revision": None, "label": self.label, "name": self.name, "class": self.class_name, "repr": self.repr,
                "layers": "one: the encoder's output (layer 0, pooling 'encoder')"}


def _short(obj: Any) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))[:300]


def as_model(model: Any) -> ModelRef | Encoder:
    """A config's ``model`` as something to encode with: a path/hub id string → :class:`ModelRef`
    (:func:`metaxlm.models.resolve_model`), an object with ``encode`` (or an :class:`Encoder`) →
    :class:`Encoder`."""
    if isinstance(model, (ModelRef, Encoder)):
        return model
    if isinstance(model, (str, Path)):
        return resolve_model(str(model))
    return Encoder.wrap(model)


def adopt_model(config: Any, field: str = "model") -> None:
    """For a frozen config's ``__post_init__``: an object in ``field`` (or a tuple of them) becomes an
    :class:`Encoder`; a config with ``poolings`` whose models are all objects gets ``("encoder",)``;
    every other pooling is checked against :data:`POOLINGS`."""
    value = getattr(config, field, None)
    many = isinstance(value, (tuple, list))
    items = tuple(v if isinstance(v, (str, Path, Encoder)) or v is None else Encoder.wrap(v)
                  for v in (value if many else (value,)))
    if hasattr(config, field):
        object.__setattr__(config, field, items if many else items[0])
    if not hasattr(config, "poolings"):
        return
    if items and all(isinstance(v, Encoder) for v in items):
        object.__setattr__(config, "poolings", (OBJECT_POOLING,))
        return
    if not config.poolings:
        raise UserError("give at least one pooling")
    bad = [p for p in config.poolings if p not in POOLINGS]
    if bad:
        raise UserError(f"unknown pooling {bad[0]!r}; choose from {', '.join(POOLINGS)}")


def check_loadable(ref: ModelRef | Encoder) -> None:
    """Refuse a broken tokenizer before a run directory exists (an Encoder object has none)."""
    if not isinstance(ref, Encoder):
        load_tokenizer(ref)


def model_identity(ref: ModelRef | Encoder) -> dict:
    """What makes two encodings of the same text comparable: the model's files, or its hub id (an
    Encoder: its name, class and repr)."""
    if isinstance(ref, Encoder):
        return {"encoder": ref.name, "class": ref.class_name, "repr": ref.repr}
    p = Path(ref.path)
    if not p.is_dir():
        return {"hub": ref.path, "revision": ref.revision}
    files = []
    for f in sorted(p.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            st = f.stat()
            files.append([f.name, st.st_size, st.st_mtime_ns, _sha256_file(f)])
    return {"path": str(p.resolve()), "files": files}


def data_hash(sentences: Sequence[str]) -> str:
    """sha256 over the sentences in order (length-prefixed, so boundaries are unambiguous)."""
    h = hashlib.sha256()
    for s in sentences:
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def num_layers(ref: ModelRef | Encoder) -> int:
    """Number of transformer layers; :func:`encode_layers` returns ``num_layers(ref) + 1`` layers
    (an Encoder object: 0, its output is the one layer)."""
    if isinstance(ref, Encoder):
        return 0
    cfg = load_config(ref)
    for attr in ("num_hidden_layers", "n_layers", "num_layers"):
        n = getattr(cfg, attr, None)
        if isinstance(n, int):
            return n
    raise UserError(f"{ref.path}: the model config does not say how many layers it has")


def check_layer(ref: ModelRef | Encoder, layer: int | None) -> None:
    """A requested layer must be in ``0..num_layers(ref)`` (0 = embeddings)."""
    if layer is None:
        return
    n = num_layers(ref)
    if not 0 <= layer <= n:
        raise UserError(f"--layer {layer} is beyond the model's depth: {ref.label or ref.spec} has layers "
                        f"0..{n} (0 = embeddings, {n} = last transformer layer)")


def _cache_key(ref: ModelRef | Encoder, dhash: str, max_length: int, exclude_special: bool, precision: str) -> str:
    ident = {"v": CACHE_VERSION, "model": model_identity(ref), "data": dhash,
             "max_length": max_length, "exclude_special": exclude_special, "precision": precision}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from metaxlm.rundir import umask_mkstemp
    fd, tmp = umask_mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError):  # missing or cut: encode again
        return None


def _batches(lengths: np.ndarray, batch_size: int) -> Iterable[np.ndarray]:
    """Indices sorted by length (longest first), cut into batches of at most ``batch_size``."""
    order = np.argsort(-lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i:i + batch_size]


def encode_layers(ref: ModelRef | Encoder, sentences: list[str], poolings: Sequence[str] = ("mean", "cls"), *,
                  batch_size: int = 64, max_length: int = 128, exclude_special: bool = False,
                  device=None, cache_dir: str | Path | None = None, use_cache: bool = True,
                  desc: str | None = None, layers: Sequence[int] | None = None,
                  prefix: str = "") -> dict[str, np.ndarray]:
    """Pooled hidden states of every layer: ``{pooling: array (num_layers + 1, n, hidden) float32}``.

    ``layers`` (default: all, 0 = embeddings) keeps only those layers, in that order: the arrays are
    then ``(len(layers), n, hidden)``. ``cache_dir`` defaults to
    ``metaxlm.paths.cache_dir() / "embeddings"``; ``use_cache=False`` neither reads nor writes it.
    ``desc`` labels the progress bar. ``prefix`` goes before every sentence. An :class:`Encoder`
    gives its one output (layer 0) under every pooling asked for, cached only when named.
    """
    poolings = tuple(dict.fromkeys(poolings))
    bad = [p for p in poolings if p not in POOLINGS and not isinstance(ref, Encoder)]
    if bad or not poolings:
        raise UserError(f"unknown pooling {bad[0] if bad else '(none)'!r}; choose from {', '.join(POOLINGS)}")
    if batch_size < 1 or max_length < 2:
        raise UserError("batch_size must be ≥ 1 and max_length ≥ 2")
    sentences = [str(prefix) + str(s) for s in sentences]
    if isinstance(ref, Encoder) and ref.name is None:
        use_cache = False  # an unnamed object has no identity across calls
    depth = num_layers(ref)
    if layers is None:
        layers = list(range(depth + 1))
    else:
        layers = [int(layer) for layer in layers]
        for layer in layers:
            if not 0 <= layer <= depth:
                raise UserError(f"layer {layer} is beyond the model's depth: {ref.label or ref.spec} has layers "
                                f"0..{depth} (0 = embeddings)")

    device = resolve_device(device)
    cache_root = None
    if use_cache:
        if cache_dir is None:
            from metaxlm.paths import cache_dir as _default_cache

            cache_root = _default_cache() / "embeddings"
        else:
            cache_root = Path(cache_dir)
        key = _cache_key(ref, data_hash(sentences), max_length, exclude_special, pick_precision(device))
        entry = cache_root / key
        out: dict[str, np.ndarray] = {}
        for p in poolings:
            parts = [_load_npy(entry / f"{p}-L{layer}.npy") for layer in layers]
            if all(a is not None and a.ndim == 2 and a.shape[0] == len(sentences) for a in parts):
                out[p] = np.stack(parts) if parts else np.zeros((0, len(sentences), 0), np.float32)
        if len(out) == len(poolings):
            return out

    if isinstance(ref, Encoder):
        result = _encode_object(ref, sentences, poolings)
    else:
        result = _encode(ref, sentences, poolings, batch_size=batch_size, max_length=max_length,
                         exclude_special=exclude_special, device=device, desc=desc, layers=layers)
    if cache_root is not None:
        for p, arr in result.items():
            for i, layer in enumerate(layers):
                _save_npy(entry / f"{p}-L{layer}.npy", arr[i])
        info = entry / "info.json"
        if not info.exists():
            from metaxlm.rundir import atomic_write_json

            atomic_write_json(info, {"model": ref.describe(), "n": len(sentences), "max_length": max_length,
                                     "exclude_special": exclude_special})
    return result


def _encode_object(enc: Encoder, sentences: list[str], poolings: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``enc.obj.encode(sentences)`` as ``{pooling: (1, n, d) float32}``, its shape checked."""
    out = enc.obj.encode(list(sentences)) if sentences else np.zeros((0, 0), np.float32)
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().float().cpu().numpy()
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(sentences) or not np.isfinite(arr).all():
        what = f"shape {arr.shape}" if arr.ndim != 2 or arr.shape[0] != len(sentences) else "NaN or infinite values"
        raise UserError(f"encoder {enc.label}: encode() of {len(sentences)} sentences returned {what}; it must "
                        "return a finite array (n_sentences, dim)")
    return {p: arr[None] for p in poolings}


def _encode(ref: ModelRef, sentences: list[str], poolings: tuple[str, ...], *, batch_size: int,
            max_length: int, exclude_special: bool, device, desc: str | None,
            layers: Sequence[int]) -> dict[str, np.ndarray]:
    import torch

    from metaxlm import progress

    tok, model = _load(ref, device)
    n_layers = num_layers(ref)
    hidden = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "dim", 0))
    out = {p: np.zeros((len(layers), len(sentences), hidden), dtype=np.float32) for p in poolings}
    if not sentences:
        return out
    if tok.pad_token is None:
        raise UserError(f"{ref.path}: the tokenizer has no padding token; batched encoding needs one")
    tok.padding_side = "right"

    enc = tok(sentences, truncation=True, max_length=max_length, add_special_tokens=True,
              return_special_tokens_mask=exclude_special)
    ids = enc["input_ids"]
    lengths = np.array([len(x) for x in ids])
    precision = pick_precision(device)

    with progress.task(desc or f"encode {ref.label or ref.spec}", total=len(sentences)) as bar, \
            torch.inference_mode():
        for idx in _batches(lengths, batch_size):
            feats = [{"input_ids": ids[i]} for i in idx]
            batch = tok.pad(feats, padding=True, return_tensors="pt")
            input_ids = batch["input_ids"].to(device)
            mask = batch["attention_mask"].to(device)
            kwargs = {"input_ids": input_ids, "attention_mask": mask, "output_hidden_states": True}
            with autocast(device, precision):
                hs = model(**kwargs).hidden_states
            if len(hs) != n_layers + 1:
                raise UserError(f"{ref.path}: the model returned {len(hs)} hidden states, "
                                f"expected {n_layers + 1}")
            mean_mask = mask
            if "mean" in poolings and exclude_special:
                special = torch.zeros_like(mask)
                for row, i in enumerate(idx):
                    stm = enc["special_tokens_mask"][i]
                    special[row, :len(stm)] = torch.tensor(stm, dtype=mask.dtype)
                content = mask * (1 - special)
                # a sentence of special tokens only keeps all its real tokens
                empty = content.sum(1) == 0
                mean_mask = torch.where(empty[:, None], mask, content)
            w = mean_mask.float()
            denom = w.sum(1, keepdim=True).clamp(min=1.0)
            for slot, layer in enumerate(layers):
                h = hs[layer].float()
                if "mean" in poolings:
                    pooled = (h * w[:, :, None]).sum(1) / denom
                    out["mean"][slot, idx] = pooled.cpu().numpy()
                if "cls" in poolings:
                    out["cls"][slot, idx] = h[:, 0].cpu().numpy()
            bar.advance(len(idx))
    return out


_loaded: dict = {}  # the last model loaded: {"key": ..., "model": ..., "tokenizer": ...}


def clear_loaded() -> None:
    """Forget the model kept in memory between :func:`encode_layers` calls."""
    _loaded.clear()


def _load(ref: ModelRef, device):
    """(tokenizer, model on ``device``, eval mode); the last one is kept so a sweep loads it once."""
    key = (json.dumps(model_identity(ref), sort_keys=True), str(device))
    if _loaded.get("key") != key:
        _loaded.clear()
        tok = load_tokenizer(ref)
        model = _load_quietly(ref)
        check_tokenizer_matches(tok, model.config, ref.spec)
        model.to(device).eval()
        _loaded.update(key=key, model=model, tokenizer=tok)
    return _loaded["tokenizer"], _loaded["model"]


def _load_quietly(ref: ModelRef):
    """AutoModel (base encoder) for ``ref``; MLM heads in checkpoints are dropped without a warning."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return load_model(ref)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
