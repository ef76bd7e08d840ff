"""What the report shows, in order: :func:`build_document` turns a :class:`~metaxlm.report.summary.Summary`
and its figures into one :class:`~metaxlm.report.document.Document`. The section list lives here only;
the HTML and Markdown templates render whatever document they are given."""

from __future__ import annotations

import re

from metaxlm.report import plots
from metaxlm.report import tables as T
from metaxlm.report import verdict as V
from metaxlm.report.document import (BulletList, Card, Cards, Code, Details, Document, Figure, Paragraph,
                                     Section)
from metaxlm.report.summary import Summary

GENERATED = "Every number is read from recorded result files; nothing is recomputed."


def _id(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _section(title: str, blocks, level: int = 2, id: str | None = None) -> Section:
    return Section(id or _id(title), title, tuple(blocks), level)


def _not_run() -> Paragraph:
    return Paragraph(V.NOT_RUN, style="notrun")


def _cards(s: Summary) -> Cards:
    cards = []
    for claim, title in V.CLAIMS.items():
        rows = [r for r in s.rows if r.metric.claim == claim and r.verdict.verdict != V.NOT_RUN]
        items = [(r.verdict.verdict, f"{r.metric.label}, meta − single {V.fmt_delta(r.verdict.comparison)}")
                 for r in rows]
        cards.append(Card(title, rows[0].verdict.verdict if rows else V.NOT_RUN, items))
    return Cards(cards)


def _headline(s: Summary) -> Section:
    blocks = [T.headline(s), *(Paragraph(u, style="note") for u in s.units)]
    ps = T.per_seed(s)
    if ps.rows:
        blocks.append(Details(f"Per-seed values behind the cells and Welch intervals ({len(ps.rows)} rows)", [ps]))
    return _section("Headline: did meta-pretraining help?", blocks, id="headline")


def _controls(s: Summary) -> Section:
    blocks: list = []
    for claim, title in V.CLAIMS.items():
        lines = s.claim_statements.get(claim) or []
        blocks.append(Paragraph(" ".join(lines), lead=title) if lines
                      else Paragraph("not run.", style="notrun", lead=title))
    blocks.append(T.controls(s))
    cd = T.control_deltas(s)
    if cd is not None:
        blocks.append(Details(f"Every model minus every control ({len(cd.rows)} rows)", [cd]))
    if s.statistics:
        blocks.append(_section("How the intervals are computed",
                               [Paragraph(x, style="note") for x in s.statistics], level=3, id="statistics"))
    return _section("Against the controls", blocks, id="controls")


def _per_language(s: Summary) -> list[Section]:
    if not s.per_language:
        return [_section("Per-language transfer", [_not_run()], id="per-language")]
    return [_section(f"Per-language transfer: {d.get('title', task)}", [T.per_language(s, task)],
                     id=f"per-language-{_id(task)}") for task, d in s.per_language.items()]


def _figures(figures: list[plots.Figure], fig_paths: dict[str, str]) -> list[Section]:
    figs = {f.name: f for f in figures}
    groups = [("Training curves", ["training-loss", "validation-loss"]),
              ("Transfer gap vs English score", ["gap-vs-english"]),
              *([("Frozen-encoder probe by layer", ["probe-by-layer"])] if "probe-by-layer" in figs else []),
              ("Retrieval by layer", ["retrieval-by-layer"]),
              ("Alignment: CKA", ["cka-by-layer"] + [f.name for f in figures if f.name.startswith("cka-pairs")]),
              ("Metrics over pretraining", ["curves"])]
    out = []
    for title, names in groups:
        got = [Figure(fig_paths[n], figs[n].title, figs[n].caption, figs[n].png) for n in names if n in figs]
        out.append(_section(title, got or [_not_run()]))
    return out


def _provenance(s: Summary) -> Section:
    blocks: list = []
    if s.steps:
        st = T.steps(s)
        blocks.append(Details(f"Comparison steps ({len(st.rows) - 1}, total {st.rows[-1][2]})", [st]))
    others = T.provenance(s, training=False)
    training = [T.provenance(s, training=True),
                Details(f"Evaluation, probe and comparison runs ({len(others.rows)})", [others])]
    blocks.append(_section("Training runs", training, level=3, id="training-runs"))
    env: list = [T.environment(s)]
    configs = [Code(p["config"], title=p["run"]) for p in s.provenance if p["config"]]
    if configs:
        env.append(Details("Configs (config.yaml of every run)", configs))
    blocks.append(_section("Environment and data", env, level=3, id="environment"))
    return _section("Provenance", blocks)


def build_document(s: Summary, figures: list[plots.Figure], fig_paths: dict[str, str]) -> Document:
    """The whole report. ``fig_paths`` maps a figure's name to its PNG's path relative to the Markdown file."""
    roots = ", ".join(f"`{r}`" for r in s.roots)
    intro = [Paragraph(f"Generated {s.generated_at} from {roots}. {GENERATED}", style="sub"),
             *(Paragraph(T.comparison_line(c), style="sub") for c in s.comparisons),
             _cards(s)]
    sections = [_section("What this shows", [BulletList(s.what_this_shows, style="what")]),
                _headline(s)]
    con = T.contrasts(s)
    if con is not None:
        sections.append(_section("Regime contrasts", [con], id="contrasts"))
    sections += [_controls(s), *_per_language(s), *_figures(figures, fig_paths), _provenance(s)]
    if s.problems:
        sections.append(_section("Problems while reading", [BulletList(s.problems, literal=True)], id="problems"))
    if s.notes:
        sections.append(_section("Notes recorded with the results", [BulletList(s.notes, literal=True)],
                                 id="notes"))
    return Document(s.title, intro, sections)
