"""Where a model runs and in what precision: the one place a ``--device`` string is understood.

- :func:`check_device` validates the spelling (``auto``, ``cpu``, ``cuda``, ``cuda:N``) without
  importing torch; configs call it in their checks.
- :func:`resolve_device` turns it into a ``torch.device``: ``auto`` (or None) is CUDA when torch sees a
  GPU, else the CPU; ``cuda`` / ``cuda:N`` with no such GPU is a :class:`~metaxlm.errors.UserError`.
  Runners call it before they write a run directory.
- :func:`pick_precision`: ``fp32`` on the CPU; on a GPU ``bf16`` autocast where the GPU computes
  bf16 natively, else ``fp16`` autocast with a :func:`grad_scaler` for training.
- :func:`autocast` is the matching context manager (a no-op for ``fp32``), :func:`device_meta` what
  a run's ``meta.json`` records.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from metaxlm.errors import UserError

CHOICES = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
HELP = f"Where the model runs: {CHOICES}; bf16 (or fp16) autocast on a GPU, fp32 on the CPU."
_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(spec: Any) -> str:
    """The device string, validated (None means ``auto``); an unknown one is a UserError."""
    text = "auto" if spec is None else str(spec)
    if not _SPEC.fullmatch(text):
        raise UserError(f"--device {text}: not a device; choose {CHOICES}")
    return text


def resolve_device(spec: Any = "auto", *, index: int | None = None):
    """The ``torch.device`` to run on (CUDA devices always with their number, e.g. ``cuda:0``).

    ``spec``: ``auto``/None, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``. ``index`` picks the
    GPU for ``auto``/``cuda`` (one process per GPU: its local rank); default the current CUDA device.
    """
    import torch

    text = check_device(spec)
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"--device {text}: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                        "use --device cpu or auto")
    n = torch.cuda.device_count()
    gpu = int(text.split(":")[1]) if ":" in text else (torch.cuda.current_device() if index is None else index)
    if gpu >= n:
        raise UserError(f"--device {text}: torch sees {n} GPU(s), numbered 0..{n - 1}; "
                        "pick one of those (or check CUDA_VISIBLE_DEVICES)")
    return torch.device("cuda", gpu)


def pick_precision(device, requested: str = "auto") -> str:
    """``fp32`` on the CPU; on CUDA ``requested``, or for ``auto`` bf16 where the GPU has it natively
    (compute capability 8.0 and up, or ROCm's own check), else fp16."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    if requested != "auto":
        return requested
    if torch.version.hip:
        native = torch.cuda.is_bf16_supported()
    else:
        native = torch.cuda.get_device_capability(device) >= (8, 0)
    return "bf16" if native else "fp16"


def autocast(device, precision: str):
    """Mixed-precision autocast for ``precision`` on ``device`` (nothing for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(precision: str):
    """A ``torch.amp.GradScaler`` for fp16 training (loss scaling), else None."""
    import torch

    return torch.amp.GradScaler("cuda") if precision == "fp16" else None


def device_meta(device, precision: str | None = None) -> dict:
    """What a run records: ``{"device": "cuda:0", "precision": "bf16", "gpu": NAME}`` (no ``gpu`` on CPU)."""
    import torch

    device = torch.device(device)
    meta: dict[str, Any] = {"device": str(device), "precision": precision or pick_precision(device)}
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    return meta
