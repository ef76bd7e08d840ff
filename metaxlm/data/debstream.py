"""Read a .deb's files one at a time, without extracting it: the data.tar is decompressed as a stream
straight from the ar member, so memory holds one member at a time whatever the package size."""

from __future__ import annotations

import io
import lzma
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from metaxlm.data.archive import _data_tar, safe_member_path
from metaxlm.errors import UserError

MAX_MEMBER = 64 << 20  # a single documentation file larger than this is not text we want


class _Window(io.RawIOBase):
    """The byte range ``[off, off + size)`` of an open file, read sequentially."""

    def __init__(self, f, off: int, size: int):
        self.f, self.left = f, size
        f.seek(off)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        if n <= 0:
            return 0
        data = self.f.read(n)
        b[:len(data)] = data
        self.left -= len(data)
        return len(data)


def iter_deb_files(deb: Path, prefixes: tuple[str, ...], suffixes: tuple[str, ...] = ("",)
                   ) -> Iterator[tuple[str, bytes]]:
    """``(path, content)`` of each regular file of ``deb`` under ``prefixes`` ending with ``suffixes``,
    in archive order. A truncated or corrupt data.tar is a UserError naming the package."""
    off, size, comp = _data_tar(deb)
    try:
        with open(deb, "rb") as f:
            raw = io.BufferedReader(_Window(f, off, size), 1 << 20)
            with tarfile.open(fileobj=raw, mode=f"r|{comp}" if comp else "r|") as tar:
                for m in tar:
                    rel = safe_member_path(m.name).as_posix()
                    if not m.isfile() or not rel.startswith(prefixes) or not rel.endswith(suffixes):
                        continue
                    if m.size > MAX_MEMBER:
                        continue
                    yield rel, tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
        raise UserError(f"{deb}: truncated or corrupt data.tar ({e}); delete it and run "
                        "`metaxlm data fetch --refresh`") from None
