"""Fidelity: PopArt and InputNorm treat their initial statistics as one prior batch; PopArt caps sigma.

Original (AMAGO at 2d85600): amago/nets/actor_critic.py:714-759 (PopArtLayer, counter ``_t`` starts
at 1 and is incremented before the bias-corrected rate is taken; variance clamped to [1e-4, 1e8])
and amago/nets/utils.py:106 and :145-152 (InputNorm, same counter). Expected values are computed
here from the published recurrence ``beta_t = beta / (1 - (1-beta)^(k+1))`` on the k-th update,
``mu <- (1-beta_t) mu + beta_t mean(x)``, ``nu <- (1-beta_t) nu + beta_t mean(x^2)``.
"""

from __future__ import annotations

import math

import pytest
import torch

from amago_pl.nets.popart import PopArtLayer
from amago_pl.nets.utils import InputNorm


def _recurrence(
    mu0: float, nu0: float, mean: float, sq_mean: float, beta: float, k: int
) -> tuple[float, float]:
    """(mu, nu) after k updates with fixed batch statistics, the prior counting as one batch."""
    mu, nu = mu0, nu0
    for step in range(1, k + 1):
        rate = beta / (1.0 - (1.0 - beta) ** (step + 1))
        mu = (1.0 - rate) * mu + rate * mean
        nu = (1.0 - rate) * nu + rate * sq_mean
    return mu, nu


def _std_03_targets(G: int) -> torch.Tensor:
    """(24, 16, 1, G, 1) zero-mean targets of std 0.3: alternating +-0.3, so mean 0, mean square 0.09."""
    sign = torch.ones(24 * 16)
    sign[1::2] = -1.0
    return (0.3 * sign).reshape(24, 16, 1, 1, 1).expand(24, 16, 1, G, 1).contiguous()


# Row 1: sigma after 1 / 20 / 100 / 200 updates, default beta=5e-4 and init_nu=100 (sigma 10).
GOLDEN_SIGMA = {1: 7.07, 20: 2.20, 100: 1.03, 200: 0.75}


def test_popart_prior_counts_as_one_batch() -> None:
    G = 3
    pop = PopArtLayer(G)
    targets = _std_03_targets(G)  # (24, 16, 1, G, 1)
    mask = torch.ones(24, 16, dtype=torch.bool)
    x = torch.linspace(-2.0, 2.0, 5).reshape(5, 1, 1).expand(5, G, 1)  # (5, G, 1) raw critic outputs
    before = pop(x, normalized=False)
    done = 0
    for k, golden in GOLDEN_SIGMA.items():
        for _ in range(k - done):
            pop.update_stats(targets, mask)
        done = k
        mu, nu = _recurrence(0.0, 100.0, 0.0, 0.09, 5e-4, k)
        expected = math.sqrt(nu - mu**2)
        assert round(expected, 2) == golden
        assert torch.allclose(pop.sigma, torch.full((G, 1), expected), rtol=1e-4), (k, pop.sigma)
        assert pop.mu.abs().max() < 1e-6
        assert int(pop.t) == k
    # The affine map still preserves the denormalised outputs (ART).
    assert torch.allclose(pop(x, normalized=False), before, rtol=1e-4, atol=1e-4)


def test_popart_first_update_is_half_way() -> None:
    pop = PopArtLayer(1)
    targets = torch.full((24, 16, 1, 1, 1), 4.0)  # mean 4, mean square 16
    pop.update_stats(targets, torch.ones(24, 16, dtype=torch.bool))
    rate = 5e-4 / (1.0 - (1.0 - 5e-4) ** 2)  # ~0.500125
    assert torch.allclose(pop.mu, torch.tensor([[rate * 4.0]]), rtol=1e-6)
    assert torch.allclose(pop.nu, torch.tensor([[(1 - rate) * 100.0 + rate * 16.0]]), rtol=1e-6)
    # Hand-rounded: mu = 4 * 0.500125 ~ 2.0005, nu = 100 - 84 * 0.500125 ~ 57.9895.
    assert abs(float(pop.mu) - 2.0005) < 1e-4 and abs(float(pop.nu) - 57.9895) < 1e-3


def test_popart_masked_steps_do_not_count() -> None:
    pop = PopArtLayer(1)
    targets = torch.zeros(2, 4, 1, 1, 1)
    targets[:, 2:] = 1e6  # padding
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[:, :2] = True
    pop.update_stats(targets, mask)
    rate = 5e-4 / (1.0 - (1.0 - 5e-4) ** 2)
    assert float(pop.mu) == 0.0
    assert torch.allclose(pop.nu, torch.tensor([[(1 - rate) * 100.0]]), rtol=1e-6)


# Row 7: the variance is clamped to [1e-4, 1e8], so sigma lies in [1e-2, 1e4].


def test_popart_sigma_caps_at_1e4() -> None:
    pop = PopArtLayer(2)
    sign = torch.ones(24 * 16)
    sign[1::2] = -1.0
    targets = (1e6 * sign).reshape(24, 16, 1, 1, 1).expand(24, 16, 1, 2, 1).contiguous()
    pop.update_stats(targets, torch.ones(24, 16, dtype=torch.bool))
    # Variance ~ 0.5 * 1e12 = 5e11 > 1e8: sigma would be ~7.07e5 unclamped.
    assert float((pop.nu - pop.mu.square()).min()) > 1e11
    assert torch.equal(pop.sigma, torch.full((2, 1), 1e4))
    x = torch.randn(7, 2, 1)
    assert torch.allclose(pop.normalize(pop(x, normalized=False)), pop(x), rtol=1e-4, atol=1e-4)


def test_popart_sigma_floor_is_1e_minus_2() -> None:
    pop = PopArtLayer(1)
    pop.mu.fill_(3.0)
    pop.nu.fill_(9.0)  # zero variance
    assert torch.allclose(pop.sigma, torch.tensor([[1e-2]]))


def test_popart_old_state_dict_loads() -> None:
    """A state_dict written before this change (same keys; ``t`` counted real updates from 0) loads,
    and the next update continues as if the prior had been the first batch."""
    old = {
        "mu": torch.zeros(2, 1),
        "nu": torch.full((2, 1), 0.25),
        "w": torch.full((2, 1), 0.5),
        "b": torch.zeros(2, 1),
        "t": torch.tensor(3, dtype=torch.long),
    }
    pop = PopArtLayer(2)
    pop.load_state_dict(old)  # strict
    assert int(pop.t) == 3
    pop.update_stats(torch.ones(1, 2, 1, 2, 1), torch.ones(1, 2, dtype=torch.bool))
    rate = 5e-4 / (1.0 - (1.0 - 5e-4) ** 5)  # fourth real update, fifth batch counting the prior
    assert torch.allclose(pop.mu, torch.full((2, 1), rate), rtol=1e-6)
    assert torch.allclose(pop.nu, torch.full((2, 1), (1 - rate) * 0.25 + rate), rtol=1e-6)
    assert int(pop.t) == 4


# Row 5: InputNorm, default beta=1e-4 and init_nu=1.

BATCH = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # (N=2, D=2): mean [2, 4], mean square [5, 20]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_input_norm_prior_counts_as_one_batch(k: int) -> None:
    norm = InputNorm(2).train()
    for _ in range(k):
        norm(BATCH)
    for d, (mean, sq) in enumerate([(2.0, 5.0), (4.0, 20.0)]):
        mu, nu = _recurrence(0.0, 1.0, mean, sq, 1e-4, k)
        assert abs(float(norm.mu[d]) - mu) < 1e-5 * max(1.0, abs(mu))
        assert abs(float(norm.nu[d]) - nu) < 1e-5 * max(1.0, abs(nu))
        # With beta this small the rates are ~1/(k+1): the prior keeps ~1/(k+1) of the weight.
        assert abs(mu - mean * k / (k + 1)) < 1e-3
        assert abs(nu - (1.0 + sq * k) / (k + 1)) < 1e-2
    assert int(norm.t) == k


def test_input_norm_first_update_golden() -> None:
    norm = InputNorm(2).train()
    norm(BATCH)
    rate = 1e-4 / (1.0 - (1.0 - 1e-4) ** 2)  # 1 / (2 - 1e-4) ~ 0.500025
    assert torch.allclose(norm.mu, torch.tensor([2.0, 4.0]) * rate, rtol=1e-6)
    assert torch.allclose(norm.nu, torch.tensor([1.0 + 4.0 * rate, 1.0 + 19.0 * rate]), rtol=1e-6)
    # Hand-rounded: mu ~ [1.00005, 2.0001], nu ~ [3.0001, 10.5005].
    assert torch.allclose(norm.mu, torch.tensor([1.00005, 2.0001]), atol=1e-5)
    assert torch.allclose(norm.nu, torch.tensor([3.0001, 10.5005]), atol=1e-4)


def test_input_norm_old_state_dict_loads() -> None:
    old = {"mu": torch.tensor([1.0, 1.0]), "nu": torch.tensor([2.0, 2.0]), "t": torch.tensor(1)}
    norm = InputNorm(2).train()
    norm.load_state_dict(old)  # strict: same keys as before
    norm(BATCH)  # second real update, third batch counting the prior
    rate = 1e-4 / (1.0 - (1.0 - 1e-4) ** 3)  # ~1/3
    assert 0.333 < rate < 0.334
    assert torch.allclose(norm.mu, (1 - rate) * 1.0 + rate * torch.tensor([2.0, 4.0]), rtol=1e-6)
    assert torch.allclose(norm.nu, (1 - rate) * 2.0 + rate * torch.tensor([5.0, 20.0]), rtol=1e-6)
    assert int(norm.t) == 2
