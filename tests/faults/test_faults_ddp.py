"""Two-rank CPU DDP with a fault on rank 1: a crash ends every rank with an error in bounded time
(no hang); a NaN loss on one rank makes both ranks skip the same steps and stay identical."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli_support import subprocess_env

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("ddp_faults_script.py")


def _run(tmp_path: Path, mode: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
    )
    return proc, time.monotonic() - start


def test_one_rank_crashing_ends_all_ranks(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, "crash", timeout=240)  # a hang would hit the timeout (TimeoutExpired)
    assert proc.returncode != 0
    assert "FaultyTMaze: simulated crash in step" in proc.stderr  # rank 1's own traceback is shown
    assert "failed again within its failure window" in proc.stderr
    assert not list(tmp_path.glob("rank*.json"))  # neither rank finished normally


def test_nonfinite_loss_on_one_rank_is_skipped_on_all(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, "nan", timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["global_step"] == reports[1]["global_step"] == 3 * 3
    assert reports[0]["skipped_steps"] == reports[1]["skipped_steps"] == 2
    assert reports[0]["weights"] == reports[1]["weights"] and reports[0]["finite"]
