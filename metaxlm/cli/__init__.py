"""The ``metaxlm`` command line: thin Typer shells over library functions.

Each area registers its commands from its own module; this file only assembles them and turns a
:class:`~metaxlm.errors.UserError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

from typing import Optional

import typer
from typer.core import TyperGroup

from metaxlm import __version__
from metaxlm.errors import UserError


class _Group(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(code=e.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="metaxlm",
    help="Cross-lingual LM research: pretrain (single / meta regimes), evaluate transfer, "
    "retrieval and alignment, and compare models in a report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metaxlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """metaxlm: meta-pretraining and cross-lingual analysis."""


eval_app = typer.Typer(help="Evaluate an encoder: zero-shot transfer (xnli, pawsx, topic, ner, pos) and "
                            "bitext retrieval (tatoeba, bucc).", no_args_is_help=True)

from metaxlm.cli import compare as _compare  # noqa: E402
from metaxlm.cli import data as _data  # noqa: E402
from metaxlm.cli import probe as _probe  # noqa: E402
from metaxlm.cli import report as _report  # noqa: E402
from metaxlm.cli import retrieval as _retrieval  # noqa: E402
from metaxlm.cli import train as _train  # noqa: E402
from metaxlm.cli import transfer as _transfer  # noqa: E402

_data.register(app)
_train.register(app)
_transfer.register(eval_app)
_retrieval.register(eval_app)
app.add_typer(eval_app, name="eval")
_probe.register(app)
_compare.register(app)
_report.register(app)


def main() -> None:
    app()
