"""Checkpoint size and time: one run's whole state saved with ``env.save`` and loaded with ``hypergym.load``.

Steps a registered id with its default action for ``--steps`` inner env steps (the paper-width VAE trains
on the way), then saves and loads its checkpoint ``--repeats`` times and prints the file's size and the
median times. What ``hypergym run`` writes every ``--checkpoint-minutes`` holds this plus the agent.

    python benchmarks/checkpoint.py
    python benchmarks/checkpoint.py --id HyperRL-PPO-HalfCheetah --steps 8192
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import hypergym


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", default="HyperRL-A2C-CartPole")
    parser.add_argument("--steps", type=int, default=4000, help="inner env steps before the checkpoint")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = gym.make(args.id, total_env_steps=max(args.steps * 2, 10_000)).unwrapped
    env.reset(seed=0)
    while env.learner.env_steps < args.steps:
        *_, terminated, truncated, _ = env.step(env.space.default_action)
        if terminated or truncated:
            env.reset()
    saves, loads = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.ckpt"
        for _ in range(args.repeats):
            start = time.perf_counter()
            env.save(path)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            hypergym.load(path).close()
            loads.append(time.perf_counter() - start)
        size = path.stat().st_size
    print(f"{args.id} after {env.learner.env_steps:,} env steps: checkpoint {size / 2**20:.1f} MiB, "
          f"save {np.median(saves):.3f} s, load {np.median(loads):.3f} s (median of {args.repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
