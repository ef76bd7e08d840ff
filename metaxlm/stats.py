"""Small pure statistics shared by evaluations and reports (no I/O)."""

from __future__ import annotations

import math
from typing import Sequence

# two-sided 97.5% Student-t quantiles for 1..30 degrees of freedom (then the normal 1.96)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]


def t_quantile_975(dof: int) -> float:
    if dof < 1:
        raise ValueError("need at least one degree of freedom")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample std and a 95% t-interval over seeds: ``{"mean","std","ci95","n","values"}``.

    With one value the interval collapses to the value (std 0): no uncertainty can be claimed.
    """
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0, "values": []}
    mean = sum(vals) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": [mean, mean], "n": 1, "values": vals}
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n, "values": vals}
