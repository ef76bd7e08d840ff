"""The report as one format-free document: sections of typed blocks, rendered to HTML and to Markdown by
the templates in ``templates/`` (:mod:`.render`). :func:`metaxlm.report.sections.build_document` builds
it; nothing here knows a format.

Text fields are plain strings with two inline marks, rendered by each format: `` `code` `` spans and
``**bold**``. A block with ``literal=True`` shows recorded strings (file paths, notes) as they are."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Union

from metaxlm.report.verdict import NOT_RUN


class _Frozen:
    """Sequence fields are stored as tuples (rows of a table as tuples of tuples): a block cannot change."""

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (list, tuple)):
                object.__setattr__(self, f.name, tuple(tuple(x) if isinstance(x, list) else x for x in v))


@dataclass(frozen=True)
class Paragraph(_Frozen):
    text: str
    style: str = ""  # "", "sub" (under the title), "note" (small print), "notrun"
    lead: str = ""  # a bold lead-in: "**LEAD.** text"
    kind: ClassVar[str] = "paragraph"


@dataclass(frozen=True)
class BulletList(_Frozen):
    items: tuple[str, ...]
    style: str = ""
    literal: bool = False
    kind: ClassVar[str] = "list"


@dataclass(frozen=True)
class Table(_Frozen):
    """Header + rows of strings; ``classes``: per-cell CSS classes (HTML only); ``note``: the line under
    the table (how its intervals are computed)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    classes: tuple[tuple[str, ...], ...] = ()
    note: str = ""
    kind: ClassVar[str] = "table"

    def cell_class(self, i: int, j: int) -> str:
        """The CSS class of cell (row ``i``, column ``j``); a "not run" cell also gets ``notrun``."""
        cls = self.classes[i] if i < len(self.classes) else ()
        k = cls[j] if j < len(cls) else ""
        return (k + " notrun").strip() if self.rows[i][j] == NOT_RUN else k


@dataclass(frozen=True)
class Figure(_Frozen):
    path: str  # relative to the Markdown file (the HTML embeds ``png``)
    title: str
    caption: str
    png: bytes = field(repr=False, default=b"")
    kind: ClassVar[str] = "figure"


@dataclass(frozen=True)
class Code(_Frozen):
    text: str
    title: str = ""
    language: str = "yaml"
    kind: ClassVar[str] = "code"


@dataclass(frozen=True)
class Card(_Frozen):
    """One claim at a glance: its verdict and, per metric, ``(verdict, "metric, meta − single Δ")``."""

    title: str
    verdict: str
    items: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Cards(_Frozen):
    cards: tuple[Card, ...]
    kind: ClassVar[str] = "cards"


@dataclass(frozen=True)
class Details(_Frozen):
    """Blocks folded away under a one-line summary."""

    summary: str
    blocks: tuple["Block", ...]
    kind: ClassVar[str] = "details"


@dataclass(frozen=True)
class Section(_Frozen):
    """A titled part of the report; a section inside another's blocks is a subsection (``level`` 3)."""

    id: str
    title: str
    blocks: tuple["Block", ...]
    level: int = 2
    kind: ClassVar[str] = "section"


Block = Union[Paragraph, BulletList, Table, Figure, Code, Cards, Details, Section]


@dataclass(frozen=True)
class Document(_Frozen):
    title: str
    intro: tuple[Block, ...]  # under the title, before the first section
    sections: tuple[Section, ...]

    def walk(self):
        """Every block, depth first (sections and details included)."""
        stack = list(reversed(self.intro + self.sections))
        while stack:
            b = stack.pop()
            yield b
            stack.extend(reversed(getattr(b, "blocks", ())))
