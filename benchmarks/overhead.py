"""Throughput of HyperRLEnv (stepped with the default action) vs plain SB3 ``learn()``, side by side.

Both sides train the identical learner configuration (the registered preset, with the hyperparameter
values of ``env.unwrapped.space.default_action``) on the same task for the same env-step budget, on CPU.
Runs alternate (SB3, hypergym, SB3, hypergym, ...) so machine noise hits both alike; the ratio is
hypergym's env steps per second over SB3's, summed over repeats.

    python benchmarks/overhead.py                       # PPO and A2C on HalfCheetah, 20k steps, 3 repeats
    python benchmarks/overhead.py --steps 50000 --repeats 5 --obs-modes random raw
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import gymnasium as gym
import torch
from hypergym.envs import make_task
from stable_baselines3 import A2C, PPO

import hypergym  # noqa: F401 - registers the ids


def sb3_config(env: Any) -> tuple[type, dict[str, Any]]:
    """SB3 algorithm class and kwargs identical to the env's learner with the default action applied."""
    hx = env.unwrapped
    cfg = hx.config
    values = {name: getattr(cfg, name) for name in hx.learner_class.supported_hyperparams()}
    values.update(hx.space.decode(hx.space.default_action))
    common = {
        "learning_rate": values["learning_rate"],
        "n_steps": cfg.n_steps,
        "gamma": values["gamma"],
        "gae_lambda": values["gae_lambda"],
        "ent_coef": values["ent_coef"],
        "vf_coef": values["vf_coef"],
        "max_grad_norm": values["max_grad_norm"],
        "normalize_advantage": cfg.normalize_advantage,
        "policy_kwargs": dict(cfg.policy_kwargs),
        "device": "cpu",
        "verbose": 0,
    }
    if hx.algo == "PPO":
        return PPO, {
            **common,
            "batch_size": values["batch_size"],
            "n_epochs": values["n_epochs"],
            "clip_range": values["clip_range"],
        }
    return A2C, {**common, "use_rms_prop": cfg.use_rms_prop, "rms_prop_eps": cfg.rms_prop_eps}


def run_sb3(env_id: str, steps: int, seed: int, **overrides: Any) -> float:
    env = gym.make(env_id, device="cpu", **overrides)
    hx = env.unwrapped
    algo, kwargs = sb3_config(env)
    venv = make_task(hx.task, n_envs=hx.n_envs, seed=seed, normalize=hx.normalize, gamma=hx.config.gamma)
    model = algo("MlpPolicy", venv, seed=seed, **kwargs)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    n = model.num_timesteps
    venv.close()
    env.close()
    return n / elapsed


def run_hypergym(env_id: str, steps: int, seed: int, **overrides: Any) -> float:
    env = gym.make(env_id, total_env_steps=steps, device="cpu", **overrides)
    action = env.unwrapped.space.default_action
    start = time.perf_counter()
    env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(action)
        if info["run_finished"]:
            break
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    n = info["env_steps"]
    env.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=["HyperRL-PPO-HalfCheetah", "HyperRL-A2C-HalfCheetah"])
    parser.add_argument("--steps", type=int, default=20_000, help="inner env steps per run (>= 20k for the README)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--obs-modes", nargs="+", default=["random"])
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"{'id':34s} {'obs_mode':8s} {'SB3 steps/s':>12s} {'hypergym steps/s':>17s} {'ratio':>6s}")
    for env_id in args.ids:
        for obs_mode in args.obs_modes:
            sb3_total = hyp_total = 0.0
            for r in range(args.repeats):
                sb3_total += run_sb3(env_id, args.steps, seed=r)
                hyp_total += run_hypergym(env_id, args.steps, seed=r, obs_mode=obs_mode)
            sb3_fps, hyp_fps = sb3_total / args.repeats, hyp_total / args.repeats
            print(f"{env_id:34s} {obs_mode:8s} {sb3_fps:12.0f} {hyp_fps:17.0f} {hyp_fps / sb3_fps:6.3f}", flush=True)


if __name__ == "__main__":
    main()
