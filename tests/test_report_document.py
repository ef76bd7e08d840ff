"""The report is one document (metaxlm.report.document) rendered twice from the jinja2 templates: every
section exists once and shows in both formats, in the same order; user-controlled strings stay escaped."""

from __future__ import annotations

import base64
import importlib.resources
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from metaxlm.report import MARKER, build_report, render
from metaxlm.report import document as D
from metaxlm.report.collect import collect
from metaxlm.report.plots import all_figures
from metaxlm.report.sections import build_document
from metaxlm.report.summary import build_summary

RESULTS = Path(__file__).parent / "fixtures" / "results"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
EVIL = '<script>alert("x")</script> & | `tick`'


def test_templates_ship_as_package_data():
    templates = importlib.resources.files("metaxlm.report") / "templates"
    for name in render.TEMPLATES:
        assert (templates / name).is_file(), name
    globs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["metaxlm.report"]
    assert all(any(fnmatch(f"templates/{n}", g) for g in globs) for n in render.TEMPLATES)


@pytest.fixture(scope="module", params=["full", "partial"])
def doc(request):
    col = collect([RESULTS / request.param])
    figures = all_figures(col)
    return build_document(build_summary(col), figures, {f.name: f"r_files/{f.name}.png" for f in figures})


def _sections(doc):
    return [b for b in doc.walk() if isinstance(b, D.Section)]


def test_every_section_once_in_both_formats_in_the_same_order(doc):
    html, md = render.html(doc), render.markdown(doc)
    secs = _sections(doc)
    assert len({s.id for s in secs}) == len(secs)  # ids are unique: one anchor per section
    pos_html = [html.index(f'<h{s.level} id="{s.id}">{s.title}</h{s.level}>') for s in secs]
    pos_md = [md.index(f"\n{'#' * s.level} {s.title}\n") for s in secs]
    assert pos_html == sorted(pos_html) and pos_md == sorted(pos_md)
    assert md.count("\n## ") == html.count("<h2 ") == sum(s.level == 2 for s in secs)
    for t in (b for b in doc.walk() if isinstance(b, D.Table)):  # every table, with its method line
        assert "| " + " | ".join(h.replace("|", "\\|") for h in t.header) + " |" in md
        assert len(t.rows) == 0 or "| " + " | ".join(c.replace("|", "\\|") for c in t.rows[-1]) + " |" in md
        if t.note:
            assert f"_{t.note}_" in md and str(render.html_inline(t.note)) in html
    figs = [b for b in doc.walk() if isinstance(b, D.Figure)]
    assert html.count("data:image/png;base64,") == len(figs) == len(re.findall(r"!\[[^\]]*\]\(r_files/", md))
    for f in figs:
        assert base64.b64encode(f.png).decode() in html and f"]({f.path})" in md
    assert html.splitlines()[:2] == ["<!DOCTYPE html>", MARKER] and md.splitlines()[0] == MARKER
    assert render.html(doc) == html and render.markdown(doc) == md  # same document, same text


def test_the_full_report_keeps_every_section():
    col = collect([RESULTS / "full"])
    titles = [s.title for s in _sections(build_document(build_summary(col), all_figures(col), {
        f.name: f.name for f in all_figures(col)}))]
    assert titles == [
        "What this shows", "Headline: did meta-pretraining help?", "Regime contrasts", "Against the controls",
        "How the intervals are computed", "Per-language transfer: topic (fine-tuned)",
        "Per-language transfer: topic (frozen-encoder probe)", "Training curves", "Transfer gap vs English score",
        "Frozen-encoder probe by layer", "Retrieval by layer", "Alignment: CKA", "Metrics over pretraining",
        "Provenance", "Training runs", "Environment and data"]


def _every_block(text: str) -> D.Document:
    table = D.Table([text, "b"], [[text, "not run"], ["x|y", "z"]], [["num", ""]], note=text)
    return D.Document(text, [D.Paragraph(text, style="sub"), D.Cards([D.Card(text, "better", [("better", text)]),
                                                                        D.Card("c", "not run")])],
                      [D.Section("one", text, [
                          D.Paragraph(text, lead=text), D.BulletList([text, "b"]), D.BulletList([text], literal=True),
                          table, D.Figure("p.png", text, text, b"\x89PNG"),
                          D.Details(text, [D.Code(f"a: 1\n```\n{text}\n", title=text)]),
                          D.Section("two", text, [D.Paragraph("inner")], level=3)])])


def test_html_escapes_every_user_string():
    html = render.html(_every_block(EVIL))
    assert "<script" not in html and "alert(&#34;x&#34;)" in html and "&lt;/script&gt;" in html
    assert "&amp; |" in html and "<code>tick</code>" in html  # `code` spans still become <code>
    assert '<td class="notrun">not run</td>' in html and '<td class="num">' in html
    assert "<h3 id=\"two\">" in html and "<details><summary>" in html and '<div class="card v-not-run">' in html


def test_markdown_escapes_table_cells_and_fences_code():
    md = render.markdown(_every_block(EVIL))
    cell = EVIL.replace("|", "\\|")
    assert f"| {cell} | b |\n|---|---|\n| {cell} | not run |\n| x\\|y | z |\n" in md
    assert f"\n- {cell}\n" in md and f"\n- {EVIL}\n- b\n" in md  # literal items: escaped; others: as written
    assert "\n````yaml\na: 1\n```\n" in md and md.rstrip().endswith("</details>\n\n### " + EVIL + "\n\ninner")
    assert "<summary>&lt;script&gt;" in md  # the summary is HTML inside the Markdown


def test_user_title_is_escaped_end_to_end(tmp_path):
    html, md = build_report([RESULTS / "partial"], tmp_path / "r.html", title=EVIL)
    h = html.read_text(encoding="utf-8")
    assert "<script" not in h and "<title>&lt;script&gt;" in h
    assert md.read_text(encoding="utf-8").splitlines()[1] == f"# {EVIL}"
