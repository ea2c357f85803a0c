"""Optim4RL's Catch and gridworlds on hand-made episodes, and Gymnasium's checker on each."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hypergym.envs.optim4rl_tasks import GRIDS, Catch, Gridworld


def test_catch_by_hand():
    env = Catch()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 5, 1) and obs.sum() == 2 and obs[9, 2, 0] == 1  # ball on top, paddle in the middle
    env.ball = (0, 0)
    rewards = []
    for action in (0, 0, 0, 1, 1, 1, 1, 1, 1):  # left until the wall, then stay: under the ball
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
    assert rewards == [0.0] * 8 + [1.0] and terminated and not truncated and env.paddle == 0
    env.reset(seed=1)
    env.ball = (0, 4)
    for _ in range(9):
        *_, reward, terminated, _, _ = env.step(1)  # stays in the middle: missed
    assert reward == -1.0 and terminated


def test_a_gridworld_by_hand():
    env = Gridworld("small_dense_short")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 6, 8) and obs[-1].sum() == 1 and obs[:2].sum() == 2  # 4 x 6 inside a wall border
    env.objects = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0]])  # no respawns; the second ends the episode
    env.agent, env.placed = np.array([1, 1]), np.array([[1, 2], [3, 3]])
    obs, reward, terminated, truncated, _ = env.step(0)  # stay
    assert reward == 0 and (env.agent == [1, 1]).all()
    obs, reward, terminated, truncated, _ = env.step(1)  # up: the wall, stays
    assert (env.agent == [1, 1]).all() and reward == 0
    obs, reward, terminated, truncated, _ = env.step(2)  # right onto the first object
    assert reward == 1.0 and not terminated and (env.placed[0] == -1).all() and obs[0].sum() == 0
    obs, reward, terminated, truncated, _ = env.step(6)  # down-right diagonal to (2, 3), then down onto (3, 3)
    obs, reward, terminated, truncated, _ = env.step(3)
    assert reward == -1.0 and terminated and not truncated
    env.reset(seed=2)
    env.time = env.horizon - 1
    *_, terminated, truncated, _ = env.step(0)
    assert truncated and not terminated
    scaled = Gridworld("small_dense_short", reward_scale=100.0)
    scaled.reset(seed=0)
    scaled.objects = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    scaled.agent, scaled.placed = np.array([1, 1]), np.array([[1, 2], [4, 6]])
    assert scaled.step(2)[1] == 100.0


def test_objects_respawn_with_their_probability():
    env = Gridworld("big_dense_long")  # respawn 0.5 per step
    env.reset(seed=0)
    env.objects[:, 1] = 0.0  # no termination
    gone = 0
    for _ in range(400):
        env.placed[0] = -1
        env.agent = np.array([1, 1])
        env.step(0)
        gone += int(env.placed[0, 0] < 0)
    assert 150 < gone < 250  # about half stay away one more step


@pytest.mark.parametrize("name", ["catch", *GRIDS])
def test_gymnasium_checks_every_task(name):
    check_env(Catch() if name == "catch" else Gridworld(name), skip_render_check=True)
    with pytest.raises(ValueError, match="choose from"):
        Gridworld("medium")


@pytest.mark.parametrize("task", ["Catch", "SmallDenseLong", "BigDenseLong"])
def test_the_optim4rl_ids_pass_gymnasiums_checker(task):
    import gymnasium as gym

    env = gym.make(f"HyperRL-A2C-{task}", total_env_steps=2_000, n_envs=2)
    check_env(env.unwrapped, skip_render_check=True)
    settings = env.unwrapped.settings
    assert (settings.config.n_steps, settings.config.gamma, settings.config.gae_lambda) == (20, 0.995, 0.95)
