"""One study arm of N seeds: seed by seed (as studies ran before) against one population, side by side.

For each id, in one process, one after the other, each on one thread as ``compare`` and ``reproduce`` run
their jobs (``hypergym.devices.one_thread``):

- before: N single runs (``gym.make``), seeds ``0 .. N-1``, one after another, each with its own EPGT agent;
- after: one population (``gym.make_vec(id, num_envs=N)``, members = seeds) with ``make_agent("episodic",
  venv)``: one EPGT agent per member, seeded as the single runs' agents are.

Both arms run the same profile (``code`` by default: the released code's VAE hyper-state, one update per
learning episode) and budget, and give the same numbers (``tests/test_population.py`` checks that members are
their single runs). Printed: wall time of each, the speed-up, and the population's time shares of the
hyper-state encoder and of the agents. Neither batches away work that is the same for each member: if the
encoder's share bounds the gain, the bound (the seed-by-seed time over the population's encoder time) is
printed with it.

    python benchmarks/study.py                                   # MCC and BipedalWalker, 10 seeds, VAE and stats
    python benchmarks/study.py --ids HyperRL-A2C-MountainCarContinuous --seeds 10 --steps 20000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).parent))
from overhead import _timed

import hypergym
from hypergym.agents import make_agent
from hypergym.devices import one_thread

IDS = ("HyperRL-A2C-MountainCarContinuous", "HyperRL-A2C-BipedalWalker")


def seed_by_seed(env_id: str, seeds: int, kwargs: dict[str, Any]) -> float:
    """Wall time of ``seeds`` single runs, one after another."""
    start = time.perf_counter()
    for seed in range(seeds):
        env = gym.make(env_id, **kwargs)
        hypergym.run(env, make_agent("episodic", env, seed=seed), seed=seed, progress=False)
        env.close()
    return time.perf_counter() - start


def population(env_id: str, seeds: int, kwargs: dict[str, Any]) -> tuple[float, float, float, list[float]]:
    """Wall time of the seeds as one population, its encoder's and agents' seconds, and the final returns."""
    venv = gym.make_vec(env_id, num_envs=seeds, **kwargs)
    agent = make_agent("episodic", venv, seed=0)
    encoder, agents = [0.0], [0.0]
    reset: Callable[..., Any] = venv.reset

    def timed_reset(*args: Any, **kw: Any) -> Any:
        out = reset(*args, **kw)  # the encoder exists once the runs have started
        if not hasattr(venv.runs.encoder, "_timed"):
            for name in ("encode", "on_update"):
                _timed(venv.runs.encoder, name, encoder)
            venv.runs.encoder._timed = True
        return out

    venv.reset = timed_reset  # type: ignore[method-assign]
    for name in ("act", "observe"):
        _timed(agent, name, agents)
    start = time.perf_counter()
    results = hypergym.run(venv, agent, seed=0, progress=False)
    wall = time.perf_counter() - start
    venv.close()
    return wall, encoder[0], agents[0], [r.final_return for r in results]  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=list(IDS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, nargs="+", default=[20_000, 20_000], help="env steps per run, per id")
    parser.add_argument("--profile", default="code")
    parser.add_argument(
        "--obs-modes", nargs="+", default=["vae", "stats"],
        help="hyper-states to time (vae: the profile's paper-width VAE; stats: the cheap per-layer statistics)",
    )  # fmt: skip
    args = parser.parse_args()
    steps = args.steps * len(args.ids) if len(args.steps) == 1 else args.steps
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, one thread per arm")
    print(f"{'id':36s} {'obs':>5s} {'steps':>7s} {'seed by seed s':>15s} {'population s':>13s} {'speed-up':>9s} "
          f"{'encoder':>8s} {'agents':>7s}  bound")  # fmt: skip
    for env_id, n_steps in zip(args.ids, steps, strict=True):
        for obs_mode in args.obs_modes:
            kwargs = {"profile": args.profile, "total_env_steps": n_steps, "obs_mode": obs_mode}
            with one_thread():
                before = seed_by_seed(env_id, args.seeds, kwargs)
                after, encoder, agents, _ = population(env_id, args.seeds, kwargs)
            bound = f"{before / encoder:.2f}x (seed by seed / the population's encoder time)" if encoder else "-"
            print(f"{env_id:36s} {obs_mode:>5s} {n_steps:7,d} {before:15.1f} {after:13.1f} {before / after:8.2f}x "
                  f"{encoder / after:8.1%} {agents / after:7.1%}  {bound}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
