"""Per-language pretraining corpora: plain-text files, one document or paragraph per line.

A corpus is given as a directory holding ``<lang>.txt`` or ``<lang>.txt.gz`` files (``en.txt``,
``de.txt.gz``, ...; ``<lang>`` an ISO 639-1 code, other files are ignored) or as a mapping
``{lang: path}`` (``--corpus de=path/de.txt``). Empty lines are skipped.

Bad bytes: every file is decoded as strict UTF-8 up front; the first invalid byte is reported as
a :class:`~metaxlm.errors.UserError` naming ``file:line`` (nothing is skipped silently and nothing is
written before the check). A missing or empty file is also a UserError.

Validation slice: a fixed set of lines per language (``val_fraction`` of the lines, at least one,
at most ``val_max_lines``) chosen by a fixed generator independent of the training seed, so every
run on the same corpus holds out the same lines.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from metaxlm.errors import UserError

LANG_RE = re.compile(r"^[a-z]{2}$")
VAL_SEED = 20240611  # fixed: the held-out lines do not depend on the run's seed

CorpusSpec = Union[str, Path, Mapping[str, Union[str, Path]], None]


@dataclass(frozen=True)
class CorpusFiles:
    files: dict[str, Path]  # lang -> file, sorted by lang

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
    """Find the corpus files (no reading yet); ``languages`` restricts and checks them."""
    files: dict[str, Path] = {}
    if spec is None:
        d = default_corpus_dir()
        if not d.is_dir():
            raise UserError(f"no corpus given and the default benchmark has none at {d}: run "
                            "`metaxlm data build` first, or pass --corpus DIR or --corpus LANG=PATH")
        spec = d
    if isinstance(spec, Mapping):
        if not spec:
            raise UserError("corpus: the mapping of languages to files is empty")
        for lang, path in spec.items():
            _check_lang(str(lang), "corpus")
            p = Path(path).expanduser()
            if not p.is_file():
                raise UserError(f"corpus file for {lang!r} does not exist: {p}")
            files[str(lang)] = p
    else:
        d = Path(spec).expanduser()
        if not d.exists():
            raise UserError(f"corpus directory {d} does not exist")
        if not d.is_dir():
            raise UserError(f"corpus {d} is a file: give a directory of <lang>.txt files, or LANG={d}")
        for p in sorted(d.iterdir()):
            name = p.name
            for suffix in (".txt.gz", ".txt"):
                if name.endswith(suffix) and p.is_file():
                    lang = name[: -len(suffix)]
                    if LANG_RE.match(lang):
                        if lang in files:
                            raise UserError(f"corpus directory {d} has both {files[lang].name} and {name}; keep one")
                        files[lang] = p
                    break
        if not files:
            raise UserError(f"corpus directory {d} holds no <lang>.txt or <lang>.txt.gz files")
    if languages:
        missing = [lang for lang in languages if lang not in files]
        if missing:
            raise UserError(f"language {missing[0]!r} has no corpus file (corpus languages: "
                            f"{', '.join(sorted(files))})")
        files = {lang: files[lang] for lang in languages}
    return CorpusFiles(dict(sorted(files.items())))


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a .txt/.txt.gz file; bad UTF-8 is a UserError with file:line."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    except (gzip.BadGzipFile, EOFError) as e:
        raise UserError(f"corpus file {path} is not a valid gzip file ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: invalid UTF-8 byte 0x{raw[e.start]:02x}; corpus files must be "
                        "UTF-8 (fix or remove that line)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise UserError(f"corpus file {path} is empty (no non-blank lines)")
    return lines


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class LangText:
    lang: str
    path: Path
    train: list[str]
    val: list[str]


def split_lines(lang: str, path: Path, lines: list[str], val_fraction: float, val_max_lines: int) -> LangText:
    n = len(lines)
    if n < 2:
        raise UserError(f"corpus file {path} has only {n} line; need at least 2 (one is held out for validation)")
    n_val = int(min(val_max_lines, max(1, round(n * val_fraction)), n - 1))
    rng = np.random.default_rng([VAL_SEED, int.from_bytes(lang.encode(), "little")])
    val_idx = set(rng.choice(n, size=n_val, replace=False).tolist())
    train = [ln for i, ln in enumerate(lines) if i not in val_idx]
    val = [ln for i, ln in enumerate(lines) if i in val_idx]
    return LangText(lang, path, train, val)


def load_corpus(files: CorpusFiles, val_fraction: float = 0.02, val_max_lines: int = 200) -> dict[str, LangText]:
    """Read and split every language (all files are checked before anything is returned)."""
    return {lang: split_lines(lang, p, read_lines(p), val_fraction, val_max_lines) for lang, p in files.files.items()}


def parse_corpus_option(values: list[str] | None):
    """CLI ``--corpus``: one directory, or LANG=PATH pairs (repeatable)."""
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
