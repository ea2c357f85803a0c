"""Seed plumbing: derived seeds and a private torch RNG stream per inner run.

Library code never calls global RNG functions. Torch's samplers (``Distribution.sample``, weight init)
draw from the global generator and take no generator argument, so each inner run keeps its own torch RNG
state and swaps it in only while its own code runs (:class:`TorchRNG`). Two runs in one process, or a
user's own torch code around them, do not disturb each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["GlobalRNGs", "TorchRNG", "derive_seeds"]


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 31-bit seeds derived from ``seed`` (NumPy ``SeedSequence``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    words = np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)
    return [int(w) & 0x7FFFFFFF for w in words]


class TorchRNG:
    """A private torch RNG stream, entered with ``with rng.active(): ...``.

    Args:
        seed: Seed of the stream.
        device: The device whose generator is also swapped (CUDA keeps a separate generator).
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self._cpu_state = torch.Generator().manual_seed(int(seed)).get_state()
        self._cuda_index: int = 0
        self._cuda_state: torch.Tensor | None = None
        if device.type == "cuda":
            self._cuda_index = device.index if device.index is not None else torch.cuda.current_device()
            gen = torch.Generator(device=f"cuda:{self._cuda_index}").manual_seed(int(seed))
            self._cuda_state = gen.get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the body with this stream as torch's global generator, then restore the caller's."""
        saved_cpu = torch.get_rng_state()
        torch.set_rng_state(self._cpu_state)
        saved_cuda: torch.Tensor | None = None
        if self._cuda_state is not None:
            saved_cuda = torch.cuda.get_rng_state(self._cuda_index)
            torch.cuda.set_rng_state(self._cuda_state, self._cuda_index)
        try:
            yield
        finally:
            self._cpu_state = torch.get_rng_state()
            torch.set_rng_state(saved_cpu)
            if saved_cuda is not None:
                self._cuda_state = torch.cuda.get_rng_state(self._cuda_index)
                torch.cuda.set_rng_state(saved_cuda, self._cuda_index)


class GlobalRNGs:
    """Private streams for NumPy's global RNG and torch's, around third-party code that draws from them.

    SB3's replay buffer samples with ``np.random`` and its networks with torch's global generator;
    ``with rngs.active(): model.train(...)`` keeps that code seeded and leaves the caller's RNGs alone.

    Args:
        seed: Seed of both streams.
        device: Torch device whose generator is also swapped.
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        torch_seed, np_seed = derive_seeds(seed, 2)
        self._torch = TorchRNG(torch_seed, device)
        self._np_state = np.random.RandomState(np_seed).get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the body with these streams as the global ones, then restore the caller's."""
        # SB3 draws from NumPy's legacy global RNG, so that is the state to swap.
        saved = np.random.get_state()  # noqa: NPY002
        np.random.set_state(self._np_state)  # noqa: NPY002
        try:
            with self._torch.active():
                yield
        finally:
            self._np_state = np.random.get_state()  # noqa: NPY002
            np.random.set_state(saved)  # noqa: NPY002
