"""Position embeddings of the time index (steps since the episode's start) for the Transformer.

``FixedPosEmb`` and ``LearnablePosEmb`` are added to the Transformer's input
(``TformerTrajEncoder.pos_emb``); ``RotaryEmb`` rotates queries and keys inside attention. They
lived in ``transformer.py`` (as in the original, ``amago/nets/transformer.py`` at 2d85600), which
still exports them, and ``LearnablePosEmb`` keeps its gin name there.
"""

from __future__ import annotations

import math

import gin
import torch
from torch import nn


class FixedPosEmb(nn.Module):
    """Sinusoidal embedding of the absolute (episode) time index; no parameters, so any length works."""

    def __init__(self, d_model: int):
        super().__init__()
        freqs = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10_000.0) / d_model))
        self.register_buffer("freqs", freqs, persistent=False)
        self.d_model = d_model

    def forward(self, time_idxs: torch.Tensor) -> torch.Tensor:
        angles = time_idxs.unsqueeze(-1).float() * self.freqs  # (B, L, D/2)
        emb = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (B, L, D') interleaved
        return emb[..., : self.d_model]  # (B, L, D)


@gin.configurable(module="amago_pl.nets.transformer")
class LearnablePosEmb(nn.Module):
    """A learned vector per absolute time index. ``max_time_idx`` must cover the longest episode.

    Used when ``TformerTrajEncoder.pos_emb = "learnable"``. Time indices at or above
    ``max_time_idx`` share the last vector.

    Args:
        max_time_idx: number of learned position vectors, i.e. one more than the largest time
            index (steps since the episode's start) the model should tell apart. ``gin.REQUIRED``
            (``LearnablePosEmb.max_time_idx = 1000``).
    """

    def __init__(self, d_model: int, max_time_idx: int = gin.REQUIRED):
        super().__init__()
        self.max_time_idx = max_time_idx
        self.emb = nn.Embedding(max_time_idx, d_model)

    def forward(self, time_idxs: torch.Tensor) -> torch.Tensor:
        return self.emb(time_idxs.clamp(0, self.max_time_idx - 1))  # (B, L, D)


class RotaryEmb(nn.Module):
    """Rotary position embedding (half-split convention) applied to queries and keys per head."""

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim // 2).float() / (head_dim // 2))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def angles(self, time_idxs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ang = time_idxs.unsqueeze(-1).float() * self.inv_freq  # (B, L, Dh/2)
        return ang.cos().unsqueeze(2), ang.sin().unsqueeze(2)  # (B, L, 1, Dh/2) each

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)  # (B, L, H, Dh/2) each
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, L, H, Dh)
