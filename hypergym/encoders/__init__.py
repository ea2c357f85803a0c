"""Hyper-state encoders: what the hyper-agent observes (``obs_mode``).

- ``vae`` (default): the paper's online VAE over the projected hyper-state (:class:`VAEEncoder`).
- ``random``: fixed random ``C`` and a fixed random ``tanh`` map to 32 dims (the paper's ablation).
- ``raw``: the projected hyper-state ``s`` itself, for agents that bring their own encoder.
- ``stats``: cheap per-layer statistics of weights and gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
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
    "check_encoder_kwargs",
    "encoder_arguments",
    "make_encoder",
]

#: Encoder classes by ``obs_mode``.
ENCODERS: dict[str, type[HyperStateEncoder]] = {
    "vae": VAEEncoder,
    "random": RandomEncoder,
    "raw": RawEncoder,
    "stats": StatsEncoder,
}


def encoder_arguments(obs_mode: str) -> list[str]:
    """Names ``encoder_kwargs`` may hold for ``obs_mode`` (the encoder's and its base class's arguments)."""
    if obs_mode not in ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
    names: set[str] = set()
    for cls in ENCODERS[obs_mode].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY}
    return sorted(names - {"self", "learner", "seed"})


def check_encoder_kwargs(obs_mode: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse ``encoder_kwargs`` keys the ``obs_mode`` encoder does not take, listing the valid ones.

    Raises:
        ValueError: On an unknown key (or ``obs_mode``).
    """
    valid = encoder_arguments(obs_mode)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown encoder_kwargs {unknown} for obs_mode={obs_mode!r}; valid keys are {valid}")


def make_encoder(obs_mode: str, learner: OnPolicyLearner, seed: int, **kwargs: Any) -> HyperStateEncoder:
    """Build the encoder named ``obs_mode``.

    Raises:
        ValueError: On an unknown ``obs_mode``.
        TypeError: On an argument the encoder does not take.
    """
    if obs_mode not in ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[obs_mode](learner, seed, **kwargs)
