"""The statistics behind verdicts: a difference of means and its bootstrap interval, an exact permutation test.

Also Holm's correction for the number of comparisons, and the verdict of an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ALPHA", "BOOTSTRAP_DRAWS", "EXACT_SPLITS", "Judgement", "bootstrap_difference", "holm"]
__all__ += ["judge_family", "permutation_test", "verdict"]

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

    SciPy's ``permutation_test`` (independent samples; two-sided: twice the smaller one-sided p). Exact
    when the pooled samples have at most ``exact_up_to`` splits into groups of ``len(a)`` and ``len(b)``:
    every split counted (3 seeds against 3 have 20, so the smallest p is 2/20 = 0.1; 10 against 10 have
    184,756). Else from ``draws`` random splits. NaNs are left out; NaN when a sample has fewer than 2 values.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2:  # one seed has no spread to test against (SciPy refuses it too)
        return math.nan
    splits = math.comb(len(x) + len(y), len(x))
    result = stats.permutation_test(
        (x, y), _difference_of_means, permutation_type="independent", vectorized=True, alternative="two-sided",
        n_resamples=splits if splits <= exact_up_to else draws, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.pvalue)


def _difference_of_means(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (statsmodels' ``multipletests``): p-values for the whole family (NaNs kept).

    The k-th smallest of m p-values is multiplied by ``m - k + 1`` (k from 1), made non-decreasing, capped at 1.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    known = np.isfinite(p)
    adjusted = np.full(len(p), math.nan)
    if known.any():
        adjusted[known] = multipletests(p[known], method="holm")[1]
    return adjusted.tolist()


#: The family-wise error rate of a verdict.
ALPHA = 0.05


@dataclass(frozen=True)
class Judgement:
    """One comparison of a family: ``mean(a) - mean(b)`` and what the data say of it."""

    difference: float
    low: float
    """The 95% percentile-bootstrap interval of the difference (its size, not the verdict)."""
    high: float
    p: float
    """The exact (or Monte-Carlo) permutation p-value of the comparison alone."""
    adjusted: float
    """``p`` Holm-adjusted over the family."""
    verdict: str
    """``better`` / ``worse`` where ``adjusted < ALPHA``, else ``no difference`` (``n/a`` without data)."""


def judge_family(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[Judgement]:
    """Judge every ``(a, b)`` of one family of comparisons, the verdicts from the Holm-adjusted p-values."""
    sizes = [bootstrap_difference(a, b) for a, b in pairs]
    raw = [permutation_test(a, b) for a, b in pairs]
    out = []
    for (diff, low, high), p, adjusted in zip(sizes, raw, holm(raw), strict=True):
        significant = "better" if diff > 0 else "worse"
        call = "n/a" if not math.isfinite(adjusted) else "no difference" if adjusted >= ALPHA else significant
        out.append(Judgement(diff, low, high, p, adjusted, call))
    return out
