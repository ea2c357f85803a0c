"""Hyperparameter spaces: named, quantised value grids and the hyper-action codec.

A :class:`HyperparamSpace` is an ordered list of :class:`Hyperparameter` (a name from SB3's argument
names and its value list). The hyper-action is either one integer (``Discrete(prod B_i)``) or one index per
hyperparameter (``MultiDiscrete([B_i])``).

Decode order of the ``Discrete`` codec (mixed radix, row-major, as :func:`numpy.ravel_multi_index`): the
*first* hyperparameter is the most significant digit and the *last* one varies fastest::

    action = sum_i idx_i * prod_{j > i} B_j

so with ``learning_rate`` (3 values) then ``clip_range`` (3 values), action 4 is
``(learning_rate[1], clip_range[1])`` and action 5 is ``(learning_rate[1], clip_range[2])``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "INTEGER_HYPERPARAMS",
    "HyperparamSpace",
    "Hyperparameter",
    "around_default",
    "check_value",
    "eq5_grid",
    "eq5_multipliers",
    "log_uniform",
    "uniform",
    "unravel",
]

#: Hyperparameters whose values must be positive integers.
INTEGER_HYPERPARAMS = frozenset({"batch_size", "n_epochs"})
#: Hyperparameters that must lie in (0, 1].
_UNIT_INTERVAL = frozenset({"gamma", "gae_lambda"})
#: Hyperparameters that must be strictly positive.
_POSITIVE = frozenset({"learning_rate", "clip_range", "max_grad_norm", "kl_clip", "damping"})
#: Hyperparameters that must be non-negative.
_NON_NEGATIVE = frozenset({"ent_coef", "vf_coef"})


def unravel(flat: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """``[N, P]`` grid indices of ``N`` flat (mixed-radix) actions of the grid of sizes ``nvec``."""
    return np.stack(np.unravel_index(np.asarray(flat, dtype=np.int64), tuple(int(n) for n in nvec)), axis=1)


def around_default(default: float, n_values: int, factor: float = 2.0) -> tuple[float, ...]:
    """Geometric grid around a default value, default included (the paper's Eq. 5).

    The printed Eq. 5, ``{a/((B-1)/2), ..., a/2, a, 2a, ..., a(B-1)/2}``, repeats the default when B = 3
    and has B - 2 elements in general. hypergym uses the multipliers ``factor**j`` for
    ``j = -(B-1)//2, ..., B//2``: with the default ``factor=2`` and B = 3 that is ``{a/2, a, 2a}``, the
    grid the paper's B = 3 experiments describe, and with B = 7 it is ``{a/8, a/4, a/2, a, 2a, 4a, 8a}``.
    An even B puts the extra value above the default.

    Args:
        default: The default value (e.g. the preset's learning rate); must be positive.
        n_values: B, the number of values (>= 1).
        factor: Ratio between neighbouring values (> 1).

    Returns:
        The B values in increasing order.

    Raises:
        ValueError: If ``default <= 0``, ``n_values < 1`` or ``factor <= 1``.
    """
    if default <= 0:
        raise ValueError(f"around_default needs a positive default, got {default!r}")
    if n_values < 1:
        raise ValueError(f"around_default needs n_values >= 1, got {n_values!r}")
    if factor <= 1:
        raise ValueError(f"around_default needs factor > 1, got {factor!r}")
    low = -((n_values - 1) // 2)
    return tuple(float(default * factor**j) for j in range(low, low + n_values))


def eq5_multipliers(n_values: int, scale: float = 1.0) -> tuple[float, ...]:
    """The multipliers of the default that the authors' released EPGT code quantises to, default first.

    ``[1, 1 + 1/s, 1/(1 + 1/s), 1 + 2/s, 1/(1 + 2/s), ...]`` for ``i = 1 .. (B - 1) / 2``. With
    ``scale=1`` this is the paper's Eq. 5 read as B values: ``{a/((B+1)/2), ..., a/2, a, 2a, ...,
    a(B+1)/2}`` (B = 3: ``[1, 2, 0.5]``; B = 7: x1/4 ... x4). The released classic-control setting is
    ``scale=2`` (B = 7: ``[1, 1.5, 0.667, 2, 0.5, 2.5, 0.4]``); Fig. 2a's range ``[4e-5, 1e-2]`` around
    7e-4 is B = 15 with ``scale=0.5`` (x1/15 ... x15).

    Args:
        n_values: B, odd and >= 1.
        scale: s > 0: how finely the multipliers step away from 1.

    Raises:
        ValueError: If B is even or < 1, or ``scale <= 0``.
    """
    if isinstance(n_values, bool) or not isinstance(n_values, int) or n_values < 1 or n_values % 2 == 0:
        raise ValueError(f"Eq. 5 grids have an odd number of values (default, then pairs), got {n_values!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    out = [1.0]
    for i in range(1, (n_values - 1) // 2 + 1):
        out += [1.0 + i / scale, 1.0 / (1.0 + i / scale)]
    return tuple(out)


def eq5_grid(default: float, n_values: int, scale: float = 1.0) -> tuple[float, ...]:
    """``default`` times :func:`eq5_multipliers`: the default is the first value (index 0).

    Raises:
        ValueError: If ``default <= 0``, or on the multipliers' conditions.
    """
    if not default > 0:
        raise ValueError(f"eq5_grid needs a positive default, got {default!r}")
    return tuple(float(default * m) for m in eq5_multipliers(n_values, scale))


def uniform(low: float, high: float, n_values: int) -> tuple[float, ...]:
    """``n_values`` evenly spaced values from ``low`` to ``high``, both included.

    Raises:
        ValueError: If ``n_values < 1`` or ``low > high``.
    """
    if n_values < 1 or low > high:
        raise ValueError(f"uniform needs n_values >= 1 and low <= high, got ({low!r}, {high!r}, {n_values!r})")
    if n_values == 1:
        return (float(low),)
    return tuple(float(v) for v in np.linspace(low, high, n_values))


def log_uniform(low: float, high: float, n_values: int) -> tuple[float, ...]:
    """``n_values`` log-evenly spaced values from ``low`` to ``high``, both included.

    Raises:
        ValueError: If ``n_values < 1``, ``low <= 0`` or ``low > high``.
    """
    if n_values < 1 or low <= 0 or low > high:
        raise ValueError(f"log_uniform needs n_values >= 1 and 0 < low <= high, got ({low!r}, {high!r}, {n_values!r})")
    if n_values == 1:
        return (float(low),)
    return tuple(float(v) for v in np.geomspace(low, high, n_values))


def check_value(name: str, value: float) -> float | int:
    """Validate one value of a named hyperparameter and return it with its proper type."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"value {value!r} of hyperparameter {name!r} is not a number")
    if not math.isfinite(float(value)):
        raise ValueError(f"value {value!r} of hyperparameter {name!r} is not finite")
    if name in INTEGER_HYPERPARAMS:
        if float(value) != int(value) or int(value) < 1:
            raise ValueError(f"{name} takes positive integers, got {value!r}")
        return int(value)
    value = float(value)
    if name in _POSITIVE and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if name in _UNIT_INTERVAL and not 0 < value <= 1:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    if name in _NON_NEGATIVE and value < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return value


@dataclass(frozen=True)
class Hyperparameter:
    """One tunable hyperparameter and its quantised values."""

    name: str
    """SB3 argument name, e.g. ``"learning_rate"``."""
    values: tuple[float | int, ...]
    """The B candidate values, in the order the action indexes them."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"hyperparameter name must be a non-empty string, got {self.name!r}")
        values = tuple(self.values) if not isinstance(self.values, (str, bytes)) else ()
        if not values:
            raise ValueError(f"hyperparameter {self.name!r} needs a non-empty list of values, got {self.values!r}")
        checked = tuple(check_value(self.name, v) for v in values)
        if len(set(checked)) != len(checked):
            raise ValueError(f"hyperparameter {self.name!r} has duplicate values: {checked!r}")
        object.__setattr__(self, "values", checked)

    @property
    def size(self) -> int:
        """B, the number of values."""
        return len(self.values)

    def index_of_closest(self, value: float) -> int:
        """Index of the value closest to ``value`` (in log scale for positive grids)."""
        vals = np.asarray(self.values, dtype=np.float64)
        if value > 0 and np.all(vals > 0):
            return int(np.argmin(np.abs(np.log(vals) - math.log(value))))
        return int(np.argmin(np.abs(vals - value)))


class HyperparamSpace:
    """An ordered set of hyperparameters with the hyper-action codec.

    Args:
        hyperparams: Either a mapping ``name -> values`` (insertion order is the decode order) or a
            sequence of :class:`Hyperparameter`.
        supported: Names the learner accepts; any other name is a ``ValueError`` listing them.
        defaults: The learner's default value for each name; ``default_action`` is the action whose
            values are closest to them.

    Raises:
        ValueError: On an empty space, an unknown or repeated name, or an invalid value list.
    """

    def __init__(
        self,
        hyperparams: Mapping[str, Iterable[float]] | Sequence[Hyperparameter],
        supported: Iterable[str] | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(hyperparams, Mapping):
            params = [Hyperparameter(name, tuple(values)) for name, values in hyperparams.items()]
        elif isinstance(hyperparams, Sequence) and all(isinstance(p, Hyperparameter) for p in hyperparams):
            params = list(hyperparams)
        else:
            raise TypeError(
                f"hyperparams must map names to value lists (or be a list of Hyperparameter), got {hyperparams!r}"
            )
        if not params:
            valid = f"; choose from {sorted(supported)}" if supported is not None else ""
            raise ValueError(f"the hyperparameter space is empty{valid}")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"hyperparameter names repeat: {names}")
        if supported is not None:
            supported = sorted(supported)
            unknown = [n for n in names if n not in supported]
            if unknown:
                raise ValueError(f"unknown hyperparameter(s) {unknown}; this learner supports {supported}")
        self.params: tuple[Hyperparameter, ...] = tuple(params)
        self._defaults = dict(defaults or {})
        self.nvec = np.array([p.size for p in params], dtype=np.int64)

    # ------------------------------------------------------------------ views
    @property
    def names(self) -> tuple[str, ...]:
        """Hyperparameter names in decode order."""
        return tuple(p.name for p in self.params)

    @property
    def values(self) -> dict[str, tuple[float | int, ...]]:
        """``name -> value list``."""
        return {p.name: p.values for p in self.params}

    @property
    def n_actions(self) -> int:
        """``prod B_i``, the size of the ``Discrete`` action space."""
        return int(np.prod(self.nvec))

    def gym_space(self, action_mode: str = "discrete") -> spaces.Space:
        """The Gymnasium action space for ``action_mode`` (``"discrete"`` or ``"multi_discrete"``)."""
        if action_mode == "discrete":
            return spaces.Discrete(self.n_actions)
        if action_mode == "multi_discrete":
            return spaces.MultiDiscrete(self.nvec.copy())
        raise ValueError(f"unknown action_mode {action_mode!r}; choose from ['discrete', 'multi_discrete']")

    # ------------------------------------------------------------------ codec
    def indices(self, action: int | np.integer | Sequence[int] | np.ndarray) -> tuple[int, ...]:
        """Per-hyperparameter indices of an action (an integer, or a vector of one index per hyperparameter).

        Raises:
            ValueError: If the action lies outside the space (it is never wrapped around).
            TypeError: If the action is neither an integer nor a vector of integers.
        """
        arr = np.asarray(action)
        mode = "discrete" if arr.ndim == 0 else "multi_discrete"
        return tuple(int(i) for i in self.batch_indices(arr[None], mode)[0])

    def batch_indices(self, actions: Any, action_mode: str = "discrete", n: int | None = None) -> np.ndarray:
        """``[N, P]`` per-hyperparameter indices of ``N`` actions of ``action_mode``: the one decoder of actions.

        ``"discrete"``: ``N`` integers in ``0 .. n_actions - 1`` (mixed radix, the first hyperparameter the most
        significant digit, as ``numpy.ravel_multi_index``); ``"multi_discrete"``: ``[N, P]`` index vectors.
        ``n``: the number of actions wanted (one per member), if it is fixed.

        Raises:
            ValueError: If an action lies outside the space (it is never wrapped around).
            TypeError: If the actions are not integers of the mode's shape (booleans are not integers).
        """
        a = np.asarray(actions)
        discrete = action_mode == "discrete"
        if (
            not np.issubdtype(a.dtype, np.integer)  # booleans are not an integer dtype
            or a.ndim != (1 if discrete else 2)
            or (not discrete and a.shape[1] != len(self.params))
            or (n is not None and len(a) != n)
        ):
            what = "an integer" if discrete else f"a vector of {len(self.params)} integers, one per {list(self.names)}"
            raise TypeError(
                f"{actions!r} is not an integer action per member{f' ({n} members)' if n else ''} of "
                f"{self.gym_space(action_mode)} "
                f"(action_mode={action_mode!r}: an action is {what})"
            )
        high = self.n_actions if discrete else self.nvec
        outside = (a < 0) | (a >= high)
        if outside.any():
            row = int(np.flatnonzero(outside.reshape(len(a), -1).any(axis=1))[0])
            if discrete:
                raise ValueError(
                    f"action {int(a[row])} is outside Discrete({self.n_actions}): valid are 0..{self.n_actions - 1}"
                )
            raise ValueError(f"action {a[row].tolist()} is outside MultiDiscrete({self.nvec.tolist()})")
        return unravel(a, self.nvec) if discrete else a.astype(np.int64)

    def decode(self, action: int | np.integer | Sequence[int] | np.ndarray) -> dict[str, float | int]:
        """Hyperparameter values selected by ``action``."""
        return self.values_at(self.indices(action))

    def values_at(self, indices: Sequence[int]) -> dict[str, float | int]:
        """Hyperparameter values at per-hyperparameter ``indices`` (as :meth:`indices` returns them)."""
        return {p.name: p.values[i] for p, i in zip(self.params, indices, strict=True)}

    def encode(self, hparams: Mapping[str, float], action_mode: str = "discrete") -> int | np.ndarray:
        """Action selecting exactly the values in ``hparams`` (every name of the space, values in its lists).

        Raises:
            ValueError: If a name is missing or a value is not in its list.
        """
        missing = [n for n in self.names if n not in hparams]
        extra = [n for n in hparams if n not in self.names]
        if missing or extra:
            raise ValueError(f"encode needs exactly the names {list(self.names)}; missing {missing}, extra {extra}")
        idx = []
        for p in self.params:
            try:
                idx.append(p.values.index(hparams[p.name]))
            except ValueError:
                raise ValueError(
                    f"{hparams[p.name]!r} is not a value of {p.name!r}: valid are {list(p.values)}"
                ) from None
        return self.from_indices(idx, action_mode)

    def from_indices(self, idx: Sequence[int], action_mode: str = "discrete") -> int | np.ndarray:
        """The action selecting value ``idx[i]`` of each hyperparameter ``i``."""
        if action_mode == "multi_discrete":
            return np.asarray(idx, dtype=np.int64)
        if action_mode == "discrete":
            return int(np.ravel_multi_index(tuple(idx), tuple(self.nvec)))
        raise ValueError(f"unknown action_mode {action_mode!r}; choose from ['discrete', 'multi_discrete']")

    def default_indices(self) -> tuple[int, ...]:
        """Per-hyperparameter indices of the values closest to the defaults (middle value when none)."""
        return tuple(
            p.index_of_closest(self._defaults[p.name]) if p.name in self._defaults else (p.size - 1) // 2
            for p in self.params
        )

    #: Names of the static grid points (:meth:`named_indices`).
    STATIC_POINTS = ("default", "min", "max")

    def named_indices(self, point: str) -> tuple[int, ...]:
        """Indices of a named grid point: ``"default"``, ``"min"`` or ``"max"``.

        ``"min"`` / ``"max"`` put every hyperparameter at its smallest / largest value, found by value, so
        grids listed default first work as sorted ones.

        Raises:
            ValueError: On another name, listing the valid ones.
        """
        if point == "default":
            return self.default_indices()
        if point not in self.STATIC_POINTS:
            raise ValueError(f"unknown static point {point!r}; choose from {list(self.STATIC_POINTS)} or an action")
        pick = np.argmin if point == "min" else np.argmax
        return tuple(int(pick(p.values)) for p in self.params)

    @property
    def default_action(self) -> int:
        """The ``Discrete`` action closest to the preset's default values."""
        return int(self.from_indices(self.default_indices(), "discrete"))

    def __repr__(self) -> str:
        inner = ", ".join(f"{p.name}={list(p.values)}" for p in self.params)
        return f"HyperparamSpace({inner})"
