"""The machinery of M inner runs: one learner core, one batched encoder, one update-phase counter.

:class:`InnerRuns` is the one implementation of the Hyper-RL MDP's dynamics (reset, step, observe).
:class:`~hypergym.envs.HyperRLEnv` is its view with M = 1, :class:`~hypergym.envs.HyperRLVectorEnv` its
view with M = N; they only convert actions in and observations, rewards and info out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypergym.encoders import Encoder, make_encoder
from hypergym.envs.evaluation import evaluate
from hypergym.envs.members import MemberVecEnv
from hypergym.envs.settings import HyperRLSettings
from hypergym.learners import Learner
from hypergym.seeding import derive_seeds

__all__ = ["InnerRuns", "PhaseCounter", "member_info", "objects"]


def objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` as they are (lists, arrays)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def member_info(info: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Member ``i``'s entries of a batched info dict, as a single run's info.

    Per-member arrays give their ``i``-th entry (NumPy scalars as Python numbers), dicts of arrays
    (``hyperparams``, ``losses``) a dict of entries; Gymnasium's ``_key`` masks and the autoreset's
    ``final_obs`` / ``final_info`` are left out.
    """
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key[0] == "_" or key == "final_obs" or key == "final_info":
            continue
        mask = info.get("_" + key)
        if mask is not None and not mask[i]:
            continue  # not this member's (Gymnasium's vector envs gather each key from some members)
        if isinstance(value, np.ndarray):
            x = value[i]
            out[key] = x.item() if isinstance(x, np.generic) else x
        elif isinstance(value, Mapping):
            out[key] = member_info(value, i)
    return out


@dataclass
class PhaseCounter:
    """Where the runs are in their update phase and learning episode (rollouts and phases end together)."""

    rollouts_per_phase: int
    """Rollouts that make an update phase."""
    phases_per_episode: int | None
    """Update phases that make a learning episode (``None``: the whole run)."""
    phase_step: np.ndarray | int = 0
    """Update steps each member has taken in the current phase (``[M]``; 0 at its start)."""
    rollouts_in_phase: int = 0
    """Rollouts collected in the current phase."""
    phases_in_episode: int = 0
    """Phases completed in the current learning episode."""
    run_finished: bool = False
    """The runs' env-step budget is spent (at the end of the phase that reached it)."""

    def start_run(self) -> None:
        """A new run: nothing done yet."""
        self.phase_step = self.rollouts_in_phase = self.phases_in_episode = 0
        self.run_finished = False

    def start_episode(self) -> None:
        """A new learning episode."""
        self.phases_in_episode = 0

    def rollout_collected(self) -> bool:
        """Count a rollout; whether it closes the update phase."""
        self.rollouts_in_phase += 1
        return self.rollouts_in_phase >= self.rollouts_per_phase

    def end_phase(self, env_steps: int, total_env_steps: int) -> tuple[bool, bool]:
        """Close an update phase: ``(terminated, truncated)`` of the learning episode (see Episode End)."""
        self.phase_step = 0
        self.rollouts_in_phase = 0
        self.phases_in_episode += 1
        self.run_finished = env_steps >= total_env_steps
        per_episode = self.phases_per_episode
        terminated = (per_episode is not None and self.phases_in_episode >= per_episode) or (
            per_episode is None and self.run_finished
        )
        return terminated, self.run_finished and not terminated


class InnerRuns:
    """M inner runs of one Hyper-RL MDP, trained as one batched computation.

    Args:
        settings: The MDP's settings.
        n_members: M.
    """

    def __init__(self, settings: HyperRLSettings, n_members: int) -> None:
        self.settings = settings
        self.n_members = n_members
        self.learner: Learner | None = None
        self.encoder: Encoder | None = None
        self.run_seeds: list[int] | None = None
        self.phase = PhaseCounter(settings.rollouts_per_phase, settings.phases_per_episode)
        self.hp_indices = self._default_indices()
        self._values = [np.asarray(p.values) for p in settings.space.params]
        self.eval_seeds: list[int] = []
        self.next_eval = 0
        self.last_stats: list[Any] = []
        self.held: dict[str, Any] = {}  # the losses and divergence of members that wait (see step)

    def _default_indices(self) -> np.ndarray:
        return np.tile(np.asarray(self.settings.space.default_indices(), dtype=np.float32), (self.n_members, 1))

    # ------------------------------------------------------------------ runs
    def begin_episode(
        self, seeds: list[int] | None, options: dict[str, Any] | None, draw_seeds: Callable[[], list[int]]
    ) -> tuple[bool, list[list[float]] | None]:
        """The one reset decision of both envs: a new run, or the next learning episode of the current one.

        New runs start (seeded ``seeds``, else ``draw_seeds()``) when seeds are given, ``options["restart"]``
        is true, no run has started or the runs are finished.

        Returns:
            Whether new runs started, and then each member's episodes finished in their first rollout.

        Raises:
            ValueError: On an unknown option.
            TypeError: If ``options["restart"]`` is not a boolean.
        """
        options = dict(options or {})
        unknown = sorted(set(options) - {"restart"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid are ['restart']")
        restart = options.get("restart", False)
        if not isinstance(restart, (bool, np.bool_)):
            raise TypeError(f"options['restart'] must be True or False, got {restart!r}")
        new_run = seeds is not None or bool(restart) or not self.started or self.phase.run_finished
        returns = self.start(seeds if seeds is not None else draw_seeds()) if new_run else None
        self.phase.start_episode()
        return new_run, returns

    def start(self, seeds: list[int]) -> list[list[float]]:
        """Start new runs seeded ``seeds`` and collect their first rollout; each member's finished episodes."""
        s = self.settings
        self.close()
        self.run_seeds = [int(x) for x in seeds]
        derived = [derive_seeds(x, 4) for x in self.run_seeds]  # envs, learner, encoder, evaluation envs
        venv = MemberVecEnv(
            s.task, [d[0] for d in derived], n_envs=s.n_envs, normalize=s.normalize, gamma=s.config.gamma
        )
        learner = s.learner_class(venv, s.config, [d[1] for d in derived], s.device, s.n_orders)
        self.learner = learner
        self.encoder = make_encoder(s.obs_mode, learner, [d[2] for d in derived], **s.encoder_kwargs)
        self.phase.start_run()
        self.held = {}
        self.hp_indices = self._default_indices()
        self.eval_seeds = [d[3] for d in derived]
        self.next_eval = s.eval_every or 0
        stats, _ = learner.collect_rollout()
        self.last_stats = stats  # the rollout the next update trains on (credit="before" credits it)
        self._schedule_lr(0)
        return [list(st.episode_returns) for st in stats]

    def _schedule_lr(self, steps_before: int) -> None:
        """The learning-rate factor of the rollout just collected, from the env steps done before it."""
        if self.settings.lr_decay == "linear":
            assert self.learner is not None
            self.learner.lr_scale = max(0.0, 1.0 - steps_before / self.settings.total_env_steps)

    @property
    def started(self) -> bool:
        """Whether runs are under way."""
        return self.learner is not None

    def observe(self) -> np.ndarray:
        """``[M, obs_dim]``: the encoded hyper-states, then the extras (progress, hyperparameter indices)."""
        assert self.learner is not None and self.encoder is not None
        s = self.settings
        obs = self.encoder.encode(self.learner)
        extras: list[np.ndarray] = []
        if "progress" in s.obs_extras:
            progress = min(self.learner.env_steps / s.total_env_steps, 1.0)
            extras.append(np.full((self.n_members, 1), progress, dtype=np.float32))
        if "hyperparams" in s.obs_extras:
            scale = np.maximum(s.space.nvec - 1, 1).astype(np.float32)
            extras.append((self.hp_indices / scale).astype(np.float32))
        return np.concatenate([obs, *extras], axis=1).astype(np.float32) if extras else obs

    def base_info(self) -> dict[str, Any]:
        """``env_steps``, ``updates`` and ``hyperparams`` (values in force), one entry per member."""
        assert self.learner is not None
        m = self.n_members
        return {
            "env_steps": np.full(m, self.learner.env_steps),
            "updates": self.learner.member_updates.copy(),
            "hyperparams": self.learner.hyperparams_in_force(),
        }

    # ------------------------------------------------------------------ one hyper-step
    def step(self, indices: np.ndarray) -> tuple[np.ndarray, bool, bool, dict[str, Any]]:
        """Apply the grid points ``indices [M, P]``, take one update step of every member.

        A member that has used up the rollout before the others (its own ``batch_size`` / ``n_epochs``)
        waits: ``info["waiting"]`` marks it from the step of its last update until the rollout every member
        shares is collected. Its action is ignored while it waits, and the outcome of its last update
        (losses, divergence, the phase's G) comes on the step that collects the rollout, as one transition.

        Returns:
            Rewards ``[M]``, ``terminated``, ``truncated`` (the same for every member) and the info, a dict
            of per-member arrays (``hyperparams`` and ``losses`` dicts of arrays).
        """
        assert self.learner is not None and self.encoder is not None
        s, learner, m = self.settings, self.learner, self.n_members
        waiting = learner.member_exhausted
        if waiting.any():  # their hyperparameters stay those of their last update
            indices = np.where(waiting[:, None], self.hp_indices.astype(indices.dtype), indices)
        learner.apply({p.name: self._values[j][indices[:, j]] for j, p in enumerate(s.space.params)})
        self.hp_indices = indices.astype(np.float32)
        result = learner.update_step()
        self.encoder.on_update(learner)
        self.phase.phase_step = self.phase.phase_step + ~waiting
        diverged = result.diverged.copy()
        info: dict[str, Any] = {
            "phase_step": np.broadcast_to(self.phase.phase_step, (m,)).copy(),
            "hyperparams": learner.hyperparams_in_force(),
            "losses": result.losses,
            "episode_returns": objects([[] for _ in range(m)]),
        }
        if self.held:  # the members that waited: their last update's outcome
            held = self.held["members"]
            for name, values in info["losses"].items():
                values[held] = self.held["losses"][name][held]
            diverged |= self.held["diverged"]
            self.held = {}
        rewards = np.zeros(m)
        terminated = truncated = False
        if not learner.rollout_exhausted:
            done = learner.member_exhausted
            if done.any():
                self.held = {"members": done, "losses": {k: v.copy() for k, v in info["losses"].items()}}
                self.held["diverged"] = diverged & done
                diverged &= ~done
                info["waiting"] = done
        else:
            # (a checkpoint written before credit existed has no last_stats; its runs credit "after")
            steps_before, trained_on = learner.env_steps, getattr(self, "last_stats", [])
            stats, rolled_back = learner.collect_rollout()
            self.last_stats = stats
            self._schedule_lr(steps_before)
            diverged |= rolled_back
            for i, st in enumerate(stats):
                info["episode_returns"][i] = list(st.episode_returns)
            if self.phase.rollout_collected():
                credited = trained_on if s.credit == "before" else stats
                rewards = np.array([s.reward_fn(st) for st in credited], dtype=np.float64)
                info["G"] = rewards.copy()
                terminated, truncated = self.phase.end_phase(learner.env_steps, s.total_env_steps)
            if s.eval_every is not None and (learner.env_steps >= self.next_eval or self.phase.run_finished):
                # The paper's protocol: every eval_every env steps, and the final policy.
                info["eval_return"] = evaluate(learner, s.task, self.eval_seeds, s.eval_episodes)
                while self.next_eval <= learner.env_steps:
                    self.next_eval += s.eval_every
        rewards = rewards + np.where(diverged, s.divergence_penalty, 0.0)
        info.update(self.encoder.metrics)
        info.update(
            env_steps=np.full(m, learner.env_steps),
            updates=learner.member_updates.copy(),
            diverged=diverged,
            run_finished=np.full(m, self.phase.run_finished),
            lr_scale=np.full(m, learner.lr_scale),
        )
        return rewards, terminated, truncated, info

    # ------------------------------------------------------------------ population operations
    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst``'s training state becomes member ``src``'s (learner and encoder)."""
        assert self.learner is not None and self.encoder is not None
        self.learner.copy_member(dst, src)
        self.encoder.copy_member(dst, src)
        for held in [self.held["members"], self.held["diverged"], *self.held["losses"].values()] if self.held else []:
            held[dst] = held[src]  # a waiting member's outcome to come

    def close(self) -> None:
        """Close the runs' inner envs."""
        if self.learner is not None:
            self.learner.close()
        self.learner = None
        self.encoder = None
