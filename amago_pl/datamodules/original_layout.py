"""The original's trajectory layouts, for code ported from ``amago.loading`` / ``amago.hindsight``.

The original (AMAGO 3.3.0, amago/hindsight.py and amago/loading.py at 2d85600) keeps per-step
scalars as columns: ``rews`` and ``dones`` (T-1, 1), ``time_idxs`` (T, 1), and actions always as a
float (T-1, A) representation (one-hot for Discrete). amago_pl's :class:`~amago_pl.types.FrozenTraj`
stores them flat, (T-1,) and (T,), with Discrete actions as indices. Ported relabelers and
datasets see the original's layout through the classes here and are converted back at the
boundary, so the rest of amago_pl never sees it:

- :class:`OriginalFrozenTraj` (``amago_pl.hindsight.FrozenTraj``): a writable copy of a stored
  trajectory in the original's layout; ``to_frozen_traj`` converts back.
- :class:`RLData` (``amago_pl.loading.RLData``): what an original ``RLDataset`` subclass returns
  from ``sample_random_trajectory`` (torch tensors); ``RLDataset`` converts it on return.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from amago_pl.datamodules.collate import collate_trajs
from amago_pl.datamodules.npz import DEFAULT_MAX_BYTES, read_npz
from amago_pl.datamodules.rl2_compact import expand_rl2s
from amago_pl.types import OBS_PREFIX, Batch, FrozenTraj, Timestep

# The original marked padding with this value (amago/loading.py at 2d85600); amago_pl's Batch has
# an explicit mask instead, so nothing here reads it back.
MAGIC_PAD_VAL = 4.0
pad = partial(pad_sequence, batch_first=True, padding_value=MAGIC_PAD_VAL)

_ORIG_OBS_PREFIX = "_OBS_KEY_"  # the original's npz key prefix of observations


def _column(x: Any, dtype: Any) -> np.ndarray:
    return np.array(x, dtype=dtype, copy=True).reshape(-1, 1)


@dataclass
class OriginalFrozenTraj:
    """A trajectory in the original's layout; every array is the trajectory's own copy.

    Relabelers may edit it in place (``traj.rews[:] = 0``), replace arrays or dict entries
    (``traj.obs["goals"] = ...``, ``del traj.obs["achieved"]``) and cut it (``traj.rews =
    traj.rews[:t]``), as the original's examples/13_mazerunner_relabeling.py does.
    """

    obs: dict[str, np.ndarray]  # each (T, ...)
    rl2s: np.ndarray  # (T, 1 + A) float32
    time_idxs: np.ndarray  # (T, 1) int64
    rews: np.ndarray  # (T-1, 1) float32
    dones: np.ndarray  # (T-1, 1) bool
    actions: np.ndarray  # (T-1, A) float32 (one-hot for Discrete)

    @classmethod
    def from_frozen_traj(cls, traj: FrozenTraj) -> OriginalFrozenTraj:
        return cls(
            obs={k: np.array(v, copy=True) for k, v in traj.obs.items()},
            rl2s=np.array(traj.rl2s, dtype=np.float32, copy=True),
            time_idxs=_column(traj.time_idxs, np.int64),
            rews=_column(traj.rews, np.float32),
            dones=_column(traj.dones, bool),
            actions=np.array(traj.action_rep(), dtype=np.float32, copy=True),
        )

    def to_frozen_traj(self, action_is_index: bool = False) -> FrozenTraj:
        """amago_pl's layout. ``action_is_index``: store Discrete actions as indices again (argmax of
        the one-hot rows)."""
        actions = np.asarray(self.actions)
        if action_is_index:
            # An empty cut (a relabeler may keep no transition) has no rows to argmax over.
            width = actions.shape[-1] if actions.ndim > 1 else 1
            actions = actions.reshape(len(actions), width).argmax(-1)[:, None].astype(np.int64)  # (T-1, 1)
        else:
            actions = actions.astype(np.float32)
        return FrozenTraj(
            obs=dict(self.obs),
            rl2s=np.asarray(self.rl2s, dtype=np.float32),
            time_idxs=np.asarray(self.time_idxs).reshape(-1).astype(np.int64),
            rews=np.asarray(self.rews).reshape(-1).astype(np.float32),
            dones=np.asarray(self.dones).reshape(-1).astype(bool),
            actions=actions,
            action_is_index=action_is_index,
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        """The original's npz keys (observations under ``_OBS_KEY_<name>``)."""
        out = {f"{_ORIG_OBS_PREFIX}{k}": v for k, v in self.obs.items()}
        out.update(
            rl2s=self.rl2s, time_idxs=self.time_idxs, rews=self.rews, dones=self.dones, actions=self.actions
        )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> OriginalFrozenTraj:
        """From the original's npz keys or amago_pl's (``obs.<name>``)."""
        if any(k.startswith(OBS_PREFIX) for k in d):
            return cls.from_frozen_traj(FrozenTraj.from_dict(d))
        obs = {
            k[len(_ORIG_OBS_PREFIX) :]: np.asarray(v) for k, v in d.items() if k.startswith(_ORIG_OBS_PREFIX)
        }
        return cls(
            obs=obs, **{k: np.asarray(d[k]) for k in ("rl2s", "time_idxs", "rews", "dones", "actions")}
        )


@dataclass
class RLData:
    """One training sequence as an original ``RLDataset`` returns it (torch tensors).

    ``rl2s`` may be omitted: it is built from the rewards and actions, shifted one step (zeros at
    t = 0), as the original does.
    """

    obs: dict[str, torch.Tensor]  # each (T, ...)
    rews: torch.Tensor  # (T-1, 1) float
    dones: torch.Tensor  # (T-1, 1) bool
    actions: torch.Tensor  # (T-1, A) float
    time_idxs: torch.Tensor  # (T, 1) long
    rl2s: torch.Tensor | None = field(default=None)  # (T, 1 + A)

    def __post_init__(self) -> None:
        if self.rl2s is None:
            rews = torch.as_tensor(self.rews, dtype=torch.float32).reshape(-1, 1)  # (T-1, 1)
            acts = torch.as_tensor(self.actions, dtype=torch.float32)  # (T-1, A)
            first = torch.zeros((1, 1 + acts.shape[-1]), dtype=torch.float32)
            self.rl2s = torch.cat((first, torch.cat((rews, acts), dim=-1)), dim=0)  # (T, 1 + A)

    def __len__(self) -> int:
        return len(self.actions)

    def to_frozen_traj(self) -> FrozenTraj:
        def arr(x: Any) -> np.ndarray:
            return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

        return OriginalFrozenTraj(
            obs={k: arr(v) for k, v in self.obs.items()},
            rl2s=arr(self.rl2s),
            time_idxs=arr(self.time_idxs),
            rews=arr(self.rews),
            dones=arr(self.dones),
            actions=arr(self.actions),
        ).to_frozen_traj(action_is_index=False)


def as_frozen_traj(traj: Any) -> FrozenTraj:
    """amago_pl's ``FrozenTraj`` from one, an :class:`RLData` or an :class:`OriginalFrozenTraj`."""
    if isinstance(traj, FrozenTraj):
        return traj
    if callable(getattr(traj, "to_frozen_traj", None)):
        return traj.to_frozen_traj()
    raise TypeError(f"expected a FrozenTraj or RLData, got {type(traj).__name__}")


def RLData_pad_collate(samples: list[RLData]) -> Batch:  # noqa: N802 - the original's name
    """Collate ``RLData`` samples into amago_pl's right-padded ``Batch`` (with a mask)."""
    return collate_trajs([as_frozen_traj(s) for s in samples])


def load_traj_from_disk(path: str | os.PathLike) -> OriginalFrozenTraj:
    """A trajectory ``.npz`` file (amago_pl's or the original's keys) in the original's layout.

    The original's pickled ``.traj`` format is not read (files are loaded without pickle).
    """
    if os.path.splitext(str(path))[1] != ".npz":
        raise ValueError(f"{path}: only .npz trajectory files can be read (pickled .traj files are refused)")
    return OriginalFrozenTraj.from_dict(expand_rl2s(read_npz(path), DEFAULT_MAX_BYTES))


def get_path_to_trajs(dset_root: str, dset_name: str, fifo: bool) -> str:
    """The folder of a dataset's FIFO (``fifo=True``) or protected trajectory files."""
    return os.path.join(dset_root, dset_name, "buffer", "fifo" if fifo else "protected")


def split_batched_timestep(t: Timestep) -> list[Timestep]:
    """A batched ``Timestep`` of N envs -> N timesteps with a batch of one each."""
    return [t.index(i) for i in range(t.num_envs)]


class Trajectory:
    """The original's growing list of timesteps (``amago.hindsight.Trajectory``), for reading.

    amago_pl records rollouts with ``TrajectoryWriter`` (datamodules/writer.py), so this class only
    collects :class:`~amago_pl.types.Timestep` objects and stacks their inputs; it cannot be frozen
    or saved (a Timestep here carries no terminal flag).
    """

    def __init__(self, timesteps: list[Timestep] | None = None):
        self.timesteps = list(timesteps or [])

    def add_timestep(self, timestep: Timestep) -> None:
        if timestep.num_envs != 1:
            raise ValueError("a Trajectory holds unbatched timesteps (split_batched_timestep first)")
        self.timesteps.append(timestep)

    def __getitem__(self, i: int) -> Timestep:
        return self.timesteps[i]

    def __len__(self) -> int:
        return len(self.timesteps)

    @property
    def total_return(self) -> float:
        return float(sum(t.rl2s[0, 0] for t in self.timesteps[1:]))

    def as_input_sequence(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """obs {k: (1, T, ...)}, rl2s (1, T, 1 + A), time_idxs (1, T, 1)."""
        obs = {k: np.stack([t.obs[k][0] for t in self.timesteps])[None] for k in self.timesteps[0].obs}
        rl2s = np.stack([t.rl2s[0] for t in self.timesteps])[None].astype(np.float32)
        time_idxs = np.stack([t.time_idxs for t in self.timesteps], axis=1)[..., None]
        return obs, rl2s, time_idxs

    def freeze(self, *args: Any, **kwargs: Any) -> FrozenTraj:
        raise NotImplementedError(
            "amago_pl saves rollouts with datamodules.TrajectoryWriter; Trajectory.freeze/save_to_disk "
            "are not available"
        )

    def save_to_disk(self, *args: Any, **kwargs: Any) -> None:
        self.freeze()
