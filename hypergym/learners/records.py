"""What the learner core takes and gives: hyperparameter scopes, rollout and update records, batch rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import torch

__all__ = [
    "RECENT_EPISODES",
    "RolloutArrays",
    "RolloutStats",
    "Scope",
    "UpdateResult",
    "select_rows",
]


class Scope(str, Enum):
    """When a hyperparameter change takes effect."""

    STEP = "step"
    """At the very next policy update step."""
    ROLLOUT = "rollout"
    """When the next rollout is collected and its advantages computed."""


@dataclass(frozen=True)
class RolloutStats:
    """What one environment phase (one rollout) produced for one member, in raw (unnormalised) rewards."""

    episode_returns: list[float]
    """Undiscounted returns of the inner episodes completed during this rollout."""
    episode_lengths: list[int]
    """Lengths of those episodes."""
    raw_rewards: np.ndarray
    """``[n_steps, n_envs]`` raw rewards of the rollout (before normalisation or clipping)."""
    recent_returns: tuple[float, ...]
    """Returns of the episodes completed so far in the run (the most recent ones)."""
    critic: RolloutArrays | None = None
    """This member's GAE inputs, ``[T, 1, E]`` (training rewards and the critic's values), for rewards
    that recompute the rollout's lambda-returns (``critic_return``)."""
    lambda_returns: np.ndarray | None = None
    """``[T, E]`` the lambda-returns the learner trains on (GAE with the chosen gamma and lambda)."""


#: How many completed episodes each member remembers (the reward's fallback, PBT's ranking).
RECENT_EPISODES = 10


@dataclass
class UpdateResult:
    """Outcome of one update step of every member."""

    losses: dict[str, np.ndarray]
    """Per member: ``loss``, ``policy_loss``, ``value_loss``, ``entropy_loss``, ``grad_norm``, ``n_samples``
    and, for PPO, ``approx_kl`` and ``clip_fraction``."""
    diverged: np.ndarray
    """``[M]`` bool: the member's update was non-finite and rolled back."""


@dataclass(frozen=True)
class RolloutArrays:
    """The current rollout's GAE inputs, ``[T, M, E]`` (``last_values`` and ``dones``: ``[M, E]``)."""

    rewards: np.ndarray
    """Training rewards (normalised or clipped as the learner trains on them; timeouts bootstrapped)."""
    values: np.ndarray
    """Value estimates of the observations the actions were taken at."""
    episode_starts: np.ndarray
    """Whether each observation started an episode."""
    last_values: np.ndarray
    """Values of the observations after the last step."""
    dones: np.ndarray
    """Whether the last step ended an episode."""


def select_rows(batch: Mapping[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Member ``i``'s samples ``rows[i]`` of every ``[M, N, ...]`` tensor of ``batch`` (``rows``: ``[M, b]``)."""
    members = torch.arange(rows.shape[0], device=rows.device).unsqueeze(1)
    # Advanced indexing gathers whole samples; take_along_dim would expand the index to every element
    # (for Atari frames, a 28k-fold larger index tensor than the batch).
    return {name: x[members, rows] for name, x in batch.items()}


@dataclass
class LayerRecording:
    """Inputs ``[M, B, in]`` and output gradients ``[M, B, out]`` of the layers, by name (see ``recording``).

    A convolution's are ``[M, B, C, H, W]`` and ``[M, B, out, H', W']``.
    """

    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    output_grads: dict[str, torch.Tensor] = field(default_factory=dict)
    active: bool = True

    def hook(self, name: str) -> Callable[[torch.Tensor], None]:
        """The backward hook that stores layer ``name``'s output gradient while the recording is active."""

        def record(grad: torch.Tensor) -> None:
            if self.active:
                self.output_grads[name] = grad.detach()

        return record
