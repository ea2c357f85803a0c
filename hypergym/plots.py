"""Figures and tables of finished runs: returns and chosen hyperparameters over env steps (paper Fig. 2).

:func:`load_runs` reads run directories back (``hypergym plot``, ``compare`` and ``reproduce`` use it);
:func:`plot_runs` draws them, :func:`summary_table` and :func:`write_summary_csv` tabulate them. Needs the
``plots`` extra (matplotlib). The t-SNE map of hyper-states is :mod:`hypergym.tsne`.
"""

from __future__ import annotations

import csv
import math
import os
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hypergym.rundir import csv_number, read_run
from hypergym.verdicts import judge_family

__all__ = [
    "Run",
    "check_figure_path",
    "differences_table",
    "load_runs",
    "plot_runs",
    "summary_table",
    "write_summary_csv",
]


@dataclass
class Run:
    """One finished run directory, as the runner wrote it."""

    path: Path
    """The run directory."""
    label: str
    """Agent label (e.g. ``episodic``, ``static-min``)."""
    seed: int | None
    """Seed of the run."""
    summary: dict[str, Any]
    """``summary.json``."""
    env_steps: np.ndarray
    """Env steps at each hyper-step."""
    inner_return: np.ndarray
    """Mean raw return of the inner episodes completed at each hyper-step (NaN if none)."""
    hyperparams: dict[str, np.ndarray] = field(default_factory=dict)
    """Value in force of each hyperparameter at each hyper-step."""
    tuned: list[str] = field(default_factory=list)
    """The hyperparameters of the action space (the ones the agent chose)."""
    actions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The flat action index chosen at each hyper-step."""
    hyper_rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The hyper-return ``G`` of the learning episode that ends at each hyper-step (NaN where none ends)."""
    space: dict[str, list[Any]] = field(default_factory=dict)
    """The grid of each tuned hyperparameter (``config.json``'s ``space``)."""


def load_runs(dirs: Sequence[str | Path]) -> list[Run]:
    """Every finished run (a folder with ``summary.json``) at or below ``dirs``, sorted by label and seed.

    Raises:
        RunFilesError: Naming a run's file that cannot be read or disagrees with the others.
    """
    runs = []
    seen: set[Path] = set()
    for d in dirs:
        for summary_path in sorted(Path(d).rglob("summary.json")):
            if (run_dir := summary_path.parent.resolve()) in seen:
                continue
            seen.add(run_dir)
            files = read_run(run_dir)
            config = files.config
            label = config.get("agent_label") or config.get("agent", {}).get("name", "agent")
            columns: dict[str, list[float]] = {}
            for key, value in (item for row in files.rows for item in row.items()):
                columns.setdefault(key, []).append(csv_number(value))
            runs.append(
                Run(
                    path=run_dir,
                    label=label,
                    seed=config.get("seed"),
                    summary=files.summary,
                    env_steps=np.asarray(columns.get("env_steps", []), dtype=np.float64),
                    inner_return=np.asarray(columns.get("inner_return", []), dtype=np.float64),
                    hyperparams={k[3:]: np.asarray(v) for k, v in columns.items() if k.startswith("hp_")},
                    tuned=list(config.get("space", {})),
                    actions=np.asarray(columns.get("action", []), dtype=np.float64),
                    hyper_rewards=np.asarray(columns.get("G", []), dtype=np.float64),
                    space=dict(config.get("space", {})),
                )
            )
    return sorted(runs, key=lambda r: (r.label, r.seed if r.seed is not None else -1))


def _by_label(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def summary_table(runs: Sequence[Run]) -> str:
    """A text table: per agent, the mean and standard deviation (``+- sd``) over seeds of the final return, and more.

    Runs with evaluations (``eval_every``) add the best evaluation's mean and std over seeds (the paper's
    metric) beside the final training return.
    """
    evaluated = any(math.isfinite(float(r.summary.get("best_eval_return", math.nan))) for r in runs)
    head = f"{'agent':>12s} {'seeds':>5s} {'final return +- sd':>20s}"
    head += f" {'best eval +- sd':>20s}" if evaluated else ""
    lines = [f"{head} {'best G':>10s} {'env steps/s':>12s} {'diverged':>8s}"]
    for label, group in _by_label(runs).items():
        finals = np.array([r.summary["final_return"] for r in group], dtype=np.float64)
        best = np.array([r.summary["best_G"] for r in group], dtype=np.float64)
        speed = np.array([r.summary["env_steps_per_second"] for r in group], dtype=np.float64)
        diverged = sum(int(r.summary.get("diverged_steps", 0)) for r in group)
        row = f"{label:>12s} {len(group):5d} {f'{np.nanmean(finals):9.2f} +- {np.nanstd(finals):7.2f}':>20s}"
        if evaluated:
            evals = np.array([r.summary.get("best_eval_return", math.nan) for r in group], dtype=np.float64)
            row += f" {f'{np.nanmean(evals):9.2f} +- {np.nanstd(evals):7.2f}':>20s}"
        lines.append(f"{row} {np.nanmean(best):10.2f} {np.nanmean(speed):12.0f} {diverged:8d}")
    return "\n".join(lines)


def differences_table(runs: Sequence[Run], baseline: str = "static") -> str:
    """Each agent against ``baseline``: the difference of means, its interval, its p-value and the verdict.

    The metric is the best evaluation where the runs have one (the paper's), else the final training return.
    The interval is the 95% percentile bootstrap (:func:`~hypergym.verdicts.bootstrap_difference`); the
    p-value is an exact permutation test over the seeds (:func:`~hypergym.verdicts.permutation_test`),
    Holm-adjusted for the number of agents compared; the verdict is ``better`` or ``worse`` where that
    adjusted p is below 0.05. ``""`` when no run is labelled ``baseline``.
    """
    groups = _by_label(runs)
    if baseline not in groups or len(groups) < 2:
        return ""
    evaluated = any(math.isfinite(float(r.summary.get("best_eval_return", math.nan))) for r in runs)
    metric = "best_eval_return" if evaluated else "final_return"
    values = {label: [float(r.summary.get(metric, math.nan)) for r in group] for label, group in groups.items()}
    others = [label for label in groups if label != baseline]
    judged = judge_family([(values[label], values[baseline]) for label in others])
    lines = [f"difference to {baseline} ({metric}; 95% bootstrap interval; exact permutation p, Holm-adjusted "
             f"over {len(others)} comparison(s))"]  # fmt: skip
    for label, j in zip(others, judged, strict=True):
        size = f"{j.difference:+9.2f} [{j.low:+9.2f}, {j.high:+9.2f}]"
        lines.append(f"{label:>12s} {size}  p {j.adjusted:5.3f}  {j.verdict}")
    return "\n".join(lines)


def _curve(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``y`` (NaN where missing) as a step function of ``x`` sampled on ``grid`` (NaN before the first point)."""
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return np.full(len(grid), np.nan)
    pos = np.searchsorted(x, grid, side="right") - 1
    out = y[np.clip(pos, 0, None)].astype(np.float64)
    out[pos < 0] = np.nan
    return out


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean over ``window`` points (NaNs ignored; NaN where the window holds none)."""
    # Cumulative sums, not a loop of nanmean: a 1M-step run has ~80k hyper-steps per series, and a study
    # report smooths 3 series of 50 runs (a Python loop took minutes there).
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    total = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    count = np.concatenate([[0], np.cumsum(ok)])
    end = np.arange(1, len(y) + 1)
    start = np.maximum(0, end - window)
    n = count[end] - count[start]
    out = np.full(len(y), np.nan)
    out[n > 0] = (total[end] - total[start])[n > 0] / n[n > 0]
    return out


def check_figure_path(path: str | Path) -> Path:
    """``path`` if a figure can be written there, checked before any run starts.

    Raises:
        ValueError: On a format matplotlib does not write, a folder, or a folder that cannot be made there.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path, formats = Path(path), FigureCanvasAgg.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in formats:
        raise ValueError(f"cannot write a figure to {path}: its format is one of {sorted(formats)}, not {path.suffix}")
    parent = next(p for p in path.absolute().parents if p.exists())
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        why = "it is a folder" if path.is_dir() else f"{parent} is not a writable folder"
        raise ValueError(f"cannot write a figure to {path}: {why}")
    return path


def plot_runs(runs: Sequence[Run], path: str | Path, title: str = "", points: int = 100, max_hparams: int = 3) -> Path:
    """Draw a figure like the paper's Fig. 2 from finished runs.

    Left: inner return over env steps per agent (mean and std band over seeds; episode returns smoothed
    over 10 episodes). Right: each hyperparameter some run changed, its chosen value over env steps (smoothed
    over 100 hyper-steps, mean over seeds).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = _by_label(runs)
    names = list(dict.fromkeys(n for r in runs for n in r.tuned if n in r.hyperparams))
    # a hyperparameter no run changed gets no panel: a constant on a log axis draws its rounding noise
    names = [n for n in names if any(len(r.hyperparams.get(n, ())) and np.ptp(r.hyperparams[n]) > 0 for r in runs)]
    names = names[:max_hparams]
    top = max((float(np.nanmax(r.env_steps)) for r in runs if len(r.env_steps)), default=1.0)
    grid = np.linspace(0, top, points)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5.5 * (1 + len(names)), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(groups) > len(colors):  # more agents than the default cycle: 20 distinct colours, no repeats up to 20
        colors = [plt.get_cmap("tab20")(k) for k in range(20)]
    for i, (label, group) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        curves = []
        for r in group:
            ok = ~np.isnan(r.inner_return)
            smoothed = _smooth(r.inner_return[ok], 10)
            curves.append(_curve(r.env_steps[ok], smoothed, grid))
        stack = np.array(curves)
        with warnings.catch_warnings():  # grid points before any episode ended are all-NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(stack, axis=0), np.nanstd(stack, axis=0)
        ax = axes[0][0]
        ax.plot(grid, mean, color=color, label=f"{label} (n={len(group)})")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
        for j, name in enumerate(names, start=1):
            series = [
                _curve(r.env_steps, _smooth(r.hyperparams[name].astype(np.float64), 100), grid)
                for r in group
                if name in r.hyperparams
            ]
            if series:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    axes[0][j].plot(grid, np.nanmean(np.array(series), axis=0), color=color, label=label)
    axes[0][0].set_xlabel("inner env steps")
    axes[0][0].set_ylabel("inner episode return")
    axes[0][0].legend(fontsize=8)
    for j, name in enumerate(names, start=1):
        axes[0][j].set_xlabel("inner env steps")
        axes[0][j].set_ylabel(f"{name} (smoothed)")
        if name == "learning_rate":
            axes[0][j].set_yscale("log")
    if title:  # wrapped to the figure's width (about 11 characters an inch)
        fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 11)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: The ``summary.json`` numbers ``hypergym plot --csv`` writes, one column each.
SUMMARY_KEYS = (
    "final_return",
    "train_return_100",
    "mean_return",
    "best_eval_return",
    "final_eval_return",
    "best_G",
    "mean_G",
    "env_steps",
    "hyper_steps",
    "diverged_steps",
    "env_steps_per_second",
)


def write_summary_csv(
    runs: Sequence[Run], path: Path, keys: Sequence[str] = SUMMARY_KEYS, label: str = "agent"
) -> None:
    """One row per run: its label (column ``label``), seed and the ``keys`` of its ``summary.json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([label, "seed", *keys])
        for run in runs:
            writer.writerow([run.label, run.seed, *(run.summary.get(k) for k in keys)])
