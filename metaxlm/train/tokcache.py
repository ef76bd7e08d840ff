"""The token cache: each language's corpus tokenized once into a memory-mapped token file.

Layout: ``$METAXLM_CACHE/tokens/<lang>-<key>/`` with ``train.bin`` (the training stream: every
training line's ids followed by ``</s>``, as ``uint16`` when the vocabulary fits, else ``uint32``),
``val.npy`` (the validation slice's stream, small) and ``index.json`` (token and line counts, the
source's identity and SHA256, the tokenizer's SHA256, the validation settings, SHA256 and stat of
the token files). The key hashes the tokenizer, the source's content SHA256 and the validation
settings, so every regime, seed, process and later run on the same data shares one entry.

- Preparation streams (bounded memory: one ~8 MB chunk of text at a time), tokenizes each chunk
  with the ``tokenizers`` library's batch encoding (all cores), shows a progress bar (bytes, MB/s,
  tokens/s, ETA) and writes into a temporary directory renamed into place at the end: an
  interrupted preparation leaves no half cache. The source is hashed again while it is tokenized; a
  file that changed since it was scanned is refused (nothing is kept).
- Opening checks the index against the key and the files' sizes; when a token file's stat differs
  from the one recorded, its SHA256 is recomputed: a corrupted or stale entry is rebuilt, never
  trained on.
- Training reads blocks straight from the memory map (``madvise(MADV_RANDOM)``; the loop releases
  the mapped pages every few steps, :meth:`LangTokens.release`), so a process's memory does not
  grow with the corpus; in a multi-process run rank 0 prepares and the others wait
  for the files (no collective, so no timeout however long preparation takes).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaxlm import progress, rundir
from metaxlm.errors import UserError
from metaxlm.train.corpus import (CorpusFiles, HFSource, ScanInfo, Source, file_digest, iter_line_chunks,
                                  remembered, scan, val_indices)

FORMAT = 1


@dataclass
class LangTokens:
    lang: str
    source: str
    directory: Path
    index: dict
    train: np.ndarray  # read-only memory map of the training stream
    val: np.ndarray  # the validation stream (in memory; at most val_max_lines lines)

    @property
    def train_tokens(self) -> int:
        return int(self.index["train_tokens"])

    def release(self) -> None:
        """Drop this process's mapped pages of the token file (``MADV_DONTNEED``): they stay in the
        page cache, but no longer count in the process's RSS, which would otherwise grow with every
        block drawn (the kernel maps 64 KB and more around each page read) up to the file's size."""
        mm = getattr(self.train, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except OSError:  # pragma: no cover
                pass


def cache_root() -> Path:
    from metaxlm.paths import cache_dir

    return cache_dir() / "tokens"


def tokenizer_sha256(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def entry_key(lang: str, info: ScanInfo, tok_sha: str, val_fraction: float, val_max_lines: int) -> str:
    spec = {"format": FORMAT, "lang": lang, "source_sha256": info.sha256, "n_lines": info.n_lines,
            "tokenizer_sha256": tok_sha, "val_fraction": val_fraction, "val_max_lines": val_max_lines}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _file_stat(path: Path) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _check_entry(d: Path, key: str) -> dict | None:
    """The entry's index if it is complete and intact, else None (and a note when it was damaged)."""
    idx_path = d / "index.json"
    if not idx_path.is_file():
        return None
    try:
        index = json.loads(idx_path.read_text(encoding="utf-8"))
        if index.get("format") != FORMAT or index.get("key") != key:
            raise ValueError("index of another key or format")
        for name, count in (("train.bin", index["train_tokens"]), ("val.npy", None)):
            p = d / name
            rec = index["files"][name]
            now = _file_stat(p)
            if count is not None and now["size"] != count * np.dtype(index["dtype"]).itemsize:
                raise ValueError(f"{name} has {now['size']} bytes, expected {count} tokens")
            if now != rec["stat"] and file_digest(p) != rec["sha256"]:
                raise ValueError(f"{name} does not match its recorded SHA256")
        return index
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"warning: token cache {d} is damaged or stale ({e}); rebuilding it", file=sys.stderr)
        shutil.rmtree(d, ignore_errors=True)
        return None


def _encode(backend, lines: list[str], eos: int, dtype) -> np.ndarray:
    enc = getattr(backend, "encode_batch_fast", backend.encode_batch)
    ids = [e.ids for e in enc(lines, add_special_tokens=False)]
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    lens = lens[lens > 0]
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=dtype)
    flat = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=total)
    out = np.empty(total + len(lens), dtype=dtype)
    eos_at = np.cumsum(lens + 1) - 1
    keep = np.ones(len(out), dtype=bool)
    keep[eos_at] = False
    out[keep] = flat
    out[eos_at] = eos
    return out


def _build(d: Path, key: str, lang: str, src: Source, info: ScanInfo, tokenizer, tok_sha: str,
           val_fraction: float, val_max_lines: int) -> None:
    dtype = token_dtype(len(tokenizer))
    eos = tokenizer.eos_token_id
    backend = tokenizer.backend_tokenizer
    val_idx = val_indices(lang, info.n_lines, val_fraction, val_max_lines)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = d.parent / f".{d.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.time()
    try:
        src_hash, tok_hash = hashlib.sha256(), hashlib.sha256()
        val_lines: list[str] = []
        n_train_tokens, line0, vi = 0, 0, 0
        with open(tmp / "train.bin", "wb") as out, \
                progress.task(f"tokenize {lang}", total=info.n_bytes) as bar:
            read = 0

            def moved(n: int) -> None:  # bytes read: the bar, MB/s and tokens/s so far
                nonlocal read
                read += n
                el = max(time.time() - t0, 1e-9)
                bar.advance(n, MB_s=read / 1e6 / el, tok_s=n_train_tokens / el)

            for chunk in iter_line_chunks(src, src_hash, moved):
                hi = line0 + len(chunk)
                j = vi
                while j < len(val_idx) and val_idx[j] < hi:
                    j += 1
                if j > vi:
                    local = set((val_idx[vi:j] - line0).tolist())
                    val_lines.extend(chunk[i] for i in sorted(local))
                    chunk = [ln for i, ln in enumerate(chunk) if i not in local]
                    vi = j
                line0 = hi
                arr = _encode(backend, chunk, eos, dtype)
                b = arr.tobytes()
                out.write(b)
                tok_hash.update(b)
                n_train_tokens += len(arr)
            out.flush()
            os.fsync(out.fileno())
        if line0 != info.n_lines or src_hash.hexdigest() != info.sha256 or remembered(src) is None:
            raise UserError(f"corpus source {src} changed while it was being prepared ({line0} lines now, "
                            f"{info.n_lines} when scanned); run again once it is complete")
        val = _encode(backend, val_lines, eos, dtype)
        np.save(tmp / "val.npy", val, allow_pickle=False)
        index = {
            "format": FORMAT, "key": key, "lang": lang, "source": str(src), "source_sha256": info.sha256,
            "source_bytes": info.n_bytes, "source_kind": "hf" if isinstance(src, HFSource) else "file",
            "tokenizer_sha256": tok_sha, "vocab_size": len(tokenizer), "eos_id": eos, "dtype": np.dtype(dtype).name,
            "n_lines": info.n_lines, "train_lines": info.n_lines - len(val_idx), "val_lines": len(val_idx),
            "val_fraction": val_fraction, "val_max_lines": val_max_lines,
            "train_tokens": n_train_tokens, "val_tokens": int(len(val)),
            "files": {"train.bin": {"sha256": tok_hash.hexdigest(), "stat": _file_stat(tmp / "train.bin")},
                      "val.npy": {"sha256": file_digest(tmp / "val.npy"), "stat": _file_stat(tmp / "val.npy")}},
            "seconds": round(time.time() - t0, 3), "created": rundir.now(),
        }
        # stat after the rename is the same file (rename keeps inode and mtime)
        rundir.atomic_write_json(tmp / "index.json", index)
        try:
            tmp.rename(d)
        except OSError:  # another process finished the same entry first: keep theirs
            if not (d / "index.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _open(d: Path, lang: str, src: Source, index: dict) -> LangTokens:
    path = d / "train.bin"
    if index["train_tokens"] == 0:
        train = np.zeros(0, dtype=index["dtype"])
    else:
        train = np.memmap(path, dtype=index["dtype"], mode="r")
        mm = getattr(train, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
            try:
                mm.madvise(mmap.MADV_RANDOM)
            except OSError:  # pragma: no cover
                pass
    val = np.load(d / "val.npy", allow_pickle=False)
    return LangTokens(lang, str(src), d, index, train, val)


def prepare_tokens(files: CorpusFiles, tokenizer, val_fraction: float = 0.02, val_max_lines: int = 200, *,
                   build: bool = True, scans: dict[str, ScanInfo] | None = None) -> dict[str, LangTokens]:
    """Every language's cache entry, built where missing (``build=False``: wait for another process
    to build it, as the non-zero ranks of a multi-process run do)."""
    tok_sha = tokenizer_sha256(tokenizer)
    root = cache_root()
    out: dict[str, LangTokens] = {}
    for lang, src in files.files.items():
        if build:
            info = (scans or {}).get(lang) or scan(src, lang)
        else:
            info = _wait_for_scan(src)
        key = entry_key(lang, info, tok_sha, val_fraction, val_max_lines)
        d = root / f"{lang}-{key[:24]}"
        index = _check_entry(d, key) if build else _wait_for_entry(d)
        if index is None:
            _build(d, key, lang, src, info, tokenizer, tok_sha, val_fraction, val_max_lines)
            index = json.loads((d / "index.json").read_text(encoding="utf-8"))
        out[lang] = _open(d, lang, src, index)
    return out


def _wait_for_scan(src: Source, poll: float = 0.5) -> ScanInfo:
    """Rank 0's remembered scan of ``src`` (other ranks never read the corpus themselves)."""
    while (info := remembered(src)) is None:
        time.sleep(poll)
    return info


def _wait_for_entry(d: Path) -> dict:
    from metaxlm.train.dist import wait_for_file

    wait_for_file(d / "index.json")
    return json.loads((d / "index.json").read_text(encoding="utf-8"))


def describe(tokens: dict[str, LangTokens]) -> dict[str, dict]:
    """What a run records about its data: per language source, SHA256s and counts."""
    return {lang: {"path": t.source, "sha256": t.index["source_sha256"], "cache": str(t.directory),
                   "train_tokens": t.train_tokens, "val_tokens": int(t.index["val_tokens"]),
                   "lines": int(t.index["n_lines"]), "tokenizer_sha256": t.index["tokenizer_sha256"]}
            for lang, t in tokens.items()}


def prepare_corpus(corpus=None, tokenizer=None, languages=None, val_fraction: float = 0.02,
                   val_max_lines: int = 200) -> dict[str, LangTokens]:
    """``metaxlm corpus prepare``: scan and tokenize ``corpus`` with ``tokenizer`` (a directory) into
    the cache, ahead of ``train`` / ``compare`` (which do the same when an entry is missing)."""
    from metaxlm.train.corpus import resolve_files
    from metaxlm.train.tokenizer import load_tokenizer

    if tokenizer is None:
        raise UserError("corpus prepare needs --tokenizer DIR (the cache is per tokenizer; train one with "
                        "`metaxlm tokenizer train`)")
    files = resolve_files(corpus, languages)
    tok = load_tokenizer(tokenizer)
    scans = {lang: scan_with_bar(src, lang) for lang, src in files.files.items()}
    return prepare_tokens(files, tok, val_fraction, val_max_lines, scans=scans)


def scan_with_bar(src: Source, lang: str) -> ScanInfo:
    """:func:`metaxlm.train.corpus.scan` with a progress bar (instant when the scan is remembered)."""
    with progress.task(f"scan {lang}", total=None if isinstance(src, HFSource) else src.stat().st_size) as bar:
        return scan(src, lang, progress=lambda n: bar.advance(n))
