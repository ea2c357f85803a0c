"""Which optimiser steps the learner core: the ``optimizer`` setting of every A2C and PPO id.

``None`` keeps the algorithm's own (A2C: RMSprop, or Adam with ``use_rms_prop=False``; PPO: Adam; ACKTR:
K-FAC, which is the algorithm and is not replaced). ``"adam"`` and ``"rmsprop"`` name torch's rules with
SB3's settings; ``"optim4rl"`` and ``"linear"`` are the learned optimisers shipped with hypergym
(``hypergym/data/optim4rl.pt``, and the LinearOptim ablation ``hypergym/data/linear.pt``, both meta-trained by
``hypergym meta-train`` on Catch, see docs/learners.md); ``"optim4rl-sdl"`` and ``"optim4rl-sdl-nopipe"`` are
the rules of the pipeline ablation (Optim4RL's Table 1), meta-trained on small_dense_long with and without
pipeline training; ``"optim4rl-grids"`` was meta-trained on the six gridworlds at once (the rule of the
generalisation study, the paper's Fig. 4); any other value is the path of a learned-optimiser file, whose
rule (Optim4RL or LinearOptim) the file names. The learned rules take the
learner's ``learning_rate`` as their step size alpha, so hyper-agents schedule it as they schedule Adam's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hypergym.learners.optim import BatchedAdam, BatchedOptimizer, BatchedRMSprop
from hypergym.learners.optim4rl import BatchedOptim4RL, load_rule

__all__ = ["OPTIMIZERS", "SHIPPED", "build_optimizer", "check_optimizer", "learned_rule", "shipped_path"]

#: The learned optimisers shipped with the package (``hypergym/data/<name>.pt``).
SHIPPED = ("optim4rl", "linear", "optim4rl-sdl", "optim4rl-sdl-nopipe", "optim4rl-grids")
#: The optimisers named by a word (any other value is a learned-optimiser file's path).
OPTIMIZERS = ("adam", "rmsprop", *SHIPPED)


def shipped_path(name: str = "optim4rl") -> Path:
    """Where the shipped learned optimiser ``name`` (one of :data:`SHIPPED`) lies."""
    return Path(str(resources.files("hypergym").joinpath(f"data/{name}.pt")))


def learned_rule(optimizer: str) -> tuple[nn.Module, dict[str, Any]]:
    """The rule of a shipped learned optimiser's name or of a learned-optimiser file's path, and its ``meta``."""
    return load_rule(shipped_path(optimizer) if optimizer in SHIPPED else optimizer)


def check_optimizer(algo: str, optimizer: str | None) -> None:
    """Refuse an ``optimizer`` setting that cannot be honoured, naming what is valid.

    Raises:
        ValueError: For ACKTR (its optimiser is K-FAC), or for a path that is not a learned-optimiser file.
    """
    if optimizer is None:
        return
    if algo == "ACKTR":
        raise ValueError(
            f"ACKTR's optimiser is K-FAC (its natural gradient and trust region are the algorithm): optimizer "
            f"{optimizer!r} applies to A2C and PPO ids only"
        )
    if not isinstance(optimizer, str) or not optimizer:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} or a learned-optimiser file's path")
    if optimizer in SHIPPED and not shipped_path(optimizer).is_file():
        raise ValueError(
            f"this installation lacks the shipped {optimizer!r} optimiser ({shipped_path(optimizer)}): meta-train one "
            f"(hypergym meta-train ID, see docs/learners.md) and pass optimizer=<its path>"
        )
    if optimizer not in ("adam", "rmsprop"):
        learned_rule(optimizer)  # read now: a bad file fails at gym.make, not at the first update


def build_optimizer(
    optimizer: str,
    flat: torch.Tensor,
    grad: torch.Tensor,
    adam: dict[str, Any],
    rmsprop: dict[str, Any] | None = None,
) -> BatchedOptimizer:
    """The batched optimiser named ``optimizer`` over ``flat`` (its gradients in ``grad``).

    Args:
        optimizer: ``"adam"``, ``"rmsprop"``, ``"optim4rl"``, ``"linear"`` or a learned-optimiser file's path.
        flat: The ``[M, P]`` parameters.
        grad: Their ``[M, P]`` gradients.
        adam: Adam's settings.
        rmsprop: RMSprop's (``alpha``, ``eps``; default SB3's A2C: 0.99, 1e-5).
    """
    if optimizer == "adam":
        return BatchedAdam(flat, grad, **adam)
    if optimizer == "rmsprop":
        return BatchedRMSprop(flat, grad, **(rmsprop or {"alpha": 0.99, "eps": 1e-5}))
    rule, _ = learned_rule(optimizer)
    rule.requires_grad_(False)  # applied, not trained: meta-training gives its own rule
    return BatchedOptim4RL(flat, grad, rule)
