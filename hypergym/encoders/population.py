"""Hyper-state encoders of a population: every ``obs_mode``, all members in one batched computation.

Member ``i``'s projection matrices ``C`` (and ``A`` for ``random``, the networks for ``vae``) are drawn
exactly as the single-run encoder with the same seed draws them, so a member's observation equals the
single-run observation of a learner with the same weights and gradients. The projections are one
batched matmul per layer and order over the member dimension; the VAEs of all members train in one
batched step (their parameters stacked by ``torch.func.stack_module_state``, one Adam over the stacks:
Adam is elementwise and every member trains at the same steps with the same step size, so this equals M
separate Adams).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from hypergym.encoders.base import F32_MAX
from hypergym.encoders.stats import FEATURES, STATS_BOUND
from hypergym.encoders.vae import VAE_CLAMP, VAEModel, check_vae_settings
from hypergym.hyperstate import HyperStateProjector
from hypergym.seeding import TorchRNG, derive_seeds

if TYPE_CHECKING:
    from hypergym.learners.population import PopulationLearner

__all__ = ["POPULATION_ENCODERS", "PopulationEncoder", "make_population_encoder"]


def _linear(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x W^T + b`` per member: ``w [M, out, in]``, ``b [M, out]``, ``x [M, B, in]``."""
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


class PopulationEncoder(ABC):
    """Base: per-member projections ``C`` stacked to ``[M, N_order + 1, cols, d]`` per layer.

    Args:
        learner: The population learner (its layers define the hyper-state).
        seeds: One encoder seed per member.
        d: Columns of each projection matrix.
        n_orders: Past gradients in the hyper-state (must match the learner's).
    """

    name: ClassVar[str]

    def __init__(self, learner: PopulationLearner, seeds: list[int], d: int = 4, n_orders: int = 2) -> None:
        if n_orders != learner.n_orders:
            raise ValueError(f"encoder n_orders={n_orders} but the learner keeps {learner.n_orders} gradients")
        if len(seeds) != learner.n_members:
            raise ValueError(f"{len(seeds)} encoder seeds for {learner.n_members} members")
        self.device = learner.device
        self.n_members = learner.n_members
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.projectors = [
            HyperStateProjector(learner.layer_infos, n_orders=n_orders, d=d, generator=g) for g in self.generators
        ]
        self.n_orders, self.d = n_orders, d
        self.raw_dim = self.projectors[0].dim
        self.C = [
            torch.stack([p.C[m].detach() for p in self.projectors]).to(self.device)
            for m in range(len(learner.layer_infos))
        ]
        self.metrics: dict[str, np.ndarray] = {}
        self._np_C: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # NumPy views of the projection tensors: rebuilt on first use after unpickling (a pickled copy would
        # stop following the tensors, which training and copy_member change in place).
        return {k: (None if k.startswith("_np_") else v) for k, v in self.__dict__.items()}

    @property
    @abstractmethod
    def observation_space(self) -> spaces.Box:
        """One member's observation Box."""

    @torch.no_grad()
    def hyperstate(self, learner: PopulationLearner, C: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``[M, D]`` raw hyper-states, laid out as :meth:`HyperStateProjector.project`."""
        mats = C if C is not None else self.C
        grads = [learner.gradients(n) for n in range(1, self.n_orders + 1)]
        parts = []
        for m, (w, c) in enumerate(zip(learner.layer_weights(), mats, strict=True)):
            parts.append(torch.bmm(w, c[:, 0]).flatten(1))
            for n in range(1, self.n_orders + 1):
                parts.append(torch.bmm(grads[n - 1][m], c[:, n]).flatten(1))
        return torch.nan_to_num(torch.cat(parts, dim=1), nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)

    def hyperstate_numpy(self, learner: PopulationLearner) -> np.ndarray:
        """``[M, D]`` raw hyper-states as float32 NumPy; on a CPU computed with NumPy matmuls.

        As for the single-run fixed projections, a NumPy matmul of these small matrices costs a fraction
        of a torch call, and the learner's NumPy views share memory with its tensors (no copy).
        """
        if self.device.type != "cpu":
            return self.hyperstate(learner).cpu().numpy().astype(np.float32)
        if self._np_C is None:
            self._np_C = [c.detach().numpy() for c in self.C]
        weights, grads = learner.numpy_views()
        parts = []
        for m, (w, c) in enumerate(zip(weights, self._np_C, strict=True)):
            parts.append(np.matmul(w, c[:, 0]).reshape(self.n_members, -1))
            for n in range(1, self.n_orders + 1):
                parts.append(np.matmul(grads[n - 1][m], c[:, n]).reshape(self.n_members, -1))
        s = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
        return np.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)

    @abstractmethod
    def encode(self, learner: PopulationLearner) -> np.ndarray:
        """``[M, obs_dim]`` float32 observations."""

    def on_update(self, learner: PopulationLearner) -> None:  # noqa: B027 - optional hook
        """Called after every update step of the population."""

    def _member_tensors(self) -> list[torch.Tensor]:
        """The encoder's state, each tensor with the member dimension first."""
        return list(self.C)

    @torch.no_grad()
    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s encoder state (its projections; a VAE's training state too).

        After a learner's :meth:`~PopulationLearner.copy_member`, ``dst``'s observation is then ``src``'s.
        """
        for t in self._member_tensors():
            t[dst] = t[src]


class PopulationRawEncoder(PopulationEncoder):
    """Observation = the raw hyper-state (``obs_mode="raw"``)."""

    name = "raw"

    @property
    def observation_space(self) -> spaces.Box:
        """Box over float32's finite range."""
        return spaces.Box(-F32_MAX, F32_MAX, shape=(self.raw_dim,), dtype=np.float32)

    def encode(self, learner: PopulationLearner) -> np.ndarray:
        """``s`` per member."""
        return self.hyperstate_numpy(learner)


class PopulationRandomEncoder(PopulationEncoder):
    """Observation = ``tanh(A s)`` with each member's fixed random ``A`` (``obs_mode="random"``).

    Args:
        learner: The population learner.
        seeds: Encoder seeds.
        h: Embedding size.
        **kwargs: ``d``, ``n_orders``.
    """

    name = "random"

    def __init__(self, learner: PopulationLearner, seeds: list[int], h: int = 32, **kwargs: Any) -> None:
        super().__init__(learner, seeds, **kwargs)
        self.h = h
        self.A = torch.stack(
            [torch.randn(h, self.raw_dim, generator=g) / self.raw_dim**0.5 for g in self.generators]
        ).to(self.device)
        self._np_A: np.ndarray | None = None

    @property
    def observation_space(self) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(self.h,), dtype=np.float32)

    def _member_tensors(self) -> list[torch.Tensor]:
        return [*self.C, self.A]

    def encode(self, learner: PopulationLearner) -> np.ndarray:
        """``tanh(A s)`` per member."""
        if self.device.type == "cpu":
            if self._np_A is None:
                self._np_A = self.A.numpy()
            s_np = self.hyperstate_numpy(learner)
            return np.tanh(np.matmul(self._np_A, s_np[..., None])[..., 0]).astype(np.float32)
        s = self.hyperstate(learner)
        return torch.tanh(torch.bmm(self.A, s.unsqueeze(-1)).squeeze(-1)).cpu().numpy().astype(np.float32)


class PopulationStatsEncoder(PopulationEncoder):
    """Per-layer weight and gradient statistics (``obs_mode="stats"``), as :class:`StatsEncoder`."""

    name = "stats"

    @property
    def observation_space(self) -> spaces.Box:
        """``[-100, 100]^(7 x layers)``."""
        return spaces.Box(-STATS_BOUND, STATS_BOUND, shape=(len(FEATURES) * len(self.C),), dtype=np.float32)

    @torch.no_grad()
    def encode(self, learner: PopulationLearner) -> np.ndarray:
        """The statistics of every member's layers."""
        weights = learner.layer_weights()
        g1s = learner.gradients(1) if self.n_orders >= 1 else [torch.zeros_like(w) for w in weights]
        g2s = learner.gradients(2) if self.n_orders >= 2 else [torch.zeros_like(w) for w in weights]
        rows = []
        for w, g1, g2 in zip(weights, g1s, g2s, strict=True):
            w, g1, g2 = w.flatten(1), g1.flatten(1), g2.flatten(1)
            denom = g1.norm(dim=1) * g2.norm(dim=1)
            dot = (g1 * g2).sum(1)
            cosine = torch.where(denom > 0, dot / denom.clamp_min(1e-30), torch.zeros_like(denom))
            rows.append(
                torch.stack([w.norm(dim=1), w.mean(1), w.std(1), g1.norm(dim=1), g1.mean(1), g1.std(1), cosine], dim=1)
            )
        feats = torch.nan_to_num(torch.cat(rows, dim=1), nan=0.0, posinf=1e30, neginf=-1e30)
        feats = torch.sign(feats) * torch.log1p(feats.abs())
        return feats.clamp(-STATS_BOUND, STATS_BOUND).cpu().numpy().astype(np.float32)


class PopulationVAEEncoder(PopulationEncoder):
    """One online VAE per member (``obs_mode="vae"``), as :class:`~hypergym.encoders.VAEEncoder`, batched.

    Same preprocessing, losses, schedule (``train_every``, ``batch_size`` most recent hyper-states) and
    initialisation per seed as the single-run encoder; the M training steps are one batched step.

    Args:
        learner: The population learner.
        seeds: Encoder seeds.
        h: Embedding size.
        hidden: Hidden width (default ``D // 4``).
        learning_rate: Adam step size.
        train_every: Update steps between two training steps.
        batch_size: Recent hyper-states per training step.
        kl_weight: Weight of the KL term.
        freeze_after: Stop training after this many update steps (``None``: never).
        norm_momentum: EMA rate of the running root-mean-square.
        **kwargs: ``d``, ``n_orders``.
    """

    name = "vae"

    def __init__(
        self,
        learner: PopulationLearner,
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
        self.noise = torch.Generator(device=self.device).manual_seed(
            int(np.random.SeedSequence(noise_seeds).generate_state(1)[0])
        )
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=learning_rate, fused=True)
        self._stats_ready = False
        self._recent: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._slot = 0
        self.updates = 0
        self.train_steps = 0

    @property
    def observation_space(self) -> spaces.Box:
        """``[-1, 1]^h``."""
        return spaces.Box(-1.0, 1.0, shape=(self.h,), dtype=np.float32)

    def _preprocess(self, s: torch.Tensor) -> torch.Tensor:
        s = torch.nan_to_num(s, nan=0.0, posinf=F32_MAX, neginf=-F32_MAX)
        scale = torch.rsqrt(self.mean_square + 1e-12).view(self.n_members, *([1] * (s.dim() - 2)), -1)
        return (s * scale).clamp(-VAE_CLAMP, VAE_CLAMP)

    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        hidden = torch.tanh(_linear(p["phi.0.weight"], p["phi.0.bias"], x))
        mu, logvar = _linear(p["phi.2.weight"], p["phi.2.bias"], hidden).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    @torch.no_grad()
    def encode(self, learner: PopulationLearner) -> np.ndarray:
        """``tanh`` of each member's posterior mean."""
        s = self.hyperstate(learner, [c.detach() for c in self.C])
        mu, _ = self._moments(self._preprocess(s).unsqueeze(1))
        return torch.tanh(mu.squeeze(1)).cpu().numpy().astype(np.float32)

    def on_update(self, learner: PopulationLearner) -> None:
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

    def train_step(self, learner: PopulationLearner) -> np.ndarray:
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
        eps = torch.randn(mu.shape, generator=self.noise, device=self.device)
        p = self.params
        z = mu + torch.exp(0.5 * logvar) * eps
        hidden = torch.tanh(_linear(p["omega.0.weight"], p["omega.0.bias"], z))
        recon = torch.sigmoid(_linear(p["omega.2.weight"], p["omega.2.bias"], hidden))
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


#: Population encoder classes by ``obs_mode``.
POPULATION_ENCODERS: dict[str, type[PopulationEncoder]] = {
    "vae": PopulationVAEEncoder,
    "random": PopulationRandomEncoder,
    "raw": PopulationRawEncoder,
    "stats": PopulationStatsEncoder,
}


def make_population_encoder(
    obs_mode: str, learner: PopulationLearner, seeds: list[int], **kwargs: Any
) -> PopulationEncoder:
    """Build the population encoder named ``obs_mode``.

    Raises:
        ValueError: On an unknown ``obs_mode``.
    """
    if obs_mode not in POPULATION_ENCODERS:
        raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(POPULATION_ENCODERS)}")
    return POPULATION_ENCODERS[obs_mode](learner, seeds, **kwargs)
