"""Hindsight relabeling hooks (the original's ``hindsight.Relabeler``).

A relabeler rewrites a whole trajectory file after it is loaded and before a training window is
cut from it, inside dataloader worker processes. It must keep the arrays consistent: when it
changes rewards it also rewrites ``rl2s[:, 0]`` (the previous-reward input), and likewise
``dones`` and any goal observations; it may truncate the trajectory. It needs whole-episode
files to see the whole episode (``traj_save_len`` longer than episodes, no stagger).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gin

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
