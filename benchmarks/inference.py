"""Rollout and training speed of the default Transformer trajectory encoder (CPU-friendly).

Measures, for 16 parallel envs, the time of one rollout step at several context lengths with the KV
cache in its steady state (full, so every step overwrites the oldest token) against recomputing the
whole context every step, for the default full attention and for ``SlidingWindowFlexAttention``
(whose cache holds only window + 1 tokens), plus one forward+backward pass at training size.
Prints a markdown table.

    python benchmarks/inference.py [--device cpu] [--steps 50] [--window 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gin
import torch

from amago_pl.nets.traj_encoders import TformerTrajEncoder
from amago_pl.nets.transformer import FlashAttention, SlidingWindowFlexAttention

TSTEP_DIM = 256  # FFTstepEncoder's default output width


def _timeit(fn: Callable[[], object], steps: int, warmup: int = 3, device: str = "cpu") -> float:
    """Median seconds per call (robust to the occasional stall on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_rollout(
    context: int, n_envs: int, steps: int, device: str, window: int | None = None
) -> tuple[float, float]:
    """Seconds per cached step and per full recompute; ``window`` selects sliding-window attention."""
    torch.manual_seed(0)
    gin.clear_config()
    attention = FlashAttention
    if window is not None:
        gin.bind_parameter("SlidingWindowFlexAttention.window_size", window)
        attention = SlidingWindowFlexAttention
    model = TformerTrajEncoder(TSTEP_DIM, context, attention_type=attention).to(device).eval()
    token = torch.randn(n_envs, 1, TSTEP_DIM, device=device)
    with torch.inference_mode():
        cache = model.init_hidden_state(n_envs, device)
        # Steady state: a full cache of real-looking entries, far into the episode.
        cache.k.normal_()
        cache.v.normal_()
        cache.count.fill_(3 * context + 7)
        t = torch.full((n_envs, 1), 3 * context + 7, device=device, dtype=torch.long)
        cached = _timeit(lambda: model(token, t, cache), steps, device=device)

        seq = torch.randn(n_envs, context, TSTEP_DIM, device=device)
        times = torch.arange(context, device=device).expand(n_envs, context)
        recompute = _timeit(lambda: model(seq, times)[0][:, -1], max(3, steps // 10), device=device)
    return cached, recompute


def bench_train(batch: int, seq_len: int, steps: int, device: str) -> float:
    torch.manual_seed(0)
    model = TformerTrajEncoder(TSTEP_DIM, seq_len).to(device).train()
    seq = torch.randn(batch, seq_len, TSTEP_DIM, device=device)
    times = torch.arange(seq_len, device=device).expand(batch, seq_len)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(seq, times)[0].square().mean().backward()

    return _timeit(step, steps, warmup=2, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50, help="timed rollout steps per setting")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--window", type=int, default=64, help="SlidingWindowFlexAttention.window_size")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__}\n")
    print("| attention | context | cached step (ms) | recompute step (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    lo, hi = min(args.contexts), max(args.contexts)
    for label, window in (("full (FlashAttention)", None), (f"sliding window {args.window}", args.window)):
        cached_ms = {}
        for ctx in args.contexts:
            cached, recompute = bench_rollout(ctx, args.envs, args.steps, args.device, window)
            cached_ms[ctx] = cached * 1e3
            print(
                f"| {label} | {ctx} | {cached * 1e3:.2f} | {recompute * 1e3:.2f} | {recompute / cached:.1f}x |"
            )
        print(f"| {label} | cached step at {hi} / at {lo} | {cached_ms[hi] / cached_ms[lo]:.2f}x | | |")
    gin.clear_config()
    train = bench_train(24, 256, 5, args.device)
    print(f"\n| training forward+backward (batch 24, seq 256, default Transformer) | {train * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
