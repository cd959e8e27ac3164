"""What a loaded trajectory file must look like before it may reach a training batch.

A file the zip reader accepts can still crash training much later, far from its name: a missing
observation key (KeyError in collate), another observation shape (a broadcast ValueError), an
action index past the action count (IndexError in the one-hot), a 3-D reward array. Issue 21 item
10 saw each of these crash-loop a resumed run. `check_traj` finds them at load, where the store
can name the file and move it aside. With a `TrajSpec` (the agent's spaces) it also checks the
file against the run: the usual case is an env whose observation shape changed while the dataset
name stayed the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from amago_pl.datamodules.npz import TrajectoryFileError
from amago_pl.types import FrozenTraj


@dataclass(frozen=True)
class TrajSpec:
    """The arrays a run expects per timestep: ``obs`` maps each key to (shape, dtype)."""

    obs: dict[str, tuple[tuple[int, ...], np.dtype]]
    rl2_dim: int  # 1 + A
    action_is_index: bool | None  # None: not known (either kind accepted)

    @classmethod
    def from_spaces(cls, obs_space: Any, rl2_space: Any, action_space: Any = None) -> TrajSpec | None:
        """From an agent's ``obs_space`` (a gym Dict), ``rl2_space`` and ``action_space``; None
        when the spaces are not the array-like kinds the store writes."""
        subspaces = getattr(obs_space, "spaces", None)
        rl2_shape = getattr(rl2_space, "shape", None)
        if not isinstance(subspaces, dict) or not rl2_shape:
            return None
        obs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for key, sub in subspaces.items():
            shape, dtype = getattr(sub, "shape", None), getattr(sub, "dtype", None)
            if shape is None or dtype is None:
                return None  # e.g. a Text or Graph space: not checked here
            obs[key] = (tuple(int(s) for s in shape), np.dtype(dtype))
        index = None
        if action_space is not None:
            index = type(action_space).__name__ == "Discrete"
        return cls(obs=obs, rl2_dim=int(rl2_shape[-1]), action_is_index=index)


def _numeric(a: np.ndarray) -> bool:
    return bool(np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_)


def check_traj(traj: FrozenTraj, spec: TrajSpec | None = None) -> None:
    """Raise `TrajectoryFileError` naming the first thing that makes ``traj`` unusable."""
    T = len(traj.rl2s)
    for name, arr, ndim in (
        ("rl2s", traj.rl2s, 2),
        ("time_idxs", traj.time_idxs, 1),
        ("rews", traj.rews, 1),
        ("dones", traj.dones, 1),
        ("actions", traj.actions, 2),
    ):
        if not _numeric(arr):
            raise TrajectoryFileError(f"{name} has dtype {arr.dtype} (not numeric)")
        if arr.ndim != ndim and not (name in ("time_idxs", "rews", "dones") and arr.shape[1:] == (1,)):
            raise TrajectoryFileError(f"{name} has shape {arr.shape}; expected {ndim} dimension(s)")
    A = traj.rl2s.shape[1] - 1
    if A < 1:
        raise TrajectoryFileError(f"rl2s has shape {traj.rl2s.shape}; expected (T, 1 + A) with A >= 1")
    for key, arr in traj.obs.items():
        if not _numeric(arr):
            raise TrajectoryFileError(f"obs[{key!r}] has dtype {arr.dtype} (not numeric)")
    _check_actions(traj, A)
    if spec is None:
        return
    if traj.obs.keys() != spec.obs.keys():
        missing, extra = sorted(spec.obs.keys() - traj.obs.keys()), sorted(traj.obs.keys() - spec.obs.keys())
        raise TrajectoryFileError(
            f"observation keys {sorted(traj.obs)} do not match the agent's observation space "
            f"{sorted(spec.obs)} (missing {missing}, unexpected {extra})"
        )
    for key, (shape, dtype) in spec.obs.items():
        arr = traj.obs[key]
        if arr.shape[1:] != shape:
            raise TrajectoryFileError(
                f"obs[{key!r}] has shape {arr.shape[1:]} per step; the agent's observation space expects "
                f"{shape} (was the env changed while the dataset name stayed the same?)"
            )
        if np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(dtype, np.floating):
            raise TrajectoryFileError(
                f"obs[{key!r}] has dtype {arr.dtype}; the agent's observation space holds {dtype}"
            )
    if traj.rl2s.shape[1] != spec.rl2_dim:
        raise TrajectoryFileError(
            f"rl2s has width {traj.rl2s.shape[1]}; the agent expects {spec.rl2_dim} (1 + action width)"
        )
    if spec.action_is_index is not None and traj.action_is_index != spec.action_is_index:
        kind = "integer indices (Discrete)" if spec.action_is_index else "vectors"
        raise TrajectoryFileError(f"actions are stored as the wrong kind; the agent's actions are {kind}")
    if T < 1:  # FrozenTraj already refuses this; kept so the rule stays visible here
        raise TrajectoryFileError("a trajectory needs at least one observation")


def _check_actions(traj: FrozenTraj, A: int) -> None:
    actions = traj.actions
    if traj.action_is_index:
        if actions.shape[1:] != (1,) or not np.issubdtype(actions.dtype, np.integer):
            raise TrajectoryFileError(
                f"index actions must be integers of shape (T-1, 1), got {actions.dtype} {actions.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= A):
            raise TrajectoryFileError(
                f"action index {int(actions.max() if actions.max() >= A else actions.min())} is out of "
                f"range for {A} actions (the rl2s width says A = {A})"
            )
        return
    if actions.shape[1] != A:
        raise TrajectoryFileError(f"actions have width {actions.shape[1]} but rl2s says A = {A}")
    # Only non-finite values are refused: the policy's actions are in [-1, 1], but a user's own
    # exploration wrapper may step outside it, and such data still trains.
    if actions.size and not np.isfinite(actions).all():
        raise TrajectoryFileError("actions hold NaN or infinite values")
