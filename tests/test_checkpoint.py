"""Whole-run checkpoints: resume is bit-identical; bad files are refused and change nothing."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import hypergym  # noqa: F401
from hypergym.checkpoint import FORMAT, CheckpointError, read_checkpoint, write_checkpoint

TINY = {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "total_env_steps": 4000}
CASES = {
    "a2c-cartpole-vae": ("HyperRL-A2C-CartPole", {"n_envs": 2, "obs_mode": "vae",
                                                  "encoder_kwargs": {"hidden": 8, "train_every": 2, "batch_size": 2}}),
    "ppo-halfcheetah": ("HyperRL-PPO-HalfCheetah", {"n_steps": 32, "batch_size": 16, "n_epochs": 2,
                                                    "obs_mode": "random"}),
    "ppo-pendulum-normalize": ("HyperRL-PPO-Pendulum", {"n_steps": 32, "batch_size": 16, "n_epochs": 2,
                                                        "normalize": True, "obs_mode": "vae",
                                                        "encoder_kwargs": {"hidden": 8, "train_every": 2,
                                                                           "batch_size": 2}}),
}  # fmt: skip


def _make(case):
    env_id, kwargs = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, **TINY, **kwargs).unwrapped


def _play(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info.get("env_steps")))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs,))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_run_is_bit_identical_to_the_uninterrupted_one(case, tmp_path):
    env = _make(case)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = rng.integers(env.action_space.n, size=14)
    _play(env, actions[:6])
    env.save(tmp_path / "run.ckpt")
    rest = _play(env, actions[6:])
    params = [p.detach().clone() for p in env.learner.params]

    resumed = _make(case)
    resumed.load(tmp_path / "run.ckpt")
    again = _play(resumed, actions[6:])
    assert len(rest) == len(again)
    for a, b in zip(rest, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    for p, q in zip(params, resumed.learner.params, strict=True):
        assert torch.equal(p, q)


def test_a_corrupt_truncated_or_foreign_checkpoint_is_refused_and_changes_nothing(tmp_path):
    env = _make("a2c-cartpole-vae")
    env.reset(seed=0)
    env.step(0)
    path = env.save(tmp_path / "run.ckpt")
    before = [p.detach().clone() for p in env.learner.params]
    data = path.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage").write_bytes(FORMAT + b"\x80\x05not a pickle at all")
    (tmp_path / "other").write_bytes(b"PK\x03\x04 some zip")
    other = _make("a2c-cartpole-vae")
    other.reset(seed=1)
    other.step(1)
    for name, match in [("truncated", "truncated or corrupt"), ("garbage", "corrupt"), ("other", "not a hypergym"),
                        ("missing", "no checkpoint")]:  # fmt: skip
        with pytest.raises(CheckpointError, match=match):
            env.load(tmp_path / name)
    for p, q in zip(before, env.learner.params, strict=True):
        assert torch.equal(p, q)  # unchanged
    write_checkpoint(tmp_path / "list.ckpt", [1, 2, 3])
    with pytest.raises(CheckpointError, match="holds no HyperRLEnv"):
        env.load(tmp_path / "list.ckpt")


def test_another_format_version_is_refused(tmp_path, monkeypatch):
    import hypergym.checkpoint as ckpt

    write_checkpoint(tmp_path / "x.ckpt", {"a": 1})
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", ckpt.FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="checkpoint format 1"):
        read_checkpoint(tmp_path / "x.ckpt")


def test_box2d_runs_say_they_cannot_be_saved(tmp_path):
    env = gym.make("HyperRL-PPO-LunarLanderContinuous", **TINY, n_steps=32, batch_size=16, n_epochs=1,
                   obs_mode="random").unwrapped  # fmt: skip
    env.reset(seed=0)
    with pytest.raises(CheckpointError, match="Box2D"):
        env.save(tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
