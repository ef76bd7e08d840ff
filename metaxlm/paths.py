"""Default locations (the download cache, the default benchmark) and the checks of paths given to
metaxlm: :func:`check_output` (an output location that can be written) and :func:`read_json` (a JSON
file of the expected type)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$METAXLM_CACHE``, else ``$XDG_CACHE_HOME/metaxlm``, else ``~/.cache/metaxlm``."""
    if os.environ.get("METAXLM_CACHE"):
        return Path(os.environ["METAXLM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "metaxlm"


def default_benchmark_dir() -> Path:
    """Where ``metaxlm data build`` writes, and where train/eval/probe look by default.

    ``$METAXLM_BENCHMARK`` overrides it.
    """
    if os.environ.get("METAXLM_BENCHMARK"):
        return Path(os.environ["METAXLM_BENCHMARK"]).expanduser()
    return cache_dir() / "benchmark"


def check_output(path: str | Path, kind: str = "run directory", *, file: bool = False,
                 option: str = "--out") -> Path:
    """Refuse an output location that cannot be written, before any work; returns it (``~`` expanded).

    ``kind`` names it in the message ("run directory", "report file", ...); ``file=True`` for a file
    (written atomically beside itself), else a directory. Refused: a directory that exists as a file
    (or a file that exists as a directory), a path below a file, and a location whose nearest
    existing directory is not writable (permissions, read-only file system). Whether an existing
    directory may be reused (a finished or foreign run) is :func:`metaxlm.rundir.create`'s decision.
    """
    from metaxlm.errors import UserError

    p = Path(path).expanduser()
    if file and p.is_dir():
        raise UserError(f"the {kind} is an existing directory ({p}): give a file path with {option}")
    if not file and os.path.lexists(p) and not p.is_dir():
        raise UserError(f"the {kind} is an existing file, not a directory ({p}): choose another {option}, "
                        "or move the file away")
    anc = p.parent if os.path.lexists(p) else p
    while not os.path.lexists(anc) and anc != anc.parent:
        anc = anc.parent
    if os.path.lexists(anc) and not anc.is_dir():
        raise UserError(f"the {kind} would be below a file, not a directory ({anc}, for {p}): "
                        f"choose another {option}, or move the file away")
    target = p if (not file and p.is_dir()) else anc
    if not os.access(target, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        if read_only:
            raise UserError(f"the {kind} is on a read-only file system ({target}): choose another {option} "
                            "on a writable disk")
        raise UserError(f"the {kind} cannot be written: permission denied ({target}): choose another "
                        f"{option}, or change the directory's permissions")
    return p


def read_json(path: str | Path, *, expect: type | tuple = dict, what: str = "file",
              fix: str = "write it again with the command that made it") -> object:
    """The JSON value in ``path``; a missing file, bad bytes, invalid JSON or a value of another type
    than ``expect`` (``dict``: a JSON object, ``list``: an array) is a one-line UserError naming it."""
    import json

    from metaxlm.errors import UserError

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"the {what} does not exist ({p}): {fix}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"the {what} is not UTF-8 text (byte offset {e.start}) ({p}): {fix}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"the {what} is not valid JSON (line {e.lineno}: {e.msg}) ({p}): {fix}") from None
    if expect is not None and not isinstance(data, expect):
        kinds = {dict: "a JSON object", list: "a JSON array", str: "a string", int: "a number", float: "a number",
                 bool: "a boolean", type(None): "null"}
        want = " or ".join(kinds.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise UserError(f"the {what} holds {kinds.get(type(data), type(data).__name__)} where {want} is "
                        f"expected ({p}): {fix}")
    return data
