"""The main job: ``metaxlm compare`` — data → shared tokenizer → pretrain each regime → analyse → report.

Read top to bottom, a comparison is a list of *steps*. Each step writes one directory inside the
comparison directory and is *done* when that directory's run is finished; ``steps.json`` records
what ran and how long it took. Rerunning skips finished steps, resumes interrupted training and
redoes interrupted analyses; ``force`` redoes named steps (their old outputs move to
``replaced/``).

Layout of a comparison directory ``CMP``::

    CMP/config.yaml  meta.json  steps.json
    CMP/tokenizer/                      shared by every regime
    CMP/train/<regime>-s<seed>/         training runs (checkpoints/final, per phase, tokens-N)
    CMP/eval/<task>/<label>/            transfer and retrieval runs, one per model (and controls)
    CMP/eval/<task>-probe/<label>/      the same transfer tasks with the frozen-encoder probe protocol
    CMP/probe/align/<label>/            CKA en↔xx per layer
    CMP/probe/pair/<a>--<b>/            model × model CKA
    CMP/report.html  report.md
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from metaxlm import config as cfg
from metaxlm import progress, rundir
from metaxlm.devices import check_device, resolve_device
from metaxlm.errors import UserError

# ---------------------------------------------------------------------------------------------
# Configuration and presets
# ---------------------------------------------------------------------------------------------

ANALYSES = ("topic", "tatoeba", "bucc", "align")
PROTOCOLS = ("finetune", "probe")  # transfer protocols: fine-tune the encoder; linear probe on the frozen encoder


@dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison depends on. Presets fill it; any key can be overridden."""

    preset: str = "demo"
    data: Optional[str] = None  # benchmark directory; None = fetch and build the default benchmark
    # pretraining corpus (and the shared tokenizer's): a directory, or {lang: file or hf:NAME...};
    # None = the benchmark's corpus/. Every regime and seed reads it through one token cache.
    corpus: Optional[Union[str, dict[str, str]]] = None
    languages: Optional[tuple[str, ...]] = None  # benchmark languages (None = the data's defaults)
    regimes: tuple[str, ...] = ("single", "meta", "en-only", "none")
    seeds: tuple[int, ...] = (0,)  # pretraining seeds; every regime is trained once per seed
    models: tuple[str, ...] = ()  # extra encoders (HF directories or hub ids) analysed alongside
    tasks: dict[str, str] = field(default_factory=dict)  # extra transfer tasks: {xnli: DATA_DIR}
    analyses: tuple[str, ...] = ANALYSES
    controls: bool = True  # majority-class and lexical baselines on the topic task
    curves: bool = False  # also analyse intermediate checkpoints (metric vs tokens seen)
    curve_points: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75)
    data_options: dict[str, Any] = field(default_factory=dict)  # passed to build_benchmark (caps)
    tokenizer: dict[str, Any] = field(default_factory=dict)  # vocab_size, model_type, max_lines, alpha
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig keys
    topic: dict[str, Any] = field(default_factory=dict)  # TransferConfig keys
    # transfer tasks (topic and every --task) run under each protocol: steps TASK:<model> (fine-tuning)
    # and TASK-probe:<model> (frozen-encoder probe, TransferConfig(protocol="probe"))
    protocols: tuple[str, ...] = PROTOCOLS
    probe: dict[str, Any] = field(default_factory=dict)  # TransferConfig keys of the probe, on top of topic's
    tatoeba: dict[str, Any] = field(default_factory=dict)  # TatoebaConfig keys
    bucc: dict[str, Any] = field(default_factory=dict)  # BuccConfig keys
    align: dict[str, Any] = field(default_factory=dict)  # AlignConfig keys
    # where every step runs (metaxlm.devices): pretraining, fine-tuning, retrieval, probes; a step's own
    # key (train.device, topic.device, ...) wins. Not part of a comparison's identity (see _check_same_config).
    device: str = "auto"

    def __post_init__(self):
        check_device(self.device)
        if not self.regimes and not self.models:
            raise ValueError("nothing to compare: give at least one regime or model")
        if not self.seeds:
            raise ValueError("seeds must name at least one pretraining seed")
        for a in self.analyses:
            if a not in ANALYSES:
                raise ValueError(f"unknown analysis {a!r}; choose from {', '.join(ANALYSES)}")
        for p in self.curve_points:
            if not 0 < p < 1:
                raise ValueError(f"curve_points must be fractions in (0, 1), got {p}")
        if not self.protocols or len(set(self.protocols)) != len(self.protocols) or \
                any(p not in PROTOCOLS for p in self.protocols):
            raise ValueError(f"protocols must name each of {', '.join(PROTOCOLS)} at most once (at least one), "
                             f"got {list(self.protocols)}")
        if "protocol" in self.topic or "protocol" in self.probe:
            raise ValueError("set transfer protocols with protocols=[finetune,probe], not topic.protocol / "
                             "probe.protocol")


PRESETS: dict[str, dict[str, Any]] = {
    # A couple of minutes on 2 CPU cores; used by the test suite (with fixture data).
    "smoke": {
        "tokenizer": {"vocab_size": 400, "max_lines": 5000},
        "train": {"model": "tiny", "total_tokens": 6000, "seq_len": 32, "batch_size": 8, "lr": 1e-3,
                  "val_every": 0, "save_every": 50, "log_every": 2},
        "topic": {"seeds": 1, "epochs": 2, "batch_size": 8, "max_length": 32},
        "tatoeba": {"batch_size": 16, "max_length": 32},
        "bucc": {"batch_size": 16, "max_length": 32},
        "align": {"batch_size": 16, "max_length": 32, "bootstrap": 50},
        "curve_points": (0.5,),
    },
    # The default: the whole job within 20 minutes on 2 CPU cores (measured; see README). It shows the
    # pipeline on real data; at this budget pretraining does not beat the random-init control.
    "demo": {
        "tokenizer": {"vocab_size": 8000, "max_lines": 50_000},
        "train": {"model": "demo", "total_tokens": 1_500_000, "val_every": 100, "save_every": 100},
        # one lr (1e-3: the recipe's grid centre for this width, chosen on English dev in docs/transfer.md)
        # and at most 5 epochs x 2 seeds keep fine-tuning near its old cost; paired statistics over test
        # items (report) give the power that more seeds would
        "topic": {"seeds": 2, "train_size": 2000, "lr": 1e-3, "epochs": 5},
        "tatoeba": {"max_length": 64, "max_pairs": 1000},
        "bucc": {"max_length": 64},
        "align": {"max_length": 64, "max_sentences": 1000, "bootstrap": 200},
    },
    # One GPU, on the `large` benchmark (data build --size large; 8k-vocabulary tokens measured: en 56.6M,
    # de 3.65M, ..., pt 1.15M): 30M tokens per regime, under the sampling exponent 0.3, expect about 2.2
    # passes over pt (computed from those counts; fewer tokens with this 32k vocabulary means a little
    # more; the budget check warns above 4). Larger budgets need a larger corpus (--corpus, hf: sources).
    "gpu": {
        "data_options": {"size": "large"},
        "tokenizer": {"vocab_size": 32000, "max_lines": 1_000_000},
        "train": {"model": "small", "total_tokens": 30_000_000, "val_every": 200, "save_every": 1000},
        "topic": {"seeds": 3},
        "tatoeba": {"max_pairs": 1000},
        "align": {"max_sentences": 2000},
        "seeds": (0, 1),
        "curves": True,
    },
    # The comparison step of scripts/gpu_check.sh: about four minutes of one GPU (single, meta and the
    # none control; topic, Tatoeba and CKA; the report). Not yet timed on a GPU (see README).
    "gpu-check": {
        "regimes": ("single", "meta", "none"),
        "analyses": ("topic", "tatoeba", "align"),
        "controls": False,
        "tokenizer": {"vocab_size": 16000, "max_lines": 100_000},
        "train": {"model": "small", "total_tokens": 3_000_000, "val_every": 200, "save_every": 500},
        "topic": {"seeds": 3},
        "tatoeba": {"max_pairs": 1000},
        "align": {"max_sentences": 1000, "bootstrap": 200},
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config(preset: str = "demo", overrides: Optional[dict] = None) -> CompareConfig:
    """The preset's settings with ``overrides`` merged in (nested dicts merge key by key)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    data = _merge(PRESETS[preset], overrides or {})
    data["preset"] = preset
    return cfg.build(CompareConfig, data, "compare")


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One unit of work: ``run()`` produces ``out``; done when ``out`` holds a finished run."""

    id: str
    out: Path
    run: Callable[[], Any]
    kind: str = "run"  # "run": a metaxlm run directory; "tokenizer": a tokenizer directory
    resumable: bool = False  # training: continue an interrupted run instead of redoing it
    depends: tuple[str, ...] = ()

    def is_done(self) -> bool:
        if self.kind == "tokenizer":  # written atomically by train_tokenizer
            return (self.out / "tokenizer.json").is_file()
        meta = self.out / "meta.json"
        if not meta.is_file():
            return False
        try:
            return json.loads(meta.read_text(encoding="utf-8")).get("status") == "done"
        except json.JSONDecodeError:
            return False


@dataclass
class Plan:
    cmp: Path
    config: CompareConfig
    bench: Path
    steps: list[Step]
    labels: dict[str, str]  # model label -> model spec (run dir, RUN@phase or HF dir)


def _label(regime: str, seed: int) -> str:
    return f"{regime}-s{seed}"


def plan_training(cmp: Path, config: CompareConfig, bench: Path) -> Plan:
    """The tokenizer and pretraining steps, and the label → model spec of every model to analyse."""
    from metaxlm.models import resolve_model
    from metaxlm.train import load_train_config

    steps: list[Step] = []
    labels: dict[str, str] = {}
    tok_dir = cmp / "tokenizer"
    steps.append(Step("tokenizer", tok_dir, _bind(_train_tokenizer, config, bench, tok_dir), kind="tokenizer"))
    overrides = _with_device(config, "train")
    if config.curves:
        overrides["checkpoint_points"] = list(config.curve_points)
    for seed in config.seeds:
        for regime in config.regimes:
            label = _label(regime, seed)
            tc = load_train_config({**overrides, "regime": regime, "seed": seed, "languages": _train_languages(config),
                                    "corpus": _corpus(config, bench), "tokenizer": str(tok_dir)})
            out = cmp / "train" / label
            steps.append(Step(f"train:{label}", out, _bind(_train, tc, out), resumable=True,
                              depends=("tokenizer",)))
            labels[label] = str(out)
    for spec in config.models:
        labels[resolve_model(spec).label] = spec
    return Plan(cmp=cmp, config=config, bench=bench, steps=steps, labels=labels)


def _intermediate(run: Path) -> list[str]:
    """Names of the intermediate checkpoints (``tokens-N``) a training run wrote, in order."""
    ck = run / "checkpoints"
    names = [p.name for p in ck.glob("tokens-*") if (p / "config.json").is_file()] if ck.is_dir() else []
    return sorted(names, key=lambda n: int(n.split("-", 1)[1]))


def plan_analyses(training: Plan) -> list[Step]:
    """Analysis steps for every model, the controls and the model × model probes.

    Built after training, so intermediate checkpoints (``--curves``) are found on disk.
    """
    from metaxlm.eval.transfer import TransferConfig

    cmp, config, bench = training.cmp, training.config, training.bench
    trained = {s.id.split(":", 1)[1] for s in training.steps if s.id.startswith("train:")}
    steps: list[Step] = []

    transfer = ({"topic": str(bench)} if "topic" in config.analyses else {}) | dict(config.tasks)

    def analyses_for(label: str, spec: str, dep: tuple[str, ...], protocols=config.protocols) -> None:
        for task, data_dir in transfer.items():
            for protocol in protocols:
                name = transfer_step(task, protocol)
                tcfg = {**transfer_settings(config, protocol), "task": task, "model": spec, "data": data_dir}
                cfg.build(TransferConfig, tcfg, f"compare.{name}")  # validate now, not mid-run
                out = cmp / "eval" / name / label
                steps.append(Step(f"{name}:{label}", out, _bind(_transfer, tcfg, out), depends=dep))
        for name in ("tatoeba", "bucc"):
            if name in config.analyses:
                c = {**_with_device(config, name), "model": spec, "data": str(bench)}
                out = cmp / "eval" / name / label
                steps.append(Step(f"{name}:{label}", out, _bind(_retrieval, name, c, out), depends=dep))
        if "align" in config.analyses:
            c = {**_with_device(config, "align"), "models": [spec], "data": [str(bench)]}
            out = cmp / "probe" / "align" / label
            steps.append(Step(f"align:{label}", out, _bind(_align, c, out), depends=dep))

    for label, spec in training.labels.items():
        dep = (f"train:{label}",) if label in trained else ()
        analyses_for(label, spec, dep)
        if config.curves and label in trained and not label.startswith("none-"):
            for name in _intermediate(Path(spec)):  # curves: the fine-tuning protocol only
                analyses_for(f"{label}@{name}", f"{spec}@{name}", dep,
                             tuple(p for p in config.protocols if p == "finetune"))

    if config.controls and "topic" in config.analyses:
        for control in ("majority", "lexical"):
            tcfg = {**transfer_settings(config, "finetune"), "task": "topic", "model": control, "data": str(bench)}
            out = cmp / "eval" / "topic" / control
            steps.append(Step(f"topic:{control}", out, _bind(_transfer, tcfg, out)))

    if "align" in config.analyses:
        for seed in config.seeds:
            pair = [_label(r, seed) for r in ("meta", "single") if r in config.regimes]
            if len(pair) == 2:
                c = {**_with_device(config, "align"), "models": [training.labels[p] for p in pair],
                     "data": [str(bench)]}
                out = cmp / "probe" / "pair" / f"{pair[0]}--{pair[1]}"
                steps.append(Step(f"align-pair:{pair[0]}--{pair[1]}", out, _bind(_align, c, out),
                                  depends=tuple(f"train:{p}" for p in pair)))
    return steps


def _bind(fn, *args):
    return functools.partial(fn, *args)


def transfer_step(task: str, protocol: str) -> str:
    """The step (and ``eval/`` directory, and ``--force``) name of a transfer task under a protocol:
    ``topic`` (fine-tuning), ``topic-probe`` (frozen-encoder probe)."""
    return task if protocol == "finetune" else f"{task}-{protocol}"


def transfer_settings(config: CompareConfig, protocol: str) -> dict:
    """TransferConfig keys of a transfer step: ``topic`` (with the device), and for the probe ``probe``'s
    keys on top, and the protocol."""
    base = _with_device(config, "topic")
    return {**base, "protocol": protocol} if protocol == "finetune" else {**base, **config.probe, "protocol": protocol}


def _with_device(config: CompareConfig, section: str) -> dict:
    """A step section's settings (``train``, ``topic``, ``tatoeba``, ``bucc``, ``align``) with the
    comparison's device, unless the section names its own."""
    return {"device": config.device, **getattr(config, section)}


# The step bodies: each calls one library entry point.

def _train_tokenizer(config: CompareConfig, bench: Path, out: Path) -> None:
    from metaxlm.train import train_tokenizer

    if out.exists():
        shutil.rmtree(out)
    for tmp in out.parent.glob(f".{out.name}.*"):  # the temporary directory of a killed tokenizer step
        shutil.rmtree(tmp, ignore_errors=True)  # (this process holds the comparison's lock)
    options = {"alpha": config.train.get("alpha", 0.3), "languages": _train_languages(config), **config.tokenizer}
    train_tokenizer(_corpus(config, bench), out, seed=min(config.seeds), **options)


def _corpus(config: CompareConfig, bench: Path):
    return config.corpus if config.corpus is not None else str(bench / "corpus")


def _train_languages(config: CompareConfig) -> list[str] | None:
    """Corpus languages to pretrain on: English plus ``languages`` (None = every corpus language)."""
    if not config.languages:
        return None
    return ["en"] + [lang for lang in config.languages if lang != "en"]


def _train(tc, out: Path) -> None:
    from metaxlm.train import train

    train(tc, out, resume=(out / "meta.json").is_file())


def _transfer(tcfg: dict, out: Path) -> None:
    from metaxlm.eval.transfer import TransferConfig, run_transfer

    run_transfer(cfg.build(TransferConfig, tcfg, f"compare.{transfer_step(tcfg['task'], tcfg['protocol'])}"), out,
                 show=False)


def _retrieval(name: str, c: dict, out: Path) -> None:
    if name == "tatoeba":
        from metaxlm.eval.tatoeba import TatoebaConfig as C
        from metaxlm.eval.tatoeba import run_tatoeba as run
    else:
        from metaxlm.eval.bucc import BuccConfig as C
        from metaxlm.eval.bucc import run_bucc as run
    run(cfg.build(C, c, f"compare.{name}"), out)


def _align(c: dict, out: Path) -> None:
    from metaxlm.probe.align import AlignConfig, run_align

    run_align(cfg.build(AlignConfig, c, "compare.align"), out)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _check_same_config(cmp: Path, config: CompareConfig) -> None:
    """A comparison directory belongs to one config: refuse to mix results of different settings."""
    path = cmp / "config.yaml"
    if not path.is_file():
        return
    old = cfg.load_yaml(path)
    new = cfg.to_dict(config)
    # the device says where steps run, not what is compared: a comparison may resume on another machine
    # (each run's meta.json records the device it used)
    diff = sorted(k for k in set(old) | set(new) if k != "device" and old.get(k) != new.get(k))
    if diff:
        raise UserError(f"{cmp} was made with different settings ({', '.join(diff)}); "
                        "rerun with the same options to resume it, or choose a new --out")


def _record(cmp: Path, step_id: str, **fields: Any) -> None:
    path = cmp / "steps.json"
    steps = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    steps[step_id] = {**steps.get(step_id, {}), **fields}
    rundir.atomic_write_json(path, steps)


def _replace(cmp: Path, step: Step, stamp: str) -> None:
    """Move a step's old output to CMP/replaced/<stamp>/ (finished runs are never overwritten)."""
    if step.out.exists():
        rundir.check_not_in_use(step.out)
        dest = cmp / "replaced" / stamp / step.out.relative_to(cmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(step.out), str(dest))


def _run_step(cmp: Path, step: Step, forced: bool, stamp: str) -> None:
    if forced:
        _replace(cmp, step, stamp)
    if step.is_done():
        _record(cmp, step.id, status="done", skipped=True)
        return
    if step.out.exists() and not step.resumable:
        rundir.check_not_in_use(step.out)  # never under a live writer's feet
        shutil.rmtree(step.out)  # an interrupted analysis: its partial output is redone
    t0 = time.time()
    _record(cmp, step.id, status="running", started_at=rundir.now(), out=str(step.out.relative_to(cmp)))
    step.run()
    _record(cmp, step.id, status="done", skipped=False, seconds=round(time.time() - t0, 1))


def _forced(steps: list[Step], force: tuple[str, ...], strict: bool = True) -> set[str]:
    """Step ids named by ``force`` (exact ids or prefixes such as ``train`` or ``topic``) and their dependants."""
    ids = [s.id for s in steps]
    chosen: set[str] = set()
    for f in force:
        if f == "report":  # the report is rewritten on every run
            continue
        if f == "data":
            raise UserError("--force data: rebuild the benchmark with `metaxlm data build` first; "
                            "compare then uses the rebuilt files")
        hit = {i for i in ids if i == f or i.split(":", 1)[0] == f or i.startswith(f + ":") or i.startswith(f + "@")}
        if not hit and strict:
            raise UserError(f"--force {f}: no such step; steps are: {', '.join(sorted({i.split(':')[0] for i in ids}))} "
                            "(or a full id such as train:meta-s0)")
        chosen |= hit
    changed = True
    while changed:
        changed = False
        for s in steps:
            if s.id not in chosen and any(d in chosen for d in s.depends):
                chosen.add(s.id)
                changed = True
    return chosen


# TrainConfig keys that plan_training sets per run (a train.KEY given with --set/--config would be
# silently overridden), and where each is chosen instead.
_SET_PER_STEP = {
    "regime": "regimes are chosen with --regimes (e.g. --regimes single,meta)",
    "seed": "pretraining seeds are chosen with --seeds (e.g. --seeds 0,1,2)",
    "corpus": "the pretraining corpus is chosen with --corpus",
    "languages": "languages are chosen with --languages",
    "tokenizer": "every regime uses the comparison's shared tokenizer (set it with --set tokenizer.KEY=VALUE)",
    "vocab_size": "the shared tokenizer's vocabulary is --set tokenizer.vocab_size=N",
    "tokenizer_type": "the shared tokenizer's type is --set tokenizer.model_type=unigram|bpe",
    "tokenizer_max_lines": "the shared tokenizer's sample is --set tokenizer.max_lines=N",
}


def validate(config: CompareConfig) -> None:
    """Build every inner config once, so a bad key fails before anything is written."""
    from metaxlm.eval.bucc import BuccConfig
    from metaxlm.eval.tatoeba import TatoebaConfig
    from metaxlm.eval.transfer import TransferConfig
    from metaxlm.probe.align import AlignConfig
    from metaxlm.train import load_train_config

    for key, where in _SET_PER_STEP.items():  # compare sets these itself for every training run
        if key in config.train:
            raise UserError(f"compare.train.{key}: compare sets it for every training run, so it would be ignored; "
                            f"{where}")
    if config.curves and "checkpoint_points" in config.train:
        raise UserError("compare.train.checkpoint_points: with --curves the checkpoints are curve_points, so it "
                        "would be ignored; set --set 'curve_points=[0.25,0.5]' instead")
    train = _with_device(config, "train")
    if str(train["device"]).startswith("cuda:"):
        raise UserError(f"--device {train['device']}: pretraining (metaxlm train) takes auto, cpu or cuda; "
                        "pick the GPU with CUDA_VISIBLE_DEVICES=N and --device cuda")
    inner = [
        load_train_config({**train, "regime": "single"}),
        *[cfg.build(TransferConfig, {**transfer_settings(config, p), "task": "topic", "model": "m"},
                    f"compare.{'topic' if p == 'finetune' else p}") for p in config.protocols],
        cfg.build(TatoebaConfig, {**_with_device(config, "tatoeba"), "model": "m"}, "compare.tatoeba"),
        cfg.build(BuccConfig, {**_with_device(config, "bucc"), "model": "m"}, "compare.bucc"),
        cfg.build(AlignConfig, {**_with_device(config, "align"), "models": ["m"]}, "compare.align"),
    ]
    for c in inner:  # a device that is not there fails now, not at its first step
        resolve_device(c.device)
    if config.corpus is not None:  # every source exists (reading waits for the steps)
        from metaxlm.train.corpus import resolve_files

        resolve_files(config.corpus, _train_languages(config))
    bad = set(config.tokenizer) - {"vocab_size", "model_type", "max_lines", "alpha"}
    if bad:
        raise UserError(f"compare.tokenizer: unknown key {sorted(bad)[0]!r}; known keys are: "
                        "alpha, max_lines, model_type, vocab_size")
    _validate_inputs(config)


def _validate_inputs(config: CompareConfig) -> None:
    """What the steps would otherwise find out late (after the tokenizer and every regime trained):
    regime names, the benchmark, extra tasks and their data, extra models, the tokenizer's settings."""
    from metaxlm.eval.tasks import TASKS
    from metaxlm.models import load_config, resolve_model
    from metaxlm.train.regimes import BUILTIN
    from metaxlm.train.tokenizer import N_SPECIAL

    if not config.train.get("phases"):  # custom phases (train.phases) make any regime name valid
        for regime in config.regimes:
            if regime not in BUILTIN:
                raise UserError(f"--regimes: regime {regime!r} is unknown; choose from {', '.join(BUILTIN)} "
                                "(or define train.phases in a --config file)")
    twice = sorted({r for r in config.regimes if config.regimes.count(r) > 1})
    if twice:
        raise UserError(f"--regimes: {twice[0]!r} is named twice")
    if config.data is not None:
        bench = Path(config.data)
        if not bench.is_dir():
            raise UserError(f"--data {bench}: the directory does not exist; build a benchmark with "
                            "`metaxlm data build` or omit --data")
        if not (bench / "corpus").is_dir():
            raise UserError(f"--data {bench}: not a metaxlm benchmark (no corpus/ directory); "
                            "build one with `metaxlm data build` or omit --data")
    for name, data_dir in config.tasks.items():
        if name not in TASKS:
            raise UserError(f"--task {name}={data_dir}: unknown task {name!r}; choose one of {', '.join(TASKS)}")
        if name == "topic" and "topic" in config.analyses:  # both would write eval/topic/<model>
            raise UserError(f"--task topic={data_dir}: topic is already the comparison's own task (on --data); "
                            "give another task, or drop topic from analyses")
        if not str(data_dir).startswith("hf:") and not Path(data_dir).expanduser().is_dir():
            raise UserError(f"--task {name}={data_dir}: data directory {Path(data_dir).expanduser()} does not exist")
    for spec in config.models:
        try:
            ref = resolve_model(spec)  # a path that does not exist, a directory that is not a model
            load_config(ref)  # an unreadable config.json, or a hub id with no hub reachable
        except UserError as e:
            raise UserError(f"--model {spec}: {e}") from None
    tok = config.tokenizer
    vocab = tok.get("vocab_size")
    if vocab is not None:
        if not isinstance(vocab, int) or isinstance(vocab, bool):
            raise UserError(f"compare.tokenizer.vocab_size: expected an integer, got {vocab!r}")
        if not N_SPECIAL + 10 < vocab <= 1_000_000:
            raise UserError(f"compare.tokenizer.vocab_size {vocab} is not a usable vocabulary size: give more than "
                            f"{N_SPECIAL + 10} (the {N_SPECIAL} special tokens and room for text) and at most 1000000")
    if tok.get("model_type", "unigram") not in ("unigram", "bpe"):
        raise UserError(f"compare.tokenizer.model_type {tok['model_type']!r}: choose unigram or bpe")
    max_lines = tok.get("max_lines")
    if max_lines is not None and (not isinstance(max_lines, int) or isinstance(max_lines, bool) or max_lines < 1):
        raise UserError(f"compare.tokenizer.max_lines: expected a positive integer, got {max_lines!r}")
    alpha = tok.get("alpha")
    if alpha is not None and (not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0):
        raise UserError(f"compare.tokenizer.alpha: expected a number >= 0, got {alpha!r}")


def _check_force(cmp: Path, config: CompareConfig, force: tuple[str, ...]) -> None:
    """Every ``--force`` name must name a step: checked before anything is written (so that a typo
    cannot mark a finished comparison failed)."""
    kinds = {"tokenizer", "train", "align-pair", "report", "data", *ANALYSES, *config.tasks,
             *[transfer_step(t, p) for t in ("topic", *config.tasks) for p in config.protocols]}
    for f in force:
        if f.split(":", 1)[0].split("@", 1)[0] not in kinds:
            raise UserError(f"--force {f}: no such step; steps are: {', '.join(sorted(kinds))} "
                            "(or a full id such as train:meta-s0)")
        if f == "data":
            raise UserError("--force data: rebuild the benchmark with `metaxlm data build` first; "
                            "compare then uses the rebuilt files")
    names = [f for f in force if f != "report"]
    if not names:
        return
    bench = Path(config.data) if config.data is not None else cmp / ".benchmark"  # only named in step configs
    training = plan_training(cmp, config, bench)
    steps = training.steps + plan_analyses(training)  # intermediate checkpoints: those already on disk
    ids = [s.id for s in steps]
    by_id = {s.id: s for s in steps}

    def hits(f: str) -> bool:
        return any(i == f or i.split(":", 1)[0] == f or i.startswith(f + ":") or i.startswith(f + "@") for i in ids)

    for f in names:
        if hits(f):
            continue
        if "@" in f and config.curves:  # an intermediate checkpoint of a run not trained yet
            pre = f.split("@", 1)[0]
            train = by_id.get(f"train:{pre.split(':', 1)[1]}") if ":" in pre else None
            if train is not None and not train.is_done() and hits(pre):
                continue
        raise UserError(f"--force {f}: no such step in this comparison; steps are: "
                        f"{', '.join(sorted({i.split(':')[0] for i in ids}))} (or a full id such as "
                        f"{next((i for i in ids if i.startswith('train:')), 'train:meta-s0')})")


def _check_is_comparison(cmp: Path) -> None:
    if rundir.has_content(cmp) and not (cmp / "config.yaml").is_file():
        raise UserError(f"{cmp} exists and is not a comparison directory; choose a new --out")


def compare(config: CompareConfig, out: str | Path, *, force: tuple[str, ...] = ()) -> Path:
    """Run (or resume) a comparison into ``out``; returns the path of the HTML report."""
    from metaxlm.paths import check_output

    cmp = check_output(out, "comparison directory")
    # every check before the first write: a refused command leaves nothing behind (and no config.yaml
    # that would make the corrected rerun "different settings")
    validate(config)
    _check_force(cmp, config, force)
    _check_same_config(cmp, config)
    _check_is_comparison(cmp)
    # one writer per comparison directory (CMP/.lock); its steps lock their own run directories
    with rundir.locked(cmp):
        _check_same_config(cmp, config)  # again, under the lock
        _check_is_comparison(cmp)
        return _compare_locked(cmp, config, force)


def _compare_locked(cmp: Path, config: CompareConfig, force: tuple[str, ...]) -> Path:
    cmp.mkdir(parents=True, exist_ok=True)
    if not (cmp / "config.yaml").is_file():
        rundir.atomic_write_text(cmp / "config.yaml", cfg.dump_yaml(config))
        rundir.atomic_write_json(cmp / "meta.json", {
            "kind": "compare", "status": "running", "seed": list(config.seeds), "created_at": rundir.now(),
            "git_sha": rundir.git_sha(), "versions": rundir.library_versions(), "hardware": rundir.hardware()})
    meta = rundir.RunDir(cmp)
    meta.update_meta(status="running", started_at=rundir.now(),
                     wall_seconds_before=meta.meta.get("wall_seconds") or 0.0)
    t_start = time.time()
    try:
        with progress.task("compare: data", total=None) as overall:
            bench = _data_step(cmp, config)
            training = plan_training(cmp, config, bench)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            done = 0

            def run_steps(steps: list[Step], forced: set[str], total: int) -> None:
                nonlocal done
                for step in steps:
                    overall.update(total=total, completed=done, description=f"compare: {step.id}")
                    _run_step(cmp, step, step.id in forced, stamp)
                    done += 1

            forced = _forced(training.steps, force, strict=False)
            # a rough total until the analyses are planned (after training)
            run_steps(training.steps, forced, len(training.steps) * 4)
            analyses = plan_analyses(training)
            forced = _forced(training.steps + analyses, force) | forced
            run_steps(analyses, forced, done + len(analyses) + 1)
            # every measurement is recorded: the comparison is done; the report only reads it
            meta.update_meta(status="done", finished_at=rundir.now(), benchmark=str(bench),
                             wall_seconds=_wall(meta, t_start))
            overall.update(description="compare: report")
            report = _report_step(cmp)
            overall.update(completed=done + 1)
    except BaseException as e:
        meta.update_meta(status="failed", failed_at=rundir.now(), failure=f"{type(e).__name__}: {e}"[:500],
                         wall_seconds=_wall(meta, t_start))
        raise
    return report


def _wall(meta: rundir.RunDir, t_start: float) -> float:
    """Wall seconds over every session of this comparison (resumed runs add up)."""
    return round((meta.meta.get("wall_seconds_before") or 0.0) + time.time() - t_start, 1)


def _data_step(cmp: Path, config: CompareConfig) -> Path:
    if config.data is not None:
        bench = Path(config.data)
        if not (bench / "corpus").is_dir():
            raise UserError(f"--data {bench}: not a metaxlm benchmark (no corpus/ directory); "
                            "build one with `metaxlm data build` or omit --data")
        _record(cmp, "data", status="done", benchmark=str(bench), given=True)
        return bench
    from metaxlm.data import build_benchmark

    t0 = time.time()
    kwargs = dict(config.data_options)
    if config.languages:
        kwargs["languages"] = list(config.languages)
    bench = Path(build_benchmark(**kwargs))
    _record(cmp, "data", status="done", benchmark=str(bench), seconds=round(time.time() - t0, 1))
    return bench


def _report_step(cmp: Path) -> Path:
    from metaxlm.report import build_report

    inputs = [d for d in (cmp / "train", cmp / "eval", cmp / "probe") if d.is_dir()]
    html, _md = build_report(inputs, cmp / "report.html")
    _record(cmp, "report", status="done", html=str(html))
    return html


def step_table(cmp: str | Path) -> list[dict]:
    """The recorded steps of a comparison (for the summary table)."""
    path = Path(cmp) / "steps.json"
    if not path.is_file():
        return []
    return [{"step": k, **v} for k, v in json.loads(path.read_text(encoding="utf-8")).items()]
