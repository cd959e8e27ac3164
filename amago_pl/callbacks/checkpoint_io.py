"""Crash-safe checkpoint files: ``AtomicCheckpointIO``, the Trainer's checkpoint writer.

Lightning saves through ``trainer.save_checkpoint -> strategy -> checkpoint_io``. Its default
writer stages the bytes in a temporary file chosen by fsspec (often in ``/tmp``, on another
filesystem, so the final move is a copy) and reports a full disk as a bare ``OSError``. This
writer instead:

- serialises the checkpoint in memory (as Lightning does) and stamps ``amago_pl_version``
  (:func:`amago_pl.modules.checkpoint.stamp_version`, where every checkpoint key is defined);
- writes ``.{name}.{host}.{pid}.tmp`` next to the final file, flushes and fsyncs it, then
  ``os.replace``s it over the final name: a reader (or a resumed run) sees the previous complete
  file or the new complete file, never a partial one, even if the process is killed mid-write;
- on ``OSError`` (typically ENOSPC) deletes the temporary file and raises
  ``CheckpointWriteError`` naming the path, the bytes needed and the bytes free;
- deletes temporary files left behind by a process of this host that no longer exists;
- reads with ``weights_only=True`` always (amago_pl checkpoints are plain data), refuses a
  pickled file with the conversion command
  (:class:`amago_pl.modules.checkpoint.PickledCheckpointError`), and checks the content like
  every other loader (:func:`amago_pl.modules.checkpoint.check_checkpoint_content`).

Remote paths (``s3://`` ...) fall back to Lightning's writer.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import pickle
import shutil
import socket
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

from amago_pl.modules.checkpoint import (
    PickledCheckpointError,
    check_checkpoint_content,
    pickled_checkpoint_message,
    stamp_version,
    unpickling_reason,
)

log = logging.getLogger(__name__)

_TEMP_SUFFIX = ".tmp"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. ENOSPC); the message names the path and sizes."""


def _host() -> str:
    return socket.gethostname().replace(".", "-") or "host"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}{_TEMP_SUFFIX}")


def _write_bytes(path: Path, data: bytes) -> None:
    """Write and fsync ``data`` to ``path`` (a separate function so tests can fail it)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(folder: Path) -> list[Path]:
    """Delete ``.*.{host}.{pid}.tmp`` files of this host whose writer process is gone."""
    removed = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(_TEMP_SUFFIX)):
            continue
        parts = name[: -len(_TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or parts[1] != host or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "checkpoint") -> None:
    """Write ``data`` to ``path`` through a same-folder temp file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_dead_temps(path.parent):
        log.info("removed %s left by a killed writer", stale)
    temp = _temp_path(path)
    try:
        _write_bytes(temp, data)
        os.replace(temp, path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        try:
            free = f"{shutil.disk_usage(path.parent).free} bytes free"
        except OSError:
            free = "free space unknown"
        reason = "disk full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise CheckpointWriteError(
            err.errno,
            f"could not write {what} {path} ({reason}): it needs {len(data)} bytes, {free} on {path.parent}. "
            "The previous checkpoints are untouched; free space (or move ckpt_dir) and resume from the last one.",
        ) from err
    _fsync_dir(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic, fsynced local writes and clear disk-full errors."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO does not take storage_options; pass a custom CheckpointIO to the Trainer"
            )
        stamp_version(checkpoint)
        if not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Always weights_only=True, whatever the caller passed (trainer.fit(weights_only=False)
        # included): amago_pl checkpoints are plain data, and unpickling runs whatever code a file
        # names. A trusted old pickled file goes through `amago-pl convert-checkpoint` once.
        if weights_only is False:
            log.info("weights_only=False ignored: %s is read as plain data (weights_only=True)", path)
        kwargs = {} if map_location is None else {"map_location": map_location}
        try:
            blob = super().load_checkpoint(path, weights_only=True, **kwargs)
        except pickle.UnpicklingError as err:
            raise PickledCheckpointError(pickled_checkpoint_message(path, unpickling_reason(err))) from None
        check_checkpoint_content(blob, path)  # hyperparameters and stored gin: plain and registered
        return blob


def with_atomic_checkpoints(plugins: Any) -> list[Any]:
    """The Trainer ``plugins`` argument plus ``AtomicCheckpointIO`` unless one CheckpointIO is given."""
    from lightning.fabric.plugins import CheckpointIO

    if plugins is None:
        plugins = []
    elif not isinstance(plugins, (list, tuple)):
        plugins = [plugins]
    plugins = list(plugins)
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins
