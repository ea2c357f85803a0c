"""hypergym hyper-agents: EPGT episodic control, DQN, random and static, behind one small protocol."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

import gymnasium as gym

from hypergym.agents.base import (
    POPULATION_AGENT_NAMES,
    EpsilonGreedyAgent,
    HyperAgent,
    HyperAgentProtocol,
    Transition,
    check_agent,
    check_single_env,
)
from hypergym.agents.dqn import DQNAgent
from hypergym.agents.episodic import EpisodicAgent, paper_capacity
from hypergym.agents.factored import FactoredEpisodicAgent
from hypergym.agents.hoof import HOOFAgent
from hypergym.agents.memory import AnnoyIndex, EpisodicMemory, ExactIndex, NeighborIndex
from hypergym.agents.simple import RandomAgent, StaticAgent
from hypergym.envs.profiles import agent_profile, check_profile

__all__ = [
    "AGENTS",
    "AnnoyIndex",
    "DQNAgent",
    "EpisodicAgent",
    "EpisodicMemory",
    "EpsilonGreedyAgent",
    "ExactIndex",
    "FactoredEpisodicAgent",
    "HOOFAgent",
    "HyperAgent",
    "HyperAgentProtocol",
    "NeighborIndex",
    "RandomAgent",
    "StaticAgent",
    "Transition",
    "load_agent_class",
    "make_agent",
    "paper_capacity",
]

#: Agent names (as the runner and the command line know them) and their classes.
AGENTS: dict[str, type[HyperAgent]] = {
    "episodic": EpisodicAgent,
    "episodic-factored": FactoredEpisodicAgent,
    "dqn": DQNAgent,
    "hoof": HOOFAgent,
    "random": RandomAgent,
    "static": StaticAgent,
}


def load_agent_class(reference: str) -> type:
    """The class ``"package.module:ClassName"`` names (a user's hyper-agent), imported.

    Modules are looked up on ``sys.path`` and then in the current directory (the ``hypergym`` command's
    own ``sys.path`` does not hold it).

    Raises:
        ValueError: If the reference is malformed or cannot be imported, saying why.
    """
    module_name, _, class_name = reference.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"an agent class is named 'package.module:ClassName', got {reference!r}")
    if os.getcwd() not in sys.path:  # as ``python -m`` would: the user's module beside where the command runs
        sys.path.append(os.getcwd())
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import agent class {reference!r}: {err}") from err
    if not isinstance(cls, type):
        raise ValueError(f"{reference!r} is not a class")
    return cls


def make_agent(
    name: str, env: gym.Env, seed: int | None = None, profile: str | None = None, **kwargs: Any
) -> HyperAgent:
    """Build the agent named ``name`` for ``env``.

    ``"static-min"`` and ``"static-max"`` are the fixed-minimum and fixed-maximum baselines. A name
    ``"package.module:ClassName"`` is a user's class, built as ``ClassName(env, seed=seed, **kwargs)``
    (``env`` and ``seed`` only if its constructor takes them); it needs ``act`` and ``observe``.

    ``profile`` (``"paper"`` or ``"code"``; default: the env's, ``gym.make(id, profile=...)``) gives the
    built-in agents the EPGT profile's arguments (:func:`hypergym.envs.profiles.agent_profile`: the
    released code's epsilon schedule for ``episodic`` and ``dqn``, its memory for ``episodic``); ``kwargs``
    override them.

    Raises:
        ValueError: On an unknown name (the message lists the valid ones) or a class that cannot be imported.
        TypeError: If a user's class does not make a hyper-agent.
    """
    check_single_env(env, f"agent {name!r}")
    if profile is None:
        profile = getattr(getattr(env.unwrapped, "settings", None), "profile", "paper")
    kwargs = {**agent_profile(check_profile(profile), name, env), **kwargs}
    if ":" in name:
        cls = load_agent_class(name)
        params = inspect.signature(cls).parameters
        args = [env] if any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params.values()) else []
        extra = {"seed": seed} if "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()) else {}
        agent = cls(*args, **extra, **kwargs)
        check_agent(agent)
        return agent  # type: ignore[no-any-return]
    if name in ("static-min", "static-max"):
        return StaticAgent(env, action=name.split("-")[1], seed=seed, **kwargs)
    if name not in AGENTS:
        if name in POPULATION_AGENT_NAMES:
            raise ValueError(
                f"{name!r} is a population agent (its members are the runs): build it with "
                f"make_population_agent({name!r}, gym.make_vec(id, num_envs=N)) from hypergym.agents.population"
            )
        raise ValueError(f"unknown agent {name!r}; choose from {[*sorted(AGENTS), 'static-max', 'static-min']}")
    if name == "random":
        return RandomAgent(env.action_space, seed=seed, **kwargs)
    return AGENTS[name](env, seed=seed, **kwargs)  # type: ignore[call-arg]
