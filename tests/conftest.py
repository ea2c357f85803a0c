from __future__ import annotations

import warnings

import pytest

TINY_NET = {"net_arch": [16]}


@pytest.fixture(autouse=True)
def _quiet_mujoco_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
