"""Zero-shot transfer: train on English, select on English dev, score every language.

``run_transfer(TransferConfig(task="topic", model="runs/meta"))`` writes a run directory (kind
``eval``) with ``results/<task>.json`` (docs/results.md, ``kind: "transfer"``) and prints a table:
languages as rows, score ± std and 95% interval over seeds, transfer gap, paired gap, majority class.

Models and controls share one path: a *predictor* (``fit(train, dev, seed, dev_score)`` then
``predict(examples)``) — :class:`~metaxlm.eval.finetune.FineTuner` for encoders (``protocol``
``finetune``), :class:`~metaxlm.eval.linprobe.LinearProbe` (``probe``: frozen encoder, linear
classifier per layer), :mod:`metaxlm.eval.controls` for ``majority`` / ``lexical`` — whose
predictions are scored, aggregated, recorded per test item (``items``, for paired statistics) and
written by the code below.
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
from metaxlm.eval.linprobe import PROBE_C, LinearProbe, aggregate_probe
from metaxlm.eval.formats import TaskData, load_task
from metaxlm.eval.tasks import TaskSpec, get_task
from metaxlm.models import resolve_model
from metaxlm.paths import check_output
from metaxlm.config import to_dict
from metaxlm.stats import summarize
from metaxlm.trackers import check_tracker, open_tracker

_DEF = FinetuneParams()
PROTOCOLS = ("finetune", "probe")
LR_SEARCH = ("first", "every")


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
    protocol: str = "finetune"  # finetune (encoder + head trained on English) | probe (frozen encoder, linear classifier)
    lr: Optional[float] = None  # one learning rate, no search (exclusive with lr_grid)
    lr_grid: Optional[tuple[float, ...]] = None  # None (and no lr): finetune.lr_grid_around(default_lr) per model
    lr_search: str = _DEF.lr_search  # first: grid searched on the first seed, its lr reused | every: every seed
    epochs: Optional[int] = None  # the most epochs; None: the task's default, else FinetuneParams.epochs
    max_steps: int = _DEF.max_steps  # the most optimizer steps (0: epochs decide)
    min_steps: int = _DEF.min_steps  # no early stop before this step
    patience: int = _DEF.patience  # English-dev evaluations without improvement before stopping (0: never)
    eval_every: int = _DEF.eval_every  # steps between English-dev evaluations (0: every epoch, ≤ 500 steps)
    batch_size: int = _DEF.batch_size
    max_length: Optional[int] = None  # None: the task's default (topic 64), else FinetuneParams.max_length (128)
    warmup_ratio: float = _DEF.warmup_ratio
    weight_decay: float = _DEF.weight_decay
    eval_batch_size: int = _DEF.eval_batch_size
    train_eval_size: int = 1000  # English train items scored for the train-minus-test gap
    save_predictions: bool = False
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N (metaxlm.devices)
    tracker: str = "none"  # none | tensorboard | wandb: also log the English-dev curves (metaxlm.trackers)

    def __post_init__(self):
        check_device(self.device)
        check_tracker(self.tracker, "tracker")
        grid = self.lr_grid or ()
        checks = [
            (self.protocol in PROTOCOLS, f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"),
            (self.seeds >= 1, "seeds must be at least 1"),
            (self.lr is None or self.lr_grid is None, "give lr (one value) or lr_grid (a search), not both"),
            (self.lr_search in LR_SEARCH, f"lr_search must be one of {', '.join(LR_SEARCH)}, got {self.lr_search!r}"),
            (self.lr_grid is None or len(grid) >= 1, "lr_grid must hold at least one learning rate"),
            (all(x > 0 and math.isfinite(x) for x in grid), f"lr_grid values must be finite numbers > 0, got {grid}"),
            (min(self.max_steps, self.min_steps, self.patience, self.eval_every) >= 0,
             "max_steps, min_steps, patience and eval_every must be >= 0"),
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
        return FinetuneParams(lr=self.lr, lr_grid=self.lr_grid, lr_search=self.lr_search,
                              epochs=self.epochs or _DEF.epochs,
                              max_steps=self.max_steps, min_steps=self.min_steps, patience=self.patience,
                              eval_every=self.eval_every, batch_size=self.batch_size,
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
    if config.protocol == "probe":
        return ref, LinearProbe(ref, spec, labels, max_length=config.max_length or _DEF.max_length,
                                batch_size=config.eval_batch_size, device=device)
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
    used = device_meta(predictor.device) if hasattr(predictor, "device") else {"device": "cpu"}  # controls: CPU
    run = rundir.create(out or check_output(default_out(spec.name, ref.label)), config, kind="eval",
                        seed=config.seed, extra_meta={"task": spec.name, "model": ref.describe(), **used})
    try:
        run.attach(open_tracker(config.tracker, run, config=to_dict(config)))
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


def _runs(config: TransferConfig, data: TaskData) -> int:
    """Fits to make: one per seed, except a probe on the whole training set (deterministic: one fit)."""
    whole = config.train_size is None or config.train_size >= len(data.train)
    return 1 if config.protocol == "probe" and config.model not in CONTROLS and whole else config.seeds


def evaluate(config: TransferConfig, spec: TaskSpec, data: TaskData, ref, predictor, run=None) -> dict:
    """Fit and score ``predictor`` for every seed; return the result payload (without timing)."""
    config = config.resolved(spec)
    labels = list(data.labels)
    metric = spec.metric
    stat = S.item_stat(metric)
    train_gold = _gold(spec, data.train)
    golds = {lang: _gold(spec, exs) for lang, exs in data.test.items()}
    majority = {lang: S.majority_score(metric, train_gold, g, labels) for lang, g in golds.items()}

    def dev_score(examples, pred) -> float:
        return S.compute_metrics([metric], _gold(spec, examples), pred, labels)[metric]

    def test_score(lang, pred) -> float:
        return S.compute_metrics([metric], golds[lang], pred, labels)[metric]

    per_seed, seed_gaps, pred_files = [], [], {}
    for k in range(_runs(config, data)):
        seed = config.seed + k
        train = _subsample(data.train, config.train_size, seed)
        total = predictor.steps(len(train)) or None
        t_fit = time.time()
        with progress.task(f"eval {spec.name} {ref.label} seed {seed}", total=total) as bar:
            predictor.fit(train, data.dev, seed, dev_score, progress=bar)
        t_pred = time.time()
        tr = _subsample(train, config.train_eval_size, seed)
        en_train = S.compute_metrics(spec.metrics, _gold(spec, tr), predictor.predict(tr), labels)
        scores, collapsed, preds, items = {}, [], {}, {}
        for lang, exs in data.test.items():
            pred = predictor.predict(exs)
            preds[lang] = pred
            scores[lang] = S.compute_metrics(spec.metrics, golds[lang], pred, labels)
            items[lang] = S.compute_item_rows(stat, golds[lang], pred)
            if S.is_collapsed(scores[lang][metric], majority[lang], pred):
                collapsed.append(lang)
        record = dict(getattr(predictor, "fit_record", None) or {})
        if "probe" in record:
            record["probe"] = {**record["probe"], "curves": predictor.layer_curves(data.test, test_score)}
        t_done = time.time()
        paired = _paired(spec, data, golds, preds, labels) if spec.translated else {}
        g = S.seed_gaps({lang: s[metric] for lang, s in scores.items()}, en_train[metric],
                        {lang: (e, t) for lang, (e, t, _) in paired.items()})
        seed_gaps.append(g)
        per_seed.append({
            "seed": seed, "best_epoch": predictor.best_epoch, "scores": scores, "en_train": en_train,
            "collapsed": collapsed, "train_size": len(train),
            "dev_history": list(getattr(predictor, "dev_history", []) or []),
            **record,
            "paired_n": {lang: n for lang, (_, _, n) in paired.items()} if paired else {},
            "items": items,
            "seconds": {"fit": t_pred - t_fit, "predict": t_done - t_pred},
        })
        if run is not None:
            _log_seed(run, seed, per_seed[-1], metric)
        if config.save_predictions and run is not None:
            pred_files[str(seed)] = _save_predictions(run, spec, data, seed, preds)
        predictor.release()

    langs = list(data.test)
    agg = {lang: {m: summarize([s["scores"][lang][m] for s in per_seed]) for m in spec.metrics} for lang in langs}
    result = {
        "kind": "transfer",
        "protocol": config.protocol,
        "task": {"name": spec.name, "metric": metric, "metrics": list(spec.metrics), "labels": labels,
                 "item_stat": stat, "data_dir": data.data_dir, "data_hash": data.data_hash()},
        "model": ref.describe(),
        "config": _result_config(config, predictor, per_seed),
        "languages": langs,
        "sizes": {"train": len(data.train), "dev": len(data.dev), "test": {lang: len(v) for lang, v in data.test.items()}},
        "per_seed": per_seed,
        "scores": agg,
        "majority": majority,
        "collapsed": {lang: [s["seed"] for s in per_seed if lang in s["collapsed"]] for lang in langs
                      if any(lang in s["collapsed"] for s in per_seed)},
        "gaps": S.aggregate_gaps(seed_gaps),
        "item_ids": {lang: [ex.id for ex in exs] for lang, exs in data.test.items()},
    }
    if all("probe" in s for s in per_seed):
        result["probe"] = aggregate_probe([s["probe"] for s in per_seed])
    if getattr(predictor, "C", None) is not None:
        result["config"]["lexical_C"] = predictor.C
    if pred_files:
        result["predictions"] = pred_files
    return result


def _result_config(config: TransferConfig, predictor, per_seed: list[dict]) -> dict:
    common = {"train_size": config.train_size, "seeds": [s["seed"] for s in per_seed],
              "max_length": getattr(predictor, "max_length", config.max_length),
              "requested_max_length": config.max_length, "eval_batch_size": config.eval_batch_size,
              "train_eval_size": config.train_eval_size}
    if isinstance(predictor, LinearProbe):
        return {**common, "Cs": list(PROBE_C), "poolings": list(predictor.poolings),
                "layers": list(predictor.layers)}
    lrs = sorted({s["lr"] for s in per_seed if s.get("lr") is not None})
    return {**common, "lr": lrs[0] if len(lrs) == 1 else None,  # the chosen lr when every seed chose it
            "lr_grid": list(getattr(predictor, "lr_grid", ()) or []) or None, "lr_search": config.lr_search,
            "epochs": config.epochs, "max_steps": config.max_steps, "min_steps": config.min_steps,
            "patience": config.patience, "eval_every": config.eval_every, "batch_size": config.batch_size,
            "warmup_ratio": config.warmup_ratio, "weight_decay": config.weight_decay}


def _log_seed(run, seed: int, rec: dict, metric: str) -> None:
    """metrics.jsonl (and the tracker, if any): the seed's English-dev curve, then its scores."""
    kind = f"finetune-seed{seed}"
    for h in rec.get("dev_history") or []:
        if isinstance(h, dict) and "step" in h:
            run.log({"type": kind, "step": h["step"], "dev": h.get("dev"), "epoch": h.get("epoch")})
    run.log({"type": f"scores-seed{seed}", "step": int(rec.get("best_step") or 0),
             "en_train": rec["en_train"].get(metric),
             "test": {lang: s.get(metric) for lang, s in rec["scores"].items()}})


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
        console.print(f"English train − test ({metric}): {tmt['mean']:+.3f} ± {tmt['std']:.3f}")
    ps = result["per_seed"]
    if ps and ps[0].get("best_step") is not None:
        console.print("fine-tuning (lr, best step / stopped at / budget): " + "; ".join(
            f"{s['lr']:g}, {s['best_step']}/{s['stop_step']}/{s['max_steps']}" for s in ps))
    if result.get("probe"):
        pr = result["probe"]
        console.print(f"probe: layer {pr['layer']} ({pr['pooling']} pooling, C={pr['C']:g}), chosen on English dev "
                      f"{', '.join(f'{x:.3f}' for x in pr['curve']['dev'])} over layers {pr['curve']['layers']}")
    if result["collapsed"]:
        console.print("[yellow]warning:[/] runs at the majority-class level are flagged above; "
                      "their scores are in the means — see per_seed in the result file")
