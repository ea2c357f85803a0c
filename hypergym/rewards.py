"""Hyper-rewards: the return G given on the last step of each update phase (paper Eq. 1).

``episode_return`` and ``rollout_return`` are computed from *raw* inner rewards (before VecNormalize), so
the hyperparameters a hyper-agent picks (gamma, GAE lambda) cannot change the measuring stick itself.
``critic_return`` is what the authors' released code gave (``mean(rollouts.returns)``): the rollout's
mean lambda-return, bootstrapped by the critic, on the training (normalised) rewards; by default with the
preset's gamma and lambda, so that choosing them cannot inflate it, or with the chosen ones
(``critic_return_chosen``), as that code did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from hypergym.learners.gae import batched_gae
from hypergym.learners.records import RolloutStats

__all__ = ["REWARDS", "CriticReturn", "EpisodeReturn", "HyperReward", "RolloutReturn", "make_reward"]


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


class CriticReturn(HyperReward):
    """The released EPGT code's hyper-reward: the rollout's mean GAE lambda-return from the critic.

    ``G = mean_{t, env} (A_t + V(s_t))``, with ``A`` computed by GAE over the rollout's training rewards
    (normalised where the env normalises them; timeouts bootstrapped) and the critic's values.

    Args:
        gamma: Discount of the return (the preset's default).
        gae_lambda: GAE lambda of the return (the preset's default).
        chosen: Use the lambda-returns the learner trained on, i.e. the gamma and lambda the hyper-agent
            chose (``critic_return_chosen``, as the released code did), instead of ``gamma``/``gae_lambda``.
    """

    name = "critic_return"

    def __init__(self, gamma: float = 0.99, gae_lambda: float = 0.95, chosen: bool = False) -> None:
        if not 0 < gamma <= 1 or not 0 < gae_lambda <= 1:
            raise ValueError(f"critic_return needs gamma and gae_lambda in (0, 1], got {gamma!r}, {gae_lambda!r}")
        self.gamma, self.gae_lambda, self.chosen = gamma, gae_lambda, chosen

    def __call__(self, rollout: RolloutStats) -> float:
        """Mean lambda-return of the rollout."""
        if self.chosen:
            if rollout.lambda_returns is None:
                raise ValueError("critic_return_chosen needs the learner's lambda-returns, which this rollout lacks")
            return float(np.mean(rollout.lambda_returns))
        c = rollout.critic
        if c is None:
            raise ValueError("critic_return needs the rollout's rewards and values, which this rollout lacks")
        _, returns = batched_gae(
            c.rewards, c.values, c.episode_starts, c.last_values, c.dones,
            np.array([self.gamma]), np.array([self.gae_lambda]),
        )  # fmt: skip
        return float(np.mean(returns))


#: Reward classes by name (``critic_return_chosen`` is :class:`CriticReturn` with ``chosen=True``).
REWARDS: dict[str, type[HyperReward]] = {
    "critic_return": CriticReturn,
    "critic_return_chosen": CriticReturn,
    "episode_return": EpisodeReturn,
    "rollout_return": RolloutReturn,
}


def make_reward(name: str | HyperReward, **kwargs: Any) -> HyperReward:
    """The reward named ``name`` (an instance passes through).

    Raises:
        ValueError: On an unknown name.
    """
    if isinstance(name, HyperReward):
        return name
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; choose from {sorted(REWARDS)}")
    if name == "rollout_return":
        return RolloutReturn(gamma=kwargs.get("gamma", 0.99))
    if name.startswith("critic_return"):
        return CriticReturn(kwargs.get("gamma", 0.99), kwargs.get("gae_lambda", 0.95), name == "critic_return_chosen")
    return REWARDS[name]()
