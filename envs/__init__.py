"""hypergym environments: ``HyperRLEnv`` and the inner-task catalogue."""

from hypergym.envs.atari import AtariVecEnv
from hypergym.envs.hyperrl_env import HyperRLEnv
from hypergym.envs.hyperrl_vector_env import HyperRLVectorEnv
from hypergym.envs.tasks import TASKS, TaskSpec, make_task, task_spaces
from hypergym.envs.tiny import Countdown

__all__ = [
    "TASKS",
    "AtariVecEnv",
    "Countdown",
    "HyperRLEnv",
    "HyperRLVectorEnv",
    "TaskSpec",
    "make_task",
    "task_spaces",
]
