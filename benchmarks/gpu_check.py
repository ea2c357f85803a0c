"""The CUDA path, checked on a GPU machine: single runs and populations of every learner family on ``cuda``.

For each case: an EPGT single run (``obs_mode="vae"``) twice on the GPU and once on the CPU, then a
population of 3 on the GPU, each through :func:`hypergym.run`. It prints where the learner's weights live,
whether they stay finite, whether the two GPU runs of one seed are identical, how far the GPU run's
final weights are from the CPU run's (float order differs between devices, so the same seed is the same
run only on the same device), and the wall times. Exit status 1 if any case fails.

    python benchmarks/gpu_check.py            # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --quick    # one small case
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import hypergym
from hypergym.agents import make_agent

#: (id, env steps, preset overrides): A2C, PPO on Box2D and MuJoCo, ACKTR and PPO on Atari.
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("HyperRL-A2C-MountainCarContinuous", 600, {}),
    ("HyperRL-A2C-BipedalWalker", 600, {"profile": "code"}),
    ("HyperRL-PPO-LunarLanderContinuous", 12_800, {"n_steps": 400}),
    ("HyperRL-PPO-HalfCheetah", 4_096, {"n_steps": 1024}),
    ("HyperRL-ACKTR-Pong", 6_400, {}),
    ("HyperRL-PPO-Pong", 4_096, {}),
]


def single(env_id: str, steps: int, overrides: dict[str, Any], device: str) -> dict[str, Any]:
    """One EPGT run; its learner's final weights (on the CPU), device, wall time and return statistics."""
    env = gym.make(env_id, total_env_steps=steps, device=device, obs_mode="vae", **overrides)
    agent = make_agent("episodic", env, seed=0)
    start = time.perf_counter()
    result = hypergym.run(env, agent, seed=0, out=None, progress=False)
    learner = env.unwrapped.learner
    out = {
        "weights": learner.flat.detach().cpu().numpy().copy(),
        "device": str(learner.flat.device),
        "seconds": time.perf_counter() - start,
        "returns": (result.final_return, result.best_G, result.mean_G),
        "hyper_steps": result.hyper_steps,
    }
    env.close()
    return out


def population(env_id: str, steps: int, overrides: dict[str, Any], device: str, n: int = 3) -> tuple[str, bool, float]:
    """A population of ``n`` EPGT members: its device, whether its weights stay finite, and its wall time."""
    venv = gym.make_vec(env_id, num_envs=n, total_env_steps=steps, device=device, obs_mode="vae", **overrides)
    agent = make_agent("episodic", venv, seed=0)
    start = time.perf_counter()
    hypergym.run(venv, agent, seed=0, out=None, progress=False)
    seconds = time.perf_counter() - start
    flat = venv.learner.flat
    out = (str(flat.device), bool(torch.isfinite(flat).all()), seconds)
    venv.close()
    return out


def main() -> int:
    """Run the cases; print one line per run and population."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="only a small MountainCarContinuous case")
    args = parser.parse_args()
    cases = [("HyperRL-A2C-MountainCarContinuous", 100, {})] if args.quick else CASES
    warnings.simplefilter("ignore")
    failures = 0
    for env_id, steps, overrides in cases:
        try:
            first, second = (single(env_id, steps, overrides, args.device) for _ in range(2))
            cpu = single(env_id, steps, overrides, "cpu")
            same = np.array_equal(first["weights"], second["weights"]) and first["returns"] == second["returns"]
            gap = float(np.max(np.abs(first["weights"] - cpu["weights"])))
            finite = bool(np.isfinite(first["weights"]).all())
            print(
                f"{env_id}: single run on {first['device']}, {first['hyper_steps']} hyper-steps, "
                f"{first['seconds']:.1f} s (cpu {cpu['seconds']:.1f} s); finite {finite}; same seed twice identical "
                f"{same}; max |w_gpu - w_cpu| {gap:.3g} (max |w| {float(np.max(np.abs(cpu['weights']))):.3g})",
                flush=True,
            )
            failures += not (finite and same and first["device"].startswith(args.device))
        except Exception as err:  # report every case, then fail
            failures += 1
            print(f"{env_id}: single run FAILED: {type(err).__name__}: {err}", flush=True)
        try:
            device, finite, seconds = population(env_id, steps, overrides, args.device)
            print(f"{env_id}: population of 3 on {device}, {seconds:.1f} s; finite {finite}", flush=True)
            failures += not (finite and device.startswith(args.device))
        except Exception as err:
            failures += 1
            print(f"{env_id}: population FAILED: {type(err).__name__}: {err}", flush=True)
    print(f"{failures} failure(s)")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
