"""The learned optimiser's cost: its update against Adam's on one population, and meta-training's throughput.

1. Cost per update. Two populations of N members of one id are built side by side, one stepping with Adam,
   one with the learned rule (``optimizer=``: the shipped ``optim4rl`` file, or an untrained rule of the same
   shape when none is shipped; the cost is the same). In alternating rounds each collects a rollout and
   takes one update (``update_step``), and the update alone is timed; the ratio of the medians is printed.
2. Meta-training throughput: ``MetaTrainer`` iterations on the id (N units, M inner updates), in env steps
   per second (``units x n_steps x (M + 1)`` per iteration).

    python benchmarks/optim4rl.py                                   # HyperRL-A2C-Catch, N = 16
    python benchmarks/optim4rl.py --id HyperRL-A2C-SmallDenseLong --n 16 --rounds 30 --iterations 5
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import hypergym  # noqa: F401
from hypergym.learners.optim4rl import Optim4RLRule, save_rule
from hypergym.learners.optimizers import shipped_path
from hypergym.metatrain import MetaTrainer, MetaTrainSettings


def _population(env_id: str, n: int, optimizer: str | None) -> gym.vector.VectorEnv:
    env = gym.make_vec(env_id, num_envs=n, obs_mode="random", optimizer=optimizer)
    env.reset(seed=0)
    return env


def update_cost(env_id: str, n: int, rounds: int) -> dict[str, float]:
    """Median seconds of one update of N members with Adam and with the learned rule, in alternating rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        learned = str(shipped_path())
        if not Path(learned).is_file():
            learned = str(Path(tmp) / "untrained.pt")
            save_rule(Optim4RLRule(), learned)
        envs = {"adam": _population(env_id, n, "adam"), "optim4rl": _population(env_id, n, learned)}
    times: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(rounds):
        for name, env in envs.items():
            learner = env.unwrapped.learner
            learner.collect_rollout()
            start = time.perf_counter()
            learner.update_step()
            times[name].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def meta_throughput(env_id: str, n: int, iterations: int) -> float:
    """Env steps per second of meta-training (after one warm-up iteration)."""
    trainer = MetaTrainer(MetaTrainSettings(env_id, iterations + 1, units=n))
    trainer.iterate()
    steps, start = trainer.env_steps, time.perf_counter()
    for _ in range(iterations):
        trainer.iterate()
    return (trainer.env_steps - steps) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", default="HyperRL-A2C-Catch")
    parser.add_argument("--n", type=int, default=16, help="members (units)")
    parser.add_argument("--rounds", type=int, default=30, help="timed updates of each population")
    parser.add_argument("--iterations", type=int, default=5, help="timed meta-iterations")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.id}, N = {args.n}")  # fmt: skip
    cost = update_cost(args.id, args.n, args.rounds)
    print(f"one update of {args.n} members: Adam {cost['adam'] * 1e3:.1f} ms, learned {cost['optim4rl'] * 1e3:.1f} ms "
          f"(median of {args.rounds}): {cost['optim4rl'] / cost['adam']:.2f}x Adam's")  # fmt: skip
    rate = meta_throughput(args.id, args.n, args.iterations)
    print(f"meta-training, {args.n} units, M = 4: {rate:,.0f} env steps/s ({args.iterations} iterations)")


if __name__ == "__main__":
    main()
