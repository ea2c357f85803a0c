from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_NET
from reference import KFAC, ACKTRLearner
from torch import nn

from hypergym.envs import make_task
from hypergym.learners import ACKTRConfig


def _fisher_step(opt: KFAC, model: nn.Module, x: torch.Tensor, c: torch.Tensor) -> None:
    """One K-FAC step whose Fisher loss and training loss are both mean_b <model(x)_b, c_b>."""
    with opt.capture():
        (model(x) * c).sum(1).mean().backward()
    opt.zero_grad()
    (model(x) * c).sum(1).mean().backward()
    opt.step()


def test_linear_kronecker_factors_equal_the_hand_computed_running_averages():
    torch.manual_seed(0)
    lin = nn.Linear(2, 2)
    opt = KFAC(lin, lr=0.01, stat_decay=0.9, inverse_every=1)
    # Batch 1: a = [x, 1] = [[1, 2, 1], [3, 4, 1]]; the loss's gradient w.r.t. the output is c / B, so
    # A = a^T a / 2 and G = B (c / B)^T (c / B) = c^T c / 2.
    _fisher_step(opt, lin, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [2.0, -1.0]]))
    state = opt.state[lin.weight]
    torch.testing.assert_close(state["A"], torch.tensor([[5.0, 7.0, 2.0], [7.0, 10.0, 3.0], [2.0, 3.0, 1.0]]))
    torch.testing.assert_close(state["G"], torch.tensor([[2.5, -1.0], [-1.0, 0.5]]))
    # Batch 2: A2 = [[.5, 0, .5], [0, .5, .5], [.5, .5, 1]], G2 = [[.5, .5], [.5, 2.5]]; m <- 0.9 m + 0.1 new.
    _fisher_step(opt, lin, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    torch.testing.assert_close(
        state["A"], torch.tensor([[4.55, 6.3, 1.85], [6.3, 9.05, 2.75], [1.85, 2.75, 1.0]]), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(state["G"], torch.tensor([[2.3, -0.85], [-0.85, 0.7]]), rtol=1e-5, atol=1e-5)


def _one_step_block(damping_mode: str, lr: float = 1.0, kl_clip: float = 1e-3, damping: float = 0.05):
    torch.manual_seed(1)
    lin = nn.Linear(3, 2)
    opt = KFAC(lin, lr=lr, kl_clip=kl_clip, damping=damping, momentum=0.9, damping_mode=damping_mode)
    x, c = torch.randn(8, 3), torch.randn(8, 2)
    before = torch.cat([lin.weight.detach(), lin.bias.detach().unsqueeze(1)], 1).clone()
    _fisher_step(opt, lin, x, c)
    after = torch.cat([lin.weight.detach(), lin.bias.detach().unsqueeze(1)], 1)
    state = opt.state[lin.weight]
    a, g = state["A"].double(), state["G"].double()
    grad = opt.block_gradient(lin).double()
    return opt, lin, a, g, grad, before, after


@pytest.mark.parametrize("damping_mode", ["kronecker", "factored"])
def test_preconditioned_gradient_equals_the_dense_damped_inverse(damping_mode):
    opt, lin, a, g, grad, *_ = _one_step_block(damping_mode)
    d = 0.05
    if damping_mode == "factored":
        # (G + d I)^-1 grad (A + d I)^-1
        expected = torch.linalg.inv(g + d * torch.eye(2, dtype=torch.float64)) @ grad
        expected = expected @ torch.linalg.inv(a + d * torch.eye(4, dtype=torch.float64))
    else:
        # (G (x) A + d I)^-1 vec(grad), row-major vec: ACKTR's damping of the Kronecker product.
        dense = torch.kron(g, a) + d * torch.eye(8, dtype=torch.float64)
        expected = torch.linalg.solve(dense, grad.reshape(-1)).reshape(2, 4)
    got = opt.precondition(lin, grad.float(), d).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_trust_region_scale_and_first_step_follow_the_formula():
    lr, kl_clip, momentum = 1.0, 1e-3, 0.9
    opt, _, a, g, grad, before, after = _one_step_block("kronecker", lr=lr, kl_clip=kl_clip)
    dense = torch.kron(g, a) + 0.05 * torch.eye(8, dtype=torch.float64)
    natural = torch.linalg.solve(dense, grad.reshape(-1))
    g_f_inv_g = float(grad.reshape(-1) @ natural)
    nu = min(1.0, math.sqrt(kl_clip / (lr**2 * g_f_inv_g)))
    assert nu < 1.0  # the trust region is active in this case, so the check is not vacuous
    assert opt.last_nu == pytest.approx(nu, rel=1e-4)
    # First step: buf = nu V, theta <- theta - lr (1 - momentum) buf.
    expected = before.double() - lr * (1 - momentum) * nu * natural.reshape(2, 4)
    torch.testing.assert_close(after.double(), expected, rtol=1e-4, atol=1e-6)


def test_trust_region_is_inactive_for_small_steps():
    opt, *_ = _one_step_block("kronecker", lr=1e-4, kl_clip=1.0)
    assert opt.last_nu == 1.0


def test_conv2d_factors_match_a_loop_over_the_output_positions():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, kernel_size=2, stride=1, padding=1)
    opt = KFAC(conv, lr=0.01)
    x = torch.randn(2, 2, 3, 3)
    c = torch.randn(2, 3, 4, 4)
    with opt.capture():
        out = conv(x)
        out.retain_grad()
        (out * c).sum((1, 2, 3)).mean().backward()
    g_out = out.grad.clone()
    opt.zero_grad()
    (conv(x) * c).sum((1, 2, 3)).mean().backward()
    opt.step()

    # Patches by hand: zero-pad by 1, take every 2x2 window (channel-major, as the weight is flattened).
    batch, spatial = 2, 16
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    a_sum = torch.zeros(9, 9)
    g_sum = torch.zeros(3, 3)
    for b in range(batch):
        for i in range(4):
            for j in range(4):
                patch = torch.cat([padded[b, :, i : i + 2, j : j + 2].reshape(-1), torch.ones(1)])
                a_sum += torch.outer(patch, patch)
                g = g_out[b, :, i, j] * batch * spatial
                g_sum += torch.outer(g, g)
    expected_a = a_sum / spatial**2 / batch
    expected_g = g_sum / (batch * spatial)
    torch.testing.assert_close(opt.state[conv.weight]["A"], expected_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(opt.state[conv.weight]["G"], expected_g, rtol=1e-5, atol=1e-5)


def test_loose_parameters_take_the_scaled_raw_gradient():
    # A Gaussian policy's log_std is in no Linear/Conv2d block: it moves by -lr (1 - m) nu grad.
    model = nn.Module()
    model.lin = nn.Linear(2, 1)
    model.log_std = nn.Parameter(torch.zeros(1))
    opt = KFAC(model, lr=0.1, kl_clip=10.0)
    assert opt.loose == [model.log_std]
    x = torch.randn(4, 2)

    def loss() -> torch.Tensor:
        return (model.lin(x).squeeze(1) * model.log_std.exp()).mean() + model.log_std.sum()

    with opt.capture():
        loss().backward()
    opt.zero_grad()
    loss().backward()
    grad = model.log_std.grad.clone()
    opt.step()
    torch.testing.assert_close(model.log_std.detach(), -0.1 * 0.1 * opt.last_nu * grad)


def _acktr(**config):
    venv = make_task("CartPole", n_envs=2, seed=0)
    return ACKTRLearner(venv, ACKTRConfig(n_steps=8, policy_kwargs=TINY_NET, **config), seed=0, device="cpu")


def test_kl_clip_chosen_by_an_action_scales_the_step():
    deltas, scales = [], []
    for action in (0, 1):
        env = gym.make(
            "HyperRL-ACKTR-CartPole",
            hyperparams={"kl_clip": (1e-4, 1e-2)},
            learning_rate=10.0,
            policy_kwargs=TINY_NET,
            obs_mode="stats",
            device="cpu",
        )
        env.reset(seed=0)
        learner = env.unwrapped.learner
        before = [p.detach().clone() for p in learner.policy.parameters()]
        _, _, _, _, info = env.step(action)
        assert info["hyperparams"]["kl_clip"] == (1e-4, 1e-2)[action]  # read back from the optimiser
        scales.append(info["losses"]["kl_scale"])
        deltas.append(
            torch.cat([(p.detach() - b).flatten() for p, b in zip(learner.policy.parameters(), before, strict=True)])
        )
        env.close()
    assert scales[0] < scales[1] < 1.0
    # Same seed, same batch, same V: with the trust region active, the step scales with sqrt(kl_clip).
    # (atol: float32 round-off of theta + delta - theta for weights of order 1)
    torch.testing.assert_close(deltas[1], deltas[0] * 10.0, rtol=1e-3, atol=1e-6)
    assert deltas[0].abs().max() > 1e-4


def test_failed_eigendecomposition_is_a_divergence_rolled_back(monkeypatch):
    learner = _acktr()
    learner.collect_rollout()
    assert not learner.update_step().diverged
    learner.collect_rollout()
    before = [p.detach().clone() for p in learner.policy.parameters()]

    def fail(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", fail)
    learner.optimizer.steps = learner.optimizer.inverse_every  # the next step recomputes the inverses
    result = learner.update_step()
    assert result.diverged
    for p, b in zip(learner.policy.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b)
    monkeypatch.undo()
    learner.collect_rollout()
    assert not learner.update_step().diverged  # and the run goes on
    learner.close()


def test_max_grad_norm_is_refused_for_acktr():
    with pytest.raises(ValueError, match="trust region"):
        ACKTRConfig(max_grad_norm=0.5)
    with pytest.raises(ValueError, match="supports"):
        gym.make("HyperRL-ACKTR-CartPole", hyperparams={"max_grad_norm": (0.5, 1.0)})


def test_acktr_runs_on_a_gaussian_policy_with_vecnormalize():
    env = gym.make(
        "HyperRL-ACKTR-HalfCheetah", n_envs=2, n_steps=8, policy_kwargs=TINY_NET, obs_mode="stats", device="cpu"
    )
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(env.action_space.sample())
    assert terminated and "G" in info and not info["diverged"]  # U = 1
    assert set(info["hyperparams"]) >= {"learning_rate", "kl_clip", "damping", "vf_coef"}
    assert np.isfinite(info["losses"]["fisher_loss"]) and 0 < info["losses"]["kl_scale"] <= 1
    env.close()


def _run_phases(env, n_phases: int) -> list[dict]:
    env.reset(seed=0)
    infos, phases = [], 0
    while phases < n_phases:
        _, reward, terminated, truncated, info = env.step(0)
        info["reward"] = reward
        infos.append(info)
        if terminated or truncated:
            phases += 1
            env.reset()
    return infos


def test_learning_rate_times_1e4_is_contained_by_the_trust_region():
    # eta x 1e4 = 2500: the step is min(eta, sqrt(kl_clip / g^T F^-1 g)) F^-1 g, so nu shrinks instead.
    env = gym.make(
        "HyperRL-ACKTR-CartPole",
        hyperparams={"learning_rate": (2500.0,)},
        policy_kwargs=TINY_NET,
        obs_mode="stats",
        device="cpu",
    )
    infos = _run_phases(env, 3)
    assert not any(i["diverged"] for i in infos)
    assert max(i["losses"]["kl_scale"] for i in infos) < 1e-3
    assert all(torch.isfinite(p).all() for p in env.unwrapped.learner.policy.parameters())
    env.close()


def test_overflowing_step_is_flagged_rolled_back_and_the_run_goes_on():
    # With the trust region opened as well (kl_clip 1e38), lr^2 g^T F^-1 g overflows (a divergence raised
    # by K-FAC before any change) or the step leaves huge parameters whose next loss is non-finite.
    env = gym.make(
        "HyperRL-ACKTR-CartPole",
        hyperparams={"learning_rate": (1e38,), "kl_clip": (1e38,)},
        divergence_penalty=-5.0,
        policy_kwargs=TINY_NET,
        obs_mode="stats",
        device="cpu",
    )
    infos = _run_phases(env, 2)
    assert sum(i["diverged"] for i in infos) >= 5
    for i in infos:
        assert i["reward"] == pytest.approx(i.get("G", 0.0) + (-5.0 if i["diverged"] else 0.0))
    learner = env.unwrapped.learner
    assert all(torch.isfinite(p).all() for p in learner.policy.parameters())
    assert learner.updates == len(infos) == 2 * 10  # two whole phases of U = 10 updates ran
    env.close()


@pytest.mark.slow
def test_acktr_learns_cartpole_beside_a2c(tmp_path):
    # 100k env steps, 3 seeds, the default hyperparameters: mean return of the last 10 inner episodes.
    import hypergym
    from hypergym.agents import StaticAgent

    rng = np.random.default_rng(0)
    cartpole = gym.make("CartPole-v1")
    random_returns = []
    for episode in range(20):
        cartpole.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = cartpole.step(int(rng.integers(2)))
            total, done = total + r, terminated or truncated
        random_returns.append(total)
    final = {}
    for algo in ("ACKTR", "A2C"):
        final[algo] = []
        for seed in range(3):
            env = gym.make(f"HyperRL-{algo}-CartPole", obs_mode="stats", device="cpu")
            result = hypergym.run(env, StaticAgent(env), seed=seed, out=tmp_path / f"{algo}-{seed}", progress=False)
            final[algo].append(result.final_return)
            env.close()
    print(f"random policy {np.mean(random_returns):.1f}; final returns {final}")
    assert min(final["ACKTR"]) > 5 * np.mean(random_returns)
