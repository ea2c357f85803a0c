"""The learner core: A2C, PPO and ACKTR over M >= 1 members; one call of ``update_step`` is one policy update."""

from hypergym.learners.a2c import A2CLearner
from hypergym.learners.acktr import ACKTRLearner
from hypergym.learners.config import A2CConfig, ACKTRConfig, LearnerConfig, PPOConfig
from hypergym.learners.core import Learner
from hypergym.learners.kfac import KFAC
from hypergym.learners.networks import build_policy
from hypergym.learners.policy import BatchedActorCritic
from hypergym.learners.ppo import PPOLearner
from hypergym.learners.records import RolloutStats, Scope, UpdateResult

#: Learner classes by algorithm name.
LEARNERS: dict[str, type[Learner]] = {"A2C": A2CLearner, "ACKTR": ACKTRLearner, "PPO": PPOLearner}

__all__ = [
    "KFAC",
    "LEARNERS",
    "A2CConfig",
    "A2CLearner",
    "ACKTRConfig",
    "ACKTRLearner",
    "BatchedActorCritic",
    "Learner",
    "LearnerConfig",
    "PPOConfig",
    "PPOLearner",
    "RolloutStats",
    "Scope",
    "UpdateResult",
    "build_policy",
]
