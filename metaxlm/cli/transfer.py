"""``metaxlm eval xnli | pawsx | topic | ner | pos``: thin shells over metaxlm.eval.transfer."""

from __future__ import annotations

from pathlib import Path
from typing import List, Literal, Optional

import typer

from metaxlm.cli import vocab
from metaxlm.devices import HELP as DEVICE_HELP
from metaxlm.errors import UserError
from metaxlm.eval.finetune import EVAL_EVERY, FinetuneParams, lr_grid_around
from metaxlm.eval.tasks import TASKS

_D = FinetuneParams()
_GRID_HELP = "; ".join(f"{w}: " + ",".join(f"{x:g}" for x in lr_grid_around(lr))
                       for w, lr in (("hidden ≤ 256", 1e-3), ("≤ 512", 1e-4), ("else", 3e-5)))


def _floats(text: Optional[str], option: str) -> Optional[list[float]]:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a comma-separated list of numbers, e.g. 1e-4,5e-4,2e-3") from None


def _seed_range(seeds: str, first: Optional[int]) -> tuple[int, int]:
    """``--seeds 0,1,2`` → (0, 3); the deprecated ``--seeds N [--seed S]`` (a count) → (S, N)."""
    text = seeds.strip()
    if "," not in text and first is None and text.isdigit() and text != "0":
        vocab.deprecated("eval --seeds N (a count)", "a list of seeds, e.g. --seeds 0,1,2")
        return 0, int(text)
    if first is not None:
        vocab.deprecated("eval --seed", "a list of seeds, e.g. --seeds 3,4,5")
        if "," not in text and text.isdigit():
            return first, int(text)
    listed = vocab.seeds(text)
    if listed != list(range(listed[0], listed[0] + len(listed))):
        raise UserError(f"--seeds {seeds!r}: fine-tuning seeds must be consecutive (e.g. 3,4,5); "
                        "run the evaluation once per group of seeds")
    return listed[0], len(listed)


def _make_command(task: str):
    spec = TASKS[task]
    data_help = ("data directory (default: the default benchmark, metaxlm.paths.default_benchmark_dir())"
                 if spec.default_data else "data directory (required), or hf:NAME when a dataset hub is reachable")
    controls = "majority | lexical" if spec.kind == "sequence" else "majority"

    def command(
        model: str = typer.Option(..., "--model", "-m", help="metaxlm run dir (RUN@PHASE), checkpoint or HF "
                                  f"model dir, hub id, or a control: {controls}"),
        phase: Optional[str] = typer.Option(None, "--phase", help="checkpoint of a run directory (default final)"),
        data: Optional[str] = typer.Option(None, "--data", help=data_help),
        languages: Optional[List[str]] = typer.Option(None, "--languages", "-l",
                                                      help="target languages (default: all found; "
                                                           "comma-separate or repeat)"),
        seeds: str = typer.Option("0,1,2", "--seeds", help="fine-tuning seeds, consecutive, e.g. 0,1,2 (a bare "
                                  "N is the deprecated count: seeds --seed … --seed+N-1); the probe on the whole "
                                  "train set runs once"),
        seed: Optional[int] = typer.Option(None, "--seed", hidden=True,
                                           help="Deprecated: the first seed of a count given with --seeds N."),
        train_size: Optional[int] = typer.Option(None, "--train-size", help="train on K English examples "
                                                 "(a seeded sample per seed)"),
        protocol: Literal["finetune", "probe"] = typer.Option(
            "finetune", "--protocol", help="finetune (encoder + head trained on English) or probe (frozen "
                                           "encoder, logistic regression per layer)"),
        lr: Optional[float] = typer.Option(None, "--lr", help="one learning rate, no search"),
        lr_grid: Optional[str] = typer.Option(None, "--lr-grid", help="learning rates searched on English dev, "
                                              "e.g. 1e-4,5e-4,2e-3 (default, by encoder width: "
                                              f"{_GRID_HELP})"),
        lr_search: Literal["first", "every"] = typer.Option(_D.lr_search, "--lr-search", help="first (search the grid on the first "
                                      "seed, reuse its lr) | every (search on every seed)"),
        epochs: Optional[int] = typer.Option(None, "--max-epochs", "--epochs",
                                             help=f"the most epochs (default {spec.epochs or _D.epochs})"),
        max_steps: int = typer.Option(_D.max_steps, "--max-steps", help="the most steps (0: epochs decide)"),
        min_steps: int = typer.Option(_D.min_steps, "--min-steps", help="no early stop before this step"),
        patience: int = typer.Option(_D.patience, "--patience", help="English-dev evaluations without "
                                     "improvement before stopping (0: never stop early)"),
        eval_every: int = typer.Option(_D.eval_every, "--eval-every", help="steps between English-dev "
                                       f"evaluations (0: every epoch, at most {EVAL_EVERY} steps)"),
        batch_size: int = typer.Option(_D.batch_size, "--batch-size"),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="subwords per input (default "
                                                 f"{spec.max_length or _D.max_length})"),
        warmup: float = typer.Option(_D.warmup_ratio, "--warmup", help="warmup fraction of the steps"),
        save_predictions: bool = typer.Option(False, "--save-predictions", help="write predictions/ in the run"),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        tracker: Literal["none", "tensorboard", "wandb"] = typer.Option(
            "none", "--tracker", help="also log the English-dev curves and scores to TensorBoard (RUN/tb/) or W&B"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default runs/eval-<task>-<model>-<time>)"),
    ) -> None:
        from metaxlm.config import build
        from metaxlm.eval.transfer import TransferConfig, run_transfer

        langs = vocab.languages(languages)
        first, count = _seed_range(seeds, seed)
        cfg = build(TransferConfig, {
            "task": task, "model": model, "phase": phase, "data": data, "languages": list(langs),
            "protocol": protocol, "seeds": count, "seed": first, "train_size": train_size, "lr": lr,
            "lr_grid": _floats(lr_grid, "--lr-grid"), "lr_search": lr_search, "epochs": epochs, "max_steps": max_steps,
            "min_steps": min_steps, "patience": patience, "eval_every": eval_every,
            "batch_size": batch_size, "max_length": max_length, "warmup_ratio": warmup,
            "save_predictions": save_predictions, "device": device, "tracker": tracker,
        }, where="eval " + task)
        path = run_transfer(cfg, out)
        typer.echo(f"results: {path / 'results' / (task + '.json')}")

    short, _, formats = spec.description.partition(": ")
    command.__doc__ = (f"Transfer: {short}. Fine-tune on English (or probe a frozen encoder), select on "
                       f"English dev, score every language ({spec.metric}); reads {formats or 'its data directory'}.")
    return command


def register(app: typer.Typer) -> None:
    for task in TASKS:
        app.command(task)(_make_command(task))
