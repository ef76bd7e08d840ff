"""``metaxlm eval tatoeba`` and ``metaxlm eval bucc``: thin shells over metaxlm.eval.tatoeba / .bucc."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from metaxlm.cli import vocab
from metaxlm.devices import HELP as DEVICE_HELP

LANG_DEPRECATED = "Deprecated spelling of --languages (removed in 0.3)."


def _build(cls, data: dict, where: str):
    from metaxlm import config as cfg

    return cfg.build(cls, {k: v for k, v in data.items() if v is not None}, where=where)


def _summary_line(path: Path, name: str) -> str:
    from metaxlm.rundir import read_json

    res = read_json(path / "results" / f"{name}.json")
    h = res["headline"]
    head = f"layer {h['layer']} ({h.get('layer_choice') or h['selected_on']}), pooling {h['pooling']}"
    if name == "tatoeba":
        m = res["mean"]
        nums = (f"acc_cosine {m['acc_cosine']:.3f}  acc_margin_xx2en {m['acc_margin_xx2en']:.3f}  "
                f"xsim_error {m['xsim_error']:.3f}")
    else:
        m = res["mean"]
        nums = (f"F1 {m['f1']:.3f} (dev-tuned threshold)  AP {m['average_precision']:.3f}  "
                f"oracle F1 {m['oracle_f1']:.3f} (test-tuned)")
    return f"{path}: {head}: {nums}"


MODEL_HELP = "Encoder: a metaxlm run directory (RUN or RUN@PHASE), a checkpoint or HF model directory, or a hub id."
PREFIX_HELP = "Text put before every sentence (e5-style encoders: 'query: ')."
POOL_HELP = "Poolings to sweep (repeat or comma-separate): mean, cls. With --layer the first is the headline."


def register(app: typer.Typer) -> None:
    @app.command("tatoeba")
    def tatoeba(
        model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
        data: Optional[Path] = typer.Option(None, "--data", help="A benchmark directory (its parallel/ sets) or a "
                                            "directory of LASER Tatoeba files tatoeba.<iso3>-eng.<iso3> + .eng. "
                                            "Default: the default benchmark."),
        src: Optional[Path] = typer.Option(None, "--src", help="Line-aligned file of xx sentences (with --tgt)."),
        tgt: Optional[Path] = typer.Option(None, "--tgt", help="Line-aligned file of English sentences."),
        dev_src: Optional[Path] = typer.Option(None, "--dev-src", help="Dev pair (xx side) to choose the layer on."),
        dev_tgt: Optional[Path] = typer.Option(None, "--dev-tgt", help="Dev pair (English side)."),
        languages: Optional[List[str]] = typer.Option(None, "--languages", "-l", help="Languages to evaluate "
                                                      "(default: all; comma-separate or repeat); with --src/--tgt, "
                                                      "the pair's language code."),
        lang: Optional[List[str]] = typer.Option(None, "--lang", hidden=True, help=LANG_DEPRECATED),
        pooling: Optional[List[str]] = typer.Option(None, "--pooling", help=POOL_HELP),
        layer: Optional[int] = typer.Option(None, "--layer", help="Fix the headline layer (0 = embeddings) "
                                            "instead of choosing it on dev (without dev data: round(2L/3))."),
        margin_k: int = typer.Option(4, "--margin-k", help="Neighbours for the ratio margin."),
        max_pairs: Optional[int] = typer.Option(None, "--max-pairs",
                                                help="At most N pairs per language and split (evenly spaced)."),
        batch_size: int = typer.Option(64, "--batch-size"),
        max_length: int = typer.Option(128, "--max-length", help="Tokens per sentence (longer is truncated)."),
        exclude_special: bool = typer.Option(False, "--exclude-special", help="Mean pooling leaves out <s>, </s>."),
        prefix: str = typer.Option("", "--prefix", help=PREFIX_HELP),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/tatoeba-<model>-<time>)."),
    ) -> None:
        """Tatoeba-style retrieval: top-1 accuracy (cosine and margin, both directions), xSIM error,
        duplicate-aware accuracy; every layer and pooling swept, headline layer chosen on dev."""
        from metaxlm.eval.tatoeba import TatoebaConfig, run_tatoeba

        config = _build(TatoebaConfig, {
            "model": model, "data": data, "src": src, "tgt": tgt, "dev_src": dev_src, "dev_tgt": dev_tgt,
            "languages": vocab.languages(languages, lang), "poolings": vocab.split_list(pooling) or None, "layer": layer,
            "margin_k": margin_k, "max_pairs": max_pairs, "batch_size": batch_size, "max_length": max_length,
            "exclude_special": exclude_special, "device": device, "prefix": prefix,
        }, "eval tatoeba")
        path = run_tatoeba(config, out)
        typer.echo(_summary_line(path, "tatoeba"))

    @app.command("bucc")
    def bucc(
        model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
        data: Optional[Path] = typer.Option(None, "--data", help="A benchmark directory (its mining/ sets) or a "
                                            "directory of BUCC 2018 files <xx>-en.<split>.{<xx>,en,gold} "
                                            "(also in <xx>-en/ subdirectories). Default: the default benchmark."),
        languages: Optional[List[str]] = typer.Option(None, "--languages", "-l", help="Languages (default: all "
                                                      "found; comma-separate or repeat)."),
        lang: Optional[List[str]] = typer.Option(None, "--lang", hidden=True, help=LANG_DEPRECATED),
        dev_split: str = typer.Option("dev", "--dev-split", help="Split whose gold tunes the threshold "
                                      "(BUCC 2018: 'sample' or 'training')."),
        test_split: str = typer.Option("test", "--test-split", help="Split that is scored."),
        pooling: Optional[List[str]] = typer.Option(None, "--pooling", help=POOL_HELP),
        layer: Optional[int] = typer.Option(None, "--layer", help="Fix the layer (0 = embeddings) instead of "
                                            "choosing it on dev."),
        margin: vocab.Margin = typer.Option("ratio", "--margin", help="Margin function."),
        k: int = typer.Option(4, "--k", help="Nearest neighbours both ways for the margin."),
        retrieval: vocab.Retrieval = typer.Option("max", "--retrieval", help="Candidate directions."),
        dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Mine over distinct sentences, then map "
                                   "back to every id holding them."),
        sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="With --layer: still record dev F1 at every "
                                   "layer (--no-sweep encodes only that layer: for large pools)."),
        batch_size: int = typer.Option(64, "--batch-size"),
        max_length: int = typer.Option(128, "--max-length"),
        exclude_special: bool = typer.Option(False, "--exclude-special"),
        prefix: str = typer.Option("", "--prefix", help=PREFIX_HELP),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/bucc-<model>-<time>)."),
    ) -> None:
        """BUCC-style mining: margin scoring, threshold tuned on dev gold and applied to test
        (P/R/F1), threshold-free average precision, and the oracle (test-tuned) F1, labelled."""
        from metaxlm.eval.bucc import BuccConfig, run_bucc

        config = _build(BuccConfig, {
            "model": model, "data": data, "languages": vocab.languages(languages, lang), "dev_split": dev_split,
            "test_split": test_split, "poolings": vocab.split_list(pooling) or None, "layer": layer,
            "margin": margin, "k": k, "retrieval": retrieval, "dedup": dedup, "sweep": sweep, "batch_size": batch_size,
            "max_length": max_length, "exclude_special": exclude_special, "device": device, "prefix": prefix,
        }, "eval bucc")
        path = run_bucc(config, out)
        typer.echo(_summary_line(path, "bucc"))
