"""One writer per run folder: a lock file taken before anything is written there, released on every exit.

Two processes writing one run directory interleave their rows (a ``steps.csv`` of 590 rows for 300
hyper-steps) and one of them reuses what the other half wrote. :func:`folder_lock` makes the second one
refuse at once. A lock left by a process that died (a kill, a crash) names a process id that no longer
runs on this host: it is taken over, so rerunning a killed command resumes it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_FILE", "RunFolderBusy", "folder_lock"]

#: The lock file in a locked folder: ``"<pid> <host>"`` of the process writing it.
LOCK_FILE = ".hypergym.lock"


class RunFolderBusy(RuntimeError):
    """Another live process is writing the folder."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _holder(path: Path) -> str | None:
    """Who holds the lock at ``path``, if it is alive (``None``: the lock is stale, or gone)."""
    pid_text, _, host = (_read(path) or "").partition(" ")
    try:
        pid = int(pid_text)
    except ValueError:
        return None  # removed meanwhile, or half written by a process killed while writing it
    if host != socket.gethostname():
        return f"process {pid} on {host}"  # another machine's processes cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it runs, as another user
    # A killed process whose parent has not reaped it yet (a zombie) still answers kill(pid, 0).
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is not None and stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return None
    return f"process {pid}"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock inside the block (the folder is made if needed).

    Raises:
        RunFolderBusy: If a live process holds it, naming the process and what to do.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path, mine = folder / LOCK_FILE, f"{os.getpid()} {socket.gethostname()}"
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            seen = _read(path)
            holder = _holder(path)
            if holder is not None:
                raise RunFolderBusy(
                    f"{folder} is being written by {holder} (lock {path}): wait for it to finish or give another "
                    "output folder; if that process is gone, delete the lock file"
                ) from None
            if _read(path) == seen:  # stale (its process died) and not retaken meanwhile: take it over
                path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        break
    try:
        yield
    finally:
        if _read(path) == mine:
            path.unlink(missing_ok=True)
