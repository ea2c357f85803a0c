"""The learner core: A2C, PPO and ACKTR over M >= 1 members (inner runs) as one computation.

One policy update of every member is one call of :meth:`Learner.update_step`; a single run is a
population of one. Every member's parameters are rows of one ``[M, P]`` tensor
(:class:`~hypergym.learners.policy.BatchedActorCritic`, initial weights from SB3's policy with the
member's seed), every per-step hyperparameter (``learning_rate``, ``clip_range``, ``ent_coef``,
``vf_coef``, ``max_grad_norm``; ACKTR: ``kl_clip``, ``damping``) and per-rollout one (``gamma``,
``gae_lambda``) is an ``[M]`` array. Gradients are clipped per member, optimiser steps use each member's
own step size, and a member whose update diverges is rolled back alone.

The base class owns the rollout (timeout bootstrapping, raw-reward episode bookkeeping), GAE
(:func:`~hypergym.learners.gae.batched_gae`), the update step with its rollback and gradient history,
:meth:`Learner.apply` and :meth:`Learner.copy_member`; A2C, PPO and ACKTR override only how a batch is
chosen, the loss (:mod:`hypergym.learners.losses`) and the optimiser (SB3's template-method shape).

Hyperparameters that change a member's amount of work (PPO's ``batch_size``, ``n_epochs``) are each
member's own: a member that has used up the rollout waits (its state untouched, ``member_exhausted``)
until every member has, and the next rollout is collected for all at once, so rollouts stay in lockstep
while each member takes exactly its single run's update steps. Members whose minibatches differ in size
in one step are updated in one pass per size (a pass's other members are restored), so every member's
arithmetic is its single run's. ``n_steps`` is a fixed setting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from hypergym.devices import resolve_device
from hypergym.learners.config import LearnerConfig
from hypergym.learners.networks import build_policy
from hypergym.learners.optim import BatchedOptimizer
from hypergym.learners.optimizers import build_optimizer
from hypergym.learners.policy import BatchedActorCritic
from hypergym.learners.records import RECENT_EPISODES, Scope, UpdateResult
from hypergym.learners.rollback import RowSnapshot
from hypergym.learners.rollout import RolloutCollector
from hypergym.seeding import MemberStreams, TorchRNG, derive_seeds
from hypergym.spaces import INTEGER_HYPERPARAMS, check_value

if TYPE_CHECKING:
    from hypergym.envs.members import MemberVecEnv

__all__ = ["Learner"]


class Learner(RolloutCollector):
    """Base of the learner core (template method: subclasses give the batch, the loss and the optimiser).

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
    #: Hyperparameters this learner accepts through :meth:`apply`, with their scope.
    scopes: ClassVar[Mapping[str, Scope]] = {}

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
        # One stream per member for its sampling noise and minibatch orders: member i draws what the single
        # run of its seed draws (a PBT exploit copies a run's state, never its stream: members stay apart).
        self.streams = MemberStreams([int(s) for s in seeds], self.device)

        m = self.n_members
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
        self.use_optimizer(self._build_optimizer())

        self.env_steps = 0
        self.updates = 0
        #: ``[M]`` update steps each member has taken (members wait out a rollout they have used up).
        self.member_updates = np.zeros(m, dtype=np.int64)
        #: ``[M]`` members the last update step updated.
        self.last_active = np.ones(m, dtype=bool)
        #: Factor on every member's learning rate at its optimiser step (a schedule's decay; 1: none).
        self.lr_scale = 1.0
        self._recent: list[deque[float]] = [deque(maxlen=RECENT_EPISODES) for _ in range(m)]
        self._last_obs = venv.reset()
        self._last_starts = np.ones((m, self.n_envs), dtype=bool)
        self._exhausted = np.ones(m, dtype=bool)  # per member: the rollout is used up
        self.batch: dict[str, torch.Tensor] = {}
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_np_views"] = None  # NumPy views of tensors: rebuilt on first use after unpickling
        state["_loaded"] = True  # the unpickled learner checks its envs at its next rollout
        return state

    # ------------------------------------------------------------------ construction
    @classmethod
    def adam_kwargs(cls, config: LearnerConfig) -> dict[str, Any]:
        """Adam's settings: SB3's (eps 1e-5), updated by ``policy_kwargs["optimizer_kwargs"]`` (eps, betas).

        Raises:
            ValueError: For ``policy_kwargs`` options of the optimiser that the learner cannot honour.
        """
        if "optimizer_class" in config.policy_kwargs:
            raise ValueError(
                f"{cls.algo}'s optimiser is the `optimizer` setting (A2C: use_rms_prop too; ACKTR: K-FAC), not "
                f"policy_kwargs['optimizer_class']; Adam's arguments go in policy_kwargs['optimizer_kwargs']"
            )
        given = dict(config.policy_kwargs.get("optimizer_kwargs") or {})
        unknown = sorted(set(given) - {"eps", "betas"})
        if unknown:
            raise ValueError(f"policy_kwargs['optimizer_kwargs'] {unknown} are not supported; Adam takes eps, betas")
        return {"eps": 1e-5, **given}

    def _build_optimizer(self) -> BatchedOptimizer:
        grad, name = self.policy.flat_grad, self.config.optimizer or "adam"
        return build_optimizer(name, self.flat, grad, self.adam_kwargs(self.config))

    def use_optimizer(self, optimizer: BatchedOptimizer) -> None:
        """Step with ``optimizer`` from now on (meta-training's rule); rollbacks and copies carry its state."""
        self.optimizer, state = optimizer, [self.flat, *optimizer.tensors()]
        self._checkpoint, self._initial = RowSnapshot(state), RowSnapshot(state)

    # ------------------------------------------------------------------ hyperparameters
    @classmethod
    def supported_hyperparams(cls) -> list[str]:
        """Names :meth:`apply` accepts."""
        return list(cls.scopes)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        """Set hyperparameters, one value per member (a scalar applies to every member).

        Per-step ones take effect at the next update, per-rollout ones at the next rollout.

        Raises:
            ValueError: On an unknown name, an invalid value or the wrong number of values.
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
            for v in np.unique(values):  # per distinct value: a grid has few, a population many members
                check_value(name, float(v))
            checked = values.copy()  # the caller keeps its array
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
        return {k: out[k].astype(np.int64) if k in INTEGER_HYPERPARAMS else out[k] for k in self.scopes}

    # ------------------------------------------------------------------ population operations
    def recent_returns(self) -> list[np.ndarray]:
        """Each member's most recent raw episode returns (up to the last 100), oldest first."""
        return [np.asarray(r, dtype=np.float64) for r in self._recent]

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Make member ``dst``'s training state a copy of member ``src``'s (PBT's exploit).

        Copied: parameters, optimiser state, gradient history, rollback snapshots, recent episode returns,
        the current rollout and its minibatch order (so ``dst``'s next update is ``src``'s, given the same
        hyperparameters) and the per-rollout hyperparameters that rollout's advantages were computed with, and
        the observation normalisation statistics. Not copied: ``dst``'s inner envs (their episodes go on) and
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
        for state in [*self.batch.values(), *self._rollout_state(), self._exhausted]:
            state[dst] = state[src]
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

    # ------------------------------------------------------------------ update phase
    @property
    def rollout_exhausted(self) -> bool:
        """Whether every member has used up the current rollout (the next update needs a new rollout)."""
        return bool(self._exhausted.all())

    @property
    def member_exhausted(self) -> np.ndarray:
        """``[M]`` bool: members that have used up the current rollout (they wait: no update until the next)."""
        return self._exhausted.copy()

    def update_step(self) -> UpdateResult:
        """ONE update step of every member with its hyperparameters in force (members that wait excepted).

        A member whose loss or gradient is non-finite returns to its last finite state and is reported
        ``diverged``; the other members' updates are unaffected. A member that has used up the rollout
        (:attr:`member_exhausted`) is not updated (its losses are NaN).

        Raises:
            RuntimeError: If the current rollout is used up.
        """
        if self.rollout_exhausted:
            raise RuntimeError("the current rollout is used up: call collect_rollout() before update_step()")
        m = self.n_members
        active = ~self._exhausted
        losses: dict[str, np.ndarray] = {}
        diverged = np.zeros(m, dtype=bool)
        n_samples = np.zeros(m)
        for members, batch in self._next_batches(active):
            parts, ok = self._update_members(batch, None if members.all() else members)
            for name, values in parts.items():
                losses.setdefault(name, np.full(m, np.nan))[members] = values[members]
            diverged |= members & ~ok
            n_samples[members] = batch["advantages"].shape[1]
        self.updates += 1
        self.member_updates += active
        self.last_active = active
        self._advance(n_samples.astype(np.int64))
        losses["n_samples"] = n_samples
        return UpdateResult(losses, diverged)

    def _update_members(
        self, batch: dict[str, torch.Tensor], members: np.ndarray | None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One update of ``members`` (``None``: all) on ``batch``; the others' rows come back as they were.

        Returns:
            The ``[M]`` losses and gradient norms, and ``[M]`` whether each member's update went through.
        """
        loss, parts = self.member_losses(batch)
        finite = torch.isfinite(loss)
        if members is None:
            all_finite = bool(finite.all())
            self._checkpoint.save(None if all_finite else finite)
        else:  # the others' states are valid too: saved, so that restoring them below gives them back
            chosen = torch.as_tensor(members, device=self.device)
            self._checkpoint.save(finite | ~chosen)
            finite, all_finite = finite & chosen, False
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
        stacked = torch.stack([*parts.values(), norms.to(loss.dtype)]).detach().cpu().numpy().astype(np.float64)
        return dict(zip([*parts, "grad_norm"], stacked, strict=True)), ok.cpu().numpy()

    def _optimizer_step(self) -> torch.Tensor | None:
        """Step every member's parameters with its gradient; ``[M]`` members whose step failed, if any can."""
        self.optimizer.step(self._step_hp["learning_rate"] * self.lr_scale)
        return None

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._step_hp["ent_coef"].float(), self._step_hp["vf_coef"].float()

    def _evaluate(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params, values = self.policy.forward(batch["observations"])
        log_prob, entropy = self.policy.log_prob_entropy(params, batch["actions"])
        return values, log_prob, entropy

    # ------------------------------------------------------------------ subclass hooks
    def batch_rows(self) -> torch.Tensor | None:
        """``[M, b]`` rows of the rollout (``batch`` tensors' dimension 1) the next update uses; ``None``: all."""
        return None

    def _rollout_state(self) -> list[torch.Tensor | np.ndarray]:
        """Per-member state of the current rollout's consumption besides the batch (member dim first)."""
        return []

    def _on_new_rollout(self) -> None:
        raise NotImplementedError

    def _next_batches(self, active: np.ndarray) -> list[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """The next update's passes: ``(members [M] bool, batch)`` each (one pass unless sizes differ).

        Members that wait (``~active``) ride along in a pass without being in its ``members``.
        """
        return [(active, self.batch)]

    def _advance(self, n_samples: np.ndarray) -> None:
        """Move each member on by the ``[M]`` samples it used (0: it waited)."""
        self._exhausted[:] = True

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``[M]`` losses of every member on ``batch`` (tensors ``[M, B, ...]``), and their parts."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the inner environments."""
        self.venv.close()
