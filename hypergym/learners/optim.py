"""Adam and RMSprop over a population's ``[M, P]`` parameters, with a step size per member.

One ``torch.optim`` optimiser over stacked parameters has one learning rate for every member, and for
Adam and RMSprop scaling a member's gradient does not change its effective step (their normalisation is
scale-invariant). These optimisers keep torch's update rules (``torch.optim.Adam`` and ``RMSprop`` with
their default flags, as SB3's A2C and PPO create them) but take the learning rate as an ``[M]`` tensor, and
keep every state tensor with a leading member dimension so rollbacks and copies are row operations.
"""

from __future__ import annotations

import copy

import torch

__all__ = ["BatchedAdam", "BatchedOptimizer", "BatchedRMSprop"]


class BatchedOptimizer:
    """Base: state tensors shaped like the parameters ``[M, P]`` plus a per-member step count."""

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        self.flat = flat
        self.grad = grad
        self.step_count = torch.zeros(flat.shape[0], dtype=torch.float64, device=flat.device)
        self.state: dict[str, torch.Tensor] = {}

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the optimiser state (each with the member dimension first)."""
        return [self.step_count, *self.state.values()]

    def step(self, lr: torch.Tensor) -> None:
        """One update of every member with its own step size ``lr [M]``."""
        raise NotImplementedError

    @torch.no_grad()
    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """``[M, P]``: the change one step with gradient ``grad`` and step size 1 would make (nothing changes).

        Adam's and RMSprop's steps are linear in the step size, so a step of rate ``lr`` is ``lr`` times this.
        """
        probe = copy.copy(self)
        probe.flat = self.flat.detach().clone()
        probe.grad = grad.detach().clone()
        probe.step_count = self.step_count.clone()
        probe.state = {name: value.clone() for name, value in self.state.items()}
        probe.step(torch.ones(self.flat.shape[0], dtype=torch.float64, device=self.flat.device))
        return probe.flat - self.flat


class BatchedAdam(BatchedOptimizer):
    """``torch.optim.Adam`` (no AMSGrad, no weight decay) with a per-member learning rate.

    Args:
        flat: The ``[M, P]`` parameters.
        grad: The ``[M, P]`` tensor that holds their gradients at each step.
        betas: Adam's ``(beta1, beta2)``.
        eps: Added to the denominator (SB3: 1e-5).
    """

    def __init__(
        self, flat: torch.Tensor, grad: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5
    ) -> None:
        super().__init__(flat, grad)
        self.betas, self.eps = betas, eps
        self.state = {"exp_avg": torch.zeros_like(flat), "exp_avg_sq": torch.zeros_like(flat)}

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, as torch's Adam."""
        grad = self.grad
        b1, b2 = self.betas
        self.step_count += 1
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        m.lerp_(grad, 1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        bias1 = 1 - b1**self.step_count
        bias2_sqrt = torch.sqrt(1 - b2**self.step_count)
        step_size = (lr.to(torch.float64) / bias1).to(self.flat.dtype).unsqueeze(1)
        denom = (v.sqrt() / bias2_sqrt.to(self.flat.dtype).unsqueeze(1)).add_(self.eps)
        self.flat.addcdiv_(m * step_size, denom, value=-1.0)


class BatchedRMSprop(BatchedOptimizer):
    """``torch.optim.RMSprop`` (not centred, no momentum, no weight decay) with a per-member learning rate.

    Args:
        flat: The ``[M, P]`` parameters.
        grad: The ``[M, P]`` tensor that holds their gradients at each step.
        alpha: Smoothing constant of the squared-gradient average.
        eps: Added to the denominator.
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, alpha: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__(flat, grad)
        self.alpha, self.eps = alpha, eps
        self.state = {"square_avg": torch.zeros_like(flat)}

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """``v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps)``, as torch's RMSprop."""
        grad = self.grad
        self.step_count += 1
        v = self.state["square_avg"]
        v.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
        denom = v.sqrt().add_(self.eps)
        self.flat.addcdiv_(grad * lr.to(self.flat.dtype).unsqueeze(1), denom, value=-1.0)
