"""PopArt value normalisation (van Hasselt et al. 2016, "Learning values across many orders of magnitude").

One set of statistics per discount factor: returns at gamma=0.1 and gamma=0.999 differ by orders
of magnitude, so each gamma head is normalised separately.
"""

from __future__ import annotations

import gin
import torch
from torch import nn


@gin.configurable(denylist=["enabled"])
class PopArtLayer(nn.Module):
    """Per-gamma running mean/second moment of TD targets plus the ART-preserving affine map.

    The critic's raw output x becomes the normalised prediction ``w*x + b``; the value in return
    units is ``sigma*(w*x + b) + mu``. ``w`` and ``b`` are buffers, not learned: each statistics
    update rescales them so the denormalised outputs do not jump ("preserving outputs precisely").
    Everything runs in fp32, because bf16 cannot hold a second moment of large returns.

    Statistics prior: the starting values (mu=0, nu=init_nu) count as one batch already seen. The
    bias-corrected rate ``beta / (1 - (1-beta)^(t+1))`` after ``t`` real updates gives the first
    batch weight ~1/2 and the k-th ~1/(k+1), as in the original, whose counter ``_t`` starts at
    1 and is incremented before use (amago/nets/actor_critic.py:714 and :747-751 at 2d85600).
    sigma is ``sqrt(clamp(nu - mu^2, 1e-4, 1e8))``, i.e. within [1e-2, 1e4] (actor_critic.py:720).

    The Agent builds it as ``PopArtLayer(num_gammas, enabled=Agent.popart)``; ``enabled`` is
    denylisted in gin, ``beta`` and ``init_nu`` are gin keywords.

    Args:
        gammas: number of discount factors G (one set of statistics each).
        beta: EMA rate of the running mean and second moment of the TD targets (bias-corrected
            early on); larger adapts faster.
        init_nu: initial second moment; with a zero initial mean the initial sigma is
            sqrt(init_nu) (10 for the default 100). It counts as one prior batch (above).
        enabled: False makes every method an identity.
    """

    def __init__(self, gammas: int, beta: float = 5e-4, init_nu: float = 100.0, enabled: bool = True):
        super().__init__()
        self.gammas = gammas
        self.beta = beta
        self.init_nu = init_nu
        self.enabled = enabled
        self.register_buffer("mu", torch.zeros(gammas, 1))  # (G, 1)
        self.register_buffer("nu", torch.full((gammas, 1), float(init_nu)))  # (G, 1)
        self.register_buffer("w", torch.ones(gammas, 1))  # (G, 1)
        self.register_buffer("b", torch.zeros(gammas, 1))  # (G, 1)
        # Number of real updates applied so far (the prior batch is not counted here; it is added
        # in the rate's exponent). Keeping this name and meaning means state_dicts saved before the
        # prior was honoured load unchanged; such a checkpoint at t=k simply continues with the
        # next batch weighted ~1/(k+2) instead of ~1/(k+1).
        self.register_buffer("t", torch.zeros((), dtype=torch.long))

    @property
    def sigma(self) -> torch.Tensor:
        # The variance is clamped, not sigma: sigma in [1e-2, 1e4] (amago/nets/actor_critic.py:720
        # at 2d85600; its extra sigma clamp to [1e-4, 1e6] can never bind and is dropped here).
        return (self.nu - self.mu.square()).clamp(1e-4, 1e8).sqrt()  # (G, 1)

    def forward(self, x: torch.Tensor, normalized: bool = True) -> torch.Tensor:
        """x: (..., G, 1) raw critic outputs -> normalised predictions, or values if not ``normalized``."""
        if not self.enabled:
            return x
        out = self.w * x.float() + self.b
        return out if normalized else self.sigma * out + self.mu

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """(..., G, 1) values in return units -> normalised units."""
        if not self.enabled:
            return values
        return (values.float() - self.mu) / self.sigma

    @torch.no_grad()
    def update_stats(self, targets: torch.Tensor, mask: torch.Tensor) -> None:
        """targets: (B, L-1, 1, G, 1) TD targets; mask: (B, L-1) bool real transitions."""
        if not self.enabled:
            return
        G = self.gammas
        m = mask.to(torch.float32).reshape(*mask.shape, *([1] * (targets.dim() - mask.dim())))
        m = m.expand_as(targets)
        n = m.reshape(-1, G, 1).sum(0)  # (G, 1) valid elements per gamma
        if float(n.min()) == 0.0:
            return
        x = targets.float() * m
        batch_mu = x.reshape(-1, G, 1).sum(0) / n  # (G, 1)
        batch_nu = (x * targets.float()).reshape(-1, G, 1).sum(0) / n  # (G, 1)
        self.t += 1
        # t + 1 batches seen, counting the prior (mu=0, nu=init_nu) as the first one.
        beta_t = self.beta / (1.0 - (1.0 - self.beta) ** (self.t.item() + 1))
        old_mu, old_sigma = self.mu.clone(), self.sigma
        self.mu.mul_(1.0 - beta_t).add_(beta_t * batch_mu)
        self.nu.mul_(1.0 - beta_t).add_(beta_t * batch_nu)
        new_sigma = self.sigma
        # ART: keep sigma*(w x + b) + mu unchanged for every x under the new statistics.
        self.w.mul_(old_sigma / new_sigma)
        self.b.copy_((old_sigma * self.b + old_mu - self.mu) / new_sigma)

    def stats(self) -> dict[str, torch.Tensor]:
        """Scalar diagnostics (means over gammas)."""
        return {
            "popart_mu": self.mu.mean(),
            "popart_nu": self.nu.mean(),
            "popart_sigma": self.sigma.mean(),
            "popart_w": self.w.mean(),
            "popart_b": self.b.mean(),
        }
