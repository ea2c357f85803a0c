"""Typed learner configurations: the defaults that a hyper-action then overrides step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from hypergym.learners.optimizers import check_optimizer

__all__ = ["A2CConfig", "ACKTRConfig", "LearnerConfig", "PPOConfig"]


@dataclass(frozen=True)
class LearnerConfig:
    """Settings shared by every on-policy learner (SB3 argument names)."""

    algo: ClassVar[str] = ""

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
    cnn: str = "nature"
    """Image observations only: ``"nature"`` (SB3's NatureCNN) or ``"acktr"`` (ACKTR's 32-64-32-512 net)."""
    optimizer: str | None = None
    """``None``: the algorithm's own (A2C: RMSprop, Adam with ``use_rms_prop=False``; PPO: Adam; ACKTR: K-FAC);
    ``"adam"``, ``"rmsprop"``, ``"optim4rl"`` or ``"linear"`` (the learned optimisers shipped with hypergym) or a
    learned-optimiser file's path (:mod:`hypergym.learners.optimizers`). ``learning_rate`` is its step size."""

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
        if self.cnn not in ("nature", "acktr"):
            raise ValueError(f"unknown cnn {self.cnn!r}; choose from ['acktr', 'nature']")
        check_optimizer(self.algo, self.optimizer)
        if self.optimizer not in (None, "adam") and self.policy_kwargs.get("optimizer_kwargs"):
            raise ValueError(
                f"policy_kwargs['optimizer_kwargs'] are Adam's (eps, betas); optimizer={self.optimizer!r} takes none"
            )


@dataclass(frozen=True)
class PPOConfig(LearnerConfig):
    """PPO settings; defaults follow SB3's PPO."""

    algo: ClassVar[str] = "PPO"

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

    algo: ClassVar[str] = "A2C"

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


@dataclass(frozen=True)
class ACKTRConfig(LearnerConfig):
    """ACKTR settings: A2C with K-FAC (defaults of the ACKTR code bases, baselines and ikostrikov's port)."""

    algo: ClassVar[str] = "ACKTR"

    learning_rate: float = 0.25
    """K-FAC step size eta (the step is min(eta, sqrt(kl_clip / g^T F^-1 g)) before momentum)."""
    n_steps: int = 20
    """T, environment steps per env per rollout."""
    gae_lambda: float = 0.95
    """GAE lambda (the EPGT paper's ACKTR setting)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient in the loss."""
    max_grad_norm: float = math.inf
    """Not used: K-FAC's trust region bounds the step instead of clipping (must stay ``inf``)."""
    kl_clip: float = 0.001
    """Trust-region radius on the step's predicted KL."""
    damping: float = 0.01
    """Tikhonov damping of the curvature."""
    momentum: float = 0.9
    """Momentum of the SGD step on the preconditioned gradient."""
    stat_decay: float = 0.99
    """Decay of the running averages of the Kronecker factors."""
    weight_decay: float = 0.0
    """L2 coefficient added to the gradient before preconditioning."""
    stats_every: int = 1
    """Ts: update the factors every Ts updates."""
    inverse_every: int = 10
    """Tf: recompute the factors' eigendecompositions every Tf updates."""
    vf_fisher_coef: float = 1.0
    """Weight of the value network's Fisher loss (noisy-target regression), as in baselines."""
    damping_mode: str = "kronecker"
    """``"kronecker"``: invert ``G x A + damping`` (ACKTR's code); ``"factored"``: ``(G + d)^-1 g (A + d)^-1``."""

    def kfac_kwargs(self) -> dict[str, float | int | str]:
        """The K-FAC optimiser's fixed settings (the step size, trust region and damping are hyperparameters)."""
        names = ("momentum", "stat_decay", "weight_decay", "stats_every", "inverse_every", "damping_mode")
        return {name: getattr(self, name) for name in names}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_grad_norm != math.inf:
            raise ValueError(
                f"ACKTR does not clip gradients (its KL trust region bounds the step): max_grad_norm must stay "
                f"inf, got {self.max_grad_norm!r}; set kl_clip instead"
            )
