"""Baseline hyper-agents: uniformly random (RND) and static (fixed hyperparameters)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, check_single_env

__all__ = ["RandomAgent", "StaticAgent", "static_action", "uniform_actions"]


def uniform_actions(space: gym.Space, rng: np.random.Generator) -> Any:
    """One uniformly random action of ``space``.

    Raises:
        TypeError: For a space other than ``Discrete`` / ``MultiDiscrete``.
    """
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        return (rng.random(space.nvec.shape) * space.nvec).astype(np.int64)
    raise TypeError(f"random actions need a Discrete or MultiDiscrete action space, got {space}")


def static_action(env: Any, action: Any) -> Any:
    """The fixed action that ``action`` names on ``env`` (a HyperRL env, single or population), checked.

    ``action`` is ``"default"``, ``"min"``, ``"max"`` (:meth:`~hypergym.spaces.HyperparamSpace.named_indices`)
    or an action of one run's action space.

    Raises:
        ValueError: On an unknown name, a name without a hyperparameter space, or an action outside the space.
    """
    hx = env.unwrapped
    single_space = getattr(env, "single_action_space", env.action_space)
    if isinstance(action, str):
        space = getattr(hx, "space", None)
        if space is None:
            raise ValueError(f"action={action!r} needs a HyperRLEnv (with a hyperparameter space)")
        action = space.from_indices(space.named_indices(action), getattr(hx, "action_mode", "discrete"))
    if not single_space.contains(np.asarray(action, dtype=np.int64)):
        raise ValueError(f"action {action!r} is outside the action space {single_space}")
    return action


class RandomAgent(HyperAgent):
    """Samples a hyper-action uniformly at every step (the paper's RND baseline), from its own seed."""

    name = "random"

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """A uniformly random action."""
        return uniform_actions(self.action_space, self.rng)


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
        self.action = static_action(env, action)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The fixed action."""
        return self.action

    def config(self) -> dict[str, Any]:
        """Settings, with the fixed action."""
        action = self.action.tolist() if isinstance(self.action, np.ndarray) else self.action
        return {**super().config(), "action": action}
