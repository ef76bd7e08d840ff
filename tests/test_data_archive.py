"""Downloads (local HTTP server on 127.0.0.1), the cache, and path-safe .deb extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest

from data_mirror import _ar, _tar_xz, make_deb
from metaxlm.data.archive import download, ensure_writable, extract_deb, open_index, safe_member_path
from metaxlm.errors import UserError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[tuple[str, str | None]] = []
    corrupt: set[str] = set()  # paths served with one flipped byte
    cut: dict[str, int] = {}  # path -> serve only this many bytes once (then close)

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        if self.path in self.corrupt:
            data = bytes([data[0] ^ 1]) + data[1:]
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.cut:
            n = self.cut.pop(self.path)
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.log, _Handler.corrupt, _Handler.cut = {}, [], set(), {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_download_verifies_and_reuses_offline(server, tmp_path):
    url, h = server
    h.files["/f"] = PAYLOAD
    dest = tmp_path / "c" / "f"
    download(url + "/f", dest, sha(PAYLOAD), len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and not dest.with_name("f.part").exists()
    h.files.clear()  # the archive is gone: the cached file is reused without a request
    n = len(h.log)
    download(url + "/f", dest, sha(PAYLOAD))
    assert len(h.log) == n


def test_download_resumes_a_cut_transfer(server, tmp_path):
    url, h = server
    h.files["/f"] = PAYLOAD
    h.cut["/f"] = 300_000
    dest = tmp_path / "f"
    with pytest.raises(UserError, match="run the command again to resume"):
        download(url + "/f", dest, sha(PAYLOAD))
    part = dest.with_name("f.part")
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD) and not dest.exists()
    download(url + "/f", dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert h.log[-1][1] == f"bytes={part.stat().st_size if part.exists() else 300_000}-"


def test_checksum_mismatch_retries_once_then_fails_clean(server, tmp_path):
    url, h = server
    h.files["/f"] = PAYLOAD
    h.corrupt.add("/f")
    dest = tmp_path / "f"
    with pytest.raises(UserError, match="checksum mismatch .* twice"):
        download(url + "/f", dest, sha(PAYLOAD))
    assert len(h.log) == 2
    assert list(tmp_path.iterdir()) == []  # no corrupt file, no .part left


def test_a_corrupted_cache_entry_is_fetched_again(server, tmp_path):
    url, h = server
    h.files["/f"] = PAYLOAD
    dest = tmp_path / "f"
    dest.write_bytes(b"garbage")
    download(url + "/f", dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_archive(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(UserError, match="archive unreachable"):
        download(f"http://127.0.0.1:{port}/f", tmp_path / "f", "0" * 64)


def test_missing_file_is_file_not_found(server, tmp_path):
    url, _ = server
    with pytest.raises(FileNotFoundError):
        download(url + "/nope", tmp_path / "nope")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_non_writable_cache(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="not writable"):
        ensure_writable(ro / "cache")


def test_non_writable_cache_path_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not writable"):
        ensure_writable(tmp_path / "file" / "cache")


def test_truncated_compressed_index(tmp_path):
    import lzma
    blob = lzma.compress(b"Package: a\n" * 10000)
    p = tmp_path / "Packages.xz"
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        list(open_index(p))


# ------------------------------------------------------------------------------------ .deb

def test_extract_deb_only_wanted_files(tmp_path):
    deb = tmp_path / "x.deb"
    deb.write_bytes(make_deb({"usr/share/help/C/a.page": b"<page/>", "usr/share/help/C/fig.png": b"png",
                              "usr/bin/tool": b"elf"}))
    out = extract_deb(deb, tmp_path / "out", ("usr/share/help/",), (".page",))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".complete", "usr/share/help/C/a.page"]
    assert extract_deb(deb, out, ("usr/",)) == out  # finished: reused as is


def _evil_tar(name: str, kind=tarfile.REGTYPE, link: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        data = b"pwned"
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["usr/share/help/../../../../escape.txt", "/usr/share/help/abs.txt"])
def test_extract_refuses_path_traversal(tmp_path, name):
    deb = tmp_path / "evil.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar_xz({})), ("data.tar.xz", _evil_tar(name))]))
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(UserError, match="outside the target directory"):
        extract_deb(deb, target, ("usr/share/help/",))
    assert not target.exists() and not (tmp_path / "escape.txt").exists()
    assert not list(tmp_path.rglob("escape.txt")) and not list(tmp_path.rglob("abs.txt"))


def test_extract_skips_links(tmp_path):
    deb = tmp_path / "link.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar_xz({})),
                         ("data.tar.xz", _evil_tar("usr/share/help/x.page", tarfile.SYMTYPE, "/etc/passwd"))]))
    out = extract_deb(deb, tmp_path / "out", ("usr/share/help/",))
    assert not (out / "usr/share/help/x.page").exists()


@pytest.mark.parametrize("members, needle", [
    ([("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.zst", b"x")], "compression"),
    ([("control.tar.xz", b""), ("data.tar.xz", b"x")], "no debian-binary"),
    ([("debian-binary", b"2.0\n"), ("control.tar.xz", b"")], "unexpected .deb layout"),
    ([("debian-binary", b"2.0\n"), ("data.tar.xz", b"not xz at all")], "corrupt data.tar"),
])
def test_deb_with_unexpected_layout(tmp_path, members, needle):
    deb = tmp_path / "bad.deb"
    deb.write_bytes(_ar(members))
    with pytest.raises(UserError, match=needle):
        extract_deb(deb, tmp_path / "out", ("usr/",))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_not_an_ar_archive(tmp_path):
    deb = tmp_path / "bad.deb"
    deb.write_bytes(b"PK\x03\x04 zip")
    with pytest.raises(UserError, match="not a .deb"):
        extract_deb(deb, tmp_path / "out", ("usr/",))


def test_safe_member_path():
    assert safe_member_path("./usr/share/x").as_posix() == "usr/share/x"
    for bad in ("../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(UserError):
            safe_member_path(bad)


def test_gpg_verify(tmp_path):
    import shutil

    from metaxlm.data.archive import DEFAULT_KEYRING, gpg_verify

    fake = tmp_path / "InRelease"
    fake.write_bytes((Path(__file__).parent / "fixtures/debian/InRelease").read_bytes())
    assert gpg_verify(fake, None) is False and gpg_verify(fake, tmp_path / "no-keyring.gpg") is False
    if shutil.which("gpgv") is None or not DEFAULT_KEYRING.is_file():
        pytest.skip("gpgv or the Debian archive keyring is not installed")
    with pytest.raises(UserError, match="signature check failed"):
        gpg_verify(fake, DEFAULT_KEYRING)
    assert not fake.exists()  # a badly signed index does not stay in the cache
