"""Paragraph text of HTML documentation pages (for corpora): one string per block element.

Text inside ``pre``, ``code``, ``script``, ``style`` and hidden elements is skipped; every block
element (``p``, ``li``, ``dd``, headings, table cells, ``div`` …) starts a new paragraph.
"""

from __future__ import annotations

from html.parser import HTMLParser

BLOCKS = {"p", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "div", "blockquote",
          "section", "article", "table", "tr", "ul", "ol", "dl", "br", "body", "caption", "figcaption"}
SKIP = {"pre", "code", "script", "style", "kbd", "samp", "tt", "nav", "head", "noscript", "title"}
VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._buf: list[str] = []
        self._skip: list[str] = []

    def _flush(self):
        text = " ".join("".join(self._buf).split())
        self._buf = []
        if text:
            self.out.append(text)

    def handle_starttag(self, tag, attrs):
        if tag in BLOCKS:
            self._flush()
        if tag in VOID:
            return
        if self._skip or tag in SKIP or any(k == "hidden" for k, _ in attrs):
            self._skip.append(tag)

    def handle_endtag(self, tag):
        if self._skip and tag in self._skip:
            while self._skip and self._skip.pop() != tag:
                pass
            return
        if tag in BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            self._buf.append(data)


def html_paragraphs(html: str) -> list[str]:
    """Whitespace-collapsed text of each block of ``html``, in document order."""
    p = _Text()
    p.feed(html)
    p.close()
    p._flush()
    return p.out
