"""Whole-run checkpoints: resume is bit-identical; bad files are refused and change nothing."""

from __future__ import annotations

import io
import math
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import fit_batch

import hypergym
from hypergym.checkpoint import FORMAT, CheckpointError, read_checkpoint, write_checkpoint
from hypergym.rundir import CHECKPOINT_FILE

TINY = {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "total_env_steps": 4000}
CASES = {
    "a2c-cartpole-vae": ("HyperRL-A2C-CartPole", {"n_envs": 2, "obs_mode": "vae",
                                                  "encoder_kwargs": {"hidden": 8, "train_every": 2, "batch_size": 2}}),
    "acktr-cartpole-kfac": ("HyperRL-ACKTR-CartPole", {"n_envs": 2, "obs_mode": "random"}),
    "ppo-halfcheetah": ("HyperRL-PPO-HalfCheetah", {**fit_batch("HyperRL-PPO-HalfCheetah", 32), "batch_size": 16,
                                                    "n_epochs": 2, "obs_mode": "random"}),
    "ppo-pendulum-normalize": ("HyperRL-PPO-Pendulum", {**fit_batch("HyperRL-PPO-Pendulum", 32), "batch_size": 16,
                                                        "n_epochs": 2, "normalize": True, "obs_mode": "vae",
                                                        "encoder_kwargs": {"hidden": 8, "train_every": 2,
                                                                           "batch_size": 2}}),
}  # fmt: skip


def _make(case):
    env_id, kwargs = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, **TINY, **kwargs).unwrapped


def _play(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info.get("env_steps")))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs,))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_run_is_bit_identical_to_the_uninterrupted_one(case, tmp_path):
    env = _make(case)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    actions = rng.integers(env.action_space.n, size=14)
    _play(env, actions[:6])
    env.save(tmp_path / "run.ckpt")
    rest = _play(env, actions[6:])
    params = [p.detach().clone() for p in env.learner.policy.parameters()]

    resumed = _make(case)
    resumed.load(tmp_path / "run.ckpt")
    again = _play(resumed, actions[6:])
    assert len(rest) == len(again)
    for a, b in zip(rest, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    for p, q in zip(params, resumed.learner.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_corrupt_truncated_or_foreign_checkpoint_is_refused_and_changes_nothing(tmp_path):
    env = _make("a2c-cartpole-vae")
    env.reset(seed=0)
    env.step(0)
    path = env.save(tmp_path / "run.ckpt")
    before = [p.detach().clone() for p in env.learner.policy.parameters()]
    data = path.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage").write_bytes(FORMAT + b"\x80\x05not a pickle at all")
    (tmp_path / "other").write_bytes(b"PK\x03\x04 some zip")
    other = _make("a2c-cartpole-vae")
    other.reset(seed=1)
    other.step(1)
    for name, match in [("truncated", "truncated or corrupt"), ("garbage", "corrupt"), ("other", "not a hypergym"),
                        ("missing", "no checkpoint")]:  # fmt: skip
        with pytest.raises(CheckpointError, match=match):
            env.load(tmp_path / name)
    for p, q in zip(before, env.learner.policy.parameters(), strict=True):
        assert torch.equal(p, q)  # unchanged
    write_checkpoint(tmp_path / "list.ckpt", [1, 2, 3])
    with pytest.raises(CheckpointError, match="holds no HyperRLEnv"):
        env.load(tmp_path / "list.ckpt")


def test_one_changed_byte_anywhere_in_the_run_state_is_refused_before_unpickling(tmp_path, monkeypatch):
    """The header carries the run state's SHA-256: a flipped byte is never loaded (before: 57 of 60 loaded)."""
    import pickle

    env = _make("a2c-cartpole-vae")
    env.reset(seed=0)
    env.step(0)
    data = env.save(tmp_path / "run.ckpt").read_bytes()
    stream = io.BytesIO(data[len(FORMAT) :])
    pickle.load(stream)  # the header
    start = len(FORMAT) + stream.tell()
    unpickled = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: unpickled.append(1))  # nothing may be unpickled
    rng = np.random.default_rng(0)
    for offset in rng.integers(start, len(data), size=60):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        (tmp_path / "damaged.ckpt").write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match=r"damaged\.ckpt is truncated or corrupt: .* SHA-256"):
            env.load(tmp_path / "damaged.ckpt")
    assert not unpickled


def test_a_checkpoint_of_another_id_or_population_size_is_refused_naming_both(tmp_path):
    small = {"obs_mode": "random", "n_steps": 5, "policy_kwargs": {"net_arch": [8]}}
    env = gym.make("HyperRL-A2C-CartPole", **small).unwrapped
    env.reset(seed=0)
    path = env.save(tmp_path / "cartpole.ckpt")
    other = gym.make("HyperRL-A2C-Acrobot", **small).unwrapped
    with pytest.raises(
        CheckpointError, match=r"holds HyperRL-A2C-CartPole \(A2C on CartPole.*this env is HyperRL-A2C-Acrobot"
    ):
        other.load(path)
    assert other.task == "Acrobot"  # unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, **small)
        three = gym.make_vec("HyperRL-A2C-CartPole", num_envs=3, **small)
    two.reset(seed=0)
    pair = two.save(tmp_path / "pair.ckpt")
    with pytest.raises(CheckpointError, match=r"2 member\(s\).*but this env is .*3 member\(s\)"):
        three.load(pair)
    with pytest.raises(CheckpointError, match="holds no HyperRLVectorEnv"):
        three.load(path)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"total_env_steps": 8000}, "total_env_steps: 8000 != 4000"),
        ({"divergence_penalty": -5.0}, "divergence_penalty: -5.0 != 0.0"),
        ({"hyperparams": {"learning_rate": (1e-4, 2e-4, 3e-4, 4e-4, 6e-4)}}, "space: HyperparamSpace(learning_rate=["),
        ({"gamma": 0.9}, "config.gamma: 0.9 != 0.99"),
        ({"reward": "rollout_return"}, "reward: RolloutReturn"),
    ],
)
def test_a_checkpoint_loaded_into_an_env_with_other_settings_is_refused_naming_them(change, named, tmp_path):
    """Before, the env silently took on the checkpoint's budget, grid or penalty."""
    small = {"obs_mode": "random", "policy_kwargs": {"net_arch": [8]}, "total_env_steps": 4000}
    env = gym.make("HyperRL-A2C-CartPole", **small).unwrapped
    env.reset(seed=0)
    path = env.save(tmp_path / "run.ckpt")
    other = gym.make("HyperRL-A2C-CartPole", **{**small, **change}).unwrapped
    before = other.settings
    with pytest.raises(CheckpointError, match=r"saved by an env with other settings .*" + re.escape(named)):
        other.load(path)
    assert other.settings is before  # unchanged
    same = gym.make("HyperRL-A2C-CartPole", **small).unwrapped
    same.load(path)  # the same settings load
    assert same.learner is not None


def test_save_names_the_path_it_cannot_write_and_hypergym_load_returns_an_env_ready_to_step(tmp_path):
    env = _make("a2c-cartpole-vae")
    env.reset(seed=0)
    env.step(0)
    for bad, match in [(tmp_path, "names a directory"), (f"{tmp_path}/sub/", "names a directory"),
                       ("/proc/no/such.ckpt", "cannot write a checkpoint to '/proc/no/such.ckpt'")]:  # fmt: skip
        with pytest.raises(CheckpointError, match=match):
            env.save(bad)
    assert list(tmp_path.iterdir()) == []  # no hidden temporary file left behind
    path = env.save(tmp_path / "run.ckpt")
    expected = _play(env, [1, 2, 3])
    loaded = hypergym.load(path)
    assert type(loaded) is type(env)
    for a, b in zip(expected, _play(loaded, [1, 2, 3]), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)  # the natural next call: step, where the saved env was
    write_checkpoint(tmp_path / "list.ckpt", [1, 2, 3])
    with pytest.raises(CheckpointError, match="holds no hypergym env"):
        hypergym.load(tmp_path / "list.ckpt")
    write_checkpoint(tmp_path / "runs.ckpt", {"kind": "run"})
    with pytest.raises(CheckpointError, match="run checkpoint"):
        hypergym.load(tmp_path / "runs.ckpt")


def test_another_format_version_is_refused(tmp_path, monkeypatch):
    import hypergym.checkpoint as ckpt

    write_checkpoint(tmp_path / "x.ckpt", {"a": 1})
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", ckpt.FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=f"checkpoint format {ckpt.FORMAT_VERSION - 1}"):
        read_checkpoint(tmp_path / "x.ckpt")
    # A checkpoint of the SB3-backed learner (format 1) is refused with the reason.
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 1)
    write_checkpoint(tmp_path / "old.ckpt", {"a": 1})
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 2)
    with pytest.raises(CheckpointError, match=r"format 1 holds the SB3-backed single-run learner.*start the run again"):
        read_checkpoint(tmp_path / "old.ckpt")


@pytest.mark.parametrize("population", [False, True])
def test_box2d_runs_resume_with_new_episodes_at_the_next_rollout(population, tmp_path):
    """A Box2D world cannot be saved: the loaded run resets those envs at its next rollout, deterministically."""
    from hypergym.checkpoint import is_unrestored

    settings = {**TINY, **fit_batch("HyperRL-PPO-LunarLanderContinuous", 32), "batch_size": 16, "n_epochs": 1,
                "obs_mode": "random", "normalize": True}  # fmt: skip

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if population:
                return gym.make_vec("HyperRL-PPO-LunarLanderContinuous", num_envs=2, **settings)
            return gym.make("HyperRL-PPO-LunarLanderContinuous", **settings).unwrapped

    def step(env):
        if population:
            return env.step(np.full(2, env.space.default_action))[:2]
        obs, reward, terminated, truncated, _ = env.step(env.space.default_action)
        if terminated or truncated:
            env.reset()
        return obs, reward

    env = make()
    env.reset(seed=0)
    for _ in range(3):
        step(env)
    with pytest.warns(UserWarning, match="LunarLander simulator state cannot be saved"):
        env.save(tmp_path / "llc.ckpt")
    runs = []
    for _ in range(2):
        resumed = make()
        resumed.load(tmp_path / "llc.ckpt")
        envs = resumed.learner.venv.stepper.envs
        assert all(is_unrestored(e) for e in envs)
        trace = [step(resumed) for _ in range(6)]  # crosses the next rollout
        assert not any(is_unrestored(e) for e in envs)  # reset there
        assert all(np.isfinite(np.asarray(o)).all() for o, _ in trace)
        runs.append(trace)
    for (o1, r1), (o2, r2) in zip(*runs, strict=True):
        np.testing.assert_array_equal(o1, o2)  # a resumed run is still determined by its checkpoint
        np.testing.assert_array_equal(r1, r2)


class _Crash(Exception):
    pass


def _summary(result):
    out = {k: getattr(result, k) for k in result.__dataclass_fields__}
    for timing in ("wall_seconds", "env_steps_per_second", "run_dir"):
        out.pop(timing)
    return out


@pytest.mark.parametrize(
    ("agent_name", "cadence"),
    [
        ("episodic", {"checkpoint_every": 3}),
        ("dqn", {"checkpoint_every": 3}),
        ("gem", {"checkpoint_every": 3}),
        # wall clock: 1e-9 minutes is a checkpoint at the end of every phase
        ("episodic", {"checkpoint_minutes": 1e-9}),
    ],
)
def test_a_run_killed_mid_way_resumes_from_its_checkpoint_and_ends_as_the_uninterrupted_run(
    agent_name, cadence, tmp_path, monkeypatch
):
    from hypergym.agents import make_agent
    from hypergym.runner import CHECKPOINT_FILE, run

    def fresh():
        vae = {"hidden": 8, "train_every": 2, "batch_size": 2}
        env = gym.make("HyperRL-A2C-CartPole", **{**TINY, "total_env_steps": 1200}, n_envs=2, obs_mode="vae",
                       updates_per_phase=2, encoder_kwargs=vae)  # fmt: skip
        kwargs = {"learning_starts": 5, "batch_size": 4} if agent_name in ("dqn", "gem") else {}
        return env, make_agent(agent_name, env, seed=4, **kwargs)

    env, agent = fresh()
    whole = run(env, agent, seed=2, out=tmp_path / "whole", progress=False, **cadence)
    assert not (tmp_path / "whole" / CHECKPOINT_FILE).exists()  # removed once the summary is written
    if "checkpoint_minutes" in cadence:  # when the checkpoints fall does not change the numbers
        env, agent = fresh()
        unsaved = run(env, agent, seed=2, out=tmp_path / "unsaved", progress=False)
        assert _summary(unsaved) == _summary(whole)
        # steps.csv from the journal the checkpoints wrote is the one kept in memory, byte for byte
        assert (tmp_path / "whole" / "steps.csv").read_text() == (tmp_path / "unsaved" / "steps.csv").read_text()
        assert not (tmp_path / "whole" / "steps.partial.jsonl").exists()

    from hypergym.envs import HyperRLEnv

    env, agent = fresh()
    real_step, calls = HyperRLEnv.step, [0]

    def crashing_step(self, action):  # on the class, so that checkpoints do not pickle it
        calls[0] += 1
        if calls[0] > 2 * whole.hyper_steps // 3:
            raise _Crash
        return real_step(self, action)

    monkeypatch.setattr(HyperRLEnv, "step", crashing_step)
    with pytest.raises(_Crash):
        run(env, agent, seed=2, out=tmp_path / "killed", progress=False, **cadence)
    monkeypatch.undo()
    assert (tmp_path / "killed" / CHECKPOINT_FILE).exists()
    env, agent = fresh()
    counted = [0]

    def counting_step(self, action):
        counted[0] += 1
        return real_step(self, action)

    monkeypatch.setattr(HyperRLEnv, "step", counting_step)
    resumed = run(env, agent, seed=2, out=tmp_path / "killed", progress=False, **cadence)
    assert 0 < counted[0] < whole.hyper_steps // 2  # it went on from the checkpoint, not from the start
    assert _summary(resumed) == _summary(whole)
    assert (tmp_path / "killed" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()


def test_the_rows_live_in_a_journal_that_a_resume_cuts_back_to_its_checkpoint(tmp_path, monkeypatch):
    """A checkpoint holds no rows already journaled; a crash between journal and checkpoint loses nothing."""
    import hypergym.runner as runner
    from hypergym.agents import make_agent
    from hypergym.rundir import STEPS_JOURNAL

    def fresh():
        env = gym.make("HyperRL-A2C-CartPole", **{**TINY, "total_env_steps": 1200}, n_envs=2, obs_mode="random",
                       updates_per_phase=2)  # fmt: skip
        return env, make_agent("episodic", env, seed=4)

    env, agent = fresh()
    whole = runner.run(env, agent, seed=2, out=tmp_path / "whole", progress=False)
    expected = (tmp_path / "whole" / "steps.csv").read_text()

    from hypergym import callbacks

    real_save, saves = callbacks.write_checkpoint, []

    def crash_on_the_third_save(path, payload):
        loop = payload["loop"]
        saves.append(loop.journal[0])
        if len(saves) == 3:  # the journal has this checkpoint's rows; the checkpoint is the second one
            raise _Crash
        assert loop.rows == [[]]  # every row so far is in the journal, none in the checkpoint
        return real_save(path, payload)

    monkeypatch.setattr(callbacks, "write_checkpoint", crash_on_the_third_save)
    env, agent = fresh()
    with pytest.raises(_Crash):
        runner.run(env, agent, seed=2, out=tmp_path / "killed", progress=False, checkpoint_every=2)
    monkeypatch.undo()
    journal = tmp_path / "killed" / STEPS_JOURNAL
    assert saves[0] < saves[1] < saves[2] == journal.stat().st_size  # it grows; the checkpoint does not
    assert read_checkpoint(tmp_path / "killed" / CHECKPOINT_FILE)["loop"].journal == [saves[1]]

    env, agent = fresh()
    resumed = runner.run(env, agent, seed=2, out=tmp_path / "killed", progress=False, checkpoint_every=2)
    assert _summary(resumed) == _summary(whole)
    assert (tmp_path / "killed" / "steps.csv").read_text() == expected  # the rows after saves[1] not twice
    assert not journal.exists()

    monkeypatch.setattr(callbacks, "write_checkpoint", crash_on_the_third_save)
    saves.clear()
    env, agent = fresh()
    with pytest.raises(_Crash):
        runner.run(env, agent, seed=2, out=tmp_path / "lost", progress=False, checkpoint_every=2)
    monkeypatch.undo()
    (tmp_path / "lost" / STEPS_JOURNAL).unlink()
    env, agent = fresh()
    with pytest.raises(CheckpointError, match=r"steps\.partial\.jsonl holds 0 bytes .* delete the checkpoint"):
        runner.run(env, agent, seed=2, out=tmp_path / "lost", progress=False, checkpoint_every=2)


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    from hypergym.agents import make_agent
    from hypergym.runner import CHECKPOINT_FILE, run

    env = gym.make("HyperRL-A2C-CartPole", **TINY, n_envs=2, obs_mode="random")
    agent = make_agent("random", env, seed=0)
    (tmp_path / "r").mkdir()
    write_checkpoint(tmp_path / "r" / CHECKPOINT_FILE, {"kind": "run", "config": "{}", "env": None, "agent": None,
                                                         "loop": None})  # fmt: skip
    with pytest.raises(CheckpointError, match="other settings"):
        run(env, agent, seed=0, out=tmp_path / "r", progress=False, checkpoint_every=1)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(env, agent, seed=0, progress=False, checkpoint_every=0)
    from hypergym.agents import make_agent as make_population_agent

    venv = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, **TINY, n_envs=2, obs_mode="random")
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(venv, make_population_agent("static", venv), seed=0, progress=False, checkpoint_every=1.5)
    for minutes in (0, -1.0, math.inf, math.nan, True, "10"):
        with pytest.raises(ValueError, match="checkpoint_minutes must be a positive finite number"):
            run(env, agent, seed=0, progress=False, checkpoint_minutes=minutes)
    with pytest.raises(ValueError, match="not both"):
        run(env, agent, seed=0, progress=False, checkpoint_every=2, checkpoint_minutes=5)


def test_compare_killed_with_sigkill_then_rerun_gives_the_uninterrupted_numbers(tmp_path):
    """SIGKILL to a worker, then to the parent, mid-run; the rerun resumes and ends with the same summaries."""
    import contextlib
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "hypergym.cli", "compare", "HyperRL-A2C-CartPole", "--agents", "random,episodic",
            "--seeds", "2", "--workers", "2", "--checkpoint-every", "2",
            "--set", "total_env_steps=8000", "obs_mode=random", "n_envs=2"]  # fmt: skip
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(killed.glob("**/checkpoint.ckpt")):  # populations: one checkpoint per agent's folder
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint before the compare ended"
        time.sleep(0.05)
    # A second compare on the same --out while the first runs (paused, so that it cannot finish meanwhile):
    # it refuses at once, writing nothing.
    os.killpg(proc.pid, signal.SIGSTOP)
    second = subprocess.run([*args, "--out", str(killed)], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"is being written by process {proc.pid}" in second.stderr
    subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)  # the workers
    os.kill(proc.pid, signal.SIGKILL)  # and the parent
    proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # any worker left over
    interrupted = list(killed.glob("**/checkpoint.ckpt"))  # removed once a run's (population's) summaries exist
    assert interrupted, "every run had finished: nothing was resumed"

    rerun = subprocess.run([*args, "--out", str(killed)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for summary in sorted((tmp_path / "whole").glob("*/seed*/summary.json")):
        a = json.loads(summary.read_text())
        b = json.loads((killed / summary.relative_to(tmp_path / "whole")).read_text())
        for timing in ("wall_seconds", "env_steps_per_second", "run_dir"):
            a.pop(timing), b.pop(timing)
        assert a == b, summary
        steps = summary.with_name("steps.csv")
        assert steps.read_text() == (killed / steps.relative_to(tmp_path / "whole")).read_text(), steps
    assert not list(killed.glob("**/checkpoint.ckpt"))


@pytest.mark.parametrize("case", ["a2c-cartpole-vae", "ppo-pendulum-normalize", "ppo-halfcheetah"])
def test_a_population_resumes_bit_identically(case, tmp_path):
    env_id, kwargs = CASES[case]

    def make():
        return gym.make_vec(env_id, num_envs=3, **TINY, **kwargs)

    def play(env, actions):
        out = []
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(a)
            out.append((obs, reward, terminated, truncated, info["env_steps"]))
        return out

    env = make()
    env.reset(seed=[4, 9, 1])
    rng = np.random.default_rng(0)
    actions = rng.integers(env.single_action_space.n, size=(14, 3))
    play(env, actions[:6])
    env.save(tmp_path / "pop.ckpt")
    rest = play(env, actions[6:])
    resumed = make()
    resumed.load(tmp_path / "pop.ckpt")
    again = play(resumed, actions[6:])
    for a, b in zip(rest, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert torch.equal(env.learner.flat, resumed.learner.flat)


def test_a_pbt_population_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    from hypergym.agents import make_agent as make_population_agent
    from hypergym.envs import HyperRLVectorEnv
    from hypergym.runner import CHECKPOINT_FILE
    from hypergym.runner import run as _run

    def fresh():
        env = gym.make_vec("HyperRL-A2C-CartPole", num_envs=4, **{**TINY, "total_env_steps": 1500}, n_envs=2,
                           obs_mode="random", updates_per_phase=2)  # fmt: skip
        return env, make_population_agent("pbt", env, seed=1, perturbation_interval=2)

    env, agent = fresh()
    whole = _run(env, agent, seed=[0, 1, 2, 3], progress=False, out=tmp_path / "whole", checkpoint_every=3)
    assert agent.history  # exploits happened (and are part of what a resume must reproduce)

    real_step, calls = HyperRLVectorEnv.step, [0]

    def crashing_step(self, actions):
        calls[0] += 1
        if calls[0] > 2 * whole[0].hyper_steps // 3:
            raise _Crash
        return real_step(self, actions)

    env, agent = fresh()
    monkeypatch.setattr(HyperRLVectorEnv, "step", crashing_step)
    with pytest.raises(_Crash):
        _run(env, agent, seed=[0, 1, 2, 3], progress=False, out=tmp_path / "killed", checkpoint_every=3)
    monkeypatch.undo()
    assert (tmp_path / "killed" / CHECKPOINT_FILE).exists()
    env, agent = fresh()
    counted = [0]

    def counting_step(self, actions):
        counted[0] += 1
        return real_step(self, actions)

    monkeypatch.setattr(HyperRLVectorEnv, "step", counting_step)
    resumed = _run(env, agent, seed=[0, 1, 2, 3], progress=False, out=tmp_path / "killed", checkpoint_every=3)
    assert 0 < counted[0] < whole[0].hyper_steps // 2  # it went on from the checkpoint
    assert [_summary(r) for r in resumed] == [_summary(r) for r in whole]
    for seed in range(4):
        assert (tmp_path / "killed" / f"seed{seed}" / "steps.csv").read_text() == (
            tmp_path / "whole" / f"seed{seed}" / "steps.csv"
        ).read_text()


def test_an_annoy_index_survives_a_checkpoint_with_the_same_answers(tmp_path):
    pytest.importorskip("annoy")
    from hypergym.agents.memory import AnnoyIndex

    rng = np.random.default_rng(0)
    index = AnnoyIndex(n_trees=5, seed=3)
    keys = [rng.normal(size=(60, 8)).astype(np.float32), rng.normal(size=(25, 8)).astype(np.float32)]
    index.build(keys, {0, 1})
    write_checkpoint(tmp_path / "index.ckpt", index)
    loaded = read_checkpoint(tmp_path / "index.ckpt")
    for action in (0, 1):
        for _ in range(5):
            x = rng.normal(size=8)
            (i1, d1), (i2, d2) = index.query(action, x, 3), loaded.query(action, x, 3)
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_array_equal(d1, d2)


def test_a_checkpoint_written_before_a_setting_was_added_resumes_and_loads(tmp_path):
    """Runs checkpointed before ``optimizer`` existed recorded no ``config.optimizer``: they had the default."""
    import json
    from types import SimpleNamespace

    from hypergym.envs.settings import ADDED_SETTINGS
    from hypergym.runner import CHECKPOINT_FILE

    def older(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k not in ADDED_SETTINGS}

    env = gym.make("HyperRL-A2C-CartPole", **TINY, obs_mode="random")
    ours = env.unwrapped.settings
    identity = {"env_id": "HyperRL-A2C-CartPole", "seed": 0, "settings": ours.described()}
    path = tmp_path / "r" / CHECKPOINT_FILE
    path.parent.mkdir()
    config = json.dumps([{**identity, "settings": older(identity["settings"])}], sort_keys=True)
    loop = SimpleNamespace(journal=[0])
    write_checkpoint(path, {"kind": "run", "config": config, "env": "the env", "agent": None, "loop": loop})
    from hypergym.callbacks import Checkpoints

    recorder = SimpleNamespace(dirs=[tmp_path / "r"], rewind=lambda journal, path: None)
    checkpoints = Checkpoints(path, None, [identity], recorder, env, None)
    assert checkpoints.resume()[0] == "the env"  # accepted: the older run had the default optimiser
    adam = gym.make("HyperRL-A2C-CartPole", **TINY, obs_mode="random", optimizer="adam")
    checkpoints = Checkpoints(path, None, [{**identity, "settings": adam.unwrapped.settings.described()}], recorder,
                              adam, None)  # fmt: skip
    with pytest.raises(CheckpointError, match="other settings"):
        checkpoints.resume()

    before = SimpleNamespace(described=lambda: older(ours.described()))  # an env of an older hypergym
    assert ours.differences(before) == []
    assert [d.split(":")[0] for d in adam.unwrapped.settings.differences(before)] == ["config.optimizer"]
