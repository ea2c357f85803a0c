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

**Privileged agent**: HOOF reads the learner core through ``env.unwrapped.learner`` (its policy, optimiser
state and current rollout), which no other hyper-agent sees; it changes nothing there (gradients are
taken with ``torch.autograd.grad``, the probe step runs on a copy of the optimiser, and the candidate
policies are evaluated together as the members of a copy of the policy). In this MDP ``gamma`` and
``gae_lambda`` are per-rollout hyperparameters: the env applies them from the next rollout, so HOOF's
choice of them is evaluated on the current rollout but takes effect one rollout later.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hypergym.agents.base import HyperAgent
from hypergym.learners.gae import batched_gae
from hypergym.learners.records import select_rows

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

    def _batch(self, learner: Any, gamma: float, lam: float) -> dict[str, torch.Tensor]:
        """The learner's next update batch (member 0), with advantages and returns recomputed for ``(gamma, lam)``."""
        r = learner.rollout
        adv, ret = batched_gae(
            r.rewards, r.values, r.episode_starts, r.last_values, r.dones, np.array([gamma]), np.array([lam])
        )
        n = adv.shape[0] * adv.shape[2]

        def flat(x: np.ndarray) -> torch.Tensor:  # [T, 1, E] -> [1, E * T], the batch's order
            return torch.as_tensor(np.ascontiguousarray(x.transpose(1, 2, 0)).reshape(1, n), device=learner.device)

        batch = {**learner.batch, "advantages": flat(adv), "returns": flat(ret)}
        rows = learner.batch_rows()
        if rows is None:
            return batch
        return select_rows(batch, rows)  # PPO: the learner's next minibatch, by its own shuffled order

    def _direction(self, learner: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[1, P]``: the update's parameter change at learning rate 1 (the step is linear in the learning rate)."""
        policy = learner.policy
        kept = policy.flat_grad.clone()  # the learner's own gradient buffer is left as it was
        with torch.enable_grad():
            loss, _ = learner.member_losses(batch)
            policy.zero_grad()
            policy.backward(loss.sum())
        grad = policy.flat_grad.clone()
        policy.flat_grad.copy_(kept)
        max_norm = learner.hyperparams_in_force().get("max_grad_norm")
        if max_norm is not None:
            norm = torch.linalg.vector_norm(grad, dim=1)
            grad = grad * torch.clamp(float(max_norm[0]) / (norm + 1e-6), max=1.0)[:, None]
        return learner.optimizer.direction(grad)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def _scores(self, learner: Any, flats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """WIS estimates and mean KLs from the current policy of the K candidate parameter vectors ``flats``.

        The candidates are evaluated in one forward pass, as the K members of a copy of the policy.
        """
        policy = learner.policy
        obs, actions = learner.batch["observations"], learner.batch["actions"]  # [1, E * T, ...]
        k = flats.shape[0]
        candidates = policy.with_parameters(flats)
        params, _ = candidates.forward(obs.expand(k, *obs.shape[1:]))
        log_prob, _ = candidates.log_prob_entropy(params, actions.expand(k, *actions.shape[1:]))
        base_params, _ = policy.forward(obs)
        kl = policy.kl(base_params.expand_as(params), params, candidates.log_std() if not policy.discrete else None)
        rewards = learner.rollout.rewards[:, 0].T  # [E, T]: each env's segment is one trajectory
        log_ratio = (log_prob - learner.batch["old_log_prob"]).cpu().numpy().reshape(k, *rewards.shape)
        estimates = np.array([wis_estimate(log_ratio[c], rewards) for c in range(k)])
        return estimates, kl.mean(1).cpu().numpy().astype(np.float64)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The candidate with the best WIS estimate within the KL limit."""
        learner = self.env.learner
        if learner is None or learner.rollout_exhausted:
            return self.space.from_indices(self.default, self.action_mode)
        values = {p.name: p.values for p in self.space.params}
        position = {p.name: j for j, p in enumerate(self.space.params)}
        candidates = self._candidates()
        in_force = learner.hyperparams_in_force()
        directions: dict[tuple[float, float], torch.Tensor] = {}
        steps = []
        for idx in candidates:
            gamma = float(values["gamma"][idx[position["gamma"]]]) if "gamma" in position else in_force["gamma"][0]
            lam = (
                float(values["gae_lambda"][idx[position["gae_lambda"]]])
                if "gae_lambda" in position
                else in_force["gae_lambda"][0]
            )
            if (gamma, lam) not in directions:
                directions[(gamma, lam)] = self._direction(learner, self._batch(learner, float(gamma), float(lam)))
            lr = float(values["learning_rate"][idx[position["learning_rate"]]])
            steps.append(learner.flat[0] + lr * directions[(gamma, lam)][0])
        scores_a, kls_a = self._scores(learner, torch.stack(steps))
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
