"""``metaxlm report``: read recorded results and write one self-contained HTML report plus a
Markdown twin (PNGs beside it). Reports never recompute a metric; see :mod:`.verdict` for the only
arithmetic (aggregating per-seed recorded numbers into a delta with a 95% interval)."""

from __future__ import annotations

from pathlib import Path

from metaxlm.errors import UserError


def build_report(run_dirs: list[Path], out: Path, title: str = "metaxlm comparison report") -> tuple[Path, Path]:
    """Read every result under ``run_dirs``; write ``out`` (HTML) and ``out`` with ``.md`` (Markdown,
    figures in ``<stem>_files/``). Returns ``(html_path, markdown_path)``."""
    from metaxlm.report import html, markdown, plots
    from metaxlm.report.collect import collect
    from metaxlm.report.summary import build_summary
    from metaxlm.rundir import atomic_write_bytes, atomic_write_text

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {out}: give a file name ending in .html (the Markdown twin goes beside it)")
    if out.is_dir():
        raise UserError(f"--out {out} is a directory: give a file name such as {out / 'report.html'}")
    col = collect(run_dirs)
    summary = build_summary(col, title=title)
    figures = plots.all_figures(col)
    md_path = out.with_suffix(".md")
    fig_dir = out.parent / f"{out.stem}_files"
    fig_paths = {}
    for f in figures:
        atomic_write_bytes(fig_dir / f"{f.name}.png", f.png)
        fig_paths[f.name] = f"{fig_dir.name}/{f.name}.png"
    atomic_write_text(out, html.render(summary, figures))
    atomic_write_text(md_path, markdown.render(summary, figures, fig_paths))
    return out, md_path


def headline(run_dirs: list[Path]):
    """The headline table (claims, single, meta, delta, verdict) read from ``run_dirs``, for terminals."""
    from metaxlm.report.collect import collect
    from metaxlm.report.summary import build_summary
    from metaxlm.report.tables import headline as headline_table

    return headline_table(build_summary(collect(run_dirs)))
