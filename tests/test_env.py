from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_NET, fit_batch
from gymnasium.utils.env_checker import check_env

import hypergym
from hypergym.atari_games import ATARI_GAMES
from hypergym.envs import HyperRLEnv

TINY_PPO = {"n_epochs": 2, "policy_kwargs": TINY_NET, **fit_batch("HyperRL-PPO-CartPole", 32)}


def run_episode(env, actions=None, rng=None):
    """Step one learning episode; return observations, rewards and the last info."""
    obs, rewards, infos = [], [], []
    while True:
        a = env.action_space.sample() if actions is None else actions
        o, r, terminated, truncated, info = env.step(a)
        obs.append(o)
        rewards.append(r)
        infos.append(info)
        if terminated or truncated:
            return obs, rewards, infos


@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("HyperRL-A2C-CartPole", {"total_env_steps": 2000, "n_steps": 5, "policy_kwargs": TINY_NET}),
        ("HyperRL-PPO-HalfCheetah", {"total_env_steps": 2000, **TINY_PPO, **fit_batch("HyperRL-PPO-HalfCheetah", 32)}),
    ],
)
def test_check_env_passes(env_id, kwargs):
    env = gym.make(env_id, device="cpu", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures too
        check_env(env.unwrapped, skip_render_check=True)


def test_ppo_phase_has_n_epochs_ceil_steps_sparse_reward_and_g_last():
    env = gym.make(
        "HyperRL-PPO-CartPole",
        n_steps=50,
        n_epochs=3,
        hyperparams={"batch_size": (16,), "learning_rate": (1e-3, 3e-4)},
        policy_kwargs=TINY_NET,
        device="cpu",
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(2):
        _, rewards, infos = run_episode(env)
        assert len(rewards) == 3 * math.ceil(50 / 16) == 12
        assert all(r == 0.0 for r in rewards[:-1])
        assert all("G" not in info for info in infos[:-1])
        assert rewards[-1] == infos[-1]["G"] != 0.0
        assert [i["phase_step"] for i in infos] == list(range(1, 13))
        env.reset()


def test_a2c_phase_is_updates_per_phase_updates_each_with_a_rollout():
    env = gym.make(
        "HyperRL-A2C-CartPole", updates_per_phase=3, n_steps=5, n_envs=2, policy_kwargs=TINY_NET, device="cpu"
    )
    _, info0 = env.reset(seed=1)
    _, rewards, infos = run_episode(env)
    assert len(rewards) == 3
    assert [i["env_steps"] for i in infos] == [info0["env_steps"] + 10 * k for k in (1, 2, 3)]
    assert rewards[:2] == [0.0, 0.0] and rewards[2] == infos[2]["G"]


def test_same_seed_same_observations_and_rewards():
    def trace(seed):
        env = gym.make("HyperRL-PPO-CartPole", device="cpu", **TINY_PPO)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        out_obs, out_rew = [obs], []
        for _ in range(2):
            o, r, _ = run_episode(env)
            out_obs += o
            out_rew += r
            env.reset()
        return np.array(out_obs), np.array(out_rew)

    o1, r1 = trace(0)
    o2, r2 = trace(0)
    o3, _ = trace(1)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(o1, o3)


def test_reset_continues_the_run_and_reset_with_seed_restarts_it():
    env = gym.make("HyperRL-PPO-CartPole", device="cpu", **TINY_PPO)
    _, info = env.reset(seed=0)
    first = info["env_steps"]
    _, _, infos = run_episode(env)
    steps_after = infos[-1]["env_steps"]
    assert steps_after > first
    obs_end = env.unwrapped._obs.copy()
    obs, info = env.reset()
    assert not info["new_run"] and info["env_steps"] == steps_after
    np.testing.assert_array_equal(obs, obs_end)  # the learner is not touched
    _, _, infos = run_episode(env)
    assert infos[-1]["env_steps"] > steps_after
    _, info = env.reset(seed=0)
    assert info["new_run"] and info["env_steps"] == first and info["updates"] == 0
    _, info = env.reset(options={"restart": True})
    assert info["new_run"] and info["env_steps"] == first


def test_budget_end_sets_run_finished_then_reset_starts_a_new_run():
    env = gym.make("HyperRL-PPO-CartPole", total_env_steps=100, device="cpu", **TINY_PPO)
    env.reset(seed=0)
    finished = []
    for _ in range(10):
        _, _, infos = run_episode(env)
        finished.append(infos[-1]["run_finished"])
        assert not any(i["run_finished"] for i in infos[:-1])
        if finished[-1]:
            assert infos[-1]["env_steps"] >= 100
            break
        env.reset()
    assert finished[-1] and not any(finished[:-1])
    _, info = env.reset()
    assert info["new_run"]


@pytest.mark.parametrize(
    ("env_id", "kwargs", "phase"),
    [
        ("HyperRL-A2C-CartPole", {"updates_per_phase": 100_000}, "100000 rollout(s) of n_steps 5 x n_envs 4 = 2000000"),
        ("HyperRL-PPO-CartPole", {"n_steps": 4096}, "1 rollout(s) of n_steps 4096 x n_envs 1 = 4096"),
    ],
)
def test_a_first_phase_larger_than_the_budget_is_refused_with_the_numbers(env_id, kwargs, phase):
    """Before, ``updates_per_phase=100000`` on a 1,000-step budget ran 540,000 env steps and on."""
    message = f"one update phase ({phase} env steps) exceeds total_env_steps 1000"
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make(env_id, total_env_steps=1000, obs_mode="random", **kwargs)


def test_a_run_passes_its_budget_by_less_than_one_phase():
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=1000, obs_mode="random", updates_per_phase=3,
                   policy_kwargs=TINY_NET)  # fmt: skip
    env.reset(seed=0)
    phase = 3 * 5 * 4
    while True:
        _, _, infos = run_episode(env)
        if infos[-1]["run_finished"]:
            break
        env.reset()
    info = infos[-1]
    assert 1000 <= info["env_steps"] < 1000 + phase


def test_whole_run_as_one_episode():
    env = gym.make("HyperRL-PPO-CartPole", total_env_steps=96, phases_per_episode=None, device="cpu", **TINY_PPO)
    env.reset(seed=0)
    space = env.unwrapped.space
    _, rewards, infos = run_episode(env, space.default_action)
    assert infos[-1]["run_finished"]
    assert sum("G" in i for i in infos) == 2  # 32-step rollouts: reset + 2 phases reach 96
    assert len(rewards) == 2 * 2 * math.ceil(32 / space.decode(space.default_action)["batch_size"])


def test_multi_discrete_action_mode():
    env = gym.make("HyperRL-PPO-CartPole", action_mode="multi_discrete", device="cpu", **TINY_PPO)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    env.reset(seed=0)
    action = np.array([2, 0, 1])
    _, _, _, _, info = env.step(action)
    decoded = env.unwrapped.space.decode(action)
    for name, value in decoded.items():
        assert info["hyperparams"][name] == value


def test_info_reports_values_in_force_read_back_from_the_learner():
    env = gym.make("HyperRL-PPO-CartPole", device="cpu", **TINY_PPO)
    env.reset(seed=0)
    space = env.unwrapped.space
    for action in (0, space.n_actions - 1):
        _, _, _, _, info = env.step(action)
        in_force = env.unwrapped.learner.hyperparams_in_force()
        assert info["hyperparams"] == {name: values[0] for name, values in in_force.items()}
        for name, value in space.decode(action).items():
            assert info["hyperparams"][name] == value
        for key in ("env_steps", "updates", "phase_step", "episode_returns", "losses", "diverged", "run_finished"):
            assert key in info
        assert {"policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction"} <= set(info["losses"])


def test_raw_observation_dimension_follows_the_formula():
    env = gym.make("HyperRL-PPO-CartPole", obs_mode="raw", device="cpu", **TINY_PPO)
    # policy 4->16->2, value 4->16->1: rows 16 + 2 + 16 + 1, orders 0..2, d = 4
    assert env.observation_space.shape == ((16 + 2 + 16 + 1) * 3 * 4,)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and np.isfinite(obs).all()
    half = gym.make("HyperRL-PPO-HalfCheetah", obs_mode="raw", device="cpu")
    assert half.observation_space.shape == ((64 + 64 + 6 + 64 + 64 + 1) * 3 * 4,)  # about 3k, as the paper


def test_divergence_sets_flag_adds_penalty_and_run_goes_on():
    env = gym.make(
        "HyperRL-A2C-CartPole",
        hyperparams={"learning_rate": (1e38,)},
        use_rms_prop=False,
        divergence_penalty=-5.0,
        updates_per_phase=4,
        policy_kwargs=TINY_NET,
        device="cpu",
    )
    env.reset(seed=0)
    _, rewards, infos = run_episode(env, actions=0)
    assert any(i["diverged"] for i in infos)
    for r, i in zip(rewards, infos, strict=False):
        assert r == pytest.approx(i.get("G", 0.0) + (-5.0 if i["diverged"] else 0.0))
    params = env.unwrapped.learner.policy.parameters()
    assert all(np.isfinite(p.detach().numpy()).all() for p in params)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"algo": "TRPO"}, ValueError, "choose from"),
        ({"task": "Cartpole"}, ValueError, "choose from"),
        ({"obs_mode": "pixels"}, ValueError, "choose from"),
        ({"action_mode": "box"}, ValueError, "choose from"),
        ({"reward": "sharpe"}, ValueError, "choose from"),
        ({"hyperparams": {"momentum": (0.9,)}}, ValueError, "supports"),
        ({"hyperparams": {"learning_rate": (-1.0,)}}, ValueError, "positive"),
        ({"updates_per_phase": 5}, ValueError, "A2C and ACKTR only"),
        ({"n_stepz": 5}, TypeError, "valid are"),
        ({"total_env_steps": 0}, ValueError, "positive"),
    ],
)
def test_bad_kwargs_name_the_valid_choices(kwargs, error, match):
    with pytest.raises(error, match=match):
        HyperRLEnv(**{"algo": "PPO", "task": "CartPole", **kwargs})


def test_step_before_reset_and_bad_action_are_refused():
    env = HyperRLEnv(algo="PPO", task="CartPole", device="cpu", **TINY_PPO)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step(env.action_space.n)


def test_make_without_prior_import():
    code = "import gymnasium as gym; e = gym.make('hypergym:HyperRL-A2C-CartPole'); print(e.unwrapped.algo)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "A2C"


def _registered_ids() -> list:
    # Atari ids cost seconds each (CNN, an 8k-dim VAE): one per algorithm by default, the rest under -m slow.
    fast_atari = {"HyperRL-PPO-Pong", "HyperRL-A2C-Breakout", "HyperRL-ACKTR-Pong"}
    return [
        pytest.param(env_id, marks=pytest.mark.slow)
        if hypergym.PRESETS[env_id]["task"] in ATARI_GAMES and env_id not in fast_atari
        else env_id
        for env_id in sorted(hypergym.PRESETS)
    ]


@pytest.mark.parametrize("env_id", _registered_ids())
def test_every_registered_id_builds_with_its_preset_and_passes_check_env(env_id):
    preset = hypergym.preset(env_id)
    family = hypergym.envs.TASKS[preset["task"]].family
    if family == "box2d":
        pytest.importorskip("Box2D")
    if family == "atari":
        pytest.importorskip("ale_py")
    env = gym.make(env_id, device="cpu")
    hx = env.unwrapped
    assert hx.space.names == tuple(preset["hyperparams"])
    assert hx.total_env_steps == preset["total_env_steps"]
    assert env.action_space.contains(hx.space.default_action)
    env.close()
    # The same preset with a tiny rollout and network, through Gymnasium's checker.
    tiny = {"n_steps": 8, "policy_kwargs": TINY_NET, "total_env_steps": 10_000}
    if preset["algo"] == "PPO":
        tiny["n_epochs"] = 1
    # each emulator costs ~0.2 s to build and reset, at every reset(seed)
    tiny.update(fit_batch(env_id, 8, 2 if family == "atari" else None))
    env = gym.make(env_id, device="cpu", **tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_an_absent_gpu_is_an_error_not_a_silent_cpu_run(device):
    from hypergym.devices import resolve_device

    with pytest.raises(ValueError, match=r"no CUDA GPU.*'auto'"):
        gym.make("HyperRL-A2C-CartPole", device=device)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, device=device)
    assert resolve_device("auto") == torch.device("cpu")  # "auto" is the fallback
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu")


def test_a_misspelt_encoder_kwarg_lists_the_valid_keys():
    with pytest.raises(ValueError, match=r"unknown encoder_kwargs \['hiden'\].*'hidden'"):
        gym.make("HyperRL-A2C-CartPole", encoder_kwargs={"hiden": 16})
    with pytest.raises(ValueError, match=r"unknown encoder_kwargs \['hidden'\] for obs_mode='random'.*'h'"):
        gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, obs_mode="random", encoder_kwargs={"hidden": 16})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"gamma": 1.5}, r"gamma=1.5: gamma must lie in \(0, 1\]"),
        ({"gae_lambda": 2}, r"gae_lambda must lie in \(0, 1\]"),
        ({"clip_range": 0}, "clip_range must be positive"),
        ({"clip_range": -0.1}, "clip_range must be positive"),
        ({"ent_coef": -1}, "ent_coef must be non-negative"),
        ({"vf_coef": -1}, "vf_coef must be non-negative"),
        ({"max_grad_norm": 0}, "max_grad_norm must be positive"),
        ({"n_epochs": 0}, "n_epochs takes positive integers"),
        ({"n_envs": 0}, "n_envs must be a positive integer"),
        ({"divergence_penalty": float("nan")}, "divergence_penalty must be a finite number"),
        # A minibatch larger than the rollout would silently be the whole rollout.
        (
            {"n_steps": 512, "hyperparams": {"batch_size": [256, 4096]}},
            r"batch_size \[4096\] larger than the rollout "
            r"\(n_steps 512 x n_envs 1 = 512 samples\).*<= 512",
        ),
        ({"n_steps": 32, "batch_size": 64, "hyperparams": {"learning_rate": [3e-4]}}, r"batch_size \[64\] larger"),
    ],
)
def test_fixed_learner_settings_are_checked_when_the_env_is_made(setting, message):
    """Fixed settings obey the rules of grid values, in the single and the vector env alike."""
    with pytest.raises(ValueError, match=message):
        gym.make("HyperRL-PPO-CartPole", **setting)
    with pytest.raises(ValueError, match=message):
        gym.make_vec("HyperRL-PPO-CartPole", num_envs=2, **setting)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"encoder_kwargs": {"d": 0}}, r"encoder_kwargs\['d'\] must be a positive integer, got 0"),
        ({"obs_mode": "random", "encoder_kwargs": {"h": 0}}, r"encoder_kwargs\['h'\] must be a positive integer"),
        ({"obs_mode": "stats", "encoder_kwargs": {"n_orders": -1}}, r"\['n_orders'\] must be an integer >= 0"),
        ({"device": "meta"}, "device='meta' cannot train a learner"),
        ({"encoder_kwargs": {"learning_rate": math.nan}}, "VAE learning_rate must be a finite positive .*, got nan"),
        ({"encoder_kwargs": {"learning_rate": "1e-3"}}, "VAE learning_rate must be a finite positive number"),
        ({"encoder_kwargs": {"freeze_after": 2.5}}, "freeze_after must be an integer >= 0 or None, got 2.5"),
        ({"n_steps": 10**9, "total_env_steps": 10**11}, r"a run needs at least .* GiB"),
    ],
)
def test_settings_that_reset_would_reject_are_refused_when_the_env_is_made(kwargs, match):
    """Before, these passed gym.make and failed at reset (a raw error, or a 59.6 GiB allocation attempt)."""
    with pytest.raises(ValueError, match=match):
        gym.make("HyperRL-A2C-CartPole", **kwargs)


def test_mujocos_deprecation_notice_is_a_python_warning_not_a_print_on_every_env():
    """MuJoCo printed "compiler attribute 'settotalmass' is deprecated" for every MuJoCo env made."""
    code = "import gymnasium as gym, hypergym; gym.make('HyperRL-PPO-HalfCheetah', obs_mode='random').reset(seed=0)"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "settotalmass" not in quiet.stdout + quiet.stderr
    shown = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=True)
    assert "DeprecationWarning: MuJoCo: compiler attribute 'settotalmass'" in shown.stderr
    # raised inside MuJoCo's C code, -W error would abort the process: the notice is dropped there instead
    subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
