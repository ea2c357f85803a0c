"""``HyperRLParallelEnv``: the Hyper-RL MDP as a PettingZoo ``ParallelEnv``, one agent per hyperparameter.

The joint action space of :class:`~hypergym.envs.HyperRLEnv` is the product of the grid sizes (4
hyperparameters x 10 values = 10,000 actions); as agents, one per hyperparameter, it is their sum. This
env runs the same inner run with the same semantics, so for the same seed and the same (decoded)
actions it gives the same observations and rewards as the joint env:

- ``possible_agents``: the hyperparameter names, in the grid's order; agent ``name`` acts in
  ``Discrete(B_name)`` (an index into that hyperparameter's values).
- Every agent observes the hyper-state (the joint env's observation); ``state()`` returns it too.
- One shared reward (the hyper-reward); all agents end together at the end of the learning episode
  (``agents`` is then empty) and ``reset()`` starts the next one, as the joint env's ``reset`` does.
- Spaces are built once (``observation_space(a) is observation_space(a)``).

``hypergym.parallel_env(id, **kwargs)`` makes one from a registered id; PettingZoo's
``parallel_to_aec`` (``hypergym.aec_env``) gives the AEC form. Requires ``pip install "hypergym[pettingzoo]"``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

try:
    from pettingzoo import ParallelEnv
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError('the PettingZoo env needs pettingzoo: pip install "hypergym[pettingzoo]"') from err

from hypergym.envs.hyperrl_env import HyperRLEnv

__all__ = ["HyperRLParallelEnv", "aec_env", "parallel_env"]


class HyperRLParallelEnv(ParallelEnv):
    """One agent per hyperparameter over one inner run (see the module docstring).

    Args:
        env_id: A registered ``HyperRL-*`` id (its preset, then ``kwargs`` as overrides), or ``None`` to
            build ``HyperRLEnv(**kwargs)`` directly.
        **kwargs: :class:`~hypergym.envs.HyperRLEnv` arguments (``action_mode`` is this env's business).

    Raises:
        ValueError: On an unknown id or invalid ``HyperRLEnv`` arguments.
    """

    metadata: dict[str, Any] = {"name": "hyperrl_parallel_v0", "render_modes": []}  # noqa: RUF012

    def __init__(self, env_id: str | None = None, **kwargs: Any) -> None:
        if "action_mode" in kwargs:
            raise ValueError("action_mode is fixed in the parallel env: each agent picks one hyperparameter's index")
        kwargs["action_mode"] = "multi_discrete"
        if env_id is not None:
            if env_id not in gym.registry or not env_id.startswith("HyperRL-"):
                raise ValueError(f"unknown id {env_id!r}; use a registered HyperRL-* id (hypergym list)")
            inner = gym.make(env_id, **kwargs).unwrapped
        else:
            inner = HyperRLEnv(**kwargs)
        assert isinstance(inner, HyperRLEnv)
        self.hyper_env: HyperRLEnv = inner
        """The joint env this one runs (its learner, encoder and space)."""
        self.space = inner.space
        self.possible_agents = list(self.space.names)
        self.agents: list[str] = []
        self._action_spaces = {
            name: gym.spaces.Discrete(int(n)) for name, n in zip(self.possible_agents, self.space.nvec, strict=True)
        }
        self._observation_space = inner.observation_space
        self.max_cycles: int | None = None
        """Set by PettingZoo's API test; unused (episodes end with the learning episode)."""
        self._obs: np.ndarray | None = None

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> gym.Space:
        """The hyper-state's space (the same object for every agent and call)."""
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> gym.Space:
        """``Discrete(B)``: an index into the agent's hyperparameter values (the same object on every call)."""
        self._check_agent(agent)
        return self._action_spaces[agent]

    def _check_agent(self, agent: str) -> None:
        if agent not in self._action_spaces:
            raise KeyError(f"unknown agent {agent!r}; the agents are {self.possible_agents}")

    # ------------------------------------------------------------------ API
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start a run or the next learning episode, as :meth:`HyperRLEnv.reset`.

        Options other than ``restart`` are not the joint env's: they are left out with a warning.
        """
        options = dict(options or {})
        ignored = sorted(set(options) - {"restart"})
        if ignored:
            warnings.warn(f"reset options {ignored} are not used; valid are ['restart']", UserWarning, stacklevel=2)
        obs, info = self.hyper_env.reset(seed=seed, options={k: options[k] for k in options if k == "restart"})
        self.agents = list(self.possible_agents)
        self._obs = np.array(obs, copy=True)
        return {a: self._obs for a in self.agents}, {a: info for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """One policy update with each agent's chosen value.

        Raises:
            RuntimeError: If no learning episode is running (``reset`` first).
            ValueError: If an agent's action is missing, unknown or outside its space.
            TypeError: If an agent's action is not an integer (``1.5``, ``"1"``, ``None``, an array).
        """
        if not self.agents:
            raise RuntimeError("no learning episode is running: call reset() first")
        missing = [a for a in self.agents if a not in actions]
        unknown = sorted(set(actions) - set(self.agents))
        if missing or unknown:
            raise ValueError(f"actions needed for {self.agents}; missing {missing}, unknown {unknown}")
        for agent in self.possible_agents:
            # As the joint env: an integer of the agent's Discrete space, nothing rounded or parsed.
            value = np.asarray(actions[agent]) if actions[agent] is not None else np.asarray(None, dtype=object)
            if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer):
                raise TypeError(
                    f"action {actions[agent]!r} of agent {agent!r} is not an integer (its space is "
                    f"{self.action_space(agent)})"
                )
            if not self.action_space(agent).contains(np.int64(value)):
                raise ValueError(f"action {int(value)} of agent {agent!r} is outside {self.action_space(agent)}")
        idx = np.array([int(actions[a]) for a in self.possible_agents], dtype=np.int64)
        obs, reward, terminated, truncated, info = self.hyper_env.step(idx)
        self._obs = np.array(obs, copy=True)
        agents = self.agents
        out = (
            {a: self._obs for a in agents},
            {a: float(reward) for a in agents},
            {a: bool(terminated) for a in agents},
            {a: bool(truncated) for a in agents},
            {a: info for a in agents},
        )
        if terminated or truncated:
            self.agents = []
        return out

    def state(self) -> np.ndarray:
        """The hyper-state (what every agent observes)."""
        if self._obs is None:
            raise RuntimeError("no state before the first reset()")
        return self._obs.copy()

    def close(self) -> None:
        """Close the inner run."""
        self.hyper_env.close()


def parallel_env(env_id: str, **kwargs: Any) -> HyperRLParallelEnv:
    """:class:`HyperRLParallelEnv` for a registered id (its preset, with ``kwargs`` as overrides)."""
    return HyperRLParallelEnv(env_id, **kwargs)


def aec_env(env_id: str, **kwargs: Any) -> Any:
    """The AEC form of :func:`parallel_env`, through PettingZoo's ``parallel_to_aec``."""
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(parallel_env(env_id, **kwargs))
