"""Mistakes in the configuration fail at start, before any env or model is built, naming the
setting and the fix: bad gin (unknown name, wrong type, missing gin.REQUIRED), bad CLI/YAML values,
and checkpoints written with a different configuration or version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import amago_pl.cli as cli
from amago_pl.cli_utils import bind, parse_gin
from amago_pl.modules.checkpoint import CheckpointMismatchError
from tests.faults.support import MakeFaulty, tiny_experiment
from tests.integration.cli_support import write_configs


@pytest.fixture
def no_env_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("an env was built before the configuration was checked")

    monkeypatch.setattr(cli._EnvFactory, "__call__", refuse)


def _cli_error(tmp_path: Path, *args: str) -> str:
    yaml_path, gin_path = write_configs(tmp_path)
    with pytest.raises(SystemExit) as err:
        cli.run(["fit", "--config", str(yaml_path), "--gin", str(gin_path), *args])
    return str(err.value.code)


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        ("TformerTrajEncodr.d_model = 32", "Did you mean: TformerTrajEncoder.d_model"),
        ("TformerTrajEncoder.d_modle = 32", "TformerTrajEncoder.d_model"),
        ("TformerTrajEncoder.d_model = 'wide'", "TformerTrajEncoder.d_model = 'wide': expected int, got str"),
        (
            "TformerTrajEncoder.attention_type = @SlidingWindowFlexAttention",
            "SlidingWindowFlexAttention.window_size (add e.g.",
        ),
        ("TformerTrajEncoder.pos_emb = 'learnable'", "LearnablePosEmb.max_time_idx"),
    ],
)
def test_bad_gin_fails_before_anything_is_built(
    tmp_path: Path, no_env_built: None, binding: str, expected: str
) -> None:
    assert expected in _cli_error(tmp_path, "--gin", binding)


def test_missing_required_exploration_keyword(tmp_path: Path, no_env_built: None) -> None:
    message = _cli_error(tmp_path, "--run.exploration", "bilevel")
    assert (
        "gin.REQUIRED settings without a value" in message
        and "BilevelEpsilonGreedy.rollout_horizon" in message
    )


def test_experiment_checks_required_before_building_envs(tmp_path: Path) -> None:
    built: list[int] = []

    class CountingFactory(MakeFaulty):
        def __call__(self):  # noqa: ANN204
            built.append(1)
            return super().__call__()

    exp = tiny_experiment(tmp_path, make_env=CountingFactory())
    parse_gin(bindings=["TformerTrajEncoder.attention_type = @SlidingWindowFlexAttention"])
    with pytest.raises(ValueError, match=r"SlidingWindowFlexAttention\.window_size"):
        exp.start()
    assert not built and exp.agent is None


def test_bad_cli_values_are_listed_with_the_fix(tmp_path: Path, no_env_built: None) -> None:
    message = _cli_error(
        tmp_path,
        "--data.batch_size", "-4",
        "--data.dset_max_size", "0",
        "--run.parallel_actors", "0",
        "--run.traj_save_len", "2",
        "--model.learning_rate", "-0.1",
        "--run.env_mode", "threads",
    )  # fmt: skip
    for part in (
        "data.batch_size=-4 must be >= 1",
        "data.dset_max_size=0 must be >= 1",
        "run.parallel_actors=0 must be >= 1",
        "run.traj_save_len=2 < model.max_seq_len=4",
        "raise run.traj_save_len (or lower model.max_seq_len)",
        "model.learning_rate=-0.1 must be > 0",
        "run.env_mode='threads': use 'sync', 'async' or 'already_vectorized'",
    ):
        assert part in message, message


def test_experiment_values_are_checked_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        tiny_experiment(tmp_path, batch_size=-1, max_seq_len=8, traj_save_len=5)
    assert "batch_size=-1 must be a positive integer" in str(err.value)
    assert "traj_save_len=5 < max_seq_len=8" in str(err.value)


def _trained(tmp_path: Path) -> Path:
    exp = tiny_experiment(tmp_path, epochs=1, train_batches_per_epoch=1)
    exp.start()
    exp.learn()
    return exp.checkpoint_path("last")


def test_resume_with_another_config_lists_the_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = _trained(tmp_path)
    blob = torch.load(last, map_location="cpu", weights_only=False)
    assert blob["amago_pl_version"]  # every checkpoint is stamped
    blob["amago_pl_version"] = "0.0.1"
    torch.save(blob, last)

    exp = tiny_experiment(tmp_path, epochs=2, train_batches_per_epoch=1, learning_rate=3e-4)
    bind("TformerTrajEncoder.n_heads", 4)  # same weight shapes, different model
    exp.start()
    exp.load_checkpoint("last")
    with pytest.raises(CheckpointMismatchError) as err:
        exp.learn()
    message = str(err.value)
    assert "learning_rate: checkpoint=0.0001, now=0.0003" in message
    assert "gin amago_pl.nets.traj_encoders.TformerTrajEncoder.n_heads: checkpoint=2, now=4" in message
    assert "checkpoint amago_pl version: 0.0.1" in message and "AMAGO_PL_ALLOW_CONFIG_CHANGE=1" in message

    monkeypatch.setenv("AMAGO_PL_ALLOW_CONFIG_CHANGE", "1")  # the escape hatch resumes anyway
    exp = tiny_experiment(tmp_path, epochs=2, train_batches_per_epoch=1, learning_rate=3e-4)
    exp.start()
    exp.load_checkpoint("last")
    exp.learn()
    assert exp.trainer.global_step == 2


def test_loading_weights_into_another_architecture_names_the_cause(tmp_path: Path) -> None:
    last = _trained(tmp_path)
    exp = tiny_experiment(tmp_path / "other")
    bind("TformerTrajEncoder.d_model", 48)
    exp.start()
    with pytest.raises(RuntimeError) as err:
        exp.load_checkpoint_from_path(last, resume_training_state=False)
    message = str(err.value)
    assert "misshapen" in message and "traj_encoder" in message
    assert "TformerTrajEncoder.d_model: checkpoint=32, now=48" in message
