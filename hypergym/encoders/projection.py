"""Fixed projections: the raw hyper-state and the paper's random-projection ablation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import F32_MAX, HyperStateEncoder

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = ["FixedProjectionEncoder", "RandomEncoder", "RawEncoder"]


#: Largest learner (total layer-weight elements) whose projection is computed in NumPy; see below.
NUMPY_MAX_WEIGHTS = 200_000


class FixedProjectionEncoder(HyperStateEncoder):
    """Base of the encoders whose ``C`` never changes: ``s`` is computed without autograd.

    For the small matrices of an MLP learner (up to :data:`NUMPY_MAX_WEIGHTS` weights) a NumPy matmul
    costs a fraction of a torch call, and the CPU tensors are shared with NumPy without a copy, so that
    path is several times faster. For larger networks (NatureCNN: 1.7M weights) NumPy's BLAS starts a
    thread pool of its own whose spinning threads then compete with torch's for the cores during the next
    update (measured on Atari PPO: 10% of the learner's speed on 2 cores), so the same products run as
    torch ops in torch's pool (:meth:`HyperStateEncoder.hyperstate`). Both paths give the same ``s``.
    """

    def __init__(self, learner: OnPolicyLearner, seed: int, **kwargs: Any) -> None:
        super().__init__(learner, seed, **kwargs)
        n_weights = sum(w.numel() for w in learner.layer_weights)
        self._numpy = learner.device.type == "cpu" and n_weights <= NUMPY_MAX_WEIGHTS
        self._C = [c.detach().cpu().numpy() for c in self.projector.C]

    @torch.no_grad()
    def hyperstate_tensor(self, learner: OnPolicyLearner) -> torch.Tensor:
        """``s`` without autograd, non-finite entries mapped into float32's finite range."""
        return torch.nan_to_num(self.hyperstate(learner), nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)

    def hyperstate_numpy(self, learner: OnPolicyLearner) -> np.ndarray:
        """``s`` as a float32 NumPy vector, non-finite entries mapped into float32's finite range."""
        if not self._numpy:
            return self.hyperstate_tensor(learner).cpu().numpy()
        history = learner.grad_history
        parts = []
        for m, w in enumerate(learner.layer_weights):
            c = self._C[m]
            rows = w.shape[0]
            parts.append((w.detach().numpy().reshape(rows, -1) @ c[0]).ravel())
            for n in range(1, history.n_orders + 1):
                parts.append((history.gradients(n)[m].numpy().reshape(rows, -1) @ c[n]).ravel())
        s = np.concatenate(parts)
        return np.nan_to_num(s.astype(np.float32, copy=False), nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)


class RawEncoder(FixedProjectionEncoder):
    """Observation = the raw hyper-state ``s`` with fixed random ``C`` (clipped to float32's finite range)."""

    name = "raw"

    @property
    def observation_space(self) -> spaces.Box:
        """Box over float32's finite range, of dimension ``dim(s)``."""
        return spaces.Box(-F32_MAX, F32_MAX, shape=(self.raw_dim,), dtype=np.float32)

    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``s`` as float32, non-finite entries mapped into the finite range."""
        return self.hyperstate_numpy(learner)


class RandomEncoder(FixedProjectionEncoder):
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
        self.A = torch.randn(h, self.raw_dim, generator=self.generator) / self.raw_dim**0.5
        self._A = self.A.numpy()
        self._A_device = self.A.to(learner.device)

    @property
    def observation_space(self) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(self.h,), dtype=np.float32)

    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``tanh(A s)``."""
        if not self._numpy:
            s = self.hyperstate_tensor(learner)
            return torch.tanh(self._A_device @ s).cpu().numpy().astype(np.float32)
        return np.tanh(self._A @ self.hyperstate_numpy(learner)).astype(np.float32)
