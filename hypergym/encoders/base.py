"""The encoder interface: the learner's members in, one bounded float32 observation per member out.

Every encoder holds each member's projection of the raw hyper-state (paper Eq. 2): ``C`` of shape
``[M, N_order + 1, cols, d]`` per layer, drawn per member seed, so member ``i``'s observation depends only
on its own weights, gradients and seed. The projections are one batched matmul per layer and order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from hypergym.hyperstate import HyperStateProjector, LayerInfo

if TYPE_CHECKING:
    from hypergym.learners import Learner

__all__ = ["F32_MAX", "NUMPY_MAX_WEIGHTS", "Encoder", "member_linear", "raw_dim"]

#: Largest finite float32, the bound of unbounded-looking observation boxes.
F32_MAX = float(np.finfo(np.float32).max)
#: Largest network (layer-weight elements per member) whose projection is computed with NumPy.
NUMPY_MAX_WEIGHTS = 200_000


def raw_dim(layers: Sequence[LayerInfo], n_orders: int = 2, d: int = 4) -> int:
    """Dimension of the raw hyper-state ``s``: ``sum_m rows_m * (N_order + 1) * d``."""
    return sum(info.rows for info in layers) * (n_orders + 1) * d


def member_linear(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x W^T + b`` per member: ``w [M, out, in]``, ``b [M, out]``, ``x [M, B, in]``."""
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


class Encoder(ABC):
    """Base: per-member projections ``C`` stacked to ``[M, N_order + 1, cols, d]`` per layer.

    Args:
        learner: The learner (its layers define the hyper-state).
        seeds: One encoder seed per member.
        d: Columns of each projection matrix.
        n_orders: Past gradients in the hyper-state (must match the learner's).
    """

    name: ClassVar[str]

    def __init__(self, learner: Learner, seeds: list[int], d: int = 4, n_orders: int = 2) -> None:
        if n_orders != learner.n_orders:
            raise ValueError(f"encoder n_orders={n_orders} but the learner keeps {learner.n_orders} gradients")
        if len(seeds) != learner.n_members:
            raise ValueError(f"{len(seeds)} encoder seeds for {learner.n_members} members")
        self.device = learner.device
        self.n_members = learner.n_members
        self.layers = list(learner.layer_infos)
        self.arguments: dict[str, Any] = {"d": d, "n_orders": n_orders}
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.projectors = [
            HyperStateProjector(learner.layer_infos, n_orders=n_orders, d=d, generator=g) for g in self.generators
        ]
        self.n_orders, self.d = n_orders, d
        self.raw_dim = self.projectors[0].dim
        self.C = [
            torch.stack([p.C[m].detach() for p in self.projectors]).to(self.device)
            for m in range(len(learner.layer_infos))
        ]
        self.metrics: dict[str, np.ndarray] = {}
        self._np_C: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # NumPy views of the projection tensors: rebuilt on first use after unpickling (a pickled copy would
        # stop following the tensors, which training and copy_member change in place).
        return {k: (None if k.startswith("_np_") else v) for k, v in self.__dict__.items()}

    @classmethod
    @abstractmethod
    def space_for(cls, layers: Sequence[LayerInfo], **kwargs: Any) -> spaces.Box:
        """One member's observation Box for a policy with these ``layers`` and these encoder arguments."""

    @property
    def observation_space(self) -> spaces.Box:
        """One member's observation Box."""
        return self.space_for(self.layers, **self.arguments)

    @torch.no_grad()
    def hyperstate(self, learner: Learner, C: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``[M, D]`` raw hyper-states, laid out as :meth:`HyperStateProjector.project`."""
        mats = C if C is not None else self.C
        grads = [learner.gradients(n) for n in range(1, self.n_orders + 1)]
        parts = []
        for m, (w, c) in enumerate(zip(learner.layer_weights(), mats, strict=True)):
            parts.append(torch.bmm(w, c[:, 0]).flatten(1))
            for n in range(1, self.n_orders + 1):
                parts.append(torch.bmm(grads[n - 1][m], c[:, n]).flatten(1))
        return torch.nan_to_num(torch.cat(parts, dim=1), nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)

    @property
    def numpy_projection(self) -> bool:
        """Whether :meth:`hyperstate_numpy` computes with NumPy (a CPU, and at most 200k weights per member).

        A NumPy matmul of small matrices costs a fraction of a torch call, and the learner's NumPy views
        share memory with its tensors (no copy). For large networks (Atari CNNs: 1.7M weights) NumPy's
        matmuls wake its BLAS thread pool, which then competes with torch's (measured: 0.78 of the speed
        on Pong): those are projected with torch.
        """
        weights = sum(info.rows * info.cols for info in self.layers)
        return self.device.type == "cpu" and weights <= NUMPY_MAX_WEIGHTS

    def hyperstate_numpy(self, learner: Learner) -> np.ndarray:
        """``[M, D]`` raw hyper-states as float32 NumPy (see :attr:`numpy_projection`)."""
        if not self.numpy_projection:
            return self.hyperstate(learner).cpu().numpy().astype(np.float32)
        if self._np_C is None:
            self._np_C = [c.detach().numpy() for c in self.C]
        weights, grads = learner.numpy_views()
        parts = []
        for m, (w, c) in enumerate(zip(weights, self._np_C, strict=True)):
            parts.append(np.matmul(w, c[:, 0]).reshape(self.n_members, -1))
            for n in range(1, self.n_orders + 1):
                parts.append(np.matmul(grads[n - 1][m], c[:, n]).reshape(self.n_members, -1))
        s = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
        return np.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)

    @abstractmethod
    def encode(self, learner: Learner) -> np.ndarray:
        """``[M, obs_dim]`` float32 observations."""

    def on_update(self, learner: Learner) -> None:  # noqa: B027 - optional hook
        """Called after every update step of the population."""

    def _member_tensors(self) -> list[torch.Tensor]:
        """The encoder's state, each tensor with the member dimension first."""
        return list(self.C)

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s encoder state (its projections; a VAE's training state too).

        After a learner's :meth:`~Learner.copy_member`, ``dst``'s observation is then ``src``'s.
        """
        for t in self._member_tensors():
            t[dst] = t[src]
