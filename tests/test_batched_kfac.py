"""Batched K-FAC and ACKTR populations against the single-run K-FAC (the reference)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_NET
from reference import KFAC

import hypergym  # noqa: F401 - registers the ids
from hypergym.envs import task_spaces
from hypergym.envs.members import MemberVecEnv
from hypergym.learners import KFAC as BatchedKFAC
from hypergym.learners import ACKTRConfig, ACKTRLearner, BatchedActorCritic, build_policy
from hypergym.learners.losses import acktr_fisher_loss
from hypergym.seeding import TorchRNG


def _policies(task: str, seeds: list[int]):
    if task == "frames":  # ACKTR's CNN on small frames, with a narrow last layer: conv blocks at test speed
        obs_space, act_space = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8), gym.spaces.Discrete(6)
        config = ACKTRConfig(cnn="acktr", policy_kwargs={"features_extractor_kwargs": {"features_dim": 16}})
    else:
        obs_space, act_space = task_spaces(task)
        config = ACKTRConfig(policy_kwargs=TINY_NET)
    out = []
    for seed in seeds:
        with TorchRNG(seed, torch.device("cpu")).active():
            out.append(build_policy(obs_space, act_space, config))
    return out, obs_space, act_space


@pytest.mark.parametrize("damping_mode", ["kronecker", "factored"])
@pytest.mark.parametrize("task", ["Pendulum", "CartPole", "frames"])
def test_batched_kfac_steps_equal_the_single_run_kfac_per_member(task, damping_mode):
    """Same weights, batches, Fisher noise and hyperparameters -> every member's K-FAC trajectory is KFAC's."""
    policies, obs_space, act_space = _policies(task, [3, 4])
    batched = BatchedActorCritic(policies, torch.device("cpu"))
    lrs, kls, dampings = [0.25, 0.05], [1e-3, 1e-1], [0.01, 0.1]
    kwargs = {"momentum": 0.9, "stat_decay": 0.95, "weight_decay": 1e-3, "inverse_every": 2, "stats_every": 2}
    singles = [
        KFAC(p, lr=lr, kl_clip=kl, damping=d, damping_mode=damping_mode, **kwargs)
        for p, lr, kl, d in zip(policies, lrs, kls, dampings, strict=True)
    ]
    opt = BatchedKFAC(batched.flat, batched.flat_grad, batched, damping_mode=damping_mode, **kwargs)
    gen = torch.Generator().manual_seed(0)
    b, m = 12, 2
    initial = batched.flat.clone()
    for step in range(5):
        if len(obs_space.shape) == 3:  # frames: uint8, scaled by the policy
            obs = torch.randint(0, 256, (m, b, *obs_space.shape), generator=gen, dtype=torch.uint8)
        else:
            obs = torch.randn(m, b, obs_space.shape[0], generator=gen)
        if isinstance(act_space, gym.spaces.Discrete):
            actions = torch.randint(0, int(act_space.n), (m, b), generator=gen)
        else:
            actions = torch.randn(m, b, act_space.shape[0], generator=gen)
        noise, adv, ret = (torch.randn(m, b, generator=gen) for _ in range(3))
        # The population
        wants = bool(opt.wants_stats().all())
        assert wants == (step % 2 == 0)
        with batched.recording() as recording:
            params, values = batched.forward(obs)
            log_prob, _ = batched.log_prob_entropy(params, actions)
            if wants:
                batched.backward(acktr_fisher_loss(log_prob, values, noise, 1.0).sum(), retain_graph=True)
        opt.record(recording)
        batched.zero_grad()
        batched.backward((-(adv * log_prob).mean(1) + 0.5 * (ret - values).square().mean(1)).sum())
        failed = opt.step(torch.tensor(lrs, dtype=torch.float64), torch.tensor(kls), torch.tensor(dampings))
        assert not failed.any()
        # Each member alone, through the reference optimiser on the SB3 policy
        for i, (policy, single) in enumerate(zip(policies, singles, strict=True)):
            acts = actions[i] if actions.dim() == 3 else actions[i].long()
            with single.capture():
                v, lp, _ = policy.evaluate_actions(obs[i].float() if obs.dtype == torch.uint8 else obs[i], acts)
                if wants:
                    acktr_fisher_loss(lp[None], v.flatten()[None], noise[i][None], 1.0).sum().backward(
                        retain_graph=True
                    )
            single.zero_grad()
            (-(adv[i] * lp).mean() + 0.5 * (ret[i] - v.flatten()).square().mean()).backward()
            single.step()
            # float32 rounding differs between one grouped convolution and M convolutions and compounds
            # over steps: the members agree to within 1% of how far they have moved.
            error = (batched.flat[i] - batched.row_of(policy)).abs().max()
            assert error <= 1e-2 * (batched.flat[i] - initial[i]).abs().max()
            assert float(opt.last_nu[i]) == pytest.approx(single.last_nu, rel=1e-4)
    assert any(float(nu) < 1.0 for nu in opt.last_nu)  # the trust region was active for some member


def test_population_acktr_members_are_independent_and_report_the_trust_region():
    kwargs = {"total_env_steps": 2_000, "policy_kwargs": TINY_NET, "obs_mode": "random", "n_envs": 2}
    kwargs["hyperparams"] = {"learning_rate": [0.05, 0.25], "kl_clip": [1e-4, 1e-2]}

    def trajectory(actions):
        env = gym.make_vec("HyperRL-ACKTR-CartPole", num_envs=2, **kwargs)
        env.reset(seed=[5, 6])
        out = []
        for t in range(12):
            obs, reward, _, _, info = env.step(actions(t))
            out.append((obs, reward, info))
        return out

    base = trajectory(lambda t: np.array([0, 0]))
    other = trajectory(lambda t: np.array([0, 3 - t % 4]))
    for (o1, r1, i1), (o2, r2, _) in zip(base, other, strict=True):
        np.testing.assert_array_equal(o1[0], o2[0])
        assert r1[0] == r2[0]
        assert np.isfinite(i1["losses"]["kl_scale"]).all() and (i1["losses"]["kl_scale"] <= 1.0).all()
        assert np.isfinite(i1["losses"]["fisher_loss"]).all()
    assert any(not np.array_equal(o1[1], o2[1]) for (o1, _, _), (o2, _, _) in zip(base, other, strict=True))
    assert base[-1][2]["hyperparams"]["kl_clip"].tolist() == [1e-4, 1e-4]


def test_population_acktr_failed_eigendecomposition_rolls_back_only_that_member(monkeypatch):
    pop = ACKTRLearner(MemberVecEnv("CartPole", [1, 2]), ACKTRConfig(n_steps=8, policy_kwargs=TINY_NET), [3, 4])
    pop.collect_rollout()
    pop.update_step()
    pop.collect_rollout()
    # Member 1's factor is poisoned: its next inverse is impossible, member 0's goes on.
    name = next(iter(pop.policy.blocks))
    pop.optimizer.state[f"{name}/A"][1, 0, 0] = float("nan")
    pop.optimizer.step_count.zero_()  # an inverse step for both
    before = pop.flat.clone()
    result = pop.update_step()
    assert result.diverged.tolist() == [False, True]
    torch.testing.assert_close(pop.flat[1], before[1], rtol=0, atol=0)
    assert not torch.equal(pop.flat[0], before[0])
    assert np.isnan(result.losses["kl_scale"][1]) and np.isfinite(result.losses["kl_scale"][0])


def test_a_batched_eigh_that_returns_nan_without_raising_is_solved_again_member_by_member(monkeypatch):
    """MKL's batched eigh gave NaN for one member of a batch on one CPU (without raising); that member is solved
    alone, and only a member that fails alone too is reported as failed."""
    from hypergym.learners.kfac import _batched_eigh

    real = torch.linalg.eigh
    x = torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(0))
    factors = x @ x.transpose(1, 2)
    calls = []

    def flaky(a):
        calls.append(tuple(a.shape))
        values, vectors = real(a)
        if a.dim() == 3:  # the batched call: member 1 comes back as NaN
            values, vectors = values.clone(), vectors.clone()
            values[1], vectors[1] = torch.nan, torch.nan
        return values, vectors

    monkeypatch.setattr(torch.linalg, "eigh", flaky)
    values, vectors, ok = _batched_eigh(factors)
    assert ok.tolist() == [True, True, True] and calls == [(3, 6, 6), (6, 6)]
    torch.testing.assert_close(vectors @ torch.diag_embed(values) @ vectors.transpose(1, 2), factors)

    def broken(a):  # member 2 fails alone too (non-finite), member 0 raises alone
        values, vectors = real(a)
        if a.dim() == 3:
            values, vectors = values.clone(), vectors.clone()
            values[0], values[2] = torch.nan, torch.nan
            return values, vectors
        if torch.equal(a, factors[0]):
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return torch.full_like(values, torch.nan), vectors

    monkeypatch.setattr(torch.linalg, "eigh", broken)
    assert _batched_eigh(factors)[2].tolist() == [False, True, False]
