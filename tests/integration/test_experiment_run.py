"""A tiny run through Experiment, and the same run as a hand-written Trainer.fit script."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.modules.agent import Agent
from tests.integration.helpers import TINY_GIN, MakeTMaze, metric_names

pytestmark = pytest.mark.integration
HORIZON = 4


def tiny_experiment(tmp_path: Path, arch: str = "transformer", **overrides) -> Experiment:
    config = dict(TINY_GIN)
    config["TformerTrajEncoder.n_heads"] = 4  # a changed value that config.txt must show
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, arch)
    use_config(config, finalize=False)
    kwargs = dict(
        run_name="tiny",
        ckpt_base_dir=str(tmp_path),
        max_seq_len=HORIZON,
        dataset=DiskTrajDataset(dset_root=str(tmp_path), dset_name="tiny", dset_max_size=100),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        make_train_env=MakeTMaze(),
        make_val_env=MakeTMaze(),
        val_timesteps_per_epoch=HORIZON + 1,
        parallel_actors=2,
        env_mode="sync",
        epochs=2,
        train_timesteps_per_epoch=6,
        train_batches_per_epoch=3,
        batch_size=4,
        val_interval=1,
        ckpt_interval=1,
        dloader_workers=0,
        log_interval=1,
        verbose=False,
        traj_save_len=HORIZON + 1,
        seed=0,  # repeatable (an Experiment without a seed draws a fresh one)
    )
    kwargs.update(overrides)
    return Experiment(**kwargs)


def test_experiment_end_to_end(tmp_path):
    exp = tiny_experiment(tmp_path)
    exp.start()
    exp.learn()
    run = tmp_path / "tiny"
    assert (run / "config.txt").exists()
    assert "TformerTrajEncoder.n_heads = 4" in (run / "config.txt").read_text()
    assert (run / "ckpts" / "last.ckpt").exists()
    assert (run / "ckpts" / "epoch=1.ckpt").exists()
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert "total_frames" in (run / "summary.md").read_text()
    assert (run / "ckpts" / "latest" / "policy.pt").exists()
    names = metric_names(run)
    for key in (
        "train/loss_critic",
        "train/loss_actor",
        "rollout/return",
        "val/return",
        "total_frames",
        "gradient_steps",
    ):
        assert key in names, f"{key} missing from {sorted(names)}"
    assert exp.trainer.global_step == 2 * 3
    assert len(list((run / "buffer" / "fifo").glob("*.npz"))) > 0

    result = exp.evaluate_test(
        MakeTMaze(), timesteps=2 * (HORIZON + 1), save_trajs_to=tmp_path / "test_store"
    )
    assert len(result.episodes) >= 2
    assert all(np.isfinite(ep.total_return) and ep.length == HORIZON for ep in result.episodes)
    assert "test/return" in result.metrics
    assert len(list((tmp_path / "test_store").rglob("*.npz"))) >= 2


def test_trainer_fit_script_matches_experiment(tmp_path):
    """The hand-written Lightning script produces the same files and metric names."""
    exp = tiny_experiment(tmp_path / "a")
    exp.start()
    exp.learn()

    examples = Path(__file__).resolve().parents[2] / "examples"
    sys.path.insert(0, str(examples))
    try:
        import trainer_fit_script
    finally:
        sys.path.remove(str(examples))
    run_b = tmp_path / "b" / "tiny"
    agent, dataset, trainer = trainer_fit_script.build(
        run_b,
        corridor=3,
        epochs=2,
        batches=3,
        actors=2,
        workers=0,
        enable_progress_bar=False,
        log_every_n_steps=1,
    )
    trainer.fit(agent, datamodule=dataset)
    run_a = tmp_path / "a" / "tiny"
    for name in ("config.txt", "learning_curve.png", "summary.md", "ckpts/last.ckpt"):
        assert (run_a / name).exists() and (run_b / name).exists(), name
    base = {"train/loss_critic", "rollout/return", "val/return", "total_frames", "gradient_steps"}
    assert base <= metric_names(run_a) and base <= metric_names(run_b)
    assert isinstance(trainer, pl.Trainer)


def test_bf16_mixed_and_all_loggers(tmp_path, monkeypatch):
    """bf16 autocast in training and rollouts on CPU; CSV + TensorBoard + wandb (offline) loggers."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    exp = tiny_experiment(
        tmp_path,
        mixed_precision="bf16",
        loggers=("csv", "tensorboard"),
        log_to_wandb=True,
        wandb_project="amago_pl_tests",
    )
    exp.start()
    assert exp.trainer.precision == "bf16-mixed"
    exp.learn()
    run = tmp_path / "tiny"
    assert list((run / "tensorboard").rglob("events.out.tfevents*"))
    assert list(run.rglob("*.wandb")), "wandb offline run files missing"
    assert exp.trainer.global_step == 2 * 3
