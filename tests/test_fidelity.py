"""The released EPGT code's settings as options, each pinned to the number that code gives on a hand example."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_NET

import hypergym
from hypergym.agents import EpisodicAgent
from hypergym.learners.records import RolloutArrays, RolloutStats
from hypergym.rewards import CriticReturn, make_reward
from hypergym.spaces import eq5_grid, eq5_multipliers

SMALL = {"obs_mode": "random", "n_steps": 5, "n_envs": 1, "policy_kwargs": TINY_NET, "total_env_steps": 100}


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({}, {0.0: 1.0, 0.25: 0.75, 0.5: 0.5, 1.0: 0.0}),  # the paper's text: 1 -> 0 over the run
        ({"decay_fraction": 0.5, "floor": 0.01}, {0.0: 1.0, 0.25: 0.505, 0.5: 0.01, 1.0: 0.01}),  # the code
    ],
)
def test_epsilon_schedules_at_the_start_the_middle_and_the_end(schedule, expected):
    agent = EpisodicAgent(gym.make("HyperRL-A2C-CartPole", **SMALL), seed=0, **schedule)
    for progress, eps in expected.items():
        assert agent.epsilon({"env_steps": progress * 100}) == pytest.approx(eps)
    assert agent.config()["decay_fraction"] == schedule.get("decay_fraction", 1.0)
    with pytest.raises(ValueError, match="decay_fraction must lie in"):
        EpisodicAgent(gym.make("HyperRL-A2C-CartPole", **SMALL), decay_fraction=0)
    with pytest.raises(ValueError, match="floor must lie in"):
        EpisodicAgent(gym.make("HyperRL-A2C-CartPole", **SMALL), floor=1.0)


def _stats(lambda_returns=None):
    # T = 2, one env: rewards 1, 2; values 0.5, 1; the rollout ends mid-episode with V = 3.
    critic = RolloutArrays(
        np.array([[[1.0]], [[2.0]]], dtype=np.float32), np.array([[[0.5]], [[1.0]]], dtype=np.float32),
        np.array([[[True]], [[False]]]), np.array([[3.0]], dtype=np.float32), np.array([[False]]),
    )  # fmt: skip
    return RolloutStats([], [], np.zeros((2, 1)), (), critic, lambda_returns)


def test_critic_return_is_the_rollouts_mean_lambda_return_by_hand():
    # gamma 0.5, lambda 1: delta_1 = 2 + 0.5 * 3 - 1 = 2.5, return 3.5; delta_0 = 1 + 0.5 * 1 - 0.5 = 1,
    # A_0 = 1 + 0.5 * 2.5 = 2.25, return 2.75; mean 3.125.
    assert CriticReturn(gamma=0.5, gae_lambda=1.0)(_stats()) == pytest.approx(3.125)
    # lambda -> 0: one-step returns 1 + 0.5 * 1 = 1.5 and 2 + 0.5 * 3 = 3.5, mean 2.5.
    assert CriticReturn(gamma=0.5, gae_lambda=1e-9)(_stats()) == pytest.approx(2.5)
    # The chosen variant reads the learner's own lambda-returns.
    chosen = make_reward("critic_return_chosen", gamma=0.5, gae_lambda=1.0)
    assert chosen(_stats(np.array([[1.0], [4.0]]))) == pytest.approx(2.5)


def test_critic_return_in_the_env_is_the_mean_of_the_returns_the_learner_trains_on():
    env = gym.make(
        "HyperRL-A2C-Pendulum", reward="critic_return", updates_per_phase=1, phases_per_episode=None, **SMALL
    )
    env.reset(seed=0)
    learner = env.unwrapped.learner
    for _ in range(3):
        _, reward, *_, info = env.step(env.unwrapped.space.default_action)
        # No gamma or lambda on the grid: the preset's values are the chosen ones, and G is the mean of
        # the new rollout's returns (advantages + values), as the released code's mean(rollouts.returns).
        assert reward == pytest.approx(float(learner.batch["returns"].mean()), rel=1e-5)
        assert "G" in info


def test_eq5_multipliers_are_the_released_quantiser_with_the_default_first():
    assert eq5_multipliers(3) == (1.0, 2.0, 0.5)  # the code's quan_level 2
    assert eq5_multipliers(7, scale=2) == pytest.approx((1, 1.5, 1 / 1.5, 2, 0.5, 2.5, 0.4))  # classic, scale 2
    assert eq5_multipliers(7) == pytest.approx((1, 2, 1 / 2, 3, 1 / 3, 4, 1 / 4))  # Eq. 5, B = 7: x1/4 .. x4
    fig2a = eq5_grid(7e-4, 15, scale=0.5)  # Fig. 2a: B = 15 over about [4e-5, 1e-2]
    assert fig2a[0] == 7e-4 and min(fig2a) == pytest.approx(7e-4 / 15) and max(fig2a) == pytest.approx(7e-4 * 15)
    with pytest.raises(ValueError, match="odd number"):
        eq5_multipliers(4)
    env = gym.make("HyperRL-A2C-CartPole", hyperparams={"learning_rate": eq5_grid(7e-4, 3)}, **SMALL)
    assert env.unwrapped.space.default_action == 0  # the default is the first value


def test_a_multiplier_learning_rate_decays_linearly_with_the_env_steps_done():
    """After k updates of 5 env steps on a 100-step budget, the step size is 7e-4 x 2 x (1 - 5k / 100)."""
    env = gym.make(
        "HyperRL-A2C-CartPole", hyperparams={"learning_rate": eq5_grid(7e-4, 3)}, lr_decay="linear",
        updates_per_phase=1, phases_per_episode=None, **SMALL,
    )  # fmt: skip
    env.reset(seed=0)
    learner = env.unwrapped.learner
    used = []
    step = learner.optimizer.step
    learner.optimizer.step = lambda lr, *a: (used.append(float(lr[0])), step(lr, *a))[1]
    double = env.unwrapped.space.encode({"learning_rate": 7e-4 * 2})
    for k in range(6):
        _, _, _, _, info = env.step(double)
        assert info["hyperparams"]["learning_rate"] == pytest.approx(1.4e-3)  # the chosen value, reported
        assert info["lr_scale"] == pytest.approx(1 - 5 * (k + 1) / 100)  # for the next update's rollout
    assert used == pytest.approx([1.4e-3 * (1 - 5 * k / 100) for k in range(6)])
    with pytest.raises(ValueError, match="unknown lr_decay 'cosine'"):
        gym.make("HyperRL-A2C-CartPole", lr_decay="cosine")


def test_the_vector_memory_writes_one_hot_returns_and_reads_a_squared_distance_kernel_average():
    from hypergym.agents.vector_memory import VectorMemory

    mem = VectorMemory(n_actions=3, key_dim=1, capacity=10, k_read=5, k_write=3, beta=0.5)
    mem.write(np.array([0.0]), action=1, value=10.0)
    np.testing.assert_allclose(mem.values, [[0.0, 10.0, 0.0]])  # a new key: one_hot(1) x 10
    # A second key at squared distance 1: the first key moves half-way to one_hot(0) x 4 (its only neighbour).
    mem.write(np.array([1.0]), action=0, value=4.0)
    np.testing.assert_allclose(mem.values, [[2.0, 5.0, 0.0], [4.0, 0.0, 0.0]])
    # Read at 0.25: squared distances 0.0625 and 0.5625, weights 1 / (d^2 + 1e-3), normalised.
    w = 1 / (np.array([0.0625, 0.5625]) + 1e-3)
    w /= w.sum()
    expected = w[0] * np.array([2.0, 5.0, 0.0]) + w[1] * np.array([4.0, 0.0, 0.0])
    np.testing.assert_allclose(mem.read(np.array([0.25])), expected)
    # The released read reshapes the [neighbours x actions] block as [actions x neighbours].
    bugged = VectorMemory(3, 1, 10, released_reshape=True)
    bugged.write(np.array([0.0]), action=1, value=10.0)
    bugged.write(np.array([1.0]), action=0, value=4.0)
    block = mem.values[[0, 1]]  # nearest first: the key at 0, then the key at 1
    np.testing.assert_allclose(bugged.read(np.array([0.25])), block.reshape(3, 2) @ w)


def test_a_5_neighbour_7_action_block_read_both_ways():
    """The released read (dnd.py:153): values.reshape(actions, neighbours) @ w; the transposed: w @ values."""
    from hypergym.agents.vector_memory import VectorMemory

    keys = np.arange(5, dtype=np.float32)[:, None]  # nearest to 0 first: 0, 1, 2, 3, 4
    block = np.arange(35, dtype=np.float64).reshape(5, 7)  # neighbour i's value of action j: 7 i + j
    w = 1 / (keys[:, 0].astype(np.float64) ** 2 + 1e-3)
    w /= w.sum()
    for released, expected in ((True, block.reshape(7, 5) @ w), (False, w @ block)):
        mem = VectorMemory(7, 1, 10, k_read=5, released_reshape=released)
        mem.keys, mem.values, mem.last_used = keys.copy(), block.copy(), np.zeros(5, dtype=np.int64)
        np.testing.assert_allclose(mem.read(np.array([0.0])), expected)
    assert not np.allclose(block.reshape(7, 5) @ w, w @ block)  # the two reads differ


def test_the_vector_memory_evicts_the_least_recently_used_key():
    from hypergym.agents.vector_memory import VectorMemory

    mem = VectorMemory(n_actions=2, key_dim=1, capacity=2, k_read=1, k_write=1)
    mem.write(np.array([0.0]), 0, 1.0)
    mem.write(np.array([5.0]), 1, 1.0)  # touches its neighbour, the key at 0
    mem.read(np.array([5.0]))  # uses the key at 5: now the key at 0 is the least recently used
    mem.write(np.array([9.0]), 0, 1.0)  # touches the key at 5, then inserts 9 and evicts 0
    assert sorted(mem.keys[:, 0].tolist()) == [5.0, 9.0]


def test_the_code_memory_agent_breaks_ties_towards_action_0_and_keys_through_a_5d_map():
    env = gym.make("HyperRL-A2C-CartPole", hyperparams={"learning_rate": eq5_grid(7e-4, 3)}, **SMALL)
    agent = EpisodicAgent(env, memory="vector", key_dim=5, k=3, capacity=10, seed=0, decay_fraction=0.5, floor=0.0)
    obs, _ = env.reset(seed=0)
    key = agent.key(obs)
    assert key.shape == (5,) and np.all(np.abs(key) < 1)  # tanh of a frozen random map
    late = {"env_steps": 100}  # epsilon 0
    agent.memory.write(key, 2, 0.0)
    agent.memory.write(key + 1, 1, 0.0)
    assert agent.act(obs, late) == 0  # every value equal (0): the first action, the default, wins
    agent.memory.write(key, 2, 8.0)
    assert agent.act(obs, late) == 2  # now action 2's value leads at this key
    assert agent.config()["memory"] == "vector" and agent.config()["k_read"] == 5
    with pytest.raises(ValueError, match="unknown memory"):
        EpisodicAgent(env, memory="dnd")


def test_the_code_memory_agent_runs_through_the_runner_and_writes_its_memory(tmp_path):
    env = gym.make(
        "HyperRL-A2C-CartPole", reward="critic_return", lr_decay="linear", **{**SMALL, "total_env_steps": 400}
    )
    agent = EpisodicAgent(env, memory="vector", key_dim=5, write_every=1, seed=0, decay_fraction=0.5, floor=0.01)
    result = hypergym.run(env, agent, seed=0, out=tmp_path, progress=False)
    assert result.env_steps >= 400 and len(agent.memory) > 0
    assert agent.memory.keys.shape[1] == 5


# ---------------------------------------------------------------- the profiles
MCC = "HyperRL-A2C-MountainCarContinuous"


def test_the_code_profile_sets_the_released_env_settings_and_the_paper_profile_keeps_the_text():
    code = gym.make(MCC, profile="code", obs_mode="random").unwrapped.settings
    paper = gym.make(MCC, obs_mode="random").unwrapped.settings
    assert code.profile == "code" and paper.profile == "paper"
    assert isinstance(code.reward_fn, CriticReturn) and not isinstance(paper.reward_fn, CriticReturn)
    assert code.lr_decay == "linear" and paper.lr_decay == "none"
    assert code.rollouts_per_phase == 1 and paper.rollouts_per_phase == 10  # every update credited
    # ikostrikov's A2C against OpenAI's
    assert (code.normalize, code.config.gae_lambda, code.config.vf_coef) == (True, 0.95, 0.5)
    assert (paper.normalize, paper.config.gae_lambda, paper.config.vf_coef) == (False, 1.0, 0.25)
    # Fig. 2a's range as the code quantises it: x1 first, then x3, x1/3, ..., x15, x1/15 of 7e-4
    lrs = code.space.values["learning_rate"]
    assert lrs[:3] == pytest.approx((7e-4, 2.1e-3, 7e-4 / 3)) and len(lrs) == 15
    assert (min(lrs), max(lrs)) == pytest.approx((7e-4 / 15, 1.05e-2))
    assert code.space.decode(code.space.default_action)["learning_rate"] == pytest.approx(7e-4)
    bw = gym.make("HyperRL-A2C-BipedalWalker", profile="code", obs_mode="random").unwrapped.settings
    assert np.array(bw.space.values["learning_rate"]) / 7e-4 == pytest.approx([1, 1.5, 1 / 1.5, 2, 0.5, 2.5, 0.4])


def test_under_a_profile_an_explicit_argument_always_wins():
    s = gym.make(MCC, profile="code", obs_mode="random", vf_coef=0.25, reward="episode_return",
                 hyperparams={"learning_rate": (1e-3, 2e-3)}).unwrapped.settings  # fmt: skip
    assert s.config.vf_coef == 0.25 and not isinstance(s.reward_fn, CriticReturn)
    assert s.space.values["learning_rate"] == (1e-3, 2e-3)
    assert s.normalize and s.lr_decay == "linear"  # what was not passed follows the profile
    # a learning rate passed without a grid: the code's grid is built around it
    s = gym.make(MCC, profile="code", obs_mode="random", learning_rate=1e-3).unwrapped.settings
    assert s.space.values["learning_rate"][:2] == pytest.approx((1e-3, 3e-3))
    # an env built without a preset
    s = hypergym.envs.HyperRLEnv(algo="A2C", task="CartPole", profile="code", **SMALL).settings
    assert s.rollouts_per_phase == 1 and s.config.gae_lambda == 0.95
    with pytest.raises(ValueError, match=r"unknown profile 'released'; choose from \['paper', 'code'\]"):
        gym.make(MCC, profile="released")


def test_make_agent_follows_the_envs_profile_unless_told_otherwise():
    from hypergym.agents import make_agent

    env = gym.make(MCC, profile="code", obs_mode="random")
    cfg = make_agent("episodic", env, seed=0).config()
    assert (cfg["memory"], cfg["k_read"], cfg["k"], cfg["key_dim"]) == ("vector", 5, 3, 5)
    assert (cfg["decay_fraction"], cfg["floor"], cfg["write_every"], cfg["capacity"]) == (0.5, 0.01, 1, 5000)
    assert cfg["released_reshape"] is True  # the released read; the transposed one is the named option below
    assert make_agent("episodic", env, seed=0, released_reshape=False).config()["released_reshape"] is False
    assert make_agent("episodic", env, seed=0, k_read=7).config()["k_read"] == 7  # kwargs override
    assert make_agent("episodic", env, seed=0, profile="paper").config()["memory"] == "per_action"
    assert make_agent("dqn", env, seed=0).config()["decay_fraction"] == 0.5
    paper_env = gym.make(MCC, obs_mode="random")
    assert make_agent("episodic", paper_env, seed=0).config()["memory"] == "per_action"
    assert make_agent("episodic", paper_env, seed=0, profile="code").config()["memory"] == "vector"
    cheetah = gym.make("HyperRL-PPO-HalfCheetah", profile="code", obs_mode="random")
    assert make_agent("episodic", cheetah, seed=0).config()["capacity"] == 10_000
    with pytest.raises(ValueError, match="unknown profile"):
        make_agent("random", env, profile="text")


def test_one_cli_flag_selects_both_sides_of_the_profile(tmp_path):
    import json

    from hypergym.cli import main

    out = tmp_path / "run"
    argv = ["run", MCC, "--agent", "episodic", "--profile", "code", "--out", str(out), "--set",
            "total_env_steps=200", "obs_mode='random'"]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["agent"]["memory"] == "vector" and config["env_kwargs"]["profile"] == "code"
    assert main([*argv[:-3], "--set", "profile='code'"]) == 2  # given twice


# ---------------------------------------------------------------- the paper's evaluation protocol
def test_evaluation_plays_the_deterministic_policy_on_separate_envs_as_a_hand_loop(tmp_path):
    import pandas as pd
    import torch

    from hypergym.seeding import derive_seeds

    env = gym.make("HyperRL-A2C-CartPole", **{**SMALL, "total_env_steps": 400, "normalize": True},
                   eval_every=200, eval_episodes=3)  # fmt: skip
    agent = hypergym.agents.make_agent("static", env, seed=0)
    result = hypergym.run(env, agent, seed=3, out=tmp_path, progress=False)
    # round_trip: the written floats read back exactly (pandas 2 parses with "high" precision by default)
    rows = pd.read_csv(tmp_path / "steps.csv", float_precision="round_trip").dropna(subset=["eval_return"])
    # every 200 env steps, and the final policy (the run ends with its update phase, at 405)
    assert rows["env_steps"].tolist() == [200, 400, 405]
    assert result.best_eval_return == rows["eval_return"].max()
    assert result.final_eval_return == rows["eval_return"].iloc[-1]
    # by hand: argmax actions, observations normalised with the training statistics, seeds apart
    learner = env.unwrapped.learner
    norm = learner.venv.normalizer
    base = derive_seeds(3, 4)[3]
    returns = []
    for k in range(3):
        inner = gym.make("CartPole-v1")
        obs, _ = inner.reset(seed=base + k)
        total, done = 0.0, False
        while not done:
            x = torch.as_tensor(norm.normalize_obs(obs[None, None].astype(np.float64)))
            action = int(learner.policy.forward(x)[0].argmax(-1)[0, 0])
            obs, r, terminated, truncated, _ = inner.step(action)
            total, done = total + r, terminated or truncated
        returns.append(total)
    assert result.final_eval_return == pytest.approx(np.mean(returns))
    from hypergym.plots import load_runs, summary_table

    assert "best eval" in summary_table(load_runs([tmp_path]))
    with pytest.raises(ValueError, match="eval_every must be a positive integer or None"):
        gym.make("HyperRL-A2C-CartPole", eval_every=0)


# ---------------------------------------------------------------- PBT on a grid listed default first
def test_pbt_moves_to_value_adjacent_grid_points_on_a_default_first_grid():
    from hypergym.agents.pbt import PBTAgent

    venv = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, profile="code", **SMALL)
    agent = PBTAgent(venv, resample_probability=0.0, seed=0)
    values = np.array(venv.unwrapped.space.values["learning_rate"])  # 7e-4 x [1, 2, 1/2, 3, 1/3]
    order = np.argsort(values)
    assert agent.ranks(np.array([[0]]))[0, 0] == 2 and (agent.from_ranks(np.arange(5)[:, None])[:, 0] == order).all()
    for start in range(5):
        agent.indices[1] = [start]
        moved = {int(agent.explore(np.array([0]), np.array([1]), np.zeros(2))[0, 0]) for _ in range(40)}
        rank = int(np.argsort(order)[start])
        expected = {int(order[max(rank - 1, 0)]), int(order[min(rank + 1, 4)])}
        assert moved == expected  # the next smaller or larger value, never a jump by index


# ---------------------------------------------------------------- one command per study
def test_bootstrap_difference_separates_shifted_samples_and_not_equal_ones():
    from hypergym.reproduce import bootstrap_difference

    a, b = [10.0, 11.0, 12.0, 13.0], [0.0, 1.0, 2.0, 3.0]
    diff, low, high = bootstrap_difference(a, b)
    assert diff == 10.0 and 8.0 <= low < diff < high <= 12.0  # seeds resampled: each mean spans 1.5 to 3
    diff, low, high = bootstrap_difference(a, [*a[::-1]])
    assert diff == 0.0 and low < 0.0 < high
    assert bootstrap_difference(a, b) == bootstrap_difference(a, b)  # seeded


def test_reproduce_runs_every_arm_and_writes_the_section_csv_and_figure(tmp_path, monkeypatch):
    import csv

    from hypergym import reproduce as rep

    tiny = rep.Study(
        name="tiny", title="tiny study", env_id="HyperRL-A2C-CartPole", seeds=2,
        arms=(rep.Arm("static (code)", "static", "code"), rep.Arm("static-max (code)", "static-max", "code"),
              rep.Arm("static (paper)", "static", "paper"),
              rep.Arm("lr x2 (code)", "static", "code", agent_kwargs={"action": 1}),
              rep.Arm("random (code)", "random", "code")),
        baseline="static ({profile})", claim="nothing", rivals=("static (code)", "static-max (code)", "static (paper)"),
        env_kwargs={**SMALL, "total_env_steps": 60, "eval_every": 30, "eval_episodes": 2},
    )  # fmt: skip
    monkeypatch.setitem(rep.STUDIES, "tiny", tiny)
    path = rep.reproduce("tiny", tmp_path, workers=1, command="hypergym reproduce tiny")
    text = path.read_text()
    assert "Command: `hypergym reproduce tiny`" in text and "| static-max (code) | 2 |" in text
    assert "| static (code) | 2 |" in text and "baseline" in text
    # each arm against the baseline of its own profile, named as such (not the template `static ({profile})`)
    assert "baseline `static (code)` or `static (paper)`, the one of each arm's profile," in text
    assert "{profile}" not in text
    assert text.count("| baseline |") == 2
    # a scheduling arm against every rival of its own profile (2 of the 3 are `code`), one Holm family
    assert "Metrics: best evaluation (best mean of the deterministic evaluations), the paper's metric" in text
    rivals = text.split("Best evaluation: random (code) against every rival")[1].split("Training return:")[0]
    assert "Holm-adjusted over these 2:" in rivals
    assert re.search(r"\| random \(code\) \| static \(code\) \| [-+]", rivals)
    assert re.search(r"\| random \(code\) \| static-max \(code\) \| [-+]", rivals)
    assert "| lr x2 (code) |" not in rivals  # a fixed schedule is not a scheduler making the claim
    schedules = text.split("What the scheduling")[1]  # 2 runs x 6 hyper-steps of the second half per arm
    assert re.search(r"\| random \(code\) \| 12 \| \d+\.\d% \(20\.0%\) \| learning_rate ", schedules)
    assert re.search(r"\| static \(code\) \| 12 \| 100\.0% \(20\.0%\) \| learning_rate 0\.0007 ", schedules)
    assert "static-max (code)" not in schedules  # of the static arms only the baselines
    # the same families on the second metric, the training return (Fig. 2's), after the paper's metric
    assert "Training return: each arm against the baseline; p Holm-adjusted over these 3:" in text
    assert "Training return: random (code) against every rival; p Holm-adjusted over these 2:" in text
    rows = list(csv.DictReader((tmp_path / "tiny.csv").open()))
    assert sorted({r["arm"] for r in rows}) == [
        "lr x2 (code)", "random (code)", "static (code)", "static (paper)", "static-max (code)"
    ]  # fmt: skip
    assert all(r["best_eval_return"] not in ("", "nan") for r in rows) and len(rows) == 10
    assert all(float(r["train_return_100"]) == float(r["final_return"]) for r in rows)  # under 10 episodes each
    population = json.loads(
        (tmp_path / "HyperRL-A2C-CartPole" / "lr-x2-code" / "static" / "seed1" / "config.json").read_text()
    )
    assert population["population"] == 2 and population["agent"]["seed"] == 1  # member 1's own agent
    assert (tmp_path / "tiny.png").stat().st_size > 0
    # the jobs a driver of its own may run in its own order are the ones reproduce ran: all finished
    jobs = rep.study_specs("tiny", tmp_path)
    assert sorted(len(j.run_dirs()) for j in jobs) == [2] * 5  # every arm's 2 seeds are one population
    assert all((d / "summary.json").is_file() for j in jobs for d in j.run_dirs())
    paper = json.loads((tmp_path / "HyperRL-A2C-CartPole" / "paper" / "static" / "seed0" / "config.json").read_text())
    assert paper["env_kwargs"]["profile"] == "paper"
    # a finished run is reused only with its own settings: another id in the same folder is refused
    from hypergym.jobs import CLIError, RunSpec, execute

    spec = RunSpec("HyperRL-PPO-CartPole", "static", 0, str(tmp_path / "HyperRL-A2C-CartPole" / "paper" / "static" /
                   "seed0"), {"profile": "paper"})  # fmt: skip
    with pytest.raises(CLIError, match=r"holds a finished run with other settings \(env_id='HyperRL-A2C-CartPole'"):
        execute(spec)


def test_a_finished_run_is_not_reused_where_its_profile_resolved_to_other_settings(tmp_path):
    """A profile that changed meaning (the code profile's memory read, its credit) makes an older run another run."""
    import json

    from hypergym.jobs import CLIError, RunSpec, execute

    overrides = {"profile": "code", "obs_mode": "random", "total_env_steps": 200, "n_envs": 2}
    spec = RunSpec("HyperRL-A2C-CartPole", "episodic", 0, str(tmp_path / "run"), overrides)
    first = execute(spec)
    assert execute(spec)[0]["reused"] and not first[0].get("reused")  # the same settings: reused
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    assert config["agent"]["released_reshape"] is True and config["settings"]["credit"] == "'before'"
    for key, older, says in (("agent", "released_reshape", "agent released_reshape=False"),
                             ("settings", "credit", "credit='after'")):  # fmt: skip
        changed = json.loads(json.dumps(config))
        changed[key][older] = False if key == "agent" else "'after'"
        path.write_text(json.dumps(changed))
        with pytest.raises(CLIError, match=re.escape(says)):
            execute(spec)


def test_static_min_and_max_take_the_smallest_and_largest_values_of_a_default_first_grid():
    from hypergym.agents import make_agent
    from hypergym.agents import make_agent as make_population_agent

    env = gym.make(MCC, profile="code", obs_mode="random")
    space = env.unwrapped.space
    for name, value in (("static-min", 7e-4 / 15), ("static-max", 7e-4 * 15), ("static", 7e-4)):
        assert space.decode(make_agent(name, env, seed=0).act(None, {}))["learning_rate"] == pytest.approx(value)
    venv = gym.make_vec(MCC, num_envs=2, profile="code", obs_mode="random")
    actions = make_population_agent("static-min", venv, seed=0).act(*venv.reset(seed=0))
    assert [space.decode(int(a))["learning_rate"] for a in actions] == pytest.approx([7e-4 / 15] * 2)
    with pytest.raises(ValueError, match=r"unknown static point 'median'; choose from \['default', 'min', 'max'\]"):
        make_agent("static", env, action="median")


def test_a_population_follows_its_profile_too():
    from hypergym.agents import make_agent as make_population_agent

    venv = gym.make_vec(MCC, num_envs=2, profile="code", obs_mode="random")
    agent = make_population_agent("episodic", venv, seed=0)
    cfg = agent.members[0].config()
    assert (cfg["memory"], cfg["decay_fraction"], cfg["write_every"], cfg["capacity"]) == ("vector", 0.5, 1, 5000)
    assert make_population_agent("episodic", venv, seed=0, profile="paper").members[0].config()["memory"] == (
        "per_action"
    )
    with pytest.raises(ValueError, match="unknown profile"):
        make_population_agent("random", venv, profile="released")


@pytest.mark.parametrize("name", sorted(__import__("hypergym.reproduce", fromlist=["STUDIES"]).STUDIES))
def test_every_registered_study_builds_every_arm(name, tmp_path):
    """A study that cannot start would only fail hours into a reproduction: build each arm's env and agent now."""
    from hypergym.reproduce import STUDIES
    from hypergym.study import plan

    study = STUDIES[name]
    assert study.baseline.format(profile="code") in {a.label for a in study.arms}
    for arm in study.arms:
        fast = {} if "encoder_kwargs" in arm.env_kwargs else {"obs_mode": "random"}  # the VAE's is slow to build
        env_kwargs = {**study.env_kwargs, **fast, **arm.env_kwargs, "profile": arm.profile}
        # the jobs reproduce would run (populations, or seed by seed where plan says so), each agent built
        plan(study.env_id, [arm.agent], 2, tmp_path, env_kwargs, arm.agent_kwargs, single_runs=arm.single_runs)


def test_the_hyper_state_encoder_leaves_the_learner_alone_so_blind_arms_may_use_the_cheap_one():
    """Studies run static, PBT, PB2 and random arms (which never read the hyper-state) with obs_mode="random"."""
    import gymnasium as gym

    from hypergym.reproduce import STUDIES

    finals = {}
    for mode in ("vae", "random"):
        small = {"policy_kwargs": {"net_arch": [8]}, "encoder_kwargs": {"hidden": 16} if mode == "vae" else {}}
        venv = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, obs_mode=mode, total_env_steps=2000, **small)
        venv.reset(seed=3)
        actions, gs, trained = np.array([venv.space.default_action, 0]), [], False
        while True:
            _, _, _, _, info = venv.step(actions)
            gs += [info["G"].tolist()] if "G" in info else []
            trained |= "encoder_loss" in info
            if info["run_finished"].all():
                break
        assert trained == (mode == "vae")  # the VAE trained (and drew from its stream) during the run
        finals[mode] = (gs, venv.learner.flat.clone())
        venv.close()
    assert finals["vae"][0] == finals["random"][0] and len(finals["vae"][0]) >= 10
    assert (finals["vae"][1] == finals["random"][1]).all()
    blind = [a for s in STUDIES.values() for a in s.arms if a.env_kwargs.get("obs_mode") == "random"]
    blind = [a for a in blind if a.agent != "episodic"]  # the hyperstate study's EPGT reads its random projection
    assert len(blind) == 3 + 3 + 9 + 1 + 4 + 3 + 2 + 3 * 3
    assert {a.agent for a in blind} == {"static", "pbt", "pb2", "random"}


def test_credit_before_gives_each_phase_the_return_of_the_rollout_it_trained_on():
    """The released A2C credits an update with the rollout collected BEFORE it; the paper, the one after. The
    learning is the same either way, so phase k's G under "before" is phase k-1's G under "after"."""
    gs = {}
    for credit in ("after", "before"):
        env = gym.make("HyperRL-A2C-CartPole", obs_mode="random", updates_per_phase=1, credit=credit,
                       reward="critic_return", total_env_steps=400)  # fmt: skip
        env.reset(seed=3)
        first = env.unwrapped.runs.last_stats  # the rollout collected at reset: the first update trains on it
        gs[credit] = []
        for _ in range(6):
            *_, info = env.step(0)
            gs[credit].append(float(info["G"]))
            env.reset()
        if credit == "before":
            assert gs[credit][0] == env.unwrapped.settings.reward_fn(first[0])
    assert gs["before"][1:] == gs["after"][:-1] and gs["before"] != gs["after"]
    a2c = gym.make("HyperRL-A2C-CartPole", profile="code", obs_mode="random").unwrapped.settings
    ppo = gym.make("HyperRL-PPO-CartPole", profile="code", obs_mode="random").unwrapped.settings
    assert (a2c.credit, ppo.credit) == ("before", "after")  # the code profile, for A2C and ACKTR


def test_the_paper_profile_rewards_eq_1_except_on_the_teaching_presets():
    """Eq. 1: G is the rollout's discounted T-step return (``rollout_return``) on every id of the paper's tasks.

    The teaching presets (not in the paper) reward the mean return of the episodes completed in the phase:
    on CartPole every step rewards 1, so Eq. 1 is the same number after every phase (checked).
    """
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.presets import PRESET_SOURCES
    from hypergym.rewards import EpisodeReturn, RolloutReturn

    for env_id in ("HyperRL-A2C-MountainCarContinuous", "HyperRL-A2C-BipedalWalker", "HyperRL-PPO-HalfCheetah",
                   "HyperRL-A2C-CartPole", "HyperRL-PPO-Pendulum", "HyperRL-ACKTR-CartPole"):  # fmt: skip
        reward = HyperRLSettings.from_kwargs(preset=env_id).reward_fn
        teaching = PRESET_SOURCES[env_id].startswith("teaching preset")
        assert isinstance(reward, EpisodeReturn if teaching else RolloutReturn), env_id
    env = gym.make("HyperRL-A2C-CartPole", reward="rollout_return", obs_mode="random", total_env_steps=2000)
    env.reset(seed=0)
    gs = []
    while len(gs) < 5:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        gs += [info["G"]] if "G" in info else []
        if terminated or truncated:
            env.reset()
    assert gs == pytest.approx([sum(0.99**k for k in range(5))] * 5)  # T = 5: a constant
