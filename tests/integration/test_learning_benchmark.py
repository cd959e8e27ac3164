"""benchmarks/learning.py end to end on tiny budgets: the files it writes and its stopping rules."""

from __future__ import annotations

import csv

import pytest

from benchmarks.learning import TASKS, Budget, main, run_task

pytestmark = pytest.mark.integration


def test_smoke_run_writes_csv_png_and_table(tmp_path, capsys):
    main(["--smoke", "--tasks", "tmaze10_gru", "--out", str(tmp_path)])
    rows = list(csv.DictReader(open(tmp_path / "tmaze10_gru.csv")))
    # --smoke: 1 seed, 2 epochs of 5 updates, one validation per epoch.
    assert [r["seed"] for r in rows] == ["0", "0"]
    assert [float(r["updates"]) for r in rows] == [5.0, 10.0]
    assert all(0.0 <= float(r["success"]) <= 1.0 for r in rows)
    png = (tmp_path / "tmaze10_gru.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "learning.md").read_text()
    assert "T-Maze passive, corridor 10, gru" in table and "| 1 |" in table
    assert "tmaze10_gru seed 0: test success" in capsys.readouterr().out


def test_max_minutes_stops_after_the_first_epoch(tmp_path):
    # A zero wall-clock budget: the first epoch's end is already past it, so training stops there
    # and the run is still tested and reported as stopped by time.
    r = run_task("tmaze10_gru", seed=0, budget=Budget(5, 3), run_dir=tmp_path, max_minutes=0.0)
    assert r.out_of_time
    assert r.updates == 3
    assert r.env_steps == TASKS["tmaze10_gru"].env_steps(1)
    assert 0.0 <= r.test_metric <= 1.0


def test_without_a_time_budget_the_epoch_budget_runs_out(tmp_path):
    r = run_task("tmaze10_gru", seed=0, budget=Budget(2, 3), run_dir=tmp_path, early_stop=False)
    assert not r.out_of_time
    assert r.updates == 6
    assert len(r.curve) == 2
