"""The agent's losses as pure functions: tensors in, a dict of named tensors out.

Shapes: B batch, L observation-sequence length (so L-1 transitions), C critics, G gammas, K
sampled actions, P bins. Masks are (B, L-1) bool (transition t is real iff observation t+1 is) or
already broadcast to the loss's full shape. Every loss is a mean over the *valid elements*
(time x critic x gamma), not per sequence, as the original's ``masked_avg`` computes
(amago/utils.py:164 at 2d85600). The critic and actor losses also return their per-element
tensors (``critic_elements``, ``actor_elements``) so the Agent can re-average them with the masks
its ``edit_*_mask`` hooks return.
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F

MASK_EPS = 1e-5


def _expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, L-1) mask -> float mask broadcast to ``like``'s full shape."""
    m = mask.to(torch.float32).reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))
    return m.expand_as(like)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, L-1, ...) over the elements whose (b, t) is valid."""
    m = _expand_mask(mask, x)
    return (x.float() * m).sum() / (m.sum() + MASK_EPS)


# ------------------------------------------------------------------------------ filters


@gin.configurable
def binary_filter(adv: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Imitate only actions the critic thinks beat the policy (CRR's binary filter).

    Weight 1 where the advantage exceeds ``threshold``, 0 elsewhere; the default
    ``Agent.fbc_filter_func``. Every filter is called as ``filter(adv)``; gin binds the rest.

    Units of ``adv`` (all filters): the Agent passes ``A = Q(s, a_buffer) - V(s)`` taken from the
    critics' raw outputs, before PopArt denormalisation, as the original does (amago/agent.py:1039
    at 2d85600). These units are fixed, not normalised to the current return spread: PopArt's
    output-preserving update keeps ``sigma * w`` at its initial ``sqrt(PopArtLayer.init_nu)``, so
    one raw unit is ``sqrt(init_nu)`` units of scaled return (``reward_multiplier`` x env return).
    With the defaults (``reward_multiplier = 10``, ``init_nu = 100``) that is one unit of env
    return. With ``Agent.popart = False``, and for ``MultiTaskAgent``'s two-hot critics, ``A`` is
    in scaled-return units. Thresholds and temperatures therefore scale with the returns.

    Args:
        adv: advantages (B, L-1, G, 1), in the critic's raw value units (see above).
        threshold: advantages strictly above this value get weight 1.

    Returns:
        Weights of the same shape and dtype as ``adv``.
    """
    return (adv > threshold).to(adv.dtype)


@gin.configurable
def exp_filter(
    adv: torch.Tensor,
    beta: float = 1.0,
    clip_adv_low: float | None = None,
    clip_adv_high: float | None = None,
    clip_weights_low: float | None = 1e-7,
    clip_weights_high: float | None = None,
) -> torch.Tensor:
    """AWAC/CRR exponential weights exp(beta * A); select it with ``Agent.fbc_filter_func = @exp_filter``.

    Args:
        adv: advantages (B, L-1, G, 1), in the critic's raw value units (see ``binary_filter``;
            not scale-free).
        beta: inverse temperature, in 1 / (units of ``adv``): larger values favour high-advantage
            actions more sharply.
        clip_adv_low: clamp advantages from below before exponentiating; None for no clamp.
        clip_adv_high: clamp advantages from above before exponentiating; None for no clamp.
        clip_weights_low: lower bound on the weights; None for none.
        clip_weights_high: upper bound on the weights (guards against huge weights from large
            advantages); None for none.

    Returns:
        Weights of the same shape as ``adv``.
    """
    adv = (
        adv.clamp(clip_adv_low, clip_adv_high)
        if (clip_adv_low is not None or clip_adv_high is not None)
        else adv
    )
    weights = torch.exp(beta * adv)
    if clip_weights_low is not None or clip_weights_high is not None:
        weights = weights.clamp(clip_weights_low, clip_weights_high)
    return weights


@gin.configurable
def leaky_relu_filter(
    adv: torch.Tensor,
    beta: float = 2.0,
    tau: float = 1e-2,
    neg_slope: float = 0.05,
    target_f0: float = 1e-2,
    clip_weights_low: float | None = 1e-7,
    clip_weights_high: float | None = 10.0,
    add_binary: bool = True,
) -> torch.Tensor:
    """A leaky-ReLU ramp in A hinged at ``tau``, clamped, then (optionally) plus a binary bonus.

    Follows the original's ``leaky_relu_filter`` (amago/agent.py:143 at 2d85600)::

        w = target_f0 + neg_slope * tau / beta + leaky_relu((A - tau) / beta, neg_slope)
        w = clamp(w, clip_weights_low, clip_weights_high)
        w = w + 1[A > 0]            # only if add_binary, after the clamp

    The offset makes ``w(0) = target_f0`` exactly (A = 0 lies below the hinge, on the leaky
    side). Above ``tau`` the weight grows with slope ``1 / beta`` (gentler than exp); below it
    with slope ``neg_slope / beta`` until the lower clamp. Because the binary bonus is added after
    the clamp, positive advantages can reach ``clip_weights_high + 1``. With the defaults,
    A = 0.5 / 2 / 10 gives about 1.26 / 2.01 / 6.01, and A = -1 gives ``clip_weights_low``.
    Select it with ``Agent.fbc_filter_func = @leaky_relu_filter``.

    Args:
        adv: advantages (B, L-1, G, 1), in the critic's raw value units (see ``binary_filter``;
            not scale-free).
        beta: temperature: the ramp's slope above ``tau`` is ``1 / beta``, so a larger beta
            flattens it. Must be positive.
        tau: advantage at which the ramp switches from the leaky slope to the main one.
        neg_slope: leaky-ReLU slope (relative to ``1 / beta``) below ``tau``.
        target_f0: the weight at zero advantage (before clamping and the binary term).
        clip_weights_low: lower bound on the ramp (before the binary term); None for none.
        clip_weights_high: upper bound on the ramp (before the binary term); None for none.
        add_binary: add ``1[adv > 0]`` after clamping.

    Returns:
        Weights of the same shape as ``adv``.
    """
    bias = target_f0 + neg_slope * tau / beta  # shifts the ramp so that w(0) = target_f0
    weights = bias + F.leaky_relu((adv - tau) / beta, negative_slope=neg_slope)
    if clip_weights_low is not None or clip_weights_high is not None:
        weights = weights.clamp(clip_weights_low, clip_weights_high)
    if add_binary:
        # After the clamp, as in the original: approved actions always weigh at least 1.
        weights = weights + (adv > 0).to(weights.dtype)
    return weights


# ---------------------------------------------------------------------------- TD target


def reduce_critic_ensemble(
    q: torch.Tensor, num_critics_td: int, use_min: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """REDQ: per (b, t, g) draw ``num_critics_td`` critic indices with replacement, take min or mean.

    q: (B, L-1, C, G, 1) -> (B, L-1, 1, G, 1). ``min`` curbs overestimation when the actor chases
    Q (online_coeff > 0); the mean is used for pure filtered BC, where overestimation is harmless.
    """
    B, T, C, G, _ = q.shape
    idx = torch.randint(0, C, (B, T, num_critics_td, G, 1), device=q.device, generator=generator)
    subset = q.gather(2, idx)  # (B, L-1, num_critics_td, G, 1)
    return subset.min(2, keepdim=True).values if use_min else subset.mean(2, keepdim=True)


def nstep_return(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_values: torch.Tensor,
    gammas: torch.Tensor,
    mask: torch.Tensor,
    n_step: int = 1,
) -> torch.Tensor:
    """n-step TD targets, cut short at the end of the real sequence.

    rewards, dones: (B, L-1, 1, G, 1) (scaled rewards; dones = terminated only, so truncated
    episodes bootstrap); next_values: (B, L-1, 1, G, 1), entry t = V(s_{t+1}); gammas (G,);
    mask (B, L-1) of real transitions (never the edited loss masks). Target_t =
    sum_{i<m} g^i r_{t+i} + g^m V(s_{t+m}) with m = min(n, real steps left), and every term after a
    terminal step is zeroed. n=1 gives r + g (1 - d) V(s'). The sum stops at the first invalid
    step, as the original's ``nstep_return`` does (amago/agent.py:208 at 2d85600): a hole in
    ``mask`` ends the return there instead of being skipped over.
    """
    T = rewards.shape[1]
    gam = gammas.to(torch.float32).reshape(1, 1, 1, -1, 1)
    valid = _expand_mask(mask, rewards)
    rewards, dones, next_values = rewards.float(), dones.float(), next_values.float()
    ret = torch.zeros_like(rewards)
    boot = torch.zeros_like(rewards)
    disc = torch.ones_like(rewards)

    def shift(x: torch.Tensor, i: int) -> torch.Tensor:
        # Entry t becomes x[t + i]; positions beyond the sequence read zeros (= invalid).
        return x if i == 0 else F.pad(x[:, i:], (0, 0, 0, 0, 0, 0, 0, i))

    alive = torch.ones_like(rewards)  # 1 while every step t..t+i has been valid
    for i in range(min(n_step, T)):
        alive = alive * shift(valid, i)
        v_i = alive
        ret = ret + v_i * disc * shift(rewards, i)
        disc_next = disc * gam * (1.0 - shift(dones, i))
        boot = torch.where(v_i > 0, disc_next * shift(next_values, i), boot)
        disc = torch.where(v_i > 0, disc_next, disc)
    return ret + boot


# ------------------------------------------------------------------------------ critics


def critic_loss_mse(
    q_pred: torch.Tensor, td_target: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """q_pred: (B, L-1, C, G, 1) PopArt-normalised predictions; td_target: (B, L-1, 1, G, 1) normalised.

    Returns ``loss_critic`` (masked mean) and ``critic_elements`` (B, L-1, C, G, 1), unmasked.
    """
    assert q_pred.dim() == 5 and td_target.shape[2] == 1, (q_pred.shape, td_target.shape)
    err = (q_pred.float() - td_target.detach().float()).square()  # (B, L-1, C, G, 1)
    assert err.shape == q_pred.shape
    return {"loss_critic": masked_mean(err, mask), "critic_elements": err}


def critic_loss_twohot(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """logits: (B, L-1, C, G, P); labels: (B, L-1, 1, G, P) target bin probabilities (two-hot/HL-Gauss).

    Returns ``loss_critic`` (masked mean) and ``critic_elements`` (B, L-1, C, G, 1), unmasked.
    """
    assert logits.dim() == 5 and labels.shape[2] == 1 and labels.shape[-1] == logits.shape[-1]
    ce = -(labels.detach().float() * F.log_softmax(logits.float(), dim=-1)).sum(
        -1, keepdim=True
    )  # (B, L-1, C, G, 1)
    assert ce.shape == (*logits.shape[:-1], 1)
    return {"loss_critic": masked_mean(ce, mask), "critic_elements": ce}


# -------------------------------------------------------------------------------- actor


def actor_loss(
    logp_buffer: torch.Tensor,
    advantage: torch.Tensor,
    mask: torch.Tensor,
    online_coeff: float,
    offline_coeff: float,
    dpg_value: torch.Tensor | None = None,
    filter_func=binary_filter,
    fake_filter: bool = False,
) -> dict[str, torch.Tensor]:
    """Online DPG term plus advantage-filtered behaviour cloning.

    logp_buffer: (B, L-1, G, 1) log pi(a_buffer | s); advantage: (B, L-1, G, 1) (no grad);
    dpg_value: (B, L-1, G, 1) normalised min_C Q(s, a~pi), differentiable w.r.t. the actor only
    (needed when online_coeff > 0). No entropy term: exploration comes from the wrappers.
    Returns ``loss_actor`` (masked mean), ``actor_elements`` (B, L-1, G, 1, unmasked) and
    diagnostics (masked means, detached).
    """
    assert logp_buffer.dim() == 4 and logp_buffer.shape == advantage.shape, (
        logp_buffer.shape,
        advantage.shape,
    )
    out: dict[str, torch.Tensor] = {}
    loss = torch.zeros_like(logp_buffer, dtype=torch.float32)  # (B, L-1, G, 1)
    if online_coeff > 0:
        assert dpg_value is not None and dpg_value.shape == logp_buffer.shape, (
            "online_coeff > 0 needs dpg_value"
        )
        loss = loss - online_coeff * dpg_value.float()
        out["dpg_term"] = masked_mean(-dpg_value, mask).detach()
    if offline_coeff > 0:
        adv = advantage.detach().float()
        weights = torch.ones_like(adv) if fake_filter else filter_func(adv).float()  # (B, L-1, G, 1)
        assert weights.shape == adv.shape
        loss = loss - offline_coeff * weights * logp_buffer.float()
        out["filter_mean"] = masked_mean(weights, mask).detach()
        out["filter_approval"] = masked_mean((adv > 0).float(), mask).detach()
        out["filter_approval_last_gamma"] = masked_mean((adv[..., -1:, :] > 0).float(), mask).detach()
        out["logp_buffer_mean"] = masked_mean(logp_buffer, mask).detach()
    assert loss.shape == logp_buffer.shape
    out["loss_actor"] = masked_mean(loss, mask)
    out["actor_elements"] = loss
    return out
