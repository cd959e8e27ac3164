"""One run per run folder: the run-name check, the folder lock and the checkpoint lineage.

Issue 21 items 4 and 6. ``Experiment(run_name=...)`` puts every file of a run under
``{ckpt_base_dir}/{run_name}``: a name such as ``../x`` or ``/abs`` would write outside the base
folder, and an empty one into the base folder itself (``check_run_name`` refuses them).

``RunFolderGuard`` (built by ``run.build.build_callbacks`` for every run that writes checkpoints):

- takes ``{run_dir}/run.lock`` (pid, host, start time) for the whole ``fit``. A second run in the
  same folder stops with an error naming the holder; a lock left by a process of this host that
  no longer exists is taken over with a warning. Async collectors (no checkpoints) take no lock.
- keeps one lineage in ``ckpts/``: a fresh run (no ``ckpt_path``) that finds another run's
  checkpoints there moves them to ``ckpts/earlier_runs/{time}/`` first (with a warning), so
  ``last.ckpt`` and ``load_checkpoint("last")`` always mean the newest run, and an epoch the new
  run writes never sits next to, or overwrites, the earlier run's file of that epoch.
  (A redone epoch of a resumed run overwrites ``epoch=N.ckpt`` in place:
  ``ModelCheckpoint(enable_version_counter=False)``, so no ``epoch=N-v1.ckpt`` appears.)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import lightning.pytorch as pl

from amago_pl.callbacks.checkpoint_io import _pid_alive  # one liveness test for locks and temp files

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
EARLIER = "earlier_runs"


class RunFolderLockedError(RuntimeError):
    """Another live run holds the run folder's lock."""


def check_run_name(run_name: Any, base: Any = None) -> None:
    """Refuse a run name that is empty, absolute, or climbs out of ``base`` (``..``), naming it."""
    fix = "Use a plain folder name such as 'tmaze_run1' (subfolders like 'sweep/run1' are fine)."
    if not isinstance(run_name, str) or not run_name.strip():
        raise ValueError(
            f"run_name={run_name!r} is empty: every file of the run would land in {base!r}. {fix}"
        )
    if "\0" in run_name or run_name != run_name.strip():
        raise ValueError(f"run_name={run_name!r} has a NUL byte or leading/trailing spaces. {fix}")
    if (
        PurePosixPath(run_name).is_absolute()
        or PureWindowsPath(run_name).is_absolute()
        or run_name[:1] in "/\\"
    ):
        raise ValueError(
            f"run_name={run_name!r} is an absolute path: the run would be written there instead of under "
            f"ckpt_base_dir={base!r}. {fix} (To write elsewhere, change ckpt_base_dir.)"
        )
    parts = run_name.replace("\\", "/").split("/")
    if any(p in ("..", ".") for p in parts):
        raise ValueError(
            f"run_name={run_name!r} contains '..' or '.': the run folder would not be a folder of its own "
            f"under ckpt_base_dir={base!r}. {fix}"
        )


class RunFolderGuard(pl.Callback):
    """See the module doc. ``run_dir``: the run folder; ``ckpt_dir``: its checkpoint folder."""

    def __init__(self, run_dir: str | os.PathLike, ckpt_dir: str | os.PathLike):
        self.run_dir, self.ckpt_dir = Path(run_dir), Path(ckpt_dir)
        self._held = False

    @property
    def lock_path(self) -> Path:
        return self.run_dir / LOCK_NAME

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        error = ""
        if trainer.global_rank == 0:
            try:
                self.acquire()
            except (RunFolderLockedError, OSError) as err:
                error = f"{type(err).__name__}: {err}"
        if trainer.world_size > 1:
            error = trainer.strategy.broadcast(error, src=0)  # every rank stops, none waits
        if error:
            raise RunFolderLockedError(error.split(": ", 1)[1] if ": " in error else error)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, not in setup: Lightning sets trainer.ckpt_path only when it reads the checkpoint
        # (after setup, before on_fit_start; trainer.py _run, Lightning 2.6).
        if trainer.global_rank == 0 and trainer.ckpt_path is None:
            self.archive_earlier_run()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.release()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.release()  # Lightning skips the teardown hooks when fit ends in an exception

    # ------------------------------------------------------------------ lock
    def _record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._record(), f)
            self._held = True
            return
        raise RunFolderLockedError(f"could not take {self.lock_path}: another run keeps creating it")

    def _handle_existing(self) -> None:
        try:
            holder = json.loads(self.lock_path.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except (OSError, ValueError, KeyError, TypeError):
            holder, pid, host = {}, -1, ""
        if pid == os.getpid() and host == socket.gethostname():
            self.lock_path.unlink(missing_ok=True)  # our own (a second fit in this process)
            return
        if host == socket.gethostname() and pid > 0 and not _pid_alive(pid):
            log.warning(
                "taking over %s: it was left by process %d of this host, which no longer exists "
                "(a killed run)",
                self.lock_path,
                pid,
            )
            self.lock_path.unlink(missing_ok=True)
            return
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
        who = f"process {pid} on host {host or '?'} (since {since})" if pid > 0 else "an unreadable lock"
        raise RunFolderLockedError(
            f"another run is using the run folder {self.run_dir}: {self.lock_path} is held by {who}. "
            "Two runs in one folder would overwrite each other's checkpoints and logs. Give this run "
            "another run_name (or run_dir), or wait for that run to end. If you are sure no such run "
            f"is alive (e.g. its host went down), delete {self.lock_path}."
        )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            holder = json.loads(self.lock_path.read_text())
            if int(holder.get("pid", -1)) == os.getpid():
                self.lock_path.unlink()
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ lineage
    def archive_earlier_run(self) -> Path | None:
        """Move an earlier run's checkpoints out of ``ckpts/`` (a fresh run starts a new lineage)."""
        if not self.ckpt_dir.is_dir():
            return None
        old = sorted(p for p in self.ckpt_dir.iterdir() if p.is_file() and p.suffix == ".ckpt")
        if not old:
            return None
        dest = self.ckpt_dir / EARLIER / time.strftime("%Y%m%d-%H%M%S")
        n = 0
        while dest.exists():
            n += 1
            dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
        dest.mkdir(parents=True)
        for path in old:
            shutil.move(str(path), dest / path.name)
        log.warning(
            "%s held checkpoints of an earlier run (%s); this fresh run starts a new lineage, so they "
            "were moved to %s. To continue the earlier run instead, resume it (ckpt_path / "
            "Experiment.load_checkpoint) from there.",
            self.ckpt_dir,
            ", ".join(p.name for p in old[:5]) + (" ..." if len(old) > 5 else ""),
            dest,
        )
        return dest
