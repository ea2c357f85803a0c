"""Optim4RL (Lan, Mahmood, Yan, Xu; RLC 2024): a learned, coordinate-wise optimiser, and its meta-gradient.

Per scalar parameter two GRUs (hidden 8) read the gradient ``g`` and ``g^2``; MLPs map their outputs to
``o1``, ``o2``; the update has Adam's shape::

    m = sign(g) exp(o1),   v = exp(o2),   delta = -alpha m / sqrt(v + eps)

with ``g`` and ``g^2`` entering as constants (stop-gradient), so that the meta-gradient is first-order.
``alpha`` is the learning rate hyper-agents schedule. At initialisation (zero hidden states, small ``o``)
the update is close to ``-alpha sign(g)``; a coordinate whose gradient is exactly 0 does not move.

:class:`Optim4RLRule` is the rule (the meta-parameters); :class:`BatchedOptim4RL` applies it to a
population's ``[M, P]`` parameters, its hidden states ``[M, P, 8]`` part of the optimiser state (so
checkpoints, PBT's copies and rollbacks carry them). :class:`LinearOptimRule` is the paper's LinearOptim
ablation as the official code writes it. :func:`meta_loss` unrolls inner updates for the meta-gradient;
:func:`pipeline_offsets` and :func:`pipeline_resets` are pipeline training's staggered resets;
:func:`save_rule` and :func:`load_rule` write and read a learned-optimiser file. Settings and the official
code's lines: ``shared/research/optim4rl.md``. The paper's MLPs have hidden sizes (16, 16); the official
code's default is one linear layer (``mlp=()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hypergym.learners.optim import BatchedOptimizer

__all__ = ["RULES", "BatchedOptim4RL", "LinearOptimRule", "Optim4RLRule", "load_rule", "meta_loss"]
__all__ += ["pipeline_offsets", "pipeline_resets", "save_rule"]

#: What a learned-optimiser file says it is, and the version of its layout.
FILE_FORMAT, FILE_VERSION = "hypergym-learned-optimizer", 1


def _mlp(inputs: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 1))


class Optim4RLRule(nn.Module):
    """The learned update rule: ``(g, h_m, h_v) -> (u, h_m', h_v')`` with ``u = -m / sqrt(v + eps)`` per coordinate.

    Args:
        hidden: Units of each GRU (the paper: 8).
        mlp: Hidden widths of the two MLPs (the paper: (16, 16)).
        eps: Added to ``v`` inside the square root (the code: 1e-8).
    """

    #: The names of its per-coordinate hidden states (the optimiser state's keys).
    state_names: tuple[str, ...] = ("h_m", "h_v")

    def __init__(self, hidden: int = 8, mlp: Sequence[int] = (16, 16), eps: float = 1e-8) -> None:
        super().__init__()
        self.hidden, self.eps = hidden, eps
        self.kwargs = {"hidden": hidden, "mlp": list(mlp), "eps": eps}
        self.gru_m, self.gru_v = nn.GRUCell(1, hidden), nn.GRUCell(1, hidden)
        self.mlp_m, self.mlp_v = _mlp(hidden, mlp), _mlp(hidden, mlp)

    def forward(
        self, grad: torch.Tensor, h_m: torch.Tensor, h_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The update direction of every coordinate of ``grad [N]`` (step size 1), and the new hidden states."""
        g = grad.detach().reshape(-1, 1).to(h_m.dtype)  # a constant of the meta-gradient
        h_m, h_v = self.gru_m(g, h_m), self.gru_v(g * g, h_v)
        m = torch.sign(g[:, 0]) * torch.exp(self.mlp_m(h_m)[:, 0])
        v = torch.exp(self.mlp_v(h_v)[:, 0])
        return -m * torch.rsqrt(v + self.eps), h_m, h_v

    def initial_state(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """Zero hidden states of ``n`` coordinates (in the rule's dtype), one per :attr:`state_names`."""
        dtype = self.gru_m.weight_ih.dtype
        return tuple(torch.zeros(n, self.hidden, device=device, dtype=dtype) for _ in self.state_names)


class LinearOptimRule(nn.Module):
    """LinearOptim, the paper's ablation, as the official code writes it: ``u = -(exp(o1) g + exp(o2) o3)``.

    One GRU reads ``g``; an MLP maps its state to ``(o1, o2, o3)``. The paper writes the update as
    ``-(a g + b)``; the code makes ``a`` and the offset's scale positive through ``exp``. Its update is
    linear in the gradient: the ablation shows what the sign-and-scale form of Optim4RL adds.

    Args:
        hidden: Units of the GRU.
        mlp: Hidden widths of the MLP.
    """

    state_names: tuple[str, ...] = ("h",)

    def __init__(self, hidden: int = 8, mlp: Sequence[int] = (16, 16)) -> None:
        super().__init__()
        self.hidden = hidden
        self.kwargs = {"hidden": hidden, "mlp": list(mlp)}
        self.gru = nn.GRUCell(1, hidden)
        head = _mlp(hidden, mlp)
        last: nn.Linear = head[-1]  # type: ignore[assignment]
        head[-1] = nn.Linear(last.in_features, 3)
        self.mlp = head

    def forward(self, grad: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The update direction of every coordinate of ``grad [N]`` (step size 1), and the new hidden state."""
        g = grad.detach().reshape(-1, 1).to(h.dtype)
        h = self.gru(g, h)
        o = self.mlp(h)
        return -(torch.exp(o[:, 0]) * g[:, 0] + torch.exp(o[:, 1]) * o[:, 2]), h

    def initial_state(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """A zero hidden state of ``n`` coordinates."""
        return (torch.zeros(n, self.hidden, device=device, dtype=self.gru.weight_ih.dtype),)


#: The learned rules by the name a learned-optimiser file gives.
RULES: dict[str, type[nn.Module]] = {"optim4rl": Optim4RLRule, "linear": LinearOptimRule}


def save_rule(rule: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write ``rule`` as a learned-optimiser file (its kind, constructor arguments, weights and ``meta``)."""
    kind = next(k for k, cls in RULES.items() if type(rule) is cls)
    state = {k: v.detach().cpu().float() for k, v in rule.state_dict().items()}
    payload = {"format": FILE_FORMAT, "version": FILE_VERSION, "rule": kind, "kwargs": rule.kwargs,
               "state_dict": state, "meta": dict(meta or {})}  # fmt: skip
    torch.save(payload, Path(path))


def load_rule(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The rule stored in a learned-optimiser file, and its ``meta`` (read as tensors only: no code is run).

    Raises:
        ValueError: If the file is missing or is not a learned-optimiser file of a version this package reads.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no learned-optimiser file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds on a file that is not its format
        raise ValueError(f"{str(path)!r} is not a learned-optimiser file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{str(path)!r} is not a learned-optimiser file (written by hypergym meta-train)")
    if payload.get("version") != FILE_VERSION or payload.get("rule") not in RULES:
        raise ValueError(
            f"{str(path)!r}: version {payload.get('version')!r} rule {payload.get('rule')!r}; this hypergym reads "
            f"version {FILE_VERSION} with a rule in {sorted(RULES)}"
        )
    rule = RULES[payload["rule"]](**payload["kwargs"])
    rule.load_state_dict(payload["state_dict"])
    return rule, dict(payload["meta"])


class BatchedOptim4RL(BatchedOptimizer):
    """A learned rule stepping a population's ``[M, P]`` parameters, each member with its own step size.

    Meta-training records a *tape*: between :meth:`start_tape` and :meth:`end_tape` each step also keeps,
    differentiable in the rule's parameters, the sum of the changes it made (the inner gradients are
    constants), while the parameters and hidden states advance as always.

    Args:
        flat: The ``[M, P]`` parameters.
        grad: The ``[M, P]`` tensor that holds their gradients at each step.
        rule: The learned rule (:class:`Optim4RLRule` or :class:`LinearOptimRule`).
        clip: Clip each gradient coordinate to ``[-clip, clip]`` first (0: none; the code's grids: 1).
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, rule: nn.Module, clip: float = 0.0) -> None:
        super().__init__(flat, grad)
        self.rule, self.clip = rule.to(flat.device), clip
        states = rule.initial_state(flat.numel(), flat.device)  # type: ignore[operator]
        names: tuple[str, ...] = rule.state_names  # type: ignore[assignment]
        self.state = {name: h.view(*flat.shape, -1) for name, h in zip(names, states, strict=True)}
        self._tape: list[torch.Tensor] | None = None
        self.path: torch.Tensor | None = None
        """While taping: ``[M, P]``, the parameters' change since :meth:`start_tape`, in the rule's graph."""

    def start_tape(self) -> None:
        """Keep the coming steps' changes differentiable in the rule (from the hidden states now)."""
        self._tape = [h.detach().reshape(-1, h.shape[-1]).clone() for h in self.state.values()]
        self.path = None

    def end_tape(self) -> torch.Tensor | None:
        """Stop taping; the parameters' change since :meth:`start_tape` (``None``: no step was taken)."""
        path, self._tape, self.path = self.path, None, None
        return path

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """``p += lr * u`` per member, ``u`` the rule's update at the current gradient; the hidden states advance."""
        grad = self.grad.clamp(-self.clip, self.clip) if self.clip > 0 else self.grad
        if self._tape is not None:
            grad = grad.clone()  # the graph keeps it: the learner rewrites its gradient tensor in place
        shape = self.flat.shape
        hidden = [h.reshape(-1, h.shape[-1]) for h in self.state.values()]
        with torch.set_grad_enabled(self._tape is not None):
            if self._tape is not None:  # the live values (a rollback may have restored rows), the tape's gradient
                hidden = [t + (h - t).detach() for t, h in zip(self._tape, hidden, strict=True)]
            u, *hidden = self.rule(grad.reshape(-1), *hidden)
            delta = u.view(shape) * lr.to(u.dtype).unsqueeze(1)
            if self._tape is not None:
                self._tape = hidden
                self.path = delta if self.path is None else self.path + delta
        for h, new in zip(self.state.values(), hidden, strict=True):
            h.copy_(new.detach().view(*shape, -1))
        self.step_count += 1
        self.flat.add_(delta.detach().to(self.flat.dtype))

    def reset_members(self, members: torch.Tensor) -> None:
        """Zero the hidden states and step counts of ``members`` (``[M]`` bool): fresh, as at construction."""
        for h in (*self.state.values(), self.step_count):
            h[members] = 0


def meta_loss(
    rule: nn.Module,
    theta: torch.Tensor,
    inner_grad: Callable[[torch.Tensor, int], torch.Tensor],
    outer_loss: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    alpha: float,
    grads: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The outer loss after ``steps`` inner updates by ``rule`` from ``theta``, differentiable in the rule.

    Inner gradients enter as constants (``inner_grad(theta_k, k)`` is called on a detached copy), as in
    the official code, so the meta-gradient flows through the parameters' path and the hidden states' path
    only. ``grads``: use these inner gradients instead (e.g. to evaluate the same surrogate at perturbed rule
    parameters). Returns the loss and the inner gradients used.
    """
    hidden = rule.initial_state(theta.numel(), theta.device)  # type: ignore[operator]
    used = []
    for k in range(steps):
        g = inner_grad(theta.detach(), k) if grads is None else grads[k]
        used.append(g.detach())
        u, *hidden = rule(g.reshape(-1), *hidden)
        theta = theta + alpha * u.view_as(theta)
    return outer_loss(theta), used


def pipeline_offsets(units: int, interval: int) -> np.ndarray:
    """Each unit's reset offset, ``int(linspace(0, interval - 1, units))`` (shared when ``units > interval``)."""
    if units < 1 or interval < 1:
        raise ValueError(f"units and interval must be positive, got {units} and {interval}")
    return np.linspace(0, interval - 1, units).astype(np.int64)


def pipeline_resets(iteration: int, offsets: np.ndarray, interval: int) -> np.ndarray:
    """``[units]``: the units reset at meta-iteration ``iteration`` (1-based): ``(iteration - 1) % interval == r_i``."""
    return np.asarray(offsets) == (iteration - 1) % interval
