"""The paper's evaluation protocol: the deterministic policy of every member on separate inner envs.

EPGT's Tables 1 and 2 report the best evaluation of a run (mean return of evaluation episodes played with
the policy's deterministic action), not the training return. :func:`evaluate` plays ``n_episodes``
episodes per member, one in each of ``n_episodes`` fresh envs seeded apart from the training envs,
observations normalised with the member's training statistics (not updated), and returns each member's
mean raw return. Every evaluation of a run starts from the same states, so evaluations differ only by the
policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from hypergym.envs.members import MemberVecEnv

__all__ = ["MAX_EVAL_STEPS", "evaluate"]

#: Steps after which an evaluation gives up (every catalogue task has a shorter time limit).
MAX_EVAL_STEPS = 200_000


def evaluate(learner: Any, task: str, seeds: list[int], n_episodes: int) -> np.ndarray:
    """Mean raw return of ``n_episodes`` deterministic episodes of each member's policy.

    Args:
        learner: The learner core (its ``policy``, ``device``, and ``venv.normalizer`` if it normalises).
        task: The inner task.
        seeds: One evaluation seed per member (env ``k`` of member ``i`` starts from ``seeds[i] + k``).
        n_episodes: Episodes per member, played in parallel, one per env.

    Returns:
        ``[M]`` mean return of each member's episodes (for Atari, of whole games).

    Raises:
        RuntimeError: If an episode has not ended after :data:`MAX_EVAL_STEPS` steps.
    """
    venv = MemberVecEnv(task, seeds, n_envs=n_episodes, normalize=False)
    normalizer = getattr(learner.venv, "normalizer", None)
    box = isinstance(venv.action_space, spaces.Box)
    returns = np.full((len(seeds), n_episodes), np.nan)
    try:
        obs = venv.reset()
        for _ in range(MAX_EVAL_STEPS):
            x = normalizer.normalize_obs(obs) if normalizer is not None else obs
            with torch.no_grad():
                params, _ = learner.policy.forward(torch.as_tensor(x, device=learner.device))
                actions = learner.policy.mode(torch.nan_to_num(params)).cpu().numpy()
            if box:
                actions = np.clip(actions, venv.action_space.low, venv.action_space.high)
            step = venv.step(actions)
            for i, k, ep_return, _ in step.episodes:
                if np.isnan(returns[i, k]):  # each env's first episode counts; later ones are not waited for
                    returns[i, k] = ep_return
            if not np.isnan(returns).any():
                return returns.mean(axis=1)
            obs = step.obs
    finally:
        venv.close()
    raise RuntimeError(f"an evaluation episode of {task} did not end within {MAX_EVAL_STEPS} steps")
