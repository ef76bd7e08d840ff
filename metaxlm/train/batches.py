"""Token streams, packed blocks, language sampling and masking.

- Each language's training lines are tokenized (no special tokens) and concatenated into one stream
  with ``</s>`` after every line: the memory-mapped token files of :mod:`metaxlm.train.tokcache`
  (any 1-D integer array works). A block is ``<s>`` followed by ``seq_len - 1`` consecutive stream
  tokens starting at a random offset: every position is real text (no padding), and lines are packed
  across boundaries, as in RoBERTa's FULL-SENTENCES format.
- The language of each block is drawn from p(lang) ∝ (tokens of lang) ** alpha over the phase's
  languages.
- Masking: ``round(mask_prob × maskable tokens)`` positions per block (at least one; ``<s>``/``</s>``
  are never chosen), of which ``mask_replace`` become ``<mask>``, ``mask_random`` a random
  non-special token, the rest stay.
- The global batch of step ``s`` is a pure function of ``(seed, s)``: resuming needs only the step,
  and every process of a multi-process run builds the same global batch and takes its own shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metaxlm.train.sampling import language_probs

VAL_MASK_SEED = 777


@dataclass
class Streams:
    train: dict[str, np.ndarray]  # lang -> token stream (a read-only memory map)
    val: dict[str, np.ndarray]

    @property
    def languages(self) -> list[str]:
        return list(self.train)


@dataclass(frozen=True)
class MaskSpec:
    mask_prob: float
    mask_replace: float
    mask_random: float
    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    n_special: int = 5  # random replacements are drawn from [n_special, vocab_size)


def mask_blocks(blocks: np.ndarray, spec: MaskSpec, rng: np.random.Generator):
    """Mask ``blocks`` (B, L) in place-free fashion → (input_ids, masked bool (B, L), labels (n,))."""
    B, L = blocks.shape
    maskable = ~np.isin(blocks, np.asarray(spec.special_ids))
    scores = rng.random((B, L))
    scores[~maskable] = 2.0
    n_cand = maskable.sum(1)
    k = np.maximum(1, np.rint(n_cand * spec.mask_prob)).astype(int)
    k = np.minimum(k, np.maximum(n_cand, 1))
    order = np.argsort(scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(L)[None, :].repeat(B, 0), axis=1)
    masked = (rank < k[:, None]) & (maskable | (n_cand[:, None] == 0))
    labels = blocks[masked].astype(np.int64)
    r = rng.random(int(masked.sum()))
    rand_tok = rng.integers(spec.n_special, spec.vocab_size, size=r.shape[0])
    new = np.where(r < spec.mask_replace, spec.mask_id,
                   np.where(r < spec.mask_replace + spec.mask_random, rand_tok, labels))
    inputs = blocks.astype(np.int64)
    inputs[masked] = new
    return inputs, masked, labels


class BatchMaker:
    """Builds the global batch of any step for any phase (deterministic in ``(seed, step)``)."""

    def __init__(self, streams: Streams, seq_len: int, batch_size: int, alpha: float, seed: int,
                 spec: MaskSpec, bos_id: int):
        self.streams, self.seq_len, self.batch_size = streams, seq_len, batch_size
        self.alpha, self.seed, self.spec, self.bos = alpha, seed, spec, bos_id
        # tile very short streams so that a full block always fits
        self._train = {}
        for lang, s in streams.train.items():
            if len(s) == 0:
                raise ValueError(f"language {lang} has no tokens")
            reps = -(-seq_len // len(s))
            self._train[lang] = np.tile(s, reps + 1) if len(s) < seq_len else s
        self._probs: dict[tuple[str, ...], np.ndarray] = {}

    def probs(self, languages: tuple[str, ...]) -> np.ndarray:
        if languages not in self._probs:
            p = language_probs({lang: len(self.streams.train[lang]) for lang in languages}, self.alpha)
            self._probs[languages] = np.array([p[lang] for lang in languages])
        return self._probs[languages]

    def global_batch(self, step: int, languages: tuple[str, ...]):
        """(input_ids (B, L) int64, masked (B, L) bool, labels (n,), lang index per block (B,))."""
        rng = np.random.default_rng([self.seed, step, 1])
        B, L = self.batch_size, self.seq_len
        lang_idx = rng.choice(len(languages), size=B, p=self.probs(languages))
        blocks = np.empty((B, L), dtype=np.int64)
        blocks[:, 0] = self.bos
        for b in range(B):
            s = self._train[languages[lang_idx[b]]]
            off = int(rng.integers(0, len(s) - (L - 1) + 1))
            blocks[b, 1:] = s[off:off + L - 1]
        inputs, masked, labels = mask_blocks(blocks, self.spec, rng)
        return inputs, masked, labels, lang_idx

    def val_blocks(self, lang: str, n_blocks: int):
        """Fixed validation blocks of ``lang`` with fixed masks (the same for every run)."""
        s = self.streams.val[lang]
        L = self.seq_len
        n = min(n_blocks, len(s) // (L - 1))
        if n == 0:  # a very small slice: one shorter block
            if len(s) == 0:
                return None
            blocks = np.concatenate([[self.bos], s]).astype(np.int64)[None, :]
        else:
            blocks = np.empty((n, L), dtype=np.int64)
            blocks[:, 0] = self.bos
            blocks[:, 1:] = s[: n * (L - 1)].reshape(n, L - 1)
        rng = np.random.default_rng([VAL_MASK_SEED, int.from_bytes(lang.encode(), "little")])
        return mask_blocks(blocks, self.spec, rng)
