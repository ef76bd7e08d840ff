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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaxlm.errors import UserError


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
        meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
    label = run.name if name == "final" else f"{run.name}@{name}"
    return ModelRef(spec=spec, path=str(ckpts / name), source="run", phase=name, run_dir=str(run),
                    revision=meta.get("git_sha"), label=label)


def resolve_model(spec: str, phase: str | None = None) -> ModelRef:
    """Resolve a model spec to a :class:`ModelRef` without loading anything."""
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
    except (OSError, ValueError) as e:
        if ref.source == "hub":
            raise UserError(
                f"could not load {ref.spec!r} from the model hub ({type(e).__name__}): no hub is reachable or "
                "the id is wrong; download the model elsewhere and pass its local directory") from None
        raise UserError(f"{ref.path}: could not load the {what} ({str(e).splitlines()[0][:200]}){fix}") from None


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
