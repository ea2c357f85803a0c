"""The environment phase of the learner core: every member acts in its inner envs and its rollout's GAE is computed."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import torch
from gymnasium import spaces

from hypergym.learners.config import LearnerConfig
from hypergym.learners.gae import batched_gae
from hypergym.learners.policy import BatchedActorCritic
from hypergym.learners.records import RolloutArrays, RolloutStats
from hypergym.learners.rollback import RowSnapshot

if TYPE_CHECKING:
    from hypergym.envs.members import MemberVecEnv
    from hypergym.seeding import MemberStreams

__all__ = ["RolloutCollector"]


class RolloutCollector:
    """The rollout half of :class:`~hypergym.learners.core.Learner` (a mixin: the learner holds the state).

    Collects ``n_steps`` per inner env for every member (timeout bootstrapping with the value of the
    episode's last observation, raw-reward episode bookkeeping), rolls back a member whose policy gives
    non-finite outputs, computes GAE with each member's ``gamma`` and ``gae_lambda``, and lays the rollout
    out as ``batch`` tensors ``[M, E * T, ...]`` (SB3's order).
    """

    venv: MemberVecEnv
    config: LearnerConfig
    policy: BatchedActorCritic
    device: torch.device
    n_members: int
    n_envs: int
    observation_space: spaces.Space
    action_space: spaces.Space
    streams: MemberStreams
    env_steps: int
    batch: dict[str, torch.Tensor]
    rollout: RolloutArrays
    _checkpoint: RowSnapshot
    _initial: RowSnapshot
    _rollout_hp: dict[str, np.ndarray]
    _pending: dict[str, np.ndarray]
    _in_force_rollout: dict[str, np.ndarray]
    _recent: list[deque[float]]
    _last_obs: np.ndarray
    _last_starts: np.ndarray
    _exhausted: np.ndarray
    _loaded: bool

    def _on_new_rollout(self) -> None:
        raise NotImplementedError

    def _act(
        self, obs: np.ndarray, members: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Actions, values and log-probabilities for ``obs [M, E, D]``, and which members were rolled back.

        A member whose outputs are non-finite returns to its last finite state (then to its initial one)
        and acts again, as a single run does when its action sampler rejects the distribution. Only
        ``members`` (``[M]`` bool; default all) draw sampling noise: the others' outputs are not used.
        """
        rolled = np.zeros(self.n_members, dtype=bool)
        redo: np.ndarray | None = members  # the members acting (None: all)
        first = True
        for target in (None, self._checkpoint, self._initial):
            if not first:
                assert target is not None and redo is not None
                target.restore(torch.as_tensor(redo, device=self.device))
                rolled |= redo
            if self.policy.numpy_actor is not None:
                acted = self.policy.numpy_actor.act(obs, self.streams, redo)
            else:
                with torch.no_grad():
                    params, values_t = self.policy.forward(torch.as_tensor(obs, device=self.device))
                    finite_t = torch.isfinite(params).flatten(1).all(1) & torch.isfinite(values_t).all(1)
                    safe = torch.nan_to_num(params)
                    actions_t = self.policy.sample(safe, self.streams, redo)
                    log_prob_t, _ = self.policy.log_prob_entropy(safe, actions_t)
                acted = (actions_t.cpu().numpy(), values_t.cpu().numpy(), log_prob_t.cpu().numpy(),
                         finite_t.cpu().numpy())  # fmt: skip
            if first:
                actions, values, log_prob, finite = acted
                redo = ~finite if redo is None else redo & ~finite
                first = False
            else:  # only the members that acted again take their new outputs
                for out, new in zip((actions, values, log_prob), acted[:3], strict=True):
                    out[redo] = new[redo]
                redo = redo & ~acted[3]
            if not redo.any():
                break
        return actions, values, log_prob, rolled

    def collect_rollout(self) -> tuple[list[RolloutStats], np.ndarray]:
        """Collect one rollout of ``n_steps`` per env for every member and compute its GAE.

        Returns:
            Each member's rollout statistics, and ``[M]`` whether the member's policy gave non-finite
            outputs and was rolled back (last finite state, then initial) during the rollout.
        """
        if self._loaded:
            # Unpickled from a checkpoint: envs whose simulator could not be saved start again now.
            restarted = self.venv.restart_unrestored()
            if restarted is not None:
                self._last_obs = self.venv.observations()
                self._last_starts = self._last_starts | restarted
            self._loaded = False
        for name, value in self._pending.items():
            self._rollout_hp[name] = value
        self._pending.clear()
        gamma = self._rollout_hp.get("gamma", np.full(self.n_members, self.config.gamma))
        lam = self._rollout_hp.get("gae_lambda", np.full(self.n_members, self.config.gae_lambda))
        self._in_force_rollout = {name: v.copy() for name, v in self._rollout_hp.items()}
        t_steps, m, e = self.config.n_steps, self.n_members, self.n_envs
        box = isinstance(self.action_space, spaces.Box)
        # Images stay uint8 until the policy scales them (a float32 rollout of frames is 4x the memory).
        obs_dtype = np.uint8 if self.policy.images else np.float32
        obs_buf = np.zeros((t_steps, m, e, *(self.observation_space.shape or ())), dtype=obs_dtype)
        act_buf = np.zeros((t_steps, m, e, *(self.action_space.shape or ())), dtype=np.float32 if box else np.int64)
        logp_buf = np.zeros((t_steps, m, e), dtype=np.float32)
        values = np.zeros((t_steps, m, e), dtype=np.float32)
        rewards = np.zeros((t_steps, m, e), dtype=np.float32)
        starts = np.zeros((t_steps, m, e), dtype=bool)
        raw = np.zeros((t_steps, m, e))
        returns: list[list[float]] = [[] for _ in range(m)]
        lengths: list[list[int]] = [[] for _ in range(m)]
        rolled = np.zeros(m, dtype=bool)
        if box:
            low = np.asarray(self.action_space.low, dtype=np.float32)  # type: ignore[attr-defined]
            high = np.asarray(self.action_space.high, dtype=np.float32)  # type: ignore[attr-defined]
        for t in range(t_steps):
            obs = self._last_obs
            actions, value, log_prob, bad = self._act(obs)
            rolled |= bad
            step = self.venv.step(np.clip(actions, low, high) if box else actions)
            r = step.rewards
            if step.timeouts:
                # Bootstrap episodes cut by the time limit with the value of their last observation.
                terminal = np.zeros_like(obs)
                mask = np.zeros((m, e), dtype=bool)
                for i, k, o in step.timeouts:
                    terminal[i, k], mask[i, k] = o, True
                # Only the members with a cut episode act (and draw noise), as each one's single run would.
                _, terminal_values, _, _ = self._act(terminal, np.asarray(mask.any(axis=1)))
                r = r + np.where(mask, gamma[:, None] * terminal_values, 0.0).astype(np.float32)
            for i, _, ep_return, ep_length in step.episodes:
                returns[i].append(ep_return)
                lengths[i].append(ep_length)
            obs_buf[t], act_buf[t], logp_buf[t], values[t] = obs, actions, log_prob, value
            rewards[t], starts[t], raw[t] = r, self._last_starts, step.raw_rewards
            self._last_obs = step.obs
            self._last_starts = step.dones
        _, last_values, _, bad = self._act(self._last_obs)
        rolled |= bad
        adv, ret = batched_gae(rewards, values, starts, last_values, self._last_starts, gamma, lam)
        # What GAE was computed from, for agents that recompute it with other (gamma, lambda) (HOOF).
        self.rollout = RolloutArrays(rewards, values, starts, last_values, self._last_starts.copy())
        self.env_steps += t_steps * e
        n = t_steps * e

        def flat(x: np.ndarray) -> torch.Tensor:  # [T, M, E, ...] -> [M, E * T, ...], SB3's order
            swapped = np.ascontiguousarray(x.swapaxes(0, 1).swapaxes(1, 2)).reshape(m, n, *x.shape[3:])
            return torch.as_tensor(swapped, device=self.device)

        self.batch = {
            "observations": flat(obs_buf),
            "actions": flat(act_buf),
            "old_log_prob": flat(logp_buf),
            "advantages": flat(adv),
            "returns": flat(ret),
        }
        stats = []
        for i in range(m):
            self._recent[i].extend(returns[i])
            member = slice(i, i + 1)
            critic = RolloutArrays(
                rewards[:, member], values[:, member], starts[:, member], last_values[member],
                self.rollout.dones[member],
            )  # fmt: skip
            stats.append(RolloutStats(returns[i], lengths[i], raw[:, i], tuple(self._recent[i]), critic, ret[:, i]))
        self._exhausted[:] = False
        self._on_new_rollout()
        return stats, rolled
