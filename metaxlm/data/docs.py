"""Aligned paragraphs from translated documentation: GNOME help (Mallard XML) and the Debian handbook (HTML).

A page is aligned one to one with its English source when both have the same number of text
blocks (Mallard ``p``/``title``/``desc``; handbook ``div.para`` and ``p``). Pairs that are
untranslated (identical to English), mostly non-letters (commands, paths), very short, or of very
different lengths are dropped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from metaxlm.data import languages as L
from metaxlm.errors import UserError

MALLARD_NS = "{http://projectmallard.org/1.0/}"
MALLARD_BLOCKS = {"p", "title", "desc"}
GNOME_GUIDES = ("gnome-help", "system-admin-guide")
MIN_EN_WORDS = 3


def clean(text: str) -> str:
    """Collapse all whitespace (tabs and newlines included) to single spaces."""
    return " ".join(text.split())


def mallard_blocks(data: bytes, where: str) -> list[str]:
    """Text of the ``p``, ``title`` and ``desc`` elements of a Mallard page, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise UserError(f"{where}: not well-formed Mallard XML ({e})") from None
    if root.tag != MALLARD_NS + "page":
        raise UserError(f"{where}: not a Mallard page (root element {root.tag!r})")
    return [clean(_mallard_text(el)) for el in root.iter()
            if isinstance(el.tag, str) and el.tag.startswith(MALLARD_NS) and el.tag[len(MALLARD_NS):] in MALLARD_BLOCKS]


def _mallard_text(el: ET.Element) -> str:
    """Text of an element; the keys of a ``keyseq`` are joined with ``+`` (Ctrl+Q, not CtrlQ)."""
    parts = [el.text or ""]
    sep = "+" if el.tag == MALLARD_NS + "keyseq" else ""
    kids = [_mallard_text(c) for c in el if isinstance(c.tag, str)]
    if sep:
        parts.append(sep.join(k.strip() for k in kids))
    else:
        parts += [k + (c.tail or "") for k, c in zip(kids, [c for c in el if isinstance(c.tag, str)])]
    if sep:
        parts.append(el[-1].tail or "" if len(el) else "")
    return "".join(parts)


class _HandbookParser(HTMLParser):
    """Collects the text of ``div.para`` and ``p`` blocks (outermost only), skipping ``pre``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._stack: list[str] = []  # open tags while inside a block
        self._buf: list[str] | None = None
        self._pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base"):
            return
        if self._buf is None:
            classes = (dict(attrs).get("class") or "").split()
            if tag == "p" or (tag == "div" and "para" in classes):
                self._buf, self._stack = [], [tag]
            return
        self._stack.append(tag)
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag):
        if self._buf is None or tag not in self._stack:
            return
        while self._stack:
            top = self._stack.pop()
            if top == "pre":
                self._pre -= 1
            if top == tag:
                break
        if not self._stack:
            self.blocks.append(clean("".join(self._buf)))
            self._buf, self._pre = None, 0

    def handle_data(self, data):
        if self._buf is not None and not self._pre:
            self._buf.append(data)


def handbook_blocks(html: str) -> list[str]:
    p = _HandbookParser()
    p.feed(html)
    p.close()
    return p.blocks


def _letters_ratio(s: str) -> float:
    return sum(ch.isalpha() for ch in s) / max(1, len(s))


def keep_pair(en: str, xx: str) -> bool:
    """A usable translation pair: translated, mostly prose, plausible length ratio."""
    if not en or not xx or en == xx:
        return False
    if len(en.split()) < MIN_EN_WORDS or _letters_ratio(en) < 0.6 or _letters_ratio(xx) < 0.5:
        return False
    ratio = len(xx) / len(en)
    return 0.15 <= ratio <= 4.0


def align(en_blocks: list[str], xx_blocks: list[str]) -> list[tuple[str, str]]:
    """One-to-one pairs when the block counts agree, else nothing."""
    if len(en_blocks) != len(xx_blocks):
        return []
    return [(e, x) for e, x in zip(en_blocks, xx_blocks) if keep_pair(e, x)]


def _read_pages(directory: Path, pattern: str, parse) -> dict[str, list[str]]:
    out = {}
    for f in sorted(directory.glob(pattern)):
        rel = f.relative_to(directory).as_posix()
        try:
            out[rel] = parse(f)
        except UserError:
            continue  # one broken page does not stop the build; it simply does not align
    return out


def gnome_pages(root: Path, locale: str) -> dict[str, list[str]]:
    """``{guide/page: blocks}`` for a GNOME help locale (``C`` is English)."""
    base = root / "usr/share/help" / locale
    pages: dict[str, list[str]] = {}
    for guide in GNOME_GUIDES:
        if (base / guide).is_dir():
            for rel, blocks in _read_pages(base / guide, "*.page",
                                           lambda f: mallard_blocks(f.read_bytes(), str(f))).items():
                pages[f"{guide}/{rel}"] = blocks
    return pages


def handbook_pages(root: Path, locale: str) -> dict[str, list[str]]:
    base = root / "usr/share/doc/debian-handbook/html" / locale
    if not base.is_dir():
        return {}
    return _read_pages(base, "*.html", lambda f: handbook_blocks(f.read_text(encoding="utf-8", errors="replace")))


def doc_pairs(gnome_root: Path | None, handbook_root: Path | None, lang: str,
              _en_cache: dict | None = None) -> Iterator[tuple[str, str, str]]:
    """``(page_key, en, xx)`` aligned pairs for ``lang`` from both documents, in a stable order.

    ``page_key`` is ``gnome:<guide>/<page>`` or ``handbook:<page>``; it is the unit of the dev/test split.
    """
    cache = _en_cache if _en_cache is not None else {}
    if gnome_root is not None and (gnome_root / "usr/share/help").is_dir():
        if "gnome" not in cache:
            cache["gnome"] = gnome_pages(gnome_root, "C")
        loc = L.debian(lang)
        xx = gnome_pages(gnome_root, loc)
        for page, en_blocks in cache["gnome"].items():
            if page in xx:
                for e, x in align(en_blocks, xx[page]):
                    yield f"gnome:{page}", e, x
    if handbook_root is not None:
        base = handbook_root / "usr/share/doc/debian-handbook/html"
        available = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
        en_dir, xx_dir = L.handbook_dir("en", available), L.handbook_dir(lang, available)
        if en_dir and xx_dir:
            if "handbook" not in cache:
                cache["handbook"] = handbook_pages(handbook_root, en_dir)
            xx = handbook_pages(handbook_root, xx_dir)
            for page, en_blocks in cache["handbook"].items():
                if page in xx:
                    for e, x in align(en_blocks, xx[page]):
                        yield f"handbook:{page}", e, x
