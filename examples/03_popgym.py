"""POPGym memory tasks (the original's example 03; needs ``pip install popgym``).

The defaults are CPU-sized: RepeatPreviousEasy (repeat the suit of the card dealt 4 steps ago,
51-step episodes, the best return is 1.0) with a whole episode in the context. The original
trained every POPGym task with a 2000-step context, learnable positions and 1000 updates per
epoch on a GPU; ``--max_seq_len``, ``--memory_size`` and ``--epochs`` scale this script up. The
Transformer here uses rotary positions (``--pos_emb rope``): on RepeatPreviousEasy it reaches a
return of about 0.98 after 1-2k env steps, where absolute positions were still near 0 after 10k.

    python examples/03_popgym.py                                  # CPU, about 8 minutes
    python examples/03_popgym.py --env AutoencodeEasy --epochs 100
    python examples/03_popgym.py --env RepeatPreviousEasy --traj_encoder rnn
    python examples/03_popgym.py --tiny                           # one tiny epoch (seconds)
"""

from __future__ import annotations

import argparse

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs.builtin.popgym_envs import POPGymAMAGO
from amago_pl.modules.agent import Agent


class MakePOPGym:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self) -> POPGymAMAGO:
        return POPGymAMAGO(self.name)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="RepeatPreviousEasy", help="POPGym class name")
    p.add_argument(
        "--max_seq_len", type=int, default=52, help="context (52 = a whole RepeatPrevious episode)"
    )
    p.add_argument("--traj_encoder", default="transformer", choices=["transformer", "rnn", "ff"])
    p.add_argument("--memory_size", type=int, default=128)
    p.add_argument("--memory_layers", type=int, default=2)
    p.add_argument(
        "--pos_emb",
        default="rope",
        choices=["rope", "fixed", "learnable"],
        help="Transformer positions; rotary (relative) positions learn 'the card k steps back' quickly",
    )
    p.add_argument("--run_name", default=None, help="default: popgym_<env>")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--timesteps_per_epoch", type=int, default=52, help="env steps per actor per epoch")
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.epochs, args.parallel_actors, args.batches_per_epoch, args.timesteps_per_epoch = 1, 2, 2, 10
        args.memory_size, args.memory_layers, args.max_seq_len = 32, 1, 16
    return args


def main() -> None:
    args = parse_args()
    run_name = args.run_name or f"popgym_{args.env}"
    config = {"Agent.reward_multiplier": 100.0, "Agent.gamma": 0.99}
    tstep = switch_tstep_encoder(config, "ff", d_hidden=128, d_output=64)
    w = args.memory_size
    if args.traj_encoder == "transformer":
        traj = switch_traj_encoder(
            config,
            "transformer",
            d_model=w,
            d_ff=4 * w,
            n_layers=args.memory_layers,
            n_heads=4,
            pos_emb=args.pos_emb,
        )
    else:
        traj = switch_traj_encoder(config, args.traj_encoder, memory_size=w, layers=args.memory_layers)
    explore = switch_exploration(config, "egreedy", eps_start=1.0, eps_end=0.05, steps_anneal=500)
    use_config(config, args.configs)

    make_env = MakePOPGym(args.env)
    experiment = Experiment(
        run_name=run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=args.max_seq_len,
        traj_save_len=args.max_seq_len + 1,
        stagger_traj_file_lengths=False,
        dataset=DiskTrajDataset(dset_root=args.buffer_dir, dset_name=run_name, dset_max_size=20_000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=make_env,
        make_val_env=make_env,
        parallel_actors=args.parallel_actors,
        env_mode=args.env_mode,
        epochs=args.epochs,
        train_timesteps_per_epoch=args.timesteps_per_epoch,
        train_batches_per_epoch=args.batches_per_epoch,
        val_timesteps_per_epoch=10 if args.tiny else 2 * args.max_seq_len,
        val_interval=None if args.tiny else 5,
        ckpt_interval=None if args.tiny else 10,
        sample_actions_val=False,
        batch_size=8 if args.tiny else 24,
        learning_rate=3e-4,
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    experiment.learn()
    experiment.evaluate_test(
        make_env, timesteps=60 if args.tiny else 2 * args.max_seq_len
    )  # 51-step episodes


if __name__ == "__main__":
    main()
