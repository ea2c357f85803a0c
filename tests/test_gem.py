"""GEM's targets and loss by hand, the hypernetwork Q's shapes, gain and generalisation, and both as hyper-agents."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import hypergym
from hypergym.agents import make_agent
from hypergym.agents.base import Transition
from hypergym.agents.gem import GEMCore, asymmetric_loss
from hypergym.agents.gem_memory import EpisodeMemory, tbp_targets
from hypergym.agents.qnets import QLayout, grid_coordinates
from hypergym.learners.optim import BatchedAdam
from hypergym.spaces import Hyperparameter, HyperparamSpace

TINY_NET = {"net_arch": [16]}


def _matrix_targets(rewards, dones, q1, q2, gamma):
    """The official code's O(T^2) way: every candidate V^(k)_{t,h}, a dummy last row, argmax, swap, lower bound."""
    n = len(rewards)
    r = np.append(rewards, 0.0)  # the dummy terminal row: reward 0, nothing after it
    boot = [np.append((1 - dones) * q, 0.0) for q in (q1, q2)]
    out = []
    for k in (0, 1):
        other = 1 - k
        targets = np.empty(n)
        for t in range(n):
            cands = []  # V_{t,h} for h = 1 .. n - t + 1 (the last one runs through the dummy row)
            for h in range(1, n - t + 2):
                ret = [sum(gamma**j * r[t + j] for j in range(h)) + gamma**h * boot[e][t + h - 1] if t + h - 1 < n
                       else sum(gamma**j * r[t + j] for j in range(h)) for e in (0, 1)]  # fmt: skip
                cands.append(ret)
            own = [c[k] for c in cands]
            best = int(np.argmax(own))  # first maximum: the shortest h on ties
            targets[t] = max(cands[best][other], own[0])
        out.append(targets)
    return out[0], out[1]


def test_tbp_targets_by_hand():
    """Three steps, gamma 0.5: estimator 1 picks each length, estimator 2 evaluates it, then the one-step bound."""
    r, d = np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, 1.0])
    q1, q2 = np.array([4.0, 0.0, 9.0]), np.array([2.0, 6.0, 9.0])  # Q(s_1), Q(s_2), Q(s_3) (s_3 terminal: unused)
    r1, r2 = tbp_targets(r, d, q1, q2, 0.5)
    # t = 2 (the end): every candidate is r_2 = 2.
    # t = 1: V1 = (h1 0 + .5 * 0, h2 0 + .5 * 2, h3 1) = (0, 1, 1): estimator 1 picks h2, which V2 values
    #        0 + .5 * 2 = 1; the bound V1_{1,1} = 0: R1 = 1. V2 = (3, 1, 1) picks h1, V1 there 0, bound 3: R2 = 3.
    # t = 0: V1 = (1 + .5 * 4, 1 + .5 * 0, 1.5, 1.5) = (3, 1, 1.5, 1.5) picks h1, V2 there 1 + .5 * 2 = 2, bound 3:
    #        R1 = 3. V2 = (2, 1 + .5 * 3, 1.5, 1.5) picks h2, V1 there 1 + .5 * 0 = 1, bound 2: R2 = 2.
    np.testing.assert_allclose(r1, [3.0, 1.0, 2.0])
    np.testing.assert_allclose(r2, [2.0, 3.0, 2.0])
    # a tie goes to the shortest h: V1 = (2, 2, 2) at t = 0, so estimator 1 takes h1, which V2 values 0 + 10
    r1, _ = tbp_targets(np.array([0.0, 2.0]), np.array([0.0, 1.0]), np.array([2.0, 4.0]), np.array([10.0, 0.0]), 1.0)
    assert r1[0] == 10.0  # h1 (0 + Q2(s_1) = 10), not h2 (0 + 2 = 2)


@pytest.mark.parametrize("ending", ["terminated", "truncated"])
def test_the_linear_recursion_equals_the_codes_matrix_of_candidates(ending):
    rng = np.random.default_rng(0)
    trajectories = []
    for _ in range(200):
        n = int(rng.integers(1, 9))
        rewards = rng.integers(-2, 3, n).astype(float)  # small integers: many ties
        q1, q2 = rng.integers(-3, 4, n).astype(float), rng.integers(-3, 4, n).astype(float)
        dones = np.zeros(n)
        dones[-1] = ending == "terminated"
        gamma = float(rng.choice([0.5, 0.9, 1.0]))
        fast, slow = tbp_targets(rewards, dones, q1, q2, gamma), _matrix_targets(rewards, dones, q1, q2, gamma)
        np.testing.assert_allclose(fast[0], slow[0], atol=1e-12)
        np.testing.assert_allclose(fast[1], slow[1], atol=1e-12)
        trajectories.append((rewards, dones, q1, q2, slow))
    # all of them at once (as a refresh of the memory computes them): each trajectory's own targets
    joined = [np.concatenate([t[i] for t in trajectories]) for i in range(4)]
    lengths = [len(t[0]) for t in trajectories]
    together = tbp_targets(*joined, 0.9, lengths)
    np.testing.assert_allclose(together[0], np.concatenate([_matrix_targets(*t[:4], 0.9)[0] for t in trajectories]))


def test_one_refresh_carries_a_sparse_return_back_over_the_learning_episode():
    memory = EpisodeMemory(obs_dim=2, capacity=100, gamma=0.9)
    u, g = 5, 10.0
    rewards, dones = np.r_[np.zeros(u - 1), g], np.r_[np.zeros(u - 1), 1.0]
    obs = np.zeros((u, 2), dtype=np.float32)
    memory.add(obs, np.zeros(u, dtype=np.int64), rewards, dones, obs, lambda s: (np.full(len(s), 0.1),) * 2)
    np.testing.assert_allclose(memory.targets[:, 0], g * 0.9 ** np.arange(u - 1, -1, -1))
    # a capacity of 7 keeps the newest whole episodes
    for _ in range(2):
        memory.add(obs, np.ones(u, dtype=np.int64), rewards, dones, obs, lambda s: (np.zeros(len(s)),) * 2)
    memory.capacity = 7
    memory.add(obs[:2], np.full(2, 2), rewards[:2], dones[:2], obs[:2], lambda s: (np.zeros(len(s)),) * 2)
    assert len(memory) == 7 and memory.lengths == [5, 2] and memory.actions.tolist() == [1] * 5 + [2, 2]


def test_the_asymmetric_loss_weighs_overestimates_by_one_over_alpha_and_underestimates_by_alpha():
    q = torch.tensor([3.0, 1.0], requires_grad=True)
    loss = asymmetric_loss(q, torch.tensor([2.0, 2.0]), alpha=0.5)
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().numpy(), [1 / 0.5, 0.5])  # d^2 / alpha above, alpha d^2 below
    np.testing.assert_allclose(q.grad.numpy(), [2 / 0.5, -2 * 0.5])  # the two slopes


def _lr_space(n=7):
    return HyperparamSpace([Hyperparameter("learning_rate", tuple(1e-3 * 2.0 ** np.arange(n) / 8))])


def test_grid_coordinates_follow_the_codec_and_span_minus_one_to_one():
    space = HyperparamSpace([Hyperparameter("learning_rate", (1e-4, 1e-3, 1e-2)), Hyperparameter("gamma", (0.9, 0.99)),
                             Hyperparameter("ent_coef", (0.0, 0.01))])  # fmt: skip
    x = grid_coordinates(space)
    assert x.shape == (12, 3) and x.min() == -1 and x.max() == 1
    for action in (0, 5, 11):
        idx = space.indices(action)
        np.testing.assert_allclose(x[action], [-1 + idx[0], 1 - 2 * idx[1], -1 + 2 * idx[2]], atol=1e-6)


def test_the_hypernetwork_q_scores_every_grid_point_with_generated_weights_biases_and_gains():
    x = grid_coordinates(_lr_space())
    layout = QLayout(5, 7, 2, "hyper", hidden=(16,), coordinates=x, dynamic_hidden=8)
    flat = layout.init([torch.Generator().manual_seed(s) for s in (0, 1, 2)])
    obs = torch.randn(3, 4, 5)
    q = layout.q(flat, obs)
    assert q.shape == (3, 2, 4, 7) and flat.shape == (3, layout.size)
    # the same Q by hand for member 1, net 0, state 2
    views = layout._views(flat)
    lin = {n: (w[1, 0], b[1, 0, 0]) for n, (w, b) in views.items()}
    z = obs[1, 2] @ lin["stage0"][0] + lin["stage0"][1]
    z = z + torch.relu(torch.relu(z) @ lin["stage0.block0a"][0] + lin["stage0.block0a"][1]) @ lin["stage0.block0b"][0]
    z = z + lin["stage0.block0b"][1]
    head = {n: z @ lin[f"head.{n}"][0] + lin[f"head.{n}"][1] for n in ("w1", "b1", "g1", "w2", "b2", "g2")}
    hidden = torch.relu(torch.as_tensor(x) @ head["w1"].reshape(8, 1).T * (1 + head["g1"]) + head["b1"])
    torch.testing.assert_close(q[1, 0, 2], (hidden @ head["w2"]) * (1 + head["g2"]) + head["b2"])
    # the gain: zero the output gain's head and give it bias 1 (gain 2): Q minus its bias doubles
    b2 = head["b2"]
    w, b = views["head.g2"]
    with torch.no_grad():
        w[1, 0].zero_()
        b[1, 0].fill_(1.0)
    doubled = layout.q(flat, obs)[1, 0, 2]
    with torch.no_grad():
        b[1, 0].fill_(0.0)
    torch.testing.assert_close(doubled - b2, 2 * (layout.q(flat, obs)[1, 0, 2] - b2))
    # the heads start with bias 0 (so every gain starts near 1)
    views = layout._views(layout.init([torch.Generator().manual_seed(0)]))
    assert all(torch.count_nonzero(views[f"head.{n}"][1]) == 0 for n in ("w1", "b1", "g1", "w2", "b2", "g2"))


def test_the_generated_weights_start_below_kaiming_uniform_as_in_the_official_code():
    """Reported, not tuned: with 1 to 4 coordinates a grid point, Kaiming spreads wide; the code's sigmas do not."""
    layout = QLayout(32, 7, 1, "hyper", coordinates=grid_coordinates(_lr_space()))
    scale = layout.dynamic_scale(layout.init([torch.Generator().manual_seed(0)]), torch.randn(1, 256, 32))
    for name in ("w1", "w2"):  # 2-10x narrower
        assert scale[f"{name}_kaiming_std"] / 10 < scale[f"{name}_std"] < scale[f"{name}_kaiming_std"] / 2, scale
    with pytest.raises(ValueError, match="hypernetwork"):
        QLayout(32, 7, 1, "mlp").dynamic_scale(torch.zeros(1, 10), torch.zeros(1, 1, 32))


def test_an_update_at_one_grid_point_moves_the_hypernetworks_neighbours_but_not_the_one_hot_heads():
    """Raise Q at grid point 3 of 7 learning rates: the hypernetwork's untried neighbours follow, an MLP's do not."""
    coords = grid_coordinates(_lr_space())
    moved = {}
    for kind in ("hyper", "mlp"):
        shifts = []
        for seed in range(3):
            layout = QLayout(8, 7, 1, kind, coordinates=coords)
            flat = layout.init([torch.Generator().manual_seed(seed)]).requires_grad_(True)
            grad = torch.zeros_like(flat)
            adam = BatchedAdam(flat.data, grad)
            states = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(100))
            before = layout.q(flat, states).detach()[0, 0]
            for _ in range(30):  # a TD-style regression of Q(s, 3) one unit up
                flat.grad = None
                ((layout.q(flat, states)[0, 0, :, 3] - (before[:, 3] + 1)) ** 2).mean().backward()
                grad.copy_(flat.grad)
                adam.step(torch.tensor([1e-3], dtype=torch.float64))
            shifts.append((layout.q(flat, states).detach()[0, 0] - before).mean(0).numpy())
        moved[kind] = np.array(shifts)
    for kind, shift in moved.items():
        assert (shift[:, 3] > 0.9).all(), kind  # the trained point moved in both
    assert (moved["hyper"][:, [2, 4]] > 0.5 * moved["hyper"][:, [3]]).all()  # neighbours follow
    assert (np.abs(moved["mlp"][:, [0, 1, 2, 4, 5, 6]].mean(axis=1)) < 0.25 * moved["mlp"][:, 3]).all()  # no pattern


def _grid_env(**kwargs):
    grid = {"batch_size": [16, 32, 64], "n_epochs": [1, 2], "learning_rate": [3e-4, 1e-3]}
    return {"total_env_steps": 1280, "n_steps": 64, "n_envs": 1, "policy_kwargs": TINY_NET, "hyperparams": grid,
            "obs_mode": "stats", **kwargs}  # fmt: skip


def test_gem_chooses_the_grid_point_its_episodes_rewarded():
    env = gym.make("HyperRL-PPO-CartPole", **_grid_env())
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    choices = []
    for good in (2, 9):
        rng = np.random.default_rng(0)
        core = GEMCore(env, [0], [rng], learning_starts=8, batch_size=16, target_update_interval=10)
        for step in range(300):  # one-step learning episodes: each grid point's return is its reward
            action = step % 12
            core.record(0, Transition(obs, action, 10.0 * (action == good), obs, True, False, {}))
            core.train(np.ones(1, dtype=bool))
        choices.append(int(core.greedy(obs[None])[0]))
    assert choices == [2, 9]
    copy = pickle.loads(pickle.dumps(core))  # as a checkpoint: the optimiser still steps the networks
    before = copy.flat.clone()
    copy.train(np.ones(1, dtype=bool))
    assert not torch.equal(copy.flat, before) and copy.optimizer.flat is copy.flat


@pytest.mark.parametrize("q_net", ["mlp", "hyper"])
def test_a_gem_population_is_the_gem_runs_of_its_seeds(q_net, tmp_path):
    """PPO with batch_size and n_epochs in the grid: members wait, yet each is its single run, bit for bit."""
    pd = pytest.importorskip("pandas")
    kwargs = _grid_env(total_env_steps=1024)
    agent_kwargs = {"q_net": q_net, "learning_starts": 8, "batch_size": 8, "target_update_interval": 5,
                    "q_net_kwargs": {"hidden": [32], "dynamic_hidden": 16}}  # fmt: skip
    venv = gym.make_vec("HyperRL-PPO-CartPole", num_envs=3, **kwargs)
    agent = make_agent("gem", venv, seed=10, **agent_kwargs)
    members = hypergym.run(venv, agent, seed=10, out=tmp_path / "pop", progress=False)
    assert agent.core.gradient_steps.min() >= 10  # every member's networks trained: the choices below are learned
    lengths = set()
    for i, seed in enumerate(range(10, 13)):
        env = gym.make("HyperRL-PPO-CartPole", **kwargs)
        single = hypergym.run(env, make_agent("gem", env, seed=seed, **agent_kwargs), seed=seed,
                              out=tmp_path / f"s{seed}", progress=False)  # fmt: skip
        a, b = (
            pd.read_csv(tmp_path / "pop" / f"seed{seed}" / "steps.csv"),
            pd.read_csv(tmp_path / f"s{seed}" / "steps.csv"),
        )
        assert b["hp_batch_size"].nunique() > 1 and b["agent_epsilon"].iloc[-1] < 1
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert members[i].final_return == single.final_return
        lengths.add(len(a))
    assert len(lengths) > 1  # the members took their own numbers of steps


def test_dqn_takes_the_hypernetwork_q_and_refuses_an_unknown_one(tmp_path):
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=600, updates_per_phase=5, policy_kwargs=TINY_NET)
    agent = make_agent("dqn", env, seed=0, q_net="hyper", q_net_kwargs={"hidden": [32]}, learning_starts=4,
                       batch_size=4)  # fmt: skip
    result = hypergym.run(env, agent, seed=0, out=tmp_path / "dqn", progress=False)
    assert result.hyper_steps > 0 and agent.gradient_steps > 0 and agent.config()["q_net"] == "hyper"
    before = agent.model.q_net(torch.zeros(1, *env.observation_space.shape)).detach()
    assert before.shape == (1, env.unwrapped.space.n_actions)
    with pytest.raises(ValueError, match="'mlp' or 'hyper'"):
        make_agent("dqn", env, q_net="resnet")
    with pytest.raises(ValueError, match="'mlp' or 'hyper'"):
        make_agent("gem", env, q_net="resnet")
    with pytest.raises(ValueError, match="HyperRL env"):
        make_agent("gem", gym.make("CartPole-v1"), q_net="hyper", total_steps=10)
