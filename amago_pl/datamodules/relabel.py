"""Hindsight relabeling hooks (the original's ``hindsight.Relabeler``).

A relabeler rewrites a whole trajectory file after it is loaded and before a training window is
cut from it, inside dataloader worker processes. Relabelers ported from the original subclass
:class:`OriginalRelabeler` (``amago_pl.hindsight.Relabeler``) and get the original's array layout. It must keep the arrays consistent: when it
changes rewards it also rewrites ``rl2s[:, 0]`` (the previous-reward input), and likewise
``dones`` and any goal observations; it may truncate the trajectory. It needs whole-episode
files to see the whole episode (``traj_save_len`` longer than episodes, no stagger).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gin

from amago_pl.datamodules.original_layout import OriginalFrozenTraj, as_frozen_traj
from amago_pl.types import FrozenTraj


@gin.configurable
class Relabeler(ABC):
    """Base class: subclasses implement `relabel`. Instances are callables ``FrozenTraj -> FrozenTraj``.

    Must not modify its input in place (the same arrays may be cached or shared). Pass an instance
    or a class as ``DiskTrajDataset(relabeler=...)``.
    """

    def __call__(self, traj: FrozenTraj) -> FrozenTraj:
        return self.relabel(traj)

    @abstractmethod
    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        """Return the relabeled trajectory (a new object; the input stays unchanged)."""


@gin.configurable
class NoOpRelabeler(Relabeler):
    """Returns the trajectory unchanged (``DiskTrajDataset``'s default)."""

    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        return traj


class OriginalRelabeler(Relabeler):
    """A relabeler written for the original AMAGO (``amago_pl.hindsight.Relabeler`` after the rename).

    ``relabel`` receives an :class:`~amago_pl.datamodules.original_layout.OriginalFrozenTraj`: the
    original's layout ((T-1, 1) ``rews``/``dones``, (T, 1) ``time_idxs``, float (T-1, A)
    ``actions``, one-hot for Discrete; amago/hindsight.py:120-140 at 2d85600), as a private copy
    that it may edit in place, reassign or cut, and returns it (or another trajectory in that
    layout, or an amago_pl ``FrozenTraj``). The result is converted back to amago_pl's layout, with
    Discrete actions turned back into indices.
    """

    def __call__(self, traj: FrozenTraj) -> FrozenTraj:
        out = self.relabel(OriginalFrozenTraj.from_frozen_traj(traj))
        if isinstance(out, OriginalFrozenTraj):
            return out.to_frozen_traj(action_is_index=traj.action_is_index)
        return as_frozen_traj(out)

    @abstractmethod
    def relabel(self, traj: OriginalFrozenTraj) -> OriginalFrozenTraj | FrozenTraj:
        """Return the relabeled trajectory (the input is a private copy and may be modified)."""
