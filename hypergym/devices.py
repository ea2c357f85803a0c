"""Torch devices: ``"auto"`` falls back to the CPU; an explicit accelerator that is absent is an error.

Importing this module also makes torch safe in forked children (see :func:`one_thread_after_fork`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext

import torch

__all__ = [
    "check_population_memory",
    "device_memory",
    "one_thread",
    "one_thread_after_fork",
    "resolve_device",
    "worker_context",
]


def one_thread_after_fork() -> None:
    """Run torch on one CPU thread in a process forked from one that has used torch's thread pool.

    A forked child inherits the parent's OpenMP pool in a state it cannot use: its first parallel region
    deadlocks. ``gym.make_vec(id, vectorization_mode="async")`` forks its workers after building one env in
    the parent, so every worker hung in its policy's weight initialisation. One thread never enters a
    parallel region; the parent keeps its threads (PyTorch's DataLoader workers do the same).
    """
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=one_thread_after_fork)


def worker_context() -> BaseContext:
    """How to start worker processes: ``spawn`` once this process has initialised CUDA, else the default.

    A child forked from a process that has initialised CUDA cannot use it (torch raises "Cannot
    re-initialize CUDA in forked subprocess"). On a GPU machine the command line's parent has, when it
    builds the envs that check the settings (``device="auto"`` puts their learners on the GPU), so forked
    workers would fail at their first run. A spawned worker starts a fresh interpreter. Without CUDA the
    platform's default stays (fork on Linux: quick to start, and a user's script needs no ``__main__``
    guard).
    """
    if torch.cuda.is_initialized():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch, and NumPy's BLAS, on one CPU thread inside the block (then restore the counts).

    Torch's CPU kernels split reductions across threads, so the same seed gives slightly different floats
    under another thread count, and a learning run's choices then drift apart. The command line runs every
    run and every population on one thread, inline, in a worker process or in a Ray task, so that ``run``,
    ``compare --workers 1``, ``compare --workers 2`` and ``--backend ray`` give the same numbers for the
    same seed. NumPy's BLAS (the NumPy acting path's matrix products) is held to one thread as well: beside
    other busy workers its threads wait on each other, and a ``[128, 64] x [64, 64]`` product took 102 us
    on two OpenBLAS threads against 12 us on one on this 2-core machine while a study ran.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


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
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={str(device)!r} cannot train a learner; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def device_memory(device: str | torch.device = "auto") -> int:
    """Bytes of memory on ``device``: the GPU's total memory, or this machine's physical memory for the CPU."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return int(torch.cuda.get_device_properties(resolved).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_population_memory(n_members: int, member_bytes: int, device: str | torch.device = "auto") -> None:
    """Refuse, before anything is allocated, a population whose runs cannot fit in the device's memory.

    Raises:
        ValueError: If ``n_members * member_bytes`` exceeds the memory of ``device``, with both figures.
    """
    need, have = n_members * member_bytes, device_memory(device)
    if need > have:
        what = "a run" if n_members == 1 else f"a population of {n_members:,} members"
        raise ValueError(
            f"{what} needs at least {need / 2**30:,.1f} GiB "
            f"({member_bytes / 2**20:,.2f} MiB per member: parameters, optimiser state and rollout), but "
            f"{resolve_device(device)} has {have / 2**30:,.1f} GiB: even by this count at most "
            f"{max(1, have // member_bytes):,} members fit"
        )
