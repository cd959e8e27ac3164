"""Policy output distributions for Box action spaces: TanhGaussian, GMM and Beta.

Their gin selectors and checkpoint names stay ``amago_pl.nets.policy_dists.<Name>`` (the original's
module path, amago/nets/policy_dists.py at 2d85600): each is registered with that ``module=``, and
``policy_dists`` re-exports them. Actions lie in [-1, 1]^A.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gin
import torch
from torch import distributions as pyd

from amago_pl.nets.policy_output import PolicyOutput, softplus_bounded_positive, tanh_bounded_positive


class _SquashedDist(pyd.TransformedDistribution):
    """A base distribution pushed through affine/tanh maps onto [-1, 1]^A.

    ``log_prob`` clips actions strictly inside the bounds, because buffer actions can sit exactly
    at +-1 where the inverse tanh (or the Beta density) diverges.
    """

    def __init__(
        self, base: pyd.Distribution, transforms: list, clip: tuple[float, float], mean: torch.Tensor
    ):
        super().__init__(base, transforms, validate_args=False)
        self._clip = clip
        self._mean = mean

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value.clamp(*self._clip))


@gin.configurable(module="amago_pl.nets.policy_dists")  # a literal: gin_index reads it
class TanhGaussian(PolicyOutput):
    """Diagonal Gaussian squashed by tanh; greedy action tanh(loc).

    Actions lie in (-1, 1). Reparameterised samples, so it supports the DPG actor term. The
    default ``Actor.continuous_dist_type``.

    Args:
        std_low: smallest standard deviation (before the tanh).
        std_high: largest standard deviation (before the tanh).
        std_activation: function ``(raw, low, high) -> std`` mapping the raw actor output to a
            standard deviation; the default squashes it into [low, high] in log space.
        clip_actions_on_log_prob: replay actions are clamped to this (low, high) range before
            their log-prob is computed, since the inverse tanh diverges at +-1.
    """

    actions_differentiable = True

    def __init__(
        self,
        d_action: int,
        std_low: float = math.exp(-5.0),
        std_high: float = math.exp(2.0),
        std_activation: Callable = tanh_bounded_positive,
        clip_actions_on_log_prob: tuple[float, float] = (-0.99, 0.99),
    ):
        super().__init__(d_action)
        self.std_low = std_low
        self.std_high = std_high
        self.std_activation = std_activation
        self.clip_actions_on_log_prob = tuple(clip_actions_on_log_prob)

    @property
    def input_dimension(self) -> int:
        return 2 * self.d_action

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        loc, raw_std = params.chunk(2, dim=-1)  # (..., A) each
        std = self.std_activation(raw_std, self.std_low, self.std_high)
        base = pyd.Independent(pyd.Normal(loc, std, validate_args=False), 1)
        return _SquashedDist(
            base, [pyd.TanhTransform(cache_size=1)], self.clip_actions_on_log_prob, torch.tanh(loc)
        )


@gin.configurable(module="amago_pl.nets.policy_dists")  # a literal: gin_index reads it
class GMM(PolicyOutput):
    """Tanh-squashed Gaussian mixture. Has no reparameterised sample, so it needs online_coeff=0.

    Suits multi-modal behaviour (e.g. imitation of mixed data with ``Agent.online_coeff = 0``).
    The greedy action is the squashed centre of the most likely mode.

    Args:
        std_low: smallest standard deviation of a component.
        std_high: largest standard deviation of a component; None for no cap.
        std_activation: function ``(raw, low, high) -> std``; the default is ``low + softplus(raw)``,
            capped at ``high``.
        clip_actions_on_log_prob: replay actions are clamped to this (low, high) range before
            their log-prob is computed.
    """

    def __init__(
        self,
        d_action: int,
        gmm_modes: int = 5,
        std_low: float = 1e-4,
        std_high: float | None = None,
        std_activation: Callable = softplus_bounded_positive,
        clip_actions_on_log_prob: tuple[float, float] = (-0.99, 0.99),
    ):
        super().__init__(d_action)
        self.gmm_modes = gmm_modes
        self.std_low = std_low
        self.std_high = std_high
        self.std_activation = std_activation
        self.clip_actions_on_log_prob = tuple(clip_actions_on_log_prob)

    @property
    def input_dimension(self) -> int:
        return self.gmm_modes * (2 * self.d_action + 1)

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        M, A = self.gmm_modes, self.d_action
        mode_logits = params[..., :M]  # (..., M)
        loc = params[..., M : M + M * A].unflatten(-1, (M, A))  # (..., M, A)
        std = self.std_activation(params[..., M + M * A :].unflatten(-1, (M, A)), self.std_low, self.std_high)
        comps = pyd.Independent(pyd.Normal(loc, std, validate_args=False), 1)
        base = pyd.MixtureSameFamily(
            pyd.Categorical(logits=mode_logits, validate_args=False), comps, validate_args=False
        )
        # Greedy action: the centre of the most likely mode (the mixture mean can sit between modes).
        best = mode_logits.argmax(-1, keepdim=True).unsqueeze(-1).expand(*loc.shape[:-2], 1, A)
        mean = torch.tanh(loc.gather(-2, best).squeeze(-2))  # (..., A)
        return _SquashedDist(base, [pyd.TanhTransform(cache_size=1)], self.clip_actions_on_log_prob, mean)


@gin.configurable(module="amago_pl.nets.policy_dists")  # a literal: gin_index reads it
class Beta(PolicyOutput):
    """Beta distribution per action dimension, shifted and scaled from [0, 1] to [-1, 1].

    Reparameterised samples (supports the DPG term); the greedy action is the distribution's
    mean.

    Args:
        alpha_low: smallest alpha concentration (above 1 keeps the density unimodal).
        alpha_high: largest alpha; None for no cap.
        beta_low: smallest beta concentration.
        beta_high: largest beta; None for no cap.
        std_activation: function ``(raw, low, high) -> concentration`` applied to both raw
            outputs.
        clip_actions_on_log_prob: replay actions are clamped to this (low, high) range before
            their log-prob is computed, since the density can diverge at +-1.
    """

    actions_differentiable = True

    def __init__(
        self,
        d_action: int,
        alpha_low: float = 1.0001,
        alpha_high: float | None = None,
        beta_low: float = 1.0001,
        beta_high: float | None = None,
        std_activation: Callable = softplus_bounded_positive,
        clip_actions_on_log_prob: tuple[float, float] = (-0.99, 0.99),
    ):
        super().__init__(d_action)
        self.alpha_low, self.alpha_high = alpha_low, alpha_high
        self.beta_low, self.beta_high = beta_low, beta_high
        self.std_activation = std_activation
        self.clip_actions_on_log_prob = tuple(clip_actions_on_log_prob)

    @property
    def input_dimension(self) -> int:
        return 2 * self.d_action

    def __call__(self, params: torch.Tensor) -> pyd.Distribution:
        raw_a, raw_b = params.chunk(2, dim=-1)  # (..., A) each
        alpha = self.std_activation(raw_a, self.alpha_low, self.alpha_high)
        beta = self.std_activation(raw_b, self.beta_low, self.beta_high)
        base = pyd.Independent(pyd.Beta(alpha, beta, validate_args=False), 1)
        mean = 2.0 * alpha / (alpha + beta) - 1.0
        return _SquashedDist(base, [pyd.AffineTransform(-1.0, 2.0)], self.clip_actions_on_log_prob, mean)
