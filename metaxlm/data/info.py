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
        width = None
        with open(bench / rel, encoding="utf-8", newline="\n") as f:  # streamed: corpora can be large
            for i, ln in enumerate(f):
                ln = ln.removesuffix("\n")
                if not ln.strip():
                    raise UserError(f"{bench}: {rel} has an empty line")
                if rel.endswith(".tsv"):
                    width = len(ln.split("\t")) if width is None else width
                    if len(ln.split("\t")) != width:
                        raise UserError(f"{bench}: {rel} line {i + 1} has not {width} columns")
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
    # leak check: no held-out sentence in any corpus line (corpora streamed against the held-out set)
    held: list[tuple[str, str]] = []
    for p in sorted((bench / "parallel").glob("*.tsv")):
        for ln in p.read_text(encoding="utf-8").splitlines()[1:]:
            held += [(p.name, c) for c in ln.split("\t")]
    for p in sorted((bench / "topic").glob("test-*.tsv")):
        held += [(p.name, t) for t in _column(p, 2, True)]
    for p in sorted((bench / "mining").iterdir()):
        if p.suffix != ".gold":
            held += [(p.name, t) for t in _column(p, 1, False)]
    where_of = {}
    for where, text in held:
        where_of.setdefault(text, where)
    for lang in langs:
        with open(bench / f"corpus/{lang}.txt", encoding="utf-8", newline="\n") as f:
            for ln in f:
                text = ln.removesuffix("\n")
                if text in where_of:
                    raise UserError(f"{bench}: a sentence of {where_of[text]} appears in corpus/: {text[:60]!r}")
    return stats


def _file_counts(path: Path) -> dict[str, int]:
    lines = words = chars = 0
    with open(path, encoding="utf-8") as f:
        for ln in f:
            ln = ln.rstrip("\n")
            lines += 1
            words += len(ln.split())
            chars += len(ln)
    return {"lines": lines, "words": words, "chars": chars}


def cached_token_counts(path: Path, cache: Path | None = None) -> dict | None:
    """Tokens of ``path`` from the token cache (``$METAXLM_CACHE/tokens``) when some tokenizer prepared
    exactly this content (by SHA256); the most recent such entry. None when there is none."""
    from metaxlm.data.archive import sha256_file

    root = Path(cache) if cache else paths.cache_dir() / "tokens"
    if not root.is_dir():
        return None
    digest, best = None, None
    for idx in root.glob("*/index.json"):
        try:
            e = json.loads(idx.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if digest is None:
            digest = sha256_file(path)
        if e.get("source_sha256") == digest and (best is None or e.get("created", "") > best.get("created", "")):
            best = e
    if best is None:
        return None
    return {"tokens": int(best["train_tokens"]) + int(best.get("val_tokens", 0)),
            "tokenizer_sha256": best.get("tokenizer_sha256"), "vocab_size": best.get("vocab_size")}


def corpus_sources(bench: str | Path | None = None, token_cache: Path | None = None) -> list[dict]:
    """Rows ``{lang, source, lines, words, chars, tokens, tokens_from}`` per corpus language and source.

    ``tokens`` come from the token cache when a tokenizer has prepared the language's corpus file
    (``tokens_from`` names the tokenizer; per source they are the language's tokens shared out by
    characters, ``"… (by chars)"``); else ``tokens`` is None and the words column is the measure."""
    bench = Path(bench).expanduser() if bench else paths.default_benchmark_dir()
    stats = _stats(bench)
    per = stats.get("corpus_sources")
    rows = []
    for lang in stats.get("languages", []):
        path = bench / f"corpus/{lang}.txt"
        sources = per.get(lang) if per else None
        if sources is None:
            sources = {"descriptions": _file_counts(path)} if path.is_file() else {}
        tok = cached_token_counts(path, token_cache) if path.is_file() else None
        chars = sum(c["chars"] for c in sources.values()) or 1
        for name, c in sources.items():
            row = {"lang": lang, "source": name, "lines": c["lines"], "words": c["words"], "chars": c["chars"],
                   "tokens": None, "tokens_from": None}
            if tok is not None:
                row["tokens"] = int(round(tok["tokens"] * c["chars"] / chars))
                row["tokens_from"] = (f"token cache, tokenizer {str(tok['tokenizer_sha256'])[:12]} "
                                      f"({tok['vocab_size']} pieces)" + (" (by chars)" if len(sources) > 1 else ""))
            rows.append(row)
    return rows
