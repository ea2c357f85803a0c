"""PettingZoo: the parallel env passes PettingZoo's API tests and equals the joint env; factored EPGT."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pettingzoo")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # pettingzoo.test loads PettingZoo's own old-style envs
    from pettingzoo.test import api_test, parallel_api_test

from conftest import fit_batch

import hypergym
from hypergym.agents import FactoredEpisodicAgent, make_agent
from hypergym.envs.parallel import HyperRLParallelEnv

CHEAP = {
    "policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "obs_mode": "random", "total_env_steps": 2000,
    "n_steps": 32, "batch_size": 16, "n_epochs": 2,
}  # fmt: skip
#: The preset's grid with batch sizes that fit the 32-step rollout.
FIT = {"hyperparams": fit_batch("HyperRL-PPO-CartPole", 32)["hyperparams"]}
GRID = {
    "learning_rate": [1e-4, 3e-4, 1e-3], "clip_range": [0.1, 0.2, 0.3],
    "gae_lambda": [0.9, 0.95], "ent_coef": [0.0, 0.01],
}  # fmt: skip


def test_pettingzoo_parallel_and_aec_api_tests_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the test's arbitrary reset option is reported, not used
        parallel_api_test(hypergym.parallel_env("HyperRL-PPO-CartPole", **CHEAP, **FIT), num_cycles=12)
        api_test(hypergym.aec_env("HyperRL-PPO-CartPole", **CHEAP, **FIT), num_cycles=12)


def test_agents_spaces_and_state():
    env = hypergym.parallel_env("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    assert env.possible_agents == ["learning_rate", "clip_range", "gae_lambda", "ent_coef"]
    assert [env.action_space(a).n for a in env.possible_agents] == [3, 3, 2, 2]  # a sum (10), not a product (36)
    assert env.observation_space("clip_range") is env.observation_space("ent_coef")
    assert env.action_space("clip_range") is env.action_space("clip_range")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.state(), obs["learning_rate"])
    with pytest.raises(ValueError, match="missing \\['ent_coef'\\]"):
        env.step({"learning_rate": 0, "clip_range": 0, "gae_lambda": 0})
    with pytest.raises(KeyError, match="unknown agent"):
        env.action_space("gamma")
    # Non-integer actions are refused as the joint env refuses them, never rounded or parsed.
    joint = gym.make("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    joint.reset(seed=0)
    for bad in (1.5, "1", None, np.array([1, 0])):
        with pytest.raises(TypeError, match="not an integer"):
            env.step({"learning_rate": bad, "clip_range": 0, "gae_lambda": 0, "ent_coef": 0})
        with pytest.raises(TypeError, match="not an integer"):
            joint.unwrapped.step(bad)
    with pytest.raises(ValueError, match=r"action 3 of agent 'learning_rate' is outside Discrete\(3\)"):
        env.step({"learning_rate": 3, "clip_range": 0, "gae_lambda": 0, "ent_coef": 0})
    obs, *_ = env.step({"learning_rate": np.int64(1), "clip_range": 0, "gae_lambda": 0, "ent_coef": 0})  # still runs
    with pytest.raises(ValueError, match="action_mode is fixed"):
        HyperRLParallelEnv("HyperRL-PPO-CartPole", action_mode="discrete")


def test_the_parallel_env_equals_the_joint_env_for_the_same_seed_and_actions():
    joint = gym.make("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    par = hypergym.parallel_env("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    space = joint.unwrapped.space
    obs_j, _ = joint.reset(seed=5)
    obs_p, _ = par.reset(seed=5)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(30):
        np.testing.assert_array_equal(obs_j, obs_p["learning_rate"])
        idx = [int(rng.integers(n)) for n in space.nvec]
        obs_j, r_j, term_j, trunc_j, _ = joint.step(space.from_indices(idx, "discrete"))
        obs_p, r_p, term_p, trunc_p, _ = par.step(dict(zip(par.possible_agents, idx, strict=True)))
        assert all(r == r_j for r in r_p.values()) and all(t == term_j for t in term_p.values())
        assert all(t == trunc_j for t in trunc_p.values())
        if term_j or trunc_j:
            ends += 1
            assert par.agents == []  # all agents end together
            obs_j, _ = joint.reset()
            obs_p, _ = par.reset()
    assert ends > 0


def test_factored_epgt_drives_the_parallel_and_the_joint_env():
    par = hypergym.parallel_env("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    agent = FactoredEpisodicAgent(par, seed=0, write_every=1)
    obs, infos = par.reset(seed=0)
    for _ in range(20):
        if not par.agents:
            obs, infos = par.reset()
        actions = agent.act_parallel(obs, infos)
        assert all(par.action_space(a).contains(v) for a, v in actions.items())
        nxt, rewards, terms, truncs, infos = par.step(actions)
        agent.observe_parallel(obs, actions, rewards, nxt, terms, truncs, infos)
        obs = nxt
    sizes = {name: sum(learner.memory.size(a) for a in range(learner.n_actions))
             for name, learner in agent.learners.items()}  # fmt: skip
    assert all(size > 0 for size in sizes.values())  # every hyperparameter's memory learned

    joint = gym.make("HyperRL-PPO-CartPole", hyperparams=GRID, **CHEAP)
    result = hypergym.run(joint, make_agent("episodic-factored", joint, seed=0), seed=1, progress=False)
    assert result.env_steps >= 2000
    with pytest.raises(ValueError, match="HyperRLEnv or a HyperRLParallelEnv"):
        FactoredEpisodicAgent(gym.make("CartPole-v1"))
