"""The inner environments of a population: M members x E envs, stepped together, kept independent.

:class:`MemberVecEnv` steps one env per (member, env) pair with SB3's semantics for each member (what
``make_vec_env`` + ``Monitor`` + ``DummyVecEnv`` + ``VecNormalize`` give a single run): same-step
autoreset with the terminal observation kept, time-limit truncation flagged for bootstrapping, raw
episode returns and lengths recorded, and, with ``normalize=True``, per-member running statistics of
observations and discounted returns (:class:`MemberNormalizer`), so member ``i``'s normalisation never
sees member ``j``'s data. The raw envs are stepped by :mod:`hypergym.envs.stepping`: Gymnasium's native
``CartPoleVectorEnv`` for CartPole (with per-env resets, so members stay independent), else one env
object per slot in a loop. Not ``SyncVectorEnv``: it merges every info key of every env into arrays at
each step, which costs about 30% of a HalfCheetah step (measured: 7.5k vs 10.3k steps/s for 16 envs).

Env ``k`` of member ``i`` is seeded ``seeds[i] + k`` at its first reset, as ``make_vec_env`` seeds a single
run's envs, so a member starts from the same states as the single run with the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypergym.envs.atari import AtariVecEnv
from hypergym.envs.stepping import CartPoleStepper, LoopStepper, make_stepper
from hypergym.envs.tasks import task_spec

__all__ = ["MemberNormalizer", "MemberStep", "MemberVecEnv", "check_normalize"]


def check_normalize(task: str, normalize: bool) -> None:
    """Refuse ``normalize=True`` on Atari, saying why.

    Raises:
        ValueError: For an Atari task with ``normalize``.
    """
    if normalize and task_spec(task).family == "atari":
        raise ValueError(
            f"normalize=True standardises vector observations and rewards; {task}'s frames are scaled by the "
            "policy and its rewards clipped to their sign (leave normalize=False)"
        )


class MemberNormalizer:
    """SB3's ``VecNormalize`` statistics, one set per member (observations and discounted returns).

    Same formulas and constants as SB3 (``RunningMeanStd`` with count 1e-4, epsilon 1e-8, clipping at
    10): observations are standardised by the member's running mean and variance, rewards divided by the
    standard deviation of the member's running discounted return.

    Args:
        n_members: M.
        n_envs: E, envs per member.
        obs_dim: Observation size.
        gamma: Discount of the return whose variance scales the rewards.
    """

    epsilon = 1e-8
    clip_obs = 10.0
    clip_reward = 10.0

    def __init__(self, n_members: int, n_envs: int, obs_dim: int, gamma: float) -> None:
        self.gamma = gamma
        self.obs_mean = np.zeros((n_members, obs_dim))
        self.obs_var = np.ones((n_members, obs_dim))
        self.obs_count = np.full(n_members, 1e-4)
        self.ret_mean = np.zeros(n_members)
        self.ret_var = np.ones(n_members)
        self.ret_count = np.full(n_members, 1e-4)
        self.returns = np.zeros((n_members, n_envs))

    @staticmethod
    def _update(
        mean: np.ndarray, var: np.ndarray, count: np.ndarray, batch: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chan's parallel update (SB3's ``RunningMeanStd.update``), batch axis 1, per member."""
        batch_mean = batch.mean(axis=1)
        batch_var = batch.var(axis=1)
        n = batch.shape[1]
        delta = batch_mean - mean
        total = count + n
        c = count.reshape(count.shape + (1,) * (mean.ndim - 1))
        t = total.reshape(c.shape)
        new_mean = mean + delta * n / t
        m2 = var * c + batch_var * n + np.square(delta) * c * n / t
        return new_mean, m2 / t, total

    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s observation and return statistics."""
        for stat in (self.obs_mean, self.obs_var, self.obs_count, self.ret_mean, self.ret_var, self.ret_count):
            stat[dst] = stat[src]

    def update_obs(self, obs: np.ndarray) -> None:
        """Add ``obs [M, E, D]`` to each member's statistics."""
        self.obs_mean, self.obs_var, self.obs_count = self._update(self.obs_mean, self.obs_var, self.obs_count, obs)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """``clip((obs - mean) / sqrt(var + eps), -10, 10)`` with each member's statistics (``obs [M, ..., D]``)."""
        shape = (obs.shape[0],) + (1,) * (obs.ndim - 2) + (obs.shape[-1],)
        mean = self.obs_mean.reshape(shape)
        std = np.sqrt(self.obs_var.reshape(shape) + self.epsilon)
        return np.clip((obs - mean) / std, -self.clip_obs, self.clip_obs).astype(np.float32)

    def normalize_member_obs(self, member: int, obs: np.ndarray) -> np.ndarray:
        """Observations ``[..., D]`` of ``member`` normalised with its statistics."""
        std = np.sqrt(self.obs_var[member] + self.epsilon)
        return np.clip((obs - self.obs_mean[member]) / std, -self.clip_obs, self.clip_obs).astype(np.float32)

    def normalize_rewards(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Update the discounted returns and their statistics, then scale ``rewards [M, E]``."""
        self.returns = self.returns * self.gamma + rewards
        self.ret_mean, self.ret_var, self.ret_count = self._update(
            self.ret_mean, self.ret_var, self.ret_count, self.returns
        )
        scaled = rewards / np.sqrt(self.ret_var[:, None] + self.epsilon)
        self.returns[dones] = 0.0
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)


@dataclass
class MemberStep:
    """What one step of every env of every member returned."""

    obs: np.ndarray
    """``[M, E, D]`` next observations (after same-step resets; normalised if the env normalises)."""
    rewards: np.ndarray
    """``[M, E]`` training rewards (normalised if the env normalises)."""
    raw_rewards: np.ndarray
    """``[M, E]`` the tasks' own rewards."""
    dones: np.ndarray
    """``[M, E]`` episode ended (terminated or truncated)."""
    timeouts: list[tuple[int, int, np.ndarray]]
    """``(member, env, terminal observation)`` of episodes cut by the time limit (to bootstrap from)."""
    episodes: list[tuple[int, int, float, int]]
    """``(member, env, raw return, length)`` of every episode that ended."""


class MemberVecEnv:
    """M x E inner envs with per-member seeds and normalisation statistics.

    Args:
        task: A task name of :data:`hypergym.envs.TASKS` (not Atari).
        seeds: One env seed per member (member ``i``'s env ``k`` starts from ``seeds[i] + k``).
        n_envs: E, envs per member.
        normalize: Per-member ``VecNormalize`` statistics of observations and rewards.
        gamma: Discount used for reward normalisation.
    """

    def __init__(
        self, task: str, seeds: Sequence[int], n_envs: int = 1, normalize: bool = False, gamma: float = 0.99
    ) -> None:
        spec = task_spec(task)
        if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
        self.n_members, self.n_envs = len(seeds), n_envs
        self.seeds = [int(s) for s in seeds]
        slot_seeds = [seed + k for seed in self.seeds for k in range(n_envs)]
        self.stepper: LoopStepper | CartPoleStepper | None = None
        self.atari: AtariVecEnv | None = None
        check_normalize(task, normalize)
        if spec.family == "atari":
            # All M x E games in one native vector env (C++, threaded), game (i, k) seeded seeds[i] + k.
            self.atari = AtariVecEnv(task, n_envs=len(slot_seeds), seed=slot_seeds)
            space_source: Any = self.atari
        else:
            self.stepper = make_stepper(spec, slot_seeds)
            space_source = self.stepper
        self.observation_space = space_source.observation_space
        self.action_space = space_source.action_space
        self.normalizer = None
        if normalize:
            obs_dim = int(np.prod(self.observation_space.shape))
            self.normalizer = MemberNormalizer(self.n_members, n_envs, obs_dim, gamma)
        shape = self.observation_space.shape
        dtype = np.uint8 if self.atari is not None else np.float32
        self._obs = np.zeros((self.n_members, n_envs, *shape), dtype=dtype)
        self._ep_return = np.zeros(self.n_members * n_envs)
        self._ep_length = np.zeros(self.n_members * n_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        """Reset every env with its seed; returns ``[M, E, ...]`` observations (normalised if set)."""
        raw = self.atari.reset() if self.atari is not None else self._raw_stepper().reset()
        self._obs = np.asarray(raw).reshape(self._obs.shape)
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        obs = self._obs.copy()
        if self.normalizer is not None:
            self.normalizer.update_obs(obs)
            return self.normalizer.normalize_obs(obs)
        return obs

    def _raw_stepper(self) -> LoopStepper | CartPoleStepper:
        assert self.stepper is not None
        return self.stepper

    def _step_atari(self, actions: np.ndarray) -> MemberStep:
        """Every game's step with :class:`AtariVecEnv`'s semantics (life losses end episodes, clipped rewards)."""
        assert self.atari is not None
        m, e = self.n_members, self.n_envs
        obs, rewards, dones, infos = self.atari.step(actions)
        episodes: list[tuple[int, int, float, int]] = []
        timeouts: list[tuple[int, int, np.ndarray]] = []
        for j, info in enumerate(infos):
            if "episode" in info:  # a finished game: its raw score
                episodes.append((j // e, j % e, float(info["episode"]["r"]), int(info["episode"]["l"])))
            if info.get("TimeLimit.truncated"):
                timeouts.append((j // e, j % e, info["terminal_observation"]))
        self._obs = np.asarray(obs).reshape(self._obs.shape)
        raw = self.atari.raw_rewards.reshape(m, e)
        return MemberStep(self._obs.copy(), rewards.reshape(m, e), raw, dones.reshape(m, e), timeouts, episodes)

    def step(self, actions: np.ndarray) -> MemberStep:
        """Step every env with ``actions [M, E, ...]``; a finished episode resets in the same step."""
        n = self.n_members * self.n_envs
        if self.atari is not None:
            return self._step_atari(actions.reshape(n))
        obs, raw, terminated, truncated, final = self._raw_stepper().step(actions.reshape((n, *actions.shape[2:])))
        dones = terminated | truncated
        self._ep_return += raw
        self._ep_length += 1
        episodes: list[tuple[int, int, float, int]] = []
        for j in np.flatnonzero(dones):
            i, k = divmod(int(j), self.n_envs)
            episodes.append((i, k, float(self._ep_return[j]), int(self._ep_length[j])))
        self._ep_return[dones] = 0.0
        self._ep_length[dones] = 0
        timeouts = [(j // self.n_envs, j % self.n_envs, o) for j, o in sorted(final.items())]
        self._obs = obs.reshape(self._obs.shape)
        obs_out = self._obs.copy()
        raw_2d = raw.reshape(self.n_members, self.n_envs)
        dones_2d = dones.reshape(self.n_members, self.n_envs)
        rewards = raw_2d.astype(np.float32)
        if self.normalizer is not None:
            self.normalizer.update_obs(obs_out)
            obs_out = self.normalizer.normalize_obs(obs_out)
            timeouts = [(i, k, self.normalizer.normalize_member_obs(i, o)) for i, k, o in timeouts]
            rewards = self.normalizer.normalize_rewards(raw_2d, dones_2d)
        return MemberStep(obs_out, rewards, raw_2d, dones_2d, timeouts, episodes)

    def restart_unrestored(self) -> np.ndarray | None:
        """After loading a checkpoint that could not save some simulators (Box2D): their envs start new episodes.

        Returns:
            ``[M, E]`` which envs were reset, or ``None`` when none needed it. Their (normalised) first
            observations are then in :meth:`observations`.
        """
        restart = getattr(self.stepper, "restart_unrestored", None)  # Atari runs are never restored
        mask = restart() if restart is not None else None
        if mask is None or not mask.any():
            return None
        self._obs = self._raw_stepper().observations().reshape(self._obs.shape)
        self._ep_return[mask] = 0.0
        self._ep_length[mask] = 0
        mask_2d = mask.reshape(self.n_members, self.n_envs)
        if self.normalizer is not None:
            self.normalizer.returns[mask_2d] = 0.0  # their discounted returns start again with the episode
        return mask_2d

    def observations(self) -> np.ndarray:
        """``[M, E, D]`` current observations, normalised with each member's statistics (not updating them)."""
        obs = self._obs.copy()
        return self.normalizer.normalize_obs(obs) if self.normalizer is not None else obs

    def copy_member_statistics(self, dst: int, src: int) -> np.ndarray:
        """Copy member ``src``'s observation and return statistics into member ``dst`` (PBT's exploit).

        ``dst``'s envs and its running discounted returns (one per env episode) are its own and go on.

        Returns:
            ``[E, D]`` member ``dst``'s current observations, normalised with its new statistics.
        """
        if self.normalizer is None:
            return self._obs[dst].copy()
        self.normalizer.copy_member(dst, src)
        return self.normalizer.normalize_member_obs(dst, self._obs[dst])

    def close(self) -> None:
        """Close every env."""
        if self.atari is not None:
            self.atari.close()
        else:
            self._raw_stepper().close()
