"""Cheap per-layer statistics of weights and gradients: a fast baseline hyper-state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import Encoder
from hypergym.hyperstate import LayerInfo

if TYPE_CHECKING:
    from hypergym.learners import Learner

__all__ = ["FEATURES", "STATS_BOUND", "StatsEncoder"]

#: Features per layer, in order.
FEATURES = ("weight_norm", "weight_mean", "weight_std", "grad_norm", "grad_mean", "grad_std", "grad_cosine")
#: symlog(float32 max) is about 88.7, so this bound holds for any finite or clipped input.
STATS_BOUND = 100.0


class StatsEncoder(Encoder):
    """Per-layer weight and gradient statistics (``obs_mode="stats"``): a fast baseline hyper-state.

    Per layer: the weight's norm, mean and standard deviation, the last gradient's norm, mean and standard
    deviation, and the cosine between the last two gradients, each mapped by ``symlog`` and clipped.
    """

    name = "stats"

    @classmethod
    def space_for(cls, layers: Sequence[LayerInfo], **_: Any) -> spaces.Box:
        """``[-100, 100]^(7 x layers)``."""
        return spaces.Box(-STATS_BOUND, STATS_BOUND, shape=(len(FEATURES) * len(layers),), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: Learner) -> np.ndarray:
        """The statistics of every member's layers."""
        weights = learner.layer_weights()
        g1s = learner.gradients(1) if self.n_orders >= 1 else [torch.zeros_like(w) for w in weights]
        g2s = learner.gradients(2) if self.n_orders >= 2 else [torch.zeros_like(w) for w in weights]
        rows = []
        for w, g1, g2 in zip(weights, g1s, g2s, strict=True):
            w, g1, g2 = w.flatten(1), g1.flatten(1), g2.flatten(1)
            denom = g1.norm(dim=1) * g2.norm(dim=1)
            dot = (g1 * g2).sum(1)
            cosine = torch.where(denom > 0, dot / denom.clamp_min(1e-30), torch.zeros_like(denom))
            rows.append(
                torch.stack([w.norm(dim=1), w.mean(1), w.std(1), g1.norm(dim=1), g1.mean(1), g1.std(1), cosine], dim=1)
            )
        feats = torch.nan_to_num(torch.cat(rows, dim=1), nan=0.0, posinf=1e30, neginf=-1e30)
        feats = torch.sign(feats) * torch.log1p(feats.abs())
        return feats.clamp(-STATS_BOUND, STATS_BOUND).cpu().numpy().astype(np.float32)
