"""Optim4RL's own tasks as Gymnasium envs: Catch and the six gridworlds of its Table 2.

Written from the paper (Lan et al., RLC 2024, App. B) and the definitions in its official code
(sail-sg/optim4rl ``envs/catch.py`` and ``envs/gridworld.py``), with the observation format that code uses.

**Catch**: a ball starts in a random column of the top row of a 10 x 5 board and falls one row per step; the
paddle starts in the middle of the bottom row and moves left, stays or moves right (actions 0, 1, 2). When the
ball reaches the bottom row (after 9 steps) the episode ends with reward +1 if the paddle is under it, else
-1. Observation: the ``10 x 5 x 1`` board, 1 at the ball and the paddle.

**Gridworlds**: an agent walks a walled grid (9 actions: stay, then up, right, down, left and the four
diagonals, in the code's order; a move into a wall stays). Objects ``[reward, terminate_prob,
respawn_prob]`` lie on distinct random cells at the start. Stepping on an object collects it: its reward is
given, the episode ends with its terminate probability, and it is gone until it respawns, with its respawn
probability per step, on a random free cell (not checked for the agent or the other objects, as the code).
Each step draws, per object in order, the terminate draw, the respawn draw and the respawn cell. An
episode also ends at the horizon (``truncated``; the code counts it as done). Observation: a binary
``(objects + 1) x H x W`` tensor over the map with its wall border, one channel per object and the agent's
last.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["GRIDS", "Catch", "Gridworld"]


class Catch(gym.Env):  # type: ignore[type-arg]
    """Catch, as Optim4RL's code (after bsuite); see the module."""

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium declares it so

    def __init__(self, rows: int = 10, columns: int = 5) -> None:
        self.rows, self.columns = rows, columns
        self.observation_space = spaces.Box(0.0, 1.0, (rows, columns, 1), np.float32)
        self.action_space = spaces.Discrete(3)
        self.ball = (0, 0)
        self.paddle = columns // 2

    def _obs(self) -> np.ndarray:
        board = np.zeros((self.rows, self.columns, 1), dtype=np.float32)
        board[self.ball[0], self.ball[1], 0] = 1.0
        board[self.rows - 1, self.paddle, 0] = 1.0
        return board

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """A new ball in a random column of the top row; the paddle in the middle."""
        super().reset(seed=seed)
        self.ball = (0, int(self.np_random.integers(self.columns)))
        self.paddle = self.columns // 2
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Move the paddle (0 left, 1 stay, 2 right), then the ball one row down."""
        self.paddle = int(np.clip(self.paddle + int(action) - 1, 0, self.columns - 1))
        self.ball = (self.ball[0] + 1, self.ball[1])
        done = self.ball[0] == self.rows - 1
        reward = (1.0 if self.ball[1] == self.paddle else -1.0) if done else 0.0
        return self._obs(), reward, done, False, {}


#: Table 2's gridworlds: interior height and width, objects ``[reward, terminate_prob, respawn_prob]``, horizon.
GRIDS: dict[str, tuple[int, int, tuple[tuple[float, float, float], ...], int]] = {
    "small_dense_long": (6, 4, ((1.0, 0.0, 0.5), (-1.0, 0.5, 0.5)), 500),
    "small_dense_short": (4, 6, ((1.0, 0.0, 0.5), (-1.0, 0.5, 0.5)), 50),
    "big_sparse_short": (10, 12, ((1.0, 0.0, 0.05),) * 2 + ((-1.0, 0.5, 0.05),) * 2, 50),
    "big_sparse_long": (12, 10, ((1.0, 0.0, 0.05),) * 2 + ((-1.0, 0.5, 0.05),) * 2, 500),
    "big_dense_short": (9, 13, ((1.0, 0.0, 0.5),) * 2 + ((-1.0, 0.5, 0.5),) * 2, 50),
    "big_dense_long": (13, 9, ((1.0, 0.0, 0.5),) * 2 + ((-1.0, 0.5, 0.5),) * 2, 500),
}

#: Moves of the 9 actions, (row, column), in the code's order.
_MOVES = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]])


class Gridworld(gym.Env):  # type: ignore[type-arg]
    """One of Optim4RL's gridworlds (see the module).

    Args:
        name: A key of :data:`GRIDS`.
        reward_scale: Factor on every reward (the paper's 6-grid run scales each grid's).

    Raises:
        ValueError: On an unknown grid, naming the valid ones.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium declares it so

    def __init__(self, name: str, reward_scale: float = 1.0) -> None:
        if name not in GRIDS:
            raise ValueError(f"unknown gridworld {name!r}; choose from {sorted(GRIDS)}")
        height, width, objects, horizon = GRIDS[name]
        self.name, self.reward_scale, self.horizon = name, reward_scale, horizon
        self.objects = np.array(objects)
        self.walls = np.ones((height + 2, width + 2), dtype=bool)
        self.walls[1:-1, 1:-1] = False
        self.free = np.argwhere(~self.walls)
        shape = (len(objects) + 1, *self.walls.shape)
        self.observation_space = spaces.Box(0.0, 1.0, shape, np.float32)
        self.action_space = spaces.Discrete(len(_MOVES))
        self.agent = np.zeros(2, dtype=np.int64)
        self.placed = np.zeros((len(objects), 2), dtype=np.int64)  # (-1, -1): collected, not yet back
        self.time = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros((len(self.objects) + 1, *self.walls.shape), dtype=np.float32)
        for i, (row, col) in enumerate(self.placed):
            if row >= 0:
                obs[i, row, col] = 1.0
        obs[-1, self.agent[0], self.agent[1]] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """The agent and the objects on distinct random free cells."""
        super().reset(seed=seed)
        cells = self.np_random.choice(len(self.free), size=len(self.objects) + 1, replace=False)
        self.agent = self.free[cells[0]].copy()
        self.placed = self.free[cells[1:]].copy()
        self.time = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Move (a wall stops the move), collect, then each object's terminate and respawn draws."""
        moved = np.clip(self.agent + _MOVES[int(action)], 0, np.array(self.walls.shape) - 1)
        if not self.walls[moved[0], moved[1]]:
            self.agent = moved
        reward, terminated = 0.0, False
        for i, (value, end_prob, respawn_prob) in enumerate(self.objects):
            end_draw, respawn_draw = self.np_random.random(), self.np_random.random()
            cell = self.free[self.np_random.integers(len(self.free))]
            if (self.placed[i] == self.agent).all():
                reward += value
                self.placed[i] = -1
                terminated |= bool(end_draw <= end_prob) and end_prob > 0
            if self.placed[i, 0] < 0 and respawn_draw <= respawn_prob:
                self.placed[i] = cell
        self.time += 1
        truncated = not terminated and self.time >= self.horizon
        return self._obs(), self.reward_scale * reward, terminated, truncated, {}
