"""EPGT's hyper-agent: episodic control over the Hyper-RL (paper Algorithm 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.agents.base import EpsilonGreedyAgent, Transition
from hypergym.agents.memory import EpisodicMemory
from hypergym.agents.vector_memory import VectorMemory
from hypergym.checks import check_count

__all__ = ["MEMORY_LAYOUTS", "EpisodicAgent", "paper_capacity"]

#: ``memory`` layouts: the paper's per-action memory (Eq. 3, 4), or the released code's one memory of
#: value vectors (:class:`~hypergym.agents.vector_memory.VectorMemory`).
MEMORY_LAYOUTS = ("per_action", "vector")

#: The paper's cap on the memory size.
MAX_CAPACITY = 10_000


def paper_capacity(env: gym.Env, write_every: int = 10) -> int | None:
    """N_mem by the paper's rule (B.2): half the number of memory writes of the run, at most 10,000.

    The number of policy update steps of a ``HyperRLEnv`` run is estimated from its budget and its
    default hyperparameters (for PPO the default batch size and epochs fix the steps per rollout).
    Returns ``None`` for an env that is not a ``HyperRLEnv``.
    """
    hx: Any = env.unwrapped
    if not hasattr(hx, "total_env_steps") or not hasattr(hx, "config"):
        return None
    cfg = hx.config
    rollout = cfg.n_steps * hx.n_envs
    updates_per_rollout = 1
    if hasattr(cfg, "batch_size"):
        values = hx.space.decode(hx.space.default_action)
        b = int(values.get("batch_size", cfg.batch_size))
        epochs = int(values.get("n_epochs", cfg.n_epochs))
        updates_per_rollout = epochs * -(-rollout // b)
    updates = hx.total_env_steps / rollout * updates_per_rollout
    return int(min(MAX_CAPACITY, max(1, updates / write_every / 2)))


class EpisodicAgent(EpsilonGreedyAgent):
    """Episodic control (EPGT): epsilon-greedy on ``Q(s, a)`` read from an :class:`EpisodicMemory`.

    - Act: with probability epsilon a uniformly random action; otherwise an action with no memory yet
      (tried first, uniformly among them), else ``argmax_a Q(obs, a)`` (ties: lowest index).
    - Epsilon falls linearly from 1 at the start of the run to 0 at its end (the paper's text; the released
      code's ``decay_fraction=0.5, floor=0.01``: see :class:`~hypergym.agents.EpsilonGreedyAgent`): on a
      ``HyperRLEnv`` by the fraction of the inner env-step budget spent (``info["env_steps"]``); on any
      other env over ``total_steps`` hyper-steps.
    - Uniform writing: every ``write_every``-th hyper-step's ``(obs, action)`` is kept; at the end of each
      learning episode, each kept step's hyper-return (the sum of the episode's rewards from that step on)
      is written to the memory (paper Eq. 4).

    Args:
        env: The env (a ``HyperRLEnv``, or any env with a ``Discrete`` action space and a flat ``Box``
            observation).
        capacity: N_mem (default: the paper's rule on a ``HyperRLEnv``, else 10,000).
        k: Neighbours per read and update (paper: 3).
        beta: Writing rate (paper: 0.5).
        write_every: Uniform writing period (paper: 10).
        index: Nearest-neighbour backend, ``"exact"`` or ``"annoy"``.
        index_kwargs: Backend arguments (annoy: ``n_trees``, ``search_k``).
        total_steps: Hyper-steps of the epsilon schedule on an env without an env-step budget.
        seed: Seed of exploration and tie-breaking.
        decay_fraction: Fraction of the run over which epsilon falls (paper 1, released code 0.5).
        floor: Epsilon after the decay (paper 0, released code 0.01).
        memory: ``"per_action"`` (the paper) or ``"vector"`` (the released code: one memory of value vectors
            over the actions, read with ``k_read`` neighbours and written with ``k``, kernel
            ``1/(d^2 + 1e-3)``, ties to action 0, least-recently-used eviction, no untried-first rule).
        k_read: Neighbours of a read with the ``"vector"`` memory (default: the released code's 5).
        key_dim: Keys are ``tanh`` of a frozen random linear map of the observation to this many dims
            (released code: 5); ``None``: the observation itself (the paper's 32-d keys).
        released_reshape: With the ``"vector"`` memory, read as the released code does, reshaping the
            neighbours x actions block as actions x neighbours (the ``code`` profile's read); ``False``: the
            transposed read the released code meant.
    """

    name = "episodic"

    def __init__(
        self,
        env: gym.Env,
        capacity: int | None = None,
        k: int = 3,
        beta: float = 0.5,
        write_every: int = 10,
        index: str = "exact",
        index_kwargs: dict[str, Any] | None = None,
        total_steps: int | None = None,
        seed: int | None = None,
        decay_fraction: float = 1.0,
        floor: float = 0.0,
        memory: str = "per_action",
        k_read: int | None = None,
        key_dim: int | None = None,
        released_reshape: bool = False,
    ) -> None:
        super().__init__(env, total_steps, seed, decay_fraction, floor)
        if memory not in MEMORY_LAYOUTS:
            raise ValueError(f"unknown memory {memory!r}; choose from {list(MEMORY_LAYOUTS)}")
        check_count("key_dim", key_dim, allow_none=True)
        if memory == "per_action" and (k_read is not None or released_reshape):
            raise ValueError("k_read and released_reshape apply to memory='vector' (the per-action memory reads k)")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(
                f"EpisodicAgent needs a Discrete action space, got {env.action_space} "
                "(make the env with action_mode='discrete')"
            )
        obs_space = env.observation_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise TypeError(f"EpisodicAgent needs a flat Box observation (the key), got {obs_space}")
        # Checked here, where the agent is made: a k of 2.5 used to crash the run thousands of steps in, and a
        # capacity of 0 was silently replaced by the paper's rule.
        for name, value in (("write_every", write_every), ("k", k), ("k_read", k_read), ("capacity", capacity)):
            check_count(name, value, allow_none=name in ("k_read", "capacity"))
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta <= 1:
            raise ValueError(f"beta (the write rate) must lie in (0, 1], got {beta!r}")
        self.write_every = write_every
        self.n_actions = int(env.action_space.n)
        self.capacity = capacity or paper_capacity(env, write_every) or MAX_CAPACITY
        self.layout, self.key_dim = memory, key_dim
        self.key_map: tuple[np.ndarray, np.ndarray] | None = None
        width = obs_space.shape[0]
        if key_dim is not None:
            # A frozen random map (torch's Linear init: uniform in +-1/sqrt(fan_in)), as the released key_net.
            bound = 1.0 / np.sqrt(width)
            draw = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
            self.key_map = (draw.uniform(-bound, bound, (width, key_dim)), draw.uniform(-bound, bound, key_dim))
            width = key_dim
        self.memory: EpisodicMemory | VectorMemory
        if memory == "vector":
            if index != "exact" or index_kwargs:
                raise ValueError("the 'vector' memory searches its keys exactly: index and index_kwargs do not apply")
            self.memory = VectorMemory(
                self.n_actions, width, self.capacity, k_read or 5, k, beta, released_reshape=released_reshape
            )
        else:
            self.memory = EpisodicMemory(
                self.n_actions, width, self.capacity, k=k, beta=beta, index=index, index_kwargs=index_kwargs
            )
        self._episode_rewards: list[float] = []
        self._kept: list[tuple[np.ndarray, int, int]] = []  # (key, action, position in the episode)

    def key(self, obs: Any) -> np.ndarray:
        """The memory key of an observation (through the frozen random map when ``key_dim`` is set)."""
        x = np.asarray(obs, dtype=np.float32)
        if self.key_map is None:
            return x
        weight, bias = self.key_map
        return np.tanh(x.astype(np.float64) @ weight + bias).astype(np.float32)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """Epsilon-greedy on the memory's Q values."""
        if self.rng.random() < self.epsilon(info):
            return int(self.rng.integers(self.n_actions))
        if isinstance(self.memory, VectorMemory):
            # The released rule: random until the memory holds two keys, then the first maximum.
            if len(self.memory) <= 1:
                return int(self.rng.integers(self.n_actions))
            return int(np.argmax(self.memory.read(self.key(obs))))
        untried = [a for a in range(self.n_actions) if self.memory.size(a) == 0]
        if untried:
            return int(untried[self.rng.integers(len(untried))])
        return int(np.argmax(self.memory.read_all(self.key(obs))))

    def observe(self, transition: Transition) -> None:
        """Keep every ``write_every``-th step; write the episode to memory when it ends."""
        if self.steps % self.write_every == 0:
            self._kept.append((self.key(transition.obs), int(transition.action), len(self._episode_rewards)))
        self.steps += 1
        self._episode_rewards.append(float(transition.reward))
        if transition.terminated or transition.truncated:
            self.end_episode()

    def end_episode(self) -> None:
        """Write the kept steps with their hyper-returns ``G_i = sum_{j >= i} r_j`` and clear the buffer."""
        if self._kept:
            to_go = np.cumsum(self._episode_rewards[::-1])[::-1]
            keys = np.stack([key for key, _, _ in self._kept])
            actions = [a for _, a, _ in self._kept]
            returns = [float(to_go[i]) for _, _, i in self._kept]
            if isinstance(self.memory, VectorMemory):
                for key, action, g in zip(keys, actions, returns, strict=True):
                    self.memory.write(key, action, g)
            else:
                self.memory.update(keys, actions, returns)
        self._kept = []
        self._episode_rewards = []

    def step_record(self) -> dict[str, Any]:
        """Epsilon of the last choice and the memory's size (``agent_*`` columns of ``steps.csv``)."""
        return {**super().step_record(), "memory_size": len(self.memory)}

    def config(self) -> dict[str, Any]:
        """Settings of the agent and its memory."""
        m = self.memory
        out = {
            **super().config(),
            "memory": self.layout,
            "capacity": m.capacity,
            "beta": m.beta,
            "write_every": self.write_every,
            "key_dim": self.key_dim,
        }
        if isinstance(m, VectorMemory):
            return {**out, "k": m.k_write, "k_read": m.k_read, "released_reshape": m.released_reshape}
        return {**out, "k": m.k, "index": m.index_name, "index_kwargs": m.index_kwargs}

    def save(self, path: str | Path) -> None:
        """Write the settings, the step count and the memory under ``path``."""
        path = Path(path)
        super().save(path)
        (path / "state.json").write_text(json.dumps({"steps": self.steps}))
        self.memory.save(path / "memory.npz")

    def load(self, path: str | Path) -> None:
        """Restore the step count and the memory written by :meth:`save`."""
        path = Path(path)
        self.steps = int(json.loads((path / "state.json").read_text())["steps"])
        self.memory.load(path / "memory.npz")
