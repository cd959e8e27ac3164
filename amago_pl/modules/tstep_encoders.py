"""Timestep encoders: map one timestep (observation dict + rl2 features) to a vector.

A TstepEncoder sees each timestep independently (no memory); memory is the TrajEncoder's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gymnasium as gym
import torch
from torch import nn


class TstepEncoder(nn.Module, ABC):
    """Base class. Built as ``cls(obs_space, rl2_space)``; every other argument is a gin keyword.

    Args:
        obs_space: the AMAGOEnv observation space (always a ``gym.spaces.Dict``).
        rl2_space: ``Box(1 + A)`` of [previous reward, previous action representation].
        hide_rl2s: zero every rl2 feature (keeps layer sizes; an ablation of the RL^2 inputs).
        hide_rewards: zero only the previous-reward feature.
    """

    def __init__(self, obs_space: gym.spaces.Dict, rl2_space: gym.spaces.Box, hide_rl2s: bool = False, hide_rewards: bool = False):
        super().__init__()
        self.obs_space = obs_space
        self.rl2_space = rl2_space
        self.hide_rl2s = hide_rl2s
        self.hide_rewards = hide_rewards

    def forward(self, obs: dict[str, torch.Tensor], rl2s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """obs: each (B, L, ...); rl2s: (B, L, 1 + A); mask: (B, L) bool real steps or None -> (B, L, emb_dim)."""
        if self.hide_rl2s:
            rl2s = torch.zeros_like(rl2s)
        elif self.hide_rewards:
            rl2s = torch.cat((torch.zeros_like(rl2s[..., :1]), rl2s[..., 1:]), dim=-1)
        return self.inner_forward(obs, rl2s, mask)

    @abstractmethod
    def inner_forward(self, obs: dict[str, torch.Tensor], rl2s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Encode after the rl2 hiding above. Returns (B, L, emb_dim)."""

    @property
    @abstractmethod
    def emb_dim(self) -> int:
        """Width of the output, so the TrajEncoder sizes itself in code."""
