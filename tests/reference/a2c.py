"""A2C, one update on the whole current rollout per hyper-step."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from hypergym.learners import A2CLearner as CoreA2CLearner
from hypergym.learners.config import A2CConfig
from reference.base import OnPolicyLearner

__all__ = ["A2CLearner"]


class A2CLearner(OnPolicyLearner):
    """Advantage Actor-Critic (synchronous): each rollout feeds exactly one gradient step."""

    config_class = A2CConfig
    scopes: ClassVar = CoreA2CLearner.scopes
    config: A2CConfig

    def _optimizer_kwargs(self) -> dict[str, Any]:
        if not self.config.use_rms_prop:
            return {}
        return {
            "optimizer_class": torch.optim.RMSprop,
            "optimizer_kwargs": {
                "alpha": self.config.rms_prop_alpha,
                "eps": self.config.rms_prop_eps,
                "weight_decay": 0,
            },
        }

    def _on_new_rollout(self) -> None:
        self._n_samples = self._flatten_buffer()

    def _next_batch(self) -> RolloutBufferSamples:
        return self.buffer._get_samples(np.arange(self._n_samples))

    def _advance(self, n_samples: int) -> None:
        self._exhausted = True

    def _loss(self, batch: RolloutBufferSamples) -> tuple[torch.Tensor, dict[str, float]]:
        return self._a2c_loss(batch, *self._evaluate(batch))

    def _a2c_loss(
        self,
        batch: RolloutBufferSamples,
        values: torch.Tensor,
        log_prob: torch.Tensor,
        entropy: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The A2C loss from the policy's outputs on the batch."""
        ent_coef, vf_coef = self._coefficients()
        advantages = batch.advantages
        if self.config.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # Policy loss: policy gradient with the advantage as weight
        policy_loss = -(advantages * log_prob).mean()

        # Value loss
        value_loss = F.mse_loss(batch.returns, values)

        # Entropy loss (approximated by -log_prob when the distribution has no closed form)
        entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)

        loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
        return loss, {
            "loss": loss.item(),
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy_loss": entropy_loss.item(),
        }
