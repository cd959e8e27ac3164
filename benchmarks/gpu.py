"""GPU learner throughput and model FLOPs utilisation (MFU) per attention kernel. Needs CUDA;
prints a note and exits 0 without it.

Agent: FF timestep encoder -> Transformer (d_model 512, d_ff 2048, 6 layers, 8 heads) -> Agent
defaults (4 critics, 7 gammas), batch 24, sequence 512 and 2048, bf16 autocast, synthetic batches
already on the GPU. Kernels: ``flash`` (FlashAttention with the flash_attn package; skipped when it
is not installed), ``sdpa`` (torch ``scaled_dot_product_attention``, fused causal path) and ``flex``
(torch ``flex_attention``, compiled).

    python benchmarks/gpu.py
    python benchmarks/gpu.py --seq 512 --attention sdpa flex --peak-tflops 312

Updates/s is 1 / the fastest of ``--steps`` timed updates (after warm-up; CUDA synchronised).
FLOPs per update are counted once with ``torch.utils.flop_counter.FlopCounterMode`` (forward +
backward of every matmul/attention; the optimizer is not counted), so MFU = FLOPs x updates/s /
peak bf16 FLOP/s of the device (looked up by name, or ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Dense bf16 tensor-core peaks (TFLOP/s) of common devices; pass --peak-tflops for others.
PEAK_TFLOPS = {
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}


def build(seq: int, attention: str):
    import gin
    import gymnasium as gym
    import torch
    import torch.nn.functional as F

    from amago_pl.modules.agent import Agent
    from amago_pl.nets.attention import FlashAttention, FlexAttention, SelfAttention
    from amago_pl.nets.traj_encoders import TformerTrajEncoder
    from amago_pl.nets.tstep_encoders import FFTstepEncoder
    from amago_pl.testing.batches import spaces_for, synthetic_batch

    class SDPAAttention(SelfAttention):
        """torch SDPA with its fused causal path, whatever else is installed."""

        def forward(self, q, k, v):
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.transpose(1, 2),
                v.transpose(1, 2),
                dropout_p=self.dropout_p,
                is_causal=True,
            )
            return out.transpose(1, 2)

    kernel = {"flash": FlashAttention, "sdpa": SDPAAttention, "flex": FlexAttention}[attention]
    gin.clear_config()
    for k, v in dict(d_model=512, d_ff=2048, n_layers=6, n_heads=8, attention_type=kernel).items():
        gin.bind_parameter(f"TformerTrajEncoder.{k}", v)
    torch.manual_seed(0)
    space = gym.spaces.Discrete(4)
    obs_space, rl2_space = spaces_for(4, space)
    agent = Agent(obs_space, rl2_space, space, seq, FFTstepEncoder, TformerTrajEncoder).cuda().train()
    batch = synthetic_batch(obs_space, space, 24, seq + 1)
    batch = type(batch)(**{f: _to_cuda(getattr(batch, f)) for f in batch.__dataclass_fields__})
    return agent, batch


def _to_cuda(x):
    if isinstance(x, dict):
        return {k: v.cuda(non_blocking=True) for k, v in x.items()}
    return x.cuda(non_blocking=True)


def bench(seq: int, attention: str, steps: int, peak: float | None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    agent, batch = build(seq, attention)
    cfg = agent.configure_optimizers()
    opt = cfg["optimizer"]

    def update():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            parts = agent.compute_loss(batch)
            loss = sum(v for k, v in parts.items() if k.startswith("loss_"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
        opt.step()
        agent.soft_sync_targets()

    for _ in range(3):
        update()
    with FlopCounterMode(display=False) as counter:
        update()
    flops = counter.get_total_flops()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        update()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    ups = 1.0 / min(times)
    return {
        "ups": ups,
        "tokens": ups * 24 * (seq + 1),
        "tflops": flops * ups / 1e12,
        "mfu": flops * ups / (peak * 1e12) if peak else float("nan"),
        "mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, nargs="+", default=[512, 2048])
    parser.add_argument(
        "--attention", nargs="+", default=["flash", "sdpa", "flex"], choices=["flash", "sdpa", "flex"]
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak bf16 TFLOP/s (for MFU)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu.py: CUDA is not available on this machine; nothing to measure.")
        return
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    load = os.getloadavg()
    print(
        f"device={name}, peak bf16={peak or 'unknown'} TFLOP/s, torch={torch.__version__}, load {load[0]:.2f}\n"
    )
    print("| seq | attention | updates/s | tokens/s | achieved TFLOP/s | MFU | peak memory (GiB) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    from amago_pl.nets import attention as attn_mod

    for seq in args.seq:
        for kernel in args.attention:
            if kernel == "flash" and attn_mod.flash_attn_func is None:
                print(f"| {seq} | flash | flash_attn not installed | | | | |")
                continue
            try:
                r = bench(seq, kernel, args.steps, peak)
            except torch.cuda.OutOfMemoryError:
                print(f"| {seq} | {kernel} | out of memory | | | | |")
                torch.cuda.empty_cache()
                continue
            print(
                f"| {seq} | {kernel} | {r['ups']:.2f} | {r['tokens']:.0f} | {r['tflops']:.1f} | "
                f"{r['mfu']:.1%} | {r['mem_gib']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
