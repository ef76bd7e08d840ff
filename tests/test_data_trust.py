"""What the data commands trust and what they may delete, on the synthetic offline mirror:

- ``data build --out DIR`` replaces DIR only when it is a metaxlm benchmark holding nothing else;
- every cached archive file is checked by SHA256 (not size) before use, memoised by stat;
- the release index's signature fails closed unless ``allow_unsigned``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from data_mirror import RELEASE, make_mirror, sign_mirror, signing_available
from metaxlm.data import archive, build_benchmark, fetch_sources
from metaxlm.data.archive import HashMemo
from metaxlm.data.fetch import load_manifest
from metaxlm.errors import UserError

LANGS = ("de", "fr")
OFFLINE = "http://127.0.0.1:9/debian"  # nothing listens there


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> str:
    return make_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[str, Path]:
    if not signing_available():
        pytest.skip("gpg and gpgv are needed to sign the test mirror")
    root = tmp_path_factory.mktemp("signed")
    url = make_mirror(root / "m")
    return url, sign_mirror(root / "m", root / "gnupg")


def _build(mirror: str, tmp: Path, name: str = "bench", **kw) -> Path:
    kw.setdefault("allow_unsigned", True)
    return build_benchmark(out=tmp / name, languages=LANGS, release=RELEASE, mirror=mirror, cache=tmp / "cache",
                           **kw)


def _fetch(mirror: str, cache: Path, **kw) -> Path:
    kw.setdefault("allow_unsigned", True)
    return fetch_sources(LANGS, RELEASE, mirror, cache, **kw)


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _flip(p: Path) -> None:
    """Corrupt one byte in place: same size (and a new mtime, as a real write would give)."""
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x20
    p.write_bytes(bytes(data))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


from test_data_build import _cli_error  # noqa: E402  (one helper for both files)


# ------------------------------------------------------------------------------ build never deletes

def test_rebuild_replaces_its_own_benchmark_and_leaves_no_temporaries(mirror, tmp_path):
    out = _build(mirror, tmp_path, max_corpus_lines=5)
    first = json.loads((out / "stats.json").read_text())
    out = _build(mirror, tmp_path)  # other options: replaced
    assert json.loads((out / "stats.json").read_text())["build_key"] != first["build_key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "cache"]  # no .building / .old sibling
    stats = json.loads((out / "stats.json").read_text())
    assert set(_files(out)) == set(stats["files"]) | {"stats.json", "datacard.md", "topic/labels.json"}


@pytest.mark.parametrize("extra", ["notes.txt", "corpus/mine.txt", "topic/drafts/", "results.json"])
def test_a_benchmark_holding_other_files_is_refused(mirror, tmp_path, extra):
    out = _build(mirror, tmp_path, max_corpus_lines=5)
    if extra.endswith("/"):
        (out / extra).mkdir()
    else:
        (out / extra).write_text("mine\n")
    before = _files(out)
    with pytest.raises(UserError) as e:
        _build(mirror, tmp_path)  # other options: would replace the directory
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and extra in msg
    assert "did not write" in msg and "choose an empty or new --out" in msg
    assert _files(out) == before and (out / extra).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "cache"]


def test_same_build_with_a_stray_file_is_reused_untouched(mirror, tmp_path):
    out = _build(mirror, tmp_path)
    (out / "notes.txt").write_text("mine\n")
    assert _build(mirror, tmp_path) == out and (out / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("stats", [None, "{}", '{"files": {}}', "not json"])
def test_a_directory_that_is_not_a_benchmark_is_refused(mirror, tmp_path, stats):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("x")
    if stats is not None:
        (d / "stats.json").write_text(stats)  # someone else's stats.json: no build key
    before = _files(d)
    with pytest.raises(UserError, match="not a metaxlm benchmark .*choose an empty or new --out"):
        _build(mirror, tmp_path, "mine")
    assert _files(d) == before


def test_an_empty_directory_is_used(mirror, tmp_path):
    (tmp_path / "bench").mkdir()
    out = _build(mirror, tmp_path)
    assert (out / "stats.json").is_file()


def test_out_is_a_file(mirror, tmp_path):
    (tmp_path / "bench").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        _build(mirror, tmp_path)
    assert (tmp_path / "bench").read_text() == "x"


def test_a_failed_build_keeps_the_old_benchmark(mirror, tmp_path, monkeypatch):
    out = _build(mirror, tmp_path, max_corpus_lines=5)
    before = _files(out)
    from metaxlm.data import build as B

    def boom(d):
        raise UserError("checks failed")

    monkeypatch.setattr(B, "check_benchmark", boom)
    with pytest.raises(UserError, match="checks failed"):
        _build(mirror, tmp_path)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "cache"]


def test_a_file_added_during_the_build_stops_the_replacement(mirror, tmp_path, monkeypatch):
    out = _build(mirror, tmp_path, max_corpus_lines=5)
    from metaxlm.data import build as B

    real = B.check_benchmark

    def add_file_then_check(d):
        (out / "added-meanwhile.txt").write_text("mine\n")
        return real(d)

    monkeypatch.setattr(B, "check_benchmark", add_file_then_check)
    with pytest.raises(UserError, match="added-meanwhile.txt"):
        _build(mirror, tmp_path)
    assert (out / "added-meanwhile.txt").exists() and (out / "stats.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "cache"]


def test_a_symlinked_out_is_built_where_it_points(mirror, tmp_path):
    real = tmp_path / "disk" / "bench"
    real.parent.mkdir()
    _build(mirror, tmp_path / "disk", max_corpus_lines=5)
    link = tmp_path / "link"
    link.symlink_to(real)
    build_benchmark(out=link, languages=LANGS, release=RELEASE, mirror=mirror, cache=tmp_path / "disk" / "cache",
                    allow_unsigned=True)
    assert link.is_symlink() and (link / "stats.json").is_file()
    assert json.loads((real / "stats.json").read_text())["config"]["max_corpus_lines"] == 50_000


def test_out_under_a_file_is_a_clear_error(mirror, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="cannot write the benchmark next to .*choose another --out"):
        build_benchmark(out=tmp_path / "f" / "bench", languages=LANGS, release=RELEASE, mirror=mirror,
                        cache=tmp_path / "cache", allow_unsigned=True)


def test_cli_build_into_a_foreign_directory(cli, mirror, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    msg = _cli_error(cli, "data", "build", "--out", tmp_path / "mine", "--languages", "de,fr", "--release", RELEASE,
                     "--mirror", mirror, "--cache", tmp_path / "cache", "--allow-unsigned")
    assert "not a metaxlm benchmark" in msg and (tmp_path / "mine" / "thesis.tex").exists()


# ------------------------------------------------------------------------------ cache by SHA256

def _cached(root: Path, role: str) -> Path:
    return root / load_manifest(root, RELEASE)["files"][role]["path"]


@pytest.mark.parametrize("role", ["translation-de", "packages", "deb-gnome-user-docs"])
def test_a_corrupted_cached_file_is_downloaded_again(mirror, tmp_path, role):
    root = _fetch(mirror, tmp_path / "cache")
    p = _cached(root, role)
    good, size = p.read_bytes(), p.stat().st_size
    _flip(p)
    assert p.stat().st_size == size and p.read_bytes() != good
    _fetch(mirror, tmp_path / "cache")
    assert p.read_bytes() == good


@pytest.mark.parametrize("role", ["translation-fr", "deb-debian-handbook"])
def test_a_corrupted_cached_file_offline_is_a_clear_error(mirror, tmp_path, role):
    root = _fetch(mirror, tmp_path / "cache")
    p = _cached(root, role)
    _flip(p)
    with pytest.raises(UserError) as e:
        _fetch(OFFLINE, tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg and f"cached file {p} is corrupt" in msg and "--refresh" in msg


def test_cli_corrupt_cache_offline(cli, mirror, tmp_path):
    root = _fetch(mirror, tmp_path / "cache")
    _flip(_cached(root, "translation-en"))
    msg = _cli_error(cli, "data", "build", "--out", tmp_path / "b", "--languages", "de,fr", "--release", RELEASE,
                     "--mirror", OFFLINE, "--cache", tmp_path / "cache", "--allow-unsigned")
    assert "is corrupt" in msg and "metaxlm data fetch --refresh" in msg
    assert not (tmp_path / "b").exists()


def test_a_corrupted_extraction_is_extracted_again_offline(mirror, tmp_path):
    root = _fetch(mirror, tmp_path / "cache")
    ext = root / load_manifest(root, RELEASE)["files"]["deb-gnome-user-docs"]["extracted"]
    page = sorted(ext.rglob("*.page"))[0]
    good = page.read_bytes()
    _flip(page)
    (page.parent / "planted.page").write_text("<page/>")  # an extra file would be read by the build
    _fetch(OFFLINE, tmp_path / "cache")  # the .deb is intact: no network needed
    assert page.read_bytes() == good and not (page.parent / "planted.page").exists()


def test_an_extraction_from_an_earlier_version_is_redone(mirror, tmp_path):
    root = _fetch(mirror, tmp_path / "cache")
    ext = root / load_manifest(root, RELEASE)["files"]["deb-debian-handbook"]["extracted"]
    (ext / ".complete").write_text("ok\n")  # what earlier versions wrote: no file list
    _fetch(OFFLINE, tmp_path / "cache")
    assert json.loads((ext / ".complete").read_text())["files"]


def test_the_data_card_records_the_verified_sums(mirror, tmp_path):
    out = _build(mirror, tmp_path)
    root = tmp_path / "cache"
    _flip(_cached(root, "translation-de"))
    out = _build(mirror, tmp_path)  # same key: inputs are checked, the file is fetched again
    stats = json.loads((out / "stats.json").read_text())
    card = (out / "datacard.md").read_text()
    for role, f in stats["sources"]["files"].items():
        assert _sha(root / f["path"]) == f["sha256"], role
        assert f"`{f['path']}` (SHA256 `{f['sha256'][:16]}…" in card


def test_hash_memo_rehashes_only_when_the_stat_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "RACY_NS", 0)
    p = tmp_path / "f"
    p.write_bytes(b"a" * 1000)
    memo = HashMemo(tmp_path)
    assert memo.sha256(p) == _sha(p) and memo.hashed == 1
    assert memo.sha256(p) == _sha(p) and memo.hashed == 1  # remembered
    memo.save()
    again = HashMemo(tmp_path)  # from sha256-memo.json
    assert again.sha256(p) == _sha(p) and again.hashed == 0
    _flip(p)
    assert again.sha256(p) == _sha(p) and again.hashed == 1  # stat changed: hashed again
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: the ctime still differs
    assert again.sha256(p) == _sha(p) and again.hashed == 2


def test_hash_memo_does_not_trust_a_file_written_just_before_hashing(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"fresh")
    memo = HashMemo(tmp_path)
    memo.sha256(p)
    memo.sha256(p)
    assert memo.hashed == 2  # within RACY_NS of its last change: never remembered


def test_warm_fetch_reads_no_file_and_a_changed_one_is_caught(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "RACY_NS", 0)
    reads: list[str] = []
    real = archive.sha256_file
    monkeypatch.setattr(archive, "sha256_file", lambda p: reads.append(Path(p).name) or real(p))
    root = _fetch(mirror, tmp_path / "cache")
    _fetch(OFFLINE, tmp_path / "cache")  # verifies everything once, remembers it
    assert (root / archive.MEMO_NAME).is_file()
    reads.clear()
    _fetch(OFFLINE, tmp_path / "cache")
    assert reads == []  # warm: no file read
    p = _cached(root, "translation-de")
    _flip(p)
    with pytest.raises(UserError, match="is corrupt"):
        _fetch(OFFLINE, tmp_path / "cache")
    assert p.name in reads


# ------------------------------------------------------------------------------ signature fails closed

def test_unsigned_release_is_refused_without_allow_unsigned(mirror, tmp_path):
    with pytest.raises(UserError) as e:
        _fetch(mirror, tmp_path / "cache", allow_unsigned=False)
    msg = str(e.value)
    assert "\n" not in msg and "no signed" in msg and "InRelease" in msg and "--allow-unsigned" in msg
    cache = tmp_path / "cache"
    assert not list(cache.rglob("Translation-*")) and not list(cache.rglob("*.deb"))
    assert not list(cache.glob("manifest-*.json"))


def test_missing_gpgv_or_keyring_is_refused(signed, tmp_path, monkeypatch):
    url, _ = signed
    with pytest.raises(UserError) as e:  # the default keyring location is replaced by a missing file
        _fetch(url, tmp_path / "c1", allow_unsigned=False, keyring=tmp_path / "no-keyring.gpg")
    msg = str(e.value)
    assert "no-keyring.gpg not found" in msg and "apt-get install gpgv debian-archive-keyring" in msg
    assert "--allow-unsigned" in msg and "\n" not in msg
    real_which = shutil.which
    monkeypatch.setattr(archive.shutil, "which", lambda name: None if name == "gpgv" else real_which(name))
    with pytest.raises(UserError, match="gpgv .*not found.*apt-get install gpgv debian-archive-keyring"):
        _fetch(url, tmp_path / "c2", allow_unsigned=False)
    root = _fetch(url, tmp_path / "c3", allow_unsigned=True)  # allowed: recorded as such
    m = load_manifest(root, RELEASE)
    assert m["signature_verified"] is False and m["allow_unsigned"] is True


def test_signed_mirror_is_verified(signed, tmp_path):
    url, keyring = signed
    out = build_benchmark(out=tmp_path / "b", languages=LANGS, release=RELEASE, mirror=url, cache=tmp_path / "c",
                          keyring=keyring)
    m = load_manifest(tmp_path / "c", RELEASE)
    assert m["release_file"] == "InRelease" and m["signature_verified"] is True and m["allow_unsigned"] is False
    src = json.loads((out / "stats.json").read_text())["sources"]
    assert src["signature_verified"] is True and src["allow_unsigned"] is False
    card = (out / "datacard.md").read_text()
    assert "`signature_verified: true`" in card and "`allow_unsigned: false`" in card


def test_text_outside_the_signed_part_is_never_read(signed, tmp_path):
    """Fake sums put before the signed message would pass gpgv; only gpgv's verified text is parsed."""
    url, keyring = signed
    m = tmp_path / "m"
    shutil.copytree(Path(url.removeprefix("file://")), m)
    inrel = m / "dists" / RELEASE / "InRelease"
    fake = (m / "dists" / RELEASE / "main/i18n/Translation-fr")
    fake.write_bytes(b"Package: evil\n")
    lines = [f" {_sha(fake)} {fake.stat().st_size} main/i18n/Translation-fr"]
    inrel.write_text("SHA256:\n" + "\n".join(lines) + "\n\n" + inrel.read_text())
    with pytest.raises(UserError, match="checksum mismatch .*Translation-fr"):  # checked against the signed sum
        _fetch(m.as_uri(), tmp_path / "c", allow_unsigned=False, keyring=keyring)
    assert not list((tmp_path / "c").rglob("Translation-fr"))  # the unsigned sum was not used


def test_tampered_inrelease_is_refused(signed, tmp_path):
    url, keyring = signed
    m = tmp_path / "m"
    shutil.copytree(Path(url.removeprefix("file://")), m)
    inrel = m / "dists" / RELEASE / "InRelease"
    inrel.write_text(inrel.read_text().replace("Version: 1", "Version: 2"))
    with pytest.raises(UserError, match="signature check failed"):
        _fetch(m.as_uri(), tmp_path / "c", allow_unsigned=False, keyring=keyring)


def test_a_cache_fetched_unsigned_is_not_reused_silently(mirror, tmp_path):
    _fetch(mirror, tmp_path / "cache", allow_unsigned=True)
    with pytest.raises(UserError, match="--allow-unsigned"):
        _fetch(OFFLINE, tmp_path / "cache", allow_unsigned=False)


def test_cli_fetch_refuses_unsigned(cli, mirror, tmp_path):
    msg = _cli_error(cli, "data", "fetch", "--languages", "de,fr", "--release", RELEASE, "--mirror", mirror,
                     "--cache", tmp_path / "c")
    assert "OpenPGP signature" in msg and "--allow-unsigned" in msg
    msg = _cli_error(cli, "data", "build", "--out", tmp_path / "b", "--languages", "de,fr", "--release", RELEASE,
                     "--mirror", mirror, "--cache", tmp_path / "c")
    assert "--allow-unsigned" in msg and not (tmp_path / "b").exists()


def test_cli_fetch_with_a_keyring(cli, signed, tmp_path):
    url, keyring = signed
    r = cli("data", "fetch", "--languages", "de,fr", "--release", RELEASE, "--mirror", url, "--cache",
            tmp_path / "c", "--keyring", keyring)
    assert r.exit_code == 0, r.output
    assert "signature verified: true" in r.output
