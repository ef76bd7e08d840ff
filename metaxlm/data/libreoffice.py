"""The LibreOffice help (``libreoffice-help-<loc>``) as aligned paragraphs.

Every language's package holds the same pages (``usr/share/libreoffice/help/<locale>/text/...html``,
generated from the same .xhp sources), and every paragraph or heading carries the .xhp id of its
source string (``<p id="par_id3146957">``, ``<h2 id="hd_id3143284">``). A page is aligned with its
English version by those ids: pairs are ``(page, id, en, xx)``. Measured on bookworm (7.4): 2,561
pages, ids identical in every language checked. A page whose id sets differ between English and
the translation is a UserError (the packages do not come from the same sources); a page missing in
the translation is skipped. Untranslated paragraphs (empty, or identical to English) are dropped.
Within a page the first occurrence of a repeated id (embedded sections) is kept. Hidden elements
(the macOS variants of menu paths) are left out of the text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from metaxlm.data.debstream import iter_deb_files
from metaxlm.errors import UserError

ROOT = "usr/share/libreoffice/help/"
BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}
_ID = re.compile(r"(par|hd)_id\w+$")


class _Blocks(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, str]] = []
        self._cur: tuple[str, str, list[str]] | None = None
        self._depth = 0
        self._hidden: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self._cur is None:
            a = dict(attrs)
            if tag in BLOCKS and _ID.match(a.get("id") or ""):
                self._cur, self._depth, self._hidden = (tag, a["id"], []), 1, []
            return
        if tag == self._cur[0]:
            self._depth += 1
        if self._hidden or any(k == "hidden" for k, _ in attrs) or tag in ("script", "style"):
            self._hidden.append(tag)

    def handle_endtag(self, tag):
        if self._cur is None:
            return
        if self._hidden and tag == self._hidden[-1]:
            self._hidden.pop()
            return
        if tag == self._cur[0]:
            self._depth -= 1
            if self._depth == 0:
                self.out.append((self._cur[1], " ".join("".join(self._cur[2]).split())))
                self._cur = None

    def handle_data(self, data):
        if self._cur is not None and not self._hidden:
            self._cur[2].append(data)


def page_blocks(html: str) -> dict[str, str]:
    """``{id: text}`` of the id-carrying paragraphs and headings of one help page (first occurrence)."""
    p = _Blocks()
    p.feed(html)
    p.close()
    out: dict[str, str] = {}
    for i, t in p.out:
        out.setdefault(i, t)
    return out


def iter_pages(deb: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """``(locale, page, blocks)`` for every help page of one package, read one file at a time;
    ``page`` is the path under the locale directory (``text/shared/optionen/01020000.html``)."""
    for rel, data in iter_deb_files(deb, (ROOT,), (".html",)):
        parts = rel[len(ROOT):].split("/", 1)
        if len(parts) != 2 or not parts[1].startswith("text/"):
            continue
        try:
            html = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{deb.name}: {rel} is not UTF-8 (byte {e.start}); the package is corrupt") from None
        yield parts[0], parts[1], page_blocks(html)


def align_page(page: str, en: dict[str, str], xx: dict[str, str], where: str) -> list[tuple[str, str, str]]:
    """``(id, en, xx)`` for the translated paragraphs of one page; differing id sets are a UserError."""
    if set(en) != set(xx):
        only = sorted(set(en) ^ set(xx))[0]
        side = "English" if only in en else "the translation"
        raise UserError(f"{where}: page {page}: paragraph id {only} is only in {side}; the English and the "
                        "translated help must come from the same LibreOffice version")
    return [(i, e, xx[i]) for i, e in en.items() if e and xx[i] and xx[i] != e]
