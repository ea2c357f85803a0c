"""Schedule statistics: hand examples, and that they tell a memory that exploits from a uniform choice."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from hypergym.plots import Run, load_runs
from hypergym.schedules import pooled, schedule_stats

#: One env, 5 steps per update, a tiny net: 600 env steps are 120 updates, each a hyper-step under `code`.
SMALL = {"n_envs": 1, "n_steps": 5, "obs_mode": "random", "policy_kwargs": {"net_arch": [16]}}


def _run(actions, rewards, space=None) -> Run:
    return Run(
        path=Path("run"), label="x", seed=0, summary={}, env_steps=np.arange(len(actions)),
        inner_return=np.full(len(actions), np.nan), actions=np.asarray(actions, dtype=np.float64),
        hyper_rewards=np.asarray(rewards, dtype=np.float64),
        space=space if space is not None else {"learning_rate": [1.0, 2.0, 0.5]},
    )  # fmt: skip


def test_schedule_stats_counts_a_hand_example():
    nan = np.nan
    run = _run([2, 2, 0, 1, 1, 1, 0, 2], [-1.0, nan, 0.0, nan, -3.0, 2.0, nan, nan])
    s = schedule_stats(run)  # the second half: actions 1 1 0 2, rewards -3 and 2
    assert (s.steps, s.repeats, s.pairs, s.counts) == (4, 1, 3, (1, 2, 1))
    assert s.repeat_rate == pytest.approx(1 / 3) and s.uniform_repeat_rate == pytest.approx(1 / 3)
    assert s.hparam_means == {"learning_rate": pytest.approx((2 + 2 + 1 + 0.5) / 4)}
    assert s.grid_means == {"learning_rate": pytest.approx(3.5 / 3)}
    assert (s.rewards, s.nonnegative_rewards, s.nonnegative_share) == (2, 1, 0.5)
    whole = schedule_stats(run, start=0.0)
    assert (whole.repeats, whole.pairs, whole.rewards, whole.nonnegative_rewards) == (3, 7, 4, 2)
    both = pooled([s, whole])
    assert (both.steps, both.repeats, both.pairs, both.counts) == (12, 4, 10, (3, 5, 4))
    assert both.repeat_rate == pytest.approx(0.4)


def test_schedule_stats_decode_a_flat_action_row_major_over_two_grids():
    space = {"a": [1.0, 2.0], "b": [10.0, 20.0, 30.0]}  # action = 3 * i_a + i_b, as HyperparameterSpace
    s = schedule_stats(_run([0, 5, 4, 3], [np.nan] * 4, space), start=0.0)
    assert s.n_actions == 6 and s.counts == (1, 0, 0, 1, 1, 1)
    assert s.hparam_means == {"a": pytest.approx(7 / 4), "b": pytest.approx((10 + 30 + 20 + 10) / 4)}
    assert np.isnan(s.nonnegative_share)


def test_schedule_stats_refuse_what_they_cannot_read():
    with pytest.raises(ValueError, match=r"need 0 <= start < end <= 1"):
        schedule_stats(_run([0, 1], [np.nan] * 2), start=0.5, end=0.5)
    with pytest.raises(ValueError, match="names no action space"):
        schedule_stats(_run([0, 1], [np.nan] * 2, space={}))
    with pytest.raises(ValueError, match="is empty"):
        schedule_stats(_run([0], [np.nan]), start=0.0, end=0.5)
    with pytest.raises(ValueError, match=r"outside Discrete\(3\): valid are 0\.\.2"):
        schedule_stats(_run([0, 3], [np.nan] * 2), start=0.0)
    with pytest.raises(ValueError, match="not flat Discrete"):
        schedule_stats(_run([0, np.nan], [np.nan] * 2), start=0.0)
    with pytest.raises(ValueError, match="different action spaces"):
        pooled([schedule_stats(_run([0, 1], [np.nan] * 2)), schedule_stats(_run([0, 1], [np.nan] * 2, {"a": [1, 2]}))])


def test_a_greedy_memory_repeats_where_a_random_schedule_does_not(tmp_path):
    """On real runs: EPGT exploiting the released vector memory (epsilon 0 after a short warm-up; CartPole's rewards are
    positive, so the one-hot write rates the action taken above the others) keeps its action far more often
    than the uniform random schedule, whose repeat rate is about the uniform one."""
    from hypergym.agents import make_agent
    from hypergym.runner import run

    # The transposed read: the released reshape mixes the neighbours' values across actions, so with it the
    # action just taken is not the one a positive write rated up (its repeat rate here was 0.20, random's 0.19).
    greedy = {"decay_fraction": 0.1, "floor": 0.0, "released_reshape": False}
    for name, agent_kw in (("episodic", greedy), ("random", {})):
        env = gym.make("HyperRL-A2C-CartPole", profile="code", total_env_steps=600, **SMALL)
        agent = make_agent(name, env, seed=0, profile="code", **agent_kw)
        run(env, agent, seed=0, out=tmp_path / name, progress=False)
    (episodic,), (random,) = load_runs([tmp_path / "episodic"]), load_runs([tmp_path / "random"])
    s_e, s_r = schedule_stats(episodic), schedule_stats(random)
    assert s_e.steps == s_r.steps == 60 and s_e.n_actions == 5
    assert s_r.repeat_rate < 0.45 and s_e.repeat_rate > s_r.repeat_rate + 0.2
