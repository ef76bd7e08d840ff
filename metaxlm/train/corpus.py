"""Per-language pretraining corpora: text files or Hugging Face datasets, read as streams of lines.

A corpus is a directory holding ``<lang>.txt``, ``.txt.gz``, ``.txt.xz`` or ``.txt.zst`` files
(``<lang>`` an ISO 639-1 code, other files are ignored) or a mapping ``{lang: source}``
(``--corpus de=path/de.txt.zst``, ``--corpus de=hf:NAME[:CONFIG][:SPLIT][#COLUMN]``). A source is
never read into memory: :func:`iter_line_chunks` yields it ~8 MB at a time as lists of lines
(split as ``str.splitlines``, stripped, empty lines skipped; a Hugging Face row holding several
lines gives several lines).

Bad bytes: files are decoded as strict UTF-8; the first invalid byte is a
:class:`~metaxlm.errors.UserError` naming ``file:line`` (nothing is skipped silently). A missing or
empty source is a UserError too.

:func:`scan` reads a source once (SHA256 of the stored bytes, line count) and remembers the answer
under the cache directory, keyed by the file's path, size, mtime and inode, so a later run reads
nothing to know it. The validation slice (:func:`val_indices`) is a fixed set of line numbers per
language (``val_fraction`` of the lines, at least one, at most ``val_max_lines``) drawn by a
generator independent of the training seed: every run on the same corpus holds out the same lines.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Union

import numpy as np

from metaxlm.errors import UserError

LANG_RE = re.compile(r"^[a-z]{2}$")
VAL_SEED = 20240611  # fixed: the held-out lines do not depend on the run's seed
SUFFIXES = (".txt.gz", ".txt.xz", ".txt.zst", ".txt")
CHUNK_BYTES = 8 << 20
SCAN_FORMAT = 1


@dataclass(frozen=True)
class HFSource:
    """``hf:NAME[:CONFIG][:SPLIT][#COLUMN]``: a Hugging Face dataset (hub id, or a local directory
    written by ``save_to_disk`` / holding data files), streamed; SPLIT defaults to ``train``,
    COLUMN to ``text``."""

    name: str
    config: str | None = None
    split: str = "train"
    column: str = "text"

    def __str__(self) -> str:
        s = "hf:" + self.name + (f":{self.config}" if self.config else "")
        s += f":{self.split}" if (self.split != "train" or self.config) else ""
        return s + (f"#{self.column}" if self.column != "text" else "")


Source = Union[Path, HFSource]
CorpusSpec = Union[str, Path, Mapping[str, Union[str, Path]], None]


def parse_source(value: str | Path) -> Source:
    text = str(value)
    if not text.startswith("hf:"):
        return Path(value).expanduser().absolute()
    body, _, column = text[3:].partition("#")
    parts = body.split(":")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts[1:]):
        raise UserError(f"corpus source {text!r}: write hf:NAME[:CONFIG][:SPLIT][#COLUMN], e.g. "
                        "hf:wikimedia/wikipedia:20231101.de:train#text")
    name = parts[0]
    local = Path(name).expanduser()
    if local.exists():
        name = str(local.absolute())
    return HFSource(name, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else "train",
                    column or "text")


@dataclass(frozen=True)
class CorpusFiles:
    files: dict[str, Source]  # lang -> source, sorted by lang

    @property
    def languages(self) -> list[str]:
        return list(self.files)


def default_corpus_dir() -> Path:
    from metaxlm.paths import default_benchmark_dir

    return default_benchmark_dir() / "corpus"


def _check_lang(lang: str, where: str) -> None:
    if not LANG_RE.match(lang):
        raise UserError(f"{where}: {lang!r} is not an ISO 639-1 language code (two lowercase letters, e.g. de)")


def resolve_files(spec: CorpusSpec, languages=None) -> CorpusFiles:
    """Find the corpus sources (no reading yet); ``languages`` restricts and checks them."""
    files: dict[str, Source] = {}
    if spec is None:
        d = default_corpus_dir()
        if not d.is_dir():
            raise UserError(f"no corpus given and the default benchmark has none at {d}: run "
                            "`metaxlm data build` first, or pass --corpus DIR or --corpus LANG=PATH")
        spec = d
    if isinstance(spec, Mapping):
        if not spec:
            raise UserError("corpus: the mapping of languages to files is empty")
        for lang, value in spec.items():
            _check_lang(str(lang), "corpus")
            src = parse_source(value)
            if isinstance(src, Path) and not src.is_file():
                raise UserError(f"corpus file for {lang!r} does not exist: {src}")
            files[str(lang)] = src
    else:
        d = Path(spec).expanduser().absolute()
        if not d.exists():
            raise UserError(f"corpus directory {d} does not exist")
        if not d.is_dir():
            raise UserError(f"corpus {d} is a file: give a directory of <lang>.txt files, or LANG={d}")
        for p in sorted(d.iterdir()):
            for suffix in SUFFIXES:
                if p.name.endswith(suffix) and p.is_file():
                    lang = p.name[: -len(suffix)]
                    if LANG_RE.match(lang):
                        if lang in files:
                            raise UserError(f"corpus directory {d} has both {files[lang].name} and {p.name}; "
                                            "keep one")
                        files[lang] = p
                    break
        if not files:
            raise UserError(f"corpus directory {d} holds no <lang>.txt (.gz, .xz, .zst) files")
    if languages:
        missing = [lang for lang in languages if lang not in files]
        if missing:
            raise UserError(f"language {missing[0]!r} has no corpus file (corpus languages: "
                            f"{', '.join(sorted(files))})")
        files = {lang: files[lang] for lang in languages}
    return CorpusFiles(dict(sorted(files.items())))


# -- reading ---------------------------------------------------------------------------------------


class _HashingReader:
    """A binary file that hashes every byte read from it (the stored, possibly compressed, bytes)."""

    def __init__(self, f, hasher):
        self._f, self._h = f, hasher
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self._h.update(b)
        self.bytes_read += len(b)
        return b

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()


def _decompressing(path: Path, raw):
    name = path.name
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw, mode="rb")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise UserError(f"{path}: reading .zst files needs the zstandard package (pip install zstandard)") from None
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def _split(text: str) -> list[str]:
    return [s for s in (ln.strip() for ln in text.splitlines()) if s]


def _file_chunks(path: Path, hasher=None, progress=None) -> Iterator[list[str]]:
    hasher = hasher if hasher is not None else _NullHash()
    try:
        raw_file = open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    raw = _HashingReader(raw_file, hasher)
    f = _decompressing(path, raw)
    line_no, tail, first, done = 0, b"", True, 0
    try:
        while True:
            try:
                buf = f.read(CHUNK_BYTES)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise UserError(f"corpus file {path} is not a valid compressed file ({e})") from None
            except Exception as e:  # zstandard.ZstdError and friends
                if type(e).__module__.startswith("zstandard"):
                    raise UserError(f"corpus file {path} is not a valid .zst file ({e})") from None
                raise
            data = tail + buf
            if buf:
                cut = data.rfind(b"\n") + 1
                part, tail = (data[:cut], data[cut:]) if cut else (b"", data)
            else:
                part, tail = data, b""
            if part:
                try:
                    text = part.decode("utf-8")
                except UnicodeDecodeError as e:
                    at = line_no + part.count(b"\n", 0, e.start) + 1
                    raise UserError(f"{path}:{at}: invalid UTF-8 byte 0x{part[e.start]:02x}; corpus files must "
                                    "be UTF-8 (fix or remove that line)") from None
                if first and text.startswith("\ufeff"):
                    text = text[1:]
                first = False
                line_no += part.count(b"\n")
                lines = _split(text)
                if progress is not None:
                    progress(raw.bytes_read - done)
                    done = raw.bytes_read
                if lines:
                    yield lines
            if not buf:
                break
    finally:
        f.close()
        raw_file.close()


class _NullHash:
    def update(self, b: bytes) -> None:
        pass


def import_datasets(what: str):
    """The ``datasets`` package, quiet; a UserError naming ``what`` needs it and the pip command."""
    try:
        import datasets
    except ImportError:
        raise UserError(f"{what} needs the `datasets` package: pip install 'metaxlm[hub]'") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


def _load_hf(src: HFSource):
    datasets = import_datasets(f"corpus source {src}: a Hugging Face source")
    local = Path(src.name)
    try:
        if local.is_dir() and ((local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file()):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if src.split not in ds:
                    raise UserError(f"corpus source {src}: split {src.split!r} does not exist "
                                    f"(splits: {', '.join(ds)})")
                ds = ds[src.split]
        else:
            ds = datasets.load_dataset(src.name, src.config, split=src.split, streaming=True)
    except UserError:
        raise
    except Exception as e:  # offline hub, unknown name or config, bad files: all one clear line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"corpus source {src} cannot be loaded ({type(e).__name__}: {first}); check the name, "
                        "config and split, and that the hub is reachable (or give a dataset saved with "
                        "save_to_disk)") from None
    names = getattr(ds, "column_names", None) or list((getattr(ds, "features", None) or {}).keys())
    if names and src.column not in names:
        raise UserError(f"corpus source {src}: no column {src.column!r} (columns: {', '.join(names)}); "
                        "name it with #COLUMN")
    return ds


def _hf_chunks(src: HFSource, hasher=None, progress=None) -> Iterator[list[str]]:
    ds = _load_hf(src)
    lines: list[str] = []
    size = 0
    for row in ds:
        value = row.get(src.column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise UserError(f"corpus source {src}: column {src.column!r} holds {type(value).__name__}, not text")
        if hasher is not None:
            hasher.update(value.encode("utf-8") + b"\n")
        lines.extend(_split(value))
        size += len(value)
        if size >= CHUNK_BYTES:
            if progress is not None:
                progress(size)
            yield lines
            lines, size = [], 0
    if progress is not None and size:
        progress(size)
    if lines:
        yield lines


def iter_line_chunks(src: Source, hasher=None, progress=None) -> Iterator[list[str]]:
    """The non-empty stripped lines of ``src`` in lists of ~8 MB; ``hasher`` sees the stored bytes
    (a file) or the rows' text (a dataset); ``progress(n)`` is called with bytes read."""
    if isinstance(src, HFSource):
        return _hf_chunks(src, hasher, progress)
    return _file_chunks(src, hasher, progress)


def read_lines(path: Source) -> list[str]:
    """All non-empty stripped lines of a (small) source; bad UTF-8 is a UserError with file:line."""
    lines = [ln for chunk in iter_line_chunks(parse_source(path) if isinstance(path, str) else path)
             for ln in chunk]
    if not lines:
        raise UserError(f"corpus file {path} is empty (no non-blank lines)")
    return lines


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- scan: identity and line count, remembered by stat ---------------------------------------------


@dataclass(frozen=True)
class ScanInfo:
    source: str
    sha256: str  # of the stored file bytes (files) or of the rows' text (datasets)
    n_lines: int  # non-empty lines
    n_bytes: int  # stored bytes (files) or text bytes (datasets)


def stat_key(src: Source) -> dict:
    """What identifies a source's version without reading it: a file's path, size, mtime and inode;
    a local dataset directory's file list with sizes and mtimes; a hub dataset's spec (hub datasets
    are taken as immutable: delete ``$METAXLM_CACHE/scans`` to see a new version)."""
    if isinstance(src, HFSource):
        local = Path(src.name)
        files = []
        if local.is_dir():
            for p in sorted(local.rglob("*")):
                if p.is_file():
                    st = p.stat()
                    files.append([str(p.relative_to(local)), st.st_size, st.st_mtime_ns])
        return {"spec": str(src), "files": files}
    st = os.stat(src)
    return {"path": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _memo_path(src: Source) -> Path:
    from metaxlm.paths import cache_dir

    key = hashlib.sha256(str(src).encode()).hexdigest()[:24]
    return cache_dir() / "scans" / f"{key}.json"


def remembered(src: Source) -> ScanInfo | None:
    """The scan of ``src`` remembered for its current stat, or None (never scanned, or changed since)."""
    try:
        rec = json.loads(_memo_path(src).read_text(encoding="utf-8"))
        if rec.get("format") == SCAN_FORMAT and rec.get("stat") == stat_key(src):
            return ScanInfo(str(src), rec["sha256"], int(rec["n_lines"]), int(rec["n_bytes"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def scan(src: Source, lang: str = "?", progress=None) -> ScanInfo:
    """SHA256 and line count of ``src``; a file's answer is remembered until it changes."""
    from metaxlm import rundir

    known = remembered(src)
    if known is not None:
        return known
    memo = _memo_path(src)
    key = stat_key(src)
    h = hashlib.sha256()
    n_lines, n_bytes = 0, 0

    def count(n: int) -> None:
        nonlocal n_bytes
        n_bytes += n
        if progress is not None:
            progress(n)

    for chunk in iter_line_chunks(src, h, count):
        n_lines += len(chunk)
    if n_lines == 0:
        raise UserError(f"corpus file {src} is empty (no non-blank lines)")
    if n_lines < 2:
        raise UserError(f"corpus file {src} has only {n_lines} line; need at least 2 (one is held out for "
                        "validation)")
    info = ScanInfo(str(src), h.hexdigest(), n_lines, n_bytes if isinstance(src, HFSource) else os.stat(src).st_size)
    if stat_key(src) != key:
        raise UserError(f"corpus file {src} changed while it was being read; run again once it is complete")
    rundir.atomic_write_text(memo, json.dumps({"format": SCAN_FORMAT, "stat": key, "sha256": info.sha256,
                                               "n_lines": n_lines, "n_bytes": info.n_bytes, "lang": lang}) + "\n")
    return info


def val_indices(lang: str, n: int, val_fraction: float, val_max_lines: int) -> np.ndarray:
    """Sorted line numbers (among the non-empty lines) held out for validation."""
    n_val = int(min(val_max_lines, max(1, round(n * val_fraction)), n - 1))
    rng = np.random.default_rng([VAL_SEED, int.from_bytes(lang.encode(), "little")])
    return np.sort(rng.choice(n, size=n_val, replace=False))


# -- small corpora in memory (tokenizer training on small files, tests) ----------------------------


@dataclass
class LangText:
    lang: str
    path: Source
    train: list[str]
    val: list[str]


def split_lines(lang: str, path: Source, lines: list[str], val_fraction: float, val_max_lines: int) -> LangText:
    n = len(lines)
    if n < 2:
        raise UserError(f"corpus file {path} has only {n} line; need at least 2 (one is held out for validation)")
    val_idx = set(val_indices(lang, n, val_fraction, val_max_lines).tolist())
    train = [ln for i, ln in enumerate(lines) if i not in val_idx]
    val = [ln for i, ln in enumerate(lines) if i in val_idx]
    return LangText(lang, path, train, val)


def load_corpus(files: CorpusFiles, val_fraction: float = 0.02, val_max_lines: int = 200) -> dict[str, LangText]:
    """Read and split every language into memory (for small corpora only)."""
    return {lang: split_lines(lang, p, read_lines(p), val_fraction, val_max_lines) for lang, p in files.files.items()}


def parse_corpus_option(values: list[str] | None):
    """CLI ``--corpus``: one directory, or LANG=SOURCE pairs (repeatable)."""
    if not values:
        return None
    pairs = [v for v in values if "=" in v]
    if pairs and len(pairs) != len(values):
        raise UserError("--corpus: give either one directory or LANG=PATH pairs, not both")
    if not pairs:
        if len(values) > 1:
            raise UserError("--corpus: give one directory, or LANG=PATH pairs")
        return values[0]
    out: dict[str, str] = {}
    for v in pairs:
        lang, _, path = v.partition("=")
        lang = lang.strip()
        _check_lang(lang, "--corpus")
        if lang in out:
            raise UserError(f"--corpus: language {lang!r} given twice")
        if not path:
            raise UserError(f"--corpus {v}: missing path after '='")
        out[lang] = path
    return out
