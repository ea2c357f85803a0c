from __future__ import annotations

import warnings

import pytest

TINY_NET = {"net_arch": [16]}


@pytest.fixture(autouse=True)
def _quiet_mujoco_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def fit_batch(env_id: str, n_steps: int, n_envs: int | None = None) -> dict:
    """A preset's kwargs for a short rollout: ``n_steps`` and its grid with batch sizes that fit the rollout.

    A PPO preset's batch sizes (64 to 512) exceed a test's rollout of a few dozen samples, which the env
    refuses; this keeps the preset's grid but for ``batch_size``, whose values become N/4, N/2 and N.
    """
    import hypergym

    preset = hypergym.preset(env_id)
    kwargs: dict = {"n_steps": n_steps}
    if n_envs is not None:
        kwargs["n_envs"] = n_envs
    grid = dict(preset["hyperparams"])
    if "batch_size" in grid:
        n = n_steps * (n_envs or preset.get("n_envs", 1))
        grid["batch_size"] = (max(1, n // 4), max(1, n // 2), n)
        kwargs["hyperparams"] = grid
    return kwargs
