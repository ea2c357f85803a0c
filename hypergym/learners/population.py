"""Batched A2C and PPO: M independent inner runs (members) trained as one computation.

A :class:`PopulationLearner` is the population counterpart of :class:`~hypergym.learners.OnPolicyLearner`:
the same network (member ``i`` starts from exactly the weights of the single-run learner with the same
seed), losses, GAE, timeout bootstrapping, optimiser (SB3's Adam / RMSprop settings) and rollback rules,
but every member's parameters are rows of one ``[M, P]`` tensor (:class:`BatchedActorCritic`) and
every per-step hyperparameter (``learning_rate``, ``clip_range``, ``ent_coef``, ``vf_coef``,
``max_grad_norm``) and per-rollout one (``gamma``, ``gae_lambda``) is an ``[M]`` array. Gradients are
clipped per member, optimiser steps use each member's learning rate, and a member whose update
diverges is rolled back alone.

Hyperparameters that change a member's amount of work per update (``batch_size``, ``n_epochs``) can be
scheduled, but take the same value for every member at any time: every member takes the same number of
update steps per rollout, so the members' update phases, rollouts and learning episodes stay in lockstep
(with one member, as a single run, they are free). ``n_steps`` is a fixed setting.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from hypergym.devices import resolve_device
from hypergym.learners.a2c import A2CLearner
from hypergym.learners.acktr import ACKTRLearner
from hypergym.learners.base import RECENT_EPISODES, OnPolicyLearner, RolloutStats, Scope, build_policy
from hypergym.learners.batched_kfac import BatchedKFAC
from hypergym.learners.batched_optim import BatchedAdam, BatchedOptimizer, BatchedRMSprop
from hypergym.learners.batched_policy import BatchedActorCritic
from hypergym.learners.config import A2CConfig, ACKTRConfig, LearnerConfig, PPOConfig
from hypergym.learners.gae import batched_gae
from hypergym.learners.losses import a2c_loss, acktr_fisher_loss, normalize_advantages, ppo_loss
from hypergym.learners.ppo import PPOLearner
from hypergym.learners.rollback import RowSnapshot
from hypergym.seeding import TorchRNG, derive_seeds
from hypergym.spaces import check_value

if TYPE_CHECKING:
    from hypergym.envs.members import MemberVecEnv

__all__ = [
    "POPULATION_LEARNERS",
    "WORK_HYPERPARAMS",
    "PopulationA2C",
    "PopulationACKTR",
    "PopulationLearner",
    "PopulationPPO",
    "PopulationUpdate",
]

#: Hyperparameters that change how much work one member's update phase is: the same for every member.
WORK_HYPERPARAMS = ("batch_size", "n_epochs", "n_steps")


@dataclass
class PopulationUpdate:
    """Outcome of one update step of every member."""

    losses: dict[str, np.ndarray]
    """Per member: ``loss``, ``policy_loss``, ``value_loss``, ``entropy_loss``, ``grad_norm``, ``n_samples``
    and, for PPO, ``approx_kl`` and ``clip_fraction``."""
    diverged: np.ndarray
    """``[M]`` bool: the member's update was non-finite and rolled back."""


class PopulationLearner:
    """Base of the batched learners.

    Args:
        venv: The members' inner envs (:class:`~hypergym.envs.members.MemberVecEnv`).
        config: The learner configuration shared by every member (the hyperparameters' defaults).
        seeds: One learner seed per member (weights are drawn as the single-run learner draws them).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        n_orders: Past gradients kept for the hyper-state.

    Raises:
        ValueError: If the task's spaces cannot be batched, or the seeds do not match the envs.
    """

    algo: ClassVar[str]
    config_class: ClassVar[type[LearnerConfig]]
    #: The single-run learner this one batches (its scopes are this learner's).
    reference: ClassVar[type[OnPolicyLearner]]

    def __init__(
        self,
        venv: MemberVecEnv,
        config: LearnerConfig,
        seeds: Sequence[int],
        device: str | torch.device = "auto",
        n_orders: int = 2,
    ) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if len(seeds) != venv.n_members:
            raise ValueError(f"{len(seeds)} learner seeds for {venv.n_members} members")
        if n_orders < 0:
            raise ValueError(f"n_orders must be >= 0, got {n_orders!r}")
        self.venv = venv
        self.config = config
        self.device = resolve_device(device)
        self.n_members, self.n_envs = venv.n_members, venv.n_envs
        self.observation_space, self.action_space = venv.observation_space, venv.action_space
        policies = []
        for seed in seeds:
            torch_seed, _ = derive_seeds(int(seed), 2)
            with TorchRNG(torch_seed, torch.device("cpu")).active():
                policies.append(build_policy(self.observation_space, self.action_space, config))
        self.policy = BatchedActorCritic(policies, self.device)
        self.flat = self.policy.flat
        self.layer_infos = self.policy.layer_infos
        self.optimizer = self._build_optimizer()
        # One stream for the population's sampling noise and minibatch orders; every draw has the same
        # shape whatever the members do, so member i's draws never depend on member j's values.
        torch_seed, np_seed = np.random.SeedSequence([int(s) for s in seeds]).generate_state(2)
        self.generator = torch.Generator(device=self.device).manual_seed(int(torch_seed))
        self.np_rng = np.random.default_rng(int(np_seed))

        m = self.n_members
        self.scopes: Mapping[str, Scope] = self.reference.scopes
        self._step_hp = {
            name: torch.full((m,), float(getattr(config, name)), device=self.device, dtype=torch.float64)
            for name, scope in self.scopes.items()
            if scope is Scope.STEP
        }
        self._rollout_hp = {
            name: np.full(m, float(getattr(config, name)))
            for name, scope in self.scopes.items()
            if scope is Scope.ROLLOUT
        }
        self._pending: dict[str, np.ndarray] = {}
        self._in_force_rollout = {name: v.copy() for name, v in self._rollout_hp.items()}
        self._in_force_work: dict[str, np.ndarray] = {}  # batch_size as the last minibatch used it

        self.n_orders = n_orders
        self.grad_slots = torch.zeros((n_orders, *self.flat.shape), device=self.device)
        self._np_views: tuple[list[np.ndarray], list[list[np.ndarray]]] | None = None
        state = [self.flat, *self.optimizer.tensors()]
        self._checkpoint = RowSnapshot(state)
        self._initial = RowSnapshot(state)

        self.env_steps = 0
        self.updates = 0
        self._recent: list[deque[float]] = [deque(maxlen=RECENT_EPISODES) for _ in range(m)]
        self._last_obs = venv.reset()
        self._last_starts = np.ones((m, self.n_envs), dtype=bool)
        self._exhausted = True
        self.batch: dict[str, torch.Tensor] = {}
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_np_views"] = None  # NumPy views of tensors: rebuilt on first use after unpickling
        state["_loaded"] = True  # the unpickled learner checks its envs at its next rollout
        return state

    # ------------------------------------------------------------------ construction
    def _build_optimizer(self) -> BatchedOptimizer:
        return BatchedAdam(self.flat, self.policy.flat_grad, eps=1e-5)

    # ------------------------------------------------------------------ hyperparameters
    def supported_hyperparams(self) -> list[str]:
        """Names :meth:`apply` accepts (the single-run learner's)."""
        return list(self.scopes)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        """Set hyperparameters, one value per member (a scalar applies to every member).

        Per-step ones take effect at the next update, per-rollout ones at the next rollout.

        Raises:
            ValueError: On an unknown name, an invalid value, the wrong number of values, or values of
                ``batch_size`` / ``n_epochs`` that differ between members.
        """
        m = self.n_members
        for name, value in hparams.items():
            if name not in self.scopes:
                raise ValueError(
                    f"unknown hyperparameter {name!r}; {type(self).__name__} supports {sorted(self.scopes)}"
                )
            values = np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)) if np.ndim(value) == 0 else value
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (m,):
                raise ValueError(f"{name} needs one value per member ({m}), got shape {values.shape}")
            checked = np.array([check_value(name, float(v)) for v in values], dtype=np.float64)
            if name in WORK_HYPERPARAMS and np.any(checked != checked[0]):
                raise ValueError(
                    f"{name} changes a member's amount of work per update, and the members of a population update "
                    f"in lockstep: it must be the same for every member, got {checked.tolist()}. Give every "
                    f"member the same value, or use one HyperRLEnv per run"
                )
            if self.scopes[name] is Scope.ROLLOUT:
                self._pending[name] = checked
            else:
                self._step_hp[name].copy_(torch.as_tensor(checked))

    def hyperparams_in_force(self) -> dict[str, np.ndarray]:
        """``[M]`` values in force, read back rather than echoed.

        Per-step ones as the next update uses them (``batch_size`` as the last minibatch used it),
        per-rollout ones as the current rollout's advantages and epochs were computed with.
        """
        out: dict[str, np.ndarray] = {name: t.cpu().numpy().copy() for name, t in self._step_hp.items()}
        out.update({name: v.copy() for name, v in self._in_force_rollout.items()})
        out.update(self._in_force_work)
        return {k: out[k] for k in self.scopes}

    # ------------------------------------------------------------------ population operations
    def recent_returns(self) -> list[np.ndarray]:
        """Each member's most recent raw episode returns (up to the last 100), oldest first."""
        return [np.asarray(r, dtype=np.float64) for r in self._recent]

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Make member ``dst``'s training state a copy of member ``src``'s (PBT's exploit).

        Copied: parameters, optimiser state, gradient history, rollback snapshots, recent episode returns,
        the current rollout and its minibatch order (so ``dst``'s next update is ``src``'s, given the same
        hyperparameters) and the
        per-rollout hyperparameters that rollout's advantages were computed with, and the observation
        normalisation statistics. Not copied: ``dst``'s inner envs (their episodes go on) and
        hyperparameters that take effect later (per-step ones and the next rollout's: set them next).

        Raises:
            ValueError: If a member index is out of range.
        """
        for name, k in (("dst", dst), ("src", src)):
            if not 0 <= int(k) < self.n_members:
                raise ValueError(f"{name}={k!r} is not a member index (0..{self.n_members - 1})")
        if dst == src:
            return
        for t in (self.flat, *self.optimizer.tensors(), *self._checkpoint.saved, *self._initial.saved):
            t[dst] = t[src]
        self.grad_slots[:, dst] = self.grad_slots[:, src]
        for t in [*self.batch.values(), *self._rollout_state()]:
            t[dst] = t[src]
        for values in self._in_force_rollout.values():
            values[dst] = values[src]
        self._recent[dst] = deque(self._recent[src], maxlen=RECENT_EPISODES)
        self._last_obs[dst] = self.venv.copy_member_statistics(dst, src)

    # ------------------------------------------------------------------ hyper-state views
    def layer_weights(self) -> list[torch.Tensor]:
        """``[M, rows, cols]`` weights of every hyper-state layer (detached views)."""
        return self.policy.layer_weights(self.flat)

    def numpy_views(self) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """CPU only: NumPy views of every layer's ``[M, rows, cols]`` weight and of each past gradient.

        The views share memory with ``flat`` and the gradient history (both updated in place), so they
        are built once and stay current.
        """
        if self._np_views is None:
            if self.device.type != "cpu":
                raise RuntimeError("numpy_views is for CPU populations")
            weights = [w.numpy() for w in self.policy.layer_weights(self.flat)]
            grads = [[g.numpy() for g in self.policy.layer_weights(self.grad_slots[n])] for n in range(self.n_orders)]
            self._np_views = (weights, grads)
        return self._np_views

    def gradients(self, order: int) -> list[torch.Tensor]:
        """``[M, rows, cols]`` ``order``-th most recent gradient of every layer (zero before any update)."""
        if not 1 <= order <= self.n_orders:
            raise ValueError(f"order must be in 1..{self.n_orders}, got {order!r}")
        return self.policy.layer_weights(self.grad_slots[order - 1])

    # ------------------------------------------------------------------ environment phase
    def _act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Actions, values and log-probabilities for ``obs [M, E, D]``, and which members were rolled back.

        A member whose outputs are non-finite returns to its last finite state (then to its initial one)
        and acts again, as a single run does when its action sampler rejects the distribution.
        """
        rolled = np.zeros(self.n_members, dtype=bool)
        bad = rolled
        for target in (None, self._checkpoint, self._initial):
            if target is not None:
                target.restore(torch.as_tensor(bad, device=self.device))
                rolled |= bad
            if self.policy.numpy_acting:
                actions, values, log_prob, finite = self.policy.act_numpy(obs, self.np_rng)
            else:
                with torch.no_grad():
                    params, values_t = self.policy.forward(torch.as_tensor(obs, device=self.device))
                    finite_t = torch.isfinite(params).flatten(1).all(1) & torch.isfinite(values_t).all(1)
                    safe = torch.nan_to_num(params)
                    actions_t = self.policy.sample(safe, self.generator)
                    log_prob_t, _ = self.policy.log_prob_entropy(safe, actions_t)
                actions, values = actions_t.cpu().numpy(), values_t.cpu().numpy()
                log_prob, finite = log_prob_t.cpu().numpy(), finite_t.cpu().numpy()
            bad = ~finite
            if not bad.any():
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
        obs_buf = np.zeros((t_steps, m, e, *self.observation_space.shape), dtype=obs_dtype)
        act_buf = np.zeros((t_steps, m, e, *self.action_space.shape), dtype=np.float32 if box else np.int64)
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
                _, terminal_values, _, _ = self._act(terminal)
                r = r + np.where(mask, gamma[:, None] * terminal_values, 0.0).astype(np.float32)
            for i, ep_return, ep_length in step.episodes:
                returns[i].append(ep_return)
                lengths[i].append(ep_length)
            obs_buf[t], act_buf[t], logp_buf[t], values[t] = obs, actions, log_prob, value
            rewards[t], starts[t], raw[t] = r, self._last_starts, step.raw_rewards
            self._last_obs = step.obs
            self._last_starts = step.dones
        _, last_values, _, bad = self._act(self._last_obs)
        rolled |= bad
        adv, ret = batched_gae(rewards, values, starts, last_values, self._last_starts, gamma, lam)
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
            stats.append(RolloutStats(returns[i], lengths[i], raw[:, i], tuple(self._recent[i])))
        self._exhausted = False
        self._on_new_rollout()
        return stats, rolled

    # ------------------------------------------------------------------ update phase
    @property
    def rollout_exhausted(self) -> bool:
        """Whether the current rollout is used up (the next update needs a new rollout)."""
        return self._exhausted

    def update_step(self) -> PopulationUpdate:
        """ONE update step of every member with its hyperparameters in force.

        A member whose loss or gradient is non-finite returns to its last finite state and is reported
        ``diverged``; the other members' updates are unaffected.

        Raises:
            RuntimeError: If the current rollout is used up.
        """
        if self._exhausted:
            raise RuntimeError("the current rollout is used up: call collect_rollout() before update_step()")
        batch = self._next_batch()
        loss, parts = self.member_losses(batch)
        finite = torch.isfinite(loss)
        all_finite = bool(finite.all())
        self._checkpoint.save(None if all_finite else finite)
        self.policy.zero_grad()
        self.policy.backward((loss if all_finite else torch.where(finite, loss, torch.zeros_like(loss))).sum())
        grad = self.policy.flat_grad
        with torch.no_grad():
            norms = torch.linalg.vector_norm(grad, dim=1)
            ok = finite & torch.isfinite(norms)
            all_ok = all_finite and bool(ok.all())
            # The gradient history advances only for members whose update goes through (as a single run).
            for n in range(self.n_orders - 1, 0, -1):
                if all_ok:
                    self.grad_slots[n].copy_(self.grad_slots[n - 1])
                else:
                    self.grad_slots[n].copy_(torch.where(ok[:, None], self.grad_slots[n - 1], self.grad_slots[n]))
            if self.n_orders:
                self.grad_slots[0].copy_(grad if all_ok else torch.where(ok[:, None], grad, self.grad_slots[0]))
            if "max_grad_norm" in self._step_hp:
                max_norm = self._step_hp["max_grad_norm"].to(grad.dtype)
                grad.mul_(torch.clamp(max_norm / (norms + 1e-6), max=1.0)[:, None])
            failed = self._optimizer_step()
            if failed is not None and bool(failed.any()):
                ok &= ~failed
                all_ok = False
            if not all_ok:
                self._checkpoint.restore(~ok)
                grad[~ok] = 0.0
        self.updates += 1
        n_samples = batch["advantages"].shape[1]
        self._advance(n_samples)
        stacked = torch.stack([*parts.values(), norms.to(loss.dtype)]).detach().cpu().numpy().astype(np.float64)
        losses = dict(zip([*parts, "grad_norm"], stacked, strict=True))
        losses["n_samples"] = np.full(self.n_members, float(n_samples))
        return PopulationUpdate(losses, ~ok.cpu().numpy())

    def _optimizer_step(self) -> torch.Tensor | None:
        """Step every member's parameters with its gradient; ``[M]`` members whose step failed, if any can."""
        self.optimizer.step(self._step_hp["learning_rate"])
        return None

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._step_hp["ent_coef"].float(), self._step_hp["vf_coef"].float()

    def _evaluate(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params, values = self.policy.forward(batch["observations"])
        log_prob, entropy = self.policy.log_prob_entropy(params, batch["actions"])
        return values, log_prob, entropy

    # ------------------------------------------------------------------ subclass hooks
    def _rollout_state(self) -> list[torch.Tensor]:
        """Per-member state of the current rollout's consumption besides the batch (member dim first)."""
        return []

    def _on_new_rollout(self) -> None:
        raise NotImplementedError

    def _next_batch(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _advance(self, n_samples: int) -> None:
        raise NotImplementedError

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``[M]`` losses of every member on ``batch`` (tensors ``[M, B, ...]``), and their parts."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the inner environments."""
        self.venv.close()


class PopulationA2C(PopulationLearner):
    """Batched A2C (:class:`~hypergym.learners.A2CLearner`): one update on the whole rollout per step."""

    algo = "A2C"
    config_class = A2CConfig
    reference = A2CLearner
    config: A2CConfig

    def _build_optimizer(self) -> BatchedOptimizer:
        if not self.config.use_rms_prop:
            return BatchedAdam(self.flat, self.policy.flat_grad, eps=1e-5)
        return BatchedRMSprop(
            self.flat, self.policy.flat_grad, alpha=self.config.rms_prop_alpha, eps=self.config.rms_prop_eps
        )

    def _on_new_rollout(self) -> None:
        pass

    def _next_batch(self) -> dict[str, torch.Tensor]:
        return self.batch

    def _advance(self, n_samples: int) -> None:
        self._exhausted = True

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of each member (as :meth:`A2CLearner._a2c_loss`)."""
        return self._a2c_loss(batch, *self._evaluate(batch))

    def _a2c_loss(
        self, batch: Mapping[str, torch.Tensor], values: torch.Tensor, log_prob: torch.Tensor, entropy: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ent_coef, vf_coef = self._coefficients()
        advantages = batch["advantages"]
        if self.config.normalize_advantage:
            advantages = normalize_advantages(advantages)
        return a2c_loss(log_prob, advantages, values, batch["returns"], entropy, ent_coef, vf_coef)


class PopulationPPO(PopulationLearner):
    """Batched PPO (:class:`~hypergym.learners.PPOLearner`): one minibatch step per update step.

    Each member draws its own permutation of the rollout for every epoch; each step takes the next
    ``batch_size`` samples of it (a batch size changed mid-pass takes effect at the very next step), and a
    rollout lasts ``n_epochs`` passes (as in force when it was collected). Both are the same for every
    member, so with a fixed b a rollout lasts ``n_epochs * ceil(N / b)`` steps for every member.
    """

    algo = "PPO"
    config_class = PPOConfig
    reference = PPOLearner
    config: PPOConfig

    def _permutation(self) -> torch.Tensor:
        n = self.batch["advantages"].shape[1]
        return torch.rand((self.n_members, n), generator=self.generator, device=self.device).argsort(1)

    def _rollout_state(self) -> list[torch.Tensor]:
        return [self._order]  # each member's minibatch order of this epoch

    def _on_new_rollout(self) -> None:
        self._epochs = int(self._rollout_hp["n_epochs"][0])
        self._epoch = 0
        self._cursor = 0
        self._order = self._permutation()

    def steps_per_rollout(self, batch_size: int | None = None, n_epochs: int | None = None) -> int:
        """``n_epochs * ceil(N / b)``: update steps one rollout lasts with a fixed batch size."""
        b = int(batch_size if batch_size is not None else self._step_hp["batch_size"][0])
        epochs = int(n_epochs if n_epochs is not None else self._rollout_hp["n_epochs"][0])
        return epochs * math.ceil(self.config.n_steps * self.n_envs / b)

    def _next_batch(self) -> dict[str, torch.Tensor]:
        b = int(self._step_hp["batch_size"][0])
        self._in_force_work["batch_size"] = np.full(self.n_members, b)
        idx = self._order[:, self._cursor : self._cursor + b]
        out = {}
        for name, x in self.batch.items():
            index = idx.view(idx.shape + (1,) * (x.dim() - 2))
            out[name] = torch.take_along_dim(x, index, dim=1)
        return out

    def _advance(self, n_samples: int) -> None:
        self._cursor += n_samples
        if self._cursor >= self.batch["advantages"].shape[1]:
            self._epoch += 1
            self._cursor = 0
            if self._epoch >= self._epochs:
                self._exhausted = True
            else:
                self._order = self._permutation()

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clipped-surrogate loss of each member (as :meth:`PPOLearner._loss`)."""
        ent_coef, vf_coef = self._coefficients()
        values, log_prob, entropy = self._evaluate(batch)
        advantages = batch["advantages"]
        if self.config.normalize_advantage and advantages.shape[1] > 1:
            advantages = normalize_advantages(advantages)
        clip = self._step_hp["clip_range"].float()
        return ppo_loss(
            log_prob, batch["old_log_prob"], advantages, values, batch["returns"], entropy, clip, ent_coef, vf_coef
        )


class PopulationACKTR(PopulationA2C):
    """Batched ACKTR (:class:`~hypergym.learners.ACKTRLearner`): A2C whose optimiser is K-FAC, per member.

    The rollout, GAE and A2C loss are :class:`PopulationA2C`'s; on a statistics step the update first
    back-propagates each member's Fisher loss (:func:`~hypergym.learners.losses.acktr_fisher_loss`, with
    the value's noise drawn for all members at once) while the policy records its layers, then
    :class:`~hypergym.learners.batched_kfac.BatchedKFAC` takes every member's natural-gradient step with
    its own ``learning_rate``, ``kl_clip`` and ``damping``. Gradients are not clipped.
    """

    algo = "ACKTR"
    config_class = ACKTRConfig  # type: ignore[assignment]  # ACKTR's settings are not A2C's (no RMSprop)
    reference = ACKTRLearner
    config: ACKTRConfig  # type: ignore[assignment]
    optimizer: BatchedKFAC

    def _build_optimizer(self) -> BatchedOptimizer:
        c = self.config
        return BatchedKFAC(
            self.flat,
            self.policy.flat_grad,
            self.policy,
            momentum=c.momentum,
            stat_decay=c.stat_decay,
            weight_decay=c.weight_decay,
            stats_every=c.stats_every,
            inverse_every=c.inverse_every,
            damping_mode=c.damping_mode,
        )

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of each member; on statistics steps, after the Fisher pass that K-FAC records."""
        if not bool(self.optimizer.wants_stats().any()):
            return super().member_losses(batch)
        with self.policy.recording() as recording:
            values, log_prob, entropy = self._evaluate(batch)
            noise = torch.randn(values.shape, generator=self.generator, device=self.device, dtype=values.dtype)
            fisher = acktr_fisher_loss(log_prob, values, noise, self.config.vf_fisher_coef)
            fisher_finite = torch.isfinite(fisher)
            self.policy.backward(torch.where(fisher_finite, fisher, torch.zeros_like(fisher)).sum(), retain_graph=True)
        self.optimizer.record(recording)
        loss, parts = self._a2c_loss(batch, values, log_prob, entropy)
        # No curvature can be estimated from a non-finite Fisher loss: a divergence, as a non-finite loss.
        loss = torch.where(fisher_finite, loss, torch.full_like(loss, math.nan))
        return loss, {**parts, "fisher_loss": fisher.detach()}

    def _optimizer_step(self) -> torch.Tensor | None:
        hp = self._step_hp
        return self.optimizer.step(hp["learning_rate"], hp["kl_clip"], hp["damping"])

    def update_step(self) -> PopulationUpdate:
        """One K-FAC update of every member; ``losses["kl_scale"]`` is each member's trust-region factor nu."""
        result = super().update_step()
        nu = self.optimizer.last_nu.cpu().numpy().copy()
        nu[result.diverged] = np.nan
        result.losses["kl_scale"] = nu
        return result


#: Batched learners by algorithm name.
POPULATION_LEARNERS: dict[str, type[PopulationLearner]] = {
    "A2C": PopulationA2C,
    "ACKTR": PopulationACKTR,
    "PPO": PopulationPPO,
}
