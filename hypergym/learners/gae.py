"""Generalised advantage estimation (Schulman et al., 2016) for M members at once: the one GAE of hypergym."""

from __future__ import annotations

import numpy as np

__all__ = ["batched_gae"]


def batched_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: np.ndarray,
    gae_lambda: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and returns of a population, SB3's ``compute_returns_and_advantage`` per member.

    Args:
        rewards: ``[T, M, E]`` training rewards.
        values: ``[T, M, E]`` value estimates of the observations the actions were taken at.
        episode_starts: ``[T, M, E]`` whether each observation started an episode.
        last_values: ``[M, E]`` values of the observations after the last step.
        dones: ``[M, E]`` whether the last step ended an episode.
        gamma: ``[M]`` discount of each member.
        gae_lambda: ``[M]`` GAE lambda of each member.

    Returns:
        ``(advantages, returns)``, both ``[T, M, E]`` float32, ``returns = advantages + values``.
    """
    n_steps = rewards.shape[0]
    g = np.asarray(gamma, dtype=np.float64)[:, None]
    gl = g * np.asarray(gae_lambda, dtype=np.float64)[:, None]
    advantages = np.zeros(rewards.shape, dtype=np.float32)
    last_gae = np.zeros(rewards.shape[1:], dtype=np.float32)
    for t in reversed(range(n_steps)):
        if t == n_steps - 1:
            next_non_terminal = 1.0 - dones.astype(np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[t + 1].astype(np.float32)
            next_values = values[t + 1]
        delta = rewards[t] + g * next_values * next_non_terminal - values[t]
        last_gae = delta + gl * next_non_terminal * last_gae
        advantages[t] = last_gae
    return advantages, (advantages + values).astype(np.float32)
