"""Meta-Frozen-Lake: a new random lake every env episode, ``--k`` attempts to reach the goal
(the original's example 00). A memory policy remembers the holes it fell into and improves from
one attempt to the next: watch ``Episode i Success`` for i = 1..k in the val/test metrics.

The defaults are CPU-sized (4x4 lake, 3 attempts, the setting of ``tests/learning``); the
original's run was 5x5 with 10 attempts, 32 actors and 700 epochs of 1000 updates.

    python examples/00_meta_frozen_lake.py                        # CPU, about 4 minutes
    python examples/00_meta_frozen_lake.py --size 5 --k 10 --epochs 200 --seq_model rnn
    python examples/00_meta_frozen_lake.py --hard_mode            # shuffled actions per lake
    python examples/00_meta_frozen_lake.py --tiny                 # one tiny epoch (seconds)
"""

from __future__ import annotations

import argparse

import numpy as np

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.toy_gym import MetaFrozenLake
from amago_pl.modules.agent import Agent


class MakeLake:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, size: int, k: int, hard_mode: bool, recover_mode: bool):
        self.size, self.k, self.hard_mode, self.recover_mode = size, k, hard_mode, recover_mode

    def __call__(self) -> AMAGOEnv:
        env = MetaFrozenLake(self.size, self.k, hard_mode=self.hard_mode, recover_mode=self.recover_mode)
        return AMAGOEnv(env, env_name=env.env_name)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4, help="lake width and height")
    p.add_argument("--k", type=int, default=3, help="attempts per env episode")
    p.add_argument("--hard_mode", action="store_true")
    p.add_argument("--recover_mode", action="store_true")
    p.add_argument("--seq_model", default="transformer", choices=["transformer", "rnn", "ff"])
    p.add_argument("--memory_size", type=int, default=128)
    p.add_argument("--memory_layers", type=int, default=2)
    p.add_argument("--run_name", default="meta_frozen_lake")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument(
        "--eps_anneal",
        type=int,
        default=150,
        help="env steps per actor over which epsilon goes 1 -> 0.05; 150 (the test recipe's) is about "
        "3 meta-episodes of the default lake: scale it with size^2 * k for bigger lakes",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.size, args.k, args.epochs, args.parallel_actors, args.batches_per_epoch = 3, 2, 1, 2, 2
        args.memory_size, args.memory_layers = 32, 1
    return args


def main() -> None:
    args = parse_args()
    attempt_len = (2 if args.hard_mode else 1) * args.size**2
    horizon = attempt_len * args.k  # the whole meta-episode fits in the context
    config = {"Agent.reward_multiplier": 100.0, "Agent.tau": 0.01}  # fast targets for a short run
    tstep = switch_tstep_encoder(config, "ff", n_layers=1, d_hidden=128, d_output=64, normalize_inputs=False)
    if args.seq_model == "transformer":
        w = args.memory_size
        traj = switch_traj_encoder(
            config, "transformer", d_model=w, d_ff=4 * w, n_layers=args.memory_layers, n_heads=4
        )
    else:
        traj = switch_traj_encoder(
            config, args.seq_model, memory_size=args.memory_size, layers=args.memory_layers
        )
    # A short anneal (about 3 meta-episodes per actor): a longer one left most of the CPU budget's
    # data random (docs/learning_results.md, Meta-Frozen-Lake, session 4).
    explore = switch_exploration(config, "egreedy", eps_start=1.0, eps_end=0.05, steps_anneal=args.eps_anneal)
    use_config(config, args.configs)

    make_env = MakeLake(args.size, args.k, args.hard_mode, args.recover_mode)
    experiment = Experiment(
        run_name=args.run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=horizon,
        traj_save_len=horizon + 1,
        stagger_traj_file_lengths=False,
        dataset=DiskTrajDataset(dset_root=args.buffer_dir, dset_name=args.run_name, dset_max_size=12_500),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=make_env,
        make_val_env=make_env,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=horizon,
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=horizon,
        val_interval=None if args.tiny else 3,
        ckpt_interval=None if args.tiny else 10,
        batch_size=8 if args.tiny else 24,
        learning_rate=1e-4,
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    experiment.learn()
    result = experiment.evaluate_test(make_env, timesteps=(1 if args.tiny else 4) * horizon)
    for i in range(1, args.k + 1):
        vals = [
            ep.metrics[f"Episode {i} Success"]
            for ep in result.episodes
            if f"Episode {i} Success" in ep.metrics
        ]
        print(f"attempt {i}: success {np.mean(vals) if vals else float('nan'):.2f} ({len(vals)} lakes)")


if __name__ == "__main__":
    main()
