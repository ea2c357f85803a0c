"""Fixed projections: the raw hyper-state and the paper's random-projection ablation.

On a CPU the projections are computed with NumPy on views of the learner's tensors: a NumPy matmul of
these small matrices costs a fraction of a torch call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import F32_MAX, Encoder, raw_dim
from hypergym.hyperstate import LayerInfo

if TYPE_CHECKING:
    from hypergym.learners import Learner

__all__ = ["RandomEncoder", "RawEncoder"]


class RawEncoder(Encoder):
    """Observation = the raw hyper-state (``obs_mode="raw"``)."""

    name = "raw"

    @classmethod
    def space_for(cls, layers: Sequence[LayerInfo], d: int = 4, n_orders: int = 2, **_: Any) -> spaces.Box:
        """Box over float32's finite range, of the raw hyper-state's dimension."""
        return spaces.Box(-F32_MAX, F32_MAX, shape=(raw_dim(layers, n_orders, d),), dtype=np.float32)

    def encode(self, learner: Learner) -> np.ndarray:
        """``s`` per member."""
        return self.hyperstate_numpy(learner)


class RandomEncoder(Encoder):
    """Observation = ``tanh(A s)`` with each member's fixed random ``A`` (``obs_mode="random"``).

    Args:
        learner: The learner.
        seeds: Encoder seeds.
        h: Embedding size.
        **kwargs: ``d``, ``n_orders``.
    """

    name = "random"

    def __init__(self, learner: Learner, seeds: list[int], h: int = 32, **kwargs: Any) -> None:
        super().__init__(learner, seeds, **kwargs)
        self.h = h
        self.arguments["h"] = h
        self.A = torch.stack(
            [torch.randn(h, self.raw_dim, generator=g) / self.raw_dim**0.5 for g in self.generators]
        ).to(self.device)
        self._np_A: np.ndarray | None = None

    @classmethod
    def space_for(cls, layers: Sequence[LayerInfo], h: int = 32, **_: Any) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(h,), dtype=np.float32)

    def _member_tensors(self) -> list[torch.Tensor]:
        return [*self.C, self.A]

    def encode(self, learner: Learner) -> np.ndarray:
        """``tanh(A s)`` per member."""
        if self.numpy_projection:
            if self._np_A is None:
                self._np_A = self.A.numpy()
            s_np = self.hyperstate_numpy(learner)
            return np.tanh(np.matmul(self._np_A, s_np[..., None])[..., 0]).astype(np.float32)
        s = self.hyperstate(learner)
        return torch.tanh(torch.bmm(self.A, s.unsqueeze(-1)).squeeze(-1)).cpu().numpy().astype(np.float32)
