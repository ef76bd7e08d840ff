"""``metaxlm export mteb``: write MTEB's result tree for the results under some run directories.

:func:`export_mteb` reads every ``results/*.json`` below the given run or comparison directories,
converts what maps (:mod:`metaxlm.export.mteb`) and writes the export directory, itself a run
directory (``config.yaml``, ``meta.json``, ``results/mteb_export.json``: what was exported from
where, what is comparable with the leaderboard and why, what was skipped and why) holding MTEB's
layout under ``results/``::

    OUT/results/<org>__<model>/<revision>/<TaskName>.json
    OUT/results/<org>__<model>/<revision>/model_meta.json

so ``mteb.ResultCache(cache_path=OUT)`` (or a copy of ``OUT/results/*`` into a results repository)
reads it. Everything is checked before the first write: two different models that would share an
MTEB name, or two results of one model for the same MTEB task, are one-line errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from metaxlm import rundir
from metaxlm.errors import UserError
from metaxlm.export import mteb as M

SKIP_DIRS = ("checkpoints", "results", "replaced", "tokenizer", "plots", "predictions")


@dataclass(frozen=True)
class MtebExportConfig:
    """What one export reads (written to the export directory's config.yaml)."""

    runs: tuple[str, ...]  # run or comparison directories, searched recursively

    def __post_init__(self):
        if not self.runs:
            raise UserError("give at least one run or comparison directory to export")


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def find_results(roots: list[Path]) -> list[tuple[Path, dict, dict]]:
    """``(result file, payload, the run's meta.json)`` for every ``results/*.json`` below ``roots``."""
    found, seen = [], set()
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{root} is not a directory: give run or comparison directories")
        for dirpath, dirnames, _ in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            d = Path(dirpath)
            if not (d / "results").is_dir() or d.resolve() in seen:
                continue
            seen.add(d.resolve())
            meta = _read(d / "meta.json") or {}
            for f in sorted((d / "results").glob("*.json")):
                payload = _read(f)
                if payload is not None:
                    found.append((f, payload, meta))
    return found


def plan(roots: list[Path]) -> tuple[dict, list[dict]]:
    """``({(model folder, revision): {"meta": model_meta, "tasks": {task: (TaskResult dict, source)}}},
    skipped)``; conflicts are UserErrors."""
    models: dict[tuple[str, str], dict] = {}
    owners: dict[str, str] = {}  # MTEB model name -> the model path it stands for
    skipped = []
    for f, payload, meta in find_results(roots):
        result, why = M.task_result(payload, meta)
        if result is None:
            skipped.append({"result": str(f), "why": why})
            continue
        model = payload.get("model") or {}
        name, rev = M.model_name(model), M.model_revision(model)
        who = str(model.get("path") or model.get("spec") or model.get("label"))
        if owners.setdefault(name, who) != who:
            raise UserError(f"two models would both be exported as {name}: {owners[name]} and {who} ({f}); "
                            "export them separately (one --out each)")
        entry = models.setdefault((M.folder_name(name), rev), {
            "meta": M.model_meta(model, (payload.get("config") or {}).get("max_length")), "tasks": {}})
        task = result["task_name"]
        if task in entry["tasks"]:
            raise UserError(f"{name} has two results for the MTEB task {task}: {entry['tasks'][task][1]} and {f}; "
                            "export them separately (one --out each)")
        result["metaxlm"]["source"] = str(f)
        entry["tasks"][task] = (result, str(f))
    if not models:
        why = skipped[0]["why"] if skipped else "no results/*.json found"
        raise UserError(f"nothing to export under {', '.join(map(str, roots))}: {why}; give directories written by "
                        "metaxlm eval tatoeba | bucc | topic | xnli | pawsx (or compare)")
    return models, skipped


def export_mteb(runs, out: str | Path) -> Path:
    """Export the results under ``runs`` into the directory ``out`` (MTEB's layout, see the module
    doc); returns ``out``."""
    from metaxlm.paths import check_output

    config = MtebExportConfig(runs=tuple(str(r) for r in ([runs] if isinstance(runs, (str, Path)) else runs)))
    out = check_output(out, "export directory")
    models, skipped = plan([Path(r) for r in config.runs])
    run = rundir.create(out, config, kind="export", seed=None, extra_meta={"command": "export mteb"})
    try:
        exported = []
        for (folder, rev), entry in sorted(models.items()):
            d = run.path / "results" / folder / rev
            rundir.atomic_write_json(d / "model_meta.json", entry["meta"])
            for task, (result, source) in sorted(entry["tasks"].items()):
                rundir.atomic_write_json(d / f"{task}.json", result)
                info = result["metaxlm"]
                exported.append({"model": entry["meta"]["name"], "task_name": task, "source": source,
                                 "file": str((d / f"{task}.json").relative_to(run.path)),
                                 "comparable_with_leaderboard": info["comparable_with_leaderboard"],
                                 "comparability": info["comparability"]})
        manifest = {"kind": "mteb_export", "format": "MTEB TaskResult files + model_meta.json (mteb 2.x)",
                    "mteb_version": None, "dataset_revision": "metaxlm's sha256 of the data files",
                    "exported": exported, "skipped": skipped,
                    "comparable": sorted({e["task_name"] for e in exported if e["comparable_with_leaderboard"]}),
                    "not_comparable": sorted({e["task_name"] for e in exported
                                              if not e["comparable_with_leaderboard"]})}
        run.write_result("mteb_export", manifest)
        run.done(summary={"files": len(exported), "skipped": len(skipped)})
    except BaseException as e:
        run.failed(f"{type(e).__name__}: {e}")
        raise
    return run.path
