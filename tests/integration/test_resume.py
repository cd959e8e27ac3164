"""Kill a CLI run with SIGKILL mid-epoch, resume with ckpt_path=last: nothing reset, lost or doubled."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.integration.cli_support import (
    REPO,
    cli_command,
    load_ckpt,
    rollout_state,
    run_cli,
    subprocess_env,
    write_configs,
)

pytestmark = pytest.mark.integration


def _store_digests(run_root):
    """Files and content digests; a whole episode (it starts at t=0 and ends terminated) gets its
    file name folded into the digest.

    In this T-Maze of corridor 3 two actors can play the same whole 4-step episode (measured: two
    files 0.3 s apart, both actions 0, 3, 1, 2 and rewards 0), which is data, not a double write.
    A double write or a replayed stream also repeats pieces of episodes, which keep plain digests.
    """
    files = sorted((run_root / "cli" / "buffer").rglob("*.npz"))
    digests = []
    for f in files:
        with np.load(f, allow_pickle=False) as data:  # every file must be complete and readable
            assert "rl2s" in data.files
            whole = int(data["time_idxs"].ravel()[0]) == 0 and bool(data["dones"].ravel()[-1])
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        digests.append(f"{digest}:{f.name}" if whole else digest)
    return files, digests


def test_sigkill_then_resume_last(tmp_path):
    yaml_path, gin_path = write_configs(tmp_path, epochs=200, batches=20)
    ckpt_dir = tmp_path / "cli" / "ckpts"
    proc = subprocess.Popen(
        cli_command("fit", "--config", str(yaml_path), "--gin", str(gin_path)),
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (ckpt_dir / "epoch=2.ckpt").exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the run never reached epoch 2"
            time.sleep(0.2)
        time.sleep(1.0)  # now mid-epoch (or writing the next checkpoint)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert not list(ckpt_dir.glob(".*")) or all(p.suffix != ".ckpt" for p in ckpt_dir.glob(".*"))
    before = load_ckpt(ckpt_dir / "last.ckpt")
    files_before, digests_before = _store_digests(tmp_path)
    assert len(set(digests_before)) == len(digests_before), "a trajectory was stored twice"
    roll = rollout_state(before)
    epoch, step = before["epoch"], before["global_step"]

    probe_out = tmp_path / "probe.txt"
    probe = {
        "class_path": "tests.integration.cli_support.ResumeProbe",
        "init_args": {"ckpt": str(ckpt_dir / "last.ckpt"), "out": str(probe_out)},
    }
    extra_epochs = 2
    done = run_cli(
        "fit",
        "--config",
        str(yaml_path),
        "--gin",
        str(gin_path),
        "--trainer.max_epochs",
        str(epoch + 1 + extra_epochs),
        f"--trainer.callbacks+={json.dumps(probe)}",
        "--ckpt_path",
        "last",
    )
    assert done.returncode == 0, done.stderr[-3000:]

    same_weights, same_sched, opt_steps, start_step = probe_out.read_text().split()
    assert same_weights == "True" and same_sched == "True"
    assert int(start_step) == step and int(opt_steps) == step  # optimizer state restored, not reset

    after = load_ckpt(ckpt_dir / "last.ckpt")
    assert after["epoch"] == epoch + extra_epochs
    assert after["global_step"] == step + extra_epochs * 20
    roll_after = rollout_state(after)
    assert roll_after["total_frames"] == roll["total_frames"] + extra_epochs * 2 * 6  # frames continue
    assert (
        roll_after["exploration"]["steps"] == roll["exploration"]["steps"] + extra_epochs * 6
    )  # epsilon not reset
    assert (
        after["lr_schedulers"][0]["last_epoch"]
        == before["lr_schedulers"][0]["last_epoch"] + extra_epochs * 20
    )

    files_after, digests_after = _store_digests(tmp_path)
    assert len(set(digests_after)) == len(digests_after)
    assert {f.name for f in files_before} <= {f.name for f in files_after}  # nothing lost
