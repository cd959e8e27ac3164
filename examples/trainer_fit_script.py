"""The T-Maze run written as a plain Lightning script (no Experiment): settings, data, agent,
Trainer, fit. ``build_run`` builds the agent, the callbacks (collection, evaluation, checkpoints,
config logging, summary), the loggers and the Trainer arguments from one ``Settings``, the same
builder ``Experiment`` and ``amago-pl`` use. Every Trainer feature works as usual (devices,
strategy="ddp", precision, accumulate_grad_batches, gradient_clip_val, loggers, ckpt_path="last").

    python examples/trainer_fit_script.py --epochs 20
    python examples/trainer_fit_script.py --resume          # continue from runs/<run>/ckpts/last.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gin
import lightning.pytorch as pl

from amago_pl.datamodules import DiskTrajDataset
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.modules.agent import Agent
from amago_pl.nets.traj_encoders import TformerTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder
from amago_pl.run.build import build_run
from amago_pl.run.settings import Settings

GIN = """
Agent.reward_multiplier = 100.0
Agent.gamma = 0.9999
Agent.tau = 0.01
Agent.learning_rate = 3e-4
Agent.lr_warmup_steps = 100
FFTstepEncoder.d_hidden = 128
FFTstepEncoder.d_output = 64
FFTstepEncoder.normalize_inputs = False
TformerTrajEncoder.d_model = 128
TformerTrajEncoder.d_ff = 512
TformerTrajEncoder.n_layers = 2
TformerTrajEncoder.n_heads = 4
EpsilonGreedy.steps_anneal = 400
"""


class MakeTMaze:
    """A picklable env factory (async env workers may need to pickle it)."""

    def __init__(self, corridor: int):
        self.corridor = corridor

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(
            TMazeAltPassive(corridor_length=self.corridor, penalty=-1.0 / self.corridor),
            env_name=f"TMaze{self.corridor}",
        )


def build(
    run_dir: Path, corridor: int, epochs: int, batches: int, actors: int, workers: int, **trainer_kwargs
) -> tuple[Agent, DiskTrajDataset, pl.Trainer]:
    horizon = corridor + 1  # one episode fits in the context
    settings = Settings(
        run_dir=run_dir,
        max_seq_len=horizon,
        make_train_env=MakeTMaze(corridor),
        parallel_actors=actors,
        env_mode="sync",
        train_timesteps_per_epoch=2 * horizon,  # env steps per actor per epoch
        val_timesteps_per_epoch=horizon + 1,
        traj_save_len=horizon + 1,
        stagger_traj_file_lengths=False,
        sample_actions_train=False,
        sample_actions_val=False,
        epochs=epochs,
        train_batches_per_epoch=batches,
        batch_size=24,
        dloader_workers=workers,
        val_interval=2,
        ckpt_interval=None,  # ckpts/last.ckpt only
        log_interval=50,
        trainer_kwargs=trainer_kwargs,  # e.g. devices=2, strategy="ddp", precision="bf16-mixed"
    )
    dataset = DiskTrajDataset(dset_root=str(run_dir.parent), dset_name=run_dir.name, dset_max_size=5000)
    run = build_run(settings, dataset, Agent, FFTstepEncoder, TformerTrajEncoder)
    return run.agent, run.dataset, run.trainer()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_dir", default="runs/tmaze_trainer_fit")
    p.add_argument("--corridor", type=int, default=10)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--actors", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = p.parse_args()
    gin.parse_config(GIN)
    agent, dataset, trainer = build(
        Path(args.run_dir), args.corridor, args.epochs, args.batches, args.actors, args.workers
    )
    # amago_pl checkpoints are plain data: resume reads them without unpickling anything.
    trainer.fit(agent, datamodule=dataset, ckpt_path="last" if args.resume else None, weights_only=True)


if __name__ == "__main__":
    main()
