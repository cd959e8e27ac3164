"""Deploy a trained agent: load it as a ``Policy``, act in your own gymnasium loop, evaluate it and
export its step function to TorchScript (docs/policy.md).

    python examples/deploy_policy.py --checkpoint runs/tmaze_quickstart/ckpts/latest/policy.pt
    python examples/deploy_policy.py            # trains a short T-Maze run first (about a minute)
    python examples/deploy_policy.py --tiny     # a tiny run first (seconds; a smoke test)

Without ``--checkpoint`` it trains ``--run_name`` in ``--buffer_dir`` and deploys that run's
``ckpts/latest/policy.pt``, the compact policy file every run writes at each checkpoint and at its end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from gymnasium.vector import SyncVectorEnv

from amago_pl import DiskTrajDataset, Experiment, Policy, evaluate_policy
from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from amago_pl.modules.agent import Agent
from amago_pl.policy.export import META_FILE, export_torchscript


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="a run's ckpts/last.ckpt or ckpts/latest/policy.pt")
    p.add_argument("--corridor", type=int, default=4, help="T-Maze corridor length (training and deployment)")
    p.add_argument("--run_name", default="deploy_policy_demo")
    p.add_argument("--buffer_dir", default="runs")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--episodes", type=int, default=8, help="evaluation episodes")
    p.add_argument("--tiny", action="store_true", help="a tiny training run first (a smoke test)")
    args = p.parse_args()
    if args.tiny:
        args.corridor, args.epochs, args.episodes = 3, 1, 2
    return args


def train(args: argparse.Namespace) -> Path:
    """A short T-Maze run; returns its compact policy file."""
    config = {"FFTstepEncoder.d_hidden": 64, "FFTstepEncoder.d_output": 32, "Agent.reward_multiplier": 100.0}
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "transformer", d_model=64, d_ff=128, n_layers=1, n_heads=2)
    use_config(config)
    horizon = args.corridor + 1
    experiment = Experiment(
        run_name=args.run_name,
        ckpt_base_dir=args.buffer_dir,
        max_seq_len=horizon,
        traj_save_len=horizon + 1,
        dataset=DiskTrajDataset(dset_root=args.buffer_dir, dset_name=args.run_name, dset_max_size=2000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        make_train_env=lambda: AMAGOEnv(TMazeAltPassive(corridor_length=args.corridor), env_name="TMaze"),
        make_val_env=lambda: AMAGOEnv(TMazeAltPassive(corridor_length=args.corridor), env_name="TMaze"),
        parallel_actors=4 if not args.tiny else 2,
        env_mode="sync",
        epochs=args.epochs,
        train_timesteps_per_epoch=4 * horizon,
        train_batches_per_epoch=40 if not args.tiny else 2,
        val_timesteps_per_epoch=horizon + 1,
        val_interval=max(1, args.epochs),
        batch_size=16,
        learning_rate=3e-4,
        verbose=False,
        seed=0,
    )
    experiment.start()
    experiment.learn()
    return Path(args.buffer_dir) / args.run_name / "ckpts" / "latest" / "policy.pt"


def main() -> None:
    args = parse_args()
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(args)

    # 1. Load: weights_only=True, the caller's gin configuration untouched.
    policy = Policy.from_checkpoint(checkpoint, device="cpu")
    print(f"loaded {checkpoint}: {type(policy.agent.traj_encoder).__name__}, gammas {policy.gammas}")

    # 2. Act in a plain gymnasium vector env (NEXT_STEP autoreset, gymnasium's default).
    envs = SyncVectorEnv([lambda: TMazeAltPassive(corridor_length=args.corridor)] * 2)
    policy.reset(env=envs)
    obs, _ = envs.reset(seed=0)
    reward = terminated = truncated = None
    for t in range(args.corridor + 2):
        actions, details = policy.act(
            obs, reward, terminated, truncated, deterministic=True, return_details=True
        )
        probs = [round(float(x), 3) for x in details.probs[0]]
        value = details.values[0, -1]  # env 0, the acting gamma
        print(f"step {t}: actions {actions.tolist()}, env 0 probabilities {probs}, value {value:.3f}")
        obs, reward, terminated, truncated, _ = envs.step(actions)
    envs.close()

    # 3. Evaluate without a Trainer.
    result = evaluate_policy(
        policy, lambda: TMazeAltPassive(corridor_length=args.corridor), args.episodes, num_envs=2, seed=1
    )
    print(f"returns {[round(r, 3) for r in result.returns]}, lengths {result.lengths}")
    print(f"Test average return: {result.mean_return:.3f} (std {result.std_return:.3f})")

    # 4. Export the step function; the file runs with PyTorch alone.
    export = export_torchscript(policy, checkpoint.with_name("policy_step.ts"), num_envs=1)
    extra = {META_FILE: ""}
    step = torch.jit.load(str(export), _extra_files=extra)
    meta = json.loads(extra[META_FILE])  # the state's names, shapes and dtypes
    print(f"exported {export} ({export.stat().st_size} bytes); state {[s['name'] for s in meta['state']]}")
    obs0 = torch.as_tensor(TMazeAltPassive(corridor_length=args.corridor).reset(seed=0)[0])[None]
    state = [torch.zeros(s["shape"], dtype=getattr(torch, s["dtype"])) for s in meta["state"]]
    with torch.no_grad():
        out = step(obs0, torch.zeros(1), torch.ones(1, dtype=torch.bool), *state)
    print(f"exported step's first action: {out[0].tolist()}")


if __name__ == "__main__":
    main()
