"""Time ``TrajectoryStore.load`` with and without the in-memory trajectory cache.

The learner draws ``batch_size`` files per update; this prints microseconds per draw from a store
of ``--files`` trajectory files, read from disk every time (``cache_mb = 0``, the original's
behaviour) and served by the cache (``DiskTrajDataset.cache_mb``, default 64), and the
milliseconds that makes per update at ``--batch_size``. One thread, warm page cache (the files
were just written), so the uncached column is parsing and checking, not disk latency.

    python benchmarks/traj_cache_bench.py
    python benchmarks/traj_cache_bench.py --files 400 --draws 4800
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amago_pl.datamodules import TrajectoryStore  # noqa: E402
from amago_pl.types import FrozenTraj  # noqa: E402

# (name, steps per file, observation shape, observation dtype, actions): shaped like the files of
# benchmarks/learning_tasks.py's T-Maze 10 and Pendulum recipes, and an 84x84 image task.
SHAPES = [
    ("T-Maze 10 (23 steps, 4 floats, Discrete(4))", 23, (4,), np.float32, 4),
    ("Pendulum (201 steps, 3 floats, Box(1))", 201, (3,), np.float32, None),
    ("images (500 steps, 3x84x84 uint8, Discrete(6))", 500, (3, 84, 84), np.uint8, 6),
]


def make_file_traj(
    steps: int, shape: tuple[int, ...], dtype: type, actions: int | None, seed: int
) -> FrozenTraj:
    rng = np.random.default_rng(seed)
    width = actions or 1
    if actions:
        acts = rng.integers(0, actions, size=(steps - 1, 1)).astype(np.int64)
    else:
        acts = rng.uniform(-1, 1, size=(steps - 1, 1)).astype(np.float32)
    if np.issubdtype(dtype, np.integer):
        obs = rng.integers(0, 255, size=(steps, *shape)).astype(dtype)
    else:
        obs = rng.normal(size=(steps, *shape)).astype(dtype)
    rl2s = np.zeros((steps, 1 + width), np.float32)  # (T, 1 + A)
    return FrozenTraj(
        obs={"observation": obs},
        rl2s=rl2s,
        time_idxs=np.arange(steps, dtype=np.int64),
        rews=rng.normal(size=steps - 1).astype(np.float32),
        dones=np.zeros(steps - 1, bool),
        actions=acts,
        action_is_index=actions is not None,
    )


def time_draws(store: TrajectoryStore, paths: list[Path], draws: int) -> float:
    """Mean microseconds per ``store.load`` over ``draws`` uniform draws (after one warm-up pass)."""
    rng = np.random.default_rng(0)
    for p in paths:
        store.load(p)
    order = rng.integers(len(paths), size=draws)
    start = time.perf_counter()
    for i in order:
        store.load(paths[i])
    return 1e6 * (time.perf_counter() - start) / draws


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=64)
    p.add_argument("--draws", type=int, default=2400)
    p.add_argument("--batch_size", type=int, default=24)
    args = p.parse_args(argv)
    print(f"{args.files} files, {args.draws} draws, batch size {args.batch_size}\n")
    print("| files | MB on disk | read every draw (us) | cached (us) | speed-up | ms per update saved |")
    print("|---|---|---|---|---|---|")
    for name, steps, shape, dtype, actions in SHAPES:
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            writer = TrajectoryStore(Path(tmp) / "buffer")
            paths = [
                writer.write(make_file_traj(steps, shape, dtype, actions, seed=i), "bench")
                for i in range(args.files)
            ]
            mb = sum(q.stat().st_size for q in paths) / 2**20
            for cache_mb in (0, 64):
                store = TrajectoryStore(Path(tmp) / "buffer", cache_bytes=cache_mb * 2**20)
                results[cache_mb] = time_draws(store, paths, args.draws)
        saved = args.batch_size * (results[0] - results[64]) / 1000.0
        print(
            f"| {name} | {mb:.1f} | {results[0]:.0f} | {results[64]:.0f} | "
            f"{results[0] / results[64]:.1f}x | {saved:.2f} |"
        )
    print(
        "\nThe image files exceed the default 64 MB: the cache keeps the most recently drawn ones, so "
        "only part of the draws hit."
    )


if __name__ == "__main__":
    main()
