"""K-FAC: the Kronecker-factored natural-gradient optimiser of ACKTR (Wu et al., 2017).

Written for SB3's actor-critic policies, following the ACKTR code bases (OpenAI baselines and
ikostrikov's PyTorch port):

- *Blocks*: every ``nn.Linear`` and ``nn.Conv2d`` module is one block; its bias is an extra (homogeneous)
  column of the weight, sharing the output factor G. Parameters outside these modules (SB3's ``log_std``
  of a Gaussian policy, anything else) are *loose*: they take their raw gradient, scaled by the same
  trust-region factor and counted in it, as baselines does for parameters without factors.
- *Factors*, on statistics steps (every ``stats_every`` updates), from a forward and backward pass of the
  Fisher loss (the learner's "sampled" loss) over a batch of B rows: Linear ``A = a^T a / B`` with
  ``a = [x, 1]``, ``G = B g^T g`` with ``g`` the gradient of the batch-mean loss w.r.t. the output; Conv2d
  (the exact, unfold-based form) ``A = sum_{b,t} p p^T / (T^2 B)`` over the T output positions' patches
  ``p = [patch, 1]``, and ``G = B T sum_{b,t} g g^T`` (ikostrikov's scaling, which makes the product
  ``A x G`` the per-sample Fisher of the conv weight). Running averages ``m <- decay m + (1 - decay) new``,
  started from the first batch.
- *Inverse*: eigendecompositions ``A = Q_A diag(d_A) Q_A^T``, ``G = Q_G diag(d_G) Q_G^T`` every
  ``inverse_every`` updates (eigenvalues below 1e-6 set to 0); the preconditioned gradient of a block is
  ``V = Q_G [(Q_G^T grad Q_A) / D] Q_A^T`` with ``D = d_G d_A^T + damping`` (``damping_mode="kronecker"``,
  the ACKTR code bases': the exact inverse of ``G x A + damping I``) or ``D = (d_G + damping)(d_A +
  damping)^T`` (``"factored"``: ``(G + damping I)^-1 grad (A + damping I)^-1``).
- *Trust region*: ``nu = min(1, sqrt(kl_clip / (lr^2 sum(V * grad))))`` over all parameters, then
  momentum SGD on ``nu V``: ``buf <- momentum buf + nu V``, ``theta <- theta - lr (1 - momentum) buf``.
  Without momentum the step is ``min(lr, sqrt(kl_clip / g^T F^-1 g)) F^-1 g``.

An eigendecomposition that fails, or any non-finite factor, gradient or step, raises
:class:`KFACDivergence` *before* any parameter changes, so the learner rolls back as for any divergence.
Every tensor of the optimiser's state (momentum buffers, factors, eigenbases) lives in
``optimizer.state[param]`` and is updated in place, so snapshots and ``state_dict`` cover it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KFAC", "KFACDivergence"]

from hypergym.learners.kfac import EIGEN_EPS, check_kfac_settings

#: The modules that get a Kronecker-factored block.
Block = nn.Linear | nn.Conv2d


class KFACDivergence(FloatingPointError):
    """The K-FAC step could not be computed with finite numbers (nothing was changed)."""


class KFAC(torch.optim.Optimizer):
    """K-FAC with a KL trust region and momentum, over the Linear/Conv2d blocks of ``model``.

    Use: on a statistics step (:meth:`wants_stats`), run the forward pass and the backward pass of the
    Fisher loss inside ``with optimizer.capture():`` (activations and output gradients are recorded
    there and nowhere else); then ``zero_grad``, back-propagate the training loss and call :meth:`step`.

    Args:
        model: The module whose parameters are optimised (hooks are registered on its blocks).
        lr: Step size eta (ACKTR: 0.25). ``param_groups[0]["lr"]``.
        kl_clip: Trust-region radius on the predicted KL of the step (ACKTR: 0.001).
        damping: Tikhonov damping added to the curvature (ACKTR: 0.01).
        momentum: Momentum of the SGD step on the preconditioned gradient.
        stat_decay: Decay of the running averages of the factors.
        weight_decay: L2 coefficient added to the gradient before preconditioning.
        stats_every: Ts, update the factors on every ``stats_every``-th step.
        inverse_every: Tf, recompute the eigendecompositions every ``inverse_every``-th step.
        damping_mode: ``"kronecker"`` (ACKTR's) or ``"factored"`` (see the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.25,
        kl_clip: float = 0.001,
        damping: float = 0.01,
        momentum: float = 0.9,
        stat_decay: float = 0.99,
        weight_decay: float = 0.0,
        stats_every: int = 1,
        inverse_every: int = 10,
        damping_mode: str = "kronecker",
    ) -> None:
        for name, value in (("lr", lr), ("kl_clip", kl_clip), ("damping", damping)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        check_kfac_settings(momentum, stat_decay, stats_every, inverse_every, damping_mode)
        params = [p for p in model.parameters() if p.requires_grad]
        defaults = {
            "lr": lr,
            "kl_clip": kl_clip,
            "damping": damping,
            "momentum": momentum,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)
        self.stat_decay = stat_decay
        self.stats_every = stats_every
        self.inverse_every = inverse_every
        self.damping_mode = damping_mode
        self.steps = 0
        """Updates taken (statistics and inverses are scheduled on it)."""
        self.last_nu = float("nan")
        """The trust-region factor nu of the last step."""

        self.blocks: list[Block] = [
            m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.requires_grad
        ]
        in_blocks = {id(p) for m in self.blocks for p in (m.weight, m.bias) if p is not None}
        self.loose: list[nn.Parameter] = [p for p in params if id(p) not in in_blocks]
        self._capturing = False
        self._inputs: dict[Block, torch.Tensor] = {}
        self._output_grads: dict[Block, torch.Tensor] = {}
        self._handles = [m.register_forward_hook(self._record_forward) for m in self.blocks]

    # ------------------------------------------------------------------ statistics capture
    def wants_stats(self) -> bool:
        """Whether the coming step updates the factors (run the Fisher pass under :meth:`capture`)."""
        return self.steps % self.stats_every == 0

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record each block's input (forward) and output gradient (backward) inside the body."""
        self._inputs.clear()
        self._output_grads.clear()
        self._capturing = True
        try:
            yield
        finally:
            self._capturing = False

    def _record_forward(self, module: Block, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not self._capturing or not torch.is_grad_enabled():
            return
        self._inputs[module] = inputs[0].detach()

        def record_grad(grad: torch.Tensor) -> None:
            # The training loss later flows back through the same graph: only the Fisher pass counts.
            if self._capturing:
                self._output_grads[module] = grad.detach()

        output.register_hook(record_grad)

    # ------------------------------------------------------------------ factors
    def _factors(self, module: Block) -> tuple[torch.Tensor, torch.Tensor]:
        """This batch's ``(A, G)`` of one block, from the recorded input and output gradient.

        The ones column of the bias is never materialised: ``[x, 1]^T [x, 1]`` is assembled from
        ``x^T x``, the column sums of ``x`` and the row count, and scalings are applied to the small
        factors (on Atari the conv patch matrices are ~100 MB, so every copy of them counts).
        """
        x, g = self._inputs[module], self._output_grads[module]
        batch = x.shape[0]
        if isinstance(module, nn.Conv2d):
            if isinstance(module.padding, str):
                raise ValueError("K-FAC supports Conv2d with numeric padding only")
            patches = F.unfold(
                x, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride
            )  # [B, C_in * kh * kw, T]
            spatial = patches.shape[2]
            a_scale = 1.0 / (spatial * spatial * batch)
            a_new = (
                _with_bias_row(
                    torch.tensordot(patches, patches, dims=([0, 2], [0, 2])),
                    patches.sum((0, 2)),
                    batch * spatial,
                    module.bias is not None,
                )
                * a_scale
            )
            g_new = torch.tensordot(g, g, dims=([0, 2, 3], [0, 2, 3])) * (batch * spatial)
        else:
            x = x.reshape(-1, x.shape[-1])
            a_new = _with_bias_row(x.T @ x, x.sum(0), x.shape[0], module.bias is not None) / batch
            g = g.reshape(-1, g.shape[-1])
            g_new = (g.T @ g) * (batch * batch / g.shape[0])
        return a_new, g_new

    def _update_factors(self) -> None:
        missing = [m for m in self.blocks if m not in self._inputs or m not in self._output_grads]
        if missing:
            raise RuntimeError(
                f"K-FAC statistics step without a Fisher pass for {len(missing)} block(s): run the forward and "
                "the backward pass of the Fisher loss inside `with optimizer.capture():` before step()"
            )
        for module in self.blocks:
            a_new, g_new = self._factors(module)
            state = self.state[module.weight]
            if "A" not in state:
                state["A"], state["G"] = a_new.clone(), g_new.clone()
            else:
                state["A"].lerp_(a_new, 1 - self.stat_decay)
                state["G"].lerp_(g_new, 1 - self.stat_decay)
        self._inputs.clear()
        self._output_grads.clear()

    def _update_inverses(self) -> None:
        for module in self.blocks:
            state = self.state[module.weight]
            for name in ("A", "G"):
                factor = state[name]
                if not torch.isfinite(factor).all():
                    raise KFACDivergence(f"non-finite K-FAC factor {name} of {module}")
                try:
                    eigenvalues, eigenvectors = torch.linalg.eigh(factor)
                except RuntimeError as err:  # torch.linalg.LinAlgError: the solver did not converge
                    raise KFACDivergence(f"eigendecomposition of K-FAC factor {name} failed: {err}") from err
                eigenvalues = eigenvalues * (eigenvalues > EIGEN_EPS)
                if f"d_{name}" not in state:
                    state[f"d_{name}"], state[f"Q_{name}"] = eigenvalues, eigenvectors
                else:
                    state[f"d_{name}"].copy_(eigenvalues)
                    state[f"Q_{name}"].copy_(eigenvectors)

    # ------------------------------------------------------------------ the step
    def block_gradient(self, module: Block, weight_decay: float = 0.0) -> torch.Tensor:
        """The block's gradient as one ``[out, in (+1 for the bias)]`` matrix (plus weight decay)."""
        w = module.weight
        grad = w.grad.reshape(w.shape[0], -1) if w.grad is not None else w.new_zeros(w.shape[0], w[0].numel())
        if weight_decay:
            grad = grad + weight_decay * w.detach().reshape(w.shape[0], -1)
        if module.bias is not None:
            b = module.bias
            bias_grad = b.grad if b.grad is not None else torch.zeros_like(b)
            if weight_decay:
                bias_grad = bias_grad + weight_decay * b.detach()
            grad = torch.cat([grad, bias_grad.unsqueeze(1)], dim=1)
        return grad

    def precondition(self, module: Block, grad: torch.Tensor, damping: float) -> torch.Tensor:
        """``F^-1 grad`` of one block in its eigenbases (see ``damping_mode``)."""
        state = self.state[module.weight]
        q_a, d_a, q_g, d_g = state["Q_A"], state["d_A"], state["Q_G"], state["d_G"]
        if self.damping_mode == "kronecker":
            denominator = d_g.unsqueeze(1) * d_a.unsqueeze(0) + damping
        else:
            denominator = (d_g.unsqueeze(1) + damping) * (d_a.unsqueeze(0) + damping)
        return q_g @ ((q_g.T @ grad @ q_a) / denominator) @ q_a.T

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One K-FAC update: factors (statistics steps), inverses (every ``inverse_every``), trust-region step.

        Raises:
            KFACDivergence: On a failed eigendecomposition or non-finite numbers; no parameter has changed.
        """
        if closure is not None:
            raise ValueError("KFAC.step does not take a closure")
        group = self.param_groups[0]
        lr, kl_clip, damping = float(group["lr"]), float(group["kl_clip"]), float(group["damping"])
        momentum, weight_decay = float(group["momentum"]), float(group["weight_decay"])
        if self.wants_stats():
            self._update_factors()
        if self.steps % self.inverse_every == 0 or "Q_A" not in self.state[self.blocks[0].weight]:
            self._update_inverses()
        self.steps += 1

        # Preconditioned gradients, and vg = lr^2 sum(V * grad), the predicted KL's scale.
        updates: list[tuple[torch.Tensor, torch.Tensor]] = []
        vg = torch.zeros((), dtype=torch.float64)
        for module in self.blocks:
            grad = self.block_gradient(module, weight_decay)
            v = self.precondition(module, grad, damping)
            vg += (v * grad).sum().double()
            n_weight = module.weight[0].numel()
            updates.append((module.weight, v[:, :n_weight].reshape(module.weight.shape)))
            if module.bias is not None:
                updates.append((module.bias, v[:, n_weight]))
        for p in self.loose:
            loose_grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if weight_decay:
                loose_grad = loose_grad + weight_decay * p.detach()
            vg += (loose_grad * loose_grad).sum().double()
            updates.append((p, loose_grad))
        vg_value = float(vg) * lr * lr
        if not math.isfinite(vg_value):
            raise KFACDivergence(f"non-finite natural-gradient norm lr^2 g^T F^-1 g = {vg_value}")
        nu = min(1.0, math.sqrt(kl_clip / vg_value)) if vg_value > 0 else 1.0
        self.last_nu = nu

        # Momentum SGD on nu * V (as ikostrikov's port: SGD with lr (1 - momentum)).
        for param, v in updates:
            state = self.state[param]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(param)
            buf = state["momentum_buffer"]
            buf.mul_(momentum).add_(v, alpha=nu)
            param.add_(buf, alpha=-lr * (1 - momentum))

    def __getstate__(self) -> dict[str, Any]:
        # torch's Optimizer pickles only defaults, state and param_groups; K-FAC's step counter, settings,
        # blocks and hook handles are part of the run too (a checkpoint must restore them).
        return dict(self.__dict__)

    def close(self) -> None:
        """Remove the hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _with_bias_row(xtx: torch.Tensor, col_sums: torch.Tensor, n_rows: int, bias: bool) -> torch.Tensor:
    """``[x, 1]^T [x, 1]`` from ``x^T x``, the column sums of ``x`` and its row count (``x^T x`` without bias)."""
    if not bias:
        return xtx
    k = xtx.shape[0]
    out = xtx.new_empty(k + 1, k + 1)
    out[:k, :k] = xtx
    out[:k, k] = col_sums
    out[k, :k] = col_sums
    out[k, k] = n_rows
    return out
