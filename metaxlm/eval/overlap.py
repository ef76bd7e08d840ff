"""Surface overlap between the two sides of a translation pair, and overlap bands.

A retrieval score can come from shared strings rather than meaning: aligned documentation paragraphs
share names, commands, paths and numbers, so even a random-init encoder retrieves many of them. The
*surface overlap* of a pair is the Dice coefficient of the multisets of character n-grams
(:data:`NGRAM` = 4) of the two sides, each side lowercased (NFKC) and cut into words (``\\w+`` runs);
a word shorter than n is one gram. Identical sides give 1, sides with no common n-gram give 0. The
score is computed from the texts at evaluation time, so it works for every parallel set (the
benchmark's, LASER Tatoeba files, any pair of files).

Bands (fixed thresholds, the same for every set and language, :data:`BANDS`):
``low`` overlap < 0.1, ``mid`` 0.1 ≤ overlap < 0.3, ``high`` ≥ 0.3. ``low-overlap`` is the subset
of pairs in the ``low`` band.

Pure functions only: no model, no disk.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

import numpy as np

NGRAM = 4
BANDS = (("low", 0.0, 0.1), ("mid", 0.1, 0.3), ("high", 0.3, float("inf")))
LOW = "low-overlap"  # name of the low-band subset in results
_WORD = re.compile(r"\w+")
DEFINITION = (f"Dice coefficient of the character {NGRAM}-gram multisets of the two sides (NFKC, lowercased, "
              f"within \\w+ words; a shorter word is one gram); bands: "
              + ", ".join(f"{name} [{lo:g}, {hi:g})" for name, lo, hi in BANDS))


def char_ngrams(text: str, n: int = NGRAM) -> Counter:
    """Multiset of the character ``n``-grams of ``text``'s words (see the module docstring)."""
    grams: Counter = Counter()
    for w in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if len(w) <= n:
            grams[w] += 1
        else:
            grams.update(w[i:i + n] for i in range(len(w) - n + 1))
    return grams


def compute_overlap(a: str, b: str, n: int = NGRAM) -> float:
    """Surface overlap of one pair in [0, 1]: ``2 |A ∩ B| / (|A| + |B|)`` over character n-gram multisets.

    Two sides without any word give 0 (nothing to share), unless both are equal strings (1)."""
    ga, gb = char_ngrams(a, n), char_ngrams(b, n)
    total = sum(ga.values()) + sum(gb.values())
    if total == 0:
        return 1.0 if a == b else 0.0
    return 2.0 * sum((ga & gb).values()) / total


def compute_overlaps(xx: Sequence[str], en: Sequence[str], n: int = NGRAM) -> np.ndarray:
    """Overlap of every aligned pair ``(xx[i], en[i])``."""
    if len(xx) != len(en):
        raise ValueError(f"need aligned sides, got {len(xx)} and {len(en)} sentences")
    return np.array([compute_overlap(a, b, n) for a, b in zip(xx, en)], dtype=np.float64)


def band_of(score: float) -> str:
    """The band name of one overlap score."""
    for name, lo, hi in BANDS:
        if lo <= score < hi:
            return name
    raise ValueError(f"overlap {score} is outside [0, 1]")


def compute_bands(scores: Sequence[float]) -> list[str]:
    """Band name of every score."""
    return [band_of(float(s)) for s in scores]


def compute_band_means(values: dict[str, Sequence[float]], bands: Sequence[str]) -> dict[str, dict]:
    """``{band: {metric: mean over the items in band, "n": count}}`` for per-item ``values``
    (e.g. ``{"acc_cosine_xx2en": hits}``); a band without items has ``n`` 0 and metrics None."""
    bands = np.asarray(list(bands))
    out = {}
    for name, _, _ in BANDS:
        mask = bands == name
        k = int(mask.sum())
        out[name] = {m: (float(np.asarray(v, dtype=np.float64)[mask].mean()) if k else None)
                     for m, v in values.items()}
        out[name]["n"] = k
    return out


def compute_overlap_summary(scores: Sequence[float]) -> dict:
    """Mean and median overlap and the share of pairs in each band."""
    s = np.asarray(list(scores), dtype=np.float64)
    if s.size == 0:
        return {"mean": None, "median": None, "share": {name: None for name, _, _ in BANDS}}
    bands = compute_bands(s)
    return {"mean": float(s.mean()), "median": float(np.median(s)),
            "share": {name: bands.count(name) / len(bands) for name, _, _ in BANDS}}
