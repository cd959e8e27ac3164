"""Goal-sequence embedders of the original (``amago.nets.goal_embedders`` at 2d85600), for ported code.

Neither the Agent nor the built-in encoders use them; a custom TstepEncoder of a goal-conditioned
env may. Both map goals (B, L, GL, GD) (GL goals of GD numbers per timestep) to (B, L, goal_emb_dim),
or to zeros with ``zero_embedding`` (an ablation that keeps the layer sizes).
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn


@gin.configurable
class FFGoalEmb(nn.Module):
    """Flatten the goals, then Linear(GL * GD -> 2 * GD), leaky ReLU, Linear(-> goal_emb_dim), LayerNorm."""

    def __init__(self, goal_length: int, goal_dim: int, goal_emb_dim: int = 32, zero_embedding: bool = False):
        super().__init__()
        self.ff1 = nn.Linear(goal_length * goal_dim, 2 * goal_dim)
        self.ff2 = nn.Linear(2 * goal_dim, goal_emb_dim)
        self.goal_norm = nn.LayerNorm(goal_emb_dim)
        self.goal_emb_dim = goal_emb_dim
        self.zero_embedding = zero_embedding

    def forward(self, goals: torch.Tensor) -> torch.Tensor:
        B, L = goals.shape[:2]
        if self.zero_embedding:
            return goals.new_zeros((B, L, self.goal_emb_dim), dtype=torch.float32)
        flat = goals.reshape(B, L, -1).float()  # (B, L, GL * GD)
        return self.goal_norm(self.ff2(F.leaky_relu(self.ff1(flat))))  # (B, L, goal_emb_dim)


@gin.configurable
class TokenGoalEmb(nn.Module):
    """Goals as integer tokens in [min_token, max_token]: embed each number, run a one-layer RNN over
    the GL * GD tokens of a timestep, and project its last hidden state (then LayerNorm).

    Values outside the token range are clamped to it (the original's clamp could produce an index
    one past its embedding table).
    """

    def __init__(
        self,
        goal_length: int,
        goal_dim: int,
        min_token: int = -128,
        max_token: int = 128,
        goal_emb_dim: int = 32,
        embedding_dim: int = 16,
        hidden_size: int = 64,
        zero_embedding: bool = False,
    ):
        super().__init__()
        if goal_emb_dim < 2 and not zero_embedding:
            raise ValueError(f"goal_emb_dim must be at least 2, got {goal_emb_dim}")
        self.min_token = min_token
        self.num_tokens = max_token - min_token + 1
        self.goal_emb = nn.Embedding(self.num_tokens, embedding_dim)
        self.goal_rnn = nn.RNN(embedding_dim, hidden_size, num_layers=1, batch_first=True)
        self.goal_ff = nn.Linear(hidden_size, goal_emb_dim)
        self.goal_norm = nn.LayerNorm(goal_emb_dim)
        self.goal_emb_dim = goal_emb_dim
        self.zero_embedding = zero_embedding

    def forward(self, goals: torch.Tensor) -> torch.Tensor:
        B, L = goals.shape[:2]
        if self.zero_embedding:
            return goals.new_zeros((B, L, self.goal_emb_dim), dtype=torch.float32)
        tokens = (
            (goals.reshape(B * L, -1) - self.min_token).clamp(0, self.num_tokens - 1).long()
        )  # (B*L, GL*GD)
        _, last = self.goal_rnn(self.goal_emb(tokens))  # (1, B*L, hidden)
        return self.goal_norm(self.goal_ff(last[0])).reshape(B, L, -1)  # (B, L, goal_emb_dim)
