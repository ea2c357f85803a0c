"""The paper's learned hyper-state: an online VAE over the projected hyper-state (EPGT, Appendix A.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from hypergym.encoders.base import F32_MAX, HyperStateEncoder
from hypergym.hyperstate import HyperStateProjector, layer_stacks
from hypergym.seeding import TorchRNG, derive_seeds

if TYPE_CHECKING:
    from hypergym.learners.base import OnPolicyLearner

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
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"VAE {name} must be a positive integer, got {value!r}")
    if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
        raise ValueError(f"VAE hidden must be a positive integer or None, got {hidden!r}")
    if freeze_after is not None and freeze_after < 0:
        raise ValueError(f"freeze_after must be >= 0 or None, got {freeze_after!r}")
    if learning_rate <= 0:
        raise ValueError(f"VAE learning_rate must be positive, got {learning_rate!r}")


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


class VAEEncoder(HyperStateEncoder):
    """Online VAE: ``phi: s -> R^h`` trained to reconstruct ``s`` while the learner trains.

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
        learner: The inner learner.
        seed: Seed of ``C``, the networks' initialisation and the reparameterisation noise.
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
        learner: OnPolicyLearner,
        seed: int,
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
        super().__init__(learner, seed, **kwargs)
        check_vae_settings(h, hidden, learning_rate, train_every, batch_size, freeze_after)
        dim = self.raw_dim
        self.h, self.hidden = h, hidden or max(1, dim // 4)
        self.train_every, self.batch_size = train_every, batch_size
        self.kl_weight, self.freeze_after, self.norm_momentum = kl_weight, freeze_after, norm_momentum
        init_seed, noise_seed = derive_seeds(self.seed, 2)
        # nn.Linear initialises from torch's global generator: run it inside a private stream.
        with TorchRNG(init_seed, self.device).active():
            self.model = VAEModel(self.projector, self.hidden, h).to(self.device)
        self.noise = torch.Generator(device=self.device).manual_seed(noise_seed)
        # The fused kernel is about 10x faster than the per-tensor loop on CPU for these large nets.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate, fused=True)
        self._stats_ready = False
        shapes = [stack.shape for stack in layer_stacks(learner.layer_weights, learner.grad_history)]
        self._recent = [[torch.empty(s, device=self.device) for s in shapes] for _ in range(batch_size)]
        self._n_recorded = 0
        self.updates = 0
        self.train_steps = 0

    @property
    def observation_space(self) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(self.h,), dtype=np.float32)

    @property
    def frozen(self) -> bool:
        """Whether training has stopped (``freeze_after`` update steps have passed)."""
        return self.freeze_after is not None and self.updates >= self.freeze_after

    @torch.no_grad()
    def encode(self, learner: OnPolicyLearner) -> np.ndarray:
        """``tanh`` of the posterior mean of the current hyper-state."""
        mu, _ = self.model.moments(self.model.preprocess(self.hyperstate(learner)))
        return torch.tanh(mu).cpu().numpy().astype(np.float32)

    def on_update(self, learner: OnPolicyLearner) -> None:
        """Record the hyper-states of the last ``batch_size`` steps of each window; train at its end."""
        if self.frozen:
            return
        self.updates += 1
        position = (self.updates - 1) % self.train_every  # 0 .. train_every - 1 within the window
        if position >= self.train_every - self.batch_size:
            slot = self._recent[self._n_recorded % self.batch_size]
            history = learner.grad_history
            dst, src = [], []
            for m, w in enumerate(learner.layer_weights):
                dst.append(slot[m][0])
                src.append(w.detach().reshape(w.shape[0], -1))
                for n in range(1, history.n_orders + 1):
                    dst.append(slot[m][n])
                    src.append(history.gradients(n)[m].reshape(w.shape[0], -1))
            with torch.no_grad():
                torch._foreach_copy_(dst, src)  # straight into the ring, no intermediate stack
            self._n_recorded += 1
        if position == self.train_every - 1:
            self.train_step()

    def train_step(self) -> float:
        """One Adam step on the recorded hyper-states; returns the reconstruction MSE (per element)."""
        n = min(self._n_recorded, self.batch_size)
        if n == 0:
            return float("nan")
        batch = [torch.stack([self._recent[i][m] for i in range(n)]) for m in range(len(self._recent[0]))]
        model = self.model
        s = model.projector(batch)  # [n, D]; differentiable in C
        with torch.no_grad():
            batch_ms = s.square().mean(0)
            if self._stats_ready:
                model.mean_square.lerp_(batch_ms, self.norm_momentum)
            else:
                model.mean_square.copy_(batch_ms)
                self._stats_ready = True
        x = model.preprocess(s)
        target = torch.sigmoid(x).detach()
        mu, logvar = model.moments(x)
        eps = torch.randn(mu.shape, generator=self.noise, device=self.device)
        recon = model.omega(mu + torch.exp(0.5 * logvar) * eps)
        rec = ((recon - target) ** 2).sum(-1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean()
        loss = rec + self.kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.train_steps += 1
        self.metrics["encoder_loss"] = rec.item() / self.raw_dim
        self.metrics["encoder_kl"] = kl.item()
        return self.metrics["encoder_loss"]
