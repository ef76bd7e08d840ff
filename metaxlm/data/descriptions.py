"""The translated package descriptions (DDTP) joined to the Packages index: who owns which text.

An *item* is one English description (keyed by its ``Description-md5``) with the binary packages that
carry it, their source packages and sections, and its translations. Items are grouped into
*components*: source packages linked by sharing a description, so that a split by component is a split
by source package.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from metaxlm.data.archive import open_index
from metaxlm.data.deb822 import Description, parse_packages, parse_translation
from metaxlm.data import languages as L

# Coarse topic from the package Section. Sections about packaging (libs, doc, python, ...) are dropped.
TOPICS = {
    "games": ("games",),
    "graphics": ("graphics",),
    "multimedia": ("sound", "video"),
    "network": ("net", "web", "mail", "comm", "httpd", "news"),
    "science": ("science", "math", "electronics", "hamradio"),
    "system": ("admin", "utils", "shells", "kernel", "otherosfs"),
    "text": ("text", "editors", "tex"),
}
SECTION_TOPIC = {s: t for t, secs in TOPICS.items() for s in secs}
LABELS = sorted(TOPICS)
MIN_TOPIC_WORDS = 12  # shorter descriptions say too little about the topic


@dataclass
class Item:
    md5: str
    english: Description
    packages: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    sections: Counter = field(default_factory=Counter)
    translations: dict[str, Description] = field(default_factory=dict)

    @property
    def package(self) -> str:
        return min(self.packages)

    def label(self) -> str | None:
        """The topic of the most common section among the item's packages (ties: alphabetical)."""
        topics = Counter()
        for sec, n in self.sections.items():
            if sec in SECTION_TOPIC:
                topics[SECTION_TOPIC[sec]] += n
        if not topics:
            return None
        return sorted(topics.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def aligned(self, lang: str) -> list[tuple[str, str]] | None:
        """``(en, xx)`` paragraph pairs, short description first; None when paragraph counts differ."""
        tr = self.translations.get(lang)
        if tr is None or len(tr.paragraphs) != len(self.english.paragraphs):
            return None
        return list(zip((self.english.short,) + self.english.paragraphs, (tr.short,) + tr.paragraphs))


_WORD = re.compile(r"\w+")


def dedup_key(d: Description) -> str:
    """Near-duplicate key: the first long paragraph (or the short line), lowercased words only.

    ``foo``, ``foo-data`` and ``foo-common`` usually share their first paragraph.
    """
    first = d.paragraphs[0] if d.paragraphs else d.short
    return " ".join(_WORD.findall(first.lower())[:40])


def norm(text: str) -> str:
    """Normalized form used for leak checks: lowercase words only."""
    return " ".join(_WORD.findall(text.lower()))


def load_items(root: Path, manifest: dict, languages: tuple[str, ...]) -> dict[str, Item]:
    """Every English description with its packages, sections and translations."""
    files = manifest["files"]
    items: dict[str, Item] = {}
    en_path = files["translation-en"]["path"]
    for t in parse_translation(open_index(root / en_path), "en", en_path):
        it = items.get(t.md5)
        if it is None:
            items[t.md5] = it = Item(t.md5, t.description)
        it.packages.add(t.package)
    pk_path = files["packages"]["path"]
    for p in parse_packages(open_index(root / pk_path), pk_path):
        it = items.get(p.md5)
        if it is not None:
            it.packages.add(p.package)
            it.sources.add(p.source)
            it.sections[p.section] += 1
    for it in items.values():
        if not it.sources:  # described but not built for this architecture: its own group
            it.sources = {f"pkg:{p}" for p in it.packages}
    for lang in languages:
        path = files[f"translation-{lang}"]["path"]
        for t in parse_translation(open_index(root / path), L.debian(lang), path):
            it = items.get(t.md5)
            if it is not None and lang not in it.translations:
                it.translations[lang] = t.description
    return items


def components(items: dict[str, Item]) -> dict[str, str]:
    """``{md5: component}``: items linked through shared source packages; the component is named by
    its alphabetically first source package."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for it in items.values():
        srcs = sorted(it.sources)
        for s in srcs[1:]:
            union(srcs[0], s)
    return {md5: find(min(it.sources)) for md5, it in items.items()}
