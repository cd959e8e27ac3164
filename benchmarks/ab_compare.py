"""A/B learning benchmark: the same learning recipes run by two versions of the library.

Each variant is a source tree: ``.`` (this checkout) or a git commit, checked out once into
``benchmarks/.ab_worktrees/<commit>`` with ``git worktree``. Every (variant, task, seed) runs in
its own subprocess whose ``sys.path`` starts with that tree, through that tree's own
``benchmarks.learning.run_task`` at the ``test`` budget with its early stop, i.e. exactly what the
learning tests run. Rows are appended to a CSV as each run ends and finished rows are skipped, so
a comparison can span sessions; run it as the only heavy job on the machine (1 torch thread).

    # the [fidelity] comparison: before the PopArt / InputNorm prior fixes (78a7c28) and after
    python benchmarks/ab_compare.py --variant before=78a7c28 --variant after=.
    python benchmarks/ab_compare.py --report       # table + PNGs from the CSVs, no runs

"As well or better" (``verdict``): no task's count of passing seeds drops, and each task's mean
is not lower than the baseline's by more than one standard error of the difference.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORKTREES = ROOT / "benchmarks" / ".ab_worktrees"
AB_TASKS = ["tmaze10_transformer", "frozen_lake", "cartpole_ff", "pendulum"]
RUN_FIELDS = [
    "variant",
    "source",
    "task",
    "seed",
    "test_metric",
    "threshold",
    "passed",
    "env_steps",
    "updates",
    "wall_s",
    "cpu_s",
    "amago_pl_file",
]

# Runs inside the variant's tree: prints one JSON line with the result and the validation curve.
_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import amago_pl
from benchmarks.learning import TASKS, run_task
task, seed = sys.argv[2], int(sys.argv[3])
r = run_task(task, seed=seed, budget="test")
print("AB_RESULT " + json.dumps({
    "test_metric": r.test_metric, "threshold": TASKS[task].threshold, "env_steps": r.env_steps,
    "updates": r.updates, "wall_s": r.wall_s, "cpu_s": r.cpu_s, "curve": r.curve,
    "metric_name": TASKS[task].metric_name, "amago_pl_file": amago_pl.__file__}))
"""


def source_tree(spec: str) -> Path:
    """``.`` -> this checkout; anything else is a git commit checked out as a worktree (once)."""
    if spec == ".":
        return ROOT
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{spec}^{{commit}}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = WORKTREES / commit[:12]
    if not (tree / "amago_pl").is_dir():
        WORKTREES.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True)
    return tree


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def run_one(tree: Path, task: str, seed: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline")
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), task, str(seed)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("AB_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{task} seed {seed} in {tree} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    out = json.loads(lines[-1][len("AB_RESULT ") :])
    if not out["amago_pl_file"].startswith(str(tree)):
        raise RuntimeError(f"the child imported {out['amago_pl_file']}, not the variant's tree {tree}")
    return out


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def report(
    runs_csv: Path, curves_csv: Path, out: Path, baseline: str | None, name: str = "fidelity_ab"
) -> str:
    """The table (``<name>.md``) and one PNG per task (``<name>_<task>.png``); the [fidelity]
    comparison keeps its first names, ``ab_compare.md`` and ``ab_<task>.png``."""
    prefix = "ab" if name == "fidelity_ab" else name
    rows = read_rows(runs_csv)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    baseline = baseline or (variants[0] if variants else None)
    lines = [
        "| task | variant | seeds | passing | test metric mean ± SE | per seed | env steps (mean) | "
        "updates (mean) | wall s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for task in tasks:
        stats = {}
        for v in variants:
            rs = sorted(
                (r for r in rows if r["task"] == task and r["variant"] == v), key=lambda r: int(r["seed"])
            )
            if not rs:
                continue
            vals = [float(r["test_metric"]) for r in rs]
            m, se = mean_se(vals)
            passing = sum(r["passed"] == "True" for r in rs)
            stats[v] = (m, se, passing, len(rs))
            lines.append(
                f"| {task} | {v} | {len(rs)} | {passing}/{len(rs)} (>= {float(rs[0]['threshold']):g}) | "
                f"{m:.3g} ± {se:.2g} | {' / '.join(f'{x:.3g}' for x in vals)} | "
                f"{sum(float(r['env_steps']) for r in rs) / len(rs):,.0f} | "
                f"{sum(float(r['updates']) for r in rs) / len(rs):,.0f} | "
                f"{sum(float(r['wall_s']) for r in rs) / len(rs):.0f} |"
            )
        if baseline in stats:
            bm, bse, bp, _ = stats[baseline]
            for v, (m, se, p, _) in stats.items():
                if v == baseline:
                    continue
                se_diff = math.sqrt((0 if math.isnan(bse) else bse) ** 2 + (0 if math.isnan(se) else se) ** 2)
                ok = p >= bp and m >= bm - se_diff
                verdicts.append(
                    f"- {task}: {v} vs {baseline}: passing {p} vs {bp}, mean {m:.3g} vs {bm:.3g} "
                    f"(SE of the difference {se_diff:.2g}): {'as well or better' if ok else 'WORSE'}"
                )
        plot_task(curves_csv, out / f"{prefix}_{task}.png", task)
    text = "\n".join(lines) + "\n\n" + "\n".join(verdicts) + "\n"
    (out / ("ab_compare.md" if prefix == "ab" else f"{name}.md")).write_text(
        f"# A/B learning comparison (test budget, early stop)\n\n{text}"
    )
    return text


def plot_task(curves_csv: Path, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_rows(curves_csv) if r["task"] == task]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, v in enumerate(dict.fromkeys(r["variant"] for r in rows)):
        for seed in sorted({r["seed"] for r in rows if r["variant"] == v}, key=int):
            pts = [
                (float(r["env_steps"]), float(r["metric"]))
                for r in rows
                if r["variant"] == v and r["seed"] == seed
            ]
            ax.plot(*zip(*pts), color=f"C{i}", alpha=0.8, marker=".", label=v if seed == "0" else None)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"validation {rows[0]['metric_name']}")
    ax.set_title(f"{task}: one line per seed", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="a label and a source: '.' (this checkout) or a git commit; repeat for each",
    )
    p.add_argument("--tasks", nargs="*", default=AB_TASKS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--name", default="fidelity_ab", help="CSV prefix in --out")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--baseline", default=None, help="the variant others are judged against (default: first)")
    p.add_argument("--report", action="store_true", help="only write the table and PNGs from the CSVs")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_csv, curves_csv = args.out / f"{args.name}_runs.csv", args.out / f"{args.name}_curves.csv"
    if not args.report:
        if not args.variant:
            p.error("give at least one --variant NAME=SOURCE (or --report)")
        done = {(r["variant"], r["task"], r["seed"]) for r in read_rows(runs_csv)}
        for spec in args.variant:
            name, _, source = spec.partition("=")
            tree = source_tree(source or ".")
            for task in args.tasks:
                for seed in range(args.seeds):
                    if (name, task, str(seed)) in done:
                        continue
                    res = run_one(tree, task, seed)
                    passed = res["test_metric"] >= res["threshold"]
                    append_row(
                        runs_csv,
                        RUN_FIELDS,
                        {
                            **res,
                            "variant": name,
                            "source": source,
                            "task": task,
                            "seed": seed,
                            "passed": passed,
                        },
                    )
                    for row in res["curve"]:
                        append_row(
                            curves_csv,
                            ["variant", "task", "seed", "env_steps", "metric", "metric_name"],
                            {
                                "variant": name,
                                "task": task,
                                "seed": seed,
                                "env_steps": row["env_steps"],
                                "metric": row[res["metric_name"]],
                                "metric_name": res["metric_name"],
                            },
                        )
                    print(
                        f"{name} {task} seed {seed}: {res['test_metric']:.3f} (threshold {res['threshold']}) "
                        f"after {res['env_steps']} env steps, {res['wall_s']:.0f}s",
                        flush=True,
                    )
    print(report(runs_csv, curves_csv, args.out, args.baseline, args.name))


if __name__ == "__main__":
    main()
