"""The population's raw env steppers: the native CartPole stepper is the per-env loop, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from hypergym.envs.stepping import CartPoleStepper, LoopStepper, make_stepper
from hypergym.envs.tasks import TASKS


def _balance(obs: np.ndarray) -> np.ndarray:
    """A PD controller that keeps most poles up until the time limit (so truncations happen)."""
    return (obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 1] > 0).astype(np.int64)


def test_make_stepper_picks_native_cartpole() -> None:
    assert isinstance(make_stepper(TASKS["CartPole"], [0, 1]), CartPoleStepper)
    assert isinstance(make_stepper(TASKS["Pendulum"], [0, 1]), LoopStepper)


@pytest.mark.parametrize("policy", ["random", "balance"])
def test_cartpole_stepper_equals_loop_of_gym_make_envs(policy: str) -> None:
    seeds = [3, 4, 5, 11, 12, 13]
    loop, native = LoopStepper(TASKS["CartPole"], seeds), CartPoleStepper(TASKS["CartPole"], seeds)
    obs_loop, obs_native = loop.reset(), native.reset()
    np.testing.assert_array_equal(obs_loop, obs_native)
    rng = np.random.default_rng(0)
    ends = truncations = 0
    for _ in range(1200):
        actions = rng.integers(0, 2, len(seeds)) if policy == "random" else _balance(obs_loop)
        obs_loop, r_loop, term_loop, trunc_loop, final_loop = loop.step(actions)
        obs_native, r_native, term_native, trunc_native, final_native = native.step(actions)
        np.testing.assert_array_equal(obs_loop, obs_native)
        np.testing.assert_array_equal(r_loop, r_native)
        np.testing.assert_array_equal(term_loop, term_native)
        np.testing.assert_array_equal(trunc_loop, trunc_native)
        assert final_loop.keys() == final_native.keys()
        for j in final_loop:
            np.testing.assert_array_equal(final_loop[j], final_native[j])
        ends += int((term_loop | trunc_loop).sum())
        truncations += len(final_loop)
    assert ends > 0
    if policy == "balance":
        assert truncations > 0  # the time-limit path was exercised


def test_cartpole_slots_are_independent() -> None:
    """Slot 0's states do not depend on what the other slots do (their ends draw no shared randomness)."""
    seeds = [7, 8, 9]
    a, b = CartPoleStepper(TASKS["CartPole"], seeds), CartPoleStepper(TASKS["CartPole"], seeds)
    a.reset(), b.reset()
    rng = np.random.default_rng(1)
    for _ in range(300):
        acts = rng.integers(0, 2, 3)
        other = acts.copy()
        other[1:] = 1 - other[1:]  # the other slots act differently (and end at other times)
        np.testing.assert_array_equal(a.step(acts)[0][0], b.step(other)[0][0])
