"""What ``--size large`` adds to a build (:mod:`metaxlm.data.sizes`): LibreOffice-help parallel sets and
the documentation corpora, streamed package by package.

Text cache: each package's parsed text is stored once under ``<archive cache>/text/`` keyed by the
package's SHA256 and the parser code (``<kind>-<key>.jsonl.gz``, written atomically; for HTML the key
also covers :data:`HTML_ROOTS`), so a rebuild with the same inputs reads only those files. Packages not
cached yet are parsed first in :data:`PARSE_WORKERS` processes (:meth:`Sources.parse_missing`); the
build then reads every package from the cache in its fixed order, so the output does not depend on it. Memory holds one package member, one cached text file's
current record, the held-out sentences, and 8-byte hashes of the corpus lines written (for
de-duplication).

Leak rules: LibreOffice pages are split by page (dev / test / training pool); training-pool pages feed
the target-language corpora only (never ``corpus/en.txt``, so no hidden English-target pairs). An
English man page goes to ``corpus/en.txt`` only when no fetched translation of it exists. Every
line of every corpus whose normalized text is held out (parallel, mining, topic dev/test) is dropped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

from metaxlm import progress
from metaxlm.data import languages as L
from metaxlm.data.descriptions import norm
from metaxlm.data.docs import keep_pair
from metaxlm.data.sizes import Size, lo_package, man_packages
from metaxlm.errors import UserError

TEXT_FORMAT = 1
# where HTML documentation is read inside a package (Qt and cppreference install theirs outside /usr/share/doc)
HTML_ROOTS = ("usr/share/doc/", "usr/share/qt5/doc/", "usr/share/cppreference/doc/html/en/")
PARSE_WORKERS = 2   # processes parsing packages whose text is not cached yet
MIN_CHARS = 12
MIN_WORDS = 4
MIN_LETTERS = 0.5
CJK_LANGS = ("ja", "zh", "ko")


# ------------------------------------------------------------------------------------- text cache

def _code_hash(*modules: str, salt: str = "") -> str:
    h = hashlib.sha256(str(TEXT_FORMAT).encode())
    for m in modules:
        h.update((Path(__file__).parent / f"{m}.py").read_bytes())
    h.update(salt.encode())
    return h.hexdigest()[:16]


def cache_path(root: Path, sha256: str, kind: str) -> Path:
    """The text-cache file of a package parsed as ``kind`` by this code."""
    _, modules, salt = PARSERS[kind]
    return root / "text" / f"{kind}-{sha256[:16]}-{_code_hash(*modules, salt=salt)}.jsonl.gz"


def cached_records(root: Path, deb: Path, sha256: str, kind: str) -> Iterator[list]:
    """Records of parsing ``deb`` as ``kind``, from ``<root>/text/`` when this package was parsed by this
    code before; else parsed (one file at a time) and written to the cache as they stream past."""
    parse = PARSERS[kind][0]
    path = cache_path(root, sha256, kind)
    d = path.parent
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)
        return
    d.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3) as f:
            for rec in parse(deb):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                yield rec
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _lo_records(deb: Path) -> Iterator[list]:
    from metaxlm.data.libreoffice import iter_pages
    for loc, page, blocks in iter_pages(deb):
        yield [loc, page, blocks]


def _man_records(deb: Path) -> Iterator[list]:
    from metaxlm.data.manpages import iter_man_pages
    for loc, key, paras in iter_man_pages(deb):
        yield [loc, key, paras]


def _html_records(deb: Path) -> Iterator[list]:
    from metaxlm.data.debstream import iter_deb_files
    from metaxlm.data.htmltext import html_paragraphs
    for rel, data in iter_deb_files(deb, HTML_ROOTS, (".html", ".htm")):
        yield [rel, html_paragraphs(data.decode("utf-8", errors="replace"))]


# kind -> (parser, modules whose code keys the cache, extra key text)
PARSERS = {"lo": (_lo_records, ("libreoffice", "debstream"), ""),
           "man": (_man_records, ("manpages", "debstream"), ""),
           "html": (_html_records, ("htmltext", "debstream"), repr(HTML_ROOTS))}


def _parse_to_cache(root: Path, deb: Path, sha256: str, kind: str) -> None:
    for _ in cached_records(root, deb, sha256, kind):
        pass


class Sources:
    """The fetched stream packages of a manifest: path and SHA256 by package name."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.files = manifest["files"]

    def deb(self, name: str) -> tuple[Path, str]:
        f = self.files.get(f"deb-{name}")
        if f is None:
            raise UserError(f"package {name} was not fetched: run `metaxlm data fetch --size large`")
        return self.root / f["path"], f["sha256"]

    def records(self, name: str, kind: str) -> Iterator[list]:
        deb, sha = self.deb(name)
        return cached_records(self.root, deb, sha, kind)

    def parse_missing(self, jobs: list[tuple[str, str]], workers: int | None = None) -> None:
        """Parse the ``(package, kind)`` jobs whose text is not cached yet into the text cache, largest
        package first, in ``workers`` processes. The records (hence the build) are the same as parsing
        them one by one in this process: the build then reads every package from the cache in order."""
        todo = []
        for name, kind in dict.fromkeys(jobs):
            deb, sha = self.deb(name)
            if not cache_path(self.root, sha, kind).is_file():
                todo.append((deb.stat().st_size, name, deb, sha, kind))
        todo.sort(key=lambda j: (-j[0], j[1]))
        workers = PARSE_WORKERS if workers is None else workers
        if len(todo) < 2 or workers < 2:
            for _, _, deb, sha, kind in todo:
                _parse_to_cache(self.root, deb, sha, kind)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with progress.task("parsing documentation packages", total=len(todo)) as t, \
                ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as ex:
            futs = {ex.submit(_parse_to_cache, self.root, deb, sha, kind): name for _, name, deb, sha, kind in todo}
            for f in futs:
                f.result()          # a worker's UserError is raised here, naming the package
                t.advance(1, step=futs[f])


def parse_jobs(size: Size, languages: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(package, kind)`` of every stream package ``size`` reads for ``languages``."""
    jobs = []
    if size.libreoffice:
        jobs += [(lo_package(lang), "lo") for lang in ("en",) + tuple(languages)]
    if size.manpages:
        jobs += [(p, "man") for lang in languages for p in man_packages(lang)]
        jobs += [(p, "man") for p in size.english_man]
    return jobs + [(p, "html") for p in size.english_html]


# ------------------------------------------------------------------------------------- LibreOffice

def libreoffice_sets(src: Sources, size: Size, cfg, unit) -> tuple[dict, dict, dict]:
    """``(pairs, spool, skipped)``: ``pairs[lang]["dev"|"test"]`` = ``[(en, xx)]`` aligned by page and
    paragraph id, ``spool[lang]`` = translated paragraphs of training-pool pages (for the corpora),
    ``skipped[lang]`` = pages missing in the translation."""
    from metaxlm.data.libreoffice import align_page

    en_pkg = lo_package("en")
    english: dict[str, dict[str, str]] = {}
    for loc, page, blocks in src.records(en_pkg, "lo"):
        english.setdefault(page, blocks)
    if not english:
        raise UserError(f"{en_pkg} holds no help page under usr/share/libreoffice/help/; the package is not "
                        "the LibreOffice help")
    pairs, spool, skipped = {}, {}, {}
    for lang in cfg.languages:
        pkg = lo_package(lang)
        sets, lines, seen = {"dev": [], "test": []}, [], set()
        for loc, page, blocks in src.records(pkg, "lo"):
            if L.normalize(loc) != lang or page in seen:
                continue
            seen.add(page)
            en = english.get(page)
            if en is None:
                continue
            u = unit(cfg.seed, "lo-page", page)
            split = "dev" if u < size.lo_dev else "test" if u < size.lo_dev + size.lo_test else "train"
            aligned = align_page(page, en, blocks, pkg)
            if split == "train":
                lines += [x for _, _, x in aligned]
            else:
                sets[split] += [(e, x) for _, e, x in aligned if keep_pair(e, x)]
        skipped[lang] = len(set(english) - seen)
        pairs[lang], spool[lang] = sets, lines
    return pairs, spool, skipped


# ------------------------------------------------------------------------------------- corpora

def _letters(s: str) -> float:
    return sum(ch.isalpha() for ch in s) / max(1, len(s))


def good_line(text: str, lang: str) -> bool:
    """A prose line for a corpus: long enough, enough words (characters for CJK), mostly letters."""
    if len(text) < MIN_CHARS or _letters(text) < MIN_LETTERS:
        return False
    return lang in CJK_LANGS or len(text.split()) >= MIN_WORDS


class CorpusWriter:
    """Appends de-duplicated, leak-filtered lines to one corpus file and counts them per source."""

    def __init__(self, path: Path, lang: str, held: set[str], existing: list[str]):
        self.path, self.lang, self.held = path, lang, held
        self.seen = {self._h(x) for x in existing}
        self.counts: dict[str, dict[str, int]] = {}
        self.f = open(path, "a", encoding="utf-8", newline="\n")
        self.n = len(existing)

    @staticmethod
    def _h(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()

    def add(self, source: str, text: str) -> None:
        text = " ".join(text.split())
        c = self.counts.setdefault(source, {"lines": 0, "words": 0, "chars": 0, "dropped_held_out": 0})
        if not good_line(text, self.lang):
            return
        h = self._h(text)
        if h in self.seen:
            return
        if norm(text) in self.held:
            c["dropped_held_out"] += 1
            return
        self.seen.add(h)
        self.f.write(text + "\n")
        self.n += 1
        c["lines"] += 1
        c["words"] += len(text.split())
        c["chars"] += len(text)

    def close(self) -> int:
        self.f.close()
        return self.n


def write_large_corpora(src: Sources, size: Size, cfg, out: Path, held: set[str], lo_spool: dict,
                        base: dict[str, list[str]]) -> tuple[dict, dict]:
    """Append the documentation corpora to ``out/corpus/<lang>.txt`` (already holding ``base[lang]``).
    Returns ``(line counts, per-source counts)``."""
    writers = {lang: CorpusWriter(out / f"corpus/{lang}.txt", lang, held, base[lang])
               for lang in ("en",) + cfg.languages}
    translated: set[str] = set()
    steps = len(cfg.languages) * (2 if size.manpages else 0) + len(size.english_man) + len(size.english_html)
    with progress.task("documentation corpora", total=max(1, steps)) as t:
        for lang in cfg.languages:
            for x in lo_spool.get(lang, ()):
                writers[lang].add("libreoffice-help", x)
        if size.manpages:
            for lang in cfg.languages:
                for pkg in man_packages(lang):
                    for loc, key, paras in src.records(pkg, "man"):
                        if loc and L.normalize(loc) == lang:
                            translated.add(key)
                            for p in paras:
                                writers[lang].add(pkg, p)
                    t.advance(1, step=pkg)
            for pkg in size.english_man:
                for loc, key, paras in src.records(pkg, "man"):
                    if not loc and key not in translated:
                        for p in paras:
                            writers["en"].add(pkg, p)
                t.advance(1, step=pkg)
        for pkg in size.english_html:
            for rel, paras in src.records(pkg, "html"):
                for p in paras:
                    writers["en"].add(pkg, p)
            t.advance(1, step=pkg)
    lines = {lang: w.close() for lang, w in writers.items()}
    return lines, {lang: w.counts for lang, w in writers.items()}
