"""The one check of a count argument (an integer, not a boolean, at least some bound), used package-wide."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_count"]


def check_count(name: str, value: Any, least: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an ``int``: an integer (NumPy's too; never a bool) of at least ``least``, or ``None`` if allowed.

    Raises:
        ValueError: Naming the argument, what it must be and what it got.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)
