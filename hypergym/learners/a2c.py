"""A2C in the learner core: one update on the whole current rollout per hyper-step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from hypergym.learners.config import A2CConfig, LearnerConfig
from hypergym.learners.core import Learner
from hypergym.learners.losses import a2c_loss, normalize_advantages
from hypergym.learners.optim import BatchedOptimizer
from hypergym.learners.optimizers import build_optimizer
from hypergym.learners.records import Scope

__all__ = ["A2CLearner"]


class A2CLearner(Learner):
    """Advantage Actor-Critic (synchronous), for every member: each rollout feeds exactly one gradient step."""

    algo = "A2C"
    config_class = A2CConfig
    scopes: ClassVar = {
        "learning_rate": Scope.STEP,
        "ent_coef": Scope.STEP,
        "vf_coef": Scope.STEP,
        "max_grad_norm": Scope.STEP,
        "gae_lambda": Scope.ROLLOUT,
        "gamma": Scope.ROLLOUT,
    }
    config: A2CConfig

    @classmethod
    def adam_kwargs(cls, config: LearnerConfig) -> dict[str, Any]:
        """Adam's settings when ``use_rms_prop=False``; RMSprop's are ``rms_prop_eps`` and ``rms_prop_alpha``.

        Raises:
            ValueError: For ``policy_kwargs["optimizer_kwargs"]`` with RMSprop (set its two settings instead).
        """
        kwargs = super().adam_kwargs(config)
        rms_prop = config.optimizer is None and getattr(config, "use_rms_prop", False)  # the `optimizer` setting wins
        if rms_prop and config.policy_kwargs.get("optimizer_kwargs"):
            raise ValueError(
                "A2C with RMSprop takes its settings from rms_prop_eps and rms_prop_alpha, not from "
                "policy_kwargs['optimizer_kwargs'] (which is for Adam: use_rms_prop=False)"
            )
        return kwargs

    def _build_optimizer(self) -> BatchedOptimizer:
        c = self.config
        name = c.optimizer or ("rmsprop" if c.use_rms_prop else "adam")
        adam = self.adam_kwargs(c) if name == "adam" else {}
        rmsprop = {"alpha": c.rms_prop_alpha, "eps": c.rms_prop_eps}
        return build_optimizer(name, self.flat, self.policy.flat_grad, adam, rmsprop)

    def _on_new_rollout(self) -> None:
        pass

    def member_losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The A2C loss of each member (:func:`~hypergym.learners.losses.a2c_loss`)."""
        return self._a2c_loss(batch, *self._evaluate(batch))

    def _a2c_loss(
        self, batch: Mapping[str, torch.Tensor], values: torch.Tensor, log_prob: torch.Tensor, entropy: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ent_coef, vf_coef = self._coefficients()
        advantages = batch["advantages"]
        if self.config.normalize_advantage:
            advantages = normalize_advantages(advantages)
        return a2c_loss(log_prob, advantages, values, batch["returns"], entropy, ent_coef, vf_coef)
