"""Studies of many runs: every agent on every seed of one id, in worker processes, as populations or on Ray.

:func:`compare` is what ``hypergym compare`` and ``hypergym demo`` run: it checks every name first, runs
what is not finished yet (each run, or each population, one :class:`RunSpec` that :func:`execute` runs),
reuses what is, and writes the table, the figure and the per-run CSV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from hypergym.rundir import CHECKPOINT_FILE, member_dir, portable_name, read_run, read_summary
from hypergym.seeding import member_seeds

#: Minutes (wall clock) between two checkpoints of a run started by ``run`` / ``compare`` / ``reproduce`` (0 on
#: the command line: none). Wall clock, not update phases: a phase is one update under the ``code`` profile's
#: A2C and up to 500 under PPO, and a checkpoint with the paper-width VAE weighs tens of MB.
DEFAULT_CHECKPOINT_MINUTES = 10.0

__all__ = [
    "DEFAULT_CHECKPOINT_MINUTES",
    "CLIError",
    "RunSpec",
    "check_agents",
    "check_names",
    "check_pool",
    "compare",
    "default_workers",
    "execute",
    "plan",
    "run_many",
]


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


def check_names(env_id: str, agents: Sequence[str], env_kwargs: dict[str, Any]) -> None:
    """Fail fast, listing the valid choices, on an unknown id, agent or preset kwarg."""
    import hypergym
    from hypergym.agents.registry import entry
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.learners import LEARNERS

    if env_id not in hypergym.PRESETS:
        raise CLIError(f"unknown id {env_id!r}; registered ids are: {', '.join(sorted(hypergym.PRESETS))}")
    for agent in agents:
        try:
            entry(agent)
        except ValueError as err:
            raise CLIError(str(err)) from err
    algo = hypergym.PRESETS[env_id]["algo"]
    valid = sorted({*HyperRLSettings.argument_names(), *LEARNERS[algo].config_class.field_names()} - {"preset"})
    unknown = sorted(set(env_kwargs) - set(valid))
    if unknown:
        raise CLIError(f"unknown setting(s) {unknown} for {env_id}; valid are: {', '.join(valid)}")


def check_agents(
    env_id: str,
    single: Sequence[str],
    population: Sequence[str],
    seeds: int,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
) -> None:
    """Build every agent on its env (single runs and populations of ``seeds``) before any run starts.

    Raises:
        CLIError: On settings the env refuses, or an agent that cannot be built on it (another learner,
            the wrong kind of env, an unknown agent argument), naming the agent and what is valid.
    """
    import warnings

    import gymnasium as gym

    from hypergym.agents import agent_arguments, make_agent

    def build(name: str, env: Any) -> None:
        try:
            make_agent(name, env, seed=0, **agent_kwargs)
        except TypeError as err:
            if "unexpected keyword" not in str(err):
                raise CLIError(f"{name} on {env_id}: {err}") from err
            raise CLIError(
                f"{name} on {env_id}: --agent-set {sorted(agent_kwargs)} holds an argument it does not take "
                f"({err}); its arguments are: {', '.join(agent_arguments(name)) or 'none'}"
            ) from err
        except ValueError as err:
            raise CLIError(f"{name} on {env_id}: {err}") from err

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the runs themselves say it (e.g. a population's pinned settings)
            for names, make in ((single, gym.make), (population, partial(gym.make_vec, num_envs=seeds))):
                if names:
                    env = make(env_id, **env_kwargs)
                    for name in names:
                        build(name, env)
                    env.close()
    except (ValueError, TypeError) as err:  # the env's own refusal of a setting
        raise CLIError(f"{env_id}: {err}") from err


def check_finished(run_dir: Path, env_id: str, seed: int, agent: str, env_kwargs: dict[str, Any] | None) -> None:
    """Refuse to reuse a finished run directory written with another id, seed, agent or overrides.

    Raises:
        CLIError: Naming the directory and what differs.
        RunFilesError: If its files cannot be read or disagree (a corrupt or incomplete run), naming the file.
    """
    from hypergym.rundir import jsonable

    config = read_run(run_dir).config  # complete and consistent, or refused naming the file
    wanted = {"env_id": env_id, "seed": seed, "agent_label": agent}
    if env_kwargs is not None:
        wanted["env_overrides"] = jsonable(env_kwargs)
    differ = sorted(key for key, value in wanted.items() if key in config and config[key] != value)
    if differ:
        raise CLIError(
            f"{run_dir} holds a finished run with other {differ} ({', '.join(f'{k}={config[k]!r}' for k in differ)}); "
            "give another --out, or delete it to run again"
        )


def execute(spec: RunSpec) -> list[dict[str, Any]]:
    """Run one spec (a run, or a population) in this process; one summary per run, finished runs reused.

    A finished run directory (or a population whose members all finished) is reused when it was written
    with the spec's settings (:func:`check_finished`); a population runs and resumes as one. A population
    some of whose seeds were run seed by seed (finished, or checkpointed in their own run directory, by a
    ``compare`` of before populations, or ``--single-runs``) is finished the same way, seed by seed: nothing
    finished is run again, and each checkpoint resumes.
    """
    seeds, dirs = spec.seeds(), spec.run_dirs()
    done = [(d / "summary.json").is_file() for d in dirs]
    if all(done):
        for seed, d in zip(seeds, dirs, strict=True):
            check_finished(d, spec.env_id, seed, spec.agent, spec.env_kwargs)
        return [{**read_summary(d / "summary.json"), "reused": True} for d in dirs]
    if spec.members and (any(done) or any((d / CHECKPOINT_FILE).is_file() for d in dirs)):
        alone = [replace(spec, seed=s, out=str(d), members=0) for s, d in zip(seeds, dirs, strict=True)]
        return [summary for one in alone for summary in execute(one)]
    import gymnasium as gym

    from hypergym.agents import make_agent
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

    Prints a line per finished run (a population's members when it finishes).
    """
    check_pool(workers, backend, address)
    runs = sum(len(s.run_dirs()) for s in specs)
    todo = [s for s in specs if not all((d / "summary.json").is_file() for d in s.run_dirs())]
    left = sum(len(s.run_dirs()) for s in todo)
    where = "Ray" if backend == "ray" else f"{workers} worker(s)"
    print(f"{runs} runs: {runs - left} already finished, {left} to run on {where}")
    results: list[dict[str, Any]] = []

    def report(spec: RunSpec, summaries: list[dict[str, Any]]) -> None:
        for offset, summary in enumerate(summaries):
            results.append(summary)
            state = "reused" if summary.get("reused") else f"{summary['wall_seconds']:.0f}s"
            print(
                f"[{len(results)}/{runs}] {spec.agent:>10s} seed {spec.seed + offset}: final return "
                f"{summary['final_return']:.2f} ({summary['env_steps']} env steps, {state})",
                flush=True,
            )
        if spec.members and not summaries[0].get("reused"):
            print(f"{spec.agent}: population of {spec.members}, "
                  f"{summaries[0]['env_steps_per_second']:,.0f} env steps/s in all", flush=True)  # fmt: skip

    if backend == "ray":
        from hypergym.ray_backend import map_on_ray

        map_on_ray(execute, [(spec,) for spec in specs], address=address, on_result=lambda i, r: report(specs[i], r))
    elif workers <= 1 or len(todo) <= 1:
        for spec in specs:
            report(spec, execute(spec))
    else:
        from hypergym.devices import worker_context

        # Populations first (a population of N is about N runs' work), so that the single runs fill the
        # workers at the end instead of one long population running alone (longest job first).
        ordered = sorted(specs, key=lambda s: -len(s.run_dirs()))
        with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context()) as pool:
            futures = {pool.submit(execute, spec): spec for spec in ordered}
            for future in as_completed(futures):
                report(futures[future], future.result())
    return results


def compare(
    env_id: str,
    agents: Sequence[str],
    seeds: int,
    out: Path,
    workers: int,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
    png: Path | None = None,
    single_runs: bool = False,
    checkpoint_every: int | None = None,
    backend: str = "process",
    address: str | None = None,
    tensorboard: str | None = None,
    checkpoint_minutes: float | None = DEFAULT_CHECKPOINT_MINUTES,
) -> Path:
    """Run every agent on every seed (reusing finished runs), then print the table and write the PNG.

    ``tensorboard`` names a folder where every run also logs its hyper-steps (``<agent>/seed<seed>``).
    Each run saves a checkpoint every ``checkpoint_minutes`` of wall clock, or every ``checkpoint_every``
    update phases when that is given (:func:`hypergym.runner.run`).

    Each agent's seeds run as one population (``gym.make_vec``, one batched run; :func:`plan` says where
    not), or seed by seed with ``single_runs``. Runs and populations share the ``workers`` processes;
    ``backend="ray"`` runs each as one task on the Ray cluster at ``address``
    (see :func:`hypergym.ray_backend.map_on_ray`).

    Raises:
        CLIError: On an unknown id, agent or setting, or an agent that cannot be built on the id.
        ConnectionError: If the Ray cluster at ``address`` does not answer (before any run starts).
        CLIError: Also if ``png`` cannot be written (its format or its folder), before any run starts.
    """
    from hypergym.plots import check_figure_path, differences_table, load_runs, plot_runs, summary_table

    check_pool(workers, backend, address)  # before plan builds every agent's env
    try:
        png = check_figure_path(png or out / "comparison.png")
    except ValueError as err:
        raise CLIError(str(err)) from err
    specs = plan(
        env_id, agents, seeds, out, env_kwargs, agent_kwargs, single_runs, checkpoint_every, tensorboard,
        checkpoint_minutes,
    )  # fmt: skip
    from hypergym.runlock import folder_lock

    with folder_lock(out):  # a second compare on this --out refuses at once
        run_many(specs, workers, backend, address)
    runs = load_runs([out])
    print(summary_table(runs), differences_table(runs), sep="\n\n")
    plot_runs(runs, png, title=env_id)
    print(f"wrote {png}")
    return png


def plan(
    env_id: str,
    agents: Sequence[str],
    seeds: int,
    out: Path,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
    single_runs: bool = False,
    checkpoint_every: int | None = None,
    tensorboard: str | None = None,
    checkpoint_minutes: float | None = DEFAULT_CHECKPOINT_MINUTES,
) -> list[RunSpec]:
    """The jobs of a comparison (``out/<agent>/seed<s>``), every name and agent checked before any runs.

    Each agent's seeds run as ONE population (``gym.make_vec``, members = seeds; one job), through its batched
    form or one single-run agent per member, whose members train as the single runs of their seeds do. An
    agent runs seed by seed (one job per seed) where it has no population form (HOOF), where the grid holds
    several values of a hyperparameter that changes the work of an update (``batch_size``, ``n_epochs``: a
    population keeps them the same for all members, so its members would search a smaller grid), or with
    ``single_runs``; population methods (PBT, PB2) always run as populations.

    Raises:
        CLIError: As :func:`compare`.
    """
    from hypergym.agents.registry import entry

    check_names(env_id, agents, env_kwargs)
    if not agents:
        raise CLIError("--agents names no agent; give a comma-separated list, e.g. --agents episodic,random,static")
    twice = sorted({a for a in agents if list(agents).count(a) > 1})
    if twice:
        raise CLIError(f"--agents names {twice} more than once: each agent's runs have one folder; name each once")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise CLIError(f"--seeds must be an integer >= 1, got {seeds!r}")
    lockstep = _work_grid(env_id, env_kwargs)
    as_population = [
        a for a in agents
        if entry(a).single is None or not (single_runs or entry(a).no_population or lockstep or seeds == 1)
    ]  # fmt: skip
    few = [a for a in as_population if entry(a).single is None] if seeds < 2 else []
    if few:
        raise CLIError(f"{few} exploit the other members of a population: give --seeds 2 or more (got {seeds})")
    check_agents(env_id, [a for a in agents if a not in as_population], as_population, seeds, env_kwargs, agent_kwargs)
    specs: list[RunSpec] = []
    for agent in agents:
        common = (env_kwargs, agent_kwargs, False, checkpoint_every, tensorboard)
        folder = out / portable_name(agent)  # a user's my_agents:UCB in my_agents-UCB
        if agent in as_population:  # one job of all the seeds
            specs.append(RunSpec(env_id, agent, 0, str(folder), *common, seeds, checkpoint_minutes))
        else:
            specs += [RunSpec(env_id, agent, s, str(member_dir(folder, s)), *common, 0, checkpoint_minutes)
                      for s in range(seeds)]  # fmt: skip
    return specs


def _work_grid(env_id: str, env_kwargs: dict[str, Any]) -> list[str]:
    """The hyperparameters of the grid that change the work of an update and take several values."""
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.learners.records import WORK_HYPERPARAMS

    try:
        space = HyperRLSettings.from_kwargs(preset=env_id, **env_kwargs).space
    except (ValueError, TypeError) as err:  # the env's own refusal of a setting
        raise CLIError(f"{env_id}: {err}") from err
    return [p.name for p in space.params if p.name in WORK_HYPERPARAMS and len(p.values) > 1]


def default_workers() -> int:
    """Worker processes by default: one per core, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))
