"""The paper's learned hyper-state: an online VAE over the projected hyper-state (EPGT, Appendix A.3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from hypergym.checks import check_count
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
        check_count(f"VAE {name}", value)
    check_count("VAE hidden", hidden, allow_none=True)
    check_count("freeze_after", freeze_after, least=0, allow_none=True)
    # NaN compares false with everything, so "not 0 < lr" (not "lr <= 0") is what refuses it.
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(f"VAE learning_rate must be a finite positive number, got {learning_rate!r}")


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
        # Each member's own clocks: members that wait out a rollout take no update steps (see Learner).
        m = self.n_members
        self._stats_ready = np.zeros(m, dtype=bool)
        self._recent: list[tuple[torch.Tensor, torch.Tensor]] = []  # ring of recorded states, rows per member
        self._slot = np.zeros(m, dtype=np.int64)  # states each member has recorded
        self.updates = np.zeros(m, dtype=np.int64)  # update steps each member's VAE has seen
        self.trained = np.zeros(m, dtype=np.int64)  # each member's training steps (its Adam step count)

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
        """Record the last ``batch_size`` steps of each member's window; train each member at its window's end.

        Windows count each member's own update steps (``learner.last_active``).
        """
        members = learner.last_active.copy()
        if self.freeze_after is not None:
            members &= self.updates < self.freeze_after
        self.updates += members
        position = (self.updates - 1) % self.train_every
        record = members & (position >= self.train_every - self.batch_size)
        for k in np.unique(self._slot[record] % self.batch_size):
            self._record(learner, record & (self._slot % self.batch_size == k), int(k))
        self._slot += record
        train = members & (position == self.train_every - 1)
        if train.any():
            self.train_step(learner, train)

    def _record(self, learner: Learner, members: np.ndarray, k: int) -> None:
        """Members' current states into place ``k`` of the ring."""
        if k == len(self._recent) or members.all():
            entry = (learner.flat.detach().clone(), learner.grad_slots.clone())
            self._recent[k : k + 1] = [entry]
            return
        rows = torch.as_tensor(members, device=self.device)
        flat, grads = self._recent[k]
        flat[rows] = learner.flat.detach()[rows]
        grads[:, rows] = learner.grad_slots[:, rows]

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s VAE: weights, Adam moments, scale statistics, recorded states."""
        for param in self.params.values():  # the projections are among them
            param[dst] = param[src]
            for name, value in self.optimizer.state.get(param, {}).items():
                if name != "step":  # the step count is each member's own (``trained``)
                    value[dst] = value[src]
        self.mean_square[dst] = self.mean_square[src]
        for clock in (self._stats_ready, self._slot, self.updates, self.trained):
            clock[dst] = clock[src]
        for flat, grads in self._recent:
            flat[dst] = flat[src]
            grads[:, dst] = grads[:, src]

    def train_step(self, learner: Learner, members: np.ndarray | None = None) -> np.ndarray:
        """One Adam step of each member's VAE on its recorded hyper-states; returns the MSEs ``[M]``.

        ``members`` (``[M]`` bool; default all) are the members that train.

        Members train together where their Adam step counts and recorded states agree (always, unless their
        update steps differ), else in one pass per group, the others' rows restored after each.
        """
        members = np.ones(self.n_members, dtype=bool) if members is None else members
        counts = np.minimum(self._slot, self.batch_size)
        keys = self.trained * (self.batch_size + 1) + counts
        for key in np.unique(keys[members & (counts > 0)]):
            self._train(learner, members & (keys == key))
        return self.metrics.get("encoder_loss", np.full(self.n_members, np.nan))

    def _train(self, learner: Learner, members: np.ndarray) -> None:
        count = int(min(self._slot[members][0], self.batch_size))
        rows = None if members.all() else torch.as_tensor(members, device=self.device)
        policy = learner.policy
        parts = []
        for m, info in enumerate(learner.layer_infos):
            orders = []
            for flat, grads in self._recent[:count]:
                mats = [policy.weight(info.name, flat)] + [
                    policy.weight(info.name, grads[n]) for n in range(self.n_orders)
                ]
                orders.append(torch.stack(mats, dim=1))  # [M, O, rows, cols]
            stack = torch.stack(orders, dim=1)  # [M, n, O, rows, cols]
            parts.append(torch.matmul(stack, self.C[m].unsqueeze(1)).flatten(-3))
        s = torch.cat(parts, dim=-1)  # [M, n, D], differentiable in C
        with torch.no_grad():
            batch_ms = s.square().mean(1)
            ready = torch.as_tensor(self._stats_ready, device=self.device)[:, None]
            new = torch.where(ready, self.mean_square.lerp(batch_ms, self.norm_momentum), batch_ms)
            self.mean_square.copy_(new if rows is None else torch.where(rows[:, None], new, self.mean_square))
            self._stats_ready |= members
        x = self._preprocess(s)
        target = torch.sigmoid(x).detach()
        mu, logvar = self._moments(x)
        eps = self.noises.torch_normal(mu.shape[1:], self.device, mu.dtype, None if rows is None else members)
        p = self.params
        z = mu + torch.exp(0.5 * logvar) * eps
        hidden = torch.tanh(member_linear(p["omega.0.weight"], p["omega.0.bias"], z))
        recon = torch.sigmoid(member_linear(p["omega.2.weight"], p["omega.2.bias"], hidden))
        rec = ((recon - target) ** 2).sum(-1).mean(1)  # [M]
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean(1)
        loss = rec + self.kl_weight * kl
        kept = self._adam_rows(None if rows is None else ~rows)
        for state in self.optimizer.state.values():
            state["step"].fill_(float(self.trained[members][0]))  # the members' own count (one per pass)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if rows is None else torch.where(rows, loss, torch.zeros_like(loss))).sum().backward()
        self.optimizer.step()
        if kept is not None:
            self._adam_rows(~rows, kept)  # type: ignore[operator]
        self.trained += members
        done = {"encoder_loss": rec.detach().cpu().numpy() / self.raw_dim, "encoder_kl": kl.detach().cpu().numpy()}
        for name, value in done.items():
            self.metrics[name] = value if rows is None else np.where(members, value, self.metrics.get(name, np.nan))

    @torch.no_grad()
    def _adam_rows(
        self, rows: torch.Tensor | None, kept: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor] | None:
        """Copies of ``rows`` of the weights and Adam moments, or (with ``kept``) those copies put back."""
        if rows is None:
            return None
        tensors = []
        for param in self.params.values():
            state = self.optimizer.state.get(param, {})
            tensors += [param, *(state.get(k, torch.zeros_like(param)) for k in ("exp_avg", "exp_avg_sq"))]
        if kept is None:
            return [t[rows].clone() for t in tensors]
        for t, saved in zip(tensors, kept, strict=True):
            t[rows] = saved
        return None
