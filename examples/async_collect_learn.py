"""Asynchronous collection: one learner process and any number of collector processes.

The processes share nothing but a folder: collectors write trajectory files into the replay store
``{buffer_dir}/{run_name}/buffer/fifo/``; the learner trains on them and writes its weights to
``{buffer_dir}/{run_name}/ckpts/latest/policy.pt`` after every epoch; collectors reload that file
at the start of each of their epochs. Start them by hand (on one machine or several that mount the
same ``--buffer_dir``; see docs/async.md)::

    python examples/async_collect_learn.py --run_name tm --buffer_dir runs --mode learn
    python examples/async_collect_learn.py --run_name tm --buffer_dir runs --mode collect   # x N

or let this script start a learner and ``--launch N`` collectors on this machine and stop the
collectors when the learner is done::

    python examples/async_collect_learn.py --run_name tm --buffer_dir runs --launch 2
    python examples/async_collect_learn.py --run_name tm --buffer_dir runs --launch 1 --tiny

Collectors run until ``{run_dir}/STOP`` exists (``--launch`` creates it when the learner ends) or
for ``--collector_epochs``. The learner waits for the first files instead of running empty epochs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

from amago_pl.callbacks import LatestPolicyCallback
from amago_pl.callbacks.rollout import log_to_loggers
from amago_pl.cli_utils import (
    add_common_cli,
    create_experiment_from_cli,
    switch_agent,
    switch_traj_encoder,
    switch_tstep_encoder,
    use_config,
)
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive

STOP_FILE = "STOP"


class MakeTMaze:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, corridor: int):
        self.corridor = corridor

    def __call__(self) -> AMAGOEnv:
        env = TMazeAltPassive(corridor_length=self.corridor, penalty=-1.0 / self.corridor)
        return AMAGOEnv(env, env_name=f"TMaze{self.corridor}")


class CollectorControl(pl.Callback):
    """Collector side: report which policy version each epoch collected with; stop on the STOP file.

    The version is the learner's ``global_step`` when it wrote the file (None before the first).
    The STOP check runs at epoch end, so a collector started after the learner finished still
    collects one epoch with the final policy.
    """

    def __init__(self, run_dir: Path):
        self.stop_file = run_dir / STOP_FILE

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        latest = next((c for c in trainer.callbacks if isinstance(c, LatestPolicyCallback)), None)
        version = None if latest is None else latest.loaded_version
        print(f"[collector] epoch {trainer.current_epoch} policy version {version}", flush=True)
        if version is not None:
            log_to_loggers(trainer, {"async/policy_version": float(version)})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stop_file.exists():
            trainer.should_stop = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_cli(p)
    # CPU-sized defaults for this small task (the common flags default to GPU-sized runs).
    p.set_defaults(
        epochs=20,
        batches_per_epoch=100,
        timesteps_per_epoch=40,
        parallel_actors=4,
        env_mode="sync",
        traj_encoder="rnn",
        memory_size=64,
        memory_layers=1,
        dloader_workers=0,
        val_interval=5,
        ckpt_interval=10,
        dset_max_size=2000,
        no_log=True,  # CSV logs only; wandb with --configs or by editing this script
    )
    p.add_argument("--corridor", type=int, default=6, help="T-Maze corridor length")
    p.add_argument(
        "--launch", type=int, default=None, metavar="N", help="start a learner and N collectors here"
    )
    p.add_argument(
        "--collector_epochs", type=int, default=None, help="stop collectors after this many epochs"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.corridor, args.epochs, args.batches_per_epoch = 2, 3, 10
        args.timesteps_per_epoch, args.parallel_actors, args.batch_size = 6, 2, 8
        args.memory_size, args.val_interval, args.ckpt_interval = 16, None, None
    return args


def run(args: argparse.Namespace) -> None:
    """One process in ``args.mode`` ("learn", "collect" or "both")."""
    config = {
        "Agent.reward_multiplier": 10.0,
        "Agent.gamma": 0.99,
        "FFTstepEncoder.d_hidden": 2 * args.memory_size,
        "FFTstepEncoder.d_output": args.memory_size,
        "FFTstepEncoder.normalize_inputs": False,
        "Actor.d_hidden": args.memory_size,
        "NCritics.d_hidden": args.memory_size,
    }
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(
        config, args.traj_encoder, memory_size=args.memory_size, layers=args.memory_layers
    )
    agent = switch_agent(config, args.agent_type)
    use_config(config, args.configs)

    horizon = args.corridor + 1
    make_env = MakeTMaze(args.corridor)
    experiment = create_experiment_from_cli(
        args,
        make_train_env=make_env,
        make_val_env=make_env,
        max_seq_len=horizon,
        group_name=args.run_name,
        run_name=args.run_name,
        agent_type=agent,
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        traj_save_len=horizon + 1,
        stagger_traj_file_lengths=False,
        val_timesteps_per_epoch=horizon + 1,
        seed=args.seed,
        verbose=False,
        log_interval=10,
    )  # create_experiment_from_cli applies switch_async_mode(experiment, args.mode)
    run_dir = experiment.run_dir
    if args.mode == "collect":
        if args.collector_epochs is not None:
            experiment.epochs = args.collector_epochs
        # Collectors share the run folder with the learner: give each its own log folder, so no
        # two processes race for logs/version_N.
        tag = f"collector_{args.seed}_{time.time_ns()}"
        experiment.trainer_kwargs = {"logger": CSVLogger(save_dir=str(run_dir), name="logs", version=tag)}
    experiment.start()
    if args.mode == "collect":
        experiment.trainer.callbacks.append(CollectorControl(run_dir))
    if args.ckpt is not None:
        experiment.load_checkpoint(args.ckpt)
    experiment.learn()
    if args.mode == "learn":
        print(f"[learner] done after {experiment.trainer.global_step} gradient steps", flush=True)


def launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Start a learner and ``args.launch`` collectors as child processes of this one."""
    run_dir = Path(args.buffer_dir) / args.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    log_dir = run_dir / "process_logs"
    log_dir.mkdir(exist_ok=True)
    base = [sys.executable, str(Path(__file__).resolve()), *_without_launch(argv)]

    def start(name: str, extra: list[str]) -> tuple[subprocess.Popen, object]:
        out = open(log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed below
        return subprocess.Popen([*base, *extra], stdout=out, stderr=subprocess.STDOUT), out

    learner, learner_log = start("learner", ["--mode", "learn", "--seed", str(args.seed)])
    # Different seeds: collectors must not replay the same episodes.
    collectors = [
        start(f"collector{i}", ["--mode", "collect", "--seed", str(args.seed + 1 + i)])
        for i in range(args.launch)
    ]
    print(f"learner pid {learner.pid}, collectors {[c.pid for c, _ in collectors]}; logs in {log_dir}")
    code = learner.wait()
    (run_dir / STOP_FILE).touch()  # collectors finish their current epoch and exit
    for proc, out in collectors:
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        out.close()
    learner_log.close()
    codes = [code] + [p.returncode for p, _ in collectors]
    print(f"exit codes: learner {codes[0]}, collectors {codes[1:]}")
    return max(abs(c) for c in codes)


def _without_launch(argv: list[str]) -> list[str]:
    """``argv`` minus the flags the launcher sets per child (--launch, --mode, --seed)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--launch", "--mode", "--seed"):
            skip = True  # drop the value that follows
        elif not a.startswith(("--launch=", "--mode=", "--seed=")):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.launch is not None:
        sys.exit(launch(args, argv))
    run(args)


if __name__ == "__main__":
    main()
