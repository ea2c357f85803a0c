"""Hyper-agents for a population (:class:`~hypergym.envs.HyperRLVectorEnv`): one action per member per step.

``act(obs [N, ...], info) -> actions [N]`` and ``observe(obs, actions, rewards, next_obs, terminated,
truncated, info)`` on batches, following Gymnasium's vector conventions (``info`` a dict of per-member
arrays). Static and random act on the whole batch at once. EPGT keeps the single-run agent's exact
rules per member (:class:`~hypergym.agents.EpisodicAgent`: epsilon schedule, uniform writing, per-action
memory); with ``shared_memory=True`` all members read and write one memory, so the population pools
its experience (a member reads what the others learned), which no single-run EPGT can do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import HyperAgent, PopulationAgent, Transition
from hypergym.agents.episodic import MAX_CAPACITY, EpisodicAgent, paper_capacity
from hypergym.agents.pb2 import PB2Agent
from hypergym.agents.pbt import PBTAgent
from hypergym.agents.simple import static_action, uniform_actions
from hypergym.envs.profiles import agent_profile, check_profile
from hypergym.envs.runs import member_info

__all__ = [
    "POPULATION_AGENTS",
    "PerMemberAgent",
    "PopulationAgent",
    "PopulationEpisodicAgent",
    "PopulationRandomAgent",
    "PopulationStaticAgent",
    "make_population_agent",
]


class _MemberView:
    """What a single-run agent reads of its env, for one member of a vector env."""

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.action_space = venv.single_action_space
        self.observation_space = venv.single_observation_space
        self.unwrapped = venv


class PopulationStaticAgent(PopulationAgent):
    """Every member always takes the same action (default: the preset's default hyperparameters).

    Args:
        venv: A :class:`~hypergym.envs.HyperRLVectorEnv`.
        action: ``"default"``, ``"min"``, ``"max"`` or a fixed action of the single action space.
        seed: Unused (static).
    """

    name = "static"

    def __init__(self, venv: gym.vector.VectorEnv, action: Any = "default", seed: int | None = None) -> None:
        super().__init__(venv, seed)
        self.actions = np.stack([np.asarray(static_action(venv, action), dtype=np.int64)] * self.num_envs)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The fixed action for every member."""
        return self.actions.copy()


class PopulationRandomAgent(PopulationAgent):
    """Uniformly random actions for every member, drawn in one call (the paper's RND baseline)."""

    name = "random"

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Uniform actions."""
        return uniform_actions(self.single_action_space, self.rng, self.num_envs)


class PerMemberAgent(PopulationAgent):
    """One single-run agent per member: the adapter that runs any single-run hyper-agent on a population.

    Member ``i``'s agent sees member ``i``'s observation, info and transitions only, as in a run of its own
    (``final_obs`` for the transition that ends a learning episode).

    Args:
        venv: A :class:`~hypergym.envs.HyperRLVectorEnv`.
        agents: One single-run agent per member (``act(obs, info)``, ``observe(transition)``).
        seed: The population's seed (recorded; the members' agents have their own).
    """

    def __init__(self, venv: gym.vector.VectorEnv, agents: Sequence[HyperAgent], seed: int | None = None) -> None:
        super().__init__(venv, seed)
        if len(agents) != self.num_envs:
            raise ValueError(f"{len(agents)} agents for a population of {self.num_envs}")
        self.members = list(agents)
        self.name = getattr(agents[0], "name", type(agents[0]).__name__)

    @staticmethod
    def member_view(venv: gym.vector.VectorEnv) -> Any:
        """What a single-run agent reads of its env (spaces, and the settings through ``unwrapped``)."""
        return _MemberView(venv)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Each member's agent's action."""
        return np.array([a.act(obs[i], member_info(info, i)) for i, a in enumerate(self.members)], dtype=np.int64)

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
        """Each member's transition to its agent (final observations for ended episodes)."""
        final = info.get("final_obs")
        for i, agent in enumerate(self.members):
            nxt = final[i] if final is not None and info.get("_final_obs", np.zeros(0))[i] else next_obs[i]
            t = Transition(
                obs[i], int(actions[i]), float(rewards[i]), nxt, bool(terminated[i]), bool(truncated[i]),
                member_info(info, i),
            )  # fmt: skip
            agent.observe(t)

    def config(self) -> dict[str, Any]:
        """Settings, with the first member agent's."""
        return {**super().config(), **self.members[0].config()}


class PopulationEpisodicAgent(PerMemberAgent):
    """EPGT for each member; one memory per member, or one shared by all (``shared_memory=True``).

    Args:
        venv: A :class:`~hypergym.envs.HyperRLVectorEnv` (``action_mode="discrete"``).
        shared_memory: All members read and write one memory.
        capacity: Memory size (default: the paper's rule per member; shared: N times it, at most 10,000).
        seed: Seed; member ``i``'s exploration is seeded from ``(seed, i)``.
        **kwargs: :class:`~hypergym.agents.EpisodicAgent` arguments (``k``, ``beta``, ``write_every``,
            ``index``, ``index_kwargs``).
    """

    name = "episodic"

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        shared_memory: bool = False,
        capacity: int | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        view = self.member_view(venv)
        if capacity is None and shared_memory:
            per_member = paper_capacity(view, kwargs.get("write_every", 10)) or MAX_CAPACITY  # type: ignore[arg-type]
            capacity = min(MAX_CAPACITY, per_member * venv.num_envs)
        seeds = np.random.SeedSequence(seed).spawn(venv.num_envs)
        members = [
            EpisodicAgent(view, capacity=capacity, seed=int(s.generate_state(1)[0]), **kwargs)  # type: ignore[arg-type]
            for s in seeds
        ]
        super().__init__(venv, members, seed)
        self.shared_memory = shared_memory
        if shared_memory:
            for agent in self.members[1:]:
                agent.memory = self.members[0].memory  # type: ignore[attr-defined]

    def config(self) -> dict[str, Any]:
        """Settings, with the memory's."""
        return {**super().config(), "shared_memory": self.shared_memory}


#: Population agents by name.
POPULATION_AGENTS: dict[str, type[PopulationAgent]] = {
    "episodic": PopulationEpisodicAgent,
    "pb2": PB2Agent,
    "pbt": PBTAgent,
    "random": PopulationRandomAgent,
    "static": PopulationStaticAgent,
}


def make_population_agent(
    name: str, venv: gym.vector.VectorEnv, seed: int | None = None, profile: str | None = None, **kwargs: Any
) -> PopulationAgent:
    """Build the population agent named ``name`` (``static-min`` / ``static-max`` included).

    ``profile`` (default: the population's, ``gym.make_vec(id, N, profile=...)``) gives ``episodic`` the EPGT
    profile's arguments, as :func:`~hypergym.agents.make_agent` does; ``kwargs`` override them.

    Raises:
        ValueError: On an unknown name (the message lists the valid ones) or profile.
    """
    if profile is None:
        profile = getattr(getattr(venv.unwrapped, "settings", None), "profile", "paper")
    if name == "episodic":
        kwargs = {**agent_profile(check_profile(profile), name, PerMemberAgent.member_view(venv)), **kwargs}
    else:
        check_profile(profile)
    if name in ("static-min", "static-max"):
        return PopulationStaticAgent(venv, action=name.split("-")[1], seed=seed)
    if name not in POPULATION_AGENTS:
        valid = [*sorted(POPULATION_AGENTS), "static-max", "static-min"]
        if name == "hoof":
            raise ValueError("'hoof' scores candidate updates of one learner and has no population form: run it on "
                             "single runs (gym.make; hypergym compare without --population)")  # fmt: skip
        if name in ("dqn", "episodic-factored"):
            raise ValueError(
                f"{name!r} has no population form: run it per member with PerMemberAgent(venv, "
                f"[make_agent({name!r}, PerMemberAgent.member_view(venv), seed=s) for s in seeds]), or as single runs"
            )
        raise ValueError(f"unknown population agent {name!r}; choose from {valid}")
    return POPULATION_AGENTS[name](venv, seed=seed, **kwargs)
