"""Population Based Training (PBT) as a population hyper-agent, on a quantised grid.

PBT (Jaderberg et al., 2017) trains a population and, every ``perturbation_interval`` update phases,
lets the worst members *exploit* a better one (copy its whole training state) and *explore* from there
(perturb the copied hyperparameters). Here the exploit is
:meth:`~hypergym.envs.HyperRLVectorEnv.copy_member`, an in-process copy of rows of the population's
tensors, not a checkpoint round-trip through a scheduler; and, because the agent sets every member's
hyperparameters with each action, what it chose after an exploit is what the member trains with (the
restore-overwrites-the-perturbation bugs of Ray Tune cannot happen).

Names and rules follow Ray Tune's ``PopulationBasedTraining`` with a list of values per hyperparameter:
the bottom ``quantile_fraction`` of members (ranked by the mean of their last ``score_window`` inner
episode returns) each copy a member drawn uniformly from the top quantile, then each hyperparameter is
resampled uniformly from its grid with probability ``resample_probability``, else moved to an adjacent
grid value (the next smaller or larger value with equal chance, kept at the end of the grid when it would
leave it; adjacency is by value, so grids listed default first work as sorted ones).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import PopulationAgent
from hypergym.checks import check_count

__all__ = ["PBTAgent", "explore_adjacent", "split_quantiles"]


def split_quantiles(
    scores: np.ndarray, quantile_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bottom and top quantiles of a population by score, as Ray Tune's PBT sizes them.

    ``ceil(N * quantile_fraction)`` members each, at most ``floor(N / 2)``; ties are broken at random.

    Returns:
        ``(bottom, top)`` member indices, worst first and best last.
    """
    n = len(scores)
    q = math.ceil(n * quantile_fraction)
    if q > n / 2:
        q = n // 2
    order = rng.permutation(n)
    order = order[np.argsort(np.asarray(scores)[order], kind="stable")]
    return order[:q], order[n - q :] if q else order[:0]


def explore_adjacent(
    indices: np.ndarray, nvec: np.ndarray, resample_probability: float, rng: np.random.Generator
) -> np.ndarray:
    """PBT's explore on a grid: per hyperparameter, resample uniformly or move one grid step.

    Args:
        indices: ``[P]`` grid indices of the copied member's hyperparameters.
        nvec: ``[P]`` grid sizes.
        resample_probability: Chance of a uniform resample of each hyperparameter.
        rng: Randomness.

    Returns:
        ``[P]`` new indices.
    """
    out = np.asarray(indices, dtype=np.int64).copy()
    for p, size in enumerate(np.asarray(nvec)):
        if rng.random() < resample_probability:
            out[p] = rng.integers(size)
        else:
            out[p] = min(max(out[p] + rng.choice((-1, 1)), 0), size - 1)
    return out


class PBTAgent(PopulationAgent):
    """PBT over the members of a :class:`~hypergym.envs.HyperRLVectorEnv`.

    Each member holds one grid point (its hyperparameters) for a whole ``perturbation_interval``; at the
    end of every interval the bottom quantile exploits the top one and explores.

    Args:
        venv: The population (``gym.make_vec(id, num_envs=N)``).
        perturbation_interval: Update phases (hyper-rewards) between two exploit/explore rounds.
        quantile_fraction: Fraction of members in the bottom and top quantiles (Ray Tune's default 0.25).
        resample_probability: Chance that explore resamples a hyperparameter rather than moving it one
            grid step (Ray Tune's default 0.25).
        burn_in: Update phases before the first round.
        score_window: Recent inner episodes whose mean return ranks a member.
        initial: ``"random"`` (each member starts from a uniform grid point, as PBT samples its initial
            configurations) or ``"default"`` (all start from the preset's defaults).
        seed: Seed of the agent's randomness.

    Raises:
        ValueError: On an invalid setting, or an env without population operations.
    """

    name = "pbt"

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        perturbation_interval: int = 4,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        burn_in: int = 0,
        score_window: int = 10,
        initial: str = "random",
        seed: int | None = None,
    ) -> None:
        super().__init__(venv, seed)
        env: Any = venv.unwrapped  # a HyperRLVectorEnv (checked below)
        if not hasattr(env, "copy_member") or not hasattr(env, "space"):
            raise ValueError(f"{self.name} needs a HyperRLVectorEnv (gym.make_vec of a HyperRL id), got {venv!r}")
        for name, value, low in (("perturbation_interval", perturbation_interval, 1), ("burn_in", burn_in, 0),
                                 ("score_window", score_window, 1)):  # fmt: skip
            check_count(name, value, least=low)
        if not 0.0 <= quantile_fraction <= 0.5:
            raise ValueError(f"quantile_fraction must be in [0, 0.5], got {quantile_fraction!r}")
        if not 0.0 <= resample_probability <= 1.0:
            raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability!r}")
        if initial not in ("random", "default"):
            raise ValueError(f"initial must be 'random' or 'default', got {initial!r}")
        self.env = env
        self.space = env.space
        self.action_mode = env.action_mode
        self.nvec = np.asarray(self.space.nvec, dtype=np.int64)
        # A grid need not list its values in increasing order (Eq. 5 grids put the default first): "one grid
        # step" and PB2's GP inputs are taken in each value's rank, not its index.
        self._rank_of = [np.argsort(np.argsort(p.values, kind="stable")) for p in self.space.params]
        self._index_of = [np.argsort(p.values, kind="stable") for p in self.space.params]
        self.perturbation_interval, self.burn_in, self.score_window = perturbation_interval, burn_in, score_window
        self.quantile_fraction, self.resample_probability, self.initial = (
            quantile_fraction, resample_probability, initial
        )  # fmt: skip
        if initial == "random":
            self.indices = (self.rng.random((self.num_envs, len(self.nvec))) * self.nvec).astype(np.int64)
        else:
            self.indices = np.tile(np.asarray(self.space.default_indices(), dtype=np.int64), (self.num_envs, 1))
        self.phases = 0
        #: One entry per exploit: ``{"phase", "member", "copied", "scores", "from", "to"}`` (grid indices).
        self.history: list[dict[str, Any]] = []

    def ranks(self, indices: np.ndarray) -> np.ndarray:
        """Grid indices ``[..., P]`` as the ranks of their values (0: the smallest value)."""
        out = np.asarray(indices, dtype=np.int64).copy()
        for p, rank in enumerate(self._rank_of):
            out[..., p] = rank[out[..., p]]
        return out

    def from_ranks(self, ranks: np.ndarray) -> np.ndarray:
        """Ranks ``[..., P]`` of values as grid indices."""
        out = np.asarray(ranks, dtype=np.int64).copy()
        for p, index in enumerate(self._index_of):
            out[..., p] = index[out[..., p]]
        return out

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Each member's current grid point, as an action."""
        return np.stack([np.asarray(self.space.from_indices(idx, self.action_mode)) for idx in self.indices])

    def observe(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """Count update phases; at the end of each interval, exploit and explore."""
        if "G" not in info:  # the phase goes on
            return
        self.phases += 1
        if self.phases > self.burn_in and (self.phases - self.burn_in) % self.perturbation_interval == 0:
            self.perturb()

    def scores(self) -> np.ndarray:
        """``[N]`` mean of each member's last ``score_window`` episode returns (``-inf`` before any)."""
        recent = self.env.recent_returns()
        return np.array([np.mean(r[-self.score_window :]) if len(r) else -np.inf for r in recent])

    def perturb(self) -> None:
        """One exploit/explore round (called every ``perturbation_interval`` phases)."""
        scores = self.scores()
        bottom, top = split_quantiles(scores, self.quantile_fraction, self.rng)
        if len(bottom) == 0:
            return
        sources = [int(self.rng.choice(top)) for _ in bottom]
        new = self.explore(bottom, np.array(sources), scores)
        for i, (dst, src) in enumerate(zip(bottom, sources, strict=True)):
            self.env.copy_member(int(dst), src)
            self.history.append({
                "phase": self.phases, "member": int(dst), "copied": src, "scores": scores.tolist(),
                "from": self.indices[src].tolist(), "to": new[i].tolist(),
            })  # fmt: skip
            self._on_exploit(int(dst), src)
        for i, dst in enumerate(bottom):
            self.indices[dst] = new[i]

    def explore(self, members: np.ndarray, sources: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """New grid points for ``members``, which copy ``sources`` (PBT: perturb the source's point)."""
        moved = [explore_adjacent(self.ranks(self.indices[s]), self.nvec, self.resample_probability, self.rng)
                 for s in sources]  # fmt: skip
        return self.from_ranks(np.stack(moved))

    def _on_exploit(self, dst: int, src: int) -> None:
        """Hook for subclasses, after member ``dst`` copied ``src``."""

    def config(self) -> dict[str, Any]:
        """Settings."""
        return {
            **super().config(),
            "perturbation_interval": self.perturbation_interval,
            "quantile_fraction": self.quantile_fraction,
            "resample_probability": self.resample_probability,
            "burn_in": self.burn_in,
            "score_window": self.score_window,
            "initial": self.initial,
        }
