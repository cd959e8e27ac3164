"""T-Maze: the default training job. A memory task: the goal side is shown only at the first step
and must be recalled at the end of the corridor (the original's examples/04_tmaze.py at 2d85600).

    python examples/04_tmaze.py                      # CPU; stops once every validation episode succeeds
    python examples/04_tmaze.py --corridor 50 --epochs 60 --traj_encoder rnn
    python examples/04_tmaze.py --no_stop            # train all --epochs
    python examples/04_tmaze.py --tiny                # one tiny epoch (seconds)

The early stop is Lightning's ``EarlyStopping`` on the logged ``val/return``: the run ends at the
first validation whose mean return exceeds ``--stop_at``.
"""

from __future__ import annotations

import argparse

from lightning.pytorch.callbacks import EarlyStopping

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.modules.agent import Agent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corridor", type=int, default=10, help="corridor length (memory horizon)")
    p.add_argument("--run_name", default="tmaze_quickstart")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--traj_encoder", default="transformer", choices=["transformer", "rnn", "ff"])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files")
    p.add_argument(
        "--stop_at",
        type=float,
        default=0.99,
        help="stop once val/return exceeds this (a solved episode returns 1, a failed one at most 0; "
        "the default 0.99 means every validation episode was solved without a wasted step)",
    )
    p.add_argument("--no_stop", action="store_true", help="train all --epochs (no early stop)")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.corridor, args.epochs, args.parallel_actors, args.batches_per_epoch = 3, 1, 2, 2
    return args


def make_env(corridor: int):
    return lambda: AMAGOEnv(
        TMazeAltPassive(corridor_length=corridor, penalty=-1.0 / corridor), env_name=f"TMaze{corridor}"
    )


def main() -> None:
    args = parse_args()
    horizon = args.corridor + 1  # one episode fits in the context
    config = {
        "Agent.reward_multiplier": 100.0,
        "Agent.gamma": 0.9999,
        "Agent.tau": 0.01,
        "FFTstepEncoder.d_hidden": 128,
        "FFTstepEncoder.d_output": 64,
        "FFTstepEncoder.normalize_inputs": False,
    }
    tstep = switch_tstep_encoder(config, "ff")
    if args.traj_encoder == "transformer":
        traj = switch_traj_encoder(config, "transformer", d_model=128, d_ff=512, n_layers=2, n_heads=4)
    else:
        traj = switch_traj_encoder(config, args.traj_encoder, memory_size=128, layers=2)
    # Little exploration in the corridor, full exploration at the start and near the junction, so
    # both turns keep being tried there (the original example's schedule).
    explore = switch_exploration(config, "tmaze", horizon=args.corridor)
    use_config(config, args.configs)

    experiment = Experiment(
        run_name=args.run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=horizon,
        traj_save_len=horizon + 1,
        stagger_traj_file_lengths=False,
        dataset=DiskTrajDataset(dset_root=args.buffer_dir, dset_name=args.run_name, dset_max_size=5000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=make_env(args.corridor),
        make_val_env=make_env(args.corridor),
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=2 * horizon,
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=horizon + 1,
        val_interval=2,
        ckpt_interval=10,
        sample_actions_train=False,  # greedy + epsilon: the clipped softmax never becomes deterministic
        sample_actions_val=False,
        batch_size=24,
        learning_rate=3e-4,
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    if not (args.no_stop or args.tiny):
        # Lightning's early stop on the validation metric that EvalCallback logs with self.log.
        # It stops when the value is strictly above stopping_threshold; patience covers every
        # validation of the run, so only the threshold ends it early.
        experiment.trainer.callbacks.append(
            EarlyStopping(
                monitor="val/return",
                mode="max",
                stopping_threshold=args.stop_at,
                patience=args.epochs,
                verbose=True,
            )
        )
    experiment.learn()
    experiment.evaluate_test(make_env(args.corridor), timesteps=horizon + 1)


if __name__ == "__main__":
    main()
