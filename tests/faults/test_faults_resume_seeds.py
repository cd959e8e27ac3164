"""Resumed runs collect new data (issue 21, item 1 and Deliver 2).

A run is SIGKILLed in the middle of the collection that follows checkpoint N, after it stored some
of that epoch's trajectories, then resumed from the same checkpoint and killed the same way again,
then resumed to the end. Exact RNG restore alone would make each resume write byte-identical copies
of the killed launch's trajectories; with a launch number folded into every seed, every stored
file holds a sequence no other file holds. Also under two-rank DDP (no duplicate across ranks or
launches). The envs are ``ScriptedEnv``s, whose observations carry a draw from the env's seeded RNG.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.faults.resume_support import distinct_sequences, trajectory_files
from tests.integration.cli_support import rollout_state, subprocess_env

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("resume_script.py")


def launch(root: Path, kind: str, epochs: int, *extra: str, timeout: float = 240) -> int:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(root), kind, str(epochs), *extra],
        capture_output=True, text=True, timeout=timeout, env=subprocess_env(),
        start_new_session=True,  # a DDP kill takes the launch's process group, never pytest's
    )  # fmt: skip
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-4000:])
    return proc.returncode


def ledger_launches(root: Path) -> list[int]:
    lines = (root / "store" / "buffer" / "launches.txt").read_text().splitlines()
    return [int(line.split()[0]) for line in lines]


def check_no_replay(root: Path) -> list[Path]:
    files = trajectory_files(root / "store" / "buffer")
    assert len(files) > 10
    assert distinct_sequences(files) == len(files), (
        f"{len(files) - distinct_sequences(files)} of {len(files)} stored files repeat another file's "
        "observations and rewards: a resumed launch replayed an earlier launch's seeds"
    )
    return files


def test_two_kills_mid_collection_then_resume_store_no_sequence_twice(tmp_path: Path) -> None:
    kill = ("--kill-after-ckpt", "1", "--kill-files", "2")
    assert launch(tmp_path, "experiment", 5, *kill) == -signal.SIGKILL
    after_first = len(trajectory_files(tmp_path / "store" / "buffer"))
    # Resumed from epoch=1.ckpt and killed at the same point: the same checkpoint twice.
    assert launch(tmp_path, "experiment", 5, "--resume", *kill) == -signal.SIGKILL
    assert len(trajectory_files(tmp_path / "store" / "buffer")) >= after_first + 2
    assert launch(tmp_path, "experiment", 4, "--resume") == 0
    files = check_no_replay(tmp_path)
    assert ledger_launches(tmp_path) == [0, 1, 2]  # the fresh launch, then each resume
    last = torch.load(tmp_path / "run" / "ckpts" / "last.ckpt", weights_only=True)
    assert rollout_state(last)["launch"] == 2
    # Counters as in an uninterrupted 4-epoch run: 4 epochs x 3 batches, 4 x 8 steps x 2 actors.
    assert (last["epoch"], last["global_step"]) == (3, 12)
    assert rollout_state(last)["total_frames"] == 4 * 8 * 2
    assert json.loads((tmp_path / "report_rank0.json").read_text())["global_step"] == 12
    assert len(files) > after_first


def test_two_rank_ddp_resume_stores_no_sequence_twice(tmp_path: Path) -> None:
    assert launch(tmp_path, "ddp", 4, "--kill-after-ckpt", "1", "--kill-files", "2") == -signal.SIGKILL
    assert launch(tmp_path, "ddp", 3, "--resume") == 0
    files = check_no_replay(tmp_path)
    # File names carry n{node}r{rank}p{pid}: both ranks of both launches stored data, none shared.
    writers = {f.name.rsplit("_", 2)[-2] for f in files}
    assert {w.split("p")[0] for w in writers} == {"n0r0", "n0r1"} and len(writers) == 4, writers
    assert ledger_launches(tmp_path) == [0, 1]
    reports = [json.loads((tmp_path / f"report_rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["global_step"] == reports[1]["global_step"] == 3 * 3


def test_a_fresh_run_again_under_the_same_name_and_seed_stores_new_episodes(tmp_path: Path) -> None:
    """Starting a run again from scratch (same name, same seed) reuses its store, as the original
    does; it must add new episodes to it, not copies of the first run's."""
    assert launch(tmp_path, "experiment", 2) == 0
    first = len(trajectory_files(tmp_path / "store" / "buffer"))
    assert launch(tmp_path, "experiment", 2) == 0
    files = check_no_replay(tmp_path)
    assert len(files) > first
    assert ledger_launches(tmp_path) == [0, 1]
