"""The shared subword vocabulary: ``metaxlm tokenizer train`` and :func:`train_tokenizer`.

A Unigram (default) or BPE model from the ``tokenizers`` library, trained on lines sampled from
every language with the same exponent ``alpha`` as pretraining (sizes in characters), NFKC
normalisation and SentencePiece-style ``▁`` word boundaries (works for languages without spaces).
Saved as a transformers fast tokenizer with XLM-R special tokens ``<s> <pad> </s> <unk>`` (ids 0-3)
and ``<mask>`` (id 4), so ``AutoTokenizer.from_pretrained(dir)`` loads it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from metaxlm.errors import UserError
from metaxlm.train.corpus import CorpusSpec, LangText, resolve_files
from metaxlm.train.sampling import language_probs

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
N_SPECIAL = len(SPECIAL_TOKENS)


def sample_lines(texts: dict[str, LangText], alpha: float, max_lines: int, seed: int,
                 totals: dict[str, tuple[float, int]] | None = None) -> list[str]:
    """Lines for tokenizer training: ``max_lines`` in all, languages in proportion p(lang) ∝ size^alpha.

    ``totals`` gives (characters, lines) of a language's whole training text when ``texts`` holds
    only a uniform sample of it (large corpora)."""
    totals = dict(totals or {})
    for lang, t in texts.items():
        totals.setdefault(lang, (float(sum(len(s) for s in t.train)), len(t.train)))
    sizes = {lang: totals[lang][0] for lang in texts}
    n_all = sum(totals[lang][1] for lang in texts)
    probs = language_probs(sizes, alpha)
    total = min(max_lines, n_all)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for lang, t in texts.items():
        # the line count that gives this language its share of characters
        chars_wanted = probs[lang] * sum(sizes.values()) * total / n_all
        mean_len = sizes[lang] / totals[lang][1]
        k = max(1, int(round(chars_wanted / mean_len)))
        reps, rest = divmod(k, len(t.train))
        idx = np.concatenate([np.tile(np.arange(len(t.train)), reps),
                              rng.choice(len(t.train), size=rest, replace=False)]).astype(int)
        out.extend(t.train[i] for i in idx)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


IN_MEMORY_BYTES = 256 << 20  # a language's file up to this size is read whole (exact sample); larger: streamed


def tokenizer_texts(files, max_lines: int, seed: int, val_fraction: float, val_max_lines: int):
    """Training lines per language for the tokenizer, in bounded memory: a small file is read whole;
    a larger one (or a dataset) is streamed once and only a uniform sample of ``max_lines`` of its
    training lines is kept. Returns (texts, totals) for :func:`sample_lines`."""
    from metaxlm.train.corpus import iter_line_chunks, read_lines, scan, split_lines, val_indices

    texts, totals = {}, {}
    for lang, src in files.files.items():
        info = scan(src, lang)
        if isinstance(src, Path) and info.n_bytes <= IN_MEMORY_BYTES:
            texts[lang] = split_lines(lang, src, read_lines(src), val_fraction, val_max_lines)
            continue
        val = set(val_indices(lang, info.n_lines, val_fraction, val_max_lines).tolist())
        n_train = info.n_lines - len(val)
        rng = np.random.default_rng([seed, int.from_bytes(lang.encode(), "little")])
        want = np.sort(rng.choice(n_train, size=min(max_lines, n_train), replace=False))
        picked, chars, train_no, w, line_no = [], 0, 0, 0, 0
        for chunk in iter_line_chunks(src):
            for line in chunk:
                if line_no not in val:
                    if w < len(want) and want[w] == train_no:
                        picked.append(line)
                        chars += len(line)
                        w += 1
                    train_no += 1
                line_no += 1
        texts[lang] = LangText(lang, src, picked, [])
        totals[lang] = (chars / max(len(picked), 1) * n_train, n_train)
    return texts, totals


def _build(model_type: str, vocab_size: int, lines: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if model_type == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                          unk_token="<unk>", show_progress=False, max_piece_length=16)
    elif model_type == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    else:
        raise UserError(f"tokenizer type {model_type!r} is unknown; choose unigram or bpe")
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")

    def batches() -> Iterator[list[str]]:
        for i in range(0, len(lines), 1000):
            yield lines[i:i + 1000]

    tok.train_from_iterator(batches(), trainer=trainer, length=len(lines))
    if model_type == "unigram":
        tok = canonical_unigram(tok)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    if [ids[t] for t in SPECIAL_TOKENS] != list(range(N_SPECIAL)):
        raise RuntimeError(f"special tokens did not get ids 0..4: {ids}")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    return tok


SCORE_DECIMALS = 5


def canonical_vocab(vocab: list, n_special: int = N_SPECIAL) -> list:
    """A Unigram vocabulary ``[[piece, score], ...]`` in a form that does not depend on the run.

    The ``tokenizers`` trainer is not deterministic (hash-map iteration order): across runs on the
    same lines its scores differ by up to ~4e-11, pieces with tied scores change places (so ids
    change), and the required characters it appends after EM get scores stepped by 1e-4 in hash
    order. Here scores are rounded to ``SCORE_DECIMALS`` decimals, the appended characters (scores
    within 0.5 of the minimum; EM scores end about 1.0 above them) all get the minimum score, and
    pieces after the special tokens are sorted by (score descending, piece)."""
    head, rest = [list(x) for x in vocab[:n_special]], vocab[n_special:]
    if not rest:
        return head
    low = min(float(sc) for _, sc in rest)
    items = [(p, low if float(sc) < low + 0.5 else round(float(sc), SCORE_DECIMALS)) for p, sc in rest]
    items.sort(key=lambda x: (-x[1], x[0]))
    return head + [[p, sc] for p, sc in items]


def canonical_unigram(tok):
    """``tok`` rebuilt with :func:`canonical_vocab` (same pieces, run-independent ids and scores)."""
    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    model = spec["model"]
    pieces = [p for p, _ in model["vocab"]]
    unk = pieces[model["unk_id"]] if model.get("unk_id") is not None else None
    model["vocab"] = canonical_vocab(model["vocab"])
    if unk is not None:
        model["unk_id"] = [p for p, _ in model["vocab"]].index(unk)
    return Tokenizer.from_str(json.dumps(spec))


def wrap_fast(tok):
    """A transformers fast tokenizer (XLM-R special tokens) around a ``tokenizers.Tokenizer``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=512)


def train_tokenizer(corpus: CorpusSpec, out: str | Path, vocab_size: int = 16000, model_type: str = "unigram",
                    alpha: float = 0.3, seed: int = 0, max_lines: int = 100_000, languages=None,
                    val_fraction: float = 0.02, val_max_lines: int = 200) -> Path:
    """Train the shared vocabulary on ``corpus`` (training lines only) and save it to ``out``.

    ``out`` must not exist or be empty; it is written atomically (temporary directory + rename).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"tokenizer output {out} already exists; choose a new directory")
    if vocab_size <= N_SPECIAL + 10:
        raise UserError(f"vocab_size {vocab_size} is too small")
    files = resolve_files(corpus, languages)
    texts, totals = tokenizer_texts(files, max_lines, seed, val_fraction, val_max_lines)
    lines = sample_lines(texts, alpha, max_lines, seed, totals)
    tok = _build(model_type, vocab_size, lines)
    fast = wrap_fast(tok)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fast.save_pretrained(str(tmp))
        info = {"model_type": model_type, "vocab_size": len(fast), "requested_vocab_size": vocab_size,
                "alpha": alpha, "seed": seed, "lines": len(lines), "languages": files.languages,
                "files": {lang: str(p) for lang, p in files.files.items()}}
        (tmp / "metaxlm_tokenizer.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_tokenizer(path: str | Path):
    """Load a tokenizer directory (AutoTokenizer); it must define <mask> and <pad>."""
    from transformers import AutoTokenizer

    p = Path(path)
    if not p.is_dir():
        raise UserError(f"tokenizer {p} does not exist: give a directory saved by `metaxlm tokenizer train`")
    try:
        tok = AutoTokenizer.from_pretrained(str(p))
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"tokenizer {p} could not be loaded ({str(e).splitlines()[0][:200]})") from None
    if not getattr(tok, "is_fast", False):
        raise UserError(f"tokenizer {p} is not a fast tokenizer; train one with `metaxlm tokenizer train`")
    for name in ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tok, name, None) is None:
            raise UserError(f"tokenizer {p} has no {name.replace('_id', '')}; it cannot be used for MLM pretraining")
    return tok
