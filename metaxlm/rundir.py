"""Run directories: the one place every entry point writes to, and reports read from.

Layout (see README "Run directories")::

    RUN/config.yaml        fully resolved config, written before the first step
    RUN/meta.json          kind, status running/done/failed, seed, versions, git sha, hardware, times
    RUN/metrics.jsonl      one JSON object per line (training curves, timings)
    RUN/checkpoints/...    plain Hugging Face directories (training runs)
    RUN/results/*.json     versioned result objects (``schema_version``)

Every file is written atomically (temporary file + rename) with the mode a plain ``open`` would give
it: 0666/0777 less the umask (:func:`apply_umask`), so a run is as readable as the user's other files.
:meth:`RunDir.attach` adds sinks (trackers, :mod:`metaxlm.trackers`: ``RUN/tb/``, ``RUN/wandb/``) that
get every record :meth:`RunDir.log` writes. A run whose status is ``done`` is never overwritten:
:func:`create` refuses, and ``resume=True`` on a finished run is refused too.

One writer per directory: :func:`create` takes ``RUN/.lock`` (created with ``O_CREAT | O_EXCL``, JSON
with the owner's pid, hostname, start time and command) and the run gives it back when it is marked
done or failed (and at interpreter exit at the latest); :func:`locked` holds one for a ``with`` block
(comparison directories, ``train --resume``). A second writer gets a one-line UserError naming the
owner. A lock whose process is gone (same host, pid no longer running) is stale: it is removed with
a note on stderr and taken. The same process may hold any number of locks (one per directory), so a
comparison can write its steps' run directories inside its own.

An unfinished run that is not resumable (every kind but ``train``: ``eval``, ``probe``, ...) whose
status is ``failed``, or ``running`` with no live writer, is started again by :func:`create`: its old
files move to ``RUN/replaced/<timestamp>/`` (never deleted).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from metaxlm.config import dump_yaml, to_dict
from metaxlm.errors import UserError

SCHEMA_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def current_umask() -> int:
    """This process's umask, read without changing it (Linux ``/proc``; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path | int, is_dir: bool = False) -> None:
    """Give ``path`` (or an open fd) the mode a plain ``open``/``mkdir`` would: 0666/0777 less the umask.

    ``tempfile.mkstemp``/``mkdtemp`` create owner-only files (0600/0700); every atomic writer renames
    such a temporary into place, so without this a run would be unreadable to colleagues.
    """
    mode = (0o777 if is_dir else 0o666) & ~current_umask()
    if isinstance(path, int):
        os.fchmod(path, mode)
    else:
        os.chmod(path, mode)


def apply_umask_tree(root: str | Path) -> None:
    """:func:`apply_umask` on ``root`` and everything under it (for directories written by libraries:
    ``save_pretrained`` writes ``model.safetensors`` owner-only)."""
    root = Path(root)
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            apply_umask(p, is_dir=p.is_dir())


def umask_mkstemp(*, prefix: str, suffix: str = "", dir: str | Path) -> tuple[int, str]:
    """``tempfile.mkstemp`` whose file follows the umask (see :func:`apply_umask`)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
    try:
        apply_umask(fd)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def umask_mkdtemp(*, prefix: str, dir: str | Path) -> str:
    """``tempfile.mkdtemp`` whose directory follows the umask (see :func:`apply_umask`)."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir=dir)
    try:
        apply_umask(tmp, is_dir=True)
    except BaseException:
        os.rmdir(tmp)
        raise
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = umask_mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    from metaxlm.cpuload import decision

    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "openmp": decision()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        pass
    return info


# ---------------------------------------------------------------------------------------------
# One writer per directory: RUN/.lock
# ---------------------------------------------------------------------------------------------

LOCK_NAME = ".lock"
_BREAK_SUFFIX = ".break"  # RUN/.lock.break: held for the instant a stale lock is removed
_UNREADABLE_GRACE_S = 10.0  # a lock file still empty/partial after this long is from a crashed writer
_HELD: dict[str, dict] = {}  # locks this process holds: resolved directory -> {"token", "scoped"}


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    name = Path(argv[0]).name if argv[0] not in ("", "-c", "-m") else "python " + argv[0]
    return shlex.join([name, *argv[1:]])[:300]


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux /proc), so that a reused pid is not taken for the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except OSError:
        return False
    try:  # a zombie (finished, not yet reaped) is not running
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    if start is not None:
        now_start = _proc_start(pid)
        if now_start is not None and now_start != start:
            return False  # the pid was reused by another process
    return True


def _read_lock(lock: Path) -> tuple[bytes | None, dict | None]:
    """(raw bytes, parsed owner); (None, None) when the lock file is gone; (raw, None) when unreadable."""
    try:
        raw = lock.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        owner = json.loads(raw.decode("utf-8"))
        return raw, owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw, None


def _owner_state(owner: dict) -> str:
    """``live`` (a running process holds it), ``stale`` (its process is gone) or ``remote`` (another host)."""
    if owner.get("hostname") != socket.gethostname():
        return "remote"
    pid = owner["pid"]
    if pid == os.getpid():  # not in _HELD (checked first): a previous process that had our pid
        return "stale"
    return "live" if _pid_alive(pid, owner.get("pid_start")) else "stale"


def _in_use(directory: Path, owner: dict | None, remote: bool = False) -> UserError:
    if owner is None:
        return UserError(f"{directory} is being taken by another process (its lock {directory / LOCK_NAME} is "
                         "being written); wait for it or, if that process is gone, rerun (a stale lock is "
                         "detected and removed)")
    who = (f"{directory} is in use by pid {owner.get('pid')} on {owner.get('hostname')} since "
           f"{owner.get('started_at')} (command {owner.get('command')})")
    if remote:
        return UserError(f"{who}; wait for it or, if that process is gone, delete {directory / LOCK_NAME} "
                         "(it was taken on another host, so its process cannot be checked from here)")
    return UserError(f"{who}; wait for it or, if that process is gone, rerun (a stale lock is detected and removed)")


def _break_stale(lock: Path, seen: bytes) -> bool:
    """Remove ``lock`` if it still holds ``seen``; one process at a time (``.lock.break``)."""
    guard = lock.with_name(lock.name + _BREAK_SUFFIX)
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:  # a breaker that died mid-way leaves its guard: old guards are removed
            if time.time() - guard.stat().st_mtime > _UNREADABLE_GRACE_S:
                guard.unlink(missing_ok=True)
        except OSError:
            pass
        time.sleep(0.05)
        return False
    try:
        try:
            if lock.read_bytes() != seen:
                return False  # someone else broke it and took it meanwhile
        except FileNotFoundError:
            return False
        lock.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
        guard.unlink(missing_ok=True)


def lock_owner(path: str | Path) -> dict | None:
    """The live owner of ``path``'s lock when it is another process (None: free, stale or ours)."""
    directory = Path(path)
    if _key(directory) in _HELD:
        return None
    raw, owner = _read_lock(directory / LOCK_NAME)
    if raw is None or owner is None:
        return None
    return owner if _owner_state(owner) in ("live", "remote") else None


def check_not_in_use(path: str | Path) -> None:
    """UserError when another live process holds ``path``'s lock (before moving or deleting it)."""
    owner = lock_owner(path)
    if owner is not None:
        raise _in_use(Path(path), owner, remote=_owner_state(owner) == "remote")


def acquire_lock(path: str | Path, *, command: str | None = None, scoped: bool = False) -> bool:
    """Take ``path/.lock`` for this process; returns False when this process already holds it.

    Creates ``path`` (and parents) if needed. Raises a one-line UserError when another live process
    holds it; a stale lock (same host, its process gone) is removed with a note on stderr and taken.
    """
    directory = Path(path)
    key = _key(directory)
    if key in _HELD:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_NAME
    token = uuid.uuid4().hex
    info = {"pid": os.getpid(), "hostname": socket.gethostname(), "started_at": now(),
            "command": command or _command(), "pid_start": _proc_start(os.getpid()), "token": token}
    data = (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8")
    for _ in range(50):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # less the umask
        except FileExistsError:
            raw, owner = _read_lock(lock)
            if raw is None:
                continue  # released meanwhile: try again
            if owner is None:  # being written right now, or left half-written by a crash
                try:
                    age = time.time() - lock.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < _UNREADABLE_GRACE_S:
                    raise _in_use(directory, None) from None
                if _break_stale(lock, raw):
                    print(f"note: removed an unreadable stale lock {lock}", file=sys.stderr)
                continue
            state = _owner_state(owner)
            if state != "stale":
                raise _in_use(directory, owner, remote=state == "remote") from None
            if _break_stale(lock, raw):
                print(f"note: removed a stale lock on {directory}: pid {owner.get('pid')} on "
                      f"{owner.get('hostname')} (since {owner.get('started_at')}, command {owner.get('command')}) "
                      "is no longer running", file=sys.stderr)
            continue
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _HELD[key] = {"token": token, "scoped": scoped, "lock": str(lock)}
        return True
    raise UserError(f"{directory}: could not take its lock {lock} (other processes keep taking it); retry")


def release_lock(path: str | Path, *, scoped: bool | None = None) -> None:
    """Give back this process's lock on ``path`` (no-op when not held, or held with another ``scoped``)."""
    key = _key(path)
    held = _HELD.get(key)
    if held is None or (scoped is not None and held["scoped"] != scoped):
        return
    del _HELD[key]
    _unlink_if_ours(Path(held["lock"]), held["token"])


def _unlink_if_ours(lock: Path, token: str) -> None:
    _, owner = _read_lock(lock)
    if owner is not None and owner.get("token") == token and owner.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: str | Path, *, command: str | None = None) -> Iterator[Path]:
    """Hold ``path``'s lock for a ``with`` block (released however the block ends)."""
    taken = acquire_lock(path, command=command, scoped=True)
    try:
        yield Path(path)
    finally:
        if taken:
            release_lock(path, scoped=True)


@atexit.register
def _release_all() -> None:
    for key in list(_HELD):
        held = _HELD.pop(key)
        try:
            _unlink_if_ours(Path(held["lock"]), held["token"])
        except OSError:
            pass


def _is_lock_file(p: Path) -> bool:
    return p.name == LOCK_NAME or p.name == LOCK_NAME + _BREAK_SUFFIX


def has_content(path: str | Path) -> bool:
    """``path`` exists and holds anything but lock files."""
    p = Path(path)
    return p.is_dir() and any(not _is_lock_file(c) for c in p.iterdir()) or (p.exists() and not p.is_dir())


class RunDir:
    """A run directory. Create with :func:`create` (new or resumed) or :func:`open_run` (read)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._sinks: list[Any] = []

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
        if not self.meta_path.exists():
            return {}
        from metaxlm.paths import read_json as read_object

        return read_object(self.meta_path, what="run's meta.json",
                           fix="it may be from an interrupted run; move the run directory away")

    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    def update_meta(self, **fields: Any) -> None:
        meta = self.meta
        meta.update(fields)
        atomic_write_json(self.meta_path, meta)

    def done(self, **fields: Any) -> None:
        self.update_meta(status="done", finished_at=now(), **fields)
        self.release()

    def failed(self, reason: str) -> None:
        self.update_meta(status="failed", failed_at=now(), failure=reason)
        self.release()

    def release(self) -> None:
        """Close the attached sinks and give back the lock :func:`create` took (a :func:`locked` block
        keeps its own)."""
        self.close_sinks()
        release_lock(self.path, scoped=False)

    # -- sinks: every logged record also goes to them (trackers: metaxlm.trackers) ---------------
    def attach(self, sink: Any) -> Any:
        """Send every record :meth:`log` writes from now on to ``sink`` too (``sink.log(record)``;
        ``sink.close()`` when the run is done, failed or released). ``None`` is ignored. metrics.jsonl
        stays the source of truth: a sink that raises gets one warning on stderr and is dropped."""
        if sink is not None:
            self._sinks.append(sink)
        return sink

    def close_sinks(self) -> None:
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as e:  # noqa: BLE001 - a tracker must not turn a finished run into a failed one
                print(f"warning: closing {type(sink).__name__} failed: {type(e).__name__}: {e}", file=sys.stderr)

    # -- outputs -----------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl (flushed and synced)."""
        line = json.dumps(to_dict(record), ensure_ascii=False, default=str)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        for sink in list(self._sinks):
            try:
                sink.log(record)
            except Exception as e:  # noqa: BLE001 - metrics.jsonl has the record; the tracker is dropped
                self._sinks.remove(sink)
                print(f"warning: {type(sink).__name__} stopped logging ({type(e).__name__}: {e}); "
                      f"{self.metrics_path} has every record", file=sys.stderr)

    def metrics(self) -> list[dict]:
        return list(iter_metrics(self.path))

    def write_result(self, name: str, payload: dict) -> Path:
        """Write ``results/<name>.json`` with ``schema_version`` first, after checking it against its
        kind's schema (:mod:`metaxlm.results`): a payload that does not fit is a metaxlm bug
        (RuntimeError), and nothing is written."""
        from metaxlm.results import validate_result

        path = self.results_dir / f"{name}.json"
        data = {"schema_version": SCHEMA_VERSION, **payload}
        try:  # what the file will hold (tuples as lists, ...), as a reader will see it
            validate_result(json.loads(json.dumps(to_dict(data), default=str)), str(path))
        except UserError as e:
            raise RuntimeError(f"metaxlm bug: the result about to be written does not fit its schema: {e}") from None
        atomic_write_json(path, data)
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
           extra_meta: dict | None = None, retry: bool | None = None, command: str | None = None) -> RunDir:
    """Start (or resume) a run: take its lock, refuse to overwrite; write config.yaml then meta.json (running).

    - ``path`` absent or empty: a new run.
    - ``path`` holds a finished run: UserError (never overwritten; pick a new name).
    - ``path`` is being written by another live process: UserError naming it (see :func:`acquire_lock`).
    - ``path`` holds an unfinished run and ``resume``: status goes back to running.
    - ``path`` holds an unfinished run, no ``resume``: when ``retry`` (default: every kind but
      ``train``, whose runs are resumed instead) and its status is ``failed`` or ``running`` with no
      live writer, its files move to ``RUN/replaced/<timestamp>/`` and a new run starts; else UserError.

    The lock is given back by :meth:`RunDir.done` / :meth:`RunDir.failed` (or at exit); if this process
    already holds it (a :func:`locked` block), that block keeps it.
    """
    run = RunDir(path)
    retry = kind != "train" if retry is None else retry
    # checks that need no lock first: nothing is created for a refused run
    if run.meta_path.exists() and run.status == "done":
        _refuse_done(run)
    if not run.meta_path.exists():
        if resume:
            raise UserError(f"--resume: {run.path} holds no run to resume; start a new run without --resume")
        if has_content(run.path):
            raise UserError(f"{run.path} exists and is not a metaxlm run directory; choose an empty or new directory")
    fresh = acquire_lock(run.path, command=command)
    try:
        if run.meta_path.exists():  # again, under the lock
            status = run.status
            if status == "done":
                _refuse_done(run)
            if resume:
                run.update_meta(status="running", resumed_at=now())
                return run
            if not (retry and (status == "failed" or (status == "running" and fresh))):
                if retry and status == "running":
                    raise UserError(f"{run.path} holds a run that this process is still writing (status running); "
                                    "let it finish or choose a new run directory")
                raise UserError(
                    f"{run.path} holds an unfinished run (status {status}); "
                    "pass --resume to continue it, or choose a new run directory"
                )
            _set_aside(run, status)
        elif resume:
            raise UserError(f"--resume: {run.path} holds no run to resume; start a new run without --resume")
        elif has_content(run.path):
            raise UserError(f"{run.path} exists and is not a metaxlm run directory; choose an empty or new directory")
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
    except BaseException:
        if fresh:
            release_lock(run.path)
        raise
    return run


def _refuse_done(run: RunDir) -> None:
    raise UserError(
        f"{run.path} already holds a finished {run.meta.get('kind', '')} run; "
        "choose a new run directory (finished runs are never overwritten)"
    )


def _set_aside(run: RunDir, status: str | None) -> Path:
    """Move an unfinished run's files to ``RUN/replaced/<timestamp>/`` (the lock and older replaced/ stay)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = run.path / "replaced" / stamp
    n = 1
    while dest.exists():
        dest = run.path / "replaced" / f"{stamp}-{n}"
        n += 1
    dest.mkdir(parents=True)
    for p in sorted(run.path.iterdir()):
        if p.name == "replaced" or _is_lock_file(p):
            continue
        shutil.move(str(p), str(dest / p.name))
    print(f"note: {run.path} held an unfinished run (status {status}); its files moved to {dest}; "
          "starting it again", file=sys.stderr)
    return dest


def open_run(path: str | Path) -> RunDir:
    """Open an existing run directory for reading; a directory without meta.json is a UserError."""
    run = RunDir(path)
    if not run.meta_path.is_file():
        raise UserError(f"{run.path} is not a metaxlm run directory (no meta.json)")
    return run
