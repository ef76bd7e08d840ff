"""The training configuration: one frozen :class:`TrainConfig`, built from YAML or CLI options.

Every key is documented here; ``config.yaml`` in a run directory is the fully resolved version
(``to_dict``) and ``metaxlm train --config FILE`` accepts the same keys. Unknown keys and wrong
types are :class:`~metaxlm.errors.UserError` (exit code 2 in the CLI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

from metaxlm import config as cfg
from metaxlm.errors import UserError

# The largest vocabulary a tokenizer may be trained with: the tokenizers library's trainers reserve
# about 32 bytes per requested entry up front (measured: vocab_size 2**32 - 1 asks for 137 GB and
# aborts the process without a Python error; 2**32 overflows the Unigram trainer's u32), and token
# ids are stored as uint32. 2**24 (16.8M pieces, 0.5 GB reserved) is far above any real vocabulary.
MAX_VOCAB_SIZE = 1 << 24


def _finite(x) -> bool:
    try:
        return not isinstance(x, bool) and math.isfinite(x)
    except (TypeError, OverflowError):
        return False


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of a regime (see :mod:`metaxlm.train.regimes`).

    The budget of a phase is given by at most one of ``tokens`` (absolute), ``steps`` (optimizer
    steps) or ``fraction`` (of ``TrainConfig.total_tokens``); phases that give none share the rest of
    the total budget equally. ``languages`` lists ISO 639-1 codes or ``["all"]`` (every corpus
    language).
    """

    name: str
    languages: tuple[str, ...] = ("all",)
    tokens: Optional[int] = None
    steps: Optional[int] = None
    fraction: Optional[float] = None
    objective: Literal["mlm"] = "mlm"
    # "global": follow the run-wide warmup + linear decay over all phases (the default, so that
    # regimes differ only in their data); "linear"/"cosine"/"constant": a schedule of this phase's
    # own, with ``warmup`` (fraction of the phase's steps, default the run's ``warmup``).
    schedule: Literal["global", "linear", "cosine", "constant"] = "global"
    warmup: Optional[float] = None
    lr: Optional[float] = None  # peak learning rate of this phase (default: the run's ``lr``)
    reset_optimizer: bool = False  # fresh AdamW moments at the start of this phase

    def __post_init__(self):
        for name in ("tokens", "steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"phase {self.name!r}: {name} must be at least 1, got {v}")
        if self.fraction is not None and not (_finite(self.fraction) and 0 <= self.fraction <= 1):
            raise ValueError(f"phase {self.name!r}: fraction must be in [0, 1], got {self.fraction}")
        if self.warmup is not None and not (_finite(self.warmup) and self.warmup >= 0):
            raise ValueError(f"phase {self.name!r}: warmup must be a finite number >= 0, got {self.warmup}")
        if self.lr is not None and not (_finite(self.lr) and self.lr > 0):
            raise ValueError(f"phase {self.name!r}: lr must be a finite number > 0, got {self.lr}")


@dataclass(frozen=True)
class ScheduleExtension:
    """A budget extension made by ``metaxlm train --resume RUN --total-tokens N`` (recorded in the
    run's config.yaml, never written by hand): at optimizer step ``step`` the run's plan grew from
    ``from_steps`` to ``to_steps`` steps. The run-wide (``global``) schedule then continues from the
    learning rate it had at ``step`` (or at the end of the warmup, if that comes later) and decays
    linearly to zero at ``to_steps``; the warmup keeps the length it had in the original plan."""

    step: int
    from_steps: int
    to_steps: int

    def __post_init__(self):
        if not (self.step >= 0 and 1 <= self.from_steps < self.to_steps):
            raise ValueError(f"schedule_extensions: need step >= 0 and 1 <= from_steps < to_steps, got step "
                             f"{self.step}, from_steps {self.from_steps}, to_steps {self.to_steps}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a pretraining run (with the corpus and tokenizer files)."""

    # -- what to train ---------------------------------------------------------------------------
    regime: str = "single"  # single | meta | en-only | none, or any name when ``phases`` is given
    phases: Optional[tuple[PhaseConfig, ...]] = None  # a custom phase list (overrides the built-in)
    meta_split: float = 0.5  # meta regime: fraction of total_tokens spent in the English phase
    english: str = "en"  # the language of the English phases of the built-in regimes
    # -- data ------------------------------------------------------------------------------------
    # a directory of <lang>.txt / <lang>.txt.gz, or a mapping {lang: path}; None = the default
    # benchmark's corpus/ directory
    corpus: Optional[Union[Path, dict[str, Path]]] = None
    languages: Optional[tuple[str, ...]] = None  # use only these corpus languages (None = all)
    val_fraction: float = 0.02  # held-out lines per language (fraction, at least one line) ...
    val_max_lines: int = 200  # ... and at most this many
    val_blocks: int = 16  # validation blocks per language (fixed masks, same for every run)
    # -- tokenizer -------------------------------------------------------------------------------
    tokenizer: Optional[Path] = None  # a tokenizer directory; None = train one into RUN/tokenizer
    vocab_size: int = 16000  # for a tokenizer trained by this run
    tokenizer_type: Literal["unigram", "bpe"] = "unigram"
    tokenizer_max_lines: int = 100_000  # lines sampled (with alpha) to train the tokenizer
    # -- model -----------------------------------------------------------------------------------
    model: str = "demo"  # preset: tiny | demo | small | base
    model_args: dict[str, Any] = field(default_factory=dict)  # overrides, e.g. {hidden_size: 256}
    # -- budget and batches ----------------------------------------------------------------------
    total_tokens: Optional[int] = None  # None = the preset's default budget
    seq_len: Optional[int] = None  # block length in tokens (None = the preset's)
    batch_size: Optional[int] = None  # GLOBAL blocks per optimizer step (None = the preset's)
    grad_accum: int = 1  # micro-batches per optimizer step (per process)
    alpha: float = 0.3  # language sampling exponent: p(lang) ∝ size(lang) ** alpha
    mask_prob: float = 0.15
    mask_replace: float = 0.8  # of the selected tokens: replaced by <mask> ...
    mask_random: float = 0.1  # ... by a random token; the rest are kept
    # -- optimisation ----------------------------------------------------------------------------
    lr: Optional[float] = None  # peak learning rate (None = the preset's)
    warmup: float = 0.06  # fraction of the total steps (< 1) or a number of steps (>= 1)
    weight_decay: float = 0.01
    adam_betas: tuple[float, ...] = (0.9, 0.98)
    adam_eps: float = 1e-6
    clip: float = 1.0  # max gradient norm (0 = no clipping)
    seed: int = 0
    # -- bookkeeping -----------------------------------------------------------------------------
    log_every: int = 10  # steps between metrics.jsonl train lines
    val_every: int = 200  # steps between validation passes (and at every phase end); 0 = phase ends only
    save_every: int = 100  # steps between full training states (RUN/state) for exact resume
    checkpoint_points: tuple[float, ...] = ()  # fractions of total_tokens: checkpoints tokens-<N>
    # also log every metrics.jsonl record to RUN/tb/ (TensorBoard) or RUN/wandb/ (W&B); see metaxlm.trackers
    tracker: Literal["none", "tensorboard", "wandb"] = "none"
    # -- sanity caps on the budget (checked before the first step; raise them if you mean it) -----
    max_epochs: float = 1000.0  # refuse a budget that repeats some language's corpus more often than this
    max_steps: int = 1_000_000_000  # refuse a budget of more optimizer steps than this
    # -- written by `train --resume RUN --total-tokens N` (see ScheduleExtension); not set by hand --
    schedule_extensions: tuple[ScheduleExtension, ...] = ()
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N (metaxlm.devices)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on GPU, fp32 on CPU
    threads: Optional[int] = None  # torch CPU threads (None = torch's default)

    def __post_init__(self):
        def bad(msg: str):
            raise ValueError(msg)

        from metaxlm.devices import check_device

        check_device(self.device)

        # every comparison is written so that NaN fails it (NaN compares false)
        if not 0 <= self.meta_split <= 1:
            bad(f"meta_split must be in [0, 1], got {self.meta_split}")
        if not 0 < self.mask_prob < 1:
            bad(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if not (self.mask_replace >= 0 and self.mask_random >= 0 and self.mask_replace + self.mask_random <= 1):
            bad(f"mask_replace and mask_random must be >= 0 and sum to at most 1, got {self.mask_replace} and "
                f"{self.mask_random}")
        if not (_finite(self.alpha) and self.alpha >= 0):
            bad(f"alpha (the sampling exponent) must be a finite number >= 0, got {self.alpha}")
        for name in ("grad_accum", "log_every", "save_every", "val_blocks", "vocab_size",
                     "tokenizer_max_lines", "val_max_lines"):
            if getattr(self, name) < 1:
                bad(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (_finite(self.max_epochs) and self.max_epochs > 0):
            bad(f"max_epochs must be a finite number > 0, got {self.max_epochs}")
        if self.max_steps < 1:
            bad(f"max_steps must be at least 1, got {self.max_steps}")
        for a, b in zip(self.schedule_extensions, self.schedule_extensions[1:]):
            if not (b.step >= a.step and b.from_steps == a.to_steps):
                bad("schedule_extensions must follow each other (steps in order, each from_steps the previous "
                    "to_steps); this key is written by `train --resume --total-tokens`, not by hand")
        if self.vocab_size > MAX_VOCAB_SIZE:
            bad(f"vocab_size {self.vocab_size} is too large: at most {MAX_VOCAB_SIZE:,} (2**24) pieces")
        for name in ("total_tokens", "seq_len", "batch_size", "threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(f"{name} must be at least 1, got {v}")
        if self.seq_len is not None and self.seq_len < 8:
            bad(f"seq_len must be at least 8, got {self.seq_len}")
        if self.val_every < 0:
            bad(f"val_every must be >= 0, got {self.val_every}")
        if self.seed < 0:
            bad(f"seed must be >= 0, got {self.seed}")
        if self.lr is not None and not (_finite(self.lr) and self.lr > 0):
            bad(f"lr must be a finite number > 0, got {self.lr}")
        if not (_finite(self.warmup) and self.warmup >= 0):
            bad(f"warmup must be a finite number >= 0 (a fraction below 1 or a number of steps), got {self.warmup}")
        if not (_finite(self.weight_decay) and self.weight_decay >= 0):
            bad(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not (_finite(self.adam_eps) and self.adam_eps > 0):
            bad(f"adam_eps must be a finite number > 0, got {self.adam_eps}")
        if not 0 < self.val_fraction < 1:
            bad(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            bad(f"adam_betas must be two numbers in [0, 1), got {list(self.adam_betas)}")
        for p in self.checkpoint_points:
            if not 0 < p < 1:
                bad(f"checkpoint_points must be fractions in (0, 1), got {p}")
        if not (_finite(self.clip) and self.clip >= 0):
            bad(f"clip must be a finite number >= 0 (0 = no clipping), got {self.clip}")
        if not self.regime or "/" in self.regime:
            bad(f"regime must be a plain name, got {self.regime!r}")


def load_train_config(source: Union[str, Path, Mapping[str, Any], TrainConfig, None] = None,
                      **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file, a mapping or a config, with ``overrides`` applied.

    Overrides whose value is ``None`` are ignored (unset CLI options).
    """
    if isinstance(source, TrainConfig):
        data = cfg.to_dict(source)
        where = "config"
    elif source is None:
        data, where = {}, "config"
    elif isinstance(source, Mapping):
        data, where = dict(source), "config"
    else:
        data, where = cfg.load_yaml(source), str(source)
    # the fully resolved config.yaml of a run is accepted too
    data.update({k: v for k, v in overrides.items() if v is not None})
    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
    return cfg.build(TrainConfig, data, where)


def with_updates(config: TrainConfig, **changes: Any) -> TrainConfig:
    try:
        return replace(config, **changes)
    except (TypeError, ValueError) as e:
        raise UserError(f"config: {e}") from None
