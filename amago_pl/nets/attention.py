"""Self-attention kernels used by the Transformer trajectory encoder.

Every kernel works on already-projected heads and has two entry points:

* ``forward(q, k, v)``: a fresh training sequence, q/k/v (B, L, H, Dh) -> (B, L, H, Dh).
* ``forward_cached(q, k_cache, v_cache, q_pos, k_pos, valid)``: one rollout step against a KV cache
  stored head-major, (B, H, S, Dh), which is the layout the CPU/CUDA kernels read fastest. The cache
  is a ring buffer, so slot order says nothing about time; ``q_pos`` (B,) and ``k_pos`` (B, S) give
  each token's index inside the current context window (0 = oldest kept token), which is exactly the
  index it would have in a fresh forward pass over that window.

Which keys a query may see is decided by :meth:`SelfAttention.allowed` on those indices, so causal,
sliding-window and flex ``mask_mod`` patterns behave identically in training and in cached rollouts.

The original defined these kernels in ``amago/nets/transformer.py`` (2d85600), and users' gin files name
them there (``amago.nets.transformer.SlidingWindowFlexAttention.window_size``). The configurable ones
therefore register with gin under ``amago_pl.nets.transformer``, so such keys bind after the rename
even in a raw ``gin.parse_config`` string (which no rewriting of ours sees); ``transformer.py``
imports them, so the Python path works too.
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import torch
import torch.nn.functional as F
from torch import nn

try:  # optional CUDA kernel (pip install amago_pl[flash])
    from flash_attn import flash_attn_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_func = None

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # pragma: no cover - torch < 2.5
    create_block_mask = flex_attention = None


class SelfAttention(nn.Module):
    """Base class; the default kernel is torch SDPA.

    The Transformer builds a kernel as ``cls(causal=True, dropout=TformerTrajEncoder.dropout_attn)``
    (dropout on the attention probabilities, training only); other keywords come from gin.

    Subclasses change the visibility pattern by overriding :meth:`allowed` and/or the kernel by
    overriding :meth:`attend`.
    """

    score_mod: Callable | None = None  # flex-style score hook; only FlexAttention sets one

    def __init__(self, causal: bool = True, dropout: float = 0.0):
        super().__init__()
        self.causal = causal
        self.dropout = dropout

    @property
    def dropout_p(self) -> float:
        return self.dropout if self.training else 0.0

    def cache_slots(self, max_seq_len: int) -> int:
        """How many past tokens (including the current one) a rollout KV cache must keep.

        Full attention needs the whole context. Kernels whose queries only ever see the last w
        keys override this, so rollout steps read w + 1 cached keys however long the context.
        """
        return max_seq_len

    def allowed(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor | None:
        """Broadcastable bool mask, True where query ``q_pos`` may attend to key ``k_pos``; None = all."""
        return k_pos <= q_pos if self.causal else None

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Head-major q (B, H, Lq, Dh), k/v (B, H, Lk, Dh); mask broadcastable to (B, H, Lq, Lk)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout_p)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        L = q.shape[1]
        pos = torch.arange(L, device=q.device)
        mask = self.allowed(pos[:, None], pos[None, :])  # (L, L)
        out = self.attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask)  # (B, H, L, Dh)
        return out.transpose(1, 2)  # (B, L, H, Dh)

    def forward_cached(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        q_pos: torch.Tensor,
        k_pos: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """q (B, 1, H, Dh); head-major caches (B, H, S, Dh); q_pos (B,); k_pos, valid (B, S) -> (B, 1, H, Dh)."""
        mask = valid[:, None, None, :]  # (B, 1, 1, S): never look at empty or stale slots
        pattern = self.allowed(q_pos[:, None, None, None], k_pos[:, None, None, :])
        if pattern is not None:
            mask = mask & pattern
        # One query against a long cache: two plain matmuls beat the fused CPU kernel here (~1.5x at
        # S=1024) and give every kernel, including flex score_mods, the same cached semantics.
        out = _explicit_attention(
            q.transpose(1, 2),
            k_cache,
            v_cache,
            mask,
            self.dropout_p,
            self.score_mod,
            q_pos[:, None, None, None],
            k_pos[:, None, None, :],
        )  # (B, H, 1, Dh)
        return out.transpose(1, 2)  # (B, 1, H, Dh)


def _explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float,
    score_mod: Callable | None = None,
    q_idx: torch.Tensor | None = None,
    kv_idx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Textbook softmax attention on head-major tensors (B, H, L, Dh).

    ``score_mod`` follows flex's signature ``(score, b, h, q_idx, kv_idx)`` and is called with
    broadcastable index tensors; ``q_idx``/``kv_idx`` default to 0..L-1.
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
    if score_mod is not None:
        B, H, Lq, Lk = scores.shape
        dev = scores.device
        if q_idx is None:
            q_idx = torch.arange(Lq, device=dev)[None, None, :, None]
        if kv_idx is None:
            kv_idx = torch.arange(Lk, device=dev)[None, None, None, :]
        b = torch.arange(B, device=dev)[:, None, None, None]
        h = torch.arange(H, device=dev)[None, :, None, None]
        scores = score_mod(scores, b, h, q_idx, kv_idx)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = F.dropout(torch.softmax(scores, dim=-1), p=dropout_p)
    return probs @ v  # (B, H, Lq, Dh)


class VanillaAttention(SelfAttention):
    """Plain PyTorch softmax attention (materialises the score matrix); a readable reference."""

    def attend(self, q, k, v, mask):
        return _explicit_attention(q, k, v, mask, self.dropout_p)


@gin.configurable(module="amago_pl.nets.transformer")  # the original's gin path, see module doc
class FlashAttention(SelfAttention):
    """FlashAttention-2 when ``flash_attn`` is installed and the inputs are on CUDA; otherwise torch SDPA
    with the same mask, so this default also runs on CPU.

    The default ``TformerTrajEncoder.attention_type``. With flash_attn, q/k/v are cast to bf16 for
    the kernel and the result is cast back.

    Args:
        window_size: (left, right) as in flash_attn: a query at i sees keys in [i - left, i + right];
            -1 means unbounded, so (-1, -1) is full causal attention.
    """

    def __init__(self, causal: bool = True, dropout: float = 0.0, window_size: tuple[int, int] = (-1, -1)):
        super().__init__(causal=causal, dropout=dropout)
        self.window_size = tuple(window_size)

    def cache_slots(self, max_seq_len: int) -> int:
        left = self.window_size[0]
        return max_seq_len if left < 0 else min(max_seq_len, left + 1)

    def allowed(self, q_pos, k_pos):
        left, right = self.window_size
        mask = super().allowed(q_pos, k_pos)
        for bound in (
            (q_pos - k_pos <= left) if left >= 0 else None,
            (k_pos - q_pos <= right) if right >= 0 else None,
        ):
            if bound is not None:
                mask = bound if mask is None else mask & bound
        return mask

    def forward(self, q, k, v):
        if flash_attn_func is not None and q.is_cuda:
            # flash_attn only takes half precision; cast in and back out.
            out = flash_attn_func(
                q.bfloat16(),
                k.bfloat16(),
                v.bfloat16(),
                dropout_p=self.dropout_p,
                causal=self.causal,
                window_size=self.window_size,
            )
            return out.to(q.dtype)  # (B, L, H, Dh)
        if self.window_size == (-1, -1):
            # SDPA's fused causal path skips building an (L, L) mask.
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.transpose(1, 2),
                v.transpose(1, 2),
                dropout_p=self.dropout_p,
                is_causal=self.causal,
            )
            return out.transpose(1, 2)
        return super().forward(q, k, v)


class FlexAttention(SelfAttention):
    """torch ``flex_attention`` with user ``score_mod(score, b, h, q_idx, kv_idx)`` and
    ``mask_mod(b, h, q_idx, kv_idx)`` functions.

    The compiled flex kernel is used for training passes on CUDA without attention dropout (flex has
    no dropout). Elsewhere (CPU, dropout, cached rollout steps) the same functions are evaluated on
    broadcast index tensors and applied to an explicit score matrix, which gives identical results.
    """

    _compiled_flex: Callable | None = None

    def __init__(
        self,
        score_mod: Callable | None = None,
        mask_mod: Callable | None = None,
        causal: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(causal=causal, dropout=dropout)
        self.score_mod = score_mod
        self.mask_mod = mask_mod

    def allowed(self, q_pos, k_pos):
        mask = super().allowed(q_pos, k_pos)
        if self.mask_mod is not None:
            extra = self.mask_mod(None, None, q_pos, k_pos)
            mask = extra if mask is None else mask & extra
        return mask

    def attend(self, q, k, v, mask):
        return _explicit_attention(q, k, v, mask, self.dropout_p, self.score_mod)

    def forward(self, q, k, v):
        if flex_attention is not None and q.is_cuda and self.dropout_p == 0.0:
            return self._flex_forward(q, k, v)
        return super().forward(q, k, v)

    def _flex_forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, L, H, _ = q.shape

        def mask_mod(b, h, q_idx, kv_idx):
            pattern = self.allowed(q_idx, kv_idx)
            return q_idx >= 0 if pattern is None else pattern  # q_idx >= 0: "everything visible"

        if FlexAttention._compiled_flex is None:
            FlexAttention._compiled_flex = torch.compile(flex_attention, dynamic=False)
        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=L, KV_LEN=L, device=q.device)
        out = FlexAttention._compiled_flex(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            score_mod=self.score_mod,
            block_mask=block_mask,
        )
        return out.transpose(1, 2)  # (B, L, H, Dh)


@gin.configurable(module="amago_pl.nets.transformer")  # the original's gin path, see module doc
class SlidingWindowFlexAttention(FlexAttention):
    """Causal attention restricted to the last ``window_size`` keys (a query at i sees i - window_size..i).

    Selected with ``TformerTrajEncoder.attention_type = @SlidingWindowFlexAttention``. Uses the
    compiled flex kernel for training passes on CUDA without attention dropout, and an equivalent
    explicit computation elsewhere.

    Args:
        window_size: how many earlier keys (in timesteps) a query may attend to besides itself.
            ``gin.REQUIRED``: there is no sensible default because it trades memory for cost
            (``SlidingWindowFlexAttention.window_size = 128``).
    """

    def __init__(self, causal: bool = True, dropout: float = 0.0, window_size: int = gin.REQUIRED):
        super().__init__(causal=causal, dropout=dropout)
        self.window_size = int(window_size)

    def cache_slots(self, max_seq_len: int) -> int:
        # Keys older than window_size are masked for every query, so a ring of window_size + 1 slots
        # holds everything a step can see. The mask depends only on q_pos - k_pos, which the smaller
        # ring reports exactly, so outputs are unchanged.
        if self.score_mod is not None or self.mask_mod is not None:
            return max_seq_len  # user hooks may read absolute window indices
        return min(max_seq_len, self.window_size + 1)

    def allowed(self, q_pos, k_pos):
        window = (q_pos - k_pos) <= self.window_size
        mask = super().allowed(q_pos, k_pos)
        return window if mask is None else mask & window
