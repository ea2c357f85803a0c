"""The one registry of hyper-agent names, and the one factory, :func:`make_agent`.

Every name has a single-run form (``act(obs, info)``, ``observe(transition)``), a batched population form
(``act`` and ``observe`` on the batch), or both. On a population (``gym.make_vec``, members = seeds) an agent
without a batched form runs through the per-member adapter (:class:`~hypergym.agents.population.PerMemberAgent`):
member ``i``'s agent is the single-run agent of member ``i``'s seed, so a population of EPGT is the EPGT runs
of its seeds, batched. The EPGT profile (``paper`` or ``code``) is resolved here, once, from the env's.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym

from hypergym.agents.base import PopulationAgent, check_agent
from hypergym.agents.dqn import DQNAgent
from hypergym.agents.episodic import EpisodicAgent
from hypergym.agents.factored import FactoredEpisodicAgent
from hypergym.agents.gem import GEMAgent, PopulationGEMAgent
from hypergym.agents.hoof import HOOFAgent
from hypergym.agents.pb2 import PB2Agent
from hypergym.agents.pbt import PBTAgent
from hypergym.agents.population import (
    PerMemberAgent,
    PopulationEpisodicAgent,
)
from hypergym.agents.simple import RandomAgent, StaticAgent
from hypergym.envs.profiles import agent_profile, check_profile
from hypergym.seeding import member_seeds

__all__ = ["AGENTS", "AgentEntry", "agent_arguments", "load_agent_class", "make_agent"]


@dataclass(frozen=True)
class AgentEntry:
    """What hypergym knows of one agent name."""

    single: Callable[..., Any] | None
    """Builds the single-run form, ``(env, seed=..., **kwargs)`` (``None``: a population method only)."""
    batched: Callable[..., Any] | None = None
    """Builds the batched form, ``(venv, seeds, **kwargs)`` (``None``: the per-member adapter, or none)."""
    no_population: str = ""
    """Why the agent cannot run on a population (empty: it can)."""

    @property
    def cls(self) -> Any:
        """The class whose arguments are the agent's (``--agent-set`` keys)."""
        build = self.single or self.batched
        while isinstance(build, partial):
            if build.func in (_batched, _user_single):
                return build.args[0]
            build = build.func
        return build


def _random(env: Any, seed: int | None = None) -> RandomAgent:
    return RandomAgent(env.action_space, seed=seed)


def _batched(cls: type, venv: Any, seeds: list[int | None], **kwargs: Any) -> Any:
    """A population agent of one population seed (PBT, PB2): the first member's."""
    return cls(venv, seed=seeds[0], **kwargs)


_HOOF_WHY = (
    "'hoof' scores candidate updates of one learner and has no population form: run it on single runs "
    "(gym.make; hypergym compare runs it seed by seed)"
)

#: Every agent name hypergym knows, with its forms.
AGENTS: dict[str, AgentEntry] = {
    "episodic": AgentEntry(EpisodicAgent, PopulationEpisodicAgent),
    "episodic-factored": AgentEntry(FactoredEpisodicAgent),
    "dqn": AgentEntry(DQNAgent),
    "gem": AgentEntry(GEMAgent, PopulationGEMAgent),
    "hoof": AgentEntry(HOOFAgent, no_population=_HOOF_WHY),
    "random": AgentEntry(_random),  # per member: each member's RandomAgent draws from its own seed
    "static": AgentEntry(StaticAgent),
    "static-min": AgentEntry(partial(StaticAgent, action="min")),
    "static-max": AgentEntry(partial(StaticAgent, action="max")),
    "pbt": AgentEntry(None, partial(_batched, PBTAgent)),
    "pb2": AgentEntry(None, partial(_batched, PB2Agent)),
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


def _user_single(cls: type, env: Any, seed: int | None = None, **kwargs: Any) -> Any:
    """A user's class built as ``cls(env, seed=seed, **kwargs)`` (``env`` and ``seed`` if it takes them)."""
    params = inspect.signature(cls).parameters
    args = [env] if any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params.values()) else []
    extra = {"seed": seed} if "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()) else {}
    agent = cls(*args, **extra, **kwargs)
    check_agent(agent)
    return agent


def entry(name: str) -> AgentEntry:
    """The registry entry of ``name`` (a user's ``package.module:ClassName`` included).

    Raises:
        ValueError: On an unknown name, listing the valid ones, or a class that cannot be imported.
    """
    if ":" in name:
        cls = load_agent_class(name)
        if issubclass(cls, PopulationAgent):
            return AgentEntry(None, partial(_batched, cls))
        return AgentEntry(partial(_user_single, cls))
    if name not in AGENTS:
        raise ValueError(
            f"unknown agent {name!r}; choose from {sorted(AGENTS)}, or name a class as package.module:Class"
        )
    return AGENTS[name]


def make_agent(
    name: str,
    env: gym.Env | gym.vector.VectorEnv,
    seed: int | Sequence[int] | None = None,
    profile: str | None = None,
    **kwargs: Any,
) -> Any:
    """Build the agent named ``name`` for ``env``: a single run's agent, or a population's.

    On a single run (``gym.make``) the single-run form, seeded ``seed``. On a population
    (``gym.make_vec(id, num_envs=N)``, members = seeds) the batched form where the agent has one, else one
    single-run agent per member through :class:`~hypergym.agents.population.PerMemberAgent`, member ``i``'s
    agent seeded with the member's seed (``seed + i``, or ``seed[i]`` for a list), as the single run of that
    seed is. A name ``"package.module:ClassName"`` is a user's class, built as ``ClassName(env, seed=seed,
    **kwargs)`` (``env`` and ``seed`` only if its constructor takes them); it needs ``act`` and ``observe``
    (a :class:`~hypergym.agents.base.PopulationAgent` subclass is a batched form).

    ``profile`` (``"paper"`` or ``"code"``; default: the env's, ``gym.make(id, profile=...)``) gives the
    built-in agents the EPGT profile's arguments (:func:`hypergym.envs.profiles.agent_profile`: the
    released code's epsilon schedule for ``episodic`` and ``dqn``, its memory for ``episodic``); ``kwargs``
    override them.

    Raises:
        ValueError: On an unknown name (the message lists the valid ones) or profile, a class that cannot be
            imported, a population method on a single run, or a single-run-only agent on a population.
        TypeError: If a user's class does not make a hyper-agent.
    """
    found = entry(name)
    population = isinstance(env, gym.vector.VectorEnv)
    n = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 1
    if profile is None:
        profile = getattr(getattr(env.unwrapped, "settings", None), "profile", "paper")
    view = PerMemberAgent.member_view(env) if population else env
    kwargs = {**agent_profile(check_profile(profile), name, view), **kwargs}
    if not population:
        if found.single is None:
            raise ValueError(
                f"{name!r} is a population method (its members are the runs): build it on a population, "
                f"make_agent({name!r}, gym.make_vec(id, num_envs=N))"
            )
        if not isinstance(seed, int | None):
            raise ValueError(f"a single run's agent takes one seed (int or None), got {seed!r}")
        return found.single(env, seed=seed, **kwargs)
    if found.no_population:
        raise ValueError(found.no_population)
    seeds = member_seeds(seed, n)
    if found.batched is not None:
        return found.batched(env, seeds, **kwargs)
    assert found.single is not None
    return PerMemberAgent(env, [found.single(view, seed=s, **kwargs) for s in seeds])


def agent_arguments(name: str) -> list[str]:
    """The keyword arguments (``--agent-set`` keys) of the agent named ``name``."""
    cls = entry(name).cls
    skip = {"self", "env", "venv", "seed", "seeds", "action_space"}
    params = inspect.signature(cls).parameters.values()
    return [p.name for p in params if p.name not in skip and p.kind != p.VAR_KEYWORD]
