"""Two-process DDP run on CPU (gloo), launched by test_ddp.py as its own script: Lightning's DDP
launcher re-runs this file for rank 1, so it must not run inside pytest's process.

Rank 0's episodes are 4 steps long, rank 1's are 16: the ranks collect very different numbers of
files, but must run the same number of batches and finish without hanging.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gin
import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from amago_pl.callbacks import ConfigLoggingCallback, EvalCallback, RolloutCallback, SummaryCallback  # noqa: E402
from amago_pl.datamodules import DiskTrajDataset  # noqa: E402
from amago_pl.envs import AMAGOEnv, EpsilonGreedy  # noqa: E402
from amago_pl.envs.builtin.tmaze import TMazeAltPassive  # noqa: E402
from amago_pl.modules.agent import Agent  # noqa: E402
from amago_pl.nets.traj_encoders import GRUTrajEncoder  # noqa: E402
from amago_pl.nets.tstep_encoders import FFTstepEncoder  # noqa: E402

TINY = """
FFTstepEncoder.d_hidden = 32
FFTstepEncoder.d_output = 16
GRUTrajEncoder.d_hidden = 32
GRUTrajEncoder.d_output = 32
Actor.d_hidden = 32
NCritics.d_hidden = 32
"""


class RankDependentTMaze:
    """Corridor length depends on the process's rank (read when the env is built, in that rank)."""

    def __call__(self) -> AMAGOEnv:
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        return AMAGOEnv(TMazeAltPassive(corridor_length=3 if rank == 0 else 15), env_name=f"TMazeRank{rank}")


def main(out_dir: str) -> None:
    gin.parse_config(TINY)
    run_dir = Path(out_dir) / "ddp"
    probe = RankDependentTMaze()()
    horizon = 16
    agent = Agent(
        probe.observation_space, probe.rl2_space, probe.action_space, horizon, FFTstepEncoder, GRUTrajEncoder
    )
    dataset = DiskTrajDataset(dset_root=out_dir, dset_name="ddp", dset_max_size=1000)
    dataset.configure(batch_size=4, max_seq_len=horizon, train_batches_per_epoch=5)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        callbacks=[
            RolloutCallback(
                RankDependentTMaze(),
                parallel_actors=2,
                env_mode="sync",
                timesteps_per_epoch=20,
                max_seq_len=horizon,
                traj_save_len=horizon + 1,
                exploration_wrapper_type=EpsilonGreedy,
                verbose=False,
            ),
            EvalCallback(
                RankDependentTMaze(), parallel_actors=2, timesteps=17, env_mode="sync", verbose=False
            ),
            ConfigLoggingCallback(run_dir),
            SummaryCallback(run_dir, verbose=False),
        ],
        logger=CSVLogger(save_dir=str(run_dir), name="logs"),
        limit_val_batches=1,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(agent, datamodule=dataset)
    rollout = next(cb for cb in trainer.callbacks if isinstance(cb, RolloutCallback))
    evals = next(cb for cb in trainer.callbacks if isinstance(cb, EvalCallback))
    report = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "local_frames": rollout.local_frames,
        "total_frames": rollout.total_frames,
        "val_env_names": sorted({ep.env_name for ep in evals.last_episodes}),
    }
    (Path(out_dir) / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
