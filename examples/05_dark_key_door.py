"""Dark Key-To-Door (the original's example 05): in a dark room, find a key (+1) and then the door
(+1), over and over during a meta-rollout in which the key, door and start cells stay put. The
agent sees only its own position, so it must remember where it found them.

The defaults are CPU-sized (5x5 room, trials of 25 steps, a 200-step meta-rollout in context);
the original used ``--room_size 8 --episode_length 50 --meta_horizon 500`` with bilevel epsilon
annealed over 500k steps.

    python examples/05_dark_key_door.py                           # CPU, about 10 minutes
    python examples/05_dark_key_door.py --room_size 8 --episode_length 50 --meta_horizon 500 --epochs 200
    python examples/05_dark_key_door.py --tiny                    # one tiny epoch (seconds)
"""

from __future__ import annotations

import argparse

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.toy_gym import RoomKeyDoor
from amago_pl.modules.agent import Agent


class MakeKeyDoor:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, size: int, episode_length: int, horizon: int):
        self.size, self.episode_length, self.horizon = size, episode_length, horizon

    def __call__(self) -> AMAGOEnv:
        env = RoomKeyDoor(
            dark=True,
            size=self.size,
            max_episode_steps=self.episode_length,
            meta_rollout_horizon=self.horizon,
        )
        return AMAGOEnv(env, env_name=env.env_name)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--room_size", type=int, default=5)
    p.add_argument("--episode_length", type=int, default=25, help="steps per trial")
    p.add_argument("--meta_horizon", type=int, default=200, help="steps per meta-rollout (= context length)")
    p.add_argument("--traj_encoder", default="transformer", choices=["transformer", "rnn"])
    p.add_argument("--memory_size", type=int, default=128)
    p.add_argument("--memory_layers", type=int, default=2)
    p.add_argument("--run_name", default="dark_key_door")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument(
        "--explore_anneal", type=int, default=4000, help="bilevel epsilon anneal (steps per actor)"
    )
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.room_size, args.episode_length, args.meta_horizon = 4, 5, 12
        args.epochs, args.parallel_actors, args.batches_per_epoch = 1, 2, 2
        args.memory_size, args.memory_layers = 32, 1
    return args


def main() -> None:
    args = parse_args()
    horizon = args.meta_horizon
    config = {"Agent.reward_multiplier": 100.0}
    tstep = switch_tstep_encoder(config, "ff", n_layers=1, d_hidden=128, d_output=64, normalize_inputs=False)
    w = args.memory_size
    if args.traj_encoder == "transformer":
        traj = switch_traj_encoder(
            config, "transformer", d_model=w, d_ff=4 * w, n_layers=args.memory_layers, n_heads=4
        )
    else:
        traj = switch_traj_encoder(config, "rnn", memory_size=w, layers=args.memory_layers)
    # Explore a lot early in each meta-rollout and little once the key and door are known.
    explore = switch_exploration(config, "bilevel", rollout_horizon=horizon, steps_anneal=args.explore_anneal)
    use_config(config, args.configs)

    make_env = MakeKeyDoor(args.room_size, args.episode_length, horizon)
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
        make_train_env=make_env,
        make_val_env=make_env,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=horizon,
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=horizon,
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
    experiment.evaluate_test(make_env, timesteps=horizon)


if __name__ == "__main__":
    main()
