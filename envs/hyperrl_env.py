"""``HyperRLEnv``: the Hyper-RL MDP of EPGT as a Gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.checkpoint import Checkpointable
from hypergym.devices import check_population_memory
from hypergym.encoders import Encoder
from hypergym.envs.runs import InnerRuns, member_info
from hypergym.envs.settings import HyperRLSettings
from hypergym.learners import Learner, LearnerConfig
from hypergym.rewards import HyperReward
from hypergym.spaces import HyperparamSpace

__all__ = ["HyperRLEnv", "SettingsView"]


class SettingsView:
    """Read access to the env's settings (:class:`~hypergym.envs.settings.HyperRLSettings`) and its runs."""

    settings: HyperRLSettings
    runs: InnerRuns

    @property
    def learner(self) -> Learner | None:
        """The runs' learner core (one member per run), ``None`` before the first reset."""
        return self.runs.learner

    @property
    def encoder(self) -> Encoder | None:
        """The runs' hyper-state encoder, ``None`` before the first reset."""
        return self.runs.encoder

    @property
    def algo(self) -> str:
        """The inner learner: ``"A2C"``, ``"ACKTR"`` or ``"PPO"``."""
        return self.settings.algo

    @property
    def task(self) -> str:
        """The inner task."""
        return self.settings.task

    @property
    def config(self) -> LearnerConfig:
        """The learner settings (every hyperparameter's default)."""
        return self.settings.config

    @property
    def space(self) -> HyperparamSpace:
        """The hyperparameter grid (``decode``, ``encode``, ``default_action``)."""
        return self.settings.space

    @property
    def total_env_steps(self) -> int:
        """Inner env-step budget of a run."""
        return self.settings.total_env_steps

    @property
    def obs_mode(self) -> str:
        """The hyper-state encoder."""
        return self.settings.obs_mode

    @property
    def action_mode(self) -> str:
        """``"discrete"`` or ``"multi_discrete"``."""
        return self.settings.action_mode

    @property
    def reward_fn(self) -> HyperReward:
        """The hyper-reward of an update phase."""
        return self.settings.reward_fn

    @property
    def phases_per_episode(self) -> int | None:
        """Update phases per learning episode."""
        return self.settings.phases_per_episode

    @property
    def n_envs(self) -> int:
        """Inner envs per run."""
        return self.settings.n_envs

    @property
    def normalize(self) -> bool:
        """Whether the inner envs' observations and rewards are normalised."""
        return self.settings.normalize

    @property
    def learner_class(self) -> type[Learner]:
        """The learner core's algorithm class."""
        return self.settings.learner_class


class HyperRLEnv(SettingsView, Checkpointable, gym.Env):
    """Online hyperparameter scheduling of a policy-gradient learner, as an MDP (Hyper-RL, EPGT).

    ## Description
    The env owns one *inner run*: an A2C, ACKTR or PPO learner training on an inner task (classic control,
    Box2D, MuJoCo or Atari); it is the M = 1 view of :class:`~hypergym.envs.runs.InnerRuns`, the machinery
    that :class:`~hypergym.envs.HyperRLVectorEnv` runs with M = N. Each ``step`` is ONE policy update of
    that learner, with hyperparameters chosen by the action. Rollouts are collected whenever the next update
    needs fresh data. An *update phase* is U update steps: for A2C and ACKTR ``updates_per_phase`` updates
    (each followed by a new rollout), for PPO every minibatch step of one rollout (``n_epochs`` passes of
    ``ceil(N / b)`` steps). The rollout collected right after the last
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
    0 on every step but the last of an update phase, which gets G (``reward``): ``rollout_return`` (the
    paper's Eq. 1 and the default: mean over envs of the discounted raw return of the rollout),
    ``episode_return`` (mean raw return of inner episodes completed in the environment phase, else of the
    last 10 completed; the teaching presets' reward, where every step of the task rewards the same and
    Eq. 1 would be a constant), or the released
    code's ``critic_return`` (the rollout's mean lambda-return from the critic, on the training rewards,
    with the preset's gamma and lambda; ``critic_return_chosen``: with the chosen ones). A diverged update
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

    ## Divergence
    A non-finite loss, gradient or parameter never raises: the learner's parameters and optimiser state
    return to the last state that gave a finite loss, ``info["diverged"]`` is true, and the run goes on.

    ## Determinism
    All randomness flows from the seed (inner envs, policy initialisation and sampling through private
    torch streams, minibatch orders, the encoder); the global torch and NumPy generators are not touched.
    The same seed gives the same observations and rewards on a CPU *with the same number of torch
    threads*: float reductions split over threads round differently, and a hyper-agent's choices can
    amplify the difference over a run. The command line runs every run on one thread; ``hypergym.run``
    records the count in each run's ``config.json`` (``torch_threads``), and ``torch.set_num_threads(1)``
    in Python gives the command line's numbers.

    ## Arguments
    Args:
        algo: ``"A2C"``, ``"ACKTR"`` or ``"PPO"``.
        task: Inner task name (see :data:`hypergym.envs.TASKS`).
        total_env_steps: Inner env-step budget of a run.
        hyperparams: The hyperparameter space: ``name -> values`` (or a ``HyperparamSpace``).
        obs_mode: Hyper-state encoder (``"vae"``, ``"random"``, ``"raw"``, ``"stats"``).
        obs_extras: Extras appended to the observation: any of ``"progress"``, ``"hyperparams"``.
        action_mode: ``"discrete"`` or ``"multi_discrete"``.
        reward: ``"rollout_return"`` (Eq. 1), ``"episode_return"``, ``"critic_return"`` (the released code's: the
            rollout's mean lambda-return from the critic, preset gamma and lambda) or
            ``"critic_return_chosen"`` (with the chosen ones), or a ``HyperReward``.
        updates_per_phase: U for A2C and ACKTR (update steps per phase). PPO's phase is always one rollout.
        phases_per_episode: Update phases per learning episode; ``None``: the whole run.
        n_envs: Parallel inner envs.
        normalize: Wrap the inner env in ``VecNormalize``.
        device: Torch device of the learner (``"auto"``: CUDA when present).
        divergence_penalty: Added to the reward of a step whose update diverged.
        lr_decay: ``"none"``, or ``"linear"``: each update's step size is the chosen learning rate times
            ``1 - env steps / total_env_steps`` (counted before its rollout; ``info["lr_scale"]``), so a grid
            of multipliers of the default (:func:`hypergym.spaces.eq5_grid`) acts on a decaying base rate
            as in the authors' released code; a static agent then follows the same decay.
        credit: ``"after"`` (the paper): G is the return of the rollout collected after the phase's last
            update; ``"before"`` (the released code's A2C and ACKTR, the ``code`` profile): of the rollout that
            update trained on, collected before it.
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

    def __init__(self, **kwargs: Any) -> None:
        self.settings = HyperRLSettings.from_kwargs(**kwargs)
        check_population_memory(1, self.settings.member_bytes, self.settings.device)  # before any allocation
        self.action_space = self.settings.action_space
        self.observation_space = self.settings.observation_space
        self.runs = InnerRuns(self.settings, n_members=1)
        self._obs: np.ndarray | None = None
        self._needs_reset = True

    @property
    def run_seed(self) -> int | None:
        """Seed of the current run."""
        return None if self.runs.run_seeds is None else self.runs.run_seeds[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a run (``seed`` given, run finished, or ``options["restart"]``) or the next learning episode.

        Returns:
            The encoded hyper-state and an info dict (``run_seed``, ``env_steps``, ``updates``,
            ``hyperparams``, ``new_run``).
        """
        super().reset(seed=seed)
        runs = self.runs
        draw = lambda: [int(self.np_random.integers(2**31 - 1))]  # noqa: E731
        new_run, returns = runs.begin_episode(None if seed is None else [seed], options, draw)
        info: dict[str, Any] = {} if returns is None else {"episode_returns": returns[0]}
        self._needs_reset = False
        if new_run or self._obs is None:
            self._obs = runs.observe()[0]
        info.update(member_info(runs.base_info(), 0), run_seed=self.run_seed, new_run=new_run)
        return self._obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the hyperparameters of ``action``, perform one policy update, return the next hyper-state.

        Raises:
            RuntimeError: If called before ``reset`` or after the learning episode ended.
            ValueError: If the action is outside the action space.
        """
        if self._needs_reset or not self.runs.started:
            raise RuntimeError("call reset() before step(): no learning episode is running")
        indices = self.space.batch_indices(np.asarray(action)[None], self.action_mode)
        rewards, terminated, truncated, info = self.runs.step(indices)
        self._needs_reset = terminated or truncated
        self._obs = self.runs.observe()[0]
        return self._obs, float(rewards[0]), terminated, truncated, member_info(info, 0)

    def close(self) -> None:
        """Close the inner run's environments."""
        self.runs.close()
