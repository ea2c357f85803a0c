"""The two EPGT profiles: ``paper`` (the paper's text) and ``code`` (the authors' released code's settings).

The paper's numbers came from the released code (github thaihungle/EPGT), whose settings differ from the
text (``shared/research/epgt-code-vs-paper.md``). A profile names one side of every difference at once:

- env side (:func:`apply_env_profile`, ``gym.make(id, profile="code")``): the hyper-reward
  ``critic_return``; learning-rate actions as Eq. 5 multipliers of the default, default first, on a base
  that decays linearly to 0 over the budget (``lr_decay="linear"``, so the static baseline decays too);
  for A2C and ACKTR one update per phase (the code's ``episode_size=1``: every update is credited, with the
  return of the rollout collected before it, ``credit="before"``); for
  A2C on vector tasks ikostrikov's defaults (VecNormalize, GAE 0.95, value coefficient 0.5).
- agent side (:func:`agent_profile`, ``make_agent(name, env, profile="code")``): epsilon 1 -> 0.01 over the
  first half of the run; EPGT's memory of value vectors (read K = 5, write K = 3, ``1/(d^2 + 1e-3)``,
  5-d frozen random keys, ties to the default, LRU) written every update, capacity 10,000 on MuJoCo
  PPO and 5,000 elsewhere.

A profile sets every setting the caller does not pass: an explicit argument always wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypergym.envs.tasks import task_spec
from hypergym.presets import PROFILES
from hypergym.spaces import eq5_grid

__all__ = ["PROFILES", "agent_profile", "apply_env_profile", "check_profile", "code_lr_grid"]


#: The released code's learning-rate quantisation where the paper states the range: (B, scale) of
#: :func:`~hypergym.spaces.eq5_multipliers`. Fig. 2a's [4e-5, 1e-2] around 7e-4 is x1/15 ... x15 (B 15,
#: scale 0.5); Fig. 2b's [2.8e-4, 1.8e-3] is the classic script's x0.4 ... x2.5 (B 7, scale 2).
_LR_QUANTISATION: dict[str, tuple[int, float]] = {
    "HyperRL-A2C-MountainCarContinuous": (15, 0.5),
    "HyperRL-A2C-BipedalWalker": (7, 2.0),
}

#: ikostrikov's A2C defaults (the released code's inner learner on vector tasks) where OpenAI's differ.
_IKOSTRIKOV_A2C = {"gae_lambda": 0.95, "vf_coef": 0.5, "normalize": True}


def check_profile(profile: Any) -> str:
    """``profile`` if it names a profile.

    Raises:
        ValueError: Otherwise, naming the valid ones.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {list(PROFILES)}")
    return str(profile)


def code_lr_grid(env_id: str, default: float, n_values: int) -> tuple[float, ...]:
    """The released code's learning-rate values for ``env_id``: Eq. 5 multipliers of ``default``, default first.

    Where the paper gives the range (MountainCarContinuous, BipedalWalker A2C) the code's quantisation of
    it; elsewhere the same number of values (made odd) with ``scale=1``, the paper's Eq. 5.
    """
    b, scale = _LR_QUANTISATION.get(env_id, (n_values + (n_values % 2 == 0), 1.0))
    return eq5_grid(default, b, scale)


def _code_changes(env_id: str, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The env settings the ``code`` profile gives ``env_id`` (before explicit overrides are kept)."""
    algo = kwargs.get("algo", defaults["algo"])
    task = kwargs.get("task", defaults["task"])
    changes: dict[str, Any] = {"reward": "critic_return", "lr_decay": "linear"}
    if algo in ("A2C", "ACKTR"):
        # one update per phase, credited with the return of the rollout it trained on (a2c_acktr.py:51-57)
        changes.update(updates_per_phase=1, credit="before")
    if algo == "A2C" and task_spec(task).family != "atari":
        changes.update(_IKOSTRIKOV_A2C)
    grid = kwargs.get("hyperparams", defaults["hyperparams"])
    if isinstance(grid, Mapping) and len(grid.get("learning_rate", ())) > 1:
        lr = kwargs.get("learning_rate")
        if isinstance(lr, (int, float)) and lr > 0:
            changes["hyperparams"] = {
                **grid, "learning_rate": code_lr_grid(env_id, lr, len(grid["learning_rate"]))
            }  # fmt: skip
    return changes


def apply_env_profile(
    profile: str, preset: Mapping[str, Any], overrides: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The arguments of a ``HyperRLEnv``: ``preset`` with ``profile``'s env settings, then ``overrides``.

    The profile sets every setting the caller does not pass: an explicit argument always wins.

    Args:
        profile: ``"paper"`` (the preset as it is) or ``"code"``.
        preset: The id's preset (empty for an env built without one).
        overrides: The caller's arguments.
        defaults: The env's defaults of the arguments a profile reads (``algo``, ``task``, ``hyperparams``).

    Raises:
        ValueError: On an unknown profile.
    """
    out = {**preset, **overrides}
    if check_profile(profile) == "paper":
        return out
    env_id = f"HyperRL-{out.get('algo', defaults['algo'])}-{out.get('task', defaults['task'])}"
    for key, value in _code_changes(env_id, out, defaults).items():
        if key not in overrides:
            out[key] = value
    return out


def agent_profile(profile: str, name: str, env: Any) -> dict[str, Any]:
    """The agent arguments ``profile`` gives the built-in agent ``name`` on ``env`` (empty where none differ).

    Raises:
        ValueError: On an unknown profile.
    """
    if check_profile(profile) == "paper":
        return {}
    out: dict[str, Any] = {}
    if name in ("episodic", "dqn", "gem"):
        out.update(decay_fraction=0.5, floor=0.01)
    if name == "episodic":
        hx = getattr(env, "unwrapped", env)
        task = getattr(hx, "task", None)
        mujoco_ppo = getattr(hx, "algo", None) == "PPO" and task is not None and task_spec(task).family == "mujoco"
        # The released read (dnd.py line 153) reshapes the neighbours x actions block as actions x neighbours:
        # the profile reads as the released code did; released_reshape=False is the transposed (intended) read.
        out.update(memory="vector", key_dim=5, k_read=5, k=3, write_every=1, capacity=10_000 if mujoco_ppo else 5_000,
                   released_reshape=True)  # fmt: skip
    return out
