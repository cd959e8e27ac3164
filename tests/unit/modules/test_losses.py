"""Pure loss functions: masked means, REDQ reduction, n-step targets, critic and actor losses, filters."""

from __future__ import annotations

import torch

from amago_pl.modules import losses

B, T, C, G = 2, 4, 3, 2
GAMMAS = torch.tensor([0.5, 0.9])


def test_masked_mean_counts_critic_and_gamma_elements():
    x = torch.ones(B, T, C, G, 1)
    x[1] = 100.0
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0] = True
    assert torch.allclose(losses.masked_mean(x, mask), torch.tensor(1.0), atol=1e-5)
    mask[1, 0] = True  # one more (t) -> C*G more elements with value 100
    expected = (T * C * G * 1 + C * G * 100) / ((T + 1) * C * G)
    assert torch.allclose(losses.masked_mean(x, mask), torch.tensor(expected), rtol=1e-5)


def test_reduce_ensemble_min_mean_and_random_subset():
    q = torch.arange(C, dtype=torch.float32).reshape(1, 1, C, 1, 1).expand(B, T, C, G, 1)
    same = torch.full_like(q, 2.5)
    assert torch.equal(losses.reduce_critic_ensemble(same, 2, use_min=True), same[:, :, :1])
    g = torch.Generator().manual_seed(0)
    big = q[:1, :1].expand(64, 64, C, G, 1)
    red = losses.reduce_critic_ensemble(big, 1, use_min=True, generator=g)
    assert red.shape == (64, 64, 1, G, 1)
    # Independent draws per (b, t, g): every critic index shows up.
    assert set(red.unique().tolist()) == {0.0, 1.0, 2.0}
    mean2 = losses.reduce_critic_ensemble(big, 2, use_min=False, generator=g)
    assert set(mean2.unique().tolist()) <= {0.0, 0.5, 1.0, 1.5, 2.0}


def test_one_step_target_and_truncation_bootstraps():
    r = torch.randn(B, T, 1, 1, 1).expand(B, T, 1, G, 1)
    d = torch.zeros(B, T, 1, G, 1)
    d[0, 1] = 1.0  # terminated at t=1 of sequence 0
    v = torch.randn(B, T, 1, G, 1)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3] = False  # sequence 1 is shorter (its last real transition is t=2 and it was truncated)
    td = losses.nstep_return(r, d, v, GAMMAS, mask, n_step=1)
    expected = r + GAMMAS.reshape(1, 1, 1, G, 1) * (1 - d) * v
    valid = mask.reshape(B, T, 1, 1, 1).expand_as(td)
    assert torch.allclose(td[valid], expected[valid])
    assert torch.allclose(td[0, 1], r[0, 1])  # terminal: no bootstrap
    assert torch.allclose(td[1, 2], r[1, 2] + GAMMAS.reshape(G, 1) * v[1, 2])  # truncated: bootstraps


def test_n_step_target_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, T, 1, 1, 1)
    v = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, T, 1, 1, 1)
    d = torch.zeros(1, T, 1, 1, 1)
    mask = torch.ones(1, T, dtype=torch.bool)
    gam = torch.tensor([0.5])
    td = losses.nstep_return(r, d, v, gam, mask, n_step=2).flatten()
    # t=0: 1 + .5*2 + .25*V(s_2)=20 ; t=3 (last): one step left: 4 + .5*40
    assert torch.allclose(
        td, torch.tensor([1 + 1 + 0.25 * 20, 2 + 1.5 + 0.25 * 30, 3 + 2 + 0.25 * 40, 4 + 20.0])
    )
    d[0, 1] = 1.0
    td = losses.nstep_return(r, d, v, gam, mask, n_step=2).flatten()
    assert torch.allclose(
        td[0], torch.tensor(1 + 0.5 * 2.0)
    )  # terminal at t=1: no reward after, no bootstrap
    assert torch.allclose(td[1], torch.tensor(2.0))


def test_critic_losses():
    q = torch.zeros(B, T, C, G, 1, requires_grad=True)
    td = torch.ones(B, T, 1, G, 1)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 2:] = False
    out = losses.critic_loss_mse(q, td, mask)
    assert torch.allclose(out["loss_critic"], torch.tensor(1.0), atol=1e-4)
    out["loss_critic"].backward()
    assert (q.grad[1, 2:] == 0).all() and (q.grad[0] != 0).all()
    logits = torch.zeros(B, T, C, G, 8)
    labels = torch.full((B, T, 1, G, 8), 1 / 8)
    ce = losses.critic_loss_twohot(logits, labels, mask)["loss_critic"]
    assert torch.allclose(ce, torch.log(torch.tensor(8.0)), atol=1e-4)


def test_actor_loss_terms():
    logp = torch.full((B, T, G, 1), -2.0, requires_grad=True)
    adv = torch.ones(B, T, G, 1)
    adv[0] = -1.0
    mask = torch.ones(B, T, dtype=torch.bool)
    dpg = torch.full((B, T, G, 1), 3.0)
    out = losses.actor_loss(logp, adv, mask, online_coeff=1.0, offline_coeff=0.1, dpg_value=dpg)
    # half the actions approved: 0.1 * 0.5 * 2 = 0.1 from BC; -3 from DPG
    assert torch.allclose(out["loss_actor"], torch.tensor(-3.0 + 0.1), atol=1e-4)
    assert torch.allclose(out["filter_approval"], torch.tensor(0.5), atol=1e-4)
    bc = losses.actor_loss(logp, adv, mask, online_coeff=0.0, offline_coeff=1.0, fake_filter=True)
    assert torch.allclose(bc["loss_actor"], torch.tensor(2.0), atol=1e-4)


def test_filters():
    adv = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    assert torch.equal(losses.binary_filter(adv), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.allclose(losses.exp_filter(adv), torch.exp(adv).clamp_min(1e-7))
    w = losses.leaky_relu_filter(adv)
    assert (w >= 1e-7).all() and (w <= 10.0).all()
    assert torch.all(w[1:] >= w[:-1]), "weights grow with the advantage"
