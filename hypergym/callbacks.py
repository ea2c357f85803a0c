"""What the runner's loop calls besides the env and the agent: progress bar, TensorBoard, checkpoints.

In the shape of SB3's ``BaseCallback``: the loop (:func:`hypergym.runner.run`) calls ``on_start`` once,
``on_step`` after every hyper-step of the population and ``on_end`` once, each with the loop's state
(:class:`Loop`); none of them changes what the run computes.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypergym.checkpoint import Cadence, CheckpointError, read_checkpoint, write_checkpoint
from hypergym.rundir import MemberTally, Recorder, jsonable, read_rows

__all__ = ["Checkpoints", "Loop", "ProgressBar", "RunCallback", "SharedProgress", "StudyProgress", "TensorBoard"]


def _comparable(identity: str) -> Any:
    """A run identity (JSON) with the settings added since older checkpoints filled in as they had them."""
    from hypergym.envs.settings import with_added

    data = json.loads(identity)
    for config in data if isinstance(data, list) else [data]:
        if isinstance(config, dict) and isinstance(config.get("settings"), dict):
            config["settings"] = with_added(config["settings"])
    return data


@dataclass
class Loop:
    """Where the runner's loop stands: what a checkpoint saves besides the env and the agent."""

    obs: Any
    info: dict[str, Any]
    n: int
    tallies: list[MemberTally] = field(default_factory=list)
    rows: list[list[dict[str, Any]]] = field(default_factory=list)
    """Each recorded member's ``steps.csv`` rows not yet in its journal."""
    journal: list[int] = field(default_factory=list)
    """Each member's journal size in bytes at this state: the rows before ``rows``."""
    members: list[dict[str, Any]] = field(default_factory=list)
    """Each member's info of the last step."""
    acted: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    """Each member's last action and the agent's record of it (a waiting member's stay until its row)."""
    step: int = 0
    phases: int = 0
    elapsed: float = 0.0
    done: bool = False

    def __post_init__(self) -> None:
        self.tallies = [MemberTally() for _ in range(self.n)]
        self.rows, self.journal = [[] for _ in range(self.n)], [0] * self.n


class RunCallback:
    """Base of the runner's callbacks: every hook does nothing by default."""

    def on_start(self, loop: Loop) -> None:
        """Before the first step (of a fresh or a resumed run)."""

    def on_step(self, loop: Loop, rows: list[dict[str, Any] | None]) -> None:
        """After every hyper-step, with each member's ``steps.csv`` row of it (``None``: the member waits)."""

    def on_end(self, loop: Loop) -> None:
        """After the last step."""

    def on_abort(self, loop: Loop) -> None:
        """When the loop stops on an error or an interrupt (release what ``on_start`` took)."""


class ProgressBar(RunCallback):
    """A tqdm bar over one member's inner env steps (or over hyper-steps, for an env without a budget)."""

    def __init__(self, budget: int | None, max_steps: int | None, members: int) -> None:
        self.budget, self.total, self.members = budget, budget or max_steps, members
        self.bar: Any = None

    def on_start(self, loop: Loop) -> None:
        """See :class:`RunCallback`."""
        from tqdm.auto import tqdm

        unit = "env step" if self.budget else "hyper-step"
        self.bar = tqdm(total=self.total, unit=unit if self.members == 1 else f"{unit} per member", leave=False)
        self.bar.update(self._done(loop))

    def _done(self, loop: Loop) -> int:
        return int(loop.tallies[0].env_steps) if self.budget else loop.step

    def on_step(self, loop: Loop, rows: list[dict[str, Any] | None]) -> None:
        """See :class:`RunCallback`."""
        done = self._done(loop)
        if self.bar.total is not None and done > self.bar.total:
            self.bar.total = done  # the last phase passes the budget: the bar ends full, not overrun
        self.bar.update(done - self.bar.n)

    def on_end(self, loop: Loop) -> None:
        """See :class:`RunCallback`."""
        self.bar.close()

    on_abort = on_end


class TensorBoard(RunCallback):
    """Every member's hyper-steps to TensorBoard, one folder each (:mod:`hypergym.tensorboard_log`).

    Each folder holds the events of the run as it stands: at the start, events a killed attempt left are
    deleted and the rows of the checkpoint being resumed (its journals) are logged again, so a resumed run
    has each hyper-step once.

    Args:
        folders: Each member's event folder.
        journals: Each member's journal of rows (``None``: not recorded).
    """

    def __init__(self, folders: list[Path], journals: list[Path | None]) -> None:
        self.folders, self.journals = folders, journals
        self.loggers: list[Any] = []

    def on_start(self, loop: Loop) -> None:
        """See :class:`RunCallback`."""
        from hypergym.tensorboard_log import HyperStepLogger, clear_events

        for folder in self.folders:
            clear_events(folder)
        self.loggers = [HyperStepLogger(folder) for folder in self.folders]
        for logger, journal, size in zip(self.loggers, self.journals, loop.journal, strict=True):
            for row in read_rows(journal) if journal is not None and size else []:
                logger.write(row)

    def on_step(self, loop: Loop, rows: list[dict[str, Any] | None]) -> None:
        """See :class:`RunCallback`."""
        for logger, row in zip(self.loggers, rows, strict=True):
            if row is not None:
                logger.write(row)

    def on_end(self, loop: Loop) -> None:
        """See :class:`RunCallback`."""
        for logger in self.loggers:
            logger.close()

    on_abort = on_end  # what was logged reaches the files; a resume replaces what came after its checkpoint


class Checkpoints(RunCallback):
    """Save the whole run (env, agent, loop) at the end of an update phase when the cadence says so.

    The rows so far go to the recorder's journals first, so the checkpoint does not grow with the run.

    Args:
        path: The checkpoint file.
        cadence: When to save.
        identity: The run's settings (each member's ``config.json``): a checkpoint of others is refused.
        recorder: The run's recorder.
        env: The population being run.
        agent: Its agent.
    """

    def __init__(self, path: Path, cadence: Cadence, identity: Any, recorder: Recorder, env: Any, agent: Any) -> None:
        self.path, self.cadence, self.recorder = path, cadence, recorder
        self.identity = json.dumps(jsonable(identity), sort_keys=True)
        self.env, self.agent = env, agent
        self.saved = time.perf_counter()

    def resume(self) -> tuple[Any, Any, Any] | None:
        """The env, agent and loop of the checkpoint (``None`` without one); journals cut back to it.

        Raises:
            CheckpointError: If the checkpoint is damaged, not a run's, or of a run with other settings.
        """
        if not self.path.is_file():
            self.recorder.rewind([0] * len(self.recorder.dirs), None)
            return None
        payload = read_checkpoint(self.path)
        if not isinstance(payload, dict) or payload.get("kind") != "run":
            raise CheckpointError(f"{self.path} is not a run checkpoint")
        if _comparable(payload["config"]) != _comparable(self.identity):
            raise CheckpointError(
                f"{self.path} was written by a run with other settings (env, agent or seed); delete it to start "
                "this run afresh, or run with the settings it was written with"
            )
        self.env, self.agent, loop = payload["env"], payload["agent"], payload["loop"]
        self.recorder.rewind(loop.journal, self.path)
        return self.env, self.agent, loop

    def on_step(self, loop: Loop, rows: list[dict[str, Any] | None]) -> None:
        """See :class:`RunCallback`."""
        if loop.done or "G" not in loop.members[0]:
            return
        loop.phases += 1
        if not self.cadence.due(loop.phases, time.perf_counter() - self.saved):
            return
        loop.journal = self.recorder.flush(loop.rows)
        payload = {"kind": "run", "config": self.identity, "env": self.env, "agent": self.agent, "loop": loop}
        try:
            write_checkpoint(self.path, payload)
        except CheckpointError as err:
            warnings.warn(
                f"{err}; this run goes on without checkpoints (a kill restarts it)", UserWarning, stacklevel=2
            )
            self.cadence = Cadence()
        self.saved = time.perf_counter()

    def on_end(self, loop: Loop) -> None:
        """See :class:`RunCallback`."""
        self.path.unlink(missing_ok=True)  # the summaries supersede it


class SharedProgress(RunCallback):
    """Write the run's env steps (all members') into a table the process that started the run reads.

    Args:
        table: Shared between processes (a ``multiprocessing.Manager().dict()``) or a plain dict.
        key: This run's entry.
        every: Seconds between two writes (a write to a manager's table is a round trip).
    """

    def __init__(self, table: MutableMapping[str, int], key: str, every: float = 0.5) -> None:
        self.table, self.key, self.every, self.last = table, key, every, 0.0

    def _write(self, loop: Loop) -> None:
        self.table[self.key] = sum(t.env_steps for t in loop.tallies)
        self.last = time.perf_counter()

    def on_step(self, loop: Loop, rows: list[dict[str, Any] | None]) -> None:
        """See :class:`RunCallback`."""
        if time.perf_counter() - self.last >= self.every:
            self._write(loop)

    on_end = _write


class StudyProgress:
    """A live bar over a study's inner env steps (runs done, rate, time left), fed by :class:`SharedProgress`.

    Args:
        total: The env steps of every run to make (budget x members, summed).
        runs: Runs to make.
        table: Where the runs write their env steps.
        every: Seconds between two redraws.
    """

    def __init__(self, total: int, runs: int, table: MutableMapping[str, int], every: float = 1.0) -> None:
        from tqdm.auto import tqdm

        self.table, self.runs, self.every, self.done = table, runs, every, 0
        self.bar = tqdm(total=total, unit="env step", unit_scale=True, desc=f"runs 0/{runs}", leave=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        while not self.stop.wait(self.every):
            self.redraw()

    def redraw(self) -> None:
        """Show what the table says now."""
        steps = sum(dict(self.table).values())
        self.bar.total = max(self.bar.total, steps)  # the last phase of a run passes its budget
        self.bar.update(steps - self.bar.n)

    def finished(self, runs: int, line: str) -> None:
        """``runs`` more runs ended: print ``line`` above the bar."""
        self.done += runs
        self.bar.set_description(f"runs {self.done}/{self.runs}")
        self.bar.write(line)

    def close(self) -> None:
        """Stop following and remove the bar."""
        self.stop.set()
        self.thread.join()
        self.redraw()
        self.bar.close()
