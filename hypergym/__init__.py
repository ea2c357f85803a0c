"""hypergym: the training of a policy-gradient learner as a Gymnasium environment (Hyper-RL, EPGT).

Importing hypergym registers the ``HyperRL-{ALGO}-{TASK}`` ids with Gymnasium. Entry points are
strings, so torch and SB3 load only when an env is made.

Example:
    >>> import gymnasium as gym, hypergym
    >>> env = gym.make("HyperRL-PPO-HalfCheetah", total_env_steps=4096)
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from hypergym.presets import PRESET_SOURCES, PRESETS, preset
from hypergym.version import __version__

__all__ = [
    "PRESETS",
    "PRESET_SOURCES",
    "RunResult",
    "__version__",
    "aec_env",
    "load",
    "parallel_env",
    "preset",
    "register_envs",
    "run",
]

#: Entry point of every registered id.
ENTRY_POINT = "hypergym.envs.hyperrl_env:HyperRLEnv"
#: Vector entry point of every registered id: ``gym.make_vec(id, num_envs=N)`` builds a population.
VECTOR_ENTRY_POINT = "hypergym.envs.hyperrl_vector_env:HyperRLVectorEnv"


def register_envs() -> None:
    """Register every preset id with Gymnasium (idempotent)."""
    # The kwargs name the preset rather than copy it, so that the env tells the caller's overrides from the
    # preset's values (an EPGT profile sets only what the caller does not pass).
    for env_id in PRESETS:
        if env_id not in registry:
            register(
                id=env_id,
                entry_point=ENTRY_POINT,
                vector_entry_point=VECTOR_ENTRY_POINT,
                kwargs={"preset": env_id},
                order_enforce=True,
            )


register_envs()


def __getattr__(name: str) -> object:
    # The runner is imported on first use, so that ``import hypergym`` stays light.
    if name in ("run", "RunResult"):
        from hypergym import runner

        return getattr(runner, name)
    if name == "load":
        from hypergym.checkpoint import load

        return load
    if name in ("parallel_env", "aec_env"):
        from hypergym.envs import parallel

        return getattr(parallel, name)
    raise AttributeError(f"module 'hypergym' has no attribute {name!r}")
