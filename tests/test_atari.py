from __future__ import annotations

import math
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import fit_batch

import hypergym

pytest.importorskip("ale_py")

from reference import A2CLearner

from hypergym.envs import make_task
from hypergym.envs.atari import AtariVecEnv
from hypergym.learners import A2CConfig

# A tiny override of an Atari preset: two games, short rollouts, small budget.
TINY_ATARI = {"n_envs": 2, "n_steps": 16, "total_env_steps": 256, "device": "cpu"}
#: PPO-Pong's grid with batch sizes that fit TINY_ATARI's 32-sample rollout.
PONG_GRID = {"hyperparams": fit_batch("HyperRL-PPO-Pong", 16, 2)["hyperparams"]}


def _random_actions(venv, seed=0):
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, venv.action_space.n, size=venv.num_envs)


def test_frames_and_rewards_match_gymnasium_atari_preprocessing():
    # Same game, same seed, same actions: ale-py's native preprocessing against the Python wrappers.
    pytest.importorskip("cv2")
    import ale_py
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    ref = FrameStackObservation(AtariPreprocessing(gym.make("PongNoFrameskip-v4"), noop_max=0), 4, padding_type="zero")
    ref_obs, _ = ref.reset(seed=3)
    venv = AtariVecEnv("Pong", n_envs=1, seed=3, noop_max=0, fire_reset=False, num_threads=1)
    obs = venv.reset()
    np.testing.assert_array_equal(obs[0], ref_obs)
    actions = _random_actions(venv)
    n_rewards = 0
    for _ in range(300):
        action = next(actions)
        obs, reward, done, _ = venv.step(action)
        ref_obs, ref_reward, terminated, truncated, _ = ref.step(int(action[0]))
        np.testing.assert_array_equal(obs[0], ref_obs)
        assert venv.raw_rewards[0] == ref_reward
        assert reward[0] == np.sign(ref_reward)
        assert done[0] == (terminated or truncated)
        n_rewards += ref_reward != 0
    assert n_rewards > 0  # Pong scores within 300 steps, so rewards were compared, not only zeros
    ref.close()
    venv.close()


def test_life_loss_ends_the_episode_but_not_the_game():
    venv = AtariVecEnv("Breakout", n_envs=1, seed=0, num_threads=1)
    obs = venv.reset()
    assert not obs[0, 0].any()  # a fresh game starts with a zero-filled frame stack
    lives, raw_total, life_losses, steps = 5, 0.0, 0, 0
    for action in _random_actions(venv):
        obs, _, done, infos = venv.step(action)
        raw_total += venv.raw_rewards[0]
        steps += 1
        if done[0] and "episode" not in infos[0]:
            # A life loss: done, one life fewer, and the game went on (no reset: the stack holds old frames).
            life_losses += 1
            assert infos[0]["lives"] == lives - 1
            assert obs[0, 0].any()
            np.testing.assert_array_equal(infos[0]["terminal_observation"], obs[0])
            assert not infos[0]["TimeLimit.truncated"]
            lives -= 1
        if "episode" in infos[0]:
            break
    # Game over comes once, after every life is lost; its episode spans all the lives.
    assert life_losses == 4
    assert infos[0]["episode"]["l"] == steps
    assert infos[0]["episode"]["r"] == raw_total
    assert not obs[0, 0].any()  # game over reset the game in the same step
    venv.close()


def test_reported_episode_return_is_the_raw_game_score_not_the_clipped_sum():
    # Space Invaders scores 5 to 30 points per invader, so raw and clipped sums differ.
    venv = make_task("SpaceInvaders", n_envs=1, seed=1)
    learner = A2CLearner(venv, A2CConfig(n_steps=256), seed=0)
    raw: list[np.ndarray] = []
    clipped: list[np.ndarray] = []
    for _ in range(8):
        stats, _ = learner.collect_rollout()
        raw.append(stats.raw_rewards[:, 0])
        clipped.append(learner.buffer.rewards[:, 0].copy())
        if stats.episode_returns:
            break
    assert stats.episode_returns, "no game finished in 2048 steps"
    length = stats.episode_lengths[0]
    raw_rewards, clipped_rewards = np.concatenate(raw)[:length], np.concatenate(clipped)[:length]
    assert set(np.unique(clipped_rewards)) <= {-1.0, 0.0, 1.0}
    assert stats.episode_returns[0] == raw_rewards.sum()
    assert stats.episode_returns[0] > clipped_rewards.sum() > 0
    # The hyper-reward reads the same raw score.
    assert hypergym.rewards.make_reward("episode_return")(stats) == pytest.approx(np.mean(stats.episode_returns))
    learner.close()


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("HyperRL-PPO-Pong", {"n_epochs": 2, **PONG_GRID}),
        ("HyperRL-A2C-Breakout", {"updates_per_phase": 3}),
    ],
)
def test_atari_ids_run_a_full_learning_episode(env_id, overrides):
    env = gym.make(env_id, obs_mode="stats", **TINY_ATARI, **overrides)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.learner.observation_space.shape == (4, 84, 84)
    steps, rewards = 0, []
    while True:
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.space.default_action)
        steps += 1
        rewards.append(reward)
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
    default = env.unwrapped.space.decode(env.unwrapped.space.default_action)
    expected = 2 * math.ceil(32 / default.get("batch_size", 1)) if env_id.startswith("HyperRL-PPO") else 3
    # PPO: epochs x ceil(32 / b); A2C: U
    assert steps == expected
    assert terminated and "G" in info and rewards[:-1] == [0.0] * (steps - 1)
    assert info["env_steps"] == 32 * (1 + (1 if env_id.startswith("HyperRL-PPO") else 3))
    env.close()


def test_atari_hyperstate_has_the_naturecnn_dimension():
    env = gym.make("HyperRL-PPO-Pong", obs_mode="raw", **TINY_ATARI, **PONG_GRID)
    # conv 32, 64, 64, linear 512, 6 Pong actions + 1 value: rows x (2 gradients + weights) x d = 4.
    assert env.observation_space.shape == ((32 + 64 + 64 + 512 + 6 + 1) * 3 * 4,) == (8148,)
    env.close()


def test_same_seed_same_atari_run():
    def run() -> list[float]:
        env = gym.make("HyperRL-A2C-Pong", obs_mode="random", updates_per_phase=2, **TINY_ATARI)
        obs, _ = env.reset(seed=5)
        out = [float(obs.sum())]
        for action in (0, 4, 8):
            obs, reward, terminated, _, info = env.step(action)
            out += [float(obs.sum()), reward, info["losses"]["loss"]]
            if terminated:
                env.reset()
        env.close()
        return out

    assert run() == run()


def test_missing_ale_py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py.vector_env", None)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"hypergym\[atari\]"):
        AtariVecEnv("Pong")


def test_unknown_game_lists_the_games():
    with pytest.raises(ValueError, match="Breakout"):
        AtariVecEnv("Pacman")
