"""Downloads into a checksum-verified cache, index decompression, and path-safe .deb extraction.

Cache layout mirrors the archive: ``<cache>/dists/<release>/...`` and ``<cache>/pool/...``. A file is
only ever visible under its final name once its SHA256 matched: downloads go to ``<name>.part``
(resumed with an HTTP ``Range`` request when a previous attempt was cut), are hashed, then renamed.
A cached file is hashed again before every use (:class:`HashMemo` remembers the SHA256 of files
whose stat has not changed, in ``<cache>/sha256-memo.json``), so a file corrupted in the cache, even
without changing its size, is never used.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.client
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from metaxlm.errors import UserError

CHUNK = 1 << 20
TIMEOUT_S = 60
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
INSTALL_HINT = "apt-get install gpgv debian-archive-keyring"
MEMO_NAME = "sha256-memo.json"
# A file modified less than this long before it was hashed is not memoised: a later write within the
# file system's timestamp granularity could leave its stat unchanged.
RACY_NS = 2_000_000_000

Progress = Callable[[int], None]  # called with the number of new bytes


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, obj) -> None:
    from metaxlm.rundir import umask_mkstemp
    fd, tmp = umask_mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HashMemo:
    """SHA256 of the files under ``root``, remembered by (size, mtime_ns, ctime_ns, inode).

    Kept in ``root/sha256-memo.json``. A remembered hash is used only while the file's stat is
    exactly the one recorded; any change (content, size, ``touch``, a new inode) re-hashes it. A file
    that changed in the :data:`RACY_NS` before it was hashed is hashed again next time.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MEMO_NAME
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data.get("files") if isinstance(data, dict) else None
        except (OSError, ValueError):
            entries = None
        self._entries: dict = entries if isinstance(entries, dict) else {}
        self._dirty = False
        self.hashed = 0  # files actually read in this process (for tests and progress)

    def _key(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(Path(path).absolute())

    @staticmethod
    def _stat(path: Path) -> list[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def sha256(self, path: Path) -> str:
        key = self._key(path)
        sig = self._stat(path)
        e = self._entries.get(key)
        if isinstance(e, dict) and e.get("stat") == sig and isinstance(e.get("sha256"), str):
            return e["sha256"]
        t0 = time.time_ns()
        digest = sha256_file(path)
        self.hashed += 1
        if self._stat(path) == sig and max(sig[1], sig[2]) <= t0 - RACY_NS:
            self._entries[key] = {"stat": sig, "sha256": digest}
            self._dirty = True
        else:
            self.forget(path)
        return digest

    def forget(self, path: Path) -> None:
        if self._entries.pop(self._key(path), None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write the memo (entries of files that no longer exist are dropped); errors are ignored."""
        if not self._dirty:
            return
        files = {k: v for k, v in self._entries.items() if (self.root / k).is_file()}
        try:
            _write_json(self.path, {"format": 1, "files": files})
            self._dirty = False
        except OSError:
            pass  # a memo that cannot be written only costs hashing again next time


def ensure_writable(cache: Path) -> None:
    """Create ``cache`` and check that files can be written in it."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cache directory {cache} is not writable ({e.strerror or e}): "
                        "give another one with --cache or METAXLM_CACHE") from None


def _open_url(url: str, start: int):
    req = urllib.request.Request(url, headers={"User-Agent": "metaxlm"})
    if start and not url.startswith("file:"):
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=TIMEOUT_S)


def _fetch_to_part(url: str, part: Path, progress: Progress | None) -> None:
    """Download ``url`` into ``part``, continuing an existing partial file when the server agrees."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open_url(url, start)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # range not satisfiable: the .part is complete or bigger; start over
            part.unlink()
            return _fetch_to_part(url, part, progress)
        if e.code == 404:
            raise FileNotFoundError(url) from None
        raise UserError(f"archive answered HTTP {e.code} for {url}: check the mirror URL") from None
    except (urllib.error.URLError, OSError) as e:
        if isinstance(getattr(e, "reason", None), FileNotFoundError) or isinstance(e, FileNotFoundError):
            raise FileNotFoundError(url) from None
        reason = getattr(e, "reason", e)
        raise UserError(f"archive unreachable at {url} ({reason}): check the network, or pass --mirror "
                        "with a reachable Debian mirror") from None
    with resp:
        resumed = start and getattr(resp, "status", 200) == 206
        mode = "ab" if resumed else "wb"
        if progress and resumed:
            progress(start)
        expected = resp.headers.get("Content-Length")
        got = 0
        try:
            with open(part, mode) as f:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    f.write(block)
                    got += len(block)
                    if progress:
                        progress(len(block))
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
            raise UserError(f"download of {url} was cut ({e}); run the command again to resume it") from None
        if expected is not None and expected.isdigit() and got < int(expected):
            raise UserError(f"download of {url} was cut after {got:,} of {int(expected):,} bytes; "
                            "run the command again to resume it")


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             progress: Progress | None = None, memo: HashMemo | None = None) -> Path:
    """``dest`` holding ``url``'s content whose SHA256 is ``sha256`` (when given).

    A present ``dest`` with the right hash (hashed again, or taken from ``memo`` while its stat is
    unchanged) is reused without any network access. A cached ``dest`` with another hash is corrupt:
    it is downloaded again, and when that fails (archive unreachable, file gone) the UserError says
    the cached file is corrupt and how to refresh it. A download mismatch is retried once from
    scratch; a second mismatch removes the download and raises a UserError.
    ``FileNotFoundError`` means the archive has no such file (HTTP 404).
    """
    corrupt = None
    if dest.exists():
        got = None if sha256 is None else memo.sha256(dest) if memo else sha256_file(dest)
        if got == sha256:
            if progress and size:
                progress(size)
            return dest
        corrupt = got
        if memo:
            memo.forget(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in (1, 2):
        try:
            _fetch_to_part(url, part, progress)
        except (UserError, FileNotFoundError) as e:
            if corrupt is None:
                raise
            why = "the archive no longer has it" if isinstance(e, FileNotFoundError) else str(e)
            raise UserError(f"cached file {dest} is corrupt (SHA256 {corrupt[:16]}…, expected {sha256[:16]}…) "
                            f"and downloading it again failed ({why}); once the archive is reachable run "
                            "`metaxlm data fetch --refresh` (or delete the file)") from None
        got = sha256_file(part)
        if sha256 is None or got == sha256:
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
        if attempt == 2:
            dest.unlink(missing_ok=True)
            raise UserError(f"checksum mismatch for {url}: expected SHA256 {sha256[:16]}…, got {got[:16]}… "
                            "twice; the mirror may be out of sync, try another with --mirror")
    raise AssertionError("unreachable")


def missing_signature_tools(keyring: Path | None) -> str | None:
    """What is missing to check an InRelease signature (``gpgv``, the keyring), or None."""
    missing = []
    if shutil.which("gpgv") is None:
        missing.append("gpgv")
    if keyring is None:
        missing.append("the archive keyring (none given)")
    elif not Path(keyring).is_file():
        missing.append(f"the archive keyring {keyring}")
    return " and ".join(missing) or None


def gpg_verified_text(inrelease: Path, keyring: Path) -> str:
    """The signed content of ``inrelease`` as ``gpgv`` verified it against ``keyring`` (so text
    outside the signed part can never be read as part of the index). A bad signature is a UserError
    (the index may have been tampered with) and removes ``inrelease`` from the cache."""
    r = subprocess.run(["gpgv", "--keyring", str(Path(keyring).resolve()), "--output", "-", str(inrelease)],
                       capture_output=True)
    if r.returncode != 0:
        inrelease.unlink(missing_ok=True)
        raise UserError(f"InRelease signature check failed with keyring {keyring}: the index may be "
                        "tampered with or the keyring is outdated; try another --mirror")
    return r.stdout.decode("utf-8", "replace")


def gpg_verify(inrelease: Path, keyring: Path | None) -> bool:
    """True when ``gpgv`` and the keyring exist and the signature is good; False when they are absent
    (the caller decides whether that is allowed, see :func:`missing_signature_tools`).

    A bad signature is a UserError (the index may have been tampered with).
    """
    if missing_signature_tools(keyring) is not None:
        return False
    gpg_verified_text(inrelease, keyring)
    return True


# ------------------------------------------------------------------------------------ decompression

def open_index(path: Path) -> Iterator[str]:
    """Decoded lines of an index file, decompressing ``.xz``, ``.bz2``, ``.gz`` by suffix.

    A truncated or corrupt compressed stream is a UserError naming the file.
    """
    opener = {".xz": lzma.open, ".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    try:
        with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
            yield from f
    except (EOFError, lzma.LZMAError, OSError, gzip.BadGzipFile) as e:
        raise UserError(f"index {path} is truncated or corrupt ({e}); delete it and fetch again") from None


# ------------------------------------------------------------------------------------ .deb handling

def ar_members(path: Path) -> dict[str, tuple[int, int]]:
    """``{name: (offset, size)}`` of a Unix ar archive (the .deb container)."""
    out: dict[str, tuple[int, int]] = {}
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise UserError(f"{path} is not a .deb (no ar header): delete it and fetch again")
        while True:
            head = f.read(60)
            if not head:
                break
            if len(head) < 60 or head[58:60] != b"`\n":
                raise UserError(f"{path}: malformed ar member header; the .deb is truncated or corrupt")
            name = head[:16].decode("ascii", "replace").strip().rstrip("/")
            try:
                size = int(head[48:58].decode("ascii").strip())
            except ValueError:
                raise UserError(f"{path}: malformed ar member size; the .deb is corrupt") from None
            out[name] = (f.tell(), size)
            f.seek(size + (size & 1), io.SEEK_CUR)
    return out


def _data_tar(path: Path) -> tuple[int, int, str]:
    members = ar_members(path)
    if "debian-binary" not in members:
        raise UserError(f"{path}: unexpected .deb layout (no debian-binary member)")
    data = [n for n in members if n.startswith("data.tar")]
    if len(data) != 1:
        raise UserError(f"{path}: unexpected .deb layout (members: {', '.join(members)})")
    name = data[0]
    comp = {"data.tar": "", "data.tar.xz": "xz", "data.tar.gz": "gz", "data.tar.bz2": "bz2"}.get(name)
    if comp is None:
        raise UserError(f"{path}: {name} uses a compression Python's standard library cannot read "
                        "(only xz, gz, bz2 and none are supported)")
    off, size = members[name]
    return off, size, comp


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path for a tar member; absolute paths and ``..`` are a UserError."""
    p = PurePosixPath(name)
    parts = [x for x in p.parts if x not in (".", "")]
    if p.is_absolute() or ".." in parts:
        raise UserError(f"archive member {name!r} points outside the target directory; refusing to extract")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def extraction_ok(target: Path, memo: HashMemo | None = None, deb_sha256: str | None = None) -> bool:
    """True when ``target`` is a finished extraction whose files are exactly those listed in its
    ``.complete`` file, each with its recorded SHA256 (and, when given, extracted from ``deb_sha256``)."""
    try:
        listing = json.loads((target / ".complete").read_text(encoding="utf-8"))
        files = listing["files"]
        if not isinstance(files, dict) or (deb_sha256 is not None and listing.get("deb_sha256") != deb_sha256):
            return False
        present = set()
        for d, dirs, names in os.walk(target):
            for n in names + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
                rel = Path(d, n).relative_to(target).as_posix()
                if rel != ".complete":
                    present.add(rel)
        if present != set(files):
            return False
        for rel, digest in files.items():
            p = target / rel
            if p.is_symlink() or (memo.sha256(p) if memo else sha256_file(p)) != digest:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def extract_deb(deb: Path, target: Path, prefixes: tuple[str, ...], suffixes: tuple[str, ...] = ("",),
                memo: HashMemo | None = None, deb_sha256: str | None = None) -> Path:
    """Extract regular files under ``prefixes`` (e.g. ``usr/share/help/``) whose names end with one
    of ``suffixes`` from the .deb's data.tar.

    Idempotent: a finished extraction lists every file and its SHA256 in ``.complete``; it is reused
    only while it holds exactly those files with those hashes (:func:`extraction_ok`), else it is
    extracted again. Work happens in a temporary sibling directory renamed into place, so a cut run
    leaves nothing half-written. Members that would land outside ``target`` are refused; links and
    devices are skipped.
    """
    if (target / ".complete").exists() and extraction_ok(target, memo, deb_sha256):
        return target
    off, size, comp = _data_tar(deb)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sums: dict[str, str] = {}
    try:
        with open(deb, "rb") as f:
            f.seek(off)
            blob = f.read(size)
        mode = f"r:{comp}" if comp else "r:"
        with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as tar:
            for m in tar:
                rel = safe_member_path(m.name)
                if not m.isfile() or not str(rel).startswith(prefixes) or not str(rel).endswith(suffixes):
                    continue
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                h = hashlib.sha256()
                with open(out, "wb") as w:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        h.update(block)
                        w.write(block)
                sums[rel.as_posix()] = h.hexdigest()
    except (tarfile.TarError, EOFError, lzma.LZMAError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{deb}: unexpected .deb layout or corrupt data.tar ({e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".complete").write_text(json.dumps({"format": 2, "deb_sha256": deb_sha256 or sha256_file(deb),
                                               "files": dict(sorted(sums.items()))}, indent=0) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target
