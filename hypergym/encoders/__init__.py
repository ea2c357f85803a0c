"""Hyper-state encoders: what the hyper-agent observes (``obs_mode``).

Every encoder works on all members of a learner at once (a single run is a population of one).

- ``vae`` (default): the paper's online VAE over the projected hyper-state (:class:`VAEEncoder`).
- ``random``: fixed random ``C`` and a fixed random ``tanh`` map to 32 dims (the paper's ablation).
- ``raw``: the projected hyper-state ``s`` itself, for agents that bring their own encoder.
- ``stats``: cheap per-layer statistics of weights and gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gymnasium import spaces

from hypergym.checks import check_count
from hypergym.encoders.base import F32_MAX, Encoder
from hypergym.encoders.projection import RandomEncoder, RawEncoder
from hypergym.encoders.stats import StatsEncoder
from hypergym.encoders.vae import VAEEncoder, check_vae_settings
from hypergym.hyperstate import LayerInfo

if TYPE_CHECKING:
    from hypergym.learners import Learner

__all__ = [
    "ENCODERS",
    "F32_MAX",
    "Encoder",
    "RandomEncoder",
    "RawEncoder",
    "StatsEncoder",
    "VAEEncoder",
    "check_encoder_kwargs",
    "encoder_arguments",
    "make_encoder",
    "observation_space_of",
]

#: Encoder classes by ``obs_mode``.
ENCODERS: dict[str, type[Encoder]] = {
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
    return sorted(names - {"self", "learner", "seeds"})


def check_encoder_kwargs(obs_mode: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse ``encoder_kwargs`` keys the ``obs_mode`` encoder does not take, listing the valid ones.

    Raises:
        ValueError: On an unknown key (or ``obs_mode``).
    """
    valid = encoder_arguments(obs_mode)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown encoder_kwargs {unknown} for obs_mode={obs_mode!r}; valid keys are {valid}")
    # Sizes are checked here, where the env is made, not when its first reset builds the encoder.
    for name, least in (("d", 1), ("h", 1), ("n_orders", 0)):
        check_count(f"encoder_kwargs[{name!r}]", kwargs.get(name, least), least=least)


def observation_space_of(obs_mode: str, layers: Sequence[LayerInfo], **kwargs: Any) -> spaces.Box:
    """One member's observation Box of the ``obs_mode`` encoder on a policy with these ``layers``.

    Checks the VAE's settings too, so that a bad value is refused when the env is made.
    """
    if obs_mode == "vae":
        check_vae_settings(
            kwargs.get("h", 32),
            kwargs.get("hidden"),
            kwargs.get("learning_rate", 1e-3),
            kwargs.get("train_every", 10),
            kwargs.get("batch_size", 8),
            kwargs.get("freeze_after"),
        )
    return ENCODERS[obs_mode].space_for(layers, **kwargs)


def make_encoder(obs_mode: str, learner: Learner, seeds: Sequence[int], **kwargs: Any) -> Encoder:
    """Build the ``obs_mode`` encoder for every member of ``learner`` (one encoder seed per member).

    Raises:
        ValueError: On an unknown ``obs_mode``.
        TypeError: On an argument the encoder does not take.
    """
    if obs_mode not in ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[obs_mode](learner, list(seeds), **kwargs)
