"""Run directories: the one place every entry point writes to, and reports read from.

Layout (see README "Run directories")::

    RUN/config.yaml        fully resolved config, written before the first step
    RUN/meta.json          kind, status running/done/failed, seed, versions, git sha, hardware, times
    RUN/metrics.jsonl      one JSON object per line (training curves, timings)
    RUN/checkpoints/...    plain Hugging Face directories (training runs)
    RUN/results/*.json     versioned result objects (``schema_version``)

Every file is written atomically (temporary file + rename). A run whose status is ``done`` is never
overwritten: :func:`create` refuses, and ``resume=True`` on a finished run is refused too.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from metaxlm.config import dump_yaml, to_dict
from metaxlm.errors import UserError

SCHEMA_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_dict(obj), indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p} does not exist") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON (line {e.lineno}): it may be from an interrupted run") from None


def git_sha() -> str | None:
    """The git commit of the metaxlm source tree, or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str]:
    from importlib import metadata

    names = ["metaxlm", "torch", "transformers", "tokenizers", "numpy", "faiss-cpu", "scikit-learn"]
    versions = {"python": platform.python_version()}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return versions


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        pass
    return info


class RunDir:
    """A run directory. Create with :func:`create` (new or resumed) or :func:`open_run` (read)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- paths -------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results_dir(self) -> Path:
        return self.path / "results"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    # -- meta --------------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        return read_json(self.meta_path) if self.meta_path.exists() else {}

    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    def update_meta(self, **fields: Any) -> None:
        meta = self.meta
        meta.update(fields)
        atomic_write_json(self.meta_path, meta)

    def done(self, **fields: Any) -> None:
        self.update_meta(status="done", finished_at=now(), **fields)

    def failed(self, reason: str) -> None:
        self.update_meta(status="failed", failed_at=now(), failure=reason)

    # -- outputs -----------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl (flushed and synced)."""
        line = json.dumps(to_dict(record), ensure_ascii=False, default=str)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> list[dict]:
        return list(iter_metrics(self.path))

    def write_result(self, name: str, payload: dict) -> Path:
        """Write ``results/<name>.json`` with ``schema_version`` first."""
        path = self.results_dir / f"{name}.json"
        atomic_write_json(path, {"schema_version": SCHEMA_VERSION, **payload})
        return path

    def results(self) -> dict[str, dict]:
        if not self.results_dir.is_dir():
            return {}
        return {p.stem: read_json(p) for p in sorted(self.results_dir.glob("*.json"))}


def iter_metrics(run: str | Path) -> Iterator[dict]:
    p = Path(run) / "metrics.jsonl"
    if not p.exists():
        return
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: skip it
                    continue


def create(path: str | Path, config: Any, *, kind: str, seed: int | None, resume: bool = False,
           extra_meta: dict | None = None) -> RunDir:
    """Start (or resume) a run: refuse to overwrite; write config.yaml then meta.json (running).

    - ``path`` absent or empty: a new run.
    - ``path`` holds a finished run: UserError (never overwritten; pick a new name).
    - ``path`` holds an unfinished run: UserError unless ``resume`` (then status goes back to running).
    """
    run = RunDir(path)
    existing = run.meta_path.exists()
    if existing:
        status = run.status
        if status == "done":
            raise UserError(
                f"{run.path} already holds a finished {run.meta.get('kind', '')} run; "
                "choose a new run directory (finished runs are never overwritten)"
            )
        if not resume:
            raise UserError(
                f"{run.path} holds an unfinished run (status {status}); "
                "pass --resume to continue it, or choose a new run directory"
            )
        run.update_meta(status="running", resumed_at=now())
        return run
    if resume:
        raise UserError(f"--resume: {run.path} holds no run to resume; start a new run without --resume")
    if run.path.exists() and any(run.path.iterdir()):
        raise UserError(f"{run.path} exists and is not a metaxlm run directory; choose an empty or new directory")
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.path / "config.yaml", dump_yaml(config))
    meta = {
        "kind": kind,
        "status": "running",
        "seed": seed,
        "created_at": now(),
        "git_sha": git_sha(),
        "versions": library_versions(),
        "hardware": hardware(),
        **(extra_meta or {}),
    }
    atomic_write_json(run.meta_path, meta)
    return run


def open_run(path: str | Path) -> RunDir:
    """Open an existing run directory for reading; a directory without meta.json is a UserError."""
    run = RunDir(path)
    if not run.meta_path.is_file():
        raise UserError(f"{run.path} is not a metaxlm run directory (no meta.json)")
    return run
