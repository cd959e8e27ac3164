"""Pre-norm decoder-only Transformer with a ring-buffer KV cache for rollouts.

The attention kernels live in :mod:`amago_pl.nets.attention` and the position embeddings in
:mod:`amago_pl.nets.positions`; both are imported here, where the original defined them
(``amago/nets/transformer.py`` at 2d85600).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import gin
import torch
import torch.nn.functional as F
from torch import nn

from amago_pl import compat
from amago_pl.nets.attention import (
    FlashAttention,
    FlexAttention,
    SelfAttention,
    SlidingWindowFlexAttention,
    VanillaAttention,
)
from amago_pl.nets.ff import Normalization
from amago_pl.nets.positions import FixedPosEmb, LearnablePosEmb, RotaryEmb
from amago_pl.nets.utils import activation_switch

__all__ = [
    "FixedPosEmb",
    "FlashAttention",
    "FlexAttention",
    "KVCache",
    "LearnablePosEmb",
    "RotaryEmb",
    "SelfAttention",
    "SigmaReparam",
    "SlidingWindowFlexAttention",
    "Transformer",
    "TransformerLayer",
    "VanillaAttention",
]


@gin.configurable
class SigmaReparam(nn.Linear):
    """Linear layer with sigma-reparameterised weights ``W_hat = gamma / sigma(W) * W``
    (Zhai et al., 2023, https://arxiv.org/abs/2303.06296): bounding the spectral norm keeps attention
    logits from collapsing to one-hot, which stabilises training.

    sigma(W) is tracked by one power-iteration step per training forward; eval mode reuses the stored
    singular vectors, so eval outputs are deterministic.

    Switch it on or off with ``TformerTrajEncoder.sigma_reparam``. The bias, if any, is not
    reparameterised.

    Args:
        fast_init: start from random singular-vector estimates instead of refining them with 20
            power iterations first: the legacy start of the original (its ``fast_init``,
            amago/nets/transformer.py:422 at 2d85600), whose first outputs are larger.
    """

    def __init__(self, d_in: int, d_out: int, bias: bool = True, fast_init: bool = False):
        super().__init__(d_in, d_out, bias=bias)
        self.gamma = nn.Parameter(torch.ones(1))
        self.register_buffer("u", F.normalize(torch.randn(d_out), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(d_in), dim=0))
        if not fast_init:
            self._power_iteration(steps=20)  # start from an accurate estimate

    @torch.no_grad()
    def _power_iteration(self, steps: int = 1) -> None:
        for _ in range(steps):
            self.v.copy_(F.normalize(self.weight.T @ self.u, dim=0))
            self.u.copy_(F.normalize(self.weight @ self.v, dim=0))

    def sigma(self) -> torch.Tensor:
        """Spectral-norm estimate u^T W v (differentiable w.r.t. W)."""
        if self.training or torch.is_grad_enabled():
            return torch.dot(self.u, torch.mv(self.weight, self.v))
        # Inference (rollouts): W rarely changes, so reuse the estimate until W or u/v are written to;
        # re-reading every weight matrix each step costs about a quarter of a small-batch step.
        key = (self.weight.data_ptr(), self.weight._version, self.u._version, self.v._version)
        if getattr(self, "_sigma_key", None) != key:
            self._sigma_cached = torch.dot(self.u, torch.mv(self.weight, self.v))
            self._sigma_key = key
        return self._sigma_cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._power_iteration()
        if self.training or torch.is_grad_enabled():
            # Scaling the (d_out, d_in) weight is cheaper than scaling the (tokens, d_out) output for
            # any training batch, and lets F.linear fuse the bias add (benchmarks/README.md).
            w_hat = self.weight * (self.gamma / self.sigma())
        else:
            # Rollouts: W_hat only changes when W, gamma or u/v are written to (see ``sigma``).
            key = (
                self.weight.data_ptr(),
                self.weight._version,
                self.gamma._version,
                self.u._version,
                self.v._version,
            )
            if getattr(self, "_w_hat_key", None) != key:
                self._w_hat_cached = self.weight * (self.gamma / self.sigma())
                self._w_hat_key = key
            w_hat = self._w_hat_cached
        return F.linear(x, w_hat, self.bias)


@dataclass
class KVCache:
    """Rollout memory of a :class:`Transformer`: one ring buffer of keys/values per layer and env.

    Token number n (counted from the env's last reset) lives in slot ``n % S`` (S = the number of
    slots: ``max_seq_len``, or ``window_size + 1`` for sliding-window attention), so a full
    cache overwrites its oldest token in place instead of shifting. The ring order is irrelevant to
    attention because the position information is already inside the cached keys (absolute time_idx
    embedding or RoPE), and the kernels receive each slot's window index explicitly. Heads come
    before slots because attention kernels read a contiguous (B, H, S, Dh) block about twice as fast
    as a transposed view, and at long contexts that read dominates the step time.

    The object is updated in place by the Transformer and by :meth:`reset`.
    """

    k: torch.Tensor  # (n_layers, B, H, S, Dh)
    v: torch.Tensor  # (n_layers, B, H, S, Dh)
    count: torch.Tensor  # (B,) int64 tokens seen since each env's last reset (can exceed S)

    @property
    def max_seq_len(self) -> int:
        return self.k.shape[3]

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) number of valid cached tokens per env."""
        return self.count.clamp(max=self.max_seq_len)

    def reset(self, dones: torch.Tensor) -> KVCache:
        """Forget envs where ``dones`` (B,) is True. Stale K/V stay in memory but are masked out."""
        self.count.masked_fill_(torch.as_tensor(dones, device=self.count.device).bool(), 0)
        return self

    def step_layout(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where the next token goes and how every slot relates to it.

        Returns slot (B,), q_pos (B,), k_pos (B, S), valid (B, S), new_count (B,); positions are
        indices inside the window of the last ``min(count + 1, S)`` tokens, as a fresh forward pass
        over that window would number them.
        """
        S = self.max_seq_len
        slot = self.count % S
        new_count = self.count + 1
        age = (slot[:, None] - torch.arange(S, device=slot.device)[None, :]) % S  # (B, S), 0 = newest
        n_valid = new_count.clamp(max=S)
        valid = age < n_valid[:, None]
        q_pos = n_valid - 1
        k_pos = q_pos[:, None] - age
        return slot, q_pos, k_pos, valid, new_count


class TransformerLayer(nn.Module):
    """Pre-norm block: x + Attn(norm(x)), then x + FF(norm(x)), with optional NormFormer extras
    (a norm after attention, a norm after the first FF layer, learnable per-head output scales;
    Shleifer et al., 2021, https://arxiv.org/abs/2110.09456).

    Dropout per layer, as in the original: ``dropout_qkv`` on the q/k/v projection, the attention
    kernel's own dropout on the attention probabilities, and ``dropout_ff`` once, on the output of
    the second feed-forward projection before the residual add."""

    def __init__(
        self,
        attention: SelfAttention,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout_ff: float = 0.05,
        dropout_qkv: float = 0.0,
        activation: str = "leaky_relu",
        norm: str = "layer",
        sigma_reparam: bool = True,
        normformer_norms: bool = True,
        head_scaling: bool = True,
        rope: RotaryEmb | None = None,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        linear: Callable[[int, int], nn.Module] = SigmaReparam if sigma_reparam else nn.Linear
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.attention = attention
        self.rope = rope
        self.norm_attn_in = Normalization(norm, d_model)
        self.qkv = linear(d_model, 3 * d_model)
        self.dropout_qkv = nn.Dropout(dropout_qkv)
        self.head_scale = nn.Parameter(torch.ones(n_heads)) if head_scaling else None
        self.attn_out = linear(d_model, d_model)
        self.norm_attn_out = Normalization(norm if normformer_norms else None, d_model)
        self.norm_ff_in = Normalization(norm, d_model)
        self.ff1 = linear(d_model, d_ff)
        self.act = activation_switch(activation)()
        self.norm_ff_mid = Normalization(norm if normformer_norms else None, d_ff)
        self.ff2 = linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout_ff)

    def _project(self, x: torch.Tensor, rope_angles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, L, _ = x.shape
        qkv = self.dropout_qkv(self.qkv(self.norm_attn_in(x)))  # (B, L, 3D)
        q, k, v = qkv.view(B, L, 3, self.n_heads, self.head_dim).unbind(2)  # (B, L, H, Dh) each
        if self.rope is not None:
            q, k = self.rope.rotate(q, *rope_angles), self.rope.rotate(k, *rope_angles)
        return q, k, v

    def _finish(self, x: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        B, L = heads.shape[:2]
        if self.head_scale is not None:
            heads = heads * self.head_scale[:, None]  # (B, L, H, Dh)
        attn = self.norm_attn_out(self.attn_out(heads.reshape(B, L, -1)))  # (B, L, D)
        x = x + attn
        h = self.norm_ff_mid(self.act(self.ff1(self.norm_ff_in(x))))  # (B, L, d_ff)
        # dropout_ff acts once per layer, on the second FF projection only, as in the original
        # (amago/nets/transformer.py:574 at 2d85600); attention output and FF hidden are not dropped.
        return x + self.dropout(self.ff2(h))  # (B, L, D)

    def forward(self, x: torch.Tensor, rope_angles=None) -> torch.Tensor:
        q, k, v = self._project(x, rope_angles)
        return self._finish(x, self.attention(q, k, v))

    def forward_cached(
        self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, layout, rope_angles=None
    ) -> torch.Tensor:
        """x (B, 1, D); writes this token's K/V into the caches (B, H, S, Dh) in place."""
        slot, q_pos, k_pos, valid, _ = layout
        q, k, v = self._project(x, rope_angles)
        rows = torch.arange(x.shape[0], device=x.device)
        # The cache keeps its own dtype (e.g. fp32 while the step runs under autocast).
        k_cache[rows, :, slot] = k[:, 0].to(k_cache.dtype)  # (B, H, Dh) into slot ``slot[b]`` of each env
        v_cache[rows, :, slot] = v[:, 0].to(v_cache.dtype)
        heads = self.attention.forward_cached(q.to(k_cache.dtype), k_cache, v_cache, q_pos, k_pos, valid)
        return self._finish(x, heads.to(x.dtype))  # heads: (B, 1, H, Dh)


# Compiled training forwards, kept outside the modules so deepcopy/pickle never see them.
_COMPILED_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@gin.configurable
class Transformer(nn.Module):
    """Input projection + position embedding -> dropout -> n TransformerLayers -> final norm.

    Built by :class:`~amago_pl.nets.traj_encoders.TformerTrajEncoder`, which passes every argument
    except ``compile_training``: bind ``Transformer.compile_training = True`` to run training passes
    (grad enabled) through ``torch.compile``. Rollout steps stay eager (their KV cache is mutated in
    place). Off by default: on a 2-core CPU compiling took ~2 minutes for a ~6% faster update
    (benchmarks/README.md); try it on GPUs and long sequences.
    """

    def __init__(
        self,
        inp_dim: int,
        max_seq_len: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        dropout_ff: float,
        dropout_emb: float,
        dropout_attn: float,
        dropout_qkv: float,
        activation: str,
        norm: str,
        pos_emb: str,
        sigma_reparam: bool,
        normformer_norms: bool,
        head_scaling: bool,
        attention_type: Callable[..., SelfAttention],
        compile_training: bool = False,
    ):
        super().__init__()
        self.compile_training = bool(compile_training)
        self.max_seq_len, self.d_model = max_seq_len, d_model
        self.n_layers, self.n_heads, self.head_dim = n_layers, n_heads, d_model // n_heads
        self.inp = nn.Linear(inp_dim, d_model)
        self.rope = None
        if pos_emb == "fixed":
            self.pos_emb: nn.Module | None = FixedPosEmb(d_model)
        elif pos_emb in ("learnable", "learned"):  # the original docstring says "learned"
            self.pos_emb = LearnablePosEmb(d_model)
        elif pos_emb == "rope":
            self.pos_emb, self.rope = None, RotaryEmb(self.head_dim)
        else:
            raise ValueError(f"Unknown pos_emb {pos_emb!r}; choose 'fixed', 'learnable' or 'rope'")
        self.dropout_emb = nn.Dropout(dropout_emb)
        self.layers = nn.ModuleList(
            TransformerLayer(
                attention_type(causal=True, dropout=dropout_attn),
                d_model=d_model,
                n_heads=n_heads,
                d_ff=d_ff,
                dropout_ff=dropout_ff,
                dropout_qkv=dropout_qkv,
                activation=activation,
                norm=norm,
                sigma_reparam=sigma_reparam,
                normformer_norms=normformer_norms,
                head_scaling=head_scaling,
                rope=self.rope,
            )
            for _ in range(n_layers)
        )
        self.out_norm = Normalization(norm, d_model)

    def _embed(self, seq: torch.Tensor, time_idxs: torch.Tensor):
        x = self.inp(seq)  # (B, L, D)
        if self.pos_emb is not None:
            x = x + self.pos_emb(time_idxs)
        rope_angles = self.rope.angles(time_idxs) if self.rope is not None else None
        return self.dropout_emb(x), rope_angles

    def forward(self, seq: torch.Tensor, time_idxs: torch.Tensor) -> torch.Tensor:
        """Training pass over fresh sequences: seq (B, L, inp_dim), time_idxs (B, L) -> (B, L, D)."""
        if self.compile_training and torch.is_grad_enabled():
            fn = _COMPILED_FORWARDS.get(self)
            if fn is None:
                # The unbound function: a bound method would keep ``self`` alive through the value.
                fn = _COMPILED_FORWARDS[self] = torch.compile(Transformer._forward)
            return fn(self, seq, time_idxs)
        return self._forward(seq, time_idxs)

    def _forward(self, seq: torch.Tensor, time_idxs: torch.Tensor) -> torch.Tensor:
        x, rope_angles = self._embed(seq, time_idxs)
        for layer in self.layers:
            x = layer(x, rope_angles)
        return self.out_norm(x)

    def init_cache(self, batch_size: int, device: torch.device | str) -> KVCache:
        dtype = self.inp.weight.dtype
        # Windowed attention only ever reads its last window_size + 1 tokens: a smaller ring makes a
        # step's cost independent of max_seq_len (the dominant cost at long contexts on CPU).
        slots = min(layer.attention.cache_slots(self.max_seq_len) for layer in self.layers)
        shape = (self.n_layers, batch_size, self.n_heads, slots, self.head_dim)
        # Every step writes into the cache in place. Allocated under torch.inference_mode (as in
        # Lightning's validate/test loops) it would be an "inference tensor", which refuses in-place
        # writes once inference mode is off; a normal tensor accepts them in both modes
        # (https://pytorch.org/docs/stable/notes/autograd.html#inference-mode).
        with torch.inference_mode(False):
            return KVCache(
                k=torch.zeros(shape, device=device, dtype=dtype),
                v=torch.zeros(shape, device=device, dtype=dtype),
                count=torch.zeros(batch_size, device=device, dtype=torch.long),
            )

    def step(self, token: torch.Tensor, time_idxs: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One rollout step: token (B, 1, inp_dim), time_idxs (B, 1) -> (B, 1, D); updates ``cache``."""
        x, rope_angles = self._embed(token, time_idxs)
        layout = cache.step_layout()
        for i, layer in enumerate(self.layers):
            x = layer.forward_cached(x, cache.k[i], cache.v[i], layout, rope_angles)
        cache.count.copy_(layout[-1])
        return self.out_norm(x)


# The original's names for the rotary embedding and the rollout cache, and the original's extra
# attention classes (nets/attention_extras.py), served through amago_pl/compat.py.
__getattr__ = compat.name_getattr(__name__)
