from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_NET
from gymnasium import spaces

import hypergym
from hypergym.agents import DQNAgent, EpisodicAgent, RandomAgent, StaticAgent, Transition, make_agent


class ClusterBandit(gym.Env):
    """Each learning episode sits in one of 3 state clusters; the best of 4 actions depends on the cluster.

    Episodes last 4 steps; the reward is 0 until the last step, which pays the fraction of the episode's
    actions that were the cluster's best, plus noise (a sparse, noisy hyper-reward like Hyper-RL's).
    """

    BEST = (2, 0, 3)

    def __init__(self):
        self.observation_space = spaces.Box(-10, 10, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self.centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 3]], dtype=np.float32)

    def _obs(self):
        return (self.centers[self.cluster] + self.np_random.normal(scale=0.2, size=4)).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cluster = int(self.np_random.integers(3))
        self.t, self.correct = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.correct += int(action) == self.BEST[self.cluster]
        done = self.t == 4
        reward = self.correct / 4 + float(self.np_random.normal(scale=0.05)) if done else 0.0
        return self._obs(), reward, done, False, {"cluster": self.cluster}


def run_bandit(seed, episodes=400):
    env = ClusterBandit()
    agent = EpisodicAgent(env, total_steps=episodes * 4, write_every=1, seed=seed)
    obs, info = env.reset(seed=seed)
    final_choices = []
    for episode in range(episodes):
        while True:
            action = agent.act(obs, info)
            next_obs, r, term, trunc, info = env.step(action)
            agent.observe(Transition(obs, action, r, next_obs, term, trunc, info))
            if episode >= episodes - 50:
                final_choices.append(action == env.BEST[info["cluster"]])
            obs = next_obs
            if term:
                obs, info = env.reset()
                break
    return np.mean(final_choices)


def test_episodic_agent_learns_the_best_action_of_each_cluster():
    first, second = run_bandit(0), run_bandit(0)
    assert first == second  # seeded and deterministic
    assert first > 0.8
    assert run_bandit(1) > 0.8


def test_epsilon_is_one_at_the_start_and_zero_at_the_end():
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=1000, device="cpu", policy_kwargs=TINY_NET)
    agent = EpisodicAgent(env, seed=0)
    assert agent.epsilon({"env_steps": 0}) == 1.0
    assert agent.epsilon({"env_steps": 500}) == pytest.approx(0.5)
    assert agent.epsilon({"env_steps": 1000}) == 0.0
    assert agent.epsilon({"env_steps": 1200}) == 0.0
    dqn = DQNAgent(env, seed=0)
    assert dqn.epsilon({"env_steps": 0}) == 1.0 and dqn.epsilon({"env_steps": 1000}) == 0.0


def test_untried_actions_are_tried_first_when_greedy():
    env = ClusterBandit()
    agent = EpisodicAgent(env, total_steps=1, write_every=1, seed=0)
    agent.steps = 1  # epsilon 0
    obs, _ = env.reset(seed=0)
    agent.memory.update(obs[None], [1], [1.0])
    assert agent.act(obs, {}) in (0, 2, 3)


def test_paper_memory_capacity_rule():
    env = gym.make("HyperRL-A2C-MountainCarContinuous")
    # 20k env steps / 5 per update = 4,000 updates; writes every 10 -> 400; half -> 200
    assert hypergym.agents.paper_capacity(env) == 200
    assert EpisodicAgent(env).capacity == 200


def test_static_agent_default_min_max():
    env = gym.make("HyperRL-PPO-CartPole", device="cpu")
    space = env.unwrapped.space
    assert StaticAgent(env).act(None, {}) == space.default_action
    assert StaticAgent(env, "min").act(None, {}) == 0
    assert StaticAgent(env, "max").act(None, {}) == space.n_actions - 1
    with pytest.raises(ValueError, match="choose from"):
        StaticAgent(env, "median")
    with pytest.raises(ValueError, match="outside"):
        StaticAgent(env, space.n_actions)


def test_random_agent_is_seeded():
    space = spaces.Discrete(7)
    a = [RandomAgent(space, seed=3).act(None, {}) for _ in range(1)]
    b = [RandomAgent(space, seed=3).act(None, {}) for _ in range(1)]
    assert a == b
    agent = RandomAgent(space, seed=0)
    draws = {agent.act(None, {}) for _ in range(200)}
    assert draws == set(range(7))


@pytest.mark.parametrize("name", ["episodic", "dqn", "gem", "random", "static", "static-min"])
def test_every_agent_completes_a_run_through_the_runner(name, tmp_path):
    pd = pytest.importorskip("pandas")
    env = gym.make(
        "HyperRL-A2C-CartPole", total_env_steps=600, updates_per_phase=5, device="cpu", policy_kwargs=TINY_NET
    )
    agent = make_agent(name, env, seed=0)
    result = hypergym.run(env, agent, seed=0, out=tmp_path / name, progress=False)
    assert result.env_steps >= 600 and result.hyper_steps > 0
    steps = pd.read_csv(tmp_path / name / "steps.csv")
    assert len(steps) == result.hyper_steps
    assert {"env_steps", "reward", "G", "hp_learning_rate", "diverged", "inner_return", "loss_policy_loss"} <= set(
        steps.columns
    )
    assert steps["G"].notna().sum() == result.learning_episodes
    assert (steps["reward"][steps["G"].notna()] == steps["G"][steps["G"].notna()]).all()
    assert set(steps["hp_learning_rate"]) <= set(env.unwrapped.space.values["learning_rate"])
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["env_id"] == "HyperRL-A2C-CartPole" and config["agent"]["name"] == agent.name
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["hyper_steps"] == result.hyper_steps


def test_runner_is_deterministic():
    def trace():
        env = gym.make("HyperRL-A2C-CartPole", total_env_steps=400, device="cpu", policy_kwargs=TINY_NET)
        return hypergym.run(env, EpisodicAgent(env, seed=1), seed=2, progress=False)

    a, b = trace(), trace()
    assert (a.final_return, a.mean_G, a.hyper_steps) == (b.final_return, b.mean_G, b.hyper_steps)


def test_agent_save_and_load(tmp_path):
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=400, device="cpu", policy_kwargs=TINY_NET)
    agent = EpisodicAgent(env, seed=0, write_every=1)
    hypergym.run(env, agent, seed=0, progress=False)
    agent.save(tmp_path / "agent")
    other = EpisodicAgent(env, seed=0, write_every=1)
    other.load(tmp_path / "agent")
    obs = env.observation_space.sample()
    np.testing.assert_array_equal(agent.memory.read_all(obs), other.memory.read_all(obs))
    assert other.steps == agent.steps and len(other.memory) > 0

    dqn = DQNAgent(env, seed=0)
    dqn.save(tmp_path / "dqn")
    fresh = DQNAgent(env, seed=1)
    fresh.load(tmp_path / "dqn")
    x = np.zeros((1, *env.observation_space.shape), dtype=np.float32)
    import torch

    with torch.no_grad():
        assert torch.equal(dqn.model.q_net(torch.as_tensor(x)), fresh.model.q_net(torch.as_tensor(x)))


def test_plain_sb3_dqn_learns_on_a_registered_id():
    from stable_baselines3 import DQN

    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=10_000, device="cpu", policy_kwargs=TINY_NET)
    model = DQN("MlpPolicy", env, learning_starts=10, batch_size=8, train_freq=1, seed=0, device="cpu")
    model.learn(total_timesteps=40)
    assert model.num_timesteps == 40 and model._n_updates > 0


def test_make_agent_names_the_valid_choices():
    env = gym.make("HyperRL-A2C-CartPole", device="cpu", policy_kwargs=TINY_NET)
    with pytest.raises(ValueError, match="choose from"):
        make_agent("ppo", env)
    md = gym.make("HyperRL-A2C-CartPole", action_mode="multi_discrete", device="cpu", policy_kwargs=TINY_NET)
    with pytest.raises(TypeError, match="Discrete"):
        EpisodicAgent(md)


def test_hypergym_run_drives_an_agent_with_only_act_and_observe(tmp_path):
    class Greedy:  # the whole protocol a user's agent needs
        def __init__(self):
            self.seen = 0

        def act(self, obs, info):
            return 0

        def observe(self, transition):
            self.seen += 1

    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=400, obs_mode="random", policy_kwargs={"net_arch": [8]})
    agent = Greedy()
    result = hypergym.run(env, agent, seed=0, out=tmp_path / "run", progress=False)
    assert agent.seen == result.hyper_steps > 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["agent"] == {"name": "Greedy"}

    class ActsOnly:
        def act(self, obs, info):
            return 0

    with pytest.raises(TypeError, match=r"ActsOnly is not a hyper-agent: lacks observe\(transition\)"):
        hypergym.run(env, ActsOnly(), seed=0)

    class ActsWithoutInfo(Greedy):
        def act(self, obs):
            return 0

    with pytest.raises(TypeError, match=r"act must be act\(obs, info\).*HyperAgentProtocol"):
        hypergym.run(env, ActsWithoutInfo(), seed=0)
    from hypergym.agents import HyperAgentProtocol

    assert isinstance(Greedy(), HyperAgentProtocol) and not isinstance(ActsOnly(), HyperAgentProtocol)
    venv = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, obs_mode="random", policy_kwargs={"net_arch": [8]})
    with pytest.raises(TypeError, match=r"not a population hyper-agent: observe must be observe\(obs, actions"):
        hypergym.run(venv, Greedy(), seed=0)  # a single-run agent's observe on a population


def test_agents_on_the_wrong_kind_of_env_fail_at_construction_with_what_fits():
    from hypergym.agents import AGENTS, HOOFAgent, StaticAgent
    from hypergym.agents.pbt import PBTAgent
    from hypergym.agents.population import PerMemberAgent

    small = {"obs_mode": "random", "n_steps": 5, "policy_kwargs": TINY_NET}
    env = gym.make("HyperRL-A2C-Pendulum", **small)
    venv = gym.make_vec("HyperRL-A2C-Pendulum", num_envs=2, **small)
    # One factory: every agent that can run on a population is built for one, its members seeded seed + i.
    for name, found in AGENTS.items():
        if found.no_population:
            continue
        agent = make_agent(name, venv, seed=3)
        assert callable(agent.act) and agent.num_envs == 2
        if isinstance(agent, PerMemberAgent):
            assert [a.seed for a in agent.members] == [3, 4]
    # A single-run agent's class on a population.
    for cls in (HOOFAgent, StaticAgent):
        with pytest.raises(ValueError, match=r"single-run agent, but got a population .* of 2 members"):
            cls(venv)
    # HOOF as a member of a population (PerMemberAgent's view), before any run starts.
    with pytest.raises(ValueError, match=r"HOOF .* no population form"):
        PerMemberAgent(venv, [HOOFAgent(PerMemberAgent.member_view(venv)) for _ in range(2)])
    with pytest.raises(ValueError, match=r"'hoof' .* no population form"):
        make_agent("hoof", venv)
    # A population agent on a single env, by name and by class.
    with pytest.raises(ValueError, match=r"'pbt' is a population method .* make_agent\('pbt'"):
        make_agent("pbt", env)
    with pytest.raises(ValueError, match="PBTAgent is a population agent, but got a single env"):
        PBTAgent(env)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 2.5}, "k must be a positive integer, got 2.5"),
        ({"capacity": 0}, "capacity must be a positive integer or None, got 0"),
        ({"beta": 0}, r"beta \(the write rate\) must lie in \(0, 1\], got 0"),
        ({"memory": "vector", "k_read": 0}, "k_read must be a positive integer or None, got 0"),
    ],
)
def test_epgt_settings_are_checked_when_the_agent_is_made(kwargs, match, capsys):
    """Before, k=2.5 crashed a run 3,000 steps in and capacity=0 became the paper's rule silently."""
    from hypergym.cli import main

    env = gym.make("HyperRL-A2C-CartPole", obs_mode="random")
    with pytest.raises(ValueError, match=match):
        make_agent("episodic", env, **kwargs)
    key, value = next(iter(kwargs.items()))
    if key != "memory":  # the command line refuses it before any run, with one line and status 2
        assert main(["run", "HyperRL-A2C-CartPole", "--agent", "episodic", "--agent-set", f"{key}={value}"]) == 2
        assert match.split(" must")[0].replace("\\", "") in capsys.readouterr().err
