"""A vocabulary smaller than the corpus's alphabet: the character-coverage rule of
metaxlm.train.tokenizer (choose_alphabet), on generated large-alphabet corpora, and the guarantee
that a corpus whose alphabet fits gets exactly the tokenizer it got before the rule existed."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from _train_support import FIXTURE_CORPUS

from metaxlm.errors import UserError
from metaxlm.train import train_tokenizer
from metaxlm.train.tokenizer import (BOUNDARY, CHARACTER_COVERAGE, MIN_COVERAGE, char_counts, choose_alphabet,
                                     load_tokenizer)

# tokenizer.json of the fixture tokenizer (vocab 300 on tests/fixtures/bench/corpus, the defaults
# otherwise), recorded with tokenizers 0.23.3 once the lowest score is rounded too (canonical_vocab);
# the alphabet rule leaves it as it is
FIXTURE_TOKENIZER_SHA256 = "309df73774894e34a3ef7e09dae79874d7ab1d2d1dc7cbb967fc6bf6b5069570"
RECORDED_WITH = "0.23.3"

KANA = [chr(c) for c in range(0x3041, 0x3097)]  # hiragana
LATIN = {
    "en": "the package contains a library for the system and tools to manage files on the server".split(),
    "de": "das paket enthält eine bibliothek für größere systeme und werkzeuge zur verwaltung".split(),
    "fr": "le paquet contient une bibliothèque pour gérer les fichiers du système très efficace".split(),
    "it": "il pacchetto contiene una libreria per la gestione dei file del sistema così è".split(),
    "pt": "o pacote contém uma biblioteca para gerenciar arquivos do sistema não também".split(),
    "es": "el paquete contiene una biblioteca para gestionar archivos del sistema según año".split(),
    "ru": "пакет содержит библиотеку для управления файлами системы и сервера также".split(),
}


def _zipf_chars(rng: random.Random, chars: list[str], n: int, s: float) -> str:
    return "".join(rng.choices(chars, weights=[1 / (r + 1) ** s for r in range(len(chars))], k=n))


def cjk_corpus(root: Path, n_cjk: int = 300, lines: int = 300, s: float = 1.5, seed: int = 0) -> Path:
    """``ja.txt``: ``n_cjk`` distinct CJK ideographs (Zipf-distributed, exponent ``s``) in short
    sentences; ``en.txt``: English words. Every character occurs at least once."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    cjk = [chr(0x4E00 + 7 * i) for i in range(n_cjk)]  # spread over the block, no two adjacent
    ja = [_zipf_chars(rng, cjk, rng.randint(15, 40), s) + "。" for _ in range(lines)]
    ja.append("".join(cjk))  # the whole alphabet, once
    (root / "ja.txt").write_text("\n".join(ja) + "\n", encoding="utf-8")
    en = [" ".join(rng.choices(LATIN["en"], k=rng.randint(5, 15))) for _ in range(lines)]
    (root / "en.txt").write_text("\n".join(en) + "\n", encoding="utf-8")
    return root


def realistic_corpus(root: Path, lines: int = 300, seed: int = 1) -> Path:
    """Like the default benchmark's corpus: 8 languages, 7 in Latin or Cyrillic script with
    diacritics, and Japanese with about a thousand distinct kanji (Zipf) mixed with kana."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for lang, words in LATIN.items():
        text = [" ".join(rng.choices(words, k=rng.randint(6, 20))).capitalize() + "." for _ in range(lines)]
        (root / f"{lang}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    kanji = [chr(0x4E00 + 3 * i) for i in range(1000)]
    ja = []
    for _ in range(lines):
        parts = [_zipf_chars(rng, kanji, rng.randint(1, 3), 1.1) + "".join(rng.choices(KANA[:40], k=rng.randint(1, 3)))
                 for _ in range(rng.randint(4, 10))]
        ja.append("".join(parts) + "。")
    (root / "ja.txt").write_text("\n".join(ja) + "\n", encoding="utf-8")
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _info(tok_dir: Path) -> dict:
    return json.loads((tok_dir / "metaxlm_tokenizer.json").read_text(encoding="utf-8"))


# -- the rule itself -------------------------------------------------------------------------------
def test_choose_alphabet_keeps_everything_that_fits():
    counts = {"a": 5, "b": 3, BOUNDARY: 4, "ç": 1}
    a = choose_alphabet(counts, vocab_size=8)  # 4 characters <= 8 // 2
    assert a["limited"] is False and a["kept"] == 4 and a["coverage"] == 1.0 and a["rare"] == []


def test_choose_alphabet_coverage_then_cap():
    # "a" and the boundary cover 99.99% of the text: 10 characters seen once each are left out
    counts = {"a": 100_000, BOUNDARY: 50_000, **{chr(0x4E00 + i): 1 for i in range(10)}}
    a = choose_alphabet(counts, vocab_size=20)  # 12 characters > 20 // 2: limited
    total = sum(counts.values())
    assert a["limited"] and a["kept"] == 2 and a["keep"] == sorted(["a", BOUNDARY])
    assert (150_000 / total) >= CHARACTER_COVERAGE and a["coverage"] == pytest.approx(150_000 / total, abs=1e-6)
    assert len(a["rare"]) == 10
    # a flat tail: 99.95% needs all 31 characters, the cap (vocab_size // 2 = 20) wins
    flat = {chr(0x4E00 + i): 100 for i in range(30)}
    flat[BOUNDARY] = 30_000
    b = choose_alphabet(flat, vocab_size=40)
    assert b["kept"] == 20 and BOUNDARY in b["keep"]
    assert b["coverage"] == pytest.approx((30_000 + 1_900) / 33_000, abs=1e-6)
    # ties resolve by code point: the same counts in another order give the same alphabet
    assert choose_alphabet(dict(reversed(list(flat.items()))), vocab_size=40) == b


def test_choose_alphabet_refuses_a_hopeless_vocabulary():
    counts = {chr(0x4E00 + i): 1000 - 3 * i for i in range(300)}  # a slowly falling tail
    with pytest.raises(UserError) as e:
        choose_alphabet(counts, vocab_size=40)
    msg = str(e.value)
    assert "\n" not in msg and "--vocab-size" in msg and f"{MIN_COVERAGE:.0%}" in msg
    need = int(msg.split("give --vocab-size ")[1].split()[0])
    assert choose_alphabet(counts, vocab_size=need)["coverage"] >= MIN_COVERAGE  # the suggested size works
    with pytest.raises(UserError):
        choose_alphabet(counts, vocab_size=need - 2)


def test_char_counts_sees_what_the_trainer_sees():
    assert char_counts(["ab c", "Ａ b"]) == {"a": 1, "b": 2, "c": 1, "A": 1, BOUNDARY: 4}  # NFKC; spaces and starts


# -- training --------------------------------------------------------------------------------------
def test_fixture_tokenizer_is_unchanged(tmp_path):
    """An alphabet that fits (69 characters, vocab 300): no character is limited, and the bytes are the
    recorded ones."""
    import tokenizers

    out = train_tokenizer(FIXTURE_CORPUS, tmp_path / "tok", vocab_size=300)
    alpha = _info(out)["alphabet"]
    assert alpha["limited"] is False and alpha["kept_characters"] == alpha["distinct_characters"] == 69
    assert alpha["coverage"] == 1.0
    if tokenizers.__version__ != RECORDED_WITH:
        pytest.skip(f"the reference hash was recorded with tokenizers {RECORDED_WITH}, not {tokenizers.__version__}")
    assert _sha(out / "tokenizer.json") == FIXTURE_TOKENIZER_SHA256


def test_large_alphabet_small_vocabulary_trains_deterministically(tmp_path, capsys):
    """300 distinct CJK characters with a 200-piece vocabulary: the unpatched trainer fails ("The
    vocabulary is not large enough to contain all chars"); here the most frequent characters are kept
    (at most 100), the rest encode as <unk>, and two runs give the same bytes."""
    corpus = cjk_corpus(tmp_path / "c")
    a = train_tokenizer(corpus, tmp_path / "a", vocab_size=200)
    b = train_tokenizer(corpus, tmp_path / "b", vocab_size=200)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    err = capsys.readouterr().err
    assert err.count("note: ") == 2 and "encode as <unk>" in err  # said once per run, on stderr
    alpha = _info(a)["alphabet"]
    assert alpha["limited"] is True and alpha["distinct_characters"] > 300 and alpha["kept_characters"] <= 100
    assert MIN_COVERAGE <= alpha["coverage"] < 1.0
    spec = json.loads((a / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["pre_tokenizer"]["type"] == "Metaspace"  # the training-only split is not saved
    tok = load_tokenizer(a)
    assert len(tok) <= 200
    vocab = tok.get_vocab()
    frequent, rare = chr(0x4E00), chr(0x4E00 + 7 * 299)  # rank 1 and rank 300 of the Zipf draw
    assert frequent in vocab and rare not in vocab
    ids = tok(f"{frequent}{rare}{frequent}", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id in ids and vocab[frequent] in ids
    assert tok.decode(tok("the package")["input_ids"], skip_special_tokens=True) == "the package"


def test_bpe_keeps_its_requested_size(tmp_path):
    """BPE did not fail on a large alphabet but silently grew past the requested size (405 for 200)."""
    out = train_tokenizer(cjk_corpus(tmp_path / "c"), tmp_path / "bpe", vocab_size=200, model_type="bpe")
    tok = load_tokenizer(out)
    assert len(tok) <= 200 and _info(out)["alphabet"]["limited"] is True
    assert tok.decode(tok("the package")["input_ids"], skip_special_tokens=True) == "the package"


def test_smoke_preset_settings_on_a_realistic_corpus(tmp_path):
    """`metaxlm compare --preset smoke`'s tokenizer settings (vocab 400) on a corpus like the default
    benchmark's (eight languages, Japanese with ~1000 distinct kanji)."""
    from metaxlm.compare import resolve_config

    settings = resolve_config("smoke").tokenizer
    assert settings["vocab_size"] == 400
    out = train_tokenizer(realistic_corpus(tmp_path / "c"), tmp_path / "tok", **settings)
    alpha = _info(out)["alphabet"]
    assert alpha["distinct_characters"] > 400 and alpha["kept_characters"] == 200 and alpha["limited"] is True
    assert alpha["coverage"] >= MIN_COVERAGE
    assert len(load_tokenizer(out)) <= 400


def test_hopeless_vocabulary_is_one_line_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "tok"
    r = cli("tokenizer", "train", "--corpus", str(cjk_corpus(tmp_path / "c", s=0.5)), "--out", str(out),
            "--vocab-size", "40")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--vocab-size" in lines[0], r.output
    assert "not large enough" not in r.output and not out.exists()
