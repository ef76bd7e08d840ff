"""Trackers: the records a run logs to ``metrics.jsonl``, mirrored to TensorBoard or Weights & Biases.

``metrics.jsonl`` stays the source of truth. A tracker is a sink attached to the run
(:meth:`metaxlm.rundir.RunDir.attach`): every record :meth:`~metaxlm.rundir.RunDir.log` writes also
goes to it, as scalars at the record's ``step`` (:func:`record_scalars`: each number, nested dicts
flattened, tag ``<type>/<field>[/<key>]``, e.g. ``train/loss``, ``val/val_loss/de``,
``train/tokens_seen_by_lang/en``; strings, booleans and None are left out). It is closed when the run
is done, failed or released.

- ``tensorboard``: event files in ``RUN/tb/`` (torch's ``SummaryWriter``); ``tensorboard --logdir RUN/tb``.
- ``wandb``: ``RUN/wandb/``, offline unless ``WANDB_MODE`` says otherwise (``WANDB_MODE=online``;
  ``WANDB_PROJECT``, default ``metaxlm``); the W&B run id is kept in ``RUN/wandb/metaxlm-run-id`` so
  that a resumed run continues the same W&B run. Offline runs are uploaded with ``wandb sync``.

Resume (``after_step=S``: the run continues after step ``S``, whose records ``metrics.jsonl`` keeps):
TensorBoard hides the events of steps after ``S`` written before the interruption (``purge_step``),
so every step appears once; W&B resumes the same run id.

Any entry point wires a tracker in two lines::

    from metaxlm.trackers import open_tracker
    run.attach(open_tracker(kind, run))      # kind "none" gives None, which attach ignores

A missing package is a :class:`~metaxlm.errors.UserError` naming the pip command;
:func:`check_tracker` says so before anything is written.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from metaxlm.errors import UserError

TRACKERS = ("none", "tensorboard", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_tracker(kind: str | None, where: str = "tracker") -> None:
    """UserError when ``kind`` is unknown or its package is not installed (nothing is written)."""
    if kind in (None, "none"):
        return
    if kind not in TRACKERS:
        raise UserError(f"{where} {kind!r} is unknown; choose one of {', '.join(TRACKERS)}")
    pkg = _PACKAGE[kind]
    if importlib.util.find_spec(pkg) is None:
        extra = " (or `pip install -e \".[track]\"`)" if kind == "tensorboard" else ""
        raise UserError(f"{where} {kind}: the {pkg} package is not installed; install it with "
                        f"`pip install {pkg}`{extra}, or use {where} none")


def record_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one metrics record: ``{"<type>/<field>[/<key>...]": value}`` (pure)."""
    prefix = str(record.get("type") or "metrics")
    out: dict[str, float] = {}

    def walk(tag: str, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, numbers.Real):
            out[tag] = float(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{tag}/{k}", v)

    for key, value in record.items():
        if key not in ("type", "step"):
            walk(f"{prefix}/{key}", value)
    return out


class _Steps:
    """The step of a record: its ``step`` field, else one more than the last one seen."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, record: Mapping[str, Any]) -> int:
        step = record.get("step")
        if isinstance(step, numbers.Integral) and not isinstance(step, bool):
            self.last = int(step)
        else:
            self.last += 1
        return self.last


def _summary_writer() -> Callable[..., Any]:
    check_tracker("tensorboard")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise UserError(f"tracker tensorboard: torch.utils.tensorboard cannot be imported ({e}); reinstall "
                        "with `pip install tensorboard`") from None
    return SummaryWriter


class TensorBoardSink:
    """Scalars of every record into TensorBoard event files under ``logdir``.

    ``purge_step``: events of this step and later, left by an interrupted run, are hidden.
    ``writer_factory`` (tests): called as ``writer_factory(log_dir=..., purge_step=...)``; it must
    give an object with ``add_scalar(tag, value, global_step)``, ``flush()`` and ``close()``.
    """

    def __init__(self, logdir: str | Path, *, purge_step: int | None = None,
                 writer_factory: Callable[..., Any] | None = None):
        factory = writer_factory or _summary_writer()
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.writer = factory(log_dir=str(self.logdir), purge_step=purge_step)
        self._step = _Steps()

    def log(self, record: Mapping[str, Any]) -> None:
        step = self._step(record)
        for tag, value in record_scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()  # one write per record: a live `tensorboard --logdir` sees it at once

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """Scalars of every record into a Weights & Biases run whose files are in ``RUN/wandb/``."""

    ID_FILE = "metaxlm-run-id"

    def __init__(self, run_path: str | Path, *, config: Mapping[str, Any] | None = None, module: Any = None):
        if module is None:
            check_tracker("wandb")
            import wandb as module
        from metaxlm.rundir import atomic_write_text

        run_path = Path(run_path)
        directory = run_path / "wandb"
        directory.mkdir(parents=True, exist_ok=True)
        id_file = directory / self.ID_FILE
        run_id = id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else ""
        if not run_id:
            run_id = uuid.uuid4().hex[:12]
            atomic_write_text(id_file, run_id + "\n")
        self.run = module.init(dir=str(run_path), project=os.environ.get("WANDB_PROJECT", "metaxlm"),
                               name=run_path.name, id=run_id, resume="allow",
                               mode=os.environ.get("WANDB_MODE") or "offline", config=dict(config or {}))
        self._step = _Steps()

    def log(self, record: Mapping[str, Any]) -> None:
        step = self._step(record)
        scalars = record_scalars(record)
        if scalars:
            self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def open_tracker(kind: str | None, run: Any, *, after_step: int | None = None,
                 config: Mapping[str, Any] | None = None) -> TensorBoardSink | WandbSink | None:
    """The sink of ``kind`` for the run directory ``run`` (a RunDir or a path), or None for ``none``.

    ``after_step``: the run resumes after this step (its later records are logged again);
    ``config``: the run's config, given to W&B.
    """
    check_tracker(kind)
    if kind in (None, "none"):
        return None
    path = Path(getattr(run, "path", run))
    if kind == "tensorboard":
        return TensorBoardSink(path / "tb", purge_step=None if after_step is None else after_step + 1)
    return WandbSink(path, config=config)
