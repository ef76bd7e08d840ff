"""``metaxlm compare``: the main job, a thin shell over :func:`metaxlm.compare.compare`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from metaxlm.cli import vocab
from metaxlm.devices import HELP as DEVICE_HELP
from metaxlm.errors import UserError


def _csv(value) -> Optional[list[str]]:
    return None if value is None else vocab.split_list(value)


def _parse_set(items: list[str]) -> dict:
    """``--set train.lr=5e-4`` → {"train": {"lr": 0.0005}} (values parsed as YAML)."""
    import yaml

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=5e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        preset: str = typer.Option("demo", help="smoke (minutes, tests), demo (≤ 20 min on 2 CPU cores), "
                                                "gpu (one GPU, sized to the default data), gpu-check (the "
                                                "GPU check's few minutes)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Comparison directory [default: runs/compare-<preset>]. "
                                                      "Rerunning the same command resumes it."),
        data: Optional[Path] = typer.Option(None, help="Benchmark directory [default: fetch and build the "
                                                       "default benchmark from the Debian archive]."),
        corpus: Optional[List[str]] = typer.Option(None, "--corpus", help="Pretraining corpus instead of the "
                                                   "benchmark's: a directory of <lang>.txt(.gz/.xz/.zst), or "
                                                   "LANG=PATH / LANG=hf:NAME[:CONFIG][:SPLIT][#COLUMN]; repeatable."),
        languages: Optional[List[str]] = typer.Option(None, "--languages", "-l", help="Target languages of the "
                                                      "default benchmark. " + vocab.LANGUAGES_HELP),
        regimes: Optional[str] = typer.Option(None, help="Comma-separated regimes [default: "
                                                         "single,meta,en-only,none]."),
        seeds: Optional[str] = typer.Option(None, help="Pretraining seeds. " + vocab.SEEDS_HELP),
        model: List[str] = typer.Option([], "--model", "-m", help="An extra encoder to analyse (HF directory or "
                                                            "hub id); repeatable."),
        task: List[str] = typer.Option([], "--task", help="An extra transfer task with its data, "
                                                          "NAME=DIR (xnli, pawsx, ner, pos); repeatable."),
        protocols: Optional[str] = typer.Option(None, help="Comma-separated transfer protocols for topic and every "
                                                           "--task: finetune, probe (frozen encoder, linear "
                                                           "classifier) [default: finetune,probe]."),
        curves: Optional[bool] = typer.Option(None, "--curves/--no-curves",
                                              help="Also analyse intermediate checkpoints (metric vs tokens)."),
        controls: Optional[bool] = typer.Option(None, "--controls/--no-controls",
                                                help="Majority-class and lexical baselines on the topic task."),
        device: Optional[str] = typer.Option(None, help=DEVICE_HELP[:-1] + ", for every step (pretraining, "
                                                       "fine-tuning, retrieval, probes) [default: auto]."),
        config: Optional[Path] = typer.Option(None, help="YAML file of settings (any CompareConfig key)."),
        set_: List[str] = typer.Option([], "--set", help="Override one setting, KEY=VALUE with dotted keys, "
                                                         "e.g. --set train.total_tokens=3000000; repeatable."),
        force: List[str] = typer.Option([], "--force", help="Redo a step (e.g. train, topic, topic-probe, "
                                                            "train:meta-s0) and what depends on it; repeatable."),
    ) -> None:
        """Fetch the default benchmark, pretrain every regime with the same budget, run the whole analysis
        suite on each model and the controls, and write report.html + report.md."""
        from metaxlm import config as cfg
        from metaxlm.compare import _merge, compare, resolve_config

        from metaxlm.train.corpus import parse_corpus_option

        overrides: dict = cfg.load_yaml(config) if config else {}
        cli_values = {
            "data": str(data) if data else None,
            "corpus": parse_corpus_option(corpus),
            "languages": vocab.languages(languages) or None,
            "regimes": _csv(regimes),
            "seeds": vocab.seeds(seeds),
            "models": list(model) or None,
            "protocols": _csv(protocols),
            "curves": curves,
            "controls": controls,
            "device": device,
        }
        if task:
            pairs = {}
            for t in task:
                if "=" not in t:
                    raise UserError(f"--task {t!r}: expected NAME=DIR, e.g. --task xnli=data/xnli")
                name, d = t.split("=", 1)
                pairs[name] = d
            cli_values["tasks"] = pairs
        overrides = _merge(overrides, {k: v for k, v in cli_values.items() if v is not None})
        overrides = _merge(overrides, _parse_set(set_))
        resolved = resolve_config(preset, overrides)
        target = out or Path("runs") / f"compare-{preset}"
        report = compare(resolved, target, force=tuple(force))
        _summary(target, report)

    _ = compare_cmd


def _summary(cmp: Path, report: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from metaxlm.compare import step_table

    console = Console()
    table = Table(title=f"metaxlm compare: {cmp}")
    for col in ("step", "status", "seconds"):
        table.add_column(col)
    for row in step_table(cmp):
        secs = row.get("seconds")
        table.add_row(row["step"], "skipped (done before)" if row.get("skipped") else row.get("status", ""),
                      "" if secs is None else f"{secs:.0f}")
    console.print(table)
    from metaxlm.report import headline

    inputs = [d for d in (cmp / "train", cmp / "eval", cmp / "probe") if d.is_dir()]
    head = headline(inputs)
    claims = Table(title="Did meta-pretraining help? (details and controls in the report)")
    for col in head.header[:-1]:
        claims.add_column(col.replace("`", ""))
    for row in head.rows:
        claims.add_row(*row[:-1])
    console.print(claims)
    console.print(f"[bold]report:[/bold] {report}  (Markdown twin: {report.with_suffix('.md')})")
