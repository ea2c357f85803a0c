"""Throughput of a single run and of a population (``gym.make_vec(id, num_envs=N)``) vs SB3, side by side.

For each id, in one process and one after another:

- SB3 ``learn()`` on the preset's inner env with the default hyperparameters (one run; none for ACKTR,
  which SB3 does not have);
- one single-run ``HyperRLEnv`` (``gym.make``: the learner core with one member) with the default action;
- one population of N members (``gym.make_vec``), every member taking the default action;
- optionally (``--vae``) the population with ``obs_mode="vae"``, and the encoder's share of its step time.

Aggregate env steps per second = all members' inner env steps / wall time. hypergym runs are timed after
the first rollout (collected by ``reset``), as in ``benchmarks/overhead.py``, and up to the step that
finishes them (the population's autoreset then starts the next runs, which is not timed).

    python benchmarks/population.py                                  # A2C-CartPole and PPO-HalfCheetah
    python benchmarks/population.py --ids HyperRL-A2C-CartPole --n 16 --steps 20000
    python benchmarks/population.py --ids HyperRL-ACKTR-CartPole HyperRL-PPO-Pong --n 4 --steps 20000 2048
    python benchmarks/population.py --ids HyperRL-PPO-Pong --n 4 --steps 4096 --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from overhead import _timed, run_hypergym, run_sb3

import hypergym  # noqa: F401


def run_population(
    env_id: str, n: int, steps: int, seed: int, obs_mode: str = "random", device: str = "cpu"
) -> tuple[float, float]:
    """Aggregate env steps per second of an N-member population, and the encoder's share of step time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the pinned batch size is expected here
        env = gym.make_vec(env_id, num_envs=n, obs_mode=obs_mode, total_env_steps=steps, device=device)
    env.reset(seed=seed)
    encoder_time, restart_time = [0.0], [0.0]
    _timed(env.encoder, "encode", encoder_time)
    _timed(env.encoder, "on_update", encoder_time)
    # The vector env's same-step autoreset starts the next runs on the step that finishes these (Pong: new
    # ALE games and a first rollout of every member, seconds); the single run's loop stops before any.
    _timed(env.runs, "start", restart_time)
    action = np.full(n, env.space.default_action)
    start_steps = env.learner.env_steps
    start = time.perf_counter()
    while True:
        _, _, _, _, info = env.step(action)
        if info["run_finished"].all():
            break
    elapsed = time.perf_counter() - start - restart_time[0]
    env.close()
    return n * (int(info["final_info"]["env_steps"][0]) - start_steps) / elapsed, encoder_time[0] / elapsed


def _versus(x: float, sb3: float | None) -> str:
    return "n/a" if sb3 is None else f"**{x / sb3:.2f}**"


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=["HyperRL-A2C-CartPole", "HyperRL-PPO-HalfCheetah"])
    parser.add_argument("--n", type=int, default=16, help="population size N")
    parser.add_argument("--steps", type=int, nargs="+", default=[20_000, 10_240], help="env steps per member, per id")
    parser.add_argument("--vae", action="store_true", help="also time the population with obs_mode='vae'")
    parser.add_argument("--device", default="cpu", help="torch device of all three (SB3 too), e.g. 'cuda'")
    args = parser.parse_args()
    gpu = f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), N = {args.n}, device {args.device}{gpu}"
    )
    print("| id | SB3 learn() | single run | single run / SB3 | population of N | population / SB3 |")
    print("|---|---|---|---|---|---|")
    for i, env_id in enumerate(args.ids):
        steps = args.steps[min(i, len(args.steps) - 1)]
        sb3 = None if "ACKTR" in env_id else run_sb3(env_id, steps, seed=0, device=args.device)
        single, _ = run_hypergym(env_id, steps, seed=0, obs_mode="random", device=args.device)
        pop, _ = run_population(env_id, args.n, steps, seed=0, device=args.device)

        sb3_text = "n/a (no ACKTR in SB3)" if sb3 is None else f"{sb3:,.0f}"
        print(
            f"| `{env_id}` | {sb3_text} | {single:,.0f} | {_versus(single, sb3)} | {pop:,.0f} | {_versus(pop, sb3)} |",
            flush=True,
        )
        if args.vae:
            vae, share = run_population(env_id, args.n, steps, seed=0, obs_mode="vae", device=args.device)
            print(f"|   `{env_id}`, `obs_mode='vae'` (paper width) | | | | {vae:,.0f} | {_versus(vae, sb3)}, encoder "
                  f"share {share:.1%} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
