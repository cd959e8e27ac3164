"""Attention pieces of the original that amago_pl's Transformer does not use itself.

``VanillaFlexAttention`` and ``ClippedSlidingSinkAttention`` (kernels for
``TformerTrajEncoder.attention_type``) and ``AttentionLayer`` (a bare attention block for custom
sequence models), as defined in the original's amago/nets/transformer.py at 2d85600. Users know
them from ``amago_pl.nets.transformer``, which serves them, and gin keys under that path
(``amago.nets.transformer.ClippedSlidingSinkAttention.window_size``) are rewritten to this module's
(both through amago_pl/compat.py).
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import torch
from torch import nn

from amago_pl.nets.attention import FlexAttention, SelfAttention, SlidingWindowFlexAttention
from amago_pl.nets.transformer import RotaryEmb, SigmaReparam


@gin.configurable
class VanillaFlexAttention(FlexAttention):
    """:class:`FlexAttention` with identity score and mask functions: the same output as
    :class:`VanillaAttention` (the original's sanity check of the flex path)."""

    def __init__(self, causal: bool = True, dropout: float = 0.0):
        super().__init__(causal=causal, dropout=dropout)


@gin.configurable
class ClippedSlidingSinkAttention(SlidingWindowFlexAttention):
    """Sliding-window attention whose first ``sink_size`` tokens stay visible to every query
    (attention sinks, Xiao et al., 2023, https://arxiv.org/abs/2309.17453), with an optional bias
    ``sink_bias`` on the sink scores and scores clipped to +-``logit_clip`` (0 disables).

    The original's class (amago/nets/transformer.py:351 at 2d85600). Positions are indices inside
    the current context window, as for every kernel here (see nets/attention.py), so the sink is
    the first token of the window in training and in cached rollouts alike.
    """

    def __init__(
        self,
        causal: bool = True,
        dropout: float = 0.0,
        window_size: int = gin.REQUIRED,
        logit_clip: float = 0.0,
        sink_size: int = 0,
        sink_bias: float = 0.0,
    ):
        if window_size is gin.REQUIRED or int(window_size) <= 0:
            raise ValueError("ClippedSlidingSinkAttention needs window_size > 0 (gin: ...window_size = 128)")
        super().__init__(causal=causal, dropout=dropout, window_size=window_size)
        self.logit_clip = float(logit_clip or 0.0)
        self.sink_size = int(sink_size)
        self.sink_bias = float(sink_bias)
        if self.logit_clip > 0 or (self.sink_size > 0 and self.sink_bias != 0):
            self.score_mod = self._clip_and_bias

    def _clip_and_bias(self, score, b, h, q_idx, kv_idx):  # flex's score_mod signature
        if self.sink_size > 0 and self.sink_bias != 0:
            score = score + self.sink_bias * (kv_idx < self.sink_size).to(score.dtype)
        if self.logit_clip > 0:
            score = score.clamp(-self.logit_clip, self.logit_clip)
        return score

    def cache_slots(self, max_seq_len: int) -> int:
        return max_seq_len if self.sink_size > 0 else super().cache_slots(max_seq_len)

    def allowed(self, q_pos, k_pos):
        mask = super().allowed(q_pos, k_pos)
        if self.sink_size > 0:
            sink = k_pos < self.sink_size
            if self.causal:
                sink = sink & (k_pos <= q_pos)
            mask = mask | sink
        return mask


class AttentionLayer(nn.Module):
    """q/k/v projection -> attention kernel -> per-head scale -> output projection (no norms, no
    residual): the original's attention block (amago/nets/transformer.py:461 at 2d85600), for
    custom sequence models. ``TransformerLayer`` has the same pieces inside.

    ``forward(seq (B, L, d_model), time_idxs (B, L) | None) -> (B, L, d_model)``; ``time_idxs`` is
    needed with ``use_rope``.
    """

    def __init__(
        self,
        self_attention: SelfAttention,
        d_model: int,
        d_qkv: int,
        n_heads: int,
        dropout_qkv: float = 0.0,
        head_scaling: bool = True,
        sigma_reparam: bool = True,
        use_rope: bool = False,
    ):
        super().__init__()
        linear: Callable[..., nn.Module] = SigmaReparam if sigma_reparam else nn.Linear
        self.self_attention = self_attention
        self.n_heads, self.d_qkv = n_heads, d_qkv
        self.rope = RotaryEmb(d_qkv) if use_rope else None
        self.qkv_projection = linear(d_model, 3 * d_qkv * n_heads, bias=False)
        self.dropout_qkv = nn.Dropout(dropout_qkv)
        self.out_projection = linear(d_qkv * n_heads, d_model)
        self.head_scaler = nn.Parameter(torch.ones(n_heads), requires_grad=head_scaling)

    def forward(self, seq: torch.Tensor, time_idxs: torch.Tensor | None = None) -> torch.Tensor:
        B, L, _ = seq.shape
        qkv = self.dropout_qkv(self.qkv_projection(seq)).view(B, L, 3, self.n_heads, self.d_qkv)
        q, k, v = qkv.unbind(2)  # (B, L, H, Dqkv) each
        if self.rope is not None:
            angles = self.rope.angles(time_idxs)
            q, k = self.rope.rotate(q, *angles), self.rope.rotate(k, *angles)
        heads = self.self_attention(q, k, v) * self.head_scaler[:, None]  # (B, L, H, Dqkv)
        return self.out_projection(heads.reshape(B, L, -1))  # (B, L, d_model)
