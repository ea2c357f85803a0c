"""The jobs of a study and the pool that runs them: one run or one population per :class:`RunSpec`.

:func:`execute` runs one job in this process (reusing a finished run, resuming a checkpointed one);
:func:`run_many` runs many in worker processes (or as Ray tasks) with a live bar over their env steps.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from multiprocessing import Manager
from pathlib import Path
from typing import Any

from hypergym.callbacks import StudyProgress
from hypergym.rundir import CHECKPOINT_FILE, member_dir, read_run, read_summary
from hypergym.seeding import member_seeds

__all__ = ["DEFAULT_CHECKPOINT_MINUTES", "CLIError", "RunSpec", "check_finished", "check_pool", "default_workers"]
__all__ += ["execute", "run_many"]

#: Minutes (wall clock) between two checkpoints of a run started by ``run`` / ``compare`` / ``reproduce`` (0 on
#: the command line: none). Wall clock, not update phases: a phase is one update under the ``code`` profile's
#: A2C and up to 500 under PPO, and a checkpoint with the paper-width VAE weighs tens of MB.
DEFAULT_CHECKPOINT_MINUTES = 10.0


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


@dataclass(frozen=True)
class RunSpec:
    """One job of a comparison (a run, or a population of runs): everything a worker process needs."""

    env_id: str
    """Registered id."""
    agent: str
    """Agent name (see ``hypergym.agents.make_agent``)."""
    seed: int
    """Seed of the inner run and of the agent."""
    out: str
    """Run directory."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Preset overrides."""
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    """Agent arguments."""
    progress: bool = False
    """Show the per-run progress bar."""
    checkpoint_every: int | None = None
    """Update phases between two checkpoints of the run, in place of ``checkpoint_minutes``."""
    tensorboard: str | None = None
    """Folder of TensorBoard logs (the run writes ``<agent>/seed<seed>`` in it; ``None``: none)."""
    members: int = 0
    """0: one run seeded ``seed`` in ``out``. N >= 1: a population (``gym.make_vec``) of the seeds ``seed ..
    seed + N - 1`` run as one batched run by a population agent, member ``s`` in ``out/seed<s>``."""
    checkpoint_minutes: float | None = DEFAULT_CHECKPOINT_MINUTES
    """Minutes (wall clock) between two checkpoints of the run (``None``: none, unless ``checkpoint_every``);
    a rerun resumes from the last."""

    def seeds(self) -> list[int]:
        """The seed of each run of the job."""
        return member_seeds(self.seed, self.members) if self.members else [self.seed]  # type: ignore[return-value]

    def run_dirs(self) -> list[Path]:
        """The run directory of each run of the job."""
        return [member_dir(self.out, s) for s in self.seeds()] if self.members else [Path(self.out)]


def check_finished(run_dir: Path, spec: RunSpec, seed: int) -> None:
    """Refuse to reuse a finished run directory written with another id, seed, agent, overrides or settings.

    Besides what the spec names, the settings a profile resolves to are compared where the run recorded
    them: the MDP's (``config.json``'s ``settings``) and the agent's (a profile's change of meaning, e.g. the
    ``code`` profile's memory read, makes an older run another run).

    Raises:
        CLIError: Naming the directory and what differs.
        RunFilesError: If its files cannot be read or disagree (a corrupt or incomplete run), naming the file.
    """
    from hypergym.envs.profiles import agent_profile
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.rundir import jsonable

    config = read_run(run_dir).config  # complete and consistent, or refused naming the file
    settings = HyperRLSettings.from_kwargs(preset=spec.env_id, **spec.env_kwargs)
    wanted = {
        "env_id": spec.env_id,
        "seed": seed,
        "agent_label": spec.agent,
        "env_overrides": jsonable(spec.env_kwargs),
    }
    differ = [f"{k}={config[k]!r}" for k, v in wanted.items() if k in config and config[k] != v]
    recorded = config.get("settings", {})
    if not recorded:  # what its profile resolved to then cannot be compared with what it resolves to now
        differ.append("settings not recorded: written before hypergym recorded them")
    differ += [f"{k}={recorded[k]}" for k, v in settings.described().items() if k in recorded and recorded[k] != v]
    agent = jsonable({k: v for k, v in agent_profile(settings.profile, spec.agent, settings).items()
                      if k not in spec.agent_kwargs})  # fmt: skip
    recorded = config.get("agent", {})
    differ += [f"agent {k}={recorded[k]!r}" for k, v in agent.items() if k in recorded and recorded[k] != v]
    if differ:
        raise CLIError(
            f"{run_dir} holds a finished run with other settings ({', '.join(differ)}); give another --out, or "
            "delete it to run again"
        )


def execute(spec: RunSpec, table: MutableMapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Run one spec (a run, or a population) in this process; one summary per run, finished runs reused.

    A finished run directory (or a population whose members all finished) is reused when it was written
    with the spec's settings (:func:`check_finished`); a population runs and resumes as one. A population
    some of whose seeds were run seed by seed (finished, or checkpointed in their own run directory, by a
    ``compare`` of before populations, or ``--single-runs``) is finished the same way, seed by seed: nothing
    finished is run again, and each checkpoint resumes. The runs write their env steps into ``table``.
    """
    seeds, dirs = spec.seeds(), spec.run_dirs()
    done = [(d / "summary.json").is_file() for d in dirs]
    if all(done):
        for seed, d in zip(seeds, dirs, strict=True):
            check_finished(d, spec, seed)
        return [{**read_summary(d / "summary.json"), "reused": True} for d in dirs]
    if spec.members and (any(done) or any((d / CHECKPOINT_FILE).is_file() for d in dirs)):
        alone = [replace(spec, seed=s, out=str(d), members=0) for s, d in zip(seeds, dirs, strict=True)]
        return [summary for one in alone for summary in execute(one, table)]
    import gymnasium as gym

    from hypergym.agents import make_agent
    from hypergym.callbacks import SharedProgress
    from hypergym.devices import one_thread
    from hypergym.runner import run

    extra = {"agent_label": spec.agent, "env_overrides": spec.env_kwargs, "env_id": spec.env_id}
    with one_thread():  # the same floats inline, in a worker process or in a Ray task (see one_thread)
        if spec.members:
            env: Any = gym.make_vec(spec.env_id, num_envs=spec.members, **spec.env_kwargs)
        else:
            env = gym.make(spec.env_id, **spec.env_kwargs)
        agent = make_agent(spec.agent, env, seed=spec.seed, **spec.agent_kwargs)
        results = run(
            env, agent, seed=seeds if spec.members else spec.seed, out=spec.out, progress=spec.progress,
            extra_config=extra, checkpoint_every=spec.checkpoint_every, tensorboard=spec.tensorboard,
            checkpoint_minutes=None if spec.checkpoint_every else spec.checkpoint_minutes,
            callbacks=[SharedProgress(table, spec.out)] if table is not None else [],
        )  # fmt: skip
        env.close()
    results = results if isinstance(results, list) else [results]
    return [
        {**read_summary(d / "summary.json"), "reused": False, "hyper_steps": r.hyper_steps}
        for d, r in zip(dirs, results, strict=True)
    ]


def check_pool(workers: int, backend: str, address: str | None) -> None:
    """Refuse a worker count below 1, an unknown backend, or a Ray address without the Ray backend.

    Raises:
        CLIError: Saying what is valid.
    """
    if backend not in ("process", "ray"):
        raise CLIError(f"unknown backend {backend!r}; choose from ['process', 'ray']")
    if address is not None and backend != "ray":
        raise CLIError(f"--address {address} names a Ray cluster: add --backend ray, or drop --address")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CLIError(f"--workers must be an integer >= 1, got {workers!r}")


def run_many(
    specs: Sequence[RunSpec], workers: int, backend: str = "process", address: str | None = None
) -> list[dict[str, Any]]:
    """Execute specs in ``workers`` processes (inline when 1) or as Ray tasks; one summary per run.

    Prints a line per finished run (a population's members when it finishes) above a live bar over the
    env steps of every run (runs done, rate, time left), which the runs feed through
    :class:`~hypergym.callbacks.SharedProgress` (not on Ray).
    """
    check_pool(workers, backend, address)
    runs = sum(len(s.run_dirs()) for s in specs)
    todo = [s for s in specs if not all((d / "summary.json").is_file() for d in s.run_dirs())]
    left = sum(len(s.run_dirs()) for s in todo)
    where = "Ray" if backend == "ray" else f"{workers} worker(s)"
    print(f"{runs} runs: {runs - left} already finished, {left} to run on {where}", flush=True)
    results: list[dict[str, Any]] = []
    pooled = backend != "ray" and workers > 1 and len(todo) > 1  # worker processes: a table they all reach
    manager: Any = Manager() if pooled else nullcontext({})
    with manager as shared:  # where the runs write their env steps
        table: Any = shared if isinstance(shared, dict) else shared.dict()
        total = sum(_budget(s) * len(s.run_dirs()) for s in todo)
        bar = StudyProgress(total, left, table) if todo and backend != "ray" else None

        def say(line: str, finished: int) -> None:
            if bar is None:
                print(line, flush=True)
            else:
                bar.finished(finished, line)  # above the bar

        def report(spec: RunSpec, summaries: list[dict[str, Any]]) -> None:
            for offset, summary in enumerate(summaries):
                results.append(summary)
                state = "reused" if summary.get("reused") else f"{summary['wall_seconds']:.0f}s"
                say(f"[{len(results)}/{runs}] {spec.agent:>10s} seed {spec.seed + offset}: final return "
                    f"{summary['final_return']:.2f} ({summary['env_steps']} env steps, {state})",
                    int(not summary.get("reused")))  # fmt: skip
            if spec.members and not summaries[0].get("reused"):
                speed = summaries[0]["env_steps_per_second"]
                say(f"{spec.agent}: population of {spec.members}, {speed:,.0f} env steps/s in all", 0)

        try:
            _execute_all(specs, workers if pooled else 1, backend, address, table, report)
        finally:
            if bar is not None:
                bar.close()
    return results


def _budget(spec: RunSpec) -> int:
    """The inner env-step budget of each run of ``spec``."""
    import hypergym

    return int(spec.env_kwargs.get("total_env_steps", hypergym.PRESETS[spec.env_id]["total_env_steps"]))


def _execute_all(
    specs: Sequence[RunSpec], workers: int, backend: str, address: str | None, table: Any, report: Any
) -> None:
    """Run ``specs`` as Ray tasks, inline (``workers`` 1) or in worker processes; ``report`` each as it ends."""
    if backend == "ray":
        from hypergym.ray_backend import map_on_ray

        map_on_ray(execute, [(spec,) for spec in specs], address=address, on_result=lambda i, r: report(specs[i], r))
    elif workers <= 1:
        for spec in specs:
            report(spec, execute(spec, table))
    else:
        from hypergym.devices import worker_context

        # Populations first (a population of N is about N runs' work), so that the single runs fill the
        # workers at the end instead of one long population running alone (longest job first).
        ordered = sorted(specs, key=lambda s: -len(s.run_dirs()))
        with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context()) as pool:
            futures = {pool.submit(execute, spec, table): spec for spec in ordered}
            for future in as_completed(futures):
                report(futures[future], future.result())


def default_workers() -> int:
    """Worker processes by default: one per core, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))
