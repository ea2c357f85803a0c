"""The ``hypergym`` command: ``demo``, ``run``, ``compare``, ``plot``, ``list``.

hypergym demo                                   # EPGT vs static vs random, a few seeds, table + PNG
hypergym run HyperRL-A2C-CartPole --agent episodic --seed 0 --set total_env_steps=20000
hypergym compare HyperRL-A2C-MountainCarContinuous --agents episodic,random,static --seeds 10
hypergym plot runs/compare/HyperRL-A2C-MountainCarContinuous --out mcc.png
hypergym list
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunSpec", "main", "parse_assignments"]

#: Update phases between two checkpoints of a run started by ``run`` / ``compare`` (0 on the command line: none).
DEFAULT_CHECKPOINT_EVERY = 100


CHECKPOINT_HELP = "update phases between checkpoints of each run (0: none); rerunning resumes unfinished runs"


def _checkpoint_every(value: int) -> int | None:
    if value < 0:
        raise CLIError(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {value}")
    return value or None


#: The demo's defaults: a small registered task, three agents, a few seeds (well under 10 minutes on 2 cores).
DEMO_ID = "HyperRL-A2C-CartPole"
DEMO_AGENTS = ("episodic", "static", "random")
DEMO_SEEDS = 3
DEMO_STEPS = 30_000


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def parse_assignments(items: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` to a dict; values are Python literals when they parse, else strings.

    Raises:
        CLIError: On an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"--set takes key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw
    return out


@dataclass(frozen=True)
class RunSpec:
    """One run of a comparison: everything a worker process needs."""

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
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY
    """Update phases between two checkpoints of the run (``None``: none); a rerun resumes from the last."""


def _check_names(env_id: str, agents: Sequence[str], env_kwargs: dict[str, Any]) -> None:
    """Fail fast, listing the valid choices, on an unknown id, agent or preset kwarg."""
    import hypergym
    from hypergym.agents import AGENTS
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.learners import LEARNERS

    if env_id not in hypergym.PRESETS:
        raise CLIError(f"unknown id {env_id!r}; registered ids are: {', '.join(sorted(hypergym.PRESETS))}")
    from hypergym.agents.population import POPULATION_AGENTS

    valid_agents = sorted({*AGENTS, *POPULATION_AGENTS, "static-max", "static-min"})
    for agent in agents:
        if agent not in valid_agents:
            raise CLIError(f"unknown agent {agent!r}; choose from {', '.join(valid_agents)}")
    algo = hypergym.PRESETS[env_id]["algo"]
    import inspect

    env_args = [p for p in inspect.signature(HyperRLSettings.from_kwargs).parameters if p != "learner_kwargs"]
    valid = sorted({*env_args, *LEARNERS[algo].config_class.field_names()})
    unknown = sorted(set(env_kwargs) - set(valid))
    if unknown:
        raise CLIError(f"unknown setting(s) {unknown} for {env_id}; valid are: {', '.join(valid)}")


def execute(spec: RunSpec) -> dict[str, Any]:
    """Run one spec (in this process) and return its summary; reuse a finished run directory."""
    summary_path = Path(spec.out) / "summary.json"
    if summary_path.is_file():
        return {**json.loads(summary_path.read_text()), "reused": True}
    import gymnasium as gym

    from hypergym.agents import make_agent
    from hypergym.runner import run

    env = gym.make(spec.env_id, **spec.env_kwargs)
    agent = make_agent(spec.agent, env, seed=spec.seed, **spec.agent_kwargs)
    extra = {"agent_label": spec.agent, "env_overrides": spec.env_kwargs}
    result = run(
        env, agent, seed=spec.seed, out=spec.out, progress=spec.progress, extra_config=extra,
        checkpoint_every=spec.checkpoint_every,
    )  # fmt: skip
    assert not isinstance(result, list)  # one env, one result
    env.close()
    return {**json.loads(summary_path.read_text()), "reused": False, "hyper_steps": result.hyper_steps}


def _init_worker() -> None:
    # Each worker gets one core's worth of torch threads: W workers x 2 threads on 2 cores would thrash.
    import torch

    torch.set_num_threads(1)


def run_many(
    specs: Sequence[RunSpec], workers: int, backend: str = "process", address: str | None = None
) -> list[dict[str, Any]]:
    """Execute specs in ``workers`` processes (inline when 1) or as Ray tasks, printing a line per finished run."""
    todo = [s for s in specs if not (Path(s.out) / "summary.json").is_file()]
    where = "Ray" if backend == "ray" else f"{workers} worker(s)"
    print(f"{len(specs)} runs: {len(specs) - len(todo)} already finished, {len(todo)} to run on {where}")
    results: list[dict[str, Any]] = []
    if backend == "ray":
        from hypergym.ray_backend import map_on_ray

        def report(i: int, summary: dict[str, Any]) -> None:
            results.append(summary)
            _report(len(results), len(specs), specs[i], summary)

        map_on_ray(execute, [(spec,) for spec in specs], address=address, on_result=report)
        return results
    if workers <= 1 or len(todo) <= 1:
        for i, spec in enumerate(specs, 1):
            summary = execute(spec)
            results.append(summary)
            _report(i, len(specs), spec, summary)
        return results
    done = 0
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = {pool.submit(execute, spec): spec for spec in specs}
        for future in as_completed(futures):
            done += 1
            summary = future.result()
            results.append(summary)
            _report(done, len(specs), futures[future], summary)
    return results


def _report(i: int, n: int, spec: RunSpec, summary: dict[str, Any]) -> None:
    state = "reused" if summary.get("reused") else f"{summary['wall_seconds']:.0f}s"
    print(
        f"[{i}/{n}] {spec.agent:>10s} seed {spec.seed}: final return {summary['final_return']:.2f} "
        f"({summary['env_steps']} env steps, {state})",
        flush=True,
    )


def compare(
    env_id: str,
    agents: Sequence[str],
    seeds: int,
    out: Path,
    workers: int,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
    png: Path | None = None,
    population: bool = False,
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
    backend: str = "process",
    address: str | None = None,
) -> Path:
    """Run every agent on every seed (reusing finished runs), then print the table and write the PNG.

    With ``population``, each agent's seeds run as one population (``gym.make_vec``, one batched run).
    Population methods (``pbt``, ``pb2``) always do: their members are the seeds. ``backend="ray"`` runs
    every run (or population) as one task on the Ray cluster at ``address`` (see
    :func:`hypergym.ray_backend.map_on_ray`).

    Raises:
        CLIError: On an unknown id, agent or setting, or a single-run agent (``dqn``, ``hoof``) asked to
            run as a population.
    """
    from hypergym.agents import AGENTS
    from hypergym.agents.population import POPULATION_AGENTS

    _check_names(env_id, agents, env_kwargs)
    statics = ("static-max", "static-min")
    as_population = [a for a in agents if population or (a not in AGENTS and a not in statics)]
    single_only = [a for a in as_population if a not in POPULATION_AGENTS and a not in statics]
    if single_only:
        raise CLIError(
            f"{single_only} run one inner run each and have no population version; drop --population "
            f"(population agents: {', '.join(sorted(POPULATION_AGENTS))})"
        )
    if backend not in ("process", "ray"):
        raise CLIError(f"unknown backend {backend!r}; choose from ['process', 'ray']")
    if as_population:
        run_populations(env_id, as_population, seeds, out, env_kwargs, agent_kwargs, backend, address, checkpoint_every)
    every = checkpoint_every
    specs = [
        RunSpec(env_id, agent, seed, str(out / agent / f"seed{seed}"), env_kwargs, agent_kwargs, False, every)
        for agent in agents
        if agent not in as_population
        for seed in range(seeds)
    ]
    if specs:
        run_many(specs, workers, backend, address)
    from hypergym.plots import load_runs, plot_runs, summary_table

    runs = load_runs([out])
    print(summary_table(runs))
    png = png or out / "comparison.png"
    plot_runs(runs, png, title=env_id)
    print(f"wrote {png}")
    return png


def population_job(
    env_id: str,
    agent_name: str,
    seeds: int,
    out: str,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
) -> list[dict[str, Any]]:
    """One agent's seeds ``0..seeds-1`` as one population (in this process); the members' summaries."""
    import gymnasium as gym

    from hypergym.agents.population import make_population_agent
    from hypergym.runner import run_population

    venv = gym.make_vec(env_id, num_envs=seeds, **env_kwargs)
    agent = make_population_agent(agent_name, venv, seed=0, **agent_kwargs)
    results = run_population(
        venv, agent, list(range(seeds)), Path(out) / agent_name, {"agent_label": agent_name, "env_id": env_id},
        checkpoint_every=checkpoint_every,
    )  # fmt: skip
    venv.close()
    return [asdict(r) for r in results]


def run_populations(
    env_id: str,
    agents: Sequence[str],
    seeds: int,
    out: Path,
    env_kwargs: dict[str, Any],
    agent_kwargs: dict[str, Any],
    backend: str = "process",
    address: str | None = None,
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
) -> None:
    """Each agent's seeds ``0..seeds-1`` as one population, recorded per seed like single runs."""
    import gymnasium as gym

    from hypergym.agents.population import make_population_agent

    todo = []
    for agent_name in agents:
        if all((out / agent_name / f"seed{s}" / "summary.json").is_file() for s in range(seeds)):
            print(f"{agent_name}: population of {seeds} already finished")
            continue
        try:  # fail fast, here, on settings the population refuses
            venv = gym.make_vec(env_id, num_envs=seeds, **env_kwargs)
            make_population_agent(agent_name, venv, seed=0, **agent_kwargs)
            venv.close()
        except ValueError as err:
            raise CLIError(str(err)) from err
        todo.append(agent_name)

    def report(i: int, results: list[dict[str, Any]]) -> None:
        name = todo[i]
        for seed, r in enumerate(results):
            print(f"{name:>10s} seed {seed}: final return {r['final_return']:.2f} ({r['env_steps']} env steps)")
        print(f"{name}: population of {seeds}, {results[0]['env_steps_per_second']:,.0f} env steps/s in all")

    jobs = [(env_id, name, seeds, str(out), env_kwargs, agent_kwargs, checkpoint_every) for name in todo]
    if backend == "ray" and jobs:
        from hypergym.ray_backend import map_on_ray

        map_on_ray(population_job, jobs, on_result=report, address=address)
        return
    for i, job in enumerate(jobs):
        report(i, population_job(*job))


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def cmd_list(_: argparse.Namespace) -> None:
    import hypergym

    print(f"{'id':36s} {'T x envs':>10s} {'U':>6s} {'budget':>11s}  hyperparameter grid (B)")
    for env_id, preset in hypergym.PRESETS.items():
        u = str(preset.get("updates_per_phase") or f"{preset['n_epochs']}xN/b")
        grid = ", ".join(f"{name}({len(values)})" for name, values in preset["hyperparams"].items())
        rollout = f"{preset['n_steps']}x{preset['n_envs']}"
        print(f"{env_id:36s} {rollout:>10s} {u:>6s} {preset['total_env_steps']:>11,d}  {grid}")


def cmd_run(args: argparse.Namespace) -> None:
    env_kwargs = parse_assignments(args.set)
    _check_names(args.env_id, [args.agent], env_kwargs)
    from hypergym.agents import AGENTS

    if args.agent not in AGENTS and args.agent not in ("static-max", "static-min"):
        raise CLIError(
            f"{args.agent} trains a population, not one run: use hypergym compare {args.env_id} --agents "
            f"{args.agent} --seeds N (the N seeds are its members)"
        )
    out = Path(args.out or Path("runs") / args.env_id / args.agent / f"seed{args.seed}")
    spec = RunSpec(
        args.env_id, args.agent, args.seed, str(out), env_kwargs, parse_assignments(args.agent_set), True,
        _checkpoint_every(args.checkpoint_every),
    )  # fmt: skip
    summary = execute(spec)
    print(json.dumps({k: v for k, v in summary.items() if k != "reused"}, indent=2))
    print(f"run directory: {out}{' (reused)' if summary.get('reused') else ''}")


def cmd_compare(args: argparse.Namespace) -> None:
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    out = Path(args.out or Path("runs") / "compare" / args.env_id)
    compare(
        args.env_id,
        agents,
        args.seeds,
        out,
        args.workers,
        parse_assignments(args.set),
        parse_assignments(args.agent_set),
        Path(args.png) if args.png else None,
        population=args.population,
        checkpoint_every=_checkpoint_every(args.checkpoint_every),
        backend=args.backend,
        address=args.address,
    )


def cmd_plot(args: argparse.Namespace) -> None:
    from hypergym.plots import load_runs, plot_runs, summary_table

    runs = load_runs([Path(d) for d in args.dirs])
    if not runs:
        raise CLIError(f"no finished runs (folders with summary.json) under {args.dirs}")
    print(summary_table(runs))
    out = plot_runs(runs, Path(args.out), title=args.title or "")
    print(f"wrote {out}")
    if args.csv:
        write_summary_csv(runs, Path(args.csv))
        print(f"wrote {args.csv}")


def write_summary_csv(runs: Sequence[Any], path: Path) -> None:
    """One row per run: agent label, seed and the numbers of its ``summary.json``."""
    import csv

    keys = ["final_return", "best_G", "mean_G", "env_steps", "hyper_steps", "diverged_steps", "env_steps_per_second"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seed", *keys])
        for run in runs:
            writer.writerow([run.label, run.seed, *(run.summary.get(k) for k in keys)])


def cmd_demo(args: argparse.Namespace) -> None:
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    env_kwargs = {"total_env_steps": args.steps, **parse_assignments(args.set)}
    out = Path(args.out)
    print(
        f"hypergym demo: {', '.join(agents)} scheduling the hyperparameters of {args.env_id}, "
        f"{args.seeds} seeds x {args.steps:,} env steps each, {args.workers} worker(s)"
    )
    compare(args.env_id, agents, args.seeds, out, args.workers, env_kwargs, {}, out / "demo.png")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hypergym`` command."""
    parser = argparse.ArgumentParser(
        prog="hypergym",
        description="Hyper-RL: schedule the hyperparameters of a policy-gradient learner, one update per step.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="compare EPGT, static and random scheduling on a small task")
    demo.add_argument("--env-id", default=DEMO_ID)
    demo.add_argument("--agents", default=",".join(DEMO_AGENTS))
    demo.add_argument("--seeds", type=int, default=DEMO_SEEDS)
    demo.add_argument("--steps", type=int, default=DEMO_STEPS, help="inner env steps per run")
    demo.add_argument("--workers", type=int, default=_default_workers())
    demo.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="preset overrides")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="one agent on one registered id")
    run.add_argument("env_id")
    run.add_argument("--agent", required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="preset overrides, e.g. total_env_steps=20000")
    run.add_argument("--agent-set", nargs="*", metavar="KEY=VALUE", help="agent arguments, e.g. index=annoy")
    run.add_argument("--out", help="run directory (default runs/ID/AGENT/seedN)")
    run.add_argument("--checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY, help=CHECKPOINT_HELP)
    run.set_defaults(func=cmd_run)

    cmp = sub.add_parser("compare", help="many agents x seeds in parallel, then a table and a PNG")
    cmp.add_argument("env_id")
    cmp.add_argument("--agents", required=True, help="comma-separated agent names")
    cmp.add_argument("--seeds", type=int, default=3)
    cmp.add_argument("--workers", type=int, default=_default_workers())
    cmp.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="preset overrides")
    cmp.add_argument("--agent-set", nargs="*", metavar="KEY=VALUE", help="arguments for every agent")
    cmp.add_argument("--out", help="folder of the runs (default runs/compare/ID)")
    cmp.add_argument("--png", help="figure path (default OUT/comparison.png)")
    cmp.add_argument("--checkpoint-every", type=int, default=DEFAULT_CHECKPOINT_EVERY, help=CHECKPOINT_HELP)
    cmp.add_argument(
        "--backend", choices=("process", "ray"), default="process",
        help="where runs execute: local worker processes, or one Ray task per run (pip install 'hypergym[ray]')",
    )  # fmt: skip
    cmp.add_argument(
        "--address", help="Ray cluster to join ('auto': the one started with `ray start` on this node); "
        "default: a local cluster"
    )  # fmt: skip
    cmp.add_argument(
        "--population", action="store_true", help="run each agent's seeds as one batched population (make_vec)"
    )
    cmp.set_defaults(func=cmd_compare)

    plot = sub.add_parser("plot", help="table and figure of finished runs")
    plot.add_argument("dirs", nargs="+", help="run directories or folders holding them")
    plot.add_argument("--out", required=True, help="PNG path")
    plot.add_argument("--title", default="")
    plot.add_argument("--csv", help="also write one row per run (agent, seed, returns, speed) to this CSV")
    plot.set_defaults(func=cmd_plot)

    lst = sub.add_parser("list", help="registered ids and their presets")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hypergym`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CLIError as err:
        print(f"hypergym: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
