"""Actor and critic heads on top of the TrajEncoder's state sequence.

The Agent builds a head as ``cls(state_dim, action_dim, discrete, gammas[, num_critics])``: the
TrajEncoder's output width, the number of discrete actions (or the action width), whether the space
is ``Discrete``, and the discount factors served (``Multigammas`` plus ``Agent.gamma``, the last one
used to act). Every other argument is a gin keyword (docs/configuration.md). One actor MLP emits a
distribution per discount factor; the critic ensemble is a single batched network (weights stacked
over C, one bmm per layer).

Shapes: B batch, L sequence, D state width, K sampled actions, C critics, G gammas, A action
width, P critic outputs per (critic, gamma) (1, or the number of bins for two-hot critics).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import gin
import torch
from torch import distributions as pyd
from torch import nn

from amago_pl import compat
from amago_pl.nets.critics import (  # the original's path for the critic heads
    BaseCriticHead,
    EnsembleLinear,
    EnsembleMLP,
    NCritics,
    NCriticsTwoHot,
)
from amago_pl.nets.ff import MLP, FFBlock, Normalization
from amago_pl.nets.policy_dists import Discrete, PolicyOutput, TanhGaussian
from amago_pl.nets.utils import activation_switch, symlog

# ------------------------------------------------------------------------------ actors


class BaseActorHead(nn.Module, ABC):
    """State (B, L, D) -> distribution over (B, L, G, A), one per gamma."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        discrete: bool,
        gammas: Sequence[float],
        continuous_dist_type: type,
        discrete_dist_type: type,
    ):
        super().__init__()
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.discrete = discrete
        self.num_gammas = len(gammas)
        self.policy_dist: PolicyOutput = (discrete_dist_type if discrete else continuous_dist_type)(
            action_dim
        )

    @property
    def actions_differentiable(self) -> bool:
        return self.policy_dist.actions_differentiable

    def forward(
        self, state: torch.Tensor, straight_from_obs: dict[str, torch.Tensor] | None = None
    ) -> pyd.Distribution:
        """state (B, L, D); straight_from_obs: raw obs keys (e.g. action masks), ignored by default."""
        params = self.params(state)  # (B, L, G * P)
        # Distributions are built in fp32: bf16 log-probs and tanh inverses lose too much precision.
        params = params.float().unflatten(
            -1, (self.num_gammas, self.policy_dist.input_dimension)
        )  # (B, L, G, P)
        return self.policy_dist(params)

    @abstractmethod
    def params(self, state: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states -> (B, L, G * P) distribution parameters for every gamma."""


@gin.configurable
class Actor(BaseActorHead):
    """MLP actor head: state -> one set of distribution parameters per gamma.

    The default actor (``Agent.actor_type``). The distribution class is picked from the action
    space: ``discrete_dist_type`` for ``Discrete`` spaces, ``continuous_dist_type`` otherwise
    (Box and MultiBinary).

    Args:
        n_layers: hidden layers of the MLP (``n_layers=2`` gives three Linear layers).
        activation: an ``activation_switch`` name.
        continuous_dist_type: a ``PolicyOutput`` class (``TanhGaussian``, ``GMM``, ``Beta``;
            ``Multibinary`` for MultiBinary spaces).
        discrete_dist_type: a ``PolicyOutput`` class; ``MultiTaskAgent`` passes
            ``DiscreteLikeContinuous`` itself.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        discrete: bool,
        gammas: Sequence[float],
        n_layers: int = 2,
        d_hidden: int = 256,
        activation: str = "leaky_relu",
        dropout_p: float = 0.0,
        continuous_dist_type: type = TanhGaussian,
        discrete_dist_type: type = Discrete,
    ):
        super().__init__(state_dim, action_dim, discrete, gammas, continuous_dist_type, discrete_dist_type)
        d_out = self.num_gammas * self.policy_dist.input_dimension
        self.net = MLP(state_dim, d_hidden, n_layers, d_out, activation=activation, dropout_p=dropout_p)

    def params(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state)


@gin.configurable
class ResidualActor(BaseActorHead):
    """Wider actor of residual pre-norm blocks (BRO, Nauman et al. 2024).

    Linear(feature_dim) -> norm -> activation, then ``residual_blocks`` pre-norm residual
    feed-forward blocks, then a final norm and a Linear layer to the distribution parameters of
    every gamma. Select it with ``Agent.actor_type = @ResidualActor``.

    Args:
        feature_dim: width of the residual stream.
        residual_ff_dim: hidden width inside each residual block.
        normalization: ``Normalization`` name used at the input, inside each block and at the
            output.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        discrete: bool,
        gammas: Sequence[float],
        feature_dim: int = 256,
        residual_ff_dim: int = 512,
        residual_blocks: int = 2,
        activation: str = "leaky_relu",
        normalization: str = "layer",
        dropout_p: float = 0.0,
        continuous_dist_type: type = TanhGaussian,
        discrete_dist_type: type = Discrete,
    ):
        super().__init__(state_dim, action_dim, discrete, gammas, continuous_dist_type, discrete_dist_type)
        self.inp = nn.Sequential(
            nn.Linear(state_dim, feature_dim),
            Normalization(normalization, feature_dim),
            activation_switch(activation)(),
        )
        self.blocks = nn.Sequential(
            *(
                FFBlock(feature_dim, residual_ff_dim, activation, dropout_p, normalization)
                for _ in range(residual_blocks)
            )
        )
        self.out_norm = Normalization(normalization, feature_dim)
        self.out = nn.Linear(feature_dim, self.num_gammas * self.policy_dist.input_dimension)

    def params(self, state: torch.Tensor) -> torch.Tensor:
        return self.out(self.out_norm(self.blocks(self.inp(state))))


def gammas_as_input_seq(gammas: torch.Tensor, batch_size: int, length: int) -> torch.Tensor:
    """gammas (G,) -> (B * G, L, 1) features ``symlog(1 / (1 - gamma))``, the gamma input of the
    original's critics (amago/nets/actor_critic.py at 2d85600); the heads here compute it inside."""
    horizon = symlog(1.0 / (1.0 - gammas).clamp(1e-6, 1.0))  # (G,)
    return horizon.repeat(batch_size)[:, None, None].expand(-1, length, 1)  # (B * G, L, 1), b-major


# PopArtLayer, which the original defined here, lives in nets/popart.py (amago_pl/compat.py).
__getattr__ = compat.name_getattr(__name__)

__all__ = [
    "Actor",
    "BaseActorHead",
    "BaseCriticHead",
    "EnsembleLinear",
    "EnsembleMLP",
    "NCritics",
    "NCriticsTwoHot",
    "ResidualActor",
    "gammas_as_input_seq",
]
