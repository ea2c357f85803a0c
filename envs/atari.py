"""Atari inner tasks: ale-py's native vector env behind SB3's ``VecEnv`` interface, with SB3's semantics.

The games run in ``ale_py.vector_env.AtariVectorEnv`` (C++, threaded), which does the DeepMind
preprocessing itself: the ``*NoFrameskip-v4`` settings (frameskip 1 in the emulator, no sticky actions,
the minimal action set, at most 108,000 frames per game), then up to 30 no-op actions at reset, each
agent action repeated 4 frames with the last 2 frames max-pooled, FIRE at reset in games that need it,
84x84 grayscale frames, and a stack of the last 4. :class:`AtariVecEnv` adds what SB3's learners expect
of ``make_atari_env`` + ``VecFrameStack``:

- *Episodic life*: a life loss ends the inner episode (``done``, so GAE does not bootstrap across it) but
  the game goes on; only game over (or the 108k-frame limit) resets it, in the same step
  (``info["terminal_observation"]`` holds the last frame stack, as SB3's ``DummyVecEnv`` does).
- *Reward clipping*: the learner trains on ``sign(reward)``; the raw game score is kept: every finished
  game reports ``info["episode"] = {"r": raw score, "l": agent steps, "t": seconds}`` as SB3's ``Monitor``
  wrapped *before* ``AtariWrapper`` does, and :attr:`AtariVecEnv.raw_rewards` holds the last step's
  unclipped rewards (the hyper-rewards read them).

Measured against the Python wrappers (``benchmarks/atari.py``, tests in ``tests/test_atari.py``): the
frames are pixel-identical to Gymnasium's ``AtariPreprocessing`` (+ a 4-frame stack) for the same actions.
Known differences from SB3's ``AtariWrapper``: SB3 max-pools the two RGB frames before converting to gray
(ale-py pools gray frames), draws 1..30 no-ops (ale-py 0..29), presses FIRE and takes a hidden no-op step
after every life loss (ale-py presses FIRE only when a game starts, so a Breakout agent must learn to
serve), and zero-fills the frame stack at every ``done`` (ale-py keeps the stack across a life loss).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from hypergym.atari_games import ATARI_GAMES

__all__ = ["ATARI_GAMES", "AtariVecEnv", "atari_spaces"]

#: Frames per game before the time limit truncates it (the ``*NoFrameskip-v4`` setting: 30 minutes).
MAX_FRAMES = 108_000


def _ale_vector_env() -> type:
    try:
        from ale_py.vector_env import AtariVectorEnv
    except ImportError as err:
        raise gym.error.DependencyNotInstalled(
            f'Atari tasks need ale-py >= 0.11.1 ({err}); install them with pip install "hypergym[atari]"'
        ) from err
    return AtariVectorEnv


class AtariVecEnv(VecEnv):
    """``n_envs`` copies of one Atari game, preprocessed in C++ and stepped in one call.

    Args:
        game: Task name, a key of :data:`ATARI_GAMES` (e.g. ``"Pong"``).
        n_envs: Number of parallel games.
        seed: Game ``i`` is seeded ``seed + i`` at the first reset (as SB3's ``make_vec_env``), or
            ``seed[i]`` when a sequence of ``n_envs`` seeds is given (a population's games).
        terminal_on_life_loss: A life loss ends the inner episode (the game goes on).
        clip_reward: Train on ``sign(reward)`` (raw scores are still reported).
        noop_max: Up to this many no-op actions at every game start (0 disables).
        fire_reset: Press FIRE when a game starts, in games that have it.
        frame_skip: Emulator frames per agent action (the last two are max-pooled).
        frame_stack: Frames stacked in an observation.
        screen_size: Side of the square grayscale frame.
        num_threads: Threads stepping the games (0: ale-py's choice, one per core).

    Raises:
        ValueError: On an unknown game or a non-positive ``n_envs``.
        gymnasium.error.DependencyNotInstalled: Without ale-py (``pip install "hypergym[atari]"``).
    """

    render_mode = None  # the native games do not render

    def __init__(
        self,
        game: str,
        n_envs: int = 1,
        seed: int | Sequence[int] = 0,
        *,
        terminal_on_life_loss: bool = True,
        clip_reward: bool = True,
        noop_max: int = 30,
        fire_reset: bool = True,
        frame_skip: int = 4,
        frame_stack: int = 4,
        screen_size: int = 84,
        num_threads: int = 0,
    ) -> None:
        if game not in ATARI_GAMES:
            raise ValueError(f"unknown Atari game {game!r}; choose from {sorted(ATARI_GAMES)}")
        if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
        vector_env_class = _ale_vector_env()
        self.game = game
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_reward = clip_reward
        self._ale = vector_env_class(
            ATARI_GAMES[game],
            n_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=MAX_FRAMES,
            repeat_action_probability=0.0,
            full_action_space=False,
            autoreset_mode="SameStep",
            img_height=screen_size,
            img_width=screen_size,
            grayscale=True,
            stack_num=frame_stack,
            frameskip=frame_skip,
            maxpool=True,
            noop_max=noop_max,
            # Life losses are flagged, never reset: the game goes on, as with SB3's EpisodicLifeEnv.
            episodic_life=False,
            life_loss_info=True,
            # Clipped here, so that the raw score survives for episode returns and hyper-rewards.
            reward_clipping=False,
            use_fire_reset=fire_reset,
        )
        super().__init__(n_envs, self._ale.single_observation_space, self._ale.single_action_space)
        if isinstance(seed, (int, np.integer)):
            self.seed(int(seed))
        else:
            if len(seed) != n_envs:
                raise ValueError(f"{len(seed)} seeds for {n_envs} games")
            self._seeds = [int(s) for s in seed]
        self.raw_rewards = np.zeros(n_envs, dtype=np.float64)
        """Unclipped rewards of the last step (the game score's increments)."""
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self._lives = np.zeros(n_envs, dtype=np.int64)
        self._score = np.zeros(n_envs, dtype=np.float64)
        self._length = np.zeros(n_envs, dtype=np.int64)
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ VecEnv interface
    def reset(self) -> VecEnvObs:
        """Start a new game in every env (seeded by :meth:`seed` if called since the last reset)."""
        seeds = None if self._seeds[0] is None else np.asarray(self._seeds, dtype=np.int64)
        obs, info = self._ale.reset(seed=seeds)
        self._reset_seeds()
        self._lives = np.asarray(info["lives"], dtype=np.int64).copy()
        self._score[:] = 0.0
        self._length[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions of the next :meth:`step_wait`."""
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every game once; a finished game is reset in the same step (SB3's convention)."""
        obs, reward, terminated, truncated, info = self._ale.step(self._actions)
        lives = np.asarray(info["lives"], dtype=np.int64)
        # After game over the game is already reset, so its lives are back at the start value (never
        # fewer than before): a life loss is a termination with fewer lives than the step before.
        life_lost = terminated & (lives < self._lives)
        game_over = truncated | (terminated & ~life_lost)
        self._lives = lives.copy()
        self.raw_rewards = np.asarray(reward, dtype=np.float64).copy()
        self._score += self.raw_rewards
        self._length += 1
        dones = game_over | life_lost if self.terminal_on_life_loss else game_over
        rewards = np.sign(self.raw_rewards) if self.clip_reward else self.raw_rewards
        final_obs = info.get("final_obs")
        infos: list[dict[str, Any]] = [{"lives": int(lives[i])} for i in range(self.num_envs)]
        now = time.perf_counter()
        for i in np.flatnonzero(dones):
            entry = infos[i]
            # The game goes on after a life loss, so the current frames are the episode's last ones.
            entry["terminal_observation"] = final_obs[i] if game_over[i] and final_obs is not None else obs[i]
            entry["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if game_over[i]:
                entry["episode"] = {
                    "r": float(self._score[i]),
                    "l": int(self._length[i]),
                    "t": round(now - self._t0, 6),
                }
                self._score[i] = 0.0
                self._length[i] = 0
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        """Stop the emulators."""
        self._ale.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of this vector env, once per requested env (the games have no Python objects)."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Refused: the games live in C++ and have no Python attributes."""
        raise AttributeError(f"AtariVecEnv cannot set {attr_name!r} on the native games")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list:
        """Refused: the games live in C++ and have no Python methods."""
        raise AttributeError(f"AtariVecEnv cannot call {method_name!r} on the native games")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No game is wrapped by a Python wrapper (the preprocessing is native)."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Rendering is not supported by the native vector env."""
        return [None for _ in range(self.num_envs)]


def atari_spaces(game: str) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of one preprocessed game (one native env is built and closed)."""
    venv = AtariVecEnv(game, n_envs=1, num_threads=1)
    try:
        return venv.observation_space, venv.action_space
    finally:
        venv.close()
