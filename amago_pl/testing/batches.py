"""Synthetic inputs for agent tests and benchmarks: random padded ``Batch``es and an iterable of them.

Not used in training; kept in the package so unit tests, integration tests and
``benchmarks/learner.py`` build identical batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import torch

from amago_pl.types import Batch


def action_width(action_space: gym.spaces.Space) -> int:
    """A: one-hot width for Discrete, the flattened size otherwise."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    return int(np.prod(action_space.shape))


def spaces_for(obs_dim: int, action_space: gym.spaces.Space) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    """(obs_space, rl2_space) as AMAGOEnv builds them for a flat observation of ``obs_dim``."""
    obs_space = gym.spaces.Dict({"observation": gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)})
    rl2_space = gym.spaces.Box(-np.inf, np.inf, (1 + action_width(action_space),), np.float32)
    return obs_space, rl2_space


def random_actions(
    action_space: gym.spaces.Space, shape: tuple[int, ...], generator: torch.Generator
) -> torch.Tensor:
    """(*shape, A) float32 action representations (one-hot for Discrete)."""
    A = action_width(action_space)
    if isinstance(action_space, gym.spaces.Discrete):
        idx = torch.randint(0, A, shape, generator=generator)
        return torch.nn.functional.one_hot(idx, A).float()
    if isinstance(action_space, gym.spaces.MultiBinary):
        return torch.randint(0, 2, (*shape, A), generator=generator).float()
    return torch.rand((*shape, A), generator=generator) * 2 - 1


def synthetic_batch(
    obs_space: gym.spaces.Dict,
    action_space: gym.spaces.Space,
    batch_size: int,
    seq_len: int,
    lengths: list[int] | None = None,
    pad_value: float = 4.0,
    done_prob: float = 0.05,
    seed: int = 0,
) -> Batch:
    """A right-padded random Batch of ``seq_len`` observations per sequence.

    ``lengths`` (observations per sequence, each >= 2) default to ``seq_len``; padding is filled
    with ``pad_value`` like the original's collate, so tests can check padding is ignored.
    """
    g = torch.Generator().manual_seed(seed)
    B, L = batch_size, seq_len
    lengths = lengths or [L] * B
    mask = torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None]  # (B, L)
    obs = {k: torch.randn((B, L, *space.shape), generator=g).float() for k, space in obs_space.spaces.items()}
    actions = random_actions(action_space, (B, L - 1), g)  # (B, L-1, A)
    rews = torch.randn((B, L - 1), generator=g)
    dones = torch.rand((B, L - 1), generator=g) < done_prob
    prev_act = torch.cat((torch.zeros_like(actions[:, :1]), actions), dim=1)  # (B, L, A)
    prev_rew = torch.cat((torch.zeros_like(rews[:, :1]), rews), dim=1)[..., None]  # (B, L, 1)
    rl2s = torch.cat((prev_rew, prev_act), dim=-1)
    time_idxs = torch.arange(L)[None].expand(B, L).clone()
    tmask = mask[:, 1:]
    for v in obs.values():
        v[~mask] = pad_value
    rl2s[~mask] = pad_value
    time_idxs[~mask] = int(pad_value)
    actions[~tmask] = pad_value
    rews[~tmask] = pad_value
    dones[~tmask] = False
    return Batch(obs=obs, rl2s=rl2s, time_idxs=time_idxs, rews=rews, dones=dones, actions=actions, mask=mask)


class SyntheticBatches(torch.utils.data.IterableDataset):
    """``num_batches`` pre-built random batches, cycled (for ``Trainer.fit`` without a replay store)."""

    def __init__(
        self, obs_space, action_space, batch_size: int, seq_len: int, num_batches: int = 8, distinct: int = 4
    ):
        super().__init__()
        self.batches = [
            synthetic_batch(obs_space, action_space, batch_size, seq_len, seed=i) for i in range(distinct)
        ]
        self.num_batches = num_batches

    def __iter__(self) -> Iterator[Batch]:
        for i in range(self.num_batches):
            yield self.batches[i % len(self.batches)]


def batch_loader(dataset: SyntheticBatches) -> torch.utils.data.DataLoader:
    """A DataLoader that passes each pre-built Batch through unchanged."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, collate_fn=lambda b: b)


# gin bindings that shrink every net to a few thousand parameters (unit tests on CPU).
TINY_BINDINGS: dict[str, object] = {
    "FFTstepEncoder.d_hidden": 32,
    "FFTstepEncoder.d_output": 16,
    "GRUTrajEncoder.d_hidden": 16,
    "GRUTrajEncoder.d_output": 16,
    "TformerTrajEncoder.d_model": 16,
    "TformerTrajEncoder.n_heads": 2,
    "TformerTrajEncoder.d_ff": 32,
    "TformerTrajEncoder.n_layers": 1,
    "Actor.d_hidden": 32,
    "NCritics.d_hidden": 32,
    "NCriticsTwoHot.d_hidden": 32,
    "NCriticsTwoHot.output_bins": 32,
    "NCriticsTwoHot.min_return": -1000.0,
    "NCriticsTwoHot.max_return": 1000.0,
}


def bind_tiny(extra: dict[str, object] | None = None) -> None:
    """Bind :data:`TINY_BINDINGS` (plus ``extra``) in gin's global config."""
    import gin

    for key, value in {**TINY_BINDINGS, **(extra or {})}.items():
        gin.bind_parameter(key, value)
