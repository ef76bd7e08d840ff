"""``metaxlm probe align``: a thin shell over :func:`metaxlm.probe.align.run_align`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from metaxlm.cli import vocab
from metaxlm.devices import HELP as DEVICE_HELP


def align(
    models: List[str] = typer.Option(..., "--model", "-m", help="metaxlm run dir (RUN@PHASE), checkpoint or HF "
                                     "model dir, or hub id; give it twice for a layer × layer comparison"),
    data: Optional[List[str]] = typer.Option(None, "--data", help="benchmark directory with parallel/nway.tsv "
                                             "(default: the default benchmark); with two models, once per model"),
    pairs: Optional[List[str]] = typer.Option(None, "--pair", help="LANG=EN_FILE,XX_FILE line-aligned files, "
                                              "once per language (instead of the benchmark)"),
    languages: Optional[List[str]] = typer.Option(None, "--languages", "-l",
                                                  help="target languages (default: all found; comma-separate "
                                                       "or repeat)"),
    layers: Optional[List[int]] = typer.Option(None, "--layer", help="layer to probe (0 = embeddings), "
                                               "repeatable (default: all)"),
    pooling: vocab.Pooling = typer.Option("mean", "--pooling", help="sentence vector of a layer"),
    debiased: bool = typer.Option(False, "--debiased", help="unbiased-HSIC CKA (needs ≥ 4 sentences)"),
    max_sentences: Optional[int] = typer.Option(None, "--max-sentences", help="use the first N sentences"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples for the 95% intervals"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length", help="subwords per sentence"),
    prefix: str = typer.Option("", "--prefix", help="text put before every sentence (e5-style: 'query: ')"),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default runs/probe-align-<model>-<time>)"),
) -> None:
    """CKA(en, xx) and retrieval accuracy per layer per language (one model), or the layer × layer CKA
    matrix and both models' curves (two models), with results JSON and PNG/SVG plots."""
    from metaxlm.config import build
    from metaxlm.probe.align import AlignConfig, run_align

    langs = vocab.languages(languages)
    cfg = build(AlignConfig, {
        "models": list(models), "data": list(data or []), "pairs": list(pairs or []), "languages": langs,
        "layers": list(layers or []), "pooling": pooling, "debiased": debiased, "max_sentences": max_sentences,
        "bootstrap": bootstrap, "seed": seed, "batch_size": batch_size, "max_length": max_length, "device": device,
        "prefix": prefix,
    }, where="probe align")
    path = run_align(cfg, out)
    name = "align.json" if len(cfg.models) == 1 else "align-pair.json"
    typer.echo(f"results: {path / 'results' / name}")
    typer.echo(f"plots: {path / 'plots'}")


def register(app: typer.Typer) -> None:
    probe_app = typer.Typer(help="Probe representations: cross-lingual alignment (CKA, retrieval) per layer.",
                            no_args_is_help=True)
    probe_app.command("align")(align)
    app.add_typer(probe_app, name="probe")
