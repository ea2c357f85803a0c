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

    Each member draws its own permutation of the rollout for every epoch; each step takes its next
    ``batch_size`` samples of it (a batch size changed mid-pass takes effect at the very next step), and a
    rollout lasts the member's ``n_epochs`` passes (as in force when it was collected): with a fixed b,
    ``n_epochs * ceil(N / b)`` steps. Both are each member's own; a member done with the rollout waits for
    the others (see :class:`~hypergym.learners.core.Learner`).
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

    def _permutation(self, members: np.ndarray | None = None) -> torch.Tensor:
        n = self.batch["advantages"].shape[1]
        return self.streams.torch_uniform((n,), self.device, members).argsort(1)

    def _rollout_state(self) -> list[torch.Tensor | np.ndarray]:
        return [self._order, self._epochs, self._epoch, self._cursor]  # each member's pass through the rollout

    def _on_new_rollout(self) -> None:
        m = self.n_members
        self._epochs = self._rollout_hp["n_epochs"].astype(np.int64)
        self._epoch, self._cursor = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
        self._order = self._permutation()

    def steps_per_rollout(self, batch_size: int | None = None, n_epochs: int | None = None) -> int:
        """``n_epochs * ceil(N / b)``: update steps one rollout lasts with a fixed batch size (member 0's)."""
        b = int(batch_size if batch_size is not None else self._step_hp["batch_size"][0])
        epochs = int(n_epochs if n_epochs is not None else self._rollout_hp["n_epochs"][0])
        return epochs * math.ceil(self.config.n_steps * self.n_envs / b)

    def _rows(self, size: int) -> torch.Tensor:
        """``[M, size]``: each member's next ``size`` samples by its order (a waiting member's first ones)."""
        start = self._cursor
        if (start == start[0]).all():
            return self._order[:, int(start[0]) : int(start[0]) + size]
        n = self._order.shape[1]
        at = torch.as_tensor(start, device=self.device)[:, None] + torch.arange(size, device=self.device)
        return self._order.gather(1, at.clamp_(max=n - 1))

    def batch_rows(self) -> torch.Tensor:
        """``[M, b]``: each member's next minibatch, by its shuffled order of this epoch (member 0's ``b``)."""
        return self._rows(min(int(self._step_hp["batch_size"][0]), self._order.shape[1] - int(self._cursor[0])))

    def _next_batches(self, active: np.ndarray) -> list[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        b = self._step_hp["batch_size"].cpu().numpy().astype(np.int64)
        sizes = np.minimum(b, self._order.shape[1] - self._cursor)
        work = self._in_force_work.setdefault("batch_size", b.copy())
        work[active] = b[active]
        # One pass per minibatch size among the members that update (one pass when they agree).
        return [(active & (sizes == n), select_rows(self.batch, self._rows(int(n)))) for n in np.unique(sizes[active])]

    def _advance(self, n_samples: np.ndarray) -> None:
        self._cursor += n_samples
        ended = self._cursor >= self._order.shape[1]
        self._epoch[ended] += 1
        self._cursor[ended] = 0
        self._exhausted |= ended & (self._epoch >= self._epochs)
        again = ended & ~self._exhausted
        if again.all():
            self._order = self._permutation()
        elif again.any():  # only these members draw, as their single runs do here
            rows = torch.as_tensor(again, device=self.device)
            self._order[rows] = self._permutation(again)[rows]

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
