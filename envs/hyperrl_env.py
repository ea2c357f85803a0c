"""``HyperRLEnv``: the Hyper-RL MDP of EPGT as a Gymnasium environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.checkpoint import Checkpointable
from hypergym.devices import resolve_device
from hypergym.encoders import ENCODERS, HyperStateEncoder, check_encoder_kwargs, make_encoder
from hypergym.envs.tasks import make_task, task_spaces
from hypergym.learners import LEARNERS, OnPolicyLearner
from hypergym.rewards import REWARDS, HyperReward, make_reward
from hypergym.seeding import derive_seeds
from hypergym.spaces import Hyperparameter, HyperparamSpace

__all__ = ["HyperRLEnv"]

_ACTION_MODES = ("discrete", "multi_discrete")
_OBS_EXTRAS = ("progress", "hyperparams")


def end_phase(env: Any, env_steps: int) -> tuple[bool, bool]:
    """Close an update phase of ``env`` (a ``HyperRLEnv`` or ``HyperRLVectorEnv``): the one rule for both.

    Resets the phase counters, counts the phase in the learning episode, notes whether the run's budget is
    spent, and returns ``(terminated, truncated)`` (see ``HyperRLEnv``'s Episode End).
    """
    env._phase_step = 0
    env._rollouts_in_phase = 0
    env._phases_in_episode += 1
    env._run_finished = env_steps >= env.total_env_steps
    per_episode = env.phases_per_episode
    terminated = (per_episode is not None and env._phases_in_episode >= per_episode) or (
        per_episode is None and env._run_finished
    )
    return terminated, env._run_finished and not terminated


class HyperRLEnv(Checkpointable, gym.Env):
    """Online hyperparameter scheduling of a policy-gradient learner, as an MDP (Hyper-RL, EPGT).

    ## Description
    The env owns one *inner run*: an A2C, ACKTR or PPO learner training on an inner task (classic control,
    Box2D, MuJoCo or Atari). Each ``step`` is ONE policy update of that learner, with hyperparameters chosen
    by the action. Rollouts are collected whenever the next update needs fresh data. An *update phase* is U
    update steps: for A2C and ACKTR ``updates_per_phase`` updates (each followed by a new rollout), for PPO
    every minibatch step of one
    rollout (``n_epochs`` passes of ``ceil(N / b)`` steps). The rollout collected right after the last
    step of a phase (the *environment phase*) yields the hyper-reward G.

    ## Action Space
    ``Discrete(prod B_i)`` over the hyperparameter grid ``env.unwrapped.space`` (mixed radix, the first
    hyperparameter most significant: see :mod:`hypergym.spaces`), or ``MultiDiscrete([B_i])`` with
    ``action_mode="multi_discrete"``. Actions outside the space raise ``ValueError``.
    Per-step hyperparameters (``learning_rate``, ``clip_range``, ``batch_size``, ``ent_coef``,
    ``vf_coef``, ``max_grad_norm``; ACKTR: ``kl_clip``, ``damping``) apply to this step's update;
    per-rollout ones (``gamma``, ``gae_lambda``, ``n_epochs``) apply when the next rollout is collected.

    ## Observation Space
    The encoded hyper-state (``obs_mode``): a float32 ``Box`` with finite bounds. The raw hyper-state is
    the projection ``s = [vec(W_m^n C_m^n)]`` of the parameters and last 2 gradients of every layer,
    dimension ``sum_m rows_m x 3 x 4``. ``vae`` (default): ``tanh`` of the mean of an online VAE's
    posterior, 32 dims, trained every 10 updates (``info["encoder_loss"]``); ``random``: a fixed random
    tanh map of ``s`` to 32 dims; ``raw``: ``s``; ``stats``: per-layer weight/gradient statistics.
    ``obs_extras`` appends ``"progress"`` (env steps / budget) and ``"hyperparams"`` (index of each
    hyperparameter's current value / (B_i - 1)), each in [0, 1].

    ## Rewards
    0 on every step but the last of an update phase, which gets G (``reward``): ``episode_return``
    (mean raw return of inner episodes completed in the environment phase, else of the last 10 completed)
    or ``rollout_return`` (mean over envs of the discounted raw return of the rollout). A diverged update
    adds ``divergence_penalty``.

    ## Starting State
    ``reset(seed=s)`` starts a fresh inner run seeded by ``s`` (learner, inner envs, encoder, minibatch
    order) and collects its first rollout. ``reset()`` continues the current run with the next learning
    episode (the learner is untouched) or, once the run is finished, starts a new run with a seed drawn
    from the env's RNG. ``options={"restart": True}`` forces a new run.

    ## Episode End
    ``terminated`` at the end of a learning episode: ``phases_per_episode`` update phases (paper: 1), or
    the whole run when it is ``None``. The run finishes at the end of the phase in which the inner
    env-step budget ``total_env_steps`` is reached; that step also has ``info["run_finished"] = True``
    (and is ``truncated`` instead of ``terminated`` when it cuts a learning episode short).

    ## Info
    ``hyperparams`` (values in force, read back from the learner), ``env_steps``, ``updates``,
    ``phase_step`` (i in 1..U), ``episode_returns`` (inner episodes completed in a rollout collected on
    this step), ``losses``, ``diverged``, ``run_finished``, ``G`` on the last step of a phase, and the
    encoder's figures (``encoder_loss``, ``encoder_kl`` for ``vae``, once it has trained).

    ## Arguments
    Args:
        algo: ``"A2C"``, ``"ACKTR"`` or ``"PPO"``.
        task: Inner task name (see :data:`hypergym.envs.TASKS`).
        total_env_steps: Inner env-step budget of a run.
        hyperparams: The hyperparameter space: ``name -> values`` (or a ``HyperparamSpace``).
        obs_mode: Hyper-state encoder (``"vae"``, ``"random"``, ``"raw"``, ``"stats"``).
        obs_extras: Extras appended to the observation: any of ``"progress"``, ``"hyperparams"``.
        action_mode: ``"discrete"`` or ``"multi_discrete"``.
        reward: ``"episode_return"`` or ``"rollout_return"`` (or a ``HyperReward``).
        updates_per_phase: U for A2C and ACKTR (update steps per phase). PPO's phase is always one rollout.
        phases_per_episode: Update phases per learning episode; ``None``: the whole run.
        n_envs: Parallel inner envs.
        normalize: Wrap the inner env in ``VecNormalize``.
        device: Torch device of the learner (``"auto"``: CUDA when present).
        divergence_penalty: Added to the reward of a step whose update diverged.
        encoder_kwargs: Extra arguments of the encoder (``d``, ``n_orders``, ``h``; VAE: ``hidden``,
            ``learning_rate``, ``train_every``, ``batch_size``, ``kl_weight``, ``freeze_after``).
        **learner_kwargs: Learner settings (``learning_rate``, ``n_steps``, ``batch_size``, ``n_epochs``,
            ``gamma``, ``gae_lambda``, ``clip_range``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``,
            ``policy_kwargs``; ACKTR: ``kl_clip``, ``damping``, ``momentum``, ``stat_decay``, ``stats_every``,
            ``inverse_every``, ...): the defaults that the action's values override.

    ## Version History
    - v0 (hypergym 0.1): first release; ids are unversioned, as the card names them.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(
        self,
        algo: str = "PPO",
        task: str = "CartPole",
        total_env_steps: int = 100_000,
        hyperparams: Mapping[str, Sequence[float]] | Sequence[Hyperparameter] | HyperparamSpace | None = None,
        obs_mode: str = "vae",
        obs_extras: Sequence[str] = (),
        action_mode: str = "discrete",
        reward: str | HyperReward = "episode_return",
        updates_per_phase: int | None = None,
        phases_per_episode: int | None = 1,
        n_envs: int = 1,
        normalize: bool = False,
        device: str = "auto",
        divergence_penalty: float = 0.0,
        encoder_kwargs: Mapping[str, Any] | None = None,
        **learner_kwargs: Any,
    ) -> None:
        if algo not in LEARNERS:
            raise ValueError(f"unknown algo {algo!r}; choose from {sorted(LEARNERS)}")
        self.algo = algo
        self.learner_class: type[OnPolicyLearner] = LEARNERS[algo]
        self.config = self.learner_class.config_class.from_kwargs(**learner_kwargs)
        task_spaces(task)  # validates the task name and its dependencies now, not at reset
        self.task = task
        if (
            isinstance(total_env_steps, bool)
            or not isinstance(total_env_steps, (int, np.integer))
            or total_env_steps < 1
        ):
            raise ValueError(f"total_env_steps must be a positive integer, got {total_env_steps!r}")
        self.total_env_steps = int(total_env_steps)
        if obs_mode not in ENCODERS:
            raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
        self.obs_mode = obs_mode
        if isinstance(obs_extras, str) or any(e not in _OBS_EXTRAS for e in obs_extras):
            raise ValueError(f"unknown obs_extras {obs_extras!r}; choose any of {list(_OBS_EXTRAS)}")
        self.obs_extras = tuple(obs_extras)
        if action_mode not in _ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; choose from {list(_ACTION_MODES)}")
        self.action_mode = action_mode
        if not isinstance(reward, HyperReward) and reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose from {sorted(REWARDS)}")
        self.reward_fn = make_reward(reward, gamma=self.config.gamma)
        if algo == "PPO" and updates_per_phase is not None:
            raise ValueError(
                "updates_per_phase applies to A2C and ACKTR only: a PPO update phase is every minibatch step of one "
                "rollout (set n_epochs and batch_size instead)"
            )
        if updates_per_phase is not None and (not isinstance(updates_per_phase, int) or updates_per_phase < 1):
            raise ValueError(f"updates_per_phase must be a positive integer, got {updates_per_phase!r}")
        self.rollouts_per_phase = updates_per_phase or 1
        if phases_per_episode is not None and (not isinstance(phases_per_episode, int) or phases_per_episode < 1):
            raise ValueError(f"phases_per_episode must be a positive integer or None, got {phases_per_episode!r}")
        self.phases_per_episode = phases_per_episode
        self.n_envs = n_envs
        self.normalize = normalize
        self.device = device
        self.divergence_penalty = float(divergence_penalty)
        self.encoder_kwargs = dict(encoder_kwargs or {})
        check_encoder_kwargs(obs_mode, self.encoder_kwargs)
        resolve_device(device)  # fail now, not at the first reset, on a device this machine lacks

        defaults = {name: getattr(self.config, name) for name in self.learner_class.supported_hyperparams()}
        grid: Mapping[str, Sequence[float]] | Sequence[Hyperparameter]
        if hyperparams is None:
            grid = {"learning_rate": (self.config.learning_rate,)}
        elif isinstance(hyperparams, HyperparamSpace):
            grid = list(hyperparams.params)
        else:
            grid = hyperparams
        self.space = HyperparamSpace(grid, self.learner_class.supported_hyperparams(), defaults)
        self.action_space = self.space.gym_space(action_mode)

        # The observation space depends on the policy's layer shapes: build a throwaway learner once (one
        # inner env is enough for the shapes, and spares building e.g. 16 Atari emulators).
        probe = self._build_run(seed=0, n_envs=1)
        self.observation_space = self._extend_space(probe[1].observation_space)
        probe[0].close()
        probe[1].close()
        self._hp_indices = np.asarray(self.space.default_indices(), dtype=np.float32)

        self.learner: OnPolicyLearner | None = None
        self.encoder: HyperStateEncoder | None = None
        self.run_seed: int | None = None
        self._obs: np.ndarray | None = None
        self._run_finished = False
        self._needs_reset = True
        self._phase_step = 0
        self._rollouts_in_phase = 0
        self._phases_in_episode = 0

    # ------------------------------------------------------------------ observation
    def _extend_space(self, space: gym.spaces.Box) -> gym.spaces.Box:
        """The encoder's Box with the requested extras appended (each in [0, 1])."""
        n_extra = ("progress" in self.obs_extras) + len(self.space.params) * ("hyperparams" in self.obs_extras)
        if n_extra == 0:
            return space
        low = np.concatenate([space.low, np.zeros(n_extra, dtype=np.float32)])
        high = np.concatenate([space.high, np.ones(n_extra, dtype=np.float32)])
        return gym.spaces.Box(low, high, dtype=np.float32)

    def _observe(self) -> np.ndarray:
        """Encoded hyper-state, then training progress and hyperparameter indices scaled to [0, 1]."""
        assert self.learner is not None and self.encoder is not None
        obs = self.encoder.encode(self.learner)
        if not self.obs_extras:
            return obs
        extras: list[np.ndarray] = []
        if "progress" in self.obs_extras:
            extras.append(np.array([min(self.learner.env_steps / self.total_env_steps, 1.0)], dtype=np.float32))
        if "hyperparams" in self.obs_extras:
            scale = np.maximum(self.space.nvec - 1, 1).astype(np.float32)
            extras.append(np.asarray(self._hp_indices / scale, dtype=np.float32))
        return np.concatenate([obs, *extras]).astype(np.float32)

    # ------------------------------------------------------------------ run lifecycle
    def _build_run(self, seed: int, n_envs: int | None = None) -> tuple[OnPolicyLearner, HyperStateEncoder]:
        env_seed, learner_seed, encoder_seed = derive_seeds(seed, 3)
        venv = make_task(
            self.task,
            n_envs=self.n_envs if n_envs is None else n_envs,
            seed=env_seed,
            normalize=self.normalize,
            gamma=self.config.gamma,
        )
        learner = self.learner_class(
            venv, self.config, learner_seed, device=self.device, n_orders=int(self.encoder_kwargs.get("n_orders", 2))
        )
        encoder = make_encoder(self.obs_mode, learner, encoder_seed, **self.encoder_kwargs)
        return learner, encoder

    def _start_run(self, seed: int) -> dict[str, Any]:
        self.close()
        self.run_seed = seed
        self.learner, self.encoder = self._build_run(seed)
        self._run_finished = False
        self._phase_step = 0
        self._rollouts_in_phase = 0
        self._hp_indices = np.asarray(self.space.default_indices(), dtype=np.float32)
        stats, _ = self.learner.collect_rollout()
        return {"episode_returns": list(stats.episode_returns)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a run (``seed`` given, run finished, or ``options["restart"]``) or the next learning episode.

        Returns:
            The encoded hyper-state and an info dict (``run_seed``, ``env_steps``, ``updates``,
            ``hyperparams``, ``new_run``).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"restart"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid are ['restart']")
        new_run = seed is not None or bool(options.get("restart")) or self.learner is None or self._run_finished
        info: dict[str, Any] = {}
        if new_run:
            run_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            info.update(self._start_run(run_seed))
        self._phases_in_episode = 0
        self._needs_reset = False
        assert self.learner is not None and self.encoder is not None
        if new_run or self._obs is None:
            self._obs = self._observe()
        info.update(self._base_info(), run_seed=self.run_seed, new_run=new_run)
        return self._obs, info

    # ------------------------------------------------------------------ one hyper-step
    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the hyperparameters of ``action``, perform one policy update, return the next hyper-state.

        Raises:
            RuntimeError: If called before ``reset`` or after the learning episode ended.
            ValueError: If the action is outside the action space.
        """
        if self._needs_reset or self.learner is None or self.encoder is None:
            raise RuntimeError("call reset() before step(): no learning episode is running")
        learner = self.learner
        indices = self.space.indices(action)
        learner.apply(self.space.values_at(indices))
        self._hp_indices = np.asarray(indices, dtype=np.float32)
        result = learner.update_step()
        self.encoder.on_update(learner)
        self._phase_step += 1
        diverged = result.diverged
        info: dict[str, Any] = {
            "phase_step": self._phase_step,
            "hyperparams": learner.hyperparams_in_force(),
            "losses": result.losses,
            "episode_returns": [],
        }

        reward = 0.0
        phase_done = False
        if learner.rollout_exhausted:
            stats, rolled_back = learner.collect_rollout()
            diverged = diverged or rolled_back
            self._rollouts_in_phase += 1
            info["episode_returns"] = list(stats.episode_returns)
            if self._rollouts_in_phase >= self.rollouts_per_phase:
                phase_done = True
                reward = info["G"] = float(self.reward_fn(stats))
        if diverged:
            reward += self.divergence_penalty

        terminated = truncated = False
        if phase_done:
            terminated, truncated = end_phase(self, learner.env_steps)
        self._needs_reset = terminated or truncated

        self._obs = self._observe()
        info.update(self.encoder.metrics)
        info.update(
            env_steps=learner.env_steps, updates=learner.updates, diverged=diverged, run_finished=self._run_finished
        )
        return self._obs, float(reward), terminated, truncated, info

    def _base_info(self) -> dict[str, Any]:
        assert self.learner is not None
        return {
            "env_steps": self.learner.env_steps,
            "updates": self.learner.updates,
            "hyperparams": self.learner.hyperparams_in_force(),
        }

    def close(self) -> None:
        """Close the inner run's environments and the encoder's worker."""
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None
        if self.learner is not None:
            self.learner.close()
            self.learner = None
