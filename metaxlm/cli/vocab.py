"""One CLI vocabulary: the options every command shares, spelled and parsed one way.

- ``--model/-m`` is always an encoder (a run directory, checkpoint, HF directory or hub id);
  ``train`` takes its architecture as ``--model-size`` (tiny | demo | small | base).
- ``--languages/-l`` is always a comma-separated list (repeating it works too).
- ``--seeds`` is always a comma-separated list of seeds (``0,1,2``).
- ``--out/-o`` is always where a command writes; ``--device`` always the device.
- Enumerated choices are ``Literal`` types, so ``--help`` lists them and a wrong one is refused.

Old spellings keep working for one release (until 0.3) with a one-line deprecation notice on stderr
(:func:`deprecated`): ``train --model PRESET``, ``eval tatoeba|bucc --lang``, ``eval <task> --seeds N``
(a count).
"""

from __future__ import annotations

from typing import Iterable, Literal, Optional, Union

import typer

from metaxlm.errors import UserError

REMOVED_IN = "0.3"

ModelSize = Literal["tiny", "demo", "small", "base"]
Regime = Literal["single", "meta", "en-only", "none", "custom"]
Pooling = Literal["mean", "cls"]
Margin = Literal["ratio", "distance", "absolute"]
Retrieval = Literal["fwd", "bwd", "intersect", "max"]
TokenizerType = Literal["unigram", "bpe"]

LANGUAGES_HELP = "Comma-separated languages (repeat or comma-separate), e.g. de,fr,ja."
SEEDS_HELP = "Comma-separated seeds, e.g. 0,1,2."

_told: set[str] = set()


def deprecated(old: str, new: str) -> None:
    """One line on stderr, once per process: ``old`` still works until REMOVED_IN; use ``new``."""
    if old in _told:
        return
    _told.add(old)
    typer.echo(f"warning: {old} is deprecated and will be removed in metaxlm {REMOVED_IN}; use {new}", err=True)


def split_list(values: Union[None, str, Iterable[str]]) -> list[str]:
    """``a,b`` / ``["a", "b,c"]`` → ``["a", "b", "c"]`` (blanks dropped, order kept)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return out


def languages(new: Union[None, str, Iterable[str]], old: Optional[Iterable[str]] = None,
              old_name: str = "--lang") -> list[str]:
    """The languages given with ``--languages`` and (deprecated) ``old_name``."""
    langs = split_list(new)
    if old:
        deprecated(old_name, "--languages")
        langs += [x for x in split_list(old) if x not in langs]
    return langs


def seeds(value: Optional[str], where: str = "--seeds") -> Optional[list[int]]:
    """``0,1,2`` → ``[0, 1, 2]``; a clear UserError for anything else."""
    if value is None:
        return None
    items = split_list(value)
    try:
        out = [int(x) for x in items]
    except ValueError:
        raise UserError(f"{where}: {value!r} is not a comma-separated list of integer seeds; "
                        "write e.g. --seeds 0,1,2") from None
    if not out:
        raise UserError(f"{where}: give at least one seed, e.g. --seeds 0")
    if len(set(out)) != len(out):
        raise UserError(f"{where}: seed repeated in {value!r}; give each seed once")
    return out
