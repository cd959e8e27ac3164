"""Any gymnasium env with a flat observation (the original's example 01).

CartPole-v1 and Pendulum-v1 have tuned CPU presets (the settings of ``tests/learning``, see
docs/learning_results.md); other ids get the CartPole preset for discrete actions and the Pendulum
one for continuous actions. Rewards are not rescaled by the env: ``Agent.reward_multiplier``
scales them inside the loss only.

    python examples/01_basic_gym.py --env CartPole-v1                 # CPU, 2-4 minutes (stops at 400)
    python examples/01_basic_gym.py --env Pendulum-v1                 # CPU, about 8 minutes
    python examples/01_basic_gym.py --env CartPole-v1 --traj_encoder transformer
    python examples/01_basic_gym.py --env Acrobot-v1 --epochs 40
    python examples/01_basic_gym.py --tiny                            # one tiny epoch (seconds)
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from lightning.pytorch.callbacks import EarlyStopping

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.modules.agent import Agent

# Per-env presets: Agent/encoder keywords and the schedule (env steps per actor per epoch, updates).
PRESETS = {
    "discrete": dict(
        # The CartPole recipe of tests/learning. The original's 01 clipped Discrete to [1e-6, 1];
        # the default [0.001, 0.99] keeps the actor's gradient alive.
        gin={
            "Agent.reward_multiplier": 1.0,
            "Agent.gamma": 0.99,
            "Actor.d_hidden": 128,
            "NCritics.d_hidden": 128,
        },
        traj_encoder="ff",
        width=128,
        max_seq_len=16,
        timesteps_per_epoch=125,
        batches_per_epoch=100,
        epochs=40,
        eps_anneal=1000,
        eps_start=1.0,
        learning_rate=1e-3,
        val_interval=1,
        stop_at=400.0,
    ),
    "continuous": dict(
        gin={"Agent.reward_multiplier": 0.1, "Agent.gamma": 0.99, "Agent.tau": 0.005},
        traj_encoder="transformer",
        width=64,
        max_seq_len=16,
        timesteps_per_epoch=200,
        batches_per_epoch=200,
        epochs=12,
        eps_anneal=1000,
        eps_start=0.5,
        learning_rate=3e-4,
        val_interval=2,
        stop_at=None,
    ),
}


class StopAtValidationReturn(EarlyStopping):
    """Lightning's ``EarlyStopping`` on ``val/return``: stop once a validation's mean return reaches
    ``threshold``.

    CartPole's greedy return swings between validations (docs/learning_results.md), so the run
    keeps the first policy that reached the threshold instead of whatever the last epoch left.
    """

    def __init__(self, threshold: float):
        # EarlyStopping stops when the value is strictly above stopping_threshold, and self.log
        # stores float32: the float32 just below ``threshold`` makes it "reaches" (>=) exactly.
        below = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
        super().__init__(
            monitor="val/return",
            mode="max",
            stopping_threshold=below,
            patience=2**31,  # only the threshold ends the run early
            strict=False,  # a validation in which no episode finished logs no return: skip it
            verbose=True,
        )
        self.threshold = threshold


class MakeGymEnv:
    """A picklable env factory (async vector envs pickle it)."""

    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(gym.make(self.env_id), env_name=self.env_id)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1", help="gymnasium id (flat Box observation)")
    p.add_argument("--run_name", default=None, help="default: basic_gym_<env>")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument(
        "--traj_encoder", default=None, choices=["ff", "transformer", "rnn"], help="default: preset"
    )
    p.add_argument("--memory_size", type=int, default=None, help="sequence model width (default: preset)")
    p.add_argument("--max_seq_len", type=int, default=None, help="context length (default: preset)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--timesteps_per_epoch", type=int, default=None, help="env steps per actor per epoch")
    p.add_argument("--batches_per_epoch", type=int, default=None, help="gradient updates per epoch")
    p.add_argument("--parallel_actors", type=int, default=8)
    p.add_argument("--env_mode", default="sync", choices=["sync", "async"])
    p.add_argument("--dloader_workers", type=int, default=0)
    p.add_argument(
        "--stop_at",
        type=float,
        default=None,
        help="stop once a validation return reaches this (default: preset, 400 for discrete actions)",
    )
    p.add_argument("--no_stop", action="store_true", help="train every epoch, never stop early")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="one tiny epoch (a smoke test)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    probe = gym.make(args.env)
    discrete = isinstance(probe.action_space, gym.spaces.Discrete)
    probe.close()
    preset = dict(PRESETS["discrete" if discrete else "continuous"])
    for key in ("traj_encoder", "max_seq_len", "epochs", "timesteps_per_epoch", "batches_per_epoch"):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    width = args.memory_size or preset["width"]
    if args.tiny:
        preset.update(epochs=1, timesteps_per_epoch=20, batches_per_epoch=2)
        args.parallel_actors, width = 2, 32
    run_name = args.run_name or f"basic_gym_{args.env}"

    config = dict(preset["gin"])
    tstep = switch_tstep_encoder(config, "ff", d_hidden=128, d_output=64)
    if preset["traj_encoder"] == "transformer":
        traj = switch_traj_encoder(
            config, "transformer", d_model=width, d_ff=4 * width, n_layers=1, n_heads=4
        )
    else:
        traj = switch_traj_encoder(config, preset["traj_encoder"], memory_size=width, layers=1)
    explore = switch_exploration(
        config, "egreedy", eps_start=preset["eps_start"], eps_end=0.05, steps_anneal=preset["eps_anneal"]
    )
    use_config(config, args.configs)

    make_env = MakeGymEnv(args.env)
    experiment = Experiment(
        run_name=run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=preset["max_seq_len"],
        traj_save_len=4 * preset["max_seq_len"],
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
        epochs=preset["epochs"],
        train_timesteps_per_epoch=preset["timesteps_per_epoch"],
        train_batches_per_epoch=preset["batches_per_epoch"],
        val_timesteps_per_epoch=20 if args.tiny else 500,
        val_interval=None if args.tiny else preset["val_interval"],
        ckpt_interval=None if args.tiny else 10,
        sample_actions_val=False,  # evaluate the greedy policy
        batch_size=8 if args.tiny else 24,
        learning_rate=preset["learning_rate"],
        lr_warmup_steps=100,
        dloader_workers=args.dloader_workers,
        log_interval=50,
        seed=args.seed,
    )
    experiment.start()
    stop_at = args.stop_at if args.stop_at is not None else preset["stop_at"]
    if stop_at is not None and not args.no_stop and not args.tiny:
        experiment.trainer.callbacks.append(StopAtValidationReturn(stop_at))
    experiment.learn()
    experiment.evaluate_test(make_env, timesteps=20 if args.tiny else 1000)


if __name__ == "__main__":
    main()
