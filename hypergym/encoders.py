"""Hyper-state encoders: what the hyper-agent observes (``obs_mode``).

An encoder turns the learner's layers and gradient history into a float32 observation inside a finite
``Box``. Every encoder starts from the raw projection hyper-state of :mod:`hypergym.hyperstate`; learned
encoders (the paper's online VAE) subclass :class:`HyperStateEncoder` and train in :meth:`on_update`.

- ``raw``: ``s`` itself (fixed random ``C``), for agents that bring their own encoder.
- ``random``: fixed random ``C`` and a fixed random map ``tanh(A s)`` to ``h = 32`` dims (the paper's
  random-projection ablation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from hypergym.hyperstate import HyperStateProjector

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = ["ENCODERS", "HyperStateEncoder", "RandomEncoder", "RawEncoder", "make_encoder"]

_F32_MAX = float(np.finfo(np.float32).max)


class HyperStateEncoder(ABC):
    """Base of the hyper-state encoders.

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
        self.generator = torch.Generator().manual_seed(int(seed))
        self.projector = HyperStateProjector(learner.layers, n_orders=n_orders, d=d, generator=self.generator).to(
            learner.device
        )
        self.metrics: dict[str, float] = {}

    @property
    def raw_dim(self) -> int:
        """Dimension of the raw hyper-state ``s``."""
        return self.projector.dim

    @property
    @abstractmethod
    def observation_space(self) -> spaces.Box:
        """The float32 Box the observations lie in."""

    def hyperstate(self, learner: OnPolicyLearner) -> torch.Tensor:
        """The raw hyper-state ``s`` of the learner now."""
        return self.projector(learner.layer_weights, learner.grad_history)

    @abstractmethod
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """The observation for the learner's current state."""

    def on_update(self, learner: OnPolicyLearner) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called after every policy update step (learned encoders train here)."""


class RawEncoder(HyperStateEncoder):
    """Observation = the raw hyper-state ``s`` (clipped to float32's finite range)."""

    name = "raw"

    @property
    def observation_space(self) -> spaces.Box:
        """Box over float32's finite range, of dimension ``dim(s)``."""
        return spaces.Box(-_F32_MAX, _F32_MAX, shape=(self.raw_dim,), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``s`` as float32, non-finite entries mapped into the finite range."""
        s = self.hyperstate(learner).cpu().numpy().astype(np.float32)
        return np.clip(np.nan_to_num(s, nan=0.0, posinf=_F32_MAX, neginf=-_F32_MAX), -_F32_MAX, _F32_MAX)


class RandomEncoder(HyperStateEncoder):
    """Observation = ``tanh(A s)`` with a fixed random ``A`` of shape ``[h, dim(s)]``, ``N(0, 1/dim(s))``.

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
        s = torch.nan_to_num(self.hyperstate(learner), nan=0.0, posinf=_F32_MAX, neginf=-_F32_MAX)
        return torch.tanh(self.A @ s).cpu().numpy().astype(np.float32)


#: Encoder classes by ``obs_mode``.
ENCODERS: dict[str, type[HyperStateEncoder]] = {"raw": RawEncoder, "random": RandomEncoder}


def make_encoder(obs_mode: str, learner: OnPolicyLearner, seed: int, **kwargs: Any) -> HyperStateEncoder:
    """Build the encoder named ``obs_mode``.

    Raises:
        ValueError: On an unknown ``obs_mode``.
    """
    if obs_mode not in ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[obs_mode](learner, seed, **kwargs)
