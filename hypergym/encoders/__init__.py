"""Hyper-state encoders: what the hyper-agent observes (``obs_mode``).

- ``vae`` (default): the paper's online VAE over the projected hyper-state (:class:`VAEEncoder`).
- ``random``: fixed random ``C`` and a fixed random ``tanh`` map to 32 dims (the paper's ablation).
- ``raw``: the projected hyper-state ``s`` itself, for agents that bring their own encoder.
- ``stats``: cheap per-layer statistics of weights and gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypergym.encoders.base import F32_MAX, HyperStateEncoder
from hypergym.encoders.projection import FixedProjectionEncoder, RandomEncoder, RawEncoder
from hypergym.encoders.stats import StatsEncoder
from hypergym.encoders.vae import VAEEncoder

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

__all__ = [
    "ENCODERS",
    "F32_MAX",
    "FixedProjectionEncoder",
    "HyperStateEncoder",
    "RandomEncoder",
    "RawEncoder",
    "StatsEncoder",
    "VAEEncoder",
    "make_encoder",
]

#: Encoder classes by ``obs_mode``.
ENCODERS: dict[str, type[HyperStateEncoder]] = {
    "vae": VAEEncoder,
    "random": RandomEncoder,
    "raw": RawEncoder,
    "stats": StatsEncoder,
}


def make_encoder(obs_mode: str, learner: OnPolicyLearner, seed: int, **kwargs: Any) -> HyperStateEncoder:
    """Build the encoder named ``obs_mode``.

    Raises:
        ValueError: On an unknown ``obs_mode``.
        TypeError: On an argument the encoder does not take.
    """
    if obs_mode not in ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[obs_mode](learner, seed, **kwargs)
