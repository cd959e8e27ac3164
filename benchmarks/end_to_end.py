"""End to end: wall time and peak memory of a fixed T-Maze run until validation success.

T-Maze (passive, corridor 10, penalty -1/corridor), 8 actors, FF timestep encoder (128 -> 64),
Transformer (d_model 128, d_ff 512, 2 layers, 4 heads), context 11, batch 24, 100 updates per
epoch, 22 collection steps per actor per epoch, greedy + epsilon-greedy exploration (annealed over
400 steps), learning rate 3e-4 with 100 warm-up steps: the settings of ``examples/04_tmaze.py``.
Validation runs after every epoch; the run stops at the first validation whose mean return is
>= 0.99 (every val episode solved), or after ``--epochs`` epochs.

    python benchmarks/end_to_end.py                       # sync envs
    python benchmarks/end_to_end.py --env-mode async --seeds 0 1

The run is a child process; this script samples the proportional set size (PSS, from
``/proc/<pid>/smaps_rollup``; RSS when that file is missing) of the child and all its descendants
(env workers, dataloader workers) every 0.25 s and reports the peak of the sum and of the largest
single process. Reference (the original AMAGO, same settings, same machine kind): about 7 minutes
to solve, 1.2 GiB process-tree PSS (545 MiB largest process), 7.9 updates/s, 511 env steps/s with
async envs and 789 with sync envs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CORRIDOR = 10


# ----------------------------------------------------------------------------- memory sampling
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_memory_kib(pid: int) -> int:
    """PSS of one process in KiB (RSS if smaps_rollup is unavailable); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_source() -> str:
    return "PSS" if os.path.exists(f"/proc/{os.getpid()}/smaps_rollup") else "RSS"


# ----------------------------------------------------------------------------- the run (child)
def run(args) -> dict:
    import lightning.pytorch as pl
    import torch

    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.callbacks import EvalCallback, RolloutCallback
    from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config
    from amago_pl.envs import AMAGOEnv
    from amago_pl.envs.builtin.tmaze import TMazeAltPassive
    from amago_pl.modules.agent import Agent

    torch.set_num_threads(args.threads)
    horizon = CORRIDOR + 1

    def make_env():
        return AMAGOEnv(
            TMazeAltPassive(corridor_length=CORRIDOR, penalty=-1.0 / CORRIDOR), env_name="TMaze10"
        )

    config = {
        "Agent.reward_multiplier": 100.0,
        "Agent.gamma": 0.9999,
        "Agent.tau": 0.01,
        "FFTstepEncoder.d_hidden": 128,
        "FFTstepEncoder.d_output": 64,
        "FFTstepEncoder.normalize_inputs": False,
    }
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "transformer", d_model=128, d_ff=512, n_layers=2, n_heads=4)
    explore = switch_exploration(config, "egreedy", eps_start=1.0, eps_end=0.05, steps_anneal=400)
    use_config(config, [])

    class Watch(pl.Callback):
        """Times the gradient-step phase of each epoch and stops at the first solved validation."""

        def __init__(self):
            self.train_seconds: list[float] = []
            self.solved_epoch: int | None = None
            self.solved_at: float | None = None
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer, module):  # runs after the rollout callback's collection
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.train_seconds.append(time.perf_counter() - self._t0)

        def on_validation_end(self, trainer, module):
            evals = [c for c in trainer.callbacks if isinstance(c, EvalCallback)]
            eps = evals[0].last_episodes if evals else []
            if eps and statistics.mean(e.total_return for e in eps) >= 0.99 and self.solved_epoch is None:
                self.solved_epoch = trainer.current_epoch
                self.solved_at = time.perf_counter()
                trainer.should_stop = True

    with tempfile.TemporaryDirectory() as root:
        experiment = Experiment(
            run_name="e2e",
            ckpt_base_dir=root,
            max_seq_len=horizon,
            traj_save_len=horizon + 1,
            stagger_traj_file_lengths=False,
            dataset=DiskTrajDataset(dset_root=root, dset_name="e2e", dset_max_size=5000),
            tstep_encoder_type=tstep,
            traj_encoder_type=traj,
            agent_type=Agent,
            exploration_wrapper_type=explore,
            make_train_env=make_env,
            make_val_env=make_env,
            parallel_actors=8,
            env_mode=args.env_mode,
            epochs=args.epochs,
            train_timesteps_per_epoch=2 * horizon,
            train_batches_per_epoch=100,
            val_timesteps_per_epoch=horizon + 1,
            val_interval=1,
            ckpt_interval=None,
            sample_actions_train=False,
            sample_actions_val=False,
            batch_size=24,
            learning_rate=3e-4,
            lr_warmup_steps=100,
            dloader_workers=args.dloader_workers,
            log_interval=50,
            seed=args.seed,
            verbose=False,
            loggers=(),
        )
        start = time.perf_counter()
        experiment.start()
        watch = Watch()
        experiment.trainer.callbacks.append(watch)
        experiment.learn()
        end = time.perf_counter()
        rollout = [c for c in experiment.trainer.callbacks if isinstance(c, RolloutCallback)][0]
        fps = [h["rollout/env_fps"] for h in rollout.history if "rollout/env_fps" in h]
    train = watch.train_seconds[1:] or watch.train_seconds  # epoch 0 includes first-batch start-up
    return {
        "seconds": (watch.solved_at or end) - start,
        "solved_epoch": watch.solved_epoch,
        "epochs": len(watch.train_seconds),
        "updates_per_s": 100 / statistics.median(train) if train else float("nan"),
        "updates_per_s_best": 100 / min(train) if train else float("nan"),
        "env_fps": statistics.median(fps) if fps else float("nan"),
        "env_fps_best": max(fps) if fps else float("nan"),
    }


# ----------------------------------------------------------------------------- the driver
def measure(args, seed: int) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed), "--env-mode", args.env_mode,
        "--epochs", str(args.epochs), "--threads", str(args.threads), "--dloader-workers", str(args.dloader_workers),
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, text=True)
        peak_total = peak_single = 0
        while proc.poll() is None:
            sizes = [proc_memory_kib(p) for p in _tree(proc.pid)]
            peak_total = max(peak_total, sum(sizes))
            peak_single = max(peak_single, max(sizes, default=0))
            time.sleep(0.25)
        if proc.returncode:
            raise RuntimeError(f"the run failed (exit code {proc.returncode}): {' '.join(cmd)}")
        out.seek(0)
        res = json.loads(out.read().strip().splitlines()[-1])
    res.update(peak_tree_mib=peak_total / 1024, peak_single_mib=peak_single / 1024, seed=seed)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-mode", default="sync", choices=["sync", "async"])
    parser.add_argument("--epochs", type=int, default=40, help="stop here if validation never succeeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dloader-workers", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args)))
        return
    load = os.getloadavg()
    print(
        f"threads={args.threads}, memory={pss_source()}, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        "| envs | seed | solved at epoch | wall time (s) | updates/s (median / best epoch) | "
        f"collect env steps/s (median / best) | peak tree {pss_source()} (MiB) | largest process (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        r = measure(args, seed)
        solved = r["solved_epoch"] if r["solved_epoch"] is not None else f"not in {r['epochs']}"
        print(
            f"| {args.env_mode} | {seed} | {solved} | {r['seconds']:.0f} | {r['updates_per_s']:.2f} / "
            f"{r['updates_per_s_best']:.2f} | {r['env_fps']:.0f} / {r['env_fps_best']:.0f} | "
            f"{r['peak_tree_mib']:.0f} | {r['peak_single_mib']:.0f} |",
            flush=True,
        )
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
