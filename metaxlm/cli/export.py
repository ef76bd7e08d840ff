"""``metaxlm export mteb``: a thin shell over :func:`metaxlm.export.export_mteb`."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer


def mteb(
    runs: List[Path] = typer.Argument(..., help="Run or comparison directories (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Export directory: MTEB's results/<model>/<revision>/<Task>.json "
                             "and model_meta.json, plus results/mteb_export.json (what is comparable)."),
) -> None:
    """Write MTEB's result format for the retrieval, mining and classification results under RUN...:
    Tatoeba on LASER's files as MTEB's Tatoeba (comparable), the rest as custom Metaxlm* tasks."""
    from metaxlm.export import export_mteb
    from metaxlm.rundir import read_json

    path = export_mteb([str(r) for r in runs], out)
    manifest = read_json(path / "results" / "mteb_export.json")
    for e in manifest["exported"]:
        mark = "comparable with the leaderboard" if e["comparable_with_leaderboard"] else "metaxlm-only"
        typer.echo(f"{e['file']}  ({mark})")
    if manifest["skipped"]:
        typer.echo(f"skipped {len(manifest['skipped'])} result(s) with no MTEB counterpart "
                   f"(listed in {path / 'results' / 'mteb_export.json'})")


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(help="Export recorded results into other tools' formats (mteb).", no_args_is_help=True)
    export_app.command("mteb")(mteb)
    app.add_typer(export_app, name="export")
