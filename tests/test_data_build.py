"""Fetch + build end to end from a synthetic local mirror: layout, counts, leaks, determinism, CLI errors."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from data_mirror import RELEASE, make_deb, make_mirror
from metaxlm.data import benchmark_info, build_benchmark, check_benchmark, fetch_sources
from metaxlm.data.build import BuildConfig, assign_splits
from metaxlm.data.descriptions import load_items
from metaxlm.data.fetch import load_manifest
from metaxlm.errors import UserError

FIXTURE_BENCH = Path(__file__).parent / "fixtures" / "bench"
LANGS = ("de", "fr")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> str:
    return make_mirror(tmp_path_factory.mktemp("mirror"))


def _build(mirror: str, tmp: Path, name: str = "bench", seed: int = 0, **caps) -> Path:
    return build_benchmark(out=tmp / name, languages=LANGS, release=RELEASE, mirror=mirror, cache=tmp / "cache",
                           seed=seed, allow_unsigned=True, **caps)  # the synthetic mirror is unsigned


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_fixture_bench_follows_the_layout():
    stats = check_benchmark(FIXTURE_BENCH)
    assert stats["languages"] == ["en", "de", "fr"]


def test_build_end_to_end(mirror, tmp_path):
    out = _build(mirror, tmp_path)
    stats = check_benchmark(out)  # layout, counts == files, no held-out sentence in any corpus
    assert stats["languages"] == ["en", "de", "fr"] and stats["release"] == RELEASE
    assert stats["sources"]["signature_verified"] is False  # unsigned Release
    assert stats["sources"]["allow_unsigned"] is True
    c = stats["counts"]
    for key in ("corpus", "topic-train", "topic-test"):
        assert c["en"][key] > 0, key
    for lang in LANGS:
        assert c[lang]["corpus"] > 0 and c[lang]["parallel-test"] > 0, lang
        assert c[lang]["mining-test-gold"] + c[lang]["mining-dev-gold"] > 0, lang
    assert c["de"]["nway"] > 0
    labels = json.loads((out / "topic/labels.json").read_text())
    assert labels == sorted(labels) and "libs" not in labels
    header = (out / "parallel/nway.tsv").read_text().splitlines()[0]
    assert header == "en\tde\tfr"
    card = (out / "datacard.md").read_text()
    assert "CC-BY-SA" in card and f"| de | {c['de']['corpus']} |" in card
    assert benchmark_info(out)["counts"] == c


def test_no_source_package_on_two_sides(mirror, tmp_path):
    root = fetch_sources(LANGS, RELEASE, mirror, tmp_path / "cache", allow_unsigned=True)
    items = load_items(root, load_manifest(root, RELEASE), LANGS)
    split = assign_splits(items, BuildConfig(languages=LANGS))
    side: dict[str, str] = {}
    for md5, s in split.items():
        for src in items[md5].sources:
            assert side.setdefault(src, s) == s, f"{src} is in {side[src]} and {s}"
    assert {"corpus-en", "corpus-ml", "topic-test"} <= set(split.values())


def test_corpora_hold_no_hidden_parallel_text(mirror, tmp_path):
    out = _build(mirror, tmp_path)
    root = tmp_path / "cache"
    items = load_items(root, load_manifest(root, RELEASE), LANGS)
    en = set((out / "corpus/en.txt").read_text().splitlines())
    for lang in LANGS:
        xx = set((out / f"corpus/{lang}.txt").read_text().splitlines())
        for it in items.values():
            for e, x in it.aligned(lang) or ():
                assert not (e in en and x in xx), (e, x)
    # topic train never shares a near-duplicate with test
    train = {r.split("\t")[0] for r in (out / "topic/train.tsv").read_text().splitlines()[1:]}
    test = {r.split("\t")[0] for r in (out / "topic/test-en.tsv").read_text().splitlines()[1:]}
    assert not {t.removesuffix("-data") for t in train} & {t.removesuffix("-data") for t in test}


def test_same_seed_same_bytes_and_reuse(mirror, tmp_path):
    a = _build(mirror, tmp_path, "a")
    b = _build(mirror, tmp_path, "b")
    assert _files(a) == _files(b)
    before = (a / "stats.json").stat().st_mtime_ns
    assert _build(mirror, tmp_path, "a") == a  # same build complete there: returned at once
    assert (a / "stats.json").stat().st_mtime_ns == before
    c = _build(mirror, tmp_path, "c", seed=1)
    assert _files(c)["corpus/en.txt"] != _files(a)["corpus/en.txt"]


def test_caps_and_rebuild_in_place(mirror, tmp_path):
    out = _build(mirror, tmp_path, max_corpus_lines=5)
    assert all(v["corpus"] <= 5 for v in benchmark_info(out)["counts"].values())
    out = _build(mirror, tmp_path)  # other options: rebuilt in place
    assert benchmark_info(out)["counts"]["en"]["corpus"] > 5


def test_refuses_to_overwrite_a_foreign_directory(mirror, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not a metaxlm benchmark"):
        _build(mirror, tmp_path, "mine")
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_fetch_reuses_the_cache_offline(mirror, tmp_path):
    root = fetch_sources(LANGS, RELEASE, mirror, tmp_path / "cache", allow_unsigned=True)
    # the mirror disappears: a second fetch works from the cache alone
    assert fetch_sources(LANGS, RELEASE, "http://127.0.0.1:9/debian", tmp_path / "cache",
                         allow_unsigned=True) == root


# ------------------------------------------------------------------------------------ CLI errors

def _cli_error(cli, *args) -> str:
    r = cli(*args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.output
    return lines[0]


def test_cli_fetch_build_info(cli, mirror, tmp_path):
    r = cli("data", "fetch", "--languages", "de,fr", "--release", RELEASE, "--mirror", mirror,
            "--cache", tmp_path / "cache", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert "signature verified: false, allowed by --allow-unsigned" in r.output
    r = cli("data", "build", "--out", tmp_path / "b", "--languages", "de,fr", "--release", RELEASE,
            "--mirror", mirror, "--cache", tmp_path / "cache", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    r = cli("data", "info", tmp_path / "b")
    assert r.exit_code == 0 and "corpus" in r.output and "de" in r.output


def test_cli_no_sources_and_no_mirror(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("METAXLM_MIRROR", raising=False)
    from metaxlm.data import sources
    monkeypatch.setattr(sources, "read_apt_sources", lambda root=None: [])
    assert "no apt source" in _cli_error(cli, "data", "fetch", "--cache", tmp_path / "c")


def test_cli_unreachable_archive(cli, tmp_path):
    assert "archive unreachable" in _cli_error(cli, "data", "fetch", "--mirror", "http://127.0.0.1:9/debian",
                                               "--cache", tmp_path / "c")


def test_cli_language_without_translation(cli, mirror, tmp_path):
    msg = _cli_error(cli, "data", "fetch", "--languages", "de,ko", "--release", RELEASE, "--mirror", mirror,
                     "--cache", tmp_path / "c", "--allow-unsigned")
    assert "no translation file for language 'ko'" in msg and "available: de, en, fr" in msg


def test_cli_unknown_release(cli, mirror, tmp_path):
    assert "no release 'nosuch'" in _cli_error(cli, "data", "fetch", "--release", "nosuch", "--mirror", mirror,
                                               "--cache", tmp_path / "c")


def test_cli_checksum_mismatch(cli, tmp_path):
    url = make_mirror(tmp_path / "m")
    p = tmp_path / "m/dists" / RELEASE / "main/i18n/Translation-fr"
    p.write_bytes(p.read_bytes() + b"\n")  # the Release sums no longer match
    msg = _cli_error(cli, "data", "fetch", "--languages", "de,fr", "--release", RELEASE, "--mirror", url,
                     "--cache", tmp_path / "c", "--allow-unsigned")
    assert "checksum mismatch" in msg
    assert not list((tmp_path / "c").rglob("Translation-fr*"))


def test_cli_malformed_index(cli, tmp_path):
    import hashlib
    import lzma
    url = make_mirror(tmp_path / "m")
    dist = tmp_path / "m/dists" / RELEASE
    bad = lzma.compress(b"Package: x\nthis is not a field\n")
    (dist / "main/binary-amd64/Packages.xz").write_bytes(bad)
    rel = (dist / "Release").read_text().splitlines()
    rel = [ln if not ln.endswith("Packages.xz") else f" {hashlib.sha256(bad).hexdigest()} {len(bad)} "
           "main/binary-amd64/Packages.xz" for ln in rel]
    (dist / "Release").write_text("\n".join(rel) + "\n")
    assert "not 'Field: value'" in _cli_error(cli, "data", "fetch", "--languages", "de", "--release", RELEASE,
                                              "--mirror", url, "--cache", tmp_path / "c", "--allow-unsigned")


def test_cli_unexpected_deb_layout(cli, tmp_path):
    url = make_mirror(tmp_path / "m", deb_override={"gnome-user-docs": make_deb({}, "data.tar.zst")})
    assert "compression" in _cli_error(cli, "data", "fetch", "--languages", "de", "--release", RELEASE,
                                       "--mirror", url, "--cache", tmp_path / "c", "--allow-unsigned")


def test_cli_cache_not_writable(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    assert "not writable" in _cli_error(cli, "data", "fetch", "--mirror", "file:///nonexistent",
                                        "--cache", tmp_path / "f" / "cache")


def test_cli_info_without_benchmark(cli, tmp_path):
    assert "not a built benchmark" in _cli_error(cli, "data", "info", tmp_path)


# ------------------------------------------------------------------------------------ the real archive

@pytest.mark.network
def test_real_archive_release_index(tmp_path):
    """Fetches the real release index (small) through the apt sources; skipped when unreachable."""
    from metaxlm.data.archive import download
    from metaxlm.data.deb822 import parse_release
    from metaxlm.data.sources import resolve_mirror

    try:
        mirror = resolve_mirror("bookworm")
        urllib.request.urlopen(f"{mirror}/dists/bookworm/Release", timeout=10).close()
    except (UserError, OSError) as e:
        pytest.skip(f"Debian archive not reachable: {e}")
    path = download(f"{mirror}/dists/bookworm/Release", tmp_path / "Release")
    fields, sums = parse_release(path.read_text(), "Release")
    assert fields["Codename"] == "bookworm"
    assert any(p.startswith("main/i18n/Translation-de") for p in sums)
