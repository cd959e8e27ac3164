"""Launches of one tiny run, started by the resume tests as ``python resume_script.py ...``.

    python resume_script.py ROOT experiment EPOCHS [--resume] [--kill-after-ckpt N --kill-files K]
        [--sigterm-at-step S]
    python resume_script.py ROOT ddp EPOCHS [--resume] [--kill-after-ckpt N --kill-files K]

``experiment``: a single-process ``Experiment`` (as users write it); ``ddp``: a plain
``Trainer(devices=2, strategy="ddp")`` script (Lightning's launcher re-runs this file for rank 1).
Both collect ``ScriptedEnv`` episodes (tests/faults/resume_support.py) into ROOT's store and
checkpoint every epoch. ``--kill-after-ckpt N`` SIGKILLs the run once ``--kill-files`` trajectory
files were stored after ``epoch=N.ckpt`` exists; ``--sigterm-at-step S`` sends the process SIGTERM
after global step S (a preemption).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import gin  # noqa: E402
import lightning.pytorch as pl  # noqa: E402

from tests.faults.resume_support import KillAfterFiles, MakeScripted  # noqa: E402

TINY = """
FFTstepEncoder.d_hidden = 16
FFTstepEncoder.d_output = 8
GRUTrajEncoder.d_hidden = 16
GRUTrajEncoder.d_output = 16
Actor.d_hidden = 16
NCritics.d_hidden = 16
"""


class SigtermAtStep(pl.Callback):
    """Sends its own process SIGTERM after global step ``step`` (what a scheduler does)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and trainer.global_rank == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def experiment_run(root: Path, args: argparse.Namespace, extra: list[pl.Callback]) -> None:
    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.modules.agent import Agent
    from amago_pl.nets.traj_encoders import GRUTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    gin.parse_config(TINY)
    exp = Experiment(
        run_name="run",
        ckpt_base_dir=str(root),
        max_seq_len=4,
        dataset=DiskTrajDataset(dset_root=str(root), dset_name="store", dset_max_size=10_000),
        tstep_encoder_type=FFTstepEncoder,
        traj_encoder_type=GRUTrajEncoder,
        agent_type=Agent,
        make_train_env=MakeScripted(),
        make_val_env=MakeScripted(),
        val_timesteps_per_epoch=0,
        parallel_actors=2,
        env_mode="sync",
        epochs=args.epochs,
        train_timesteps_per_epoch=8,
        train_batches_per_epoch=3,
        batch_size=4,
        val_interval=None,
        ckpt_interval=1,
        dloader_workers=0,
        log_interval=1,
        verbose=False,
        traj_save_len=6,
        seed=5,
    )
    exp.start()
    exp.trainer.callbacks.extend(extra)
    if args.resume:
        exp.load_checkpoint("last")
    exp.learn()
    report(root, exp.trainer)


def ddp_run(root: Path, args: argparse.Namespace, extra: list[pl.Callback]) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    from amago_pl.callbacks import RolloutCallback
    from amago_pl.callbacks.checkpoint_io import AtomicCheckpointIO
    from amago_pl.datamodules import DiskTrajDataset
    from amago_pl.modules.agent import Agent
    from amago_pl.nets.traj_encoders import GRUTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder

    gin.parse_config(TINY)
    pl.seed_everything(5, workers=True, verbose=False)
    probe = MakeScripted()()
    agent = Agent(
        probe.observation_space, probe.rl2_space, probe.action_space, 4, FFTstepEncoder, GRUTrajEncoder
    )
    dataset = DiskTrajDataset(dset_root=str(root), dset_name="store", dset_max_size=10_000)
    dataset.configure(batch_size=4, max_seq_len=4, train_batches_per_epoch=3)
    rollout = RolloutCallback(
        MakeScripted(), parallel_actors=2, env_mode="sync", train_timesteps_per_epoch=8,
        max_seq_len=4, traj_save_len=6, seed=5, verbose=False,
    )  # fmt: skip
    ckpts = ModelCheckpoint(
        dirpath=str(root / "run" / "ckpts"), filename="epoch={epoch}", auto_insert_metric_name=False,
        save_top_k=-1, save_last=True, save_on_train_epoch_end=True, enable_version_counter=False,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(timeout=timedelta(seconds=60)),
        max_epochs=args.epochs,
        callbacks=[rollout, ckpts, *extra],
        plugins=[AtomicCheckpointIO()],
        logger=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(agent, datamodule=dataset, ckpt_path="last" if args.resume else None, weights_only=True)
    report(root, trainer)


def report(root: Path, trainer: pl.Trainer) -> None:
    out = {"global_step": trainer.global_step, "epoch": trainer.current_epoch}
    (root / f"report_rank{trainer.global_rank}.json").write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("kind", choices=("experiment", "ddp"))
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-after-ckpt", type=int, default=None)
    parser.add_argument("--kill-files", type=int, default=2)
    parser.add_argument("--sigterm-at-step", type=int, default=None)
    args = parser.parse_args()
    root = Path(args.root)
    extra: list[pl.Callback] = []
    if args.kill_after_ckpt is not None:
        target = root / "run" / "ckpts" / f"epoch={args.kill_after_ckpt}.ckpt"
        extra.append(KillAfterFiles(target, args.kill_files, group=args.kind == "ddp"))
    if args.sigterm_at_step is not None:
        extra.append(SigtermAtStep(args.sigterm_at_step))
    (experiment_run if args.kind == "experiment" else ddp_run)(root, args, extra)


if __name__ == "__main__":
    main()
