"""Step-wise inner learners: one call of ``update_step`` is one policy update."""

from hypergym.learners.a2c import A2CLearner
from hypergym.learners.base import OnPolicyLearner, RolloutStats, Scope, UpdateResult
from hypergym.learners.config import A2CConfig, LearnerConfig, PPOConfig
from hypergym.learners.ppo import PPOLearner

#: Learner classes by algorithm name.
LEARNERS: dict[str, type[OnPolicyLearner]] = {"A2C": A2CLearner, "PPO": PPOLearner}

__all__ = [
    "LEARNERS",
    "A2CConfig",
    "A2CLearner",
    "LearnerConfig",
    "OnPolicyLearner",
    "PPOConfig",
    "PPOLearner",
    "RolloutStats",
    "Scope",
    "UpdateResult",
]
