"""The runner: drive a hyper-agent through inner runs and record every hyper-step.

One loop drives a population (``gym.make_vec``, members = seeds); a single run is a population of one:
a single env runs as Gymnasium's ``SyncVectorEnv`` of one and a single-run agent through the per-member
adapter (:class:`~hypergym.agents.population.PerMemberAgent`), so there is one info shape (Gymnasium's
vector info) and one loop. Progress, TensorBoard and checkpoints are callbacks (:mod:`hypergym.callbacks`);
the run directories are the recorder's (:class:`~hypergym.rundir.Recorder`).

A run directory holds ``config.json`` (env id and kwargs, agent settings, seed), ``steps.csv`` (one row
per hyper-step: chosen hyperparameter values, reward, G, env steps, inner episode returns, losses,
diverged; ``pandas.read_csv`` reads it) and ``summary.json`` (final and best returns, speed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from hypergym.agents.base import agent_config, check_agent
from hypergym.agents.population import PerMemberAgent
from hypergym.callbacks import Checkpoints, Loop, ProgressBar, RunCallback, TensorBoard
from hypergym.checkpoint import Cadence
from hypergym.envs.runs import member_info
from hypergym.rundir import CHECKPOINT_FILE, Recorder, RunResult, env_config, step_row
from hypergym.runlock import folder_lock
from hypergym.seeding import member_seeds

__all__ = ["CHECKPOINT_FILE", "Loop", "RunResult", "run"]


class _KeepFinished(gym.Wrapper):  # type: ignore[type-arg]
    """A single run as the runner's one member: the vector env's autoreset leaves a finished run as it is.

    On the step that finishes the run, Gymnasium's ``SyncVectorEnv`` resets the env in the same step, and a
    ``HyperRLEnv`` would start a new run; the loop ends there, so the trained learner stays for the caller.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.last: tuple[Any, dict[str, Any]] | None = None

    def step(self, action: Any) -> Any:
        """The env's step, remembered."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last = (obs, info)
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """The env's reset, except after the run finished: its last observation and info."""
        if seed is None and options is None and self.last is not None and self.last[1].get("run_finished"):
            return self.last
        return self.env.reset(seed=seed, options=options)


def run(
    env: gym.Env | gym.vector.VectorEnv,
    agent: Any,
    seed: int | Sequence[int] | None = 0,
    out: str | Path | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    extra_config: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    tensorboard: str | Path | None = None,
    checkpoint_minutes: float | None = None,
    callbacks: Sequence[RunCallback] = (),
) -> RunResult | list[RunResult]:
    """Drive ``agent`` through learning episodes of ``env`` until the inner run (or every member's) finishes.

    Args:
        env: A ``HyperRLEnv`` (any Gymnasium env works; the run then ends after ``max_steps``), or a
            population, ``HyperRLVectorEnv``.
        agent: Anything with ``act(obs, info)`` and ``observe(transition)`` (for a population, a
            population agent: ``act`` on the batch, ``observe`` on the batched transition; ``make_agent(name,
            venv)`` gives one for every agent).
        seed: Seed of the inner run (``env.reset(seed=seed)``). For a population: one seed per member,
            or an int ``s`` for the seeds ``s, s + 1, ..., s + N - 1``.
        out: Run directory to write (``None``: record nothing); for a population, the folder of the
            members' run directories (``out/seed{s}``).
        progress: Show a progress bar over inner env steps (tqdm).
        max_steps: Stop after this many hyper-steps even if the run is unfinished.
        extra_config: More entries for every ``config.json``.
        checkpoint_every: With ``out``: save the whole run (env, agent, records) to ``checkpoint.ckpt`` (in
            the run directory; a population's in ``out``) every this many update phases, atomically; a later
            call with the same settings and ``out`` resumes from it, using the checkpoint's env and agent in
            place of the ones passed, and finishes exactly as the uninterrupted run would (Box2D envs, whose
            worlds cannot be saved, start new episodes at the next rollout instead). Atari runs, whose
            emulators cannot be saved, warn once and go on without checkpoints.
        tensorboard: Also log every hyper-step to TensorBoard (through SB3's logger) under
            ``tensorboard/<agent>/seed<seed>`` (one folder per population member):
            :mod:`hypergym.tensorboard_log` lists the scalars.
        checkpoint_minutes: In place of ``checkpoint_every``: save at the end of the first update phase at
            least this many minutes (wall clock) after the last save (or the start). A phase is one update
            under the ``code`` profile's A2C and hundreds under PPO; minutes bound both the work a kill
            loses and the time spent saving. When the checkpoints fall does not change the numbers.
        callbacks: More :class:`~hypergym.callbacks.RunCallback` s, called after the built-in ones.

    Returns:
        The run's :class:`RunResult`; for a population, a list of them, one per member.

    Raises:
        ValueError: If the env has no budget and no ``max_steps`` is given, or the seeds are not one
            non-negative integer per member (no repeats).
        TypeError: If the agent lacks ``act`` or ``observe``.
    """
    cadence = Cadence.checked(checkpoint_every, checkpoint_minutes)
    single = not isinstance(env, gym.vector.VectorEnv)
    if single and (isinstance(seed, bool) or not isinstance(seed, int | None)):
        raise ValueError(f"a single run takes one seed (an int >= 0, or None), got {seed!r}")
    if not single and seed is None:
        raise ValueError("a population needs seeds: pass seed=int (seeds s..s+N-1) or one seed per member")
    check_agent(agent, population=not single)
    budget = getattr(env.unwrapped, "total_env_steps", None)
    if budget is None and max_steps is None:
        raise ValueError("this env has no inner env-step budget: pass max_steps")
    venv: Any = SyncVectorEnv([partial(_KeepFinished, env)], autoreset_mode=AutoresetMode.SAME_STEP) if single else env  # type: ignore[arg-type]
    population: Any = PerMemberAgent(venv, [agent], seed) if single else agent
    seeds = member_seeds(seed, venv.num_envs)  # non-negative, distinct: one run directory each
    configs = _configs(env, population, seeds, single, extra_config)
    recorder = Recorder(out, seeds, single, journaled=bool(cadence) and out is not None)
    steps: list[RunCallback] = [ProgressBar(budget, max_steps, len(seeds))] if progress else []
    if tensorboard is not None:
        from hypergym.tensorboard_log import run_folder

        label = (extra_config or {}).get("agent_label") or agent_config(population).get("name", type(agent).__name__)
        steps.append(TensorBoard([run_folder(tensorboard, str(label), s) for s in seeds], recorder.journals))
    with folder_lock(recorder.folder) if recorder.folder is not None else nullcontext():  # one writer
        loop, resumed = None, None
        if recorder.folder is not None:
            checkpoints = Checkpoints(recorder.folder / CHECKPOINT_FILE, cadence, configs, recorder, venv, population)
            resumed = checkpoints.resume() if cadence else None
            if resumed is not None:
                venv, population, loop = resumed
            steps.append(checkpoints)
            recorder.start(configs)
        if loop is None:
            obs, info = venv.reset(seed=list(seeds))
            loop = Loop(obs, info, len(seeds))
        restart = getattr(venv, "autorestart", None)
        if restart is not None:
            venv.autorestart = False  # a population's trained runs stay when they finish, as a single run's do
        try:
            results = _drive(venv, population, loop, recorder, [*steps, *callbacks], max_steps)
        finally:  # also on an error or an interrupt: the caller's env is left as it was given
            if restart is not None:
                venv.autorestart = restart
        if resumed is not None:
            venv.close()  # the checkpoint's copy; the caller's env is the caller's to close
    return results[0] if single else results


def _drive(
    env: Any, agent: Any, loop: Loop, recorder: Recorder, callbacks: list[RunCallback], max_steps: int | None
) -> list[RunResult]:
    """Run the loop between its callbacks' start and end (or abort, on an error or an interrupt)."""
    for callback in callbacks:
        callback.on_start(loop)
    try:
        results = _loop(env, agent, loop, recorder, callbacks, max_steps)
    except BaseException:  # an error or an interrupt: the callbacks still release what they took
        for callback in callbacks:
            callback.on_abort(loop)
        raise
    for callback in callbacks:
        callback.on_end(loop)
    return results


def _loop(
    env: Any, agent: Any, loop: Loop, recorder: Recorder, callbacks: list[RunCallback], max_steps: int | None
) -> list[RunResult]:
    """The one loop, over a population in Gymnasium's vector conventions (same-step autoreset)."""
    start = time.perf_counter() - loop.elapsed
    obs, info = loop.obs, loop.info
    while not loop.done:
        actions = agent.act(obs, info)
        records = agent.step_records() if hasattr(agent, "step_records") else [{}] * loop.n
        waiting = info.get("waiting")  # these members' actions are ignored: their rows keep the last ones
        loop.acted = [a if waiting is None or not waiting[i] or not loop.acted else loop.acted[i]
                      for i, a in enumerate(zip(actions, records, strict=True))]  # fmt: skip
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        agent.observe(obs, actions, rewards, next_obs, terminated, truncated, info)
        ended = info.get("final_info", info)  # the ending step's info, where a learning episode ended
        loop.members = [member_info(ended, i) for i in range(loop.n)]
        held = info.get("waiting")  # no transition yet for these: their outcome comes later
        rows: list[dict[str, Any] | None] = []
        for i, (member, tally, (action, record)) in enumerate(zip(loop.members, loop.tallies, loop.acted, strict=True)):
            if held is not None and held[i]:
                rows.append(None)
                continue
            row = step_row(tally.steps, tally.episodes, action, float(rewards[i]), member)
            row.update({f"agent_{k}": v for k, v in record.items()})
            rows.append(row)
            if recorder.dirs[i] is not None:  # the rows are only for steps.csv
                loop.rows[i].append(row)
            tally.add(member, bool(terminated[i] or truncated[i]))
        loop.step += 1
        loop.obs, loop.info, obs = next_obs, info, next_obs
        loop.elapsed = time.perf_counter() - start
        finished = all(bool(m.get("run_finished", False)) for m in loop.members)
        loop.done = finished or (max_steps is not None and loop.step >= max_steps)
        for callback in callbacks:
            callback.on_step(loop, rows)
    wall = time.perf_counter() - start
    results = [t.result(wall, loop.n, d) for t, d in zip(loop.tallies, recorder.dirs, strict=True)]
    recorder.finish(results, loop.rows, loop.journal)
    return results


def _configs(
    env: Any, agent: Any, seeds: list[Any], single: bool, extra: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each member's ``config.json``: env id and kwargs, its agent's settings, its seed, the grid."""
    space = getattr(env.unwrapped, "space", None)
    grid = {"space": {name: list(values) for name, values in space.values.items()}} if space is not None else {}
    settings = getattr(env.unwrapped, "settings", None)  # the MDP as the profile resolved it (reuse checks it)
    resolved = {"settings": settings.described()} if settings is not None else {}
    size = {} if single else {"population": len(seeds)}
    member = getattr(agent, "member_config", None)
    return [
        {
            **env_config(env),
            "agent": member(i) if member is not None else agent_config(agent),
            "seed": s,
            "torch_threads": torch.get_num_threads(),  # results depend on it (see HyperRLEnv's Determinism)
            **size,
            **(extra or {}),
            **grid,
            **resolved,
        }
        for i, s in enumerate(seeds)
    ]
