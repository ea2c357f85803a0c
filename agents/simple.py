"""Baseline hyper-agents: uniformly random (RND) and static (fixed hyperparameters)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, check_single_env

__all__ = ["RandomAgent", "StaticAgent"]


class RandomAgent(HyperAgent):
    """Samples a hyper-action uniformly at every step (the paper's RND baseline), from its own seed."""

    name = "random"

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """A uniformly random action."""
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return int(space.start + self.rng.integers(space.n))
        if isinstance(space, gym.spaces.MultiDiscrete):
            return (self.rng.random(space.nvec.shape) * space.nvec).astype(np.int64)
        raise TypeError(f"RandomAgent needs a Discrete or MultiDiscrete action space, got {space}")


class StaticAgent(HyperAgent):
    """Always the same action: the preset's defaults, or any fixed action (fixed min / max baselines).

    Args:
        env: The env (its ``space.default_action`` is the default choice for a ``HyperRLEnv``).
        action: A fixed action, or one of ``"default"``, ``"min"`` (every hyperparameter at its smallest
            value) and ``"max"`` (every hyperparameter at its largest value).
        seed: Unused (static), kept for the common signature.
    """

    name = "static"

    def __init__(self, env: gym.Env, action: Any = "default", seed: int | None = None) -> None:
        check_single_env(env, "StaticAgent")
        super().__init__(env.action_space, seed)
        space = getattr(env.unwrapped, "space", None)
        mode = getattr(env.unwrapped, "action_mode", "discrete")
        if isinstance(action, str):
            if space is None:
                raise ValueError(f"action={action!r} needs a HyperRLEnv (with a hyperparameter space)")
            action = space.from_indices(space.named_indices(action), mode)
        if not self.action_space.contains(action if not isinstance(action, int) else np.int64(action)):
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        self.action = action

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The fixed action."""
        return self.action

    def config(self) -> dict[str, Any]:
        """Settings, with the fixed action."""
        action = self.action.tolist() if isinstance(self.action, np.ndarray) else self.action
        return {**super().config(), "action": action}
