"""SIGTERM (preemption) writes a checkpoint and exits non-zero; the resumed run ends with the
counters of an uninterrupted one (issue 21, item 14 and Deliver 2). From an ``Experiment`` script
and from the ``amago-pl`` CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from amago_pl.callbacks.preemption import EXIT_STATUS
from tests.faults.resume_support import distinct_sequences, trajectory_files
from tests.integration.cli_support import REPO, cli_command, rollout_state, subprocess_env, write_configs

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("resume_script.py")


def _script(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root), "experiment", *args],
        capture_output=True, text=True, timeout=240, env=subprocess_env(),
    )  # fmt: skip


def _counters(ckpt: Path) -> dict:
    blob = torch.load(ckpt, weights_only=True)
    roll = rollout_state(blob)
    return {
        "epoch": blob["epoch"],
        "global_step": blob["global_step"],
        "total_frames": roll["total_frames"],
        "collected_epochs": roll["collected_epochs"],
        "exploration_steps": roll["exploration"]["steps"],
        "lr_last_epoch": blob["lr_schedulers"][0]["last_epoch"],
        "optimizer_step": max(int(s["step"]) for s in blob["optimizer_states"][0]["state"].values()),
    }


def test_sigterm_in_an_experiment_script_saves_exits_143_and_resumes_exactly(tmp_path: Path) -> None:
    plain, stopped = tmp_path / "plain", tmp_path / "stopped"
    out = _script(plain, "3")
    assert out.returncode == 0, out.stderr[-3000:]
    out = _script(stopped, "3", "--sigterm-at-step", "4")  # mid-epoch 1 (3 batches per epoch)
    assert out.returncode == EXIT_STATUS == 143, out.stderr[-3000:]
    assert "SIGTERM received: saved" in out.stderr
    assert "`weights_only` was not set" not in out.stderr  # Lightning's note on a full save
    last = stopped / "run" / "ckpts" / "last.ckpt"
    assert _counters(last)["global_step"] == 4
    out = _script(stopped, "3", "--resume")
    assert out.returncode == 0, out.stderr[-3000:]
    assert _counters(last) == _counters(plain / "run" / "ckpts" / "last.ckpt")
    files = trajectory_files(stopped / "store" / "buffer")
    assert distinct_sequences(files) == len(files)


def test_sigterm_from_the_cli_saves_and_exits_143(tmp_path: Path) -> None:
    yaml_path, gin_path = write_configs(tmp_path, epochs=200, batches=2)
    ckpt_dir = tmp_path / "cli" / "ckpts"
    proc = subprocess.Popen(
        cli_command("fit", "--config", str(yaml_path), "--gin", str(gin_path)),
        env=subprocess_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not (ckpt_dir / "epoch=1.ckpt").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run never reached epoch 1"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STATUS, err[-3000:]
    assert "SIGTERM received: saved" in err
    assert "`weights_only` was not set" not in err
    stopped = _counters(ckpt_dir / "last.ckpt")
    assert stopped["global_step"] >= 2 * 2  # at least epochs 0 and 1
    # Resumed to the end of the next epoch: every counter continues from the saved batch.
    end = stopped["epoch"] + 2
    out = subprocess.run(
        cli_command("fit", "--config", str(yaml_path), "--gin", str(gin_path), "--ckpt_path", "last",
                    "--trainer.max_epochs", str(end)),
        capture_output=True, text=True, timeout=240, env=subprocess_env(), cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    after = _counters(ckpt_dir / "last.ckpt")
    assert (after["epoch"], after["global_step"]) == (end - 1, end * 2)
    assert after["collected_epochs"] == list(range(end))
