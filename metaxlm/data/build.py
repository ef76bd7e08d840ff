"""``metaxlm data build``: derive the leak-free benchmark (docs/benchmark.md) from the fetched sources.

Splits are decided per *component* (source packages linked by a shared description, see
:mod:`metaxlm.data.descriptions`) with a seeded hash, so every decision is deterministic and no source
package lands on two sides:

    u < topic_test                          topic test (English originals + their translations)
    u < topic_test + topic_dev              topic dev (English)
    u < ... + mining                        mining pools (dev/test by a second hash)
    otherwise                               training pool: topic train (English), and the corpora:
                                            English side or multilingual side by a third hash

Documentation pairs (handbook, GNOME help) are split into parallel dev/test by page. Every held-out
sentence (parallel, mining, topic dev/test paragraphs) is removed from the corpora, and a translated
corpus paragraph whose English original is in ``corpus/en.txt`` is dropped too.

The output directory is never cleared wholesale: the build writes a new temporary sibling and renames
it into place, and an existing non-empty ``--out`` is replaced only when it is a metaxlm benchmark
(``stats.json`` with a ``build_key``) holding nothing but the files that build wrote (see
:func:`check_replaceable`); those files are then removed one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from metaxlm import paths, progress
from metaxlm.config import to_dict
from metaxlm.data import languages as L
from metaxlm.data.datacard import write_datacard
from metaxlm.data.descriptions import LABELS, MIN_TOPIC_WORDS, Item, components, dedup_key, load_items, norm
from metaxlm.data.docs import doc_pairs
from metaxlm.data.fetch import FetchConfig, fetch, load_manifest
from metaxlm.data.info import check_benchmark
from metaxlm.data.sizes import get_size
from metaxlm.errors import UserError
from metaxlm.rundir import atomic_write_json

FORMAT = 1
MIN_LINE_CHARS = 12
BUILD_FILES = ("stats.json", "datacard.md", "topic/labels.json")  # written besides stats["files"]


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the content of a benchmark (part of its build key)."""

    languages: tuple[str, ...] = L.DEFAULT_LANGUAGES
    release: str = "bookworm"
    seed: int = 0
    # split shares (of components)
    topic_test: float = 0.10
    topic_dev: float = 0.05
    mining: float = 0.10
    multilingual_share: float = 0.5  # of the training pool: components whose translations feed corpus/<xx>
    parallel_dev: float = 0.2        # of documentation pages
    mining_gold: float = 0.5         # of translated mining descriptions whose English stays in the pool
    # size caps (None = no cap)
    max_corpus_lines: Optional[int] = 50_000      # per language
    max_topic_train: Optional[int] = None
    max_parallel_dev: Optional[int] = 1_000       # per language
    max_parallel_test: Optional[int] = 5_000      # per language
    max_mining_pool: Optional[int] = 5_000        # per side, language and split
    size: str = "default"  # which sources (metaxlm.data.sizes.SIZES); caps come from the size unless given

    def __post_init__(self):
        from metaxlm.data.sizes import get_size

        object.__setattr__(self, "languages", L.parse_list(self.languages))
        get_size(self.size)
        shares = (self.topic_test, self.topic_dev, self.mining)
        if any(not 0 <= s < 1 for s in shares) or sum(shares) >= 1:
            raise ValueError("topic_test, topic_dev and mining must be fractions that sum to less than 1")
        for name in ("multilingual_share", "parallel_dev", "mining_gold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1")
        for name in (f.name for f in fields(self) if f.name.startswith("max_")):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be a positive number or None")


def unit(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) for ``parts`` under ``seed``."""
    h = hashlib.sha256("\x1f".join((str(seed),) + parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


# ------------------------------------------------------------------------------------------ splits

def assign_splits(items: dict[str, Item], cfg: BuildConfig) -> dict[str, str]:
    """``{md5: split}`` with split in ``topic-test, topic-dev, mining-dev, mining-test, corpus-en,
    corpus-ml``; decided per component, so a source package never spans two splits."""
    comp = components(items)
    out = {}
    a, b, c = cfg.topic_test, cfg.topic_test + cfg.topic_dev, cfg.topic_test + cfg.topic_dev + cfg.mining
    for md5, name in comp.items():
        u = unit(cfg.seed, "split", name)
        if u < a:
            s = "topic-test"
        elif u < b:
            s = "topic-dev"
        elif u < c:
            s = "mining-dev" if unit(cfg.seed, "mining", name) < 0.5 else "mining-test"
        else:
            s = "corpus-ml" if unit(cfg.seed, "side", name) < cfg.multilingual_share else "corpus-en"
        out[md5] = s
    return out


def _shuffled(rows: list, seed: int, tag: str) -> list:
    rows = sorted(rows)
    random.Random(f"{seed}/{tag}").shuffle(rows)
    return rows


def _cap(rows: list, n: int | None) -> list:
    return rows if n is None else rows[:n]


# ------------------------------------------------------------------------------------------ topic

def topic_sets(items: dict[str, Item], split: dict[str, str], cfg: BuildConfig):
    """English train/dev/test rows and translated test rows; near-duplicates are dropped."""
    rows: dict[str, list[tuple[str, str, str, str]]] = {"train": [], "dev": [], "test": []}
    which = {"corpus-en": "train", "corpus-ml": "train", "topic-dev": "dev", "topic-test": "test"}
    for md5 in sorted(items, key=lambda m: (items[m].package, m)):
        it = items[md5]
        s = which.get(split[md5])
        label = it.label()
        if s is None or label is None or len(it.english.text().split()) < MIN_TOPIC_WORDS:
            continue
        if s == "test" and not any(lang in it.translations and it.translations[lang].text() != it.english.text()
                                   for lang in cfg.languages):
            continue
        rows[s].append((it.package, label, it.english.text(), md5))
    seen: dict[str, str] = {}
    kept: dict[str, list] = {}
    for s in ("train", "dev", "test"):  # a near-duplicate of an earlier split's item is dropped
        kept[s] = []
        for r in rows[s]:
            k = dedup_key(items[r[3]].english)
            if k in seen:
                continue
            seen[k] = s
            kept[s].append(r)
    kept["train"] = _cap(_shuffled(kept["train"], cfg.seed, "topic-train"), cfg.max_topic_train)
    kept["dev"] = _shuffled(kept["dev"], cfg.seed, "topic-dev")
    kept["test"] = _shuffled(kept["test"], cfg.seed, "topic-test")
    translated = {lang: [(pkg, lab, items[md5].translations[lang].text(), md5)
                         for pkg, lab, en, md5 in kept["test"]
                         if lang in items[md5].translations and items[md5].translations[lang].text() != en]
                  for lang in cfg.languages}
    return kept, translated


# ------------------------------------------------------------------------------------------ mining

def mining_sets(items: dict[str, Item], split: dict[str, str], cfg: BuildConfig, lang: str, which: str):
    """BUCC-style pools for ``lang`` and split ``which`` (dev/test): ``(xx_rows, en_rows, gold)``.

    Translated descriptions are either *gold* (both sides get their paragraphs) or *xx-only* (the
    English is withheld); untranslated descriptions fill the English side.
    """
    gold_pairs, xx_only, en_fill = [], [], []
    for md5 in sorted(items):
        if split[md5] != f"mining-{which}":
            continue
        it = items[md5]
        pairs = it.aligned(lang)
        if pairs is None:
            en_fill += [e for e in it.english.paragraphs]
        elif unit(cfg.seed, "gold", lang, md5) < cfg.mining_gold:
            gold_pairs += [(e, x) for e, x in pairs[1:]]
        else:
            xx_only += [x for _, x in pairs[1:]]
    ok = lambda s: len(s) >= MIN_LINE_CHARS  # noqa: E731
    # a sentence that occurs twice would make gold ambiguous: keep texts unique on each side
    en_count = defaultdict(int)
    xx_count = defaultdict(int)
    for e, x in gold_pairs:
        en_count[e] += 1
        xx_count[x] += 1
    for e in en_fill:
        en_count[e] += 1
    for x in xx_only:
        xx_count[x] += 1
    gold = sorted({(e, x) for e, x in gold_pairs if en_count[e] == 1 and xx_count[x] == 1 and ok(e) and ok(x)
                   and e != x})
    gold_en, gold_xx = {e for e, _ in gold}, {x for _, x in gold}
    fill_en = sorted({e for e in en_fill if ok(e) and e not in gold_en})
    fill_xx = sorted({x for x in xx_only if ok(x) and x not in gold_xx})
    cap = cfg.max_mining_pool
    if cap is not None:
        gold = _shuffled(gold, cfg.seed, f"mining-gold/{lang}/{which}")[: max(1, cap // 2)]
        fill_en = _shuffled(fill_en, cfg.seed, f"mining-en/{lang}/{which}")[: max(0, cap - len(gold))]
        fill_xx = _shuffled(fill_xx, cfg.seed, f"mining-xx/{lang}/{which}")[: max(0, cap - len(gold))]
    xx_side = _shuffled([(x, i) for i, (_, x) in enumerate(gold)] + [(x, -1) for x in fill_xx],
                        cfg.seed, f"mining-xxpool/{lang}/{which}")
    en_side = _shuffled([(e, i) for i, (e, _) in enumerate(gold)] + [(e, -1) for e in fill_en],
                        cfg.seed, f"mining-enpool/{lang}/{which}")
    xx_rows = [(f"{lang}-{which}-{n:06d}", s) for n, (s, _) in enumerate(xx_side)]
    en_rows = [(f"en-{which}-{n:06d}", s) for n, (s, _) in enumerate(en_side)]
    xx_id = {g: xx_rows[n][0] for n, (_, g) in enumerate(xx_side) if g >= 0}
    en_id = {g: en_rows[n][0] for n, (_, g) in enumerate(en_side) if g >= 0}
    gold_rows = sorted((xx_id[g], en_id[g]) for g in range(len(gold)))
    return xx_rows, en_rows, gold_rows


# ------------------------------------------------------------------------------------------ parallel

def parallel_sets(doc_roots: tuple[Path | None, Path | None], cfg: BuildConfig):
    """``{lang: {"dev": [(en, xx)], "test": [...]}}`` and the N-way rows from the test pages."""
    en_cache: dict = {}
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for lang in cfg.languages:
        by_en: dict[str, tuple[str, str]] = {}  # en -> (split, xx); test wins over dev
        for page, en, xx in doc_pairs(doc_roots[0], doc_roots[1], lang, en_cache):
            s = "dev" if unit(cfg.seed, "page", page) < cfg.parallel_dev else "test"
            if en not in by_en or (s == "test" and by_en[en][0] == "dev"):
                by_en[en] = (s, xx)
        sets = {"dev": [], "test": []}
        for en, (s, xx) in by_en.items():
            sets[s].append((en, xx))
        out[lang] = {
            "dev": _cap(_shuffled(sets["dev"], cfg.seed, f"par-dev/{lang}"), cfg.max_parallel_dev),
            "test": _cap(_shuffled(sets["test"], cfg.seed, f"par-test/{lang}"), cfg.max_parallel_test),
        }
    tables = {lang: dict(out[lang]["test"]) for lang in cfg.languages}
    common = set.intersection(*(set(t) for t in tables.values())) if tables else set()
    nway = [(en,) + tuple(tables[lang][en] for lang in cfg.languages) for en in sorted(common)]
    return out, _shuffled(nway, cfg.seed, "nway")


def merge_parallel(par: dict, more: dict, cfg: BuildConfig) -> dict:
    """``par`` plus the pairs of ``more`` (same shape) whose sentences are new, shuffled and capped again;
    a sentence in both dev and test stays in test."""
    out = {}
    for lang in cfg.languages:
        taken: set[str] = set()
        merged = {}
        for s in ("test", "dev"):
            rows = []
            for e, x in par[lang][s] + more[lang][s]:
                if e not in taken and x not in taken:
                    taken.update((e, x))
                    rows.append((e, x))
            cap = cfg.max_parallel_test if s == "test" else cfg.max_parallel_dev
            merged[s] = _cap(_shuffled(rows, cfg.seed, f"par-{s}-merged/{lang}"), cap)
        out[lang] = merged
    return out


# ------------------------------------------------------------------------------------------ corpora

def corpora(items: dict[str, Item], split: dict[str, str], cfg: BuildConfig, held_out: set[str]):
    """``{lang: lines}``: English paragraphs of the English side; aligned translated paragraphs of the
    multilingual side whose English original is not in the English corpus."""
    ok = lambda s: len(s) >= MIN_LINE_CHARS and norm(s) not in held_out  # noqa: E731
    en_lines: list[str] = []
    seen: set[str] = set()
    for md5 in sorted(items):
        if split[md5] == "corpus-en":
            it = items[md5]
            for p in (it.english.short,) + it.english.paragraphs:
                if ok(p) and p not in seen:
                    seen.add(p)
                    en_lines.append(p)
    en_lines = _cap(_shuffled(en_lines, cfg.seed, "corpus/en"), cfg.max_corpus_lines)
    en_norm = {norm(p) for p in seen}  # everything English-side, also lines cut by the cap
    out = {"en": en_lines}
    for lang in cfg.languages:
        lines, seen_xx = [], set()
        for md5 in sorted(items):
            if split[md5] != "corpus-ml":
                continue
            for e, x in items[md5].aligned(lang) or ():
                if ok(x) and x not in seen_xx and norm(e) not in en_norm and e != x:
                    seen_xx.add(x)
                    lines.append(x)
        out[lang] = _cap(_shuffled(lines, cfg.seed, f"corpus/{lang}"), cfg.max_corpus_lines)
    return out


# ------------------------------------------------------------------------------------------ writing

def _text(s: str) -> str:
    return " ".join(s.split())  # tabs/newlines -> spaces (the layout has no quoting)


def _write_lines(path: Path, lines: list[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for ln in lines:
            f.write(ln + "\n")
    return len(lines)


def _write_tsv(path: Path, header: tuple[str, ...], rows) -> int:
    return _write_lines(path, ["\t".join(header)] + ["\t".join(_text(c) for c in r) for r in rows]) - 1


def build_key(cfg: BuildConfig, manifest: dict) -> str:
    """Same options + same input files (by SHA256) + same derivation code -> same key."""
    inputs = {role: f["sha256"] for role, f in sorted(manifest["files"].items()) if _uses(cfg, role)}
    code = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):  # the derivation code itself
        code.update(f.name.encode() + b"\0" + f.read_bytes())
    blob = json.dumps({"format": FORMAT, "config": to_dict(cfg), "inputs": inputs, "code": code.hexdigest(),
                       "signature_verified": manifest.get("signature_verified") is True}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _uses(cfg: BuildConfig, role: str) -> bool:
    """Whether the build of ``cfg`` reads the manifest file of ``role``."""
    from metaxlm.data.fetch import DOC_PACKAGES
    from metaxlm.data.sizes import get_size

    if role in ("packages", "translation-en") or role[len("translation-"):] in cfg.languages:
        return True
    debs = tuple(DOC_PACKAGES) + get_size(cfg.size).stream_packages(cfg.languages)
    return role.startswith("deb-") and role[4:] in debs


def _config_dict(cfg: BuildConfig) -> dict:
    """The config as recorded in stats.json (``size`` only when not the default, so the default build's
    files stay those of earlier versions)."""
    d = to_dict(cfg)
    if d.get("size") == "default":
        d.pop("size")
    return d


def is_complete(out: Path, key: str) -> bool:
    st = out / "stats.json"
    if not st.is_file():
        return False
    try:
        stats = json.loads(st.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return stats.get("build_key") == key and all((out / rel).is_file() for rel in stats.get("files", {}))


def _read_stats(out: Path) -> dict | None:
    """``out/stats.json`` when it is a metaxlm benchmark's (a dict with a build key and a file list)."""
    try:
        stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(stats, dict) or not isinstance(stats.get("build_key"), str)
            or not isinstance(stats.get("files"), dict)):
        return None
    return stats


def own_files(stats: dict) -> set[str]:
    """Relative paths of every file the build that wrote ``stats`` wrote."""
    return set(BUILD_FILES) | {str(k) for k in stats["files"]}


def _foreign(out: Path, own: set[str]) -> list[str]:
    """Entries under ``out`` the build did not write (links and special files included), sorted."""
    dirs = {q.as_posix() for rel in own for q in Path(rel).parents if str(q) != "."}
    foreign = []
    for d, subdirs, names in os.walk(out):
        base = Path(d).relative_to(out)
        for n in list(subdirs):
            rel = (base / n).as_posix()
            if os.path.islink(os.path.join(d, n)) or rel not in dirs:
                foreign.append(rel + "/")
                subdirs.remove(n)
        for n in names:
            rel = (base / n).as_posix()
            full = os.path.join(d, n)
            if rel not in own or os.path.islink(full) or not os.path.isfile(full):
                foreign.append(rel)
    return sorted(foreign)


def check_replaceable(out: Path) -> set[str]:
    """The files a build may remove from ``out`` before putting a new benchmark there.

    Empty when ``out`` does not exist or is an empty directory. A non-empty ``out`` must be a metaxlm
    benchmark (``stats.json`` with a build key) holding nothing but its own files; anything else is a
    UserError, so a build never deletes a file it did not write.
    """
    if not out.exists():
        return set()
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory: choose an empty or new --out directory")
    if not any(out.iterdir()):
        return set()
    stats = _read_stats(out)
    if stats is None:
        raise UserError(f"{out} exists and is not a metaxlm benchmark (no stats.json with a build key); "
                        "refusing to replace it: choose an empty or new --out directory")
    own = own_files(stats)
    foreign = _foreign(out, own)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise UserError(f"{out} is a metaxlm benchmark but also holds {len(foreign)} file(s) the build did not "
                        f"write ({shown}); refusing to replace it: choose an empty or new --out directory, "
                        "or move those files away")
    return own


def _remove_own(d: Path, own: set[str]) -> None:
    """Remove the listed files of ``d``, then its directories when empty (never a recursive delete)."""
    for rel in own:
        p = d / rel
        if p.is_file() and not p.is_symlink():
            p.unlink()
    subdirs = sorted({q for rel in own for q in Path(rel).parents if str(q) != "."},
                     key=lambda q: len(q.parts), reverse=True)
    for q in [*subdirs, Path(".")]:
        try:
            (d / q).rmdir()
        except OSError:
            pass  # not empty: something appeared that the build did not write; it stays


def build(cfg: BuildConfig, archive_root: Path, out: Path) -> Path:
    """Build the benchmark of ``cfg`` from the fetched files in ``archive_root`` into ``out``."""
    manifest = load_manifest(archive_root, cfg.release)
    missing = [lang for lang in cfg.languages if f"translation-{lang}" not in manifest["files"]]
    if missing:
        raise UserError(f"language {missing[0]!r} was not fetched: run `metaxlm data fetch --languages "
                        f"{','.join(cfg.languages)}`")
    from metaxlm.data.sizes import get_size
    absent = [p for p in get_size(cfg.size).stream_packages(cfg.languages) if f"deb-{p}" not in manifest["files"]]
    if absent:
        raise UserError(f"package {absent[0]} was not fetched: run `metaxlm data fetch --size {cfg.size} "
                        f"--languages {','.join(cfg.languages)}`")
    key = build_key(cfg, manifest)
    if out.is_symlink():
        out = out.resolve()  # build beside the directory the link points to; the link stays
    if is_complete(out, key):
        return out
    check_replaceable(out)  # before any work: refuse early
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.building-{os.getpid()}-{secrets.token_hex(4)}")
        tmp.mkdir()
    except OSError as e:
        raise UserError(f"cannot write the benchmark next to {out} ({e.strerror or e}): choose another "
                        "--out directory") from None
    try:  # tmp is new: it only ever holds what this build writes
        stats = _build_into(cfg, archive_root, manifest, tmp)
        stats["build_key"] = key
        atomic_write_json(tmp / "stats.json", stats)
        write_datacard(tmp / "datacard.md", stats, cfg)
        check_benchmark(tmp)  # layout, counts and leak guarantees of docs/benchmark.md
        own = check_replaceable(out)  # again: the directory may have changed during the build
        if out.exists():
            old = tmp.with_name(tmp.name + "-old")
            out.rename(old)
            try:
                tmp.rename(out)
            except BaseException:
                old.rename(out)
                raise
            _remove_own(old, own)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _build_into(cfg: BuildConfig, root: Path, manifest: dict, out: Path) -> dict:
    files: dict[str, int] = {}
    with progress.task("build benchmark", total=6) as t:
        items = load_items(root, manifest, cfg.languages)
        t.advance(1, step="descriptions", items=len(items))
        split = assign_splits(items, cfg)

        # topic
        topic, topic_xx = topic_sets(items, split, cfg)
        head = ("id", "label", "text")
        (out / "topic").mkdir(parents=True, exist_ok=True)
        (out / "topic/labels.json").write_text(json.dumps(LABELS) + "\n", encoding="utf-8")
        for name, rows in (("train", topic["train"]), ("dev", topic["dev"]), ("test-en", topic["test"])):
            files[f"topic/{name}.tsv"] = _write_tsv(out / f"topic/{name}.tsv", head, [r[:3] for r in rows])
        for lang in cfg.languages:
            files[f"topic/test-{lang}.tsv"] = _write_tsv(out / f"topic/test-{lang}.tsv", head,
                                                         [r[:3] for r in topic_xx[lang]])
        t.advance(1, step="topic")

        # parallel
        doc_roots = tuple((root / manifest["files"][f"deb-{d}"]["extracted"])
                          if f"deb-{d}" in manifest["files"] else None
                          for d in ("gnome-user-docs", "debian-handbook"))
        par, nway = parallel_sets(doc_roots, cfg)
        size = get_size(cfg.size)
        extra: dict = {}
        if size.name != "default":
            from metaxlm.data.large import Sources, libreoffice_sets, parse_jobs
            src = Sources(root, manifest)
            src.parse_missing(parse_jobs(size, cfg.languages))
        if size.libreoffice:
            lo_pairs, lo_spool, skipped = libreoffice_sets(src, size, cfg, unit)
            par = merge_parallel(par, lo_pairs, cfg)
            extra["libreoffice"] = {"pages_missing_in_translation": skipped,
                                    "aligned_pairs": {lang: {s: len(v) for s, v in lo_pairs[lang].items()}
                                                      for lang in cfg.languages}}
        for lang in cfg.languages:
            for s in ("dev", "test"):
                files[f"parallel/{lang}.{s}.tsv"] = _write_tsv(out / f"parallel/{lang}.{s}.tsv", ("en", lang),
                                                               par[lang][s])
        files["parallel/nway.tsv"] = _write_tsv(out / "parallel/nway.tsv", ("en",) + cfg.languages, nway)
        t.advance(1, step="parallel")

        # mining
        mining_counts = {}
        held: set[str] = set()
        for lang in cfg.languages:
            for s in ("dev", "test"):
                xx_rows, en_rows, gold = mining_sets(items, split, cfg, lang, s)
                base = f"mining/{lang}-en.{s}"
                files[f"{base}.{lang}"] = _write_lines(out / f"{base}.{lang}", [f"{i}\t{_text(x)}" for i, x in xx_rows])
                files[f"{base}.en"] = _write_lines(out / f"{base}.en", [f"{i}\t{_text(x)}" for i, x in en_rows])
                files[f"{base}.gold"] = _write_lines(out / f"{base}.gold", [f"{a}\t{b}" for a, b in gold])
                mining_counts[(lang, s)] = len(gold)
                held.update(norm(x) for _, x in xx_rows + en_rows)
        t.advance(1, step="mining")

        # everything held out, then the corpora without it
        for lang in cfg.languages:
            for s in ("dev", "test"):
                for e, x in par[lang][s]:
                    held.add(norm(e))
                    held.add(norm(x))
        for md5, s in split.items():
            if s in ("topic-test", "topic-dev"):
                it = items[md5]
                descs = [it.english] + [it.translations[lang] for lang in cfg.languages if lang in it.translations]
                for d in descs:
                    held.update(norm(p) for p in (d.short,) + d.paragraphs)
                    held.add(norm(d.text()))
        for row in nway:
            held.update(norm(c) for c in row)
        held.discard("")
        corp = corpora(items, split, cfg, held)
        for lang, lines in corp.items():
            files[f"corpus/{lang}.txt"] = _write_lines(out / f"corpus/{lang}.txt", [_text(x) for x in lines])
        if size.name != "default":
            from metaxlm.data.large import write_large_corpora
            lines, per_source = write_large_corpora(src, size, cfg, out, held,
                                                    lo_spool if size.libreoffice else {},
                                                    {lang: [_text(x) for x in v] for lang, v in corp.items()})
            for lang, n in lines.items():
                files[f"corpus/{lang}.txt"] = n
            extra["corpus_sources"] = {lang: {"descriptions": {"lines": len(corp[lang]),
                                                               "words": sum(len(x.split()) for x in corp[lang]),
                                                               "chars": sum(len(_text(x)) for x in corp[lang])},
                                              **per_source[lang]} for lang in corp}
        t.advance(1, step="corpora")

    counts = {"en": {"corpus": files["corpus/en.txt"], "topic-train": files["topic/train.tsv"],
                     "topic-dev": files["topic/dev.tsv"], "topic-test": files["topic/test-en.tsv"]}}
    for lang in cfg.languages:
        counts[lang] = {
            "corpus": files[f"corpus/{lang}.txt"], "topic-test": files[f"topic/test-{lang}.tsv"],
            "parallel-dev": files[f"parallel/{lang}.dev.tsv"], "parallel-test": files[f"parallel/{lang}.test.tsv"],
            "nway": files["parallel/nway.tsv"],
            "mining-dev-gold": mining_counts[(lang, "dev")], "mining-test-gold": mining_counts[(lang, "test")],
        }
    label_counts = {s: {lab: sum(1 for r in topic[s] if r[1] == lab) for lab in LABELS}
                    for s in ("train", "dev", "test")}
    return {
        **({"size": cfg.size, **extra} if cfg.size != "default" else {}),
        "format": FORMAT,
        "name": f"debian-{cfg.release}",
        "languages": ["en", *cfg.languages],
        "seed": cfg.seed,
        "release": cfg.release,
        "sources": {
            "mirror": manifest["mirror"], "release_version": manifest.get("version"),
            "release_date": manifest.get("date"), "release_file": manifest.get("release_file"),
            "signature_verified": manifest.get("signature_verified") is True,
            "allow_unsigned": bool(manifest.get("allow_unsigned", False)),
            "files": {role: {k: v for k, v in f.items() if k != "extracted"}
                      for role, f in sorted(manifest["files"].items()) if _uses(cfg, role)},
        },
        "config": _config_dict(cfg),
        "labels": LABELS,
        "topic_label_counts": label_counts,
        "counts": counts,
        "files": dict(sorted(files.items())),
    }


# ------------------------------------------------------------------------------------------ API

def build_benchmark(out: str | Path | None = None, languages=None, release: str = "bookworm",
                    mirror: str | None = None, cache: str | Path | None = None, seed: int = 0,
                    allow_unsigned: bool = False, keyring: str | Path | None = None, size: str = "default",
                    **caps) -> Path:
    """Fetch what is missing, build into ``out`` (default: the default benchmark dir), return it.

    ``size`` names the sources and caps (:data:`metaxlm.data.sizes.SIZES`); ``caps`` are
    :class:`BuildConfig` fields (e.g. ``max_corpus_lines=20000``) overriding the size's. Returns at once when
    the same build (same options and inputs) is already complete there. ``allow_unsigned`` and
    ``keyring`` are :class:`~metaxlm.data.fetch.FetchConfig` fields (the release index's signature).
    """
    from metaxlm.config import build as build_config

    sz = get_size(size)
    cfg = build_config(BuildConfig, {"languages": list(L.parse_list(languages)), "release": release,
                                     "seed": seed, **sz.caps, **caps, "size": size}, where="build_benchmark")
    signing = {"allow_unsigned": bool(allow_unsigned)}
    if keyring is not None:
        signing["keyring"] = Path(keyring).expanduser()
    root = fetch(FetchConfig(languages=cfg.languages, release=release, mirror=mirror,
                             cache=Path(cache) if cache else None,
                             stream_packages=sz.stream_packages(cfg.languages), **signing))
    return build(cfg, root, Path(out).expanduser() if out else paths.default_benchmark_dir())
