"""The one error type for bad input, and the one translation of the OS's and libraries' errors into it.

Raise :class:`UserError` with one line that says what is wrong, where, and how to fix it. The CLI
prints it as ``error: <message>`` and exits with code 2; Python callers get the exception.

:func:`as_user_error` is the boundary's list of failures that are the user's input or machine, not
a bug, although the code that met them did not raise a UserError: the OS's file errors that name a
path (a file where a directory is needed, permission denied, a read-only or full disk, ...), a
corrupt ``.safetensors`` file, invalid JSON, text that is not UTF-8, and the ``tokenizers``
library's file errors. Each becomes ``<what> (<path>): <how to fix>``. Anything else is a bug and
keeps its traceback (exit code 1). ``METAXLM_DEBUG=1`` shows the traceback of translated errors too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import traceback
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (a file, an option, a config key). Exit code 2 in the CLI."""

    exit_code = 2


def one_line(message: object) -> str:
    """``message`` as one line (the lines of a multi-line message joined with '; ')."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts)


def debug() -> bool:
    """``METAXLM_DEBUG`` set (and not 0): translated errors keep their traceback."""
    return os.environ.get("METAXLM_DEBUG", "") not in ("", "0")


# errno -> (what, how to fix)
_FIX_WRITE = "choose another location (--out), or change its permissions"
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOTDIR: ("a file is in the way where a directory is needed",
                    "choose another location (--out), or move the file away"),
    errno.EEXIST: ("already exists", "choose a new path (--out), or move the existing one away"),
    errno.ENOTEMPTY: ("the directory is not empty", "choose a new or empty directory (--out)"),
    errno.EISDIR: ("is a directory where a file is expected", "give a file path, not a directory"),
    errno.EACCES: ("permission denied", _FIX_WRITE),
    errno.EPERM: ("operation not permitted", _FIX_WRITE),
    errno.EROFS: ("read-only file system", "choose a location on a writable file system (--out)"),
    errno.ENOSPC: ("no space left on the device", "free some space, or write to another disk (--out)"),
    errno.EDQUOT: ("disk quota exceeded", "free some space, or write to another disk (--out)"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ELOOP: ("too many levels of symbolic links", "fix the symbolic links in the path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
}
# these are the machine's state, not a path's: translated even when the error names no file
_NO_PATH_NEEDED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# the destination of a rename/link is the path that matters for these
_DESTINATION_ERRNOS = {errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR}

# the messages the tokenizers library (Rust, plain ``Exception``) gives for a bad or missing file
_TOKENIZERS_MESSAGE = re.compile(
    r"( at line \d+ column \d+$|^data did not match any variant|\(os error \d+\)$|^EOF while parsing)")

# local variable names that hold a path in the frames of a traceback (besides any Path object)
_PATH_NAMES = {"path", "p", "file", "filename", "fname", "src", "source", "checkpoint_file",
               "resolved_archive_file", "tokenizer_file", "vocab_file", "config_file", "json_file"}


def _blocking_file(path: str) -> str | None:
    """The first existing component of ``path`` (from the root) that is not a directory."""
    p = Path(path)
    for anc in [*reversed(p.parents), p]:
        if os.path.lexists(anc) and not anc.is_dir():
            return str(anc)
    return None


def _os_error(e: OSError) -> UserError | None:
    known = _OS_ERRORS.get(e.errno)
    if known is None:
        return None
    path = e.filename2 if (e.errno in _DESTINATION_ERRNOS and e.filename2 is not None) else e.filename
    if not isinstance(path, (str, bytes, os.PathLike)):  # none, or a file descriptor
        path = None
    if path is None and e.errno not in _NO_PATH_NEEDED:
        return None
    what, fix = known
    path = os.fsdecode(path) if path is not None else None
    if e.errno in (errno.ENOTDIR, errno.EEXIST) and path is not None:
        blocker = _blocking_file(path)
        if blocker is not None and (blocker != path or e.errno == errno.ENOTDIR):
            what = "a file is in the way where a directory is needed"
            if blocker != path:
                what += f" (for {path})"
            path, fix = blocker, "choose another location (--out), or move the file away"
        elif e.errno == errno.EEXIST:
            what = "already exists as a directory" if os.path.isdir(path) else "already exists as a file"
    if e.errno in (errno.EACCES, errno.EPERM) and path is not None and os.path.exists(path) \
            and not os.access(path, os.R_OK):
        fix = "make it readable (chmod), or give another path"
    return UserError(f"{what} ({path}): {fix}" if path is not None else f"{what}: {fix}")


def file_in_traceback(tb, suffixes: tuple[str, ...] = ()) -> str | None:
    """The file a failure was reading, from the innermost frame of ``tb`` holding a local Path (or a
    str named like a path) of an existing file (ending in one of ``suffixes`` when given)."""
    frames = [f for f, _ in traceback.walk_tb(tb)]
    for frame in reversed(frames):
        for name, v in list(frame.f_locals.items()):
            if not (isinstance(v, Path) or (isinstance(v, str) and name in _PATH_NAMES)):
                continue
            s = os.fspath(v)
            if not s or len(s) > 4096 or "\0" in s or (suffixes and not s.endswith(suffixes)):
                continue
            try:
                if os.path.isfile(s):
                    return s
            except (OSError, ValueError):
                continue
    return None


def _where(exc: BaseException, suffixes: tuple[str, ...] = ()) -> str:
    path = file_in_traceback(exc.__traceback__, suffixes)
    return f" ({path})" if path else ""


def as_user_error(exc: BaseException) -> UserError | None:
    """The UserError that ``exc`` stands for, or None when it is a bug (see the module docstring)."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, json.JSONDecodeError):
        return UserError(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}){_where(exc)}: "
                         "fix the file, or write it again with the command that made it")
    if isinstance(exc, UnicodeDecodeError):
        return UserError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})"
                         f"{_where(exc)}: convert the file to UTF-8")
    if type(exc).__name__ == "SafetensorError":
        return UserError(f"corrupt or truncated weights file ({one_line(exc)}){_where(exc, ('.safetensors',))}: "
                         "save the model again (save_pretrained) or copy it again")
    if type(exc) is Exception and _TOKENIZERS_MESSAGE.search(one_line(exc)):
        return UserError(f"the tokenizers library could not read a file ({one_line(exc)})"
                         f"{_where(exc, ('.json',))}: save the tokenizer again (save_pretrained)")
    return None
