"""Async learner + collector processes, and the offline / relabeling examples as smoke runs."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amago_pl.datamodules import TrajectoryStore
from tests.integration.helpers import read_metrics

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # One intra-op thread per process: several processes share the 2 test cores, and torch's
    # thread pools fighting over them make tiny nets tens of times slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_learner_and_collector_processes(tmp_path: Path) -> None:
    max_files = 6  # small, so the learner has to evict what the collector keeps writing
    proc = run_example(
        "async_collect_learn.py",
        "--run_name", "async",
        "--buffer_dir", str(tmp_path),
        "--launch", "1",
        "--tiny",
        "--dset_max_size", str(max_files),
        timeout=400,
    )  # fmt: skip
    run_dir = tmp_path / "async"
    logs = {p.stem: p.read_text() for p in (run_dir / "process_logs").glob("*.log")}
    detail = f"{proc.stdout}\n{proc.stderr}\n" + "\n".join(f"--- {k}\n{v[-3000:]}" for k, v in logs.items())
    assert proc.returncode == 0, detail
    assert set(logs) == {"learner", "collector0"}, detail

    # The learner started on an empty store: it waited for the collector's files and still ran
    # every gradient step (3 tiny epochs of 10 batches), rather than skipping empty epochs.
    assert "[learner] done after 30 gradient steps" in logs["learner"], detail
    policy = torch.load(run_dir / "ckpts" / "latest" / "policy.pt", weights_only=True)
    assert policy["version"] == 30

    # The collector reloaded the learner's file each epoch: its version only moves forward and
    # took at least two values besides "no policy yet".
    versions = [
        None if v == "None" else int(v) for v in re.findall(r"policy version (\w+)", logs["collector0"])
    ]
    seen = [v for v in versions if v is not None]
    assert versions[len(versions) - len(seen) :] == seen, "no policy only before the learner's first file"
    assert seen == sorted(seen) and len(set(seen)) >= 2, versions
    assert not list((run_dir / "ckpts").glob("last-v*.ckpt")), "a collector must not write checkpoints"

    # Nothing partial was ever read: no quarantined files, no temp files left, every file loads.
    store = TrajectoryStore(run_dir / "buffer")
    assert not list(store.quarantine_dir.iterdir())
    assert not [p for p in store.fifo_dir.iterdir() if p.name.startswith(".")]
    assert all(store.load(p) is not None for p in store.files())
    assert "unreadable" not in logs["learner"] + logs["collector0"]

    # Only the learner evicts (the collector has no edit rights); the collector logs its policy version.
    learner_rows = rows_of(run_dir, "version_*")
    collector_rows = rows_of(run_dir, "collector_*")
    assert max(float(r["buffer/evicted"]) for r in learner_rows if r.get("buffer/evicted")) > 0
    assert all(float(r["buffer/evicted"]) == 0 for r in collector_rows if r.get("buffer/evicted"))
    assert any(r.get("async/policy_version") for r in collector_rows)


def rows_of(run_dir: Path, pattern: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((run_dir / "logs").glob(f"{pattern}/metrics.csv")):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


def test_offline_to_online_example_tiny(tmp_path: Path) -> None:
    proc = run_example("offline_to_online.py", "--tiny", "--buffer_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Offline dataset written" in proc.stdout and "Final test return" in proc.stdout
    run_dir = tmp_path / "tmaze_offline_to_online"
    offline = TrajectoryStore(tmp_path / "tmaze_offline_to_online_offline" / "buffer")
    assert len(list(offline.protected_dir.glob("*.npz"))) == 40  # one file per episode, protected
    # Online data arrived only in the online epochs (2 offline + 2 online in --tiny).
    rows = [r for r in read_metrics(run_dir) if r.get("rollout/return")]
    assert rows and min(float(r["epoch"]) for r in rows) >= 2
    assert len(list((run_dir / "buffer" / "fifo").glob("*.npz"))) > 0
    key = "buffer/weight/tmaze_offline_to_online"  # the online child of the mixture
    weights = [float(r[key]) for r in read_metrics(run_dir) if r.get(key)]
    assert weights and weights[0] == 0.0 and max(weights) > 0, "the online share anneals in"


def test_mazerunner_relabeling_example_tiny(tmp_path: Path) -> None:
    proc = run_example(
        "mazerunner_relabeling.py", "--tiny", "--buffer_dir", str(tmp_path), "--relabel", "all"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"Test: [\d.]+ of 2 goals reached", proc.stdout), proc.stdout[-2000:]
    files = list((tmp_path / "mazerunner_relabel" / "buffer" / "fifo").glob("*.npz"))
    starts = [int(np.load(p)["time_idxs"][0]) for p in files]
    assert starts and all(s == 0 for s in starts), "one whole episode per file, as the relabeler needs"


def test_examples_help() -> None:
    scripts = ["async_collect_learn.py", "offline_to_online.py", "mazerunner_relabeling.py"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = [  # concurrently: each one mostly waits for its imports
        subprocess.Popen(
            [sys.executable, str(EXAMPLES / s), "--help"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for s in scripts
    ]
    for script, proc in zip(scripts, procs):
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, script
        assert "--tiny" in out, script
