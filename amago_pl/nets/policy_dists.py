"""Policy output distributions: map an actor's raw outputs to a torch distribution over actions.

The actor head builds every class here as ``cls(d_action)`` (the number of discrete actions, or the
action width); the rest are gin keywords with the original's names and defaults
(docs/configuration.md). A ``PolicyOutput`` knows

- ``input_dimension``: how many raw parameters it needs per action distribution;
- ``actions_differentiable``: whether Q(s, a~pi) can be differentiated w.r.t. the policy (through
  ``rsample`` or, for ``Discrete``, through the probabilities), which the DPG actor term needs;
- ``action_from_buffer``: how replay actions are presented to the critic;
- ``log_prob``: log pi(a_buffer | s) reduced to one value per distribution, finite at the bounds;
- ``actions_for_value``: the K actions used to estimate V(s) = E_pi Q(s, a);
- ``env_action``: the action sent to the environment (sampled or greedy).

Shapes: ``...`` is any batch shape, usually (B, L, G); A is the action-representation width; K the
number of sampled actions.

The discrete distributions live here; the continuous ones in ``continuous_dists`` and the base
class in ``policy_output``, all importable from this module.
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import distributions as pyd

from amago_pl.nets.continuous_dists import GMM, Beta, TanhGaussian
from amago_pl.nets.policy_output import (
    PolicyOutput,
    StdActivation,
    softplus_bounded_positive,
    tanh_bounded_positive,
)

__all__ = [
    "GMM",
    "Beta",
    "Discrete",
    "DiscreteLikeContinuous",
    "Multibinary",
    "PolicyOutput",
    "StdActivation",
    "TanhGaussian",
    "softplus_bounded_positive",
    "tanh_bounded_positive",
]


# ------------------------------------------------------------------------------ discrete


class _ClippedCategorical(pyd.Categorical):
    """Categorical whose probabilities are clipped and renormalised.

    The renormalising sum is detached (as in the original) so the gradient of a clipped entry is
    not redistributed over the others. Clipping keeps every action's probability > 0, so log-probs
    of buffer actions stay finite.

    ``log_prob`` returns the clipped distribution's value but the *unclipped* log-softmax's
    gradient. Through the clamp, an action whose probability fell below ``low`` got exactly zero
    gradient, so behaviour cloning could never raise it again: on T-Maze the DPG term pushed the
    correct turn under the floor before the critic had learned to remember the goal, and the policy
    stayed at ~50% success although its critic ranked the right turn first (docs/porting.md).
    """

    def __init__(self, logits: torch.Tensor, low: float, high: float):
        self.raw_log_probs = F.log_softmax(logits, dim=-1)  # (..., A)
        probs = self.raw_log_probs.exp().clamp(low, high)
        probs = probs / probs.sum(-1, keepdim=True).detach()
        super().__init__(probs=probs, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        clipped = super().log_prob(value)  # (...,)
        idx = value.long().unsqueeze(-1)
        raw = self.raw_log_probs.expand(*value.shape, -1).gather(-1, idx).squeeze(-1)  # (...,)
        return clipped.detach() + (raw - raw.detach())  # clipped value, unclipped gradient


@gin.configurable
class Discrete(PolicyOutput):
    """Categorical policy for Discrete(A) spaces; V(s) is computed exactly from the probabilities.

    The probabilities are clipped to [clip_prob_low, clip_prob_high] and renormalised, so every
    action keeps some probability and log-probs of replay actions stay finite. The default
    ``Actor.discrete_dist_type``.
    """

    discrete = True
    actions_differentiable = True  # through the probabilities (sum_a pi(a|s) Q(s, a))

    def __init__(self, d_action: int, clip_prob_low: float = 0.001, clip_prob_high: float = 0.99):
        super().__init__(d_action)
        self.clip_prob_low = clip_prob_low
        self.clip_prob_high = clip_prob_high

    @property
    def input_dimension(self) -> int:
        return self.d_action

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        return _ClippedCategorical(params, self.clip_prob_low, self.clip_prob_high)

    def action_from_buffer(self, actions: torch.Tensor) -> torch.Tensor:
        # The critic sees buffer actions with the same clipping as the policy's probabilities,
        # so Q(s, one-hot) and Q(s, probs) live on the same input range.
        soft = actions.clamp(self.clip_prob_low, self.clip_prob_high)
        return soft / soft.sum(-1, keepdim=True)

    def log_prob(self, dist: pyd.Distribution, actions: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(actions.argmax(-1)).unsqueeze(-1)  # (..., 1)

    def actions_for_value(self, dist: pyd.Distribution, k: int) -> torch.Tensor:
        # The expectation over actions is exact with the probabilities, so K is always 1.
        return dist.probs.unsqueeze(0)  # (1, ..., A)

    def env_action(self, dist: pyd.Distribution, sample: bool) -> torch.Tensor:
        return dist.sample() if sample else dist.probs.argmax(-1)  # (...,) int64 index

    def entropy(self, dist: pyd.Distribution) -> torch.Tensor:
        return dist.entropy()


class _ClippedStraightThroughOneHot(pyd.OneHotCategorical):
    """One-hot categorical over clipped, renormalised probabilities; ``rsample`` is straight-through.

    The original wraps the output of its ``Discrete`` head (probabilities clamped to [low, high]
    and renormalised by a detached sum, amago/nets/policy_dists.py:288-298 at 2d85600) in a
    ``OneHotCategorical`` built from those clipped probabilities (policy_dists.py:322). So sampling,
    entropy, the Gumbel-softmax ``rsample`` and the log-prob values all see the clipped
    probabilities. As in :class:`_ClippedCategorical`, ``log_prob`` keeps the clipped value but
    takes the unclipped log-softmax's gradient, so filtered BC can still raise an action that fell
    under ``low`` (docs/porting.md).
    """

    has_rsample = True

    def __init__(self, logits: torch.Tensor, low: float, high: float, temperature: float):
        self.raw_log_probs = F.log_softmax(logits, dim=-1)  # (..., A)
        probs = self.raw_log_probs.exp().clamp(low, high)
        probs = probs / probs.sum(-1, keepdim=True).detach()  # (..., A)
        super().__init__(probs=probs, validate_args=False)
        self.temperature = temperature

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        # self.logits is log(clipped probs): the original's gumbel_softmax(categorical.logits).
        logits = self.logits.expand(*sample_shape, *self.logits.shape)  # (*S, ..., A)
        return F.gumbel_softmax(logits, tau=self.temperature, hard=True)  # forward: one-hot

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        clipped = super().log_prob(value)  # (...,)
        raw = (value * self.raw_log_probs).sum(-1)  # (...,) value is a hard one-hot
        return clipped.detach() + (raw - raw.detach())  # clipped value, unclipped gradient


@gin.configurable
class DiscreteLikeContinuous(PolicyOutput):
    """Discrete actions as one-hot vectors for (state, action) -> scalar critics (MultiTaskAgent).

    The probabilities are clipped and renormalised exactly as :class:`Discrete` does (the original
    applies its ``Discrete`` head first and wraps the clipped result, amago/agent.py:1313 at
    2d85600), in the training loss and in rollout sampling alike. Unless bound here, the bounds are
    those of ``Discrete`` (so ``Discrete.clip_prob_low = ...`` reaches ``MultiTaskAgent`` as in the
    original).

    Buffer actions reach the critic as hard one-hots: the policy's straight-through samples are
    hard one-hots in the forward pass too, so the critic is trained and queried on the same inputs.
    The log-prob always uses the hard one-hot (the original passed the soft-clipped one and raised
    a support error, see docs/porting.md). ``MultiTaskAgent`` selects it for Discrete spaces itself.

    Args:
        gumbel_softmax_temperature: temperature of the Gumbel-softmax relaxation whose gradient
            the straight-through samples use (lower is closer to a hard argmax, with noisier
            gradients).
        clip_prob_low: None takes ``Discrete.clip_prob_low`` (0.001 unless gin binds it).
        clip_prob_high: None takes ``Discrete.clip_prob_high`` (0.99 unless gin binds it).
    """

    discrete = True
    actions_differentiable = True

    def __init__(
        self,
        d_action: int,
        gumbel_softmax_temperature: float = 0.5,
        clip_prob_low: float | None = None,
        clip_prob_high: float | None = None,
    ):
        super().__init__(d_action)
        self.gumbel_softmax_temperature = gumbel_softmax_temperature
        # Building Discrete through gin picks up any Discrete.clip_prob_* binding.
        bounds = Discrete(d_action)
        self.clip_prob_low = bounds.clip_prob_low if clip_prob_low is None else clip_prob_low
        self.clip_prob_high = bounds.clip_prob_high if clip_prob_high is None else clip_prob_high

    @property
    def input_dimension(self) -> int:
        return self.d_action

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        return _ClippedStraightThroughOneHot(
            params, self.clip_prob_low, self.clip_prob_high, self.gumbel_softmax_temperature
        )

    def log_prob(self, dist: pyd.Distribution, actions: torch.Tensor) -> torch.Tensor:
        hard = F.one_hot(actions.argmax(-1), self.d_action).to(dist.probs.dtype)
        return dist.log_prob(hard).unsqueeze(-1)  # (..., 1)

    def env_action(self, dist: pyd.Distribution, sample: bool) -> torch.Tensor:
        return dist.sample().argmax(-1) if sample else dist.probs.argmax(-1)  # (...,) int64 index

    def entropy(self, dist: pyd.Distribution) -> torch.Tensor:
        return dist.entropy()


@gin.configurable
class Multibinary(PolicyOutput):
    """Independent Bernoulli per dimension for MultiBinary spaces (set ``Actor.continuous_dist_type``).

    Not chosen automatically: bind ``Actor.continuous_dist_type = @Multibinary``. Samples are not
    differentiable, so it needs ``Agent.online_coeff = 0``. The log-prob is the mean (not the
    sum) over dimensions.
    """

    def __init__(self, d_action: int):
        super().__init__(d_action)

    @property
    def input_dimension(self) -> int:
        return self.d_action

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        return pyd.Bernoulli(logits=params, validate_args=False)

    def log_prob(self, dist: pyd.Distribution, actions: torch.Tensor) -> torch.Tensor:
        # Mean (not sum) over dimensions, as the original, so the scale does not grow with A.
        return dist.log_prob(actions.round()).mean(-1, keepdim=True)  # (..., 1)

    def env_action(self, dist: pyd.Distribution, sample: bool) -> torch.Tensor:
        return dist.sample() if sample else (dist.probs > 0.5).to(dist.probs.dtype)  # (..., A)

    def entropy(self, dist: pyd.Distribution) -> torch.Tensor:
        return dist.entropy().sum(-1)
