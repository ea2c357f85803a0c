"""The statistics of verdicts: the exact permutation test, Holm's correction, and compare's table of them."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from hypergym.plots import Run, differences_table
from hypergym.verdicts import holm, permutation_test


def _brute_force(a, b):
    """Every split of the pooled samples: twice the smaller one-sided p (SciPy's two-sided p)."""
    pooled, n = np.array(a + b, dtype=float), len(a)
    observed, greater, less, total = np.mean(a) - np.mean(b), 0, 0, 0
    for first in itertools.combinations(range(len(pooled)), n):
        rest = [i for i in range(len(pooled)) if i not in first]
        d = pooled[list(first)].mean() - pooled[rest].mean()
        greater += d >= observed - 1e-12
        less += d <= observed + 1e-12
        total += 1
    return min(1.0, 2 * min(greater, less) / total)


def test_the_permutation_test_counts_every_split_exactly():
    rng = np.random.default_rng(0)
    for n, m in ((3, 3), (4, 6), (5, 5)):
        a, b = rng.normal(size=n).tolist(), (rng.normal(size=m) + 1).tolist()
        assert permutation_test(a, b) == pytest.approx(_brute_force(a, b), abs=1e-12)
    assert permutation_test([10, 11, 12], [1, 2, 3]) == pytest.approx(2 / 20)  # the smallest p with 3 vs 3
    assert permutation_test([1, 2, 3], [1, 2, 3]) == 1.0
    assert permutation_test(list(range(10, 20)), list(range(10))) == pytest.approx(2 / math.comb(20, 10))
    assert math.isnan(permutation_test([], [1.0])) and math.isnan(permutation_test([1.0], [2.0, 3.0]))


def test_a_permutation_test_too_large_to_enumerate_samples_splits():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=15).tolist(), (rng.normal(size=15) + 0.8).tolist()
    exact = permutation_test(a, b)  # C(30, 15) = 155,117,520 splits: not enumerated
    sampled = [permutation_test(a, b, exact_up_to=0, draws=20_000, seed=s) for s in range(2)]
    assert sampled[0] != sampled[1] and all(s == pytest.approx(exact, abs=0.01) for s in sampled)


def test_holm_multiplies_the_kth_smallest_by_m_minus_k_plus_1_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])
    assert holm([0.9, 0.9]) == pytest.approx([1.0, 1.0])
    raw = [0.03, 0.04]  # each below 0.05 alone; as a family of two, neither
    assert all(p < 0.05 for p in raw) and all(p >= 0.05 for p in holm(raw))
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def _runs(label, finals):
    empty = np.zeros(0)
    return [
        Run(Path(f"{label}{i}"), label, i, {"final_return": f}, env_steps=empty, inner_return=empty)
        for i, f in enumerate(finals)
    ]


def test_compares_table_calls_a_difference_only_where_the_adjusted_p_allows():
    static = _runs("static", [100, 101, 102, 103, 104, 105])
    better = _runs("better", [200, 201, 202, 203, 204, 205])
    same = _runs("same", [99, 104, 101, 106, 100, 102])
    table = differences_table(static + better + same)
    lines = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "Holm-adjusted over 2 comparison(s)" in table
    assert lines["better"].endswith("better") and "+100.00" in lines["better"]
    assert lines["same"].endswith("no difference")
    # 3 seeds against 3 cannot reach p < 0.05 (the smallest exact p is 0.1): no verdict, however far apart
    few = differences_table(_runs("static", [1, 2, 3]) + _runs("better", [100, 101, 102]))
    assert few.splitlines()[1].endswith("no difference") and "p 0.100" in few
    assert differences_table(better) == ""  # no baseline
