"""Checkpoints: everything a run's future depends on, in one versioned file, written atomically.

A checkpoint is a pickle of live objects (a ``HyperRLEnv`` and whatever rides along: an agent, the
runner's records) with two kinds of object saved by their state rather than by their constructor:

- MuJoCo envs pickle through ``EzPickle``, that is, by rebuilding a fresh simulator; here the full
  integration state (``mj_getState(..., mjSTATE_INTEGRATION)``: time, positions, velocities, actuator
  and warm-start state) and the env's RNG are restored into the rebuilt one, so physics continue bit for
  bit.
- Box2D worlds cannot be captured: such an env is rebuilt with its RNG and marked, and the learner resets
  it at its next rollout (a new episode; the one under way at the checkpoint is lost), with a warning at
  save time naming the simulator. ALE emulators (through ale-py's native vector env) cannot be captured
  either: saving an Atari run raises :class:`CheckpointError`.

Torch modules, optimisers, generators, NumPy generators, Gymnasium classic-control envs and the wrappers
pickle as they are. The file starts with a header (format name, format version, hypergym version, and the
length and SHA-256 of the pickled run state after it); reading a file of another format version, a file
whose run state does not match its length and checksum (truncated, or any byte changed), or the wrong kind
of object raises :class:`CheckpointError` before anything is unpickled or changed.

A checkpoint is a pickle: loading one runs whatever code its writer put in it. Load only checkpoints
from sources you trust (your own runs).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.checks import check_count
from hypergym.files import atomic_write
from hypergym.version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Cadence",
    "CheckpointError",
    "Checkpointable",
    "clear_unrestored",
    "is_unrestored",
    "load",
    "read_checkpoint",
    "write_checkpoint",
]

#: First line of every checkpoint file.
FORMAT = b"hypergym-checkpoint\n"
#: Version of the layout of the pickled objects; bumped when a change makes older files unreadable.
#: 4: each member's own work per rollout (PPO's batch size and epochs; members wait out a rollout);
#: 3: one sampling stream per member, the runner's one loop over a population (a single run is one member),
#: and the run state's length and SHA-256 in the header; 2: one stream for all members; format 1 held the
#: SB3-backed learner.
FORMAT_VERSION = 4
#: Why each older format cannot be read, for the error message.
_OLDER_FORMATS = {
    1: "format 1 holds the SB3-backed single-run learner that hypergym 0.1's learner core replaced, with other "
    "random streams, so it cannot be continued here; start the run again (its seed gives a new trajectory)",
    2: "format 2 holds a population's sampling noise in one stream, where format 3 gives each member its own, and "
    "the runner's loop state of before its one loop; start the run again (a single run's seed gives the same run)",
    3: "format 3 holds learners whose members share one batch size and epoch count (format 4 gives each member its "
    "own); start the run again (its seed gives the same run)",
}


class CheckpointError(ValueError):
    """A checkpoint cannot be written (an unsaveable simulator) or read (corrupt, truncated, wrong version)."""


@dataclass(frozen=True)
class Cadence:
    """When a run saves: every ``phases`` update phases, or at the first phase end ``minutes`` after a save."""

    phases: int | None = None
    minutes: float | None = None

    @classmethod
    def checked(cls, phases: Any, minutes: Any) -> Cadence:
        """The cadence of ``checkpoint_every`` / ``checkpoint_minutes``.

        Raises:
            ValueError: If either is not positive, or both are given.
        """
        check_count("checkpoint_every", phases, allow_none=True)
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes < math.inf
        ):
            raise ValueError(f"checkpoint_minutes must be a positive finite number or None, got {minutes!r}")
        if phases is not None and minutes is not None:
            raise ValueError(
                f"give checkpoint_every (update phases, got {phases}) or checkpoint_minutes (wall clock, got "
                f"{minutes}), not both"
            )
        return cls(phases, None if minutes is None else float(minutes))

    def __bool__(self) -> bool:
        return self.phases is not None or self.minutes is not None

    def due(self, phases: int, seconds_since_save: float) -> bool:
        """Whether to save at the end of update phase number ``phases``."""
        if self.phases is not None:
            return phases % self.phases == 0
        return self.minutes is not None and seconds_since_save >= 60.0 * self.minutes


def _rebuild_mujoco(cls: type, args: tuple, kwargs: dict, physics: np.ndarray, extra: dict[str, Any]) -> Any:
    import mujoco

    env = cls(*args, **kwargs)
    mujoco.mj_setState(env.model, env.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(env.model, env.data)
    env.__dict__.update(extra)
    return env


#: Attribute marking an env rebuilt without its simulator state: it starts a new episode at the next rollout.
UNRESTORED = "_hypergym_unrestored"


def _rebuild_unrestored(cls: type, args: tuple, kwargs: dict, np_random: Any) -> Any:
    env = cls(*args, **kwargs)
    if np_random is not None:
        env._np_random = np_random  # its next episodes are drawn as the saved env would have drawn them
    setattr(env, UNRESTORED, True)
    return env


def is_unrestored(env: Any) -> bool:
    """Whether ``env`` (a Gymnasium env, wrapped or not) was rebuilt without its simulator state."""
    return bool(getattr(getattr(env, "unwrapped", env), UNRESTORED, False))


def clear_unrestored(env: Any) -> None:
    """Mark ``env`` as reset (its new episode is under way)."""
    base = getattr(env, "unwrapped", env)
    if hasattr(base, UNRESTORED):
        delattr(base, UNRESTORED)


def _mujoco_state(env: Any) -> tuple[np.ndarray, dict[str, Any]]:
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    physics = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, physics, spec)
    # Everything the constructor does not rebuild: the RNG and attributes set after construction.
    skip = {"model", "data", "mujoco_renderer", "_ezpickle_args", "_ezpickle_kwargs"}
    extra = {k: v for k, v in env.__dict__.items() if k not in skip}
    return physics, extra


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self.unrestored: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, gym.Env) and not isinstance(obj, gym.Wrapper):
            module = type(obj).__module__
            if module.startswith("gymnasium.envs.mujoco"):
                physics, extra = _mujoco_state(obj)
                args, kwargs = getattr(obj, "_ezpickle_args", ()), getattr(obj, "_ezpickle_kwargs", {})
                return _rebuild_mujoco, (type(obj), args, kwargs, physics, extra)
            if module.startswith("gymnasium.envs.box2d"):
                # A Box2D world cannot be saved: the env is rebuilt with its RNG and starts a new episode at
                # the learner's next rollout (the episode under way at the checkpoint is lost).
                self.unrestored.add(type(obj).__name__)
                args, kwargs = getattr(obj, "_ezpickle_args", ()), getattr(obj, "_ezpickle_kwargs", {})
                return _rebuild_unrestored, (type(obj), args, kwargs, getattr(obj, "_np_random", None))
        if type(obj).__module__.startswith("ale_py"):
            raise CheckpointError("ALE emulators (Atari tasks) cannot be saved, so Atari runs cannot be checkpointed")
        return NotImplemented


def write_checkpoint(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` to ``path`` atomically (a crash mid-write leaves the previous file intact).

    Raises:
        CheckpointError: If something in ``payload`` cannot be saved (nothing is written then).
    """
    given = str(path)
    path = Path(path)
    if given.endswith(("/", os.sep)) or path.is_dir():
        raise CheckpointError(
            f"cannot save a checkpoint to {given!r}: it names a directory; give a file path, e.g. "
            f"{str(path / 'run.ckpt')!r}"
        )
    body = io.BytesIO()
    pickler = _Pickler(body, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pickler.dump(payload)
    except CheckpointError:
        raise
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise CheckpointError(f"cannot save this run: {err}") from err
    if pickler.unrestored:
        warnings.warn(
            f"{', '.join(sorted(pickler.unrestored))} simulator state cannot be saved: after loading this checkpoint "
            "those envs start new episodes at the next rollout (the episodes under way are lost)",
            UserWarning,
            stacklevel=2,
        )
    # The header holds the payload's length and SHA-256, checked before anything of it is unpickled.
    data = body.getvalue()
    header = {"format_version": FORMAT_VERSION, "hypergym": __version__, "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    buffer = io.BytesIO()
    buffer.write(FORMAT)
    pickle.dump(header, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    buffer.write(data)
    try:
        atomic_write(path, buffer.getvalue(), sync=True)
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint to {given!r}: {err.strerror or err}") from err
    return path


def read_checkpoint(path: str | Path) -> Any:
    """The payload saved at ``path``.

    Raises:
        CheckpointError: If the file is missing, not a hypergym checkpoint, of another format version,
            truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    data = path.read_bytes()
    if not data.startswith(FORMAT):
        raise CheckpointError(f"{path} is not a hypergym checkpoint")
    stream = io.BytesIO(data[len(FORMAT) :])
    try:
        header = pickle.load(stream)
    except Exception as err:
        raise CheckpointError(f"{path}: the checkpoint header is unreadable ({err!r}): the file is corrupt") from err
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        got = header.get("format_version") if isinstance(header, dict) else None
        why = _OLDER_FORMATS.get(got, "")  # type: ignore[arg-type]
        raise CheckpointError(
            f"{path} has checkpoint format {got!r} (written by hypergym "
            f"{header.get('hypergym') if isinstance(header, dict) else '?'}); this hypergym reads format "
            f"{FORMAT_VERSION}" + (f": {why}" if why else "")
        )
    payload = stream.read()
    if len(payload) != header.get("size") or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(
            f"{path} is truncated or corrupt: its {len(payload):,} bytes of run state do not match the length and "
            "SHA-256 written with them; it is refused before anything in it is read (delete it to start the run "
            "afresh)"
        )
    try:
        return pickle.loads(payload)
    except Exception as err:  # written whole but unreadable here (e.g. a class that no longer exists)
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}: {err})") from err


class Checkpointable:
    """``save`` / ``load`` of a whole object (an env and its run) through a checkpoint file."""

    def save(self, path: str | Path) -> Path:
        """Write this env's whole run to ``path`` (atomically), to :meth:`load` it and continue exactly.

        Saved: the learner (policy, optimiser state, rollout buffer, gradient history, rollback snapshots,
        RNG streams, counters), the inner envs (simulator state and RNGs, observation and reward
        normalisation statistics with their running returns), the encoder (VAE and its optimiser), and
        this env's counters and RNG. Resuming from it gives the same observations, rewards and parameters
        as the uninterrupted run (on a CPU).

        Raises:
            CheckpointError: On Atari tasks (their emulators cannot be saved). Box2D worlds cannot be saved
                either: their envs start new episodes at the loaded run's next rollout (a warning says so).
        """
        return write_checkpoint(path, {"kind": type(self).__name__, "env": self})

    def identity(self) -> tuple[str | None, str]:
        """The env's id (``None`` if not made by id) and what else a checkpoint loaded into it must match."""
        inner: Any = self
        spec, settings = getattr(inner, "spec", None), inner.settings
        return spec.id if spec is not None else None, (
            f"{settings.algo} on {settings.task}, {getattr(inner, 'num_envs', 1)} member(s), actions "
            f"{settings.action_space}, observations {settings.observation_space.shape}"
        )

    def load(self, path: str | Path) -> None:
        """Put this env at the point :meth:`save` wrote to ``path`` (mid-episode if saved there).

        Step it as it was stepped when saved: if saved mid-episode, go on with ``step`` (through
        ``env.unwrapped`` when ``gym.make``'s order-enforcing wrapper is outside).

        Raises:
            CheckpointError: If the file is missing, corrupt, of another format version, or holds another
                kind of env, or another id, population size or setting (the budget, the grid, a learner
                setting, the reward...: each differing one is named); this env is then unchanged. A checkpoint
                is a pickle: load only files you trust.
        """
        payload = read_checkpoint(path)
        loaded = payload.get("env") if isinstance(payload, dict) else None
        if not isinstance(loaded, type(self)):
            raise CheckpointError(f"{path} holds no {type(self).__name__} (it holds {type(loaded).__name__})")
        (theirs, their_kind), (ours, our_kind) = loaded.identity(), self.identity()
        if their_kind != our_kind or (None not in (theirs, ours) and theirs != ours):
            raise CheckpointError(
                f"{path} holds {theirs or type(self).__name__} ({their_kind}), but this env is "
                f"{ours or type(self).__name__} ({our_kind}): load it into an env made with the same id and "
                "settings, or with hypergym.load(path)"
            )
        # Loading replaces the whole env, so settings it was made with would silently give way to the file's.
        changed = self.settings.differences(loaded.settings)  # type: ignore[attr-defined]
        if changed:
            raise CheckpointError(
                f"{path} was saved by an env with other settings (this env's != the file's): {'; '.join(changed)}. "
                "Make the env with the checkpoint's settings, or load it with hypergym.load(path)"
            )
        self.close()  # type: ignore[attr-defined]
        self.__dict__.clear()
        self.__dict__.update(loaded.__dict__)


def load(path: str | Path) -> Any:
    """The env that ``env.save(path)`` wrote, ready to ``step`` where it was saved (``hypergym.load``).

    Returns the ``HyperRLEnv`` or ``HyperRLVectorEnv`` itself (no ``gym.make`` wrappers around it). A
    checkpoint is a pickle: load only files you trust.

    Raises:
        CheckpointError: If the file is missing, corrupt or of another format version, or holds no env (a
            run checkpoint of ``hypergym run`` is resumed by running the same command again).
    """
    payload = read_checkpoint(path)
    if isinstance(payload, dict) and payload.get("kind") == "run":
        raise CheckpointError(
            f"{path} is a run checkpoint (env, agent and records of hypergym run / compare): resume it by running "
            "the same command, or hypergym.run(..., out=its folder, checkpoint_every=K), again"
        )
    env = payload.get("env") if isinstance(payload, dict) else None
    if not isinstance(env, Checkpointable):
        raise CheckpointError(f"{path} holds no hypergym env (it holds {type(env).__name__})")
    return env
