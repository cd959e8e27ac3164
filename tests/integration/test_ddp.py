"""DDP on two CPU processes: both ranks collect into the shared store and train in lockstep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cli_support import subprocess_env

pytestmark = pytest.mark.integration


def test_ddp_two_cpu_ranks(tmp_path):
    script = Path(__file__).with_name("ddp_script.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["global_step"] == reports[1]["global_step"] == 2 * 5  # same batches per rank
    # Each rank collected with its own envs; the frame counter sums over ranks.
    assert reports[0]["local_frames"] == reports[1]["local_frames"] == 2 * 2 * 20
    assert reports[0]["total_frames"] == reports[1]["total_frames"] == 2 * 2 * 2 * 20
    # Validation episodes are gathered from both ranks.
    assert reports[0]["val_env_names"] == ["TMazeRank0", "TMazeRank1"]
    files = list((tmp_path / "ddp" / "buffer" / "fifo").glob("*.npz"))
    ranks = {f.name.split("_")[2] for f in files}
    assert {"n0r0", "n0r1"} <= {r[:4] for r in ranks}, sorted(f.name for f in files)[:5]
    assert any(f.name.startswith("TMazeRank0") for f in files) and any(
        f.name.startswith("TMazeRank1") for f in files
    )
    run = tmp_path / "ddp"
    assert (run / "config.txt").exists() and (run / "learning_curve.png").exists()
