"""DQN as a hyper-agent: SB3's DQN with the paper's configuration, driven one hyper-step at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.dqn.policies import DQNPolicy

from hypergym.agents.base import EpsilonGreedyAgent, Transition
from hypergym.agents.qnets import HyperQNetwork, QLayout, grid_coordinates
from hypergym.devices import resolve_device
from hypergym.seeding import GlobalRNGs

__all__ = ["DQNAgent", "HyperDQNPolicy"]


class DQNAgent(EpsilonGreedyAgent):
    """SB3 DQN with the paper's settings (Appendix B.3), stepped through the agent protocol.

    Q and target networks are ReLU MLPs with 3 linear layers (two hidden layers of 64 units), replay
    buffer of 1M, batch 32, one gradient step per hyper-step once ``learning_starts`` transitions are
    stored, target network synced every ``target_update_interval`` (the paper's Tq in {5, 50, 500})
    gradient steps, epsilon linear from 1 to 0 over the run (the env-step budget of a ``HyperRLEnv``,
    else ``total_steps`` hyper-steps). Exploration draws from the agent's own seeded generator, and SB3's
    own sampling (replay minibatches use NumPy's global RNG, networks torch's) runs inside private RNG
    streams, so the global RNGs are left as they were.

    Args:
        env: The env (``Discrete`` actions, flat ``Box`` observations).
        target_update_interval: Tq.
        learning_rate: Adam step size of the Q network.
        buffer_size: Replay capacity.
        batch_size: Replay minibatch.
        learning_starts: Transitions stored before the first gradient step.
        gamma: Discount of the Hyper-RL returns.
        total_steps: Epsilon schedule length in hyper-steps, for envs without an env-step budget.
        device: Torch device of the networks.
        seed: Seed of the agent.
        decay_fraction: Fraction of the run over which epsilon falls to ``floor`` (paper: 1).
        floor: Epsilon after the decay (paper: 0).
        q_net: ``"mlp"`` (the paper's: one output per grid point) or ``"hyper"``: a hypernetwork Q over the
            grid points' hyperparameter values (:class:`~hypergym.agents.qnets.QLayout`), which generalises
            from tried grid points to their neighbours.
        q_net_kwargs: ``"hyper"``: :class:`~hypergym.agents.qnets.QLayout` arguments (``hidden``,
            ``dynamic_hidden``, ``blocks``, ``sigmas``).
        **dqn_kwargs: Any other ``stable_baselines3.DQN`` argument.
    """

    name = "dqn"

    def __init__(
        self,
        env: gym.Env,
        target_update_interval: int = 50,
        learning_rate: float = 1e-4,
        buffer_size: int = 1_000_000,
        batch_size: int = 32,
        learning_starts: int = 32,
        gamma: float = 0.99,
        total_steps: int | None = None,
        device: str = "cpu",
        seed: int | None = None,
        decay_fraction: float = 1.0,
        floor: float = 0.0,
        q_net: str = "mlp",
        q_net_kwargs: dict[str, Any] | None = None,
        **dqn_kwargs: Any,
    ) -> None:
        from stable_baselines3 import DQN

        super().__init__(env, total_steps, seed, decay_fraction, floor)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"DQNAgent needs a Discrete action space, got {env.action_space}")
        if target_update_interval < 1:
            raise ValueError(f"target_update_interval must be a positive integer, got {target_update_interval!r}")
        policy_kwargs: dict[str, Any] = {"net_arch": [64, 64]}
        if q_net == "hyper":
            space = getattr(env.unwrapped, "space", None)
            if space is None:
                raise ValueError("q_net='hyper' reads the grid's hyperparameter values: give it a HyperRL env")
            policy_kwargs.update(coordinates=grid_coordinates(space), layout_kwargs=dict(q_net_kwargs or {}))
        elif q_net != "mlp" or q_net_kwargs:
            raise ValueError(f"q_net must be 'mlp' or 'hyper' (q_net_kwargs only with 'hyper'), got {q_net!r}")
        self.target_update_interval = target_update_interval
        self.learning_starts = learning_starts
        self.batch_size = batch_size
        self._rngs = GlobalRNGs(seed or 0, resolve_device(device))
        self._settings = {
            "target_update_interval": target_update_interval,
            "learning_rate": learning_rate,
            "buffer_size": buffer_size,
            "batch_size": batch_size,
            "learning_starts": learning_starts,
            "gamma": gamma,
            "q_net": q_net,
            **({"q_net_kwargs": q_net_kwargs} if q_net_kwargs else {}),
            **dqn_kwargs,
        }
        with self._rngs.active():
            self.model = DQN(
                HyperDQNPolicy if q_net == "hyper" else "MlpPolicy",
                env,
                learning_rate=learning_rate,
                buffer_size=buffer_size,
                batch_size=batch_size,
                learning_starts=learning_starts,
                gamma=gamma,
                train_freq=1,
                gradient_steps=1,
                target_update_interval=target_update_interval,
                exploration_initial_eps=1.0,
                exploration_final_eps=0.0,
                policy_kwargs=policy_kwargs,
                device=device,
                verbose=0,
                **dqn_kwargs,
            )
        self.model.set_logger(_null_logger())
        self.gradient_steps = 0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """Epsilon-greedy on the Q network."""
        if self.rng.random() < self.epsilon(info):
            return int(self.rng.integers(self.action_space.n))
        with torch.no_grad():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)[None], device=self.model.device)
            return int(self.model.q_net(obs_t).argmax(dim=1).item())

    def observe(self, transition: Transition) -> None:
        """Store the transition; one gradient step; sync the target every Tq gradient steps."""
        self.steps += 1
        # A truncated learning episode (budget end) is not a terminal state of the Hyper-RL.
        done = np.array([transition.terminated])
        infos = [{"TimeLimit.truncated": bool(transition.truncated and not transition.terminated)}]
        buffer = self.model.replay_buffer
        assert buffer is not None
        buffer.add(
            np.asarray(transition.obs)[None],
            np.asarray(transition.next_obs)[None],
            np.array([[transition.action]]),
            np.array([transition.reward], dtype=np.float32),
            done,
            infos,
        )
        if buffer.size() < max(self.learning_starts, self.batch_size):
            return
        with self._rngs.active():
            self.model.train(gradient_steps=1, batch_size=self.batch_size)
        self.gradient_steps += 1
        if self.gradient_steps % self.target_update_interval == 0:
            self.model.q_net_target.load_state_dict(self.model.q_net.state_dict())

    def config(self) -> dict[str, Any]:
        """Settings of the agent."""
        return {**super().config(), **self._settings}

    def save(self, path: str | Path) -> None:
        """Write the settings and the networks under ``path``."""
        path = Path(path)
        super().save(path)
        torch.save(
            {"q_net": self.model.q_net.state_dict(), "q_net_target": self.model.q_net_target.state_dict()},
            path / "dqn.pt",
        )

    def load(self, path: str | Path) -> None:
        """Restore the networks written by :meth:`save`."""
        state = torch.load(Path(path) / "dqn.pt", map_location=self.model.device)
        self.model.q_net.load_state_dict(state["q_net"])
        self.model.q_net_target.load_state_dict(state["q_net_target"])


class HyperDQNPolicy(DQNPolicy):
    """SB3's DQN policy whose Q and target networks score the grid with a hypernetwork Q.

    Args:
        coordinates: The ``[n_actions, k]`` grid coordinates (:func:`~hypergym.agents.qnets.grid_coordinates`).
        layout_kwargs: Further :class:`~hypergym.agents.qnets.QLayout` arguments.
        *args, **kwargs: ``DQNPolicy``'s.
    """

    def __init__(self, *args: Any, coordinates: np.ndarray, layout_kwargs: dict[str, Any], **kwargs: Any) -> None:
        self.coordinates, self.layout_kwargs = coordinates, layout_kwargs
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> Any:
        """SB3's Q-network (its features extractor) with the hypernetwork Q in place of its MLP."""
        net = super().make_q_net()
        n_actions = int(self.action_space.n)  # type: ignore[attr-defined]
        layout = QLayout(net.features_dim, n_actions, 1, "hyper", coordinates=self.coordinates, **self.layout_kwargs)
        net.q_net = HyperQNetwork(layout).to(self.device)
        return net


def _null_logger() -> Any:
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])
