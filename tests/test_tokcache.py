"""The token cache and corpus sources: built once, reused, verified; compressed and hf: sources;
blocks equal to the in-memory path; budget warnings; bad input."""

from __future__ import annotations

import gzip
import json
import lzma
import shutil

import numpy as np
import pytest
from _train_support import FIXTURE_CORPUS, make_corpus, tiny

from metaxlm.errors import UserError
from metaxlm.train import tokcache, train, train_tokenizer
from metaxlm.train.batches import BatchMaker, MaskSpec, Streams
from metaxlm.train.corpus import load_corpus, parse_corpus_option, resolve_files, scan
from metaxlm.train.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


@pytest.fixture
def tok(tok_dir):
    return load_tokenizer(tok_dir)


def _old_streams(tok, texts):
    """The in-memory path the cache replaced: every line encoded on its own, </s> after each."""
    def enc(lines):
        parts = []
        for line in lines:
            ids = tok.backend_tokenizer.encode(line, add_special_tokens=False).ids
            if ids:
                parts.extend(ids + [tok.eos_token_id])
        return np.asarray(parts, dtype=np.int64)

    return Streams({k: enc(t.train) for k, t in texts.items()}, {k: enc(t.val) for k, t in texts.items()})


def test_memory_map_blocks_equal_in_memory_blocks(tok):
    files = resolve_files(FIXTURE_CORPUS)
    cached = tokcache.prepare_tokens(files, tok)
    old = _old_streams(tok, load_corpus(files))
    for lang, t in cached.items():
        assert isinstance(t.train, np.memmap) and t.train.dtype == np.uint16
        assert np.array_equal(t.train, old.train[lang]) and np.array_equal(t.val, old.val[lang])
    spec = MaskSpec(0.15, 0.8, 0.1, 4, len(tok), (0, 1, 2, 3, 4))
    new = Streams({k: t.train for k, t in cached.items()}, {k: t.val for k, t in cached.items()})
    a = BatchMaker(new, 32, 16, 0.3, 5, spec, 0)
    b = BatchMaker(old, 32, 16, 0.3, 5, spec, 0)
    for step in (0, 7, 123):
        for x, y in zip(a.global_batch(step, ("de", "en", "fr")), b.global_batch(step, ("de", "en", "fr"))):
            assert np.array_equal(x, y)
    for x, y in zip(a.val_blocks("en", 4), b.val_blocks("en", 4)):
        assert np.array_equal(x, y)


def test_cache_is_built_once_and_reused(tok, monkeypatch):
    files = resolve_files(FIXTURE_CORPUS)
    first = tokcache.prepare_tokens(files, tok)

    def no_tokenizing(*a, **k):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tokcache, "_encode", no_tokenizing)
    again = tokcache.prepare_tokens(resolve_files(FIXTURE_CORPUS), tok)
    assert {k: t.directory for k, t in again.items()} == {k: t.directory for k, t in first.items()}


def test_corrupted_cache_is_rebuilt_never_used(tok, capsys):
    files = resolve_files(FIXTURE_CORPUS)
    good = {k: np.array(t.train) for k, t in tokcache.prepare_tokens(files, tok).items()}
    entry = tokcache.prepare_tokens(files, tok)["en"].directory
    raw = bytearray((entry / "train.bin").read_bytes())
    raw[10] ^= 0xFF  # same size, different content
    (entry / "train.bin").write_bytes(bytes(raw))
    again = tokcache.prepare_tokens(files, tok)
    assert "damaged or stale" in capsys.readouterr().err
    assert np.array_equal(again["en"].train, good["en"])
    (again["de"].directory / "train.bin").write_bytes(b"\x00\x01")  # truncated
    assert np.array_equal(tokcache.prepare_tokens(files, tok)["de"].train, good["de"])


def test_cache_of_another_tokenizer_is_not_used(tmp_path, tok):
    other = load_tokenizer(train_tokenizer(FIXTURE_CORPUS, tmp_path / "tok2", vocab_size=200))
    files = resolve_files(FIXTURE_CORPUS)
    a, b = tokcache.prepare_tokens(files, tok)["en"], tokcache.prepare_tokens(files, other)["en"]
    assert a.directory != b.directory and a.index["tokenizer_sha256"] != b.index["tokenizer_sha256"]
    # an index that was edited to claim another tokenizer's key is refused and rebuilt
    ix = json.loads((a.directory / "index.json").read_text())
    ix["key"] = b.index["key"]
    (a.directory / "index.json").write_text(json.dumps(ix))
    again = tokcache.prepare_tokens(files, tok)["en"]
    assert again.index["tokenizer_sha256"] == a.index["tokenizer_sha256"]


def test_stale_source_gets_a_new_entry(tmp_path, tok):
    d = make_corpus(tmp_path / "c", {"en": 50})
    a = tokcache.prepare_tokens(resolve_files(d), tok)["en"]
    with open(d / "en.txt", "a") as f:
        f.write("the cat sat on a new line\n")
    b = tokcache.prepare_tokens(resolve_files(d), tok)["en"]
    assert a.directory != b.directory and b.index["n_lines"] == a.index["n_lines"] + 1


def _write_compressed(d, lang, text: bytes):
    import zstandard

    (d / f"{lang}.txt.gz").write_bytes(gzip.compress(text))
    (d / f"{lang}.txt.xz").write_bytes(lzma.compress(text))
    (d / f"{lang}.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(text))


def test_compressed_and_hf_sources_give_the_same_tokens(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    plain = FIXTURE_CORPUS / "en.txt"
    text = plain.read_bytes()
    d = tmp_path / "z"
    d.mkdir()
    _write_compressed(d, "en", text)
    ref = tokcache.prepare_tokens(resolve_files({"en": plain}), tok)["en"]
    rows = [ln for ln in text.decode().split("\n")]
    datasets.Dataset.from_dict({"body": rows}).save_to_disk(str(tmp_path / "saved"))
    sources = [d / "en.txt.gz", d / "en.txt.xz", d / "en.txt.zst", f"hf:{tmp_path / 'saved'}#body"]
    for src in sources:
        got = tokcache.prepare_tokens(resolve_files({"en": src}), tok)["en"]
        assert np.array_equal(got.train, ref.train) and np.array_equal(got.val, ref.val), src
    # the stored bytes are what is hashed: a compressed file's sha256 is the file's own
    from metaxlm.train.corpus import file_digest

    assert scan(d / "en.txt.zst").sha256 == file_digest(d / "en.txt.zst")
    assert parse_corpus_option(["de=hf:wikimedia/wikipedia:20231101.de#text"]) == {
        "de": "hf:wikimedia/wikipedia:20231101.de#text"}


def test_tokenizer_on_a_large_corpus_uses_a_bounded_sample(tmp_path, monkeypatch):
    from metaxlm.train import tokenizer as tk

    monkeypatch.setattr(tk, "IN_MEMORY_BYTES", 0)  # every file is "large": streamed and sampled
    seen = {}
    real = tk.sample_lines

    def spy(texts, alpha, max_lines, seed, totals=None):
        seen.update({k: len(t.train) for k, t in texts.items()})
        seen["totals"] = totals
        return real(texts, alpha, max_lines, seed, totals)

    monkeypatch.setattr(tk, "sample_lines", spy)
    out = train_tokenizer(FIXTURE_CORPUS, tmp_path / "t", vocab_size=200, max_lines=50)
    assert load_tokenizer(out).mask_token_id == 4
    assert all(seen[k] <= 50 for k in ("de", "en", "fr"))
    assert seen["totals"]["en"][1] > 50  # the real line count is known and used for the proportions


def test_repeat_warning_in_run_and_results(tmp_path, tok_dir, capsys):
    run = train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok_dir, total_tokens=8 * 32 * 400, log_every=100,
                     val_every=0, save_every=1000), tmp_path / "r")
    err = capsys.readouterr().err
    assert "warning: phase multilingual repeats its corpus" in err
    res = json.loads((run / "results" / "pretrain.json").read_text())
    assert res["warnings"] and res["phases"][0]["epochs"]["en"] > 4
    meta = json.loads((run / "meta.json").read_text())
    assert meta["budget"]["warnings"] == res["warnings"]
    assert set(meta["data"]["tokens"]) == {"de", "en", "fr"}
    from metaxlm.report import build_report

    html, md = build_report([run], tmp_path / "rep.html")
    assert "Budget warning" in md.read_text() and "repeats its corpus" in html.read_text()


def test_short_budget_does_not_warn(tmp_path, tok_dir, capsys):
    train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok_dir, total_tokens=8 * 32 * 2), tmp_path / "r")
    assert "repeats its corpus" not in capsys.readouterr().err


# -- bad input: one clear line, nothing half-written -----------------------------------------------


def test_corpus_too_small_for_one_block(tmp_path, tok_dir):
    d = tmp_path / "c"
    d.mkdir()
    (d / "en.txt").write_text("a cat\nthe dog\n")
    with pytest.raises(UserError, match="fewer than one block"):
        train(tiny(corpus=d, tokenizer=tok_dir, seq_len=64), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_file_changing_while_prepared(tmp_path, tok, monkeypatch):
    d = make_corpus(tmp_path / "c", {"en": 60})
    files = resolve_files(d)
    scan(files.files["en"], "en")
    real = tokcache.iter_line_chunks

    def changing(src, hasher=None, progress=None):
        for i, chunk in enumerate(real(src, hasher, progress)):
            yield chunk
        with open(d / "en.txt", "a") as f:
            f.write("appended while reading\n")

    monkeypatch.setattr(tokcache, "iter_line_chunks", changing)
    with pytest.raises(UserError, match="changed while it was being prepared"):
        tokcache.prepare_tokens(files, tok)
    assert not list(tokcache.cache_root().glob("en-*")) and not list(tokcache.cache_root().glob(".*tmp"))


def test_hf_source_that_cannot_be_loaded_offline(tmp_path, tok, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"hf:no-such/dataset cannot be loaded"):
        tokcache.prepare_tokens(resolve_files({"en": "hf:no-such/dataset"}), tok)


def test_bad_hf_spec_and_column(tmp_path, tok):
    datasets = pytest.importorskip("datasets")
    with pytest.raises(UserError, match="write hf:NAME"):
        resolve_files({"en": "hf:"})
    datasets.Dataset.from_dict({"body": ["a b c", "d e f"]}).save_to_disk(str(tmp_path / "s"))
    with pytest.raises(UserError, match="no column 'text'"):
        tokcache.prepare_tokens(resolve_files({"en": f"hf:{tmp_path / 's'}"}), tok)


def test_cli_corpus_prepare_and_bad_zst(tmp_path, tok_dir, cli):
    pytest.importorskip("zstandard")
    d = tmp_path / "c"
    shutil.copytree(FIXTURE_CORPUS, d)
    r = cli("corpus", "prepare", "--corpus", d, "--tokenizer", tok_dir)
    assert r.exit_code == 0, r.output
    assert "token cache" in r.output and "uint16" in r.output
    (d / "de.txt").unlink()
    (d / "de.txt.zst").write_bytes(b"not zstd at all, just bytes\n")
    r = cli("corpus", "prepare", "--corpus", d, "--tokenizer", tok_dir)
    assert r.exit_code == 2 and "not a valid .zst file" in r.output
    r = cli("corpus", "prepare", "--corpus", d)
    assert r.exit_code == 2 and "needs --tokenizer" in r.output
