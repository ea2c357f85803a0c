"""TensorBoard logging of every hyper-step: the event files hold what ``steps.csv`` holds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_NET

import hypergym
from hypergym.agents import make_agent

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_every_hyper_step_is_logged_with_the_numbers_of_steps_csv(tmp_path):
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=600, n_steps=5, policy_kwargs=TINY_NET,
                   encoder_kwargs={"hidden": 16, "h": 4}, eval_every=300, eval_episodes=2)  # fmt: skip
    agent = make_agent("episodic", env, seed=0)
    hypergym.run(env, agent, seed=2, out=tmp_path / "run", progress=False, tensorboard=tmp_path / "tb")
    scalars = _scalars(tmp_path / "tb" / "episodic" / "seed2")
    steps = pd.read_csv(tmp_path / "run" / "steps.csv")
    for tag in ("hyper/reward", "hyper/G", "inner/return", "eval/return", "hyperparams/learning_rate",
                "losses/policy_loss", "encoder/loss", "agent/epsilon", "agent/memory_size"):  # fmt: skip
        assert tag in scalars, sorted(scalars)
    assert len(scalars["hyper/reward"]) == len(steps)
    assert [s for s, _ in scalars["hyper/reward"]] == steps["env_steps"].tolist()  # x-axis: inner env steps
    np.testing.assert_allclose([v for _, v in scalars["hyper/reward"]], steps["reward"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["hyper/G"]], steps["G"].dropna(), rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["agent/epsilon"]], steps["agent_epsilon"], rtol=1e-6)
    assert scalars["agent/epsilon"][0][1] > scalars["agent/epsilon"][-1][1]  # the schedule, as the agent saw it


def test_compare_logs_one_folder_per_agent_and_seed(tmp_path):
    from hypergym.cli import main

    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "static,random", "--seeds", "2", "--workers", "1",
            "--out", str(tmp_path / "cmp"), "--tensorboard", str(tmp_path / "tb"), "--set", "total_env_steps=200",
            "obs_mode='random'", "n_steps=5", "policy_kwargs={'net_arch': [8]}"]  # fmt: skip
    assert main(args) == 0
    for agent in ("static", "random"):
        for seed in (0, 1):
            assert len(_scalars(tmp_path / "tb" / agent / f"seed{seed}")["hyper/reward"]) > 0


def test_a_missing_tensorboard_is_named(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    from hypergym.cli import main
    from hypergym.tensorboard_log import HyperStepLogger

    with pytest.raises(ImportError, match=r'pip install "hypergym\[tensorboard\]"'):
        HyperStepLogger(tmp_path)
    assert main(["run", "HyperRL-A2C-CartPole", "--agent", "static", "--tensorboard", str(tmp_path)]) == 2


class _Crash(Exception):
    pass


def test_a_resumed_run_logs_each_hyper_step_once_with_the_uninterrupted_numbers(tmp_path, monkeypatch):
    """Before, a kill and rerun logged the hyper-steps after the checkpoint twice (44 of them in the probe)."""
    from hypergym.envs import HyperRLEnv

    def fresh():
        env = gym.make("HyperRL-A2C-CartPole", total_env_steps=800, n_steps=5, n_envs=2, updates_per_phase=2,
                       policy_kwargs=TINY_NET, obs_mode="random")  # fmt: skip
        return env, make_agent("random", env, seed=0)

    env, agent = fresh()
    whole = hypergym.run(env, agent, seed=1, out=tmp_path / "whole", progress=False, tensorboard=tmp_path / "tb1",
                         checkpoint_every=3)  # fmt: skip
    real_step, calls = HyperRLEnv.step, [0]

    def crashing_step(self, action):
        calls[0] += 1
        if calls[0] > 2 * whole.hyper_steps // 3:
            raise _Crash
        return real_step(self, action)

    monkeypatch.setattr(HyperRLEnv, "step", crashing_step)
    env, agent = fresh()
    with pytest.raises(_Crash):
        hypergym.run(env, agent, seed=1, out=tmp_path / "killed", progress=False, tensorboard=tmp_path / "tb2",
                     checkpoint_every=3)  # fmt: skip
    monkeypatch.undo()
    killed = _scalars(tmp_path / "tb2" / "random" / "seed1")["hyper/reward"]
    assert len(killed) == 2 * whole.hyper_steps // 3  # the killed attempt's events reached the file
    env, agent = fresh()
    hypergym.run(env, agent, seed=1, out=tmp_path / "killed", progress=False, tensorboard=tmp_path / "tb2",
                 checkpoint_every=3)  # fmt: skip
    expected, got = _scalars(tmp_path / "tb1" / "random" / "seed1"), _scalars(tmp_path / "tb2" / "random" / "seed1")
    assert len(got["hyper/reward"]) == whole.hyper_steps
    assert got.keys() == expected.keys()
    for tag in expected:
        assert got[tag] == expected[tag], tag


def test_meta_training_logs_its_progress_to_tensorboard(tmp_path):
    from hypergym.metatrain import MetaTrainSettings, meta_train

    settings = MetaTrainSettings("HyperRL-A2C-Catch", iterations=2, units=2, interval=2, inner_updates=1,
                                 env_kwargs={"policy_kwargs": {"net_arch": [8]}})  # fmt: skip
    meta_train(settings, tmp_path / "mt", progress=False, tensorboard=tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"meta/outer_loss", "meta/meta_grad_norm", "meta/skipped"} <= tags
    # per iteration 2 units x 20 steps x (1 inner update + the validation rollout)
    assert [e.step for e in events.Scalars("meta/outer_loss")] == [80, 160]
