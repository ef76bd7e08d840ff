"""``--size large`` offline: LibreOffice help aligned by page and paragraph id, man pages (roff),
English HTML docs, leak removal, the text cache, and the bad inputs (missing package, tampered .deb,
an id in one language only, roff that does not parse)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from pathlib import Path

import pytest

from data_mirror import RELEASE, large_debs, lo_page, make_deb, make_mirror, man_deb
from metaxlm.data import build_benchmark, check_benchmark, sizes
from metaxlm.data.descriptions import norm
from metaxlm.data.libreoffice import align_page, page_blocks
from metaxlm.data.manpages import RoffError, man_paragraphs
from metaxlm.errors import UserError

LANGS = ("de", "fr")
PLANT = "Diese Zeile steht auch in einem Handbuch und darf nicht im Korpus bleiben."


@pytest.fixture(autouse=True)
def _test_size(monkeypatch):
    """The real `large` sources, with two small English HTML packages instead of the real ones and
    `manpages` as the only English man-page package."""
    monkeypatch.setitem(sizes.SIZES, "large", dataclasses.replace(
        sizes.SIZES["large"], english_html=("pydoc-test", "qtdoc-test"), english_man=("manpages",), lo_dev=0.2, lo_test=0.3))
    monkeypatch.setenv("METAXLM_PROGRESS", "0")


def _mirror(root: Path, **changes) -> tuple[str, dict]:
    debs, truth = large_debs(random.Random(3), plant=[PLANT])
    debs.update(changes)
    return make_mirror(root, deb_override={k: v for k, v in debs.items() if v is not None}), truth


def _build(url: str, tmp: Path, name: str = "large", cache: str = "cache") -> Path:
    return build_benchmark(out=tmp / name, languages=LANGS, release=RELEASE, mirror=url, cache=tmp / cache,
                           allow_unsigned=True, size="large")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("large")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sizes.SIZES, "large", dataclasses.replace(
            sizes.SIZES["large"], english_html=("pydoc-test", "qtdoc-test"), english_man=("manpages",), lo_dev=0.2, lo_test=0.3))
        mp.setenv("METAXLM_PROGRESS", "0")
        url, truth = _mirror(tmp / "m")
        return _build(url, tmp), truth, tmp


def _pairs(path: Path) -> list[tuple[str, str]]:
    return [tuple(ln.split("\t")) for ln in path.read_text().splitlines()[1:]]


def _corpus(out: Path, lang: str) -> set[str]:
    return set((out / f"corpus/{lang}.txt").read_text().splitlines())


# -------------------------------------------------------------------------------------- parsers

def test_page_blocks_and_alignment_by_id():
    en = page_blocks(lo_page("en-US", "Title here", [("par_id1", "Open the file now please."),
                                                     ("par_id2", "Same in both.")]).decode())
    assert en == {"hd_id1000": "Title here", "par_id1": "Open the file now please.", "par_id2": "Same in both."}
    de = page_blocks(lo_page("de", "Titel hier", [("par_id2", "Same in both."),
                                                  ("par_id1", "Öffnen Sie jetzt die Datei.")]).decode())
    # order differs, ids match; the untranslated paragraph is dropped
    assert align_page("p.html", en, de, "x") == [("hd_id1000", "Title here", "Titel hier"),
                                                 ("par_id1", "Open the file now please.", "Öffnen Sie jetzt die Datei.")]
    with pytest.raises(UserError, match="paragraph id par_id9 is only in the translation"):
        align_page("p.html", en, {**de, "par_id9": "extra"}, "libreoffice-help-de")


def test_man_paragraphs():
    text = gzip.decompress(gzip.compress(
        b'.TH LS 1\n.SH NAME\nls \\- list\n.SH DESCRIPTION\n.B ls\nlists \\fBfiles\\fR \\(em fast.\n'
        b'.PP\nSecond \\fIparagraph\\fP here\nwraps.\n.nf\ncode\n.fi\n.TS\nl.\ncell\n.TE\n.BR cp (1)\n')).decode()
    assert man_paragraphs(text) == ["ls - list", "ls lists files — fast.", "Second paragraph here wraps.", "cp(1)"]
    assert man_paragraphs(".so man1/other.1\n") == []
    with pytest.raises(RoffError, match="never closed"):
        man_paragraphs(".TH X 1\n.TS\nl.\ncell\n")


# -------------------------------------------------------------------------------------- the build

def test_large_build_aligns_drops_untranslated_and_splits_by_page(built):
    out, truth, _ = built
    stats = check_benchmark(out)  # layout, counts, and no held-out sentence in any corpus
    assert stats["size"] == "large"
    for lang, col in (("de", 2), ("fr", 3)):
        got = _pairs(out / f"parallel/{lang}.test.tsv") + _pairs(out / f"parallel/{lang}.dev.tsv")
        lo = {(r[1], r[col]) for rows in truth.values() for r in rows}
        ours = [p for p in got if p in lo]
        assert ours, lang  # LibreOffice pairs are in the parallel sets, aligned by id
        untranslated = {r[1] for rows in truth.values() for r in rows if r[col] in ("", r[1])}
        assert not {e for e, _ in got} & untranslated, lang
        # dev and test come from different pages
        page_of = {r[1]: page for page, rows in truth.items() for r in rows}
        dev = {page_of[e] for e, _ in _pairs(out / f"parallel/{lang}.dev.tsv") if e in page_of}
        test = {page_of[e] for e, _ in _pairs(out / f"parallel/{lang}.test.tsv") if e in page_of}
        assert dev and test and not dev & test
        assert stats["libreoffice"]["aligned_pairs"][lang]["test"] > 0


def test_large_corpora_sources_and_no_leak(built):
    out, truth, _ = built
    stats = json.loads((out / "stats.json").read_text())
    src = stats["corpus_sources"]
    assert {"descriptions", "libreoffice-help", "manpages-de", "manpages-de-dev"} <= set(src["de"])
    assert {"descriptions", "manpages", "pydoc-test", "qtdoc-test"} <= set(src["en"]) and "libreoffice-help" not in src["en"]
    # only the page no fetched translation covers: its NAME line, first sentence and 3 paragraphs
    assert src["en"]["manpages"]["lines"] == 5
    de = _corpus(out, "de")
    en = _corpus(out, "en")
    test_de = {x for _, x in _pairs(out / "parallel/de.test.tsv")}
    assert not de & test_de and not en & {e for e, _ in _pairs(out / "parallel/de.test.tsv")}
    # LibreOffice training-pool pages feed German, never English
    lo_en = {r[1] for rows in truth.values() for r in rows}
    assert not en & lo_en and de & {r[2] for rows in truth.values() for r in rows}
    # a sentence planted in a man page that is also a held-out sentence is removed
    held = {norm(x) for x in test_de}
    planted_held = norm(PLANT) in held
    assert (PLANT in de) != planted_held or not planted_held
    card = (out / "datacard.md").read_text()
    assert "Size `large`" in card and "MPL-2.0" in card and "| de | manpages-de |" in card


def test_planted_test_sentence_is_removed(tmp_path):
    """A German test sentence of the LibreOffice help copied into a German man page is not in corpus/de.txt."""
    debs, truth = large_debs(random.Random(3))
    # every German LibreOffice paragraph is planted: some of them are test pairs
    planted = [r[2] for rows in truth.values() for r in rows if r[2] and r[2] != r[1]]
    debs["manpages-de-dev"] = man_deb("de", {"planted": planted})
    url = make_mirror(tmp_path / "m", deb_override=debs)
    out = _build(url, tmp_path)
    test_de = {x for _, x in _pairs(out / "parallel/de.test.tsv")}
    assert test_de & set(planted)
    assert not _corpus(out, "de") & test_de
    stats = json.loads((out / "stats.json").read_text())
    assert stats["corpus_sources"]["de"]["manpages-de-dev"]["dropped_held_out"] > 0


def test_rebuild_reads_the_text_cache(built, monkeypatch):
    out, _, tmp = built
    from metaxlm.data import large
    cached = sorted((tmp / "cache/text").glob("*.jsonl.gz"))
    assert len(cached) == 3 + 5 + 2  # LibreOffice x3, man pages x5, HTML x2
    for kind in large.PARSERS:
        monkeypatch.setitem(large.PARSERS, kind, (lambda deb: pytest.fail("parsed again"),) + large.PARSERS[kind][1:])
    again = build_benchmark(out=tmp / "again", languages=LANGS, release=RELEASE, mirror="http://127.0.0.1:9/x",
                            cache=tmp / "cache", allow_unsigned=True, size="large")
    assert (again / "corpus/de.txt").read_bytes() == (out / "corpus/de.txt").read_bytes()


def test_parsing_in_worker_processes_gives_the_same_build(built, monkeypatch):
    """The fixture's cold build parsed its 10 packages in 2 spawned processes; one process in a fresh
    cache gives byte-identical files."""
    out, _, tmp = built
    from metaxlm.data import large
    monkeypatch.setattr(large, "PARSE_WORKERS", 1)
    url, _ = _mirror(tmp / "m1")
    one = _build(url, tmp, name="one", cache="cache1")
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "stats.json":
            assert (one / p.relative_to(out)).read_bytes() == p.read_bytes(), p
    assert sorted(x.name for x in (tmp / "cache1/text").iterdir()) == sorted(x.name for x in (tmp / "cache/text").iterdir())


def test_cli_size_large(cli, built):
    out, _, tmp = built
    r = cli("data", "info", out)
    assert r.exit_code == 0 and "corpus by source" in r.output and "libreoffice-help" in r.output
    assert "words (no tokenizer" in r.output
    r = cli("data", "build", "--size", "nosuch", "--out", tmp / "x", "--cache", tmp / "cache")
    assert r.exit_code == 2 and "unknown --size 'nosuch'" in r.output


# -------------------------------------------------------------------------------------- bad input

def _fails(tmp: Path, needle: str, **changes):
    url, _ = _mirror(tmp / "m", **changes)
    with pytest.raises(UserError, match=needle):
        _build(url, tmp)
    assert not (tmp / "large").exists()  # no half benchmark
    assert not [p for p in tmp.iterdir() if p.name.startswith(".large.building")]


def test_package_missing_from_the_index(tmp_path):
    _fails(tmp_path, "no package 'manpages-fr-dev'.*--size large", **{"manpages-fr-dev": None})


def test_tampered_deb(tmp_path):
    url, _ = _mirror(tmp_path / "m")
    deb = next((tmp_path / "m/pool").rglob("manpages-de_*.deb"))
    deb.write_bytes(deb.read_bytes()[:-100])  # truncated after the index was written
    with pytest.raises(UserError, match="checksum mismatch"):
        _build(url, tmp_path)
    assert not (tmp_path / "large").exists()


def test_paragraph_id_in_one_language_only(tmp_path):
    debs, _ = large_debs(random.Random(3))
    page = "usr/share/libreoffice/help/de/text/shared/guide/page000.html"
    bad = make_deb({page: lo_page("de", "Titel", [("par_id_only_de", "Nur auf Deutsch vorhanden.")])})
    _fails(tmp_path, "page text/shared/guide/page000.html: paragraph id .* is only in", **{"libreoffice-help-de": bad})


def test_roff_that_does_not_parse(tmp_path):
    bad = make_deb({"usr/share/man/fr/man1/broken.1.gz":
                    gzip.compress(b".TH BROKEN 1\n.SH NAME\nbroken\n.TS\nl.\nno end of table\n", mtime=0)})
    _fails(tmp_path, r"manpages-fr-dev.*broken\.1\.gz.*never closed.*does not parse", **{"manpages-fr-dev": bad})


def test_default_size_output_is_unchanged(tmp_path):
    """The default build of the synthetic mirror, byte for byte as before --size existed (stats.json
    without its build key and mirror URL, which depend on the code and the temporary path)."""
    import hashlib
    url = make_mirror(tmp_path / "m")
    out = build_benchmark(out=tmp_path / "b", languages=LANGS, release=RELEASE, mirror=url, cache=tmp_path / "c",
                          allow_unsigned=True)
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "stats.json":
                st = json.loads(data)
                st.pop("build_key")
                st["sources"].pop("mirror")
                data = json.dumps(st, sort_keys=True).encode()
            h.update(p.relative_to(out).as_posix().encode() + b"\0" + data + b"\0")
    assert h.hexdigest() == "999f60dc9074c49620c6b8790911e7257f7e60147d06649c591602e5226c34c4"
