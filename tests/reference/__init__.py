"""The reference learner: today's SB3-backed single-run A2C, PPO and ACKTR (with K-FAC on ``nn.Module``).

The package's learner core (``hypergym.learners``) is checked against it: same weights and the same batch
give the same losses, gradients and updates. It is not part of the package.
"""

from reference.a2c import A2CLearner
from reference.acktr import ACKTRLearner
from reference.base import OnPolicyLearner
from reference.kfac import KFAC, KFACDivergence
from reference.ppo import PPOLearner

__all__ = ["KFAC", "A2CLearner", "ACKTRLearner", "KFACDivergence", "OnPolicyLearner", "PPOLearner"]
