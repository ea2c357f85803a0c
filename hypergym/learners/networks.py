"""The networks: SB3's actor-critic policy for a task, and the feature extractors for image observations.

:func:`build_policy` gives a member's architecture and initial weights; ``cnn`` chooses the extractor of
image tasks:

``"nature"`` is SB3's ``NatureCNN`` (Mnih et al., 2015: conv 32-8x8/4, 64-4x4/2, 64-3x3/1, linear 512).
``"acktr"`` is the network of the ACKTR paper and code (Wu et al., 2017; OpenAI baselines @3f676f7,
ikostrikov's ``CNNBase``): the same with 32 channels in the last conv, "for speeding up matrix inversion":
K-FAC's input factor of the linear layer shrinks from 3,137 to 1,569 rows, and its eigendecomposition,
which dominates an ACKTR update on a CPU, from about 2.2 s to 0.25 s on the development machine.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

from hypergym.learners.config import LearnerConfig

__all__ = ["ACKTRCNN", "CNNS", "build_policy", "check_population_policy", "image_trunk", "mlp_layers"]


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


def build_policy(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    config: LearnerConfig,
) -> ActorCriticPolicy:
    """SB3's actor-critic policy for ``config`` (CNN features for image observations), on the CPU.

    It is the source of a member's architecture and initial weights. Weights are drawn from torch's global
    generator: call it inside a seeded stream (:class:`~hypergym.seeding.TorchRNG`).

    Raises:
        ValueError: For a ``cnn`` setting on a task whose observations are not images.
    """
    image = is_image_space(observation_space)
    policy_class = ActorCriticCnnPolicy if image else ActorCriticPolicy
    kwargs: dict[str, Any] = dict(config.policy_kwargs)
    if image:
        kwargs.setdefault("features_extractor_class", CNNS[config.cnn])
        # SB3 adds a 64-64 MLP after any extractor but NatureCNN; Atari nets feed the heads directly.
        kwargs.setdefault("net_arch", [])
    elif config.cnn != "nature":
        raise ValueError(f"cnn={config.cnn!r} applies to image observations only; this task's are not images")
    lr = float(config.learning_rate)
    return policy_class(observation_space, action_space, lambda _: lr, **kwargs)


def check_population_policy(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise a ``ValueError`` naming what is supported when a task cannot be batched.

    Raises:
        ValueError: For observations that are neither flat nor images, or actions that are neither
            Discrete nor flat Box.
    """
    flat = isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1
    if not flat and not is_image_space(observation_space, check_channels=True):
        raise ValueError(
            f"populations batch policies over flat Box observations or channels-first images; this task's "
            f"observations are {observation_space}"
        )
    if not isinstance(action_space, (spaces.Discrete, spaces.Box)) or (
        isinstance(action_space, spaces.Box) and len(action_space.shape) != 1
    ):
        raise ValueError(f"populations support Discrete and flat Box actions, got {action_space}")


def image_trunk(extractor: nn.Module) -> list[tuple[str, Any]]:
    """An image features extractor as the operations a batched forward runs, in order.

    Returns:
        ``("conv" | "linear", layer name)``, ``("act", module)`` and one ``("flatten", None)``.

    Raises:
        ValueError: For a module other than Conv2d, Linear, Flatten or a parameter-free activation.
    """
    ops: list[tuple[str, Any]] = []
    for name, module in extractor.named_modules(prefix="features_extractor"):
        if isinstance(module, nn.Sequential) or module is extractor:
            continue
        if isinstance(module, nn.Conv2d):
            ops.append(("conv", name))
        elif isinstance(module, nn.Linear):
            ops.append(("linear", name))
        elif isinstance(module, nn.Flatten):
            ops.append(("flatten", None))
        elif not list(module.children()) and not list(module.parameters()):
            ops.append(("act", module))
        else:
            raise ValueError(f"unsupported module {name}: {module} in the features extractor")
    if [kind for kind, _ in ops].count("flatten") != 1:
        raise ValueError("populations need an image features extractor with exactly one Flatten")
    return ops


def mlp_layers(seq: nn.Module, prefix: str) -> tuple[list[str], list[nn.Module]]:
    """Names of a Sequential's Linear layers (prefixed with ``prefix``) and the activation module after each.

    Raises:
        ValueError: Unless every Linear layer is followed by exactly one activation.
    """
    names: list[str] = []
    acts: list[nn.Module] = []
    for child_name, child in seq.named_children():
        if isinstance(child, nn.Linear):
            names.append(f"{prefix}.{child_name}")
        elif names and len(acts) < len(names):
            acts.append(child)
        else:
            raise ValueError(f"unsupported module {child} in {prefix} (Linear layers, each followed by one activation)")
    if len(acts) != len(names):
        raise ValueError(f"{prefix}: every Linear layer needs an activation after it")
    return names, acts
