"""The statistics behind verdicts: a difference of means and its bootstrap interval, an exact permutation test.

Also Holm's correction for the number of comparisons, and the verdict of an interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["BOOTSTRAP_DRAWS", "EXACT_SPLITS", "bootstrap_difference", "holm", "permutation_test", "verdict"]

#: Bootstrap resamples of a difference of means (and random splits of a permutation test too large to enumerate).
BOOTSTRAP_DRAWS = 10_000
#: Splits a permutation test enumerates exactly (10 seeds against 10: 184,756).
EXACT_SPLITS = 200_000


def bootstrap_difference(
    a: Sequence[float], b: Sequence[float], draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` and its 95% percentile-bootstrap interval (each sample resampled on its own).

    Returns:
        ``(difference, low, high)``; NaNs when either sample is empty.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means_x = x[rng.integers(len(x), size=(draws, len(x)))].mean(1)
    diffs = means_x - y[rng.integers(len(y), size=(draws, len(y)))].mean(1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(x.mean() - y.mean()), float(low), float(high)


def verdict(low: float, high: float) -> str:
    """``better`` or ``worse`` when the interval ``[low, high]`` of a difference excludes 0, else ``no difference``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return "better" if low > 0 else "worse" if high < 0 else "no difference"


def permutation_test(
    a: Sequence[float], b: Sequence[float], exact_up_to: int = EXACT_SPLITS, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> float:
    """Two-sided p-value of ``mean(a) - mean(b)`` under the null that the seeds' labels are exchangeable.

    Exact when the pooled samples have at most ``exact_up_to`` splits into groups of ``len(a)`` and
    ``len(b)``: every split is counted (3 seeds against 3 have 20, so the smallest p is 2/20 = 0.1; 10
    against 10 have 184,756). Else from ``draws`` random splits, ``(extreme + 1) / (draws + 1)``. NaNs are
    left out; NaN when a sample is empty.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return math.nan
    pooled, n = np.concatenate([x, y]), len(x)
    exact = math.comb(len(pooled), n) <= exact_up_to
    if exact:
        firsts = np.array(list(itertools.combinations(range(len(pooled)), n)))
    else:
        shuffled = np.random.default_rng(seed).permuted(np.tile(np.arange(len(pooled)), (draws, 1)), axis=1)
        firsts = shuffled[:, :n]
    sums = pooled[firsts].sum(1)
    differences = sums / n - (pooled.sum() - sums) / len(y)
    observed = abs(x.mean() - y.mean())
    extreme = int((np.abs(differences) >= observed * (1 - 1e-12)).sum())  # ties count: rounding of equal sums
    return extreme / len(differences) if exact else (extreme + 1) / (draws + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: p-values that hold for the whole family of comparisons (NaNs kept).

    The k-th smallest of m p-values is multiplied by ``m - k + 1`` (k from 1), made non-decreasing, capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    known = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, i in enumerate(known[np.argsort(p[known], kind="stable")]):
        running = max(running, min(1.0, (len(known) - rank) * float(p[i])))
        adjusted[i] = running
    return adjusted.tolist()
