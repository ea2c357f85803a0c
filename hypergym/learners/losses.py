"""The losses of A2C, PPO and ACKTR as pure functions of tensors with a leading member dimension.

Every argument is ``[M, B]`` (one row per member, one column per sample) or ``[M]`` (a coefficient per
member); every result is ``[M]``, so a population's loss is the sum of its members' and one backward pass
gives each member its own gradient. A single run is ``M = 1``. Written to be read beside the papers
(CleanRL's style): Mnih et al. 2016 (A2C), Schulman et al. 2017 (PPO), Wu et al. 2017 (ACKTR).
"""

from __future__ import annotations

import torch

__all__ = ["LOSS_NAMES", "a2c_loss", "acktr_fisher_loss", "normalize_advantages", "ppo_loss"]

#: The parts every loss reports, beside the algorithm's own diagnostics.
LOSS_NAMES = ("loss", "policy_loss", "value_loss", "entropy_loss")


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """Standardise each member's advantages over its batch (SB3's ``(a - mean) / (std + 1e-8)``)."""
    return (advantages - advantages.mean(1, keepdim=True)) / (advantages.std(1, keepdim=True) + 1e-8)


def _value_and_entropy(
    values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # Value loss: regression of the critic onto the lambda-returns
    value_loss = (returns - values).square().mean(1)
    # Entropy loss: minus the mean entropy of the action distribution (an exploration bonus)
    entropy_loss = -entropy.mean(1)
    return value_loss, entropy_loss


def a2c_loss(
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    ent_coef: torch.Tensor,
    vf_coef: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The advantage actor-critic loss ``-E[A log pi] + c_ent (-H) + c_vf E[(R - V)^2]`` of each member.

    Returns:
        The ``[M]`` loss and its parts by :data:`LOSS_NAMES`.
    """
    # Policy loss: the policy gradient with the advantage as weight
    policy_loss = -(advantages * log_prob).mean(1)
    value_loss, entropy_loss = _value_and_entropy(values, returns, entropy)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    return loss, dict(zip(LOSS_NAMES, (loss, policy_loss, value_loss, entropy_loss), strict=True))


def ppo_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_range: torch.Tensor,
    ent_coef: torch.Tensor,
    vf_coef: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped-surrogate loss of each member, with its ``approx_kl`` and ``clip_fraction``.

    ``clip_range``, ``ent_coef`` and ``vf_coef`` are ``[M]`` (or broadcastable to it).

    Returns:
        The ``[M]`` loss and its parts by :data:`LOSS_NAMES`, plus ``approx_kl`` and ``clip_fraction``.
    """
    clip = clip_range.unsqueeze(1)
    # Policy loss: clipped surrogate objective
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
    policy_loss = -surrogate.mean(1)
    value_loss, entropy_loss = _value_and_entropy(values, returns, entropy)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    with torch.no_grad():
        # Diagnostics: the k3 estimator of KL(old || new) and how often the ratio left the clip range
        approx_kl = ((ratio - 1) - log_ratio).mean(1)
        clip_fraction = ((ratio - 1).abs() > clip).float().mean(1)
    parts = dict(zip(LOSS_NAMES, (loss, policy_loss, value_loss, entropy_loss), strict=True))
    return loss, {**parts, "approx_kl": approx_kl, "clip_fraction": clip_fraction}


def acktr_fisher_loss(
    log_prob: torch.Tensor, values: torch.Tensor, noise: torch.Tensor, vf_fisher_coef: float
) -> torch.Tensor:
    """ACKTR's *sampled* Fisher loss of each member, whose gradients give K-FAC its curvature statistics.

    The negative log-likelihood of actions sampled from the current policy, plus ``vf_fisher_coef`` times
    the regression of the value onto a copy of itself with unit Gaussian ``noise``
    (``-mean((v - stopgrad(v + noise))^2)``), as the ACKTR code bases write it.
    """
    pg_fisher = -log_prob.mean(1)
    noisy_target = (values + noise).detach()
    vf_fisher = -(values - noisy_target).square().mean(1)
    return pg_fisher + vf_fisher_coef * vf_fisher
