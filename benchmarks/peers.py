"""amago_pl side by side with ``sb3_contrib.RecurrentPPO`` (LSTM PPO) on the same memory tasks.

For every task (``benchmarks/peers_tasks.py``) both libraries train on the same gymnasium env
(the recipe's ``AMAGOEnv``), one run at a time on 1 torch thread, with:

* the same env-step budget: ``min(10 x S_test, S_20min)`` rounded down to whole amago_pl epochs,
  where ``S_test`` is the env steps of the CI budget within which amago_pl's recipe must pass its
  test in ``tests/learning`` and ``S_20min`` what the recipe covers in 20 CPU-minutes (measured
  CPU s per 1,000 env steps); tasks without a CI test get ``S_20min`` (details and numbers in
  ``peers_tasks.py`` and in the table);
* the same inputs: RecurrentPPO gets the observation plus the previous reward and previous action
  (``peers_ppo.PrevActionReward``), which is what amago_pl's policy is fed;
* the same evaluation: greedy (deterministic) actions, the recipe's metric function, the recipe's
  ``test_episodes`` test episodes taken evenly from ``parallel_actors`` fresh envs with the same
  env seeds; curves on amago_pl's validation grid (every ``val_interval`` epochs) with as many
  episodes per point as amago_pl's validation;
* 5 reported seeds (0-4) each; RecurrentPPO uses the documented default for the env type unless
  ``--sweep`` has picked the best of the task's settings on seeds 100 and 101 (never reported;
  the choice and the scores go to ``sweep.json``).

amago_pl variants (``--amago_settings``, ``peers_tasks.AMAGO_SETTINGS``): the recipe with a half or a
quarter of its updates per epoch on the same env steps, to measure what amago_pl's update cost buys
(issue [peers] item 3). They are extra rows marked "variant"; the target and the reported pair do
not depend on them. Wall times only compare within one machine: ``--group NAME`` runs the chosen
amago_pl settings as a comparison group (CSV ``phase`` NAME, e.g. the recipe and both variants on
one seed in one session), shown as its own rows so their wall times can be set side by side.

Outputs in ``benchmarks/results/peers/``: ``<task>.csv`` (curve and final rows per (task, library,
setting, seed); finished runs are skipped when rerun, so the table can be completed over several
sessions), ``<task>.png`` (both curves, mean and min-max over seeds) and ``peers.md`` (final metric,
env steps to ``random + 0.9 x (best - random)``, the ratio amago_pl / peer, and wall time per 1,000
env steps including updates but not the curve evaluations).

    python benchmarks/peers.py --list
    python benchmarks/peers.py --tasks tmaze10 --sweep           # sweep, then 5 seeds of each
    python benchmarks/peers.py --tasks tmaze10 pendulum --libraries RecurrentPPO
    python benchmarks/peers.py --tasks tmaze10 --libraries amago_pl --amago_settings half_updates
    python benchmarks/peers.py --tasks tmaze10 --libraries amago_pl --group machine_a \
        --amago_settings recipe half_updates quarter_updates --seeds 5 6   # same-machine comparison
    python benchmarks/peers.py --report                          # rebuild the table and figures
    python benchmarks/peers.py --smoke --out /tmp/peers          # tiny budget: checks the pipeline
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from amago_pl.callbacks import EvalCallback  # noqa: E402
from benchmarks.learning import run_task  # noqa: E402
from benchmarks.learning_tasks import Budget  # noqa: E402
from benchmarks.peers_ppo import random_actor, run_episodes, run_ppo  # noqa: E402
from benchmarks.peers_report import append_rows, markdown, plot, read_rows, task_summary  # noqa: E402
from benchmarks.peers_tasks import (  # noqa: E402
    AMAGO_SETTINGS,
    PEER_TASKS,
    PPO_SETTINGS,
    PeerTask,
    amago_budget,
)

RESULTS = ROOT / "benchmarks" / "results" / "peers"
DOCS_FIGURES = ROOT / "docs" / "img" / "peers"  # copies of the PNGs for the docs site
LIBRARIES = ("amago_pl", "RecurrentPPO")
REPORT_SEEDS = list(range(5))
SWEEP_SEEDS = [100, 101]
BASELINE_EPISODES = 256
SMOKE_BUDGET = Budget(2, 5)  # amago_pl epochs and updates per epoch under --smoke


@contextlib.contextmanager
def timed_validation() -> Iterator[list[tuple[float, float]]]:
    """Cumulative (wall, CPU) seconds after each amago_pl validation, so the reported training time
    leaves out the curve evaluations, as it does for the peer. Patches ``EvalCallback.evaluate``
    for the duration of one run only."""
    marks: list[tuple[float, float]] = []
    total = [0.0, 0.0]
    original = EvalCallback.evaluate

    def evaluate(self: EvalCallback, *args: Any, **kwargs: Any) -> dict[str, float]:
        t, c = time.perf_counter(), time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            if self.stage == "val":
                total[0] += time.perf_counter() - t
                total[1] += time.process_time() - c
                marks.append((total[0], total[1]))

    EvalCallback.evaluate = evaluate  # type: ignore[method-assign]
    try:
        yield marks
    finally:
        EvalCallback.evaluate = original  # type: ignore[method-assign]


def _key(pt: PeerTask, library: str, setting: str, phase: str, seed: int, budget: int) -> dict[str, Any]:
    return dict(task=pt.name, library=library, setting=setting, phase=phase, seed=seed, budget=budget)


def run_amago(
    pt: PeerTask, seed: int, budget: Budget, phase: str, max_minutes: float | None, setting: str = "recipe"
) -> list[dict]:
    """One amago_pl run; ``setting`` names the ``AMAGO_SETTINGS`` entry ``budget`` was made with."""
    task = pt.task
    key = _key(pt, "amago_pl", setting, phase, seed, task.env_steps(budget.epochs))
    with timed_validation() as marks:
        # Greedy evaluation for both libraries (some recipes validate with sampled actions).
        r = run_task(
            task,
            seed=seed,
            budget=budget,
            early_stop=False,
            max_minutes=max_minutes,
            sample_actions_val=False,
        )
    rows = []
    for i, c in enumerate(r.curve):
        val_wall = marks[i][0] if i < len(marks) else (marks[-1][0] if marks else 0.0)
        rows.append(
            {
                **key,
                "kind": "curve",
                "env_steps": c["env_steps"],
                "updates": c["updates"],
                "metric": c[task.metric_name],
                "episodes": c["episodes"],
                "wall_s": c["wall_s"] - val_wall,
                **{k: c[k] for k in task.extra_metrics},
            }
        )
    val_wall, val_cpu = marks[-1] if marks else (0.0, 0.0)
    rows.append(
        {
            **key,
            "kind": "final",
            "env_steps": r.env_steps,
            "updates": r.updates,
            "metric": r.test_metric,
            "episodes": task.test_episodes,
            "wall_s": r.wall_s - val_wall,
            "cpu_s": r.cpu_s - val_cpu,
            "eval_s": val_wall,
            "out_of_time": r.out_of_time,
            **r.test_extra,
        }
    )
    return rows


def run_peer(
    pt: PeerTask, seed: int, setting: str, budget: int, phase: str, max_minutes: float | None, overrides: dict
) -> list[dict]:
    key = _key(pt, "RecurrentPPO", setting, phase, seed, budget)
    r = run_ppo(pt, seed, setting, budget, max_minutes=max_minutes, overrides=overrides)
    rows = [{**key, "kind": "curve", **c} for c in r.curve]
    rows.append(
        {
            **key,
            "kind": "final",
            "env_steps": r.env_steps,
            "updates": r.updates,
            "metric": r.test_metric,
            "episodes": pt.task.test_episodes,
            "wall_s": r.wall_s,
            "cpu_s": r.cpu_s,
            "eval_s": r.eval_s,
            "out_of_time": r.out_of_time,
            **r.test_extra,
        }
    )
    return rows


def run_baseline(pt: PeerTask, episodes: int) -> list[dict]:
    """A uniform random policy on ``episodes`` episodes: the "random" of the sample-efficiency target."""
    task = pt.task
    eps = run_episodes(
        random_actor(task.make_env, 0), task.make_env, task.parallel_actors, episodes, 3_000_000
    )
    key = _key(pt, "random", "uniform", "baseline", 0, 0)
    return [
        {
            **key,
            "kind": "final",
            "env_steps": 0,
            "metric": task.metric(eps),
            "episodes": len(eps),
            **{k: fn(eps) for k, fn in task.extra_metrics.items()},
        }
    ]


def finished(rows: list[dict[str, str]], key: dict[str, Any]) -> bool:
    return any(r["kind"] == "final" and all(r[k] == str(v) for k, v in key.items()) for r in rows)


def load_sweeps(out: Path) -> dict[str, Any]:
    path = out / "sweep.json"
    return json.loads(path.read_text()) if path.exists() else {}


def choose(pt: PeerTask, rows: list[dict[str, str]], budget: int, seeds: list[int]) -> dict[str, Any]:
    """Best setting by mean final test metric over the sweep seeds; ties by the mean curve value."""
    scores = {}
    for setting in pt.ppo_sweep:
        fin = [
            r
            for r in rows
            if r["library"] == "RecurrentPPO"
            and r["phase"] == "sweep"
            and r["setting"] == setting
            and r["budget"] == str(budget)
        ]
        finals = [float(r["metric"]) for r in fin if r["kind"] == "final"]
        curve = [float(r["metric"]) for r in fin if r["kind"] == "curve"]
        if finals:
            scores[setting] = {
                "final": float(np.mean(finals)),
                "curve_mean": float(np.mean(curve or [np.nan])),
                "seeds": len(finals),
            }
    chosen = max(scores, key=lambda s: (scores[s]["final"], np.nan_to_num(scores[s]["curve_mean"], nan=-1e9)))
    return {"chosen": chosen, "default": pt.ppo_default, "budget": budget, "seeds": seeds, "scores": scores}


def ppo_setting(pt: PeerTask, sweeps: dict[str, Any], budget: int, forced: str | None) -> str:
    if forced:
        return forced
    s = sweeps.get(pt.name)
    return s["chosen"] if s and s.get("budget") == budget else pt.ppo_default


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_one(path: Path, pt: PeerTask, key: dict, run: Callable[[], list[dict]]) -> None:
    """``run()`` unless ``path`` already has a final row for ``key``; append its rows."""
    if finished(read_rows(path), key):
        log(f"skip (finished): {key}")
        return
    t = time.perf_counter()
    rows = run()
    append_rows(path, pt, rows)
    final = rows[-1]
    log(
        f"{key['task']} {key['library']} ({key['setting']}, {key['phase']}) seed {key['seed']}: test "
        f"{final['metric']:.3g} after {final['env_steps']} env steps, {time.perf_counter() - t:.0f} s"
    )


def report(out: Path, names: list[str], forced: str | None, smoke: bool) -> None:
    sweeps = load_sweeps(out)
    summaries, settings, budgets = {}, {}, {}
    for name in names:
        pt = PEER_TASKS[name]
        rows = read_rows(out / f"{name}.csv")
        if not rows:
            continue
        budget = pt.task.env_steps(SMOKE_BUDGET.epochs) if smoke else pt.env_steps
        rule = f"--smoke: {SMOKE_BUDGET.epochs} epochs x {pt.steps_per_epoch}" if smoke else pt.rule()
        budgets[name] = (budget, rule)
        settings[name] = ppo_setting(pt, sweeps, budget, forced)
        summaries[name] = task_summary(pt, rows, settings[name])
        plot(out / f"{name}.png", pt, summaries[name], settings[name])
    lines = [
        f"# amago_pl vs sb3_contrib.RecurrentPPO{' (smoke budget)' if smoke else ''}",
        "",
        "Rules: benchmarks/peers.py (docstring). Sweeps (seeds never reported):",
        "",
    ]
    for name, s in sweeps.items():
        if name in summaries:
            scores = ", ".join(f"{k} {v['final']:.3g}" for k, v in s["scores"].items())
            lines.append(
                f"* {name}: chose **{s['chosen']}** (default {s['default']}) on seeds {s['seeds']}: {scores}"
            )
    (out / "peers.md").write_text("\n".join(lines) + "\n\n" + markdown(summaries, settings, budgets))
    log(f"wrote {out / 'peers.md'}")
    if out.resolve() == RESULTS.resolve():
        # mkdocs serves only files under docs/: docs/learning_results.md shows these copies.
        DOCS_FIGURES.mkdir(parents=True, exist_ok=True)
        for name in summaries:
            shutil.copyfile(out / f"{name}.png", DOCS_FIGURES / f"{name}.png")


def run_all(pt: PeerTask, args: argparse.Namespace, out: Path, sweeps: dict, overrides: dict) -> None:
    """One task: the random baseline, the sweep (with ``--sweep``), then the reported seeds,
    alternating the libraries so both see the machine's load of the same period."""
    budget = SMOKE_BUDGET if args.smoke else pt.budget
    steps = pt.task.env_steps(budget.epochs)
    path, mm = out / f"{pt.name}.csv", args.max_minutes
    key = _key(pt, "random", "uniform", "baseline", 0, 0)
    run_one(path, pt, key, partial(run_baseline, pt, 64 if args.smoke else BASELINE_EPISODES))
    if args.sweep and "RecurrentPPO" in args.libraries:
        for setting in pt.ppo_sweep:
            for seed in args.sweep_seeds:
                key = _key(pt, "RecurrentPPO", setting, "sweep", seed, steps)
                run_one(path, pt, key, partial(run_peer, pt, seed, setting, steps, "sweep", mm, overrides))
        sweeps[pt.name] = choose(pt, read_rows(path), steps, args.sweep_seeds)
        (out / "sweep.json").write_text(json.dumps(sweeps, indent=1) + "\n")
        log(f"{pt.name}: sweep chose {sweeps[pt.name]['chosen']}")
    setting = ppo_setting(pt, sweeps, steps, args.setting)
    for seed in args.seeds:
        if "amago_pl" in args.libraries:
            for variant in args.amago_settings:
                b = amago_budget(budget, variant)
                key = _key(pt, "amago_pl", variant, args.group, seed, steps)
                run_one(path, pt, key, partial(run_amago, pt, seed, b, args.group, mm, variant))
        if "RecurrentPPO" in args.libraries:
            key = _key(pt, "RecurrentPPO", setting, "report", seed, steps)
            run_one(path, pt, key, partial(run_peer, pt, seed, setting, steps, "report", mm, overrides))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="*", default=list(PEER_TASKS), help=f"any of {list(PEER_TASKS)}")
    p.add_argument("--libraries", nargs="*", default=list(LIBRARIES), choices=LIBRARIES)
    p.add_argument("--seeds", nargs="*", type=int, default=REPORT_SEEDS, help="reported seeds (default 0-4)")
    p.add_argument("--sweep", action="store_true", help="sweep RecurrentPPO settings on --sweep_seeds first")
    p.add_argument("--sweep_seeds", nargs="*", type=int, default=SWEEP_SEEDS)
    p.add_argument("--setting", choices=sorted(PPO_SETTINGS), help="force this RecurrentPPO setting")
    p.add_argument(
        "--amago_settings",
        nargs="*",
        default=["recipe"],
        choices=list(AMAGO_SETTINGS),
        help="amago_pl settings to run: the recipe and/or variants with fewer updates per epoch",
    )
    p.add_argument(
        "--group",
        default="report",
        help="run the amago_pl settings as a named comparison group instead of the reported rows "
        "(e.g. the recipe and its variants on the same machine); needs --libraries amago_pl",
    )
    p.add_argument(
        "--max_minutes", type=float, default=None, help="wall-clock guard per run (flagged in the table)"
    )
    p.add_argument(
        "--smoke", action="store_true", help="tmaze10 (unless --tasks), one seed, 2 epochs of 5 updates"
    )
    p.add_argument("--report", action="store_true", help="only rebuild the table and figures from the CSVs")
    p.add_argument("--out", type=Path, default=None, help=f"default {RESULTS} ({RESULTS}/smoke with --smoke)")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, pt in PEER_TASKS.items():
            print(
                f"{name:24s} {pt.env_steps:>8,} env steps  PPO default {pt.ppo_default:20s} {pt.task.description}"
            )
        return
    if args.group != "report" and (args.libraries != ["amago_pl"] or args.group in ("sweep", "baseline")):
        p.error(
            f"--group {args.group!r}: a comparison group holds amago_pl runs only and may not be named "
            "'sweep' or 'baseline'; pass --libraries amago_pl and another name"
        )
    unknown = set(args.tasks) - set(PEER_TASKS)
    if unknown:
        p.error(f"unknown tasks {sorted(unknown)}; choose from {list(PEER_TASKS)}")
    out = args.out or (RESULTS / "smoke" if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    overrides: dict[str, Any] = {}
    if args.smoke:
        if args.tasks == list(PEER_TASKS):
            args.tasks = ["tmaze10"]
        args.seeds, args.sweep_seeds = args.seeds[:1], args.sweep_seeds[:1]
        overrides = {"n_steps": 16, "batch_size": 64}  # a few PPO updates inside the tiny budget
    if not args.report:
        sweeps = load_sweeps(out)
        for name in args.tasks:
            run_all(PEER_TASKS[name], args, out, sweeps, overrides)
    report(out, args.tasks, args.setting, args.smoke)
    print((out / "peers.md").read_text())


if __name__ == "__main__":
    main()
