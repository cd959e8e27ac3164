"""The on-disk trajectory store: one ``.npz`` file per trajectory piece, written atomically.

Layout (``path`` is ``{dset_root}/{dset_name}/buffer``)::

    path/fifo/         files written during training; the oldest are evicted beyond ``max_size``
    path/protected/    files that are never evicted (offline data, demonstrations)
    path/quarantine/   files that could not be read; moved here so they are never sampled again

Many processes share one store (DDP ranks, dataloader workers, env collectors), so every
operation is written for concurrent use: a file becomes visible only through ``os.replace`` of a
fully written and fsynced temporary dot-file, readers tolerate files that vanish between listing
and loading (another rank evicted them), and nothing here ever unpickles.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from amago_pl.datamodules.file_checks import TrajSpec, check_traj
from amago_pl.datamodules.npz import DEFAULT_MAX_BYTES, TrajectoryFileError, read_npz
from amago_pl.datamodules.rl2_compact import compact_rl2s, expand_rl2s
from amago_pl.datamodules.traj_cache import TrajCache, cache_key
from amago_pl.types import FrozenTraj

log = logging.getLogger(__name__)

SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
# A temp file older than this belongs to a writer that died mid-write; evict() removes it.
STALE_TEMP_SECONDS = 3600.0
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")
_MAX_REPORTS = 20  # per process: one warning per unusable file up to this many
# Per process (rank, loader worker); DiskTrajDataset's cache_mb sets it (traj_cache.py says why).
DEFAULT_CACHE_BYTES = 64 * 2**20


class UnusableStoreError(RuntimeError):
    """Every trajectory file is unusable and none could be moved aside: training cannot start."""


class StoreWriteError(OSError):
    """A trajectory could not be written (typically ENOSPC); the message names path and size."""


def _process_token() -> str:
    """``n{node}r{rank}p{pid}``: unique across DDP ranks, nodes and processes on one host."""
    node = os.environ.get("NODE_RANK", "0")
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    return f"n{node}r{rank}p{os.getpid()}"


def _clean_env_name(env_name: str) -> str:
    # "_" separates the name fields and "/" would create folders (e.g. "ALE/Pong-v5"); a leading
    # "." would make the file look like a temp file and hide it.
    name = _NAME_UNSAFE.sub("", env_name).lstrip(".")
    return name or "env"


def _all_files(folder: Path) -> list[Path]:
    """Every regular file of ``folder`` (quarantine holds foreign names too)."""
    try:
        with os.scandir(folder) as it:
            return [Path(e.path) for e in it if e.is_file()]
    except FileNotFoundError:
        return []


def file_time_ns(path: Path) -> int:
    """Write time encoded in a store file name (0 for names that do not follow the scheme)."""
    parts = path.name.split("_")
    if len(parts) >= 4 and parts[1].isdigit():
        return int(parts[1])
    return 0


def _sort_key(path: Path) -> tuple[int, str]:
    return file_time_ns(path), path.name


class TrajectoryStore:
    """Atomic, crash-safe storage of `FrozenTraj` files with FIFO eviction and quarantine.

    Args:
        path: the buffer folder (``{dset_root}/{dset_name}/buffer``); created if missing.
        max_size: maximum number of FIFO files kept by `evict` (protected files do not count and
            are never deleted). None keeps everything.
        cache_bytes: bytes of checked trajectories this process keeps in memory to serve repeated
            draws of a file (``traj_cache.TrajCache``; 0: read every draw from disk).
    """

    # A file that fails to load within this many seconds of its last change may be a copy still
    # in progress (``cp`` writes in place, unlike the store's own atomic renames): it is retried
    # instead of quarantined (issue 21 item 3).
    settle_seconds: float = 10.0

    def __init__(
        self, path: str | os.PathLike, max_size: int | None = None, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self.fifo_dir = self.path / "fifo"
        self.protected_dir = self.path / "protected"
        self.quarantine_dir = self.path / "quarantine"
        for d in (self.fifo_dir, self.protected_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.evicted = 0  # files deleted by this process's evict() calls
        self.quarantined_here = 0  # files this process moved to quarantine
        self.cache = TrajCache(cache_bytes)
        self._spec: TrajSpec | None = None
        self.max_file_bytes: int | None = DEFAULT_MAX_BYTES  # larger files are refused unread
        self.can_move = True  # False: bad files are skipped in place (no edit rights)
        self.skipped: dict[Path, str] = {}  # bad files kept in place: path -> reason
        self.pending: dict[Path, float] = {}  # failed while maybe being written: path -> retry time
        self._reported = 0

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.path)!r}, max_size={self.max_size})"

    @property
    def spec(self) -> TrajSpec | None:
        """What the run's agent expects of a file (set by the dataset); None checks structure only."""
        return self._spec

    @spec.setter
    def spec(self, spec: TrajSpec | None) -> None:
        if spec != self._spec:
            self.cache.clear()  # entries were checked against the previous spec
        self._spec = spec

    # ------------------------------------------------------------------ writing
    def write(
        self, traj: FrozenTraj, env_name: str, compressed: bool = False, protected: bool = False
    ) -> Path:
        """Write ``traj`` atomically and return its final path.

        The data goes to a temporary dot-file in the destination folder (same filesystem, so the
        rename is atomic), is flushed and fsynced, then renamed. A crash at any point leaves at
        most an invisible temp file, never a partial ``.npz``.
        """
        folder = self.protected_dir if protected else self.fifo_dir
        name = (
            f"{_clean_env_name(env_name)}_{time.time_ns()}_{_process_token()}_{uuid.uuid4().hex[:8]}{SUFFIX}"
        )
        final = folder / name
        temp = folder / f".{name}{TEMP_SUFFIX}"
        arrays = compact_rl2s(traj.to_dict(), traj.action_is_index)
        save = np.savez_compressed if compressed else np.savez
        try:
            with open(temp, "wb") as f:
                save(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except OSError as e:
            try:
                temp.unlink()
            except FileNotFoundError:
                pass
            needed = sum(int(np.asarray(v).nbytes) for v in arrays.values())
            reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise StoreWriteError(
                e.errno,
                f"could not write trajectory file {final} ({reason}); it needs about {needed} bytes "
                f"(uncompressed) on {folder}",
            ) from e
        return final

    # ------------------------------------------------------------------ reading
    def files(self, include_protected: bool = True) -> list[Path]:
        """Final ``.npz`` files, oldest first. Temp files (dot-names) are never listed."""
        dirs = [self.fifo_dir, self.protected_dir] if include_protected else [self.fifo_dir]
        out = [p for d in dirs for p in self._list(d)]
        out.sort(key=_sort_key)
        return out

    @staticmethod
    def _list(folder: Path) -> list[Path]:
        try:
            with os.scandir(folder) as it:
                return [
                    Path(e.path)
                    for e in it
                    if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()
                ]
        except FileNotFoundError:
            return []

    def load(self, path: str | os.PathLike) -> FrozenTraj | None:
        """Read and check one file; None if it vanished (evicted meanwhile) or is unusable.

        Unusable files (truncated, corrupt, zip bombs, pickles, missing keys, shapes or action
        indices that do not fit the run's `spec`) are named with the reason in a warning and moved
        to quarantine, so a dataloader worker never crashes on them and a resumed run never meets
        them again. Two exceptions keep good data: a file modified less than ``settle_seconds``
        ago (or during the read) may still be being copied in (``cp`` is not atomic), so it is
        only set aside and retried later; and a store this process may not edit (no edit rights,
        read-only folder) keeps the file in place and skips it for the rest of the run.
        """
        path = Path(path)
        before: os.stat_result | None = None
        try:
            before = os.stat(path)
            key = cache_key(path, before)
            traj = self.cache.get(key)
            if traj is not None:
                return traj
            arrays = expand_rl2s(read_npz(path, self.max_file_bytes), self.max_file_bytes)
            traj = FrozenTraj.from_dict(arrays)
            check_traj(traj, self.spec)
        except FileNotFoundError:
            return None  # another rank evicted it between listing and loading: not corruption
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, MemoryError) as e:
            self._reject(path, before, e)
            return None
        self.pending.pop(path, None)
        self.cache.put(key, traj)
        return traj

    def usable(self, path: Path) -> bool:
        """False for files skipped for this run and for files waiting to settle."""
        if path in self.skipped:
            return False
        retry_at = self.pending.get(path)
        return retry_at is None or time.time() >= retry_at

    def pending_due(self) -> bool:
        """Whether a file set aside as possibly incomplete may be retried now."""
        now = time.time()
        return any(t <= now for t in self.pending.values())

    def _reject(self, path: Path, before: os.stat_result | None, error: BaseException) -> None:
        reason = _describe(error)
        try:
            after = os.stat(path)
        except FileNotFoundError:
            return  # another worker quarantined or evicted it first
        changed = before is None or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)
        now = time.time()
        if changed or now - after.st_mtime < self.settle_seconds:
            # Possibly still being written: retry once it has been quiet for settle_seconds.
            self.pending[path] = max(after.st_mtime, now if changed else 0.0) + self.settle_seconds
            return
        self.pending.pop(path, None)
        where = "left in place and skipped for this run"
        if isinstance(error, PermissionError) or not self.can_move:
            why = "this process may not edit the store" if not self.can_move else "it cannot be read"
            self.skipped[path] = reason
            self._report(path, reason, f"{where} ({why})")
            return
        try:
            os.replace(path, self.quarantine_dir / path.name)
        except FileNotFoundError:
            return
        except OSError as e:  # a read-only folder
            self.skipped[path] = reason
            self._report(path, reason, f"{where} (it could not be moved aside: {e.strerror or e})")
            return
        self.quarantined_here += 1
        self._report(path, reason, f"moved to {self.quarantine_dir} (move it back once fixed)")

    def _report(self, path: Path, reason: str, action: str) -> None:
        self._reported += 1
        if self._reported <= _MAX_REPORTS:
            log.warning("Unusable trajectory file %s: %s; %s.", path, reason, action)
        if self._reported == _MAX_REPORTS:
            log.warning("Further unusable files are counted in buffer/quarantined without a warning.")

    def _quarantine(self, path: Path, error: BaseException) -> None:
        """Move a file the store did not write out of the FIFO folder (see `evict`)."""
        try:
            os.replace(path, self.quarantine_dir / path.name)
        except OSError:
            return  # gone already, or a read-only store: it is never read anyway (not .npz)
        self.quarantined_here += 1
        self._report(path, _describe(error), f"moved to {self.quarantine_dir}")

    # ----------------------------------------------------------------- eviction
    def evict(self) -> int:
        """Delete the oldest FIFO files beyond ``max_size``; returns how many were deleted.

        Protected files are never touched. Also removes temp files left by writers that died
        more than an hour ago. Call from one process only (global rank 0).
        """
        self._remove_stale_temps()
        self._quarantine_foreign_files()
        if self.max_size is None:
            return 0
        fifo = self.files(include_protected=False)
        excess = len(fifo) - self.max_size
        deleted = 0
        for p in fifo[: max(excess, 0)]:
            try:
                p.unlink()
                deleted += 1
            except FileNotFoundError:
                pass
        self.evicted += deleted
        return deleted

    def _quarantine_foreign_files(self) -> None:
        """Move files the store did not write (any non-``.npz`` name in fifo/) aside and count them.

        Only the FIFO folder: protected/ belongs to the user, who may keep notes next to the data.
        """
        try:
            entries = list(os.scandir(self.fifo_dir))
        except FileNotFoundError:
            return
        for e in entries:
            if e.name.startswith(".") or e.name.endswith(SUFFIX) or not e.is_file():
                continue
            self._quarantine(Path(e.path), ValueError("not a trajectory file written by the store"))

    def _remove_stale_temps(self) -> None:
        now = time.time()
        for folder in (self.fifo_dir, self.protected_dir):
            with os.scandir(folder) as it:
                for e in it:
                    if not (e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)):
                        continue
                    try:
                        if now - e.stat().st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(e.path)
                    except FileNotFoundError:
                        pass

    def delete(self, delete_protected: bool = False) -> None:
        """Remove all FIFO files (and protected ones if asked); the folders stay."""
        for p in self.files(include_protected=delete_protected):
            p.unlink(missing_ok=True)

    # -------------------------------------------------------------------- stats
    def stats(self, timestep_sample: int = 8) -> dict[str, float]:
        """Counts for logging. ``timesteps`` extrapolates from the newest few files' lengths."""
        fifo = self.files(include_protected=False)
        protected = self._list(self.protected_dir)
        quarantined = _all_files(self.quarantine_dir)
        all_files = fifo + protected
        n_bytes = 0
        for p in all_files:
            try:
                n_bytes += p.stat().st_size
            except FileNotFoundError:
                pass
        return {
            "files": float(len(all_files)),
            "fifo_files": float(len(fifo)),
            "protected_files": float(len(protected)),
            "timesteps": float(
                self._estimate_timesteps(
                    fifo[-timestep_sample:] + protected[:timestep_sample], len(all_files)
                )
            ),
            "bytes": float(n_bytes),
            "evicted": float(self.evicted),
            "quarantined": float(len(quarantined)),
        }

    @staticmethod
    def _estimate_timesteps(sample: list[Path], total_files: int) -> float:
        lengths = []
        for p in sample:
            try:
                # Read from the zip directory only (nothing is decompressed, so a zip bomb costs
                # nothing here): rews holds T-1 float32 values after numpy's 128-byte header.
                with zipfile.ZipFile(p) as zf:
                    size = zf.getinfo("rews.npy").file_size
                lengths.append(max(size - 128, 0) // 4)
            except Exception:  # an estimate only; load() deals with bad files properly
                continue
        if not lengths:
            return 0.0
        return float(np.mean(lengths)) * total_files


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"missing array {error}"
    if isinstance(error, TrajectoryFileError):
        return str(error)
    return f"{type(error).__name__}: {error}"
