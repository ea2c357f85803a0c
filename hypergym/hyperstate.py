"""The raw hyper-state of EPGT (paper Eq. 2): projected parameters and recent gradients.

For every parametric layer m of the learner's policy and value networks and every order n in
0..N_order (0 = the parameters, n >= 1 = the n-th most recent gradient),
``s_m^n = vec(W_m^n C_m^n)`` with ``C_m^n`` of shape ``[d_in, d]``. Linear weights are ``[out, in]``; Conv
weights are flattened to ``[out, in*kh*kw]``; biases and SB3's state-independent ``log_std`` are not
layers and are left out. The dimension is therefore ``sum_m rows_m * (N_order + 1) * d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["HyperStateProjector", "LayerInfo", "policy_layers"]


@dataclass(frozen=True)
class LayerInfo:
    """One parametric layer seen by the hyper-state."""

    name: str
    """Module path inside the policy, e.g. ``mlp_extractor.policy_net.0``."""
    rows: int
    """d', the first dimension (output units / channels)."""
    cols: int
    """d_in, the flattened input dimension."""


def policy_layers(policy: nn.Module) -> tuple[list[torch.Tensor], list[LayerInfo]]:
    """The weight of every Linear and Conv layer of ``policy``, in module order, with its 2-D shape."""
    weights: list[torch.Tensor] = []
    infos: list[LayerInfo] = []
    seen: set[int] = set()
    for name, module in policy.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            w = module.weight
            weights.append(w)
            infos.append(LayerInfo(name, int(w.shape[0]), int(w[0].numel())))
    return weights, infos


class HyperStateProjector(nn.Module):
    """Computes the raw hyper-state ``s = [vec(W_m^n C_m^n)]`` (paper Eq. 2).

    ``C`` holds one ``[d_in, d]`` matrix per layer and order, initialised ``N(0, 1/d_in)`` so a projected
    row keeps the scale of the row's norm. It is an ``nn.Parameter`` so a learned encoder can train it.

    Args:
        layers: Shapes of the layers (from :func:`policy_layers`).
        n_orders: N_order, the number of past gradients (orders 1..N_order) beside the parameters.
        d: Columns of each projection matrix (the paper's d = 4).
        generator: Torch generator for the initial ``C``.
    """

    def __init__(
        self, layers: list[LayerInfo], n_orders: int = 2, d: int = 4, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if d < 1:
            raise ValueError(f"projection width d must be >= 1, got {d!r}")
        self.layers = list(layers)
        self.n_orders = n_orders
        self.d = d
        self.C = nn.ParameterList(
            nn.Parameter(torch.randn(n_orders + 1, info.cols, d, generator=generator) / info.cols**0.5)
            for info in self.layers
        )

    @property
    def dim(self) -> int:
        """Length of ``s``: ``sum_m rows_m * (N_order + 1) * d``."""
        return sum(info.rows for info in self.layers) * (self.n_orders + 1) * self.d

    def forward(self, stacks: list[torch.Tensor]) -> torch.Tensor:
        """Project layer stacks (each layer's weight and its past gradients, stacked) to ``s``.

        Args:
            stacks: Per layer, a ``[..., N_order + 1, rows, cols]`` tensor; leading dims are batch dims.

        Returns:
            ``[..., dim]``: layer by layer, then order 0..N_order, then row-major ``[rows, d]``.
        """
        parts = [torch.matmul(stack, c).flatten(-3) for stack, c in zip(stacks, self.C, strict=True)]
        return torch.cat(parts, dim=-1)
