"""benchmarks/peers.py end to end on its --smoke budget (in a subprocess), and the input wrapper
that gives RecurrentPPO what amago_pl's policy sees."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.learning_tasks import MakeGym, MakeTMaze
from benchmarks.peers_ppo import PrevActionReward
from benchmarks.peers_tasks import DISCRETE_SWEEP, MakeCartPoleNoVel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--smoke", "--out", str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_smoke_run_writes_csv_png_table_and_skips_finished_runs(tmp_path):
    pytest.importorskip("sb3_contrib")
    _run(tmp_path, "--sweep", "--amago_settings", "recipe", "quarter_updates")
    rows = list(csv.DictReader(open(tmp_path / "tmaze10.csv")))
    assert list(rows[0])[:7] == ["task", "library", "setting", "phase", "seed", "budget", "kind"]
    finals = {(r["library"], r["setting"], r["phase"], r["seed"]) for r in rows if r["kind"] == "final"}
    # The random baseline, one sweep seed (100) per setting, and seed 0 of both libraries.
    sweep = json.loads((tmp_path / "sweep.json").read_text())["tmaze10"]
    assert sweep["chosen"] in DISCRETE_SWEEP and set(sweep["scores"]) == set(DISCRETE_SWEEP)
    assert finals == {
        ("random", "uniform", "baseline", "0"),
        ("amago_pl", "recipe", "report", "0"),
        ("amago_pl", "quarter_updates", "report", "0"),
        ("RecurrentPPO", sweep["chosen"], "report", "0"),
        *{("RecurrentPPO", s, "sweep", "100") for s in DISCRETE_SWEEP},
    }
    for lib, setting in (
        ("amago_pl", "recipe"),
        ("amago_pl", "quarter_updates"),
        ("RecurrentPPO", sweep["chosen"]),
    ):
        run = [r for r in rows if r["library"] == lib and r["setting"] == setting and r["phase"] == "report"]
        curve = [r for r in run if r["kind"] == "curve"]
        # --smoke: 2 amago_pl epochs of 8 x 22 env steps = 352 env steps for both, one curve point per epoch.
        assert [float(r["env_steps"]) for r in curve] == [176.0, 352.0]
        # The T-Maze recipe validates on 64 episodes, 8 per env (benchmarks/learning_tasks.py).
        assert all(0.0 <= float(r["metric"]) <= 1.0 and float(r["episodes"]) == 64 for r in curve)
        (final,) = [r for r in run if r["kind"] == "final"]
        assert int(final["env_steps"]) == 352 and int(final["budget"]) == 352
        assert final["episodes"] == "64"  # the recipe's test episodes, for both libraries
        for k in ("metric", "updates", "wall_s", "cpu_s", "eval_s"):
            assert math.isfinite(float(final[k])), (lib, k, final[k])
        assert float(final["updates"]) > 0 and float(final["wall_s"]) > 0
    # The variant keeps the env steps and does a quarter of the recipe's 5 updates per epoch (1).
    updates = {
        r["setting"]: float(r["updates"]) for r in rows if r["library"] == "amago_pl" and r["kind"] == "final"
    }
    assert updates == {"recipe": 10.0, "quarter_updates": 2.0}
    assert (tmp_path / "tmaze10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "peers.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("| T-Maze passive, corridor 10")]
    assert len(lines) == 4  # amago_pl, RecurrentPPO, the variant, and the targets row
    assert "amago_pl (recipe)" in lines[0] and f"RecurrentPPO ({sweep['chosen']})" in lines[1]
    assert "amago_pl (quarter_updates, variant)" in lines[2]
    for line in lines[:3]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == "1" and cells[3] == "352"
        mean = float(cells[4].split("±")[0])
        assert cells[7] == "-" or float(cells[7].replace(",", "")) >= 0  # wall s to target
        wall, cpu = (float(x.strip("()")) for x in cells[8].split())
        assert all(math.isfinite(x) for x in (mean, wall, cpu)) and wall > 0

    # A second invocation finds every run finished: no new rows, only the table is rebuilt.
    proc = _run(tmp_path, "--sweep", "--amago_settings", "recipe", "quarter_updates")
    assert "skip (finished)" in proc.stdout
    assert len(list(csv.DictReader(open(tmp_path / "tmaze10.csv")))) == len(rows)

    # A comparison group (same-machine runs of chosen settings) adds its own rows and table line;
    # the reported pair's rows and numbers stay as they were.
    _run(tmp_path, "--libraries", "amago_pl", "--group", "machine_b", "--amago_settings", "quarter_updates")
    grown = list(csv.DictReader(open(tmp_path / "tmaze10.csv")))
    assert grown[: len(rows)] == rows
    new_finals = {(r["setting"], r["phase"]) for r in grown[len(rows) :] if r["kind"] == "final"}
    assert new_finals == {("quarter_updates", "machine_b")}
    lines_after = [
        ln
        for ln in (tmp_path / "peers.md").read_text().splitlines()
        if ln.startswith("| T-Maze passive, corridor 10")
    ]
    assert lines_after[:3] == lines[:3]
    assert "amago_pl (quarter_updates, group machine_b, variant)" in lines_after[3]


def test_a_comparison_group_holds_amago_pl_runs_only(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "peers.py"),
        "--smoke",
        "--out",
        str(tmp_path),
        "--group",
        "x",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--libraries amago_pl" in proc.stderr
    assert not (tmp_path / "tmaze10.csv").exists()


def test_peer_inputs_are_observation_previous_reward_and_previous_action():
    env = PrevActionReward(MakeTMaze(10)())
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3 + 1 + 4,)  # T-Maze observation, reward, one-hot of 4 actions
    np.testing.assert_array_equal(obs[3:], 0.0)  # nothing before the first action
    obs, reward, *_ = env.step(0)
    assert obs[3] == np.float32(reward)
    np.testing.assert_array_equal(obs[4:], [1.0, 0.0, 0.0, 0.0])
    # Continuous actions are represented in the policy's [-1, 1] space, as amago_pl's runner does.
    pend = PrevActionReward(MakeGym("Pendulum-v1")())
    pend.reset(seed=0)
    obs, *_ = pend.step(np.array([0.5], dtype=np.float32))
    assert obs.shape == (3 + 1 + 1,) and obs[-1] == np.float32(0.5)


def test_cartpole_without_velocities_keeps_position_and_angle():
    env = MakeCartPoleNoVel()()
    full = env.unwrapped
    obs, _ = env.reset(seed=3)
    assert obs["observation"].shape == (2,)
    state = np.asarray(full.state, dtype=np.float32)  # (x, x_dot, theta, theta_dot)
    np.testing.assert_allclose(obs["observation"], state[[0, 2]])
