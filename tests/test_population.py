"""Populations: the batched learner against the single-run (SB3) learner, and HyperRLVectorEnv's contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_NET, fit_batch
from gymnasium.vector import AutoresetMode
from reference import A2CLearner, PPOLearner
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import hypergym
from hypergym.encoders import make_encoder
from hypergym.envs import HyperRLVectorEnv, make_task
from hypergym.envs.members import MemberVecEnv
from hypergym.learners import A2CConfig, PPOConfig
from hypergym.learners import A2CLearner as PopulationA2C
from hypergym.learners import PPOLearner as PopulationPPO
from hypergym.learners.gae import batched_gae
from hypergym.learners.optim import BatchedAdam, BatchedRMSprop
from hypergym.seeding import derive_seeds

SMALL_A2C = {"total_env_steps": 400, "n_envs": 2, "policy_kwargs": TINY_NET}
SMALL_PPO = {"total_env_steps": 256, "batch_size": 16, "n_epochs": 2, "policy_kwargs": TINY_NET,
             **fit_batch("HyperRL-PPO-Pendulum", 32)}  # fmt: skip


def _samples(batch: dict[str, torch.Tensor], member: int) -> RolloutBufferSamples:
    return RolloutBufferSamples(
        batch["observations"][member],
        batch["actions"][member].unsqueeze(-1) if batch["actions"].dim() == 2 else batch["actions"][member],
        torch.zeros_like(batch["returns"][member]),
        batch["old_log_prob"][member],
        batch["advantages"][member],
        batch["returns"][member],
    )


@pytest.mark.parametrize(
    ("algo", "task", "config"),
    [
        ("A2C", "CartPole", A2CConfig(n_steps=8, policy_kwargs=TINY_NET, normalize_advantage=True)),
        ("PPO", "Pendulum", PPOConfig(n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=TINY_NET)),
        ("PPO", "Pong", PPOConfig(n_steps=4, batch_size=8, n_epochs=1)),  # NatureCNN: grouped convolutions
        ("A2C", "Breakout", A2CConfig(n_steps=4, cnn="acktr")),
    ],
)
def test_member_loss_and_gradient_equal_the_single_run_learner(algo, task, config):
    """Same weights and batch -> the batched member's loss and gradient equal the SB3-policy learner's."""
    single_cls, pop_cls = {"A2C": (A2CLearner, PopulationA2C), "PPO": (PPOLearner, PopulationPPO)}[algo]
    seeds = [3, 4]
    pop = pop_cls(MemberVecEnv(task, [10, 20], n_envs=2), config, seeds, device="cpu")
    pop.collect_rollout()
    hp = {"ent_coef": np.array([0.01, 0.3]), "vf_coef": np.array([0.5, 2.0])}
    if algo == "PPO":
        hp["clip_range"] = np.array([0.05, 0.3])
        # Move the policy away from the rollout's so the ratio and the clipping matter.
        with torch.no_grad():
            pop.flat.add_(0.05 * torch.randn(pop.flat.shape, generator=torch.Generator().manual_seed(0)))
    pop.apply(hp)
    [(_, batch)] = pop._next_batches(np.ones(2, dtype=bool))
    loss, _ = pop.member_losses(batch)
    pop.policy.zero_grad()
    pop.policy.backward(loss.sum())
    for member, seed in enumerate(seeds):
        single = single_cls(make_task(task, n_envs=2, seed=0), config, seed, device="cpu")
        with torch.no_grad():  # member weights (the PPO member moved) into the SB3 policy
            modules = dict(single.policy.named_modules())
            for name in pop.policy.blocks:
                modules[name].weight.copy_(pop.policy.weight(name)[member])
                modules[name].bias.copy_(pop.policy.bias(name)[member])
            if not pop.policy.discrete:
                single.policy.log_std.copy_(pop.policy.log_std()[member])
        single.apply({name: float(v[member]) for name, v in hp.items()})
        single_loss, _ = single._loss(_samples(batch, member))
        single.optimizer.zero_grad()
        single_loss.backward()
        assert float(loss[member].detach()) == pytest.approx(float(single_loss.detach()), rel=1e-5, abs=1e-6)
        expected = pop.policy.row_of(single.policy, grad=True)
        # atol 1e-5: on an AMD EPYC 5 of NatureCNN's 1.7M gradient entries differ by up to 3.7e-6 (float32 sums
        # in another order)
        torch.testing.assert_close(pop.policy.flat_grad[member], expected, rtol=1e-4, atol=1e-5)


def test_initial_weights_are_the_single_run_learners():
    config = A2CConfig(n_steps=4, policy_kwargs=TINY_NET)
    pop = PopulationA2C(MemberVecEnv("CartPole", [0, 1]), config, [7, 8], device="cpu")
    for member, seed in enumerate([7, 8]):
        single = A2CLearner(make_task("CartPole", seed=0), config, seed, device="cpu")
        torch.testing.assert_close(pop.flat[member].detach(), pop.policy.row_of(single.policy), rtol=0, atol=0)


def test_a2c_update_equals_the_single_run_update_with_clipping_and_rmsprop():
    """A whole update step (per-member clipping, per-member lr, RMSprop) matches SB3's optimiser."""
    config = A2CConfig(n_steps=8, policy_kwargs=TINY_NET)
    seeds = [5, 6]
    pop = PopulationA2C(MemberVecEnv("CartPole", [1, 2]), config, seeds, device="cpu")
    hp = {"learning_rate": np.array([1e-3, 3e-2]), "max_grad_norm": np.array([0.05, 10.0])}
    for _ in range(3):
        pop.collect_rollout()
        batch = dict(pop.batch)
        before = pop.flat.clone()
        opt_state = pop.optimizer.state["square_avg"].clone()
        pop.apply(hp)
        pop.update_step()
    for member, seed in enumerate(seeds):
        single = A2CLearner(make_task("CartPole", seed=0), config, seed, device="cpu")
        row = before[member]
        with torch.no_grad():
            modules = dict(single.policy.named_modules())
            for name, lin in pop.policy.blocks.items():
                modules[name].weight.copy_(row[lin.weight].view_as(modules[name].weight))
                modules[name].bias.copy_(row[lin.bias])
        # Warm the RMSprop state to the population member's, then take the same step.
        single.apply({k: float(v[member]) for k, v in hp.items()})
        single.policy.optimizer.zero_grad()
        loss, _ = single._loss(_samples(batch, member))
        loss.backward()
        params = [p for p in single.policy.parameters()]
        for p in params:
            single.optimizer.state[p] = {"step": torch.tensor(2.0), "square_avg": torch.zeros_like(p)}
        sq = opt_state[member]
        for name, lin in pop.policy.blocks.items():
            single.optimizer.state[modules[name].weight]["square_avg"] = sq[lin.weight].view_as(modules[name].weight)
            single.optimizer.state[modules[name].bias]["square_avg"] = sq[lin.bias].clone()
        norm = torch.nn.utils.clip_grad_norm_(params, float(hp["max_grad_norm"][member]))
        single.optimizer.step()
        # RMSprop divides by the root of a one-step square average: float32 rounding of the gradient is amplified
        # there (one weight of 211 was 5.7e-7 apart on the rollout that each member's own streams sample).
        torch.testing.assert_close(pop.flat[member].detach(), pop.policy.row_of(single.policy), rtol=1e-5, atol=1e-6)
        assert norm > 0


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_batched_optimisers_equal_torch_per_member(optimizer):
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(3, 20, generator=gen)
    grad_buf = torch.zeros_like(flat)
    lrs = torch.tensor([1e-3, 1e-2, 0.3], dtype=torch.float64)
    batched = (
        BatchedAdam(flat, grad_buf, eps=1e-5)
        if optimizer == "adam"
        else BatchedRMSprop(flat, grad_buf, alpha=0.99, eps=1e-5)
    )
    copies = [flat[i].detach().clone().requires_grad_(True) for i in range(3)]
    refs = [
        torch.optim.Adam([c], lr=float(lr), eps=1e-5)
        if optimizer == "adam"
        else torch.optim.RMSprop([c], lr=float(lr), alpha=0.99, eps=1e-5)
        for c, lr in zip(copies, lrs, strict=True)
    ]
    for _ in range(5):
        grad = torch.randn(3, 20, generator=gen)
        grad_buf.copy_(grad)
        batched.step(lrs)
        for i, (c, ref) in enumerate(zip(copies, refs, strict=True)):
            c.grad = grad[i].clone()
            ref.step()
    for i, c in enumerate(copies):
        torch.testing.assert_close(flat[i].detach(), c.detach(), rtol=1e-5, atol=1e-7)


def test_gae_equals_sb3_per_member():
    rng = np.random.default_rng(0)
    t, m, e = 7, 3, 2
    rewards = rng.normal(size=(t, m, e)).astype(np.float32)
    values = rng.normal(size=(t, m, e)).astype(np.float32)
    starts = rng.random((t, m, e)) < 0.3
    last_values = rng.normal(size=(m, e)).astype(np.float32)
    dones = rng.random((m, e)) < 0.5
    gamma, lam = np.array([0.9, 0.99, 0.5]), np.array([0.8, 1.0, 0.95])
    adv, ret = batched_gae(rewards, values, starts, last_values, dones, gamma, lam)
    space = gym.spaces.Box(-1, 1, (1,))
    for i in range(m):
        buf = RolloutBuffer(t, space, gym.spaces.Discrete(2), gamma=gamma[i], gae_lambda=lam[i], n_envs=e)
        for k in range(t):
            buf.add(
                np.zeros((e, 1)), np.zeros((e, 1)), rewards[k, i], starts[k, i], torch.tensor(values[k, i]),
                torch.zeros(e),
            )  # fmt: skip
        buf.compute_returns_and_advantage(torch.tensor(last_values[i]), dones[i])
        np.testing.assert_allclose(adv[:, i], buf.advantages, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[:, i], buf.returns, rtol=1e-5, atol=1e-6)


def test_member_envs_equal_sb3_vecnormalize_per_member():
    """Per-member statistics: each member normalises exactly as its own SB3 VecNormalize would."""
    seeds = [11, 42]
    members = MemberVecEnv("Pendulum", seeds, n_envs=2, normalize=True, gamma=0.9)
    refs = [VecNormalize(make_task("Pendulum", n_envs=2, seed=s), gamma=0.9) for s in seeds]
    assert isinstance(refs[0].venv, DummyVecEnv)
    obs = members.reset()
    for i, ref in enumerate(refs):
        np.testing.assert_allclose(obs[i], ref.reset(), rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(250):  # past Pendulum's 200-step limit: truncation and same-step reset included
        actions = rng.uniform(-2, 2, size=(2, 2, 1)).astype(np.float32)
        step = members.step(actions)
        for i, ref in enumerate(refs):
            o, r, d, infos = ref.step(actions[i])
            np.testing.assert_allclose(step.obs[i], o, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(step.rewards[i], r, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(step.dones[i], d)
            for k, info in enumerate(infos):
                if info.get("TimeLimit.truncated"):
                    term = [o for (m, kk, o) in step.timeouts if m == i and kk == k]
                    np.testing.assert_allclose(term[0], info["terminal_observation"], rtol=1e-5, atol=1e-5)
                if "episode" in info:
                    assert any(m == i and abs(r - info["episode"]["r"]) < 1e-4 for m, _, r, _ in step.episodes)


@pytest.mark.parametrize("obs_mode", ["random", "raw", "stats", "vae"])
def test_member_observation_equals_a_population_of_one_with_its_seeds(obs_mode):
    """Same seeds, weights and gradients -> a member's observation is that of a run of its own."""
    config = A2CConfig(n_steps=4, policy_kwargs=TINY_NET)
    pop = PopulationA2C(MemberVecEnv("CartPole", [0, 1]), config, [3, 4], device="cpu")
    enc_seeds = [21, 22]
    encoder = make_encoder(obs_mode, pop, enc_seeds)
    for _ in range(2):
        pop.collect_rollout()
        pop.update_step()
    obs = encoder.encode(pop)
    for member in range(2):
        alone = PopulationA2C(MemberVecEnv("CartPole", [7]), config, [3 + member], device="cpu")
        with torch.no_grad():
            alone.flat.copy_(pop.flat[member : member + 1])
            alone.grad_slots.copy_(pop.grad_slots[:, member : member + 1])
        expected = make_encoder(obs_mode, alone, [enc_seeds[member]]).encode(alone)[0]
        np.testing.assert_allclose(obs[member], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(obs[0], obs[1])


def _vec(env_id="HyperRL-A2C-CartPole", n=3, **kwargs):
    settings = {**(SMALL_A2C if "A2C" in env_id else SMALL_PPO), "obs_mode": "random", **kwargs}
    return gym.make_vec(env_id, num_envs=n, **settings)


def test_make_vec_returns_the_population_env_with_gymnasium_conventions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no autoreset-mode warning from make_vec
        env = _vec()
    assert isinstance(env, HyperRLVectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.num_envs == 3 and env.action_space.shape == (3,)
    obs, info = env.reset(seed=[5, 6, 7])
    assert env.observation_space.contains(obs)
    assert info["run_seed"].tolist() == [5, 6, 7] and info["_run_seed"].all()
    ended = False
    for _ in range(30):
        obs, reward, terminated, _, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and reward.shape == (3,)
        assert set(info["hyperparams"]) == {
            "learning_rate",
            "ent_coef",
            "vf_coef",
            "max_grad_norm",
            "gamma",
            "gae_lambda",
        }
        if terminated.any():
            ended = True
            assert terminated.all() and info["_final_obs"].all() and "G" in info and info["_G"].all()
            np.testing.assert_array_equal(np.stack(info["final_obs"]), obs)  # the run continues: same state
            np.testing.assert_array_equal(info["G"], reward)
    assert ended
    with pytest.raises(ValueError, match=r"action 99 is outside Discrete\(5\): valid are 0..4"):
        env.step(np.array([0, 1, 99]))
    with pytest.raises(ValueError, match="2 seeds for a population of 3"):
        env.reset(seed=[1, 2])
    env.close()


ASYNC_SCRIPT = """
import gymnasium as gym, numpy as np, hypergym
env = gym.make_vec("HyperRL-A2C-CartPole", num_envs=2, vectorization_mode="async", obs_mode="random",
                   n_steps=5, total_env_steps=200, policy_kwargs={"net_arch": [8]})
obs, _ = env.reset(seed=0)
_, reward, *_ = env.step(np.zeros(2, dtype=np.int64))
env.close()
print("ok", obs.shape)
"""


def test_async_make_vec_runs_instead_of_hanging():
    """Forked workers used to deadlock in torch's weight init: each runs on one thread after the fork."""
    done = subprocess.run([sys.executable, "-c", ASYNC_SCRIPT], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok (2, 32)" in done.stdout


def test_an_absurd_population_is_refused_with_the_memory_it_needs_before_allocating():
    with pytest.raises(ValueError, match=r"1,000,000,000 members needs at least [\d,.]+ GiB .* MiB per member"):
        gym.make_vec("HyperRL-A2C-CartPole", num_envs=10**9)


def test_run_finish_starts_new_runs_in_the_same_step():
    env = _vec(total_env_steps=100)  # one phase of 10 rollouts x 5 steps x 2 envs
    env.reset(seed=0)
    seeds = env.run_seeds
    for _ in range(20):
        obs, _, _, _, info = env.step(np.zeros(3, dtype=np.int64))
        if info["run_finished"].any():
            break
    assert info["run_finished"].all() and "final_info" in info
    assert env.run_seeds != seeds and info["run_seed"].tolist() == env.run_seeds
    assert env.learner is not None and env.learner.env_steps == 2 * 5  # the new runs' first rollout
    assert env.observation_space.contains(obs)


def _trajectory(env, actions, seeds, steps):
    env.reset(seed=seeds)
    out = []
    for t in range(steps):
        obs, reward, *_ = env.step(actions(t))
        out.append((obs, reward))
    return out


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [("HyperRL-A2C-CartPole", {}), ("HyperRL-PPO-Pendulum", {"normalize": True})]
)
def test_members_are_independent(env_id, kwargs):
    """Member 0's observations and rewards do not change when member 1's (and 2's) actions do."""
    env = _vec(env_id, **kwargs)
    n_actions = int(env.single_action_space.n)
    steps = 24
    base = _trajectory(env, lambda t: np.zeros(3, dtype=np.int64), [1, 2, 3], steps)
    other = _trajectory(env, lambda t: np.array([0, (t % n_actions), n_actions - 1]), [1, 2, 3], steps)
    for (o1, r1), (o2, r2) in zip(base, other, strict=True):
        np.testing.assert_array_equal(o1[0], o2[0])
        assert r1[0] == r2[0]
    assert any(not np.array_equal(o1[1], o2[1]) for (o1, _), (o2, _) in zip(base, other, strict=True))


def test_population_is_deterministic_from_its_seeds():
    env = _vec()
    acts = lambda t: np.array([t % 5, 0, 4])  # noqa: E731
    first = _trajectory(env, acts, [1, 2, 3], 15)
    again = _trajectory(_vec(), acts, [1, 2, 3], 15)
    other = _trajectory(env, acts, [1, 2, 4], 15)
    for (o1, r1), (o2, r2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
    assert any(not np.array_equal(o1[2], o3[2]) for (o1, _), (o3, _) in zip(first, other, strict=True))


def test_divergence_rolls_back_only_that_member():
    env = _vec(hyperparams={"learning_rate": (7e-4, 1e30)})
    env.reset(seed=[1, 2, 3])
    ref = _vec(hyperparams={"learning_rate": (7e-4, 1e30)})
    ref.reset(seed=[1, 2, 3])
    diverged = False
    for _ in range(10):
        obs, reward, _, _, info = env.step(np.array([0, 1, 0]))
        r_obs, r_reward, *_ = ref.step(np.array([0, 0, 0]))
        np.testing.assert_array_equal(reward[[0, 2]], r_reward[[0, 2]])
        diverged |= bool(info["diverged"][1])
        assert not info["diverged"][0] and not info["diverged"][2]
        np.testing.assert_array_equal(obs[[0, 2]], r_obs[[0, 2]])
        assert np.isfinite(obs).all()
    assert diverged
    assert torch.isfinite(env.learner.flat).all()


def test_a_member_done_with_the_rollout_waits_and_its_outcome_comes_with_the_next_rollout():
    kwargs = {**SMALL_PPO, "obs_mode": "random", "hyperparams": {"batch_size": [16, 32]}, "n_epochs": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is pinned: each member has its own batch size
        env = gym.make_vec("HyperRL-PPO-Pendulum", num_envs=2, **kwargs)
    assert tuple(env.space.names) == ("batch_size",)
    env.reset(seed=0)
    small, large = env.space.encode({"batch_size": 16}), env.space.encode({"batch_size": 32})
    # A rollout is 32 samples: member 1 (b = 32) uses it up in one step, member 0 (b = 16) in two.
    _, rewards, terminated, _, info = env.step(np.array([small, large]))
    assert info["waiting"].tolist() == [False, True] and rewards[1] == 0.0 and not terminated.any()
    assert info["updates"].tolist() == [1, 1] and info["phase_step"].tolist() == [1, 1]
    held = info["losses"]["loss"][1]
    # Member 1's action is ignored while it waits (its hyperparameters stay those of its last update).
    _, rewards, terminated, _, info = env.step(np.array([small, small]))
    assert "waiting" not in info and terminated.all() and np.isfinite(info["G"]).all()
    assert info["updates"].tolist() == [2, 1] and info["phase_step"].tolist() == [2, 1]
    assert info["hyperparams"]["batch_size"].tolist() == [16, 32]
    assert info["losses"]["loss"][1] == held and info["losses"]["n_samples"].tolist() == [16.0, 32.0]
    np.testing.assert_array_equal(rewards, info["G"])
    # Member 1 is its single run: one step of b = 32, then the next rollout.
    single = gym.make("HyperRL-PPO-Pendulum", **kwargs)
    single.reset(seed=1)
    one, reward, terminated, _, single_info = single.step(large)
    assert terminated and reward == rewards[1] and single_info["losses"]["loss"] == held
    np.testing.assert_array_equal(one, info["final_obs"][1])


def test_unsupported_learners_and_tasks_are_refused_with_the_alternative():
    with pytest.raises(ValueError, match="frames are scaled by the policy"):
        gym.make_vec("HyperRL-PPO-Pong", num_envs=2, normalize=True)
    with pytest.raises(ValueError, match="positive integer"):
        HyperRLVectorEnv(num_envs=0, algo="A2C", task="CartPole")


def test_member_seeds_follow_the_single_run_derivation():
    env = _vec()
    env.reset(seed=[9, 10, 11])
    env_seeds = [derive_seeds(s, 3)[0] for s in (9, 10, 11)]
    assert env.learner.venv.seeds == env_seeds


@pytest.mark.parametrize("shared", [False, True])
def test_population_epgt_runs_a_population_and_records_every_member(tmp_path, shared):
    from hypergym.agents import make_agent as make_population_agent
    from hypergym.plots import load_runs
    from hypergym.runner import run as _run

    env = _vec(total_env_steps=200)
    agent = make_population_agent("episodic", env, seed=0, shared_memory=shared, write_every=2)
    results = _run(env, agent, seed=[4, 5, 6], progress=False, out=tmp_path)
    assert len(results) == 3 and all(r.env_steps >= 200 for r in results)
    memories = {id(a.memory) for a in agent.members}
    assert len(memories) == (1 if shared else 3)
    written = sum(agent.members[0].memory.size(a) for a in range(agent.members[0].n_actions))
    assert written > 0
    runs = load_runs([tmp_path])
    assert sorted(r.seed for r in runs) == [4, 5, 6] and all(r.label == "episodic" for r in runs)
    assert all(len(r.env_steps) == results[0].hyper_steps for r in runs)


def test_hypergym_run_takes_a_populations_seeds_as_an_int_or_a_list(tmp_path):
    from hypergym.agents import make_agent as make_population_agent
    from hypergym.runner import run as _run

    def run_with(runner, seeds, out):
        env = _vec(total_env_steps=120)
        return runner(env, make_population_agent("random", env, seed=2), seeds, out=out)

    results = run_with(lambda e, a, s, out: hypergym.run(e, a, seed=s, out=out, progress=False), 7, tmp_path / "a")
    direct = run_with(lambda e, a, s, out: _run(e, a, seed=s, out=out, progress=False), [7, 8, 9], tmp_path / "b")
    assert isinstance(results, list) and [r.final_return for r in results] == [r.final_return for r in direct]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["seed7", "seed8", "seed9"]
    env = _vec()
    agent = make_population_agent("static", env)
    capped = hypergym.run(env, agent, seed=[1, 2, 3], progress=False, max_steps=2)
    assert [r.hyper_steps for r in capped] == [2, 2, 2]
    with pytest.raises(ValueError, match="needs seeds"):
        hypergym.run(env, agent, seed=None)
    with pytest.raises(ValueError, match="2 seeds for a population of 3"):
        hypergym.run(env, agent, seed=[1, 2])


def test_population_static_and_random_act_on_the_batch():
    from hypergym.agents import make_agent as make_population_agent

    env = _vec()
    obs, info = env.reset(seed=0)
    static = make_population_agent("static", env)
    np.testing.assert_array_equal(static.act(obs, info), np.full(3, env.space.default_action))
    assert make_population_agent("static-max", env).act(obs, info).tolist() == [4, 4, 4]
    actions = make_population_agent("random", env, seed=1).act(obs, info)
    assert actions.shape == (3,) and env.action_space.contains(actions)
    dqn = make_population_agent("dqn", env, seed=5)  # per member: the single-run agent of each member's seed
    assert [a.seed for a in dqn.members] == [5, 6, 7] and dqn.act(obs, info).shape == (3,)
    with pytest.raises(ValueError, match="choose from"):
        make_population_agent("dqm", env)


def test_torch_acting_path_runs_and_is_deterministic():
    """The path CUDA populations take (torch sampling from the population's generator), run on the CPU.

    An activation NumPy acting does not implement (ELU) sends a CPU population down it as well.
    """
    policy_kwargs = {"net_arch": {"pi": [8], "vf": [8]}, "activation_fn": torch.nn.ELU}

    def trace():
        env = _vec("HyperRL-PPO-Pendulum", policy_kwargs=policy_kwargs)
        obs, _ = env.reset(seed=5)
        assert env.learner.policy.numpy_actor is None
        out = [obs]
        for _ in range(6):
            obs, reward, *_ = env.step(np.full(3, env.space.default_action))
            out += [obs, reward]
        return out

    first, second = trace(), trace()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(x).all() for x in first)


def test_a_population_of_one_schedules_batch_size_and_n_epochs_as_a_single_run():
    kwargs = {**SMALL_PPO, "obs_mode": "random", "hyperparams": {"batch_size": [16, 32], "n_epochs": [1, 2]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is pinned for one member
        env = gym.make_vec("HyperRL-PPO-CartPole", num_envs=1, **kwargs)
    assert tuple(env.space.names) == ("batch_size", "n_epochs")
    env.reset(seed=0)
    # A rollout is 32 samples (T 32 x 1 env): b = 32 takes a whole pass in one step, b = 16 two steps.
    small = env.space.encode({"batch_size": 16, "n_epochs": 1})
    large = env.space.encode({"batch_size": 32, "n_epochs": 1})
    _, _, _, _, info = env.step(np.array([small]))
    assert info["losses"]["n_samples"].tolist() == [16.0] and info["hyperparams"]["batch_size"].tolist() == [16]
    _, _, terminated, _, info = env.step(np.array([large]))
    assert info["losses"]["n_samples"].tolist() == [16.0]  # the rest of the pass: 16 samples left
    assert info["hyperparams"]["batch_size"].tolist() == [32]
    # The first rollout was collected with the default n_epochs (the configured 2): a second pass follows.
    assert not terminated[0]
    _, _, terminated, _, info = env.step(np.array([small]))
    assert info["hyperparams"]["n_epochs"].tolist() == [2]
    _, _, terminated, _, _ = env.step(np.array([small]))
    assert terminated[0]  # 2 passes of 32 samples: 16 + 16 + 16 + 16
    # The next rollout was collected after n_epochs = 1 was chosen: one pass, one step of b = 32.
    env.reset()
    _, _, terminated, _, info = env.step(np.array([large]))
    assert info["hyperparams"]["n_epochs"].tolist() == [1] and info["losses"]["n_samples"].tolist() == [32.0]
    assert terminated[0]


def test_the_same_kwargs_give_a_single_run_and_a_population_member_the_same_training():
    """Every policy setting is honoured in both forms: same weights, same optimiser, same update on a batch."""
    policy_kwargs = {
        "net_arch": [8],
        "activation_fn": torch.nn.ReLU,
        "log_std_init": -0.5,
        "optimizer_kwargs": {"eps": 1e-3, "betas": (0.8, 0.99)},
    }
    kwargs = {**SMALL_A2C, "obs_mode": "random", "use_rms_prop": False, "policy_kwargs": policy_kwargs}
    single = gym.make("HyperRL-A2C-Pendulum", **kwargs).unwrapped
    pair = gym.make_vec("HyperRL-A2C-Pendulum", num_envs=2, **kwargs)
    single.reset(seed=3)
    pair.reset(seed=[3, 4])
    one, two = single.learner, pair.learner
    torch.testing.assert_close(one.flat[0], two.flat[0], rtol=0, atol=0)  # the seed's initial weights
    assert one.optimizer.eps == two.optimizer.eps == 1e-3 and one.optimizer.betas == two.optimizer.betas
    assert one.policy.pi_acts[0].__class__ is two.policy.pi_acts[0].__class__ is torch.nn.ReLU
    for _ in range(3):  # member 0 trains on the single run's batches: it stays the single run
        with torch.no_grad():
            for name, value in one.batch.items():
                two.batch[name][0] = value[0]
        before = two.flat[1].clone()
        one.update_step()
        two.update_step()
        torch.testing.assert_close(two.flat[0], one.flat[0], rtol=1e-5, atol=1e-7)
        assert not torch.equal(two.flat[1], before)  # member 1 trained on its own batch
        one.collect_rollout()
        two.collect_rollout()
    with pytest.raises(ValueError, match="Adam takes eps, betas"):
        gym.make_vec("HyperRL-PPO-CartPole", num_envs=2, policy_kwargs={"optimizer_kwargs": {"momentum": 0.9}})
    with pytest.raises(ValueError, match="Adam takes eps, betas"):
        gym.make("HyperRL-PPO-CartPole", policy_kwargs={"optimizer_kwargs": {"momentum": 0.9}})


_PPO_GRID = {"batch_size": [16, 32, 64], "n_epochs": [1, 2], "learning_rate": [3e-4, 1e-3]}
_EPGT_ARMS = {  # id, settings, the hyperparameters EPGT must have varied
    "A2C": ("HyperRL-A2C-CartPole", {"total_env_steps": 3000, "obs_mode": "vae"}, ["learning_rate"]),  # paper width
    "PPO, batch_size x n_epochs": (
        "HyperRL-PPO-CartPole",
        {"total_env_steps": 1280, "n_steps": 64, "n_envs": 1, "policy_kwargs": TINY_NET, "hyperparams": _PPO_GRID,
         "encoder_kwargs": {"hidden": 16, "train_every": 4, "batch_size": 3}},
        ["batch_size", "n_epochs"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("arm", list(_EPGT_ARMS))
def test_an_epgt_arm_as_one_population_trains_each_member_as_the_single_run_of_its_seed(arm, tmp_path):
    """Four seeds of EPGT as one population and as four single runs: each member is its run.

    Each member draws its sampling noise (the learner's and the VAE's) from its own seed's streams, and its
    agent is the single run's agent of its seed, so the members are their single runs, bit for bit on this
    platform (torch 2.13 CPU) except where batched matrix products round differently (the VAE's loss here).
    Under PPO with ``batch_size`` and ``n_epochs`` in the grid the members choose different sizes: a member
    that has used up the rollout waits for the others (its steps are no transitions), members whose
    minibatch sizes differ in a step are updated in one pass per size, and each member's VAE counts its own
    update steps, so the members take different numbers of steps, each its single run's.
    """
    import pandas as pd

    from hypergym.agents import make_agent

    env_id, kwargs, varied = _EPGT_ARMS[arm]
    venv = gym.make_vec(env_id, num_envs=4, **kwargs)
    members = hypergym.run(venv, make_agent("episodic", venv, seed=10), seed=10, out=tmp_path / "pop", progress=False)
    steps = set()
    for i, seed in enumerate(range(10, 14)):
        env = gym.make(env_id, **kwargs)
        single = hypergym.run(env, make_agent("episodic", env, seed=seed), seed=seed, out=tmp_path / f"s{seed}",
                              progress=False)  # fmt: skip
        a = pd.read_csv(tmp_path / "pop" / f"seed{seed}" / "steps.csv")
        b = pd.read_csv(tmp_path / f"s{seed}" / "steps.csv")
        assert list(a.columns) == list(b.columns) and len(a) == len(b) == single.hyper_steps == members[i].hyper_steps
        for name in varied:  # EPGT explored: the comparison is of choices, not of a constant
            assert b[f"hp_{name}"].nunique() > 1, name
        # Every choice, reward, inner return, learner loss and G is the single run's, bit for bit. The VAE's
        # own loss (a diagnostic) is not: its batched products round in the last digits (the observations it
        # gives did not change a choice here; measured over 20k steps too, on A2C).
        vae = ["encoder_loss", "encoder_kl"]
        pd.testing.assert_frame_equal(a.drop(columns=vae), b.drop(columns=vae), check_exact=True)
        pd.testing.assert_frame_equal(a[vae], b[vae], rtol=1e-4)
        assert members[i].final_return == single.final_return and members[i].best_G == single.best_G
        steps.add(len(a))
    assert len(steps) > 1 if "PPO" in arm else len(steps) == 1  # PPO's members took their own numbers of steps


def test_a_single_run_agent_observes_the_ending_steps_info_then_acts_on_the_next_episodes():
    """Through the runner's one loop (a single env as a vector env of one) an agent sees what a plain loop shows."""

    class Probe:
        def __init__(self) -> None:
            self.infos: list[dict] = []
            self.ends: list[dict] = []

        def act(self, obs, info):
            self.infos.append(info)
            return 0

        def observe(self, transition):
            if transition.terminated:
                self.ends.append(transition.info)
                assert isinstance(transition.action, int) and transition.next_obs.shape == transition.obs.shape

    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=400, obs_mode="random", n_envs=2, n_steps=5)
    probe = Probe()
    result = hypergym.run(env, probe, seed=0, progress=False)
    assert len(probe.ends) == result.learning_episodes >= 3
    assert all("G" in info and info["phase_step"] == 10 for info in probe.ends)  # the ending step's info
    assert probe.infos[0]["new_run"] and not any(i.get("new_run") for i in probe.infos[1:])  # then each reset's
    assert env.unwrapped.learner.env_steps == result.env_steps  # the finished run stays: no new run was started


def test_loose_inputs_are_refused_before_any_run_directory_is_written(tmp_path):
    """Duplicate, string, float and boolean seeds; a non-boolean restart option or normalize; JSON with NaN."""
    import json

    from hypergym.agents import make_agent

    venv = _vec(total_env_steps=120)
    agent = make_agent("static", venv)
    for seeds, match in (([5, 5, 6], "repeat one"), ("12", "non-negative integer"), ([1.5, 2, 3], "non-negative"),
                         ([True, 2, 3], "non-negative"), ([-1, 2, 3], "non-negative")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            hypergym.run(venv, agent, seed=seeds, out=tmp_path / "pop", progress=False)
        with pytest.raises(ValueError, match=match):
            venv.reset(seed=seeds)
    assert not (tmp_path / "pop").exists()  # refused before anything was written
    env = gym.make("HyperRL-A2C-CartPole", obs_mode="random", n_envs=2, total_env_steps=100)
    for seed in (1.5, True, "3", [3]):
        with pytest.raises(ValueError, match="a single run takes one seed"):
            hypergym.run(env, make_agent("static", env), seed=seed, out=tmp_path / "one", progress=False)
    assert not (tmp_path / "one").exists()
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"options\['restart'\] must be True or False, got 'no'"):
        env.reset(options={"restart": "no"})
    with pytest.raises(TypeError, match="normalize must be True or False, got 'no'"):
        gym.make("HyperRL-A2C-CartPole", normalize="no")
    # summary.json is strict JSON: a run without evaluations has null, not NaN, and reads back as NaN
    result = hypergym.run(env, make_agent("static", env), seed=0, out=tmp_path / "json", progress=False)
    text = (tmp_path / "json" / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["best_eval_return"] is None
    from hypergym.rundir import read_summary

    assert math.isnan(read_summary(tmp_path / "json" / "summary.json")["best_eval_return"])
    assert math.isnan(result.best_eval_return)


def test_a_population_run_keeps_its_trained_runs_and_numpy_seeds_work(tmp_path):
    from hypergym.agents import make_agent

    venv = _vec(total_env_steps=120)
    results = hypergym.run(venv, make_agent("static", venv), seed=np.arange(3) + 4, progress=False)
    assert venv.run_seeds == [4, 5, 6]  # not new runs started by the autoreset of the last step
    assert venv.learner.env_steps == results[0].env_steps and venv.autorestart  # restored for the caller
    _, info = venv.reset()  # the finished runs: reset starts new ones
    assert info["new_run"].all() and venv.run_seeds != [4, 5, 6]


def test_any_gymnasium_env_runs_with_its_own_observations_and_the_agents_own_actions():
    """The runner's "any env" path: a Tuple observation, and the transition carries what act returned."""

    class Stick:
        def __init__(self) -> None:
            self.seen: list = []

        def act(self, obs, info):
            assert isinstance(obs, tuple) and len(obs) == 3
            return 0

        def observe(self, transition):
            self.seen.append((type(transition.action), type(transition.obs)))

    agent = Stick()
    result = hypergym.run(gym.make("Blackjack-v1"), agent, seed=0, progress=False, max_steps=6)
    assert result.hyper_steps == 6 and set(agent.seen) == {(int, tuple)}


def test_a_comparison_made_seed_by_seed_is_finished_seed_by_seed_not_overwritten(tmp_path):
    from hypergym.jobs import RunSpec, execute

    settings = {"total_env_steps": 100, "obs_mode": "random", "n_envs": 2}
    first = execute(RunSpec("HyperRL-A2C-CartPole", "static", 0, str(tmp_path / "static" / "seed0"), settings))
    before = (tmp_path / "static" / "seed0" / "steps.csv").read_text()
    both = execute(RunSpec("HyperRL-A2C-CartPole", "static", 0, str(tmp_path / "static"), settings, members=2))
    assert [s["reused"] for s in both] == [True, False] and both[0]["final_return"] == first[0]["final_return"]
    assert (tmp_path / "static" / "seed0" / "steps.csv").read_text() == before
    config = json.loads((tmp_path / "static" / "seed1" / "config.json").read_text())
    assert "population" not in config and config["seed"] == 1  # the missing seed ran as its own run


def test_a_run_stopped_by_an_error_leaves_the_populations_restart_as_it_was():
    import hypergym

    class Failing:
        def act(self, obs, info):
            raise KeyboardInterrupt

        def observe(self, *args):
            pass

    env = _vec(n=2)
    assert env.autorestart
    with pytest.raises(KeyboardInterrupt):
        hypergym.run(env, Failing(), seed=0, progress=False)
    assert env.autorestart  # was left False by an interrupted run
