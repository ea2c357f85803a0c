"""HOOF (Paul, Kurin and Whiteson, 2019): hyperparameters picked on the fly by importance sampling.

At every update HOOF considers each candidate value of the hyperparameters that shape the policy
gradient, forms the policy each would give after the update, and estimates that candidate policy's
return on the rollout already collected, by weighted importance sampling (WIS) over trajectories, each
weighted by the product of its likelihood ratios ``pi_candidate(a|s) / pi_behaviour(a|s)`` (HOOF, Sec. 4,
Eq. 5). Candidates whose mean KL from the current policy exceeds ``max_kl`` are discarded; the best
remaining estimate is the action.

WIS needs many trajectories: with one, every candidate's estimate is that trajectory's return. HOOF ran
many parallel workers; a rollout here often holds one env's segment of a few thousand steps (PPO on
MuJoCo) or of five steps (A2C). So the rollout is cut into about ``n_trajectories`` short trajectories
(every ``ceil(T / ceil(n_trajectories / E))`` steps and at episode starts), each returning its discounted
rewards bootstrapped by the critic at its end (:func:`segment_returns`): the n-step returns A2C trains
on. When the estimates still cannot tell the best candidates apart (equal to float precision, e.g. a
rollout of equal rewards and values), HOOF takes the candidate nearest the defaults and says so in
``last["tied"]`` and in the run's ``steps.csv`` (column ``agent_tied``).

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

from hypergym.agents.base import HyperAgent, check_single_env
from hypergym.checks import check_count
from hypergym.learners.gae import batched_gae
from hypergym.learners.records import select_rows

__all__ = ["HOOFAgent", "segment_returns", "wis_estimate"]

#: Hyperparameters HOOF chooses (those that shape the policy gradient), when the grid holds them.
HOOF_HYPERPARAMS = ("learning_rate", "gamma", "gae_lambda")


def segment_returns(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a rollout into short trajectories, each with its critic-bootstrapped discounted return.

    Each env's ``T`` steps are cut every ``length`` steps and wherever an episode starts. A trajectory's
    return is ``sum_t gamma^t r_t`` over its steps plus ``gamma^L V(s_next)`` for the state after its last
    step (0 when the episode ended there): the n-step return that A2C itself trains its critic on.

    Args:
        rewards: ``[T, E]`` rewards.
        values: ``[T, E]`` values of the observations acted on.
        episode_starts: ``[T, E]`` whether each observation started an episode.
        last_values: ``[E]`` values after the last step.
        dones: ``[E]`` whether the last step ended an episode.
        gamma: Discount.
        length: Longest trajectory, in steps.

    Returns:
        ``[T, E]`` the trajectory id of every step (ids ``0..K-1``) and ``[K]`` the trajectories' returns.
    """
    t_steps, n_envs = rewards.shape
    ids = np.zeros((t_steps, n_envs), dtype=np.int64)
    returns: list[float] = []
    for e in range(n_envs):
        t0 = 0
        while t0 < t_steps:
            t1 = t0 + 1  # one past the trajectory's last step
            while t1 < t_steps and t1 - t0 < length and not episode_starts[t1, e]:
                t1 += 1
            if t1 < t_steps:
                bootstrap = 0.0 if episode_starts[t1, e] else float(values[t1, e])
            else:
                bootstrap = 0.0 if dones[e] else float(last_values[e])
            discounts = gamma ** np.arange(t1 - t0 + 1)
            ids[t0:t1, e] = len(returns)
            returns.append(float(np.dot(discounts[:-1], rewards[t0:t1, e]) + discounts[-1] * bootstrap))
            t0 = t1
    return ids, np.asarray(returns)


def wis_estimate(log_weights: np.ndarray, returns: np.ndarray) -> float:
    """HOOF's weighted importance-sampling estimate of a candidate policy's return.

    Args:
        log_weights: ``[K]`` each trajectory's ``sum_t log pi_candidate(a|s) - log pi_behaviour(a|s)``.
        returns: ``[K]`` the trajectories' returns.

    Returns:
        ``sum_k w_k R_k / sum_k w_k`` with ``w_k = exp(log_weights[k])``.
    """
    log_w = np.asarray(log_weights, dtype=np.float64)
    w = np.exp(log_w - log_w.max())  # the normalisation makes the scale irrelevant; this keeps it finite
    return float(np.dot(w, returns) / w.sum())


class HOOFAgent(HyperAgent):
    """HOOF for a single ``HyperRLEnv`` with an A2C or PPO learner (a privileged agent: see the module).

    Args:
        env: A ``HyperRLEnv`` (A2C or PPO) whose grid holds ``learning_rate``.
        max_kl: Largest mean KL divergence from the current policy a candidate may have (``None``: no
            limit). When every candidate exceeds it, the one with the smallest KL is taken.
        n_trajectories: How many trajectories the rollout is cut into, at least (see the module).
        seed: Unused (HOOF is deterministic), kept for the common signature.

    Raises:
        ValueError: For another learner or env, or a grid without ``learning_rate``.
    """

    name = "hoof"

    def __init__(
        self, env: gym.Env, max_kl: float | None = 0.03, n_trajectories: int = 32, seed: int | None = None
    ) -> None:
        super().__init__(env.action_space, seed)
        check_single_env(env, "HOOFAgent")
        inner: Any = env.unwrapped  # a HyperRLEnv (checked below)
        if isinstance(getattr(inner, "population", None), gym.vector.VectorEnv):  # a member's view (PerMemberAgent)
            raise ValueError(
                "HOOF scores candidate updates of one learner and has no population form: run it on single runs "
                "(gym.make; hypergym compare runs it seed by seed)"
            )
        space = getattr(inner, "space", None)
        if space is None or not hasattr(inner, "algo"):
            raise ValueError(f"HOOF needs a HyperRLEnv (gym.make of a HyperRL id), got {env!r}")
        if inner.algo not in ("A2C", "PPO"):
            raise ValueError(f"HOOF supports A2C and PPO learners (first-order updates), not {inner.algo}")
        if "learning_rate" not in space.names:
            raise ValueError(f"HOOF chooses the learning rate, but the grid has only {list(space.names)}")
        if max_kl is not None and not max_kl > 0:
            raise ValueError(f"max_kl must be > 0 or None, got {max_kl!r}")
        check_count("n_trajectories", n_trajectories, least=2)
        self.env, self.space, self.max_kl, self.n_trajectories = inner, space, max_kl, n_trajectories
        self.action_mode = inner.action_mode
        self.default = np.asarray(space.default_indices(), dtype=np.int64)
        self.chosen = [p.name for p in space.params if p.name in HOOF_HYPERPARAMS]
        #: Per step: the chosen values, their estimate and KL, how many candidates the KL limit removed, how
        #: many share the best estimate (``tied``), and every candidate's estimate.
        self.last: dict[str, Any] = {}
        self._cut: tuple[Any, np.ndarray, np.ndarray] | None = None  # (rollout, ids, returns) of the last cut

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
        ids, returns = self._trajectories(learner)
        # The batch is in SB3's order (env-major: [E, T]); the trajectory ids are [T, E].
        log_ratio = (log_prob - learner.batch["old_log_prob"]).cpu().numpy().astype(np.float64)
        flat_ids = ids.T.reshape(-1)
        log_w = np.stack([np.bincount(flat_ids, weights=log_ratio[c], minlength=len(returns)) for c in range(k)])
        estimates = np.array([wis_estimate(log_w[c], returns) for c in range(k)])
        return estimates, kl.mean(1).cpu().numpy().astype(np.float64)

    def _trajectories(self, learner: Any) -> tuple[np.ndarray, np.ndarray]:
        """The current rollout's trajectories (:func:`segment_returns`), cut once per rollout.

        Every hyper-step of a PPO phase scores on the same rollout (and the same gamma, which changes only
        with the rollout), so the cut is kept until the learner collects a new one.
        """
        r = learner.rollout
        if self._cut is not None and self._cut[0] is r:
            return self._cut[1], self._cut[2]
        t_steps, n_envs = r.rewards.shape[0], r.rewards.shape[2]
        length = max(1, -(-t_steps // -(-self.n_trajectories // n_envs)))
        gamma = float(learner.hyperparams_in_force()["gamma"][0])
        ids, returns = segment_returns(
            r.rewards[:, 0], r.values[:, 0], r.episode_starts[:, 0], r.last_values[0], r.dones[0], gamma, length
        )
        self._cut = (r, ids, returns)
        return ids, returns

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The candidate with the best WIS estimate within the KL limit."""
        learner = self.env.learner
        if learner is None or learner.rollout_exhausted:
            self.last = {}  # nothing to score: the next rollout is not collected yet
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
            steps.append(learner.flat[0] + lr * learner.lr_scale * directions[(gamma, lam)][0])
        scores_a, kls_a = self._scores(learner, torch.stack(steps))
        allowed = np.isfinite(scores_a) & (kls_a <= self.max_kl if self.max_kl is not None else True)
        if not allowed.any():
            best = int(np.nanargmin(np.where(np.isfinite(kls_a), kls_a, np.inf)))
        else:
            top = np.where(allowed, scores_a, -np.inf)
            tied = np.flatnonzero(top >= top.max() - 1e-9 * max(1.0, abs(top.max())))
            # Ties carry no signal: the candidate nearest the defaults, reported as tied (see the module).
            best = int(min(tied, key=lambda k: int(np.abs(candidates[k] - self.default).sum())))
        self.last = {
            "values": self.space.values_at(candidates[best]), "estimate": float(scores_a[best]),
            "kl": float(kls_a[best]), "rejected": int((~allowed).sum()),
            "tied": len(tied) if allowed.any() else 0, "estimates": scores_a,
        }  # fmt: skip
        return self.space.from_indices(candidates[best], self.action_mode)

    def step_record(self) -> dict[str, float | int]:
        """What ``steps.csv`` records of this step's choice: estimate, KL, rejected and tied candidates."""
        return {name: self.last[name] for name in ("estimate", "kl", "rejected", "tied") if name in self.last}

    def config(self) -> dict[str, Any]:
        """Settings."""
        return {**super().config(), "max_kl": self.max_kl, "n_trajectories": self.n_trajectories,
                "chooses": self.chosen}  # fmt: skip
