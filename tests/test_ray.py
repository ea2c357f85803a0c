"""The Ray backend of ``compare``: a local cluster gives the process pool's numbers (skipped without Ray)."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _summaries(folder):
    out = {}
    for path in sorted(folder.glob("*/seed*/summary.json")):
        summary = json.loads(path.read_text())
        for timing in ("wall_seconds", "env_steps_per_second", "run_dir"):
            summary.pop(timing)
        out[str(path.relative_to(folder))] = summary
    return out


def test_compare_on_a_local_ray_cluster_gives_the_process_pool_numbers(tmp_path, local_ray):
    from hypergym.cli import main

    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "random,episodic,pbt", "--seeds", "2",
            "--set", "total_env_steps=600", "obs_mode=random", "n_envs=2"]  # fmt: skip
    assert main([*args, "--workers", "2", "--out", str(tmp_path / "pool")]) == 0
    assert main([*args, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    pool, on_ray = _summaries(tmp_path / "pool"), _summaries(tmp_path / "ray")
    assert len(pool) == 6 and pool == on_ray  # 3 agents x 2 seeds (pbt as one population), same numbers
