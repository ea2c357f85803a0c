"""The statistics behind a study's verdicts: a difference of means, its bootstrap interval, and the verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["BOOTSTRAP_DRAWS", "bootstrap_difference", "verdict"]

#: Bootstrap resamples of a difference of means.
BOOTSTRAP_DRAWS = 10_000


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
