"""Learner throughput: ``Trainer.fit`` vs a plain PyTorch loop on the same Agent, measured interleaved.

Agent: FFTstepEncoder -> TformerTrajEncoder -> Agent defaults (4 critics, 7 gammas), batch 24,
Discrete(4) actions, 4-d observations, synthetic batches. Two model sizes:

* ``small``: d_model 128, d_ff 512, 2 layers, 4 heads (the reference setting of the original AMAGO:
  7.9 updates/s at sequence 11, 0.83 at sequence 256 on a 2-core CPU with torch.compile on);
* ``large``: d_model 256, d_ff 1024, 3 layers, 8 heads (the TformerTrajEncoder defaults).

    python benchmarks/learner.py                           # small+large x seq 11+256
    python benchmarks/learner.py --model small --seq 11 --steps 30
    python benchmarks/learner.py --variants plain lightning fused compile

Method (the machine is shared, so absolute timings drift by 2-5x within minutes): every
(model, seq) row runs in its own subprocess holding one Agent per variant, built from the same
seed. ``Trainer.fit`` drives the loop; after each Lightning step a callback runs one step of every
other variant, so the variants alternate A, B, A, B... and see the same load. A Lightning step is
the time between two consecutive batch starts minus the time spent in the interleaved variants
(it includes the batch fetch, hooks, logging, clipping, AdamW, the LR schedule and the target EMA).
``updates/s`` is 1 / the fastest step (timeit's rule); ``lightning/plain`` is the median of the
per-pair ratios (robust to bursts of load). Peak memory is ``VmHWM`` of a separate subprocess
that runs only that variant.

Variants: ``plain`` (hand-written loop, the Agent's own ``configure_optimizers``), ``lightning``
(``Trainer.fit``, logger off, as in the plain loop), ``fused`` (plain loop with
``AdamW(fused=True)``), ``compile`` (plain loop, ``Transformer.compile_training = True``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BATCH = 24
OBS_DIM = 4
N_ACTIONS = 4
REFERENCE = {("small", 11): 7.9, ("small", 256): 0.83}
MODELS = {
    "small": dict(d_model=128, d_ff=512, n_layers=2, n_heads=4),
    "large": dict(d_model=256, d_ff=1024, n_layers=3, n_heads=8),
}


def build(seq: int, model: str = "small", compile_training: bool = False):
    import gin
    import gymnasium as gym
    import torch

    from amago_pl.modules.agent import Agent
    from amago_pl.nets.traj_encoders import TformerTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder
    from amago_pl.testing.batches import SyntheticBatches, spaces_for

    with gin.unlock_config():
        for k, v in MODELS[model].items():
            gin.bind_parameter(f"TformerTrajEncoder.{k}", v)
        gin.bind_parameter("amago_pl.nets.transformer.Transformer.compile_training", compile_training)
    torch.manual_seed(0)
    space = gym.spaces.Discrete(N_ACTIONS)
    obs_space, rl2_space = spaces_for(OBS_DIM, space)
    agent = Agent(obs_space, rl2_space, space, seq, FFTstepEncoder, TformerTrajEncoder)
    # A training sequence holds max_seq_len + 1 observations.
    data = SyntheticBatches(obs_space, space, BATCH, seq + 1, num_batches=10**6, distinct=4)
    return agent, data


class PlainLoop:
    """The update of ``Trainer.fit`` written by hand: loss, backward, clip, AdamW, LR step, target EMA."""

    def __init__(self, agent, data, fused: bool = False):
        import torch

        self.agent, self.it = agent, iter(data)
        cfg = agent.configure_optimizers()
        self.opt, self.sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
        if fused:
            group = self.opt.param_groups[0]
            self.opt = torch.optim.AdamW(
                group["params"], lr=group["lr"], weight_decay=group["weight_decay"], fused=True
            )
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.sched.lr_lambdas[0])
        agent.train()

    def step(self) -> float:
        import torch

        start = time.perf_counter()
        parts = self.agent.compute_loss(next(self.it))
        loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.agent.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.agent.soft_sync_targets()
        return time.perf_counter() - start


def make_variant(name: str, seq: int, model: str) -> PlainLoop:
    agent, data = build(seq, model, compile_training=(name == "compile"))
    return PlainLoop(agent, data, fused=(name == "fused"))


def run_interleaved(model: str, seq: int, warmup: int, steps: int, variants: list[str]) -> dict:
    import lightning.pytorch as pl

    from amago_pl.testing.batches import batch_loader

    others = {v: make_variant(v, seq, model) for v in variants if v != "lightning"}
    durations: dict[str, list[float]] = {v: [] for v in variants}
    if "lightning" not in variants:
        for i in range(warmup + steps):
            for name, loop in others.items():
                d = loop.step()
                if i >= warmup:
                    durations[name].append(d)
        return durations

    agent, data = build(seq, model)

    class Interleave(pl.Callback):
        def __init__(self):
            self.last_start: float | None = None
            self.excluded = 0.0
            self.count = 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            now = time.perf_counter()
            if self.last_start is not None and self.count > warmup:
                durations["lightning"].append(now - self.last_start - self.excluded)
            self.last_start, self.excluded = time.perf_counter(), 0.0

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.count += 1
            t0 = time.perf_counter()
            for name, loop in others.items():
                d = loop.step()
                if self.count > warmup:
                    durations[name].append(d)
            self.excluded += time.perf_counter() - t0

    trainer = pl.Trainer(
        max_steps=warmup + steps + 1,
        accelerator="cpu",
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Interleave()],
    )
    trainer.fit(agent, batch_loader(data))
    return durations


def run_memory(model: str, seq: int, variant: str, steps: int = 3) -> float:
    """Peak RSS (MB) of this process after a few steps of one variant."""
    if variant == "lightning":
        run_interleaved(model, seq, 1, steps, ["lightning"])
    else:
        loop = make_variant(variant, seq, model)
        for _ in range(steps):
            loop.step()
    # VmHWM is this process's own peak; ru_maxrss would also carry the parent's peak over the
    # fork and exec that started it (Linux keeps it across execve).
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM")).split()[1]) / 1024


def child(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    if args.memory:
        return {"peak_mb": run_memory(args.model[0], args.seq[0], args.memory)}
    warmup = 3 if args.seq[0] > 32 else 5
    durations = run_interleaved(args.model[0], args.seq[0], warmup, args.steps, args.variants)
    return {"durations": durations}


def spawn(extra: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["small", "large"], choices=sorted(MODELS))
    parser.add_argument("--seq", type=int, nargs="+", default=[11, 256])
    parser.add_argument("--variants", nargs="+", default=["plain", "lightning"])
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per variant (default 40 at seq<=32, else 8)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the per-variant peak-memory subprocesses"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    load = os.getloadavg()
    print(f"threads={args.threads}, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(
        "| model | seq | variant | updates/s (best) | median step (ms) | tokens/s (best) | peak RSS (MB) | original updates/s |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    ratios = []
    for model in args.model:
        for seq in args.seq:
            steps = args.steps or (40 if seq <= 32 else 8)
            common = ["--model", model, "--seq", str(seq), "--threads", str(args.threads)]
            res = spawn([*common, "--steps", str(steps), "--variants", *args.variants])["durations"]
            for v in args.variants:
                d = res[v]
                mem = float("nan") if args.no_memory else spawn([*common, "--memory", v])["peak_mb"]
                best = 1.0 / min(d)
                ref = REFERENCE.get((model, seq), "")
                print(
                    f"| {model} | {seq} | {v} | {best:.2f} | {statistics.median(d) * 1e3:.0f} | "
                    f"{best * BATCH * (seq + 1):.0f} | {mem:.0f} | {ref} |",
                    flush=True,
                )
            for v in args.variants:
                if v == "plain" or "plain" not in res:
                    continue
                pairs = [a / b for a, b in zip(res[v], res["plain"])]
                med, best = statistics.median(pairs), min(res[v]) / min(res["plain"])
                ratios.append((model, seq, v, med, best))
                # Printed at once, so an interrupted run keeps the rows it finished.
                print(
                    f"| {model} | {seq} | {v}/plain step time: {med:.3f} (median of pairs), {best:.3f} (best) | | | | | |"
                )
    if ratios:
        print(
            "\n| model | seq | variant / plain (step time) | median of paired ratios | ratio of best steps |"
        )
        print("|---|---:|---|---:|---:|")
        for model, seq, v, med, best in ratios:
            print(f"| {model} | {seq} | {v} | {med:.3f} | {best:.3f} |")
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
