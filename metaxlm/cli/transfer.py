"""``metaxlm eval xnli | pawsx | topic | ner | pos``: thin shells over metaxlm.eval.transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from metaxlm.devices import HELP as DEVICE_HELP
from metaxlm.eval.finetune import FinetuneParams
from metaxlm.eval.tasks import TASKS

_D = FinetuneParams()


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
        languages: Optional[str] = typer.Option(None, "--languages", "-l",
                                                help="comma-separated target languages (default: all found)"),
        seeds: int = typer.Option(3, "--seeds", help="fine-tuning runs (seed, seed+1, …)"),
        seed: int = typer.Option(0, "--seed", help="first seed"),
        train_size: Optional[int] = typer.Option(None, "--train-size", help="fine-tune on K English examples"),
        lr: Optional[float] = typer.Option(None, "--lr", help="default by encoder width: 5e-4 up to hidden "
                                           "256, 1e-4 up to 512, else 3e-5"),
        epochs: Optional[int] = typer.Option(None, "--epochs", help=f"default {spec.epochs or _D.epochs}"),
        batch_size: int = typer.Option(_D.batch_size, "--batch-size"),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="subwords per input (default "
                                                 f"{spec.max_length or _D.max_length})"),
        warmup: float = typer.Option(_D.warmup_ratio, "--warmup", help="warmup fraction of the steps"),
        save_predictions: bool = typer.Option(False, "--save-predictions", help="write predictions/ in the run"),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/eval-<task>-<model>-<time>)"),
    ) -> None:
        from metaxlm.config import build
        from metaxlm.eval.transfer import TransferConfig, run_transfer

        langs = tuple(x.strip() for x in languages.split(",") if x.strip()) if languages else ()
        cfg = build(TransferConfig, {
            "task": task, "model": model, "phase": phase, "data": data, "languages": list(langs),
            "seeds": seeds, "seed": seed, "train_size": train_size, "lr": lr, "epochs": epochs,
            "batch_size": batch_size, "max_length": max_length, "warmup_ratio": warmup,
            "save_predictions": save_predictions, "device": device,
        }, where="eval " + task)
        path = run_transfer(cfg, out)
        typer.echo(f"results: {path / 'results' / (task + '.json')}")

    short, _, formats = spec.description.partition(": ")
    command.__doc__ = (f"Transfer: {short}. Fine-tune on English, select on English dev, score every "
                       f"language ({spec.metric}); reads {formats or 'its data directory'}.")
    return command


def register(app: typer.Typer) -> None:
    for task in TASKS:
        app.command(task)(_make_command(task))
