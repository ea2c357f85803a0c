"""The held-out grid study's pieces: returns by hand, and which model predicts an untried grid point."""

import gymnasium as gym
import numpy as np
import pytest

from hypergym.heldout import Recorded, fit_predict, heldout_study


def test_recorded_returns_are_discounted_to_the_end_of_each_learning_episode():
    run = Recorded(np.zeros((5, 1)), np.zeros(5, int), np.array([1.0, 2.0, 4.0, 1.0, 3.0]),
                   np.array([0, 0, 1, 0, 1.0]), np.zeros((5, 1)))  # fmt: skip
    np.testing.assert_allclose(run.returns(0.5), [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4, 1 + 0.5 * 3, 3])


def test_the_hypernetwork_predicts_an_untried_learning_rate_from_its_neighbours_and_the_one_hot_head_does_not():
    """Returns rise smoothly with the learning rate's grid coordinate; the middle rate is never tried."""
    rates = [1e-4 * 2**i for i in range(7)]
    env = gym.make("HyperRL-A2C-CartPole", hyperparams={"learning_rate": rates}, obs_mode="stats")
    rng = np.random.default_rng(0)
    n = 700
    actions = rng.integers(7, size=n)
    obs = np.zeros((n, env.observation_space.shape[0]), dtype=np.float32)
    rewards = 10.0 + 5.0 * (actions - 3) / 3 + rng.normal(0, 0.1, n)  # one-step learning episodes
    run = Recorded(obs, actions, rewards, np.ones(n), obs)
    train = actions != 3
    truth = 10.0
    error = {}
    for model in ("mean", "mlp", "hyper"):
        predicted = fit_predict(model, env, run, train, gamma=0.99, steps=600, seed=0)
        error[model] = float(np.abs(predicted[~train] - truth).mean())
        assert np.abs(predicted[train] - rewards[train]).mean() < 1.0 or model == "mean"  # fitted where tried
    assert error["hyper"] < 1.0 < error["mlp"]  # the untried point: interpolated, or left at its initial value
    with pytest.raises(ValueError, match="unknown models"):
        heldout_study("HyperRL-A2C-CartPole", {}, [0], models=["knn"])
