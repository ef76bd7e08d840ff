"""Checkpoints (plain Hugging Face directories) and the full training state for exact resume.

- ``RUN/checkpoints/<name>/``: ``model.safetensors`` + ``config.json`` + tokenizer files +
  ``checkpoint.json`` (step, tokens seen). Loadable by ``AutoModelForMaskedLM`` / ``AutoTokenizer``.
- ``RUN/state/state.pt``: model, optimizer, schedule position, RNG states (torch, CUDA, numpy, python),
  the data position (the step: batches are a pure function of seed and step), log accumulators.
  It holds only tensors and plain Python values (numpy's RNG state is stored as a tensor) and is
  read with ``torch.load(weights_only=True)``, whose unpickler refuses every global outside torch's
  tensor allow-list: a crafted state file cannot run code, it is refused with a UserError.

Both are written to a temporary name and renamed, so a kill never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def save_checkpoint(model, tokenizer, directory: Path, info: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    from transformers.utils import logging as hf_logging

    from metaxlm.train.tokenizer import save_tokenizer

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(tmp))
        save_tokenizer(tokenizer, tmp)
        (tmp / "checkpoint.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return directory


def rng_state() -> dict[str, Any]:
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> dict[str, Any]:
    """The saved training state; anything but tensors and plain values is refused (no code runs)."""
    import pickle

    import torch

    from metaxlm.errors import UserError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not a training state metaxlm can load safely ({first[:160]}); it was not "
                        "loaded and no code in it ran; delete the state/ folder to restart the run from its "
                        "beginning, or restore the file") from None
