"""Replay throughput: sequences/s sampled and collated from a disk store, and peak memory.

Builds (or reuses) a store of ``--files`` trajectories of ``--steps`` timesteps with an 8-d float
observation and Discrete(4) actions, then times one epoch of the train dataloader at batch 24,
max_seq_len 256, with 0 and 2 workers. Prints a markdown table.

    python benchmarks/replay.py                 # 10,000 files (about 300 MB in /tmp)
    python benchmarks/replay.py --files 2000    # a quicker run
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from amago_pl.datamodules import DiskTrajDataset, TrajectoryStore
from amago_pl.types import FrozenTraj


def synthetic_traj(
    steps: int, rng: np.random.Generator, num_actions: int = 4, obs_dim: int = 8
) -> FrozenTraj:
    actions = rng.integers(0, num_actions, size=(steps - 1, 1)).astype(np.int64)
    rews = rng.normal(size=steps - 1).astype(np.float32)
    rl2s = np.zeros((steps, 1 + num_actions), np.float32)
    rl2s[1:, 0] = rews
    rl2s[np.arange(1, steps), 1 + actions[:, 0]] = 1.0
    return FrozenTraj(
        obs={"observation": rng.normal(size=(steps, obs_dim)).astype(np.float32)},
        rl2s=rl2s,
        time_idxs=np.arange(steps, dtype=np.int64),
        rews=rews,
        dones=np.zeros(steps - 1, bool),
        actions=actions,
        action_is_index=True,
    )


def build_store(root: Path, files: int, steps: int) -> float:
    """Fill the store up to ``files`` files; returns the seconds spent writing."""
    store = TrajectoryStore(root / "bench" / "buffer")
    have = len(store.files())
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(have, files):
        store.write(synthetic_traj(steps, rng), "bench")
        if (i + 1) % 1000 == 0:
            print(f"  wrote {i + 1}/{files} files ({time.perf_counter() - start:.0f}s)", flush=True)
    return time.perf_counter() - start


def peak_rss_mb() -> tuple[float, float]:
    """(this process, largest finished child) peak resident set size in MB (Linux: KB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def time_epoch(
    root: Path, workers: int, batches: int, batch_size: int, max_seq_len: int
) -> tuple[float, float]:
    """(seconds for one epoch including worker start-up, seconds after the first batch)."""
    ds = DiskTrajDataset(root, "bench", dset_max_size=10**9)
    ds.configure(batch_size, max_seq_len, batches, dloader_workers=workers, seed=0)
    loader = ds.train_dataloader()
    start = time.perf_counter()
    first = None
    n = 0
    for batch in loader:
        assert batch.rl2s.shape[1] == max_seq_len + 1
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert n == batches
    return end - start, (end - first) * batches / max(batches - 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=500, help="timesteps per file")
    parser.add_argument("--batches", type=int, default=200, help="batches timed per setting")
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "amago_pl_replay_bench")
    args = parser.parse_args()

    print(f"Building {args.files} files of {args.steps} steps in {args.root} ...", flush=True)
    build_s = build_store(args.root, args.files, args.steps)
    stats = TrajectoryStore(args.root / "bench" / "buffer").stats()
    print(
        f"store: {int(stats['files'])} files, {stats['bytes'] / 2**20:.0f} MB, "
        f"write time {build_s:.1f}s for the new files\n"
    )

    rows = []
    for workers in (0, 2):
        total_s, steady_s = time_epoch(args.root, workers, args.batches, args.batch_size, args.max_seq_len)
        own, kids = peak_rss_mb()
        seqs = args.batches * args.batch_size
        rows.append((workers, seqs / total_s, seqs / steady_s, own, kids))

    print(
        f"batch {args.batch_size}, max_seq_len {args.max_seq_len}, {args.batches} batches, {os.cpu_count()} CPUs\n"
    )
    print(
        "| workers | seq/s (epoch incl. start-up) | seq/s (steady) | peak RSS main (MB) | peak RSS worker (MB) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for w, total, steady, own, kids in rows:
        print(f"| {w} | {total:,.0f} | {steady:,.0f} | {own:,.0f} | {kids if w else 0:,.0f} |")


if __name__ == "__main__":
    main()
