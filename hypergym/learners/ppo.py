"""PPO in the learner core: one minibatch gradient step per hyper-step."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch

from hypergym.learners.config import PPOConfig
from hypergym.learners.core import Learner
from hypergym.learners.losses import normalize_advantages, ppo_loss
from hypergym.learners.records import Scope, select_rows

__all__ = ["PPOLearner"]


class PPOLearner(Learner):
    """Proximal Policy Optimisation (clipped surrogate) for every member, stepped one minibatch at a time.

    Each member draws its own permutation of the rollout for every epoch; each step takes the next
    ``batch_size`` samples of it (a batch size changed mid-pass takes effect at the very next step), and a
    rollout lasts ``n_epochs`` passes (as in force when it was collected). Both are the same for every
    member, so with a fixed b a rollout lasts ``n_epochs * ceil(N / b)`` steps for every member.
    """

    algo = "PPO"
    config_class = PPOConfig
    scopes: ClassVar = {
        "learning_rate": Scope.STEP,
        "clip_range": Scope.STEP,
        "batch_size": Scope.STEP,
        "ent_coef": Scope.STEP,
        "vf_coef": Scope.STEP,
        "max_grad_norm": Scope.STEP,
        "gae_lambda": Scope.ROLLOUT,
        "gamma": Scope.ROLLOUT,
        "n_epochs": Scope.ROLLOUT,
    }
    config: PPOConfig

    def _permutation(self) -> torch.Tensor:
        n = self.batch["advantages"].shape[1]
        return self.streams.torch_uniform((n,), self.device).argsort(1)

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

    def batch_rows(self) -> torch.Tensor:
        """``[M, b]``: each member's next minibatch, by its shuffled order of this epoch."""
        return self._order[:, self._cursor : self._cursor + int(self._step_hp["batch_size"][0])]

    def _next_batch(self) -> dict[str, torch.Tensor]:
        b = int(self._step_hp["batch_size"][0])
        self._in_force_work["batch_size"] = np.full(self.n_members, b)
        return select_rows(self.batch, self._order[:, self._cursor : self._cursor + b])

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
        """The clipped-surrogate loss of each member (:func:`~hypergym.learners.losses.ppo_loss`)."""
        ent_coef, vf_coef = self._coefficients()
        values, log_prob, entropy = self._evaluate(batch)
        advantages = batch["advantages"]
        if self.config.normalize_advantage and advantages.shape[1] > 1:
            advantages = normalize_advantages(advantages)
        clip = self._step_hp["clip_range"].float()
        return ppo_loss(
            log_prob, batch["old_log_prob"], advantages, values, batch["returns"], entropy, clip, ent_coef, vf_coef
        )
