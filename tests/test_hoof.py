"""HOOF: the WIS estimate and the trajectories by hand, candidates told apart with one env, the modelled
update equals the learner's real one, no side effects."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import fit_batch

import hypergym  # noqa: F401
from hypergym.agents import HOOFAgent, make_agent
from hypergym.agents.hoof import segment_returns, wis_estimate

TINY = {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "obs_mode": "random", "total_env_steps": 2000}


def test_wis_estimate_equals_a_hand_computation():
    log_w = np.log(np.array([1.0, 3.0]))
    returns = np.array([1.5, 2.5])
    assert wis_estimate(log_w, returns) == pytest.approx((1.0 * 1.5 + 3.0 * 2.5) / 4.0)
    # Huge log-weights stay finite (only their differences matter).
    assert wis_estimate(log_w + 1000.0, returns) == pytest.approx((1.0 * 1.5 + 3.0 * 2.5) / 4.0)


def test_segment_returns_cut_at_the_length_and_at_episode_starts_and_bootstrap_by_the_critic():
    # One env, 5 steps; an episode starts at step 3. Length 2: segments [0, 1], [2], [3, 4].
    rewards = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    values = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])
    starts = np.array([[True], [False], [False], [True], [False]])
    ids, returns = segment_returns(rewards, values, starts, np.array([60.0]), np.array([False]), 0.5, 2)
    assert ids[:, 0].tolist() == [0, 0, 1, 2, 2]
    # [0, 1] bootstraps with V(s_2) = 30; [2] ends its episode (no bootstrap); [3, 4] with the last value 60.
    assert returns.tolist() == pytest.approx([1 + 0.5 * 2 + 0.25 * 30, 3.0, 4 + 0.5 * 5 + 0.25 * 60])
    _, ended = segment_returns(rewards, values, starts, np.array([60.0]), np.array([True]), 0.5, 2)
    assert ended[-1] == pytest.approx(4 + 0.5 * 5)  # the rollout's last step ended the episode


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [
        ("HyperRL-PPO-Pendulum", {"n_epochs": 1, **fit_batch("HyperRL-PPO-Pendulum", 256, 1)}),
        ("HyperRL-A2C-MountainCarContinuous", {}),
    ],
)  # fmt: skip
def test_hoof_tells_candidates_apart_with_one_env_and_its_choice_follows_the_data(env_id, extra, monkeypatch):
    """With one inner env the candidates' estimates differ, and reversed returns reverse the choice."""
    env = gym.make(env_id, **TINY, **extra)
    agent = HOOFAgent(env, max_kl=None)
    obs, info = env.reset(seed=0)
    chosen = []
    for _ in range(12):
        action = agent.act(obs, info)
        if agent.last:
            estimates = agent.last["estimates"]
            assert np.ptp(estimates) > 0 and agent.last["tied"] == 1  # the candidates are told apart
            assert agent.last["estimate"] == estimates.max()  # and the best one is taken
            chosen.append(agent.last["values"]["learning_rate"])
            # The same step scored on negated returns: the candidate HOOF now takes is the worst before.
            cut = agent._cut  # the rollout's trajectories, cut once per rollout
            with monkeypatch.context() as patch:
                patch.setattr(agent, "_cut", (cut[0], cut[1], -cut[2]))
                agent.act(obs, info)
            np.testing.assert_allclose(agent.last["estimates"], -estimates, rtol=1e-9, atol=1e-12)
            assert agent.last["estimate"] == pytest.approx(-estimates.min())
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()
    assert len(chosen) >= 5
    assert len(set(chosen)) > 1 or chosen[0] != env.unwrapped.config.learning_rate  # not the default throughout


def _state(learner):
    return learner.flat.detach().clone(), [t.clone() for t in learner.optimizer.tensors()] + [
        learner.policy.flat_grad.clone()
    ]


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [
        ("HyperRL-A2C-Pendulum", {"n_envs": 2, "hyperparams": {"learning_rate": [1e-4, 7e-4, 3e-3],
                                                              "gae_lambda": [0.9, 1.0]}}),
        ("HyperRL-PPO-Pendulum", {**fit_batch("HyperRL-PPO-Pendulum", 32), "n_epochs": 2}),
    ],
)  # fmt: skip
def test_hoof_models_the_learners_update_and_changes_nothing(env_id, extra):
    env = gym.make(env_id, **TINY, **extra)
    agent = make_agent("hoof", env)
    obs, info = env.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
        if terminated or truncated:
            obs, info = env.reset()
    learner = env.unwrapped.learner
    before_params, before_opt = _state(learner)
    action = agent.act(obs, info)
    after_params, after_opt = _state(learner)
    assert torch.equal(before_params, after_params)  # act changed no parameter
    for a, b in zip(before_opt, after_opt, strict=True):
        assert torch.equal(a, b)  # nor the optimiser state or the gradient buffer
    chosen = env.unwrapped.space.decode(action)
    assert chosen == agent.last["values"] and np.isfinite(agent.last["estimate"])
    # The real update at the chosen learning rate lands where HOOF's probe said (the step is linear in it).
    in_force = learner.hyperparams_in_force()
    batch = agent._batch(learner, float(in_force["gamma"][0]), float(in_force["gae_lambda"][0]))
    direction = agent._direction(learner, batch)
    expected = before_params + chosen["learning_rate"] * direction
    env.step(action)
    torch.testing.assert_close(learner.flat.detach(), expected, rtol=1e-5, atol=1e-6)


def test_hoof_respects_the_kl_limit_and_refuses_what_it_cannot_tune():
    env = gym.make("HyperRL-A2C-Pendulum", n_envs=2, **TINY)
    tight = HOOFAgent(env, max_kl=1e-12)
    obs, info = env.reset(seed=1)
    for _ in range(2):
        obs, _, terminated, truncated, info = env.step(tight.act(obs, info))
        if terminated or truncated:
            obs, info = env.reset()
    tight.act(obs, info)
    assert tight.last["rejected"] == env.unwrapped.space.nvec[0]  # all rejected: the smallest-KL one is taken
    lrs = env.unwrapped.space.values["learning_rate"]
    assert tight.last["values"]["learning_rate"] == min(lrs)  # the smallest step moves the policy least
    with pytest.raises(ValueError, match="A2C and PPO"):
        HOOFAgent(gym.make("HyperRL-ACKTR-CartPole", **TINY))
    with pytest.raises(ValueError, match="learning rate"):
        HOOFAgent(gym.make("HyperRL-A2C-Pendulum", hyperparams={"ent_coef": [0.0, 0.01]}, **TINY))
    with pytest.raises(ValueError, match="max_kl"):
        HOOFAgent(env, max_kl=0.0)
