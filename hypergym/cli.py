"""The ``hypergym`` command line (``hypergym --help`` lists its commands).

hypergym demo                                   # EPGT vs static vs random, a few seeds, table + PNG
hypergym run HyperRL-A2C-CartPole --agent episodic --seed 0 --set total_env_steps=20000
hypergym compare HyperRL-A2C-MountainCarContinuous --agents episodic,random,static --seeds 10
hypergym reproduce fig2a                        # one of the paper's studies, with its results section
hypergym meta-train HyperRL-A2C-Catch --iterations 200   # a learned optimiser (Optim4RL), pipeline training
hypergym plot runs/compare/HyperRL-A2C-MountainCarContinuous --out mcc.png
hypergym list
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypergym.checkpoint import CheckpointError
from hypergym.files import os_error_line
from hypergym.jobs import DEFAULT_CHECKPOINT_MINUTES, CLIError, RunSpec, default_workers, execute
from hypergym.presets import PROFILES
from hypergym.rundir import RunFilesError, member_dir
from hypergym.runlock import RunFolderBusy
from hypergym.study import check_agents, check_names, compare

__all__ = ["main", "parse_assignments"]

CHECKPOINT_HELP = (
    f"minutes (wall clock) between checkpoints of each run (default {DEFAULT_CHECKPOINT_MINUTES:g}; 0: none); "
    "rerunning resumes unfinished runs"
)
CHECKPOINT_EVERY_HELP = "checkpoint every K update phases instead of every --checkpoint-minutes (0: none)"


def _cadence(args: argparse.Namespace) -> tuple[int | None, float | None]:
    """``(checkpoint_every, checkpoint_minutes)`` of the command line: one of them, or neither."""
    every, minutes = args.checkpoint_every, args.checkpoint_minutes
    if every is not None and minutes is not None:
        raise CLIError(
            f"--checkpoint-every {every} (update phases) and --checkpoint-minutes {minutes:g} (wall clock) both "
            "say when to checkpoint: give one"
        )
    if every is not None:
        if every < 0:
            raise CLIError(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {every}")
        return every or None, None
    minutes = DEFAULT_CHECKPOINT_MINUTES if minutes is None else minutes
    if not 0 <= minutes < float("inf"):
        raise CLIError(f"--checkpoint-minutes must be a finite number >= 0 (0: no checkpoints), got {minutes}")
    return None, minutes or None


#: The demo's defaults: a small registered task, three agents, a few seeds (well under 10 minutes on 2 cores).
DEMO_ID = "HyperRL-A2C-CartPole"
DEMO_AGENTS = ("episodic", "static", "random")
DEMO_SEEDS = 3
DEMO_STEPS = 30_000


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


def cmd_list(_: argparse.Namespace) -> None:
    import hypergym

    print(f"{'id':36s} {'T x envs':>10s} {'U':>6s} {'budget':>11s}  hyperparameter grid (B)")
    for env_id, preset in hypergym.PRESETS.items():
        u = str(preset.get("updates_per_phase") or f"{preset['n_epochs']}xN/b")
        grid = ", ".join(f"{name}({len(values)})" for name, values in preset["hyperparams"].items())
        rollout = f"{preset['n_steps']}x{preset['n_envs']}"
        print(f"{env_id:36s} {rollout:>10s} {u:>6s} {preset['total_env_steps']:>11,d}  {grid}")


PROFILE_HELP = (
    "EPGT profile: 'paper' (the paper's text) or 'code' (the authors' released code's settings, env and agents; "
    "--set and --agent-set still override)"
)


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--set`` overrides, with ``--profile`` (which the agents then follow: ``make_agent`` reads the env's)."""
    out = parse_assignments(args.set)
    if args.profile is not None:
        if "profile" in out:
            raise CLIError("give the profile once: --profile or --set profile=..., not both")
        out["profile"] = args.profile
    return out


TENSORBOARD_HELP = (
    "also log every hyper-step to TensorBoard under DIR/<agent>/seed<seed> (pip install 'hypergym[tensorboard]')"
)


def _tensorboard(folder: str | None) -> str | None:
    """``--tensorboard DIR``, checked before any run starts."""
    if folder is None:
        return None
    try:
        import tensorboard  # noqa: F401
    except ImportError as err:
        raise CLIError('--tensorboard needs the tensorboard package: pip install "hypergym[tensorboard]"') from err
    return folder


def cmd_run(args: argparse.Namespace) -> None:
    env_kwargs = _env_kwargs(args)
    check_names(args.env_id, [args.agent], env_kwargs)
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0 (seeds are non-negative integers), got {args.seed}")
    from hypergym.agents.registry import entry

    if entry(args.agent).single is None:
        raise CLIError(
            f"{args.agent} trains a population, not one run: use hypergym compare {args.env_id} --agents "
            f"{args.agent} --seeds N (the N seeds are its members)"
        )
    out = Path(args.out or member_dir(Path("runs") / args.env_id / args.agent, args.seed))
    agent_kwargs = parse_assignments(args.agent_set)
    check_agents(args.env_id, [args.agent], [], 1, env_kwargs, agent_kwargs)
    every, minutes = _cadence(args)
    spec = RunSpec(
        args.env_id, args.agent, args.seed, str(out), env_kwargs, agent_kwargs, True, every,
        _tensorboard(args.tensorboard), checkpoint_minutes=minutes,
    )  # fmt: skip
    (summary,) = execute(spec)
    print(json.dumps({k: v for k, v in summary.items() if k != "reused"}, indent=2))
    print(f"run directory: {out}{' (reused)' if summary.get('reused') else ''}")


def cmd_compare(args: argparse.Namespace) -> None:
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    out = Path(args.out or Path("runs") / "compare" / args.env_id)
    every, minutes = _cadence(args)
    compare(
        args.env_id, agents, args.seeds, out, args.workers, _env_kwargs(args), parse_assignments(args.agent_set),
        Path(args.png) if args.png else None, single_runs=args.single_runs, checkpoint_every=every,
        backend=args.backend, address=args.address, tensorboard=_tensorboard(args.tensorboard),
        checkpoint_minutes=minutes,
    )  # fmt: skip


def cmd_plot(args: argparse.Namespace) -> None:
    from hypergym.plots import check_figure_path, load_runs, plot_runs, summary_table, write_summary_csv

    try:
        check_figure_path(args.out)
    except ValueError as err:
        raise CLIError(str(err)) from err
    runs = load_runs([Path(d) for d in args.dirs])
    if not runs:
        raise CLIError(f"no finished runs (folders with summary.json) under {args.dirs}")
    print(summary_table(runs))
    out = plot_runs(runs, Path(args.out), title=args.title or "")
    print(f"wrote {out}")
    if args.csv:
        write_summary_csv(runs, Path(args.csv))
        print(f"wrote {args.csv}")


def cmd_demo(args: argparse.Namespace) -> None:
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    env_kwargs = {"total_env_steps": args.steps, **parse_assignments(args.set)}
    out = Path(args.out)
    print(
        f"hypergym demo: {', '.join(agents)} scheduling the hyperparameters of {args.env_id}, "
        f"{args.seeds} seeds x {args.steps:,} env steps each, {args.workers} worker(s)"
    )
    compare(args.env_id, agents, args.seeds, out, args.workers, env_kwargs, {}, out / "demo.png")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from hypergym.reproduce import reproduce

    out = Path(args.out or Path("runs") / "reproduce" / args.name)
    seeds = f" --seeds {args.seeds}" if args.seeds else ""
    command = f"hypergym reproduce {args.name}{seeds} --out {out}"
    path = reproduce(args.name, out, args.workers, args.seeds, command)
    print(path.read_text())
    print(f"wrote {path} and its .csv and .png")


def cmd_bench(args: argparse.Namespace) -> None:
    from hypergym.bench import bench

    out = Path(args.out)
    print(bench([a for a in (args.agents or []) if a], args.tasks, out, args.workers, args.remake))
    print(f"figure: {out / f'bench-{args.tasks}.png'}")


def cmd_meta_train(args: argparse.Namespace) -> None:
    from hypergym.metatrain import MetaTrainSettings, meta_train

    names = ("iterations", "units", "interval", "inner_updates", "meta_lr", "max_norm", "rule", "seed")
    try:
        settings = MetaTrainSettings(
            args.env_id[0], **{n: getattr(args, n) for n in names}, extra_ids=tuple(args.env_id[1:]),
            mlp=tuple(args.mlp), pipeline=not args.no_pipeline, env_kwargs=parse_assignments(args.set),
        )  # fmt: skip
        path = meta_train(settings, args.out or f"runs/meta-train/{'+'.join(args.env_id)}", args.checkpoint_every,
                          tensorboard=args.tensorboard)  # fmt: skip
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from err
    print(f"learned optimiser: {path} (use it with gym.make(id, optimizer={str(path)!r}))")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help with each option's default (where it has one) and the examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, "", argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _command(sub: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(summary, 100),
        epilog=f"example:\n  {example}",
        formatter_class=_Help,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hypergym`` command."""
    from hypergym.agents import AGENTS

    parser = argparse.ArgumentParser(
        prog="hypergym", epilog=__doc__.split("\n\n")[1], formatter_class=_Help,
        description="Hyper-RL: schedule the hyperparameters of a policy-gradient learner, one update per step.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    agents = f"a registered agent ({', '.join(AGENTS)}) or a class of yours, package.module:ClassName"
    seeds = "seeds 0..K-1 per agent"
    workers = "worker processes that runs and populations share"
    preset = "preset overrides, e.g. total_env_steps=20000 obs_mode=stats (hypergym list shows the presets)"

    demo = _command(sub, "demo", "EPGT, static and random scheduling of A2C's learning rate on CartPole, compared",
                    "hypergym demo --seeds 5")  # fmt: skip
    demo.add_argument("--env-id", default=DEMO_ID, help="the registered id")
    demo.add_argument("--agents", default=",".join(DEMO_AGENTS), help=f"comma-separated: each {agents}")
    demo.add_argument("--seeds", type=int, default=DEMO_SEEDS, help=seeds)
    demo.add_argument("--steps", type=int, default=DEMO_STEPS, help="inner env steps per run")
    demo.add_argument("--workers", type=int, default=default_workers(), help=workers)
    demo.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=preset)
    demo.add_argument("--out", default="runs/demo", help="folder of the runs, the table's runs and demo.png")
    demo.set_defaults(func=cmd_demo)

    run = _command(sub, "run", "one agent on one registered id; rerun the same command to resume a killed run",
                   "hypergym run HyperRL-A2C-CartPole --agent episodic --set total_env_steps=20000")  # fmt: skip
    run.add_argument("env_id", help="a registered id (hypergym list)")
    run.add_argument("--agent", required=True, help=agents)
    run.add_argument("--seed", type=int, default=0, help="the run's seed (>= 0)")
    run.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=preset)
    run.add_argument("--agent-set", nargs="*", metavar="KEY=VALUE", help="agent arguments, e.g. index=annoy")
    run.add_argument("--out", help="run directory (default runs/ID/AGENT/seedN)")
    run.add_argument("--checkpoint-minutes", type=float, help=CHECKPOINT_HELP)
    run.add_argument("--checkpoint-every", type=int, metavar="K", help=CHECKPOINT_EVERY_HELP)
    run.add_argument("--profile", choices=PROFILES, help=PROFILE_HELP)
    run.add_argument("--tensorboard", metavar="DIR", help=TENSORBOARD_HELP)
    run.set_defaults(func=cmd_run)

    cmp = _command(sub, "compare", "many agents x seeds in parallel, then a table, each agent's difference to "
                   "static with its interval and p-value, and a PNG; rerun to reuse finished runs",
                   "hypergym compare HyperRL-A2C-CartPole --agents my_agents:UCB,episodic,static")  # fmt: skip
    cmp.add_argument("env_id", help="a registered id (hypergym list)")
    cmp.add_argument("--agents", required=True, help=f"comma-separated: each {agents}")
    cmp.add_argument("--seeds", type=int, default=3, help=seeds)
    cmp.add_argument("--workers", type=int, default=default_workers(), help=workers)
    cmp.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=preset)
    cmp.add_argument("--agent-set", nargs="*", metavar="KEY=VALUE", help="arguments for every agent")
    cmp.add_argument("--out", help="folder of the runs (default runs/compare/ID)")
    cmp.add_argument("--png", help="figure path (default OUT/comparison.png)")
    cmp.add_argument("--checkpoint-minutes", type=float, help=CHECKPOINT_HELP)
    cmp.add_argument("--checkpoint-every", type=int, metavar="K", help=CHECKPOINT_EVERY_HELP)
    cmp.add_argument("--profile", choices=PROFILES, help=PROFILE_HELP)
    cmp.add_argument("--tensorboard", metavar="DIR", help=TENSORBOARD_HELP)
    cmp.add_argument(
        "--backend", choices=("process", "ray"), default="process",
        help="where runs execute: local worker processes, or one Ray task per run (pip install 'hypergym[ray]')",
    )  # fmt: skip
    cmp.add_argument(
        "--address", help="Ray cluster to join ('auto': the one started with `ray start` on this node); "
        "default: a local cluster"
    )  # fmt: skip
    cmp.add_argument(
        "--single-runs", action="store_true",
        help="run every seed as its own run (by default each agent's seeds run as one batched population, whose "
        "members train as these single runs do)",
    )  # fmt: skip
    cmp.set_defaults(func=cmd_compare)

    rep = _command(sub, "reproduce", "run (or resume) one of the paper's studies and write its results section",
                   "hypergym reproduce fig2a --workers 2   # about 17 minutes on 2 CPU cores")  # fmt: skip
    rep.add_argument(
        "name",
        help="the study: fig2a (Fig. 2a, both profiles), fig2b (Fig. 2b, BipedalWalker A2C), "
        "table2-lunarlandercontinuous and table2-bipedalwalker (Table 2, PPO), ingredients (one released "
        "setting back to the text), hyperstate (the encoders), optim4rl-catch (Optim4RL's learned optimiser vs "
        "Adam, RMSprop and LinearOptim on Catch), optim4rl-pipeline (its Table 1), optim4rl-schedule (EPGT and "
        "random choosing its alpha), optim4rl-general-{cartpole,acrobot,lunarlandercontinuous} (its generalisation)",
    )
    rep.add_argument("--seeds", type=int, help="seeds per arm (default: the study's, as the paper)")
    rep.add_argument("--workers", type=int, default=default_workers(), help=workers)
    rep.add_argument("--out", help="folder of the runs and the report (default runs/reproduce/NAME)")
    rep.set_defaults(func=cmd_reproduce)

    bench = _command(sub, "bench", "score hyper-agents on the benchmark's tasks (10 seeds each, one population per "
                     "task) beside the stored leaderboard: IQM, intervals, P(better than static)",
                     "hypergym bench my_agents:MyAgent --tasks test")  # fmt: skip
    bench.add_argument("agents", nargs="*", help=f"agents to score: each {agents} (none: the stored board)")
    bench.add_argument("--tasks", choices=("tuning", "test", "all"), default="test", help="which tasks")
    bench.add_argument("--workers", type=int, default=default_workers(), help=workers)
    bench.add_argument("--out", default="runs/bench", help="folder of the runs and the figure")
    bench.add_argument("--remake", action="store_true",
                       help="also run every board entry, static and the fixed rates; write OUT/bench.json")  # fmt: skip
    bench.set_defaults(func=cmd_bench)

    meta = _command(sub, "meta-train", "meta-train a learned optimiser (Optim4RL) by pipeline training over a "
                    "population of A2C units; resumes from OUT/checkpoint.ckpt",
                    "hypergym meta-train HyperRL-A2C-Catch --iterations 200 --units 64 --interval 32")  # fmt: skip
    meta.add_argument("env_id", nargs="+", help="A2C ids (e.g. HyperRL-A2C-Catch); several: trained on at once")
    for flag, kind, default, text in (
        ("--iterations", int, None, "meta-iterations (required)"), ("--units", int, 64, "units n (one env each)"),
        ("--interval", int, 32, "reset interval m (iterations)"), ("--inner-updates", int, 4, "inner updates M"),
        ("--meta-lr", float, 1e-3, "Adam's step size on the rule"), ("--seed", int, 0, "seed of rule and units"),
        ("--max-norm", float, 0.5, "clip of the meta-gradient's norm (0: none)"),
    ):  # fmt: skip
        meta.add_argument(flag, type=kind, default=default, required=default is None, help=text)
    meta.add_argument("--rule", choices=("optim4rl", "linear"), default="optim4rl", help="the rule to learn")
    meta.add_argument("--mlp", type=int, nargs="*", default=[16, 16], help="the rule's MLP widths")
    meta.add_argument("--no-pipeline", action="store_true", help="never reset units (the paper's ablation)")
    meta.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=preset)
    meta.add_argument("--out", help="folder of optimizer.pt, progress.csv, checkpoint.ckpt (runs/meta-train/ID)")
    meta.add_argument("--checkpoint-every", type=int, default=50, help="iterations between checkpoints")
    meta.add_argument("--tensorboard", metavar="DIR", help=TENSORBOARD_HELP)
    meta.set_defaults(func=cmd_meta_train)

    plot = _command(sub, "plot", "table and figure of finished runs",
                    "hypergym plot runs/compare/HyperRL-A2C-CartPole --out cartpole.png --csv runs.csv")  # fmt: skip
    plot.add_argument("dirs", nargs="+", help="run directories or folders holding them")
    plot.add_argument("--out", required=True, help="PNG path")
    plot.add_argument("--title", default="", help="the figure's title")
    plot.add_argument("--csv", help="also write one row per run (agent, seed, returns, speed) to this CSV")
    plot.set_defaults(func=cmd_plot)

    lst = _command(sub, "list", "registered ids and their presets", "hypergym list | grep PPO")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hypergym`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:  # the reader stopped early (hypergym list | head): as other Unix tools, say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush must not fail again
        return 0
    except (CLIError, CheckpointError, ConnectionError, RunFolderBusy, RunFilesError) as err:
        # a bad argument; other settings; no cluster; a second writer; a corrupt run directory
        print(f"hypergym: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, an unwritable --out or --png: the file and the cause, in one line
        print(f"hypergym: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
