"""Typed learner configurations: the defaults that a hyper-action then overrides step by step."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["A2CConfig", "LearnerConfig", "PPOConfig"]


@dataclass(frozen=True)
class LearnerConfig:
    """Settings shared by every on-policy learner (SB3 argument names)."""

    learning_rate: float = 3e-4
    """Optimiser step size alpha (ACKTR: eta)."""
    n_steps: int = 2048
    """T, environment steps per env per rollout."""
    gamma: float = 0.99
    """Discount factor used for GAE and timeout bootstrapping."""
    gae_lambda: float = 0.95
    """GAE lambda (1.0 gives Monte-Carlo advantages with a value baseline)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient in the loss."""
    vf_coef: float = 0.5
    """Value loss coefficient in the loss."""
    max_grad_norm: float = 0.5
    """Gradients are clipped to this global L2 norm."""
    normalize_advantage: bool = False
    """Standardise advantages within each batch."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of SB3's ``ActorCriticPolicy`` (e.g. ``{"net_arch": [16]}``)."""

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every setting of this configuration."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> LearnerConfig:
        """Build a configuration, naming the valid settings when one is unknown.

        Raises:
            TypeError: On an unknown setting.
        """
        unknown = sorted(set(kwargs) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown learner setting(s) {unknown} for {cls.__name__}; valid are {cls.field_names()}")
        return cls(**kwargs)

    def __post_init__(self) -> None:
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {self.n_steps!r}")


@dataclass(frozen=True)
class PPOConfig(LearnerConfig):
    """PPO settings; defaults follow SB3's PPO."""

    batch_size: int = 64
    """b, samples per minibatch gradient step."""
    n_epochs: int = 10
    """Passes over each rollout."""
    clip_range: float = 0.2
    """Clip epsilon of the surrogate objective."""
    normalize_advantage: bool = True
    """Standardise advantages within each minibatch (SB3's default for PPO)."""


@dataclass(frozen=True)
class A2CConfig(LearnerConfig):
    """A2C settings; defaults follow SB3's A2C (RMSprop, T = 5)."""

    learning_rate: float = 7e-4
    """RMSprop step size."""
    n_steps: int = 5
    """T, environment steps per env per rollout."""
    gae_lambda: float = 1.0
    """SB3's A2C default: no GAE smoothing."""
    use_rms_prop: bool = True
    """RMSprop (as in the A2C paper) instead of Adam."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon."""
    rms_prop_alpha: float = 0.99
    """RMSprop smoothing constant."""
