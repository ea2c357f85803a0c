"""The step-wise on-policy learner: one base owns the data, subclasses own one update step.

The base class owns SB3's ``ActorCriticPolicy``, SB3's ``RolloutBuffer`` (whose
``compute_returns_and_advantage`` is the one GAE implementation in hypergym), the vectorised inner env,
rollout collection with raw-reward episode bookkeeping, the single hyperparameter entry point
(:meth:`OnPolicyLearner.apply`), divergence rollback, and the gradient history the hyper-state reads.
A2C and PPO override only how a batch is chosen and what the loss is.

SB3's ``train()`` is never called: its learning-rate and clip-range schedules would overwrite the values
a hyper-agent chose.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from hypergym.checkpoint import clear_unrestored, is_unrestored
from hypergym.devices import resolve_device
from hypergym.hyperstate import policy_layers
from hypergym.learners.config import LearnerConfig
from hypergym.learners.networks import build_policy
from hypergym.learners.records import RECENT_EPISODES, RolloutStats, Scope
from hypergym.seeding import TorchRNG, derive_seeds
from hypergym.spaces import check_value
from reference.rollback import Snapshot

__all__ = ["OnPolicyLearner", "RolloutStats", "Scope", "UpdateResult", "build_policy"]


@dataclass
class UpdateResult:
    """Outcome of one policy update step."""

    losses: dict[str, float] = field(default_factory=dict)
    """``policy_loss``, ``value_loss``, ``entropy_loss``, ``loss``, ``grad_norm``, ``n_samples`` and, for
    PPO, ``approx_kl`` and ``clip_fraction``."""
    diverged: bool = False
    """The update produced a non-finite loss, gradient or parameter and was rolled back."""


def _raw_reward_source(venv: VecEnv) -> Callable[[], np.ndarray] | None:
    """Where the last step's unnormalised, unclipped rewards can be read, if the env changes them.

    An env that clips rewards itself (:class:`~hypergym.envs.atari.AtariVecEnv`) exposes them as
    ``raw_rewards`` (looked up through ``VecEnvWrapper`` layers, so ``VecNormalize`` around it is fine);
    otherwise ``VecNormalize`` keeps the rewards it scaled.
    """
    env: Any = venv
    while env is not None:
        if "raw_rewards" in vars(env):
            holder = env
            return lambda: holder.raw_rewards
        env = getattr(env, "venv", None) if isinstance(env, VecEnvWrapper) else None
    if isinstance(venv, VecNormalize):
        return venv.get_original_reward
    return None


class OnPolicyLearner(ABC):
    """Base of the step-wise A2C / PPO learners.

    Args:
        venv: The inner vectorised env (seeded by the caller; VecNormalize if wanted).
        config: The learner configuration (the defaults of every hyperparameter).
        seed: Seed of this learner's torch stream and minibatch shuffling.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        n_orders: Number of past gradients kept for the hyper-state.
    """

    config_class: ClassVar[type[LearnerConfig]] = LearnerConfig
    #: Whether gradients are clipped to ``max_grad_norm`` before the optimiser step (not in ACKTR).
    clip_gradients: ClassVar[bool] = True
    #: Hyperparameters this learner accepts through :meth:`apply`, with their scope.
    scopes: ClassVar[Mapping[str, Scope]] = {}

    def __init__(
        self,
        venv: VecEnv,
        config: LearnerConfig,
        seed: int,
        device: str | torch.device = "auto",
        n_orders: int = 2,
    ) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.venv = venv
        self.config = config
        self.device = resolve_device(device)
        torch_seed, np_seed = derive_seeds(seed, 2)
        self.rng = TorchRNG(torch_seed, self.device)
        self.np_rng = np.random.default_rng(np_seed)
        self.n_envs = venv.num_envs
        self.observation_space = venv.observation_space
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("Dict observation spaces are not supported by the inner learners (flatten them first)")
        self.action_space = venv.action_space

        # Hyperparameter values in force (per-step ones) and waiting for the next rollout (per-rollout ones).
        self._hp: dict[str, float | int] = {name: getattr(config, name) for name in self.scopes}
        self._pending: dict[str, float | int] = {}

        with self.rng.active():
            self.policy = self._build_policy().to(self.device)
        self.optimizer: torch.optim.Optimizer = self.policy.optimizer
        self.set_learning_rate(config.learning_rate)
        self.buffer = RolloutBuffer(
            config.n_steps,
            self.observation_space,
            self.action_space,
            device=self.device,
            gamma=config.gamma,
            gae_lambda=config.gae_lambda,
            n_envs=self.n_envs,
        )
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        self.layer_weights, self.layers = policy_layers(self.policy)
        self.grad_history = GradientHistory(self.layer_weights, n_orders)
        # Rollback targets: the last state whose loss was finite, and the initial state (last resort).
        self._checkpoint = Snapshot(self.params, self.optimizer)
        self._initial = Snapshot(self.params, self.optimizer)
        self._initial.save()

        self.env_steps = 0
        self.updates = 0
        self._recent: deque[float] = deque(maxlen=RECENT_EPISODES)
        self._last_obs = venv.reset()
        self._last_episode_starts = np.ones(self.n_envs, dtype=bool)
        self._in_force: dict[str, float | int] = {}
        self._exhausted = True
        self._rolled_back = False
        self._training_mode: bool | None = None
        self._loaded = False

    # ------------------------------------------------------------------ construction
    def _build_policy(self) -> ActorCriticPolicy:
        """SB3's actor-critic policy (the core's, CNN features for image observations) with this learner's optimiser."""
        policy_kwargs = {**self.config.policy_kwargs, **self._optimizer_kwargs()}
        config = dataclasses.replace(self.config, policy_kwargs=policy_kwargs)
        return build_policy(self.observation_space, self.action_space, config)

    def _optimizer_kwargs(self) -> dict[str, Any]:
        """Optimiser class and arguments for the policy (default: SB3's Adam with eps 1e-5)."""
        return {}

    # ------------------------------------------------------------------ hyperparameters
    @classmethod
    def supported_hyperparams(cls) -> list[str]:
        """Names :meth:`apply` accepts."""
        return list(cls.scopes)

    def apply(self, hparams: Mapping[str, float | int]) -> None:
        """Set hyperparameters: per-step ones for the next update, per-rollout ones for the next rollout.

        Raises:
            ValueError: On an unknown name or an invalid value.
        """
        for name, value in hparams.items():
            if name not in self.scopes:
                raise ValueError(
                    f"unknown hyperparameter {name!r}; {type(self).__name__} supports {sorted(self.scopes)}"
                )
            value = check_value(name, value)
            if self.scopes[name] is Scope.ROLLOUT:
                self._pending[name] = value
            else:
                self._hp[name] = value
                if name == "learning_rate":
                    self.set_learning_rate(float(value))

    def set_learning_rate(self, lr: float) -> None:
        """Write the step size into every optimiser parameter group."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def hyperparams_in_force(self) -> dict[str, float | int]:
        """Values actually in force, read back rather than echoed from the request.

        The learning rate comes from the optimiser, loss coefficients and batch size as the loss code last
        used them, per-rollout values as the current rollout's advantages were computed with.
        """
        out = dict(self._hp)
        out.update(self._in_force)
        out["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
        out["gamma"] = float(self.buffer.gamma)
        out["gae_lambda"] = float(self.buffer.gae_lambda)
        return {k: out[k] for k in self.scopes}

    # ------------------------------------------------------------------ environment phase
    def collect_rollout(self) -> tuple[RolloutStats, bool]:
        """Collect one rollout of ``n_steps`` per env and compute its GAE advantages.

        Returns:
            The rollout's statistics and whether the policy had to be rolled back because its outputs
            were non-finite (the rollout is then collected again with the restored policy).
        """
        if self._loaded:
            self._restart_unrestored_envs()
            self._loaded = False
        for name, value in self._pending.items():
            self._hp[name] = value
        self._pending.clear()
        gamma = float(self._hp.get("gamma", self.config.gamma))
        self.buffer.gamma = gamma
        self.buffer.gae_lambda = float(self._hp.get("gae_lambda", self.config.gae_lambda))
        self._rolled_back = False
        with self.rng.active():
            stats = self._collect(gamma)
            # Finite but huge parameters can give non-finite values without failing the action sampler:
            # go back to the last finite state, then to the initial one, and collect again.
            for target in (self._checkpoint, self._initial):
                if np.isfinite(self.buffer.advantages).all():
                    break
                target.restore()
                self._rolled_back = True
                stats = self._collect(gamma)
        self._exhausted = False
        self._on_new_rollout()
        return stats, self._rolled_back

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # Unpickled from a checkpoint: envs whose simulator could not be saved start again at the next rollout.
        self._loaded = True

    def _restart_unrestored_envs(self) -> None:
        """After loading a checkpoint whose simulators could not be saved (Box2D): new episodes for all envs."""
        envs = getattr(self.venv.unwrapped, "envs", [])
        if any(is_unrestored(env) for env in envs):
            for env in envs:
                clear_unrestored(env)
            self._last_obs = self.venv.reset()
            self._last_episode_starts = np.ones(self.n_envs, dtype=bool)

    def _act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions; if the policy's outputs are non-finite, roll back (last finite, then initial)."""
        try:
            return self.policy(obs)
        except ValueError:  # torch.distributions rejects non-finite distribution parameters
            pass
        for target in (self._checkpoint, self._initial):
            target.restore()
            self._rolled_back = True
            try:
                return self.policy(obs)
            except ValueError:
                continue
        raise RuntimeError("the initial policy gives non-finite outputs on these observations")

    @torch.no_grad()
    def _collect(self, gamma: float) -> RolloutStats:
        """The rollout loop (as SB3's ``collect_rollouts``, plus raw-reward bookkeeping)."""
        self._set_training_mode(False)
        self.buffer.reset()
        n_steps = self.config.n_steps
        raw = np.zeros((n_steps, self.n_envs), dtype=np.float64)
        returns: list[float] = []
        lengths: list[int] = []
        raw_source = _raw_reward_source(self.venv)
        box = isinstance(self.action_space, spaces.Box)
        for t in range(n_steps):
            actions_t, values, log_probs = self._act(obs_as_tensor(self._last_obs, self.device))  # type: ignore[arg-type]
            actions: np.ndarray = actions_t.cpu().numpy()
            env_actions = actions
            if box:
                if self.policy.squash_output:
                    env_actions = self.policy.unscale_action(actions)
                else:
                    env_actions = np.clip(actions, self.action_space.low, self.action_space.high)  # type: ignore[attr-defined]
            new_obs, rewards, dones, infos = self.venv.step(env_actions)
            raw[t] = raw_source() if raw_source is not None else rewards
            for info in infos:
                episode = info.get("episode")
                if episode is not None:
                    returns.append(float(episode["r"]))
                    lengths.append(int(episode["l"]))
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            # Bootstrap truncated episodes with the value of their last observation (SB3 issue #633).
            for i, done in enumerate(dones):
                if (
                    done
                    and infos[i].get("terminal_observation") is not None
                    and infos[i].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[i]["terminal_observation"])[0]
                    rewards[i] += gamma * self.policy.predict_values(terminal_obs)[0].item()
            obs = self._last_obs
            self.buffer.add(obs, actions, rewards, self._last_episode_starts, values, log_probs)  # type: ignore[arg-type]
            self._last_obs = new_obs
            self._last_episode_starts = dones
        last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))  # type: ignore[arg-type]
        self.buffer.compute_returns_and_advantage(last_values=last_values, dones=self._last_episode_starts)
        self.env_steps += n_steps * self.n_envs
        self._recent.extend(returns)
        return RolloutStats(returns, lengths, raw, tuple(self._recent))

    # ------------------------------------------------------------------ update phase
    @property
    def rollout_exhausted(self) -> bool:
        """Whether the current rollout is used up, so the next update needs a new rollout."""
        return self._exhausted

    def update_step(self) -> UpdateResult:
        """Perform ONE policy update step with the hyperparameters in force.

        A non-finite loss or gradient, or an optimiser step that overflows, never raises: parameters and
        optimiser state return to the last state known to give a finite loss and the result says
        ``diverged``. Parameters that an update leaves non-finite are caught where they are next used (the
        next update's loss, or the rollout collected after the phase) and rolled back the same way; this
        spares a pass over all parameters on every step.

        Raises:
            RuntimeError: If the current rollout is exhausted (collect a new one first).
        """
        if self._exhausted:
            raise RuntimeError("the current rollout is used up: call collect_rollout() before update_step()")
        with self.rng.active():
            self._set_training_mode(True)
            batch = self._next_batch()
            loss, losses = self._loss(batch)
            diverged = not bool(torch.isfinite(loss))
            if diverged:
                # The current parameters already give a non-finite loss: go back to the last finite state.
                self._checkpoint.restore()
            else:
                self._checkpoint.save()
                self.optimizer.zero_grad()
                loss.backward()
                diverged = not self._optimizer_step(losses)
                if diverged:
                    self._checkpoint.restore()
        self.updates += 1
        losses["n_samples"] = float(len(batch.advantages))
        self._advance(len(batch.advantages))
        return UpdateResult(losses=losses, diverged=diverged)

    def _optimizer_step(self, losses: dict[str, float]) -> bool:
        """Clip, record and apply the gradient; False when the gradient is non-finite or the step overflows."""
        grads = [p.grad for p in self.params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)
        losses["grad_norm"] = float(grad_norm)
        if not math.isfinite(losses["grad_norm"]):
            return False
        self.grad_history.push()
        if self.clip_gradients:
            max_norm = float(self._hp.get("max_grad_norm", self.config.max_grad_norm))
            self._in_force["max_grad_norm"] = max_norm
            torch.nn.utils.clip_grads_with_norm_(self.params, max_norm, grad_norm)
        try:
            self.optimizer.step()
        except FloatingPointError:
            # K-FAC: a failed eigendecomposition or a non-finite natural gradient, raised before any change.
            return False
        except (RuntimeError, OverflowError) as err:
            # A step size beyond float range fails inside the optimiser ("cannot be converted to type float
            # without overflow"): that is a divergence, not a crash. Anything else is a real error.
            if "overflow" not in str(err):
                raise
            return False
        return True

    def _set_training_mode(self, training: bool) -> None:
        """Switch train/eval mode only on a change (the module walk costs more than a small update)."""
        if self._training_mode is not training:
            self.policy.set_training_mode(training)
            self._training_mode = training

    def _evaluate(self, batch: RolloutBufferSamples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Values, log-probabilities and entropy of the batch's actions under the current policy."""
        actions = batch.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        values, log_prob, entropy = self.policy.evaluate_actions(batch.observations, actions)
        return values.flatten(), log_prob, entropy

    def _coefficients(self) -> tuple[float, float]:
        """Entropy and value coefficients in force, recorded as the loss code uses them."""
        ent_coef = float(self._hp.get("ent_coef", self.config.ent_coef))
        vf_coef = float(self._hp.get("vf_coef", self.config.vf_coef))
        self._in_force.update(ent_coef=ent_coef, vf_coef=vf_coef)
        return ent_coef, vf_coef

    def _flatten_buffer(self) -> int:
        """Flatten the rollout buffer to ``[n_steps * n_envs, ...]`` without shuffling; return its size.

        SB3's ``RolloutBuffer.get`` flattens and shuffles in one go, drawing the permutation from NumPy's
        global RNG and fixing the batch size for the whole pass; hypergym needs its own seeded order and a
        batch size that may change at every step, so it flattens here and indexes with ``_get_samples``.
        """
        buf = self.buffer
        if not buf.generator_ready:
            for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
                buf.__dict__[name] = buf.swap_and_flatten(buf.__dict__[name])
            buf.generator_ready = True
        return buf.buffer_size * buf.n_envs

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _on_new_rollout(self) -> None:
        """Prepare to consume a freshly collected rollout."""

    @abstractmethod
    def _next_batch(self) -> RolloutBufferSamples:
        """The samples of the next update step."""

    @abstractmethod
    def _loss(self, batch: RolloutBufferSamples) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one update step and its parts (as floats)."""

    @abstractmethod
    def _advance(self, n_samples: int) -> None:
        """Mark ``n_samples`` samples as consumed; set ``_exhausted`` when the rollout is used up."""

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the inner environments."""
        self.venv.close()


class GradientHistory:
    """The last ``n_orders`` gradients of each layer weight, newest first.

    Gradients are copied into preallocated buffers (a ring), zero before the first update.

    Args:
        weights: The layer weights whose gradients are recorded.
        n_orders: N_order, how many past gradients to keep.
    """

    def __init__(self, weights: list[torch.Tensor], n_orders: int = 2) -> None:
        if n_orders < 0:
            raise ValueError(f"n_orders must be >= 0, got {n_orders!r}")
        self.weights = weights
        self.n_orders = n_orders
        self._slots = [
            [torch.zeros_like(w, memory_format=torch.contiguous_format) for w in weights] for _ in range(n_orders)
        ]
        self._newest = 0

    @torch.no_grad()
    def push(self) -> None:
        """Record the gradients currently held in ``weight.grad`` as the newest."""
        if self.n_orders == 0:
            return
        self._newest = (self._newest - 1) % self.n_orders
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        torch._foreach_copy_(self._slots[self._newest], grads)

    def gradients(self, order: int) -> list[torch.Tensor]:
        """The ``order``-th most recent gradient of every layer (``order`` in 1..n_orders)."""
        if not 1 <= order <= self.n_orders:
            raise ValueError(f"order must be in 1..{self.n_orders}, got {order!r}")
        return self._slots[(self._newest + order - 1) % self.n_orders]
