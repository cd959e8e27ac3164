"""`DiskTrajDataset`: a FIFO replay buffer of trajectory files on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gin
import numpy as np

from amago_pl.datamodules.dataset import RLDataset
from amago_pl.datamodules.file_checks import TrajSpec
from amago_pl.datamodules.relabel import NoOpRelabeler, Relabeler
from amago_pl.datamodules.store import DEFAULT_CACHE_BYTES, TrajectoryStore, UnusableStoreError
from amago_pl.datamodules.stream import BufferEmptyError
from amago_pl.datamodules.traj_cache import TrajCache
from amago_pl.types import FrozenTraj

# Sampling retries before re-listing: a listed file may have been evicted by rank 0 or
# quarantined by another worker since the listing.
_LOAD_ATTEMPTS = 16


@gin.configurable
class DiskTrajDataset(RLDataset):
    """Trajectory files in ``{dset_root}/{dset_name}/buffer/{fifo,protected}``.

    Each sample is a file drawn uniformly (so long episodes split into many files weigh more),
    passed through the relabeler, then cut into a training window by the stream.

    You construct it and pass it to ``Experiment`` (gin fills any keyword you leave out), which
    sets its batch size, sequence length and loader options in ``start()``.

    Args:
        dset_root: folder holding all datasets.
        dset_name: this dataset's folder name (under ``dset_root``); also its name in logs.
        dset_max_size: FIFO files kept after each collection round (oldest deleted first;
            protected files never deleted and not counted).
        dset_min_size: training starts once there are *more* than this many files (the
            original's rule).
        relabeler: a ``Relabeler`` instance or class (a class is instantiated with no
            arguments, so gin can pass ``@MyRelabeler``) applied to every loaded trajectory;
            None uses ``NoOpRelabeler``.
        accept_new_trajs: False makes ``save_new_trajs_to`` None (a read-only dataset, e.g. offline
            data next to the online buffer in a ``MixtureOfDatasets``). Not in the original.
        cache_mb: megabytes of loaded, checked trajectory files each process (rank, dataloader
            worker) keeps in memory, least recently used first out, so a file drawn again is not
            read from disk again; 0 reads every draw from disk (the original's behaviour). None
            (default): 64 when files are loaded in the training process (``dloader_workers=0``,
            where reading blocks the updates), 0 with loader workers (they read in parallel, and
            each would hold its own cache). Samples are the same either way. Not in the original.
    """

    def __init__(
        self,
        dset_root: str | os.PathLike,
        dset_name: str,
        dset_max_size: int,
        dset_min_size: int = 1,
        relabeler: Relabeler | type[Relabeler] | None = None,
        accept_new_trajs: bool = True,
        cache_mb: float | None = None,
    ) -> None:
        super().__init__(dset_name=dset_name)
        self.dset_root = Path(dset_root)
        self.dset_max_size = dset_max_size
        self.dset_min_size = dset_min_size
        if relabeler is None:
            relabeler = NoOpRelabeler()
        elif isinstance(relabeler, type):
            relabeler = relabeler()  # gin passes `@MyRelabeler` as a class
        self.relabeler = relabeler
        self.accept_new_trajs = accept_new_trajs
        if cache_mb is not None and not cache_mb >= 0:
            raise ValueError(
                f"DiskTrajDataset '{dset_name}': cache_mb={cache_mb!r} must be a number >= 0 "
                "(0 turns the in-memory trajectory cache off; gin: DiskTrajDataset.cache_mb)"
            )
        self.store = TrajectoryStore(
            self.dset_root / dset_name / "buffer",
            max_size=dset_max_size,
            cache_bytes=DEFAULT_CACHE_BYTES if cache_mb is None else int(cache_mb * 2**20),
        )
        self.cache_mb = cache_mb
        self._files: list[Path] = []
        self._listing_stamp: tuple[int, int] | None = None
        self.refresh()

    @property
    def save_new_trajs_to(self) -> TrajectoryStore | None:
        return self.store if self.accept_new_trajs else None

    def configure(self, *args: Any, **kwargs: Any) -> DiskTrajDataset:
        super().configure(*args, **kwargs)
        # Without edit rights (e.g. an async collector) bad files are skipped, never moved.
        self.store.can_move = self.has_edit_rights
        wanted = DEFAULT_CACHE_BYTES if self.dloader_workers == 0 else 0
        if self.cache_mb is None and self.store.cache.max_bytes != wanted:
            self.store.cache = TrajCache(wanted)  # a second configure() keeps a filled cache
        return self

    def expect(self, spec: TrajSpec | None) -> None:
        self.store.spec = spec

    @property
    def ready_for_training(self) -> bool:
        self.refresh_if_changed()  # two stat calls; keeps the answer current in every process
        if not self._files and self.store.skipped and not self.store.pending:
            self._raise_unusable()
        return self.configured and len(self._files) > self.dset_min_size

    def _raise_unusable(self) -> None:
        shown = "\n  ".join(f"{p}: {why}" for p, why in list(self.store.skipped.items())[:5])
        more = len(self.store.skipped) - 5
        raise UnusableStoreError(
            f"No usable trajectory file in {self.store.path}: all {len(self.store.skipped)} files are "
            f"unusable and could not be moved aside (read-only store or no edit rights):\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
            + "\nFix or remove these files (or move them to buffer/quarantine/), or point "
            "dset_root/dset_name at a valid dataset."
        )

    @property
    def num_files(self) -> int:
        return len(self._files)

    def _stamp(self) -> tuple[int, int]:
        # A directory's mtime changes when an entry is created, renamed in or deleted.
        return (os.stat(self.store.fifo_dir).st_mtime_ns, os.stat(self.store.protected_dir).st_mtime_ns)

    def refresh(self) -> None:
        self._listing_stamp = self._stamp()
        self._files = [p for p in self.store.files() if self.store.usable(p)]

    def refresh_if_changed(self) -> None:
        if self._stamp() != self._listing_stamp or self.store.pending_due():
            self.refresh()

    def sample_random_trajectory(self, rng: np.random.Generator | None = None) -> FrozenTraj:
        rng = rng if rng is not None else self._rng
        for attempt in range(2 * _LOAD_ATTEMPTS):
            if attempt == _LOAD_ATTEMPTS:
                self.refresh()
            if not self._files:
                break
            path = self._files[int(rng.integers(len(self._files)))]
            traj = self.store.load(path)
            if traj is not None:
                return self.relabeler(traj)
            self._files.remove(path)  # gone, quarantined, skipped or waiting: not drawn again
        raise BufferEmptyError(
            f"could not load any trajectory from {self.store.path} after {2 * _LOAD_ATTEMPTS} attempts "
            f"({len(self._files)} files listed); see buffer/quarantined"
        )

    def on_end_of_collection(self) -> dict[str, float]:
        if self.has_edit_rights and self.global_rank == 0:
            self.store.evict()
        self.refresh()
        stats = self.store.stats()
        return {
            "buffer/files": stats["files"],
            "buffer/fifo_files": stats["fifo_files"],
            "buffer/protected_files": stats["protected_files"],
            "buffer/timesteps": stats["timesteps"],
            "buffer/disk_mb": stats["bytes"] / 2**20,
            "buffer/evicted": stats["evicted"],
            "buffer/quarantined": stats["quarantined"],
        }

    def delete(self, delete_protected: bool = False) -> None:
        """Remove the buffer's FIFO files (and protected ones if asked)."""
        self.store.delete(delete_protected=delete_protected)
        self.refresh()

    def get_description(self) -> str:
        return (
            f"DiskTrajDataset '{self.dset_name}' at {self.store.path}: {len(self._files)} files "
            f"(max {self.dset_max_size} FIFO, ready above {self.dset_min_size})"
        )
