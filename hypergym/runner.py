"""The runner: drive a hyper-agent through one inner run and record every hyper-step.

A run directory holds ``config.json`` (env id and kwargs, agent settings, seed), ``steps.csv`` (one row
per hyper-step: chosen hyperparameter values, reward, G, env steps, inner episode returns, losses,
diverged; ``pandas.read_csv`` reads it) and ``summary.json`` (final and best returns, speed).
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, Transition
from hypergym.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

if TYPE_CHECKING:
    from hypergym.agents.population import PopulationAgent

__all__ = ["RunResult", "run", "run_population"]

#: Inner episodes averaged for the final return of a run.
FINAL_EPISODES = 10
#: A run directory's checkpoint (removed once ``summary.json`` is written).
CHECKPOINT_FILE = "checkpoint.ckpt"


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


def _scalar(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _row(step: int, episode: int, action: Any, reward: float, info: dict[str, Any]) -> dict[str, Any]:
    returns = info.get("episode_returns", [])
    row: dict[str, Any] = {
        "step": step,
        "episode": episode,
        "phase_step": info.get("phase_step"),
        "env_steps": info.get("env_steps"),
        "updates": info.get("updates"),
        "action": json.dumps(_scalar(action)),
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
    for name in ("encoder_loss", "encoder_kl"):
        if name in info:
            row[name] = info[name]
    return row


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _env_config(env: gym.Env) -> dict[str, Any]:
    spec = env.spec
    if spec is None:
        return {"env": type(env.unwrapped).__name__}
    kwargs = {k: _jsonable(v) for k, v in spec.kwargs.items()}
    return {"env_id": spec.id, "env_kwargs": kwargs}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return _scalar(x) if isinstance(x, (np.ndarray, np.generic)) else repr(x)


def run(
    env: gym.Env | gym.vector.VectorEnv,
    agent: HyperAgent | PopulationAgent,
    seed: int | Sequence[int] | None = 0,
    out: str | Path | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    extra_config: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
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

    Returns:
        The run's :class:`RunResult`; for a population, a list of them, one per member.

    Raises:
        ValueError: If the env has no budget and no ``max_steps`` is given, or a population gets no seeds
            or the wrong number of them.
    """
    _check_checkpoint_every(checkpoint_every)
    if isinstance(env, gym.vector.VectorEnv):
        if seed is None:
            raise ValueError("a population needs seeds: pass seed=int (seeds s..s+N-1) or one seed per member")
        seeds = [int(seed) + i for i in range(env.num_envs)] if isinstance(seed, int) else [int(s) for s in seed]
        return run_population(
            env, agent, seeds, out, extra_config, progress=progress, max_steps=max_steps,
            checkpoint_every=checkpoint_every,
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
        config = {**_env_config(env), "agent": agent.config(), "seed": seed, **(extra_config or {})}
        space = getattr(env.unwrapped, "space", None)
        if space is not None:
            config["space"] = {name: list(values) for name, values in space.values.items()}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))

    checkpoint = run_dir / CHECKPOINT_FILE if run_dir is not None and checkpoint_every else None
    loop: _Loop | None = None
    caller_env = env
    if checkpoint is not None and checkpoint.is_file():
        env, agent, loop = _resume(checkpoint, config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=budget or max_steps, unit="env step" if budget else "hyper-step", leave=False)
    if loop is None:
        obs, info = env.reset(seed=seed)
        loop = _Loop(obs=obs, info=info, last_progress=info.get("env_steps", 0))
    elif bar is not None:
        bar.update(loop.last_progress)
    start = time.perf_counter() - loop.elapsed
    obs, info = loop.obs, loop.info
    while True:
        action = agent.act(obs, info)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.observe(Transition(obs, action, float(reward), next_obs, terminated, truncated, info))
        loop.rows.append(_row(loop.step, loop.episode, action, float(reward), info))
        loop.returns += info.get("episode_returns", [])
        phase_done = "G" in info
        if phase_done:
            loop.gs.append(float(info["G"]))
        loop.diverged += bool(info.get("diverged", False))
        loop.step += 1
        if bar is not None:
            now = info.get("env_steps", loop.step)
            bar.update(now - loop.last_progress if budget else 1)
            loop.last_progress = now
        finished = bool(info.get("run_finished", False)) or (max_steps is not None and loop.step >= max_steps)
        if terminated or truncated:
            loop.episode += 1
        if finished:
            break
        if terminated or truncated:
            obs, info = env.reset()
        else:
            obs = next_obs
        if checkpoint is not None and phase_done and len(loop.gs) % checkpoint_every == 0:  # type: ignore[operator]
            loop.obs, loop.info, loop.elapsed = obs, info, time.perf_counter() - start
            if not _save(checkpoint, config, env, agent, loop):
                checkpoint = None
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    env_steps = int(info.get("env_steps", 0))
    returns, gs = loop.returns, loop.gs
    result = RunResult(
        hyper_steps=loop.step,
        learning_episodes=loop.episode,
        env_steps=env_steps,
        final_return=float(np.mean(returns[-FINAL_EPISODES:])) if returns else math.nan,
        best_G=max(gs) if gs else math.nan,
        mean_G=float(np.mean(gs)) if gs else math.nan,
        diverged_steps=loop.diverged,
        wall_seconds=wall,
        env_steps_per_second=env_steps / wall if wall > 0 else math.nan,
        run_dir=str(run_dir) if run_dir is not None else None,
    )
    if run_dir is not None:
        _write_csv(run_dir / "steps.csv", loop.rows)
        (run_dir / "summary.json").write_text(json.dumps(asdict(result), indent=2))
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # the summary supersedes it
    if env is not caller_env:
        env.close()  # the resumed copy; the caller's env is the caller's to close
    return result


def _check_checkpoint_every(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"checkpoint_every must be a positive integer or None, got {value!r}")


@dataclass
class _Loop:
    """Where the runner's loop stands: what a checkpoint saves besides the env and the agent."""

    obs: Any
    info: dict[str, Any]
    last_progress: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    gs: list[float] = field(default_factory=list)
    step: int = 0
    episode: int = 0
    diverged: int = 0
    elapsed: float = 0.0


def _save(path: Path, config: dict[str, Any], env: Any, agent: Any, loop: Any) -> bool:
    """Write the run's checkpoint; False (with a warning, once) if this run cannot be checkpointed."""
    try:
        write_checkpoint(path, {"kind": "run", "config": json.dumps(_jsonable(config), sort_keys=True), "env": env,
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
    if payload["config"] != json.dumps(_jsonable(config), sort_keys=True):
        raise CheckpointError(
            f"{path} was written by a run with other settings (env, agent or seed); delete it to start this run "
            "afresh, or run with the settings it was written with"
        )
    return payload["env"], payload["agent"], payload["loop"]


def run_population(
    venv: Any,
    agent: PopulationAgent,
    seeds: list[int],
    out: str | Path | None = None,
    extra_config: dict[str, Any] | None = None,
    progress: bool = False,
    max_steps: int | None = None,
    checkpoint_every: int | None = None,
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

    Returns:
        One summary per member.
    """
    if len(seeds) != venv.num_envs:
        raise ValueError(f"{len(seeds)} seeds for a population of {venv.num_envs}")
    _check_checkpoint_every(checkpoint_every)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=getattr(venv, "total_env_steps", None), unit="env step per member", leave=False)
    n = venv.num_envs
    config = {"agent": agent.config(), "seeds": list(seeds), **(extra_config or {})}
    checkpoint = Path(out) / CHECKPOINT_FILE if out is not None and checkpoint_every else None
    caller_venv = venv
    state: dict[str, Any] | None = None
    if checkpoint is not None and checkpoint.is_file():
        venv, agent, state = _resume(checkpoint, config)
    if state is None:
        obs, info = venv.reset(seed=list(seeds))
        state = {
            "obs": obs, "info": info, "rows": [[] for _ in range(n)], "returns": [[] for _ in range(n)],
            "gs": [[] for _ in range(n)], "diverged": np.zeros(n, dtype=int), "episodes": np.zeros(n, dtype=int),
            "step": 0, "elapsed": 0.0, "last_progress": 0, "phases": 0,
        }  # fmt: skip
    rows, returns, gs = state["rows"], state["returns"], state["gs"]
    diverged, episodes, step, last_progress = (
        state["diverged"],
        state["episodes"],
        state["step"],
        state["last_progress"],
    )
    obs, info, phases = state["obs"], state["info"], state["phases"]
    if bar is not None:
        bar.update(last_progress)
    start = time.perf_counter() - state["elapsed"]
    while True:
        actions = agent.act(obs, info)
        next_obs, rewards, terminated, truncated, info = venv.step(actions)
        agent.observe(obs, actions, rewards, next_obs, terminated, truncated, info)
        finished = info["final_info"]["run_finished"] if "final_info" in info else info["run_finished"]
        source = info.get("final_info", info)
        for i in range(n):
            member: dict[str, Any] = {
                k: (v[i] if isinstance(v, np.ndarray) else {name: arr[i] for name, arr in v.items()})
                for k, v in source.items()
                if not k.startswith("_") and k not in ("final_obs", "final_info")
            }
            rows[i].append(_row(step, int(episodes[i]), actions[i], float(rewards[i]), member))
            returns[i] += list(member.get("episode_returns", []))
            if "G" in member:
                gs[i].append(float(member["G"]))
            diverged[i] += bool(member.get("diverged", False))
        episodes += terminated | truncated
        step += 1
        if bar is not None:
            now = int(source["env_steps"][0])
            bar.update(now - last_progress)
            last_progress = now
        if np.all(finished) or (max_steps is not None and step >= max_steps):
            break
        obs = next_obs
        if "G" in source:
            phases += 1
            if checkpoint is not None and phases % checkpoint_every == 0:  # type: ignore[operator]
                state.update(obs=obs, info=info, diverged=diverged, episodes=episodes, step=step, phases=phases,
                             elapsed=time.perf_counter() - start, last_progress=last_progress)  # fmt: skip
                if not _save(checkpoint, config, venv, agent, state):
                    checkpoint = None
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    env_steps = int(source["env_steps"][0])
    results = []
    for i, seed in enumerate(seeds):
        run_dir = Path(out) / f"seed{seed}" if out is not None else None
        result = RunResult(
            hyper_steps=step,
            learning_episodes=int(episodes[i]),
            env_steps=env_steps,
            final_return=float(np.mean(returns[i][-FINAL_EPISODES:])) if returns[i] else math.nan,
            best_G=max(gs[i]) if gs[i] else math.nan,
            mean_G=float(np.mean(gs[i])) if gs[i] else math.nan,
            diverged_steps=int(diverged[i]),
            wall_seconds=wall,
            env_steps_per_second=n * env_steps / wall if wall > 0 else math.nan,
            run_dir=str(run_dir) if run_dir is not None else None,
        )
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            member_config = {"agent": agent.config(), "seed": seed, "population": n, **(extra_config or {})}
            member_config["space"] = {name: list(values) for name, values in venv.space.values.items()}
            (run_dir / "config.json").write_text(json.dumps(_jsonable(member_config), indent=2))
            _write_csv(run_dir / "steps.csv", rows[i])
            (run_dir / "summary.json").write_text(json.dumps(asdict(result), indent=2))
        results.append(result)
    if out is not None:
        (Path(out) / CHECKPOINT_FILE).unlink(missing_ok=True)  # the summaries supersede it
    if venv is not caller_venv:
        venv.close()  # the resumed copy; the caller's env is the caller's to close
    return results
