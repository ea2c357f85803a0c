"""The encoder interface: learner state in, bounded float32 observation out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from hypergym.hyperstate import HyperStateProjector

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = ["F32_MAX", "HyperStateEncoder"]

#: Largest finite float32, the bound of unbounded-looking observation boxes.
F32_MAX = float(np.finfo(np.float32).max)


class HyperStateEncoder(ABC):
    """Base of the hyper-state encoders.

    Every encoder holds the projection of the raw hyper-state (paper Eq. 2); subclasses map it (or the
    learner directly) to the observation. Learned encoders train in :meth:`on_update` and publish
    figures such as ``encoder_loss`` in :attr:`metrics`, which the env copies into ``info``.

    Args:
        learner: The inner learner whose layers define the hyper-state.
        seed: Seed of the encoder's random matrices.
        d: Columns of each projection matrix C (paper: 4).
        n_orders: Number of past gradients in the hyper-state (paper: 2); must match the learner's history.
    """

    name: ClassVar[str]

    def __init__(self, learner: OnPolicyLearner, seed: int, d: int = 4, n_orders: int = 2) -> None:
        if n_orders != learner.grad_history.n_orders:
            raise ValueError(
                f"encoder n_orders={n_orders} but the learner keeps {learner.grad_history.n_orders} gradients"
            )
        self.seed = int(seed)
        self.device = learner.device
        self.generator = torch.Generator().manual_seed(self.seed)
        self.projector = HyperStateProjector(learner.layers, n_orders=n_orders, d=d, generator=self.generator)
        self.projector.to(learner.device)
        self.metrics: dict[str, float] = {}

    @property
    def raw_dim(self) -> int:
        """Dimension of the raw hyper-state ``s``: ``sum_m rows_m * (N_order + 1) * d``."""
        return self.projector.dim

    @property
    @abstractmethod
    def observation_space(self) -> spaces.Box:
        """The float32 Box the observations lie in."""

    def hyperstate(self, learner: OnPolicyLearner) -> torch.Tensor:
        """The raw hyper-state ``s`` of the learner now."""
        return self.projector.project(learner.layer_weights, learner.grad_history)

    @abstractmethod
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """The observation for the learner's current state."""

    def on_update(self, learner: OnPolicyLearner) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called after every policy update step (learned encoders train here)."""

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what the encoder holds (worker threads)."""
