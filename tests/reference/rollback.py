"""The reference learner's snapshots of parameters and optimiser state."""

from __future__ import annotations

import torch

__all__ = ["Snapshot"]


class Snapshot:
    """A copy of a module's parameters and its optimiser's per-parameter state.

    Once the optimiser's state exists, ``save`` is one fused copy of every tensor (parameters and state)
    into preallocated buffers, cheap enough to take before every update.

    Args:
        params: The parameters to track (their order must not change).
        optimizer: The optimiser that updates them.
    """

    def __init__(self, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        self._params = params
        self._optimizer = optimizer
        self._values = [p.detach().clone() for p in params]
        self._state: list[dict[str, torch.Tensor] | None] = [None] * len(params)
        # Fast path: the live optimiser-state tensors and their saved copies, valid while the optimiser
        # keeps updating the same tensors in place (it does between our own restores).
        self._live: list[torch.Tensor] | None = None
        self._saved: list[torch.Tensor] = []

    @torch.no_grad()
    def save(self) -> None:
        """Copy the current parameters and optimiser state into the snapshot."""
        torch._foreach_copy_(self._values, [p.detach() for p in self._params])
        if self._live is not None:
            torch._foreach_copy_(self._saved, self._live)
            return
        live: list[torch.Tensor] = []
        saved: list[torch.Tensor] = []
        complete = True
        for i, p in enumerate(self._params):
            state = self._optimizer.state.get(p)
            if not state:
                self._state[i] = None
                complete = False
                continue
            self._state[i] = {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
            for k, v in state.items():
                if torch.is_tensor(v):
                    live.append(v)
                    saved.append(self._state[i][k])  # type: ignore[index]
        if complete:
            self._live, self._saved = live, saved

    @torch.no_grad()
    def restore(self) -> None:
        """Write the snapshot back into the parameters and the optimiser."""
        torch._foreach_copy_([p.data for p in self._params], self._values)
        for i, p in enumerate(self._params):
            saved = self._state[i]
            if saved is None:
                self._optimizer.state.pop(p, None)
            else:
                self._optimizer.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in saved.items()}
            if p.grad is not None:
                p.grad.zero_()
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the cached optimiser-state tensors (call after anything replaces the optimiser state)."""
        self._live = None
        self._saved = []
