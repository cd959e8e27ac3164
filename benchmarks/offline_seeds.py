"""Seed sweep of the offline learning tests (``tests/learning/test_offline_bc.py``).

Runs the tests' own ``offline_return`` for seeds 0..N-1: plain BC on expert data (passes when the
sampled test return is >= 0.9 of the expert's), and plain vs filtered BC on half-expert,
half-random data (passes when filtered > plain + 0.15). Rows are appended to
``benchmarks/results/offline_seeds.csv`` as each seed ends and finished (test, seed) rows are
skipped, so a sweep can span sessions. One torch thread; run it as the only heavy job.

    python benchmarks/offline_seeds.py --seeds 10
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.learning.test_offline_bc import offline_return  # noqa: E402

CSV = ROOT / "benchmarks" / "results" / "offline_seeds.csv"
FIELDS = ["test", "seed", "plain", "filtered", "expert_return", "passed", "wall_s"]


def run(test: str, seed: int) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if test == "bc_expert":
            ret, stats = offline_return(Path(tmp), random_frac=0.0, bc=True, batches=200, seed=seed)
            row = {"plain": ret, "filtered": "", "passed": ret >= 0.9 * stats["expert_return"]}
        else:
            plain, stats = offline_return(Path(tmp), random_frac=0.5, bc=True, batches=800, seed=seed)
            filtered, _ = offline_return(Path(tmp), random_frac=0.5, bc=False, batches=800, seed=seed)
            row = {"plain": plain, "filtered": filtered, "passed": filtered > plain + 0.15}
    return {**row, "test": test, "seed": seed, "expert_return": stats["expert_return"],
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--tests", nargs="*", default=["bc_expert", "filtered_beats_bc"])
    p.add_argument("--csv", type=Path, default=CSV)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    done = set()
    if args.csv.exists():
        with open(args.csv, newline="") as f:
            done = {(r["test"], r["seed"]) for r in csv.DictReader(f)}
    for test in args.tests:
        for seed in range(args.seeds):
            if (test, str(seed)) in done:
                continue
            row = run(test, seed)
            new = not args.csv.exists()
            with open(args.csv, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)
            print(row, flush=True)
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for test in args.tests:
        rs = [r for r in rows if r["test"] == test]
        print(f"{test}: {sum(r['passed'] == 'True' for r in rs)} of {len(rs)} seeds pass")


if __name__ == "__main__":
    main()
