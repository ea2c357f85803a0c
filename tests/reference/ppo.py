"""PPO, one minibatch gradient step per hyper-step."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from hypergym.learners import PPOLearner as CorePPOLearner
from hypergym.learners.config import PPOConfig
from reference.base import OnPolicyLearner

__all__ = ["PPOLearner"]


class PPOLearner(OnPolicyLearner):
    """Proximal Policy Optimisation (clipped surrogate), stepped one minibatch at a time.

    Each rollout of N = ``n_steps * n_envs`` samples is consumed in ``n_epochs`` passes; each pass is a
    fresh permutation (from the learner's seeded generator) and each step takes the next ``batch_size``
    samples of it, so a batch size chosen mid-pass takes effect at the very next step, and with a fixed
    b a rollout lasts ``n_epochs * ceil(N / b)`` steps (the last batch of a pass may be smaller).
    """

    config_class = PPOConfig
    scopes: ClassVar = CorePPOLearner.scopes
    config: PPOConfig

    def _on_new_rollout(self) -> None:
        self._n_samples = self._flatten_buffer()
        self._epochs = int(self._hp["n_epochs"])
        self._in_force["n_epochs"] = self._epochs
        self._epoch = 0
        self._order = self.np_rng.permutation(self._n_samples)
        self._cursor = 0

    def _next_batch(self) -> RolloutBufferSamples:
        b = int(self._hp["batch_size"])
        self._in_force["batch_size"] = b
        return self.buffer._get_samples(self._order[self._cursor : self._cursor + b])

    def _advance(self, n_samples: int) -> None:
        self._cursor += n_samples
        if self._cursor >= self._n_samples:
            self._epoch += 1
            self._cursor = 0
            if self._epoch >= self._epochs:
                self._exhausted = True
            else:
                self._order = self.np_rng.permutation(self._n_samples)

    def steps_per_rollout(self, batch_size: int | None = None, n_epochs: int | None = None) -> int:
        """``n_epochs * ceil(N / b)``: update steps one rollout lasts with a fixed batch size."""
        b = int(batch_size if batch_size is not None else self._hp["batch_size"])
        epochs = int(n_epochs if n_epochs is not None else self._hp["n_epochs"])
        n = self.config.n_steps * self.n_envs
        return epochs * int(np.ceil(n / b))

    def _loss(self, batch: RolloutBufferSamples) -> tuple[torch.Tensor, dict[str, float]]:
        clip_range = float(self._hp["clip_range"])
        self._in_force["clip_range"] = clip_range
        ent_coef, vf_coef = self._coefficients()
        values, log_prob, entropy = self._evaluate(batch)
        advantages = batch.advantages
        if self.config.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # Policy loss: clipped surrogate objective
        log_ratio = log_prob - batch.old_log_prob
        ratio = torch.exp(log_ratio)
        surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range))
        policy_loss = -surrogate.mean()

        # Value loss
        value_loss = F.mse_loss(batch.returns, values)

        # Entropy loss (approximated by -log_prob when the distribution has no closed form)
        entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)

        loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
        with torch.no_grad():
            approx_kl = torch.mean((ratio - 1) - log_ratio)
            clip_fraction = torch.mean((torch.abs(ratio - 1) > clip_range).float())
        return loss, {
            "loss": loss.item(),
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy_loss": entropy_loss.item(),
            "approx_kl": approx_kl.item(),
            "clip_fraction": clip_fraction.item(),
        }
