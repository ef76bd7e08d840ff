"""``metaxlm train`` and ``metaxlm tokenizer train``: thin shells over :mod:`metaxlm.train`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Literal, Optional

import typer

from metaxlm.cli.vocab import LANGUAGES_HELP, ModelSize, TokenizerType, deprecated
from metaxlm.devices import HELP as DEVICE_HELP
from metaxlm.errors import UserError

Tracker = Literal["none", "tensorboard", "wandb"]

CORPUS_HELP = ("Corpus: a directory of <lang>.txt (.gz, .xz, .zst) files, or LANG=PATH / "
               "LANG=hf:NAME[:CONFIG][:SPLIT][#COLUMN] (repeat the option). "
               "Default: the default benchmark's corpus/ (see `metaxlm data build`).")


def _languages(value: Optional[str]):
    if value is None:
        return None
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        raise UserError("--languages: give comma-separated language codes, e.g. en,de,fr")
    return langs


def train_cmd(
    regime: Optional[str] = typer.Option(None, "--regime", "-r",
                                         help="single | meta | en-only | none (or a name for custom phases in --config)."),
    corpus: Optional[List[str]] = typer.Option(None, "--corpus", "-c", help=CORPUS_HELP),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t",
                                             help="Tokenizer directory (default: train one into RUN/tokenizer)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with TrainConfig keys (options override it)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/train-<regime>-<time>)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the unfinished run in this directory. Only --lr (the new peak from the resume "
                               "step on), --total-tokens (a larger budget: the last phase gets the extra steps), "
                               "--device, --threads and --tracker may be given with it; every change is recorded in "
                               "meta.json (resumed) and config.yaml."),
    model_size: Optional[ModelSize] = typer.Option(None, "--model-size", help="Architecture preset (see README)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", hidden=True,
                                        help="Deprecated spelling of --model-size (removed in 0.3)."),
    total_tokens: Optional[int] = typer.Option(None, "--total-tokens", help="Token budget of the run (all phases)."),
    meta_split: Optional[float] = typer.Option(None, "--meta-split", help="meta: fraction of the budget in English."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Use only these corpus languages. "
                                            + LANGUAGES_HELP),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Block length in tokens."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global blocks per optimizer step."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Language sampling exponent."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Vocabulary of a tokenizer trained by this run."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    checkpoint_points: Optional[str] = typer.Option(
        None, "--checkpoint-points", help="Intermediate checkpoints at these fractions of the budget, e.g. 0.25,0.5,0.75."),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="torch CPU threads (default: torch's; use the number of idle cores)."),
    tracker: Optional[Tracker] = typer.Option(
        None, "--tracker", help="Also log every metrics.jsonl record to none (default), tensorboard (RUN/tb/) or "
                                "wandb (RUN/wandb/, offline unless WANDB_MODE says otherwise)."),
) -> None:
    """Pretrain an MLM encoder under a regime (single, meta, en-only, none, or custom phases)."""
    from metaxlm.train import load_train_config, train
    from metaxlm.train.corpus import parse_corpus_option

    if model is not None:
        deprecated("train --model/-m PRESET", "--model-size PRESET")
        if model_size is not None and model_size != model:
            raise UserError(f"--model {model!r} and --model-size {model_size!r} disagree; give --model-size only")
        model_size = model_size or model
    if resume is not None:
        from metaxlm.train.loop import resume_refusal

        fixed = [("regime", regime), ("corpus", corpus), ("tokenizer", tokenizer), ("model", model_size),
                 ("meta_split", meta_split), ("languages", languages), ("seq_len", seq_len),
                 ("batch_size", batch_size), ("grad_accum", grad_accum), ("alpha", alpha),
                 ("vocab_size", vocab_size), ("seed", seed), ("checkpoint_points", checkpoint_points)]
        if config is not None:
            raise UserError("--resume: drop --config: the run continues with its own config.yaml (only --lr, "
                            "--total-tokens, --device, --threads and --tracker can change on resume)")
        if out is not None:
            raise UserError("--resume: drop --out: --resume names the run directory itself")
        for key, value in fixed:
            if value is not None and value != []:
                raise UserError(resume_refusal(key, "--model-size" if key == "model" else None))
        path = train(None, resume, resume=True, resume_changes={"lr": lr, "total_tokens": total_tokens,
                                                                 "device": device, "threads": threads,
                                                                 "tracker": tracker})
    else:
        points = None
        if checkpoint_points is not None:
            try:
                points = [float(x) for x in checkpoint_points.split(",") if x.strip()]
            except ValueError:
                raise UserError(f"--checkpoint-points: {checkpoint_points!r} is not a comma-separated list of "
                                "fractions") from None
        cfg = load_train_config(
            config, regime=regime, corpus=parse_corpus_option(corpus), tokenizer=tokenizer, model=model_size,
            total_tokens=total_tokens, meta_split=meta_split, languages=_languages(languages), seq_len=seq_len,
            batch_size=batch_size, grad_accum=grad_accum, lr=lr, alpha=alpha, vocab_size=vocab_size, seed=seed,
            checkpoint_points=points, device=device, threads=threads, tracker=tracker)
        path = train(cfg, out)
    import os

    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"done: {path}  (checkpoints in {path / 'checkpoints'}, results in {path / 'results'})")


def tokenizer_train_cmd(
    corpus: Optional[List[str]] = typer.Option(None, "--corpus", "-c", help=CORPUS_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default runs/tokenizer-<time>)."),
    vocab_size: int = typer.Option(16000, "--vocab-size"),
    model_type: TokenizerType = typer.Option("unigram", "--type", help="Subword model."),
    alpha: float = typer.Option(0.3, "--alpha", help="Language sampling exponent (use pretraining's)."),
    seed: int = typer.Option(0, "--seed"),
    max_lines: int = typer.Option(100_000, "--max-lines", help="Lines sampled to train on."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Use only these corpus languages. "
                                            + LANGUAGES_HELP),
) -> None:
    """Train the shared subword vocabulary (Unigram or BPE) on all languages."""
    import time

    from metaxlm.train import train_tokenizer
    from metaxlm.train.corpus import parse_corpus_option

    if out is None:
        out = Path("runs") / f"tokenizer-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    path = train_tokenizer(parse_corpus_option(corpus), out, vocab_size=vocab_size, model_type=model_type,
                           alpha=alpha, seed=seed, max_lines=max_lines, languages=_languages(languages))
    typer.echo(f"tokenizer: {path}")


def corpus_prepare_cmd(
    corpus: Optional[List[str]] = typer.Option(None, "--corpus", "-c", help=CORPUS_HELP),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t", help="Tokenizer directory (required)."),
    languages: Optional[str] = typer.Option(None, "--languages", "-l", help="Use only these corpus languages. "
                                            + LANGUAGES_HELP),
    val_fraction: float = typer.Option(0.02, "--val-fraction", help="Held-out lines per language (as train's)."),
    val_max_lines: int = typer.Option(200, "--val-max-lines", help="At most this many held-out lines (as train's)."),
) -> None:
    """Tokenize a corpus once into the memory-mapped token cache (train and compare reuse it)."""
    from rich.console import Console
    from rich.table import Table

    from metaxlm.train.corpus import parse_corpus_option
    from metaxlm.train.tokcache import prepare_corpus

    out = prepare_corpus(parse_corpus_option(corpus), tokenizer, _languages(languages), val_fraction, val_max_lines)
    table = Table(title="token cache")
    for col in ("lang", "source", "lines", "train tokens", "val tokens", "dtype", "prepared in"):
        table.add_column(col, justify="left" if col in ("lang", "source") else "right")
    for lang, t in out.items():
        ix = t.index
        table.add_row(lang, t.source, f"{ix['n_lines']:,}", f"{ix['train_tokens']:,}", f"{ix['val_tokens']:,}",
                      ix["dtype"], f"{ix['seconds']:.1f} s")
    Console().print(table)
    typer.echo(f"cache: {next(iter(out.values())).directory.parent}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    corpus_app = typer.Typer(help="Pretraining corpora: the memory-mapped token cache.", no_args_is_help=True)
    corpus_app.command("prepare")(corpus_prepare_cmd)
    app.add_typer(corpus_app, name="corpus")
    tok = typer.Typer(help="The shared subword vocabulary.", no_args_is_help=True)
    tok.command("train")(tokenizer_train_cmd)
    app.add_typer(tok, name="tokenizer")
