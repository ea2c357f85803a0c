"""GEM's memory of whole learning episodes and its twin back-propagation targets (Hu et al., ICML 2021).

GEM (Generalizable Episodic Memory) keeps every stored trajectory's transitions with two value targets
``R^(1)``, ``R^(2)``, recomputed by "implicit planning": the best ``h``-step return along the stored
trajectory, bootstrapped by the critic. With two estimators ``Q^(1)``, ``Q^(2)`` of a state's value:

    V^(k)_{t,1} = r_t + gamma (1 - d_t) Q^(k)(s_{t+1}),     V^(k)_{t,h} = r_t + gamma V^(k)_{t+1,h-1}

over ``h`` up to the trajectory's end, where a last, dummy row (reward 0, value 0) makes the longest
candidate the discounted return to the end with nothing bootstrapped after it. Twin back-propagation:
estimator ``k`` picks the length, the other evaluates it, so the max over ``h`` does not overestimate:

    h*_(1) = argmax_h V^(1)_{t,h},   R^(1)_t = V^(2)_{t,h*_(1)}   (and with 1 and 2 swapped)

ties to the shortest ``h``; then the one-step lower bound of the official code,
``R^(k)_t = max(R^(k)_t, V^(k)_{t,1})``. :func:`tbp_targets` computes this in O(T) by a backward
recursion, run for all stored episodes at once, equal to the code's O(T^2) matrix of candidates
(``gem_mujoco/.../episodic_memory_tbp.py``); the tests check the two agree. With a sparse return ``G`` on
the last step and values near 0, the full-length candidate carries ``G`` back over the whole learning
episode in one refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["EpisodeMemory", "tbp_targets"]


def tbp_targets(
    rewards: np.ndarray, dones: np.ndarray, q1: np.ndarray, q2: np.ndarray, gamma: float, lengths: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """GEM's twin back-propagation targets ``(R^(1), R^(2))`` of consecutive trajectories (one by default).

    Args:
        rewards: ``r_t``, ``[T]``.
        dones: ``d_t``, ``[T]``: 1 where the transition ended the episode for real (not a budget cut).
        q1: ``Q^(1)(s_{t+1})``, ``[T]`` (masked by ``1 - d_t`` here).
        q2: ``Q^(2)(s_{t+1})``, ``[T]``.
        gamma: Discount.
        lengths: The lengths of the trajectories the ``T`` transitions hold, in order (default: one).
    """
    n = len(rewards)
    sizes = np.asarray(lengths if len(lengths) else [n], dtype=np.int64)
    # Every trajectory right-aligned in a row of a [trajectories, longest] table, so that one backward sweep over
    # the columns runs the recursion of all of them at once (the padding on the left is never read back).
    width = int(sizes.max())
    rows = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    cols = width - np.repeat(sizes, sizes) + np.arange(n) - starts
    table = np.zeros((3, len(sizes), width))
    table[0, rows, cols] = rewards
    table[1, rows, cols] = (1.0 - dones) * q1
    table[2, rows, cols] = (1.0 - dones) * q2
    out = np.zeros((2, len(sizes), width))
    best1 = best2 = picked1 = picked2 = np.zeros(len(sizes))  # the dummy last row: every value 0
    for c in range(width - 1, -1, -1):
        r, boot1, boot2 = table[0, :, c], table[1, :, c], table[2, :, c]
        # estimator k goes on past one step only where that is strictly better (ties: the shortest h)
        picked1, picked2 = (
            r + gamma * np.where(best1 > boot1, picked1, boot2),
            r + gamma * np.where(best2 > boot2, picked2, boot1),
        )
        best1, best2 = r + gamma * np.maximum(best1, boot1), r + gamma * np.maximum(best2, boot2)
        out[0, :, c] = np.maximum(picked1, r + gamma * boot1)  # the one-step lower bound
        out[1, :, c] = np.maximum(picked2, r + gamma * boot2)
    return out[0, rows, cols], out[1, rows, cols]


class EpisodeMemory:
    """Finished learning episodes, transition by transition, with their two targets (oldest dropped first).

    Args:
        obs_dim: Dimension of the hyper-states.
        capacity: Most transitions kept; whole oldest episodes go first.
        gamma: Discount of the targets.
    """

    def __init__(self, obs_dim: int, capacity: int, gamma: float) -> None:
        self.capacity, self.gamma = capacity, gamma
        self.obs = np.zeros((0, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((0, obs_dim), dtype=np.float32)
        self.actions = np.zeros(0, dtype=np.int64)
        self.rewards = np.zeros(0)
        self.dones = np.zeros(0)
        self.targets = np.zeros((0, 2))
        self.lengths: list[int] = []  # of the stored episodes, oldest first

    def __len__(self) -> int:
        return len(self.actions)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        dones: np.ndarray,
        next_obs: np.ndarray,
        values: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Store one episode, its targets computed with ``values(next_obs) -> (Q^(1), Q^(2))``."""
        r1, r2 = tbp_targets(rewards, dones, *values(next_obs), self.gamma)
        self.obs = np.concatenate([self.obs, obs])
        self.next_obs = np.concatenate([self.next_obs, next_obs])
        self.actions = np.concatenate([self.actions, actions])
        self.rewards = np.concatenate([self.rewards, rewards])
        self.dones = np.concatenate([self.dones, dones])
        self.targets = np.concatenate([self.targets, np.stack([r1, r2], axis=1)])
        self.lengths.append(len(actions))
        drop = 0
        while len(self) - drop > self.capacity and len(self.lengths) > 1:
            drop += self.lengths.pop(0)
        if drop:
            for name in ("obs", "next_obs", "actions", "rewards", "dones", "targets"):
                setattr(self, name, getattr(self, name)[drop:])

    def refresh(self, values: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        """Recompute every stored episode's targets with the current ``values`` (one pass over the states)."""
        if not len(self):
            return
        q1, q2 = values(self.next_obs)
        r1, r2 = tbp_targets(self.rewards, self.dones, q1, q2, self.gamma, self.lengths)
        self.targets = np.stack([r1, r2], axis=1)
