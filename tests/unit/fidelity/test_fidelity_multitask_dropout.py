"""Fidelity to AMAGO 2d85600: MultiTaskAgent's discrete probability clip and TransformerLayer dropout.

Row 2: the original's MultiTaskAgent wraps the output of its ``Discrete`` head, whose probabilities
are clamped to [clip_prob_low, clip_prob_high] = [0.001, 0.99] and renormalised
(amago/nets/policy_dists.py:288-298 and amago/agent.py:1313 at 2d85600). For logits with one
action far ahead, every other action keeps low / (low * (A - 1) + high) and the leader
high / (low * (A - 1) + high). Golden values are computed here from that rule.

Row 4: the original's TransformerLayer drops out once per layer after the second feed-forward
projection (amago/nets/transformer.py:574), besides the q/k/v dropout of its attention layer
(transformer.py:496) and the attention kernel's own dropout.
"""

from __future__ import annotations

import math
from collections import Counter

import gin
import gymnasium as gym
import pytest
import torch
from torch import nn

from amago_pl.modules.agent import MultiTaskAgent
from amago_pl.nets.attention import VanillaAttention
from amago_pl.nets.policy_dists import DiscreteLikeContinuous
from amago_pl.nets.traj_encoders import GRUTrajEncoder
from amago_pl.nets.transformer import Transformer, TransformerLayer
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from amago_pl.testing.batches import bind_tiny, spaces_for, synthetic_batch

# Discrete.clip_prob_low / clip_prob_high defaults (amago/nets/policy_dists.py:262-263 at 2d85600).
LOW, HIGH = 0.001, 0.99


def clipped_probs(n_actions: int, leader: int, low: float = LOW, high: float = HIGH) -> torch.Tensor:
    """The original's rule for logits where ``leader`` dominates: clamp, then divide by the sum."""
    p = torch.full((n_actions,), low, dtype=torch.float64)
    p[leader] = high
    return (p / p.sum()).float()  # (A,)


@pytest.fixture(autouse=True)
def _tiny_gin():
    gin.clear_config()
    bind_tiny()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    gin.clear_config()


# --------------------------------------------------------------------------- row 2: clipping


def test_two_action_golden_probs_and_log_probs():
    """Logits [0, 20]: softmax gives 2.1e-9 / 1 - 2.1e-9; clipped: 0.001 / 0.991, 0.99 / 0.991."""
    d = DiscreteLikeContinuous(2)
    dist = d(torch.tensor([[0.0, 20.0], [0.0, 20.0]]))  # (2, A=2): one row per buffer action
    expected = torch.tensor([0.001 / 0.991, 0.99 / 0.991])  # [0.00100908, 0.99899092]
    torch.testing.assert_close(dist.probs[0], expected, atol=1e-7, rtol=0)
    onehots = torch.eye(2)  # (2, 2): buffer actions 0 and 1
    logp = d.log_prob(dist, onehots).squeeze(-1)  # (2,)
    torch.testing.assert_close(logp, expected.log(), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.entropy(dist)[0], -(expected * expected.log()).sum(), atol=1e-6, rtol=0)


def test_clip_bounds_follow_discrete_gin_keys():
    gin.bind_parameter("Discrete.clip_prob_low", 0.01)
    gin.bind_parameter("Discrete.clip_prob_high", 0.9)
    d = DiscreteLikeContinuous(2)
    assert (d.clip_prob_low, d.clip_prob_high) == (0.01, 0.9)
    torch.testing.assert_close(d(torch.tensor([0.0, 20.0])).probs, clipped_probs(2, 1, 0.01, 0.9))
    gin.bind_parameter("DiscreteLikeContinuous.clip_prob_low", 0.05)
    assert DiscreteLikeContinuous(2).clip_prob_low == 0.05


def test_log_prob_value_clipped_gradient_unclipped():
    """Same rule as ``Discrete`` (docs/porting.md): an action under the floor keeps its BC gradient."""
    d = DiscreteLikeContinuous(2)
    logits = torch.tensor([0.0, 20.0], requires_grad=True)
    lp = d.log_prob(d(logits), torch.tensor([1.0, 0.0]))  # (1,)
    assert lp.item() == pytest.approx(math.log(0.001 / 0.991), abs=1e-5)
    lp.sum().backward()
    expected = torch.tensor([1.0, 0.0]) - torch.softmax(logits.detach(), -1)
    torch.testing.assert_close(logits.grad, expected)


def make_multitask(n_actions: int, leader_logit: float = 20.0) -> MultiTaskAgent:
    """A tiny MultiTaskAgent whose actor always outputs logits 0 except ``leader_logit`` on the last."""
    torch.manual_seed(0)
    space = gym.spaces.Discrete(n_actions)
    obs, rl2 = spaces_for(3, space)
    agent = MultiTaskAgent(obs, rl2, space, 8, FFTstepEncoder, GRUTrajEncoder)
    G = len(agent.gammas_list)
    logits = torch.zeros(G, n_actions)
    logits[:, -1] = leader_logit

    def fixed_params(state: torch.Tensor) -> torch.Tensor:
        # (B, L, D) -> (B, L, G * A), the same logits at every step; keeps the graph to ``state``.
        return logits.flatten().expand(*state.shape[:-1], -1) + 0.0 * state[..., :1]

    agent.actor.params = fixed_params
    agent.target_actor.params = fixed_params
    return agent


def test_multitask_training_loss_uses_clipped_probs():
    A = 4
    agent = make_multitask(A)
    expected = clipped_probs(A, A - 1)  # [0.001007, 0.001007, 0.001007, 0.996979]
    assert expected[-1].item() == pytest.approx(0.99 / 0.993) and expected[0].item() == pytest.approx(
        0.001 / 0.993
    )
    seen: dict[str, torch.Tensor] = {}
    dist_fn = agent.policy_dist
    orig_log_prob, orig_for_value = dist_fn.log_prob, dist_fn.actions_for_value

    def spy_log_prob(dist, actions):
        seen["probs"] = dist.probs.detach()
        seen["actions"] = actions.detach()
        seen["logp"] = orig_log_prob(dist, actions).detach()
        return orig_log_prob(dist, actions)

    def spy_for_value(dist, k):
        out = orig_for_value(dist, k)
        seen.setdefault("for_value", []).append(out.detach())
        return out

    dist_fn.log_prob, dist_fn.actions_for_value = spy_log_prob, spy_for_value
    batch = synthetic_batch(agent.obs_space, agent.action_space, 3, 7, seed=0)
    torch.manual_seed(1)
    agent.compute_loss(batch)
    probs = seen["probs"]  # (B, L, G, A)
    torch.testing.assert_close(probs, expected.expand_as(probs), atol=1e-6, rtol=0)
    # log pi(a_buffer | s) takes the clipped value for whichever action the buffer holds.
    want = expected.log()[seen["actions"].argmax(-1)]  # (B, L, G)
    torch.testing.assert_close(seen["logp"].squeeze(-1), want, atol=1e-5, rtol=0)

    # Actions sampled for V(s) come from the clipped distribution too (seeded, many draws).
    torch.manual_seed(2)
    draws = orig_for_value(agent.actor(torch.zeros(40, 50, agent.traj_encoder.emb_dim)), 20)
    freq_low = (draws.argmax(-1) != A - 1).float().mean().item()  # 20 * 40 * 50 * G samples
    n = draws[..., 0].numel()
    p_low = 1.0 - expected[-1].item()  # 0.003021
    assert abs(freq_low - p_low) < 5 * math.sqrt(p_low * (1 - p_low) / n), (freq_low, p_low)
    assert all(x.shape[-1] == A for x in seen["for_value"])


def test_multitask_get_actions_samples_clipped_probs():
    A = 4
    agent = make_multitask(A).eval()
    N, rounds = 5000, 20
    obs = {"observation": torch.zeros(N, 1, 3)}
    rl2s = torch.zeros(N, 1, 1 + A)
    t = torch.zeros(N, 1, dtype=torch.long)
    torch.manual_seed(3)
    counts = Counter()
    for _ in range(rounds):
        actions, _ = agent.get_actions(obs, rl2s, t, agent.init_hidden_state(N, "cpu"), sample=True)
        counts.update(actions.tolist())
    n = N * rounds
    expected = clipped_probs(A, A - 1)
    for a in range(A):
        p = expected[a].item()
        freq = counts[a] / n
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n), (a, freq, p)
    greedy, _ = agent.get_actions(obs, rl2s, t, agent.init_hidden_state(N, "cpu"), sample=False)
    assert (greedy == A - 1).all()


# ------------------------------------------------------------------------- row 4: dropout


def make_layer(dropout_ff: float = 0.05, dropout_qkv: float = 0.0, sigma_reparam: bool = True):
    torch.manual_seed(0)
    return TransformerLayer(
        VanillaAttention(causal=True, dropout=0.0),
        d_model=16,
        n_heads=4,
        d_ff=32,
        dropout_ff=dropout_ff,
        dropout_qkv=dropout_qkv,
        sigma_reparam=sigma_reparam,
    )


def hand_forward(layer: TransformerLayer, x: torch.Tensor) -> torch.Tensor:
    """x (B, L, D) -> the layer's output with every dropout off, written out from its parts."""
    B, L, D = x.shape
    q, k, v = layer.qkv(layer.norm_attn_in(x)).view(B, L, 3, layer.n_heads, layer.head_dim).unbind(2)
    heads = layer.attention(q, k, v) * layer.head_scale[:, None]  # (B, L, H, Dh)
    x = x + layer.norm_attn_out(layer.attn_out(heads.reshape(B, L, D)))
    return x + layer.ff2(layer.norm_ff_mid(layer.act(layer.ff1(layer.norm_ff_in(x)))))


def count_dropout_calls(model: nn.Module, run) -> Counter:
    """Run ``run()`` with nn.Dropout.forward counting calls per module (in train mode)."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: Counter = Counter()
    orig = nn.Dropout.forward

    def counting(self, x):
        calls[names.get(id(self), "?")] += 1
        return orig(self, x)

    nn.Dropout.forward = counting
    try:
        run()
    finally:
        nn.Dropout.forward = orig
    return calls


def test_one_ff_dropout_per_layer_in_train_mode():
    torch.manual_seed(0)
    model = Transformer(
        inp_dim=5, max_seq_len=8, d_model=16, n_heads=4, d_ff=32, n_layers=2, dropout_ff=0.1,
        dropout_emb=0.1, dropout_attn=0.0, dropout_qkv=0.1, activation="leaky_relu", norm="layer",
        pos_emb="fixed", sigma_reparam=True, normformer_norms=True, head_scaling=True,
        attention_type=VanillaAttention,
    ).train()  # fmt: skip
    seq, t = torch.randn(2, 8, 5), torch.arange(8).expand(2, 8)
    calls = count_dropout_calls(model, lambda: model(seq, t))
    # Original per forward: the embedding dropout once, and per layer q/k/v dropout once plus
    # dropout_ff once (transformer.py:496, :574, :767 at 2d85600).
    assert calls == Counter(
        {"dropout_emb": 1, "layers.0.dropout_qkv": 1, "layers.0.dropout": 1,
         "layers.1.dropout_qkv": 1, "layers.1.dropout": 1}
    )  # fmt: skip


def test_ff_dropout_only_on_second_projection():
    """dropout_ff = 1 zeroes the FF branch only: out = x + attention branch (no sigma power step)."""
    layer = make_layer(dropout_ff=1.0, sigma_reparam=False)
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        B, L, D = x.shape
        q, k, v = layer.qkv(layer.norm_attn_in(x)).view(B, L, 3, 4, 4).unbind(2)
        heads = layer.attention(q, k, v) * layer.head_scale[:, None]
        expected = x + layer.norm_attn_out(layer.attn_out(heads.reshape(B, L, D)))
        out = layer.train()(x)
    torch.testing.assert_close(out, expected)


def test_eval_forward_matches_hand_written_layer():
    layer = make_layer(dropout_ff=0.5, dropout_qkv=0.5).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), hand_forward(layer, x))
