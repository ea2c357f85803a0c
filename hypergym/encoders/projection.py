"""Fixed projections: the raw hyper-state and the paper's random-projection ablation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import F32_MAX, HyperStateEncoder

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = ["RandomEncoder", "RawEncoder"]


class RawEncoder(HyperStateEncoder):
    """Observation = the raw hyper-state ``s`` with fixed random ``C`` (clipped to float32's finite range)."""

    name = "raw"

    @property
    def observation_space(self) -> spaces.Box:
        """Box over float32's finite range, of dimension ``dim(s)``."""
        return spaces.Box(-F32_MAX, F32_MAX, shape=(self.raw_dim,), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``s`` as float32, non-finite entries mapped into the finite range."""
        s = self.hyperstate(learner).cpu().numpy().astype(np.float32)
        return np.clip(np.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX), -F32_MAX, F32_MAX)


class RandomEncoder(HyperStateEncoder):
    """Observation = ``tanh(A s)`` with fixed random ``C`` and ``A`` of shape ``[h, dim(s)]``, ``N(0, 1/dim(s))``.

    Args:
        learner: The inner learner.
        seed: Seed of ``C`` and ``A``.
        h: Embedding size (paper: 32).
        **kwargs: ``d`` and ``n_orders`` of the projection.
    """

    name = "random"

    def __init__(self, learner: OnPolicyLearner, seed: int, h: int = 32, **kwargs: Any) -> None:
        super().__init__(learner, seed, **kwargs)
        self.h = h
        self.A = (torch.randn(h, self.raw_dim, generator=self.generator) / self.raw_dim**0.5).to(learner.device)

    @property
    def observation_space(self) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(self.h,), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``tanh(A s)``."""
        s = torch.nan_to_num(self.hyperstate(learner), nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)
        return torch.tanh(self.A @ s).cpu().numpy().astype(np.float32)
