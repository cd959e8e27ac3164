"""Compact on-disk rl2 features for large Discrete action spaces.

``rl2s[t]`` is ``[previous reward, one-hot of the previous action]`` (zeros at an episode start),
so with ``Discrete(200000)`` every stored timestep costs 800 KB of zeros: 3,000 steps of two envs
wrote ~4.8 GB (issue 21 item 11). Such rows are stored as the reward and the action index
(-1 for an all-zero row) plus the width, and expanded again when the file is read. Files of
action spaces up to ``COMPACT_ABOVE`` actions keep the dense ``rl2s`` array, byte for byte as
before; a row that is not exactly one-hot (a user's own rl2 features) also keeps the file dense.
"""

from __future__ import annotations

import numpy as np

from amago_pl.datamodules.npz import TrajectoryFileError

COMPACT_ABOVE = 1024  # action count above which index-action files store rl2s compactly
_KEYS = ("rl2s_reward", "rl2s_action", "rl2s_width")


def compact_rl2s(arrays: dict[str, np.ndarray], action_is_index: bool) -> dict[str, np.ndarray]:
    """``arrays`` (a ``FrozenTraj.to_dict()``) with ``rl2s`` replaced by its compact form when
    that is exact; otherwise ``arrays`` unchanged."""
    rl2s = arrays["rl2s"]  # (T, 1 + A)
    if not action_is_index or rl2s.ndim != 2 or rl2s.shape[1] - 1 <= COMPACT_ABOVE:
        return arrays
    reps = rl2s[:, 1:]  # (T, A)
    hot = np.count_nonzero(reps, axis=1)  # (T,)
    index = np.argmax(reps, axis=1)  # (T,)
    rows = np.arange(len(reps))
    if hot.max(initial=0) > 1 or not np.all(reps[rows, index][hot == 1] == 1.0):
        return arrays  # not plain one-hot rows: keep the exact dense array
    out = {k: v for k, v in arrays.items() if k != "rl2s"}
    out["rl2s_reward"] = rl2s[:, 0].astype(np.float32)  # (T,)
    out["rl2s_action"] = np.where(hot == 1, index, -1).astype(np.int64)  # (T,)
    out["rl2s_width"] = np.asarray(rl2s.shape[1], dtype=np.int64)
    return out


def expand_rl2s(arrays: dict[str, np.ndarray], max_bytes: int | None) -> dict[str, np.ndarray]:
    """The dense ``rl2s`` (T, 1 + A) float32 back from a compact file (other files unchanged)."""
    if "rl2s_action" not in arrays:
        return arrays
    if "rl2s" in arrays or not all(k in arrays for k in _KEYS):
        raise TrajectoryFileError(f"inconsistent compact rl2 arrays: has {sorted(arrays)}")
    reward, action = arrays["rl2s_reward"].reshape(-1), arrays["rl2s_action"].reshape(-1)
    width = int(arrays["rl2s_width"].reshape(-1)[0]) if arrays["rl2s_width"].size else 0
    if len(reward) != len(action) or width < 2 or not np.issubdtype(action.dtype, np.integer):
        raise TrajectoryFileError(f"malformed compact rl2s (width {width}, {len(reward)}/{len(action)} rows)")
    if max_bytes is not None and len(action) * width * 4 > max_bytes:
        raise TrajectoryFileError(
            f"compact rl2s expand to {len(action) * width * 4} bytes, above the limit of {max_bytes} bytes"
        )
    if action.size and (action.min() < -1 or action.max() >= width - 1):
        raise TrajectoryFileError(f"compact rl2s hold an action index outside [-1, {width - 2}]")
    rl2s = np.zeros((len(action), width), dtype=np.float32)  # (T, 1 + A)
    rl2s[:, 0] = reward
    hot = action >= 0
    rl2s[np.flatnonzero(hot), 1 + action[hot]] = 1.0
    out = {k: v for k, v in arrays.items() if k not in _KEYS}
    out["rl2s"] = rl2s
    return out
