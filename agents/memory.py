"""EPGT's episodic memory: per-action keys (hyper-state embeddings) and values (hyper-returns).

- Read (paper Eq. 3): ``Q(s, a) = sum_k Sim(s, k) M[k, a] / sum_k Sim(s, k)`` over the K nearest keys
  of action ``a``'s memory (the key itself included if stored), ``Sim(x, y) = 1 / (||x - y|| + 1e-3)``.
- Update (paper Eq. 4): for each ``(key, a, G)`` of a learning episode, the K nearest slots of action
  ``a`` move towards G: ``M[k, a] += beta * Sim(s, k) / sum Sim * (G - M[k, a])``; a key not yet in the
  memory is inserted with value G. One :meth:`EpisodicMemory.update` is one ``M.update(D)`` of
  Algorithm 1: every neighbour search of the batch sees the memory as it was before the batch, then the
  value changes are applied, then the new keys are inserted.
- Capacity: first in, first out over all actions together.

Values are per action (no one-hot value vectors, which in the authors' code pulled the values of
untried actions towards 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AnnoyIndex", "EpisodicMemory", "ExactIndex", "NeighborIndex", "make_index"]


class NeighborIndex(ABC):
    """Nearest-neighbour search over the keys of every action's memory."""

    name: str

    @abstractmethod
    def build(self, keys: Sequence[np.ndarray], changed: set[int]) -> None:
        """(Re)index ``keys[a]`` for each action ``a`` in ``changed``."""

    @abstractmethod
    def query(self, action: int, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (into ``keys[action]``) and distances of the ``k`` nearest keys, nearest first."""

    def query_all(self, x: np.ndarray, k: int, n_actions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` nearest keys of every action at once, as flat arrays.

        Returns:
            ``(action, index, distance)``: for each neighbour found, its action, its index into
            ``keys[action]`` and its distance.
        """
        parts = [(a, *self.query(a, x, k)) for a in range(n_actions)]
        return (
            np.concatenate([np.full(len(i), a, dtype=np.int64) for a, i, _ in parts]),
            np.concatenate([i for _, i, _ in parts]).astype(np.int64),
            np.concatenate([d for _, _, d in parts]).astype(np.float64),
        )


class ExactIndex(NeighborIndex):
    """Brute-force Euclidean search (NumPy); ``query_all`` is one vectorised pass over every key."""

    name = "exact"

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._all = np.zeros((0, 0), dtype=np.float32)
        self._action = np.zeros(0, dtype=np.int64)
        self._offsets = np.zeros(1, dtype=np.int64)

    def build(self, keys: Sequence[np.ndarray], changed: set[int]) -> None:
        """Keep references to the keys and one concatenated copy for :meth:`query_all`."""
        self._keys = list(keys)
        sizes = np.array([len(k) for k in keys], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._action = np.repeat(np.arange(len(keys)), sizes)
        self._all = np.concatenate(self._keys) if sizes.sum() else np.zeros((0, 0), dtype=np.float32)

    @staticmethod
    def _nearest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(d))
        idx = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
        idx = idx[np.lexsort((idx, d[idx]))]  # by distance, ties by insertion order
        return idx, d[idx].astype(np.float64)

    def query(self, action: int, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact K nearest keys of ``action``."""
        keys = self._keys[action]
        return self._nearest(np.sqrt(((keys - x) ** 2).sum(axis=1)), k)

    def query_all(self, x: np.ndarray, k: int, n_actions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact K nearest keys of every action: one distance pass, one sort grouped by action."""
        if not len(self._all):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        d = np.sqrt(((self._all - x) ** 2).sum(axis=1))
        order = np.lexsort((d, self._action))  # grouped by action, nearest first, ties by insertion order
        local = np.arange(len(order)) - self._offsets[self._action[order]]
        rows = order[local < k]
        return self._action[rows], rows - self._offsets[self._action[rows]], d[rows].astype(np.float64)


class AnnoyIndex(NeighborIndex):
    """Approximate search with Spotify's annoy: one forest per action, rebuilt when its keys change.

    Annoy cannot add items to a built index, so an action's forest is rebuilt after every memory update
    that touches it. Its default search effort (``n_trees * k`` nodes) can miss true neighbours; hypergym
    sets ``search_k`` explicitly (``benchmarks/memory.py`` measures the recall).

    Args:
        n_trees: Trees per forest (more: better recall, slower build).
        search_k: Nodes inspected per query (-1: annoy's default ``n_trees * k``).
        seed: Seed of the forests.
    """

    name = "annoy"

    def __init__(self, n_trees: int = 10, search_k: int = 2000, seed: int = 0) -> None:
        try:
            import annoy
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ImportError('the annoy index needs the annoy package: pip install "hypergym[annoy]"') from err
        self._annoy = annoy
        self.n_trees, self.search_k, self.seed = n_trees, search_k, seed
        self._forests: dict[int, Any] = {}
        self._built: dict[int, np.ndarray] = {}  # the keys each forest holds, to rebuild it after unpickling

    def __getstate__(self) -> dict[str, Any]:
        # annoy forests (and the module) do not pickle; a seeded single-job build gives the same forest again.
        return {k: v for k, v in self.__dict__.items() if k not in ("_annoy", "_forests")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import annoy

        self.__dict__.update(state)
        self._annoy, self._forests = annoy, {}
        for a, keys in self._built.items():
            self._build_forest(a, keys)

    def build(self, keys: Sequence[np.ndarray], changed: set[int]) -> None:
        """Rebuild the forests of the changed actions."""
        for a in changed:
            if not len(keys[a]):
                self._forests.pop(a, None)
                self._built.pop(a, None)
                continue
            self._built[a] = np.array(keys[a], copy=True)
            self._build_forest(a, self._built[a])

    def _build_forest(self, action: int, keys: np.ndarray) -> None:
        forest = self._annoy.AnnoyIndex(keys.shape[1], "euclidean")
        forest.set_seed(self.seed)
        for i, v in enumerate(keys):
            forest.add_item(i, v)
        forest.build(self.n_trees, n_jobs=1)
        self._forests[action] = forest

    def query(self, action: int, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate K nearest keys of ``action``."""
        forest = self._forests.get(action)
        if forest is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx, dist = forest.get_nns_by_vector(x.tolist(), k, search_k=self.search_k, include_distances=True)
        return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)


def make_index(name: str, **kwargs: Any) -> NeighborIndex:
    """The index backend named ``name`` (``"exact"`` or ``"annoy"``)."""
    if name == "exact":
        if kwargs:
            raise TypeError(f"the exact index takes no arguments, got {sorted(kwargs)}")
        return ExactIndex()
    if name == "annoy":
        return AnnoyIndex(**kwargs)
    raise ValueError(f"unknown index {name!r}; choose from ['annoy', 'exact']")


class EpisodicMemory:
    """Per-action episodic memory with kernel-weighted K-NN read and neighbour-averaging update.

    Args:
        n_actions: Number of discrete hyper-actions.
        key_dim: Dimension of the keys (the hyper-state embedding).
        capacity: N_mem, total stored keys over all actions (FIFO eviction).
        k: Neighbours per read and per update (paper: 3).
        beta: Writing rate (paper: 0.5).
        kernel_eps: The kernel's epsilon (paper: 1e-3).
        index: ``"exact"`` or ``"annoy"``.
        index_kwargs: Arguments of the index backend (annoy: ``n_trees``, ``search_k``, ``seed``).
    """

    def __init__(
        self,
        n_actions: int,
        key_dim: int,
        capacity: int = 10_000,
        k: int = 3,
        beta: float = 0.5,
        kernel_eps: float = 1e-3,
        index: str = "exact",
        index_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if n_actions < 1 or key_dim < 1 or capacity < 1 or k < 1:
            raise ValueError(
                f"n_actions, key_dim, capacity and k must be positive, got {n_actions}, {key_dim}, {capacity}, {k}"
            )
        if not 0 < beta <= 1:
            raise ValueError(f"beta must lie in (0, 1], got {beta!r}")
        self.n_actions, self.key_dim, self.capacity = n_actions, key_dim, capacity
        self.k, self.beta, self.kernel_eps = k, beta, kernel_eps
        self.index_name = index
        self.index_kwargs = dict(index_kwargs or {})
        self.index = make_index(index, **self.index_kwargs)
        self.keys = [np.zeros((0, key_dim), dtype=np.float32) for _ in range(n_actions)]
        self.values = [np.zeros(0, dtype=np.float64) for _ in range(n_actions)]
        self._fifo: deque[int] = deque()  # action of each stored key, oldest first
        self._dirty: set[int] = set(range(n_actions))
        # Values of every action end to end, for the vectorised read_all (rebuilt after an update).
        self._flat_values: np.ndarray | None = None
        self._value_offsets = np.zeros(1, dtype=np.int64)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self._fifo)

    def size(self, action: int) -> int:
        """Keys stored for ``action``."""
        return len(self.values[action])

    def _fresh_index(self) -> NeighborIndex:
        if self._dirty:
            self.index.build(self.keys, self._dirty)
            self._dirty = set()
        return self.index

    def _kernel(self, dist: np.ndarray) -> np.ndarray:
        return 1.0 / (dist + self.kernel_eps)

    # ------------------------------------------------------------------ read (Eq. 3)
    def read(self, key: np.ndarray, action: int) -> float:
        """``Q(key, action)``; NaN when the action has no memory yet."""
        if not self.size(action):
            return float("nan")
        idx, dist = self._fresh_index().query(action, np.asarray(key, dtype=np.float32), self.k)
        sim = self._kernel(dist)
        return float((sim * self.values[action][idx]).sum() / sim.sum())

    def read_all(self, key: np.ndarray) -> np.ndarray:
        """``Q(key, a)`` for every action (NaN where an action has no memory yet)."""
        actions, idx, dist = self._fresh_index().query_all(np.asarray(key, dtype=np.float32), self.k, self.n_actions)
        if self._flat_values is None:
            self._flat_values = np.concatenate(self.values)
            self._value_offsets = np.concatenate([[0], np.cumsum([len(v) for v in self.values])])
        values = self._flat_values[self._value_offsets[actions] + idx]
        sim = self._kernel(dist)
        num = np.bincount(actions, weights=sim * values, minlength=self.n_actions)
        den = np.bincount(actions, weights=sim, minlength=self.n_actions)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)

    # ------------------------------------------------------------------ update (Eq. 4)
    def update(self, keys: np.ndarray, actions: Sequence[int], returns: Sequence[float]) -> None:
        """Write a learning episode's ``(key, action, hyper-return)`` triples (one ``M.update(D)``)."""
        keys = np.asarray(keys, dtype=np.float32).reshape(len(actions), self.key_dim)
        index = self._fresh_index()
        deltas = [np.zeros_like(v) for v in self.values]
        inserts: list[tuple[int, np.ndarray, float]] = []
        for key, a, g in zip(keys, actions, returns, strict=True):
            a = int(a)
            if not 0 <= a < self.n_actions:
                raise ValueError(f"action {a} is outside 0..{self.n_actions - 1}")
            exact_match = False
            if self.size(a):
                idx, dist = index.query(a, key, self.k)
                sim = self._kernel(dist)
                deltas[a][idx] += self.beta * sim / sim.sum() * (float(g) - self.values[a][idx])
                exact_match = bool(dist[0] == 0.0)
            if not exact_match:
                inserts.append((a, key, float(g)))
        for a, delta in enumerate(deltas):
            if delta.any():
                self.values[a] = self.values[a] + delta
        for a, key, g in inserts:
            self._insert(a, key, g)
        self._flat_values = None

    def _insert(self, action: int, key: np.ndarray, value: float) -> None:
        self.keys[action] = np.concatenate([self.keys[action], key[None]])
        self.values[action] = np.append(self.values[action], value)
        self._fifo.append(action)
        self._dirty.add(action)
        while len(self._fifo) > self.capacity:
            oldest = self._fifo.popleft()  # per action, keys are stored oldest first
            self.keys[oldest] = self.keys[oldest][1:]
            self.values[oldest] = self.values[oldest][1:]
            self._dirty.add(oldest)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write keys, values and insertion order to an ``.npz`` file."""
        arrays: dict[str, np.ndarray] = {"fifo": np.asarray(self._fifo, dtype=np.int64)}
        for a in range(self.n_actions):
            arrays[f"keys_{a}"] = self.keys[a]
            arrays[f"values_{a}"] = self.values[a]
        np.savez(Path(path), **arrays)  # type: ignore[arg-type]

    def load(self, path: str | Path) -> None:
        """Restore a memory written by :meth:`save` (same ``n_actions`` and ``key_dim``)."""
        with np.load(Path(path)) as data:
            keys = [data[f"keys_{a}"] for a in range(self.n_actions)]
            if any(k.shape[1:] != (self.key_dim,) for k in keys):
                raise ValueError(f"saved keys do not have dimension {self.key_dim}")
            self.keys = keys
            self.values = [data[f"values_{a}"] for a in range(self.n_actions)]
            self._fifo = deque(int(a) for a in data["fifo"])
        self._dirty = set(range(self.n_actions))
        self._flat_values = None
