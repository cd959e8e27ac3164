"""Convert flat offline datasets (D4RL / Minari style arrays) into trajectory store files."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np

from amago_pl.datamodules.store import TrajectoryStore
from amago_pl.types import FrozenTraj

log = logging.getLogger(__name__)

ArrayOrDict = np.ndarray | Mapping[str, np.ndarray]


def _as_obs_dict(observations: ArrayOrDict) -> dict[str, np.ndarray]:
    if isinstance(observations, Mapping):
        return {k: np.asarray(v) for k, v in observations.items()}
    return {"observation": np.asarray(observations)}


def _episode_bounds(
    n: int, ended: np.ndarray, episode_starts: np.ndarray | None, has_next_obs: bool
) -> list[tuple[int, int]]:
    """Row ranges ``[first, last]`` (inclusive) of the observation rows of each episode."""
    if episode_starts is not None:
        starts = list(np.flatnonzero(np.asarray(episode_starts, dtype=bool)))
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        return [(s, e - 1) for s, e in zip(starts, [*starts[1:], n])]
    bounds, first = [], 0
    for i in np.flatnonzero(ended):
        if i < first:
            continue  # a flag on an episode's last-observation row, which is ignored
        # With next_observations every row is a transition; otherwise the row after the done
        # row holds the episode's last observation.
        last = min(int(i) if has_next_obs else int(i) + 1, n - 1)
        bounds.append((first, last))
        first = last + 1
    if first < n:
        bounds.append((first, n - 1))  # an unfinished final episode
    return bounds


def _action_rep(actions: np.ndarray, num_actions: int | None) -> np.ndarray:
    """(T-1, A) float32 representation: one-hot of indices or the continuous values."""
    if num_actions is None:
        return actions.astype(np.float32).reshape(len(actions), -1)
    out = np.zeros((len(actions), num_actions), dtype=np.float32)
    out[np.arange(len(actions)), actions.reshape(-1)] = 1.0
    return out


def write_offline_dataset(
    store_or_path: TrajectoryStore | str | os.PathLike,
    observations: ArrayOrDict,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    episode_starts: np.ndarray | None = None,
    env_name: str = "offline",
    protected: bool = True,
    discrete: bool | int | None = None,
    traj_save_len: int | None = None,
    next_observations: ArrayOrDict | None = None,
) -> int:
    """Write flat per-step arrays as trajectory files; returns the number of files written.

    Two layouts are accepted:

    * Observation rows (default): ``observations`` holds every observation of every episode in
      order, *including* each episode's last one. ``actions``, ``rewards``, ``terminated`` and
      ``truncated`` have the same number of rows; row i describes the step taken from
      observation i (so values on an episode's last-observation row are ignored). Episodes are
      delimited by ``episode_starts`` (True on each episode's first row) or, when it is None, by
      the flags: an episode's last observation is the row right after its first
      ``terminated | truncated`` row.
    * Transition rows (D4RL style): also pass ``next_observations``. Every row is a transition,
      an episode ends at a ``terminated | truncated`` row (or before an ``episode_starts`` row)
      and its last observation is that row's next observation.

    ``observations`` may be a dict of arrays (a Dict observation space). ``rl2s`` (previous
    reward and action representation, zeros at episode starts) and ``time_idxs`` (step within
    the episode) are built here. ``dones`` keep ``terminated`` only.

    Args:
        store_or_path: a `TrajectoryStore` or its buffer folder (``{dset_root}/{dset_name}/buffer``).
        discrete: None infers from the action dtype (integers are Discrete, with
            ``max + 1`` actions); True forces Discrete with that inferred count; an int gives the
            number of actions (needed when some actions never occur in the data); False means
            continuous (actions must already be in [-1, 1]).
        traj_save_len: split episodes longer than this many transitions into pieces that overlap
            by one timestep (None: one file per episode).
        protected: write into ``protected/`` (never evicted) rather than ``fifo/``.
    """
    store = store_or_path if isinstance(store_or_path, TrajectoryStore) else TrajectoryStore(store_or_path)
    obs = _as_obs_dict(observations)
    next_obs = None if next_observations is None else _as_obs_dict(next_observations)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
    terminated = np.asarray(terminated, dtype=bool).reshape(-1)
    truncated = np.asarray(truncated, dtype=bool).reshape(-1)
    n = len(rewards)
    for name, arr in [
        ("actions", actions),
        ("terminated", terminated),
        ("truncated", truncated),
        *obs.items(),
    ]:
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows but rewards has {n}")

    if discrete is None:
        discrete = bool(np.issubdtype(actions.dtype, np.integer))
    num_actions: int | None = None
    if discrete is not False:
        actions = actions.astype(np.int64).reshape(-1, 1)  # (n, 1)
        num_actions = int(actions.max()) + 1 if discrete is True else int(discrete)
        if discrete is True:
            log.info("write_offline_dataset: inferred %d discrete actions from the data", num_actions)
        if actions.min() < 0 or actions.max() >= num_actions:
            raise ValueError(f"discrete actions must lie in [0, {num_actions})")
    else:
        actions = actions.astype(np.float32).reshape(n, -1)  # (n, A)

    written = 0
    ended = terminated | truncated
    for first, last in _episode_bounds(n, ended, episode_starts, next_obs is not None):
        if next_obs is not None:
            rows = slice(first, last + 1)  # transitions
            ep_obs = {k: np.concatenate([v[rows], next_obs[k][last : last + 1]]) for k, v in obs.items()}
        else:
            rows = slice(first, last)  # transitions: all observation rows but the last
            ep_obs = {k: v[first : last + 1] for k, v in obs.items()}
        ep_actions, ep_rews, ep_dones = actions[rows], rewards[rows], terminated[rows]
        T = len(ep_rews) + 1
        if T < 2:
            continue  # a lone observation has no transition to learn from
        A = num_actions if num_actions is not None else actions.shape[1]
        rl2s = np.zeros((T, 1 + A), dtype=np.float32)
        rl2s[1:, 0] = ep_rews
        rl2s[1:, 1:] = _action_rep(ep_actions, num_actions)
        traj = FrozenTraj(
            obs=ep_obs,
            rl2s=rl2s,  # (T, 1 + A)
            time_idxs=np.arange(T, dtype=np.int64),  # (T,)
            rews=ep_rews,  # (T-1,)
            dones=ep_dones.copy(),  # (T-1,)
            actions=ep_actions,  # (T-1, 1) int64 or (T-1, A) float32
            action_is_index=num_actions is not None,
        )
        for piece in _split(traj, traj_save_len):
            store.write(piece, env_name, protected=protected)
            written += 1
    return written


def _split(traj: FrozenTraj, save_len: int | None) -> list[FrozenTraj]:
    """Pieces of at most ``save_len`` transitions sharing one timestep at each boundary."""
    if save_len is None or len(traj) <= save_len:
        return [traj]
    pieces = []
    for start in range(0, len(traj), save_len):
        stop = min(start + save_len, len(traj))
        steps, trans = slice(start, stop + 1), slice(start, stop)
        pieces.append(
            FrozenTraj(
                obs={k: v[steps] for k, v in traj.obs.items()},
                rl2s=traj.rl2s[steps],
                time_idxs=traj.time_idxs[steps],
                rews=traj.rews[trans],
                dones=traj.dones[trans],
                actions=traj.actions[trans],
                action_is_index=traj.action_is_index,
            )
        )
    return pieces
