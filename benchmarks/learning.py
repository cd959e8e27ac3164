"""Learning benchmarks: the tasks of ``tests/learning`` with larger budgets and several seeds.

Every task is a :class:`Task` recipe (env, nets, schedule, metric). ``tests/learning`` runs the
same recipes with the ``"test"`` budget (one seed, stop as soon as the threshold is reached);
this script runs the ``"full"`` budget (no early stop) for ``--seeds`` seeds and writes, per task,
a CSV of the validation curve and one PNG (metric vs env steps, mean and min-max over seeds) into
``benchmarks/results/``, plus ``benchmarks/results/learning.md`` (a markdown table).

    python benchmarks/learning.py                                  # default tasks, 3 seeds
    python benchmarks/learning.py --tasks tmaze10_transformer --seeds 1 --budget test
    python benchmarks/learning.py --tasks tmaze50 tmaze100 dark_key_door frozen_lake_attempts
    python benchmarks/learning.py --tasks tmaze100 --seeds 1 --early_stop --max_minutes 30
    python benchmarks/learning.py --smoke                          # 1 seed, 2 tiny epochs per task
    python benchmarks/learning.py --list

Optional tasks (not in the default set): ``tmaze20``, ``tmaze50``, ``tmaze100``, ``tmaze400``,
``dark_key_door`` and ``frozen_lake_attempts`` (Meta-Frozen-Lake 4x4 with 3 attempts; its CSV has
the success rate of attempt 1, 2 and 3, i.e. the in-context improvement).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from amago_pl import DiskTrajDataset, Experiment  # noqa: E402
from amago_pl.callbacks import EvalCallback, RolloutCallback  # noqa: E402
from amago_pl.cli_utils import switch_exploration, switch_traj_encoder, switch_tstep_encoder, use_config  # noqa: E402
from amago_pl.modules.agent import Agent  # noqa: E402
from benchmarks.learning_tasks import (  # noqa: E402,F401 - re-exported for tests/learning
    DEFAULT_TASKS,
    TASKS,
    Budget,
    Task,
    attempt_success,
    mean_return,
    success_rate,
)

RESULTS = ROOT / "benchmarks" / "results"


# ----------------------------------------------------------------------------- running
class MetricTracker(pl.Callback):
    """After each validation: the task metric on the val episodes; optionally stop at a threshold
    or once ``max_wall_s`` seconds of training have passed (checked after every epoch)."""

    def __init__(self, task: Task, stop_at: float | None, max_wall_s: float | None = None):
        self.task, self.stop_at, self.max_wall_s = task, stop_at, max_wall_s
        self.out_of_time = False
        self.curve: list[dict[str, float]] = []
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        evaluator = next(cb for cb in trainer.callbacks if isinstance(cb, EvalCallback))
        collector = next(cb for cb in trainer.callbacks if isinstance(cb, RolloutCallback))
        eps = evaluator.last_episodes
        row = {
            "epoch": float(trainer.current_epoch),
            "env_steps": float(collector.total_frames),
            "updates": float(trainer.global_step),
            "wall_s": time.perf_counter() - self.t0,
            "cpu_s": time.process_time() - self.c0,  # ~ wall time on an idle machine (1 thread)
            "episodes": float(len(eps)),
            self.task.metric_name: self.task.metric(eps),
        }
        for name, fn in self.task.extra_metrics.items():
            row[name] = fn(eps)
        self.curve.append(row)
        if os.environ.get("AMAGO_LEARNING_PROGRESS"):
            print(f"[{self.task.name}] " + " ".join(f"{k}={v:.3g}" for k, v in row.items()), flush=True)
        if self.stop_at is not None:
            # The mean of the last ``stop_window`` validations: with a window of 2 a policy must
            # hold up on two validations in a row (twice the episodes, two sets of weights), so a
            # single lucky look no longer ends the run.
            recent = [r[self.task.metric_name] for r in self.curve[-self.task.stop_window :]]
            if len(recent) == self.task.stop_window and sum(recent) / len(recent) >= self.stop_at:
                trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.max_wall_s is not None and time.perf_counter() - self.t0 >= self.max_wall_s:
            self.out_of_time = True
            trainer.should_stop = True


@dataclass
class RunResult:
    task: str
    seed: int
    curve: list[dict[str, float]]
    test_metric: float
    test_extra: dict[str, float]
    env_steps: int
    updates: int
    wall_s: float
    cpu_s: float
    test_metrics: dict[str, float]
    out_of_time: bool = False  # stopped by ``max_minutes`` before the epoch budget ran out


def build_experiment(
    task: Task, budget: Budget, run_dir: Path, seed: int, verbose: bool = False, **overrides: Any
) -> Experiment:
    """Bind the task's gin settings (clearing the previous config) and build its Experiment."""
    gin.clear_config()
    config = dict(task.gin)
    tstep = switch_tstep_encoder(config, "ff", **task.tstep)
    arch, traj_kw = task.traj
    traj = switch_traj_encoder(config, arch, **traj_kw)
    explore = switch_exploration(config, task.explore_strategy, **task.explore)
    use_config(config, finalize=False)
    kwargs: dict[str, Any] = dict(
        run_name=task.name,
        ckpt_base_dir=str(run_dir),
        max_seq_len=task.max_seq_len,
        stagger_traj_file_lengths=False,
        dataset=DiskTrajDataset(dset_root=str(run_dir), dset_name=task.name, dset_max_size=20_000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        exploration_wrapper_type=explore,
        make_train_env=task.make_env,
        make_val_env=task.make_env,
        parallel_actors=task.parallel_actors,
        env_mode="sync",
        dloader_workers=0,
        epochs=budget.epochs,
        train_timesteps_per_epoch=task.train_steps,
        train_batches_per_epoch=budget.updates,
        val_timesteps_per_epoch=task.val_steps,
        val_interval=task.val_interval,
        ckpt_interval=None,
        always_save_latest=False,
        batch_size=24,
        log_interval=50,
        seed=seed,
        verbose=verbose,
        accelerator="cpu",
    )
    kwargs.update(task.experiment)
    kwargs.update(overrides)
    return Experiment(**kwargs)


def run_task(
    task: Task | str,
    seed: int = 0,
    budget: str | Budget = "test",
    run_dir: Path | None = None,
    early_stop: bool | None = None,
    verbose: bool = False,
    threads: int | None = 1,
    max_minutes: float | None = None,
    **overrides: Any,
) -> RunResult:
    """Train ``task`` from scratch and evaluate it with ``task.test_episodes`` test episodes.

    ``budget`` "test" (the CI budget, early stop at ``stop_at``) or "full" (no early stop), or a
    :class:`Budget`. ``threads``: torch threads (1 is fastest for these tiny nets on shared cores).
    ``max_minutes``: also stop after this much training wall time (the run is then tested as is).
    """
    task = TASKS[task] if isinstance(task, str) else task
    b = budget if isinstance(budget, Budget) else getattr(task, budget)
    if early_stop is None:
        early_stop = budget == "test"
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    tmp = None
    if run_dir is None:
        tmp = tempfile.mkdtemp(prefix=f"amago_learning_{task.name}_")
        run_dir = Path(tmp)
    try:
        exp = build_experiment(task, b, Path(run_dir), seed, verbose=verbose, **overrides)
        tracker = MetricTracker(
            task,
            (task.stop_at if task.stop_at is not None else task.threshold) if early_stop else None,
            max_wall_s=None if max_minutes is None else 60.0 * max_minutes,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        exp.start()
        exp.trainer.callbacks.append(tracker)
        if task.val_episodes is not None:
            val = next(cb for cb in exp.trainer.callbacks if isinstance(cb, EvalCallback))
            val.episodes = task.val_episodes
        exp.learn()
        train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        n = task.parallel_actors
        per_actor = math.ceil(task.test_episodes / n)
        # Enough steps for per_actor episodes of the longest possible length.
        test = exp.evaluate_test(
            task.make_env, timesteps=per_actor * task.val_steps + 1, episodes=task.test_episodes
        )
        collector = next(cb for cb in exp.trainer.callbacks if isinstance(cb, RolloutCallback))
        return RunResult(
            task=task.name,
            seed=seed,
            curve=tracker.curve,
            test_metric=task.metric(test.episodes),
            test_extra={k: fn(test.episodes) for k, fn in task.extra_metrics.items()},
            env_steps=int(collector.total_frames),
            updates=int(exp.trainer.global_step),
            wall_s=train_wall,
            cpu_s=train_cpu,
            test_metrics=test.metrics,
            out_of_time=tracker.out_of_time,
        )
    finally:
        torch.set_num_threads(old_threads)
        gin.clear_config()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- reporting
def write_csv(path: Path, results: list[RunResult]) -> None:
    keys: list[str] = []
    for r in results:
        for row in r.curve:
            keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["seed", *keys])
        w.writeheader()
        for r in results:
            for row in r.curve:
                w.writerow({"seed": r.seed, **row})


def plot(path: Path, task: Task, results: list[RunResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [task.metric_name, *task.extra_metrics]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in metrics:
        curves = [np.array([[row["env_steps"], row[m]] for row in r.curve]) for r in results if r.curve]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps = curves[0][:n, 0]
        vals = np.stack([c[:n, 1] for c in curves])  # (S, n)
        ax.plot(steps, vals.mean(0), label=f"{m} (mean of {len(curves)})")
        ax.fill_between(steps, vals.min(0), vals.max(0), alpha=0.25)
    ax.axhline(task.threshold, color="k", ls="--", lw=0.8, label=f"CI threshold {task.threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel(task.metric_name)
    ax.set_title(task.description, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def first_reach(curve: list[dict[str, float]], key: str, threshold: float) -> dict[str, float] | None:
    return next((row for row in curve if row[key] >= threshold), None)


def markdown(results: dict[str, list[RunResult]], budget: str) -> str:
    lines = [
        f"| task | seeds | budget ({budget}) env steps / updates | final test metric (mean ± std) | "
        "seeds reaching threshold | env steps to threshold (mean) | wall s / seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        t = TASKS[name]
        vals = np.array([r.test_metric for r in rs])
        reached = [first_reach(r.curve, t.metric_name, t.threshold) for r in rs]
        hit = [row for row in reached if row is not None]
        steps = f"{np.mean([h['env_steps'] for h in hit]):.0f}" if hit else "-"
        extra = ""
        if t.extra_metrics:
            extra = (
                " ("
                + ", ".join(f"{k} {np.mean([r.test_extra[k] for r in rs]):.2f}" for k in t.extra_metrics)
                + ")"
            )
        lines.append(
            f"| {t.description} | {len(rs)} | {np.mean([r.env_steps for r in rs]):.0f} / {np.mean([r.updates for r in rs]):.0f} | "
            f"{t.metric_name} {vals.mean():.3g} ± {vals.std():.2g}{extra} | {len(hit)}/{len(rs)} (>= {t.threshold:g}) | "
            f"{steps} | {np.mean([r.wall_s for r in rs]):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="*", default=DEFAULT_TASKS, help=f"any of {sorted(TASKS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", default="full", choices=["full", "test"])
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    p.add_argument("--updates", type=int, default=None, help="override the budget's updates per epoch")
    p.add_argument("--early_stop", action="store_true", help="stop a seed once it reaches the threshold")
    p.add_argument(
        "--max_minutes",
        type=float,
        default=None,
        help="wall-clock budget per seed: stop training after this long and test what was reached",
    )
    p.add_argument(
        "--smoke", action="store_true", help="1 seed, 2 epochs of 5 updates per task (checks the pipeline)"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--list", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, t in TASKS.items():
            print(f"{name:24s} {t.description}{'  [default]' if name in DEFAULT_TASKS else ''}")
        return
    if args.smoke:
        args.seeds, args.epochs, args.updates = 1, 2, 5
    unknown = set(args.tasks) - set(TASKS)
    if unknown:
        p.error(f"unknown tasks {sorted(unknown)}; choose from {sorted(TASKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[RunResult]] = {}
    for name in args.tasks:
        t = TASKS[name]
        base = getattr(t, args.budget)
        b = Budget(args.epochs or base.epochs, args.updates or base.updates)
        results[name] = []
        for seed in range(args.seeds):
            r = run_task(
                t,
                seed=seed,
                budget=b,
                early_stop=args.early_stop,
                verbose=args.verbose,
                max_minutes=args.max_minutes,
            )
            results[name].append(r)
            print(
                f"{name} seed {seed}: test {t.metric_name} {r.test_metric:.3f} {r.test_extra or ''} after "
                f"{r.env_steps} env steps, {r.updates} updates, {r.wall_s:.0f}s wall, {r.cpu_s:.0f}s CPU"
                + (" (stopped by --max_minutes)" if r.out_of_time else ""),
                flush=True,
            )
        write_csv(args.out / f"{name}.csv", results[name])
        plot(args.out / f"{name}.png", t, results[name])
    table = markdown(results, "smoke" if args.smoke else args.budget)
    (args.out / "learning.md").write_text(
        f"# Learning benchmark ({'smoke' if args.smoke else args.budget})\n\n{table}"
    )
    print(table)


if __name__ == "__main__":
    main()
