"""Files written whole or not at all: a crash or a full disk mid-write leaves the previous file as it was."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write", "os_error_line"]


def atomic_write(path: str | Path, data: str | bytes, sync: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename it over ``path``.

    Args:
        path: The file (its folder is made if missing).
        data: The whole content (text is written as UTF-8).
        sync: Flush the data to the disk before the rename (checkpoints: the file survives a power cut).

    Raises:
        OSError: If the folder cannot be made or the file written (a full disk): ``path`` is then unchanged
            and no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    try:
        with tmp.open("wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def os_error_line(err: OSError) -> str:
    """One line naming the file and the cause of ``err`` (``"runs/x: No space left on device"``)."""
    if err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err)
