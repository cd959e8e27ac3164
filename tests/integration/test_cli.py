"""`amago-pl fit` from a YAML file plus gin overrides, and fast failure on a bad binding."""

from __future__ import annotations

import time

import pytest

from tests.integration.cli_support import load_ckpt, rollout_state, run_cli, write_configs

pytestmark = pytest.mark.integration


def test_cli_fit_yaml_plus_gin(tmp_path):
    yaml_path, gin_path = write_configs(tmp_path)
    proc = run_cli(
        "fit", "--config", str(yaml_path), "--gin", str(gin_path), "--gin", "TformerTrajEncoder.n_heads = 4"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "cli"
    config = (run / "config.txt").read_text()
    assert "TformerTrajEncoder.n_heads = 4" in config  # the later --gin item won
    assert "TformerTrajEncoder.d_model = 32" in config  # the file applied first
    ckpt = load_ckpt(run / "ckpts" / "last.ckpt")
    assert ckpt["global_step"] == 2 * 3 and ckpt["epoch"] == 1
    assert rollout_state(ckpt)["total_frames"] == 2 * 2 * 6
    assert (run / "learning_curve.png").exists() and (run / "summary.md").exists()
    assert list((run / "logs").glob("*/metrics.csv"))


def test_cli_bad_binding_fails_fast_with_suggestion(tmp_path):
    yaml_path, _ = write_configs(tmp_path)
    start = time.monotonic()
    proc = run_cli("fit", "--config", str(yaml_path), "--gin", "TformerTrajEncoder.n_head = 4", timeout=120)
    assert proc.returncode != 0
    assert "TformerTrajEncoder.n_heads" in proc.stderr  # the closest valid name
    assert not (tmp_path / "cli").exists(), "nothing may be built before the config is valid"
    assert time.monotonic() - start < 120


def test_cli_wrong_type_fails_before_building(tmp_path):
    yaml_path, _ = write_configs(tmp_path)
    proc = run_cli(
        "fit", "--config", str(yaml_path), "--gin", "TformerTrajEncoder.n_heads = 'four'", timeout=120
    )
    assert proc.returncode != 0
    assert "expected int" in proc.stderr
    assert not (tmp_path / "cli").exists()
