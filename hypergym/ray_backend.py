"""Running ``compare``'s jobs on a Ray cluster (``hypergym compare ... --backend ray``).

Each job (one run, or one population) is one Ray task with its own CPU (and GPU) reservation; it writes
its run directory itself, so on a multi-node cluster the output folder must be shared storage that
every node mounts at the same path (NFS or similar). Killed tasks are retried by Ray; a retried run
resumes from its latest checkpoint. Ray is optional: ``pip install "hypergym[ray]"``; the process
pool stays the default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CONNECT_TIMEOUT_S", "check_reachable", "map_on_ray"]

#: Seconds to wait for a Ray cluster's address to answer before giving up with a message.
CONNECT_TIMEOUT_S = 10.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds if nothing listens at a Ray cluster's ``host:port`` address.

    ``"auto"`` and ``"local"`` are left to Ray (it looks on this node and fails at once). Without this
    check, ``ray.init`` keeps retrying an unreachable address for minutes.

    Raises:
        ConnectionError: If the address does not parse or nothing answers there in time, with both.
    """
    import socket

    if address in ("auto", "local"):
        return
    _, sep, rest = address.partition("://")
    target = rest if sep else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(
            f"Ray address {address!r} is not host:port, ray://host:port, 'auto' or 'local' (e.g. 10.0.0.5:6379)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address!r} within {timeout:g} s ({err}): start it with "
            "`ray start --head` there, or check the address (or drop --address for a local cluster)"
        ) from err


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError('the Ray backend needs Ray: pip install "hypergym[ray]"') from err
    return ray


def _call(fn: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Any:
    # Ray sets OMP_NUM_THREADS to the task's CPUs; torch's intra-op pool is sized the same way here.
    import torch

    torch.set_num_threads(max(1, threads))
    return fn(*args)


def map_on_ray(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(*job) for job in jobs]``, each call one Ray task, reported as each finishes.

    Args:
        fn: A module-level function (workers import it by name).
        jobs: The argument tuples.
        address: The cluster to join (``"auto"``: the one started on this node with ``ray start``;
            ``"ray://host:10001"``: a remote one); ``None`` starts a local cluster with this machine's
            CPUs. Ignored when Ray is already initialised in this process (that cluster is used).
        num_cpus: CPUs each task reserves (and torch threads it uses).
        num_gpus: GPUs each task reserves.
        on_result: Called with ``(job index, result)`` as each task finishes.

    Raises:
        ConnectionError: If ``address`` cannot be reached within :data:`CONNECT_TIMEOUT_S` seconds.

    Returns:
        The results, in the order of ``jobs``.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address is not None:
            check_reachable(address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_call)
        refs = [task.remote(fn, tuple(job), int(num_cpus)) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = index[done[0]]
            results[i] = ray.get(done[0])
            if on_result is not None:
                on_result(i, results[i])
        return results
    finally:
        if started:
            ray.shutdown()
