"""What a hyper-agent chose: statistics of a finished run's schedule, to tell adapting from acting at random.

A return table alone cannot say whether a hyper-agent adapts: a scheduler that beats or loses to a fixed
rate may still be choosing uniformly at random. :func:`schedule_stats` reads a run's recorded choices
(``steps.csv``, through :func:`hypergym.plots.load_runs`) over a window of its hyper-steps, by default the
second half, where an epsilon-greedy agent is near its floor, and measures:

- how often the action repeats from one hyper-step to the next, beside the rate of a uniform choice
  (``1 / n_actions``): an agent that exploits a memory repeats far more often;
- the share of each action and the mean of each tuned hyperparameter (for multiplier grids, the nominal
  value before any decay of the base), beside the grid's own mean;
- the share of hyper-rewards ``>= 0``: a memory that writes one-hot x R (the released EPGT's) rates the
  action just taken below every untaken one whenever R < 0, so an all-negative reward stream makes its
  greedy choice move on every step.

:func:`pooled` combines the runs of an arm (counts summed over runs, so every hyper-step weighs the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hypergym.plots import Run
from hypergym.spaces import HyperparamSpace

__all__ = ["ScheduleStats", "pooled", "schedule_stats"]


@dataclass(frozen=True)
class ScheduleStats:
    """Counts of one run's (or an arm's pooled) choices over a window of hyper-steps."""

    n_actions: int
    """Size of the action space (the product of the grids' sizes)."""
    steps: int
    """Hyper-steps in the window."""
    repeats: int
    """Hyper-steps of the window whose action equals the one before (pairs within the window)."""
    pairs: int
    """Pairs of consecutive hyper-steps within the window (``steps - 1`` for one run)."""
    counts: tuple[int, ...]
    """How often each action was chosen in the window."""
    hparam_sums: dict[str, float]
    """Sum over the window of the value each tuned hyperparameter's choice names."""
    grid_means: dict[str, float]
    """Mean of each tuned hyperparameter's grid (what a uniform choice averages to)."""
    rewards: int
    """Hyper-rewards given in the window (learning episodes that ended there)."""
    nonnegative_rewards: int
    """Of those, how many were ``>= 0``."""

    @property
    def repeat_rate(self) -> float:
        """Share of consecutive hyper-steps that keep the action (NaN without pairs)."""
        return self.repeats / self.pairs if self.pairs else math.nan

    @property
    def uniform_repeat_rate(self) -> float:
        """What a uniformly random choice would repeat: ``1 / n_actions``."""
        return 1.0 / self.n_actions

    @property
    def shares(self) -> tuple[float, ...]:
        """Share of each action in the window."""
        return tuple(c / self.steps if self.steps else math.nan for c in self.counts)

    @property
    def hparam_means(self) -> dict[str, float]:
        """Mean chosen value of each tuned hyperparameter over the window."""
        return {k: v / self.steps if self.steps else math.nan for k, v in self.hparam_sums.items()}

    @property
    def nonnegative_share(self) -> float:
        """Share of the window's hyper-rewards that were ``>= 0`` (NaN if none was given)."""
        return self.nonnegative_rewards / self.rewards if self.rewards else math.nan


def schedule_stats(run: Run, start: float = 0.5, end: float = 1.0) -> ScheduleStats:
    """Statistics of ``run``'s choices over the hyper-steps from fraction ``start`` to ``end`` of the run.

    Args:
        run: A finished run (:func:`hypergym.plots.load_runs`) with a discrete action space.
        start: First hyper-step of the window, as a fraction of the run (0.5: the second half).
        end: End of the window, as a fraction of the run.

    Returns:
        The window's counts.

    Raises:
        ValueError: If the window is empty or inverted, or the run records no action space.
    """
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"need 0 <= start < end <= 1 (fractions of the run), got start={start}, end={end}")
    if not run.space:
        raise ValueError(f"{run.path}: config.json names no action space ('space'), so its actions cannot be read")
    n = len(run.actions)
    lo, hi = math.floor(start * n), math.floor(end * n)
    if hi <= lo:
        raise ValueError(f"{run.path}: the window [{start}, {end}) of {n} hyper-steps is empty")
    if not np.isfinite(run.actions[lo:hi]).all():
        raise ValueError(f"{run.path}: its actions are not flat Discrete indices (e.g. multi_discrete vectors)")
    actions = run.actions[lo:hi].astype(np.int64)
    space = HyperparamSpace(run.space)  # the env's own codec, so the decoding is the one the run used
    try:
        chosen = [space.decode(a) for a in actions]
    except ValueError as e:
        raise ValueError(f"{run.path}: {e} (the space of config.json)") from e
    rewards = run.hyper_rewards[lo:hi]
    rewards = rewards[np.isfinite(rewards)]
    return ScheduleStats(
        n_actions=space.n_actions,
        steps=len(actions),
        repeats=int((actions[1:] == actions[:-1]).sum()),
        pairs=len(actions) - 1,
        counts=tuple(int(c) for c in np.bincount(actions, minlength=space.n_actions)),
        hparam_sums={k: float(sum(c[k] for c in chosen)) for k in space.names},
        grid_means={k: float(np.mean(v)) for k, v in run.space.items()},
        rewards=len(rewards),
        nonnegative_rewards=int((rewards >= 0).sum()),
    )


def pooled(stats: Sequence[ScheduleStats]) -> ScheduleStats:
    """The runs' counts summed (one arm's runs, all over the same action space).

    Raises:
        ValueError: If ``stats`` is empty or the runs' action spaces differ.
    """
    if not stats:
        raise ValueError("no runs to pool")
    first = stats[0]
    if any(s.n_actions != first.n_actions or s.grid_means != first.grid_means for s in stats):
        raise ValueError("the runs have different action spaces; pool runs of one arm only")
    return ScheduleStats(
        n_actions=first.n_actions,
        steps=sum(s.steps for s in stats),
        repeats=sum(s.repeats for s in stats),
        pairs=sum(s.pairs for s in stats),
        counts=tuple(int(c) for c in np.sum([s.counts for s in stats], axis=0)),
        hparam_sums={k: sum(s.hparam_sums[k] for s in stats) for k in first.hparam_sums},
        grid_means=first.grid_means,
        rewards=sum(s.rewards for s in stats),
        nonnegative_rewards=sum(s.nonnegative_rewards for s in stats),
    )
