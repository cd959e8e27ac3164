"""Every example script runs one tiny epoch (``--tiny``) end to end in a subprocess.

Examples owned by other tests (they have their own integration tests) are skipped here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TESTED_ELSEWHERE = {
    "async_collect_learn.py",
    "offline_to_online.py",
    "mazerunner_relabeling.py",
    "trainer_fit_script.py",
}
SCRIPTS = sorted(
    p.name for p in EXAMPLES.glob("*.py") if p.name not in TESTED_ELSEWHERE and not p.name.startswith("_")
)
NEEDS = {"03_popgym.py": "popgym"}


def test_every_example_is_covered():
    assert {
        "00_meta_frozen_lake.py",
        "01_basic_gym.py",
        "03_popgym.py",
        "04_tmaze.py",
        "05_dark_key_door.py",
        "13_mazerunner.py",
    } <= set(SCRIPTS)


def _env() -> dict[str, str]:
    env = dict(
        os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"
    )
    root = str(EXAMPLES.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_help(script):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "--tiny" in out.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_one_tiny_epoch(script, tmp_path):
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    cmd = [
        sys.executable,
        str(EXAMPLES / script),
        "--tiny",
        "--buffer_dir",
        str(tmp_path),
        "--run_name",
        "tiny",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, f"{script} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert (tmp_path / "tiny" / "ckpts" / "last.ckpt").exists()
    assert "Test average return" in out.stdout
