from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_NET

from hypergym.envs import make_task
from hypergym.learners import A2CConfig, A2CLearner, PPOConfig, PPOLearner
from hypergym.rewards import EpisodeReturn, RolloutReturn


def make_ppo(task="CartPole", n_envs=1, seed=0, **kwargs):
    cfg = PPOConfig(**{"n_steps": 64, "batch_size": 16, "n_epochs": 2, "policy_kwargs": TINY_NET, **kwargs})
    return PPOLearner(make_task(task, n_envs=n_envs, seed=seed), cfg, seed=seed, device="cpu")


def make_a2c(task="CartPole", n_envs=1, seed=0, **kwargs):
    cfg = A2CConfig(**{"n_steps": 8, "policy_kwargs": TINY_NET, **kwargs})
    return A2CLearner(make_task(task, n_envs=n_envs, seed=seed), cfg, seed=seed, device="cpu")


def test_gae_matches_hand_computation_on_constant_critic():
    gamma, lam, c = 0.9, 0.8, 0.5
    learner = make_a2c("Countdown", n_steps=6, gamma=gamma, gae_lambda=lam)
    with torch.no_grad():
        learner.policy.value_net.weight.zero_()
        learner.policy.value_net.bias.fill_(c)
    stats, _ = learner.collect_rollout()
    # Two Countdown episodes of 3 steps, reward 1 each step, terminal after the third.
    d_mid = 1 + gamma * c - c
    d_last = 1 - c
    a2 = d_last
    a1 = d_mid + gamma * lam * a2
    a0 = d_mid + gamma * lam * a1
    expected = np.array([a0, a1, a2, a0, a1, a2])
    np.testing.assert_allclose(learner.buffer.advantages.reshape(-1), expected, rtol=1e-5)
    np.testing.assert_allclose(learner.buffer.returns.reshape(-1), expected + c, rtol=1e-5)
    assert stats.episode_returns == [3.0, 3.0]
    assert EpisodeReturn()(stats) == 3.0
    assert RolloutReturn(gamma=0.5)(stats) == pytest.approx(sum(0.5**k for k in range(6)))


def test_learning_rate_reaches_the_optimizer():
    learner = make_ppo()
    learner.collect_rollout()
    learner.apply({"learning_rate": 1.234e-3})
    learner.update_step()
    assert all(g["lr"] == 1.234e-3 for g in learner.optimizer.param_groups)
    assert learner.hyperparams_in_force()["learning_rate"] == 1.234e-3


def test_clip_range_is_used_by_the_ppo_loss():
    fractions = {}
    for clip in (1e-6, 10.0):
        learner = make_ppo(seed=1, learning_rate=1e-2)
        learner.collect_rollout()
        learner.apply({"clip_range": clip})
        for _ in range(4):  # after the first step the ratio departs from 1
            result = learner.update_step()
        fractions[clip] = result.losses["clip_fraction"]
        assert learner.hyperparams_in_force()["clip_range"] == clip
    assert fractions[1e-6] > 0.5 and fractions[10.0] == 0.0


def test_batch_size_sets_the_next_minibatch_mid_pass():
    learner = make_ppo(n_steps=64, batch_size=16)
    learner.collect_rollout()
    assert learner.update_step().losses["n_samples"] == 16
    learner.apply({"batch_size": 32})
    assert learner.update_step().losses["n_samples"] == 32
    assert learner.update_step().losses["n_samples"] == 16  # 64 - 16 - 32: the pass ends with what is left
    assert learner.hyperparams_in_force()["batch_size"] == 32


def test_gae_lambda_and_gamma_take_effect_at_the_next_rollout():
    advantages = {}
    for lam in (0.5, 0.99):
        learner = make_a2c(seed=3, gae_lambda=0.95)
        learner.collect_rollout()
        learner.apply({"gae_lambda": lam, "gamma": 0.9})
        assert learner.hyperparams_in_force()["gae_lambda"] == 0.95  # current rollout keeps its lambda
        learner.update_step()
        learner.collect_rollout()
        assert learner.buffer.gae_lambda == lam and learner.buffer.gamma == 0.9
        assert learner.hyperparams_in_force()["gae_lambda"] == lam
        advantages[lam] = learner.buffer.advantages.copy()
    assert not np.allclose(advantages[0.5], advantages[0.99])


@pytest.mark.parametrize("make", [make_ppo, make_a2c])
def test_entropy_and_value_coefficients_enter_the_loss(make):
    learner = make(seed=4)
    learner.collect_rollout()
    learner.apply({"ent_coef": 0.37, "vf_coef": 2.5})
    losses = learner.update_step().losses
    expected = losses["policy_loss"] + 0.37 * losses["entropy_loss"] + 2.5 * losses["value_loss"]
    assert losses["loss"] == pytest.approx(expected, rel=1e-5)
    assert learner.hyperparams_in_force()["ent_coef"] == 0.37
    assert learner.hyperparams_in_force()["vf_coef"] == 2.5


def test_max_grad_norm_clips_the_applied_gradient():
    learner = make_a2c(seed=5)
    learner.collect_rollout()
    learner.apply({"max_grad_norm": 1e-3})
    losses = learner.update_step().losses
    applied = torch.nn.utils.get_total_norm([p.grad for p in learner.params])
    assert losses["grad_norm"] > 1e-2  # the raw gradient was larger ...
    assert float(applied) == pytest.approx(1e-3, rel=1e-3)  # ... and the optimiser got it clipped
    assert learner.hyperparams_in_force()["max_grad_norm"] == 1e-3


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
    assert all(torch.isfinite(p).all() for p in learner.policy.parameters())
    assert np.isfinite(learner.buffer.advantages).all()


def test_same_seed_same_training():
    def trace(seed):
        learner = make_ppo(seed=seed)
        learner.collect_rollout()
        losses = [learner.update_step().losses["loss"] for _ in range(5)]
        return losses, [p.detach().clone() for p in learner.policy.parameters()]

    (l1, p1), (l2, p2), (l3, _) = trace(0), trace(0), trace(1)
    assert l1 == l2 and all(torch.equal(a, b) for a, b in zip(p1, p2, strict=False))
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
    assert all(float(g.abs().sum()) == 0 for g in learner.grad_history.gradients(1))
    grads = []
    for _ in range(3):
        learner.collect_rollout()
        learner.update_step()
        grads.append([w.grad.clone() for w in learner.layer_weights])
    for newest, kept in zip(grads[-1], learner.grad_history.gradients(1), strict=False):
        assert torch.equal(newest, kept)
    for older, kept in zip(grads[-2], learner.grad_history.gradients(2), strict=False):
        assert torch.equal(older, kept)


def test_unknown_hyperparameter_is_refused():
    learner = make_a2c()
    with pytest.raises(ValueError, match="supports"):
        learner.apply({"clip_range": 0.2})
    with pytest.raises(TypeError, match="valid are"):
        A2CConfig.from_kwargs(n_step=5)
