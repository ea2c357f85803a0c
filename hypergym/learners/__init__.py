"""Step-wise inner learners: one call of ``update_step`` is one policy update."""

from hypergym.learners.a2c import A2CLearner
from hypergym.learners.acktr import ACKTRLearner
from hypergym.learners.base import OnPolicyLearner, RolloutStats, Scope, UpdateResult
from hypergym.learners.config import A2CConfig, ACKTRConfig, LearnerConfig, PPOConfig
from hypergym.learners.kfac import KFAC, KFACDivergence
from hypergym.learners.ppo import PPOLearner

#: Learner classes by algorithm name.
LEARNERS: dict[str, type[OnPolicyLearner]] = {"A2C": A2CLearner, "ACKTR": ACKTRLearner, "PPO": PPOLearner}

__all__ = [
    "KFAC",
    "LEARNERS",
    "A2CConfig",
    "A2CLearner",
    "ACKTRConfig",
    "ACKTRLearner",
    "KFACDivergence",
    "LearnerConfig",
    "OnPolicyLearner",
    "PPOConfig",
    "PPOLearner",
    "RolloutStats",
    "Scope",
    "UpdateResult",
]
