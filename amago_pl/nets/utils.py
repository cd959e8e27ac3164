"""Small shared pieces of the nets: activations, symlog/symexp and the running input normaliser."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gin
import torch
from torch import nn

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "leaky_relu": nn.LeakyReLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "mish": nn.Mish,
}


def add_activation_log(root_key: str, activation: torch.Tensor, log_dict: dict | None = None) -> None:
    """Record max/min/std/mean of ``activation`` under ``activation-{root_key}-...`` in ``log_dict``.

    The original's logging helper for custom encoders (amago/nets/utils.py at 2d85600); a no-op
    when ``log_dict`` is None, which is what amago_pl's Agent passes.
    """
    if log_dict is None:
        return
    with torch.no_grad():
        for stat in ("max", "min", "std", "mean"):
            log_dict[f"activation-{root_key}-{stat}"] = getattr(activation, stat)()


class SlowAdaptiveRational(nn.Module):
    """Rational activation P(x) / (1 + |Q(x)|), degrees (5, 4), initialised as a leaky ReLU fit.

    Delfosse et al., "Adaptive Rational Activations to Boost Deep RL" (https://arxiv.org/abs/2102.09407),
    in plain PyTorch ops; the initial coefficients are the leaky-ReLU fit used by the original
    (amago/nets/utils.py at 2d85600). Activation name "adaptive".
    """

    _P_INIT = (0.029792778657264946, 0.6183735264987601, 2.323309062531321,
               3.051936237265109, 1.4854203263828845, 0.2510244961111299)  # fmt: skip
    _Q_INIT = (-1.1419548357285474, 4.393159974992486, 0.8714712309957245, 0.34719662339598834)

    def __init__(self, trainable: bool = True):
        super().__init__()
        self.numerator = nn.Parameter(torch.tensor(self._P_INIT), requires_grad=trainable)  # x^0..x^5
        self.denominator = nn.Parameter(torch.tensor(self._Q_INIT), requires_grad=trainable)  # x^1..x^4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        powers = torch.stack([x**i for i in range(len(self._P_INIT))], dim=-1)  # (..., 6)
        p = (powers * self.numerator).sum(-1)
        q = (powers[..., 1 : 1 + len(self._Q_INIT)] * self.denominator).abs().sum(-1)
        return p / (1.0 + q)


_ACTIVATIONS["adaptive"] = SlowAdaptiveRational


def activation_switch(name: str) -> Callable[[], nn.Module]:
    """Map an activation name to a factory; call the result to get a fresh module."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes but is ~identity near zero (DreamerV3)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


@gin.configurable(denylist=["skip"])
class InputNorm(nn.Module):
    """Running mean / second-moment normaliser over the last dimension.

    The statistics are an EMA whose rate is bias-corrected, ``beta / (1 - (1-beta)^(t+1))`` after
    ``t`` real updates: the initial values (mu=0, nu=init_nu) act as one prior batch, so the first
    batch moves them about half-way and the k-th has weight ~1/(k+1). This follows the original,
    whose counter ``_t`` starts at 1 and is incremented before use (amago/nets/utils.py:106 and
    :145-149 at 2d85600). They change only in training mode and only from real (unmasked)
    timesteps, so padding never leaks into them. All statistics are buffers and therefore travel
    with the state_dict.

    Normalised output: ``(x - mu) / sigma`` with ``sigma = sqrt(nu - mu^2 + 1e-5)`` clamped to
    [1e-3, 1e6]; features whose sigma is at most 0.01 are only centred, and the result is clamped
    to +-1e4.

    ``FFTstepEncoder`` builds it as ``InputNorm(dim)`` with its input width; ``skip`` is denylisted
    in gin, ``beta`` and ``init_nu`` are gin keywords.

    Args:
        beta: EMA rate of the running statistics once the bias correction has worn off; smaller
            is slower.
        init_nu: initial value of the running second moment (the initial sigma is about
            sqrt(init_nu)); it carries the weight of one batch.
        skip: pass inputs through unchanged (the buffers still exist, for checkpoint
            compatibility).
    """

    def __init__(self, dim: int, beta: float = 1e-4, init_nu: float = 1.0, skip: bool = False):
        super().__init__()
        self.dim = dim
        self.beta = beta
        self.skip = skip
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("nu", torch.full((dim,), float(init_nu)))
        # Real updates applied so far; the prior batch is added in the rate's exponent instead, so
        # the buffer keeps its name and meaning and older state_dicts load unchanged.
        self.register_buffer("t", torch.zeros((), dtype=torch.long))
        self.skipped_updates = 0  # batches in which some feature kept its statistics (not saved)

    @property
    def sigma(self) -> torch.Tensor:
        var = (self.nu - self.mu.square()).clamp_min(0.0) + 1e-5
        return var.sqrt().clamp(1e-3, 1e6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (..., D); mask: x.shape[:-1] bool (True = real step) or None -> (..., D)."""
        if self.skip:
            return x
        if self.training:
            self.update_stats(x, mask)
        return self.normalize(x)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma
        # Near-constant features would blow up when divided by a tiny sigma: only centre them.
        scale = torch.where(sigma > 0.01, sigma, torch.ones_like(sigma))
        return ((x - self.mu) / scale).clamp(-1e4, 1e4)

    @torch.no_grad()
    def update_stats(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        flat = x.detach().reshape(-1, self.dim).float()  # (N, D)
        if mask is not None:
            flat = flat[mask.reshape(-1).bool()]
        if flat.shape[0] == 0:
            return
        self.t += 1
        # t + 1 batches seen, counting the prior (mu=0, nu=init_nu) as the first one.
        beta_t = self.beta / (1.0 - (1.0 - self.beta) ** (self.t.item() + 1))
        mu = self.mu * (1.0 - beta_t) + beta_t * flat.mean(0)  # (D,)
        nu = self.nu * (1.0 - beta_t) + beta_t * flat.square().mean(0)  # (D,)
        # A finite but huge input (1e20 squares to inf in float32) or a NaN would make the
        # statistics non-finite for good, in every later checkpoint (issue 21 item 2). Such a
        # feature keeps its previous statistics for this batch; every other feature updates with
        # exactly the arithmetic above, so ordinary inputs give bit-identical statistics.
        ok = torch.isfinite(mu) & torch.isfinite(nu) & torch.isfinite(mu.square())  # (D,)
        if not bool(ok.all()):
            self._skip_warning(flat, ok)
        self.mu.copy_(torch.where(ok, mu, self.mu))
        self.nu.copy_(torch.where(ok, nu, self.nu))

    def _skip_warning(self, flat: torch.Tensor, ok: torch.Tensor) -> None:
        self.skipped_updates += 1
        count = self.skipped_updates
        if count & (count - 1):  # warn on the 1st, 2nd, 4th, 8th ... skipped update only
            return
        bad = torch.nonzero(~ok).flatten().tolist()
        peak = flat[:, ~ok].abs().nan_to_num(nan=float("inf")).max().item()
        warnings.warn(
            f"InputNorm: kept the running statistics of input feature(s) {bad[:10]} unchanged for this "
            f"batch (skipped {count} time(s) so far): their values reach {peak:.3g}, whose square "
            "overflows float32 (or are NaN). Scale or clip these observations in the env (or set gin "
            "FFTstepEncoder.normalize_inputs = False) if they are meant to be this large.",
            RuntimeWarning,
            stacklevel=3,
        )
