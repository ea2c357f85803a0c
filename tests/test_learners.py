from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_NET

from hypergym.envs.members import MemberVecEnv
from hypergym.learners import A2CConfig, A2CLearner, PPOConfig, PPOLearner
from hypergym.rewards import EpisodeReturn, RolloutReturn

# The learner core with one member: a single run.


def make_ppo(task="CartPole", n_envs=1, seed=0, **kwargs):
    cfg = PPOConfig(**{"n_steps": 64, "batch_size": 16, "n_epochs": 2, "policy_kwargs": TINY_NET, **kwargs})
    return PPOLearner(MemberVecEnv(task, [seed], n_envs=n_envs), cfg, [seed], device="cpu")


def make_a2c(task="CartPole", n_envs=1, seed=0, **kwargs):
    cfg = A2CConfig(**{"n_steps": 8, "policy_kwargs": TINY_NET, **kwargs})
    return A2CLearner(MemberVecEnv(task, [seed], n_envs=n_envs), cfg, [seed], device="cpu")


def in_force(learner, name):
    return learner.hyperparams_in_force()[name][0]


def test_gae_matches_hand_computation_on_constant_critic():
    gamma, lam, c = 0.9, 0.8, 0.5
    learner = make_a2c("Countdown", n_steps=6, gamma=gamma, gae_lambda=lam)
    block = learner.policy.blocks["value_net"]
    with torch.no_grad():
        learner.flat[:, block.weight] = 0.0
        learner.flat[:, block.bias] = c
    (stats,), _ = learner.collect_rollout()
    # Two Countdown episodes of 3 steps, reward 1 each step, terminal after the third.
    d_mid = 1 + gamma * c - c
    d_last = 1 - c
    a2 = d_last
    a1 = d_mid + gamma * lam * a2
    a0 = d_mid + gamma * lam * a1
    expected = np.array([a0, a1, a2, a0, a1, a2])
    np.testing.assert_allclose(learner.batch["advantages"][0].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(learner.batch["returns"][0].numpy(), expected + c, rtol=1e-5)
    assert stats.episode_returns == [3.0, 3.0]
    assert EpisodeReturn()(stats) == 3.0
    assert RolloutReturn(gamma=0.5)(stats) == pytest.approx(sum(0.5**k for k in range(6)))


def test_learning_rate_reaches_the_optimizer():
    steps = {}
    for lr in (1.234e-3, 2.468e-3):
        learner = make_ppo()
        learner.collect_rollout()
        before = learner.flat.clone()
        learner.apply({"learning_rate": lr})
        learner.update_step()
        steps[lr] = learner.flat - before
        assert in_force(learner, "learning_rate") == lr
    # Adam's first step is linear in the step size: twice the rate, twice the step.
    torch.testing.assert_close(steps[2.468e-3], 2 * steps[1.234e-3], rtol=1e-4, atol=2e-7)


def test_clip_range_is_used_by_the_ppo_loss():
    fractions = {}
    for clip in (1e-6, 10.0):
        learner = make_ppo(seed=1, learning_rate=1e-2)
        learner.collect_rollout()
        learner.apply({"clip_range": clip})
        for _ in range(4):  # after the first step the ratio departs from 1
            result = learner.update_step()
        fractions[clip] = result.losses["clip_fraction"]
        assert in_force(learner, "clip_range") == clip
    assert fractions[1e-6] > 0.5 and fractions[10.0] == 0.0


def test_batch_size_sets_the_next_minibatch_mid_pass():
    learner = make_ppo(n_steps=64, batch_size=16)
    learner.collect_rollout()
    assert learner.update_step().losses["n_samples"] == 16
    learner.apply({"batch_size": 32})
    assert learner.update_step().losses["n_samples"] == 32
    assert learner.update_step().losses["n_samples"] == 16  # 64 - 16 - 32: the pass ends with what is left
    assert in_force(learner, "batch_size") == 32


def test_gae_lambda_and_gamma_take_effect_at_the_next_rollout():
    advantages = {}
    for lam in (0.5, 0.99):
        learner = make_a2c(seed=3, gae_lambda=0.95)
        learner.collect_rollout()
        learner.apply({"gae_lambda": lam, "gamma": 0.9})
        assert in_force(learner, "gae_lambda") == 0.95  # current rollout keeps its lambda
        learner.update_step()
        learner.collect_rollout()
        assert in_force(learner, "gae_lambda") == lam and in_force(learner, "gamma") == 0.9
        advantages[lam] = learner.batch["advantages"].clone()
    assert not torch.allclose(advantages[0.5], advantages[0.99])


@pytest.mark.parametrize("make", [make_ppo, make_a2c])
def test_entropy_and_value_coefficients_enter_the_loss(make):
    learner = make(seed=4)
    learner.collect_rollout()
    learner.apply({"ent_coef": 0.37, "vf_coef": 2.5})
    losses = learner.update_step().losses
    expected = losses["policy_loss"] + 0.37 * losses["entropy_loss"] + 2.5 * losses["value_loss"]
    assert losses["loss"] == pytest.approx(expected, rel=1e-5)
    assert in_force(learner, "ent_coef") == 0.37
    assert in_force(learner, "vf_coef") == 2.5


def test_max_grad_norm_clips_the_applied_gradient():
    learner = make_a2c(seed=5)
    learner.collect_rollout()
    learner.apply({"max_grad_norm": 1e-3})
    losses = learner.update_step().losses
    applied = torch.linalg.vector_norm(learner.policy.flat_grad[0])
    assert losses["grad_norm"][0] > 1e-2  # the raw gradient was larger ...
    assert float(applied) == pytest.approx(1e-3, rel=1e-3)  # ... and the optimiser got it clipped
    assert in_force(learner, "max_grad_norm") == 1e-3


def test_n_epochs_sets_the_number_of_passes_of_the_next_rollout():
    learner = make_ppo(n_steps=32, batch_size=16, n_epochs=2)
    learner.collect_rollout()
    learner.apply({"n_epochs": 3})
    steps = 0
    while not learner.rollout_exhausted:
        learner.update_step()
        steps += 1
    assert steps == 2 * 2  # the current rollout keeps its 2 epochs
    learner.collect_rollout()
    steps = 0
    while not learner.rollout_exhausted:
        learner.update_step()
        steps += 1
    assert steps == 3 * 2


@pytest.mark.parametrize("n_steps,batch_size", [(64, 16), (50, 16), (48, 64)])
def test_ppo_rollout_lasts_n_epochs_times_ceil(n_steps, batch_size):
    learner = make_ppo(n_steps=n_steps, batch_size=batch_size, n_epochs=3)
    learner.collect_rollout()
    steps = 0
    while not learner.rollout_exhausted:
        learner.update_step()
        steps += 1
    assert steps == 3 * math.ceil(n_steps / batch_size) == learner.steps_per_rollout()


def test_huge_learning_rate_diverges_without_raising_and_keeps_parameters_finite():
    learner = make_a2c(seed=6, use_rms_prop=False)
    learner.collect_rollout()
    learner.apply({"learning_rate": 1e38})
    diverged = []
    for _ in range(6):
        diverged.append(learner.update_step().diverged)
        _, rolled_back = learner.collect_rollout()
        diverged[-1] |= rolled_back
    assert any(diverged)
    assert torch.isfinite(learner.flat).all()
    assert torch.isfinite(learner.batch["advantages"]).all()


def test_same_seed_same_training():
    def trace(seed):
        learner = make_ppo(seed=seed)
        learner.collect_rollout()
        losses = [float(learner.update_step().losses["loss"][0]) for _ in range(5)]
        return losses, learner.flat.detach().clone()

    (l1, p1), (l2, p2), (l3, _) = trace(0), trace(0), trace(1)
    assert l1 == l2 and torch.equal(p1, p2)
    assert l1 != l3


def test_learner_does_not_touch_the_global_torch_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    learner = make_ppo()
    learner.collect_rollout()
    learner.update_step()
    assert torch.equal(torch.rand(3), expected)


def test_gradient_history_holds_the_two_latest_gradients():
    learner = make_a2c(seed=7, max_grad_norm=1e9)  # no clipping: history holds pre-clip gradients
    assert all(float(g.abs().sum()) == 0 for g in learner.gradients(1))
    grads = []
    for _ in range(3):
        learner.collect_rollout()
        learner.update_step()
        grads.append([g.clone() for g in learner.policy.layer_weights(learner.policy.flat_grad)])
    for newest, kept in zip(grads[-1], learner.gradients(1), strict=True):
        assert torch.equal(newest, kept)
    for older, kept in zip(grads[-2], learner.gradients(2), strict=True):
        assert torch.equal(older, kept)
    assert not torch.equal(grads[-1][0], grads[-2][0])


def test_unknown_hyperparameter_is_refused():
    learner = make_a2c()
    with pytest.raises(ValueError, match="supports"):
        learner.apply({"clip_range": 0.2})
    with pytest.raises(TypeError, match="valid are"):
        A2CConfig.from_kwargs(n_step=5)
