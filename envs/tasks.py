"""The inner-task catalogue: short task names -> Gymnasium envs with the wrappers their presets need.

``make_task("HalfCheetah", n_envs=1, seed=0, normalize=True)`` returns an SB3 ``DummyVecEnv`` of
``Monitor``-wrapped ``HalfCheetah-v5`` envs (``Monitor`` records raw episode returns), seeded
``seed, seed + 1, ...``, optionally inside ``VecNormalize`` (observations and rewards).
Atari games (``make_task("Pong", n_envs=8)``) are one :class:`~hypergym.envs.atari.AtariVecEnv`: ale-py's
native vector env with the DeepMind preprocessing, episodic life, clipped training rewards and raw scores.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from hypergym.envs.atari import ATARI_GAMES, AtariVecEnv, atari_spaces
from hypergym.envs.optim4rl_tasks import Catch, Gridworld
from hypergym.envs.tiny import Countdown

__all__ = ["TASKS", "TaskSpec", "make_one_env", "make_task", "task_spaces", "task_spec"]


class _Flat(gym.ObservationWrapper):
    """Flat observations, which the learner's MLPs read.

    Gymnasium's ``FlattenObservation`` holds a lambda, which a checkpoint cannot pickle.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.flatten_space(env.observation_space)

    def observation(self, observation: Any) -> Any:
        """The observation as one row."""
        return np.asarray(observation).reshape(-1)


def _flattened(cls: Callable[..., gym.Env], **kwargs: Any) -> gym.Env:
    """``cls(**kwargs)`` with flat observations.

    Optim4RL's code's networks flatten them too, but for the big gridworlds' first convolution.
    """
    return _Flat(cls(**kwargs))


@dataclass(frozen=True)
class TaskSpec:
    """One inner task of the catalogue."""

    env_id: str | Callable[..., gym.Env]
    """Gymnasium id (or a constructor, for the tiny test tasks)."""
    family: str
    """``mujoco``, ``box2d``, ``classic``, ``atari``, ``optim4rl`` or ``tiny``."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``gym.make``."""
    extra: str | None = None
    """pip extra that installs the task's dependencies, if any."""


TASKS: dict[str, TaskSpec] = {
    # MuJoCo (v5)
    **{
        name: TaskSpec(f"{name}-v5", "mujoco")
        for name in (
            "HalfCheetah",
            "Hopper",
            "Walker2d",
            "Ant",
            "Swimmer",
            "Humanoid",
            "InvertedDoublePendulum",
            "InvertedPendulum",
            "Reacher",
        )
    },
    # Box2D
    "BipedalWalker": TaskSpec("BipedalWalker-v3", "box2d", extra="box2d"),
    "LunarLanderContinuous": TaskSpec("LunarLander-v3", "box2d", {"continuous": True}, extra="box2d"),
    "LunarLander": TaskSpec("LunarLander-v3", "box2d", extra="box2d"),
    # Classic control
    "CartPole": TaskSpec("CartPole-v1", "classic"),
    "Pendulum": TaskSpec("Pendulum-v1", "classic"),
    "Acrobot": TaskSpec("Acrobot-v1", "classic"),
    "MountainCar": TaskSpec("MountainCar-v0", "classic"),
    "MountainCarContinuous": TaskSpec("MountainCarContinuous-v0", "classic"),
    # Atari: the NoFrameskip-v4 games, preprocessed natively by ale-py (see hypergym.envs.atari)
    **{name: TaskSpec(f"{name}NoFrameskip-v4", "atari", extra="atari") for name in ATARI_GAMES},
    # Optim4RL's tasks (its Table 2's gridworlds, as CamelCase names: SmallDenseLong = small_dense_long)
    "Catch": TaskSpec(partial(_flattened, Catch), "optim4rl"),
    **{
        "".join(w.title() for w in grid.split("_")): TaskSpec(
            partial(_flattened, Gridworld), "optim4rl", {"name": grid}
        )
        for grid in (
            "small_dense_long",
            "small_dense_short",
            "big_sparse_short",
            "big_sparse_long",
            "big_dense_short",
            "big_dense_long",
        )
    },
    # Tiny tasks for tests
    "Countdown": TaskSpec(Countdown, "tiny"),
}


def task_spec(task: str) -> TaskSpec:
    """The catalogue entry of ``task``.

    Raises:
        ValueError: On an unknown task, naming the valid ones.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    return TASKS[task]


def _mujoco_warnings_through_python() -> None:
    """Send MuJoCo's warnings to :mod:`warnings` instead of printing them (unless the caller set a handler).

    Gymnasium's MuJoCo models use an attribute MuJoCo deprecates, and MuJoCo printed that on every env
    made: a deprecation is a ``DeprecationWarning`` raised here (so hidden by default, ``-W default`` shows
    it; attributed to Gymnasium's code it would pass Gymnasium's own filter), anything else a
    ``RuntimeWarning``.
    """
    try:
        import mujoco
    except ImportError:
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def _mujoco_warning(text: str) -> None:
    category = DeprecationWarning if "deprecated" in text else RuntimeWarning
    # Under -W error the warning would raise inside MuJoCo's C code, which aborts the process: drop it instead.
    with contextlib.suppress(Exception):
        warnings.warn(f"MuJoCo: {text}", category, stacklevel=1)


def make_one_env(spec: TaskSpec, **make_kwargs: Any) -> gym.Env:
    """One env of ``spec`` (``gym.make`` with its time limit), naming the extra to install when one is missing."""
    if spec.family == "mujoco":
        _mujoco_warnings_through_python()
    try:
        if callable(spec.env_id):
            return spec.env_id(**spec.env_kwargs)
        return gym.make(spec.env_id, **spec.env_kwargs, **make_kwargs)
    except gym.error.DependencyNotInstalled as err:
        hint = f' (pip install "hypergym[{spec.extra}]")' if spec.extra else ""
        raise gym.error.DependencyNotInstalled(f"{err}{hint}") from err


@cache
def task_spaces(task: str) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of ``task`` (one env is built once and closed)."""
    spec = task_spec(task)
    if spec.family == "atari":
        return atari_spaces(task)
    env = make_one_env(spec)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def make_task(
    task: str,
    n_envs: int = 1,
    seed: int = 0,
    normalize: bool = False,
    gamma: float = 0.99,
    num_threads: int = 0,
) -> VecEnv:
    """Build the vectorised inner environment of ``task``.

    Args:
        task: A name of :data:`TASKS`.
        n_envs: Number of parallel envs (DummyVecEnv: on few cores it beats subprocesses).
        seed: Env ``i`` is seeded ``seed + i`` at its first reset.
        normalize: Wrap in ``VecNormalize`` (running mean/std of observations and of discounted returns).
        gamma: Discount used by ``VecNormalize`` for reward scaling.
        num_threads: Atari only: threads stepping the games (0: one per core).

    Raises:
        ValueError: On an unknown task or ``n_envs < 1``.
    """
    spec = task_spec(task)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    venv: VecEnv
    if spec.family == "atari":
        venv = AtariVecEnv(task, n_envs=n_envs, seed=seed, num_threads=num_threads)
    else:
        venv = make_vec_env(lambda: make_one_env(spec), n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)
    if normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=gamma)
    return venv
