"""hypergym hyper-agents: EPGT episodic control, DQN, GEM, random and static, behind one small protocol."""

from __future__ import annotations

from hypergym.agents.base import (
    EpsilonGreedyAgent,
    HyperAgent,
    HyperAgentProtocol,
    Transition,
)
from hypergym.agents.dqn import DQNAgent
from hypergym.agents.episodic import EpisodicAgent, paper_capacity
from hypergym.agents.factored import FactoredEpisodicAgent
from hypergym.agents.gem import GEMAgent
from hypergym.agents.hoof import HOOFAgent
from hypergym.agents.memory import AnnoyIndex, EpisodicMemory, ExactIndex, NeighborIndex
from hypergym.agents.registry import AGENTS, AgentEntry, agent_arguments, load_agent_class, make_agent
from hypergym.agents.simple import RandomAgent, StaticAgent

__all__ = [
    "AGENTS",
    "AgentEntry",
    "AnnoyIndex",
    "DQNAgent",
    "EpisodicAgent",
    "EpisodicMemory",
    "EpsilonGreedyAgent",
    "ExactIndex",
    "FactoredEpisodicAgent",
    "GEMAgent",
    "HOOFAgent",
    "HyperAgent",
    "HyperAgentProtocol",
    "NeighborIndex",
    "RandomAgent",
    "StaticAgent",
    "Transition",
    "agent_arguments",
    "load_agent_class",
    "make_agent",
    "paper_capacity",
]
