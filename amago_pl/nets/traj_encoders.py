"""Trajectory encoders (sequence models): the agent's memory.

One causal pass over a whole training sequence, and step-by-step inference with a hidden state
(KV cache, RNN state) during rollouts.

The Agent builds an encoder as ``cls(tstep_dim, max_seq_len)``: the TstepEncoder's ``emb_dim`` and
the context length (``Experiment.max_seq_len``). Every other argument is a gin keyword
(docs/configuration.md).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import gin
import torch
from torch import nn

from amago_pl import compat
from amago_pl.nets.ff import FFBlock, Normalization
from amago_pl.nets.transformer import FlashAttention, KVCache, SelfAttention, Transformer
from amago_pl.nets.utils import activation_switch


class TrajEncoder(nn.Module, ABC):
    """Base class. Must be causal: output t depends only on inputs 0..t.

    A subclass written for the original (its ``forward`` takes ``log_dict``) is called as the
    original calls it: ``time_idxs`` (B, L, 1) and ``log_dict=None`` (amago/nets/traj_encoders.py:140
    at 2d85600).
    """

    _original_api: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._original_api = "log_dict" in inspect.signature(cls.forward).parameters

    def __init__(self, tstep_dim: int, max_seq_len: int):
        super().__init__()
        self.tstep_dim = tstep_dim
        self.max_seq_len = max_seq_len

    def __call__(self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: Any = None, **kwargs: Any):
        if self._original_api and time_idxs.dim() == seq.dim() - 1:
            time_idxs = time_idxs.unsqueeze(-1)  # (B, L) -> (B, L, 1)
        return super().__call__(seq, time_idxs, hidden_state, **kwargs)

    @abstractmethod
    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        """seq: (B, L, tstep_dim); time_idxs: (B, L) int64 -> (out (B, L, emb_dim), new hidden state).

        ``hidden_state=None`` means a fresh sequence (training). During rollouts L is usually 1 and
        the returned hidden state is passed to the next call.
        """

    def init_hidden_state(self, batch_size: int, device: torch.device | str) -> Any:
        """State for ``batch_size`` fresh sequences (None for memory-free encoders)."""
        return None

    def reset_hidden_state(self, hidden_state: Any, dones: torch.Tensor) -> Any:
        """Forget the memory of the envs where ``dones`` (B,) bool is True; keep the others."""
        return hidden_state

    @property
    @abstractmethod
    def emb_dim(self) -> int:
        """Width of the output sequence."""


@gin.configurable
class TformerTrajEncoder(TrajEncoder):
    """Pre-norm decoder-only Transformer over timestep embeddings (always causal).

    Rollouts keep a :class:`~amago_pl.nets.transformer.KVCache` of the last ``max_seq_len`` tokens
    per env. With one layer, a cached step equals a fresh pass over that window; with more layers
    the keys of old tokens were computed in their own (longer) context once an episode outgrows the
    cache, exactly as in the original ("KV-cache drift").

    Args:
        d_model: width of the residual stream; also the encoder's ``emb_dim``.
        n_heads: ``d_model`` must be divisible by it (head width ``d_model // n_heads``, which must
            be even with ``pos_emb="rope"``).
        d_ff: hidden width of each layer's feed-forward block.
        dropout_ff: dropout on each layer's feed-forward output (after its second projection,
            once per layer as in the original).
        dropout_emb: dropout on the input embedding (after adding the position embedding).
        dropout_attn: dropout on the attention probabilities (passed to ``attention_type``).
        dropout_qkv: dropout on the query/key/value projections.
        activation: feed-forward activation (see
            :func:`~amago_pl.nets.utils.activation_switch`).
        norm: normalisation name used by the pre-norms, the NormFormer norms and the final norm
            (see :class:`~amago_pl.nets.ff.Normalization`).
        pos_emb: position information, from the absolute time index within the episode:
            "fixed" (sinusoidal, added to the input), "learnable" (a ``LearnablePosEmb``, whose
            ``max_time_idx`` must then be bound) or "rope" (rotary embedding of queries and keys).
        sigma_reparam: use ``SigmaReparam`` (spectral-norm reparameterised) linear layers for the
            qkv, output and feed-forward projections (https://arxiv.org/abs/2303.06296).
        normformer_norms: add NormFormer's extra norms after attention and after the first
            feed-forward layer (https://arxiv.org/abs/2110.09456).
        head_scaling: learn a per-head scale of the attention output (NormFormer).
        attention_type: a :class:`~amago_pl.nets.attention.SelfAttention` class, built as
            ``attention_type(causal=True, dropout=dropout_attn)``; its own keywords come from gin.
            ``FlashAttention`` falls back to torch SDPA on CPU.
    """

    def __init__(
        self,
        tstep_dim: int,
        max_seq_len: int,
        d_model: int = 256,
        n_heads: int = 8,
        d_ff: int = 1024,
        n_layers: int = 3,
        dropout_ff: float = 0.05,
        dropout_emb: float = 0.05,
        dropout_attn: float = 0.0,
        dropout_qkv: float = 0.0,
        activation: str = "leaky_relu",
        norm: str = "layer",
        pos_emb: str = "fixed",
        sigma_reparam: bool = True,
        normformer_norms: bool = True,
        head_scaling: bool = True,
        attention_type: type[SelfAttention] = FlashAttention,
    ):
        super().__init__(tstep_dim, max_seq_len)
        self.d_model = d_model
        self.transformer = Transformer(
            inp_dim=tstep_dim,
            max_seq_len=max_seq_len,
            d_model=d_model,
            n_heads=n_heads,
            d_ff=d_ff,
            n_layers=n_layers,
            dropout_ff=dropout_ff,
            dropout_emb=dropout_emb,
            dropout_attn=dropout_attn,
            dropout_qkv=dropout_qkv,
            activation=activation,
            norm=norm,
            pos_emb=pos_emb,
            sigma_reparam=sigma_reparam,
            normformer_norms=normformer_norms,
            head_scaling=head_scaling,
            attention_type=attention_type,
        )

    @property
    def emb_dim(self) -> int:
        return self.d_model

    def init_hidden_state(self, batch_size: int, device: torch.device | str) -> KVCache:
        return self.transformer.init_cache(batch_size, device)

    def reset_hidden_state(self, hidden_state: KVCache | None, dones: torch.Tensor) -> KVCache | None:
        return None if hidden_state is None else hidden_state.reset(dones)

    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache | None]:
        if hidden_state is None:
            return self.transformer(seq, time_idxs), None  # (B, L, D)
        # Rollouts feed one step at a time; longer inputs are consumed token by token so the cache
        # semantics (ring buffer, sliding window) stay in one place.
        outs = [
            self.transformer.step(seq[:, t : t + 1], time_idxs[:, t : t + 1], hidden_state)
            for t in range(seq.shape[1])
        ]
        return torch.cat(outs, dim=1), hidden_state  # (B, L, D)


@gin.configurable
class GRUTrajEncoder(TrajEncoder):
    """Multi-layer GRU -> Linear -> norm. The hidden state is (n_layers, B, d_hidden).

    Training windows start from a zero state, while rollouts carry the state through the whole
    episode (no burn-in), as in the original.

    ``max_seq_len`` is unused.

    Args:
        d_output: width of the Linear layer after the GRU; the encoder's ``emb_dim``.
        norm: a ``Normalization`` name or None.
    """

    def __init__(
        self,
        tstep_dim: int,
        max_seq_len: int,
        d_hidden: int = 256,
        n_layers: int = 2,
        d_output: int = 256,
        norm: str = "layer",
    ):
        super().__init__(tstep_dim, max_seq_len)
        self.d_hidden, self.n_layers, self.d_output = d_hidden, n_layers, d_output
        self.rnn = nn.GRU(tstep_dim, d_hidden, num_layers=n_layers, batch_first=True)
        self.out = nn.Linear(d_hidden, d_output)
        self.out_norm = Normalization(norm, d_output)

    @property
    def emb_dim(self) -> int:
        return self.d_output

    def init_hidden_state(self, batch_size: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(self.n_layers, batch_size, self.d_hidden, device=device)

    def reset_hidden_state(
        self, hidden_state: torch.Tensor | None, dones: torch.Tensor
    ) -> torch.Tensor | None:
        if hidden_state is None:
            return None
        dones = torch.as_tensor(dones, device=hidden_state.device).bool()
        keep = (~dones).to(hidden_state.dtype)[None, :, None]  # (1, B, 1)
        return hidden_state * keep

    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h_seq, hidden_state = self.rnn(seq, hidden_state)  # (B, L, d_hidden), (n_layers, B, d_hidden)
        return self.out_norm(self.out(h_seq)), hidden_state  # (B, L, d_output)


@gin.configurable
class FFTrajEncoder(TrajEncoder):
    """Memory-free ablation of the Transformer: Linear -> act -> dropout -> n residual FF blocks ->
    Linear -> out_norm -> dropout, applied to every timestep independently.

    Useful to test whether a task needs memory at all. It keeps no hidden state.

    ``max_seq_len`` is unused.

    Args:
        d_model: width of the residual stream; also the encoder's ``emb_dim``.
        d_ff: hidden width of each residual block; None means ``4 * d_model``.
        n_layers: number of residual feed-forward blocks.
        dropout: dropout probability after the input layer, inside the blocks and at the output.
        norm: pre-norm inside each residual block (a ``Normalization`` name or None).
    """

    def __init__(
        self,
        tstep_dim: int,
        max_seq_len: int,
        d_model: int = 256,
        d_ff: int | None = None,
        n_layers: int = 1,
        dropout: float = 0.0,
        activation: str = "leaky_relu",
        norm: str | None = None,
        out_norm: str | None = "layer",
    ):
        super().__init__(tstep_dim, max_seq_len)
        self.d_model = d_model
        d_ff = d_ff or 4 * d_model
        self.inp = nn.Linear(tstep_dim, d_model)
        self.act = activation_switch(activation)()
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(
            *(
                FFBlock(d_model, d_ff, activation=activation, dropout=dropout, norm=norm)
                for _ in range(n_layers)
            )
        )
        self.out = nn.Linear(d_model, d_model)
        self.out_norm = Normalization(out_norm, d_model)

    @property
    def emb_dim(self) -> int:
        return self.d_model

    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: None = None
    ) -> tuple[torch.Tensor, None]:
        x = self.blocks(self.dropout(self.act(self.inp(seq))))  # (B, L, D)
        return self.dropout(self.out_norm(self.out(x))), hidden_state


@gin.configurable
class IdentityTrajEncoder(TrajEncoder):
    """No sequence model: the policy sees only the current timestep embedding."""

    @property
    def emb_dim(self) -> int:
        return self.tstep_dim

    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: None = None
    ) -> tuple[torch.Tensor, None]:
        return seq, hidden_state


_MAMBA_MISSING = (
    "MambaTrajEncoder needs the mamba_ssm package (CUDA only): pip install amago_pl[mamba] "
    "(mamba-ssm and causal-conv1d)."
)


@dataclass
class MambaState:
    """Per-layer recurrent Mamba state: conv inputs (B, d_inner, d_conv) and SSM state (B, d_inner, d_state)."""

    conv: list[torch.Tensor]
    ssm: list[torch.Tensor]


@gin.configurable
class MambaTrajEncoder(TrajEncoder):
    """Linear in -> n residual (norm -> Mamba) blocks -> out_norm, with Mamba's recurrent ``step`` for
    rollouts. Requires ``mamba_ssm`` (CUDA).

    ``max_seq_len`` is unused (the recurrent state has a fixed size).

    Args:
        d_model: width of the residual stream; also the encoder's ``emb_dim``.
        d_state: size of each Mamba block's SSM state.
        d_conv: kernel width of Mamba's causal 1-D convolution.
        expand: inner width of each Mamba block, as a multiple of ``d_model``.
        norm: normalisation name used before each block and at the output.
    """

    def __init__(
        self,
        tstep_dim: int,
        max_seq_len: int,
        d_model: int = 256,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        n_layers: int = 3,
        norm: str = "layer",
    ):
        super().__init__(tstep_dim, max_seq_len)
        try:
            from mamba_ssm import Mamba
        except ImportError as err:
            raise ImportError(_MAMBA_MISSING) from err
        self.d_model = d_model
        self.inp = nn.Linear(tstep_dim, d_model)
        self.norms = nn.ModuleList(Normalization(norm, d_model) for _ in range(n_layers))
        self.mambas = nn.ModuleList(
            Mamba(d_model=d_model, d_state=d_state, d_conv=d_conv, expand=expand, layer_idx=i)
            for i in range(n_layers)
        )
        self.out_norm = Normalization(norm, d_model)

    @property
    def emb_dim(self) -> int:
        return self.d_model

    def init_hidden_state(self, batch_size: int, device: torch.device | str) -> MambaState:
        conv, ssm = [], []
        for m in self.mambas:
            c, s = m.allocate_inference_cache(batch_size, max_seqlen=1)
            conv.append(c.to(device).zero_())
            ssm.append(s.to(device).zero_())
        return MambaState(conv=conv, ssm=ssm)

    def reset_hidden_state(self, hidden_state: MambaState | None, dones: torch.Tensor) -> MambaState | None:
        if hidden_state is None:
            return None
        idx = torch.as_tensor(dones, device=hidden_state.conv[0].device).bool()
        for c, s in zip(hidden_state.conv, hidden_state.ssm):
            c[idx] = 0
            s[idx] = 0
        return hidden_state

    def forward(
        self, seq: torch.Tensor, time_idxs: torch.Tensor, hidden_state: MambaState | None = None
    ) -> tuple[torch.Tensor, MambaState | None]:
        x = self.inp(seq)  # (B, L, D)
        if hidden_state is None:
            for norm, mamba in zip(self.norms, self.mambas):
                x = x + mamba(norm(x))
            return self.out_norm(x), None
        outs = []
        for t in range(x.shape[1]):
            h = x[:, t : t + 1]  # (B, 1, D)
            for i, (norm, mamba) in enumerate(zip(self.norms, self.mambas)):
                # Mamba.step updates conv/ssm states in place.
                y, _, _ = mamba.step(norm(h), hidden_state.conv[i], hidden_state.ssm[i])
                h = h + y
            outs.append(h)
        return self.out_norm(torch.cat(outs, dim=1)), hidden_state


# register_traj_encoder & co., which the original defined here, live in nets/registry.py
# (it imports this module); served through amago_pl/compat.py.
__getattr__ = compat.name_getattr(__name__)
