"""A run directory: ``config.json``, ``steps.csv`` (one row per hyper-step) and ``summary.json`` (a :class:`RunResult`).

``steps.csv`` has one row per hyper-step: chosen hyperparameter values, reward, G, env steps, inner
episode returns, losses, diverged (``pandas.read_csv`` reads it); ``summary.json`` the final and best
returns and the speed. While a checkpointed run goes on, its rows so far wait in ``steps.partial.jsonl``
(:data:`STEPS_JOURNAL`), so that a checkpoint does not grow with the run; ``steps.csv`` replaces it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "CHECKPOINT_FILE",
    "FINAL_EPISODES",
    "STEPS_JOURNAL",
    "RunResult",
    "append_rows",
    "env_config",
    "jsonable",
    "read_rows",
    "scalar",
    "step_row",
    "write_csv",
]


#: Inner episodes averaged for the final return of a run.
FINAL_EPISODES = 10
#: A run directory's checkpoint (removed once ``summary.json`` is written).
CHECKPOINT_FILE = "checkpoint.ckpt"
#: A checkpointed run's rows so far, one JSON object per line (removed once ``steps.csv`` is written).
STEPS_JOURNAL = "steps.partial.jsonl"


@dataclass(frozen=True)
class RunResult:
    """Summary of one run (also written to ``summary.json``)."""

    hyper_steps: int
    """Hyper-steps taken (policy updates)."""
    learning_episodes: int
    """Learning episodes completed."""
    env_steps: int
    """Inner env steps at the end."""
    final_return: float
    """Mean raw return of the last 10 inner episodes (NaN if none completed)."""
    best_G: float
    """Best hyper-return G of any update phase (NaN if none)."""
    mean_G: float
    """Mean hyper-return G over the run's update phases."""
    diverged_steps: int
    """Hyper-steps whose update diverged and was rolled back."""
    wall_seconds: float
    """Wall time of the run."""
    env_steps_per_second: float
    """Inner env steps per second, everything included."""
    run_dir: str | None
    """Where the run was recorded (``None``: not recorded)."""
    best_eval_return: float = math.nan
    """Best deterministic evaluation of the run (the paper's metric; NaN without ``eval_every``)."""
    final_eval_return: float = math.nan
    """The last evaluation, of the final policy (NaN without ``eval_every``)."""


def scalar(x: Any) -> Any:
    """A NumPy array or scalar as a Python list or scalar."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def step_row(step: int, episode: int, action: Any, reward: float, info: dict[str, Any]) -> dict[str, Any]:
    """The ``steps.csv`` row of one hyper-step, from its info."""
    returns = info.get("episode_returns", [])
    row: dict[str, Any] = {
        "step": step,
        "episode": episode,
        "phase_step": info.get("phase_step"),
        "env_steps": info.get("env_steps"),
        "updates": info.get("updates"),
        "action": json.dumps(scalar(action)),
        "reward": reward,
        "G": info.get("G", math.nan),
        "inner_return": float(np.mean(returns)) if returns else math.nan,
        "inner_episodes": len(returns),
        "diverged": bool(info.get("diverged", False)),
    }
    for name, value in info.get("hyperparams", {}).items():
        row[f"hp_{name}"] = value
    for name, value in info.get("losses", {}).items():
        row[f"loss_{name}"] = value
    for name in ("encoder_loss", "encoder_kl", "eval_return"):
        if name in info:
            row[name] = info[name]
    return row


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``steps.csv``: the union of the rows' columns, in order of first appearance."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _cell(value: Any) -> str:
    """``value`` as :mod:`csv` writes it: ``None`` empty, anything else by ``str``."""
    return "" if value is None else str(value)


def append_rows(path: Path, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` to the journal at ``path`` as their CSV cells; the journal's size in bytes after.

    The cells are the strings :func:`write_csv` would write, so ``steps.csv`` made from the journal is the
    one made from the rows themselves, byte for byte.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps({k: _cell(v) for k, v in row.items()}) + "\n")
        f.flush()
        return f.tell()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of the journal at ``path`` (written by :func:`append_rows`), in order."""
    with path.open() as f:
        return [json.loads(line) for line in f]


def env_config(env: gym.Env) -> dict[str, Any]:
    """The env's id and kwargs (or its class name), for ``config.json``."""
    spec = env.spec
    if spec is None:
        return {"env": type(env.unwrapped).__name__}
    kwargs = {k: jsonable(v) for k, v in spec.kwargs.items()}
    return {"env_id": spec.id, "env_kwargs": kwargs}


def jsonable(x: Any) -> Any:
    """``x`` with NumPy values as Python ones and anything else not JSON as its ``repr``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return scalar(x) if isinstance(x, (np.ndarray, np.generic)) else repr(x)
