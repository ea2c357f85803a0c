"""Held-out grid points: how well Q-functions predict the returns of hyperparameter settings they never saw.

A study of the generalisation that a hypernetwork Q and GEM's parametric memory claim over a one-hot head
(:mod:`hypergym.agents.qnets`). A uniformly random schedule runs on a task with a large grid (a population of
seeds), recording every hyper-step: the hyper-state, the grid point, and the discounted hyper-return to the
end of its learning episode. For each run a third of the grid points is held out (drawn from the run's
seed); each model is fitted on the run's transitions at the other points and predicts the returns of the
transitions at the held-out ones:

- ``"mlp"`` and ``"hyper"``: a Q-network (one-hot head, or the hypernetwork over the points' hyperparameter
  values) regressed on the returns, as a DQN's Q at convergence;
- ``"gem"`` and ``"gem-hyper"``: GEM's meta networks, trained by GEM itself on the run's learning episodes
  with the held-out steps cut out: each piece between two held-out steps is stored as an episode truncated
  at its end, so its twin back-propagation targets bootstrap across the gap from GEM's own critics (a
  learning episode with no held-out step is rare: one of 260 random steps holds none with probability
  ``(2/3)^260``);
- ``"mean"``: the mean return of the fitted transitions (what knowing nothing of the point gives).

The error is the mean absolute difference between prediction and return over a run's held-out
transitions; :func:`heldout_study` returns it per run and model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hypergym.agents.base import Transition

__all__ = ["MODELS", "Recorded", "fit_predict", "heldout_study", "record_random"]

#: The models compared.
MODELS = ("mean", "mlp", "hyper", "gem", "gem-hyper")


@dataclass
class Recorded:
    """One run's hyper-steps, in order."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    """1 where the step ended a learning episode."""
    next_obs: np.ndarray

    def returns(self, gamma: float) -> np.ndarray:
        """The discounted hyper-return from each step to the end of its learning episode."""
        out, running = np.zeros(len(self.rewards)), 0.0
        for t in range(len(self.rewards) - 1, -1, -1):
            running = self.rewards[t] + gamma * running * (1.0 - self.dones[t])
            out[t] = running
        return out


class _RecordingRandom:
    """A uniformly random schedule from its seed that records the transitions it observes (one member's)."""

    def __init__(self, env: Any, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = int(env.action_space.n)
        self.steps: list[tuple[Any, ...]] = []

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.rng.integers(self.n))

    def observe(self, t: Transition) -> None:
        obs, next_obs = np.array(t.obs, dtype=np.float32), np.array(t.next_obs, dtype=np.float32)
        self.steps.append((obs, int(t.action), t.reward, t.terminated or t.truncated, next_obs))

    def recorded(self) -> Recorded:
        o, a, r, d, n = zip(*self.steps, strict=True)
        return Recorded(np.stack(o), np.array(a), np.array(r), np.array(d, dtype=float), np.stack(n))


def record_random(env_id: str, env_kwargs: dict[str, Any], seeds: Sequence[int]) -> list[Recorded]:
    """Run a uniformly random schedule on ``env_id`` as one population of ``seeds``; each run's hyper-steps."""
    from hypergym.agents.population import PerMemberAgent
    from hypergym.runner import run

    venv = gym.make_vec(env_id, num_envs=len(seeds), **env_kwargs)
    view = PerMemberAgent.member_view(venv)
    members = [_RecordingRandom(view, s) for s in seeds]
    run(venv, PerMemberAgent(venv, members), seed=list(seeds), progress=False)  # type: ignore[arg-type]
    venv.close()
    return [m.recorded() for m in members]


def fit_predict(
    model: str, env: gym.Env, run: Recorded, train: np.ndarray, gamma: float, steps: int, seed: int
) -> np.ndarray:
    """``model``'s predicted return at every transition of ``run``, fitted on the transitions ``train`` marks."""
    returns = run.returns(gamma)
    if model == "mean":
        return np.full(len(returns), returns[train].mean())
    if model in ("gem", "gem-hyper"):
        from hypergym.agents.gem import GEMCore

        rng = np.random.default_rng(seed)
        core = GEMCore(env, [seed], [rng], q_net="hyper" if model == "gem-hyper" else "mlp", gamma=gamma)
        for t in np.flatnonzero(train):  # held-out steps cut the episodes: each piece ends truncated there
            end = bool(run.dones[t])
            cut = not end and (t + 1 == len(train) or not train[t + 1])
            core.record(0, Transition(run.obs[t], run.actions[t], run.rewards[t], run.next_obs[t], end, cut, {}))
        for _ in range(steps):
            core.train(np.ones(1, dtype=bool))
        with torch.no_grad():
            q = core.layout.q(core.flat, torch.as_tensor(run.obs, dtype=torch.float32)[None])[0, 4:6].mean(0)
        return q[np.arange(len(returns)), run.actions].numpy()
    from hypergym.agents.qnets import QLayout, grid_coordinates
    from hypergym.learners.optim import BatchedAdam

    space = env.unwrapped.space  # type: ignore[attr-defined]
    layout = QLayout(run.obs.shape[1], space.n_actions, 1, model, coordinates=grid_coordinates(space))
    flat = layout.init([torch.Generator().manual_seed(seed)])
    grad = torch.zeros_like(flat)
    adam = BatchedAdam(flat, grad)
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(train)
    obs, target = torch.as_tensor(run.obs, dtype=torch.float32), torch.as_tensor(returns, dtype=torch.float32)
    actions = torch.as_tensor(run.actions)
    for _ in range(steps):
        batch = torch.as_tensor(rng.choice(rows, size=min(64, len(rows))))
        leaves = layout.leaves(flat)
        q = layout.q(leaves, obs[batch][None])[0, 0]
        ((q[torch.arange(len(batch)), actions[batch]] - target[batch]) ** 2).mean().backward()
        layout.write_grad(leaves, grad)
        adam.step(torch.tensor([1e-3], dtype=torch.float64))
    with torch.no_grad():
        q = layout.q(flat, obs[None])[0, 0]
    return q[torch.arange(len(returns)), actions].numpy()


def heldout_study(
    env_id: str,
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
    models: Sequence[str] = MODELS,
    fraction: float = 1 / 3,
    gamma: float = 0.99,
    steps: int = 2000,
) -> dict[str, list[float]]:
    """Per model, each run's mean absolute error at its held-out grid points (see the module).

    Raises:
        ValueError: On an unknown model, or a fraction outside (0, 1).
    """
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(MODELS)}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    runs = record_random(env_id, env_kwargs, seeds)
    env = gym.make(env_id, **env_kwargs)
    n = env.unwrapped.space.n_actions  # type: ignore[attr-defined]
    errors: dict[str, list[float]] = {m: [] for m in models}
    for seed, run in zip(seeds, runs, strict=True):
        held = np.random.default_rng([seed, 7]).permutation(n)[: max(1, round(fraction * n))]
        test = np.isin(run.actions, held)
        returns = run.returns(gamma)
        for m in models:
            predicted = fit_predict(m, env, run, ~test, gamma, steps, seed)
            errors[m].append(float(np.abs(predicted[test] - returns[test]).mean()))
    return errors
