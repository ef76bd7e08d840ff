"""Zero-shot transfer: fine-tune on English, select on English dev, score every language.

``run_transfer(TransferConfig(task="topic", model="runs/meta"))`` writes a run directory (kind
``eval``) with ``results/<task>.json`` (docs/results.md, ``kind: "transfer"``) and prints a table:
languages as rows, score ± std and 95% interval over seeds, transfer gap, paired gap, majority class.

Models and controls share one path: a *predictor* (``fit(train, dev, seed, dev_score)`` then
``predict(examples)``) — :class:`~metaxlm.eval.finetune.FineTuner` for encoders,
:mod:`metaxlm.eval.controls` for ``majority`` / ``lexical`` — whose predictions are scored,
aggregated and written by the code below.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from metaxlm import progress, rundir
from metaxlm.devices import check_device, device_meta, resolve_device
from metaxlm.errors import UserError
from metaxlm.eval import scores as S
from metaxlm.eval.controls import CONTROLS, control_ref, make_control
from metaxlm.eval.finetune import FineTuner, FinetuneParams
from metaxlm.eval.formats import TaskData, load_task
from metaxlm.eval.tasks import TaskSpec, get_task
from metaxlm.models import resolve_model
from metaxlm.paths import check_output
from metaxlm.stats import summarize

_DEF = FinetuneParams()


@dataclass(frozen=True)
class TransferConfig:
    """Everything one transfer evaluation depends on (written to the run's config.yaml)."""

    task: str
    model: str  # run dir (RUN@PHASE), checkpoint dir, HF model dir, hub id, or a control: majority | lexical
    phase: Optional[str] = None
    data: Optional[str] = None  # data directory or hf:NAME; topic defaults to the default benchmark
    languages: tuple[str, ...] = ()  # target languages to score (English always); empty = all found
    seeds: int = 3
    seed: int = 0  # first seed; seeds are seed, seed+1, ...
    train_size: Optional[int] = None  # fine-tune on this many English examples (a seeded sample)
    lr: Optional[float] = None  # None: by encoder width (finetune.default_lr: 5e-4 up to hidden 256, …)
    epochs: Optional[int] = None  # None: the task's default (topic 2), else FinetuneParams.epochs (3)
    batch_size: int = _DEF.batch_size
    max_length: Optional[int] = None  # None: the task's default (topic 64), else FinetuneParams.max_length (128)
    warmup_ratio: float = _DEF.warmup_ratio
    weight_decay: float = _DEF.weight_decay
    eval_batch_size: int = _DEF.eval_batch_size
    train_eval_size: int = 1000  # English train items scored for the train-minus-test gap
    save_predictions: bool = False
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N (metaxlm.devices)

    def __post_init__(self):
        check_device(self.device)
        checks = [
            (self.seeds >= 1, "seeds must be at least 1"),
            (self.train_size is None or self.train_size >= 1, "train_size must be at least 1"),
            # written so that NaN fails (NaN compares false); build() refuses NaN/inf already
            (self.lr is None or (self.lr > 0 and math.isfinite(self.lr)),
             f"lr must be a finite number > 0, got {self.lr}"),
            (self.epochs is None or self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be at least 1"),
            (self.max_length is None or self.max_length >= 8, "max_length must be at least 8"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (0 <= self.weight_decay < math.inf, f"weight_decay must be a finite number >= 0, got {self.weight_decay}"),
            (self.train_eval_size >= 1, "train_eval_size must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)

    def resolved(self, spec: TaskSpec) -> "TransferConfig":
        """This config with unset options filled from the task's and then the global defaults."""
        return replace(self, epochs=self.epochs or spec.epochs or _DEF.epochs,
                       max_length=self.max_length or spec.max_length or _DEF.max_length)

    def params(self) -> FinetuneParams:
        return FinetuneParams(lr=self.lr, epochs=self.epochs or _DEF.epochs, batch_size=self.batch_size,
                              max_length=self.max_length or _DEF.max_length, warmup_ratio=self.warmup_ratio,
                              weight_decay=self.weight_decay, eval_batch_size=self.eval_batch_size)


def default_out(task: str, label: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", label) or "model"
    return Path("runs") / f"eval-{task}-{safe}-{stamp}"


def _gold(spec: TaskSpec, examples) -> list:
    return [ex.tags for ex in examples] if spec.kind == "token" else [ex.label for ex in examples]


def _subsample(items: list, k: int | None, seed: int) -> list:
    if k is None or k >= len(items):
        return list(items)
    idx = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in idx]


def _make_predictor(config: TransferConfig, spec: TaskSpec, labels, device):
    if config.model in CONTROLS:
        return control_ref(config.model), make_control(config.model, spec, labels)
    ref = resolve_model(config.model, config.phase)
    return ref, FineTuner(ref, spec, labels, config.params(), device=device)


def run_transfer(config: TransferConfig, out: str | Path | None = None, *, show: bool = True) -> Path:
    """Evaluate ``config.model`` on ``config.task``; returns the run directory."""
    t0 = time.time()
    if out is not None:
        out = check_output(out, "run directory")
    device = resolve_device(config.device)
    spec = get_task(config.task)
    config = config.resolved(spec)
    data = load_task(spec, config.data, config.languages)
    if config.train_size is not None and config.train_size > len(data.train):
        raise UserError(f"--train-size {config.train_size} is larger than the English training set "
                        f"({len(data.train)} items)")
    ref, predictor = _make_predictor(config, spec, data.labels, device)
    used = device_meta(predictor.device) if isinstance(predictor, FineTuner) else {"device": "cpu"}  # controls: CPU
    run = rundir.create(out or check_output(default_out(spec.name, ref.label)), config, kind="eval",
                        seed=config.seed, extra_meta={"task": spec.name, "model": ref.describe(), **used})
    try:
        result = evaluate(config, spec, data, ref, predictor, run)
        result["timing"] = {"seconds": time.time() - t0}
        result["versions"] = rundir.library_versions()
        run.write_result(spec.name, result)
        run.done()
    except BaseException as e:
        run.failed(f"{type(e).__name__}: {e}")
        raise
    if show:
        print_table(result)
    return run.path


def evaluate(config: TransferConfig, spec: TaskSpec, data: TaskData, ref, predictor, run=None) -> dict:
    """Fit and score ``predictor`` for every seed; return the result payload (without timing)."""
    config = config.resolved(spec)
    labels = list(data.labels)
    metric = spec.metric
    train_gold = _gold(spec, data.train)
    golds = {lang: _gold(spec, exs) for lang, exs in data.test.items()}
    majority = {lang: S.majority_score(metric, train_gold, g, labels) for lang, g in golds.items()}

    def dev_score(examples, pred) -> float:
        return S.compute_metrics([metric], _gold(spec, examples), pred, labels)[metric]

    per_seed, seed_gaps, pred_files = [], [], {}
    for k in range(config.seeds):
        seed = config.seed + k
        train = _subsample(data.train, config.train_size, seed)
        total = predictor.steps(len(train)) or None
        t_fit = time.time()
        with progress.task(f"eval {spec.name} {ref.label} seed {seed}", total=total) as bar:
            predictor.fit(train, data.dev, seed, dev_score, progress=bar)
        t_pred = time.time()
        tr = _subsample(train, config.train_eval_size, seed)
        en_train = S.compute_metrics(spec.metrics, _gold(spec, tr), predictor.predict(tr), labels)
        scores, collapsed, preds = {}, [], {}
        for lang, exs in data.test.items():
            pred = predictor.predict(exs)
            preds[lang] = pred
            scores[lang] = S.compute_metrics(spec.metrics, golds[lang], pred, labels)
            if S.is_collapsed(scores[lang][metric], majority[lang], pred):
                collapsed.append(lang)
        t_done = time.time()
        paired = _paired(spec, data, golds, preds, labels) if spec.translated else {}
        g = S.seed_gaps({lang: s[metric] for lang, s in scores.items()}, en_train[metric],
                        {lang: (e, t) for lang, (e, t, _) in paired.items()})
        seed_gaps.append(g)
        per_seed.append({
            "seed": seed, "best_epoch": predictor.best_epoch, "scores": scores, "en_train": en_train,
            "collapsed": collapsed, "train_size": len(train),
            "dev_history": list(getattr(predictor, "dev_history", []) or []),
            "paired_n": {lang: n for lang, (_, _, n) in paired.items()} if paired else {},
            "seconds": {"fit": t_pred - t_fit, "predict": t_done - t_pred},
        })
        if config.save_predictions and run is not None:
            pred_files[str(seed)] = _save_predictions(run, spec, data, seed, preds)
        predictor.release()

    langs = list(data.test)
    agg = {lang: {m: summarize([s["scores"][lang][m] for s in per_seed]) for m in spec.metrics} for lang in langs}
    result = {
        "kind": "transfer",
        "task": {"name": spec.name, "metric": metric, "metrics": list(spec.metrics), "labels": labels,
                 "data_dir": data.data_dir, "data_hash": data.data_hash()},
        "model": ref.describe(),
        "config": {"lr": getattr(predictor, "lr", config.lr), "epochs": config.epochs, "batch_size": config.batch_size,
                   "max_length": getattr(predictor, "max_length", config.max_length),
                   "warmup_ratio": config.warmup_ratio, "train_size": config.train_size,
                   "seeds": [config.seed + k for k in range(config.seeds)],
                   "weight_decay": config.weight_decay, "eval_batch_size": config.eval_batch_size,
                   "train_eval_size": config.train_eval_size, "requested_max_length": config.max_length},
        "languages": langs,
        "sizes": {"train": len(data.train), "dev": len(data.dev), "test": {lang: len(v) for lang, v in data.test.items()}},
        "per_seed": per_seed,
        "scores": agg,
        "majority": majority,
        "collapsed": {lang: [s["seed"] for s in per_seed if lang in s["collapsed"]] for lang in langs
                      if any(lang in s["collapsed"] for s in per_seed)},
        "gaps": S.aggregate_gaps(seed_gaps),
    }
    if getattr(predictor, "C", None) is not None:
        result["config"]["lexical_C"] = predictor.C
    if pred_files:
        result["predictions"] = pred_files
    return result


def _paired(spec, data: TaskData, golds, preds, labels) -> dict[str, tuple[float, float, int]]:
    """{lang: (English score, target score, n)} on the test items whose ids both sets share."""
    metric = spec.metric
    en_index: dict[str, int] = {}
    for i, ex in enumerate(data.test["en"]):
        en_index.setdefault(ex.id, i)
    out = {}
    for lang, exs in data.test.items():
        if lang == "en":
            continue
        pairs = [(en_index[ex.id], j) for j, ex in enumerate(exs) if ex.id in en_index]
        if not pairs:
            continue
        eg = [golds["en"][i] for i, _ in pairs]
        ep = [preds["en"][i] for i, _ in pairs]
        tg = [golds[lang][j] for _, j in pairs]
        tp = [preds[lang][j] for _, j in pairs]
        e = S.compute_metrics([metric], eg, ep, labels)[metric]
        t = S.compute_metrics([metric], tg, tp, labels)[metric]
        out[lang] = (e, t, len(pairs))
    return out


def _save_predictions(run, spec, data: TaskData, seed: int, preds) -> dict[str, str]:
    files = {}
    for lang, exs in data.test.items():
        rel = Path("predictions") / f"seed{seed}" / f"{lang}.tsv"
        lines = ["id\tgold\tpred"]
        for ex, p in zip(exs, preds[lang]):
            gold = " ".join(ex.tags) if spec.kind == "token" else ex.label
            pred = " ".join(p) if spec.kind == "token" else p
            lines.append(f"{ex.id}\t{gold}\t{pred}")
        rundir.atomic_write_text(run.path / rel, "\n".join(lines) + "\n")
        files[lang] = str(rel)
    return files


# --------------------------------------------------------------------------------------------
# terminal table


def _fmt(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "–"
    return f"{s['mean']:+.3f}"


def print_table(result: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=110)
    metric = result["task"]["metric"]
    model = result["model"]["label"] or result["model"]["spec"]
    n_seeds = len(result["per_seed"])
    t = Table(title=f"{result['task']['name']} · {model} · {metric}, {n_seeds} seed(s)")
    for col, just in [("lang", "left"), ("n", "right"), (f"{metric} ± std", "right"), ("95% CI", "right"),
                      ("gap", "right"), ("paired", "right"), ("majority", "right"), ("note", "left")]:
        t.add_column(col, justify=just)
    gaps = result["gaps"]
    for lang in result["languages"]:
        s = result["scores"][lang][metric]
        ci = f"{s['ci95'][0]:.3f}–{s['ci95'][1]:.3f}" if s.get("ci95") else "–"
        coll = result["collapsed"].get(lang, [])
        note = f"collapsed {len(coll)}/{n_seeds}" if coll else ""
        gap = gaps["transfer_gap"].get(lang)
        pg = gaps["paired_gap"].get(lang)
        t.add_row(lang, str(result["sizes"]["test"][lang]), f"{s['mean']:.3f} ± {s['std']:.3f}", ci,
                  _fmt(gap) if lang != "en" else "", _fmt(pg) if lang != "en" else "",
                  f"{result['majority'][lang]:.3f}", note, style="red" if coll else None)
    if gaps["target_mean"]["n"]:
        tm = gaps["target_mean"]
        t.add_row("targets", "", f"{tm['mean']:.3f} ± {tm['std']:.3f}", "", _fmt(gaps["transfer_gap_mean"]),
                  "", "", "", style="bold")
    console.print(t)
    tmt = gaps["train_minus_test"]
    if tmt["n"]:
        console.print(f"English train − test ({metric}): {tmt['mean']:+.3f} ± {tmt['std']:.3f}"
                      + (f"   best epochs: {[s['best_epoch'] for s in result['per_seed']]}"
                         if result["per_seed"][0]["best_epoch"] is not None else ""))
    if result["collapsed"]:
        console.print("[yellow]warning:[/] runs at the majority-class level are flagged above; "
                      "their scores are in the means — see per_seed in the result file")
