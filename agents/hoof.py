"""HOOF (Paul, Kurin and Whiteson, 2019): hyperparameters picked on the fly by importance sampling.

At every update HOOF considers each candidate value of the hyperparameters that shape the policy
gradient, forms the policy each would give after the update, and estimates that candidate policy's
return on the rollout already collected, by weighted importance sampling (WIS): every env's segment of
the rollout is one trajectory, weighted by the product of its likelihood ratios
``pi_candidate(a|s) / pi_behaviour(a|s)``, with rewards min-max normalised over the batch (as the
authors' A2C code does). Candidates whose mean KL from the current policy exceeds ``max_kl`` are
discarded; the best remaining estimate is the action.

Candidates: the grid values of ``learning_rate`` and, where the grid holds them, ``gamma`` and
``gae_lambda`` (advantages recomputed with GAE for each pair). The optimiser's step is linear in the
learning rate (Adam and RMSprop scale one direction), so each (gamma, lambda) pair costs one gradient
and one probe optimiser step, and each learning rate one forward pass. Every other hyperparameter of the
grid stays at the preset's default.

**Privileged agent**: HOOF reads the learner through ``env.unwrapped.learner`` (its policy, optimiser
state and rollout buffer), which no other hyper-agent sees; it changes nothing there (gradients are
taken with ``torch.autograd.grad`` and the probe step runs on copies). In this MDP ``gamma`` and
``gae_lambda`` are per-rollout hyperparameters: the env applies them from the next rollout, so HOOF's
choice of them is evaluated on the current rollout but takes effect one rollout later.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from hypergym.agents.base import HyperAgent
from hypergym.learners.gae import batched_gae

__all__ = ["HOOFAgent", "wis_estimate"]

#: Hyperparameters HOOF chooses (those that shape the policy gradient), when the grid holds them.
HOOF_HYPERPARAMS = ("learning_rate", "gamma", "gae_lambda")


def wis_estimate(log_ratios: np.ndarray, rewards: np.ndarray) -> float:
    """HOOF's weighted importance-sampling estimate of a candidate policy's (normalised) return.

    Args:
        log_ratios: ``[K, T]`` ``log pi_candidate(a|s) - log pi_behaviour(a|s)`` of each trajectory's steps.
        rewards: ``[K, T]`` rewards of those steps.

    Returns:
        ``sum_k w_k R_k / sum_k w_k`` with ``w_k = prod_t ratio`` and ``R_k`` the sum of the trajectory's
        rewards min-max normalised over the batch (all-equal rewards count as 0).
    """
    r = np.asarray(rewards, dtype=np.float64)
    span = r.max() - r.min()
    normalised = (r - r.min()) / span if span > 0 else np.zeros_like(r)
    returns = normalised.sum(axis=1)
    log_w = np.asarray(log_ratios, dtype=np.float64).sum(axis=1)
    w = np.exp(log_w - log_w.max())  # the normalisation makes the scale irrelevant; this keeps it finite
    return float(np.dot(w, returns) / w.sum())


class HOOFAgent(HyperAgent):
    """HOOF for a single ``HyperRLEnv`` with an A2C or PPO learner (a privileged agent: see the module).

    Args:
        env: A ``HyperRLEnv`` (A2C or PPO) whose grid holds ``learning_rate``.
        max_kl: Largest mean KL divergence from the current policy a candidate may have (``None``: no
            limit). When every candidate exceeds it, the one with the smallest KL is taken.
        seed: Unused (HOOF is deterministic), kept for the common signature.

    Raises:
        ValueError: For another learner or env, or a grid without ``learning_rate``.
    """

    name = "hoof"

    def __init__(self, env: gym.Env, max_kl: float | None = 0.03, seed: int | None = None) -> None:
        super().__init__(env.action_space, seed)
        inner: Any = env.unwrapped  # a HyperRLEnv (checked below)
        space = getattr(inner, "space", None)
        if space is None or not hasattr(inner, "algo"):
            raise ValueError(f"HOOF needs a HyperRLEnv (gym.make of a HyperRL id), got {env!r}")
        if inner.algo not in ("A2C", "PPO"):
            raise ValueError(f"HOOF supports A2C and PPO learners (first-order updates), not {inner.algo}")
        if "learning_rate" not in space.names:
            raise ValueError(f"HOOF chooses the learning rate, but the grid has only {list(space.names)}")
        if max_kl is not None and not max_kl > 0:
            raise ValueError(f"max_kl must be > 0 or None, got {max_kl!r}")
        self.env, self.space, self.max_kl = inner, space, max_kl
        self.action_mode = inner.action_mode
        self.default = np.asarray(space.default_indices(), dtype=np.int64)
        self.chosen = [p.name for p in space.params if p.name in HOOF_HYPERPARAMS]
        #: Per step: the chosen values, their estimate, KL, and how many candidates the KL limit removed.
        self.last: dict[str, Any] = {}
        self._probe: Any = None
        self._probe_of: Any = None

    # ------------------------------------------------------------------ candidates
    def _candidates(self) -> list[np.ndarray]:
        position = {p.name: j for j, p in enumerate(self.space.params)}
        ranges = [range(self.space.nvec[position[name]]) for name in self.chosen]
        out = []
        for combo in itertools.product(*ranges):
            idx = self.default.copy()
            for name, k in zip(self.chosen, combo, strict=True):
                idx[position[name]] = k
            out.append(idx)
        return out

    @staticmethod
    @torch.no_grad()
    def _last_values(learner: Any) -> np.ndarray:
        """``[1, E]`` values of the observations after the rollout (GAE's bootstrap)."""
        last = learner.policy.predict_values(learner.policy.obs_to_tensor(learner._last_obs)[0])
        return last.cpu().numpy().reshape(1, -1)

    def _batch(
        self, learner: Any, gamma: float, lam: float, last_values: np.ndarray | None = None
    ) -> RolloutBufferSamples:
        """The learner's next update batch, with advantages and returns recomputed for ``(gamma, lam)``."""
        buf = learner.buffer
        t_steps, n_envs = buf.buffer_size, buf.n_envs
        values = buf.values.reshape(n_envs, t_steps).T  # the buffer is flattened env-major
        last = self._last_values(learner) if last_values is None else last_values
        adv, ret = batched_gae(
            buf.rewards[:, None], values[:, None], buf.episode_starts[:, None], last,
            np.asarray(learner._last_episode_starts, dtype=bool)[None], np.array([gamma]), np.array([lam]),
        )  # fmt: skip
        flat_adv = torch.as_tensor(adv[:, 0].T.reshape(-1), device=learner.device)
        flat_ret = torch.as_tensor(ret[:, 0].T.reshape(-1), device=learner.device)
        batch = learner._next_batch()
        index = getattr(learner, "_order", None)
        if index is not None:  # PPO: the learner's next minibatch, by its own shuffled order
            rows = torch.as_tensor(index[learner._cursor : learner._cursor + len(batch.advantages)])
        else:
            rows = torch.arange(len(flat_adv))
        return batch._replace(advantages=flat_adv[rows], returns=flat_ret[rows])

    def _direction(self, learner: Any, batch: RolloutBufferSamples) -> list[torch.Tensor]:
        """The update's parameter change at learning rate 1 (the step is linear in the learning rate)."""
        with torch.enable_grad():
            loss, _ = learner._loss(batch)
            grads = torch.autograd.grad(loss, learner.params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(learner.params, grads, strict=True)]
        if learner.clip_gradients:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            max_norm = float(learner._hp.get("max_grad_norm", learner.config.max_grad_norm))
            grads = [g * torch.clamp(max_norm / (norm + 1e-6), max=1.0) for g in grads]
        probe = [p.detach().clone().requires_grad_(True) for p in learner.params]
        optimizer = type(learner.optimizer)(probe, **learner.optimizer.defaults)
        optimizer.load_state_dict(copy.deepcopy(learner.optimizer.state_dict()))
        for group in optimizer.param_groups:
            group["lr"] = 1.0
        for p, g in zip(probe, grads, strict=True):
            p.grad = g.detach().clone()
        optimizer.step()
        return [(p.detach() - q.detach()) for p, q in zip(probe, learner.params, strict=True)]

    def _probe_policy(self, learner: Any) -> Any:
        """A second policy of the learner's architecture whose parameters the candidates are loaded into."""
        if self._probe is None or self._probe_of is not learner:
            # Built with a forked RNG: the draw of its (immediately overwritten) initial weights must not
            # move anyone's random stream.
            with torch.random.fork_rng(devices=[]):
                self._probe = learner._build_policy().to(learner.device)
            self._probe.set_training_mode(False)
            self._probe_of = learner
        return self._probe

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def _score(
        self, learner: Any, probe: Any, direction: list[torch.Tensor], lr: float, base_dist: Any
    ) -> tuple[float, float]:
        """WIS estimate and mean KL of the policy one update of rate ``lr`` along ``direction`` would give."""
        buf = learner.buffer
        for p, q, d in zip(probe.parameters(), learner.params, direction, strict=True):
            p.copy_(q + lr * d)
        obs = torch.as_tensor(buf.observations, device=learner.device)
        actions = torch.as_tensor(buf.actions, device=learner.device)
        if isinstance(learner.action_space, gym.spaces.Discrete):
            actions = actions.long().flatten()
        dist = probe.get_distribution(obs)  # one forward pass gives both the ratios and the KL
        log_prob = dist.log_prob(actions)
        t_steps, n_envs = buf.buffer_size, buf.n_envs
        log_ratio = (log_prob.cpu().numpy() - buf.log_probs.reshape(-1)).reshape(n_envs, t_steps)
        estimate = wis_estimate(log_ratio, buf.rewards.T)
        kl = torch.distributions.kl_divergence(base_dist, dist.distribution)
        kl = kl.sum(-1) if kl.dim() > 1 else kl
        return estimate, float(kl.mean())

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The candidate with the best WIS estimate within the KL limit."""
        learner = self.env.learner
        if learner is None or learner.rollout_exhausted:
            return self.space.from_indices(self.default, self.action_mode)
        values = {p.name: p.values for p in self.space.params}
        position = {p.name: j for j, p in enumerate(self.space.params)}
        candidates = self._candidates()
        buf = learner.buffer
        probe = self._probe_policy(learner)
        with torch.no_grad():
            obs_t = torch.as_tensor(buf.observations, device=learner.device)
            base_dist = learner.policy.get_distribution(obs_t).distribution
        in_force = learner.hyperparams_in_force()
        last_values = self._last_values(learner)
        directions: dict[tuple[float, float], list[torch.Tensor]] = {}
        scores, kls = [], []
        for idx in candidates:
            gamma = float(values["gamma"][idx[position["gamma"]]]) if "gamma" in position else in_force["gamma"]
            lam = (
                float(values["gae_lambda"][idx[position["gae_lambda"]]])
                if "gae_lambda" in position
                else in_force["gae_lambda"]
            )
            if (gamma, lam) not in directions:
                batch = self._batch(learner, gamma, lam, last_values)
                directions[(gamma, lam)] = self._direction(learner, batch)
            lr = float(values["learning_rate"][idx[position["learning_rate"]]])
            estimate, kl = self._score(learner, probe, directions[(gamma, lam)], lr, base_dist)
            scores.append(estimate)
            kls.append(kl)
        scores_a, kls_a = np.array(scores), np.array(kls)
        allowed = np.isfinite(scores_a) & (kls_a <= self.max_kl if self.max_kl is not None else True)
        if not allowed.any():
            best = int(np.nanargmin(np.where(np.isfinite(kls_a), kls_a, np.inf)))
        else:
            top = np.where(allowed, scores_a, -np.inf)
            tied = np.flatnonzero(top >= top.max() - 1e-12)
            # Ties (e.g. equal rewards everywhere carry no signal): the candidate nearest the defaults.
            best = int(min(tied, key=lambda k: int(np.abs(candidates[k] - self.default).sum())))
        self.last = {
            "values": self.space.values_at(candidates[best]), "estimate": float(scores_a[best]),
            "kl": float(kls_a[best]), "rejected": int((~allowed).sum()),
        }  # fmt: skip
        return self.space.from_indices(candidates[best], self.action_mode)

    def config(self) -> dict[str, Any]:
        """Settings."""
        return {**super().config(), "max_kl": self.max_kl, "chooses": self.chosen}
