"""hypergym hyper-agents: EPGT episodic control, DQN, random and static, behind one small protocol."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from hypergym.agents.base import EpsilonGreedyAgent, HyperAgent, Transition
from hypergym.agents.dqn import DQNAgent
from hypergym.agents.episodic import EpisodicAgent, paper_capacity
from hypergym.agents.factored import FactoredEpisodicAgent
from hypergym.agents.hoof import HOOFAgent
from hypergym.agents.memory import AnnoyIndex, EpisodicMemory, ExactIndex, NeighborIndex
from hypergym.agents.simple import RandomAgent, StaticAgent

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
    "NeighborIndex",
    "RandomAgent",
    "StaticAgent",
    "Transition",
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


def make_agent(name: str, env: gym.Env, seed: int | None = None, **kwargs: Any) -> HyperAgent:
    """Build the agent named ``name`` for ``env``.

    ``"static-min"`` and ``"static-max"`` are the fixed-minimum and fixed-maximum baselines.

    Raises:
        ValueError: On an unknown name (the message lists the valid ones).
    """
    if name in ("static-min", "static-max"):
        return StaticAgent(env, action=name.split("-")[1], seed=seed, **kwargs)
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose from {[*sorted(AGENTS), 'static-max', 'static-min']}")
    if name == "random":
        return RandomAgent(env.action_space, seed=seed, **kwargs)
    return AGENTS[name](env, seed=seed, **kwargs)  # type: ignore[call-arg]
