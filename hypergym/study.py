"""Studies of many runs: every agent on every seed of one id, in worker processes, as populations or on Ray.

:func:`compare` is what ``hypergym compare`` and ``hypergym demo`` run: it checks every name first, runs
what is not finished yet (each run, or each population, one :class:`~hypergym.jobs.RunSpec`, run by
:func:`hypergym.jobs.run_many`),
reuses what is, and writes the table, the figure and the per-run CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hypergym.jobs import DEFAULT_CHECKPOINT_MINUTES, CLIError, RunSpec, check_pool, run_many
from hypergym.rundir import member_dir, portable_name

__all__ = ["check_agents", "check_names", "compare", "plan"]


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
            warnings.simplefilter("ignore")  # the runs themselves say it
            for names, make in ((single, gym.make), (population, partial(gym.make_vec, num_envs=seeds))):
                if names:
                    env = make(env_id, **env_kwargs)
                    for name in names:
                        build(name, env)
                    env.close()
    except (ValueError, TypeError) as err:  # the env's own refusal of a setting
        raise CLIError(f"{env_id}: {err}") from err


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
    form or one single-run agent per member, whose members train as the single runs of their seeds do (with
    their own ``batch_size`` and ``n_epochs``). An agent runs seed by seed (one job per seed) where it has no
    population form (HOOF) or with ``single_runs``; population methods (PBT, PB2) always run as populations.

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
    as_population = [
        a for a in agents if entry(a).single is None or not (single_runs or entry(a).no_population or seeds == 1)
    ]
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
