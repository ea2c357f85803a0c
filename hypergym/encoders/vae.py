"""The paper's learned hyper-state: an online VAE over the projected hyper-state (EPGT, Appendix A.3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from hypergym.encoders.base import F32_MAX, Encoder, member_linear
from hypergym.hyperstate import HyperStateProjector, LayerInfo
from hypergym.seeding import MemberStreams, TorchRNG, derive_seeds

if TYPE_CHECKING:
    from hypergym.learners import Learner

__all__ = ["VAE_CLAMP", "VAEEncoder", "VAEModel", "check_vae_settings"]

#: Normalised inputs are clamped to this many root-mean-squares.
VAE_CLAMP = 5.0


def check_vae_settings(
    h: int, hidden: int | None, learning_rate: float, train_every: int, batch_size: int, freeze_after: int | None
) -> None:
    """Validate the VAE encoder's settings (single run and population alike).

    Raises:
        ValueError: Naming the bad setting and what it must be.
    """
    for name, value in (("h", h), ("train_every", train_every), ("batch_size", batch_size)):
        if not _is_int(value, 1):
            raise ValueError(f"VAE {name} must be a positive integer, got {value!r}")
    if hidden is not None and not _is_int(hidden, 1):
        raise ValueError(f"VAE hidden must be a positive integer or None, got {hidden!r}")
    if freeze_after is not None and not _is_int(freeze_after, 0):
        raise ValueError(f"freeze_after must be an integer >= 0 or None, got {freeze_after!r}")
    # NaN compares false with everything, so "not 0 < lr" (not "lr <= 0") is what refuses it.
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(f"VAE learning_rate must be a finite positive number, got {learning_rate!r}")


def _is_int(value: object, least: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= least


class VAEModel(nn.Module):
    """Projection ``C``, encoder ``phi``, decoder ``omega`` and the running RMS of ``s``.

    Args:
        projector: The hyper-state projection (its ``C`` is trained with the networks).
        hidden: Hidden width of ``phi`` and ``omega``.
        h: Embedding size.
    """

    def __init__(self, projector: HyperStateProjector, hidden: int, h: int) -> None:
        super().__init__()
        dim = projector.dim
        self.projector = projector
        self.phi = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * h))
        self.omega = nn.Sequential(nn.Linear(h, hidden), nn.Tanh(), nn.Linear(hidden, dim), nn.Sigmoid())
        self.register_buffer("mean_square", torch.ones(dim))
        self.mean_square: torch.Tensor

    def preprocess(self, s: torch.Tensor) -> torch.Tensor:
        """``clamp(s / rms, -5, 5)``: the one preprocessing used at training and at encoding."""
        s = torch.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)
        return (s * torch.rsqrt(self.mean_square + 1e-12)).clamp(-VAE_CLAMP, VAE_CLAMP)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and (clamped) log-variance."""
        mu, logvar = self.phi(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)


class VAEEncoder(Encoder):
    """An online VAE per member (``obs_mode="vae"``): ``phi: s -> R^h`` trained to reconstruct ``s``.

    The members' VAEs are stacked (``torch.func.stack_module_state``) and trained in one batched Adam step
    (Adam is elementwise, and every member trains at the same steps with the same step size, so this equals
    M separate Adams); member ``i``'s networks and ``C`` are initialised from its own seed.

    - Preprocessing (the same at training and at encoding, :meth:`VAEModel.preprocess`):
      ``x = clamp(s / rms, -5, 5)`` with a per-dimension running root-mean-square of ``s`` (an exponential
      moving average over training batches). Dividing by the RMS, not standardising, keeps the slowly
      drifting weight features at a stable scale (their within-batch variance is tiny) while bringing
      gradient features, orders of magnitude smaller, to the same scale. The reconstruction target is
      ``sigmoid(x)``, so the decoder's sigmoid output can reach it; the target is stop-gradient.
    - Encoder ``phi``: ``D -> D/4`` (tanh) ``-> 2h`` (mean, log-variance). Decoder ``omega``:
      ``h -> D/4`` (tanh) ``-> D`` (sigmoid).
    - Every ``train_every`` update steps, one Adam step on the ``batch_size`` most recent hyper-states,
      loss = reconstruction (squared error summed over dims) + ``kl_weight`` x KL; the gradient also
      trains the projection matrices ``C``.
    - Observation: ``tanh(mean)``, deterministic (no sampling), inside ``[-1, 1]^h``.

    The authors' code trained on ``sigmoid(x)`` with dropout but encoded the raw ``x``; here one
    preprocessing serves both.

    Cost: with the paper's width the networks are large (about 5M parameters for MuJoCo PPO, where
    ``D = 3156``); encoding reads ``phi``'s first layer at every step and training is memory-bound.
    ``hidden`` trades fidelity for speed (``benchmarks/overhead.py --obs-modes vae`` measures both).

    Args:
        learner: The learner (its layers define the hyper-state).
        seeds: One seed per member: its ``C``, its networks' initialisation and its reparameterisation noise.
        h: Embedding size (paper: 32).
        hidden: Hidden width (default ``D // 4``, the paper's).
        learning_rate: Adam step size.
        train_every: Update steps between two training steps (paper: 10).
        batch_size: Recent hyper-states per training step (paper: 8).
        kl_weight: Weight of the KL term.
        freeze_after: Stop training after this many update steps (``None``: never).
        norm_momentum: EMA rate of the running root-mean-square.
        **kwargs: ``d`` and ``n_orders`` of the projection.
    """

    name = "vae"

    def __init__(
        self,
        learner: Learner,
        seeds: list[int],
        h: int = 32,
        hidden: int | None = None,
        learning_rate: float = 1e-3,
        train_every: int = 10,
        batch_size: int = 8,
        kl_weight: float = 1.0,
        freeze_after: int | None = None,
        norm_momentum: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(learner, seeds, **kwargs)
        check_vae_settings(h, hidden, learning_rate, train_every, batch_size, freeze_after)
        self.h, self.hidden = h, hidden or max(1, self.raw_dim // 4)
        self.arguments["h"] = h
        self.train_every, self.batch_size = train_every, batch_size
        self.kl_weight, self.freeze_after, self.norm_momentum = kl_weight, freeze_after, norm_momentum
        models = []
        noise_seeds = []
        for seed, projector in zip(seeds, self.projectors, strict=True):
            init_seed, noise_seed = derive_seeds(int(seed), 2)
            with TorchRNG(init_seed, torch.device("cpu")).active():
                models.append(VAEModel(projector, self.hidden, h))
            noise_seeds.append(noise_seed)
        params, _ = torch.func.stack_module_state(models)  # type: ignore[arg-type]
        self.params = {k: v.detach().to(self.device).requires_grad_(True) for k, v in params.items()}
        self.C = [self.params[f"projector.C.{m}"] for m in range(len(self.C))]
        self.mean_square = torch.ones(self.n_members, self.raw_dim, device=self.device)
        # One noise stream per member, from its own seed: a member's VAE trains as its single run's does.
        self.noises = MemberStreams(noise_seeds, self.device)
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=learning_rate, fused=True)
        self._stats_ready = False
        self._recent: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._slot = 0
        self.updates = 0
        self.train_steps = 0

    @classmethod
    def space_for(cls, layers: Sequence[LayerInfo], h: int = 32, **_: Any) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(h,), dtype=np.float32)

    def _preprocess(self, s: torch.Tensor) -> torch.Tensor:
        s = torch.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)
        scale = torch.rsqrt(self.mean_square + 1e-12).view(self.n_members, *([1] * (s.dim() - 2)), -1)
        return (s * scale).clamp(-VAE_CLAMP, VAE_CLAMP)

    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        hidden = torch.tanh(member_linear(p["phi.0.weight"], p["phi.0.bias"], x))
        mu, logvar = member_linear(p["phi.2.weight"], p["phi.2.bias"], hidden).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    @torch.no_grad()
    def encode(self, learner: Learner) -> np.ndarray:
        """``tanh`` of each member's posterior mean."""
        s = self.hyperstate(learner, [c.detach() for c in self.C])
        mu, _ = self._moments(self._preprocess(s).unsqueeze(1))
        return torch.tanh(mu.squeeze(1)).cpu().numpy().astype(np.float32)

    def on_update(self, learner: Learner) -> None:
        """Record the last ``batch_size`` steps of each window; train every member at its end."""
        if self.freeze_after is not None and self.updates >= self.freeze_after:
            return
        self.updates += 1
        position = (self.updates - 1) % self.train_every
        if position >= self.train_every - self.batch_size:
            entry = (learner.flat.detach().clone(), learner.grad_slots.clone())
            if len(self._recent) < self.batch_size:
                self._recent.append(entry)
            else:
                self._recent[self._slot % self.batch_size] = entry
            self._slot += 1
        if position == self.train_every - 1:
            self.train_step(learner)

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s VAE: weights, Adam moments, scale statistics, recorded states."""
        for param in self.params.values():  # the projections are among them
            param[dst] = param[src]
            for name, value in self.optimizer.state.get(param, {}).items():
                if name != "step":  # one step count for all members (they train at the same steps)
                    value[dst] = value[src]
        self.mean_square[dst] = self.mean_square[src]
        for flat, grads in self._recent:
            flat[dst] = flat[src]
            grads[:, dst] = grads[:, src]

    def train_step(self, learner: Learner) -> np.ndarray:
        """One Adam step of every member's VAE on its recorded hyper-states; returns the MSEs ``[M]``."""
        if not self._recent:
            return np.full(self.n_members, np.nan)
        policy = learner.policy
        parts = []
        for m, info in enumerate(learner.layer_infos):
            orders = []
            for flat, grads in self._recent:
                mats = [policy.weight(info.name, flat)] + [
                    policy.weight(info.name, grads[n]) for n in range(self.n_orders)
                ]
                orders.append(torch.stack(mats, dim=1))  # [M, O, rows, cols]
            stack = torch.stack(orders, dim=1)  # [M, n, O, rows, cols]
            parts.append(torch.matmul(stack, self.C[m].unsqueeze(1)).flatten(-3))
        s = torch.cat(parts, dim=-1)  # [M, n, D], differentiable in C
        with torch.no_grad():
            batch_ms = s.square().mean(1)
            if self._stats_ready:
                self.mean_square.lerp_(batch_ms, self.norm_momentum)
            else:
                self.mean_square.copy_(batch_ms)
                self._stats_ready = True
        x = self._preprocess(s)
        target = torch.sigmoid(x).detach()
        mu, logvar = self._moments(x)
        eps = self.noises.torch_normal(mu.shape[1:], self.device, mu.dtype)
        p = self.params
        z = mu + torch.exp(0.5 * logvar) * eps
        hidden = torch.tanh(member_linear(p["omega.0.weight"], p["omega.0.bias"], z))
        recon = torch.sigmoid(member_linear(p["omega.2.weight"], p["omega.2.bias"], hidden))
        rec = ((recon - target) ** 2).sum(-1).mean(1)  # [M]
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean(1)
        loss = (rec + self.kl_weight * kl).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.train_steps += 1
        self.metrics["encoder_loss"] = rec.detach().cpu().numpy() / self.raw_dim
        self.metrics["encoder_kl"] = kl.detach().cpu().numpy()
        return self.metrics["encoder_loss"]
