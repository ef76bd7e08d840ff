"""Loaders for bitext retrieval data; every problem is one-line :class:`UserError`.

Formats:

- the default benchmark (docs/benchmark.md): ``parallel/<xx>.<split>.tsv`` (header ``en <tab> xx``)
  and ``mining/<xx>-en.<split>.{<xx>,en,gold}``;
- LASER / Tatoeba: ``tatoeba.<iso3>-eng.<iso3>`` and ``tatoeba.<iso3>-eng.eng``, line-aligned; a test
  set only (no dev split), so ``eval tatoeba`` fixes the headline layer there
  (:func:`metaxlm.eval.tatoeba.no_dev_layer`) unless ``--layer`` or a dev pair is given;
- any pair of line-aligned files (``--src`` xx, ``--tgt`` English);
- BUCC 2018: ``<xx>-en.<split>.<xx>`` and ``<xx>-en.<split>.en`` (``id <tab> sentence``) and
  ``<xx>-en.<split>.gold`` (``xx-id <tab> en-id``), directly in a directory, in ``<xx>-en/``
  subdirectories (the official layout) or in a benchmark's ``mining/``;
- ``hf:NAME[:CONFIG]``: Hugging Face datasets (:func:`load_tatoeba_hf`, :func:`load_bucc_hf`; default
  ``google/xtreme``'s ``tatoeba.<iso3>`` and ``bucc18.<xx>`` configs, or a directory of save_to_disk configs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from metaxlm.errors import UserError


@dataclass
class ParallelSet:
    """Line-aligned pairs: ``xx[i]`` translates ``en[i]``."""

    lang: str
    split: str
    xx: list[str]
    en: list[str]
    files: list[Path] = field(default_factory=list)


@dataclass
class MiningSet:
    """Two pools of sentences with ids and the gold pairs among them."""

    lang: str
    split: str
    xx_ids: list[str]
    xx: list[str]
    en_ids: list[str]
    en: list[str]
    gold: list[tuple[str, str]]
    files: list[Path] = field(default_factory=list)


def files_hash(paths: Iterable[Path]) -> str:
    """``sha256:<hex>`` over the names and bytes of ``paths`` (sorted)."""
    h = hashlib.sha256()
    for p in sorted({Path(p) for p in paths}, key=str):
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without their line endings; a missing or empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}); convert it to UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not lines or all(not ln.strip() for ln in lines):
        raise UserError(f"{path} is empty: it needs at least one sentence")
    return lines


# -- line-aligned ------------------------------------------------------------------------------------
def load_pair(src: Path, tgt: Path, *, lang: str = "xx", split: str = "test") -> ParallelSet:
    """Two line-aligned files: ``src`` in language ``lang``, ``tgt`` in English."""
    xx, en = read_lines(src), read_lines(tgt)
    if len(xx) != len(en):
        raise UserError(f"{src} has {len(xx)} lines but {tgt} has {len(en)}: line-aligned files must have "
                        "the same number of lines")
    return ParallelSet(lang, split, xx, en, [Path(src), Path(tgt)])


def load_parallel_tsv(path: Path, lang: str, split: str) -> ParallelSet:
    """A benchmark ``parallel/<xx>.<split>.tsv``: header ``en <tab> <xx>`` then one pair per line."""
    lines = read_lines(path)
    header = lines[0].split("\t")
    if header != ["en", lang]:
        raise UserError(f"{path}: the header must be 'en<TAB>{lang}', found {lines[0][:80]!r}")
    xx, en = [], []
    for no, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if len(cols) != 2:
            raise UserError(f"{path} line {no}: expected 2 tab-separated columns (en, {lang}), found {len(cols)}")
        en.append(cols[0])
        xx.append(cols[1])
    if not xx:
        raise UserError(f"{path} is empty: it has a header but no sentence pairs")
    return ParallelSet(lang, split, xx, en, [Path(path)])


def _select(found: Sequence[str], wanted: Sequence[str] | None, where: str) -> list[str]:
    if not found:
        raise UserError(f"{where}: no languages found")
    if not wanted:
        return sorted(found)
    missing = [w for w in wanted if w not in found]
    if missing:
        raise UserError(f"{where}: no data for language {missing[0]!r} (available: {', '.join(sorted(found))})")
    return list(dict.fromkeys(wanted))


def load_benchmark_parallel(bench: Path, languages: Sequence[str] | None = None,
                            splits: Sequence[str] = ("dev", "test")) -> dict[str, dict[str, ParallelSet]]:
    """``{lang: {split: ParallelSet}}`` from ``BENCH/parallel``."""
    pdir = Path(bench) / "parallel"
    if not pdir.is_dir():
        raise UserError(f"{bench} has no parallel/ directory: build the benchmark with 'metaxlm data build' "
                        "or pass another data directory")
    found = sorted({m.group(1) for p in pdir.glob("*.test.tsv") if (m := re.fullmatch(r"(\w+)\.test\.tsv", p.name))})
    langs = _select(found, languages, str(pdir))
    out: dict[str, dict[str, ParallelSet]] = {}
    for lang in langs:
        out[lang] = {}
        for split in splits:
            p = pdir / f"{lang}.{split}.tsv"
            if p.is_file():
                out[lang][split] = load_parallel_tsv(p, lang, split)
    return out


TATOEBA_RE = re.compile(r"tatoeba\.([a-z]{2,3})-eng\.\1")


def load_tatoeba_dir(d: Path, languages: Sequence[str] | None = None) -> dict[str, dict[str, ParallelSet]]:
    """LASER's Tatoeba files ``tatoeba.<iso3>-eng.<iso3>`` + ``.eng`` → ``{iso3: {"test": ParallelSet}}``
    (a test split only: LASER ships no dev split)."""
    d = Path(d)
    found = sorted(m.group(1) for p in d.iterdir() if (m := TATOEBA_RE.fullmatch(p.name)))
    langs = _select(found, languages, f"{d} (tatoeba.<iso3>-eng.<iso3> files)")
    out = {}
    for lang in langs:
        xx_path = d / f"tatoeba.{lang}-eng.{lang}"
        en_path = d / f"tatoeba.{lang}-eng.eng"
        if not en_path.is_file():
            raise UserError(f"{xx_path} has no English side: {en_path} does not exist")
        out[lang] = {"test": load_pair(xx_path, en_path, lang=lang, split="test")}
    return out


def is_tatoeba_dir(d: Path) -> bool:
    d = Path(d)
    return d.is_dir() and any(TATOEBA_RE.fullmatch(p.name) for p in d.iterdir())


# -- BUCC ----------------------------------------------------------------------------------------------
def _read_id_file(path: Path) -> tuple[list[str], list[str]]:
    ids, sents, seen = [], [], set()
    for no, line in enumerate(read_lines(path), start=1):
        cols = line.split("\t", 1)
        if len(cols) != 2 or not cols[0]:
            raise UserError(f"{path} line {no}: expected 'id<TAB>sentence'")
        if cols[0] in seen:
            raise UserError(f"{path} line {no}: id {cols[0]!r} appears twice; ids must be unique")
        seen.add(cols[0])
        ids.append(cols[0])
        sents.append(cols[1])
    return ids, sents


def load_bucc_split(d: Path, lang: str, split: str) -> MiningSet:
    """``<d>/<xx>-en.<split>.{<xx>,en,gold}`` with every gold id checked against the pools."""
    d = Path(d)
    stem = d / f"{lang}-en.{split}"
    xx_path, en_path, gold_path = Path(f"{stem}.{lang}"), Path(f"{stem}.en"), Path(f"{stem}.gold")
    for p in (xx_path, en_path, gold_path):
        if not p.is_file():
            raise UserError(f"{p} does not exist: BUCC data needs {lang}-en.{split}.{lang}, .en and .gold "
                            f"(for split {split!r})")
    xx_ids, xx = _read_id_file(xx_path)
    en_ids, en = _read_id_file(en_path)
    xs, es = set(xx_ids), set(en_ids)
    gold, seen = [], set()
    for no, line in enumerate(read_lines(gold_path), start=1):
        cols = line.split("\t")
        if len(cols) != 2:
            raise UserError(f"{gold_path} line {no}: expected '{lang}-id<TAB>en-id'")
        a, b = cols
        if a not in xs:
            raise UserError(f"{gold_path} line {no}: {lang} id {a!r} is not in {xx_path.name}")
        if b not in es:
            raise UserError(f"{gold_path} line {no}: en id {b!r} is not in {en_path.name}")
        if (a, b) not in seen:
            seen.add((a, b))
            gold.append((a, b))
    return MiningSet(lang, split, xx_ids, xx, en_ids, en, gold, [xx_path, en_path, gold_path])


BUCC_RE = re.compile(r"([a-z]{2,3})-en\.([\w-]+)\.gold")


def bucc_dirs(d: Path) -> list[Path]:
    """Directories that may hold BUCC files: ``d/mining`` (a benchmark), ``d``, ``d/<xx>-en``."""
    d = Path(d)
    if (d / "mining").is_dir():
        return [d / "mining"]
    return [d] + sorted(p for p in d.iterdir() if p.is_dir() and re.fullmatch(r"[a-z]{2,3}-en", p.name))


def find_bucc(d: Path) -> dict[str, dict[str, Path]]:
    """``{lang: {split: directory}}`` of every ``<xx>-en.<split>.gold`` found."""
    out: dict[str, dict[str, Path]] = {}
    for sub in bucc_dirs(d):
        for p in sub.glob("*.gold"):
            m = BUCC_RE.fullmatch(p.name)
            if m:
                out.setdefault(m.group(1), {})[m.group(2)] = sub
    return out


def load_bucc(d: Path, languages: Sequence[str] | None = None, *, dev_split: str = "dev",
              test_split: str = "test") -> dict[str, dict[str, MiningSet]]:
    """``{lang: {"dev": MiningSet, "test": MiningSet}}`` (dev absent when the files are)."""
    d = Path(d)
    if not d.is_dir():
        raise UserError(f"{d} does not exist or is not a directory")
    found = find_bucc(d)
    langs = _select(sorted(found), languages, f"{d} (<xx>-en.<split>.gold files)")
    out = {}
    for lang in langs:
        splits = found[lang]
        if test_split not in splits:
            raise UserError(f"{d}: no {lang}-en.{test_split}.gold (splits with gold: "
                            f"{', '.join(sorted(splits))}); choose one with --test-split")
        out[lang] = {"test": load_bucc_split(splits[test_split], lang, test_split)}
        if dev_split in splits:
            out[lang]["dev"] = load_bucc_split(splits[dev_split], lang, dev_split)
    return out


# -- Hugging Face datasets (metaxlm.eval.hub) -------------------------------------------------------------
def load_tatoeba_hf(text: str, languages: Sequence[str] | None = None) -> dict[str, dict[str, ParallelSet]]:
    """``hf:NAME[:CONFIG]`` (default ``google/xtreme``, configs ``tatoeba.<iso3>``: ``source_sentence`` is the
    xx side, ``target_sentence`` English) → ``{lang: {"test": ParallelSet}}``. The one split (xtreme calls it
    ``validation``) is LASER's test set, so there is no dev split, as with the LASER files."""
    from metaxlm.eval import hub

    src = hub.parse(text, "tatoeba")
    out = {}
    for lang in hub.languages(src, languages or ()):
        cfg = hub.config_for(src, lang)
        ds = hub.load_split(src, cfg, "test")
        where = f"hf:{src.name}:{cfg}"
        cols = hub.columns(ds, where, {"xx": ("source_sentence",), "en": ("target_sentence",),
                                       "xx_lang": ("source_lang",)}, optional=("xx_lang",))
        rows = ds.select_columns(list(cols.values())).to_dict()
        xx, en = rows[cols["xx"]], rows[cols["en"]]
        if "xx_lang" in cols and rows[cols["xx_lang"]] and rows[cols["xx_lang"]][0] == "eng":
            xx, en = en, xx  # English given as the source side
        strip = [[s.rstrip("\r\n") if isinstance(s, str) else s for s in side] for side in (xx, en)]
        if not strip[0] or any(not isinstance(s, str) for side in strip for s in side):
            raise UserError(f"{where}: expected non-empty text in source_sentence and target_sentence")
        out[lang] = {"test": ParallelSet(lang, "test", strip[0], strip[1], hub.arrow_files(ds))}
    return out


BUCC_HF_SPLITS = {"dev": "validation", "sample": "validation", "validation": "validation", "test": "test",
                  "training": "test"}  # BUCC 2018's sample gold is xtreme's validation, its training gold test


def load_bucc_hf(text: str, languages: Sequence[str] | None = None, *, dev_split: str = "dev",
                 test_split: str = "test") -> dict[str, dict[str, MiningSet]]:
    """``hf:NAME[:CONFIG]`` (default ``google/xtreme``, configs ``bucc18.<xx>``) → ``{lang: {"dev", "test"}}``.

    The hub's bucc18 configs hold only the gold pairs (``source_sentence`` xx, ``target_sentence`` English;
    ``source_lang``/``target_lang`` carry the sentence ids), so each pool is the gold sentences without
    BUCC's non-parallel distractors: F1 is far easier than on the official files and not comparable."""
    from metaxlm.eval import hub

    src = hub.parse(text, "bucc")
    out: dict[str, dict[str, MiningSet]] = {}
    for lang in hub.languages(src, languages or ()):
        cfg = hub.config_for(src, lang)
        out[lang] = {}
        for key, split in (("test", test_split), ("dev", dev_split)):
            name = BUCC_HF_SPLITS.get(split, split)
            ds = hub.load_split(src, cfg, name, required=key == "test")
            if ds is not None:
                out[lang][key] = _mining_from_pairs(ds, f"hf:{src.name}:{cfg}:{name}", lang, split)
    hub.note(f"{text}: BUCC from a hub dataset mines among the gold pairs only (no distractor sentences); "
             "its F1 is not comparable to BUCC 2018's official pools")
    return out


def _mining_from_pairs(ds, where: str, lang: str, split: str) -> MiningSet:
    from metaxlm.eval import hub

    cols = hub.columns(ds, where, {"xx": ("source_sentence",), "en": ("target_sentence",), "xx_id": ("source_lang",),
                                   "en_id": ("target_lang",)}, optional=("xx_id", "en_id"))
    rows = ds.select_columns(list(cols.values())).to_dict()
    n = len(rows[cols["xx"]])
    if n == 0:
        raise UserError(f"{where}: no sentence pairs")

    def ids(role: str, prefix: str) -> list[str]:
        vals = rows.get(cols.get(role, ""), None)
        if vals and all(isinstance(v, str) and re.search(r"\d", v) for v in vals):
            return vals  # xtreme stores the BUCC sentence ids in source_lang / target_lang
        return [f"{prefix}-{i:06d}" for i in range(n)]

    pools = {}
    for side, role, prefix in (("xx", "xx_id", lang), ("en", "en_id", "en")):
        seen: dict[str, str] = {}
        for sid, sent in zip(ids(role, prefix), rows[cols[side]]):
            if seen.setdefault(sid, sent) != sent:
                raise UserError(f"{where}: id {sid!r} names two different sentences")
        pools[side] = seen
    gold = list(dict.fromkeys(zip(ids("xx_id", lang), ids("en_id", "en"))))
    return MiningSet(lang, split, list(pools["xx"]), list(pools["xx"].values()), list(pools["en"]),
                     list(pools["en"].values()), gold, hub.arrow_files(ds))
