"""ACKTR in the learner core: A2C whose optimiser is K-FAC with a KL trust region (STYLE point 2).

On statistics steps the update first back-propagates the *Fisher loss* while the policy records its
layers: the negative log-likelihood of the rollout's actions (sampled from the current policy, since each
rollout feeds exactly one update) plus ``vf_fisher_coef`` times the regression of the value onto a noisy
copy of itself, as the ACKTR code bases do. Gradients are not clipped: the trust region bounds the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from hypergym.learners.a2c import A2CLearner
from hypergym.learners.config import ACKTRConfig, LearnerConfig
from hypergym.learners.kfac import KFAC
from hypergym.learners.losses import acktr_fisher_loss
from hypergym.learners.optim import BatchedOptimizer
from hypergym.learners.records import Scope, UpdateResult

__all__ = ["ACKTRLearner"]


class ACKTRLearner(A2CLearner):
    """Actor-Critic using Kronecker-Factored Trust Region (Wu et al., 2017): A2C whose optimiser is K-FAC.

    The rollout, GAE and A2C loss are :class:`~hypergym.learners.A2CLearner`'s; on a statistics step the update first
    back-propagates each member's Fisher loss (:func:`~hypergym.learners.losses.acktr_fisher_loss`, with
    the value's noise drawn for all members at once) while the policy records its layers, then
    :class:`~hypergym.learners.kfac.KFAC` takes every member's natural-gradient step with
    its own ``learning_rate``, ``kl_clip`` and ``damping``. Gradients are not clipped.
    """

    algo = "ACKTR"
    config_class = ACKTRConfig  # type: ignore[assignment]  # ACKTR's settings are not A2C's (no RMSprop)
    scopes: ClassVar = {
        "learning_rate": Scope.STEP,
        "kl_clip": Scope.STEP,
        "damping": Scope.STEP,
        "ent_coef": Scope.STEP,
        "vf_coef": Scope.STEP,
        "gae_lambda": Scope.ROLLOUT,
        "gamma": Scope.ROLLOUT,
    }
    config: ACKTRConfig  # type: ignore[assignment]
    optimizer: KFAC

    @classmethod
    def adam_kwargs(cls, config: LearnerConfig) -> dict[str, Any]:
        """ACKTR has no Adam: its optimiser's settings are the K-FAC settings of :class:`ACKTRConfig`.

        Raises:
            ValueError: For any optimiser option in ``policy_kwargs``.
        """
        given = sorted({"optimizer_class", "optimizer_kwargs"} & set(config.policy_kwargs))
        if given:
            raise ValueError(
                f"ACKTR's optimiser is K-FAC; policy_kwargs {given} do not apply (set kl_clip, damping, momentum, "
                "stat_decay, weight_decay, stats_every, inverse_every, damping_mode)"
            )
        return {}

    def _build_optimizer(self) -> BatchedOptimizer:
        c = self.config
        return KFAC(
            self.flat,
            self.policy.flat_grad,
            self.policy,
            **c.kfac_kwargs(),  # type: ignore[arg-type]
        )

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of each member; on statistics steps, after the Fisher pass that K-FAC records."""
        if not bool(self.optimizer.wants_stats().any()):
            return super().member_losses(batch)
        with self.policy.recording() as recording:
            values, log_prob, entropy = self._evaluate(batch)
            noise = self.streams.torch_normal(values.shape[1:], self.device, values.dtype)
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
        return self.optimizer.step(hp["learning_rate"] * self.lr_scale, hp["kl_clip"], hp["damping"])

    def update_step(self) -> UpdateResult:
        """One K-FAC update of every member; ``losses["kl_scale"]`` is each member's trust-region factor nu."""
        result = super().update_step()
        nu = self.optimizer.last_nu.cpu().numpy().copy()
        nu[result.diverged] = np.nan
        result.losses["kl_scale"] = nu
        return result
