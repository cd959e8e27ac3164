"""MazeRunner with hindsight instruction relabeling (the original's example 13).

Each episode draws a random maze and an ordered list of ``--num_goals`` goal cells; reward 1 per
goal reached in order. Random exploration rarely reaches even the first goal, so almost every
stored episode carries no reward. ``HindsightInstructionReplay`` rewrites sampled episodes as if
the instruction had been cells the agent did visit (see ``amago_pl/datamodules/hindsight.py``):

    --relabel all    every sampled episode becomes a success on k visited cells
    --relabel some   keep the real goals reached, relabel a random number of the rest
    --relabel none   no relabeling (the baseline)

The relabeler sees whole episodes, so files hold one episode each (``traj_save_len`` above the
time limit, no stagger), and the context covers a whole episode.

    python examples/mazerunner_relabeling.py --relabel some       # CPU; the longest example here
    python examples/mazerunner_relabeling.py --tiny               # seconds (tests)
"""

from __future__ import annotations

import argparse

import numpy as np

from amago_pl import Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.datamodules import DiskTrajDataset, HindsightInstructionReplay
from amago_pl.envs.builtin.mazerunner import MazeRunnerAMAGOEnv
from amago_pl.modules.agent import Agent


class MakeMaze:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, maze_dim: int, num_goals: int, time_limit: int):
        self.maze_dim, self.num_goals, self.time_limit = maze_dim, num_goals, time_limit

    def __call__(self) -> MazeRunnerAMAGOEnv:
        return MazeRunnerAMAGOEnv(self.maze_dim, self.num_goals, self.time_limit)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--relabel", default="some", choices=["some", "all", "none"])
    p.add_argument("--maze_dim", type=int, default=9, help="odd maze width in cells")
    p.add_argument("--num_goals", type=int, default=2)
    p.add_argument("--time_limit", type=int, default=60, help="env steps per episode")
    p.add_argument("--run_name", default="mazerunner_relabel")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--traj_encoder", default="transformer", choices=["transformer", "rnn"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    args = p.parse_args()
    if args.tiny:
        args.maze_dim, args.time_limit, args.epochs = 5, 8, 2
        args.parallel_actors, args.batches_per_epoch = 2, 4
    return args


def main() -> None:
    args = parse_args()
    width = 32 if args.tiny else 128
    config = {
        "Agent.reward_multiplier": 10.0,
        "Agent.gamma": 0.99,
        # The relabeler through gin, as the original binds it; the dataset builds the class.
        "HindsightInstructionReplay.num_goals": args.num_goals,
        "HindsightInstructionReplay.strategy": args.relabel,
        "HindsightInstructionReplay.time_limit": args.time_limit,
    }
    tstep = switch_tstep_encoder(config, "ff", d_hidden=width, d_output=width // 2)
    if args.traj_encoder == "transformer":
        traj = switch_traj_encoder(
            config, "transformer", d_model=width, d_ff=4 * width, n_layers=2, n_heads=4
        )
    else:
        traj = switch_traj_encoder(config, "rnn", memory_size=width, layers=1)
    explore = switch_exploration(
        config, "egreedy", eps_start=1.0, eps_end=0.05, steps_anneal=20 * args.time_limit
    )
    use_config(config, args.configs)

    make_env = MakeMaze(args.maze_dim, args.num_goals, args.time_limit)
    dataset = DiskTrajDataset(
        dset_root=args.buffer_dir,
        dset_name=args.run_name,
        dset_max_size=5000,
        relabeler=HindsightInstructionReplay,
    )
    experiment = Experiment(
        run_name=args.run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=args.time_limit,  # a whole episode in context
        traj_save_len=args.time_limit + 1,  # one episode per file: the relabeler needs all of it
        stagger_traj_file_lengths=False,
        dataset=dataset,
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=make_env,
        make_val_env=make_env,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=args.time_limit,  # env steps per actor per epoch
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=args.time_limit + 1,
        val_interval=None if args.tiny else 5,
        ckpt_interval=None if args.tiny else 20,
        batch_size=16 if args.tiny else 24,
        learning_rate=3e-4,
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    experiment.learn()
    result = experiment.evaluate_test(make_env, timesteps=args.time_limit + 1)
    goals = [ep.metrics["Goals Reached"] for ep in result.episodes if "Goals Reached" in ep.metrics]
    success = [ep.metrics["Success"] for ep in result.episodes if "Success" in ep.metrics]
    print(
        f"Test: {np.mean(goals):.2f} of {args.num_goals} goals reached, success rate {np.mean(success):.2f} "
        f"({len(goals)} episodes)"
    )


if __name__ == "__main__":
    main()
