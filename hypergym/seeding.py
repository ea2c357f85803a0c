"""Seed plumbing: derived seeds and a private torch RNG stream per inner run.

Library code never calls global RNG functions. Torch's samplers (``Distribution.sample``, weight init)
draw from the global generator and take no generator argument, so each inner run keeps its own torch RNG
state and swaps it in only while its own code runs (:class:`TorchRNG`). Two runs in one process, or a
user's own torch code around them, do not disturb each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["GlobalRNGs", "MemberStreams", "TorchRNG", "derive_seeds", "member_seeds"]


def member_seeds(seed: int | Sequence[int] | None, n: int) -> list[int | None]:
    """The seed of each of ``n`` members: ``seed, seed + 1, ...`` for an int, the list itself, or ``None`` each.

    The one rule by which a population's seeds are named (``reset(seed=s)``, the runner, the agents, the run
    directories' ``seed{s}`` folders).

    Raises:
        ValueError: On a seed that is not a non-negative integer, a list of the wrong length, or duplicates.
    """
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        seeds = [int(seed) + i for i in range(n)]
    elif (isinstance(seed, Sequence) and not isinstance(seed, str)) or (
        isinstance(seed, np.ndarray) and seed.ndim == 1
    ):
        seeds = list(seed)
        if len(seeds) != n:
            raise ValueError(f"{len(seeds)} seeds for a population of {n} (one per member)")
    else:
        raise ValueError(f"seed must be a non-negative integer or a list of them, got {seed!r}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise ValueError(f"seeds must be non-negative integers, got {bad}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the members' seeds {seeds} repeat one: each member is the run of its own seed")
    return [int(s) for s in seeds]


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 31-bit seeds derived from ``seed`` (NumPy ``SeedSequence``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    words = np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)
    return [int(w) & 0x7FFFFFFF for w in words]


class MemberStreams:
    """Each member's sampling noise and minibatch orders, from a stream of its own seed.

    A member seeded ``s`` draws exactly what a single run seeded ``s`` draws (every draw is one call per
    member, of the member's shape), so a population's member ``i`` trains as the single run of its seed
    does, and member ``i``'s draws never depend on the others'.

    Args:
        seeds: One seed per member.
        device: Torch device of the torch generators.
    """

    def __init__(self, seeds: list[int], device: torch.device) -> None:
        states = [np.random.SeedSequence([int(s)]).generate_state(2) for s in seeds]
        self.torch = [torch.Generator(device=device).manual_seed(int(t)) for t, _ in states]
        self.numpy = [np.random.default_rng(int(n)) for _, n in states]

    def uniform(self, shape: tuple[int, ...], members: np.ndarray | None = None) -> np.ndarray:
        """``[M, *shape]`` float32 uniforms in [0, 1); with ``members`` (``[M]`` bool) only theirs are drawn."""
        out = np.zeros((len(self.numpy), *shape), np.float32)
        for i in _drawing(len(self.numpy), members):
            self.numpy[i].random(dtype=np.float32, out=out[i])
        return out

    def normal(self, shape: tuple[int, ...], members: np.ndarray | None = None) -> np.ndarray:
        """``[M, *shape]`` float32 standard normals (only ``members``' drawn, if given)."""
        out = np.zeros((len(self.numpy), *shape), np.float32)
        for i in _drawing(len(self.numpy), members):
            self.numpy[i].standard_normal(dtype=np.float32, out=out[i])
        return out

    def torch_uniform(
        self, shape: tuple[int, ...], device: torch.device, members: np.ndarray | None = None
    ) -> torch.Tensor:
        """``[M, *shape]`` uniforms in [0, 1) on ``device`` (only ``members``' drawn, if given)."""
        out = torch.zeros((len(self.torch), *shape), device=device)
        for i in _drawing(len(self.torch), members):
            torch.rand(shape, generator=self.torch[i], out=out[i])
        return out

    def torch_normal(
        self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, members: np.ndarray | None = None
    ) -> torch.Tensor:
        """``[M, *shape]`` standard normals on ``device`` (only ``members``' drawn, if given)."""
        out = torch.zeros((len(self.torch), *shape), device=device, dtype=dtype)
        for i in _drawing(len(self.torch), members):
            torch.randn(shape, generator=self.torch[i], out=out[i])
        return out


def _drawing(n: int, members: np.ndarray | None) -> Any:
    """The members that draw: every one, or those ``members`` marks; the others' rows are zeros.

    The others' streams stay put: another member's retry (a rollback) must not move them, or they would no
    longer draw what their single runs draw.
    """
    return range(n) if members is None else np.flatnonzero(members)


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
