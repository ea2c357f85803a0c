"""K-FAC: the Kronecker-factored natural-gradient optimiser of ACKTR (Wu et al., 2017), for M members at once.

Written as the ACKTR code bases (OpenAI baselines and ikostrikov's PyTorch port) do it:

- *Blocks*: every Linear and Conv2d layer is one block; its bias is an extra (homogeneous) column of the
  weight, sharing the output factor G. The Gaussian policy's ``log_std`` is *loose*: it takes its raw
  gradient, scaled by the same trust-region factor and counted in it, as baselines does.
- *Factors*, on statistics steps (every ``stats_every`` updates), from the forward and backward pass of the
  Fisher loss over a batch of B rows: Linear ``A = a^T a / B`` with ``a = [x, 1]``, ``G = B g^T g`` with
  ``g`` the gradient of the batch-mean loss w.r.t. the output; Conv2d (the exact, unfold-based form)
  ``A = sum_{b,t} p p^T / (T^2 B)`` over the T output positions' patches ``p = [patch, 1]``, and
  ``G = B T sum_{b,t} g g^T`` (ikostrikov's scaling). Running averages ``m <- decay m + (1 - decay) new``,
  started from the first batch.
- *Inverse*: eigendecompositions ``A = Q_A diag(d_A) Q_A^T``, ``G = Q_G diag(d_G) Q_G^T`` every
  ``inverse_every`` updates (eigenvalues below 1e-6 set to 0); the preconditioned gradient of a block is
  ``V = Q_G [(Q_G^T grad Q_A) / D] Q_A^T`` with ``D = d_G d_A^T + damping`` (``damping_mode="kronecker"``,
  the ACKTR code bases': the exact inverse of ``G x A + damping I``) or ``D = (d_G + damping)(d_A +
  damping)^T`` (``"factored"``).
- *Trust region*: ``nu = min(1, sqrt(kl_clip / (lr^2 sum(V * grad))))`` over all parameters, then
  momentum SGD on ``nu V``: ``buf <- momentum buf + nu V``, ``theta <- theta - lr (1 - momentum) buf``.

Every state tensor is stacked over a leading member dimension, so that

- the factors of all members are one ``bmm`` per layer and their eigendecompositions one batched
  ``torch.linalg.eigh``;
- ``lr``, ``kl_clip`` and ``damping`` are ``[M]`` tensors: each member has its own step size, trust
  region and damping, and its own trust-region factor ``nu``;
- rollbacks and copies between members are row operations (:meth:`tensors`).

A member whose factors or natural gradient are not finite, or whose eigendecomposition fails, is reported
by :meth:`KFAC.step` (its row is then rolled back by the learner); the other members' steps go on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hypergym.learners.optim import BatchedOptimizer
from hypergym.learners.policy import BatchedActorCritic
from hypergym.learners.records import LayerRecording

__all__ = ["DAMPING_MODES", "EIGEN_EPS", "KFAC", "check_kfac_settings"]

#: Eigenvalues below this are treated as 0 (the ACKTR code bases' threshold).
EIGEN_EPS = 1e-6
#: How the damping enters the inverse (see the module docstring).
DAMPING_MODES = ("kronecker", "factored")


def _with_bias(xtx: torch.Tensor, col_sums: torch.Tensor, n_rows: int) -> torch.Tensor:
    """``[x, 1]^T [x, 1]`` per member (``[M, k + 1, k + 1]``) from ``x^T x``, the column sums of ``x`` and its rows.

    The ones column of the bias is never materialised: for a convolution the patch matrices are large.
    """
    m, k = col_sums.shape
    out = xtx.new_empty(m, k + 1, k + 1)
    out[:, :k, :k] = xtx
    out[:, :k, k] = col_sums
    out[:, k, :k] = col_sums
    out[:, k, k] = n_rows
    return out


def check_kfac_settings(
    momentum: float, stat_decay: float, stats_every: int, inverse_every: int, damping_mode: str
) -> None:
    """Refuse K-FAC settings outside their ranges, naming the valid ones.

    Raises:
        ValueError: For a momentum or decay outside [0, 1), a schedule below 1, or an unknown damping mode.
    """
    if not 0 <= momentum < 1 or not 0 <= stat_decay < 1:
        raise ValueError(f"momentum and stat_decay must be in [0, 1), got {momentum!r}, {stat_decay!r}")
    if stats_every < 1 or inverse_every < 1:
        raise ValueError(f"stats_every and inverse_every must be >= 1, got {stats_every!r}, {inverse_every!r}")
    if damping_mode not in DAMPING_MODES:
        raise ValueError(f"unknown damping_mode {damping_mode!r}; choose from {list(DAMPING_MODES)}")


class KFAC(BatchedOptimizer):
    """K-FAC with a KL trust region and momentum over a :class:`BatchedActorCritic`, per member.

    Use: on a statistics step (:meth:`wants_stats`), run the forward and backward pass of the Fisher loss
    inside ``with policy.recording() as recording:``, pass the recording to :meth:`record`, then
    back-propagate the training loss into ``policy.flat_grad`` and call :meth:`step`.

    Args:
        flat: The ``[M, P]`` parameters.
        grad: The ``[M, P]`` tensor that holds their gradients at each step.
        policy: The batched policy whose Linear layers are the blocks (``log_std`` is a loose parameter).
        momentum: Momentum of the SGD step on the preconditioned gradient.
        stat_decay: Decay of the running averages of the factors.
        weight_decay: L2 coefficient added to the gradient before preconditioning.
        stats_every: Ts, update the factors on every ``stats_every``-th step of a member.
        inverse_every: Tf, recompute the eigendecompositions every ``inverse_every``-th step.
        damping_mode: ``"kronecker"`` (ACKTR's) or ``"factored"``.
    """

    def __init__(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        policy: BatchedActorCritic,
        momentum: float = 0.9,
        stat_decay: float = 0.99,
        weight_decay: float = 0.0,
        stats_every: int = 1,
        inverse_every: int = 10,
        damping_mode: str = "kronecker",
    ) -> None:
        super().__init__(flat, grad)
        check_kfac_settings(momentum, stat_decay, stats_every, inverse_every, damping_mode)
        self.policy = policy
        self.momentum, self.stat_decay, self.weight_decay = momentum, stat_decay, weight_decay
        self.stats_every, self.inverse_every, self.damping_mode = stats_every, inverse_every, damping_mode
        m = flat.shape[0]
        # Every state tensor is preallocated (rollback snapshots are taken of them at construction);
        # the flags say whether a member's factors and eigenbases hold data yet (a rollback to the
        # initial state clears them, as popping a torch optimiser's state does).
        state: dict[str, torch.Tensor] = {
            "factors_ready": torch.zeros(m, dtype=torch.bool, device=flat.device),
            "inverses_ready": torch.zeros(m, dtype=torch.bool, device=flat.device),
            "momentum_buffer": torch.zeros_like(flat),
        }
        for name, lin in policy.blocks.items():
            k, out = lin.in_features + 1, lin.out_features
            shapes = {"A": (k, k), "G": (out, out), "d_A": (k,), "Q_A": (k, k), "d_G": (out,), "Q_G": (out, out)}
            for key, shape in shapes.items():
                state[f"{name}/{key}"] = flat.new_zeros((m, *shape))
        self.state = state
        self.last_nu = torch.full((m,), float("nan"), dtype=torch.float64, device=flat.device)
        """``[M]`` trust-region factor nu of each member's last step."""
        self._recorded: LayerRecording | None = None

    # ------------------------------------------------------------------ statistics
    def wants_stats(self) -> torch.Tensor:
        """``[M]``: whether each member's coming step updates its factors (run the Fisher pass then)."""
        return (self.step_count.long() % self.stats_every) == 0

    def record(self, recording: LayerRecording) -> None:
        """Keep the Fisher pass's layer inputs and output gradients for the coming :meth:`step`."""
        self._recorded = recording

    def _update_factors(self, wants: torch.Tensor) -> None:
        recording = self._recorded
        missing = [n for n in self.policy.blocks if recording is None or n not in recording.output_grads]
        if missing:
            raise RuntimeError(
                f"K-FAC statistics step without a Fisher pass for {len(missing)} layer(s): run the Fisher loss's "
                "forward and backward pass inside `with policy.recording()` and pass it to record() before step()"
            )
        assert recording is not None
        first = wants & ~self.state["factors_ready"]
        running = wants & self.state["factors_ready"]
        for name in self.policy.blocks:
            a_new, g_new = self._factors(name, recording.inputs[name], recording.output_grads[name])
            for key, new in (("A", a_new), ("G", g_new)):
                factor = self.state[f"{name}/{key}"]
                blended = torch.lerp(factor, new, 1 - self.stat_decay)
                factor.copy_(
                    torch.where(first[:, None, None], new, torch.where(running[:, None, None], blended, factor))
                )
        self.state["factors_ready"] |= wants
        self._recorded = None

    def _factors(self, name: str, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This batch's ``(A, G)`` of one layer for every member (the formulas of :class:`KFAC`).

        Linear: ``x [M, B, in]``, ``g [M, B, out]`` (the gradient of each member's batch-mean loss):
        ``A = [x, 1]^T [x, 1] / B``, ``G = B g^T g``. Conv2d: ``x [M, B, C, H, W]``, ``g [M, B, out, H', W']``:
        over the T output positions' patches ``p = [patch, 1]``,
        ``A = sum p p^T / (T^2 B)`` and ``G = B T sum g g^T``.
        """
        block, m = self.policy.blocks[name], self.flat.shape[0]
        if block.conv is None:
            batch = x.shape[1]
            a_new = _with_bias(torch.bmm(x.transpose(1, 2), x), x.sum(1), batch) / batch
            return a_new, torch.bmm(g.transpose(1, 2), g) * batch
        batch = x.shape[1]
        patches = F.unfold(x.flatten(0, 1), block.weight_shape[2:], **block.conv)  # [M * B, C * kh * kw, T]
        spatial = patches.shape[2]
        patches = patches.view(m, batch, -1, spatial)
        xtx = torch.einsum("mbkt,mblt->mkl", patches, patches)
        a_new = _with_bias(xtx, patches.sum((1, 3)), batch * spatial) / (spatial * spatial * batch)
        g = g.reshape(m, batch, block.out_features, -1)
        return a_new, torch.einsum("mbot,mbpt->mop", g, g) * (batch * spatial)

    def _update_inverses(self, needs: torch.Tensor) -> torch.Tensor:
        """Eigendecompositions of the members in ``needs``; returns ``[M]`` which of them failed."""
        failed = torch.zeros_like(needs)
        for name in self.policy.blocks:
            for key in ("A", "G"):
                factor = self.state[f"{name}/{key}"]
                finite = torch.isfinite(factor).flatten(1).all(1)
                failed |= needs & ~finite
                # A non-finite member's matrix would make the batched solver fail for every member.
                eye = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device)
                safe = torch.where(finite[:, None, None], factor, eye)
                values, vectors, ok = _batched_eigh(safe)
                failed |= needs & ~ok
                values = values * (values > EIGEN_EPS)
                take = needs[:, None]
                self.state[f"{name}/d_{key}"].copy_(torch.where(take, values, self.state[f"{name}/d_{key}"]))
                q = self.state[f"{name}/Q_{key}"]
                q.copy_(torch.where(take[:, :, None], vectors, q))
        self.state["inverses_ready"] |= needs
        return failed

    # ------------------------------------------------------------------ the step
    def _precondition(self, name: str, grad: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
        """``F^-1 grad`` of one layer's ``[M, out, in + 1]`` gradient in each member's eigenbases."""
        s = self.state
        q_a, d_a, q_g, d_g = s[f"{name}/Q_A"], s[f"{name}/d_A"], s[f"{name}/Q_G"], s[f"{name}/d_G"]
        d = damping.to(grad.dtype)[:, None, None]
        if self.damping_mode == "kronecker":
            denominator = d_g.unsqueeze(2) * d_a.unsqueeze(1) + d
        else:
            denominator = (d_g.unsqueeze(2) + d) * (d_a.unsqueeze(1) + d)
        inner = torch.bmm(torch.bmm(q_g.transpose(1, 2), grad), q_a) / denominator
        return torch.bmm(torch.bmm(q_g, inner), q_a.transpose(1, 2))

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, lr: torch.Tensor, kl_clip: torch.Tensor | None = None, damping: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One K-FAC update of every member with its own ``lr``, ``kl_clip`` and ``damping`` (``[M]`` each).

        Returns:
            ``[M]`` bool: members whose step could not be computed with finite numbers (a failed
            eigendecomposition, non-finite factors or natural gradient); their rows must be rolled back.
        """
        if kl_clip is None or damping is None:
            raise TypeError("KFAC.step needs kl_clip and damping ([M] tensors)")
        policy = self.policy
        wants = self.wants_stats()
        if bool(wants.any()):
            self._update_factors(wants)
        needs = ((self.step_count.long() % self.inverse_every) == 0) | ~self.state["inverses_ready"]
        failed = self._update_inverses(needs) if bool(needs.any()) else torch.zeros_like(needs)
        self.step_count += 1

        # Preconditioned gradients in the flat layout, and vg = lr^2 sum(V * grad), the predicted KL's scale.
        flat, grad, wd = self.flat, self.grad, self.weight_decay
        update = torch.zeros_like(flat)
        vg = torch.zeros(flat.shape[0], dtype=torch.float64, device=flat.device)
        for name, lin in policy.blocks.items():
            g_block = torch.cat([policy.weight(name, grad), policy.bias(name, grad).unsqueeze(2)], dim=2)
            if wd:
                p_block = torch.cat([policy.weight(name, flat), policy.bias(name, flat).unsqueeze(2)], dim=2)
                g_block = g_block + wd * p_block
            v = self._precondition(name, g_block, damping)
            vg += (v * g_block).flatten(1).sum(1).double()
            update[:, lin.weight] = v[:, :, :-1].flatten(1)
            update[:, lin.bias] = v[:, :, -1]
        if policy.log_std_slice is not None:  # loose: the raw gradient, counted in the trust region
            loose = grad[:, policy.log_std_slice]
            if wd:
                loose = loose + wd * flat[:, policy.log_std_slice]
            vg += loose.square().sum(1).double()
            update[:, policy.log_std_slice] = loose
        lr64 = lr.to(torch.float64)
        vg_value = vg * lr64 * lr64
        failed |= ~torch.isfinite(vg_value)
        kl = kl_clip.to(torch.float64)
        ratio = torch.where(vg_value > 0, kl / torch.where(vg_value > 0, vg_value, 1.0), torch.ones_like(vg_value))
        nu = torch.clamp(torch.sqrt(torch.nan_to_num(ratio, nan=1.0)), max=1.0)
        self.last_nu.copy_(torch.where(failed, torch.nan, nu))

        # Momentum SGD on nu * V (as ikostrikov's port: SGD with lr (1 - momentum)).
        buf = self.state["momentum_buffer"]
        buf.mul_(self.momentum).add_(update * nu.to(flat.dtype)[:, None])
        flat.sub_(buf * (lr64 * (1 - self.momentum)).to(flat.dtype)[:, None])
        return failed


def _batched_eigh(factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` of ``[M, k, k]``; members it fails on are solved again one by one.

    Failing includes returning non-finite numbers without raising: with 2 threads, MKL's batched solver
    (torch 2.13 on an AMD EPYC with AVX-512) gave NaN for the second of two finite, rank-deficient 513 x 513
    factors that it solves alone, or on one thread.

    Returns:
        Eigenvalues ``[M, k]``, eigenvectors ``[M, k, k]`` and ``[M]`` whether each member's succeeded.
    """
    try:
        values, vectors = torch.linalg.eigh(factors)
    except RuntimeError:  # torch.linalg.LinAlgError: find the member(s) whose solver did not converge
        values, vectors = torch.full(factors.shape[:2], torch.nan).to(factors), torch.full_like(factors, torch.nan)

    def finite() -> torch.Tensor:
        return torch.isfinite(values).all(1) & torch.isfinite(vectors).flatten(1).all(1)

    ok = finite()
    for i in torch.nonzero(~ok).flatten().tolist():
        try:
            values[i], vectors[i] = torch.linalg.eigh(factors[i])
        except RuntimeError:
            values[i], vectors[i] = torch.nan, torch.nan
    return values, vectors, finite()
