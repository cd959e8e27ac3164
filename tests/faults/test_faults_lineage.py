"""One run per run folder (issue 21, items 4 and 6): run names that leave the base folder are
refused; a second run in a live run's folder stops with the holder's pid, a dead run's lock is
taken over; a fresh run under an old name moves the old run's checkpoints aside, so "last" is the
newest run's; a redone epoch overwrites its checkpoint instead of forking ``epoch=N-v1.ckpt``."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from amago_pl.callbacks.run_folder import LOCK_NAME, RunFolderLockedError
from tests.faults.support import tiny_experiment

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/tmp/abs_run", "", "  ", ".", "a/./b"])
def test_run_names_outside_the_base_folder_are_refused(tmp_path: Path, name: str) -> None:
    base = tmp_path / "base"
    with pytest.raises(ValueError, match="run_name=") as err:
        tiny_experiment(base, run_name=name)
    assert "ckpt_base_dir" in str(err.value) or "empty" in str(err.value) or "spaces" in str(err.value)
    assert not (tmp_path / "x").exists()  # nothing written outside the base folder


def test_a_nested_run_name_is_fine(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path, run_name="sweep/run1")
    assert exp.run_dir == tmp_path / "sweep" / "run1"


def _lock(run_dir: Path, pid: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = f'{{"pid": {pid}, "host": "{socket.gethostname()}", "started": {time.time()}}}'
    (run_dir / LOCK_NAME).write_text(text)


def test_a_live_runs_folder_is_locked_and_a_dead_runs_lock_is_taken_over(tmp_path: Path, caplog) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "tiny", live.pid)
        exp = tiny_experiment(tmp_path, epochs=1)
        exp.start()
        with pytest.raises(RunFolderLockedError, match=f"held by process {live.pid} on host"):
            exp.learn()
        assert not (tmp_path / "tiny" / "ckpts").exists()  # stopped before writing anything
    finally:
        live.kill()
        live.wait()
    # The holder is gone now (a killed run): its lock is taken over with a warning.
    exp = tiny_experiment(tmp_path, epochs=1)
    exp.start()
    with caplog.at_level(logging.WARNING, logger="amago_pl.callbacks.run_folder"):
        exp.learn()
    assert f"left by process {live.pid} of this host, which no longer exists" in caplog.text
    assert (tmp_path / "tiny" / "ckpts" / "last.ckpt").exists()
    assert not (tmp_path / "tiny" / LOCK_NAME).exists()  # released at the end


def _step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


def test_a_fresh_run_under_an_old_name_starts_a_new_lineage(tmp_path: Path) -> None:
    ckpts = tmp_path / "tiny" / "ckpts"
    first = tiny_experiment(tmp_path, epochs=3)
    first.start()
    first.learn()
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == [
        "epoch=0.ckpt",
        "epoch=1.ckpt",
        "epoch=2.ckpt",
        "last.ckpt",
    ]
    second = tiny_experiment(tmp_path, epochs=1)  # a new fresh run, same name, shorter
    second.start()
    second.learn()
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["epoch=0.ckpt", "last.ckpt"]
    (earlier,) = (ckpts / "earlier_runs").iterdir()
    assert _step(earlier / "last.ckpt") == 9 and _step(ckpts / "last.ckpt") == 3
    # "last" now means the newest run: resuming it continues from its 3 steps, not the old 9.
    resumed = tiny_experiment(tmp_path, epochs=3)
    resumed.start()
    resumed.load_checkpoint("last")
    resumed.learn()
    assert _step(ckpts / "last.ckpt") == 9
    # A redone epoch (resume from epoch=0 while epoch=1 and 2 exist) overwrites, never forks.
    redo = tiny_experiment(tmp_path, epochs=2)
    redo.start()
    redo.load_checkpoint(0)
    redo.learn()
    names = sorted(p.name for p in ckpts.rglob("*.ckpt"))
    assert not [n for n in names if "-v" in n], names
    assert _step(ckpts / "epoch=1.ckpt") == 6 and os.path.getmtime(ckpts / "epoch=1.ckpt") > os.path.getmtime(
        ckpts / "epoch=2.ckpt"
    )
