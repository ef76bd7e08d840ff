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
Phase budgets may not add up to more than ``total_tokens`` (fractions summing above 1, or tokens /
steps beyond the budget, are refused): every regime trains on the same budget.

A budget extended on resume (:func:`extend_phases`, ``metaxlm train --resume RUN --total-tokens N``)
keeps every phase but the last at the steps it had and gives the extra steps to the last phase; the
run-wide schedule continues from the learning rate of the resume step down to zero at the new end
(:class:`~metaxlm.train.config.ScheduleExtension`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from metaxlm.errors import UserError
from metaxlm.train.config import PhaseConfig, ScheduleExtension, TrainConfig

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
    extensions: tuple[ScheduleExtension, ...] = ()  # budget extensions on resume (global schedule)

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
    _check_budgets(pcs, explicit, total_tokens, total_steps, tokens_per_step)
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
                            objective=pc.objective, extensions=tuple(config.schedule_extensions)))
        start += steps[pc.name]
    return phases


def _check_budgets(pcs, explicit: dict[str, int], total_tokens: int, total_steps: int, tps: int) -> None:
    """Phase budgets may not exceed the run's budget (the equal-budget premise of a comparison)."""
    fractions = [pc for pc in pcs if pc.fraction is not None]
    share = sum(pc.fraction for pc in fractions)
    if share > 1 + 1e-9:
        trained = sum(explicit[pc.name] for pc in fractions) * tps
        each = ", ".join(f"{pc.name} {pc.fraction:g}" for pc in fractions)
        raise UserError(f"the phases' fractions add up to {share:g} ({each}): "
                        f"{trained:,} tokens against total_tokens = {total_tokens:,}, the budget every regime shares; "
                        "make them sum to at most 1 (phases without a budget share the rest)")
    # tokens as given (not rounded to steps); a budget that rounds to one more step is still the budget
    asked = {pc.name: (pc.tokens if pc.tokens is not None else pc.steps * tps if pc.steps is not None
                       else pc.fraction * total_tokens) for pc in pcs if pc.name in explicit}
    allowed = max(total_tokens, total_steps * tps)
    if sum(asked.values()) > allowed * (1 + 1e-9):
        parts = ", ".join(f"{pc.name}: " + (f"{pc.steps} steps = " if pc.steps is not None else
                                              f"fraction {pc.fraction:g} = " if pc.fraction is not None else "")
                          + f"{asked[pc.name]:,.0f}" for pc in pcs if pc.name in asked)
        raise UserError(f"the phases' budgets add up to {sum(asked.values()):,.0f} tokens ({parts}), more than "
                        f"total_tokens = {total_tokens:,} ({tps} tokens per step), the budget every regime shares; "
                        "lower the phases' tokens/steps or raise total_tokens")


def extend_phases(config: TrainConfig, corpus_languages: list[str], new_total: int, step: int) -> TrainConfig:
    """``config`` with its budget extended to ``new_total`` tokens at optimizer step ``step`` (a resume).

    The phase list becomes explicit (``phases:`` with ``steps``): every phase but the last keeps the
    steps it had, the last one gets every extra step. The run-wide schedule records the extension
    (``schedule_extensions``) so the learning rate continues from where it is to zero at the new
    end; a last phase with a schedule of its own must be ``constant`` (its warmup keeps its length).
    """
    tps = config.batch_size * config.seq_len
    phases = resolve_phases(config, corpus_languages, config.total_tokens, tps, config.lr)
    if not phases:
        raise UserError(f"--total-tokens: regime {config.regime!r} trains no steps; there is nothing to extend")
    old_budget = max(1, round(config.total_tokens / tps))
    new_budget = max(1, round(new_total / tps))
    if new_budget <= old_budget:
        raise UserError(f"--total-tokens {new_total:,} adds no optimizer step to the budget of {config.total_tokens:,} "
                        f"tokens ({tps} tokens per step); give at least {(old_budget + 1) * tps:,}")
    last = phases[-1]
    if last.schedule in ("linear", "cosine"):
        raise UserError(f"--total-tokens: the last phase {last.name!r} has a {last.schedule} schedule of its own, "
                        "which cannot be stretched without changing the steps already trained; start a new run")
    pcs = phase_configs(config)
    extra = new_budget - old_budget
    frozen = []
    for pc, ph in zip(pcs, phases):
        steps = ph.steps + (extra if ph is last else 0)
        warmup = pc.warmup
        if ph is last and pc.schedule != "global":  # constant: its warmup keeps its length in steps
            warmup = max(1.0, ph.warmup * ph.steps) if ph.warmup < 1 else ph.warmup
        frozen.append(replace(pc, tokens=None, fraction=None, steps=steps, warmup=warmup))
    ext = ScheduleExtension(step=step, from_steps=last.end, to_steps=last.end + extra)
    return replace(config, total_tokens=new_total, phases=tuple(frozen),
                   schedule_extensions=tuple(config.schedule_extensions) + (ext,))


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


def _extended_shape(step: int, total: int, warmup: float, extensions) -> float:
    """The run-wide shape after budget extensions: the warmup of the original plan, then a linear
    decay that, at each extension, continues from its value there down to zero at the new end."""
    end = extensions[0].from_steps
    w = _warmup_steps(warmup, end)
    if step < w:
        return (step + 1) / w
    anchor, value = w, 1.0  # the decay goes linearly from `value` at step `anchor` to 0 at `end`
    for ext in extensions:
        if step < ext.step:
            break
        at = max(float(ext.step), w)
        value *= max(0.0, 1.0 - (at - anchor) / max(1.0, end - anchor))
        anchor, end = at, ext.to_steps
    return max(0.0, value * (1.0 - (step - anchor) / max(1.0, end - anchor)))


def lr_at(phases: list[Phase], step: int, warmup: float) -> float:
    """The learning rate of global ``step``."""
    total = phases[-1].end
    for ph in phases:
        if ph.start <= step < ph.end:
            if ph.schedule == "global":
                if ph.extensions:
                    return ph.lr * _extended_shape(step, total, warmup, ph.extensions)
                return ph.lr * _shape("linear", step, total, warmup)
            return ph.lr * _shape(ph.schedule, step - ph.start, ph.steps, ph.warmup)
    raise IndexError(step)


def phase_at(phases: list[Phase], step: int) -> Phase:
    for ph in phases:
        if ph.start <= step < ph.end:
            return ph
    raise IndexError(step)
