"""Tables and figures of ``benchmarks/peers.py``, rebuilt from its per-task CSVs.

Sample efficiency: ``target = random + 0.9 x (best - random)``, where ``random`` is the metric of
a uniform random policy on the task (its ``baseline`` row) and ``best`` the higher of the two
libraries' mean final test metrics; "env steps to target" is the first curve point at which the
library's mean curve over its reported seeds reaches the target, and the ratio is amago_pl's
over the peer's (below 1: amago_pl needs fewer env steps). "Wall s to target" is what a user waits:
the median over the seeds that reach the target of the training wall time (evaluations excluded)
at each seed's first curve point at or above it.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.peers_tasks import AMAGO_SETTINGS, PEER_TASKS, PeerTask

BASE_FIELDS = [
    "task",
    "library",
    "setting",
    "phase",
    "seed",
    "budget",
    "kind",
    "env_steps",
    "updates",
    "metric",
    "episodes",
    "wall_s",
    "cpu_s",
    "eval_s",
    "out_of_time",
]


def fields(pt: PeerTask) -> list[str]:
    return [*BASE_FIELDS, *pt.task.extra_metrics]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, pt: PeerTask, rows: list[dict[str, object]]) -> None:
    """Append one finished run's rows (written together, so a killed run leaves none)."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields(pt), extrasaction="ignore")
        if new:
            w.writeheader()
        for row in rows:
            w.writerow(row)
        f.flush()


def _runs(
    rows: list[dict[str, str]], library: str, phase: str, setting: str | None = None
) -> dict[int, dict]:
    """``{seed: {"final": row, "curve": [rows]}}`` of finished runs (those with a final row)."""
    runs: dict[int, dict] = defaultdict(lambda: {"final": None, "curve": []})
    for r in rows:
        if r["library"] != library or r["phase"] != phase or (setting and r["setting"] != setting):
            continue
        run = runs[int(r["seed"])]
        if r["kind"] == "final":
            run["final"] = r
        else:
            run["curve"].append(r)
    return {s: v for s, v in sorted(runs.items()) if v["final"] is not None}


def mean_curve(runs: dict[int, dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over seeds, each (P,), on the points all seeds have."""
    curves = [
        np.array([[float(r["env_steps"]), float(r["metric"])] for r in v["curve"]]) for v in runs.values()
    ]
    curves = [c for c in curves if len(c)]
    if not curves:
        return (np.zeros(0),) * 4  # type: ignore[return-value]
    n = min(len(c) for c in curves)
    stack = np.stack([c[:n] for c in curves])  # (S, P, 2)
    vals = stack[:, :, 1]  # (S, P)
    return stack[:, :, 0].mean(0), vals.mean(0), vals.min(0), vals.max(0)


def first_reach(steps: np.ndarray, values: np.ndarray, target: float) -> float | None:
    hit = np.nonzero(values >= target)[0]
    return float(steps[hit[0]]) if len(hit) else None


def task_summary(pt: PeerTask, rows: list[dict[str, str]], ppo_setting: str) -> dict:
    """Per library: runs, finals, mean curve, env steps and wall time to target. The target comes
    from the reported pair (amago_pl's recipe and the peer); amago_pl variants (``AMAGO_SETTINGS``
    other than "recipe", keys ``amago_pl:<setting>``) and comparison groups (``peers.py --group``,
    keys ``amago_pl:<setting>@<group>``) are measured against it without moving it."""
    base = [r for r in rows if r["library"] == "random" and r["kind"] == "final"]
    random = float(base[-1]["metric"]) if base else float("nan")
    libs = {
        "amago_pl": _runs(rows, "amago_pl", "report", "recipe"),
        "RecurrentPPO": _runs(rows, "RecurrentPPO", "report", ppo_setting),
    }
    groups = sorted({r["phase"] for r in rows if r["library"] == "amago_pl"} - {"report"})
    for group in ["report", *groups]:
        for variant in AMAGO_SETTINGS:
            runs = _runs(rows, "amago_pl", group, variant) if (group, variant) != ("report", "recipe") else {}
            if runs:
                libs[f"amago_pl:{variant}" + ("" if group == "report" else f"@{group}")] = runs
    finals = {k: np.array([float(v["final"]["metric"]) for v in r.values()]) for k, r in libs.items()}
    means = [finals[k].mean() for k in ("amago_pl", "RecurrentPPO") if len(finals[k])]
    best = max(means) if means else float("nan")
    target = random + 0.9 * (best - random) if means and best > random else float("nan")
    out = {"random": random, "best": best, "target": target, "libs": {}}
    for name, runs in libs.items():
        steps, mean, lo, hi = mean_curve(runs)
        reach = first_reach(steps, mean, target) if len(steps) and not math.isnan(target) else None
        per_seed = [first_reach(*mean_curve({s: v})[:2], target) for s, v in runs.items()] if runs else []
        env = [float(v["final"]["env_steps"]) for v in runs.values()]
        out["libs"][name] = {
            "runs": runs,
            "final": finals[name],
            "curve": (steps, mean, lo, hi),
            "reach": reach,
            "seeds_reaching": sum(x is not None for x in per_seed),
            "env_steps": float(np.mean(env)) if env else float("nan"),
            "wall_to_target": _wall_to_target(runs, target),
            "wall_1k": _per_1k(runs, "wall_s"),
            "cpu_1k": _per_1k(runs, "cpu_s"),
            "out_of_time": sum(v["final"]["out_of_time"] == "True" for v in runs.values()),
        }
    return out


def _wall_to_target(runs: dict[int, dict], target: float) -> float:
    """Median over the seeds that reach ``target`` of the training wall seconds (evaluations
    excluded) at their first curve point at or above it; nan when no seed reaches it."""
    if math.isnan(target):
        return float("nan")
    walls = []
    for v in runs.values():
        hit = next((r for r in v["curve"] if float(r["metric"]) >= target), None)
        if hit is not None:
            walls.append(float(hit["wall_s"]))
    return float(np.median(walls)) if walls else float("nan")


def _per_1k(runs: dict[int, dict], key: str) -> float:
    vals = [1000.0 * float(v["final"][key]) / max(float(v["final"]["env_steps"]), 1.0) for v in runs.values()]
    return float(np.mean(vals)) if vals else float("nan")


def variant_label(key: str) -> str:
    """``amago_pl:<setting>[@<group>]`` -> the words the table and the legend use for it."""
    setting, _, group = key.split(":", 1)[1].partition("@")
    return f"{setting}, group {group}" if group else setting


def _fmt(x: float | None, digits: str = ",.0f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, digits)


def _ratio(mine: dict, peer: dict, budget: int) -> str:
    """Env steps to target, amago_pl (or a variant) over the peer."""
    a, p = mine["reach"], peer["reach"]
    if a is not None and p is not None:
        return f"{a / p:.2f}"
    if a is not None and peer["runs"]:
        return f"< {a / budget:.2f} (peer never reached)"
    if p is not None and mine["runs"]:
        return f"> {budget / p:.2f} (amago_pl never reached)"
    return "-"


def markdown(
    summaries: dict[str, dict], settings: dict[str, str], budgets: dict[str, tuple[int, str]]
) -> str:
    """The results table and the targets table; ``budgets[task] = (env steps, rule)``."""
    head = [
        "| task | library (setting) | seeds | env steps | final test metric: mean ± std [min, max] | "
        "env steps to target (mean curve; seeds reaching) | ratio amago_pl / peer | "
        "wall s to target (median of seeds reaching) | wall s per 1,000 env steps (CPU s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    targets = [
        "| task | metric | budget (env steps, both libraries) | budget rule | random | best | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        pt = PEER_TASKS[name]
        targets.append(
            f"| {pt.task.description} | {pt.task.metric_name} | {budgets[name][0]:,} | {budgets[name][1]} | "
            f"{_fmt(s['random'], '.3g')} | {_fmt(s['best'], '.3g')} | {_fmt(s['target'], '.3g')} |"
        )
        labels = [("amago_pl", "amago_pl (recipe)"), ("RecurrentPPO", f"RecurrentPPO ({settings[name]})")]
        labels += [(k, f"amago_pl ({variant_label(k)}, variant)") for k in s["libs"] if ":" in k]
        for lib, label in labels:
            ratio = _ratio(s["libs"][lib], s["libs"]["RecurrentPPO"], budgets[name][0])
            v = s["libs"][lib]
            f = v["final"]
            metric = (
                f"{f.mean():.3g} ± {f.std():.2g} [{f.min():.3g}, {f.max():.3g}]" if len(f) else "not run yet"
            )
            oot = f" ({v['out_of_time']} stopped by --max_minutes)" if v["out_of_time"] else ""
            head.append(
                f"| {pt.task.description} | {label} | {len(f)} | {_fmt(v['env_steps'])} | {metric}{oot} | "
                f"{_fmt(v['reach'])} ({v['seeds_reaching']}/{len(f)}) | {ratio if lib != 'RecurrentPPO' else ''} | "
                f"{_fmt(v['wall_to_target'], ',.0f')} | {_fmt(v['wall_1k'], '.2f')} ({_fmt(v['cpu_1k'], '.2f')}) |"
            )
    return "\n".join(head) + "\n\n" + "\n".join(targets) + "\n"


def plot(path: Path, pt: PeerTask, summary: dict, setting: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels = [("amago_pl", "amago_pl"), ("RecurrentPPO", f"RecurrentPPO ({setting})")]
    labels += [(k, f"amago_pl ({variant_label(k)})") for k in summary["libs"] if ":" in k]
    for lib, label in labels:
        steps, mean, lo, hi = summary["libs"][lib]["curve"]
        if len(steps):
            n = len(summary["libs"][lib]["runs"])
            variant = ":" in lib
            ax.plot(steps, mean, ls="--" if variant else "-", label=f"{label}: mean of {n} seeds")
            if not variant:  # variants' spread would hide the reported pair's
                ax.fill_between(steps, lo, hi, alpha=0.2)
    for key, style in (("random", ":"), ("target", "--")):
        if not math.isnan(summary[key]):
            ax.axhline(summary[key], color="k", ls=style, lw=0.8, label=f"{key} {summary[key]:.3g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{pt.task.metric_name} (greedy evaluation)")
    ax.set_title(f"{pt.task.description}\nmean and min-max over seeds", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
