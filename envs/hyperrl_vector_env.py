"""``HyperRLVectorEnv``: N Hyper-RL MDPs (one inner run each) trained as one batched computation.

``gym.make_vec("HyperRL-PPO-HalfCheetah", num_envs=16)`` returns one: member ``i`` is what
``gym.make("HyperRL-PPO-HalfCheetah")`` is, with its own inner run, but the N learners are one
:class:`~hypergym.learners.population.PopulationLearner`, their inner envs one
:class:`~hypergym.envs.members.MemberVecEnv` and their hyper-states one batched encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hypergym.checkpoint import Checkpointable
from hypergym.encoders.population import PopulationEncoder, make_population_encoder
from hypergym.envs.hyperrl_env import HyperRLEnv, end_phase
from hypergym.envs.members import MemberVecEnv
from hypergym.envs.tasks import task_spaces, task_spec
from hypergym.learners import LEARNERS
from hypergym.learners.batched_policy import check_population_policy
from hypergym.learners.population import POPULATION_LEARNERS, WORK_HYPERPARAMS, PopulationLearner
from hypergym.seeding import derive_seeds
from hypergym.spaces import Hyperparameter, HyperparamSpace

__all__ = ["HyperRLVectorEnv"]


def _grid_items(hyperparams: Any) -> list[tuple[str, tuple[float, ...]]] | None:
    """``hyperparams`` (mapping, Hyperparameter list or HyperparamSpace) as ``(name, values)`` pairs."""
    if hyperparams is None:
        return None
    if isinstance(hyperparams, HyperparamSpace):
        return [(p.name, tuple(p.values)) for p in hyperparams.params]
    if isinstance(hyperparams, Mapping):
        return [(str(k), tuple(v)) for k, v in hyperparams.items()]
    if isinstance(hyperparams, Sequence) and all(isinstance(p, Hyperparameter) for p in hyperparams):
        return [(p.name, tuple(p.values)) for p in hyperparams]
    return None  # let HyperRLEnv report the type error


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` as they are (lists, arrays)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


class HyperRLVectorEnv(Checkpointable, VectorEnv):
    """A population of ``num_envs`` Hyper-RL MDPs (members), as a Gymnasium vector env.

    ## Members
    Member ``i`` has the semantics of :class:`~hypergym.envs.HyperRLEnv` built with the same arguments:
    each step is one policy update of member ``i``'s learner with the hyperparameters of ``actions[i]``,
    the observation is its encoded hyper-state, the reward its hyper-reward. Members are independent:
    their envs, normalisation statistics, optimiser states and hyperparameters are their own, and member
    ``i``'s observations and rewards do not depend on the other members' actions.

    ## Lockstep
    Hyperparameters that change how much work an update phase is (``batch_size``, ``n_epochs``,
    ``n_steps``) are the same for every member, so all members' phases, rollouts and learning episodes
    end on the same step. With more than one member, a preset grid that contains them is reduced: they
    are fixed at the configuration's value (a ``UserWarning`` names them; ``env.pinned`` holds them) and
    left out of the action space (``env.learner.apply`` still takes one value shared by all members). A
    population of one schedules them as a single run does.

    ## Autoreset
    ``metadata["autoreset_mode"]`` is ``SAME_STEP``: on the step that ends a learning episode the returned
    observation is already the next episode's (the same hyper-state when the run continues; a new run's
    when the budget is spent, seeded from the env's RNG); the ending one is in ``info["final_obs"]``
    (an object array) with the step's info in ``info["final_info"]``.

    ## Info
    A dict of arrays with one entry per member (and ``_key`` masks): ``hyperparams`` and ``losses``
    (dicts of ``[N]`` arrays), ``env_steps``, ``updates``, ``phase_step``, ``diverged``,
    ``run_finished``, ``episode_returns`` (object array of lists), ``G`` on the last step of a phase, and
    the encoder's ``encoder_loss`` / ``encoder_kl`` once it has trained.

    ## Arguments
    Args:
        num_envs: N, the number of members.
        **kwargs: The arguments of :class:`~hypergym.envs.HyperRLEnv` (a registered id's preset plus
            overrides): A2C, PPO or ACKTR; the task must have flat vector
            observations.

    Raises:
        ValueError: For an image task, ``num_envs < 1``, or any invalid ``HyperRLEnv`` argument.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs (the population size) must be a positive integer, got {num_envs!r}")
        task = kwargs.get("task", "CartPole")
        check_population_policy(*task_spaces(task))
        if kwargs.get("normalize") and task_spec(task).family == "atari":
            raise ValueError(
                f"normalize=True standardises vector observations and rewards; {task}'s frames are scaled by the "
                "policy and its rewards clipped to their sign (leave normalize=False)"
            )
        self.pinned: dict[str, float | int] = {}
        # One member (a single run) schedules them freely; several keep them the same (see Lockstep).
        kwargs = self._pin_work_hyperparams(dict(kwargs)) if num_envs > 1 else dict(kwargs)
        # A template HyperRLEnv validates every argument and holds the spaces, codec, reward and config;
        # it never starts a run.
        self.template = HyperRLEnv(**kwargs)
        t = self.template
        self.num_envs = int(num_envs)
        self.algo, self.task, self.config, self.space = t.algo, t.task, t.config, t.space
        self.total_env_steps, self.obs_mode, self.obs_extras = t.total_env_steps, t.obs_mode, t.obs_extras
        self.action_mode, self.reward_fn, self.n_envs = t.action_mode, t.reward_fn, t.n_envs
        self.rollouts_per_phase, self.phases_per_episode = t.rollouts_per_phase, t.phases_per_episode
        self.normalize, self.device, self.divergence_penalty = t.normalize, t.device, t.divergence_penalty
        self.encoder_kwargs = t.encoder_kwargs
        self.single_observation_space = t.observation_space
        self.single_action_space = t.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._values = [np.asarray(p.values) for p in self.space.params]

        self.learner: PopulationLearner | None = None
        self.encoder: PopulationEncoder | None = None
        self.run_seeds: list[int] | None = None
        self._obs: np.ndarray | None = None
        self._hp_indices = np.tile(np.asarray(self.space.default_indices(), dtype=np.float32), (self.num_envs, 1))
        self._run_finished = False
        self._needs_reset = True
        self._phase_step = 0
        self._rollouts_in_phase = 0
        self._phases_in_episode = 0

    # ------------------------------------------------------------------ construction
    def _pin_work_hyperparams(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Fix ``batch_size`` / ``n_epochs`` at one value for all members (see the class docstring)."""
        items = _grid_items(kwargs.get("hyperparams"))
        if items is None:
            return kwargs
        kept = []
        for name, values in items:
            if name in WORK_HYPERPARAMS and len(values) > 1:
                self.pinned[name] = values[0]  # replaced by the configuration's value below
                continue
            if name in WORK_HYPERPARAMS:
                kwargs[name] = values[0]  # one value: it is the configuration's
            kept.append((name, values))
        if self.pinned:
            algo = kwargs.get("algo", "PPO")
            config = LEARNERS[algo].config_class.from_kwargs(
                **{k: v for k, v in kwargs.items() if k in LEARNERS[algo].config_class.field_names()}
            )
            self.pinned = {name: getattr(config, name) for name in self.pinned}
            warnings.warn(
                f"a population updates its members in lockstep, so {sorted(self.pinned)} (which change the work "
                f"per update) are fixed at {self.pinned} for every member and left out of the action space; "
                f"schedule them with one HyperRLEnv per run (gym.make)",
                UserWarning,
                stacklevel=3,
            )
            kwargs["hyperparams"] = dict(kept) if kept else None
        return kwargs

    def _start_runs(self, seeds: list[int]) -> None:
        self.close()
        self.run_seeds = [int(s) for s in seeds]
        derived = [derive_seeds(s, 3) for s in self.run_seeds]
        venv = MemberVecEnv(
            self.task,
            [d[0] for d in derived],
            n_envs=self.n_envs,
            normalize=self.normalize,
            gamma=self.config.gamma,
        )
        n_orders = int(self.encoder_kwargs.get("n_orders", 2))
        learner = POPULATION_LEARNERS[self.algo](venv, self.config, [d[1] for d in derived], self.device, n_orders)
        self.learner = learner
        self.encoder = make_population_encoder(self.obs_mode, learner, [d[2] for d in derived], **self.encoder_kwargs)
        self._run_finished = False
        self._phase_step = 0
        self._rollouts_in_phase = 0
        self._hp_indices = np.tile(np.asarray(self.space.default_indices(), dtype=np.float32), (self.num_envs, 1))
        learner.collect_rollout()

    def _observe(self) -> np.ndarray:
        assert self.learner is not None and self.encoder is not None
        obs = self.encoder.encode(self.learner)
        extras: list[np.ndarray] = []
        if "progress" in self.obs_extras:
            progress = min(self.learner.env_steps / self.total_env_steps, 1.0)
            extras.append(np.full((self.num_envs, 1), progress, dtype=np.float32))
        if "hyperparams" in self.obs_extras:
            scale = np.maximum(self.space.nvec - 1, 1).astype(np.float32)
            extras.append((self._hp_indices / scale).astype(np.float32))
        return np.concatenate([obs, *extras], axis=1).astype(np.float32) if extras else obs

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
        options = dict(options or {})
        unknown = sorted(set(options) - {"restart"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid are ['restart']")
        seeds: list[int] | None = None
        if seed is not None:
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                seeds = [int(seed) + i for i in range(self.num_envs)]
            else:
                seeds = [int(s) for s in seed]  # type: ignore[union-attr]
                if len(seeds) != self.num_envs:
                    raise ValueError(f"reset needs {self.num_envs} seeds (one per member), got {len(seeds)}")
            super().reset(seed=seeds[0])
        new_run = seeds is not None or bool(options.get("restart")) or self.learner is None or self._run_finished
        if new_run:
            self._start_runs(seeds if seeds is not None else self._draw_seeds())
        self._phases_in_episode = 0
        self._needs_reset = False
        if new_run or self._obs is None:
            self._obs = self._observe()
        info = self._base_info()
        info["new_run"] = np.full(self.num_envs, new_run)
        info["run_seed"] = np.asarray(self.run_seeds)
        return self._obs.copy(), self._with_masks(info)

    def _indices(self, actions: Any) -> np.ndarray:
        """``[N, P]`` grid indices of the batched action; out-of-space actions raise ``ValueError``."""
        a = np.asarray(actions)
        if self.action_mode == "discrete":
            if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"actions must be {self.num_envs} integers (one per member), got {actions!r}")
            if np.any(a < 0) or np.any(a >= int(np.prod(self.space.nvec))):
                raise ValueError(f"actions {a.tolist()} outside the action space {self.single_action_space}")
            return np.stack(np.unravel_index(a, tuple(self.space.nvec)), axis=1)
        if a.shape != (self.num_envs, len(self.space.nvec)) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must have shape {(self.num_envs, len(self.space.nvec))} of integers, got {a!r}")
        if np.any(a < 0) or np.any(a >= self.space.nvec):
            raise ValueError(f"actions {a.tolist()} outside the action space {self.single_action_space}")
        return a

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One policy update of every member with its action's hyperparameters."""
        if self._needs_reset or self.learner is None or self.encoder is None:
            raise RuntimeError("call reset() before step(): no learning episode is running")
        learner = self.learner
        idx = self._indices(actions)
        learner.apply({p.name: self._values[j][idx[:, j]] for j, p in enumerate(self.space.params)})
        self._hp_indices = idx.astype(np.float32)
        result = learner.update_step()
        self.encoder.on_update(learner)
        self._phase_step += 1
        n = self.num_envs
        diverged = result.diverged.copy()
        rewards = np.zeros(n)
        info: dict[str, Any] = {
            "phase_step": np.full(n, self._phase_step),
            "hyperparams": learner.hyperparams_in_force(),
            "losses": result.losses,
            "episode_returns": _objects([[] for _ in range(n)]),
        }
        phase_done = False
        if learner.rollout_exhausted:
            stats, rolled = learner.collect_rollout()
            diverged |= rolled
            self._rollouts_in_phase += 1
            for i, s in enumerate(stats):
                info["episode_returns"][i] = list(s.episode_returns)
            if self._rollouts_in_phase >= self.rollouts_per_phase:
                phase_done = True
                rewards = np.array([self.reward_fn(s) for s in stats], dtype=np.float64)
                info["G"] = rewards.copy()
        rewards = rewards + np.where(diverged, self.divergence_penalty, 0.0)
        terminated = truncated = False
        if phase_done:
            terminated, truncated = end_phase(self, learner.env_steps)
        for name, value in self.encoder.metrics.items():
            info[name] = value
        info.update(
            env_steps=np.full(n, learner.env_steps),
            updates=np.full(n, learner.updates),
            diverged=diverged,
            run_finished=np.full(n, self._run_finished),
        )
        obs = self._observe()
        if terminated or truncated:
            # Same-step autoreset: the next learning episode starts now (a new run once the budget is spent).
            info["final_obs"] = _objects(list(obs))
            info["final_info"] = self._with_masks(dict(info))
            if self._run_finished:
                self._start_runs(self._draw_seeds())
                obs = self._observe()
                info["run_seed"] = np.asarray(self.run_seeds)
            self._phases_in_episode = 0
        self._obs = obs
        flags = np.full(n, terminated), np.full(n, truncated)
        return obs.copy(), rewards.astype(np.float64), flags[0], flags[1], self._with_masks(info)

    # ------------------------------------------------------------------ population operations
    def recent_returns(self) -> list[np.ndarray]:
        """Each member's most recent raw inner-episode returns (up to 100, oldest first)."""
        if self.learner is None:
            raise RuntimeError("call reset() first: no runs have started")
        return self.learner.recent_returns()

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
        if self.learner is None or self.encoder is None:
            raise RuntimeError("call reset() first: no runs have started")
        for name, k in (("dst", dst), ("src", src)):
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.num_envs:
                raise ValueError(f"{name}={k!r} is not a member index (0..{self.num_envs - 1})")
        self.learner.copy_member(int(dst), int(src))
        self.encoder.copy_member(int(dst), int(src))
        self._obs = self._observe()
        return self._obs.copy()

    def _base_info(self) -> dict[str, Any]:
        assert self.learner is not None
        n = self.num_envs
        return {
            "env_steps": np.full(n, self.learner.env_steps),
            "updates": np.full(n, self.learner.updates),
            "hyperparams": self.learner.hyperparams_in_force(),
        }

    def _with_masks(self, info: dict[str, Any]) -> dict[str, Any]:
        """Gymnasium's vector-info convention: a ``_key`` mask beside every key (all members have them)."""
        for key in [k for k in info if not k.startswith("_")]:
            info[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return info

    def close_extras(self, **kwargs: Any) -> None:
        """Close the members' inner envs."""
        if self.learner is not None:
            self.learner.close()
            self.learner = None
        self.encoder = None

    def close(self, **kwargs: Any) -> None:
        """Close the members' inner envs (the env can be reset again afterwards)."""
        self.close_extras()
