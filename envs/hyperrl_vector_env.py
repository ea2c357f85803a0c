"""``HyperRLVectorEnv``: N Hyper-RL MDPs (one inner run each) trained as one batched computation.

``gym.make_vec("HyperRL-PPO-HalfCheetah", num_envs=16)`` returns one: member ``i`` is what
``gym.make("HyperRL-PPO-HalfCheetah")`` is, with its own inner run. Both are views of the same machinery
(:class:`~hypergym.envs.runs.InnerRuns`: one learner core over the members, their inner envs, one
batched encoder), with M = N here and M = 1 there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hypergym.checkpoint import Checkpointable
from hypergym.devices import check_population_memory
from hypergym.envs.hyperrl_env import SettingsView
from hypergym.envs.runs import InnerRuns, objects
from hypergym.envs.settings import HyperRLSettings
from hypergym.seeding import member_seeds

__all__ = ["HyperRLVectorEnv"]


class HyperRLVectorEnv(SettingsView, Checkpointable, VectorEnv):
    """A population of ``num_envs`` Hyper-RL MDPs (members), as a Gymnasium vector env.

    ## Members
    Member ``i`` has the semantics of :class:`~hypergym.envs.HyperRLEnv` built with the same arguments:
    each step is one policy update of member ``i``'s learner with the hyperparameters of ``actions[i]``,
    the observation is its encoded hyper-state, the reward its hyper-reward. Members are independent:
    their envs, normalisation statistics, optimiser states and hyperparameters are their own, and member
    ``i``'s observations and rewards do not depend on the other members' actions.

    ## Waiting
    Hyperparameters that change how much work a rollout is (PPO's ``batch_size`` and ``n_epochs``) are
    each member's own, so members use up a rollout in different numbers of steps. Rollouts, phases and
    learning episodes still end together: a member that has used up the rollout waits for the others.
    ``info["waiting"]`` (present while any member waits) marks it from the step of its last update until
    the step that collects the next rollout; while it waits its action is ignored, its reward is 0 and its
    observation unchanged, and the step that collects the rollout returns the outcome of its last update
    (losses, divergence, G): its transition is from the observation it last acted on to that step's.
    A waiting member's steps are no transitions: :class:`~hypergym.agents.population.PerMemberAgent`
    and :func:`hypergym.run` skip them, so each member takes its single run's steps.

    ## Autoreset
    ``metadata["autoreset_mode"]`` is ``SAME_STEP``: on the step that ends a learning episode the returned
    observation is already the next episode's (the same hyper-state when the run continues; a new run's
    when the budget is spent, seeded from the env's RNG); the ending one is in ``info["final_obs"]``
    (an object array) with the step's info in ``info["final_info"]``. With ``env.autorestart = False``
    (what :func:`hypergym.run` sets while it drives the population) finished runs are not restarted: the
    returned observation is the ending one, the trained learners stay, and ``reset()`` starts new runs.

    ## Info
    A dict of arrays with one entry per member (and ``_key`` masks): ``hyperparams`` and ``losses``
    (dicts of ``[N]`` arrays), ``env_steps``, ``updates``, ``phase_step``, ``diverged``,
    ``run_finished``, ``episode_returns`` (object array of lists), ``G`` on the last step of a phase, and
    the encoder's ``encoder_loss`` / ``encoder_kl`` once it has trained.

    ## Arguments
    Args:
        num_envs: N, the number of members.
        **kwargs: The arguments of :class:`~hypergym.envs.HyperRLEnv` (a registered id's preset plus
            overrides): A2C, PPO or ACKTR, on any task (vector observations or Atari frames).

    Raises:
        ValueError: For ``num_envs < 1``, a population larger than the device's memory holds (before any
            allocation), or any invalid ``HyperRLEnv`` argument.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs (the population size) must be a positive integer, got {num_envs!r}")
        self.settings = HyperRLSettings.from_kwargs(**kwargs)  # every argument checked, the full grid included
        check_population_memory(int(num_envs), self.settings.member_bytes, self.settings.device)
        self.num_envs = int(num_envs)
        self.single_observation_space = self.settings.observation_space
        self.single_action_space = self.settings.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.runs = InnerRuns(self.settings, n_members=self.num_envs)
        self._obs: np.ndarray | None = None
        self._needs_reset = True
        #: Start new runs in the step that finishes the runs (Gymnasium's same-step autoreset); see Autoreset.
        self.autorestart = True

    @property
    def run_seeds(self) -> list[int] | None:
        """Seeds of the current runs."""
        return self.runs.run_seeds

    def _draw_seeds(self) -> list[int]:
        return [int(s) for s in self.np_random.integers(2**31 - 1, size=self.num_envs)]

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new runs (``seed`` given, runs finished, or ``options["restart"]``) or the next learning episode.

        Args:
            seed: One seed per member, or an int ``s`` for seeds ``s, s + 1, ...``.
            options: ``{"restart": True}`` forces new runs.
        """
        seeds: list[int] | None = None
        if seed is not None:
            seeds = [int(s) for s in member_seeds(seed, self.num_envs)]  # type: ignore[arg-type]
            super().reset(seed=seeds[0])
        runs = self.runs
        new_run, _ = runs.begin_episode(seeds, options, self._draw_seeds)
        self._needs_reset = False
        if new_run or self._obs is None:
            self._obs = runs.observe()
        info = runs.base_info()
        info["new_run"] = np.full(self.num_envs, new_run)
        info["run_seed"] = np.asarray(self.run_seeds)
        return self._obs.copy(), self._with_masks(info)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One policy update of every member with its action's hyperparameters.

        Raises:
            RuntimeError: Before ``reset``.
            TypeError: If ``actions`` are not one action per member of the single action space's kind.
            ValueError: If an action is outside the space.
        """
        if self._needs_reset or not self.runs.started:
            raise RuntimeError("call reset() before step(): no learning episode is running")
        runs = self.runs
        indices = self.space.batch_indices(actions, self.action_mode, self.num_envs)
        rewards, terminated, truncated, info = runs.step(indices)
        obs = runs.observe()
        if terminated or truncated:
            # Same-step autoreset: the next learning episode starts now (a new run once the budget is spent).
            info["final_obs"] = objects(list(obs))
            info["final_info"] = self._with_masks(dict(info))
            if runs.phase.run_finished and not self.autorestart:
                self._needs_reset = True  # the trained runs stay until reset() starts new ones
            elif runs.begin_episode(None, None, self._draw_seeds)[0]:
                obs = runs.observe()
                info["run_seed"] = np.asarray(self.run_seeds)
        self._obs = obs
        n = self.num_envs
        return (
            obs.copy(),
            rewards.astype(np.float64),
            np.full(n, terminated),
            np.full(n, truncated),
            self._with_masks(info),
        )

    # ------------------------------------------------------------------ population operations
    def recent_returns(self) -> list[np.ndarray]:
        """Each member's most recent raw inner-episode returns (oldest first)."""
        if self.runs.learner is None:
            raise RuntimeError("call reset() first: no runs have started")
        return self.runs.learner.recent_returns()

    def copy_member(self, dst: int, src: int) -> np.ndarray:
        """Member ``dst`` continues as a copy of member ``src``'s run (PBT's exploit), in process.

        Copied: the policy, optimiser state, gradient history, rollback snapshots, current rollout,
        recent returns, observation-normalisation statistics and encoder state (projection; VAE weights
        and optimiser), so ``dst``'s hyper-state is ``src``'s and, given the same hyperparameters, its next
        update is ``src``'s. ``dst``'s inner envs continue their own episodes, and no hyperparameter
        that takes effect later is copied: those in force from the next step are the ones the next
        action sets (Ray Tune's checkpoint round-trip can overwrite them; this cannot).

        Args:
            dst: The member that is overwritten.
            src: The member copied.

        Returns:
            The batch's current observations ``[N, ...]`` (``dst``'s row now ``src``'s).

        Raises:
            RuntimeError: Before the first ``reset``.
            ValueError: If an index is not a member's.
        """
        if not self.runs.started:
            raise RuntimeError("call reset() first: no runs have started")
        for name, k in (("dst", dst), ("src", src)):
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.num_envs:
                raise ValueError(f"{name}={k!r} is not a member index (0..{self.num_envs - 1})")
        self.runs.copy_member(int(dst), int(src))
        self._obs = self.runs.observe()
        return self._obs.copy()

    def _with_masks(self, info: dict[str, Any]) -> dict[str, Any]:
        """Gymnasium's vector-info convention: a ``_key`` mask beside every key (all members have them)."""
        for key in [k for k in info if not k.startswith("_")]:
            info[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return info

    def close_extras(self, **kwargs: Any) -> None:
        """Close the members' inner envs (the env can be reset again afterwards)."""
        self.runs.close()
