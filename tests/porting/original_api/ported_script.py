"""A user's training script written against the original AMAGO's API (3.3.0, 2d85600), kept in the
original's spelling (``import amago``). tests/porting/test_ported_scripts.py renames it with
scripts/port_from_amago.py and runs ``--help`` and one tiny epoch per ``--env``. It is not a copy of
the original's examples: it exercises, in its own words, the names, keywords and gin keys they use."""

import random
from argparse import ArgumentParser

import amago
import gymnasium as gym
import numpy as np
import torch
from amago import TstepEncoder, cli_utils
from amago.agent import binary_filter, exp_filter  # noqa: F401  (imported as examples do)
from amago.envs import AMAGO_ENV_LOG_PREFIX, AMAGOEnv
from amago.envs.builtin.mazerunner import MazeRunnerAMAGOEnv
from amago.envs.builtin.popgym_envs import POPGymAMAGO
from amago.envs.builtin.tmaze import TMazeAltActive, TMazeAltPassive
from amago.envs.builtin.toy_gym import MetaFrozenLake, RoomKeyDoor
from amago.envs.env_utils import space_convert
from amago.envs.exploration import BilevelEpsilonGreedy, EpsilonGreedy  # noqa: F401
from amago.hindsight import FrozenTraj, Relabeler
from amago.loading import DiskTrajDataset, MixtureOfDatasets, RLData, RLDataset  # noqa: F401
from amago.nets.actor_critic import Actor, ResidualActor  # noqa: F401
from amago.nets.cnn import GridworldCNN, IMPALAishCNN, NatureishCNN  # noqa: F401
from amago.nets.policy_dists import GMM, Beta, TanhGaussian  # noqa: F401
from amago.nets.utils import add_activation_log, symlog
from torch import nn

ENVS = ("frozen_lake", "tmaze", "gym", "mazerunner", "key_door", "popgym")


class SlowerEpsilon(EpsilonGreedy):
    """An original-style exploration wrapper: ``cls(env, ...)`` per env, overriding ``current_eps``."""

    def __init__(self, env, horizon: int = 10, **kwargs):
        self.horizon = horizon
        super().__init__(env, **kwargs)

    def current_eps(self, local_step):
        eps = super().current_eps(local_step)
        eps[:] = np.minimum(eps, 0.5)
        return eps


class TinyTstep(TstepEncoder):
    """An original-style TstepEncoder: ``inner_forward(obs, rl2s, log_dict=None)``."""

    def __init__(self, obs_space, rl2_space, d: int = 16):
        super().__init__(obs_space=obs_space, rl2_space=rl2_space)
        d_in = sum(int(np.prod(s.shape)) for s in obs_space.values()) + rl2_space.shape[-1]
        self.net = nn.Linear(d_in, d)
        self.out_norm = amago.nets.ff.Normalization("layer", d)
        self.d = d

    def inner_forward(self, obs, rl2s, log_dict=None):
        flat = [v.flatten(start_dim=2).float() for v in obs.values()]
        out = self.out_norm(self.net(torch.cat(flat + [symlog(rl2s)], dim=-1)))
        add_activation_log("tiny_tstep", out, log_dict)
        return out

    @property
    def emb_dim(self):
        return self.d


class FirstGoalRelabeler(Relabeler):
    """An original-style relabeler: reads the (L, 1) rewards and edits the trajectory in place."""

    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        assert traj.rews.ndim == 2 and traj.rews.shape[1] == 1
        if traj.rews[:, 0].sum() == 0 and random.random() < 0.5:
            traj.rews[:] = 0.0
            traj.rews[-1] = 1.0
        del traj.obs["achieved"]
        return traj


def make_env_fn(name: str):
    if name == "frozen_lake":
        return lambda: AMAGOEnv(
            MetaFrozenLake(size=3, k_episodes=2, hard_mode=False, recover_mode=False, show_k_progress=True),
            env_name="lake",
        )
    if name == "tmaze":
        return lambda: AMAGOEnv(
            random.choice([TMazeAltPassive, TMazeAltActive])(corridor_length=3), env_name="tm"
        )
    if name == "gym":
        return lambda: AMAGOEnv(gym.make("CartPole-v1"), env_name="CartPole-v1")
    if name == "mazerunner":
        return lambda: MazeRunnerAMAGOEnv(
            maze_dim=5, num_goals=1, time_limit=20, randomized_action_space=True
        )
    if name == "key_door":
        return lambda: AMAGOEnv(
            RoomKeyDoor(size=4, max_episode_steps=10, meta_rollout_horizon=30), env_name="kd"
        )
    return lambda: POPGymAMAGO("popgym-RepeatPreviousEasy-v0")


if __name__ == "__main__":
    parser = ArgumentParser()
    cli_utils.add_common_cli(parser)
    parser.add_argument("--env", choices=ENVS, required=True)
    parser.add_argument("--max_seq_len", type=int, default=16)
    args = parser.parse_args()
    assert AMAGO_ENV_LOG_PREFIX and space_convert(gym.spaces.Discrete(3)).n == 3

    config = {"amago.nets.actor_critic.NCritics.d_hidden": 32, "amago.nets.actor_critic.Actor.d_hidden": 32}
    traj_encoder_type = cli_utils.switch_traj_encoder(
        config, arch=args.traj_encoder, memory_size=args.memory_size, layers=args.memory_layers
    )
    if args.env in ("frozen_lake", "gym"):
        tstep_encoder_type = TinyTstep
    else:
        keys = ["obs", "goals"] if args.env == "mazerunner" else None
        tstep_encoder_type = cli_utils.switch_tstep_encoder(
            config, arch="ff", n_layers=1, d_hidden=32, d_output=16, specify_obs_keys=keys
        )
    if args.env == "tmaze":
        exploration_wrapper_type = SlowerEpsilon
    else:
        exploration_wrapper_type = cli_utils.switch_exploration(
            config,
            strategy="bilevel" if args.env == "key_door" else "egreedy",
            steps_anneal=1000,
            **({"rollout_horizon": 30} if args.env == "key_door" else {}),
        )
    agent_type = cli_utils.switch_agent(config, args.agent_type, reward_multiplier=10.0, tau=0.004)
    cli_utils.use_config(config, args.configs)

    group_name = args.run_name
    for trial in range(args.trials):
        run_name = f"{group_name}_trial_{trial}"
        dset = None
        if args.env == "mazerunner":
            dset = DiskTrajDataset(
                dset_root=args.buffer_dir,
                dset_name=run_name,
                dset_max_size=args.dset_max_size,
                relabeler=FirstGoalRelabeler(),
            )
        experiment = cli_utils.create_experiment_from_cli(
            args,
            make_train_env=make_env_fn(args.env),
            make_val_env=make_env_fn(args.env),
            max_seq_len=args.max_seq_len,
            traj_save_len=args.max_seq_len * 2,
            run_name=run_name,
            group_name=group_name,
            tstep_encoder_type=tstep_encoder_type,
            traj_encoder_type=traj_encoder_type,
            exploration_wrapper_type=exploration_wrapper_type,
            agent_type=agent_type,
            val_timesteps_per_epoch=args.max_seq_len,
            dataset=dset,
            learning_rate=3e-4,
        )
        experiment = cli_utils.switch_async_mode(experiment, args.mode)
        experiment.start()
        experiment.learn()
        experiment.evaluate_test(make_env_fn(args.env), timesteps=8, render=False)
        experiment.delete_buffer_from_disk()
        print("PORTED_RUN_OK", args.env, isinstance(experiment, amago.Experiment))
