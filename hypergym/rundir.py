"""A run directory: ``config.json``, ``steps.csv`` (one row per hyper-step) and ``summary.json`` (a :class:`RunResult`).

``steps.csv`` has one row per hyper-step: chosen hyperparameter values, reward, G, env steps, inner
episode returns, losses, diverged (``pandas.read_csv`` reads it); ``summary.json`` the final and best
returns and the speed. While a checkpointed run goes on, its rows so far wait in ``steps.partial.jsonl``
(:data:`STEPS_JOURNAL`), so that a checkpoint does not grow with the run; ``steps.csv`` replaces it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.files import atomic_write

__all__ = ["CHECKPOINT_FILE", "FINAL_EPISODES", "STEPS_JOURNAL", "TRAIN_EPISODES", "FinishedRun", "MemberTally"]
__all__ += ["Recorder", "RunFilesError", "RunResult", "append_rows", "csv_cell", "csv_number", "env_config"]
__all__ += ["jsonable", "member_dir", "portable_name", "read_rows", "read_run", "read_summary", "scalar"]
__all__ += ["step_row", "write_csv", "write_json"]


#: Inner episodes averaged for the final return of a run.
FINAL_EPISODES = 10
#: Inner episodes averaged for the training return of Fig. 2 (the released classic script logs their mean).
TRAIN_EPISODES = 100
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
    train_return_100: float = math.nan
    """Mean raw return of the last 100 inner episodes (Fig. 2's training return; NaN if none completed)."""
    mean_return: float = math.nan
    """Mean raw return of every inner episode of the run: the area under its learning curve, how fast it learns,
    whatever the hyper-reward (NaN if none completed)."""


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
    """``steps.csv``: the union of the rows' columns, in order of first appearance (written atomically)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def csv_cell(value: Any) -> str:
    """``value`` as :mod:`csv` writes it: ``None`` empty, anything else by ``str``."""
    return "" if value is None else str(value)


def csv_number(cell: str) -> float:
    """The number a ``steps.csv`` cell holds (``True``/``False`` as 1/0); NaN for text and empty cells."""
    if cell in ("True", "False"):
        return float(cell == "True")
    try:
        return float(cell)
    except ValueError:
        return math.nan


def append_rows(path: Path, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` to the journal at ``path`` as their CSV cells; the journal's size in bytes after.

    The cells are the strings :func:`write_csv` would write, so ``steps.csv`` made from the journal is the
    one made from the rows themselves, byte for byte.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps({k: csv_cell(v) for k, v in row.items()}) + "\n")
        f.flush()
        return f.tell()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of the journal at ``path`` (written by :func:`append_rows`), in order."""
    with path.open() as f:
        return [json.loads(line) for line in f]


def env_config(env: gym.Env | gym.vector.VectorEnv) -> dict[str, Any]:
    """The env's id and kwargs (or its class name), for ``config.json``."""
    spec = env.spec
    if spec is None:
        return {"env": type(env.unwrapped).__name__}
    # A population's size is its config's "population"; its members' env settings are a single run's.
    kwargs = {k: jsonable(v) for k, v in spec.kwargs.items() if k not in ("num_envs", "vectorization_mode")}
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


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as strict JSON (NaN and infinities as ``null``), atomically: a file is whole or absent."""
    atomic_write(path, json.dumps(_finite(jsonable(value)), indent=2, allow_nan=False))


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return [_finite(v) for v in x] if isinstance(x, list) else x


def read_summary(path: Path) -> dict[str, Any]:
    """A run's ``summary.json``, with ``null`` numbers (NaN when written) as NaN again."""
    summary = json.loads(path.read_text())
    if not isinstance(summary, dict):
        raise ValueError(f"a summary is a JSON object, not {type(summary).__name__}")
    numbers = {f.name for f in fields(RunResult) if f.type in ("float", float)}
    return {k: math.nan if v is None and k in numbers else v for k, v in summary.items()}


class RunFilesError(ValueError):
    """A run directory whose files cannot be read or do not agree: names the file, the cause and the remedy."""


@dataclass(frozen=True)
class FinishedRun:
    """The files of a finished run directory, read and checked against each other (:func:`read_run`)."""

    config: dict[str, Any]
    summary: dict[str, Any]
    rows: list[dict[str, str]]
    """``steps.csv``'s rows, as text."""


def read_run(run_dir: Path) -> FinishedRun:
    """Read a finished run directory: ``config.json``, ``summary.json`` and ``steps.csv``, checked.

    The summary must match the rows (one row per hyper-step, steps 0, 1, ... in order, its env steps those
    of the last row), so that a run cut short, corrupt or assembled from two writers is never taken as done.

    Raises:
        RunFilesError: Naming the file and what is wrong with it.
    """
    fix = f"delete {run_dir} to run it again"

    def parsed(name: str, parse: Any) -> Any:
        path = run_dir / name
        try:
            value = parse(path)
        except OSError as err:
            raise RunFilesError(f"{path} cannot be read ({err.strerror or err}); {fix}") from err
        except (ValueError, csv.Error) as err:
            raise RunFilesError(f"{path} is corrupt ({err}); {fix}") from err
        if not isinstance(value, (dict, list)):
            raise RunFilesError(f"{path} is corrupt (it holds a {type(value).__name__}); {fix}")
        return value

    config = parsed("config.json", lambda p: json.loads(p.read_text()))
    summary = parsed("summary.json", read_summary)
    rows = parsed("steps.csv", lambda p: list(csv.DictReader(io.StringIO(p.read_text(), newline=""))))
    steps = [row.get("step") for row in rows]
    if summary.get("hyper_steps") != len(rows) or steps != [str(i) for i in range(len(rows))]:
        raise RunFilesError(
            f"{run_dir / 'steps.csv'} holds {len(rows)} rows, not the hyper-steps 0..{summary.get('hyper_steps')} - 1 "
            f"its summary.json counts, in order; {fix}"
        )
    if rows and rows[-1].get("env_steps") not in (None, "", str(summary.get("env_steps"))):
        raise RunFilesError(
            f"{run_dir / 'summary.json'} says {summary.get('env_steps')} env steps, but the last row of steps.csv "
            f"{rows[-1].get('env_steps')}; {fix}"
        )
    return FinishedRun(config, summary, rows)


def portable_name(name: str) -> str:
    """``name`` as a folder name every file system takes: characters other than letters, digits, ``-_.`` as ``-``.

    (A user's agent ``my_agents:UCB`` gets the folder ``my_agents-UCB``; a colon is not allowed on Windows.)
    """
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def member_dir(out: str | Path, seed: Any) -> Path:
    """The run directory of the population member seeded ``seed`` in the folder ``out``: ``out/seed{seed}``."""
    return Path(out) / f"seed{seed}"


@dataclass
class MemberTally:
    """What one member's summary is made of, gathered step by step."""

    returns: list[float] = field(default_factory=list)
    gs: list[float] = field(default_factory=list)
    evals: list[float] = field(default_factory=list)
    diverged: int = 0
    episodes: int = 0
    env_steps: int = 0
    steps: int = 0

    def add(self, info: dict[str, Any], ended: bool) -> None:
        """Count one hyper-step of the member, from its info (``ended``: its learning episode ended)."""
        self.returns += list(info.get("episode_returns", []))
        if "G" in info:
            self.gs.append(float(info["G"]))
        if "eval_return" in info:
            self.evals.append(float(info["eval_return"]))
        self.diverged += bool(info.get("diverged", False))
        self.episodes += ended
        self.env_steps = int(info.get("env_steps", 0))
        self.steps += 1

    def result(self, wall: float, members: int, run_dir: Path | None) -> RunResult:
        """The member's :class:`RunResult` (speed: the population's, all members' env steps)."""
        returns, gs, evals = self.returns, self.gs, self.evals
        return RunResult(
            hyper_steps=self.steps,
            learning_episodes=self.episodes,
            env_steps=self.env_steps,
            final_return=float(np.mean(returns[-FINAL_EPISODES:])) if returns else math.nan,
            train_return_100=float(np.mean(returns[-TRAIN_EPISODES:])) if returns else math.nan,
            mean_return=float(np.mean(returns)) if returns else math.nan,
            best_G=max(gs) if gs else math.nan,
            mean_G=float(np.mean(gs)) if gs else math.nan,
            diverged_steps=self.diverged,
            wall_seconds=wall,
            env_steps_per_second=members * self.env_steps / wall if wall > 0 else math.nan,
            run_dir=str(run_dir) if run_dir is not None else None,
            best_eval_return=max(evals) if evals else math.nan,
            final_eval_return=evals[-1] if evals else math.nan,
        )


class Recorder:
    """Owns the run directories of one run or population: configs, rows, journals, summaries.

    A single run is recorded in ``out`` itself, a population's member seeded ``s`` in ``out/seed{s}``
    (:func:`member_dir`); a population's checkpoint lies in ``out``, a single run's in its run directory.

    Args:
        out: The run directory (single run) or the folder of the members' ones; ``None``: record nothing.
        seeds: The members' seeds.
        single: Record a single run (in ``out`` itself).
        journaled: Keep the rows in journals beside a checkpoint (the run is checkpointed).
    """

    def __init__(self, out: str | Path | None, seeds: list[Any], single: bool, journaled: bool) -> None:
        self.folder = Path(out) if out is not None else None
        if self.folder is None:
            self.dirs: list[Path | None] = [None] * len(seeds)
        else:
            self.dirs = [self.folder] if single else [member_dir(self.folder, s) for s in seeds]
        self.journals = [d / STEPS_JOURNAL if d is not None and journaled else None for d in self.dirs]

    def start(self, configs: list[dict[str, Any]]) -> None:
        """Write each member's ``config.json`` (before any step is taken)."""
        for run_dir, config in zip(self.dirs, configs, strict=True):
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_json(run_dir / "config.json", config)

    def rewind(self, sizes: list[int], checkpoint: Path | None) -> None:
        """Cut each journal back to ``sizes`` bytes: the rows the checkpoint being resumed had.

        Rows after it were written before a checkpoint that was never completed (the run redoes them); a
        fresh run (size 0) drops a journal left by a run killed before its first checkpoint.

        Raises:
            CheckpointError: If a journal holds fewer bytes than the checkpoint says it had.
        """
        from hypergym.checkpoint import CheckpointError

        for path, size in zip(self.journals, sizes, strict=True):
            if path is None:
                continue
            if size == 0:
                path.unlink(missing_ok=True)
                continue
            have = path.stat().st_size if path.is_file() else 0
            if have < size:
                raise CheckpointError(
                    f"{path} holds {have} bytes of rows but the checkpoint {checkpoint} was written after {size}: "
                    "the journal was deleted or cut; delete the checkpoint too to start this run afresh"
                )
            os.truncate(path, size)

    def flush(self, rows: list[list[dict[str, Any]]]) -> list[int]:
        """Append each member's pending ``rows`` to its journal (emptying them); the journals' sizes after."""
        sizes = []
        for path, pending in zip(self.journals, rows, strict=True):
            sizes.append(append_rows(path, pending) if path is not None else 0)
            if path is not None:
                pending.clear()
        return sizes

    def finish(self, results: list[RunResult], rows: list[list[dict[str, Any]]], journaled: list[int]) -> None:
        """Write ``steps.csv`` (the journal's rows, then ``rows``) and ``summary.json`` of every member."""
        for i, run_dir in enumerate(self.dirs):
            if run_dir is None:
                continue
            journal = self.journals[i]
            earlier = read_rows(journal) if journal is not None and journaled[i] else []
            write_csv(run_dir / "steps.csv", earlier + rows[i])
            write_json(run_dir / "summary.json", asdict(results[i]))
        for journal in self.journals:
            if journal is not None:
                journal.unlink(missing_ok=True)  # steps.csv supersedes it
