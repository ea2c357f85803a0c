"""The runner: drive a hyper-agent through inner runs and record every hyper-step.

One loop drives a single run and a population alike: a single env and its agent are seen as a batch of
one (:class:`_BatchOfOne`, :class:`_AgentOfOne`), as a single run is a population of one in the env.

A run directory holds ``config.json`` (env id and kwargs, agent settings, seed), ``steps.csv`` (one row
per hyper-step: chosen hyperparameter values, reward, G, env steps, inner episode returns, losses,
diverged; ``pandas.read_csv`` reads it) and ``summary.json`` (final and best returns, speed).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, Transition, agent_config, check_agent
from hypergym.checkpoint import Cadence, CheckpointError, read_checkpoint, write_checkpoint
from hypergym.envs.runs import member_info, objects
from hypergym.rundir import (
    CHECKPOINT_FILE,
    FINAL_EPISODES,
    STEPS_JOURNAL,
    RunResult,
    append_rows,
    env_config,
    jsonable,
    read_rows,
    step_row,
    write_csv,
)

if TYPE_CHECKING:
    from hypergym.agents.population import PopulationAgent

__all__ = ["CHECKPOINT_FILE", "RunResult", "run", "run_population"]


def run(
    env: gym.Env | gym.vector.VectorEnv,
    agent: HyperAgent | PopulationAgent,
    seed: int | Sequence[int] | None = 0,
    out: str | Path | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    extra_config: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    tensorboard: str | Path | None = None,
    checkpoint_minutes: float | None = None,
) -> RunResult | list[RunResult]:
    """Drive ``agent`` through learning episodes of ``env`` until the inner run finishes.

    Given a population (``gym.make_vec(id, num_envs=N)``) and a population agent, runs every member as
    :func:`run_population` does and returns one summary per member.

    Args:
        env: A ``HyperRLEnv`` (any Gymnasium env works; the run then ends after ``max_steps``), or a
            ``HyperRLVectorEnv``.
        agent: Anything with ``act(obs, info)`` and ``observe(transition)`` (for a population, a
            population agent: ``act`` on the batch, ``observe`` on the batched transition).
        seed: Seed of the inner run (``env.reset(seed=seed)``). For a population: one seed per member,
            or an int ``s`` for the seeds ``s, s + 1, ..., s + N - 1``.
        out: Run directory to write (``None``: record nothing); for a population, the folder of the
            members' run directories (``out/seed{s}``).
        progress: Show a progress bar over inner env steps (tqdm).
        max_steps: Stop after this many hyper-steps even if the run is unfinished.
        extra_config: More entries for ``config.json``.
        checkpoint_every: With ``out``: save the whole run (env, agent, records) to ``out/checkpoint.ckpt``
            every this many update phases, atomically; a later call with the same settings and ``out``
            resumes from it, using the checkpoint's env and agent in place of the ones passed, and
            finishes exactly as the uninterrupted run would (Box2D envs, whose worlds cannot be saved,
            start new episodes at the next rollout instead). Atari runs, whose emulators cannot be saved,
            warn once and go on without checkpoints.
        tensorboard: Also log every hyper-step to TensorBoard (through SB3's logger) under
            ``tensorboard/<agent>/seed<seed>`` (one folder per population member):
            :mod:`hypergym.tensorboard_log` lists the scalars.
        checkpoint_minutes: In place of ``checkpoint_every``: save at the end of the first update phase at
            least this many minutes (wall clock) after the last save (or the start). A phase is one update
            under the ``code`` profile's A2C and hundreds under PPO; minutes bound both the work a kill
            loses and the time spent saving. When the checkpoints fall does not change the numbers.

    Returns:
        The run's :class:`RunResult`; for a population, a list of them, one per member.

    Raises:
        ValueError: If the env has no budget and no ``max_steps`` is given, or a population gets no seeds
            or the wrong number of them.
    """
    cadence = Cadence.checked(checkpoint_every, checkpoint_minutes)
    check_agent(agent, population=isinstance(env, gym.vector.VectorEnv))
    if isinstance(env, gym.vector.VectorEnv):
        if seed is None:
            raise ValueError("a population needs seeds: pass seed=int (seeds s..s+N-1) or one seed per member")
        seeds = [int(seed) + i for i in range(env.num_envs)] if isinstance(seed, int) else [int(s) for s in seed]
        return run_population(
            env, agent, seeds, out, extra_config, progress=progress, max_steps=max_steps,
            checkpoint_every=checkpoint_every, tensorboard=tensorboard, checkpoint_minutes=checkpoint_minutes,
        )  # fmt: skip
    if not isinstance(seed, int | None):
        raise ValueError(f"a single run takes one seed (int or None), got {seed!r}")
    budget = getattr(env.unwrapped, "total_env_steps", None)
    if budget is None and max_steps is None:
        raise ValueError("this env has no inner env-step budget: pass max_steps")
    run_dir = Path(out) if out is not None else None
    config: dict[str, Any] = {}
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {**env_config(env), "agent": agent_config(agent), "seed": seed, **(extra_config or {})}
        space = getattr(env.unwrapped, "space", None)
        if space is not None:
            config["space"] = {name: list(values) for name, values in space.values.items()}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    boards = _boards(tensorboard, agent, [seed], extra_config)
    (result,) = _drive(
        _BatchOfOne(env), _AgentOfOne(agent), [seed], [run_dir], config, progress, max_steps, cadence,
        boards=boards,
    )  # fmt: skip
    return result


def run_population(
    venv: Any,
    agent: PopulationAgent,
    seeds: list[int],
    out: str | Path | None = None,
    extra_config: dict[str, Any] | None = None,
    progress: bool = False,
    max_steps: int | None = None,
    checkpoint_every: int | None = None,
    tensorboard: str | Path | None = None,
    checkpoint_minutes: float | None = None,
) -> list[RunResult]:
    """Drive a population agent through one run of every member of a ``HyperRLVectorEnv``.

    Member ``i`` is seeded ``seeds[i]`` and recorded in ``out/seed{seeds[i]}`` exactly as :func:`run`
    records a single run (``config.json``, ``steps.csv``, ``summary.json``), so ``hypergym plot`` and
    ``compare`` read population runs and single runs alike. Wall time and speed are the population's.

    Args:
        venv: The population.
        agent: A population agent (``act`` and ``observe`` on the batch).
        seeds: One seed per member.
        out: Folder of the members' run directories (``None``: record nothing).
        extra_config: More entries for every member's ``config.json``.
        progress: Show a progress bar over one member's inner env steps (tqdm).
        max_steps: Stop after this many hyper-steps even if the runs are unfinished.
        checkpoint_every: With ``out``: save the whole population (env, agent, records) to
            ``out/checkpoint.ckpt`` every this many update phases; a later call with the same settings
            resumes from it, as :func:`run` does.
        tensorboard: Log every member's hyper-steps to TensorBoard under ``tensorboard/<agent>/seed<seed>``.
        checkpoint_minutes: In place of ``checkpoint_every``: a wall-clock cadence, as in :func:`run`.

    Returns:
        One summary per member.
    """
    if len(seeds) != venv.num_envs:
        raise ValueError(f"{len(seeds)} seeds for a population of {venv.num_envs}")
    cadence = Cadence.checked(checkpoint_every, checkpoint_minutes)
    config = {"agent": agent_config(agent), "seeds": list(seeds), **(extra_config or {})}
    run_dirs = [Path(out) / f"seed{seed}" if out is not None else None for seed in seeds]
    results = _drive(
        venv, agent, seeds, run_dirs, config, progress, max_steps, cadence, Path(out) if out else None,
        boards=_boards(tensorboard, agent, seeds, extra_config),
    )  # fmt: skip
    for seed, run_dir in zip(seeds, run_dirs, strict=True):
        if run_dir is not None:
            member_config = {
                "agent": agent_config(agent),
                "seed": seed,
                "population": len(seeds),
                **(extra_config or {}),
            }
            member_config["space"] = {name: list(values) for name, values in venv.space.values.items()}
            (run_dir / "config.json").write_text(json.dumps(jsonable(member_config), indent=2))
    return results


def _boards(root: str | Path | None, agent: Any, seeds: list[Any], extra: dict[str, Any] | None) -> list[Path] | None:
    """Each run's TensorBoard folder (``None``: no logging), named by the agent's label and the seed."""
    if root is None:
        return None
    from hypergym.tensorboard_log import run_folder

    label = (extra or {}).get("agent_label") or agent_config(agent).get("name", type(agent).__name__)
    return [run_folder(root, str(label), seed) for seed in seeds]


class _BatchOfOne:
    """A single env as a vector env of one, with same-step autoreset (``final_obs`` / ``final_info``)."""

    num_envs = 1

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.total_env_steps = getattr(env.unwrapped, "total_env_steps", None)

    def reset(self, seed: list[int | None]) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed[0])
        return objects([obs]), {"single": info}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions[0])
        batched: dict[str, Any] = {"single": info}
        if terminated or truncated:
            batched["final_obs"] = objects([obs])
            if not info.get("run_finished", False):
                obs, batched["single_reset"] = self.env.reset()
        flags = np.array([terminated]), np.array([truncated])
        return objects([obs]), np.array([float(reward)]), flags[0], flags[1], batched

    def close(self) -> None:
        self.env.close()


class _AgentOfOne:
    """A single-run agent (``act(obs, info)``, ``observe(transition)``) acting on a batch of one."""

    def __init__(self, agent: HyperAgent) -> None:
        self.agent = agent

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        # After the end of a learning episode the agent sees the next one's reset info, as a single loop would.
        return objects([self.agent.act(obs[0], info.get("single_reset", info["single"]))])

    def step_records(self) -> list[dict[str, Any]]:
        """The agent's own record of its last choice (``step_record()``, e.g. HOOF's estimates), if it keeps one."""
        record = getattr(self.agent, "step_record", None)
        return [record() if record is not None else {}]

    def observe(self, obs: Any, actions: Any, rewards: Any, next_obs: Any, terminated: Any, truncated: Any,
                info: dict[str, Any]) -> None:  # fmt: skip
        final = info.get("final_obs", next_obs)[0]
        self.agent.observe(
            Transition(obs[0], actions[0], float(rewards[0]), final, bool(terminated[0]), bool(truncated[0]),
                       info["single"])
        )  # fmt: skip


def _member_infos(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Each member's info of a step (the ending step's, ``final_info``, when a learning episode ended)."""
    if "single" in info:
        return [info["single"]]
    return [member_info(info.get("final_info", info), i) for i in range(n)]


@dataclass
class _Loop:
    """Where the runner's loop stands: what a checkpoint saves besides the env and the agent."""

    obs: Any
    info: dict[str, Any]
    n: int
    rows: list[list[dict[str, Any]]] = field(default_factory=list)
    """Each recorded member's ``steps.csv`` rows not yet in its journal (:data:`STEPS_JOURNAL`)."""
    journal: list[int] = field(default_factory=list)
    """Each member's journal size in bytes at this state: the rows before ``rows``."""
    returns: list[list[float]] = field(default_factory=list)
    gs: list[list[float]] = field(default_factory=list)
    evals: list[list[float]] = field(default_factory=list)
    diverged: list[int] = field(default_factory=list)
    episodes: list[int] = field(default_factory=list)
    step: int = 0
    phases: int = 0
    last_progress: int = 0
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rows", "returns", "gs", "evals"):
            setattr(self, name, [[] for _ in range(self.n)])
        self.diverged, self.episodes, self.journal = [0] * self.n, [0] * self.n, [0] * self.n


def _drive(
    env: Any,
    agent: Any,
    seeds: list[Any],
    run_dirs: list[Path | None],
    config: dict[str, Any],
    progress: bool,
    max_steps: int | None,
    cadence: Cadence,
    checkpoint_dir: Path | None = None,
    boards: list[Path] | None = None,
) -> list[RunResult]:
    """The one loop: ``env`` and ``agent`` batched (vector conventions, same-step autoreset)."""
    n = env.num_envs
    loggers = None
    if boards is not None:
        from hypergym.tensorboard_log import HyperStepLogger

        loggers = [HyperStepLogger(folder) for folder in boards]
    folder = checkpoint_dir if checkpoint_dir is not None else run_dirs[0]
    checkpoint = folder / CHECKPOINT_FILE if folder is not None and cadence else None
    caller_env = env
    loop: _Loop | None = None
    if checkpoint is not None and checkpoint.is_file():
        env, agent, loop = _resume(checkpoint, config)
    budget = getattr(env, "total_env_steps", None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        unit = "env step" if budget else "hyper-step"
        bar = tqdm(total=budget or max_steps, unit=unit if n == 1 else f"{unit} per member", leave=False)
    if loop is None:
        obs, info = env.reset(seed=list(seeds))
        loop = _Loop(obs=obs, info=info, n=n)
    elif bar is not None:
        bar.update(loop.last_progress)
    # Checkpoints keep the rows in journals beside them, not in themselves: a checkpoint of a 1M-step
    # population of 10 had grown to 410 MB of rows. A checkpoint from before the journals has none.
    journals = [d / STEPS_JOURNAL if d is not None and checkpoint is not None else None for d in run_dirs]
    loop.journal = list(getattr(loop, "journal", None) or [0] * n)
    for path, size in zip(journals, loop.journal, strict=True):
        if path is not None:
            _rewind(path, size, checkpoint)
    obs, info = loop.obs, loop.info
    start = time.perf_counter() - loop.elapsed
    saved = time.perf_counter()
    while True:
        actions = agent.act(obs, info)
        records = agent.step_records() if hasattr(agent, "step_records") else None
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        agent.observe(obs, actions, rewards, next_obs, terminated, truncated, info)
        members = _member_infos(info, n)
        for i, member in enumerate(members):
            row = step_row(loop.step, loop.episodes[i], actions[i], float(rewards[i]), member)
            if records is not None:
                row.update({f"agent_{name}": value for name, value in records[i].items()})
            if run_dirs[i] is not None:  # the rows are only for steps.csv
                loop.rows[i].append(row)
            if loggers is not None:
                loggers[i].write(row)
            loop.returns[i] += list(member.get("episode_returns", []))
            if "G" in member:
                loop.gs[i].append(float(member["G"]))
            if "eval_return" in member:
                loop.evals[i].append(float(member["eval_return"]))
            loop.diverged[i] += bool(member.get("diverged", False))
            loop.episodes[i] += bool(terminated[i] or truncated[i])
        loop.step += 1
        now = int(members[0].get("env_steps", loop.step))
        if bar is not None:
            bar.update(now - loop.last_progress if budget else 1)
        loop.last_progress = now
        finished = all(bool(m.get("run_finished", False)) for m in members)
        if finished or (max_steps is not None and loop.step >= max_steps):
            break
        obs = next_obs
        if "G" in members[0]:
            loop.phases += 1
            if checkpoint is not None and cadence.due(loop.phases, time.perf_counter() - saved):
                loop.obs, loop.info, loop.elapsed = obs, info, time.perf_counter() - start
                for i, path in enumerate(journals):
                    if path is not None:
                        loop.journal[i], loop.rows[i] = append_rows(path, loop.rows[i]), []
                if not _save(checkpoint, config, env, agent, loop):
                    checkpoint = None
                saved = time.perf_counter()
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    for logger in loggers or []:
        logger.close()
    results = []
    for i, run_dir in enumerate(run_dirs):
        env_steps = int(members[i].get("env_steps", 0))
        returns, gs, evals = loop.returns[i], loop.gs[i], loop.evals[i]
        result = RunResult(
            hyper_steps=loop.step,
            learning_episodes=loop.episodes[i],
            env_steps=env_steps,
            final_return=float(np.mean(returns[-FINAL_EPISODES:])) if returns else math.nan,
            best_G=max(gs) if gs else math.nan,
            mean_G=float(np.mean(gs)) if gs else math.nan,
            diverged_steps=loop.diverged[i],
            wall_seconds=wall,
            env_steps_per_second=n * env_steps / wall if wall > 0 else math.nan,
            run_dir=str(run_dir) if run_dir is not None else None,
            best_eval_return=max(evals) if evals else math.nan,
            final_eval_return=evals[-1] if evals else math.nan,
        )
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            journal = journals[i]
            earlier = read_rows(journal) if journal is not None and loop.journal[i] else []
            write_csv(run_dir / "steps.csv", earlier + loop.rows[i])
            (run_dir / "summary.json").write_text(json.dumps(asdict(result), indent=2))
        results.append(result)
    if folder is not None:
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # the summaries supersede it
    for journal in journals:
        if journal is not None:
            journal.unlink(missing_ok=True)  # steps.csv supersedes it
    if env is not caller_env:
        env.close()  # the resumed copy; the caller's env is the caller's to close
    return results


def _rewind(path: Path, size: int, checkpoint: Path | None) -> None:
    """Cut the journal at ``path`` back to ``size`` bytes: the rows the checkpoint being resumed had.

    Rows after it were written before a checkpoint that was never completed (the run redoes them); a
    fresh run (``size`` 0) drops a journal left by a run killed before its first checkpoint.
    """
    if size == 0:
        path.unlink(missing_ok=True)
        return
    have = path.stat().st_size if path.is_file() else 0
    if have < size:
        raise CheckpointError(
            f"{path} holds {have} bytes of rows but the checkpoint {checkpoint} was written after {size}: "
            "the journal was deleted or cut; delete the checkpoint too to start this run afresh"
        )
    os.truncate(path, size)


def _save(path: Path, config: dict[str, Any], env: Any, agent: Any, loop: Any) -> bool:
    """Write the run's checkpoint; False (with a warning, once) if this run cannot be checkpointed."""
    try:
        write_checkpoint(path, {"kind": "run", "config": json.dumps(jsonable(config), sort_keys=True), "env": env,
                                "agent": agent, "loop": loop})  # fmt: skip
    except CheckpointError as err:
        warnings.warn(f"{err}; this run goes on without checkpoints (a kill restarts it)", UserWarning, stacklevel=3)
        return False
    return True


def _resume(path: Path, config: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The env, agent and loop state of the checkpoint at ``path``, written by a run with ``config``."""
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("kind") != "run":
        raise CheckpointError(f"{path} is not a run checkpoint")
    if payload["config"] != json.dumps(jsonable(config), sort_keys=True):
        raise CheckpointError(
            f"{path} was written by a run with other settings (env, agent or seed); delete it to start this run "
            "afresh, or run with the settings it was written with"
        )
    return payload["env"], payload["agent"], payload["loop"]
