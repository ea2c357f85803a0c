"""Q-functions over a grid of hyper-actions, batched over members and over several networks per member.

Two kinds, both scoring every grid point of a hyper-state in one pass:

- ``"mlp"``: the hyper-state through a ReLU MLP to one output per grid point (a one-hot head: what a TD
  update teaches one grid point says nothing about another).
- ``"hyper"``: the hypernetwork Q of Sarafian et al. (ICML 2021), ``Q(s, a) = f_{w(s)}(x_a)``. A primary
  residual network maps the hyper-state ``s`` to ``z``; linear heads map ``z`` to the weights ``W``, biases
  ``b`` and gains ``1 + g`` of a small dynamic network with one ReLU layer, which reads ``x_a``, grid point
  ``a``'s normalised hyperparameter values (:func:`grid_coordinates`). ``Q`` is then a continuous function of
  the hyperparameter values: a TD update at one grid point moves its neighbours, and untried points get
  values from the tried ones.

The parameters of ``members x nets`` networks live in one ``[members, P]`` tensor (a member's row holds its
``nets`` networks), as the learner core keeps a population's, so one :class:`~hypergym.learners.optim.BatchedAdam`
steps them and a member's row is its whole state. :meth:`QLayout.q` reads any such tensor (online or target).

Initialisation, from the official code (keynans/HypeRL ``TD3/hyper_network.py``): primary weights
``U(+-1/(2 sqrt(fan_in)))``, biases torch's ``U(+-1/sqrt(fan_in))``; head weights ``U(+-sigma_l)`` with
``sigma_1 = 0.05`` (first dynamic layer), ``sigma_2 = 0.008`` (output), head biases 0, so the gains start at 1.
:meth:`QLayout.dynamic_scale` reports the generated weights' spread against Kaiming-uniform's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hypergym.spaces import HyperparamSpace

__all__ = ["HyperQNetwork", "QLayout", "grid_coordinates"]

_ONE_MINUS = frozenset({"gamma", "gae_lambda"})  # horizons: log(1 - value) spreads 0.9, 0.99, 0.999 evenly


def grid_coordinates(space: HyperparamSpace) -> np.ndarray:
    """``[n_actions, k]``: each grid point's hyperparameter values, one coordinate each, spread over [-1, 1].

    A coordinate is ``log(1 - v)`` for ``gamma`` and ``gae_lambda``, ``log v`` where every value is positive
    (learning rates, batch sizes, clip ranges), else ``v``; then scaled so its grid spans [-1, 1] (0 where a
    hyperparameter has one value). Rows follow the ``Discrete`` codec's order (the first hyperparameter the
    most significant digit).
    """
    axes = []
    for name, values in space.values.items():
        v = np.asarray(values, dtype=np.float64)
        u = np.log(np.maximum(1.0 - v, 1e-8)) if name in _ONE_MINUS else np.log(v) if (v > 0).all() else v
        low, high = u.min(), u.max()
        axes.append(np.zeros_like(u) if high == low else 2.0 * (u - low) / (high - low) - 1.0)
    grid = np.meshgrid(*axes, indexing="ij")  # "ij": the last hyperparameter varies fastest, as the codec
    return np.stack([g.reshape(-1) for g in grid], axis=1).astype(np.float32)


class QLayout:
    """Where each weight of ``nets`` Q-networks lies in a member's parameter row, and how to evaluate them.

    Args:
        obs_dim: Dimension of the hyper-state.
        n_actions: Grid points scored (the ``"mlp"`` head's outputs).
        nets: Networks per member.
        kind: ``"mlp"`` or ``"hyper"``.
        hidden: ``"mlp"``: hidden widths (default ``(64, 64)``, the paper's DQN). ``"hyper"``: the primary's stage
            widths, each stage a linear map and ``blocks`` residual blocks, the last width ``z``'s (default
            ``(256,)``: the code's three stages of 256, 512 and 1024 are sized for 8M parameters per network).
        coordinates: ``"hyper"``: the ``[n_actions, k]`` grid coordinates (:func:`grid_coordinates`).
        dynamic_hidden: ``"hyper"``: units of the dynamic network's hidden layer (the paper: 256).
        blocks: ``"hyper"``: residual blocks per primary stage (the paper: 2).
        sigmas: ``"hyper"``: the heads' init bounds, first dynamic layer then output (the code: 0.05, 0.008).

    Raises:
        ValueError: On an unknown kind, or ``"hyper"`` without coordinates of ``n_actions`` rows.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        nets: int,
        kind: str = "mlp",
        hidden: Sequence[int] | None = None,
        coordinates: np.ndarray | None = None,
        dynamic_hidden: int = 64,
        blocks: int = 1,
        sigmas: tuple[float, float] = (0.05, 0.008),
    ) -> None:
        if kind not in ("mlp", "hyper"):
            raise ValueError(f"q_net must be 'mlp' or 'hyper', got {kind!r}")
        if kind == "hyper" and (coordinates is None or len(coordinates) != n_actions):
            raise ValueError(f"a hypernetwork Q needs the [n_actions={n_actions}, k] grid coordinates")
        self.kind, self.nets, self.n_actions = kind, nets, n_actions
        hidden = hidden if hidden is not None else (64, 64) if kind == "mlp" else (256,)
        self.hidden, self.dynamic_hidden, self.blocks, self.sigmas = tuple(hidden), dynamic_hidden, blocks, sigmas
        self.x = None if coordinates is None else torch.as_tensor(coordinates, dtype=torch.float32)
        self.shapes: dict[str, tuple[int, int]] = {}  # name -> (fan_in, fan_out) of a linear map
        self.bounds: dict[str, tuple[float, float]] = {}  # name -> (weight bound, bias bound) at init
        sizes = [obs_dim, *self.hidden]
        if kind == "mlp":
            for i, (fan_in, fan_out) in enumerate(zip(sizes, [*self.hidden, n_actions], strict=True)):
                self._linear(f"l{i}", fan_in, fan_out, fan_in**-0.5, fan_in**-0.5)  # torch's nn.Linear
            return
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            self._linear(f"stage{i}", fan_in, fan_out, 0.5 * fan_in**-0.5, fan_in**-0.5)
            for j in range(blocks):
                for half in "ab":
                    self._linear(f"stage{i}.block{j}{half}", fan_out, fan_out, 0.5 * fan_out**-0.5, fan_out**-0.5)
        z, h, k = sizes[-1], dynamic_hidden, int(self.x.shape[1])  # type: ignore[union-attr]
        for name, out, sigma in (("w1", h * k, sigmas[0]), ("b1", h, sigmas[0]), ("g1", h, sigmas[0]),
                                 ("w2", h, sigmas[1]), ("b2", 1, sigmas[1]), ("g2", 1, sigmas[1])):  # fmt: skip
            self._linear(f"head.{name}", z, out, sigma, 0.0)

    def _linear(self, name: str, fan_in: int, fan_out: int, weight_bound: float, bias_bound: float) -> None:
        self.shapes[name] = (fan_in, fan_out)
        self.bounds[name] = (weight_bound, bias_bound)

    @property
    def size(self) -> int:
        """Parameters of one member (its ``nets`` networks)."""
        return self.nets * sum((i + 1) * o for i, o in self.shapes.values())

    def init(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """``[members, P]`` initial parameters, member ``i``'s drawn from ``generators[i]`` alone."""
        rows = []
        for gen in generators:
            parts = []
            for name, (fan_in, fan_out) in self.shapes.items():
                w_bound, b_bound = self.bounds[name]
                w = (torch.rand(self.nets, fan_in, fan_out, generator=gen) * 2 - 1) * w_bound
                b = (torch.rand(self.nets, 1, fan_out, generator=gen) * 2 - 1) * b_bound
                parts += [w.reshape(self.nets, -1), b.reshape(self.nets, -1)]
            rows.append(torch.cat(parts, dim=1).reshape(-1))  # net-major: a net's maps, then the next net's
        return torch.stack(rows)

    def _views(self, flat: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each linear map's ``[M, nets, in, out]`` weight and ``[M, nets, 1, out]`` bias, as views of ``flat``."""
        per_net = flat.reshape(flat.shape[0], self.nets, -1)
        out, at = {}, 0
        for name, (fan_in, fan_out) in self.shapes.items():
            w = per_net[:, :, at : at + fan_in * fan_out].reshape(flat.shape[0], self.nets, fan_in, fan_out)
            at += fan_in * fan_out
            b = per_net[:, :, at : at + fan_out].reshape(flat.shape[0], self.nets, 1, fan_out)
            at += fan_out
            out[name] = (w, b)
        return out

    def leaves(self, flat: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each map's weight and bias as leaf tensors sharing ``flat``'s storage, for a gradient step.

        Backpropagating into views of one ``[M, P]`` tensor builds a full-size gradient for every view (the
        slow way: GEM with the hypernetwork Q spent most of a step there); into leaves, only theirs.
        :meth:`write_grad` gathers their gradients into an ``[M, P]`` tensor.
        """
        return {name: (w.detach().requires_grad_(True), b.detach().requires_grad_(True))
                for name, (w, b) in self._views(flat).items()}  # fmt: skip

    def write_grad(self, leaves: dict[str, tuple[torch.Tensor, torch.Tensor]], grad: torch.Tensor) -> None:
        """Write the gradients of :meth:`leaves` into ``grad`` (``[M, P]``, laid out as the parameters)."""
        for name, (gw, gb) in self._views(grad).items():
            for into, leaf in ((gw, leaves[name][0]), (gb, leaves[name][1])):
                into.copy_(leaf.grad) if leaf.grad is not None else into.zero_()

    def _heads(self, views: dict[str, tuple[torch.Tensor, torch.Tensor]], obs: torch.Tensor) -> list[torch.Tensor]:
        """``"hyper"``: the dynamic network's generated ``w1, b1, g1, w2, b2, g2`` at ``obs [M, B, obs_dim]``."""
        x = obs.unsqueeze(1).expand(-1, self.nets, -1, -1)  # every net of a member reads the member's states

        def linear(name: str, inputs: torch.Tensor) -> torch.Tensor:
            w, b = views[name]
            return torch.matmul(inputs, w) + b

        for i in range(len(self.hidden)):
            x = linear(f"stage{i}", x)  # no activation on a stage's map (the code's primary)
            for j in range(self.blocks):  # pre-activation residual blocks
                x = x + linear(f"stage{i}.block{j}b", torch.relu(linear(f"stage{i}.block{j}a", torch.relu(x))))
        return [linear(f"head.{n}", x) for n in ("w1", "b1", "g1", "w2", "b2", "g2")]

    def q(self, params: torch.Tensor | dict[str, tuple[torch.Tensor, torch.Tensor]], obs: torch.Tensor) -> torch.Tensor:
        """``[M, nets, B, n_actions]``: every network's values of every grid point at ``obs [M, B, obs_dim]``.

        ``params``: the ``[M, P]`` parameters, or their :meth:`leaves`.
        """
        views = self._views(params) if isinstance(params, torch.Tensor) else params
        if self.kind == "mlp":
            x = obs.unsqueeze(1).expand(-1, self.nets, -1, -1)
            for i in range(len(self.hidden) + 1):
                w, b = views[f"l{i}"]
                x = torch.matmul(x, w) + b
                x = torch.relu(x) if i < len(self.hidden) else x
            return x
        w1, b1, g1, w2, b2, g2 = self._heads(views, obs)
        w1 = w1.reshape(*w1.shape[:-1], self.dynamic_hidden, -1)  # [M, nets, B, h, k]
        coords = self.x.to(obs.device)  # type: ignore[union-attr]
        pre = torch.einsum("ac,mnbhc->mnbah", coords, w1) * (1 + g1).unsqueeze(-2) + b1.unsqueeze(-2)
        return torch.einsum("mnbah,mnbh->mnba", torch.relu(pre), w2) * (1 + g2) + b2

    def dynamic_scale(self, flat: torch.Tensor, obs: torch.Tensor) -> dict[str, float]:
        """The generated dynamic weights' standard deviation at ``obs``, beside Kaiming-uniform's (``"hyper"``).

        Kaiming-uniform (torch's default for a linear map) has standard deviation ``1 / sqrt(3 fan_in)``.
        """
        if self.kind != "hyper":
            raise ValueError("dynamic_scale applies to the hypernetwork Q (kind='hyper')")
        with torch.no_grad():
            w1, _, _, w2, _, _ = self._heads(self._views(flat), obs)
        k = int(self.x.shape[1])  # type: ignore[union-attr]
        return {"w1_std": float(w1.std()), "w1_kaiming_std": (3 * k) ** -0.5,
                "w2_std": float(w2.std()), "w2_kaiming_std": (3 * self.dynamic_hidden) ** -0.5}  # fmt: skip


class HyperQNetwork(nn.Module):
    """One Q-network of a :class:`QLayout` as a ``torch.nn.Module``: ``forward(obs [B, d]) -> [B, n_actions]``.

    What SB3's DQN holds as its ``q_net`` (``make_agent("dqn", env, q_net="hyper")``).

    Args:
        layout: A layout of one network (``nets=1``).
    """

    def __init__(self, layout: QLayout) -> None:
        super().__init__()
        if layout.nets != 1:
            raise ValueError(f"HyperQNetwork holds one network, got a layout of {layout.nets}")
        self.layout = layout
        self.flat = nn.Parameter(layout.init([torch.default_generator]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Every grid point's value at each hyper-state."""
        return self.layout.q(self.flat, obs.unsqueeze(0))[0, 0]
