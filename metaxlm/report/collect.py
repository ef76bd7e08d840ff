"""Gather recorded results for a report: read, never compute.

:func:`collect` walks the given run or comparison directories, reads every ``meta.json``,
``config.yaml``, ``metrics.jsonl`` and ``results/*.json`` (docs/results.md; each result through its
schema, :mod:`metaxlm.results`: a file that does not fit is skipped with one line naming the file and
the field), and groups results by model. A model's regime and pretraining seed come from its training
run (``model.run_dir`` → ``meta.json``, else that run's ``results/pretrain.json``). Controls are
``model.source == "control"`` (``majority`` / ``lexical``) or regime ``none``.

Models are keyed by a *variant* (``single``, ``meta``, ``en-only``, ``none``, ``majority``,
``lexical``, a hub/local model's label, or ``REGIME@PHASE`` for a non-final checkpoint) and a seed.
Checkpoints named ``tokens-N`` (``metaxlm train --checkpoint-points``) are intermediate points of a
pretraining curve: they are kept apart, under :attr:`Collection.curves`. Phase-end checkpoints
(``meta@english``) are models of their own.

A transfer result's name is its task, with ``-probe`` appended for the frozen-encoder probe protocol
(``"protocol": "probe"``; results without ``protocol`` are fine-tuning): ``topic`` and ``topic-probe``
are reported side by side as two tasks.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from metaxlm.errors import UserError

REGIMES = ("single", "meta", "en-only", "none")  # the built-in regimes, in display order
CONTROL_LABELS = ("majority", "lexical")
SKIP_DIRS = ("checkpoints", "results", "replaced", "tokenizer", "plots", "predictions")
_TOKENS = re.compile(r"^tokens[-_]?(\d+)$")


@dataclass
class Run:
    """One run directory found under the given paths."""

    path: Path
    meta: dict
    config_text: str | None
    results: dict[str, dict]  # results/<name>.json → payload
    metrics: list[dict]  # metrics.jsonl lines (training curves)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind") or "")

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Entry:
    """One result file attributed to one model."""

    variant: str  # single / meta / en-only / none / majority / lexical / other label / REGIME@PHASE
    seed: int | None  # pretraining seed (None for controls and external models)
    tokens: int | None  # tokens seen, for intermediate ``tokens-N`` checkpoints (None: end point)
    kind: str  # transfer / tatoeba / bucc / align / align_pair / pretrain
    name: str  # result name: task name for transfer, else the kind
    payload: dict
    run: Run  # the run directory the result file lives in
    train_run: Run | None  # the training run of the model (None when not found / not a run)
    is_control: bool


@dataclass
class Collection:
    roots: list[Path]
    runs: list[Run] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)  # end-point results (tokens is None)
    curves: list[Entry] = field(default_factory=list)  # intermediate-checkpoint results
    pairs: list[Entry] = field(default_factory=list)  # align_pair results
    problems: list[str] = field(default_factory=list)  # unreadable files, unknown models, duplicates
    steps: dict[str, dict] = field(default_factory=dict)  # comparison dir → its steps.json (wall times)

    # -- queries ---------------------------------------------------------------------------------
    def train_runs(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "train" or "pretrain" in r.results]

    def variants(self) -> list[str]:
        """Every variant with a result, built-in regimes first, then other models, then controls."""
        seen = {e.variant for e in self.entries}
        seen |= {_regime_of(r) for r in self.train_runs() if _regime_of(r)}
        order = [v for v in REGIMES if v in seen]
        order += sorted(v for v in seen if v not in REGIMES and v not in CONTROL_LABELS)
        order += [v for v in CONTROL_LABELS if v in seen]
        return order

    def find(self, variant: str, name: str, tokens: int | None = None) -> list[Entry]:
        """Results named ``name`` (task name or kind) for ``variant``; one per seed, sorted by seed."""
        pool = self.entries if tokens is None else [e for e in self.curves if e.tokens == tokens]
        return sorted((e for e in pool if e.variant == variant and e.name == name),
                      key=lambda e: (e.seed is None, e.seed or 0))

    def names(self) -> list[str]:
        """Result names present (``topic``, ``xnli``, ``tatoeba``, ``bucc``, ``align``)."""
        return sorted({e.name for e in self.entries + self.curves})

    def transfer_tasks(self) -> list[str]:
        tasks = {e.name for e in self.entries + self.curves if e.kind == "transfer"}
        return sorted(tasks, key=lambda t: (base_task(t) != "topic", base_task(t), t != base_task(t)))


PROBE_SUFFIX = "-probe"


def result_name(payload: dict) -> str:
    """A transfer result's name: its task (``topic``), ``topic-probe`` for the probe protocol."""
    name = str((payload.get("task") or {}).get("name") or "")
    return name + PROBE_SUFFIX if name and payload.get("protocol") == "probe" else name


def base_task(name: str) -> str:
    """``topic-probe`` → ``topic``; any other name unchanged."""
    return name[: -len(PROBE_SUFFIX)] if name.endswith(PROBE_SUFFIX) else name


def task_title(name: str) -> str:
    """How a transfer result name is shown: ``topic-probe`` → ``topic (frozen-encoder probe)``."""
    return f"{base_task(name)} (frozen-encoder probe)" if name.endswith(PROBE_SUFFIX) else name


def _read_json(path: Path, problems: list[str]) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path}: unreadable ({type(e).__name__}); skipped")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: not a JSON object; skipped")
        return None
    return data


def _read_result(path: Path, problems: list[str]) -> dict | None:
    """A result file through its schema (:func:`metaxlm.results.load_result`), as the dict it was
    read from, or None with one line in ``problems`` naming the file and the field. A result written by
    a newer metaxlm (``schema_version`` above the one this version writes) is refused: its fields may
    mean something else. Older versions (and files without one) are upgraded and load."""
    from metaxlm.results import FIX, SchemaVersionError, load_result

    try:
        return load_result(path).payload()
    except SchemaVersionError as e:
        if isinstance(e.found, int) and not isinstance(e.found, bool) and e.found > e.supported:
            line = f"{e.where}: {e.reason}; skipped (upgrade metaxlm to report it)"
        else:
            line = f"{e.where}: {e.reason}; skipped"
    except UserError as e:
        line = str(e)
        line = (line[: -len(FIX)] + f"skipped ({FIX})") if line.endswith(f"; {FIX}") else f"{line}; skipped"
    problems.append(line)
    return None


def _read_metrics(path: Path) -> list[dict]:
    out: list[dict] = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _read_run(path: Path, problems: list[str]) -> Run:
    meta = _read_json(path / "meta.json", problems) if (path / "meta.json").is_file() else None
    results: dict[str, dict] = {}
    rdir = path / "results"
    if rdir.is_dir():
        for p in sorted(rdir.glob("*.json")):
            data = _read_result(p, problems)
            if data is not None:
                results[p.stem] = data
    cfg = path / "config.yaml"
    try:
        config_text = cfg.read_text(encoding="utf-8") if cfg.is_file() else None
    except (OSError, UnicodeDecodeError):
        config_text = None
    return Run(path=path, meta=meta or {}, config_text=config_text, results=results,
               metrics=_read_metrics(path / "metrics.jsonl"))


def _walk(root: Path) -> Iterable[Path]:
    """Directories under ``root`` (itself included) that look like runs: meta.json or results/.
    ``checkpoints/`` (model weights), ``results/``, ``replaced/`` (outputs superseded by
    ``metaxlm compare --force``) and hidden directories are not descended into."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        d = Path(dirpath)
        if "meta.json" in filenames or (d / "results").is_dir():
            yield d


def _regime_of(run: Run | None) -> str | None:
    if run is None:
        return None
    regime = run.meta.get("regime") or run.results.get("pretrain", {}).get("regime")
    return str(regime) if regime else None


def _seed_of(run: Run | None) -> int | None:
    if run is None:
        return None
    seed = run.meta.get("seed")
    if seed is None:
        seed = run.results.get("pretrain", {}).get("seed")
    try:
        return int(seed) if seed is not None else None
    except (TypeError, ValueError):
        return None


def _match_run(run_dir: str | None, runs: list[Run], by_path: dict[Path, Run], problems: list[str]) -> Run | None:
    """The training run a model names: its exact path, else the run sharing the longest path suffix
    (result trees get copied or moved; a comparison directory keeps its inner layout)."""
    if not run_dir:
        return None
    p = Path(run_dir)
    try:
        rp = p.resolve()
    except OSError:
        rp = p
    if rp in by_path:
        return by_path[rp]
    if p.is_dir() and (p / "meta.json").is_file():
        run = _read_run(p, problems)
        by_path[rp] = run
        return run
    parts = [x for x in p.parts if x not in ("/", "")]
    best, best_n = None, 0
    for r in runs:
        rparts = r.path.parts
        n = 0
        while n < min(len(parts), len(rparts)) and parts[-1 - n] == rparts[-1 - n]:
            n += 1
        if n > best_n:
            best, best_n = r, n
    return best


def _tokens_of(phase: str | None) -> int | None:
    if not phase or phase == "final":
        return None
    m = _TOKENS.match(phase)
    if m:
        return int(m.group(1))
    return None


def _attribute(model: dict, runs: list[Run], by_path: dict[Path, Run], problems: list[str]):
    """(variant, seed, tokens, train_run, is_control) for a result's ``model`` block."""
    model = model or {}
    source = model.get("source")
    label = str(model.get("label") or model.get("spec") or "unknown")
    if source == "control":
        return label, None, None, None, True
    train = _match_run(model.get("run_dir"), runs, by_path, problems) if model.get("run_dir") else None
    regime = _regime_of(train)
    phase = model.get("phase")
    tokens = _tokens_of(phase)
    if regime:
        variant = regime if (not phase or phase == "final" or tokens is not None) else f"{regime}@{phase}"
        return variant, _seed_of(train), tokens, train, regime == "none"
    if model.get("run_dir"):
        problems.append(f"model {label}: training run {model.get('run_dir')} not found or has no regime; "
                        "shown under its label")
    return label, None, tokens, train, False


def collect(paths: Iterable[str | Path]) -> Collection:
    """Read every run below ``paths``. A path that does not exist is a UserError; a file that cannot
    be read, or a result that does not fit its schema, is skipped, listed in :attr:`Collection.problems`
    and warned about on stderr."""
    roots = [Path(p) for p in paths]
    if not roots:
        raise UserError("give at least one run or comparison directory")
    for r in roots:
        if not r.is_dir():
            raise UserError(f"{r} is not a directory: give run or comparison directories")
    col = Collection(roots=roots)
    seen: set[Path] = set()
    for root in roots:
        for d in _walk(root):
            rp = d.resolve()
            if rp in seen:
                continue
            seen.add(rp)
            col.runs.append(_read_run(d, col.problems))
    if not any(r.results for r in col.runs):
        if col.problems:
            raise UserError(f"no usable results under {', '.join(map(str, roots))}: {col.problems[0]}")
        raise UserError(f"no results/*.json found under {', '.join(map(str, roots))}: "
                        "give the directories written by metaxlm compare / eval / probe")
    for line in col.problems:  # every file skipped while reading: one warning each (the report lists them)
        print(f"warning: {line}", file=sys.stderr)
    # The comparison a root belongs to (``metaxlm compare`` passes CMP/train, CMP/eval, CMP/probe):
    # its meta.json/config.yaml and steps.json are provenance.
    for root in roots:
        for cmp in (root, root.parent):
            if (cmp / "steps.json").is_file() and str(cmp) not in col.steps:
                steps = _read_json(cmp / "steps.json", col.problems)
                if steps is not None:
                    col.steps[str(cmp)] = steps
                if cmp.resolve() not in seen and (cmp / "meta.json").is_file():
                    seen.add(cmp.resolve())
                    col.runs.insert(0, _read_run(cmp, col.problems))
    by_path = {r.path.resolve(): r for r in col.runs}
    # A training run with no regime anywhere is still a run; results are attributed below.
    keyed: dict[tuple, Entry] = {}
    for run in col.runs:
        for name, payload in run.results.items():
            kind = str(payload.get("kind") or "")
            if kind == "pretrain":
                continue
            if kind == "align_pair":
                col.pairs.append(Entry("pair", None, None, kind, name, payload, run, None, False))
                continue
            if kind not in ("transfer", "tatoeba", "bucc", "align"):
                col.problems.append(f"{run.path / 'results' / (name + '.json')}: kind {kind!r} is not reported; "
                                    "skipped")
                continue
            rname = (result_name(payload) or name) if kind == "transfer" else kind
            variant, seed, tokens, train, is_control = _attribute(payload.get("model") or {}, col.runs, by_path,
                                                                  col.problems)
            entry = Entry(variant, seed, tokens, kind, rname, payload, run, train, is_control)
            key = (variant, seed, tokens, rname)
            if key in keyed:
                col.problems.append(f"{variant} seed {seed} has two {rname} results "
                                    f"({keyed[key].run.path}, {run.path}); using the later one")
            keyed[key] = entry
    for e in keyed.values():
        (col.curves if e.tokens is not None else col.entries).append(e)
    return col
