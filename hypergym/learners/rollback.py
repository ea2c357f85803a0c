"""Snapshots of the members' parameters and optimiser state, for rolling back a diverged update."""

from __future__ import annotations

import torch

__all__ = ["RowSnapshot"]


class RowSnapshot:
    """Copies of tensors with a member dimension first; save and restore chosen members' rows."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.live = tensors
        self.saved = [t.detach().clone() for t in tensors]

    @staticmethod
    def _mask(mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return mask.view((-1,) + (1,) * (t.dim() - 1))

    @torch.no_grad()
    def save(self, mask: torch.Tensor | None = None) -> None:
        """Copy the rows of ``mask`` (all rows when ``None``) into the snapshot."""
        if mask is None:
            torch._foreach_copy_(self.saved, [t.detach() for t in self.live])
            return
        for live, saved in zip(self.live, self.saved, strict=True):
            saved.copy_(torch.where(self._mask(mask, live), live.detach(), saved))

    @torch.no_grad()
    def restore(self, mask: torch.Tensor) -> None:
        """Write the snapshot's rows of ``mask`` back into the live tensors."""
        for live, saved in zip(self.live, self.saved, strict=True):
            live.data.copy_(torch.where(self._mask(mask, live), saved, live.detach()))
