"""Which encoder does a ``--model`` option name? One resolver for eval, probe and compare.

A model spec is one of:

- a metaxlm training run directory (``meta.json`` + ``checkpoints/``): its ``final`` checkpoint, or
  the phase named by ``phase`` / a ``RUN_DIR@PHASE`` suffix (e.g. ``runs/meta@english``);
- a checkpoint directory inside a run (``RUN/checkpoints/english``);
- any local Hugging Face model directory (with ``config.json``);
- a hub id (``xlm-roberta-base``), loaded only when a hub is reachable.

``trust_remote_code`` is never enabled implicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaxlm.errors import UserError, one_line
from metaxlm.paths import read_json


@dataclass(frozen=True)
class ModelRef:
    spec: str  # what the user wrote
    path: str  # local directory or hub id given to from_pretrained
    source: str  # "run" | "local" | "hub"
    phase: str | None = None  # checkpoint name within a run
    run_dir: str | None = None
    revision: str | None = None  # git sha of the training code (runs) or None
    label: str = ""  # short display name

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "path": self.path, "source": self.source, "phase": self.phase,
                "run_dir": self.run_dir, "revision": self.revision, "label": self.label}


def _run_ref(spec: str, run: Path, phase: str | None) -> ModelRef:
    ckpts = run / "checkpoints"
    available = sorted(p.name for p in ckpts.iterdir() if (p / "config.json").is_file()) if ckpts.is_dir() else []
    name = phase or "final"
    if name not in available:
        have = ", ".join(available) or "none yet"
        raise UserError(f"{run}: no checkpoint {name!r} (available: {have}); pick one with RUN@PHASE")
    meta = {}
    if (run / "meta.json").is_file():
        meta = read_json(run / "meta.json", what="run's meta.json",
                         fix="the run directory is damaged; train it again or restore the file")
    check_weights(ckpts / name)
    label = run.name if name == "final" else f"{run.name}@{name}"
    return ModelRef(spec=spec, path=str(ckpts / name), source="run", phase=name, run_dir=str(run),
                    revision=meta.get("git_sha"), label=label)


def check_weights(directory: Path) -> None:
    """Every ``*.safetensors`` file of a model directory must have a sound header (it is read, not the
    weights: milliseconds): a truncated or corrupt file is a UserError naming it, before any run
    directory is made. A sharded model's index must be a JSON object."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        read_json(index, what="weights index", fix="save the model again (save_pretrained) or copy it again")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="numpy"):
                pass
        except Exception as e:  # safetensors raises its own SafetensorError (and OSError)
            if not (_is_library_error(e) or isinstance(e, OSError)):
                raise
            raise UserError(f"corrupt or truncated weights file ({one_line(e)[:200]}) ({f}): save the model "
                            "again (save_pretrained) or copy it again") from None


def _is_library_error(e: BaseException) -> bool:
    """safetensors' SafetensorError, or the plain Exception the tokenizers library (Rust) raises."""
    return type(e).__name__ == "SafetensorError" or type(e) is Exception


def resolve_model(spec: str, phase: str | None = None) -> ModelRef:
    """Resolve a model spec to a :class:`ModelRef` without loading anything (a local model's weight
    files' headers are checked: :func:`check_weights`)."""
    if phase is None and "@" in spec and Path(spec.rsplit("@", 1)[0]).is_dir():
        spec_path, phase = spec.rsplit("@", 1)
    else:
        spec_path = spec
    p = Path(spec_path).expanduser()
    if p.is_dir():
        if (p / "meta.json").is_file() and (p / "checkpoints").is_dir():
            return _run_ref(spec, p, phase)
        if (p / "config.json").is_file():
            run = p.parent.parent if p.parent.name == "checkpoints" else None
            if run is not None and (run / "meta.json").is_file():
                return _run_ref(spec, run, p.name)
            check_weights(p)
            return ModelRef(spec=spec, path=str(p), source="local", label=p.name)
        if (p / "meta.json").is_file():
            raise UserError(f"{p} is a run directory with no checkpoints yet; train it first or pick another model")
        raise UserError(f"{p} is a directory but not a model: it has no config.json "
                        "(give a save_pretrained directory or a metaxlm run directory)")
    if p.exists():
        raise UserError(f"{p} is a file, not a model directory")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UserError(f"model {spec!r} does not exist: give a run directory, a model directory or a hub id")
    return ModelRef(spec=spec, path=spec, source="hub", label=spec.split("/")[-1])


def _from_pretrained(ref: ModelRef, auto_class, what: str, fix: str = "", **kwargs):
    """``auto_class.from_pretrained(ref)`` without remote code; failures become one-line UserErrors."""
    try:
        return auto_class.from_pretrained(ref.path, trust_remote_code=False, **kwargs)
    except Exception as e:
        # a file transformers cannot read shows as OSError/ValueError, or KeyError/TypeError when a JSON
        # file lacks a key or has the wrong type (e.g. tokenizer.json without "added_tokens"), or as
        # safetensors'/tokenizers' own errors
        if not isinstance(e, (OSError, ValueError, KeyError, TypeError)) and not _is_library_error(e):
            raise
        if ref.source == "hub":
            raise UserError(
                f"could not load {ref.spec!r} from the model hub ({type(e).__name__}): no hub is reachable or "
                "the id is wrong; download the model elsewhere and pass its local directory") from None
        detail = one_line(e) if isinstance(e, (OSError, ValueError)) else f"{type(e).__name__}: {one_line(e)}"
        raise UserError(f"{ref.path}: could not load the {what} ({detail[:200]}){fix}") from None


def load_config(ref: ModelRef):
    """AutoConfig for ``ref``."""
    from transformers import AutoConfig

    return _from_pretrained(ref, AutoConfig, "model config")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model", "vocab.txt", "vocab.json")


def load_tokenizer(ref: ModelRef):
    """AutoTokenizer for ``ref``.

    A local directory must hold tokenizer files: given none, transformers builds an empty tokenizer
    (special tokens only) instead of failing, and every evaluation would silently run on it.
    """
    from transformers import AutoTokenizer

    if ref.source != "hub" and not any((Path(ref.path) / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{ref.path}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...); "
                        "save one with tokenizer.save_pretrained into the model directory")
    return _from_pretrained(ref, AutoTokenizer, "tokenizer",
                            "; save one with tokenizer.save_pretrained into the model directory")


def load_model(ref: ModelRef, auto_class=None, **kwargs):
    """Load ``ref`` with ``auto_class`` (default AutoModel)."""
    from transformers import AutoModel

    return _from_pretrained(ref, auto_class or AutoModel, "model", **kwargs)


def check_tokenizer_matches(tokenizer, config, where: str) -> None:
    """A tokenizer with more ids than the model's embedding table cannot be used with it."""
    n = len(tokenizer)
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and n > vocab:
        raise UserError(f"{where}: the tokenizer has {n} tokens but the model's vocabulary has {vocab}; "
                        "use the tokenizer the model was trained with")
