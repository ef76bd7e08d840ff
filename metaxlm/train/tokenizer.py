"""The shared subword vocabulary: ``metaxlm tokenizer train`` and :func:`train_tokenizer`.

A Unigram (default) or BPE model from the ``tokenizers`` library, trained on lines sampled from
every language with the same exponent ``alpha`` as pretraining (sizes in characters), NFKC
normalisation and SentencePiece-style ``▁`` word boundaries (works for languages without spaces).
Saved as a transformers fast tokenizer with XLM-R special tokens ``<s> <pad> </s> <unk>`` (ids 0-3)
and ``<mask>`` (id 4), so ``AutoTokenizer.from_pretrained(dir)`` loads it.

**Alphabet.** Every character of the sample is a piece of the vocabulary when the alphabet fits in
half of it (``len(alphabet) <= vocab_size // 2``; the ``tokenizers`` Unigram trainer itself fails
outright once the alphabet exceeds ``vocab_size``). A larger alphabet (Japanese text with a
400-piece vocabulary) is limited as SentencePiece's ``character_coverage`` does: the most frequent
characters covering :data:`CHARACTER_COVERAGE` (99.95%) of the sampled characters are kept, never
more than ``vocab_size // 2``; the others are cut out of the training words (each splits its word
there, as it will when encoded) and encode as ``<unk>``. Coverage below :data:`MIN_COVERAGE` is
refused with one line naming a vocabulary size that works. See :func:`choose_alphabet`; the
outcome is recorded in ``metaxlm_tokenizer.json`` (``alphabet``).
"""

from __future__ import annotations

import json
import shutil
import sys
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


CHARACTER_COVERAGE = 0.9995  # SentencePiece's default character_coverage
MIN_COVERAGE = 0.95  # below this share of the sampled characters, a vocabulary size is refused
BOUNDARY = "▁"  # the word-boundary character (Metaspace); always in the alphabet


def char_counts(lines: list[str]) -> dict[str, int]:
    """How often each character occurs in ``lines`` as the trainer sees them: after NFKC, with each
    space and each line start counted as the word-boundary character ``▁``."""
    from collections import Counter

    from tokenizers import normalizers

    nfkc = normalizers.NFKC()
    counts: Counter = Counter()
    for i in range(0, len(lines), 1000):
        counts.update(nfkc.normalize_str("\n".join(lines[i:i + 1000])))  # NFKC never composes across "\n"
    counts.pop("\n", None)
    spaces = counts.pop(" ", 0)
    if lines:
        counts[BOUNDARY] += spaces + len(lines)
    return dict(counts)


def choose_alphabet(counts: dict[str, int], vocab_size: int) -> dict:
    """The characters the vocabulary keeps (see the module docstring), a pure function of ``counts``.

    Returns ``{"distinct": n, "kept": k, "coverage": share of the character occurrences kept,
    "limited": bool, "keep": kept characters, "rare": the others}`` (``keep``/``rare`` sorted); raises
    UserError when the characters that fit in half of the vocabulary cover less than :data:`MIN_COVERAGE`."""
    cap = vocab_size // 2
    total = sum(counts.values())
    if len(counts) <= cap or total == 0:
        return {"distinct": len(counts), "kept": len(counts), "coverage": 1.0, "limited": False,
                "keep": sorted(counts), "rare": []}
    # most frequent first, ties by code point; the boundary character always stays
    order = sorted(counts, key=lambda c: (c != BOUNDARY, -counts[c], c))
    cum, k_cov, k_min = 0, len(order), None
    for i, c in enumerate(order, start=1):
        cum += counts[c]
        if k_min is None and cum >= MIN_COVERAGE * total:
            k_min = i
        if cum >= CHARACTER_COVERAGE * total:
            k_cov = i
            break
    k = min(k_cov, cap)
    coverage = sum(counts[c] for c in order[:k]) / total
    if coverage < MIN_COVERAGE:
        raise UserError(
            f"vocab_size {vocab_size} (--vocab-size) is too small for this corpus's alphabet: the {cap} most "
            f"frequent of its {len(counts):,} characters (half of the vocabulary) cover {coverage:.1%} of the "
            f"sampled text, under the {MIN_COVERAGE:.0%} needed; give --vocab-size {2 * k_min} or more "
            f"({2 * k_cov} keeps {CHARACTER_COVERAGE:.2%})")
    return {"distinct": len(counts), "kept": k, "coverage": round(coverage, 6), "limited": k < len(order),
            "keep": sorted(order[:k]), "rare": sorted(order[k:])}


def _char_class(chars: list[str], negate: bool = False) -> str:
    """A regex character class (Oniguruma) matching exactly ``chars`` (``negate``: every other
    character), as code-point ranges in ``\\x{..}`` escapes."""
    cps = sorted({ord(c) for c in chars})
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:x}}}" + (f"-\\x{{{cps[j]:x}}}" if j > i else ""))
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def _rare_pattern(alphabet: dict) -> str:
    """The shorter regex for "a character the vocabulary leaves out": the rare ones, or not a kept one."""
    rare, keep = alphabet["rare"], alphabet["keep"]
    return _char_class(rare) if len(rare) <= len(keep) else _char_class(keep, negate=True)


def _build(model_type: str, vocab_size: int, lines: list[str], alphabet: dict | None = None):
    """Train the model on ``lines``; ``alphabet`` (:func:`choose_alphabet`) names the rare characters to
    leave out of the vocabulary (None or none: every character is kept, the trainer's own behaviour)."""
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                            trainers)

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
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    rare = bool((alphabet or {}).get("rare"))
    if rare:  # training only: rare characters are cut out of the words (so never required pieces)
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [metaspace, pre_tokenizers.Split(Regex(_rare_pattern(alphabet)), behavior="removed")])
    else:
        tok.pre_tokenizer = metaspace
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")

    def batches() -> Iterator[list[str]]:
        for i in range(0, len(lines), 1000):
            yield lines[i:i + 1000]

    tok.train_from_iterator(batches(), trainer=trainer, length=len(lines))
    if rare:
        tok.pre_tokenizer = metaspace  # encoding: a rare character is an unknown one (<unk>)
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
    pieces after the special tokens are sorted by (score descending, piece).

    The minimum itself is rounded too: it is the lowest EM score of the model, and its last digits
    are trainer noise as well (seen differing between fresh processes in 2 of 6 runs).
    """
    head, rest = [list(x) for x in vocab[:n_special]], vocab[n_special:]
    if not rest:
        return head
    low = round(min(float(sc) for _, sc in rest), SCORE_DECIMALS)
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


def save_tokenizer(tok, directory: str | Path) -> None:
    """``tok.save_pretrained(directory)``, naming the class every transformers version loads: 5.x writes
    ``TokenizersBackend``, which 4.x cannot import; ``PreTrainedTokenizerFast`` loads in both with the
    same ids (``XLMRobertaTokenizerFast`` would not: 5.x rebuilds its pipeline)."""
    tok.save_pretrained(str(directory))
    cfg_path = Path(directory) / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("tokenizer_class") == "TokenizersBackend":
            cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
            cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_tokenizer_options(vocab_size: int = 16000, model_type: str = "unigram", alpha: float = 0.3,
                            seed: int = 0, max_lines: int = 100_000, val_fraction: float = 0.02,
                            val_max_lines: int = 200) -> None:
    """The options of :func:`train_tokenizer` (``metaxlm tokenizer train``), checked before any work:
    each bad one is a UserError naming it and its CLI option."""
    import math
    from numbers import Integral, Real

    from metaxlm.train.config import MAX_VOCAB_SIZE

    def num(x) -> bool:
        return isinstance(x, Real) and not isinstance(x, bool)

    def integer(x) -> bool:
        return isinstance(x, Integral) and not isinstance(x, bool)

    if model_type not in ("unigram", "bpe"):
        raise UserError(f"tokenizer type {model_type!r} is unknown (--type): choose unigram or bpe")
    if not integer(vocab_size) or not N_SPECIAL + 10 < vocab_size <= MAX_VOCAB_SIZE:
        raise UserError(f"vocab_size {vocab_size} (--vocab-size) is out of range: give {N_SPECIAL + 11} to "
                        f"{MAX_VOCAB_SIZE:,} (2**24; the tokenizers trainers reserve memory per requested piece)")
    if not (num(alpha) and math.isfinite(alpha) and alpha >= 0):
        raise UserError(f"alpha {alpha} (--alpha, the sampling exponent) must be a finite number >= 0, e.g. 0.3")
    if not integer(max_lines) or max_lines < 1:
        raise UserError(f"max_lines {max_lines} (--max-lines) must be at least 1: the tokenizer trains on that "
                        "many sampled lines")
    if not integer(seed) or seed < 0:
        raise UserError(f"seed {seed} (--seed) must be an integer >= 0")
    if not (num(val_fraction) and 0 < val_fraction < 1):
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if not integer(val_max_lines) or val_max_lines < 1:
        raise UserError(f"val_max_lines must be at least 1, got {val_max_lines}")


def train_tokenizer(corpus: CorpusSpec, out: str | Path, vocab_size: int = 16000, model_type: str = "unigram",
                    alpha: float = 0.3, seed: int = 0, max_lines: int = 100_000, languages=None,
                    val_fraction: float = 0.02, val_max_lines: int = 200) -> Path:
    """Train the shared vocabulary on ``corpus`` (training lines only) and save it to ``out``.

    ``out`` must not exist or be empty; it is written atomically (temporary directory + rename).
    """
    from metaxlm.paths import check_output

    out = check_output(out, "tokenizer directory")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"tokenizer output {out} already exists; choose a new directory")
    check_tokenizer_options(vocab_size, model_type, alpha, seed, max_lines, val_fraction, val_max_lines)
    files = resolve_files(corpus, languages)
    texts, totals = tokenizer_texts(files, max_lines, seed, val_fraction, val_max_lines)
    lines = sample_lines(texts, alpha, max_lines, seed, totals)
    alphabet = choose_alphabet(char_counts(lines), vocab_size)
    if alphabet["limited"]:
        print(f"note: the sample's {alphabet['distinct']:,} distinct characters do not fit in half of the "
              f"{vocab_size:,}-piece vocabulary: keeping the {alphabet['kept']:,} most frequent "
              f"({alphabet['coverage']:.2%} of the sampled characters); the others encode as <unk>", file=sys.stderr)
    tok = _build(model_type, vocab_size, lines, alphabet)
    fast = wrap_fast(tok)
    out.parent.mkdir(parents=True, exist_ok=True)
    from metaxlm.rundir import umask_mkdtemp
    tmp = Path(umask_mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_tokenizer(fast, tmp)
        info = {"model_type": model_type, "vocab_size": len(fast), "requested_vocab_size": vocab_size,
                "alpha": alpha, "seed": seed, "lines": len(lines), "languages": files.languages,
                "files": {lang: str(p) for lang, p in files.files.items()},
                "alphabet": {"distinct_characters": alphabet["distinct"], "kept_characters": alphabet["kept"],
                             "coverage": alphabet["coverage"], "limited": alphabet["limited"],
                             "rule": f"all characters when they fit in vocab_size // 2 = {vocab_size // 2}; else "
                                     f"the most frequent covering {CHARACTER_COVERAGE} of the sampled characters "
                                     f"(NFKC, spaces as ▁), at most vocab_size // 2; the rest encode as <unk>"}}
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
    except Exception as e:  # a broken file: OSError/ValueError, KeyError/TypeError, or tokenizers' own Exception
        if not isinstance(e, (OSError, ValueError, TypeError, KeyError)) and type(e) is not Exception:
            raise
        from metaxlm.errors import one_line

        detail = one_line(e) if isinstance(e, (OSError, ValueError)) else f"{type(e).__name__}: {one_line(e)}"
        raise UserError(f"tokenizer {p} could not be loaded ({detail[:200]}): train it again with "
                        "`metaxlm tokenizer train`") from None
    if not getattr(tok, "is_fast", False):
        raise UserError(f"tokenizer {p} is not a fast tokenizer; train one with `metaxlm tokenizer train`")
    for name in ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tok, name, None) is None:
            raise UserError(f"tokenizer {p} has no {name.replace('_id', '')}; it cannot be used for MLM pretraining")
    return tok
