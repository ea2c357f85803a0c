"""Cheap per-layer statistics of weights and gradients: a fast baseline hyper-state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import HyperStateEncoder

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = ["STATS_BOUND", "StatsEncoder"]

#: Features per layer, in order.
FEATURES = ("weight_norm", "weight_mean", "weight_std", "grad_norm", "grad_mean", "grad_std", "grad_cosine")
#: symlog(float32 max) is about 88.7, so this bound holds for any finite or clipped input.
STATS_BOUND = 100.0


class StatsEncoder(HyperStateEncoder):
    """Observation = ``symlog`` of per-layer statistics, ``len(FEATURES)`` per layer, layer by layer.

    For each layer: L2 norm, mean and std of the weight and of the latest gradient, and the cosine between
    the latest two gradients (0 while either is zero). ``symlog(x) = sign(x) log(1 + |x|)`` keeps norms
    of very different scales comparable; non-finite values map to 0, so observations stay finite (and
    in the Box) even after a divergence.
    """

    name = "stats"

    @property
    def observation_space(self) -> spaces.Box:
        """``[-100, 100]^(7 x layers)``."""
        n = len(FEATURES) * len(self.projector.layers)
        return spaces.Box(-STATS_BOUND, STATS_BOUND, shape=(n,), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """The statistics of the learner's layers now."""
        history = learner.grad_history
        rows = []
        for m, w in enumerate(learner.layer_weights):
            w = w.detach().flatten()
            g1 = history.gradients(1)[m].flatten() if history.n_orders >= 1 else torch.zeros_like(w)
            g2 = history.gradients(2)[m].flatten() if history.n_orders >= 2 else torch.zeros_like(w)
            denom = g1.norm() * g2.norm()
            cosine = torch.where(denom > 0, (g1 @ g2) / denom.clamp_min(1e-30), torch.zeros_like(denom))
            rows.append(torch.stack([w.norm(), w.mean(), w.std(), g1.norm(), g1.mean(), g1.std(), cosine]))
        feats = torch.nan_to_num(torch.cat(rows), nan=0.0, posinf=1e30, neginf=-1e30)
        feats = torch.sign(feats) * torch.log1p(feats.abs())
        return feats.clamp(-STATS_BOUND, STATS_BOUND).cpu().numpy().astype(np.float32)
