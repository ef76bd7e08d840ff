"""``metaxlm report``: read recorded results and write one self-contained HTML report plus a
Markdown twin (PNGs beside it), both rendered from one document (:mod:`.sections` builds it,
:mod:`.render` renders it with the jinja2 templates in ``templates/``). Reports never recompute a
model's metric; see :mod:`.verdict` for the only arithmetic (deltas with a 95% interval: Welch over
recorded per-seed numbers, or the paired bootstrap of :mod:`.paired`, which recomputes the metric on
resamples of recorded per-item outcomes).

A report never overwrites a file it did not write: every HTML and Markdown report carries
:data:`MARKER` at its top, and an existing file at either output path is replaced only when it is a
metaxlm report (:func:`is_report`), so ``metaxlm compare`` can re-render its own ``report.html``."""

from __future__ import annotations

import os
from pathlib import Path

from metaxlm.errors import UserError

MARKER = "<!-- metaxlm-report -->"  # the first line of the Markdown, the line after <!DOCTYPE html>
# Reports written before the marker existed are recognised by their fixed opening.
_LEGACY_SENTENCE = "Every number is read from recorded result files; nothing is recomputed."
_LEGACY_HTML_HEAD = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
_HEAD_BYTES = 32_768


def is_report(path: Path) -> bool:
    """True when ``path`` is a regular file written by ``metaxlm report`` (HTML or Markdown)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    if MARKER in head[:1024]:
        return True
    if head.startswith(_LEGACY_HTML_HEAD):
        return _LEGACY_SENTENCE in head and '<p class="sub">Generated ' in head
    lines = head.split("\n", 3)
    return (len(lines) > 2 and lines[0].startswith("# ") and lines[2].startswith("Generated ")
            and _LEGACY_SENTENCE in lines[2])


def _refuse(path: Path, why: str) -> UserError:
    return UserError(f"{path} {why}; refusing to overwrite it: choose another --out or move the file away")


def _check_writable_parent(out: Path) -> None:
    """The nearest existing ancestor of ``out`` must be a writable directory."""
    anc = out.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"--out {out}: {anc} is not a directory; choose another --out")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: directory {anc} is not writable; choose another --out")


def check_outputs(out: Path) -> tuple[Path, Path, Path]:
    """``(html, markdown, figures_dir)`` for ``--out out``, after checking that writing them replaces
    nothing but an earlier metaxlm report; otherwise a one-line UserError naming the file."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {out}: give a file name ending in .html (the Markdown twin goes beside it)")
    md_path = out.with_suffix(".md")
    fig_dir = out.parent / f"{out.stem}_files"
    if out.is_dir():
        raise UserError(f"--out {out} is a directory: give a file name such as {out / 'report.html'}")
    if md_path.is_dir():
        raise _refuse(md_path, "(the Markdown twin's path) is a directory")
    _check_writable_parent(out)
    for p in (out, md_path):
        if (p.exists() or p.is_symlink()) and not is_report(p):
            raise _refuse(p, "exists and is not a metaxlm report")
    if fig_dir.exists() and not fig_dir.is_dir():
        raise _refuse(fig_dir, "(the figures' directory) exists and is not a directory")
    return out, md_path, fig_dir


def _check_figures(out: Path, md_path: Path, fig_dir: Path, names: list[str]) -> None:
    """A figure PNG may replace an existing file only when the report it belongs to is replaced."""
    owned = is_report(out) or is_report(md_path)
    for n in names:
        png = fig_dir / f"{n}.png"
        if (png.exists() or png.is_symlink()) and (not owned or not png.is_file()):
            raise _refuse(png, "exists and does not belong to a metaxlm report at "
                          f"{md_path if md_path.exists() else out}")


def build_report(run_dirs: list[Path], out: Path, title: str = "metaxlm comparison report", *,
                 resamples: int = 2000, seed: int = 0) -> tuple[Path, Path]:
    """Read every result under ``run_dirs``; write ``out`` (HTML) and ``out`` with ``.md`` (Markdown,
    figures in ``<stem>_files/``). Returns ``(html_path, markdown_path)``. ``resamples`` and ``seed``: the
    paired bootstrap of transfer deltas (:mod:`metaxlm.report.paired`); same seed, same report.

    An existing file at either path (or a figure PNG) is replaced only when it is a metaxlm report
    (:func:`is_report`); anything else is a UserError and nothing is written."""
    from metaxlm.report import plots, render
    from metaxlm.report.collect import collect
    from metaxlm.report.sections import build_document
    from metaxlm.report.summary import build_summary
    from metaxlm.rundir import atomic_write_bytes, atomic_write_text

    if isinstance(resamples, bool) or not isinstance(resamples, int) or not 100 <= resamples <= 1_000_000:
        raise UserError(f"--resamples {resamples}: give a whole number of bootstrap resamples from 100 to 1000000 "
                        "(default 2000)")
    out, md_path, fig_dir = check_outputs(out)  # before reading anything: refuse early
    col = collect(run_dirs)
    summary = build_summary(col, title=title, resamples=resamples, seed=seed)
    figures = plots.all_figures(col)
    doc = build_document(summary, figures, {f.name: f"{fig_dir.name}/{f.name}.png" for f in figures})
    html_text, md_text = render.html(doc), render.markdown(doc)
    check_outputs(out)  # again, right before writing: the files may have appeared meanwhile
    _check_figures(out, md_path, fig_dir, [f.name for f in figures])
    for f in figures:
        atomic_write_bytes(fig_dir / f"{f.name}.png", f.png)
    atomic_write_text(out, html_text)
    atomic_write_text(md_path, md_text)
    return out, md_path


def headline(run_dirs: list[Path]):
    """The headline table (claims, single, meta, delta, verdict) read from ``run_dirs``, for terminals."""
    from metaxlm.report.collect import collect
    from metaxlm.report.summary import build_summary
    from metaxlm.report.tables import headline as headline_table

    return headline_table(build_summary(collect(run_dirs)))
