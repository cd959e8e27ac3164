"""A tiny training run through the original's script API (``cli_utils.add_common_cli`` +
``create_experiment_from_cli``), renamed to amago_pl, for the porting tests."""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amago_pl import cli_utils
from tests.integration.helpers import TINY_GIN, metric_names

BATCHES = 2


def tiny_run(
    tmp_path: Path,
    make_env: Callable,
    tstep_encoder_type: type | None = None,
    traj_encoder: str = "transformer",
    max_seq_len: int = 6,
    config: dict[str, Any] | None = None,
    parallel_actors: int = 2,
    env_mode: str = "sync",
    **experiment_kwargs: Any,
) -> tuple[Any, set[str]]:
    """Build, train one epoch (BATCHES updates) and validate once; returns (experiment, metric names)."""
    parser = ArgumentParser()
    cli_utils.add_common_cli(parser)
    args = parser.parse_args(
        ["--run_name", "port", "--buffer_dir", str(tmp_path), "--parallel_actors", str(parallel_actors),
         "--timesteps_per_epoch", str(max_seq_len + 2), "--batches_per_epoch", str(BATCHES), "--epochs", "1",
         "--batch_size", "4", "--dloader_workers", "0", "--val_interval", "1", "--ckpt_interval", "1",
         "--no_log", "--env_mode", env_mode]
    )  # fmt: skip
    config = {**TINY_GIN, **(config or {})}
    if traj_encoder in ("ff", "transformer", "rnn", "identity"):  # the common CLI's choices
        traj_type = cli_utils.switch_traj_encoder(config, arch=traj_encoder, memory_size=32, layers=1)
    else:  # a user-registered name
        traj_type = cli_utils.switch_traj_encoder(config, arch=traj_encoder)
    if tstep_encoder_type is None:
        tstep_encoder_type = cli_utils.switch_tstep_encoder(
            config, arch="ff", n_layers=1, d_hidden=32, d_output=16
        )
    agent_type = cli_utils.switch_agent(config, args.agent_type)
    cli_utils.use_config(config, args.configs, finalize=False)
    experiment_kwargs.setdefault("traj_save_len", max_seq_len + 1)
    experiment = cli_utils.create_experiment_from_cli(
        args,
        make_train_env=make_env,
        make_val_env=make_env,
        max_seq_len=max_seq_len,
        group_name="port",
        run_name="port",
        tstep_encoder_type=tstep_encoder_type,
        traj_encoder_type=traj_type,
        agent_type=agent_type,
        val_timesteps_per_epoch=max_seq_len + 1,
        verbose=False,
        seed=0,
        log_interval=1,
        **experiment_kwargs,
    )
    experiment.start()
    experiment.learn()
    assert experiment.trainer.global_step == BATCHES
    names = metric_names(tmp_path / "port")
    assert "train/loss_critic" in names, sorted(names)
    return experiment, names
