"""Feature extractors for image observations, chosen by the learner setting ``cnn``.

``"nature"`` is SB3's ``NatureCNN`` (Mnih et al., 2015: conv 32-8x8/4, 64-4x4/2, 64-3x3/1, linear 512).
``"acktr"`` is the network of the ACKTR paper and code (Wu et al., 2017; OpenAI baselines @3f676f7,
ikostrikov's ``CNNBase``): the same with 32 channels in the last conv, "for speeding up matrix inversion":
K-FAC's input factor of the linear layer shrinks from 3,137 to 1,569 rows, and its eigendecomposition,
which dominates an ACKTR update on a CPU, from about 2.2 s to 0.25 s on the development machine.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

__all__ = ["ACKTRCNN", "CNNS"]


class ACKTRCNN(BaseFeaturesExtractor):
    """ACKTR's CNN: conv 32-8x8/4, 64-4x4/2, 32-3x3/1, ReLU, linear ``features_dim`` (512), ReLU.

    Args:
        observation_space: A channels-first image space (SB3 scales uint8 pixels to [0, 1] before it).
        features_dim: Width of the last layer.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 512) -> None:
        super().__init__(observation_space, features_dim)
        n_channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features of a batch of (scaled) images."""
        return self.linear(self.cnn(observations))


#: Value of the ``cnn`` setting -> features extractor class.
CNNS: dict[str, type[BaseFeaturesExtractor]] = {"nature": NatureCNN, "acktr": ACKTRCNN}
