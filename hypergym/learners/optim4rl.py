"""Optim4RL (Lan, Mahmood, Yan, Xu; RLC 2024): a learned, coordinate-wise optimiser, and its meta-gradient.

Per scalar parameter two GRUs (hidden 8) read the gradient ``g`` and ``g^2``; MLPs map their outputs to
``o1``, ``o2``; the update has Adam's shape::

    m = sign(g) exp(o1),   v = exp(o2),   delta = -alpha m / sqrt(v + eps)

with ``g`` and ``g^2`` entering as constants (stop-gradient), so that the meta-gradient is first-order.
``alpha`` is the learning rate hyper-agents schedule. At initialisation (zero hidden states, small ``o``)
the update is close to ``-alpha sign(g)``; a coordinate whose gradient is exactly 0 does not move.

:class:`Optim4RLRule` is the rule (the meta-parameters); :class:`BatchedOptim4RL` applies it to a
population's ``[M, P]`` parameters, its hidden states ``[M, P, 8]`` part of the optimiser state (so
checkpoints, PBT's copies and rollbacks carry them). :func:`meta_loss` unrolls inner updates for the
meta-gradient; :func:`pipeline_offsets` and :func:`pipeline_resets` are pipeline training's staggered
resets. Settings and the official code's lines: ``shared/research/optim4rl.md``. The paper's MLPs have
hidden sizes (16, 16); the official code's default is one linear layer (``mlp=()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from hypergym.learners.optim import BatchedOptimizer

__all__ = ["BatchedOptim4RL", "Optim4RLRule", "meta_loss", "pipeline_offsets", "pipeline_resets"]


def _mlp(inputs: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 1))


class Optim4RLRule(nn.Module):
    """The learned update rule: ``(g, h_m, h_v) -> (u, h_m', h_v')`` with ``u = -m / sqrt(v + eps)`` per coordinate.

    Args:
        hidden: Units of each GRU (the paper: 8).
        mlp: Hidden widths of the two MLPs (the paper: (16, 16)).
        eps: Added to ``v`` inside the square root (the code: 1e-8).
    """

    def __init__(self, hidden: int = 8, mlp: Sequence[int] = (16, 16), eps: float = 1e-8) -> None:
        super().__init__()
        self.hidden, self.eps = hidden, eps
        self.gru_m, self.gru_v = nn.GRUCell(1, hidden), nn.GRUCell(1, hidden)
        self.mlp_m, self.mlp_v = _mlp(hidden, mlp), _mlp(hidden, mlp)

    def forward(
        self, grad: torch.Tensor, h_m: torch.Tensor, h_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The update direction of every coordinate of ``grad [N]`` (step size 1), and the new hidden states."""
        g = grad.detach().reshape(-1, 1).to(h_m.dtype)  # a constant of the meta-gradient
        h_m, h_v = self.gru_m(g, h_m), self.gru_v(g * g, h_v)
        m = torch.sign(g[:, 0]) * torch.exp(self.mlp_m(h_m)[:, 0])
        v = torch.exp(self.mlp_v(h_v)[:, 0])
        return -m * torch.rsqrt(v + self.eps), h_m, h_v

    def initial_state(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Zero hidden states of ``n`` coordinates (in the rule's dtype)."""
        dtype = self.gru_m.weight_ih.dtype
        return tuple(torch.zeros(n, self.hidden, device=device, dtype=dtype) for _ in range(2))  # type: ignore[return-value]


class BatchedOptim4RL(BatchedOptimizer):
    """A learned rule stepping a population's ``[M, P]`` parameters, each member with its own step size.

    Args:
        flat: The ``[M, P]`` parameters.
        grad: The ``[M, P]`` tensor that holds their gradients at each step.
        rule: The learned rule (not trained here).
        clip: Clip each gradient coordinate to ``[-clip, clip]`` first (0: none; the code's grids: 1).
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, rule: Optim4RLRule, clip: float = 0.0) -> None:
        super().__init__(flat, grad)
        self.rule, self.clip = rule, clip
        h_m, h_v = rule.initial_state(flat.numel(), flat.device)
        self.state = {"h_m": h_m.view(*flat.shape, -1), "h_v": h_v.view(*flat.shape, -1)}

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """``p += lr * u`` per member, ``u`` the rule's update at the current gradient; the hidden states advance."""
        grad = self.grad.clamp(-self.clip, self.clip) if self.clip > 0 else self.grad
        shape = self.flat.shape
        u, h_m, h_v = self.rule(grad.reshape(-1), self.state["h_m"].reshape(-1, self.rule.hidden),
                                self.state["h_v"].reshape(-1, self.rule.hidden))  # fmt: skip
        self.state["h_m"].copy_(h_m.view(*shape, -1))
        self.state["h_v"].copy_(h_v.view(*shape, -1))
        self.step_count += 1
        self.flat.add_(u.view(shape).to(self.flat.dtype) * lr.to(self.flat.dtype).unsqueeze(1))


def meta_loss(
    rule: Optim4RLRule,
    theta: torch.Tensor,
    inner_grad: Callable[[torch.Tensor, int], torch.Tensor],
    outer_loss: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    alpha: float,
    grads: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The outer loss after ``steps`` inner updates by ``rule`` from ``theta``, differentiable in the rule.

    Inner gradients enter as constants (``inner_grad(theta_k, k)`` is called on a detached copy), as in
    the official code, so the meta-gradient flows through the parameters' path and the hidden states' path
    only. ``grads``: use these inner gradients instead (e.g. to evaluate the same surrogate at perturbed rule
    parameters). Returns the loss and the inner gradients used.
    """
    h_m, h_v = rule.initial_state(theta.numel(), theta.device)
    used = []
    for k in range(steps):
        g = inner_grad(theta.detach(), k) if grads is None else grads[k]
        used.append(g.detach())
        u, h_m, h_v = rule(g.reshape(-1), h_m, h_v)
        theta = theta + alpha * u.view_as(theta)
    return outer_loss(theta), used


def pipeline_offsets(units: int, interval: int) -> np.ndarray:
    """Each unit's reset offset, ``int(linspace(0, interval - 1, units))`` (shared when ``units > interval``)."""
    if units < 1 or interval < 1:
        raise ValueError(f"units and interval must be positive, got {units} and {interval}")
    return np.linspace(0, interval - 1, units).astype(np.int64)


def pipeline_resets(iteration: int, offsets: np.ndarray, interval: int) -> np.ndarray:
    """``[units]``: the units reset at meta-iteration ``iteration`` (1-based): ``(iteration - 1) % interval == r_i``."""
    return np.asarray(offsets) == (iteration - 1) % interval
