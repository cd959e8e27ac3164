"""MazeRunner: reach a sequence of goal cells, in order, in a random maze (the original's
example 13). The current goal is part of the observation, so this script runs the plain task;
``examples/mazerunner_relabeling.py`` runs the same maze with goal-conditioned dict observations
and hindsight instruction relabeling (the original's ``--relabel`` option).

The defaults are CPU-sized (9x9 maze, 1-2 goals, 60 steps); the original used an 11x11 maze, 3
goals and a 250-step time limit (``--maze_dim 11 --max_goals 3 --time_limit 250``).

    python examples/13_mazerunner.py                              # CPU, about 8 minutes
    python examples/13_mazerunner.py --maze_dim 11 --max_goals 3 --time_limit 250 --epochs 200
    python examples/13_mazerunner.py --tiny                       # one tiny epoch (seconds)
"""

from __future__ import annotations

import argparse

import numpy as np

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.mazerunner import MazeRunnerGymEnv
from amago_pl.modules.agent import Agent


class MakeMaze:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, maze_dim: int, min_goals: int, max_goals: int, time_limit: int):
        self.args = (maze_dim, min_goals, max_goals, time_limit)

    def __call__(self) -> AMAGOEnv:
        dim, lo, hi, limit = self.args
        return AMAGOEnv(
            MazeRunnerGymEnv(dim, lo, hi, limit, goal_in_obs=True), env_name=f"MazeRunner-{dim}x{dim}"
        )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maze_dim", type=int, default=9, help="odd maze width in cells")
    p.add_argument("--min_goals", type=int, default=1)
    p.add_argument("--max_goals", type=int, default=2)
    p.add_argument("--time_limit", type=int, default=60, help="env steps per episode (= context length)")
    p.add_argument("--traj_encoder", default="transformer", choices=["transformer", "rnn"])
    p.add_argument("--memory_size", type=int, default=128)
    p.add_argument("--memory_layers", type=int, default=2)
    p.add_argument("--run_name", default="mazerunner")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.maze_dim, args.time_limit, args.epochs, args.parallel_actors, args.batches_per_epoch = (
            5,
            8,
            1,
            2,
            2,
        )
        args.memory_size, args.memory_layers = 32, 1
    return args


def main() -> None:
    args = parse_args()
    config = {"Agent.reward_multiplier": 10.0, "Agent.gamma": 0.99}
    tstep = switch_tstep_encoder(config, "ff", d_hidden=128, d_output=64)
    w = args.memory_size
    if args.traj_encoder == "transformer":
        traj = switch_traj_encoder(
            config, "transformer", d_model=w, d_ff=4 * w, n_layers=args.memory_layers, n_heads=4
        )
    else:
        traj = switch_traj_encoder(config, "rnn", memory_size=w, layers=args.memory_layers)
    explore = switch_exploration(
        config, "egreedy", eps_start=1.0, eps_end=0.05, steps_anneal=20 * args.time_limit
    )
    use_config(config, args.configs)

    make_env = MakeMaze(args.maze_dim, args.min_goals, args.max_goals, args.time_limit)
    experiment = Experiment(
        run_name=args.run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=args.time_limit,  # a whole episode in context
        traj_save_len=args.time_limit + 1,
        stagger_traj_file_lengths=False,
        dataset=DiskTrajDataset(dset_root=args.buffer_dir, dset_name=args.run_name, dset_max_size=5000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=make_env,
        make_val_env=make_env,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=args.time_limit,
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=args.time_limit + 1,
        val_interval=None if args.tiny else 5,
        ckpt_interval=None if args.tiny else 20,
        batch_size=8 if args.tiny else 24,
        learning_rate=3e-4,
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    experiment.learn()
    result = experiment.evaluate_test(make_env, timesteps=args.time_limit + 1)
    success = [ep.metrics["Success"] for ep in result.episodes if "Success" in ep.metrics]
    print(f"Test success rate {np.mean(success) if success else float('nan'):.2f} ({len(success)} episodes)")


if __name__ == "__main__":
    main()
