"""Factored EPGT: one episodic memory per hyperparameter, for grids too large for one joint memory.

EPGT's memory has one slot set per joint action; the joint action space is the product of the grid sizes
(4 hyperparameters x 6 values = 1,296 actions; the paper stops at 144). Here each hyperparameter is an
independent EPGT learner (:class:`~hypergym.agents.EpisodicAgent`: its own memory over its own values,
epsilon schedule, writing and reading) over the shared observation (the hyper-state) and the shared
hyper-reward; the joint action is the tuple of their choices. Each learner's memory holds ``B_i`` slot
sets instead of ``prod B``, so it fills (and reads) as fast as a one-hyperparameter EPGT.

The same agent drives the joint :class:`~hypergym.envs.HyperRLEnv` (``act`` / ``observe``) and the
PettingZoo :class:`~hypergym.envs.parallel.HyperRLParallelEnv` (``act_parallel`` / ``observe_parallel``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, Transition
from hypergym.agents.episodic import EpisodicAgent

__all__ = ["FactoredEpisodicAgent"]


class _HyperparameterView:
    """What one hyperparameter's EPGT learner reads of the env: its own Discrete space, the shared rest."""

    def __init__(self, hyper_env: Any, n_values: int) -> None:
        self.action_space = gym.spaces.Discrete(n_values)
        self.observation_space = hyper_env.observation_space
        self.unwrapped = hyper_env


class FactoredEpisodicAgent(HyperAgent):
    """EPGT factored over the hyperparameters (see the module docstring).

    Args:
        env: A ``HyperRLEnv`` (joint actions, either ``action_mode``) or a ``HyperRLParallelEnv``.
        capacity: Memory size of each learner (default: EPGT's rule, per learner).
        seed: Seed; learner ``i``'s exploration is seeded from ``(seed, i)``.
        **kwargs: :class:`~hypergym.agents.EpisodicAgent` arguments (``k``, ``beta``, ``write_every``,
            ``index``, ``index_kwargs``, ``total_steps``).

    Raises:
        ValueError: If ``env`` is neither.
    """

    name = "episodic-factored"

    def __init__(self, env: Any, capacity: int | None = None, seed: int | None = None, **kwargs: Any) -> None:
        hyper_env: Any = getattr(env, "hyper_env", None) or getattr(env, "unwrapped", None)
        space = getattr(hyper_env, "space", None)
        if space is None or not hasattr(hyper_env, "action_mode"):
            raise ValueError(f"{self.name} needs a HyperRLEnv or a HyperRLParallelEnv, got {env!r}")
        action_space = env.action_space if isinstance(env, gym.Env) else None
        super().__init__(action_space, seed)  # type: ignore[arg-type]
        self.space = space
        self.action_mode = hyper_env.action_mode
        self.names = list(space.names)
        seeds = np.random.SeedSequence(seed).spawn(len(self.names))
        self.learners = {
            name: EpisodicAgent(
                _HyperparameterView(hyper_env, int(n)),  # type: ignore[arg-type]
                capacity=capacity,
                seed=int(s.generate_state(1)[0]),
                **kwargs,
            )
            for name, n, s in zip(self.names, space.nvec, seeds, strict=True)
        }

    # ------------------------------------------------------------------ joint env
    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """Each learner's choice, as one joint action of the env's ``action_mode``."""
        idx = [self.learners[name].act(obs, info) for name in self.names]
        return self.space.from_indices(idx, self.action_mode)

    def observe(self, transition: Transition) -> None:
        """Each learner observes the step with its own part of the joint action."""
        idx = self.space.indices(transition.action)
        for name, i in zip(self.names, idx, strict=True):
            self.learners[name].observe(transition._replace(action=int(i)))

    # ------------------------------------------------------------------ PettingZoo parallel env
    def act_parallel(self, observations: dict[str, Any], infos: dict[str, Any]) -> dict[str, int]:
        """``{agent: value index}`` for the live agents of a ``HyperRLParallelEnv``."""
        return {name: self.learners[name].act(observations[name], infos.get(name, {})) for name in observations}

    def observe_parallel(
        self,
        observations: dict[str, Any],
        actions: dict[str, int],
        rewards: dict[str, float],
        next_observations: dict[str, Any],
        terminations: dict[str, bool],
        truncations: dict[str, bool],
        infos: dict[str, Any],
    ) -> None:
        """Each agent's learner observes its step of a ``HyperRLParallelEnv``."""
        for name, action in actions.items():
            done = bool(terminations[name]), bool(truncations[name])
            step = Transition(observations[name], int(action), float(rewards[name]), next_observations[name], *done,
                              infos.get(name, {}))  # fmt: skip
            self.learners[name].observe(step)

    def config(self) -> dict[str, Any]:
        """Settings, with one learner's (they share them)."""
        inner = self.learners[self.names[0]].config()
        inner.pop("name", None)
        inner.pop("seed", None)
        return {**super().config(), "factored_over": self.names, **inner}
