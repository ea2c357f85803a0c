"""Hyper-agents for a population (:class:`~hypergym.envs.HyperRLVectorEnv`): one action per member per step.

``act(obs [N, ...], info) -> actions [N]`` and ``observe(obs, actions, rewards, next_obs, terminated,
truncated, info)`` on batches, following Gymnasium's vector conventions (``info`` a dict of per-member
arrays). Single-run agents (static, random, DQN, ...) run per member through :class:`PerMemberAgent`.
EPGT keeps the single-run agent's exact rules per member (:class:`~hypergym.agents.EpisodicAgent`:
epsilon schedule, uniform writing, per-action memory); with ``shared_memory=True`` all members read and
write one memory, so the population pools its experience (a member reads what the others learned),
which no single-run EPGT can do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import iterate

from hypergym.agents.base import HyperAgent, PopulationAgent, Transition, agent_config
from hypergym.agents.episodic import MAX_CAPACITY, EpisodicAgent, paper_capacity
from hypergym.envs.runs import member_info

__all__ = [
    "PerMemberAgent",
    "PopulationAgent",
    "PopulationEpisodicAgent",
]


class _MemberView(gym.Env):  # type: ignore[type-arg]
    """What a single-run agent reads of its env, for one member of a vector env (never stepped).

    The single spaces, and every other attribute (``space``, ``settings``, ``total_env_steps``, ...) from the
    population's env; ``population`` is the population itself. A ``gym.Env``, as SB3 (DQN) wants one.
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.action_space = venv.single_action_space
        self.observation_space = venv.single_observation_space
        self.population = venv

    def __getattr__(self, name: str) -> Any:
        population = self.__dict__.get("population")
        if population is None:  # while unpickling, before the fields are set
            raise AttributeError(name)
        return getattr(population.unwrapped, name)


class PerMemberAgent(PopulationAgent):
    """One single-run agent per member: the adapter that runs any single-run hyper-agent on a population.

    Member ``i``'s agent sees member ``i``'s observation, info and transitions only, as in a run of its own
    (``final_obs`` for the transition that ends a learning episode). A member that waits
    (``info["waiting"]``, see :class:`~hypergym.envs.HyperRLVectorEnv`) is neither asked to act nor given a
    transition until its outcome comes: then the transition from the observation it acted on.

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
        self.batched_observation_space = venv.observation_space
        self.acted: list[Any] = []  # each member agent's last action, as it returned it
        self.acted_on: list[Any] = []  # the observation each member agent last acted on
        self._infos: tuple[Any, list[dict[str, Any]]] = (None, [])  # a step's info and its members' infos

    def _members(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Each member's info of the batched ``info``; observe's ``info`` is the next act's: split it once."""
        if self._infos[0] is not info:
            self._infos = (info, [member_info(info, i) for i in range(self.num_envs)])
        return self._infos[1]

    @staticmethod
    def member_view(venv: gym.vector.VectorEnv) -> Any:
        """What a single-run agent reads of its env (spaces, and the settings through ``unwrapped``)."""
        return _MemberView(venv)

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        """Each member's agent's action (for a learning episode that just began, with its first observation).

        A member's agent sees the info the population's env returned: after a learning episode ends, a
        ``HyperRLVectorEnv`` returns the ending step's info, a single env run by :func:`hypergym.run` (a
        vector env of one) the reset's. The built-in agents read only ``env_steps``, the same in both.
        """
        members = zip(self.members, iterate(self.batched_observation_space, obs), strict=True)  # Dict, Tuple too
        infos = self._members(info)
        waiting = info.get("waiting")
        if waiting is None or not self.acted:
            self.acted_on = list(iterate(self.batched_observation_space, obs))
            self.acted = [a.act(o, infos[i]) for i, (a, o) in enumerate(members)]
        else:  # a waiting member's action is ignored: its agent is not asked
            for i, (agent, o) in enumerate(members):
                if not waiting[i]:
                    self.acted_on[i], self.acted[i] = o, agent.act(o, infos[i])
        return np.stack([np.asarray(a) for a in self.acted])

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
        """Each member's transition to its agent: for an ended learning episode, its final observation and info.

        (Gymnasium's same-step autoreset puts the next episode's in ``next_obs`` and ``info``, and the ending
        step's in ``final_obs`` and ``final_info``.)
        """
        final, ended, waiting = info.get("final_obs"), info.get("_final_obs"), info.get("waiting")
        acted = self.acted or list(actions)  # each agent's own action, as it returned it
        before = self.acted_on or list(iterate(self.batched_observation_space, obs))
        after = iterate(self.batched_observation_space, next_obs)
        infos = self._members(info)
        for i, (agent, o, nxt) in enumerate(zip(self.members, before, after, strict=True)):
            if waiting is not None and waiting[i]:
                continue  # its outcome comes when it stops waiting
            last = final is not None and ended is not None and bool(ended[i])
            t = Transition(
                o, acted[i], float(rewards[i]), final[i] if last else nxt, bool(terminated[i]),  # type: ignore[index]
                bool(truncated[i]), member_info(info["final_info"], i) if last else infos[i],
            )  # fmt: skip
            agent.observe(t)

    def step_records(self) -> list[dict[str, Any]]:
        """Each member agent's record of its last choice (``step_record()``, e.g. epsilon), if it keeps one."""
        return [a.step_record() if hasattr(a, "step_record") else {} for a in self.members]

    def config(self) -> dict[str, Any]:
        """Settings, with the first member agent's."""
        return {**super().config(), **agent_config(self.members[0])}

    def member_config(self, i: int) -> dict[str, Any]:
        """Member ``i``'s agent's settings: what its single run records."""
        return agent_config(self.members[i])


class PopulationEpisodicAgent(PerMemberAgent):
    """EPGT for each member; one memory per member, or one shared by all (``shared_memory=True``).

    Member ``i``'s agent is the single-run :class:`~hypergym.agents.EpisodicAgent` of member ``i``'s seed.

    Args:
        venv: A :class:`~hypergym.envs.HyperRLVectorEnv` (``action_mode="discrete"``).
        seeds: The members' seeds (each member agent's exploration seed).
        shared_memory: All members read and write one memory.
        capacity: Memory size (default: the paper's rule per member; shared: N times it, at most 10,000).
        **kwargs: :class:`~hypergym.agents.EpisodicAgent` arguments (``k``, ``beta``, ``write_every``,
            ``index``, ``index_kwargs``, the epsilon schedule, the memory layout).
    """

    name = "episodic"

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        seeds: Sequence[int | None] = (),
        shared_memory: bool = False,
        capacity: int | None = None,
        **kwargs: Any,
    ) -> None:
        view = self.member_view(venv)
        seeds = list(seeds) or [None] * venv.num_envs
        if capacity is None and shared_memory:
            per_member = paper_capacity(view, kwargs.get("write_every", 10)) or MAX_CAPACITY  # type: ignore[arg-type]
            capacity = min(MAX_CAPACITY, per_member * venv.num_envs)
        members = [EpisodicAgent(view, capacity=capacity, seed=s, **kwargs) for s in seeds]  # type: ignore[arg-type]
        super().__init__(venv, members, seeds[0])
        self.shared_memory = shared_memory
        if shared_memory:
            for agent in self.members[1:]:
                agent.memory = self.members[0].memory  # type: ignore[attr-defined]

    def config(self) -> dict[str, Any]:
        """Settings, with the memory's."""
        return {**super().config(), "shared_memory": self.shared_memory}
