from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from hypergym.spaces import HyperparamSpace, around_default, log_uniform, uniform


def test_around_default_is_geometric_and_contains_default():
    assert around_default(1.0, 3) == (0.5, 1.0, 2.0)
    assert around_default(7e-4, 7) == pytest.approx(tuple(7e-4 * 2.0**j for j in range(-3, 4)))
    assert 3e-4 in around_default(3e-4, 5)
    assert len(around_default(1.0, 4)) == 4 and around_default(1.0, 4)[-1] == 4.0


@pytest.mark.parametrize("args", [(0.0, 3), (-1.0, 3), (1.0, 0)])
def test_around_default_rejects_bad_input(args):
    with pytest.raises(ValueError):
        around_default(*args)


def test_uniform_and_log_uniform_endpoints():
    assert uniform(0.9, 0.99, 4)[0] == 0.9 and uniform(0.9, 0.99, 4)[-1] == pytest.approx(0.99)
    grid = log_uniform(4e-5, 1e-2, 15)
    assert len(grid) == 15 and grid[0] == pytest.approx(4e-5) and grid[-1] == pytest.approx(1e-2)
    ratios = np.array(grid[1:]) / np.array(grid[:-1])
    assert np.allclose(ratios, ratios[0])


def test_mixed_radix_decode_order_first_is_most_significant():
    space = HyperparamSpace({"learning_rate": (1e-4, 3e-4, 1e-3), "clip_range": (0.1, 0.2, 0.3)})
    assert space.n_actions == 9
    assert space.decode(4) == {"learning_rate": 3e-4, "clip_range": 0.2}
    assert space.decode(5) == {"learning_rate": 3e-4, "clip_range": 0.3}
    assert space.decode(np.array([2, 0])) == {"learning_rate": 1e-3, "clip_range": 0.1}
    for a in range(space.n_actions):
        assert space.encode(space.decode(a)) == a
        md = space.encode(space.decode(a), action_mode="multi_discrete")
        assert space.decode(md) == space.decode(a)


def test_gym_spaces():
    space = HyperparamSpace({"batch_size": (128, 256, 512), "gae_lambda": (0.9, 0.95, 0.975, 0.99)})
    assert space.gym_space() == spaces.Discrete(12)
    assert space.gym_space("multi_discrete") == spaces.MultiDiscrete([3, 4])
    with pytest.raises(ValueError, match="multi_discrete"):
        space.gym_space("box")


@pytest.mark.parametrize("action", [9, -1, np.array([3, 0]), np.array([0, -1])])
def test_actions_outside_are_refused_not_wrapped(action):
    space = HyperparamSpace({"learning_rate": (1e-4, 3e-4, 1e-3), "clip_range": (0.1, 0.2, 0.3)})
    with pytest.raises(ValueError, match="outside"):
        space.decode(action)


def test_non_integer_action_is_a_type_error():
    space = HyperparamSpace({"learning_rate": (1e-4, 3e-4)})
    with pytest.raises(TypeError):
        space.decode(0.5)


def test_default_action_is_closest_to_defaults():
    space = HyperparamSpace(
        {"batch_size": (128, 256, 512), "learning_rate": around_default(3e-4, 3)},
        defaults={"batch_size": 64, "learning_rate": 3e-4},
    )
    assert space.decode(space.default_action) == {"batch_size": 128, "learning_rate": 3e-4}


def test_validation_names_the_valid_choices():
    with pytest.raises(ValueError, match="supports"):
        HyperparamSpace({"learning_rat": (1e-3,)}, supported=["learning_rate", "clip_range"])
    with pytest.raises(ValueError, match="non-empty"):
        HyperparamSpace({"learning_rate": ()})
    with pytest.raises(ValueError, match="positive"):
        HyperparamSpace({"learning_rate": (0.0, 1e-3)})
    with pytest.raises(ValueError, match="positive"):
        HyperparamSpace({"learning_rate": (-1e-3,)})
    with pytest.raises(ValueError, match="integers"):
        HyperparamSpace({"batch_size": (64.5,)})
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        HyperparamSpace({"gamma": (1.5,)})
    with pytest.raises(ValueError, match="empty"):
        HyperparamSpace({})
