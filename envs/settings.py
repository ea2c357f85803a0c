"""The settings of a Hyper-RL MDP, checked once: the frozen spec both the single and the vector env are built from.

:func:`HyperRLSettings.from_kwargs` takes the arguments of :class:`~hypergym.envs.HyperRLEnv` (a registered
id's preset plus overrides), checks every one of them, and returns the settings with the action and
observation spaces of one inner run. Nothing is built: the observation space follows from the policy's
layer shapes, which SB3's policy gives without an environment.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import gymnasium as gym
import numpy as np

from hypergym.checks import check_count
from hypergym.devices import resolve_device
from hypergym.encoders import ENCODERS, check_encoder_kwargs, observation_space_of
from hypergym.envs.members import check_normalize
from hypergym.envs.profiles import apply_env_profile
from hypergym.envs.tasks import task_spaces
from hypergym.hyperstate import LayerInfo, policy_layers
from hypergym.learners import LEARNERS, BatchedActorCritic, Learner, LearnerConfig, build_policy
from hypergym.learners.networks import check_population_policy
from hypergym.presets import preset as preset_kwargs
from hypergym.rewards import REWARDS, HyperReward, make_reward
from hypergym.seeding import TorchRNG
from hypergym.spaces import Hyperparameter, HyperparamSpace, check_value

__all__ = ["ACTION_MODES", "ADDED_SETTINGS", "LR_DECAYS", "OBS_EXTRAS", "HyperRLSettings", "with_added"]

#: Valid ``action_mode`` values.
ACTION_MODES = ("discrete", "multi_discrete")
#: Valid entries of ``obs_extras``.
OBS_EXTRAS = ("progress", "hyperparams")
#: Valid ``credit`` values: G from the rollout after the phase (the paper), or before its last update (the code).
CREDITS = ("after", "before")
#: Valid ``lr_decay`` values: none, or the learning rate in force times ``1 - env steps done / budget``.
LR_DECAYS = ("none", "linear")
#: Settings added after runs were first recorded, with the value every earlier run had (``config.optimizer``:
#: the algorithm's own optimiser): a run or checkpoint that lacks one was made with that value.
ADDED_SETTINGS = {"config.optimizer": repr(None)}


def with_added(described: Mapping[str, str]) -> dict[str, str]:
    """``described`` (:meth:`HyperRLSettings.described` of a run, maybe an older one) with every added setting."""
    return {**ADDED_SETTINGS, **described}


@dataclass(frozen=True)
class HyperRLSettings:
    """Every setting of a Hyper-RL MDP (see :class:`~hypergym.envs.HyperRLEnv`'s Arguments), checked."""

    algo: str
    """``"A2C"``, ``"ACKTR"`` or ``"PPO"``."""
    learner_class: type[Learner]
    """The learner core's algorithm."""
    config: LearnerConfig
    """The learner settings: every hyperparameter's default."""
    task: str
    """The inner task."""
    total_env_steps: int
    """Inner env-step budget of a run."""
    space: HyperparamSpace
    """The hyperparameter grid."""
    obs_mode: str
    """The hyper-state encoder."""
    obs_extras: tuple[str, ...]
    """Extras appended to the observation."""
    action_mode: str
    """``"discrete"`` or ``"multi_discrete"``."""
    reward_fn: HyperReward
    """The hyper-reward G of an update phase."""
    rollouts_per_phase: int
    """Rollouts per update phase (A2C / ACKTR: ``updates_per_phase``; PPO: 1)."""
    phases_per_episode: int | None
    """Update phases per learning episode (``None``: the whole run)."""
    n_envs: int
    """Inner envs per run."""
    normalize: bool
    """Per-run ``VecNormalize`` statistics of observations and rewards."""
    device: str
    """Torch device of the learner."""
    divergence_penalty: float
    """Added to the reward of a step whose update diverged."""
    lr_decay: str
    """``"linear"``: each update's step size is the chosen learning rate times ``1 - env steps / budget``
    counted before its rollout (the released EPGT code's ``--use-linear-lr-decay``); ``"none"``: as chosen."""
    encoder_kwargs: Mapping[str, Any]
    """Extra arguments of the encoder."""
    layers: tuple[LayerInfo, ...]
    """The hyper-state's layers (the policy's Linear and Conv layers)."""
    action_space: gym.spaces.Space
    """One run's action space."""
    observation_space: gym.spaces.Box
    """One run's observation space (the encoder's, with the extras)."""
    member_bytes: int
    """A lower bound of one run's memory: its parameters with their gradient, optimiser state, gradient
    history and rollback snapshots, and its rollout and batch (inner envs and encoder not counted)."""
    eval_every: int | None = None
    """Env steps between two deterministic evaluations (the paper's protocol; ``None``: none)."""
    eval_episodes: int = 10
    """Episodes of each evaluation."""
    credit: str = "after"
    """Which rollout's return a phase's G is: ``"after"`` the phase (the paper's environment phase) or
    ``"before"`` its last update (the one it trained on: the released code's A2C and ACKTR)."""
    profile: str = "paper"
    """The EPGT profile the settings were made with (:mod:`hypergym.envs.profiles`)."""

    @property
    def n_orders(self) -> int:
        """Past gradients in the hyper-state."""
        return int(self.encoder_kwargs.get("n_orders", 2))

    @classmethod
    def from_kwargs(cls, preset: str | None = None, profile: str = "paper", **kwargs: Any) -> HyperRLSettings:
        """Check the arguments of :class:`~hypergym.envs.HyperRLEnv` and return its settings.

        Args:
            preset: A registered id whose preset the arguments start from (what ``gym.make(id)`` passes).
            profile: ``"paper"`` or ``"code"``: the released EPGT code's env settings for every setting not
                passed in ``kwargs`` (:mod:`hypergym.envs.profiles`).
            **kwargs: The env's arguments (overrides of the preset).

        Raises:
            ValueError: On an invalid value, naming it and what is valid.
            TypeError: On an unknown learner setting, listing the valid ones.
        """
        params = inspect.signature(cls._checked).parameters
        defaults = {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
        base = preset_kwargs(preset) if preset is not None else {}
        settings = cls._checked(**apply_env_profile(profile, base, kwargs, defaults))
        return replace(settings, profile=profile)

    def described(self) -> dict[str, str]:
        """Every setting that defines the MDP, each as a comparable string (what a checkpoint must match).

        The learner settings appear as ``config.<name>``; derived values (layers, spaces, memory) are left out.
        """
        derived = {
            "learner_class",
            "config",
            "reward_fn",
            "layers",
            "action_space",
            "observation_space",
            "member_bytes",
        }
        out = {f.name: repr(getattr(self, f.name)) for f in fields(self) if f.name not in derived}
        out.update({f"config.{f.name}": repr(getattr(self.config, f.name)) for f in fields(self.config)})
        reward = self.reward_fn
        out["reward"] = f"{type(reward).__name__}({sorted(vars(reward).items())})"
        out["encoder_kwargs"] = repr(sorted(self.encoder_kwargs.items()))
        return out

    def differences(self, other: HyperRLSettings) -> list[str]:
        """``"name: ours != theirs"`` for each setting of :meth:`described` in which ``other`` differs."""
        ours, theirs = with_added(self.described()), with_added(other.described())
        return [
            f"{k}: {ours.get(k)} != {theirs.get(k)}"
            for k in sorted(set(ours) | set(theirs))
            if ours.get(k) != theirs.get(k)
        ]

    @classmethod
    def argument_names(cls) -> list[str]:
        """The env's own arguments (besides the learner settings of its algorithm), ``preset`` and ``profile``."""
        own = [name for name in inspect.signature(cls._checked).parameters if name != "learner_kwargs"]
        return ["preset", "profile", *own]

    @classmethod
    def _checked(
        cls,
        algo: str = "PPO",
        task: str = "CartPole",
        total_env_steps: int = 100_000,
        hyperparams: Mapping[str, Sequence[float]] | Sequence[Hyperparameter] | HyperparamSpace | None = None,
        obs_mode: str = "vae",
        obs_extras: Sequence[str] = (),
        action_mode: str = "discrete",
        reward: str | HyperReward = "rollout_return",
        updates_per_phase: int | None = None,
        phases_per_episode: int | None = 1,
        n_envs: int = 1,
        normalize: bool = False,
        device: str = "auto",
        divergence_penalty: float = 0.0,
        encoder_kwargs: Mapping[str, Any] | None = None,
        lr_decay: str = "none",
        eval_every: int | None = None,
        eval_episodes: int = 10,
        credit: str = "after",
        **learner_kwargs: Any,
    ) -> HyperRLSettings:
        if algo not in LEARNERS:
            raise ValueError(f"unknown algo {algo!r}; choose from {sorted(LEARNERS)}")
        learner_class = LEARNERS[algo]
        config = learner_class.config_class.from_kwargs(**learner_kwargs)
        observation_space, inner_action_space = task_spaces(task)  # checks the task and its dependencies
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True or False, got {normalize!r}")
        check_normalize(task, normalize)
        total = check_count("total_env_steps", total_env_steps)
        if obs_mode not in ENCODERS:
            raise ValueError(f"unknown obs_mode {obs_mode!r}; choose from {sorted(ENCODERS)}")
        if isinstance(obs_extras, str) or any(e not in OBS_EXTRAS for e in obs_extras):
            raise ValueError(f"unknown obs_extras {obs_extras!r}; choose any of {list(OBS_EXTRAS)}")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; choose from {list(ACTION_MODES)}")
        if not isinstance(reward, HyperReward) and reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose from {sorted(REWARDS)}")
        if algo == "PPO" and updates_per_phase is not None:
            raise ValueError(
                "updates_per_phase applies to A2C and ACKTR only: a PPO update phase is every minibatch step of one "
                "rollout (set n_epochs and batch_size instead)"
            )
        rollouts_per_phase = check_count("updates_per_phase", updates_per_phase, allow_none=True) or 1
        per_episode = check_count("phases_per_episode", phases_per_episode, allow_none=True)
        envs = int(check_count("n_envs", n_envs) or 0)  # never None: None is refused
        # A run stops at the end of the phase that reaches the budget, so it passes the budget by less than
        # one phase; a first phase larger than the whole budget would run far past it.
        phase_steps = config.n_steps * envs * rollouts_per_phase
        if phase_steps > int(total or 0):
            raise ValueError(
                f"one update phase ({rollouts_per_phase} rollout(s) of n_steps {config.n_steps} x n_envs {envs} = "
                f"{phase_steps} env steps) exceeds total_env_steps {total}: raise total_env_steps to at least "
                f"{phase_steps}, or shorten the phase (updates_per_phase, n_steps, n_envs)"
            )
        kwargs = dict(encoder_kwargs or {})
        check_encoder_kwargs(obs_mode, kwargs)
        resolve_device(device)  # fail now, not at the first reset, on a device this machine lacks

        # Fixed settings obey the rules of grid values (a learner setting is the default grid value).
        for name in learner_class.supported_hyperparams():
            try:
                check_value(name, getattr(config, name))
            except (TypeError, ValueError) as err:
                raise ValueError(f"learner setting {name}={getattr(config, name)!r}: {err}") from err
        every = check_count("eval_every", eval_every, allow_none=True)
        episodes = int(check_count("eval_episodes", eval_episodes) or 0)
        if lr_decay not in LR_DECAYS:
            raise ValueError(f"unknown lr_decay {lr_decay!r}; choose from {list(LR_DECAYS)}")
        if credit not in CREDITS:
            raise ValueError(f"unknown credit {credit!r}; choose from {list(CREDITS)}")
        if not math.isfinite(float(divergence_penalty)):
            raise ValueError(f"divergence_penalty must be a finite number, got {divergence_penalty!r}")
        defaults = {name: getattr(config, name) for name in learner_class.supported_hyperparams()}
        grid: Mapping[str, Sequence[float]] | Sequence[Hyperparameter]
        if hyperparams is None:
            grid = {"learning_rate": (config.learning_rate,)}
        elif isinstance(hyperparams, HyperparamSpace):
            grid = list(hyperparams.params)
        else:
            grid = hyperparams
        space = HyperparamSpace(grid, learner_class.supported_hyperparams(), defaults)
        if "batch_size" in defaults:
            rollout = config.n_steps * envs
            sizes = space.values.get("batch_size", (defaults["batch_size"],))
            too_big = sorted({int(b) for b in sizes if b > rollout})
            if too_big:
                raise ValueError(
                    f"batch_size {too_big} larger than the rollout (n_steps {config.n_steps} x n_envs {envs} = "
                    f"{rollout} samples), which every minibatch would then be: choose batch sizes <= {rollout}, "
                    "or a longer rollout"
                )

        # The layer shapes come from SB3's policy for this task (no env needed); the draw is discarded.
        # Building the batched policy checks that every policy setting can be honoured for M members.
        learner_class.adam_kwargs(config)
        check_population_policy(observation_space, inner_action_space)
        with TorchRNG(0, resolve_device("cpu")).active():
            policy = build_policy(observation_space, inner_action_space, config)
        BatchedActorCritic([policy], resolve_device("cpu"))
        _, layers = policy_layers(policy)
        n_params = sum(p.numel() for p in policy.parameters())
        obs_bytes = int(np.prod(observation_space.shape or (1,))) * (1 if observation_space.dtype == np.uint8 else 4)
        # Parameters, gradient, two optimiser moments, two snapshots, the history; rollout and batch copies.
        member_bytes = 4 * n_params * (6 + int(kwargs.get("n_orders", 2)))
        member_bytes += 2 * config.n_steps * envs * (obs_bytes + 4 * 6)
        encoded = observation_space_of(obs_mode, layers, **kwargs)
        n_extra = ("progress" in obs_extras) + len(space.params) * ("hyperparams" in obs_extras)
        if n_extra:
            low = np.concatenate([encoded.low, np.zeros(n_extra, dtype=np.float32)])
            high = np.concatenate([encoded.high, np.ones(n_extra, dtype=np.float32)])
            encoded = gym.spaces.Box(low, high, dtype=np.float32)
        return cls(
            algo=algo,
            learner_class=learner_class,
            config=config,
            task=task,
            total_env_steps=int(total),  # type: ignore[arg-type]
            space=space,
            obs_mode=obs_mode,
            obs_extras=tuple(obs_extras),
            action_mode=action_mode,
            reward_fn=make_reward(reward, gamma=config.gamma, gae_lambda=config.gae_lambda),
            rollouts_per_phase=rollouts_per_phase,
            phases_per_episode=per_episode,
            n_envs=envs,
            normalize=bool(normalize),
            device=device,
            divergence_penalty=float(divergence_penalty),
            lr_decay=lr_decay,
            eval_every=every,
            eval_episodes=episodes,
            credit=credit,
            encoder_kwargs=kwargs,
            layers=tuple(layers),
            action_space=space.gym_space(action_mode),
            observation_space=encoded,
            member_bytes=int(member_bytes),
        )
