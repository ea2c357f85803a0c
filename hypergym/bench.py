"""``hypergym bench``: a fixed suite of Hyper-RL tasks, a score per task, and a leaderboard of hyper-agents.

Each task is a registered id under an EPGT profile at a stated budget, ten seeds, and is either a tuning task
(develop an agent on it) or a held-out test task (report on it). Every agent's seeds on a task run as one
population (members = seeds; HOOF seed by seed). A run's score is its training return at the end (mean of its
last 100 training episodes), normalised per task so that the static default's mean is 0 and 1 is the span
of the task's fixed learning rates (the other hyperparameters at their defaults), measured here: the mean
of the best fixed rate minus that of the worst. The aggregate over a split's tasks is the interquartile mean with 95%
stratified-bootstrap intervals, a performance profile and the probability of improvement over static,
computed by ``rliable`` (Agarwal et al., NeurIPS 2021; ``pip install "hypergym[bench]"``).

The leaderboard's runs ship with the package as their per-seed scores (``hypergym/data/bench.json``), so
``hypergym bench my_agents:MyAgent`` runs only the new agent and prints its row beside the stored ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hypergym.studies import Arm, Study, arm_dir

__all__ = ["BOARD", "TASKS", "BoardEntry", "Task", "aggregate", "bench", "bench_specs", "leaderboard", "normaliser"]
__all__ += ["stored", "task_scores", "task_study", "tasks_of", "verdicts", "wall_times"]

_BLIND = {"obs_mode": "random"}  # agents that never read the hyper-state run with the cheap projection
#: The hyper-state of every task: per-layer statistics of the weights and gradients. The paper-width VAE costs
#: 60-90% of a step, and in the hyperstate study no encoder differed from it (docs/results.md).
_STATS = {"obs_mode": "stats"}


@dataclass(frozen=True)
class Task:
    """One task of the suite."""

    name: str
    env_id: str
    profile: str
    split: str
    """``"tuning"`` or ``"test"``."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset: the budget, and the grid where it is not the preset's."""
    seeds: int = 10


@dataclass(frozen=True)
class BoardEntry:
    """A row of the leaderboard: an agent with its arguments."""

    label: str
    agent: str
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    blind: bool = False
    """Never reads the hyper-state (runs with the random projection, which leaves the learner's numbers alone)."""


#: The suite: A2C, ACKTR and PPO; classic control, Box2D and MuJoCo; Table 2's 144-action grid on one task.
TASKS: tuple[Task, ...] = (
    Task("cartpole-a2c", "HyperRL-A2C-CartPole", "paper", "tuning", {"total_env_steps": 50_000, **_STATS}),
    Task("cartpole-acktr", "HyperRL-ACKTR-CartPole", "code", "tuning", {"total_env_steps": 50_000, **_STATS}),
    Task("pendulum-ppo", "HyperRL-PPO-Pendulum", "paper", "tuning", {"total_env_steps": 50_000, **_STATS}),
    Task("mountaincar-a2c", "HyperRL-A2C-MountainCarContinuous", "code", "test", {"total_env_steps": 20_000, **_STATS}),
    Task(
        "lunarlander-ppo-144",
        "HyperRL-PPO-LunarLanderContinuous",
        "code",
        "test",
        {"total_env_steps": 100_000, **_STATS},
    ),
    Task("acrobot-a2c", "HyperRL-A2C-Acrobot", "paper", "test", {"total_env_steps": 50_000, **_STATS}),
    Task("halfcheetah-ppo", "HyperRL-PPO-HalfCheetah", "paper", "test", {"total_env_steps": 50_000, **_STATS}),
)

#: Every registered hyper-agent on the board (HOOF where it applies: A2C and PPO).
BOARD: tuple[BoardEntry, ...] = (
    BoardEntry("static", "static", blind=True),
    BoardEntry("random", "random", blind=True),
    BoardEntry("EPGT", "episodic"),
    BoardEntry("DQN", "dqn"),
    BoardEntry("DQN, hypernetwork Q", "dqn", {"q_net": "hyper"}),
    BoardEntry("GEM", "gem"),
    BoardEntry("GEM, hypernetwork Q", "gem", {"q_net": "hyper"}),
    BoardEntry("PBT", "pbt", blind=True),
    BoardEntry("PB2", "pb2", blind=True),
    BoardEntry("HOOF", "hoof"),
)


def tasks_of(split: str) -> tuple[Task, ...]:
    """The tasks of ``split`` (``"tuning"``, ``"test"`` or ``"all"``).

    Raises:
        ValueError: On another split.
    """
    if split not in ("tuning", "test", "all"):
        raise ValueError(f"--tasks must be tuning, test or all, got {split!r}")
    return tuple(t for t in TASKS if split in ("all", t.split))


def _reference_arms(task: Task) -> tuple[Arm, ...]:
    """The fixed learning rates of the task's grid, the other hyperparameters at their defaults."""
    import gymnasium as gym

    env = gym.make(task.env_id, profile=task.profile, **{**task.env_kwargs, **_BLIND})
    space = env.unwrapped.space  # type: ignore[attr-defined]
    env.close()
    at = space.names.index("learning_rate")
    default = list(space.default_indices())
    arms = []
    for i, value in enumerate(space.values["learning_rate"]):
        action = space.from_indices([*default[:at], i, *default[at + 1 :]])
        arms.append(Arm(f"fixed lr {value:.3g}", "static", task.profile, _BLIND, {"action": int(action)}))
    return tuple(arms)


def task_study(task: Task, entries: Sequence[BoardEntry] = BOARD) -> Study:
    """``task`` as a :class:`~hypergym.studies.Study`: the entries' arms and the fixed learning rates."""
    arms = tuple(
        Arm(e.label, e.agent, task.profile, _BLIND if e.blind else {}, e.agent_kwargs, single_runs=e.agent == "hoof")
        for e in entries
        if e.agent != "hoof" or "-ACKTR-" not in task.env_id  # HOOF has no ACKTR form
    )
    return Study(
        name=f"bench-{task.name}", title=f"hypergym bench: {task.name}", env_id=task.env_id, seeds=task.seeds,
        arms=arms + _reference_arms(task), baseline="static", claim="(the benchmark)", env_kwargs=task.env_kwargs,
        metric="train_return_100",
    )  # fmt: skip


def bench_specs(tasks: Sequence[Task], entries: Sequence[BoardEntry], out: Path, references: bool) -> list[Any]:
    """The jobs of ``entries`` (and, with ``references``, of static and the fixed rates) on ``tasks``."""
    from hypergym.reproduce import study_specs

    specs = []
    for task in tasks:
        study = task_study(task, entries)
        if not references:
            study = Study(**{**study.__dict__, "arms": tuple(a for a in study.arms if not a.label.startswith("fixed"))})
        specs += study_specs(study, out / task.name)
    return specs


def task_scores(task: Task, entries: Sequence[BoardEntry], out: Path) -> dict[str, list[float]]:
    """Each arm's per-seed training return at the end on ``task`` (from the runs under ``out``)."""
    from hypergym.plots import load_runs

    scores = {}
    for arm in task_study(task, entries).arms:
        runs = [r for r in load_runs([arm_dir(out / task.name, task.env_id, arm)]) if (r.seed or 0) < task.seeds]
        values = [r.summary.get("train_return_100") for r in sorted(runs, key=lambda r: r.seed or 0)]
        if values:
            scores[arm.label] = [math.nan if v is None else float(v) for v in values]
    return scores


def wall_times(task: Task, entries: Sequence[BoardEntry], out: Path) -> dict[str, float]:
    """Each arm's wall time on ``task`` in seconds: its population's (members share it), or its runs' sum (HOOF)."""
    from hypergym.plots import load_runs

    times = {}
    for arm in task_study(task, entries).arms:
        runs = [r for r in load_runs([arm_dir(out / task.name, task.env_id, arm)]) if (r.seed or 0) < task.seeds]
        seconds = [float(r.summary.get("wall_seconds") or 0.0) for r in runs]
        if seconds:
            times[arm.label] = sum(seconds) if arm.single_runs else max(seconds)
    return times


def normaliser(scores: dict[str, list[float]]) -> tuple[float, float, str]:
    """``(zero, scale, what)``: a task's score is ``(return - zero) / scale``.

    ``zero`` is the static default's mean; ``scale`` the span of the task's fixed learning rates' means (the
    best's minus the worst's), or the static default's seed-to-seed standard deviation where that is larger.
    A gain of 1 is a gain as large as the whole grid's spread. The best fixed rate's gain over the default is
    no scale: it is near 0 where the default is nearly the best (MountainCar's best fixed rate is 1.2 above its
    default, which would multiply every difference by 80). Nor is a span inside the seeds' noise: on ACKTR's
    CartPole the three rates' means lie within 0.6 of each other (K-FAC's trust region bounds the step).
    """
    zero = float(np.mean(scores["static"]))
    fixed = {label: float(np.mean(v)) for label, v in scores.items() if label.startswith("fixed lr")}
    best, worst = max(fixed, key=lambda k: fixed[k]), min(fixed, key=lambda k: fixed[k])
    span = fixed[best] - fixed[worst]
    noise = float(np.std(scores["static"], ddof=1)) if len(scores["static"]) > 1 else 0.0
    if noise > span:
        return zero, noise, f"1 = static's standard deviation over seeds ({noise:.3g}; the rates' span {span:.3g})"
    return zero, span if span > 0 else 1.0, f"1 = {best} minus {worst} ({span:.3g})"


def aggregate(normalised: dict[str, np.ndarray], draws: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per entry: IQM with a 95% stratified-bootstrap interval, and P(improvement over static) with one.

    Args:
        normalised: Per entry a ``[seeds, tasks]`` matrix of normalised scores (``"static"`` among them).
        draws: Bootstrap draws.
        seed: Seed of the bootstrap.
    """
    from rliable import library as rly
    from rliable import metrics

    def iqm_of(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    pairs = {f"{k},static": (v, normalised["static"]) for k, v in normalised.items() if k != "static"}
    # rliable resamples with NumPy's global generator: seeded here, then restored
    saved = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        iqm, intervals = rly.get_interval_estimates(normalised, iqm_of, reps=draws)
        prob, prob_ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=draws)
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    out = {}
    for key in normalised:
        row = {
            "iqm": float(iqm[key][0]),
            "iqm_low": float(intervals[key][0, 0]),
            "iqm_high": float(intervals[key][1, 0]),
        }
        if key != "static":
            p, ci = prob[f"{key},static"], prob_ci[f"{key},static"]
            row.update(p_improve=float(np.ravel(p)[0]), p_low=float(np.ravel(ci)[0]), p_high=float(np.ravel(ci)[1]))
        out[key] = row
    return out


def stored() -> dict[str, dict[str, list[float]]]:
    """The leaderboard's runs shipped with the package: per task, per entry, the per-seed training returns."""
    text = resources.files("hypergym").joinpath("data/bench.json").read_text()
    return dict(json.loads(text)["tasks"])


def _matrix(
    tasks: Sequence[Task], scores: dict[str, dict[str, list[float]]]
) -> tuple[dict[str, np.ndarray], dict[str, list[int]], dict]:
    """Per entry its ``[seeds, tasks]`` normalised scores on the tasks it ran.

    Also which tasks those are (indices into ``tasks``), and each task's normaliser.
    """
    norms = {t.name: normaliser(scores[t.name]) for t in tasks}
    labels = dict.fromkeys(label for t in tasks for label in scores[t.name] if not label.startswith("fixed lr"))
    out, where = {}, {}
    for label in labels:
        on = [j for j, t in enumerate(tasks) if label in scores[t.name]]
        columns = [(np.asarray(scores[tasks[j].name][label]) - norms[tasks[j].name][0]) / norms[tasks[j].name][1]
                   for j in on]  # fmt: skip
        n = min(len(c) for c in columns)
        out[label], where[label] = np.stack([c[:n] for c in columns], axis=1), on
    return out, where, norms


def leaderboard(tasks: Sequence[Task], scores: dict[str, dict[str, list[float]]], figure: Path | None = None) -> str:
    """The leaderboard of ``scores`` (per task, per entry, per-seed training returns) on ``tasks``, as Markdown.

    An entry that ran on only some of the tasks (HOOF has no ACKTR form) is aggregated over those, against
    static's runs on the same tasks, and its row says on how many.
    """
    missing = [t.name for t in tasks if "static" not in scores.get(t.name, {})
               or not any(k.startswith("fixed lr") for k in scores[t.name])]  # fmt: skip
    if missing:
        raise ValueError(f"no runs of the static default and fixed rates on {missing}: run `hypergym bench --remake`")
    matrix, where, norms = _matrix(tasks, scores)
    full = {label: m for label, m in matrix.items() if len(where[label]) == len(tasks)}
    stats = aggregate(full)
    for label in matrix.keys() - full.keys():
        static = matrix["static"][:, where[label]]
        stats[label] = aggregate({label: matrix[label], "static": static})[label]
    head = "| entry | IQM [95% CI] | P(better than static) [95% CI] | " + " | ".join(t.name for t in tasks) + " |"
    lines = [head, "|---" * (3 + len(tasks)) + "|"]
    for label in sorted(stats, key=lambda k: -stats[k]["iqm"]):
        s, on = stats[label], where[label]
        p = f"{s['p_improve']:.2f} [{s['p_low']:.2f}, {s['p_high']:.2f}]" if "p_improve" in s else "-"
        means = [f"{np.nanmean(matrix[label][:, on.index(j)]):.2f}" if j in on else "n/a" for j in range(len(tasks))]
        name = label if len(on) == len(tasks) else f"{label} (on {len(on)} of {len(tasks)} tasks)"
        iqm = f"{s['iqm']:.2f} [{s['iqm_low']:.2f}, {s['iqm_high']:.2f}]"
        lines.append(f"| {name} | {iqm} | {p} | {' | '.join(means)} |")
    lines += ["", "Normalisation (static default = 0): " + "; ".join(f"{k}: {v[2]}" for k, v in norms.items()) + "."]
    if figure is not None:
        _plot(matrix, stats, figure)
        lines += ["", f"Figure: `{figure.name}`."]
    return "\n".join(lines)


#: The new agents of issue 35 and what each is judged against (one Holm family per agent over every test task).
JUDGED = ("GEM", "GEM, hypernetwork Q", "DQN, hypernetwork Q")
AGAINST = ("static", "random", "EPGT")


def verdicts(
    tasks: Sequence[Task],
    scores: dict[str, dict[str, list[float]]],
    judged: Sequence[str] = JUDGED,
    against: Sequence[str] = AGAINST,
) -> str:
    """Markdown: each judged entry against each of ``against`` on every task, by ``reproduce``'s statistics.

    Per judged entry one family (its comparisons on every task): the difference of mean training returns with
    its 95% bootstrap interval, the exact permutation p alone and Holm-adjusted over the family, and the verdict.
    """
    from hypergym.verdicts import judge_family

    lines = ["| entry | vs | task | difference [95% CI] | p | Holm p | verdict |", "|---|---|---|---|---|---|---|"]
    for entry in judged:
        pairs = [(t.name, other) for t in tasks for other in against
                 if entry in scores.get(t.name, {}) and other in scores[t.name]]  # fmt: skip
        family = judge_family([(scores[t][entry], scores[t][other]) for t, other in pairs])
        for (task, other), j in zip(pairs, family, strict=True):
            lines.append(f"| {entry} | {other} | {task} | {j.difference:+.1f} [{j.low:+.1f}, {j.high:+.1f}] | "
                         f"{j.p:.2g} | {j.adjusted:.2g} | {j.verdict} |")  # fmt: skip
    return "\n".join(lines)


def _plot(matrix: dict[str, np.ndarray], stats: dict[str, dict[str, float]], path: Path) -> None:
    """IQM with its interval per entry, and the performance profile (fraction of runs above each score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly

    order = sorted(stats, key=lambda k: stats[k]["iqm"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(order) + 2))
    for y, label in enumerate(order):
        s = stats[label]
        left.plot([s["iqm_low"], s["iqm_high"]], [y, y], lw=6, alpha=0.5)
        left.plot([s["iqm"]], [y], "k|", ms=14)
    left.set_yticks(range(len(order)), order)
    left.set_xlabel("IQM of normalised score (static 0; 1 = the fixed rates' span, or static's s.d.)")
    taus = np.linspace(
        min(float(np.nanmin(m)) for m in matrix.values()), max(float(np.nanmax(m)) for m in matrix.values()), 81
    )
    profiles, _ = rly.create_performance_profile(matrix, taus, reps=200)
    for label in order:
        right.plot(taus, profiles[label], label=label)
    right.set_xlabel("normalised score tau")
    right.set_ylabel("fraction of runs with score > tau")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench(agents: Sequence[str], split: str, out: Path, workers: int, remake: bool = False) -> str:
    """Run ``agents`` on the split's tasks and return the leaderboard with their rows (Markdown).

    ``agents`` are registered names or ``package.module:Class``; each runs on every task as one population of
    the task's seeds and is scored against the stored runs. With ``remake`` every board entry, the static
    default and the fixed rates run too, and their scores are written to ``out/bench.json`` (the file the
    package ships as ``hypergym/data/bench.json``).
    """
    from hypergym.jobs import run_many

    tasks = tasks_of(split)
    new = [BoardEntry(a, a) for a in agents]
    entries = [*BOARD, *new] if remake else new
    if entries:
        run_many(bench_specs(tasks, entries, out, references=remake), workers)
    scores = {t.name: dict(stored().get(t.name, {})) for t in tasks}
    for t in tasks:
        scores[t.name].update(task_scores(t, entries, out))
    if remake:
        (out / "bench.json").write_text(json.dumps({"version": 1, "tasks": scores}, indent=1))
    return leaderboard(tasks, scores, out / f"bench-{split}.png")
