"""The hyper-agent protocol (:class:`HyperAgentProtocol`) and the base classes of the built-in agents.

Any object with ``act(obs, info)`` and ``observe(transition)`` can be driven by :func:`hypergym.run`
(``config``, ``save``, ``load`` and ``step_record`` are optional); any Gymnasium agent (SB3, CleanRL,
RLlib) can also use a ``HyperRLEnv`` directly, without this protocol.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = [
    "EpsilonGreedyAgent",
    "HyperAgent",
    "HyperAgentProtocol",
    "PopulationAgent",
    "Transition",
    "agent_config",
    "check_agent",
    "env_schedule_length",
]


class Transition(NamedTuple):
    """One hyper-step, as the agent observes it after ``env.step``."""

    obs: Any
    """Observation the action was chosen at."""
    action: Any
    """The hyper-action taken."""
    reward: float
    """Hyper-reward of the step."""
    next_obs: Any
    """Observation after the step."""
    terminated: bool
    """The learning episode ended."""
    truncated: bool
    """The learning episode was cut short (inner budget)."""
    info: dict[str, Any]
    """The env's info of the step."""


@runtime_checkable
class HyperAgentProtocol(Protocol):
    """What :func:`hypergym.run` needs of a single-run hyper-agent: two methods.

    Required:
        ``act(obs, info) -> action``: the hyper-action for the hyper-state ``obs``; ``info`` is the env's
        latest info (after ``reset``, or the last ``step``: ``env_steps``, ``hyperparams`` in force, ...).

        ``observe(transition) -> None``: called after every ``env.step`` with the :class:`Transition`.

    Optional (the runner's default when missing):
        ``config() -> dict``: settings written to ``config.json`` (default ``{"name": <class name>}``).

        ``step_record() -> dict``: numbers about the choice just made, written as ``agent_<key>`` columns of
        ``steps.csv`` and ``agent/<key>`` TensorBoard scalars (default: none).

        ``save(path)`` / ``load(path)``: the agent's learned state, for the user (the runner's checkpoints
        pickle the whole agent and need neither).

    A population agent has the same two methods on the batch: ``act(obs [N, ...], info) -> [N]`` actions and
    ``observe(obs, actions, rewards, next_obs, terminated, truncated, info)`` (:class:`PopulationAgent`).
    """

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The hyper-action for ``obs``."""
        ...

    def observe(self, transition: Transition) -> None:
        """Learn from one hyper-step."""
        ...


def agent_config(agent: Any) -> dict[str, Any]:
    """An agent's settings for ``config.json``: its ``config()`` if it has one, else its name.

    The runner needs only ``act`` and ``observe``; ``config``, ``save``, ``load`` and ``step_record`` are
    optional (:class:`HyperAgentProtocol`).
    """
    config = getattr(agent, "config", None)
    if callable(config):
        return dict(config())
    return {"name": getattr(agent, "name", type(agent).__name__)}


def _takes(method: Any, n_args: int) -> bool:
    """Whether ``method`` can be called with ``n_args`` positional arguments."""
    try:
        inspect.signature(method).bind(*([None] * n_args))
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): assume it does
        return True
    return True


def check_agent(agent: Any, population: bool = False) -> None:
    """Raise a ``TypeError`` naming what a hyper-agent lacks (:class:`HyperAgentProtocol`).

    Args:
        agent: The agent.
        population: Check a population agent's ``observe`` (seven batched arguments) instead of a single
            run's (one :class:`Transition`).
    """
    required = {"act": 2, "observe": 7 if population else 1}
    signature = {"act": "act(obs, info)", "observe": "observe(obs, actions, rewards, next_obs, terminated, "
                 "truncated, info)" if population else "observe(transition)"}  # fmt: skip
    missing = [name for name in required if not callable(getattr(agent, name, None))]
    wrong = [name for name in required if name not in missing and not _takes(getattr(agent, name), required[name])]
    if missing or wrong:
        what = [f"lacks {signature[n]}" for n in missing] + [f"{n} must be {signature[n]}" for n in wrong]
        raise TypeError(
            f"{type(agent).__name__} is not a {'population ' if population else ''}hyper-agent: {'; '.join(what)} "
            "(required: act and observe; optional: config() -> dict, step_record() -> dict, save(path), "
            "load(path); see hypergym.agents.HyperAgentProtocol)"
        )


def check_single_env(env: Any, agent: str) -> None:
    """Refuse a population where a single-run agent needs one run.

    Raises:
        ValueError: If ``env`` is a vector env, saying what to use instead.
    """
    if isinstance(env, gym.vector.VectorEnv):
        raise ValueError(
            f"{agent} is a single-run agent, but got a population ({type(env).__name__} of {env.num_envs} "
            "members): give it gym.make(id), or build it with make_agent(name, venv), which runs one per member"
        )


def env_schedule_length(env: gym.Env) -> int | None:
    """The inner env-step budget of a ``HyperRLEnv`` (``None`` for any other env)."""
    return getattr(env.unwrapped, "total_env_steps", None)


class HyperAgent(ABC):
    """Base of the hyper-agents.

    Args:
        action_space: The env's action space.
        seed: Seed of the agent's own randomness.
    """

    #: Name used by the runner and the command line.
    name: str = "agent"

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        self.action_space = action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The hyper-action for observation ``obs`` (``info`` is the env's latest info)."""

    def observe(self, transition: Transition) -> None:  # noqa: B027 - optional hook, no-op by default
        """Learn from one hyper-step (called after every ``env.step``)."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings of the agent (written to the run directory)."""
        return {"name": self.name, "seed": self.seed}

    def save(self, path: str | Path) -> None:
        """Write the agent's settings (and learned state, for learning agents) under ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "agent.json").write_text(json.dumps(self.config(), indent=2))

    def load(self, path: str | Path) -> None:  # noqa: B027 - stateless agents have nothing to load
        """Restore learned state written by :meth:`save`."""


class EpsilonGreedyAgent(HyperAgent):
    """Base of the learning hyper-agents: epsilon falls linearly from 1 to ``floor`` over part of the run.

    ``epsilon = floor + (1 - floor) * max(0, 1 - progress / decay_fraction)``. The paper's text (B.2) is
    ``decay_fraction=1, floor=0``: 1 to 0 over the whole run (the default). The authors' released code
    decays to 0.01 over the first half and stays there: ``decay_fraction=0.5, floor=0.01``.

    On a ``HyperRLEnv`` the progress is the fraction of the inner env-step budget spent
    (``info["env_steps"] / total_env_steps``); on any other env it runs over ``total_steps`` hyper-steps
    (counted in ``self.steps``, which subclasses advance in ``observe``).

    Args:
        env: The env.
        total_steps: Schedule length in hyper-steps, for envs without an env-step budget.
        seed: Seed of the agent's own randomness.
        decay_fraction: Fraction of the run over which epsilon falls, in (0, 1].
        floor: Epsilon after the decay, in [0, 1).

    Raises:
        ValueError: If the env has no budget and ``total_steps`` is not given, or on a schedule outside
            those ranges.
    """

    def __init__(
        self,
        env: gym.Env,
        total_steps: int | None = None,
        seed: int | None = None,
        decay_fraction: float = 1.0,
        floor: float = 0.0,
    ) -> None:
        check_single_env(env, type(self).__name__)
        if not 0 < decay_fraction <= 1:
            raise ValueError(f"decay_fraction must lie in (0, 1], got {decay_fraction!r}")
        if not 0 <= floor < 1:
            raise ValueError(f"floor must lie in [0, 1), got {floor!r}")
        self.decay_fraction, self.floor = float(decay_fraction), float(floor)
        super().__init__(env.action_space, seed)
        self.budget = env_schedule_length(env)
        if self.budget is None and total_steps is None:
            raise ValueError("on an env without an env-step budget, pass total_steps (the epsilon schedule length)")
        self.total_steps = total_steps
        self.steps = 0
        self.last_epsilon = 1.0

    def epsilon(self, info: dict[str, Any]) -> float:
        """The exploration rate now: 1 at the start of the run, ``floor`` from ``decay_fraction`` of it on."""
        if self.budget is not None and "env_steps" in info:
            progress = info["env_steps"] / self.budget
        else:
            progress = self.steps / max(1, self.total_steps or 1)
        eps = self.floor + (1.0 - self.floor) * float(np.clip(1.0 - progress / self.decay_fraction, 0.0, 1.0))
        self.last_epsilon = eps
        return eps

    def step_record(self) -> dict[str, Any]:
        """The exploration rate of the last choice (``agent_epsilon`` in ``steps.csv``)."""
        return {"epsilon": self.last_epsilon}

    def config(self) -> dict[str, Any]:
        """Settings, with the epsilon schedule."""
        return {**super().config(), "decay_fraction": self.decay_fraction, "floor": self.floor}


class PopulationAgent:
    """Base of the population hyper-agents.

    Where members have their own work per rollout (PPO's ``batch_size`` and ``n_epochs`` in the grid), a
    member may wait for the others: ``info["waiting"]`` (present while any member waits) marks the members
    whose step was no transition and whose next action is ignored (see
    :class:`~hypergym.envs.HyperRLVectorEnv`). An agent that learns from transitions skips them.

    Args:
        venv: The vector env (its ``single_action_space`` and ``num_envs``).
        seed: Seed of the agent's own randomness.
    """

    name = "agent"

    def __init__(self, venv: gym.vector.VectorEnv, seed: int | None = None) -> None:
        if not isinstance(venv, gym.vector.VectorEnv):
            raise ValueError(
                f"{type(self).__name__} is a population agent, but got a single env ({venv!r}): make the population "
                "with gym.make_vec(id, num_envs=N), or use make_agent(name, env) for a single run"
            )
        self.num_envs = venv.num_envs
        self.single_action_space = venv.single_action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """One action per member."""
        raise NotImplementedError

    def observe(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """Learn from one batched step (default: nothing)."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        return {"name": self.name, "seed": self.seed, "population": self.num_envs}
