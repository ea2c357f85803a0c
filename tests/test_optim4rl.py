"""Optim4RL's update rule by hand, its batched form, the pipeline's resets, the meta-gradient by finite differences."""

import numpy as np
import pytest
import torch

from hypergym.learners.optim4rl import BatchedOptim4RL, Optim4RLRule, meta_loss, pipeline_offsets, pipeline_resets


def _fixed(rule: Optim4RLRule, o1: float, o2: float) -> Optim4RLRule:
    """The MLPs' last layers output the constants o1 and o2 (what the GRUs give no longer matters)."""
    with torch.no_grad():
        for mlp, value in ((rule.mlp_m, o1), (rule.mlp_v, o2)):
            mlp[-1].weight.zero_()
            mlp[-1].bias.fill_(value)
    return rule


def test_one_step_by_hand_and_a_zero_gradient_does_not_move():
    rule = _fixed(Optim4RLRule(mlp=(4,)), o1=np.log(2.0), o2=np.log(9.0))  # m = 2 sign(g), v = 9
    h_m, h_v = rule.initial_state(3)
    u, h_m2, _ = rule(torch.tensor([0.5, -3.0, 0.0]), h_m, h_v)
    torch.testing.assert_close(u, torch.tensor([-2 / 3, 2 / 3, 0.0]), rtol=1e-6, atol=1e-7)  # -m / sqrt(v + 1e-8)
    assert not torch.equal(h_m2[0], h_m2[1])  # each coordinate's GRU state follows its own gradient
    # eps keeps v = 0 finite: exp(o2) -> 0 gives -m / sqrt(1e-8)
    rule = _fixed(Optim4RLRule(mlp=()), o1=0.0, o2=-200.0)
    u, *_ = rule(torch.tensor([1.0]), *rule.initial_state(1))
    torch.testing.assert_close(u, torch.tensor([-1e4]))


def test_the_batched_optimiser_steps_each_member_with_its_step_size_and_keeps_the_hidden_state():
    torch.manual_seed(0)
    rule = Optim4RLRule()
    flat, grad = torch.zeros(2, 3), torch.tensor([[1.0, -1.0, 0.0], [0.2, 5.0, -0.1]])
    opt = BatchedOptim4RL(flat, grad, rule, clip=1.0)
    expected, h_m, _ = rule(grad.clamp(-1, 1).reshape(-1), *rule.initial_state(6))
    opt.step(torch.tensor([0.1, 0.01], dtype=torch.float64))
    torch.testing.assert_close(flat, expected.view(2, 3).detach() * torch.tensor([[0.1], [0.01]]))
    torch.testing.assert_close(opt.state["h_m"].reshape(6, -1), h_m.detach())
    assert flat[0, 2] == 0 and opt.step_count.tolist() == [1, 1]
    before = flat.clone()  # a second step reads the advanced hidden states: a different update for the same g
    opt.step(torch.tensor([0.1, 0.01], dtype=torch.float64))
    assert not torch.allclose(flat - before, before)


def test_pipeline_resets_stagger_the_units_and_share_offsets_when_units_exceed_the_interval():
    offsets = pipeline_offsets(4, 8)
    assert offsets.tolist() == [0, 2, 4, 7]
    which = {t: np.flatnonzero(pipeline_resets(t, offsets, 8)).tolist() for t in range(1, 18)}
    assert which[1] == [0] and which[3] == [1] and which[5] == [2] and which[8] == [3] and which[9] == [0]
    assert which[2] == [] and which[17] == [0]
    shared = pipeline_offsets(5, 2)  # more units than iterations in the interval: four reset together
    assert shared.tolist() == [0, 0, 0, 0, 1]
    assert pipeline_resets(1, shared, 2).sum() == 4 and pipeline_resets(2, shared, 2).tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="positive"):
        pipeline_offsets(0, 4)


def test_the_meta_gradient_through_two_inner_steps_matches_finite_differences():
    """Inner gradients are constants (stop-gradient): the finite differences replay the same ones."""
    torch.manual_seed(0)
    rule = Optim4RLRule(mlp=(4,)).double()
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    theta0 = torch.tensor([0.3, 0.1, -0.4], dtype=torch.float64)

    def inner_grad(theta, k):  # a quadratic inner loss
        return 2 * (theta - target) * (1 + k)

    def outer(theta):
        return ((theta - target) ** 2).sum()

    loss, grads = meta_loss(rule, theta0, inner_grad, outer, steps=2, alpha=0.1)
    loss.backward()
    for param in (rule.mlp_m[0].weight, rule.gru_v.weight_hh, rule.mlp_v[-1].bias):
        analytic = param.grad.clone()
        numeric = torch.zeros_like(param)
        flat, num = param.data.view(-1), numeric.view(-1)
        for i in range(flat.numel()):
            keep = flat[i].item()
            values = []
            for delta in (1e-6, -1e-6):
                flat[i] = keep + delta
                with torch.no_grad():
                    values.append(meta_loss(rule, theta0, inner_grad, outer, 2, 0.1, grads=grads)[0].item())
            flat[i] = keep
            num[i] = (values[0] - values[1]) / 2e-6
        torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)
        assert analytic.abs().max() > 0


def test_linear_optim_by_hand():
    from hypergym.learners.optim4rl import LinearOptimRule

    rule = LinearOptimRule(mlp=(4,))
    with torch.no_grad():
        rule.mlp[-1].weight.zero_()
        rule.mlp[-1].bias.copy_(torch.tensor([np.log(2.0), np.log(3.0), 0.5]))  # u = -(2 g + 3 * 0.5)
    u, h = rule(torch.tensor([1.0, 0.0, -2.0]), *rule.initial_state(3))
    torch.testing.assert_close(u, torch.tensor([-3.5, -1.5, 2.5]))
    assert h.shape == (3, 8)


def test_the_tape_gives_the_meta_gradient_of_the_unrolled_updates():
    """Steps recorded on the tape differentiate as meta_loss's unroll of the same gradients does."""
    torch.manual_seed(1)
    rule = Optim4RLRule(mlp=(4,)).double()
    theta0 = torch.tensor([[0.3, 0.1, -0.4]], dtype=torch.float64)
    grads = [torch.tensor([[0.5, -1.0, 0.2]], dtype=torch.float64), torch.tensor([[0.1, 0.3, -0.7]]).double()]
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    loss, _ = meta_loss(rule, theta0[0], None, lambda t: (weights * t).sum(), 2, 0.1, [g[0] for g in grads])
    expected = torch.autograd.grad(loss, list(rule.parameters()))

    flat, grad = theta0.clone(), torch.zeros_like(theta0)
    opt = BatchedOptim4RL(flat, grad, rule)
    opt.start_tape()
    for g in grads:
        grad.copy_(g)
        opt.step(torch.tensor([0.1], dtype=torch.float64))
    change = opt.end_tape()
    torch.testing.assert_close(change.detach(), flat - theta0)  # the tape holds what the steps did
    got = torch.autograd.grad((weights * change).sum(), list(rule.parameters()))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert opt.path is None and any(float(g.abs().max()) > 0 for g in got)


def test_a_learned_optimiser_file_round_trips_and_bad_files_are_refused(tmp_path):
    from hypergym.learners.optim4rl import LinearOptimRule, load_rule, save_rule

    for rule in (Optim4RLRule(mlp=(3,)), LinearOptimRule(mlp=())):
        save_rule(rule, tmp_path / "r.pt", {"task": "x"})
        loaded, meta = load_rule(tmp_path / "r.pt")
        assert type(loaded) is type(rule) and meta == {"task": "x"}
        for a, b in zip(loaded.state_dict().values(), rule.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b)
    (tmp_path / "bad.pt").write_text("not a file of ours")
    with pytest.raises(ValueError, match="not a learned-optimiser file"):
        load_rule(tmp_path / "bad.pt")
    torch.save({"format": "hypergym-learned-optimizer", "version": 99, "rule": "optim4rl"}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="version 99"):
        load_rule(tmp_path / "new.pt")


def test_a_taped_step_reads_rows_a_rollback_restored():
    """Taping keeps the gradient path, but each step starts from the live hidden states, as an untaped one does."""
    torch.manual_seed(2)
    rule = Optim4RLRule(mlp=(4,))
    grads = [torch.tensor([[0.5, -1.0], [0.2, 0.3]]), torch.tensor([[0.1, 0.4], [-0.6, 0.2]])]
    taped, plain = [BatchedOptim4RL(torch.zeros(2, 2), torch.zeros(2, 2), rule) for _ in range(2)]
    taped.start_tape()
    for k, g in enumerate(grads):
        for opt in (taped, plain):
            opt.grad.copy_(g)
            opt.step(torch.tensor([0.1, 0.1], dtype=torch.float64))
            if k == 0:  # member 0's update rolled back: its hidden states restored to the start
                for h in opt.state.values():
                    h[0] = 0
    for name in plain.state:
        torch.testing.assert_close(taped.state[name], plain.state[name])
    assert taped.end_tape().requires_grad
