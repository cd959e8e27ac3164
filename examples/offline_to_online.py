"""Offline RL from a scripted dataset, then online fine-tuning (offline-to-online) on T-Maze.

1. Build a dataset: a scripted expert (walk right, turn toward the side shown at the start) plays
   some episodes and a uniformly random policy plays the rest. The files go to
   ``{buffer_dir}/{run_name}_offline/buffer/protected/``, which is never evicted.
2. Train offline for ``--offline_epochs`` (no env steps: collection starts after them), with the
   settings of ``amago_pl/configs/offline.gin`` (advantage-weighted BC, no DPG term).
3. Keep training for ``--online_epochs`` while collecting: a ``MixtureOfDatasets`` samples the
   offline files and the new online buffer (the online share anneals in).

    python examples/offline_to_online.py                  # CPU, a few minutes
    python examples/offline_to_online.py --tiny           # seconds (used by the tests)
    python examples/offline_to_online.py --online_epochs 0 --bc   # plain behaviour cloning
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import amago_pl
from amago_pl import Experiment
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.datamodules import DiskTrajDataset, MixtureOfDatasets, RLDataset, write_offline_dataset
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import DOWN, RIGHT, UP, TMazeAltPassive
from amago_pl.modules.agent import Agent

OFFLINE_GIN = Path(amago_pl.__file__).parent / "configs" / "offline.gin"


class MakeTMaze:
    """A picklable env factory (async envs and subprocesses need one)."""

    def __init__(self, corridor: int):
        self.corridor = corridor

    def __call__(self) -> AMAGOEnv:
        env = TMazeAltPassive(corridor_length=self.corridor, penalty=-1.0 / self.corridor)
        return AMAGOEnv(env, env_name=f"TMaze{self.corridor}")


# ---------------------------------------------------------------------------- dataset
def expert_action(obs: np.ndarray, signal: float) -> int:
    """T-Maze needs no search: go right until the junction, then turn toward the remembered side."""
    at_junction = obs[1] > 0.5
    if not at_junction:
        return RIGHT
    return UP if signal > 0 else DOWN


def scripted_episodes(corridor: int, episodes: int, random_frac: float, seed: int) -> dict[str, np.ndarray]:
    """Flat observation-row arrays (the layout ``write_offline_dataset`` reads by default).

    Each episode is played by the expert, or with probability ``random_frac`` by a uniformly
    random policy. Rows: every observation including each episode's last one; the action, reward
    and flags of a row describe the step taken from that observation.
    """
    rng = np.random.default_rng(seed)
    env = MakeTMaze(corridor)()
    rows: dict[str, list] = {
        k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated", "starts")
    }
    returns = {"expert": [], "random": []}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 100_003 + ep)
        obs = obs["observation"]
        signal = float(obs[0])  # shown only now: the expert "remembers" it
        is_random = rng.random() < random_frac
        total, first = 0.0, True
        while True:
            action = int(rng.integers(4)) if is_random else expert_action(obs, signal)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in (("obs", obs), ("actions", action), ("rewards", reward)):
                rows[key].append(value)
            rows["terminated"].append(terminated)
            rows["truncated"].append(truncated)
            rows["starts"].append(first)
            total += float(reward)
            obs, first = next_obs["observation"], False
            if terminated or truncated:
                break
        # The episode's last observation: a row whose step values are ignored.
        for key, value in (("obs", obs), ("actions", 0), ("rewards", 0.0), ("terminated", False)):
            rows[key].append(value)
        rows["truncated"].append(False)
        rows["starts"].append(False)
        returns["random" if is_random else "expert"].append(total)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["expert_return"] = np.asarray(np.mean(returns["expert"]) if returns["expert"] else np.nan)
    out["random_return"] = np.asarray(np.mean(returns["random"]) if returns["random"] else np.nan)
    return out


def build_offline_dataset(
    buffer_dir: str | Path, name: str, corridor: int, episodes: int, random_frac: float, seed: int
) -> tuple[DiskTrajDataset, dict[str, float]]:
    """Write the scripted dataset once (protected files) and open it read-only."""
    store_path = Path(buffer_dir) / name / "buffer"
    stats: dict[str, float] = {}
    if not any((store_path / "protected").glob("*.npz")):
        data = scripted_episodes(corridor, episodes, random_frac, seed)
        write_offline_dataset(
            store_path,
            observations=data["obs"],
            actions=data["actions"],
            rewards=data["rewards"],
            terminated=data["terminated"],
            truncated=data["truncated"],
            episode_starts=data["starts"],
            env_name=f"TMaze{corridor}",
            discrete=4,  # the action count: random episodes may never use some actions
        )
        stats = {"expert_return": float(data["expert_return"]), "random_return": float(data["random_return"])}
    offline = DiskTrajDataset(buffer_dir, name, dset_max_size=10**9, accept_new_trajs=False)
    return offline, stats


# ---------------------------------------------------------------------------- run
def configure_gin(
    bc: bool, extra_configs: list[str] | None = None, finalize: bool = True
) -> tuple[type, type]:
    """Small nets for CPU, the offline actor loss, and plain BC (``fake_filter``) if asked."""
    config = {
        "Agent.gamma": 0.99,
        "Agent.reward_multiplier": 10.0,
        "Agent.use_multigamma": False,
        "Agent.num_critics": 2,
        "Agent.fake_filter": bc,
        "FFTstepEncoder.d_hidden": 64,
        "FFTstepEncoder.d_output": 32,
        "FFTstepEncoder.normalize_inputs": False,
        "Actor.d_hidden": 64,
        "NCritics.d_hidden": 64,
    }
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "rnn", memory_size=64, layers=1)
    # Online epochs start from a trained policy: a little epsilon-greedy noise, not 100% random.
    switch_exploration(config, "egreedy", eps_start=0.1, eps_end=0.02, steps_anneal=2000)
    # offline.gin last: the file is the documented source of the offline settings.
    use_config(config, [str(OFFLINE_GIN), *(extra_configs or [])], finalize=finalize)
    return tstep, traj


def build_experiment(
    run_name: str,
    buffer_dir: str | Path,
    dataset: RLDataset,
    corridor: int,
    tstep: type,
    traj: type,
    offline_epochs: int,
    online_epochs: int,
    batches_per_epoch: int,
    seed: int = 0,
    val_interval: int | None = None,
    **overrides,
) -> Experiment:
    horizon = corridor + 1
    kwargs = dict(
        run_name=run_name,
        ckpt_base_dir=str(buffer_dir),
        max_seq_len=horizon,
        traj_save_len=horizon + 1,  # one file per episode
        stagger_traj_file_lengths=False,
        dataset=dataset,
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        make_train_env=MakeTMaze(corridor),
        make_val_env=MakeTMaze(corridor),
        parallel_actors=4,
        env_mode="sync",
        epochs=offline_epochs + online_epochs,
        # Offline phase: no env steps until this epoch (beyond the run when online_epochs = 0).
        start_collecting_at_epoch=offline_epochs,
        train_timesteps_per_epoch=2 * horizon,  # env steps per actor per online epoch
        train_batches_per_epoch=batches_per_epoch,
        val_timesteps_per_epoch=2 * (horizon + 1) if val_interval else 0,
        val_interval=val_interval,
        # Greedy acting plus epsilon (as in 04_tmaze.py): the clipped softmax of the discrete
        # policy never becomes deterministic, and T-Maze fails on any single wrong step.
        sample_actions_train=False,
        sample_actions_val=False,
        ckpt_interval=None,
        batch_size=32,
        learning_rate=1e-3,
        lr_warmup_steps=20,
        dloader_workers=0,
        log_interval=20,
        seed=seed,
    )
    kwargs.update(overrides)
    return Experiment(**kwargs)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run_name", default="tmaze_offline_to_online")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--corridor", type=int, default=6, help="T-Maze corridor length (memory horizon)")
    p.add_argument("--episodes", type=int, default=1000, help="episodes in the offline dataset")
    p.add_argument("--random_frac", type=float, default=0.5, help="share of episodes played at random")
    p.add_argument("--offline_epochs", type=int, default=10)
    p.add_argument("--online_epochs", type=int, default=5, help="0: offline only")
    p.add_argument("--batches_per_epoch", type=int, default=100)
    p.add_argument("--online_weight", type=float, default=0.5, help="final sampling share of online data")
    p.add_argument("--bc", action="store_true", help="plain behaviour cloning (Agent.fake_filter = True)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=[], help="extra .gin files, applied last")
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    args = p.parse_args()
    if args.tiny:
        args.corridor, args.episodes, args.batches_per_epoch = 2, 40, 5
        args.offline_epochs, args.online_epochs = 2, 2
    return args


def main() -> None:
    args = parse_args()
    tstep, traj = configure_gin(args.bc, args.configs)
    offline, stats = build_offline_dataset(
        args.buffer_dir, f"{args.run_name}_offline", args.corridor, args.episodes, args.random_frac, args.seed
    )
    if stats:
        print(f"Offline dataset written: {stats}")
    online = DiskTrajDataset(args.buffer_dir, args.run_name, dset_max_size=5000)
    dataset = MixtureOfDatasets(
        [offline, online],
        sampling_weights=[1.0 - args.online_weight, args.online_weight],
        # The online buffer starts small and on-policy: phase it in over a few epochs.
        initial_sampling_weights=[1.0, 0.0],
        smooth_sudden_starts=max(args.online_epochs // 2, 1),
        dset_name="offline+online",
    )
    experiment = build_experiment(
        args.run_name,
        args.buffer_dir,
        dataset,
        args.corridor,
        tstep,
        traj,
        args.offline_epochs,
        args.online_epochs,
        args.batches_per_epoch,
        seed=args.seed,
        val_interval=max(args.offline_epochs // 2, 1),
    )
    experiment.start()
    experiment.learn()
    result = experiment.evaluate_test(MakeTMaze(args.corridor), timesteps=4 * (args.corridor + 2))
    print(f"Final test return: {result.metrics.get('test/return', float('nan')):.3f} (expert: 1.0)")


if __name__ == "__main__":
    main()
