"""Torch devices: ``"auto"`` falls back to the CPU; an explicit accelerator that is absent is an error."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``.

    ``"auto"`` is CUDA when a GPU is present, else the CPU. An explicit ``"cuda"`` (or ``"cuda:N"``,
    ``"mps"``) must exist: training silently on the CPU after asking for a GPU would hide a broken setup
    and misstate every timing.

    Raises:
        ValueError: On an unknown device string, or an accelerator this machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} but torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                "use device='cpu', or device='auto' to fall back to the CPU when no GPU is present"
            )
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r} but MPS is not available here; use 'cpu' or 'auto'")
    return resolved
