"""Render a :class:`~metaxlm.report.document.Document` with the jinja2 templates in ``templates/``:
``report.html.j2`` (one self-contained file: inline CSS, figures embedded as base64 PNG, autoescaped) and
``report.md.j2`` (figures linked by their relative paths). Both carry :data:`metaxlm.report.MARKER`."""

from __future__ import annotations

import base64
import functools
import re

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from metaxlm.report import MARKER
from metaxlm.report.document import Document

TEMPLATES = ("report.html.j2", "report.md.j2")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def html_inline(text) -> Markup:
    """Escape, then turn `code` spans into <code> and **bold** into <b>."""
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else _BOLD.sub(r"<b>\1</b>", p) for i, p in enumerate(parts)))


def md_cell(text) -> str:
    """A Markdown table cell (or a literal list item): ``|`` escaped, on one line."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_fence(text) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    runs = [len(m) for m in re.findall(r"`+", str(text))]
    return "`" * max(3, max(runs, default=0) + 1)


@functools.lru_cache(maxsize=None)
def _env(html: bool) -> Environment:
    env = Environment(loader=PackageLoader("metaxlm.report", "templates"), autoescape=html,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(inline=html_inline, b64=lambda b: base64.b64encode(b).decode("ascii"), cell=md_cell,
                       fence=md_fence, html_escape=escape)
    env.globals["marker"] = Markup(MARKER)
    return env


def html(doc: Document) -> str:
    return _env(True).get_template("report.html.j2").render(doc=doc)


def markdown(doc: Document) -> str:
    return _env(False).get_template("report.md.j2").render(doc=doc).rstrip("\n") + "\n"
