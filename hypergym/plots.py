"""Pictures of what the hyper-state encoders learn (paper Fig. 4a / Fig. 15).

``python -m hypergym.plots tsne HyperRL-A2C-MountainCarContinuous --out tsne.png`` runs the env with a
seeded random hyper-agent, records the observation (the hyper-state embedding) at every hyper-step and
the hyper-return of the learning episode it belongs to, and draws a t-SNE map of the embeddings
coloured by that return, one panel per ``obs_mode``. Needs the ``plots`` extra (matplotlib,
scikit-learn).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.rundir import read_summary

__all__ = [
    "Embeddings",
    "Run",
    "collect_embeddings",
    "load_runs",
    "plot_runs",
    "plot_tsne",
    "summary_table",
    "tsne_2d",
    "write_summary_csv",
]


@dataclass(frozen=True)
class Embeddings:
    """Hyper-state observations of one run, each with the hyper-return it led to."""

    observations: np.ndarray
    """``[n, obs_dim]`` observations at which the hyper-actions were chosen."""
    hyper_returns: np.ndarray
    """``[n]`` hyper-return of each step's learning episode (G of its update phase when n = 1)."""
    env_steps: np.ndarray
    """``[n]`` inner env steps when the observation was made."""
    final_encoder_loss: float | None
    """The encoder's last reconstruction loss (``vae`` only)."""


def collect_embeddings(env_id: str, seed: int = 0, **env_kwargs: Any) -> Embeddings:
    """Run ``env_id`` to the end of one inner run with uniformly random hyper-actions.

    Args:
        env_id: A registered ``HyperRL-*`` id.
        seed: Seed of the run and of the random hyper-agent.
        **env_kwargs: Overrides of the preset (``total_env_steps``, ``obs_mode``, ...).
    """
    import hypergym  # noqa: F401 - registers the ids

    env = gym.make(env_id, **env_kwargs)
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    observations: list[np.ndarray] = []
    returns: list[float] = []
    steps: list[int] = []
    episode: list[tuple[np.ndarray, int]] = []
    while True:
        episode.append((obs, info["env_steps"]))
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            g = float(info.get("G", reward))
            for o, s in episode:
                observations.append(o)
                returns.append(g)
                steps.append(s)
            episode = []
            if info["run_finished"]:
                break
            obs, info = env.reset()
    loss = info.get("encoder_loss")
    env.close()
    return Embeddings(np.asarray(observations), np.asarray(returns), np.asarray(steps), loss)


def tsne_2d(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of ``x`` (scikit-learn, PCA initialisation, seeded)."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def plot_tsne(
    panels: Sequence[tuple[str, Embeddings]], path: str | Path, title: str = "", seed: int = 0, max_points: int = 2000
) -> Path:
    """Draw one t-SNE panel per ``(label, embeddings)``, points coloured by hyper-return; save a PNG.

    Args:
        panels: Labels and the embeddings to map.
        path: Output PNG path (folders are created).
        title: Figure title.
        seed: Seed of the subsampling and of t-SNE.
        max_points: At most this many points per panel (uniform subsample).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    all_returns = np.concatenate([e.hyper_returns for _, e in panels])
    vmin, vmax = float(np.min(all_returns)), float(np.max(all_returns))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    scatter = None
    for ax, (label, emb) in zip(axes[0], panels, strict=True):
        idx = np.arange(len(emb.observations))
        if len(idx) > max_points:
            idx = np.sort(rng.choice(idx, size=max_points, replace=False))
        xy = tsne_2d(emb.observations[idx], seed=seed)
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=emb.hyper_returns[idx], cmap="viridis", s=6, vmin=vmin, vmax=vmax)
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[0].tolist(), label="hyper-return G")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


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
    """Every finished run (a folder with ``summary.json``) at or below ``dirs``, sorted by label and seed."""
    runs = []
    seen: set[Path] = set()
    for d in dirs:
        for summary_path in sorted(Path(d).rglob("summary.json")):
            if (run_dir := summary_path.parent.resolve()) in seen:
                continue
            seen.add(run_dir)
            config = json.loads((run_dir / "config.json").read_text())
            label = config.get("agent_label") or config.get("agent", {}).get("name", "agent")
            columns: dict[str, list[float]] = {}
            with (run_dir / "steps.csv").open() as f:
                for key, value in (item for row in csv.DictReader(f) for item in row.items()):
                    columns.setdefault(key, []).append(_float(value))
            runs.append(
                Run(
                    path=run_dir,
                    label=label,
                    seed=config.get("seed"),
                    summary=read_summary(summary_path),
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


def _float(value: str) -> float:
    if value in ("", "nan", "NaN"):
        return math.nan
    if value in ("True", "False"):
        return float(value == "True")
    try:
        return float(value)
    except ValueError:
        return math.nan


def _by_label(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def summary_table(runs: Sequence[Run]) -> str:
    """A text table: per agent, the mean and std over seeds of the final return, and more.

    Runs with evaluations (``eval_every``) add the best evaluation's mean and std over seeds (the paper's
    metric) beside the final training return.
    """
    evaluated = any(math.isfinite(float(r.summary.get("best_eval_return", math.nan))) for r in runs)
    head = f"{'agent':>12s} {'seeds':>5s} {'final return':>20s}"
    head += f" {'best eval':>20s}" if evaluated else ""
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


def plot_runs(runs: Sequence[Run], path: str | Path, title: str = "", points: int = 100, max_hparams: int = 3) -> Path:
    """Draw a figure like the paper's Fig. 2 from finished runs.

    Left: inner return over env steps per agent (mean and std band over seeds; episode returns smoothed
    over 10 episodes). Right: each hyperparameter's chosen value over env steps (smoothed over 100
    hyper-steps, mean over seeds).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = _by_label(runs)
    names = list(dict.fromkeys(n for r in runs for n in r.tuned if n in r.hyperparams))[:max_hparams]
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: The ``summary.json`` numbers ``hypergym plot --csv`` writes, one column each.
SUMMARY_KEYS = (
    "final_return",
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m hypergym.plots tsne ID [--steps N] [--obs-modes ...] --out PNG``."""
    parser = argparse.ArgumentParser(prog="python -m hypergym.plots", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tsne = sub.add_parser("tsne", help="t-SNE map of hyper-state embeddings coloured by hyper-return")
    tsne.add_argument("env_id", help="a registered id, e.g. HyperRL-A2C-MountainCarContinuous")
    tsne.add_argument("--steps", type=int, default=None, help="inner env-step budget (default: the preset's)")
    tsne.add_argument("--obs-modes", nargs="+", default=["vae", "random"], help="one panel per obs_mode")
    tsne.add_argument("--seed", type=int, default=0)
    tsne.add_argument("--max-points", type=int, default=2000)
    tsne.add_argument("--device", default="cpu")
    tsne.add_argument("--out", required=True, help="output PNG path")
    args = parser.parse_args(argv)

    panels = []
    for mode in args.obs_modes:
        kwargs: dict[str, Any] = {"obs_mode": mode, "device": args.device}
        if args.steps is not None:
            kwargs["total_env_steps"] = args.steps
        emb = collect_embeddings(args.env_id, seed=args.seed, **kwargs)
        extra = f", final reconstruction MSE {emb.final_encoder_loss:.4f}" if emb.final_encoder_loss else ""
        print(
            f"{mode}: {len(emb.observations)} hyper-steps, G in [{emb.hyper_returns.min():.2f}, "
            f"{emb.hyper_returns.max():.2f}]{extra}"
        )
        panels.append((f"obs_mode={mode}", emb))
    out = plot_tsne(
        panels,
        args.out,
        title=f"{args.env_id}: hyper-state embeddings (t-SNE)",
        seed=args.seed,
        max_points=args.max_points,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
