"""Offline parsers on handmade fixtures: deb822 stanzas, Release, Translation, Packages, apt sources,
Mallard pages, handbook HTML; malformed inputs are one-line UserErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaxlm.data import languages as L
from metaxlm.data.deb822 import (iter_stanzas, parse_description, parse_packages, parse_release,
                                 parse_translation, strip_clearsign)
from metaxlm.data.docs import align, handbook_blocks, keep_pair, mallard_blocks
from metaxlm.data.sources import pick_mirror, read_apt_sources, resolve_mirror
from metaxlm.errors import UserError

D = Path(__file__).parent / "fixtures" / "debian"


def lines(name: str) -> list[str]:
    return (D / name).read_text(encoding="utf-8").splitlines(keepends=True)


def test_translation_entries_and_paragraphs():
    en = list(parse_translation(lines("Translation-en"), "en", "Translation-en"))
    assert [t.package for t in en] == ["0ad", "0ad-data", "tree"]
    d = en[0].description
    assert d.short == "Real-time strategy game of ancient warfare"
    assert d.paragraphs[0].startswith('0 A.D. (pronounced "zero ey-dee") is a free, open-source, cross-platform real')
    assert len(d.paragraphs) == 2 and "\n" not in d.text()
    assert en[2].description.paragraphs[-1] == "Options: * -a all files * -d directories only"


def test_translation_nbsp_line_is_text_not_a_stanza_break():
    de = list(parse_translation(lines("Translation-de"), "de", "Translation-de"))
    assert [t.package for t in de] == ["0ad", "tree"]
    assert de[1].description.paragraphs[0].endswith("beendet den Eintrag nicht.")


def test_translation_cjk_lines_join_without_spaces():
    (ja,) = parse_translation(lines("Translation-ja"), "ja", "Translation-ja")
    assert ja.description.short == "インデント付きのディレクトリツリーを"
    assert ja.description.paragraphs == ("カラーで表示します", "Tree は再帰的にディレクトリを一覧表示するコマンドです。")


@pytest.mark.parametrize("name, needle", [
    ("Translation-bad-continuation", "line 1 is a continuation line"),
    ("Translation-truncated", r"entry 2 \(0ad-data\) lacks Description-en; the index is truncated"),
])
def test_malformed_translation(name, needle):
    with pytest.raises(UserError, match=needle):
        list(parse_translation(lines(name), "en", name))


def test_translation_missing_field_is_reported():
    with pytest.raises(UserError, match="lacks Description-de"):
        list(parse_translation(lines("Translation-en"), "de", "Translation-en"))


def test_packages_stanzas():
    pk = list(parse_packages(lines("Packages"), "Packages"))
    assert [(p.package, p.source, p.section) for p in pk] == [
        ("0ad", "0ad", "games"), ("0ad-data", "0ad-data", "games"), ("tree-contrib", "tree", "utils")]
    assert pk[0].filename.startswith("pool/main/0/0ad/") and pk[0].size == 7891488 and len(pk[0].sha256) == 64


def test_malformed_packages():
    with pytest.raises(UserError, match="line 3 is not 'Field: value'"):
        list(parse_packages(lines("Packages-bad"), "Packages-bad"))


def test_release_and_inrelease_agree():
    f1, s1 = parse_release((D / "Release").read_text(), "Release")
    f2, s2 = parse_release((D / "InRelease").read_text(), "InRelease")
    assert s1 == s2 and f1 == f2 and f1["Codename"] == "bookworm"
    assert s1["main/i18n/Translation-en.xz"].size == 6107304
    assert "main/i18n/Translation-ru.bz2" not in s1  # only SHA256 entries count
    signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nA: 1\n- -----B\n-----BEGIN PGP SIGNATURE-----\nx\n"
    assert strip_clearsign(signed) == "A: 1\n-----B\n"  # dash-escaping undone


@pytest.mark.parametrize("name, needle", [("Release-no-sha256", "no SHA256 section"),
                                          ("Release-bad-entry", "SHA256 entry 1 is malformed")])
def test_malformed_release(name, needle):
    with pytest.raises(UserError, match=needle):
        parse_release((D / name).read_text(), name)


def test_truncated_inrelease():
    text = (D / "InRelease").read_text()
    with pytest.raises(UserError, match="truncated"):
        parse_release(text[: text.index("-----BEGIN PGP SIGNATURE")], "InRelease")


def test_stanza_comments_and_description_helpers():
    st = list(iter_stanzas(["# c\n", "A: 1\n", " two\n", "\n", "B: 2\n"], "x"))
    assert st == [{"A": "1\n two"}, {"B": "2"}]
    assert parse_description("short only").text() == "short only"
    assert parse_description("s\n a\n .\n b").text() == "s. a b"


# ------------------------------------------------------------------------------------ apt sources

def test_apt_sources_both_formats():
    srcs = read_apt_sources(D / "apt")
    uris = [s.uri for s in srcs]
    assert "http://oneline.invalid/debian" in uris and "http://deb822.invalid/debian" in uris
    assert not any("disabled" in u or "ignored" in u or "src.invalid" in u for u in uris)
    assert pick_mirror(srcs, "bookworm") == "http://deb822.invalid/debian"  # serves the release
    assert pick_mirror(srcs, "bullseye") == "http://oneline.invalid/debian"  # first plain Debian suite
    sec_only = [s for s in srcs if "security" in s.uri]
    assert pick_mirror(sec_only, "bookworm") is None


def test_mirror_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("METAXLM_MIRROR", raising=False)
    assert resolve_mirror("bookworm", "file:///m/", tmp_path) == "file:///m"
    monkeypatch.setenv("METAXLM_MIRROR", "http://env.invalid/debian")
    assert resolve_mirror("bookworm", None, D / "apt") == "http://env.invalid/debian"
    monkeypatch.delenv("METAXLM_MIRROR")
    with pytest.raises(UserError, match="no apt source .* and no mirror given"):
        resolve_mirror("bookworm", None, tmp_path)
    with pytest.raises(UserError, match="not an http"):
        resolve_mirror("bookworm", "ftp.invalid/debian", tmp_path)


def test_language_codes():
    assert L.parse_list("de, pt_BR,en,de") == ("de", "pt")
    assert L.debian("pt") == "pt_BR" and L.debian("de") == "de"
    assert L.handbook_dir("pt", ["pt-BR", "de-DE", "en-US"]) == "pt-BR"
    assert L.handbook_dir("de", ["pt-BR", "de-DE"]) == "de-DE"
    assert L.handbook_dir("ko", ["de-DE"]) is None
    with pytest.raises(UserError, match="not a language code"):
        L.parse_list("d3")


# ------------------------------------------------------------------------------------ documentation

def test_mallard_page_blocks_and_alignment():
    en = mallard_blocks((D / "gnome/C/tip.page").read_bytes(), "C/tip.page")
    de = mallard_blocks((D / "gnome/de/tip.page").read_bytes(), "de/tip.page")
    assert en[0] == "Ignore quickly repeated key presses."
    assert en[2] == "Turn on bounce keys to ignore key presses that are rapidly repeated."
    assert len(en) == len(de) == 6  # translator credits are not blocks
    pairs = align(en, de)
    assert ("Open the Activities overview.", "Öffnen Sie die Aktivitäten-Übersicht.") in pairs
    assert all(e != x for e, x in pairs)  # the untranslated block is dropped
    assert len(pairs) == 4  # "Press CtrlQ." has under 3 words... and the identical one is gone
    assert align(en, de[:-1]) == []  # counts differ: the page does not align


@pytest.mark.parametrize("name, needle", [("broken.page", "not well-formed"), ("not-mallard.page", "not a Mallard page")])
def test_malformed_mallard(name, needle):
    with pytest.raises(UserError, match=needle):
        mallard_blocks((D / "gnome/de" / name).read_bytes(), name)


def test_handbook_blocks():
    en = handbook_blocks((D / "handbook/en-US/apt.html").read_text())
    de = handbook_blocks((D / "handbook/de-DE/apt.html").read_text())
    assert en == [
        "What makes Debian so popular with administrators is how easily software can be installed.",
        "APT is the abbreviation for Advanced Packaging Tool & more.",
        "Example 6.1. Example entry format",
        "The first field indicates the source type: see below.",  # <pre> content skipped
    ]
    assert len(de) == 4 and de[1] == "APT ist die Abkürzung für Advanced Packaging Tool & mehr."
    assert len(align(en, de)) == 4


def test_keep_pair_filters():
    assert not keep_pair("Same text here too.", "Same text here too.")
    assert not keep_pair("/usr/bin/foo --bar=1 /etc/x", "/usr/bin/foo --bar=1 /etc/y")
    assert not keep_pair("Too short", "Zu kurz")
    assert keep_pair("Open the settings panel now.", "Öffnen Sie jetzt die Einstellungen.")
