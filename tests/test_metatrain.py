"""``hypergym meta-train`` (pipeline training of a learned optimiser) and the ``optimizer`` setting of the ids."""

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import hypergym  # noqa: F401  # registers the ids
from hypergym.cli import main
from hypergym.learners.optim import BatchedAdam, BatchedRMSprop
from hypergym.learners.optim4rl import BatchedOptim4RL, LinearOptimRule, load_rule
from hypergym.metatrain import MetaTrainer, MetaTrainSettings, meta_train

TINY = {"policy_kwargs": {"net_arch": [8]}}


def _settings(**kw):
    return MetaTrainSettings("HyperRL-A2C-Catch", **{"iterations": 4, "units": 4, "interval": 2,
                                                     "inner_updates": 2, "env_kwargs": TINY, **kw})  # fmt: skip


def _catch(optimizer):
    """A tiny Catch env stepping with ``optimizer``, reset."""
    env = gym.make("HyperRL-A2C-Catch", optimizer=str(optimizer), obs_mode="random", n_envs=2, updates_per_phase=1,
                   total_env_steps=400, **TINY)  # fmt: skip
    env.reset(seed=0)
    return env


def _rule_tensors(trainer):
    return [p.detach().clone() for p in trainer.rule.parameters()]


def test_meta_training_steps_the_rule_resets_units_on_schedule_and_writes_a_usable_file(tmp_path):
    trainer = MetaTrainer(_settings())
    before = _rule_tensors(trainer)
    first = trainer.learner.flat.clone()
    row = trainer.iterate()  # iteration 1: the units with offset 0 (units 0, 1, 2 of int(linspace(0, 1, 4))) reset
    assert row["resets"] == 3 and row["skipped"] == 0 and row["env_steps"] == 4 * 20 * 3
    assert any(not torch.equal(a, b) for a, b in zip(before, _rule_tensors(trainer), strict=True))
    assert not torch.equal(trainer.learner.flat[3], first[3])  # unit 3 trained on, not reset
    assert torch.all(trainer.optimizer.state["h_m"][:3] == 0) and torch.any(trainer.optimizer.state["h_m"][3] != 0)
    assert trainer.iterate()["resets"] == 4  # iteration 2: unit 3

    path = meta_train(_settings(), tmp_path / "mt", progress=False)
    _, meta = load_rule(path)
    assert meta["done_iterations"] == 4 and meta["pipeline"] is True and meta["env_id"] == "HyperRL-A2C-Catch"
    with (tmp_path / "mt" / "progress.csv").open() as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    env = _catch(path)
    learner = env.unwrapped.runs.learner
    assert isinstance(learner.optimizer, BatchedOptim4RL)
    start = learner.flat.clone()
    env.step(env.action_space.sample())
    assert not torch.equal(learner.flat, start) and torch.isfinite(learner.flat).all()


def test_without_the_pipeline_no_unit_is_reset():
    trainer = MetaTrainer(_settings(pipeline=False))
    for _ in range(3):
        row = trainer.iterate()
    assert row["resets"] == 0


def test_several_ids_train_one_rule_each_on_units_of_its_own():
    one = MetaTrainer(_settings(max_norm=0.0))
    two = MetaTrainer(_settings(max_norm=0.0, extra_ids=("HyperRL-A2C-SmallDenseShort",)))
    grid = two.tasks[1].learner
    assert torch.equal(one.learner.flat, two.learner.flat)  # the first id's units are a one-id run's
    assert grid.flat.shape[0] == 4 and grid.flat.shape[1] != one.learner.flat.shape[1]  # a network of its own
    start = grid.flat.clone()
    one.iterate()
    row = two.iterate()
    assert torch.equal(one.learner.flat, two.learner.flat)  # the same inner updates and resets on the first id
    assert not torch.equal(grid.flat[3], start[3])  # the grid's units trained with the same rule
    assert row["resets"] == 6 and row["env_steps"] == 2 * 4 * 20 * 3
    # unclipped, the rule's gradient is the mean over ids: twice it is not the first id's alone
    grads = [(a.grad, b.grad) for a, b in zip(one.rule.parameters(), two.rule.parameters(), strict=True)]
    assert any(not torch.allclose(2 * b, a) for a, b in grads)
    with pytest.raises(ValueError, match="each id once"):
        MetaTrainSettings("HyperRL-A2C-Catch", iterations=1, extra_ids=("HyperRL-A2C-Catch",))


def test_a_checkpoint_of_one_id_written_before_several_ids_resumes_as_it_was():
    import copy

    trainer = MetaTrainer(_settings())
    trainer.iterate()
    old = copy.deepcopy(trainer.__dict__)  # the layout before several ids: the one core on the trainer itself
    task = old.pop("tasks")[0]
    old.update(env=task.env, learner=task.learner, optimizer=task.optimizer, resets=task.resets)
    resumed = MetaTrainer.__new__(MetaTrainer)
    resumed.__setstate__(old)
    timeless = [{k: v for k, v in t.iterate().items() if k != "seconds"} for t in (resumed, trainer)]
    assert timeless[0] == timeless[1] and timeless[0]["resets"] == 4
    assert all(torch.equal(a, b) for a, b in zip(_rule_tensors(resumed), _rule_tensors(trainer), strict=True))


def test_a_resumed_meta_training_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = meta_train(_settings(), tmp_path / "a", progress=False)
    meta_train(_settings(iterations=2), tmp_path / "b", checkpoint_every=1, progress=False)
    resumed = meta_train(_settings(), tmp_path / "b", progress=False)
    for a, b in zip(load_rule(straight)[0].state_dict().values(), load_rule(resumed)[0].state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    with (tmp_path / "b" / "progress.csv").open() as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="other settings"):
        meta_train(_settings(units=2), tmp_path / "b", progress=False)


def test_a_non_finite_meta_gradient_is_skipped_and_counted_never_written():
    trainer = MetaTrainer(_settings())
    original = trainer.learner.member_losses
    calls = {"n": 0}

    def poisoned(batch):  # the outer loss (the third call: after 2 inner updates) is NaN for unit 0
        calls["n"] += 1
        loss, parts = original(batch)
        if calls["n"] == 3:
            loss = loss * torch.tensor([np.nan, 1.0, 1.0, 1.0])
        return loss, parts

    trainer.learner.member_losses = poisoned
    before = _rule_tensors(trainer)
    row = trainer.iterate()
    assert row["skipped"] == 1
    assert all(torch.equal(a, b) for a, b in zip(before, _rule_tensors(trainer), strict=True))
    assert trainer.iterate()["skipped"] == 1  # the next iteration steps again
    assert any(not torch.equal(a, b) for a, b in zip(before, _rule_tensors(trainer), strict=True))


def test_the_linear_rule_meta_trains_and_its_file_is_read_as_linear(tmp_path):
    path = meta_train(_settings(rule="linear", iterations=2), tmp_path / "lin", progress=False)
    assert isinstance(load_rule(path)[0], LinearOptimRule)
    env = _catch(path)
    assert isinstance(env.unwrapped.runs.learner.optimizer.rule, LinearOptimRule)


def test_optimizer_names_todays_rules_and_refuses_what_it_cannot_honour():
    def learner(env_id, **kw):
        env = gym.make(env_id, **{"obs_mode": "random", "total_env_steps": 1024, **TINY, **kw})
        env.reset(seed=0)
        env.step(0)
        return env.unwrapped.runs.learner

    assert isinstance(learner("HyperRL-A2C-CartPole").optimizer, BatchedRMSprop)  # the preset's
    assert isinstance(learner("HyperRL-PPO-CartPole", optimizer="rmsprop").optimizer, BatchedRMSprop)
    adam = learner("HyperRL-A2C-CartPole", optimizer="adam")
    same = learner("HyperRL-A2C-CartPole", use_rms_prop=False)
    assert isinstance(adam.optimizer, BatchedAdam) and torch.equal(adam.flat, same.flat)  # today's Adam exactly
    with pytest.raises(ValueError, match="K-FAC"):
        gym.make("HyperRL-ACKTR-CartPole", optimizer="adam")
    with pytest.raises(ValueError, match="no learned-optimiser file"):
        gym.make("HyperRL-A2C-CartPole", optimizer="missing.pt")
    with pytest.raises(ValueError, match="takes none"):
        gym.make("HyperRL-PPO-CartPole", optimizer="rmsprop", policy_kwargs={"optimizer_kwargs": {"eps": 1e-8}})
    eps = {"optimizer_kwargs": {"eps": 1e-7}}  # Adam's eps, honoured when optimizer="adam" overrides use_rms_prop
    assert learner("HyperRL-A2C-CartPole", optimizer="adam", policy_kwargs=eps).optimizer.eps == 1e-7
    with pytest.raises(ValueError, match="A2C"):
        MetaTrainer(MetaTrainSettings("HyperRL-PPO-CartPole", iterations=1))


def test_the_meta_train_command(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["meta-train", "HyperRL-A2C-Catch", "HyperRL-A2C-SmallDenseShort", "--iterations", "2", "--units", "2",
            "--interval", "2", "--inner-updates", "1", "--set", "policy_kwargs={'net_arch': [8]}",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "optimizer.pt").is_file() and "learned optimiser:" in capsys.readouterr().out
    assert load_rule(out / "optimizer.pt")[1]["extra_ids"] == ["HyperRL-A2C-SmallDenseShort"]
    assert main(["meta-train", "HyperRL-A2C-Catch", "--iterations", "0", "--out", str(tmp_path / "x")]) == 2


def test_every_a2c_and_ppo_id_takes_the_shipped_optimisers_and_acktr_ids_refuse():
    from hypergym.envs.settings import HyperRLSettings
    from hypergym.presets import PRESETS

    for env_id in PRESETS:
        for name in ("optim4rl", "linear"):
            if "-ACKTR-" in env_id:
                with pytest.raises(ValueError, match="K-FAC"):
                    HyperRLSettings.from_kwargs(preset=env_id, optimizer=name)
            else:
                assert HyperRLSettings.from_kwargs(preset=env_id, optimizer=name).config.optimizer == name


def test_the_optimizer_snippet_of_the_docs_runs_as_printed():
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "learners.md").read_text()
    section = text[text.index("### The `optimizer` setting") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/learners.md optimizer snippet", "exec"), namespace)
    env = namespace["env"]
    env.reset(seed=0)
    assert isinstance(env.unwrapped.runs.learner.optimizer, BatchedOptim4RL)
