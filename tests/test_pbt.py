"""Population baselines: the in-process exploit (copy_member), PBT's explore, PB2's GP-UCB, the agents."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import fit_batch

import hypergym  # noqa: F401
from hypergym.agents import make_agent as make_population_agent
from hypergym.agents.pb2 import PB2Agent, gp_ucb_suggest, grid_points
from hypergym.agents.pbt import PBTAgent, explore_adjacent, split_quantiles

TINY_NET = {"net_arch": {"pi": [8], "vf": [8]}}
SMALL_A2C = {"total_env_steps": 4000, "n_envs": 2, "policy_kwargs": TINY_NET, "updates_per_phase": 2}
SMALL_PPO = {
    "total_env_steps": 2048, "batch_size": 16, "n_epochs": 2, "policy_kwargs": TINY_NET,
    **fit_batch("HyperRL-PPO-Pendulum", 32),
    "normalize": True,
}  # fmt: skip


def _vec(env_id="HyperRL-A2C-CartPole", n=3, **kwargs):
    settings = {**(SMALL_A2C if "A2C" in env_id else SMALL_PPO), "obs_mode": "random", **kwargs}
    return gym.make_vec(env_id, num_envs=n, **settings)


def _distinct_actions(env, n):
    nvec = env.space.nvec
    return np.array([env.space.from_indices([i % k for k in nvec], "discrete") for i in range(n)])


def _member_state(env, i):
    learner = env.learner
    state = [learner.flat[i], learner.grad_slots[:, i], *(t[i] for t in learner.optimizer.tensors())]
    state += [t[i] for t in learner.batch.values()]
    return [t.detach().clone() for t in state]


@pytest.mark.parametrize(("env_id", "obs_mode"), [("HyperRL-A2C-CartPole", "random"),
                                                  ("HyperRL-PPO-Pendulum", "vae")])  # fmt: skip
def test_copy_member_makes_the_next_update_equal(env_id, obs_mode):
    extra = {"encoder_kwargs": {"hidden": 8, "train_every": 2, "batch_size": 2}} if obs_mode == "vae" else {}
    if "PPO" in env_id:  # one batch size, so that every member updates on the step after the copy
        extra["hyperparams"] = {"clip_range": [0.1, 0.2, 0.3], "learning_rate": [1e-4, 3e-4, 1e-3]}
    env = _vec(env_id, obs_mode=obs_mode, **extra)
    env.reset(seed=0)
    actions = _distinct_actions(env, 3)
    for _ in range(3):  # the members drift apart
        env.step(actions)
    assert not torch.equal(env.learner.flat[0], env.learner.flat[2])
    obs = env.copy_member(0, 2)
    np.testing.assert_array_equal(obs[0], obs[2])  # the hyper-state (encoder included) is the copy's
    for a, b in zip(_member_state(env, 0), _member_state(env, 2), strict=True):
        assert torch.equal(a, b)
    if env.learner.venv.normalizer is not None:
        norm = env.learner.venv.normalizer
        np.testing.assert_array_equal(norm.obs_mean[0], norm.obs_mean[2])
        np.testing.assert_array_equal(norm.ret_var[0], norm.ret_var[2])
    assert list(env.recent_returns()[0]) == list(env.recent_returns()[2])
    same = actions.copy()
    same[0] = same[2]
    _, _, _, _, info = env.step(same)
    for name, values in info["losses"].items():
        assert values[0] == values[2], name
    assert torch.equal(env.learner.flat[0], env.learner.flat[2])  # the same update from the same state


def test_hyperparameters_after_a_copy_are_the_next_actions():
    # A per-step (learning rate) and a per-rollout (gae_lambda) hyperparameter: both must be the next action's.
    env = _vec(hyperparams={"learning_rate": [1e-4, 7e-4, 3e-3], "gae_lambda": [0.9, 0.95, 1.0]})
    env.reset(seed=1)
    actions = _distinct_actions(env, 3)
    env.step(actions)
    env.copy_member(0, 2)
    chosen = actions.copy()
    chosen[0] = actions[1]  # member 0 now trains with member 1's values, not the copied member 2's
    mine, copied = env.space.decode(chosen[0]), env.space.decode(actions[2])
    assert mine["learning_rate"] != copied["learning_rate"] and mine["gae_lambda"] != copied["gae_lambda"]
    _, _, _, _, info = env.step(chosen)
    # The update used the copied rollout, whose advantages were computed with the copied member's lambda...
    assert info["hyperparams"]["gae_lambda"][0] == pytest.approx(copied["gae_lambda"])
    # ...and the learning rate member 0's action chose.
    assert info["hyperparams"]["learning_rate"][0] == pytest.approx(mine["learning_rate"])
    # The rollout collected after that update used the lambda member 0's action chose.
    assert env.learner.hyperparams_in_force()["gae_lambda"][0] == pytest.approx(mine["gae_lambda"])


def test_copy_member_refuses_bad_indices():
    env = _vec()
    with pytest.raises(RuntimeError, match="reset"):
        env.copy_member(0, 1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not a member index"):
        env.copy_member(3, 0)
    with pytest.raises(ValueError, match="not a member index"):
        env.copy_member(0, -1)


def test_split_quantiles_sizes_and_order():
    rng = np.random.default_rng(0)
    bottom, top = split_quantiles(np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0]), 0.25, rng)
    assert sorted(bottom.tolist()) == [1, 5] and sorted(top.tolist()) == [2, 6]
    bottom, top = split_quantiles(np.array([1.0, 2.0, 3.0]), 0.5, rng)  # ceil(1.5) = 2 > 3/2: floor to 1
    assert bottom.tolist() == [0] and top.tolist() == [2]
    assert len(split_quantiles(np.array([1.0, 2.0]), 0.0, rng)[0]) == 0


def test_explore_moves_to_adjacent_values_or_resamples_at_the_stated_rate():
    rng = np.random.default_rng(0)
    nvec = np.array([101, 3])
    moves = np.array([explore_adjacent(np.array([50, 0]), nvec, 0.0, rng) for _ in range(2000)])
    assert set(moves[:, 0].tolist()) == {49, 51} and set(moves[:, 1].tolist()) <= {0, 1}
    assert abs((moves[:, 0] == 51).mean() - 0.5) < 0.05
    p, n = 0.25, 20000
    draws = np.array([explore_adjacent(np.array([50, 1]), nvec, p, rng)[0] for _ in range(n)])
    expected = p * 99 / 101  # a resample lands on 49 or 51 with chance 2/101
    observed = np.mean((draws != 49) & (draws != 51))
    assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert draws.min() < 10 and draws.max() > 90  # resamples cover the grid


def test_pb2_finds_the_best_grid_value_of_a_synthetic_problem():
    rng = np.random.default_rng(0)
    grid = np.arange(11) / 10.0
    X, y = [], []
    for t in np.linspace(0.1, 1.0, 10):
        for x in rng.choice(grid, size=4, replace=False):
            X.append([t, x])
            y.append(-((x - 0.7) ** 2) + 0.01 * rng.standard_normal())
    candidates = np.column_stack([np.ones(11), grid])
    picks = gp_ucb_suggest(np.array(X), np.array(y), candidates, n=1, kappa=1.0, seed=0)
    assert grid[picks[0]] == pytest.approx(0.7)
    # Exploration-heavy: each pick, added as a pending point, shrinks the bound there, so a batch spreads.
    spread = gp_ucb_suggest(np.array(X[:6]), np.array(y[:6]), candidates, n=3, kappa=50.0, seed=0)
    assert len(set(spread.tolist())) == 3


def test_pb2_keeps_only_its_latest_observations():
    from hypergym.runner import run as _run

    env = _vec(n=4, total_env_steps=600)
    agent = make_population_agent("pb2", env, seed=0, perturbation_interval=1, max_data=5)
    _run(env, agent, seed=[0, 1, 2, 3], progress=False)
    assert agent.phases * 4 > 5, "too short to fill the window"
    assert len(agent.data_X) == len(agent.data_y) == 5
    assert agent.data_X[-1][0] == agent.phases  # the newest are kept
    with pytest.raises(ValueError, match="max_data"):
        make_population_agent("pb2", _vec(n=4, total_env_steps=600), max_data=1)


def test_grid_points_cover_or_subsample_the_grid():
    rng = np.random.default_rng(0)
    assert grid_points(np.array([2, 3]), rng).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    sub = grid_points(np.array([100, 100]), rng, limit=50)
    assert sub.shape == (50, 2) and len({tuple(r) for r in sub.tolist()}) == 50


@pytest.mark.parametrize("name", ["pbt", "pb2"])
def test_population_agents_exploit_the_best_and_explore(name):
    from hypergym.runner import run as _run

    env = _vec(n=4, total_env_steps=600)
    settings = {"resample_probability": 0.0} if name == "pbt" else {}
    agent = make_population_agent(name, env, seed=0, perturbation_interval=1, **settings)
    assert isinstance(agent, PB2Agent if name == "pb2" else PBTAgent)
    _run(env, agent, seed=[0, 1, 2, 3], progress=False)
    assert agent.history, "no exploit happened"
    for event in agent.history:
        scores = np.array(event["scores"])
        assert scores[event["copied"]] == scores.max() and scores[event["member"]] == scores.min()
        if name == "pbt":  # no resampling: every hyperparameter moved one grid step (or stayed at an end)
            for a, b, size in zip(event["from"], event["to"], env.space.nvec, strict=True):
                assert abs(a - b) == 1 or (a == b and a in (0, size - 1))
    assert agent.phases > 1


def test_pbt_refuses_bad_settings():
    env = _vec()
    with pytest.raises(ValueError, match="quantile_fraction"):
        PBTAgent(env, quantile_fraction=0.7)
    with pytest.raises(ValueError, match="perturbation_interval"):
        PBTAgent(env, perturbation_interval=0)
    with pytest.raises(ValueError, match="resample_probability is PBT's"):
        PB2Agent(env, resample_probability=0.5)
    with pytest.raises(ValueError, match="HyperRLVectorEnv"):
        PBTAgent(gym.make_vec("CartPole-v1", num_envs=2))
