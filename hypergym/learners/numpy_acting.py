"""Acting in CPU rollouts through NumPy views of a batched policy's parameters.

On a CPU a small batched MLP is dominated by torch's per-op overhead (about 5 us an op here against 1 us
for NumPy), and a rollout step is a dozen ops. :class:`NumpyActor` computes the same network,
distributions and formulas as :class:`~hypergym.learners.policy.BatchedActorCritic` on NumPy arrays that
share memory with its ``flat`` tensor (so the optimiser's in-place updates are seen at once). Training
keeps torch (autograd).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from hypergym.seeding import MemberStreams

#: A :class:`~hypergym.learners.policy.BatchedActorCritic`. Not imported, even for type checking: the
#: policy builds its actor, and an import back would tie the two modules in a circle.
BatchedActorCritic = Any

__all__ = ["NUMPY_ACTIVATIONS", "NumpyActor"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: Activations with a NumPy twin.
NUMPY_ACTIVATIONS: dict[type, Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: np.tanh,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
}


class NumpyActor:
    """The actor of a :class:`~hypergym.learners.policy.BatchedActorCritic`, computed with NumPy.

    Args:
        policy: A CPU MLP policy whose activations all have a NumPy twin (:meth:`supports`).
    """

    def __init__(self, policy: BatchedActorCritic) -> None:
        self.policy = policy
        self._flat = policy.flat.numpy()  # shares memory: in-place updates stay visible
        self._layers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, lin in policy.blocks.items():
            w = self._flat[:, lin.weight].reshape(policy.n_members, lin.out_features, lin.in_features)
            assert np.shares_memory(w, self._flat)
            self._layers[name] = (w.transpose(0, 2, 1), self._flat[:, None, lin.bias])

    @staticmethod
    def supports(policy: BatchedActorCritic) -> bool:
        """Whether NumPy can act for ``policy``: a CPU MLP with Tanh / ReLU activations."""
        return (
            policy.flat.device.type == "cpu"
            and not policy.images
            and all(type(a) in NUMPY_ACTIVATIONS for a in (*policy.pi_acts, *policy.vf_acts))
        )

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        w_t, b = self._layers[name]
        return np.matmul(x, w_t) + b

    def act(
        self, obs: np.ndarray, streams: MemberStreams, members: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample actions for ``obs [M, B, D]`` with NumPy: actions, values, log-probabilities, finite mask.

        The same network, distributions and formulas as the policy's ``forward``, ``sample`` and
        ``log_prob_entropy``, computed on NumPy views of ``flat``: on a CPU a small batched MLP is
        dominated by torch's per-op overhead (about 5 us an op here against 1 us for NumPy), and a
        rollout step is a dozen ops. Training keeps torch (autograd). ``finite`` is ``[M]``: whether
        the member's outputs are all finite (the learner rolls back the others and acts again, drawing
        noise for ``members`` only).
        """
        # A diverged member's non-finite weights are expected here (it is rolled back): no warnings.
        with np.errstate(all="ignore"):
            h, v = obs, obs
            p = self.policy
            for name, act in zip(p.pi_layers, p.pi_acts, strict=True):
                h = NUMPY_ACTIVATIONS[type(act)](self._linear(name, h))
            for name, act in zip(p.vf_layers, p.vf_acts, strict=True):
                v = NUMPY_ACTIVATIONS[type(act)](self._linear(name, v))
            params = self._linear("action_net", h)
            values = self._linear("value_net", v)[..., 0]
            finite = np.isfinite(params).all(axis=(1, 2)) & np.isfinite(values).all(axis=1)
            if p.discrete:
                shifted = params - params.max(-1, keepdims=True)
                log_z = np.log(np.exp(shifted).sum(-1, keepdims=True))
                logp = shifted - log_z
                cdf = np.exp(logp).cumsum(-1)
                u = streams.uniform((*params.shape[1:-1], 1), members)
                actions = np.minimum((cdf < u).sum(-1), p.action_dim - 1)
                log_prob = np.take_along_axis(logp, actions[..., None], -1)[..., 0]
            else:
                assert p.log_std_slice is not None
                log_std = self._flat[:, None, p.log_std_slice]
                noise = streams.normal(params.shape[1:], members)
                actions = params + np.exp(log_std) * noise
                log_prob = (-0.5 * noise**2 - log_std - _HALF_LOG_2PI).sum(-1)
        return actions, values, log_prob.astype(np.float32), finite
