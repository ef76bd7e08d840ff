"""One rich progress display shared by everything running in a process.

Long work does ``with progress.task("pretrain meta", total=steps) as t: ... t.advance(1, loss=...)``.
When an outer command (``metaxlm compare``) already shows a display, inner tasks appear as extra
rows of it instead of fighting for the terminal. ``METAXLM_PROGRESS=0`` turns bars off.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

_active = None  # the running rich Progress, if any


class _Task:
    def __init__(self, prog, task_id):
        self._prog, self._id = prog, task_id

    def advance(self, n: float = 1, **fields: Any) -> None:
        if self._prog is not None:
            if fields:
                self._prog.update(self._id, advance=n, info=_fmt(fields))
            else:
                self._prog.update(self._id, advance=n)

    def update(self, completed: float | None = None, total: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        if self._prog is None:
            return
        kw: dict[str, Any] = {}
        if description is not None:
            kw["description"] = description
        if completed is not None:
            kw["completed"] = completed
        if total is not None:
            kw["total"] = total
        if fields:
            kw["info"] = _fmt(fields)
        self._prog.update(self._id, **kw)


def _fmt(fields: dict) -> str:
    parts = []
    for k, v in fields.items():
        if isinstance(v, float):
            v = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        parts.append(f"{k} {v}")
    return "  ".join(parts)


def enabled() -> bool:
    return os.environ.get("METAXLM_PROGRESS", "1") != "0"


def _new_progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        transient=False,
    )


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[_Task]:
    """A progress row for ``description``; nested calls share the outermost display."""
    global _active
    if not enabled():
        yield _Task(None, None)
        return
    owner = _active is None
    if owner:
        _active = _new_progress()
        _active.start()
    prog = _active
    tid = prog.add_task(description, total=total, info="")
    try:
        yield _Task(prog, tid)
    finally:
        if owner:
            prog.stop()
            _active = None
        else:
            prog.remove_task(tid)
