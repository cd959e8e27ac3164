"""A per-process, byte-bounded LRU of checked trajectory files.

Why: the learner draws ``batch_size`` files per update and, without a cache, opens, parses and
checks each one every time. On the T-Maze 10 recipe (batch 24, one torch thread, no loader
workers) cProfile put 5.9 s of 32 s in ``DiskTrajDataset.sample_random_trajectory``, 4.7 s of it
in ``read_npz`` (benchmarks/README.md, "Reading trajectory files"). Small tasks keep their whole
buffer in a few MB, so a cache serves almost every draw from memory.

A file is known by ``(path, inode, size, mtime_ns)``: a file replaced by a rename or rewritten in
place gets a new key and is read again; an entry of an evicted or quarantined file is never
looked up again and ages out. Entries are the checked ``FrozenTraj``; ``get`` hands out a copy,
because relabelers may edit the trajectory they are given in place
(``amago_pl.datamodules.relabel``). Each process (DDP rank, dataloader worker) has its own cache,
so the memory it may take is ``max_bytes`` per process.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from pathlib import Path

from amago_pl.types import FrozenTraj

CacheKey = tuple[str, int, int, int]  # (path, inode, size in bytes, mtime in ns)


def cache_key(path: Path, st: os.stat_result) -> CacheKey:
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def traj_nbytes(traj: FrozenTraj) -> int:
    """Bytes of the arrays ``traj`` holds in memory."""
    arrays = [*traj.obs.values(), traj.rl2s, traj.time_idxs, traj.rews, traj.dones, traj.actions]
    return sum(a.nbytes for a in arrays)


def copy_traj(traj: FrozenTraj) -> FrozenTraj:
    """A copy whose arrays share no memory with ``traj``'s."""
    return dataclasses.replace(
        traj,
        obs={k: v.copy() for k, v in traj.obs.items()},
        rl2s=traj.rl2s.copy(),
        time_idxs=traj.time_idxs.copy(),
        rews=traj.rews.copy(),
        dones=traj.dones.copy(),
        actions=traj.actions.copy(),
    )


class TrajCache:
    """Least-recently-used trajectories, at most ``max_bytes`` of arrays in all.

    A trajectory larger than ``max_bytes`` is not kept; ``max_bytes = 0`` disables the cache.
    ``hits`` and ``misses`` count lookups (for logs and tests).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"a trajectory cache needs max_bytes >= 0 (0 disables it), got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, tuple[FrozenTraj, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> FrozenTraj | None:
        """A private copy of the cached trajectory, or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return copy_traj(entry[0])

    def put(self, key: CacheKey, traj: FrozenTraj) -> None:
        """Keep a copy of ``traj`` (the caller may go on editing its own) under ``key``."""
        size = traj_nbytes(traj)
        if size > self.max_bytes or key in self._entries:
            return
        self._entries[key] = (copy_traj(traj), size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
