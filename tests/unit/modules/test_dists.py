"""Policy distributions: parameter counts, shapes, differentiability, finite log-probs at the bounds."""

from __future__ import annotations

import pytest
import torch

from amago_pl.nets.policy_dists import (
    GMM,
    Beta,
    Discrete,
    DiscreteLikeContinuous,
    Multibinary,
    TanhGaussian,
)

A = 3
BATCH = (2, 5, 4)  # (B, L, G)


def make(cls):
    torch.manual_seed(0)
    d = cls(A)
    params = torch.randn(*BATCH, d.input_dimension, requires_grad=True)
    return d, params, d(params)


@pytest.mark.parametrize(
    "cls,n_params,differentiable",
    [
        (Discrete, A, True),
        (DiscreteLikeContinuous, A, True),
        (TanhGaussian, 2 * A, True),
        (GMM, 5 * (2 * A + 1), False),
        (Beta, 2 * A, True),
        (Multibinary, A, False),
    ],
)
def test_param_count_and_flags(cls, n_params, differentiable):
    d = cls(A)
    assert d.input_dimension == n_params
    assert d.actions_differentiable is differentiable


@pytest.mark.parametrize("cls", [TanhGaussian, GMM, Beta])
def test_continuous_log_prob_finite_at_bounds(cls):
    d, params, _ = make(cls)
    for bound in (-1.0, 1.0):
        dist = d(params)
        a = torch.full((*BATCH, A), bound)
        logp = d.log_prob(dist, a)
        assert logp.shape == (*BATCH, 1)
        assert torch.isfinite(logp).all()
        logp.sum().backward()
        assert torch.isfinite(params.grad).all()
        params.grad = None


@pytest.mark.parametrize("cls", [TanhGaussian, GMM, Beta, Multibinary])
def test_sample_shapes_and_range(cls):
    d, _, dist = make(cls)
    k = d.actions_for_value(dist, 3)
    assert k.shape == (3, *BATCH, A)
    lo = 0.0 if cls is Multibinary else -1.0
    assert (k >= lo).all() and (k <= 1.0).all()
    for sample in (True, False):
        act = d.env_action(dist, sample)
        assert act.shape == (*BATCH, A) and act.dtype == torch.float32
    assert d.entropy(dist).shape == BATCH


@pytest.mark.parametrize("cls", [TanhGaussian, Beta, DiscreteLikeContinuous])
def test_rsample_is_differentiable(cls):
    d, params, dist = make(cls)
    # Weighted sum: a plain sum of one-hot samples is constant, so its gradient would vanish.
    (d.actions_for_value(dist, 2) * torch.randn(A)).sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


def test_discrete_probs_clipped_and_buffer_soft_onehot():
    d = Discrete(4)
    dist = d(torch.tensor([[10.0, -10.0, -10.0, -10.0]]))
    assert dist.probs.min() > 0 and dist.probs.max() < 1.0
    assert torch.allclose(dist.probs.sum(-1), torch.ones(1))
    v = d.actions_for_value(dist, 5)
    assert v.shape == (1, 1, 4)  # exact expectation: K is always 1
    soft = d.action_from_buffer(torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    assert torch.allclose(soft.sum(-1), torch.ones(1)) and soft.argmax(-1).item() == 1 and soft.min() > 0
    logp = d.log_prob(dist, torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    assert torch.isfinite(logp).all()
    act = d.env_action(dist, sample=False)
    assert act.dtype == torch.int64 and act.item() == 0


def test_discrete_like_continuous_hard_onehot_log_prob():
    """The original passed the soft-clipped buffer action to OneHotCategorical.log_prob and crashed."""
    d = DiscreteLikeContinuous(4)
    dist = d(torch.randn(2, 4))
    soft = Discrete(4).action_from_buffer(torch.eye(4)[[1, 3]])
    logp = d.log_prob(dist, soft)
    expected = torch.log_softmax(dist.logits, -1)[[0, 1], [1, 3]]
    assert torch.allclose(logp.squeeze(-1), expected)
    samples = d.actions_for_value(dist, 3)
    assert samples.shape == (3, 2, 4) and torch.allclose(samples.sum(-1), torch.ones(3, 2))
    assert d.env_action(dist, sample=True).dtype == torch.int64


def test_tanh_gaussian_std_bounds_and_mean():
    d = TanhGaussian(1)
    dist = d(torch.tensor([[0.3, 1e6], [0.3, -1e6]]))
    std = dist.base_dist.base_dist.scale.squeeze(-1)
    assert torch.allclose(std, torch.tensor([d.std_high, d.std_low]), rtol=1e-4)
    assert torch.allclose(dist.mean, torch.tanh(torch.tensor([[0.3], [0.3]])))


def test_multibinary_log_prob_is_mean_over_dims():
    d = Multibinary(4)
    dist = d(torch.zeros(1, 4))
    logp = d.log_prob(dist, torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    assert torch.allclose(logp, torch.log(torch.tensor([[0.5]])))


def test_discrete_log_prob_keeps_gradient_below_the_clip_floor():
    """An action pushed under clip_prob_low must still be learnable by behaviour cloning: the value
    is the clipped distribution's, the gradient the unclipped log-softmax's (d/dz_a = 1 - p_a)."""
    d = Discrete(4)
    logits = torch.tensor([[5.0, 5.0, -10.0, 0.0]], requires_grad=True)
    dist = d(logits)
    assert dist.probs[0, 2].item() == pytest.approx(0.001, rel=0.01)  # clipped, not ~1e-7
    lp = d.log_prob(dist, torch.nn.functional.one_hot(torch.tensor([2]), 4).float())  # (1, 1)
    assert lp.item() == pytest.approx(dist.probs[0, 2].log().item(), abs=1e-6)
    lp.sum().backward()
    expected = torch.nn.functional.one_hot(torch.tensor(2), 4).float() - torch.softmax(logits.detach(), -1)[0]
    torch.testing.assert_close(logits.grad[0], expected)
    assert logits.grad[0, 2] > 0.99  # it was exactly 0 through the clamp


@pytest.mark.parametrize("cls", [TanhGaussian, GMM, Beta])
def test_continuous_dists_keep_the_policy_dists_names(cls):
    """TanhGaussian, GMM and Beta live in nets/continuous_dists.py, but gin files and stored
    checkpoints name them ``amago_pl.nets.policy_dists.<Name>``: both paths must still resolve."""
    import gin

    from amago_pl.modules.gin_index import amago_pl_configurables
    from amago_pl.modules.hparams import import_path, resolve_import_path

    old_path = f"amago_pl.nets.policy_dists.{cls.__name__}"
    assert resolve_import_path(old_path) is cls
    assert resolve_import_path(import_path(cls)) is cls
    assert old_path in amago_pl_configurables()
    with gin.unlock_config():
        gin.parse_config(f"{old_path}.clip_actions_on_log_prob = (-0.5, 0.5)")
    try:
        assert cls(A).clip_actions_on_log_prob == (-0.5, 0.5)
    finally:
        gin.clear_config()
