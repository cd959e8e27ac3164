"""End-of-run report: a summary table (console + summary.md) and learning_curve.png in the run folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning.pytorch as pl

from amago_pl.callbacks.evaluation import EvalCallback
from amago_pl.callbacks.rollout import RolloutCallback


def plot_learning_curve(
    rollout_rows: list[dict[str, float]],
    eval_rows: list[dict[str, float]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Return versus env steps: training episodes (rollout) and evaluations (val)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for rows, key, label, style in (
        (rollout_rows, "rollout/return", "train episodes", "o-"),
        (eval_rows, "val/return", "evaluation", "s-"),
    ):
        pts = [(r["total_frames"], r[key]) for r in rows if key in r and "total_frames" in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, style, label=label, markersize=3)
    ax.set_xlabel("env steps (total_frames)")
    ax.set_ylabel("average episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_rows(
    rollout_rows: list[dict[str, float]],
    eval_rows: list[dict[str, float]],
    gradient_steps: int,
    wall_seconds: float,
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    last_eval = eval_rows[-1] if eval_rows else {}
    last_roll = rollout_rows[-1] if rollout_rows else {}
    for key in sorted(last_eval):
        if key.startswith("val/") and not key.endswith("env_fps"):
            rows.append((key, f"{last_eval[key]:.4g}"))
    if eval_rows:
        best = max(r.get("val/return", float("-inf")) for r in eval_rows)
        rows.append(("val/return (best)", f"{best:.4g}"))
    if "rollout/return" in last_roll:
        rows.append(("rollout/return (last epoch)", f"{last_roll['rollout/return']:.4g}"))
    frames = last_roll.get("total_frames", last_eval.get("total_frames", 0.0))
    rows.append(("total_frames", f"{int(frames)}"))
    rows.append(("gradient_steps", f"{gradient_steps}"))
    rows.append(("wall time", f"{wall_seconds / 60:.1f} min"))
    return rows


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=6)
    lines = [f"| {'metric'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


class SummaryCallback(pl.Callback):
    """At the end of fit (rank 0): print the summary table, write summary.md and learning_curve.png."""

    def __init__(self, run_dir: str | os.PathLike, title: str = "", verbose: bool = True):
        self.run_dir = Path(run_dir)
        self.title = title
        self.verbose = verbose
        self._start = time.time()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.time()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        rollout = next((cb for cb in trainer.callbacks if isinstance(cb, RolloutCallback)), None)
        evals = next(
            (cb for cb in trainer.callbacks if isinstance(cb, EvalCallback) and cb.stage == "val"), None
        )
        rollout_rows = rollout.history if rollout else []
        eval_rows = evals.history if evals else []
        plot_learning_curve(rollout_rows, eval_rows, self.run_dir / "learning_curve.png", self.title)
        table = format_table(
            summary_rows(rollout_rows, eval_rows, trainer.global_step, time.time() - self._start)
        )
        (self.run_dir / "summary.md").write_text(f"# Run summary: {self.title}\n\n{table}\n")
        if self.verbose:
            print(f"\nRun summary ({self.run_dir})\n{table}\n")
