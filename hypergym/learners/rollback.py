"""Snapshots of parameters and optimiser state, for rolling back a diverged update."""

from __future__ import annotations

import torch

__all__ = ["Snapshot"]


class Snapshot:
    """A copy of a module's parameters and its optimiser's per-parameter state.

    ``save`` copies into preallocated buffers once their shapes are known, so taking a snapshot on every
    update costs one fused copy, not an allocation.

    Args:
        params: The parameters to track (their order must not change).
        optimizer: The optimiser that updates them.
    """

    def __init__(self, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        self._params = params
        self._optimizer = optimizer
        self._values = [p.detach().clone() for p in params]
        self._state: list[dict[str, torch.Tensor] | None] = [None] * len(params)

    @torch.no_grad()
    def save(self) -> None:
        """Copy the current parameters and optimiser state into the snapshot."""
        torch._foreach_copy_(self._values, [p.detach() for p in self._params])
        for i, p in enumerate(self._params):
            state = self._optimizer.state.get(p)
            if not state:
                self._state[i] = None
                continue
            saved = self._state[i]
            if saved is None or saved.keys() != state.keys():
                self._state[i] = {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
            else:
                for k, v in state.items():
                    if torch.is_tensor(v):
                        saved[k].copy_(v)
                    else:
                        saved[k] = v

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
