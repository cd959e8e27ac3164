"""The base class of the policy output distributions and the std activations they share.

The contract a distribution fulfils is described in :mod:`amago_pl.nets.policy_dists`, which
re-exports everything here under the original's module path.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import distributions as pyd

# The type of the ``std_activation`` keywords: (raw output, low, high) -> positive std (the original's
# alias, amago/nets/policy_dists.py at 2d85600).
StdActivation = Callable[[torch.Tensor, float, float], torch.Tensor]


def tanh_bounded_positive(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Squash to [low, high] in log space (the SAC/DrQ log-std parameterisation)."""
    log_low, log_high = math.log(low), math.log(high)
    log_std = log_low + 0.5 * (log_high - log_low) * (torch.tanh(x) + 1.0)
    return log_std.exp()


def softplus_bounded_positive(x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
    """``low + softplus(x)``, optionally capped at ``high``."""
    out = low + F.softplus(x)
    return out if high is None else out.clamp(max=high)


class PolicyOutput(ABC):
    """Base class of the action distributions (plain objects: they hold no parameters)."""

    discrete: bool = False
    actions_differentiable: bool = False

    def __init__(self, d_action: int):
        self.d_action = d_action

    @property
    @abstractmethod
    def input_dimension(self) -> int:
        """Raw parameters per distribution."""

    @abstractmethod
    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        """params (..., input_dimension) -> distribution with batch shape (...) over (A,) actions."""

    def action_from_buffer(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., A) replay action representation -> (..., A) critic input. Identity by default."""
        return actions

    def log_prob(self, dist: pyd.Distribution, actions: torch.Tensor) -> torch.Tensor:
        """(..., A) replay actions -> (..., 1) log pi(a|s) summed over action dimensions."""
        return dist.log_prob(actions).unsqueeze(-1)

    def actions_for_value(self, dist: pyd.Distribution, k: int) -> torch.Tensor:
        """K actions per distribution for V(s) estimates -> (K, ..., A); reparameterised if possible."""
        return dist.rsample((k,)) if self.actions_differentiable else dist.sample((k,))

    def env_action(self, dist: pyd.Distribution, sample: bool) -> torch.Tensor:
        """Action for the environment: (..., A) float (greedy = the distribution's mode/mean)."""
        return dist.sample() if sample else dist.mean

    def entropy(self, dist: pyd.Distribution) -> torch.Tensor:
        """(...,) entropy; a one-sample estimate when there is no closed form."""
        try:
            return dist.entropy()
        except NotImplementedError:
            return -dist.log_prob(dist.sample())
