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
    """Overrides of the id's preset (e.g. ``learning_rate``)."""

    def __post_init__(self) -> None:
        for name in ("iterations", "units", "interval", "inner_updates"):
            check_count(name, getattr(self, name))
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; choose from {sorted(RULES)}")
        if not (self.meta_lr > 0 and self.max_norm >= 0):
            raise ValueError(f"meta_lr must be > 0 and max_norm >= 0, got {self.meta_lr!r} and {self.max_norm!r}")


class MetaTrainer:
    """Pipeline training of a learned rule (see the module): build, :meth:`iterate`, :meth:`save`.

    Raises:
        ValueError: If the id is not an A2C id, or a setting is invalid.
    """

    def __init__(self, settings: MetaTrainSettings) -> None:
        from hypergym.envs.members import MemberVecEnv
        from hypergym.envs.settings import HyperRLSettings

        s = settings
        env = HyperRLSettings.from_kwargs(preset=s.env_id, **{**s.env_kwargs, "n_envs": 1, "obs_mode": "random"})
        if env.algo != "A2C":
            raise ValueError(f"meta-training unrolls A2C updates (the paper's); {s.env_id} is {env.algo}")
        self.settings, self.env = s, env
        seeds = [derive_seeds(s.seed * 1_000_003 + i, 2) for i in range(s.units)]
        venv = MemberVecEnv(env.task, [d[0] for d in seeds], n_envs=1, normalize=env.normalize, gamma=env.config.gamma)
        self.learner = env.learner_class(venv, env.config, [d[1] for d in seeds], "cpu", 0)
        with TorchRNG(s.seed, torch.device("cpu")).active():
            self.rule = RULES[s.rule](mlp=s.mlp)
        self.optimizer = BatchedOptim4RL(self.learner.flat, self.learner.policy.flat_grad, self.rule)
        self.learner.use_optimizer(self.optimizer)
        self.meta_optimizer = torch.optim.Adam(self.rule.parameters(), lr=s.meta_lr)
        self.offsets = pipeline_offsets(s.units, s.interval)
        self.iteration, self.skipped, self.resets, self.env_steps = 0, 0, 0, 0

    def iterate(self) -> dict[str, float]:
        """One meta-iteration (see the module); its row of ``progress.csv``."""
        s, learner, started = self.settings, self.learner, time.perf_counter()
        self.iteration += 1
        diverged = np.zeros(s.units, dtype=bool)
        self.optimizer.start_tape()
        for _ in range(s.inner_updates):
            learner.collect_rollout()
            diverged |= learner.update_step().diverged
        change = self.optimizer.end_tape()
        learner.collect_rollout()  # the validation rollout: the outer loss's, never trained on
        loss, _ = learner.member_losses(learner.batch)
        learner.policy.zero_grad()
        learner.policy.backward(loss.sum())
        outer = learner.policy.flat_grad.detach()
        self.meta_optimizer.zero_grad()
        assert change is not None  # inner_updates >= 1
        ((outer * change).sum() / s.units).backward()
        grads = [p.grad for p in self.rule.parameters() if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if math.isfinite(norm) and bool(torch.isfinite(loss).all()) and not diverged.any():
            if s.max_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.rule.parameters(), s.max_norm)
            self.meta_optimizer.step()
        else:
            self.skipped += 1
        learner.policy.zero_grad()
        reset = pipeline_resets(self.iteration, self.offsets, s.interval) if s.pipeline else np.zeros(s.units, bool)
        for unit in np.flatnonzero(reset):
            self._reset(int(unit))
        self.env_steps = learner.env_steps * s.units  # the core counts one member's steps
        returns = [r[-10:].mean() for r in learner.recent_returns() if len(r)]
        return {
            "iteration": self.iteration, "env_steps": self.env_steps, "outer_loss": float(loss.detach().mean()),
            "unit_return": float(np.mean(returns)) if returns else math.nan, "meta_grad_norm": norm,
            "skipped": self.skipped, "resets": self.resets, "seconds": time.perf_counter() - started,
        }  # fmt: skip

    @torch.no_grad()
    def _reset(self, unit: int) -> None:
        """Fresh parameters for ``unit`` (a seed never used before) and zero hidden states."""
        from hypergym.learners import build_policy

        self.resets += 1
        torch_seed, _ = derive_seeds(self.settings.seed * 1_000_003 + self.settings.units + self.resets, 2)
        with TorchRNG(torch_seed, torch.device("cpu")).active():
            policy = build_policy(self.learner.observation_space, self.learner.action_space, self.env.config)
        self.learner.flat[unit] = self.learner.policy.row_of(policy)
        mask = torch.zeros(self.settings.units, dtype=torch.bool)
        mask[unit] = True
        self.optimizer.reset_members(mask)

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
