"""TensorBoard logging of every hyper-step, through SB3's logger (``pip install "hypergym[tensorboard]"``).

:class:`HyperStepLogger` writes one run's ``steps.csv`` rows as TensorBoard scalars, with the inner env
steps as the x-axis (as SB3 logs its ``learn()``): ``hyper/reward``, ``hyper/G``, ``hyper/diverged``,
``inner/return``, ``eval/return``, ``hyperparams/<name>`` (the values in force), ``losses/<name>`` (the
inner learner's), ``encoder/loss`` and ``encoder/kl``, and ``agent/<name>`` (what the agent records of
its choice: epsilon and memory size of EPGT, HOOF's estimates). Each run writes its own folder,
``DIR/<agent>/seed<seed>``, so TensorBoard overlays seeds and agents.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypergym.rundir import csv_cell, csv_number, member_dir, portable_name

__all__ = ["HyperStepLogger", "clear_events", "run_folder"]

#: ``steps.csv`` columns -> TensorBoard tags; prefixed columns keep their suffix.
_TAGS = {
    "reward": "hyper/reward",
    "G": "hyper/G",
    "diverged": "hyper/diverged",
    "inner_return": "inner/return",
    "eval_return": "eval/return",
    "encoder_loss": "encoder/loss",
    "encoder_kl": "encoder/kl",
}
_PREFIXES = {"hp_": "hyperparams/", "loss_": "losses/", "agent_": "agent/"}


def run_folder(root: str | Path, agent: str, seed: Any) -> Path:
    """The folder of one run's event files under ``root``: ``root/<agent>/seed<seed>``."""
    return member_dir(Path(root) / portable_name(agent), seed)


def clear_events(folder: Path) -> None:
    """Delete the event files in ``folder``: a run's folder holds one attempt's events (no duplicates)."""
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink()


def _tag(column: str) -> str | None:
    if column in _TAGS:
        return _TAGS[column]
    for prefix, group in _PREFIXES.items():
        if column.startswith(prefix):
            return group + column[len(prefix) :]
    return None


class HyperStepLogger:
    """Write a run's hyper-steps to TensorBoard event files in ``folder`` with SB3's logger.

    Raises:
        ImportError: If TensorBoard is not installed, naming the extra that installs it.
    """

    def __init__(self, folder: str | Path) -> None:
        try:
            import tensorboard  # noqa: F401 - SB3 writes with torch's SummaryWriter, which needs it
        except ImportError as err:
            raise ImportError(
                'TensorBoard logging needs the tensorboard package: pip install "hypergym[tensorboard]"'
            ) from err
        from stable_baselines3.common.logger import configure

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.logger = configure(str(self.folder), ["tensorboard"])

    def write(self, row: dict[str, Any]) -> None:
        """Log one ``steps.csv`` row (non-numeric and NaN entries are left out) at its env steps.

        A row read back from a journal (its cells as strings) logs the same numbers as the row itself: each
        value is read from the cell :mod:`csv` writes of it.
        """
        for column, value in row.items():
            tag = _tag(column)
            if tag is None:
                continue
            number = csv_number(csv_cell(value))
            if math.isfinite(number):
                self.logger.record(tag, number)
        self.logger.dump(step=int(row.get("env_steps") or row.get("step") or 0))

    def close(self) -> None:
        """Flush and close the event files."""
        self.logger.close()
