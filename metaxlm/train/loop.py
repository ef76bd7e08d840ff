"""THE training loop: one explicit PyTorch loop for every regime, on one or several processes.

:func:`train` validates everything (corpus, phases, tokenizer vs model) before it writes anything,
then creates the run directory (``config.yaml`` first, fully resolved), trains or copies the
tokenizer into ``RUN/tokenizer``, and runs the phases step by step:

- AdamW (no decay on biases and LayerNorm), warmup + linear decay (or a per-phase schedule),
  gradient clipping, gradient accumulation, bf16 (or fp16 with loss scaling) autocast on a GPU,
  float32 on the CPU;
- the MLM head is applied **only at the masked positions**: the encoder's hidden states are gathered
  at the masked positions and only those go through ``model.lm_head`` (no full-vocabulary logits);
- the loss of a step is the sum of the cross-entropies of all masked tokens of the global batch
  divided by their number, whatever the number of processes or micro-batches;
- ``metrics.jsonl`` gets a ``train`` line every ``log_every`` steps and a ``val`` line (MLM loss per
  language on fixed held-out blocks) at step 0, every ``val_every`` steps and at every phase end;
- checkpoints: ``checkpoints/<phase>/`` at each phase end, ``tokens-<N>`` at ``checkpoint_points``,
  ``final``; the full state every ``save_every`` steps and at every checkpoint;
- a NaN/inf loss or gradient stops the run: the last good state/checkpoints stay, the run is marked
  failed and a UserError says so.

Before the run starts, budgets that make no sense are refused: more than ``max_steps`` optimizer
steps, or a phase plan that repeats some language's corpus more than ``max_epochs`` times.

``train(None, RUN, resume=True, resume_changes={...})`` continues an unfinished run and may change
what does not change the run's identity (:data:`RESUME_CHANGEABLE`): ``lr`` (the new peak from the
resume step on), ``device``, ``threads``, ``tracker`` and ``total_tokens`` (only larger: a budget extension, see
:func:`metaxlm.train.regimes.extend_phases`). Every resume is recorded in ``meta.json``
(``resumed``: time, step, changes) and a changed config is rewritten (atomically) to
``config.yaml``, so that a later resume continues the changed run exactly. Every other key is
refused (:data:`RESUME_FIXED` says why).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaxlm import progress, rundir
from metaxlm.config import dump_yaml, to_dict
from metaxlm.devices import autocast, device_meta, grad_scaler
from metaxlm.errors import UserError
from metaxlm.train import dist as _dist
from metaxlm.train.batches import BatchMaker, MaskSpec, Streams
from metaxlm.train.checkpoints import card_context, load_state, rng_state, save_checkpoint, save_state, set_rng_state
from metaxlm.train.config import TrainConfig, load_train_config, with_updates
from metaxlm.train.corpus import default_corpus_dir, parse_source, resolve_files
from metaxlm.train.mlm import MaskedLoss, masked_lm_loss_sum
from metaxlm.train.model import build_model, model_config, preset
from metaxlm.train.regimes import Phase, extend_phases, lr_at, phase_at, phase_configs, resolve_phases
from metaxlm.train.tokcache import describe as describe_tokens
from metaxlm.train.tokcache import prepare_tokens, scan_with_bar
from metaxlm.train.tokenizer import N_SPECIAL, load_tokenizer, save_tokenizer, train_tokenizer
from metaxlm.trackers import check_tracker, open_tracker

REPEAT_WARN = 4.0  # a phase that repeats a language's corpus more often than this is warned about
RELEASE_EVERY = 5  # steps between releases of the token files' mapped pages (tokcache.LangTokens.release)

# What `train --resume` may change, and why everything else is refused (TrainConfig key -> reason).
RESUME_CHANGEABLE = ("lr", "total_tokens", "device", "threads", "tracker")
RESUME_FIXED = {
    "regime": "the regime is the run's list of phases",
    "phases": "the regime is the run's list of phases",
    "meta_split": "it moves the boundary between the phases",
    "corpus": "the run trains on the data it started with",
    "languages": "the run trains on the data it started with",
    "tokenizer": "the model's vocabulary is the run's tokenizer",
    "vocab_size": "the model's vocabulary is the run's tokenizer",
    "model": "the architecture is fixed by the saved weights",
    "model_args": "the architecture is fixed by the saved weights",
    "seed": "the seed fixes the initialisation and every step's batch and masks",
    "batch_size": "the data position and the tokens per step are counted in batches of this size",
    "seq_len": "the data position and the tokens per step are counted in blocks of this length",
    "grad_accum": "it splits every step's batch differently, so the continuation would not be exact",
    "alpha": "it changes the language mix of the remaining steps",
    "checkpoint_points": "every regime of a comparison checkpoints at the same fractions of its budget",
}


class TrainingDiverged(UserError):
    """The loss or the gradient became NaN/inf."""



def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill the preset's defaults (seq_len, batch_size, lr, total_tokens) and the default corpus."""
    p = preset(config.model)
    changes: dict[str, Any] = {}
    for key in ("seq_len", "batch_size", "lr", "total_tokens"):
        if getattr(config, key) is None:
            changes[key] = p[key]
    corpus = default_corpus_dir() if config.corpus is None else config.corpus
    # absolute paths, so that --resume works from any directory
    if isinstance(corpus, dict):
        corpus = {lang: v if str(v).startswith("hf:") else parse_source(v) for lang, v in corpus.items()}
    elif not str(corpus).startswith("hf:"):
        corpus = parse_source(corpus)
    if corpus != config.corpus:
        changes["corpus"] = corpus
    return with_updates(config, **changes) if changes else config


def default_out(regime: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path("runs") / f"train-{regime}-{stamp}"


@dataclass
class Prepared:
    config: TrainConfig
    files: Any
    phases: list[Phase]
    tokens_per_step: int
    budget_steps: int
    scans: dict  # lang -> ScanInfo (rank 0 only)
    tokens: dict | None = None  # lang -> LangTokens, when the tokenizer was given (rank 0 only)
    budget: dict | None = None  # epochs per phase and language, warnings


def prepare(config: TrainConfig, env: _dist.DistEnv | None = None, tokenizer_dir: Path | None = None) -> Prepared:
    """Every check that can fail on the user's input, before anything is written. Rank 0 also scans
    the corpus (UTF-8, line counts, SHA256; remembered) and, when the tokenizer is given, prepares
    the token cache, so that a corpus too small for one block (or a budget that repeats it absurdly
    often) is refused before the run exists. ``tokenizer_dir`` stands in for a ``config.tokenizer``
    of None (a resumed run's own tokenizer)."""
    env = env or _dist.DistEnv()
    world = env.world
    config = resolve_config(config)
    files = resolve_files(config.corpus, config.languages)
    _pick_device(config, env)  # --device cuda without a GPU: refused before anything is written
    check_tracker(config.tracker, "--tracker")  # a missing package: refused before anything is written
    if config.batch_size % (world * config.grad_accum):
        raise UserError(f"batch_size {config.batch_size} (global) must be a multiple of processes × grad_accum "
                        f"= {world} × {config.grad_accum}")
    tps = config.batch_size * config.seq_len
    steps = round(config.total_tokens / tps)
    if steps > config.max_steps:
        raise UserError(f"total_tokens = {config.total_tokens:,} is {steps:,} optimizer steps of {tps:,} tokens "
                        f"(batch_size {config.batch_size} × seq_len {config.seq_len}), more than max_steps = "
                        f"{config.max_steps:,}: give a realistic --total-tokens (or raise max_steps in a --config "
                        "file if you mean it)")
    phases = resolve_phases(config, files.languages, config.total_tokens, tps, config.lr)
    tok = None
    tok_source = config.tokenizer if config.tokenizer is not None else tokenizer_dir
    if tok_source is not None:
        tok = load_tokenizer(tok_source)
        model_config(config.model, config.model_args, len(tok), config.seq_len)
    else:
        model_config(config.model, config.model_args, config.vocab_size, config.seq_len)
    prep = Prepared(config, files, phases, tps, max(1, round(config.total_tokens / tps)), {})
    if env.main:
        prep.scans = {lang: scan_with_bar(src, lang) for lang, src in files.files.items()}
        if tok is not None:
            prep.tokens = prepare_tokens(files, tok, config.val_fraction, config.val_max_lines, scans=prep.scans)
            prep.budget = budget(prep, prep.tokens)
    elif tok is not None:  # the other ranks wait for rank 0's cache files (no collective, no timeout)
        prep.tokens = prepare_tokens(files, tok, config.val_fraction, config.val_max_lines, build=False)
    return prep


def budget(prep: Prepared, tokens: dict) -> dict:
    """How often each phase repeats each language's corpus (expected epochs); refuses a corpus too
    small for one block and warns (stderr, meta.json, results, report) above REPEAT_WARN."""
    import sys

    from metaxlm.train.sampling import language_probs

    config = prep.config
    for lang, t in tokens.items():
        if t.train_tokens < config.seq_len:
            raise UserError(f"corpus {t.source} ({lang}) has {t.train_tokens} training tokens, fewer than one block "
                            f"of seq_len {config.seq_len}; give more text or a smaller --seq-len")
    phases, warnings = [], []
    per_block = config.seq_len - 1  # the first position of a block is <s>
    for ph in prep.phases:
        p = language_probs({lang: tokens[lang].train_tokens for lang in ph.languages}, config.alpha)
        blocks = ph.steps * config.batch_size
        epochs = {lang: round(blocks * p[lang] * per_block / tokens[lang].train_tokens, 4) for lang in ph.languages}
        phases.append({"phase": ph.name, "epochs": epochs})
        over = {lang: e for lang, e in epochs.items() if e > REPEAT_WARN}
        if over:
            worst = max(over, key=over.get)
            warnings.append(f"phase {ph.name} repeats its corpus: {', '.join(f'{k} {v:.1f}×' for k, v in over.items())} "
                            f"(more than {REPEAT_WARN:g} epochs; {worst} has {tokens[worst].train_tokens:,} training "
                            f"tokens): results measure repetition as much as data; give more text or a smaller budget")
    _check_epochs(config, phases, tokens)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return {"phases": phases, "warnings": warnings, "repeat_warn_epochs": REPEAT_WARN}


def _check_epochs(config: TrainConfig, phases: list[dict], tokens: dict) -> None:
    """Refuse a budget that repeats some language's corpus more than ``max_epochs`` times (all phases)."""
    total: dict[str, float] = {}
    for ph in phases:
        for lang, e in ph["epochs"].items():
            total[lang] = total.get(lang, 0.0) + e
    if not total:
        return
    worst = max(total, key=total.get)
    if total[worst] <= config.max_epochs:
        return
    fits = int(config.total_tokens * config.max_epochs / total[worst])
    raise UserError(f"total_tokens = {config.total_tokens:,} would repeat the {worst} corpus {total[worst]:,.0f} times "
                    f"({tokens[worst].train_tokens:,} training tokens), more than max_epochs = {config.max_epochs:g}: "
                    f"give --total-tokens {fits:,} or less, or more text (or raise max_epochs in a --config file if "
                    "you mean it)")


def checkpoint_steps(config: TrainConfig, budget_steps: int, total_steps: int) -> dict[int, str]:
    """Intermediate checkpoints: step -> ``tokens-<N>`` (same for every regime of the same budget)."""
    tps = config.batch_size * config.seq_len
    out = {}
    for f in sorted(set(config.checkpoint_points)):
        s = round(f * budget_steps)
        if 0 < s < total_steps:
            out[s] = f"tokens-{s * tps}"
    return out


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, config: TrainConfig, device_type: str):
    import torch

    kw: dict[str, Any] = dict(lr=config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps)
    try:
        return torch.optim.AdamW(_param_groups(model, config.weight_decay), fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(_param_groups(model, config.weight_decay), foreach=True, **kw)


def _pick_device(config: TrainConfig, env: _dist.DistEnv):
    """(torch.device, precision): one GPU per process (its local rank) in a multi-process run."""
    from metaxlm.devices import pick_precision, resolve_device

    device = resolve_device(config.device, index=env.local_rank if env.world > 1 else None)
    return device, pick_precision(device, config.precision)


def evaluate(model, maker: BatchMaker, languages: list[str], n_blocks: int, device, precision: str,
             batch: int = 32) -> dict[str, float]:
    """MLM loss per language on the fixed validation blocks."""
    import torch

    was_training = model.training
    model.eval()
    out = {}
    with torch.no_grad():
        for lang in languages:
            vb = maker.val_blocks(lang, n_blocks)
            if vb is None:
                continue
            inputs, masked, labels = vb
            total, count = 0.0, 0
            for i in range(0, inputs.shape[0], batch):
                m = masked[i:i + batch]
                n = int(m.sum())
                if n == 0:
                    continue
                lab = labels[count: count + n]
                with autocast(device, precision):
                    s = masked_lm_loss_sum(model, torch.from_numpy(inputs[i:i + batch]).to(device),
                                           torch.from_numpy(m).to(device), torch.from_numpy(lab).to(device))
                total += float(s)
                count += n
            out[lang] = total / max(count, 1)
    model.train(was_training)
    return out


@dataclass
class LogAcc:
    loss_sum: float = 0.0
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    by_lang: dict[str, int] = field(default_factory=dict)


def _truncate_metrics(run: rundir.RunDir, upto_step: int) -> None:
    keep = [r for r in run.metrics() if r.get("step", 0) <= upto_step]
    rundir.atomic_write_text(run.metrics_path, "".join(
        __import__("json").dumps(r, ensure_ascii=False) + "\n" for r in keep))


def train(config: TrainConfig | dict | str | Path | None = None, out: str | Path | None = None,
          resume: bool = False, resume_changes: dict[str, Any] | None = None) -> Path:
    """Pretrain under ``config``'s regime into the run directory ``out``; returns ``out``.

    ``resume=True`` continues the unfinished run in ``out`` from its last saved state (its own
    ``config.yaml`` is used). A finished run is never overwritten. ``resume_changes`` (keys of
    :data:`RESUME_CHANGEABLE`; ``None`` values are ignored) changes the resumed run from its saved
    step on: a new peak ``lr``, another ``device`` or ``threads``, a larger ``total_tokens``.
    """
    changes = {k: v for k, v in (resume_changes or {}).items() if v is not None}
    if changes and not resume:
        raise UserError("resume_changes apply to a resumed run only (resume=True)")
    device = changes.get("device") or (
        "auto" if config is None or not isinstance(config, TrainConfig) else config.device)
    env = _dist.setup(device)
    try:
        return _train(config, out, resume, env, changes)
    finally:
        env.close()


def resume_refusal(key: str, option: str | None = None) -> str:
    option = option or "--" + key.replace("_", "-")
    why = RESUME_FIXED.get(key, "it is part of what the run is")
    return (f"--resume: drop {option}: it would change the run ({why}); only "
            f"{', '.join('--' + k.replace('_', '-') for k in RESUME_CHANGEABLE)} can change on resume; "
            "start a new run for the rest")


def _state_step(path: Path) -> int:
    """The optimizer step of a saved training state (0 when there is none), read without loading it."""
    if not path.is_file():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # an old or damaged file: the full loader says what is wrong (a UserError)
        return int(load_state(path)["step"])


def resume_config(config: TrainConfig, changes: dict[str, Any], step: int,
                  corpus_languages: list[str]) -> tuple[TrainConfig, dict]:
    """``config`` with ``changes`` applied at optimizer ``step`` and the changes made, ``{key: {from, to}}``.

    A value equal to the current one is no change. ``total_tokens`` may only grow: with a saved
    state the last phase gets the extra steps and the schedule continues to the new end
    (:func:`~metaxlm.train.regimes.extend_phases`); with none (step 0, the run restarts) the new
    budget simply replaces the old one, as if the run had been started with it.
    """
    for key in changes:
        if key not in RESUME_CHANGEABLE:
            raise UserError(resume_refusal(key))
    config = resolve_config(config)
    new, diff = config, {}
    total = changes.get("total_tokens")
    if total is not None and total != config.total_tokens:
        if not isinstance(total, int) or isinstance(total, bool):
            raise UserError(f"--total-tokens {total!r}: give a whole number of tokens")
        if total < config.total_tokens:
            raise UserError(f"--total-tokens {total}: a resumed run's budget can only grow (it is "
                            f"{config.total_tokens:,} tokens); a smaller budget would be a different run: start one")
        if step == 0:
            new = with_updates(new, total_tokens=total)
        else:
            new = extend_phases(new, corpus_languages, total, step)
        diff["total_tokens"] = {"from": config.total_tokens, "to": total}
    lr = changes.get("lr")
    if lr is not None and lr != config.lr:
        new = with_updates(new, lr=float(lr))
        tps = new.batch_size * new.seq_len
        phases = resolve_phases(new, corpus_languages, new.total_tokens, tps, new.lr)
        ahead = [pc.name for pc, ph in zip(phase_configs(new), phases) if ph.end > step and pc.lr is None]
        if not ahead:
            raise UserError(f"--lr: no phase still to train uses the run's lr (regime {new.regime!r}: "
                            + ("it trains no steps" if not phases else "every remaining phase sets its own lr in "
                               "config.yaml") + "), so --lr would change nothing")
        diff["lr"] = {"from": config.lr, "to": new.lr}
    for key in ("device", "threads", "tracker"):
        value = changes.get(key)
        if value is not None and value != getattr(config, key):
            new = with_updates(new, **{key: value})
            diff[key] = {"from": getattr(config, key), "to": value}
    return new, diff


def _train(config, out, resume: bool, env: _dist.DistEnv, changes: dict[str, Any] | None = None) -> Path:
    if out is not None:  # a file in the way or an unwritable location: refused before any work
        from metaxlm.paths import check_output

        out = check_output(out, "run directory")
    if resume:
        if out is None:
            raise UserError("--resume needs the run directory to continue")
        out = Path(out)
        if not (out / "config.yaml").is_file():
            if (out / "meta.json").is_file() and rundir.RunDir(out).status == "done":
                rundir.create(out, {}, kind="train", seed=None, resume=True)  # raises: finished run
            raise UserError(f"--resume: {out} holds no training run to resume (no config.yaml)")
        if env.main:
            # one writer per run: a second `train --resume` is refused here, before it reads or writes
            # anything (only rank 0 holds the lock; the other ranks never write the run directory)
            with rundir.locked(out):
                return _resume(out, changes or {}, env)
        return _resume(out, changes or {}, env)
    if not isinstance(config, TrainConfig):
        config = load_train_config(config)
    return _train_in(config, out, resume, env)


def _resume(out: Path, changes: dict[str, Any], env: _dist.DistEnv) -> Path:
    """Resume ``out`` with ``changes`` (rank 0 decides; every rank gets its config)."""
    config = load_train_config(out / "config.yaml")
    step = _state_step(out / "state" / "state.pt") if env.main else 0
    diff: dict = {}
    if changes:
        answer = None
        if env.main:
            try:
                langs = resolve_files(resolve_config(config).corpus, config.languages).languages
                new, diff = resume_config(config, changes, step, langs)
                answer = ("ok", to_dict(new))
            except UserError as e:  # every rank raises it, none waits for the others
                answer = ("error", str(e))
        answer = env.broadcast(answer)
        if answer[0] == "error":
            raise UserError(answer[1])
        config = load_train_config(answer[1])
    record = {"at": rundir.now(), "step": step, "changes": diff}
    tok_dir = out / "tokenizer"
    # with changes, the budget check sees the run's own tokenizer before anything is written
    tokenizer_dir = tok_dir if diff and config.tokenizer is None and (tok_dir / "tokenizer.json").is_file() else None
    return _train_in(config, out, True, env, resume_record=record, tokenizer_dir=tokenizer_dir)


def _train_in(config: TrainConfig, out, resume: bool, env: _dist.DistEnv, resume_record: dict | None = None,
              tokenizer_dir: Path | None = None) -> Path:
    prep = prepare(config, env, tokenizer_dir=tokenizer_dir)
    config = prep.config
    if out is None:
        out = env.broadcast(default_out(config.regime))
    out = Path(out)

    # -- the run directory (rank 0 writes and holds its lock; the others wait) --------------------
    run = rundir.RunDir(out)
    if env.main:
        data = {"files": {lang: {"path": str(p), "sha256": prep.scans[lang].sha256}
                          for lang, p in prep.files.files.items()}}
        run = rundir.create(out, config, kind="train", seed=config.seed, resume=resume,
                            extra_meta={"regime": config.regime, "world_size": env.world, "data": data})
    try:
        if env.main and resume:
            before = run.meta.get("data", {}).get("files", {})
            for lang, now in data["files"].items():
                if lang in before and before[lang].get("sha256") != now["sha256"]:
                    raise UserError(f"--resume: corpus file {now['path']} changed since the run started; an exact "
                                    "resume needs the same data (restore the file or start a new run)")
            fields: dict[str, Any] = {"world_size": env.world}
            if resume_record is not None:
                if resume_record["changes"]:  # the run continues as this config says (atomic rewrite)
                    rundir.atomic_write_text(run.path / "config.yaml", dump_yaml(config))
                fields["resumed"] = [*run.meta.get("resumed", []), resume_record]
            run.update_meta(**fields)
        env.barrier()
        try:
            return _run(run, prep, env, resume)
        except TrainingDiverged as e:
            if env.main:
                run.failed(str(e))
            raise
        except BaseException as e:
            if env.main and not isinstance(e, (KeyboardInterrupt, SystemExit)):
                run.failed(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
            raise
    finally:
        if env.main:
            run.release()  # normal end, error or Ctrl-C (a `locked` block above keeps its own)


def _prepare_tokenizer(run: rundir.RunDir, prep: Prepared, env: _dist.DistEnv):
    config = prep.config
    tok_dir = run.path / "tokenizer"
    if env.main and not (tok_dir / "tokenizer.json").is_file():
        shutil.rmtree(tok_dir, ignore_errors=True)
        if config.tokenizer is not None:
            src = load_tokenizer(config.tokenizer)
            tmp = run.path / ".tokenizer.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            save_tokenizer(src, tmp)
            info = Path(config.tokenizer) / "metaxlm_tokenizer.json"
            if info.is_file():
                shutil.copy(info, tmp / info.name)
            tmp.rename(tok_dir)
        else:
            with progress.task("train tokenizer", total=None):
                train_tokenizer({lang: p for lang, p in prep.files.files.items()}, tok_dir,
                                vocab_size=config.vocab_size, model_type=config.tokenizer_type, alpha=config.alpha,
                                seed=config.seed, max_lines=config.tokenizer_max_lines,
                                val_fraction=config.val_fraction, val_max_lines=config.val_max_lines)
    elif not env.main:  # a file to wait for, not a collective: no timeout however long training takes
        _dist.wait_for_file(tok_dir / "tokenizer.json")
    return load_tokenizer(tok_dir)


def _run(run: rundir.RunDir, prep: Prepared, env: _dist.DistEnv, resume: bool) -> Path:
    import torch

    threads = torch.get_num_threads()
    if prep.config.threads:
        torch.set_num_threads(prep.config.threads)
    try:
        return _loop(run, prep, env, resume)
    finally:
        torch.set_num_threads(threads)


def _loop(run: rundir.RunDir, prep: Prepared, env: _dist.DistEnv, resume: bool) -> Path:
    import torch

    config, phases, tps = prep.config, prep.phases, prep.tokens_per_step
    t_start = time.time()
    tokenizer = _prepare_tokenizer(run, prep, env)
    mcfg = model_config(config.model, config.model_args, len(tokenizer), config.seq_len)
    device, precision = _pick_device(config, env)

    tokens = prep.tokens
    if tokens is None:  # the tokenizer was trained by this run: the cache is prepared now
        tokens = prepare_tokens(prep.files, tokenizer, config.val_fraction, config.val_max_lines,
                                build=env.main, scans=prep.scans)
        if env.main:
            prep.budget = budget(prep, tokens)
    if env.main:
        run.update_meta(data={**run.meta.get("data", {}), "tokens": describe_tokens(tokens)},
                        budget=prep.budget, **device_meta(device, precision))
    streams = Streams({lang: t.train for lang, t in tokens.items()}, {lang: t.val for lang, t in tokens.items()})
    languages = streams.languages
    spec = MaskSpec(config.mask_prob, config.mask_replace, config.mask_random, tokenizer.mask_token_id,
                    len(tokenizer), tuple(sorted({tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                  tokenizer.pad_token_id, tokenizer.mask_token_id,
                                                  tokenizer.unk_token_id})), N_SPECIAL)
    maker = BatchMaker(streams, config.seq_len, config.batch_size, config.alpha, config.seed, spec,
                       tokenizer.bos_token_id)

    model = build_model(mcfg, config.seed).to(device)
    model.train()
    engine = _dist.wrap(MaskedLoss(model), env, device)  # DDP over processes, the plain module alone
    optimizer = make_optimizer(model, config, device.type)
    scaler = grad_scaler(precision)
    torch.manual_seed(config.seed * 1000 + 17 + env.rank)  # dropout stream of this process

    total_steps = phases[-1].end if phases else 0
    ckpt_at = checkpoint_steps(config, prep.budget_steps, total_steps)
    step = 0
    by_lang = {lang: 0 for lang in languages}
    acc = LogAcc(by_lang={})
    checkpoints: list[dict] = []
    last_val: dict[str, float] = {}
    state_path = run.path / "state" / "state.pt"

    if resume and state_path.is_file():
        st = load_state(state_path)
        if st["vocab_size"] != len(tokenizer):
            raise UserError(f"{run.path}: the saved state has a vocabulary of {st['vocab_size']} but the run's "
                            f"tokenizer has {len(tokenizer)}; the tokenizer does not match the model")
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        if scaler is not None and st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        step = st["step"]
        by_lang = st["tokens_seen_by_lang"]
        acc = LogAcc(**st["log_acc"])
        checkpoints = st["checkpoints"]
        last_val = st["last_val"]
        set_rng_state(st["rng"][env.rank] if env.rank < len(st["rng"]) else st["rng"][0])
        if env.main:
            _truncate_metrics(run, step)
    elif resume and env.main:
        _truncate_metrics(run, -1)
        if run.checkpoints_dir.exists():
            shutil.rmtree(run.checkpoints_dir)
    card = None
    if env.main:  # TensorBoard / W&B get every record from here on; every checkpoint gets a model card
        after = (step if state_path.is_file() else -1) if resume else None  # resumed: later steps come again
        run.attach(open_tracker(config.tracker, run, after_step=after, config=to_dict(config)))
        card = card_context(run.path, run.meta, config, [ph.describe(tps) for ph in phases], tps,
                            describe_tokens(tokens), tokenizer, model)

    def gather_rng():
        states = [rng_state()]
        if env.world > 1:
            import torch.distributed as dist

            states = [None] * env.world
            dist.all_gather_object(states, rng_state())
        return states

    def save_full_state():
        states = gather_rng()
        if env.main:
            save_state(state_path, {
                "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "schedule": {"step": step, "total_steps": total_steps},
                "rng": states, "tokens_seen_by_lang": dict(by_lang), "log_acc": acc.__dict__.copy(),
                "checkpoints": list(checkpoints), "last_val": dict(last_val), "vocab_size": len(tokenizer),
                "world_size": env.world,
            })

    def checkpoint(name: str, phase: str | None):
        info = {"name": name, "step": step, "tokens_seen": step * tps, "phase": phase,
                "tokens_seen_by_lang": dict(by_lang), "regime": config.regime, "seed": config.seed}
        if env.main:
            save_checkpoint(model, tokenizer, run.checkpoints_dir / name, info, card)
        checkpoints[:] = [c for c in checkpoints if c["name"] != name]
        checkpoints.append({"name": name, "tokens_seen": step * tps, "step": step})

    def validate(phase_name: str | None):
        nonlocal last_val
        last_val = evaluate(model, maker, languages, config.val_blocks, device, precision)
        if env.main:
            run.log({"type": "val", "step": step, "phase": phase_name, "tokens_seen": step * tps,
                     "val_loss": last_val})

    if step == 0:
        validate(phases[0].name if phases else None)

    micro = config.batch_size // (env.world * config.grad_accum)
    params = [p for p in model.parameters() if p.requires_grad]
    label = f"pretrain {config.regime}"
    t_log, cpu_log = time.time(), time.process_time()
    with progress.task(label, total=total_steps) as bar:
        bar.update(completed=step)
        while step < total_steps:
            ph = phase_at(phases, step)
            if step == ph.start and ph.reset_optimizer and step > 0:
                optimizer = make_optimizer(model, config, device.type)
            lr = lr_at(phases, step, config.warmup)
            for g in optimizer.param_groups:
                g["lr"] = lr
            inputs, masked, labels, lang_idx = maker.global_batch(step, ph.languages)
            n_masked = int(masked.sum())
            # this process's shard of the global batch, in micro-batches
            label_offsets = np.concatenate([[0], np.cumsum(masked.sum(1))])
            loss_sum = torch.zeros((), device=device)
            optimizer.zero_grad(set_to_none=True)
            for a in range(config.grad_accum):
                lo = (env.rank * config.grad_accum + a) * micro
                hi = lo + micro
                x = torch.from_numpy(inputs[lo:hi]).to(device, non_blocking=True)
                m = torch.from_numpy(masked[lo:hi]).to(device, non_blocking=True)
                y = torch.from_numpy(labels[label_offsets[lo]:label_offsets[hi]]).to(device, non_blocking=True)
                # gradients are reduced over processes once per step, in the last micro-batch's backward
                sync = a == config.grad_accum - 1
                with _dist.no_sync(engine, sync), autocast(device, precision):
                    s = engine(x, m, y)
                    # DDP averages over processes: scale so that the result is the global sum / n_masked
                    loss = s * env.world / n_masked
                (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_sum += s.detach()
            if env.world > 1:
                import torch.distributed as dist

                dist.all_reduce(loss_sum)
            if scaler is not None:
                scaler.unscale_(optimizer)
            gnorm = torch.nn.utils.clip_grad_norm_(params, config.clip if config.clip > 0 else float("inf"))
            step_loss = float(loss_sum) / n_masked
            if not math.isfinite(step_loss) or (scaler is None and not math.isfinite(float(gnorm))):
                where = f"the last good state is {state_path} (step {_saved_step(state_path)})" \
                    if state_path.is_file() else "no training state was saved yet"
                raise TrainingDiverged(
                    f"training diverged: the loss became {step_loss} at step {step + 1} (phase {ph.name}); "
                    f"stopped, the run is marked failed; {where}; lower lr (now {config.lr}): "
                    f"metaxlm train --resume {run.path} --lr {config.lr / 2:g}, or raise warmup in a new run")
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            if step % RELEASE_EVERY == 0:  # the token files' mapped pages: out of this process's RSS
                for t in tokens.values():
                    t.release()
            counts = np.bincount(lang_idx, minlength=len(ph.languages)) * config.seq_len
            for i, lang in enumerate(ph.languages):
                by_lang[lang] += int(counts[i])
                acc.by_lang[lang] = acc.by_lang.get(lang, 0) + int(counts[i])
            acc.loss_sum += step_loss
            acc.steps += 1
            acc.tokens += tps
            now, cpu_now = time.time(), time.process_time()
            acc.seconds += now - t_log
            acc.cpu_seconds += cpu_now - cpu_log
            tok_s = acc.tokens / acc.seconds if acc.seconds > 0 else 0.0
            bar.advance(1, phase=ph.name, loss=step_loss, tok_s=tok_s)
            if step % config.log_every == 0 or step == ph.end:
                if env.main:
                    run.log({"type": "train", "step": step, "phase": ph.name, "loss": acc.loss_sum / acc.steps,
                             "lr": lr, "tokens_per_s": tok_s, "tokens_seen": step * tps,
                             "tokens_seen_by_lang": dict(by_lang), "grad_norm": float(gnorm),
                             "tokens_per_cpu_s": acc.tokens / acc.cpu_seconds if acc.cpu_seconds > 0 else None})
                acc = LogAcc(by_lang={})
            save_now = step % config.save_every == 0
            if step == ph.end or (config.val_every and step % config.val_every == 0):
                validate(ph.name)
            if step in ckpt_at:
                checkpoint(ckpt_at[step], ph.name)
                save_now = True
            if step == ph.end:
                checkpoint(ph.name, ph.name)
                save_now = True
            if save_now and step < total_steps:
                save_full_state()
            t_log, cpu_log = time.time(), time.process_time()  # validation and saving are not counted

    # -- the end: final checkpoint, results ------------------------------------------------------
    checkpoint("final", phases[-1].name if phases else None)
    if env.main:
        wall = time.time() - t_start
        run.write_result("pretrain", {
            "kind": "pretrain", "regime": config.regime, "seed": config.seed,
            "phases": [{**ph.describe(tps), "epochs": b["epochs"]}
                       for ph, b in zip(phases, (prep.budget or {}).get("phases", [{}] * len(phases)))],
            "warnings": (prep.budget or {}).get("warnings", []) + _resume_warnings(run.meta),
            "data": describe_tokens(tokens),
            "tokens_seen": {lang: n for lang, n in by_lang.items()},
            "final_val_loss": last_val, "checkpoints": checkpoints, "wall_seconds": wall,
            "config": to_dict(config), "model_config": {k: getattr(mcfg, k) for k in (
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")},
            "versions": rundir.library_versions(),
        })
        run.done(wall_seconds=wall, steps=total_steps, tokens_seen=total_steps * tps)
        if state_path.exists():
            shutil.rmtree(state_path.parent, ignore_errors=True)
    env.barrier()
    return run.path


def _resume_warnings(meta: dict) -> list[str]:
    """Resumes that changed the numbers (lr, budget): said in the results, so the report says it."""
    out = []
    for r in meta.get("resumed") or []:
        ch = {k: v for k, v in (r.get("changes") or {}).items() if k in ("lr", "total_tokens")}
        if ch:
            what = ", ".join(f"{k} {v['from']:g} → {v['to']:g}" for k, v in ch.items())
            out.append(f"resumed at step {r.get('step')} with {what}: this run's schedule or budget is not its "
                       "regime's original plan (see meta.json resumed)")
    return out


def _saved_step(path: Path) -> int | str:
    try:
        return load_state(path)["step"]
    except Exception:  # pragma: no cover
        return "?"
