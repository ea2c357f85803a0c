"""HOOF: the WIS estimate by hand, the modelled update equals the learner's real one, no side effects."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import hypergym  # noqa: F401
from hypergym.agents import HOOFAgent, make_agent
from hypergym.agents.hoof import wis_estimate

TINY = {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "obs_mode": "random", "total_env_steps": 2000}


def test_wis_estimate_equals_a_hand_computation():
    log_ratios = np.log(np.array([[2.0, 0.5, 1.0], [1.0, 1.0, 3.0]]))  # products: 1.0 and 3.0
    rewards = np.array([[0.0, 1.0, 2.0], [2.0, 2.0, 1.0]])  # min 0, max 2: normalised sums 1.5 and 2.5
    assert wis_estimate(log_ratios, rewards) == pytest.approx((1.0 * 1.5 + 3.0 * 2.5) / 4.0)
    # Equal rewards carry no information: every candidate scores the same.
    assert wis_estimate(log_ratios, np.ones((2, 3))) == 0.0
    # Huge log-ratios stay finite (only their differences matter).
    assert wis_estimate(log_ratios + 1000.0, rewards) == pytest.approx((1.0 * 1.5 + 3.0 * 2.5) / 4.0)


def _state(learner):
    return learner.flat.detach().clone(), [t.clone() for t in learner.optimizer.tensors()] + [
        learner.policy.flat_grad.clone()
    ]


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [
        ("HyperRL-A2C-Pendulum", {"n_envs": 2, "hyperparams": {"learning_rate": [1e-4, 7e-4, 3e-3],
                                                              "gae_lambda": [0.9, 1.0]}}),
        ("HyperRL-PPO-Pendulum", {"n_steps": 32, "batch_size": 16, "n_epochs": 2}),
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
