"""Random training windows cut from a trajectory (the original's ``RLData.random_slice``)."""

from __future__ import annotations

import numpy as np

from amago_pl.types import FrozenTraj

PADDED_SAMPLING_MODES = ("none", "left", "right", "both")


def slice_start_range(num_transitions: int, length: int, padded_sampling: str) -> tuple[int, int]:
    """Inclusive ``(low, high)`` bounds of the window start, before clamping at 0.

    Only meaningful when ``num_transitions > length``. "left" lets windows begin before the
    trajectory (they come out shorter, because padding is always on the right), "right" lets them
    run past its end, "both" does both; "none" keeps every window full length.
    """
    n = num_transitions
    if padded_sampling == "none":
        return 0, n - length
    if padded_sampling == "left":
        return -length + 1, n - length
    if padded_sampling == "right":
        return 0, n - 2  # [0, n - 1): at least two transitions remain
    if padded_sampling == "both":
        return -length + 1, n - 2
    raise ValueError(f"padded_sampling must be one of {PADDED_SAMPLING_MODES}, got {padded_sampling!r}")


def random_slice(
    traj: FrozenTraj,
    length: int,
    padded_sampling: str = "none",
    rng: np.random.Generator | None = None,
) -> FrozenTraj:
    """A window of at most ``length`` transitions (``length + 1`` observations) from ``traj``.

    Trajectories no longer than ``length`` are returned whole. The result holds views into
    ``traj`` (no copy); callers must not write into it.
    """
    if padded_sampling not in PADDED_SAMPLING_MODES:
        raise ValueError(f"padded_sampling must be one of {PADDED_SAMPLING_MODES}, got {padded_sampling!r}")
    n = len(traj)
    if n <= length:
        return traj
    rng = rng if rng is not None else np.random.default_rng()
    low, high = slice_start_range(n, length, padded_sampling)
    start = int(rng.integers(low, high + 1))
    stop = start + length
    start = max(start, 0)
    steps = slice(start, stop + 1)  # observations, rl2s, time_idxs: up to length + 1
    trans = slice(start, stop)  # rews, dones, actions: up to length
    return FrozenTraj(
        obs={k: v[steps] for k, v in traj.obs.items()},
        rl2s=traj.rl2s[steps],
        time_idxs=traj.time_idxs[steps],
        rews=traj.rews[trans],
        dones=traj.dones[trans],
        actions=traj.actions[trans],
        action_is_index=traj.action_is_index,
    )
