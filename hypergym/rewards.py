"""Hyper-rewards: the return G given on the last step of each update phase (paper Eq. 1).

Both are computed from *raw* inner rewards (before VecNormalize), so the hyperparameters a hyper-agent
picks (gamma, GAE lambda) cannot change the measuring stick itself, unlike the official EPGT code, which
used normalised GAE returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from hypergym.learners.records import RolloutStats

__all__ = ["REWARDS", "EpisodeReturn", "HyperReward", "RolloutReturn", "make_reward"]


class HyperReward(ABC):
    """Maps the rollout collected after an update phase to the hyper-reward G."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, rollout: RolloutStats) -> float:
        """G for this rollout."""


class EpisodeReturn(HyperReward):
    """Mean undiscounted return of the inner episodes completed during the environment phase.

    When no episode completed in the phase, the mean of the last 10 episodes completed in the run; when
    none has completed yet, the mean over envs of the rollout's summed raw rewards (a partial return).
    """

    name = "episode_return"

    def __call__(self, rollout: RolloutStats) -> float:
        """Mean completed-episode return (with the fallbacks above)."""
        if rollout.episode_returns:
            return float(np.mean(rollout.episode_returns))
        if rollout.recent_returns:
            return float(np.mean(rollout.recent_returns))
        return float(rollout.raw_rewards.sum(axis=0).mean())


class RolloutReturn(HyperReward):
    """The paper's formula: mean over envs of the discounted T-step return of the rollout, raw rewards.

    ``G = mean_env sum_{k=0}^{T-1} gamma^k r_k``. The discount is fixed (the preset's default gamma), not
    the gamma the hyper-agent is currently choosing.

    Args:
        gamma: The discount of the return.
    """

    name = "rollout_return"

    def __init__(self, gamma: float = 0.99) -> None:
        if not 0 < gamma <= 1:
            raise ValueError(f"rollout_return needs gamma in (0, 1], got {gamma!r}")
        self.gamma = gamma

    def __call__(self, rollout: RolloutStats) -> float:
        """Mean over envs of the discounted raw return of the rollout."""
        discounts = self.gamma ** np.arange(rollout.raw_rewards.shape[0])
        return float((discounts[:, None] * rollout.raw_rewards).sum(axis=0).mean())


#: Reward classes by name.
REWARDS: dict[str, type[HyperReward]] = {"episode_return": EpisodeReturn, "rollout_return": RolloutReturn}


def make_reward(name: str | HyperReward, **kwargs: Any) -> HyperReward:
    """The reward named ``name`` (an instance passes through).

    Raises:
        ValueError: On an unknown name.
    """
    if isinstance(name, HyperReward):
        return name
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; choose from {sorted(REWARDS)}")
    return REWARDS[name](**kwargs) if name == "rollout_return" else REWARDS[name]()
