"""Language sampling with exponent alpha (XLM / XLM-R): p(lang) ∝ (n_lang / N) ** alpha."""

from __future__ import annotations

from typing import Mapping

import numpy as np


def language_probs(sizes: Mapping[str, float], alpha: float) -> dict[str, float]:
    """Multinomial over languages: alpha = 1 follows the data, alpha = 0 is uniform."""
    langs = list(sizes)
    n = np.array([float(sizes[lang]) for lang in langs])
    if (n <= 0).any():
        raise ValueError("every language needs a positive size")
    p = (n / n.sum()) ** alpha
    p = p / p.sum()
    return {lang: float(x) for lang, x in zip(langs, p)}
