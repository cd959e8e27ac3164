"""Right-padding collate of trajectory windows into a `Batch` with an explicit mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from amago_pl.types import Batch, FrozenTraj


def _pad(arrays: Sequence[np.ndarray], length: int, dtype: np.dtype) -> torch.Tensor:
    """(B, length, ...) zeros with each array written at the front; inputs are only read."""
    out = np.zeros((len(arrays), length, *arrays[0].shape[1:]), dtype=dtype)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
    return torch.from_numpy(out)


def collate_trajs(trajs: Sequence[FrozenTraj]) -> Batch:
    """Stack windows of different lengths into one right-padded `Batch`.

    L is the longest observation sequence; padding is zeros and ``mask`` (B, L) is True exactly
    on real observation steps. Actions become their float32 representation (one-hot for
    Discrete). All windows must share obs keys and action width.
    """
    if not trajs:
        raise ValueError("cannot collate an empty list of trajectories")
    L = max(len(t.rl2s) for t in trajs)
    obs = {k: _pad([t.obs[k] for t in trajs], L, trajs[0].obs[k].dtype) for k in trajs[0].obs}  # (B, L, ...)
    lengths = torch.tensor([len(t.rl2s) for t in trajs])  # (B,)
    mask = torch.arange(L)[None, :] < lengths[:, None]  # (B, L)
    return Batch(
        obs=obs,
        rl2s=_pad([t.rl2s for t in trajs], L, np.float32),  # (B, L, 1 + A)
        time_idxs=_pad([t.time_idxs.reshape(-1) for t in trajs], L, np.int64),  # (B, L)
        rews=_pad([t.rews.reshape(-1) for t in trajs], L - 1, np.float32),  # (B, L-1)
        dones=_pad([t.dones.reshape(-1) for t in trajs], L - 1, np.bool_),  # (B, L-1)
        actions=_pad([t.action_rep() for t in trajs], L - 1, np.float32),  # (B, L-1, A)
        mask=mask,
    )
