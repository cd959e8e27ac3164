"""Trajectory encoders (sequence models): the agent's memory.

One causal pass over a whole training sequence, and step-by-step inference with a hidden state
(KV cache, RNN state) during rollouts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class TrajEncoder(nn.Module, ABC):
    """Base class. Built as ``cls(tstep_dim, max_seq_len)``; every other argument is a gin keyword.

    Must be causal: output t depends only on inputs 0..t.
    """

    def __init__(self, tstep_dim: int, max_seq_len: int):
        super().__init__()
        self.tstep_dim = tstep_dim
        self.max_seq_len = max_seq_len

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
