"""Phases and regimes. A regime is nothing but a list of phases; every regime runs through the same loop.

Built-in regimes (``TrainConfig.regime``), all with the same total token budget by default:

- ``single``: one phase ``multilingual`` on every corpus language;
- ``meta``: ``english`` (English only, ``meta_split`` of the budget), then ``multilingual``;
- ``en-only``: one phase ``english`` with the whole budget;
- ``none``: no phase at all — the run saves the randomly initialised model as ``final`` (the
  no-pretraining control).

A custom regime is ``phases:`` in the YAML config (see :class:`~metaxlm.train.config.PhaseConfig`).
By default every phase follows one run-wide learning-rate schedule (warmup, then linear decay over
all phases) and keeps the optimizer state, so regimes differ only in the data each step sees.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from metaxlm.errors import UserError
from metaxlm.train.config import PhaseConfig, TrainConfig

BUILTIN = ("single", "meta", "en-only", "none")
RESERVED = {"final", "state", "tokenizer"}


@dataclass(frozen=True)
class Phase:
    name: str
    languages: tuple[str, ...]
    steps: int
    start: int  # global step at which the phase starts
    schedule: str
    warmup: float
    lr: float
    reset_optimizer: bool
    objective: str = "mlm"

    @property
    def end(self) -> int:
        return self.start + self.steps

    def describe(self, tokens_per_step: int) -> dict:
        return {"name": self.name, "languages": list(self.languages), "tokens": self.steps * tokens_per_step,
                "steps": self.steps}


def phase_configs(config: TrainConfig) -> tuple[PhaseConfig, ...]:
    """The phase list of ``config``: its custom ``phases`` or the built-in regime's."""
    if config.phases is not None:
        return config.phases
    en = config.english
    if config.regime == "single":
        return (PhaseConfig("multilingual", ("all",)),)
    if config.regime == "meta":
        return (PhaseConfig("english", (en,), fraction=config.meta_split), PhaseConfig("multilingual", ("all",)))
    if config.regime == "en-only":
        return (PhaseConfig("english", (en,)),)
    if config.regime == "none":
        return ()
    raise UserError(f"regime {config.regime!r} is unknown; choose one of {', '.join(BUILTIN)} "
                    "or define `phases:` in a config file")


def resolve_phases(config: TrainConfig, corpus_languages: list[str], total_tokens: int, tokens_per_step: int,
                   peak_lr: float) -> list[Phase]:
    """Concrete phases (languages expanded, budgets in steps); bad phase lists are UserErrors."""
    pcs = phase_configs(config)
    total_steps = max(1, round(total_tokens / tokens_per_step))
    names = set()
    for pc in pcs:
        if not pc.name or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", pc.name):
            raise UserError(f"phase name {pc.name!r} must be a plain name (letters, digits, _ . -)")
        if pc.name in RESERVED or pc.name.startswith("tokens-"):
            raise UserError(f"phase name {pc.name!r} is reserved; choose another")
        if pc.name in names:
            raise UserError(f"phase name {pc.name!r} is used twice")
        names.add(pc.name)
        if sum(x is not None for x in (pc.tokens, pc.steps, pc.fraction)) > 1:
            raise UserError(f"phase {pc.name!r}: give at most one of tokens, steps, fraction")
        if not pc.languages:
            raise UserError(f"phase {pc.name!r} has no languages")
        for lang in pc.languages:
            if lang != "all" and lang not in corpus_languages:
                raise UserError(f"phase {pc.name!r} names language {lang!r}, which has no corpus "
                                f"(corpus languages: {', '.join(corpus_languages)})")
        if pc.lr is not None and not pc.lr > 0:
            raise UserError(f"phase {pc.name!r}: lr must be > 0")
    explicit: dict[str, int] = {}
    for pc in pcs:
        if pc.steps is not None:
            explicit[pc.name] = pc.steps
        elif pc.tokens is not None:
            explicit[pc.name] = round(pc.tokens / tokens_per_step)
        elif pc.fraction is not None:
            if not 0 <= pc.fraction <= 1:
                raise UserError(f"phase {pc.name!r}: fraction must be in [0, 1], got {pc.fraction}")
            explicit[pc.name] = round(pc.fraction * total_steps)
    rest = [pc for pc in pcs if pc.name not in explicit]
    remaining = total_steps - sum(explicit.values())
    if rest and remaining < len(rest):
        raise UserError(f"the phases' explicit budgets ({sum(explicit.values())} steps) leave nothing of "
                        f"total_tokens = {total_tokens} ({total_steps} steps) for phase {rest[0].name!r}")
    steps = dict(explicit)
    for i, pc in enumerate(rest):
        steps[pc.name] = remaining // len(rest) + (1 if i < remaining % len(rest) else 0)
    phases, start = [], 0
    for pc in pcs:
        if steps[pc.name] < 1:
            raise UserError(f"phase {pc.name!r} gets 0 steps of {tokens_per_step} tokens; raise its budget "
                            "or total_tokens")
        langs = tuple(corpus_languages) if "all" in pc.languages else tuple(dict.fromkeys(pc.languages))
        phases.append(Phase(name=pc.name, languages=langs, steps=steps[pc.name], start=start,
                            schedule=pc.schedule, warmup=config.warmup if pc.warmup is None else pc.warmup,
                            lr=peak_lr if pc.lr is None else pc.lr, reset_optimizer=pc.reset_optimizer,
                            objective=pc.objective))
        start += steps[pc.name]
    return phases


def _warmup_steps(warmup: float, steps: int) -> float:
    w = warmup * steps if warmup < 1 else warmup
    return max(1.0, min(float(w), float(steps)))


def _shape(kind: str, step: int, steps: int, warmup: float) -> float:
    w = _warmup_steps(warmup, steps)
    if step < w:
        return (step + 1) / w
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - w) / max(1.0, steps - w))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)  # linear and global


def lr_at(phases: list[Phase], step: int, warmup: float) -> float:
    """The learning rate of global ``step``."""
    total = phases[-1].end
    for ph in phases:
        if ph.start <= step < ph.end:
            if ph.schedule == "global":
                return ph.lr * _shape("linear", step, total, warmup)
            return ph.lr * _shape(ph.schedule, step - ph.start, ph.steps, ph.warmup)
    raise IndexError(step)


def phase_at(phases: list[Phase], step: int) -> Phase:
    for ph in phases:
        if ph.start <= step < ph.end:
            return ph
    raise IndexError(step)
