"""Tiny inner tasks for fast, exact tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["Countdown"]


class Countdown(gym.Env):
    """Reward 1 on every step; the episode terminates after ``length`` steps; actions do nothing.

    The observation is the fraction of steps left, so returns are known in closed form: useful for GAE
    and reward tests.

    Args:
        length: Steps per episode.
        n_actions: Size of the (irrelevant) discrete action space.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, length: int = 3, n_actions: int = 2) -> None:
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_actions)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.array([(self.length - self._t) / self.length], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode with all ``length`` steps left."""
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Reward 1; terminate after ``length`` steps."""
        self._t += 1
        return self._obs(), 1.0, self._t >= self.length, False, {}
