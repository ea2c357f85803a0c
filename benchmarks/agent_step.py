"""Per-hyper-step time of hyper-agents (``act`` + ``observe``) on a large grid, side by side in one run.

The grid (4 hyperparameters x 6 values = 1,296 joint actions, ``LARGE_GRID``) is where a joint EPGT
memory stops scaling and the factored one (one memory per hyperparameter) is meant to; the inner
learner's own time per step is printed beside it for scale.

    python benchmarks/agent_step.py                          # HyperRL-PPO-CartPole, 20,000 env steps
    python benchmarks/agent_step.py --steps 50000 --agents episodic-factored episodic
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).parent))
from overhead import _timed

import hypergym
from hypergym.agents import make_agent

#: 4 hyperparameters x 6 values: 1,296 joint actions (the paper's largest grid has 144).
LARGE_GRID = {
    "learning_rate": [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3],
    "clip_range": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5],
    "gae_lambda": [0.8, 0.9, 0.92, 0.95, 0.98, 1.0],
    "ent_coef": [0.0, 0.001, 0.003, 0.01, 0.03, 0.1],
}


def measure(env_id: str, agent_name: str, steps: int, seed: int) -> tuple[int, float, float]:
    """Hyper-steps of one run, the agent's ms per step (act + observe) and the env's ms per step."""
    env = gym.make(env_id, hyperparams=LARGE_GRID, total_env_steps=steps, obs_mode="random")
    agent = make_agent(agent_name, env, seed=seed)
    agent_time = [0.0]
    _timed(agent, "act", agent_time)
    _timed(agent, "observe", agent_time)
    start = time.perf_counter()
    result = hypergym.run(env, agent, seed=seed, progress=False)
    total = time.perf_counter() - start
    env.close()
    n = result.hyper_steps
    return n, 1e3 * agent_time[0] / n, 1e3 * (total - agent_time[0]) / n


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", default="HyperRL-PPO-CartPole")
    parser.add_argument("--steps", type=int, default=20_000, help="inner env steps per run")
    parser.add_argument("--agents", nargs="+", default=["episodic-factored", "episodic", "random", "static"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; {args.id}, 4 x 6 grid "
          f"(1,296 joint actions), {args.steps:,} env steps")  # fmt: skip
    print("| agent | hyper-steps | agent ms / step | rest of the step, ms | agent share |")
    print("|---|---|---|---|---|")
    for name in args.agents:
        n, agent_ms, env_ms = measure(args.id, name, args.steps, args.seed)
        share = agent_ms / (agent_ms + env_ms)
        print(f"| `{name}` | {n:,} | {agent_ms:.3f} | {env_ms:.3f} | {share:.1%} |", flush=True)


if __name__ == "__main__":
    main()
