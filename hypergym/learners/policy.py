"""SB3's actor-critic for M members at once: every member's parameters in one ``[M, P]`` tensor.

Member ``i`` of a :class:`BatchedActorCritic` is the ``ActorCriticPolicy`` it was built from (same layers,
activations, initial weights, distributions); the population's forward pass is one batched matmul per
layer (``torch.baddbmm`` over the member dimension) instead of M module calls. All parameters live in
one leaf tensor ``flat`` of shape ``[M, P]``; the layers are views of it, so

- the loss of the population is the *sum* of the members' losses and ``flat_grad[i]`` is member ``i``'s
  gradient (the members share no parameter);
- per-member gradient norms, clipping, optimiser steps (:mod:`hypergym.learners.optim`),
  rollbacks and copies between members are row operations on ``[M, P]`` tensors.

Supported: flat ``Box`` observations (SB3's ``FlattenExtractor``) and images (a features extractor of
Conv2d and Linear layers with activations and one Flatten, as SB3's ``NatureCNN`` and hypergym's ACKTR CNN,
shared by the actor and the critic; on a CPU one convolution per member, on a GPU one grouped convolution),
``Discrete`` actions (categorical) and ``Box`` actions (diagonal Gaussian with a state-independent
``log_std``), any ``net_arch`` and activation. Other extractors and distributions are refused.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from hypergym.hyperstate import LayerInfo, policy_layers
from hypergym.learners.networks import check_population_policy, image_trunk, mlp_layers
from hypergym.learners.numpy_acting import NumpyActor
from hypergym.learners.records import LayerRecording
from hypergym.seeding import MemberStreams

__all__ = ["BatchedActorCritic"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class _Block:
    """Where one Linear or Conv2d layer's weight and bias lie in a member's row of ``flat``."""

    name: str
    weight_shape: tuple[int, ...]
    """One member's weight: ``(out, in)`` or ``(out, in_channels, kh, kw)``."""
    weight: slice
    bias: slice
    conv: dict[str, Any] | None = None
    """Conv2d only: ``stride``, ``padding`` and ``dilation``."""

    @property
    def out_features(self) -> int:
        """Output units (channels)."""
        return self.weight_shape[0]

    @property
    def in_features(self) -> int:
        """Flattened input size of one output unit (``in_channels * kh * kw`` for a convolution)."""
        return math.prod(self.weight_shape[1:])


class BatchedActorCritic:
    """M actor-critic MLPs as one computation.

    Args:
        policies: One SB3 ``ActorCriticPolicy`` per member (same architecture); their current weights
            become the members' initial weights. They are read, not kept.
        device: Torch device of the stacked parameters.

    Raises:
        ValueError: If the policies are not MLP actor-critics over flat observations with a categorical
            or diagonal Gaussian action distribution.
    """

    def __init__(self, policies: list[ActorCriticPolicy], device: torch.device) -> None:
        if not policies:
            raise ValueError("a population needs at least one member")
        ref = policies[0]
        check_population_policy(ref.observation_space, ref.action_space)
        if getattr(ref, "squash_output", False):
            raise ValueError("squashed (gSDE) Gaussian policies are not supported in populations")
        if not ref.share_features_extractor and not isinstance(ref.features_extractor, FlattenExtractor):
            raise ValueError("populations need the features extractor shared by actor and critic for images")
        self.n_members = len(policies)
        self.device = device
        self.discrete = isinstance(ref.action_space, spaces.Discrete)
        space: spaces.Space = ref.action_space
        self.action_dim = int(space.n) if isinstance(space, spaces.Discrete) else int(space.shape[0])  # type: ignore[index]
        self.images = not isinstance(ref.features_extractor, FlattenExtractor)
        if self.images and not is_image_space(ref.observation_space):
            raise ValueError(
                f"features_extractor_class {type(ref.features_extractor).__name__} on vector observations is not "
                "supported (the MLP policy flattens them: set net_arch and activation_fn instead)"
            )
        self.normalize_images = bool(ref.normalize_images)

        # Layout: every Linear and Conv2d in module order (the hyper-state's order), then log_std for Gaussians.
        offset = 0
        self.blocks: dict[str, _Block] = {}
        modules = dict(ref.named_modules())
        _, self.layers = policy_layers(ref)
        for info in self.layers:
            module = modules[info.name]
            if not isinstance(module, (nn.Linear, nn.Conv2d)) or module.bias is None:
                raise ValueError(f"unsupported layer {info.name}: {module} (Linear and Conv2d with a bias)")
            conv = None
            if isinstance(module, nn.Conv2d):
                if isinstance(module.padding, str) or module.groups != 1:
                    raise ValueError(f"unsupported convolution {info.name}: {module} (numeric padding, one group)")
                conv = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation}
            n_w, n_b = module.weight.numel(), module.bias.numel()
            w_slice, b_slice = slice(offset, offset + n_w), slice(offset + n_w, offset + n_w + n_b)
            self.blocks[info.name] = _Block(info.name, tuple(module.weight.shape), w_slice, b_slice, conv)
            offset += n_w + n_b
        self.log_std_slice: slice | None = None
        if not self.discrete:
            self.log_std_slice = slice(offset, offset + self.action_dim)
            offset += self.action_dim
        self.n_params = offset
        self.trunk = image_trunk(ref.features_extractor) if self.images else []
        """The shared image features: ``("conv" | "linear", name)``, ``("act", module)``, ``("flatten", None)``."""
        self.pi_layers, self.pi_acts = mlp_layers(ref.mlp_extractor.policy_net, "mlp_extractor.policy_net")
        self.vf_layers, self.vf_acts = mlp_layers(ref.mlp_extractor.value_net, "mlp_extractor.value_net")
        trunk_layers = {name for kind, name in self.trunk if kind in ("conv", "linear")}
        expected = {*trunk_layers, *self.pi_layers, *self.vf_layers, "action_net", "value_net"}
        if set(self.blocks) != expected:
            raise ValueError(f"unsupported policy layout: layers {sorted(self.blocks)}, expected {sorted(expected)}")

        self.flat = torch.stack([self.row_of(p) for p in policies]).to(device)
        """``[M, P]``: every member's parameters (the storage the optimiser updates in place)."""
        self.flat_grad = torch.zeros_like(self.flat)
        """``[M, P]``: the gradients, laid out as ``flat`` (filled by ``backward``)."""
        self.numpy_actor: NumpyActor | None = None
        """Acts in rollouts through NumPy views of ``flat`` where it can (CPU, Tanh/ReLU MLPs), else ``None``."""
        self._build_views()

    def _build_views(self) -> None:
        """The autograd leaves and NumPy arrays that are views of ``flat`` (rebuilt after unpickling)."""
        # Each layer's weight and bias is a leaf *view* of ``flat`` whose ``.grad`` is a view of ``flat_grad``:
        # autograd accumulates into it in place, so one backward leaves every member's gradient in one
        # tensor without the full-size copy per slice that backward through slices of one leaf costs.
        self._leaves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._recording: LayerRecording | None = None
        for name, block in self.blocks.items():
            weight = self.flat[:, block.weight].view(self.n_members, *block.weight_shape)
            self._leaves[name] = (self._leaf(weight), self._leaf(self.bias(name, self.flat)))
        self._log_std_leaf = None if self.log_std_slice is None else self._leaf(self.flat[:, self.log_std_slice])
        self.zero_grad()
        self.numpy_actor = NumpyActor(self) if NumpyActor.supports(self) else None

    def __getstate__(self) -> dict[str, Any]:
        # Pickle copies views as separate tensors and arrays; keep ``flat`` and ``flat_grad`` only.
        state = dict(self.__dict__)
        for name in ("_leaves", "_log_std_leaf", "numpy_actor"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        grad = state["flat_grad"].clone()
        self.__dict__.update(state)
        self._build_views()
        self.flat_grad.copy_(grad)  # zero_grad in _build_views cleared it; the last gradient is kept

    def row_of(self, policy: ActorCriticPolicy, grad: bool = False) -> torch.Tensor:
        """A single-run policy's parameters (or, with ``grad``, their gradients) as a row of ``flat``."""

        def value(p: torch.Tensor) -> torch.Tensor:
            t = p.grad if grad else p
            return (torch.zeros_like(p) if t is None else t).detach().cpu().flatten()

        modules = dict(policy.named_modules())
        row = torch.empty(self.n_params)
        for name, lin in self.blocks.items():
            module = modules[name]
            row[lin.weight] = value(module.weight)  # type: ignore[arg-type]
            row[lin.bias] = value(module.bias)  # type: ignore[arg-type]
        if self.log_std_slice is not None:
            row[self.log_std_slice] = value(policy.log_std)
        return row

    @staticmethod
    def _leaf(view: torch.Tensor) -> torch.Tensor:
        return view.requires_grad_(True)

    def zero_grad(self) -> None:
        """Zero ``flat_grad`` and (re)attach every leaf's ``.grad`` to its view of it."""
        self.flat_grad.zero_()
        for name, (w, b) in self._leaves.items():
            w.grad = self.flat_grad[:, self.blocks[name].weight].view_as(w)
            b.grad = self.bias(name, self.flat_grad)
        if self._log_std_leaf is not None:
            assert self.log_std_slice is not None
            self._log_std_leaf.grad = self.flat_grad[:, self.log_std_slice]

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        """Back-propagate a scalar ``loss`` (the sum of the members'): gradients accumulate in ``flat_grad``."""
        with warnings.catch_warnings():
            # A [M, 1, in] weight's gradient view has the strides of its slice of flat_grad; autograd notes
            # the layout differs from a fresh tensor's and accumulates into the view all the same.
            warnings.filterwarnings("ignore", message="(?s).*grad.sizes", category=UserWarning)
            loss.backward(retain_graph=retain_graph)

    def parameters(self) -> list[torch.Tensor]:
        """The leaf views autograd differentiates (their ``.grad`` are views of ``flat_grad``)."""
        leaves = [t for pair in self._leaves.values() for t in pair]
        return leaves + ([self._log_std_leaf] if self._log_std_leaf is not None else [])

    # ------------------------------------------------------------------ views
    def weight(self, name: str, source: torch.Tensor | None = None) -> torch.Tensor:
        """``[M, *shape]`` weight of layer ``name``: the autograd leaf; or, of ``source``, the ``[M, out, in]`` view.

        The ``in`` of a convolution is ``in_channels * kh * kw`` (the hyper-state's and K-FAC's layout).
        """
        if source is None:
            return self._leaves[name][0]
        lin = self.blocks[name]
        return source[:, lin.weight].view(self.n_members, lin.out_features, lin.in_features)

    def bias(self, name: str, source: torch.Tensor | None = None) -> torch.Tensor:
        """``[M, out]`` bias of layer ``name``: the autograd leaf, or a view of ``source``."""
        if source is None:
            return self._leaves[name][1]
        return source[:, self.blocks[name].bias]

    def layer_weights(self, source: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The ``[M, rows, cols]`` weight of every hyper-state layer, in :func:`policy_layers` order."""
        return [self.weight(info.name, source) for info in self.layers]

    @property
    def layer_infos(self) -> list[LayerInfo]:
        """Shapes of the hyper-state layers (one member's)."""
        return list(self.layers)

    def log_std(self) -> torch.Tensor:
        """``[M, action_dim]`` (Gaussian policies only; the autograd leaf)."""
        assert self._log_std_leaf is not None
        return self._log_std_leaf

    # ------------------------------------------------------------------ forward
    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        bias, weight = self.bias(name).unsqueeze(1), self.weight(name).transpose(1, 2)
        if weight.shape[-1] == 1 and self.n_members > 1:
            # A batched matrix-vector product (the value head) rounds differently for M members than for one
            # (measured with torch 2.13 on CPU; matrix-matrix products do not): one product per member keeps
            # every member bit-identical to the single run of its seed.
            out = torch.cat([torch.baddbmm(bias[i : i + 1], x[i : i + 1], weight[i : i + 1]) for i in range(len(x))])
        else:
            out = torch.baddbmm(bias, x, weight)
        return self._recorded(name, x, out)

    def _recorded(self, name: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` of layer ``name`` on input ``x``, its input and output gradient recorded while recording."""
        recording = self._recording
        if recording is not None and torch.is_grad_enabled():
            recording.inputs[name] = x.detach()
            out.register_hook(recording.hook(name))
        return out

    @contextmanager
    def recording(self) -> Iterator[LayerRecording]:
        """Record every layer's input (forward) and output gradient (backward) inside the body (for K-FAC).

        Gradients are recorded only while the body runs: a later backward pass through the same graph
        (the training loss after K-FAC's Fisher loss) leaves the recording as it was.
        """
        recording = LayerRecording()
        self._recording = recording
        try:
            yield recording
        finally:
            self._recording = None
            recording.active = False

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Every member's convolution: ``x [M, B, C, H, W]`` to ``[M, B, C', H', W']``.

        On a CPU one convolution per member, on its own slice of the batch (its single run's convolution): a
        grouped convolution over the members' channels was slower (NatureCNN, 4 members x 8 frames: 6.1 ms
        grouped, 3.9 ms as four calls, one thread, measured before the member-major layout), and the channel
        layout it needs cost a transposed copy of every batch and, in the backward pass, a full-size gradient
        per member slice (a Pong population of 4 ran 0.80 of a single run's throughput in that layout, 0.93
        in this one, ``benchmarks/population.py``). On a GPU one grouped convolution (one kernel for all).
        """
        block, conv = self.blocks[name], self.blocks[name].conv or {}
        weight, bias = self.weight(name), self.bias(name)
        m, b = x.shape[:2]
        if x.device.type == "cpu" or m == 1:
            members = zip(x.unbind(0), weight.unbind(0), bias.unbind(0), strict=True)
            out = torch.stack([F.conv2d(*args, **conv) for args in members])
        else:
            grouped = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
            out = F.conv2d(grouped, weight.reshape(-1, *weight.shape[2:]), bias.reshape(-1), groups=m, **conv)
            out = out.view(b, m, block.out_features, *out.shape[2:]).transpose(0, 1)
        return self._recorded(name, x, out)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[M, B, F]`` features of ``obs [M, B, ...]``: the flattened observation, or the shared CNN's output."""
        if not self.images:
            return obs.flatten(2).float()
        h = obs.float()  # [M, B, C, H, W] through the convolutions; the Flatten makes it [M, B, F]
        if self.normalize_images:
            h = h / 255.0
        for kind, item in self.trunk:
            if kind == "conv":
                h = self._conv(item, h)
            elif kind == "flatten":
                h = h.flatten(2)
            elif kind == "linear":
                h = self._linear(item, h)
            else:
                h = item(h)
        return h

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distribution parameters (logits or means) ``[M, B, A]`` and values ``[M, B]`` for ``obs [M, B, ...]``."""
        features = self.features(obs)
        h = features
        for name, act in zip(self.pi_layers, self.pi_acts, strict=True):
            h = act(self._linear(name, h))
        v = features
        for name, act in zip(self.vf_layers, self.vf_acts, strict=True):
            v = act(self._linear(name, v))
        return self._linear("action_net", h), self._linear("value_net", v).squeeze(-1)

    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability ``[M, B]`` of ``actions`` and the distribution's entropy ``[M, B]``.

        Categorical: ``actions`` is ``[M, B]`` integer; Gaussian: ``[M, B, A]``, log-probabilities and
        entropies summed over action dimensions (as SB3's ``DiagGaussianDistribution``).
        """
        if self.discrete:
            logp = torch.log_softmax(params, dim=-1)
            log_prob = logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(logp.exp() * logp).sum(-1)
            return log_prob, entropy
        log_std = self.log_std().unsqueeze(1)  # [M, 1, A]
        var = torch.exp(2 * log_std)
        log_prob = (-((actions - params) ** 2) / (2 * var) - log_std - _HALF_LOG_2PI).sum(-1)
        entropy = (0.5 + _HALF_LOG_2PI + log_std).sum(-1).expand_as(log_prob)
        return log_prob, entropy

    def kl(self, params_p: torch.Tensor, params_q: torch.Tensor, log_std_q: torch.Tensor | None = None) -> torch.Tensor:
        """``KL(p || q)`` per sample ``[M, B]``: p of ``params_p`` (and this ``log_std``), q of ``params_q``.

        Gaussian policies: ``log_std_q`` ``[M, A]`` is q's (default: this policy's).
        """
        if self.discrete:
            logp, logq = torch.log_softmax(params_p, -1), torch.log_softmax(params_q, -1)
            return (logp.exp() * (logp - logq)).sum(-1)
        log_std_p = self.log_std().unsqueeze(1)
        log_sq = log_std_p if log_std_q is None else log_std_q.unsqueeze(1)
        var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_sq)
        return (log_sq - log_std_p + (var_p + (params_p - params_q) ** 2) / (2 * var_q) - 0.5).sum(-1)

    def with_parameters(self, flat: torch.Tensor) -> BatchedActorCritic:
        """The same architecture with ``flat [K, P]`` as its K members' parameters (e.g. candidate updates)."""
        other = copy.copy(self)
        other.n_members = flat.shape[0]
        other.flat = flat.detach().clone()
        other.flat_grad = torch.zeros_like(other.flat)
        other._build_views()
        return other

    @torch.no_grad()
    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The deterministic action of every member (evaluation): the most likely class, or the Gaussian mean."""
        return params.argmax(-1) if self.discrete else params

    @torch.no_grad()
    def sample(self, params: torch.Tensor, streams: MemberStreams, members: Any = None) -> torch.Tensor:
        """Sample actions for every member, each member's noise from its own stream (``members``: only theirs).

        Categorical: inverse CDF of one uniform per sample; Gaussian: ``mean + std * N(0, 1)``.
        """
        if self.discrete:
            u = streams.torch_uniform((*params.shape[1:-1], 1), params.device, members)
            cdf = torch.softmax(params, dim=-1).cumsum(-1)
            return (cdf < u).sum(-1).clamp_(max=self.action_dim - 1)
        noise = streams.torch_normal(params.shape[1:], params.device, params.dtype, members)
        return params + self.log_std().exp().unsqueeze(1) * noise
