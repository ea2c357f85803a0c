"""Pictures of what the hyper-state encoders learn (paper Fig. 4a / Fig. 15).

``python -m hypergym.tsne HyperRL-A2C-MountainCarContinuous --out tsne.png`` runs the env with a seeded
random hyper-agent, records the observation (the hyper-state embedding) at every hyper-step and the
hyper-return of the learning episode it belongs to, and draws a t-SNE map of the embeddings coloured by
that return, one panel per ``obs_mode``. Needs the ``plots`` extra (matplotlib, scikit-learn).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["Embeddings", "collect_embeddings", "main", "plot_tsne", "tsne_2d"]


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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m hypergym.tsne ID [--steps N] [--obs-modes ...] --out PNG``."""
    tsne = argparse.ArgumentParser(prog="python -m hypergym.tsne", description=__doc__.split("\n\n")[0])
    tsne.add_argument("env_id", help="a registered id, e.g. HyperRL-A2C-MountainCarContinuous")
    tsne.add_argument("--steps", type=int, default=None, help="inner env-step budget (default: the preset's)")
    tsne.add_argument("--obs-modes", nargs="+", default=["vae", "random"], help="one panel per obs_mode")
    tsne.add_argument("--seed", type=int, default=0)
    tsne.add_argument("--max-points", type=int, default=2000)
    tsne.add_argument("--device", default="cpu")
    tsne.add_argument("--out", required=True, help="output PNG path")
    args = tsne.parse_args(argv)

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
