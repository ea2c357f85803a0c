"""``hypergym meta-train``: Optim4RL's pipeline training of a learned optimiser over a population of A2C units.

Each of the ``units`` is a member of one learner core (its own parameters, env and the rule's hidden states,
one env each, as the official code). One meta-iteration (the official code's ``agents/MetaA2C.py``):

1. ``inner_updates`` (M) A2C updates of every unit, each on a fresh rollout, stepped by the rule being
   trained; the inner gradients are constants, and the optimiser keeps the parameters' change in the rule's
   graph (:meth:`~hypergym.learners.optim4rl.BatchedOptim4RL.start_tape`);
2. a fresh rollout with the parameters after them, never trained on: the outer loss is the same A2C loss on it,
   and its gradient ``G`` in the parameters gives the meta-gradient by the chain rule, ``d(G . change)/d phi``,
   averaged over the units;
3. a meta-gradient that is not finite, or an iteration in which a unit's update diverged, is skipped and
   counted (never written into the rule); else it is clipped to ``max_norm`` (global norm) and the
   meta-optimiser (Adam) steps;
4. pipeline training: unit ``i`` is reset at iteration ``t`` when ``(t - 1) % interval == r_i``, offsets
   ``r = int(linspace(0, interval - 1, units))``: fresh parameters (a new seed) and zero hidden states.
   Unlike the official code a reset unit's env finishes the episode under way (the core resets envs only
   with their episodes); ``--no-pipeline`` never resets.

With ``extra_ids`` the rule trains on several tasks at once (the paper's 6-grid run, Fig. 4): each id has
its own ``units`` units in a learner core of its own (the ids' networks differ), the rule steps them all, and
the meta-gradient is the mean over ids of each id's mean over its units, as the official code averages over
units, then over tasks. (The code also scales each grid's rewards for that run; here they are unscaled.)

The run directory holds ``optimizer.pt`` (the learned-optimiser file ``optimizer=`` reads), ``progress.csv``
(one row per iteration), ``checkpoint.ckpt`` (every ``checkpoint_every`` iterations and at the end; a run
that finds one resumes from it), and with ``tensorboard`` the event files.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hypergym.checkpoint import read_checkpoint, write_checkpoint
from hypergym.checks import check_count
from hypergym.learners.optim4rl import RULES, BatchedOptim4RL, pipeline_offsets, pipeline_resets, save_rule
from hypergym.seeding import TorchRNG, derive_seeds

__all__ = ["MetaTrainSettings", "MetaTrainer", "meta_train"]

_COLUMNS = ("iteration", "env_steps", "outer_loss", "unit_return", "meta_grad_norm", "skipped", "resets", "seconds")


@dataclass(frozen=True)
class MetaTrainSettings:
    """The settings of one meta-training run (the official code's names in brackets)."""

    env_id: str
    """An A2C id whose preset gives the task and the inner A2C (e.g. ``HyperRL-A2C-Catch``)."""
    iterations: int
    """Meta-iterations (meta-optimiser steps, skipped ones included)."""
    units: int = 64
    """Units n, one env each (``num_envs``)."""
    interval: int = 32
    """Reset interval m in iterations (``reset_interval``)."""
    inner_updates: int = 4
    """M, inner updates the meta-gradient unrolls (``inner_updates``)."""
    meta_lr: float = 1e-3
    """Adam's step size on the rule's parameters."""
    max_norm: float = 0.5
    """Clip of the meta-gradient's global norm (0: none)."""
    rule: str = "optim4rl"
    """``"optim4rl"`` or ``"linear"`` (LinearOptim)."""
    mlp: tuple[int, ...] = (16, 16)
    """Hidden widths of the rule's MLPs (the paper: (16, 16))."""
    pipeline: bool = True
    """Staggered resets (``False``: the paper's "without pipeline training")."""
    seed: int = 0
    """Seed of the rule's initial weights, the units and their resets."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the ids' presets (e.g. ``learning_rate``)."""
    extra_ids: tuple[str, ...] = ()
    """More A2C ids to train on at once, each with ``units`` units of its own (see the module)."""

    def __post_init__(self) -> None:
        if len({self.env_id, *self.extra_ids}) != 1 + len(self.extra_ids):
            raise ValueError(f"each id once: got {self.env_id!r} and {list(self.extra_ids)}")
        for name in ("iterations", "units", "interval", "inner_updates"):
            check_count(name, getattr(self, name))
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; choose from {sorted(RULES)}")
        if not (self.meta_lr > 0 and self.max_norm >= 0):
            raise ValueError(f"meta_lr must be > 0 and max_norm >= 0, got {self.meta_lr!r} and {self.max_norm!r}")


class _Task:
    """One id's units: the learner core whose members they are, and the rule's batched optimiser over them.

    Task ``k`` draws its seeds, and those of its units' resets, from the words ``2k, 2k + 1`` of each seed's
    stream, so the first id's units (and their resets) are those of a one-id run.
    """

    def __init__(self, env_id: str, k: int, s: MetaTrainSettings, rule: torch.nn.Module) -> None:
        from hypergym.envs.members import MemberVecEnv
        from hypergym.envs.settings import HyperRLSettings

        env = HyperRLSettings.from_kwargs(preset=env_id, **{**s.env_kwargs, "n_envs": 1, "obs_mode": "random"})
        if env.algo != "A2C":
            raise ValueError(f"meta-training unrolls A2C updates (the paper's); {env_id} is {env.algo}")
        self.env, self.k, self.resets = env, k, 0
        seeds = [self._seeds(s.seed * 1_000_003 + i) for i in range(s.units)]
        venv = MemberVecEnv(env.task, [d[0] for d in seeds], n_envs=1, normalize=env.normalize, gamma=env.config.gamma)
        self.learner = env.learner_class(venv, env.config, [d[1] for d in seeds], "cpu", 0)
        self.optimizer = BatchedOptim4RL(self.learner.flat, self.learner.policy.flat_grad, rule)
        self.learner.use_optimizer(self.optimizer)

    def meta_gradient(self, inner_updates: int, divisor: int) -> tuple[torch.Tensor, np.ndarray]:
        """Add the units' summed meta-gradient over ``divisor`` to the rule's ``.grad``.

        ``inner_updates`` updates on fresh rollouts, taped; then the outer loss on a fresh rollout, its gradient
        ``G`` in the parameters, and ``d(G . change)/d phi`` by backpropagation through the tape.

        Returns:
            The units' outer losses, and which units diverged.
        """
        learner, diverged = self.learner, np.zeros(self.learner.flat.shape[0], dtype=bool)
        self.optimizer.start_tape()
        for _ in range(inner_updates):
            learner.collect_rollout()
            diverged |= learner.update_step().diverged
        change = self.optimizer.end_tape()
        learner.collect_rollout()  # the validation rollout: the outer loss's, never trained on
        loss, _ = learner.member_losses(learner.batch)
        learner.policy.zero_grad()
        learner.policy.backward(loss.sum())
        outer = learner.policy.flat_grad.detach()
        assert change is not None  # inner_updates >= 1
        ((outer * change).sum() / divisor).backward()
        learner.policy.zero_grad()
        return loss.detach(), diverged

    def _seeds(self, seed: int) -> list[int]:
        return derive_seeds(seed, 2 * self.k + 2)[2 * self.k :]

    @torch.no_grad()
    def reset(self, unit: int, seed: int) -> None:
        """Fresh parameters for ``unit`` (from ``seed``, never used before) and zero hidden states."""
        from hypergym.learners import build_policy

        torch_seed, _ = self._seeds(seed)
        with TorchRNG(torch_seed, torch.device("cpu")).active():
            policy = build_policy(self.learner.observation_space, self.learner.action_space, self.env.config)
        self.learner.flat[unit] = self.learner.policy.row_of(policy)
        mask = torch.zeros(self.learner.flat.shape[0], dtype=torch.bool)
        mask[unit] = True
        self.optimizer.reset_members(mask)


class MetaTrainer:
    """Pipeline training of a learned rule (see the module): build, :meth:`iterate`, :meth:`save`.

    Raises:
        ValueError: If the id is not an A2C id, or a setting is invalid.
    """

    def __init__(self, settings: MetaTrainSettings) -> None:
        s = settings
        self.settings = s
        with TorchRNG(s.seed, torch.device("cpu")).active():
            self.rule = RULES[s.rule](mlp=s.mlp)
        self.tasks = [_Task(env_id, k, s, self.rule) for k, env_id in enumerate((s.env_id, *s.extra_ids))]
        self.meta_optimizer = torch.optim.Adam(self.rule.parameters(), lr=s.meta_lr)
        self.offsets = pipeline_offsets(s.units, s.interval)
        self.iteration, self.skipped, self.env_steps = 0, 0, 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "tasks" not in state:  # a checkpoint written before several ids: its one id's core becomes task 0
            task = _Task.__new__(_Task)
            task.env, task.learner, task.optimizer = state.pop("env"), state.pop("learner"), state.pop("optimizer")
            task.k, task.resets = 0, state.pop("resets")
            state["tasks"] = [task]
        self.__dict__.update(state)

    @property
    def resets(self) -> int:
        """Unit resets so far, over every id."""
        return sum(task.resets for task in self.tasks)

    @property
    def learner(self) -> Any:
        """The first id's learner core (its units are its members)."""
        return self.tasks[0].learner

    @property
    def optimizer(self) -> BatchedOptim4RL:
        """The rule's batched optimiser over the first id's units."""
        return self.tasks[0].optimizer

    def iterate(self) -> dict[str, float]:
        """One meta-iteration (see the module); its row of ``progress.csv``."""
        s, started = self.settings, time.perf_counter()
        self.iteration += 1
        self.meta_optimizer.zero_grad()
        # one id at a time: the ids share nothing but the rule, which steps once all have added their gradient,
        # so the order changes no number and only one id's tape is alive at once
        steps = [task.meta_gradient(s.inner_updates, s.units * len(self.tasks)) for task in self.tasks]
        losses = [loss for loss, _ in steps]
        diverged = np.logical_or.reduce([d for _, d in steps])
        loss = torch.cat(losses)
        grads = [p.grad for p in self.rule.parameters() if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if math.isfinite(norm) and bool(torch.isfinite(loss).all()) and not diverged.any():
            if s.max_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.rule.parameters(), s.max_norm)
            self.meta_optimizer.step()
        else:
            self.skipped += 1
        reset = pipeline_resets(self.iteration, self.offsets, s.interval) if s.pipeline else np.zeros(s.units, bool)
        for task in self.tasks:
            for unit in np.flatnonzero(reset):
                task.resets += 1
                task.reset(int(unit), s.seed * 1_000_003 + s.units + task.resets)
        # the core counts one member's steps
        self.env_steps = sum(task.learner.env_steps for task in self.tasks) * s.units
        returns = [r[-10:].mean() for task in self.tasks for r in task.learner.recent_returns() if len(r)]
        return {
            "iteration": self.iteration, "env_steps": self.env_steps, "outer_loss": float(loss.mean()),
            "unit_return": float(np.mean(returns)) if returns else math.nan, "meta_grad_norm": norm,
            "skipped": self.skipped, "resets": self.resets, "seconds": time.perf_counter() - started,
        }  # fmt: skip

    def meta(self) -> dict[str, Any]:
        """What the learned-optimiser file records of its training."""
        from hypergym.version import __version__

        settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.settings).items()}
        return {**settings, "done_iterations": self.iteration, "skipped": self.skipped, "env_steps": self.env_steps,
                "hypergym": __version__}  # fmt: skip

    def save(self, out: Path) -> Path:
        """Write ``out/optimizer.pt`` and ``out/checkpoint.ckpt``; the optimiser file's path."""
        out.mkdir(parents=True, exist_ok=True)
        save_rule(self.rule, out / "optimizer.pt", self.meta())
        write_checkpoint(out / "checkpoint.ckpt", self)
        return out / "optimizer.pt"


def _keep_rows(path: Path, iterations: int) -> None:
    """Drop ``progress.csv``'s rows after iteration ``iterations``."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iterations]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, _COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def meta_train(
    settings: MetaTrainSettings,
    out: str | Path,
    checkpoint_every: int = 50,
    progress: bool = True,
    tensorboard: str | Path | None = None,
) -> Path:
    """Meta-train (or resume, from ``out/checkpoint.ckpt``) a learned optimiser; the path of its file.

    Raises:
        ValueError: If ``out`` holds a checkpoint of other settings.
    """
    out = Path(out)
    ckpt = out / "checkpoint.ckpt"
    if ckpt.is_file():
        trainer: MetaTrainer = read_checkpoint(ckpt)
        if {**asdict(trainer.settings), "iterations": 0} != {**asdict(settings), "iterations": 0}:
            raise ValueError(f"{ckpt} was written with other settings ({trainer.settings}); use another --out")
        trainer.settings = settings
        _keep_rows(out / "progress.csv", trainer.iteration)  # rows after the checkpoint are written again
    else:
        trainer = MetaTrainer(settings)
    out.mkdir(parents=True, exist_ok=True)
    logger = None
    if tensorboard is not None:
        from hypergym.tensorboard_log import HyperStepLogger

        logger = HyperStepLogger(tensorboard)
    from tqdm.auto import tqdm

    bar = tqdm(total=settings.iterations, initial=trainer.iteration, disable=not progress, unit="it")
    with (out / "progress.csv").open("a", newline="") as f:
        writer = csv.DictWriter(f, _COLUMNS)
        if f.tell() == 0:
            writer.writeheader()
        while trainer.iteration < settings.iterations:
            row = trainer.iterate()
            writer.writerow(row)
            if logger is not None:  # SB3's logger under HyperStepLogger: TensorBoard's meta/<column> scalars
                for key in _COLUMNS[2:]:
                    logger.logger.record(f"meta/{key}", row[key])
                logger.logger.dump(step=int(row["env_steps"]))
            bar.update(1)
            bar.set_postfix(loss=f"{row['outer_loss']:.3g}", ret=f"{row['unit_return']:.3g}", skipped=trainer.skipped)
            if trainer.iteration % checkpoint_every == 0:
                f.flush()
                trainer.save(out)
    bar.close()
    if logger is not None:
        logger.close()
    return trainer.save(out)
