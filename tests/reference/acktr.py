"""ACKTR: A2C whose optimiser is K-FAC with a KL trust region (Wu et al., 2017).

The rollout, the GAE and the A2C loss are the A2C learner's; only the optimiser differs (STYLE point 2).
On statistics steps the update first back-propagates the *Fisher loss* with K-FAC recording: the
negative log-likelihood of the rollout's actions (sampled from the current policy, since each rollout
feeds exactly one update) plus ``vf_fisher_coef`` times the regression of the value onto a noisy copy of
itself, ``-mean((v - stopgrad(v + N(0, 1)))^2)``, as the ACKTR code bases do. Gradients are not clipped:
the trust region bounds the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from hypergym.learners import ACKTRLearner as CoreACKTRLearner
from hypergym.learners.config import ACKTRConfig
from reference.a2c import A2CLearner
from reference.kfac import KFAC

__all__ = ["ACKTRLearner"]

#: Hyperparameters that live in the K-FAC optimiser's parameter group (read back from there).
_OPTIMIZER_HYPERPARAMS = ("kl_clip", "damping")


class ACKTRLearner(A2CLearner):
    """Actor-Critic using Kronecker-Factored Trust Region: one K-FAC update per rollout."""

    config_class = ACKTRConfig  # type: ignore[assignment]  # ACKTR's settings are not A2C's (no RMSprop)
    clip_gradients = False
    scopes: ClassVar = CoreACKTRLearner.scopes
    config: ACKTRConfig  # type: ignore[assignment]
    optimizer: KFAC

    def _optimizer_kwargs(self) -> dict[str, Any]:
        # SB3 builds an optimiser with the policy; a plain SGD is the cheapest placeholder, replaced below.
        return {"optimizer_class": torch.optim.SGD, "optimizer_kwargs": {}}

    def _build_policy(self) -> ActorCriticPolicy:
        policy = super()._build_policy()
        cfg = self.config
        policy.optimizer = KFAC(
            policy,
            lr=cfg.learning_rate,
            kl_clip=cfg.kl_clip,
            damping=cfg.damping,
            **cfg.kfac_kwargs(),
        )
        return policy

    def apply(self, hparams: Mapping[str, float | int]) -> None:
        """Set hyperparameters; ``kl_clip`` and ``damping`` go into the K-FAC optimiser for the next step."""
        super().apply(hparams)
        for name in _OPTIMIZER_HYPERPARAMS:
            if name in hparams:
                for group in self.optimizer.param_groups:
                    group[name] = float(self._hp[name])

    def hyperparams_in_force(self) -> dict[str, float | int]:
        """As every learner's, with ``kl_clip`` and ``damping`` read back from the optimiser."""
        out = super().hyperparams_in_force()
        for name in _OPTIMIZER_HYPERPARAMS:
            out[name] = float(self.optimizer.param_groups[0][name])
        return out

    def _loss(self, batch: RolloutBufferSamples) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.optimizer.wants_stats():
            return self._a2c_loss(batch, *self._evaluate(batch))
        with self.optimizer.capture():
            values, log_prob, entropy = self._evaluate(batch)
            # Fisher loss: sampled actions for the policy, a unit-variance noisy target for the value.
            pg_fisher = -log_prob.mean()
            noisy_target = (values + torch.randn_like(values)).detach()
            vf_fisher = -((values - noisy_target) ** 2).mean()
            fisher_loss = pg_fisher + self.config.vf_fisher_coef * vf_fisher
            fisher_finite = bool(torch.isfinite(fisher_loss))
            if fisher_finite:
                fisher_loss.backward(retain_graph=True)
        loss, losses = self._a2c_loss(batch, values, log_prob, entropy)
        losses["fisher_loss"] = fisher_loss.item()
        if not fisher_finite:
            # No curvature can be estimated from this batch: a divergence, handled as a non-finite loss.
            loss = loss + float("nan")
        return loss, losses

    def _optimizer_step(self, losses: dict[str, float]) -> bool:
        ok = super()._optimizer_step(losses)
        if ok:
            losses["kl_scale"] = self.optimizer.last_nu
        return ok

    def close(self) -> None:
        """Remove K-FAC's hooks and close the inner environments."""
        self.optimizer.close()
        super().close()
