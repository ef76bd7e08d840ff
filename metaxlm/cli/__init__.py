"""The ``metaxlm`` command line: thin Typer shells over library functions.

Each area registers its commands from its own module; this file only assembles them and is the one
boundary where bad input becomes one line on stderr and exit code 2: a
:class:`~metaxlm.errors.UserError`, a known failure of the OS or a library that stands for one
(:func:`metaxlm.errors.as_user_error`: a file in the way, permission denied, a full or read-only
disk, a corrupt weights file, invalid JSON, ...), and click's usage errors (an unknown option, a
value that is not a number). Every other exception is a bug and keeps its traceback (exit code 1).
"""

from __future__ import annotations

from typing import Optional

import typer
from typer.core import TyperGroup

from metaxlm import __version__
from metaxlm.errors import UserError, as_user_error, debug, one_line

try:  # typer >= 0.2x carries its own click (typer._click); older releases use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

_NoArgsIsHelp = getattr(_cx, "NoArgsIsHelpError", ())  # a group given no command: prints its help


def _fail(message: object, code: int = 2):
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code=code)


def _usage(e):
    """click's usage error (several lines: usage, hint, message) as one line naming the command."""
    ctx = getattr(e, "ctx", None)
    msg = one_line(e.format_message()).rstrip(".").replace("Value error, ", "")  # typer's Literal choices
    if ctx is None:
        _fail(msg, e.exit_code)
    path = ctx.command_path
    _fail(f"{path}: {msg[:1].lower() + msg[1:]}; see '{path} --help'", e.exit_code)


class _Group(TyperGroup):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _NoArgsIsHelp:
            raise
        except _cx.UsageError as e:
            _usage(e)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            _fail(e, e.exit_code)
        except (typer.Exit, typer.Abort, _NoArgsIsHelp):
            raise
        except _cx.UsageError as e:
            _usage(e)
        except _cx.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except Exception as e:
            err = as_user_error(e)
            if err is None or debug():
                raise  # a bug: the traceback, exit code 1
            _fail(err, err.exit_code)


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
from metaxlm.cli import export as _export  # noqa: E402
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
_export.register(app)


def main() -> None:
    from metaxlm.cpuload import choose_wait_policy

    choose_wait_policy()  # before torch loads: OpenMP reads its wait policy once (metaxlm.cpuload)
    app()
