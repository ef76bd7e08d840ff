"""The Python API's runners: each runs the library entry point and returns a :class:`Run`, the
directory it wrote (``.path``) with what it recorded there (``.result``, ``.results``).

Names never shadow a subpackage (``metaxlm.train``, ``metaxlm.compare``, ``metaxlm.report`` are
modules): ``run_train``, ``run_compare``, ``build_report``, ``build_benchmark``, ``fetch_sources``.
The library entry points (``metaxlm.eval.tatoeba.run_tatoeba``, ``metaxlm.train.train``, ...) keep
returning the path, as the CLI, ``compare`` and every caller expect; these wrappers add the recorded
payload, read back from the file just written (the exact record a later report reads). A
:class:`Run` stands in for its path where one is expected: ``run / "results"``, ``os.fspath(run)``,
``Path(run)``, ``str(run)``.

Configs are given as a config object, a mapping, or keyword fields
(``metaxlm.run_tatoeba(model=my_encoder, data="bench", out="runs/t")``); a mapping or fields are
checked as from a YAML file (:func:`metaxlm.config.build`), except ``model`` / ``models``, which
may also be objects with ``encode(sentences) -> array`` (:class:`metaxlm.encode.Encoder`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaxlm.errors import UserError


@dataclass(frozen=True)
class Run:
    """A directory a runner wrote and what it recorded."""

    path: Path
    result: Any = None  # the main record (results/<name>.json payload, or what the runner returns)
    results: dict = field(default_factory=dict)  # every results/*.json by name

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __str__(self) -> str:
        return str(self.path)


def _read_results(path: Path) -> dict:
    from metaxlm.rundir import read_json

    d = Path(path) / "results"
    return {p.stem: read_json(p) for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


def _run(path: Path, name: str | None = None) -> Run:
    results = _read_results(path)
    if name is None and len(results) == 1:
        name = next(iter(results))
    return Run(Path(path), results.get(name) if name else None, results)


_OBJECT_FIELDS = ("model", "models")


def _config(cls, config, fields: dict, where: str, objects_ok: bool = False):
    """``config`` (an instance, a mapping or None) plus keyword ``fields`` → a ``cls`` instance
    (``objects_ok``: ``model``/``models`` may be encode() objects)."""
    from metaxlm import config as cfg

    if isinstance(config, cls):
        return dataclasses.replace(config, **fields) if fields else config
    if config is not None and not isinstance(config, dict):
        raise UserError(f"{where}: config must be a {cls.__name__}, a mapping or None, not {type(config).__name__}")
    data = {**(config or {}), **fields}
    objects = {}
    for k in _OBJECT_FIELDS:  # encode() objects pass through; the rest is checked as from YAML
        v = data.get(k)
        many = isinstance(v, (list, tuple))
        if v is not None and any(not isinstance(x, (str, Path)) for x in (v if many else [v])):
            if not objects_ok:
                raise UserError(f"{where}: {k} must be a model path or hub id (encode() objects are taken by "
                                "run_tatoeba, run_bucc and run_align)")
            objects[k] = tuple(v) if many else v
            data[k] = ["placeholder"] * len(v) if many else "placeholder"
    built = cfg.build(cls, {k: (str(v) if isinstance(v, Path) and k in _OBJECT_FIELDS else v)
                            for k, v in data.items()}, where=where)
    return dataclasses.replace(built, **objects) if objects else built


# -- runners -----------------------------------------------------------------------------------

def run_train(config=None, out=None, *, resume: bool = False, resume_changes=None, **fields) -> Run:
    """Pretrain (:func:`metaxlm.train.train`); ``.result`` is ``results/pretrain.json``."""
    from metaxlm.train import TrainConfig
    from metaxlm.train import train as _train

    if not resume and (fields or isinstance(config, dict)):
        config = _config(TrainConfig, config, fields, "train")
    return _run(_train(config, out, resume=resume, resume_changes=resume_changes), "pretrain")


def train_tokenizer(corpus, out, **options) -> Run:
    """Train the shared tokenizer (:func:`metaxlm.train.train_tokenizer`); ``.result`` is its
    ``metaxlm_tokenizer.json``."""
    from metaxlm.rundir import read_json
    from metaxlm.train import train_tokenizer as _tok

    path = Path(_tok(corpus, out, **options))
    info = path / "metaxlm_tokenizer.json"
    return Run(path, read_json(info) if info.is_file() else None)


def run_transfer(config=None, out=None, *, show: bool = False, **fields) -> Run:
    """Zero-shot transfer (:func:`metaxlm.eval.transfer.run_transfer`); ``.result`` is the task's results."""
    from metaxlm.eval.transfer import TransferConfig
    from metaxlm.eval.transfer import run_transfer as _run_transfer

    config = _config(TransferConfig, config, fields, "run_transfer")
    return _run(_run_transfer(config, out, show=show))


def run_tatoeba(config=None, out=None, **fields) -> Run:
    """Tatoeba-style retrieval (:func:`metaxlm.eval.tatoeba.run_tatoeba`); ``model`` may be an encode() object."""
    from metaxlm.eval.tatoeba import TatoebaConfig
    from metaxlm.eval.tatoeba import run_tatoeba as _run_tatoeba

    return _run(_run_tatoeba(_config(TatoebaConfig, config, fields, "run_tatoeba", True), out), "tatoeba")


def run_bucc(config=None, out=None, **fields) -> Run:
    """BUCC-style mining (:func:`metaxlm.eval.bucc.run_bucc`); ``model`` may be an encode() object."""
    from metaxlm.eval.bucc import BuccConfig
    from metaxlm.eval.bucc import run_bucc as _run_bucc

    return _run(_run_bucc(_config(BuccConfig, config, fields, "run_bucc", True), out), "bucc")


def run_align(config=None, out=None, **fields) -> Run:
    """The alignment probe (:func:`metaxlm.probe.align.run_align`); ``models`` may hold encode() objects."""
    from metaxlm.probe.align import AlignConfig
    from metaxlm.probe.align import run_align as _run_align

    return _run(_run_align(_config(AlignConfig, config, fields, "run_align", True), out))


def run_compare(config=None, out="runs/compare-demo", *, force: tuple[str, ...] = (), preset: str = "demo",
            **overrides) -> Run:
    """The whole comparison (:func:`metaxlm.compare.compare`): ``config`` a CompareConfig, or ``preset``
    plus ``overrides``; ``.path`` is the comparison directory, ``.result`` its steps table and report."""
    from metaxlm.compare import CompareConfig, resolve_config, step_table
    from metaxlm.compare import compare as _compare

    if not isinstance(config, CompareConfig):
        config = resolve_config(preset, {**(config or {}), **overrides})
    report = Path(_compare(config, out, force=tuple(force)))
    return Run(Path(out).expanduser(), {"report": str(report), "steps": step_table(out)})


def build_report(run_dirs, out, title: str = "metaxlm comparison report") -> Run:
    """The HTML + Markdown report (:func:`metaxlm.report.build_report`); ``.path`` is the HTML file."""
    from metaxlm.report import build_report as _build_report

    html, md = _build_report([Path(p) for p in ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs)],
                            Path(out), title=title)
    return Run(Path(html), {"html": str(html), "markdown": str(md)})


def build_benchmark(out=None, **options) -> Run:
    """Build the default benchmark (:func:`metaxlm.data.build_benchmark`); ``.result`` its counts."""
    from metaxlm.data import benchmark_info
    from metaxlm.data import build_benchmark as _build

    path = Path(_build(out, **options))
    return Run(path, benchmark_info(path))


def fetch_sources(**options) -> Run:
    """Fetch the benchmark's sources (:func:`metaxlm.data.fetch_sources`); ``.path`` is the archive cache."""
    from metaxlm.data import fetch_sources as _fetch

    return Run(Path(_fetch(**options)))


def export_mteb(runs, out) -> Run:
    """MTEB's result format for the results under ``runs`` (:func:`metaxlm.export.export_mteb`);
    ``.result`` lists what was exported, what is comparable with the leaderboard and what was skipped."""
    from metaxlm.export import export_mteb as _export

    return _run(Path(_export(runs, out)), "mteb_export")
