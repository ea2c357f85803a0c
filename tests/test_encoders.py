from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_NET, fit_batch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy

from hypergym.encoders import RandomEncoder, StatsEncoder, VAEEncoder
from hypergym.encoders import base as encoders_base
from hypergym.encoders.stats import FEATURES
from hypergym.hyperstate import HyperStateProjector, policy_layers

SMALL_PPO = {**fit_batch("HyperRL-PPO-CartPole", 32), "policy_kwargs": TINY_NET, "device": "cpu"}
TINY_A2C = {"n_steps": 5, "policy_kwargs": TINY_NET, "device": "cpu"}


def run_steps(env, n, action=None):
    for _ in range(n):
        _, _, terminated, truncated, info = env.step(env.action_space.sample() if action is None else action)
        if terminated or truncated:
            env.reset()
    return info


def test_vae_reconstruction_loss_falls_while_the_learner_trains():
    env = gym.make("HyperRL-A2C-CartPole", encoder_kwargs={"train_every": 2}, **TINY_A2C)
    env.reset(seed=0)
    env.action_space.seed(0)
    encoder = env.unwrapped.encoder
    assert isinstance(encoder, VAEEncoder)
    losses, seen = [], 0
    for _ in range(400):
        info = run_steps(env, 1)
        if int(encoder.trained[0]) != seen:
            seen = int(encoder.trained[0])
            losses.append(info["encoder_loss"])
    assert len(losses) == 200
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:3])


@pytest.mark.parametrize("obs_mode", ["vae", "random", "raw", "stats"])
def test_encode_is_deterministic_and_inside_the_space(obs_mode):
    env = gym.make("HyperRL-A2C-CartPole", obs_mode=obs_mode, **TINY_A2C)
    env.reset(seed=0)
    run_steps(env, 25)
    hx = env.unwrapped
    first = hx.encoder.encode(hx.learner)[0]
    second = hx.encoder.encode(hx.learner)[0]
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first in env.observation_space


def test_projection_matrices_train_in_vae_mode_and_stay_fixed_in_random_mode():
    changed = {}
    for obs_mode in ("vae", "random"):
        env = gym.make("HyperRL-A2C-CartPole", obs_mode=obs_mode, **TINY_A2C)
        env.reset(seed=0)
        before = [c.detach().clone() for c in env.unwrapped.encoder.C]
        run_steps(env, 30)
        after = list(env.unwrapped.encoder.C)
        changed[obs_mode] = any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert changed == {"vae": True, "random": False}


def test_vae_freeze_after_stops_training():
    env = gym.make("HyperRL-A2C-CartPole", encoder_kwargs={"freeze_after": 20}, **TINY_A2C)
    env.reset(seed=0)
    run_steps(env, 20)
    encoder = env.unwrapped.encoder
    assert encoder.trained.tolist() == [2]
    frozen = [p.detach().clone() for p in encoder.params.values()]
    run_steps(env, 30)
    assert encoder.trained.tolist() == [2]
    assert all(torch.equal(a, b) for a, b in zip(frozen, encoder.params.values(), strict=True))


def test_vae_preprocessing_is_the_same_at_training_and_encoding():
    env = gym.make("HyperRL-A2C-CartPole", **TINY_A2C)
    env.reset(seed=0)
    run_steps(env, 20)
    hx = env.unwrapped
    encoder = hx.encoder
    with torch.no_grad():
        x = encoder._preprocess(encoder.hyperstate(hx.learner, [c.detach() for c in encoder.C]))
        mu, _ = encoder._moments(x.unsqueeze(1))
    np.testing.assert_allclose(encoder.encode(hx.learner), torch.tanh(mu[:, 0]).numpy(), rtol=1e-6)
    assert float(x.abs().max()) <= 5.0


def test_observation_dimensions_follow_the_documented_formulas():
    # CartPole, net_arch [16]: layers with 16, 2 (policy) and 16, 1 (value) rows.
    rows = 16 + 2 + 16 + 1
    for obs_mode, dim in (("raw", rows * 3 * 4), ("vae", 32), ("random", 32), ("stats", 4 * len(FEATURES))):
        env = gym.make(
            "HyperRL-PPO-CartPole",
            obs_mode=obs_mode,
            **fit_batch("HyperRL-PPO-CartPole", 32),
            policy_kwargs=TINY_NET,
            device="cpu",
        )
        assert env.observation_space.shape == (dim,), obs_mode
    vae = gym.make("HyperRL-PPO-CartPole", **SMALL_PPO).unwrapped
    assert vae.encoder is None  # built at reset
    vae.reset(seed=0)
    assert vae.encoder.raw_dim == rows * 12 and vae.encoder.hidden == rows * 12 // 4


def test_atari_cnn_hyperstate_is_about_8k():
    obs_space = spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    policy = ActorCriticCnnPolicy(obs_space, spaces.Discrete(6), lambda _: 1e-3)
    _, layers = policy_layers(policy)
    # NatureCNN: conv 32, 64, 64 channels, linear 512, then action 6 and value 1.
    assert [info.rows for info in layers] == [32, 64, 64, 512, 6, 1]
    assert HyperStateProjector(layers).dim == (32 + 64 + 64 + 512 + 6 + 1) * 3 * 4 == 8148


def test_stats_observations_are_finite_after_a_divergence():
    env = gym.make(
        "HyperRL-A2C-CartPole",
        obs_mode="stats",
        hyperparams={"learning_rate": (1e38,)},
        use_rms_prop=False,
        **TINY_A2C,
    )
    env.reset(seed=0)
    diverged = False
    for _ in range(12):
        obs, _, terminated, truncated, info = env.step(0)
        diverged |= info["diverged"]
        assert np.isfinite(obs).all() and obs in env.observation_space
        if terminated or truncated:
            env.reset()
    assert diverged
    assert isinstance(env.unwrapped.encoder, StatsEncoder)


def test_stats_features_match_a_hand_computation():
    env = gym.make("HyperRL-A2C-CartPole", obs_mode="stats", **TINY_A2C)
    env.reset(seed=0)
    run_steps(env, 3)
    hx = env.unwrapped
    obs = hx.encoder.encode(hx.learner)[0].reshape(-1, len(FEATURES))
    w = hx.learner.layer_weights()[0][0].detach()
    g1, g2 = (hx.learner.gradients(n)[0][0] for n in (1, 2))
    cosine = float((g1 * g2).sum() / (g1.norm() * g2.norm()))
    expected = np.array([w.norm(), w.mean(), w.std(), g1.norm(), g1.mean(), g1.std(), cosine], dtype=np.float64)
    np.testing.assert_allclose(obs[0], np.sign(expected) * np.log1p(np.abs(expected)), rtol=1e-4, atol=1e-7)


def test_obs_extras_append_progress_and_hyperparameter_indices():
    env = gym.make(
        "HyperRL-PPO-CartPole",
        obs_mode="random",
        obs_extras=("progress", "hyperparams"),
        total_env_steps=320,
        **fit_batch("HyperRL-PPO-CartPole", 32),
        n_epochs=1,
        policy_kwargs=TINY_NET,
        device="cpu",
    )
    assert env.observation_space.shape == (32 + 1 + 3,)
    obs, _ = env.reset(seed=0)
    hx = env.unwrapped
    np.testing.assert_allclose(obs[32], 32 / 320)
    np.testing.assert_allclose(obs[33:], np.array(hx.space.default_indices()) / 2)
    action = hx.space.encode(
        {
            "batch_size": hx.space.values["batch_size"][2],
            "clip_range": 0.1,
            "learning_rate": hx.space.values["learning_rate"][2],
        }
    )
    obs, *_ = env.step(action)
    np.testing.assert_allclose(obs[33:], [1.0, 0.0, 1.0])
    assert obs in env.observation_space
    with pytest.raises(ValueError, match="choose any of"):
        gym.make("HyperRL-PPO-CartPole", obs_extras=("time",))


def test_random_encoder_is_a_fixed_tanh_projection():
    env = gym.make("HyperRL-A2C-CartPole", obs_mode="random", **TINY_A2C)
    env.reset(seed=0)
    run_steps(env, 5)
    hx = env.unwrapped
    assert isinstance(hx.encoder, RandomEncoder)
    s = hx.encoder.hyperstate(hx.learner).detach()[0]
    np.testing.assert_allclose(
        hx.encoder.encode(hx.learner)[0], torch.tanh(hx.encoder.A[0] @ s).numpy(), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("numpy_max_weights", [200_000, 0])
def test_numpy_and_torch_projections_equal_the_projector_on_stacked_layers(monkeypatch, numpy_max_weights):
    # 0 forces the torch path that large (CNN) learners take.
    monkeypatch.setattr(encoders_base, "NUMPY_MAX_WEIGHTS", numpy_max_weights)
    for obs_mode in ("raw", "random"):
        env = gym.make(
            "HyperRL-PPO-CartPole",
            obs_mode=obs_mode,
            **fit_batch("HyperRL-PPO-CartPole", 32),
            policy_kwargs=TINY_NET,
            device="cpu",
        )
        env.reset(seed=0)
        run_steps(env, 5)
        hx = env.unwrapped
        learner, encoder = hx.learner, hx.encoder
        assert encoder.numpy_projection == (numpy_max_weights > 0)
        with torch.no_grad():
            # The reference: the member's projector over explicitly stacked [W, g1, g2] of every layer.
            grads = [learner.gradients(n) for n in (1, 2)]
            weights = learner.layer_weights()
            stacks = [torch.stack([w[0], grads[0][m][0], grads[1][m][0]]) for m, w in enumerate(weights)]
            expected = encoder.projectors[0](stacks)
            torch.testing.assert_close(encoder.hyperstate(learner)[0], expected)
            np.testing.assert_allclose(encoder.hyperstate_numpy(learner)[0], expected.numpy(), rtol=1e-5, atol=1e-6)
            if obs_mode == "random":
                expected = torch.tanh(encoder.A[0] @ expected)
        np.testing.assert_allclose(encoder.encode(learner)[0], expected.numpy(), rtol=1e-5, atol=1e-6)
