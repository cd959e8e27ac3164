"""Fidelity to AMAGO 2d85600: leaky_relu_filter, the edit_*_mask hooks, the units of the advantage.

Row 3: the original's ``leaky_relu_filter`` (amago/agent.py:143-174 at 2d85600) is
``clamp(target_f0 + neg_slope*tau/beta + leaky_relu((A - tau)/beta, neg_slope), low, high)``
plus ``1[A > 0]`` added after the clamp. Golden weights below are worked out by hand from it.

Row 8: the original calls ``edit_actor_mask`` / ``edit_critic_mask`` after both losses exist, with
the per-element losses and masks of shape (B, L-1, G, 1) / (B, L-1, C, G, 1), and uses the edited
masks only to average the losses (amago/agent.py:857-890); the n-step target and PopArt use the
real-transition mask (agent.py:988-993). Its ``nstep_return`` stops at the first invalid step
(agent.py:245-262), so a hole in the mask ends the return there.

Row 10: the advantage handed to the filters is in the critics' raw output units; PopArt's
output-preserving update keeps sigma * w at sqrt(init_nu), so those units are a fixed multiple of
scaled returns (docs/offline.md).
"""

from __future__ import annotations

import copy
import math

import gin
import gymnasium as gym
import pytest
import torch

from amago_pl.modules import losses
from amago_pl.modules.agent import Agent
from amago_pl.nets.popart import PopArtLayer
from amago_pl.nets.traj_encoders import GRUTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from amago_pl.testing.batches import bind_tiny, spaces_for, synthetic_batch

DISCRETE = gym.spaces.Discrete(3)


@pytest.fixture(autouse=True)
def tiny_gin():
    gin.clear_config()
    bind_tiny()
    yield
    gin.clear_config()


# ----------------------------------------------------------------------------------- row 3


def test_leaky_relu_filter_golden_values_with_defaults():
    # Defaults beta=2, tau=0.01, neg_slope=0.05, target_f0=0.01, clip [1e-7, 10], add_binary.
    # bias = 0.01 + 0.05 * 0.01 / 2 = 0.01025; ramp = bias + leaky_relu((A - 0.01) / 2).
    adv = torch.tensor([-1.0, -0.1, 0.0, 0.5, 2.0, 10.0, 30.0])
    expected = torch.tensor(
        [
            1e-7,  # 0.01025 + 0.05 * (-0.505) = -0.015 -> clamped up; no binary bonus
            0.01025 + 0.05 * (-0.055),  # 0.0075
            0.01,  # f(0) = target_f0 (A = 0 is below the hinge; no bonus for A = 0)
            0.01025 + 0.245 + 1.0,  # 1.25525
            0.01025 + 0.995 + 1.0,  # 2.00525
            0.01025 + 4.995 + 1.0,  # 6.00525
            10.0 + 1.0,  # ramp 15.00525 clamped to 10, bonus added after the clamp
        ]
    )
    w = losses.leaky_relu_filter(adv)
    assert torch.allclose(w, expected, atol=1e-6), w
    assert torch.allclose(w[3:6], torch.tensor([1.26, 2.01, 6.01]), atol=6e-3)


def test_leaky_relu_filter_keywords():
    adv = torch.tensor([-4.0, 0.0, 30.0])
    # No clamps and no bonus: the bare ramp, slope 1/beta above tau and neg_slope/beta below it.
    w = losses.leaky_relu_filter(adv, clip_weights_low=None, clip_weights_high=None, add_binary=False)
    bias = 0.01 + 0.05 * 0.01 / 2.0
    assert torch.allclose(w, torch.tensor([bias + 0.05 * (-4.01 / 2), 0.01, bias + 29.99 / 2]), atol=1e-6)
    w = losses.leaky_relu_filter(adv, beta=1.0, tau=0.0, neg_slope=0.1, target_f0=0.5)
    assert torch.allclose(w, torch.tensor([0.5 - 0.1 * 4.0, 0.5, 10.0 + 1.0]), atol=1e-6)


# ----------------------------------------------------------------------------------- row 8


def test_nstep_return_stops_at_a_hole_in_the_mask():
    # Rewards 1, zero bootstrap values, gamma 0.9, n = 3, mask [1, 0, 1, 1, 1].
    ones = torch.ones(1, 5, 1, 1, 1)
    mask = torch.tensor([[True, False, True, True, True]])
    td = losses.nstep_return(ones, 0 * ones, 0 * ones, torch.tensor([0.9]), mask, n_step=3).flatten()
    assert math.isclose(td[0].item(), 1.0, abs_tol=1e-6)  # skipping the hole would give 1.9
    assert torch.allclose(td[2:], torch.tensor([1 + 0.9 + 0.81, 1 + 0.9, 1.0]))


class HoleCriticMask(Agent):
    """Zeroes transition 1 of every sequence in the critic-loss mask."""

    def edit_critic_mask(self, batch, critic_loss, mask):
        mask = mask.clone()
        mask[:, 1] = False
        return mask


def ones_batch(agent: Agent, transitions: int = 5):
    batch = synthetic_batch(agent.obs_space, agent.action_space, 1, transitions + 1, seed=0)
    batch.rews.fill_(1.0)
    batch.dones.fill_(False)
    return batch


def test_edited_critic_mask_does_not_reach_td_target_or_popart(monkeypatch):
    torch.manual_seed(0)
    obs, rl2 = spaces_for(3, DISCRETE)
    agent = HoleCriticMask(
        obs, rl2, DISCRETE, 8, FFTstepEncoder, GRUTrajEncoder,
        gamma=0.9, use_multigamma=False, reward_multiplier=1.0, n_step=3,
    )  # fmt: skip
    monkeypatch.setattr(agent, "denormalize_values", lambda raw: torch.zeros_like(raw.float()))
    seen = {}
    real = losses.nstep_return

    def spy(*args, **kwargs):
        seen["td"] = real(*args, **kwargs)
        return seen["td"]

    monkeypatch.setattr(losses, "nstep_return", spy)
    batch = ones_batch(agent)
    popart_before = copy.deepcopy(agent.popart)
    agent.train()
    agent.compute_loss(batch)
    td = seen["td"].flatten()  # (5,)
    # Every transition is real: t = 0..2 see three rewards, t = 3 two, t = 4 one.
    expected = torch.tensor([2.71, 2.71, 2.71, 1.9, 1.0])
    assert torch.allclose(td, expected, atol=1e-5), td  # the hook-fed mask gave 1.9 at t = 0
    # PopArt saw the same target over the real mask (the same update rule, applied by hand).
    popart_before.update_stats(expected.reshape(1, 5, 1, 1, 1), batch.transition_mask)
    assert torch.allclose(agent.popart.mu, popart_before.mu, atol=1e-5)
    assert torch.allclose(agent.popart.nu, popart_before.nu, atol=1e-4)


class RecordingHooks(Agent):
    """Records what the hooks receive and drops one critic element and one actor element."""

    def edit_actor_mask(self, batch, actor_loss, mask):
        self.seen_actor = (actor_loss, mask.clone())
        mask = mask.clone()
        mask[0, 2, 0, 0] = False
        return mask

    def edit_critic_mask(self, batch, critic_loss, mask):
        self.seen_critic = (critic_loss, mask.clone())
        mask = mask.clone()
        mask[0, 1, 1, 0, 0] = False
        return mask


def make_recording(**kw) -> RecordingHooks:
    torch.manual_seed(0)
    obs, rl2 = spaces_for(3, DISCRETE)
    return RecordingHooks(obs, rl2, DISCRETE, 8, FFTstepEncoder, GRUTrajEncoder, num_critics=3, **kw)


def mean_over(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    m = m.float()
    return (x.float() * m).sum() / (m.sum() + losses.MASK_EPS)


def test_hooks_get_per_element_losses_and_only_change_the_averaging():
    agent = make_recording()
    batch = synthetic_batch(agent.obs_space, agent.action_space, 3, 7, lengths=[7, 4, 2], seed=1)
    B, T = batch.rews.shape
    C, G = 3, len(agent.gammas_list)
    assert G > 1
    out = agent.compute_loss(batch)
    crit, cmask = agent.seen_critic
    act, amask = agent.seen_actor
    assert crit.shape == cmask.shape == (B, T, C, G, 1)
    assert act.shape == amask.shape == (B, T, G, 1)
    assert cmask.dtype == amask.dtype == torch.bool
    tmask = batch.transition_mask
    assert torch.equal(cmask, tmask[:, :, None, None, None].expand(B, T, C, G, 1))
    assert torch.equal(amask, tmask[:, :, None, None].expand(B, T, G, 1))
    # The losses are the means over the edited masks, and differ from the unedited means.
    edited_c, edited_a = cmask.clone(), amask.clone()
    edited_c[0, 1, 1, 0, 0] = False
    edited_a[0, 2, 0, 0] = False
    want_c = agent.critic_loss_weight * mean_over(crit.detach(), edited_c)
    want_a = mean_over(act.detach(), edited_a)
    assert torch.allclose(out["loss_critic"], want_c, rtol=1e-5)
    assert torch.allclose(out["loss_actor"], want_a, rtol=1e-5)
    assert not torch.allclose(want_c, agent.critic_loss_weight * mean_over(crit.detach(), cmask), rtol=1e-6)
    assert not torch.allclose(want_a, mean_over(act.detach(), amask), rtol=1e-6)


def test_critic_hook_gets_none_when_the_critic_is_not_evaluated():
    agent = make_recording(fake_filter=True, online_coeff=0.0, offline_coeff=1.0)
    batch = synthetic_batch(agent.obs_space, agent.action_space, 2, 5, lengths=[5, 3], seed=2)
    out = agent.compute_loss(batch)
    crit, cmask = agent.seen_critic
    assert crit is None and cmask.shape == (2, 4, 3, len(agent.gammas_list), 1)
    assert out["loss_critic"].item() == 0.0


# ---------------------------------------------------------------------------------- row 10


def test_popart_keeps_raw_units_a_fixed_multiple_of_returns():
    # The filters see raw critic differences; denormalising multiplies them by sigma * w, which the
    # output-preserving update holds at sqrt(init_nu) whatever the statistics become.
    layer = PopArtLayer(2, init_nu=100.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        targets = 50.0 + 30.0 * torch.randn(4, 6, 1, 2, 1, generator=g)
        layer.update_stats(targets, torch.ones(4, 6, dtype=torch.bool))
    assert not torch.allclose(layer.sigma, torch.full((2, 1), 10.0), rtol=0.1)
    assert torch.allclose(layer.sigma * layer.w, torch.full((2, 1), 10.0), rtol=1e-4)
    q_buf, q_pi = torch.full((2, 1), 0.7), torch.full((2, 1), 0.2)
    raw_adv = q_buf - q_pi
    scaled_adv = layer(q_buf, normalized=False) - layer(q_pi, normalized=False)
    assert torch.allclose(scaled_adv, 10.0 * raw_adv, rtol=1e-4)
