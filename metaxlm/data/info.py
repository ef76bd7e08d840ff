"""Reading a built benchmark: ``benchmark_info`` (counts) and ``check_benchmark`` (layout and leak checks)."""

from __future__ import annotations

import json
from pathlib import Path

from metaxlm import paths
from metaxlm.errors import UserError


def _stats(bench: Path) -> dict:
    st = bench / "stats.json"
    if not st.is_file():
        raise UserError(f"{bench} is not a built benchmark (no stats.json): run `metaxlm data build`")
    data = paths.read_json(st, what="benchmark's stats.json", fix="rebuild it with `metaxlm data build`")
    if not isinstance(data.get("languages", []), list) or not isinstance(data.get("files", {}), dict):
        raise UserError(f"{st}: 'languages' must be a list and 'files' an object; rebuild with `metaxlm data build`")
    return data


def benchmark_info(bench: str | Path | None = None) -> dict:
    """``stats.json`` of a built benchmark plus its ``path`` (default: the default benchmark dir)."""
    bench = Path(bench).expanduser() if bench else paths.default_benchmark_dir()
    info = _stats(bench)
    info["path"] = str(bench)
    return info


def _count(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        n = sum(1 for _ in f)
    return n - 1 if path.suffix == ".tsv" else n


def _column(path: Path, col: int, header: bool) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.split("\t")[col] for ln in (lines[1:] if header else lines)]


def check_benchmark(bench: str | Path) -> dict:
    """Check a benchmark against docs/benchmark.md; raise a UserError naming the first problem.

    Checks: every listed file exists with the counted number of items; no empty lines; TSV rows have
    the header's number of columns; topic test ids of each language are test-en ids; mining gold ids
    exist in their pools; no parallel, mining or topic test sentence appears in any corpus file.
    """
    bench = Path(bench)
    stats = _stats(bench)
    langs = stats.get("languages", [])
    if not langs or langs[0] != "en":
        raise UserError(f"{bench}/stats.json: 'languages' must start with 'en'")
    targets = langs[1:]
    need = ["topic/labels.json", "topic/train.tsv", "topic/dev.tsv", "topic/test-en.tsv", "parallel/nway.tsv"]
    for lang in langs:
        need.append(f"corpus/{lang}.txt")
    for lang in targets:
        need += [f"topic/test-{lang}.tsv", f"parallel/{lang}.dev.tsv", f"parallel/{lang}.test.tsv"]
        for s in ("dev", "test"):
            need += [f"mining/{lang}-en.{s}.{x}" for x in (lang, "en", "gold")]
    for rel in need:
        if not (bench / rel).is_file():
            raise UserError(f"{bench}: missing {rel}; rebuild with `metaxlm data build`")
    for rel, n in stats.get("files", {}).items():
        p = bench / rel
        if not p.is_file():
            raise UserError(f"{bench}: stats.json lists {rel} but it does not exist")
        if _count(p) != n:
            raise UserError(f"{bench}: {rel} holds {_count(p)} items but stats.json says {n}")
    for rel in need[1:]:
        p = bench / rel
        lines = p.read_text(encoding="utf-8").split("\n")
        if lines[-1] == "":
            lines.pop()
        if any(not ln.strip() for ln in lines):
            raise UserError(f"{bench}: {rel} has an empty line")
        if p.suffix == ".tsv" and lines:
            width = len(lines[0].split("\t"))
            bad = next((i for i, ln in enumerate(lines) if len(ln.split("\t")) != width), None)
            if bad is not None:
                raise UserError(f"{bench}: {rel} line {bad + 1} has not {width} columns")
    labels = json.loads((bench / "topic/labels.json").read_text(encoding="utf-8"))
    for rel in ("topic/train.tsv", "topic/dev.tsv", "topic/test-en.tsv"):
        unknown = set(_column(bench / rel, 1, True)) - set(labels)
        if unknown:
            raise UserError(f"{bench}: {rel} uses labels not in labels.json: {sorted(unknown)[:3]}")
    en_ids = set(_column(bench / "topic/test-en.tsv", 0, True))
    for lang in targets:
        extra = set(_column(bench / f"topic/test-{lang}.tsv", 0, True)) - en_ids
        if extra:
            raise UserError(f"{bench}: topic/test-{lang}.tsv has ids not in test-en.tsv: {sorted(extra)[:3]}")
        for s in ("dev", "test"):
            base = bench / f"mining/{lang}-en.{s}"
            xx_ids = set(_column(base.with_name(base.name + f".{lang}"), 0, False))
            e_ids = set(_column(base.with_name(base.name + ".en"), 0, False))
            for ln in (base.with_name(base.name + ".gold")).read_text(encoding="utf-8").splitlines():
                a, b = ln.split("\t")
                if a not in xx_ids or b not in e_ids:
                    raise UserError(f"{bench}: mining/{lang}-en.{s}.gold pair {a} {b} is not in the pools")
    # leak check: no held-out sentence in any corpus line
    corpus: set[str] = set()
    for lang in langs:
        corpus.update((bench / f"corpus/{lang}.txt").read_text(encoding="utf-8").splitlines())
    held: list[tuple[str, str]] = []
    for p in sorted((bench / "parallel").glob("*.tsv")):
        for ln in p.read_text(encoding="utf-8").splitlines()[1:]:
            held += [(p.name, c) for c in ln.split("\t")]
    for p in sorted((bench / "topic").glob("test-*.tsv")):
        held += [(p.name, t) for t in _column(p, 2, True)]
    for p in sorted((bench / "mining").iterdir()):
        if p.suffix != ".gold":
            held += [(p.name, t) for t in _column(p, 1, False)]
    for where, text in held:
        if text in corpus:
            raise UserError(f"{bench}: a sentence of {where} appears in corpus/: {text[:60]!r}")
    return stats
