"""GEM (Generalizable Episodic Memory, Hu et al., ICML 2021) as a hyper-agent over a grid of hyperparameters.

The discrete (Atari, DQN-based) variant of the official code (MouseHu/GEM ``gem_atari``), with EPGT's
learning episodes as its trajectories. Per member, six Q-networks over the grid (:mod:`~hypergym.agents.qnets`,
``q_net="mlp"`` or the hypernetwork ``"hyper"``):

- four "sub" networks in two twin groups, each trained by one-step Q-learning on its own target network
  (Huber loss); a group's clipped minimum, ``Q^(k)(s) = max_a min(Q'_{2k}, Q'_{2k+1})(s, a)``, is estimator
  ``k`` of :func:`~hypergym.agents.gem_memory.tbp_targets`;
- two "meta" networks regressed on the memory's targets ``R^(1)``, ``R^(2)`` with the asymmetric loss
  ``leaky_relu(Q - R, alpha)^2 / alpha`` (overestimates weigh ``1/alpha``, underestimates ``alpha``);
- acting epsilon-greedy on the mean of the meta networks.

A learning episode's targets are computed when it ends; every ``target_update_interval`` gradient steps the
target networks are copied and every stored episode's targets recomputed (the code's ``update_memory``).
One gradient step per hyper-step once ``learning_starts`` transitions are stored.

The networks of every member of a population are one ``[members, P]`` tensor stepped by one batched Adam,
each member with its own memory, sampling and exploration streams, so a population of GEM is the GEM
runs of its seeds, batched (a single run is a population of one).

Differences from the official code, by choice: the loss's ``alpha`` is the MuJoCo variant's 0.5 (the Atari
script leaves it at 1, a symmetric loss); the meta loss is not multiplied by 10 (the sub and meta networks
share no parameter and Adam is scale-invariant, so the factor changes nothing but Adam's epsilon); no cap
on ``h`` (learning episodes are short).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from hypergym.agents.base import EpsilonGreedyAgent, Transition
from hypergym.agents.gem_memory import EpisodeMemory
from hypergym.agents.population import PerMemberAgent
from hypergym.agents.qnets import QLayout, grid_coordinates
from hypergym.checks import check_count
from hypergym.learners.optim import BatchedAdam

__all__ = ["GEMAgent", "PopulationGEMAgent", "asymmetric_loss"]

_SUB, _META = slice(0, 4), slice(4, 6)  # the six networks of a member


def asymmetric_loss(q: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """``leaky_relu(q - target, alpha)^2 / alpha``: ``d^2 / alpha`` above the target, ``alpha d^2`` below."""
    return F.leaky_relu(q - target, alpha) ** 2 / alpha


class GEMCore:
    """The networks, optimiser and memories of GEM for ``len(seeds)`` members (see the module).

    Args:
        env: The env (or one member's view): ``Discrete`` actions, flat ``Box`` hyper-states.
        seeds: Each member's seed (its networks' initialisation).
        rngs: Each member's generator (its replay sampling; the agent's exploration draws from it too).
        q_net: ``"mlp"`` or ``"hyper"``.
        q_net_kwargs: :class:`~hypergym.agents.qnets.QLayout` arguments.
        learning_rate: Adam's step size (the code's Atari setting: 2e-4).
        adam_eps: Adam's epsilon (the code's: 1.5e-4).
        gamma: Discount of the Hyper-RL returns.
        batch_size: Transitions per gradient step.
        learning_starts: Transitions stored before the first gradient step.
        target_update_interval: Gradient steps between target copies and memory refreshes.
        capacity: Transitions the memory keeps.
        alpha: The asymmetric loss's slope.
    """

    def __init__(
        self,
        env: gym.Env,
        seeds: Sequence[int | None],
        rngs: Sequence[np.random.Generator],
        q_net: str = "mlp",
        q_net_kwargs: dict[str, Any] | None = None,
        learning_rate: float = 2e-4,
        adam_eps: float = 1.5e-4,
        gamma: float = 0.99,
        batch_size: int = 32,
        learning_starts: int = 32,
        target_update_interval: int = 50,
        capacity: int = 100_000,
        alpha: float = 0.5,
    ) -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"GEM needs a Discrete action space (action_mode='discrete'), got {env.action_space}")
        for name, value in (("batch_size", batch_size), ("target_update_interval", target_update_interval),
                            ("capacity", capacity)):  # fmt: skip
            check_count(name, value)
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha!r}")
        obs_dim = int(np.prod(env.observation_space.shape))  # type: ignore[arg-type]
        n = int(env.action_space.n)
        space = getattr(env.unwrapped, "space", None)
        if q_net == "hyper" and space is None:
            raise ValueError("q_net='hyper' reads the grid's hyperparameter values: give it a HyperRL env")
        coords = grid_coordinates(space) if q_net == "hyper" else None
        self.layout = QLayout(obs_dim, n, 6, q_net, coordinates=coords, **(q_net_kwargs or {}))
        gens = [torch.Generator().manual_seed(int(np.random.SeedSequence(s).generate_state(1)[0])) for s in seeds]
        self.flat = self.layout.init(gens)  # the optimiser holds this very tensor (so pickles keep them one)
        self.target = self.flat.clone()
        self.grad = torch.zeros_like(self.flat)
        self.optimizer = BatchedAdam(self.flat, self.grad, eps=adam_eps)
        self.lr = torch.full((len(seeds),), learning_rate, dtype=torch.float64)
        self.rngs = list(rngs)
        self.memories = [EpisodeMemory(obs_dim, capacity, gamma) for _ in seeds]
        self.episodes: list[list[tuple[Any, ...]]] = [[] for _ in seeds]  # each member's unfinished episode
        self.gradient_steps = np.zeros(len(seeds), dtype=np.int64)
        self.gamma, self.batch_size, self.alpha = gamma, batch_size, alpha
        self.learning_starts, self.target_update_interval = learning_starts, target_update_interval
        #: Every member's greedy action while a population asks its members' agents to act (else ``None``).
        self.greedy_now: np.ndarray | None = None
        self.settings = {"q_net": q_net, **({"q_net_kwargs": q_net_kwargs} if q_net_kwargs else {}),
                         "learning_rate": learning_rate, "adam_eps": adam_eps, "gamma": gamma,
                         "batch_size": batch_size, "learning_starts": learning_starts,
                         "target_update_interval": target_update_interval, "capacity": capacity,
                         "alpha": alpha}  # fmt: skip

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """``[M]``: each member's best grid point by the mean of its meta networks at its ``obs [M, d]``."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(len(obs), 1, -1))
            return self.layout.q(self.flat, x)[:, _META, 0].mean(dim=1).argmax(dim=-1).numpy()

    def _values(self, i: int) -> Any:
        """Member ``i``'s two estimators ``Q^(k)(s) = max_a min`` over a twin group of its target networks."""

        def values(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                q = self.layout.q(self.target[i : i + 1], torch.as_tensor(states)[None])[0]
            twin = torch.minimum(q[0::2][:2], q[1::2][:2]).amax(dim=-1).double().numpy()  # groups (0, 1), (2, 3)
            return twin[0], twin[1]

        return values

    def record(self, i: int, t: Transition) -> None:
        """Add member ``i``'s transition; store its learning episode once it ends."""
        obs, nxt = (np.array(o, dtype=np.float32).reshape(-1) for o in (t.obs, t.next_obs))  # copies: callers reuse
        self.episodes[i].append((obs, int(t.action), float(t.reward), float(t.terminated), nxt))
        if t.terminated or t.truncated:
            o, a, r, d, n = zip(*self.episodes[i], strict=True)
            self.memories[i].add(np.stack(o), np.array(a), np.array(r), np.array(d), np.stack(n), self._values(i))
            self.episodes[i] = []

    def train(self, members: np.ndarray) -> None:
        """One gradient step of each member in ``members [M]`` (bool) with enough stored transitions."""
        ready = members & np.array([len(m) >= max(self.learning_starts, self.batch_size) for m in self.memories])
        if not ready.any():
            return
        m, b = len(self.memories), self.batch_size
        obs = np.zeros((m, b, self.memories[0].obs.shape[1]), dtype=np.float32)
        nxt, act, rew = np.zeros_like(obs), np.zeros((m, b), dtype=np.int64), np.zeros((m, b), dtype=np.float32)
        done, targets = np.zeros((m, b), dtype=np.float32), np.zeros((m, 2, b), dtype=np.float32)
        for i in np.flatnonzero(ready):
            mem, idx = self.memories[i], self.rngs[i].integers(len(self.memories[i]), size=b)
            obs[i], nxt[i], act[i], rew[i], done[i] = mem.obs[idx], mem.next_obs[idx], mem.actions[idx], \
                mem.rewards[idx], mem.dones[idx]  # fmt: skip
            targets[i] = mem.targets[idx].T
        obs_t, act_t = torch.as_tensor(obs), torch.as_tensor(act)
        leaves = self.layout.leaves(self.flat)  # they share the storage: the optimiser steps self.flat
        q = self.layout.q(leaves, obs_t)  # [M, 6, B, A]
        q_taken = q.gather(-1, act_t[:, None, :, None].expand(-1, 6, -1, 1)).squeeze(-1)  # [M, 6, B]
        with torch.no_grad():
            best_next = self.layout.q(self.target, torch.as_tensor(nxt))[:, _SUB].amax(dim=-1)
            one_step = torch.as_tensor(rew)[:, None] + self.gamma * (1 - torch.as_tensor(done))[:, None] * best_next
        sub = F.smooth_l1_loss(q_taken[:, _SUB], one_step, reduction="none").mean(dim=-1).sum(dim=1)
        meta = asymmetric_loss(q_taken[:, _META], torch.as_tensor(targets), self.alpha).mean(dim=-1).sum(dim=1)
        ((sub + meta) * torch.as_tensor(ready, dtype=torch.float32)).sum().backward()  # members' losses apart
        self.layout.write_grad(leaves, self.grad)
        idle = torch.as_tensor(~ready)
        kept = [t[idle].clone() for t in (self.flat, *self.optimizer.tensors())] if idle.any() else []
        self.optimizer.step(self.lr)
        for t, rows in zip((self.flat, *self.optimizer.tensors()), kept, strict=False):
            t[idle] = rows  # members that did not train keep their weights and Adam state
        self.gradient_steps[ready] += 1
        for i in np.flatnonzero(ready & (self.gradient_steps % self.target_update_interval == 0)):
            self.target[i] = self.flat[i]
            self.memories[i].refresh(self._values(int(i)))


class GEMAgent(EpsilonGreedyAgent):
    """GEM on a single run (a population of one of :class:`GEMCore`); see the module.

    Args:
        env: The env (``Discrete`` actions, flat ``Box`` observations).
        total_steps: Epsilon schedule length in hyper-steps, for envs without an env-step budget.
        seed: Seed of the agent (networks, replay sampling, exploration).
        decay_fraction: Fraction of the run over which epsilon falls to ``floor``.
        floor: Epsilon after the decay.
        **kwargs: :class:`GEMCore` arguments (``q_net``, ``learning_rate``, ``alpha``, ...).
    """

    name = "gem"

    def __init__(
        self,
        env: gym.Env,
        total_steps: int | None = None,
        seed: int | None = None,
        decay_fraction: float = 1.0,
        floor: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, total_steps, seed, decay_fraction, floor)
        self.core = GEMCore(env, [seed], [self.rng], **kwargs)
        self.member = 0  # its row of the core
        self.in_population = False  # a population trains its members' rows together

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """Epsilon-greedy on the meta networks' mean."""
        if self.rng.random() < self.epsilon(info):
            return int(self.rng.integers(self.action_space.n))  # type: ignore[attr-defined]
        greedy = self.core.greedy_now
        return int(self.core.greedy(np.asarray(obs)[None])[0] if greedy is None else greedy[self.member])

    def observe(self, transition: Transition) -> None:
        """Remember the transition (the episode once it ends); one gradient step (a population's: all at once)."""
        self.steps += 1
        self.core.record(self.member, transition)
        if not self.in_population:
            self.core.train(np.ones(1, dtype=bool))

    def config(self) -> dict[str, Any]:
        """Settings of the agent."""
        return {**super().config(), **self.core.settings}


class PopulationGEMAgent(PerMemberAgent):
    """GEM for every member of a population at once: member ``i`` is the :class:`GEMAgent` of seed ``seeds[i]``.

    The members' agents are single-run agents (their epsilon schedules, exploration draws and transitions as
    :class:`~hypergym.agents.population.PerMemberAgent` gives them) over one :class:`GEMCore` whose row ``i`` is
    member ``i``'s networks, memory and replay stream: one batched forward picks every member's greedy action,
    one batched gradient step trains every member that made a transition.

    Args:
        venv: A :class:`~hypergym.envs.HyperRLVectorEnv` (``action_mode="discrete"``).
        seeds: The members' seeds.
        total_steps: Epsilon schedule length in hyper-steps, for envs without an env-step budget.
        decay_fraction: Fraction of the run over which epsilon falls to ``floor``.
        floor: Epsilon after the decay.
        **kwargs: :class:`GEMCore` arguments.
    """

    name = "gem"

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        seeds: Sequence[int | None] = (),
        total_steps: int | None = None,
        decay_fraction: float = 1.0,
        floor: float = 0.0,
        **kwargs: Any,
    ) -> None:
        view = self.member_view(venv)
        seeds = list(seeds) or [None] * venv.num_envs
        members = []
        for i, seed in enumerate(seeds):  # the single-run agent's state without a core of its own
            agent = GEMAgent.__new__(GEMAgent)
            EpsilonGreedyAgent.__init__(agent, view, total_steps, seed, decay_fraction, floor)
            agent.member, agent.in_population = i, True
            members.append(agent)
        self.core = GEMCore(view, seeds, [a.rng for a in members], **kwargs)
        for agent in members:
            agent.core = self.core
        super().__init__(venv, members, seeds[0])

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Each member agent's choice, the greedy ones from one batched forward."""
        self.core.greedy_now = self.core.greedy(obs)
        try:
            return super().act(obs, info)
        finally:
            self.core.greedy_now = None

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
        """Each member's transition to its agent, then one gradient step of every member that made one."""
        super().observe(obs, actions, rewards, next_obs, terminated, truncated, info)
        waiting = info.get("waiting")
        self.core.train(np.ones(self.num_envs, dtype=bool) if waiting is None else ~np.asarray(waiting, dtype=bool))
