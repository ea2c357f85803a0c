"""The released EPGT code's episodic memory: one key per hyper-state, holding a value vector over all actions.

The paper (Eq. 3 and 4) keeps a memory per action, read by a kernel average of the K nearest keys of that
action (:class:`~hypergym.agents.EpisodicMemory`). The authors' released code (thaihungle/EPGT, ``dnd.py``
and ``epiopt.py``) keeps ONE memory instead:

- A key is stored with a vector of ``n_actions`` values. A new key stores ``one_hot(action) * R``: the
  actions not taken are given 0.
- Write (``lookup2write``): the ``k_write`` (3) nearest keys move towards ``one_hot(action) * R`` at rate
  ``beta * w_i / sum w``, every action's entry included (so the untaken actions are pulled towards 0).
- Read (``lookup``): the kernel average of the ``k_read`` (5) nearest keys' vectors; the greedy action
  is the first maximum (action 0, the default when the grid lists it first, wins ties).
- Kernel ``w = 1 / (d^2 + 1e-3)``: FLANN's "euclidean" distance is the squared one.
- Capacity with least-recently-used eviction: each key remembers when a read or write last used it (or
  inserted it), and the key used longest ago goes first.

The released read gathers a ``neighbours x actions`` block and reshapes it as ``actions x neighbours``
(``dnd.py`` line 153) instead of transposing it, which mixes the neighbours' values across actions;
``released_reshape=True`` reproduces that for an ablation, named as what it is. The released write looks
neighbours up in the tree built before the new key was inserted; so does this one (the new key is added
after the neighbours are moved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["VectorMemory"]


class VectorMemory:
    """One memory of keys with a value vector over the actions (see the module).

    Args:
        n_actions: Number of hyper-actions.
        key_dim: Dimension of the keys.
        capacity: Most keys kept (least recently used evicted).
        k_read: Neighbours of a read (released code: 5).
        k_write: Neighbours of a write (released code: 3).
        beta: Writing rate (released code: 0.5).
        kernel_eps: The kernel's epsilon (released code: 1e-3).
        released_reshape: Read with the released code's reshape instead of a transpose (an ablation).
    """

    def __init__(
        self,
        n_actions: int,
        key_dim: int,
        capacity: int = 5_000,
        k_read: int = 5,
        k_write: int = 3,
        beta: float = 0.5,
        kernel_eps: float = 1e-3,
        released_reshape: bool = False,
    ) -> None:
        if min(n_actions, key_dim, capacity, k_read, k_write) < 1:
            raise ValueError(
                "n_actions, key_dim, capacity, k_read and k_write must be positive, got "
                f"{n_actions}, {key_dim}, {capacity}, {k_read}, {k_write}"
            )
        if not 0 < beta <= 1:
            raise ValueError(f"beta must lie in (0, 1], got {beta!r}")
        self.n_actions, self.key_dim, self.capacity = n_actions, key_dim, capacity
        self.k_read, self.k_write, self.beta, self.kernel_eps = k_read, k_write, beta, kernel_eps
        self.released_reshape = released_reshape
        self.keys = np.zeros((0, key_dim), dtype=np.float32)
        self.values = np.zeros((0, n_actions), dtype=np.float64)
        self.last_used = np.zeros(0, dtype=np.int64)  # the operation count at each key's last use
        self._clock = 0

    def __len__(self) -> int:
        return len(self.keys)

    def _nearest(self, key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the ``k`` nearest keys (nearest first) and their kernel weights."""
        d2 = ((self.keys - np.asarray(key, dtype=np.float32)) ** 2).sum(axis=1).astype(np.float64)
        k = min(k, len(d2))
        idx = np.argpartition(d2, k - 1)[:k]
        idx = idx[np.argsort(d2[idx], kind="stable")]
        return idx, 1.0 / (d2[idx] + self.kernel_eps)

    def read(self, key: np.ndarray) -> np.ndarray:
        """``[n_actions]`` kernel average of the ``k_read`` nearest value vectors (NaN when empty).

        The keys read count as used now (for the eviction).
        """
        if not len(self):
            return np.full(self.n_actions, np.nan)
        self._clock += 1
        idx, w = self._nearest(key, self.k_read)
        w = w / w.sum()
        block = self.values[idx]  # [K, A]
        q = (block.reshape(self.n_actions, len(idx)) @ w) if self.released_reshape else w @ block
        self._touch(idx)
        return np.asarray(q, dtype=np.float64)

    def write(self, key: np.ndarray, action: int, value: float) -> None:
        """Move the ``k_write`` nearest vectors towards ``one_hot(action) * value``; insert the key if new."""
        if not 0 <= action < self.n_actions:
            raise ValueError(f"action {action} is outside 0..{self.n_actions - 1}")
        target = np.zeros(self.n_actions)
        target[action] = value
        key = np.asarray(key, dtype=np.float32).reshape(self.key_dim)
        exists = False
        self._clock += 1
        if len(self):
            idx, w = self._nearest(key, self.k_write)
            exists = bool(np.all(self.keys[idx[0]] == key))
            self.values[idx] += self.beta * (w / w.sum())[:, None] * (target - self.values[idx])
            self._touch(idx)
        if not exists:
            if len(self.keys) >= self.capacity:  # the least recently used key makes room
                kept = np.arange(len(self.keys)) != int(np.argmin(self.last_used))
                self.keys, self.values, self.last_used = self.keys[kept], self.values[kept], self.last_used[kept]
            self.keys = np.concatenate([self.keys, key[None]])
            self.values = np.concatenate([self.values, target[None]])
            self.last_used = np.append(self.last_used, self._clock)

    def _touch(self, idx: np.ndarray) -> None:
        """The keys ``idx`` are used now."""
        self.last_used[idx] = self._clock

    def save(self, path: str | Path) -> None:
        """Write keys, values and their last uses to an ``.npz`` file."""
        np.savez(Path(path), keys=self.keys, values=self.values, last_used=self.last_used, clock=self._clock)

    def load(self, path: str | Path) -> None:
        """Restore a memory written by :meth:`save` (same ``n_actions`` and ``key_dim``)."""
        with np.load(Path(path)) as data:
            if data["keys"].shape[1:] != (self.key_dim,) or data["values"].shape[1:] != (self.n_actions,):
                raise ValueError(f"saved memory is not {self.key_dim}-d keys with {self.n_actions} values")
            self.keys, self.values, self.last_used = data["keys"], data["values"], data["last_used"]
            self._clock = int(data["clock"])
