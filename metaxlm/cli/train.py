"""CLI for this area (to be filled in by its owner)."""

import typer


def register(app: typer.Typer) -> None:
    pass
