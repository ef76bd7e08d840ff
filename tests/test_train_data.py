"""Corpora, the tokenizer, language sampling, packing and masking."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from _train_support import FIXTURE_CORPUS, make_corpus

from metaxlm.errors import UserError
from metaxlm.train import train_tokenizer
from metaxlm.train.batches import BatchMaker, MaskSpec, Streams, mask_blocks
from metaxlm.train.corpus import load_corpus, parse_corpus_option, read_lines, resolve_files
from metaxlm.train.sampling import language_probs
from metaxlm.train.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def test_corpus_dir_and_pairs(tmp_path):
    d = make_corpus(tmp_path / "c", {"en": 10, "de": 5})
    (d / "README.md").write_text("not a corpus")
    with gzip.open(d / "fr.txt.gz", "wt", encoding="utf-8") as f:
        f.write("un\n\n deux \ntrois\n")
    files = resolve_files(d)
    assert files.languages == ["de", "en", "fr"]
    assert read_lines(files.files["fr"]) == ["un", "deux", "trois"]
    assert resolve_files({"en": d / "en.txt"}).languages == ["en"]
    assert resolve_files(d, ["fr", "en"]).languages == ["en", "fr"]
    assert parse_corpus_option([str(d)]) == str(d)
    assert parse_corpus_option(["en=a.txt", "de=b.txt"]) == {"en": "a.txt", "de": "b.txt"}


def test_validation_slice_is_fixed_and_disjoint(tmp_path):
    d = make_corpus(tmp_path / "c", {"en": 200})
    a = load_corpus(resolve_files(d), val_fraction=0.05)["en"]
    b = load_corpus(resolve_files(d), val_fraction=0.05)["en"]
    assert len(a.val) == 10 and a.val == b.val and len(a.train) == 190
    assert sorted(a.train + a.val) == sorted(read_lines(d / "en.txt"))


@pytest.mark.parametrize("setup, needle", [
    (lambda d: (d / "en.txt").write_bytes(b"ok\nfine\nbad \xff byte\n"), r"en.txt:3: invalid UTF-8"),
    (lambda d: (d / "en.txt").write_text("\n  \n"), "is empty"),
    (lambda d: (d / "en.txt").write_text("only one line\n"), "only 1 line"),
])
def test_bad_corpus_files(tmp_path, setup, needle):
    d = tmp_path / "c"
    d.mkdir()
    setup(d)
    with pytest.raises(UserError, match=needle):
        load_corpus(resolve_files(d))


def test_bad_corpus_specs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_files(tmp_path / "nope")
    with pytest.raises(UserError, match="no <lang>.txt"):
        resolve_files(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        resolve_files({"en": tmp_path / "en.txt"})
    with pytest.raises(UserError, match="ISO 639-1"):
        parse_corpus_option(["english=x.txt"])
    with pytest.raises(UserError, match="no corpus given"):
        resolve_files(None)
    with pytest.raises(UserError, match="'xx' has no corpus file"):
        resolve_files(FIXTURE_CORPUS, ["en", "xx"])


def test_tokenizer_round_trip(tok_dir):
    from transformers import AutoTokenizer

    import json

    # a class every transformers version can load (5.x would write TokenizersBackend, unknown to 4.x)
    assert json.loads((tok_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    assert len(tok) <= 300
    text = "Ein Werkzeug zum Verwalten von virtuellen Maschinen."
    ids = tok(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert load_tokenizer(tok_dir).mask_token_id == 4


def test_canonical_vocab_ignores_run_to_run_noise():
    """The trainer's run-to-run differences (order of tied pieces, ~1e-11 score noise, the appended
    characters' 1e-4 steps in hash order) all vanish; specials keep ids 0..4."""
    from metaxlm.train.tokenizer import canonical_vocab

    specials = [[t, 0.0] for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    em = [["▁the", -3.2], ["▁a", -3.9], ["er", -5.5], ["es", -5.5], ["x", -14.04]]
    chars = ["ç", "送", "δ", "ć"]
    run1 = specials + em + [[c, -15.04 + 1e-4 * (len(chars) - i)] for i, c in enumerate(chars)]
    run2 = specials + [["▁the", -3.2 + 3e-11], ["▁a", -3.9], ["es", -5.5], ["er", -5.5 - 2e-11], ["x", -14.04]]
    run2 += [[c, -15.04 + 1e-4 * (len(chars) - i)] for i, c in enumerate(reversed(chars))]
    a, b = canonical_vocab(run1), canonical_vocab(run2)
    assert a == b
    assert a[:5] == specials and [p for p, _ in a[5:9]] == ["▁the", "▁a", "er", "es"]
    assert {p for p, sc in a if sc == a[-1][1]} == set(chars)


def test_tokenizer_is_the_same_every_run(tmp_path):
    a = train_tokenizer(FIXTURE_CORPUS, tmp_path / "a", vocab_size=300)
    b = train_tokenizer(FIXTURE_CORPUS, tmp_path / "b", vocab_size=300)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_bpe_tokenizer(tmp_path):
    out = train_tokenizer(FIXTURE_CORPUS, tmp_path / "bpe", vocab_size=200, model_type="bpe")
    tok = load_tokenizer(out)
    assert tok.decode(tok("le chat")["input_ids"], skip_special_tokens=True) == "le chat"
    with pytest.raises(UserError, match="already exists"):
        train_tokenizer(FIXTURE_CORPUS, out, vocab_size=200)


def test_tokenizer_sampling_follows_alpha(tmp_path):
    from metaxlm.train.tokenizer import sample_lines

    d = make_corpus(tmp_path / "c", {"en": 900, "de": 100})
    texts = load_corpus(resolve_files(d))
    flat = sample_lines(texts, alpha=0.0, max_lines=400, seed=0)
    de = set(texts["de"].train)
    share = sum(line in de for line in flat) / len(flat)
    assert 0.4 < share < 0.6  # alpha 0: languages equally likely (in characters)
    prop = sample_lines(texts, alpha=1.0, max_lines=400, seed=0)
    assert sum(line in de for line in prop) / len(prop) < 0.2


def test_language_probs():
    p = language_probs({"en": 900, "de": 100}, 1.0)
    assert p == pytest.approx({"en": 0.9, "de": 0.1})
    p = language_probs({"en": 900, "de": 100}, 0.0)
    assert p == pytest.approx({"en": 0.5, "de": 0.5})
    p = language_probs({"en": 900, "de": 100}, 0.5)
    assert p["de"] == pytest.approx(0.1 ** 0.5 / (0.1 ** 0.5 + 0.9 ** 0.5))


def test_masking_statistics():
    rng = np.random.default_rng(0)
    blocks = rng.integers(5, 1000, size=(400, 128))
    blocks[:, 0] = 0
    blocks[:, 50] = 2
    spec = MaskSpec(0.15, 0.8, 0.1, mask_id=4, vocab_size=1000, special_ids=(0, 1, 2, 3, 4))
    inputs, masked, labels = mask_blocks(blocks, spec, rng)
    assert not masked[:, 0].any() and not masked[:, 50].any()
    assert (masked.sum(1) == round(126 * 0.15)).all()
    assert (labels == blocks[masked]).all()
    new = inputs[masked]
    frac_mask = (new == 4).mean()
    frac_keep = (new == labels).mean()
    frac_rand = 1 - frac_mask - frac_keep
    assert abs(frac_mask - 0.8) < 0.02 and abs(frac_keep - 0.1) < 0.02 and abs(frac_rand - 0.1) < 0.02
    assert (inputs[~masked] == blocks[~masked]).all()
    assert (new[(new != 4) & (new != labels)] >= 5).all()


def test_batches_pack_sample_and_repeat(tok_dir):
    from metaxlm.train.tokcache import prepare_tokens

    tok = load_tokenizer(tok_dir)
    tokens = prepare_tokens(resolve_files(FIXTURE_CORPUS), tok)
    streams = Streams({k: t.train for k, t in tokens.items()}, {k: t.val for k, t in tokens.items()})
    spec = MaskSpec(0.15, 0.8, 0.1, 4, len(tok), (0, 1, 2, 3, 4))
    maker = BatchMaker(streams, seq_len=32, batch_size=64, alpha=0.0, seed=1, spec=spec, bos_id=0)
    x, m, y, li = maker.global_batch(7, ("de", "en", "fr"))
    assert x.shape == (64, 32) and (x[:, 0] == 0).all() and (x != 1).all()  # packed: no padding
    assert set(np.unique(li)) == {0, 1, 2}
    x2, m2, y2, li2 = maker.global_batch(7, ("de", "en", "fr"))
    assert (x == x2).all() and (m == m2).all() and (li == li2).all()  # pure function of (seed, step)
    x3, *_ = maker.global_batch(8, ("de", "en", "fr"))
    assert not (x == x3).all()
    _, _, _, li_en = maker.global_batch(3, ("en",))
    assert (li_en == 0).all()
    v1, v2 = maker.val_blocks("de", 4), maker.val_blocks("de", 4)
    assert (v1[0] == v2[0]).all() and v1[0].shape[1] == 32
