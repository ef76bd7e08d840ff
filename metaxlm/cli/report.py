"""``metaxlm report RUN_DIR… [--out report.html]``: a self-contained HTML report and a Markdown twin."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR",
                                              help="Run or comparison directories to read (every results/*.json "
                                                   "below them)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="HTML file to write (default: report.html in the one directory "
                                                "given, else in the current directory). The Markdown twin "
                                                "goes beside it. An existing file at either path is "
                                                "replaced only if it is a metaxlm report."),
        title: str = typer.Option("metaxlm comparison report", "--title", help="Report title."),
        resamples: int = typer.Option(2000, "--resamples", help="Paired bootstrap resamples for transfer deltas "
                                                                 "(over recorded per-item outcomes)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap (same seed, same report)."),
    ) -> None:
        """Compare models from recorded results: headline verdicts, controls, per-language tables, plots,
        provenance. Never recomputes a metric."""
        from metaxlm.report import build_report

        if out is None:
            out = (run_dirs[0] / "report.html") if len(run_dirs) == 1 and run_dirs[0].is_dir() else Path("report.html")
        from metaxlm.paths import check_output

        out = check_output(out, "report file", file=True)
        html_path, md_path = build_report(list(run_dirs), out, title=title, resamples=resamples, seed=seed)
        typer.echo(f"report: {html_path}")
        typer.echo(f"markdown: {md_path}")
