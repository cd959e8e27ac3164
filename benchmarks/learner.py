"""Learner throughput: a plain PyTorch training loop vs ``Trainer.fit`` on the same Agent.

Default agent (FFTstepEncoder, TformerTrajEncoder d_model 128 / d_ff 512 / 2 layers, Agent
defaults: 4 critics, 7 gammas), batch 24, Discrete(4) actions, 4-d observations, synthetic
batches. Each (mode, sequence length) runs in its own subprocess so peak RSS is per run.

    python benchmarks/learner.py                 # the table (seq 11 and 256)
    python benchmarks/learner.py --seq 11 --steps 30

Throughput is 1 / fastest step time (a step = one loop iteration: batch fetch, forward, backward,
clipping, AdamW, LR schedule, target EMA). Reference figures for the original AMAGO on the same
setting: 7.9 updates/s at seq 11, 0.83 at seq 256.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

BATCH = 24
OBS_DIM = 4
N_ACTIONS = 4
REFERENCE = {11: 7.9, 256: 0.83}


def build(seq: int):
    import gin
    import gymnasium as gym
    import torch

    from amago_pl.modules.agent import Agent
    from amago_pl.modules.agent_testing import SyntheticBatches, spaces_for
    from amago_pl.modules.traj_encoders import TformerTrajEncoder
    from amago_pl.modules.tstep_encoders import FFTstepEncoder

    gin.bind_parameter("TformerTrajEncoder.d_model", 128)
    gin.bind_parameter("TformerTrajEncoder.d_ff", 512)
    gin.bind_parameter("TformerTrajEncoder.n_layers", 2)
    torch.manual_seed(0)
    space = gym.spaces.Discrete(N_ACTIONS)
    obs_space, rl2_space = spaces_for(OBS_DIM, space)
    agent = Agent(obs_space, rl2_space, space, seq, FFTstepEncoder, TformerTrajEncoder)
    # A training sequence holds max_seq_len + 1 observations.
    data = SyntheticBatches(obs_space, space, BATCH, seq + 1, num_batches=10**6, distinct=4)
    return agent, data


def run_plain(seq: int, warmup: int, steps: int) -> list[float]:
    import torch

    agent, data = build(seq)
    opt_cfg = agent.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    agent.train()
    it = iter(data)
    stamps = []
    for _ in range(warmup + steps + 1):
        stamps.append(time.perf_counter())
        parts = agent.compute_loss(next(it))
        loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
        opt.step()
        sched.step()
        agent.soft_sync_targets()
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]


def run_lightning(seq: int, warmup: int, steps: int) -> list[float]:
    import lightning.pytorch as pl

    from amago_pl.modules.agent_testing import batch_loader

    agent, data = build(seq)

    class Clock(pl.Callback):
        """Time between consecutive batch starts: the whole loop iteration, data fetch included."""

        stamps: list[float] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.stamps.append(time.perf_counter())

    clock = Clock()
    trainer = pl.Trainer(
        max_steps=warmup + steps + 1,
        accelerator="cpu",
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.fit(agent, batch_loader(data))
    st = clock.stamps
    return [b - a for a, b in zip(st[warmup:], st[warmup + 1 :])]


def measure(mode: str, seq: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(2)
    warmup = 5
    durations = (run_plain if mode == "plain" else run_lightning)(seq, warmup, steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    # Fastest step (timeit's rule): on shared CPUs, bursts of contention inflate means and even medians.
    ups = 1.0 / min(durations)
    return {
        "mode": mode,
        "seq": seq,
        "updates_per_s": ups,
        "tokens_per_s": ups * BATCH * (seq + 1),
        "peak_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq", type=int, nargs="*", default=[11, 256])
    parser.add_argument(
        "--steps", type=int, default=None, help="timed updates (default: 40 at seq<=32, else 10)"
    )
    parser.add_argument("--child", choices=["plain", "lightning"], default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.seq[0], args.steps)))
        return
    rows = []
    for seq in args.seq:
        steps = args.steps or (40 if seq <= 32 else 10)
        res = {}
        for mode in ("plain", "lightning"):
            cmd = [sys.executable, __file__, "--child", mode, "--seq", str(seq), "--steps", str(steps)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[mode] = json.loads(out.strip().splitlines()[-1])
        rows.append((seq, res))
    print("| seq | loop | updates/s | tokens/s | peak RSS (MB) | original updates/s |")
    print("|---|---|---|---|---|---|")
    for seq, res in rows:
        for mode in ("plain", "lightning"):
            r = res[mode]
            ref = REFERENCE.get(seq, float("nan"))
            print(
                f"| {seq} | {mode} | {r['updates_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} | {ref} |"
            )
        ratio = res["lightning"]["updates_per_s"] / res["plain"]["updates_per_s"]
        print(f"| {seq} | lightning/plain | {ratio:.3f} | | | |")


if __name__ == "__main__":
    main()
