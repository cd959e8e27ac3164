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

from amago_pl.datamodules.npz import read_npz
from amago_pl.types import FrozenTraj

log = logging.getLogger(__name__)

SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
# A temp file older than this belongs to a writer that died mid-write; evict() removes it.
STALE_TEMP_SECONDS = 3600.0
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")


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
    """

    def __init__(self, path: str | os.PathLike, max_size: int | None = None) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self.fifo_dir = self.path / "fifo"
        self.protected_dir = self.path / "protected"
        self.quarantine_dir = self.path / "quarantine"
        for d in (self.fifo_dir, self.protected_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.evicted = 0  # files deleted by this process's evict() calls
        self.quarantined_here = 0  # files this process moved to quarantine
        self._warned = False

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.path)!r}, max_size={self.max_size})"

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
        arrays = traj.to_dict()
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
        """Read one file; None if it vanished (evicted meanwhile) or is unreadable.

        Unreadable files (truncated, corrupt, pickled objects, unknown keys or shapes) are moved
        to quarantine and counted, with one warning per process, so a dataloader worker never
        crashes on them and never samples them again.
        """
        path = Path(path)
        try:
            traj = FrozenTraj.from_dict(read_npz(path))
            _check_dtypes(traj)
            return traj
        except FileNotFoundError:
            return None  # another rank evicted it between listing and loading: not corruption
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as e:
            self._quarantine(path, e)
            return None

    def _quarantine(self, path: Path, error: BaseException) -> None:
        try:
            os.replace(path, self.quarantine_dir / path.name)
        except FileNotFoundError:
            return  # another worker quarantined it first
        except OSError:
            pass  # read-only store: still skip it, the count tells the user
        self.quarantined_here += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "Skipping unreadable trajectory file %s (%s: %s); moved to %s. Further files are "
                "counted in buffer/quarantined without a warning.",
                path,
                type(error).__name__,
                error,
                self.quarantine_dir,
            )

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
                with np.load(p, allow_pickle=False) as z:
                    lengths.append(len(z["rews"]))  # only this member is decompressed
            except Exception:  # an estimate only; load() deals with bad files properly
                continue
        if not lengths:
            return 0.0
        return float(np.mean(lengths)) * total_files


def _check_dtypes(traj: FrozenTraj) -> None:
    """Reject files whose arrays cannot be trajectory data (e.g. strings in a foreign npz)."""
    numeric = (traj.rl2s, traj.time_idxs, traj.rews, traj.dones, traj.actions)
    if not all(np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_ for a in numeric):
        raise TypeError("trajectory arrays must be numeric")
    if traj.rl2s.ndim != 2:
        raise ValueError(f"rl2s must be (T, 1 + A), got shape {traj.rl2s.shape}")
    if traj.action_is_index and not np.issubdtype(traj.actions.dtype, np.integer):
        raise TypeError("index actions must be integers")
