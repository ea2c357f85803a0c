"""Atari throughput, side by side in one run: the two vector envs, then SB3 PPO vs hypergym PPO on Pong.

1. The raw vector env, stepped with random actions: hypergym's inner env (ale-py's native C++
   ``AtariVectorEnv`` behind :class:`hypergym.envs.atari.AtariVecEnv`) against SB3's
   ``make_atari_env`` + ``VecFrameStack(4)`` + ``VecTransposeImage`` (Python wrappers over
   ``*NoFrameskip-v4``, in a ``DummyVecEnv``), same number of envs, same observation layout.
2. The learner, with the preset's default hyperparameters (hypergym: ``StaticAgent``, the default action):
   SB3 ``PPO.learn()`` on SB3's own Atari stack, SB3 ``PPO.learn()`` on hypergym's inner env, and
   ``HyperRLEnv`` for each ``--obs-modes`` (timed as in ``benchmarks/overhead.py``: from the end of
   ``reset(seed)``, so each update phase is one training pass plus one rollout). Runs alternate so that
   machine noise hits all alike; figures are means over ``--repeats``.

    python benchmarks/atari.py                                   # Pong, 8 envs, PPO preset
    python benchmarks/atari.py --steps 16384 --repeats 3 --obs-modes random vae
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
import torch
from overhead import run_hypergym, run_sb3
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

from hypergym.envs import make_task

gym.register_envs(ale_py)  # importing ale_py registers the *NoFrameskip-v4 ids that SB3's stack makes


def sb3_atari_venv(game: str, n_envs: int, seed: int) -> VecEnv:
    """SB3's standard Atari stack: Monitor + AtariWrapper per env, DummyVecEnv, 4-frame stack, CHW frames."""
    return VecTransposeImage(VecFrameStack(make_atari_env(f"{game}NoFrameskip-v4", n_envs=n_envs, seed=seed), 4))


def vec_env_steps_per_second(venv: VecEnv, steps: int, seed: int) -> float:
    """Env steps per second of ``venv`` under uniformly random actions (``steps`` vector steps)."""
    rng = np.random.default_rng(seed)
    venv.reset()
    n_actions = int(venv.action_space.n)  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.integers(0, n_actions, size=venv.num_envs))
    elapsed = time.perf_counter() - start
    venv.close()
    return steps * venv.num_envs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", default="HyperRL-PPO-Pong")
    parser.add_argument("--steps", type=int, default=16_384, help="inner env steps per learner run")
    parser.add_argument("--env-steps", type=int, default=2_000, help="vector steps per raw env run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--obs-modes", nargs="+", default=["random", "vae"])
    args = parser.parse_args()

    import hypergym

    preset = hypergym.preset(args.id)
    game, n_envs = preset["task"], preset["n_envs"]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads; {game}, {n_envs} envs"
    )

    # 1. The vector envs alone.
    native = sb3 = 0.0
    for r in range(args.repeats):
        sb3 += vec_env_steps_per_second(sb3_atari_venv(game, n_envs, r), args.env_steps, r)
        native += vec_env_steps_per_second(make_task(game, n_envs=n_envs, seed=r), args.env_steps, r)
    native, sb3 = native / args.repeats, sb3 / args.repeats
    print(f"\n{'vector env (random actions)':58s} {'env steps/s':>12s} {'ratio':>7s}")
    print(f"{'SB3 make_atari_env + VecFrameStack (DummyVecEnv)':58s} {sb3:12.0f} {1.0:7.3f}")
    print(f"{'hypergym AtariVecEnv (ale-py native AtariVectorEnv)':58s} {native:12.0f} {native / sb3:7.3f}")

    # 2. The learners.
    def sb3_own_stack(hx: Any, seed: int) -> VecEnv:
        return sb3_atari_venv(hx.task, hx.n_envs, seed)

    totals: dict[str, float] = {"sb3_own": 0.0, "sb3_native": 0.0}
    shares: dict[str, float] = {}
    for r in range(args.repeats):
        totals["sb3_own"] += run_sb3(args.id, args.steps, seed=r, venv_factory=sb3_own_stack)
        totals["sb3_native"] += run_sb3(args.id, args.steps, seed=r)
        for mode in args.obs_modes:
            fps, share = run_hypergym(args.id, args.steps, seed=r, obs_mode=mode)
            totals[mode] = totals.get(mode, 0.0) + fps
            shares[mode] = shares.get(mode, 0.0) + share
    mean = {k: v / args.repeats for k, v in totals.items()}
    print(
        f"\n{'learner (' + args.id + ', default action)':58s} {'env steps/s':>12s} {'vs SB3 same env':>16s} "
        f"{'vs SB3 own stack':>17s} {'encoder share':>14s}"
    )
    print(f"{'SB3 PPO.learn(), SB3 Atari stack':58s} {mean['sb3_own']:12.0f} {'':>16s} {1.0:17.3f} {'':>14s}")
    print(
        f"{'SB3 PPO.learn(), hypergym AtariVecEnv':58s} {mean['sb3_native']:12.0f} {1.0:16.3f} "
        f"{mean['sb3_native'] / mean['sb3_own']:17.3f} {'':>14s}"
    )
    for mode in args.obs_modes:
        print(
            f"{'hypergym HyperRLEnv, obs_mode=' + mode:58s} {mean[mode]:12.0f} {mean[mode] / mean['sb3_native']:16.3f} "
            f"{mean[mode] / mean['sb3_own']:17.3f} {shares[mode] / args.repeats:14.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
