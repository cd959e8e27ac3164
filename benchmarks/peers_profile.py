"""Where the training wall time goes, amago_pl vs RecurrentPPO, on the peers benchmark's tasks.

``benchmarks/peers.py`` reports wall seconds per 1,000 env steps; this script splits them into
collecting (env steps plus the policy's forward passes) and updating (gradient steps), so a table
row that amago_pl loses on wall time says which part limits it. For each task both libraries train
on the same number of env steps (``--env_steps``, rounded up to whole amago_pl epochs; the start of
the peers run, so the recipes' early epochs, not their asymptote) on one torch thread:

* amago_pl: the task's recipe; collection is the time spent in the training rollouts (the
  ``interact`` calls of ``RolloutCallback``), updating is the rest of the training time after the
  validations (timed as in ``peers.py``) are taken out: gradient steps, data loading, logging;
* RecurrentPPO: the setting ``benchmarks/results/peers/sweep.json`` chose for the task (else its
  default); collection is ``collect_rollouts`` minus the curve evaluations that run inside it,
  updating is ``train``.

    python benchmarks/peers_profile.py --tasks tmaze10 pendulum
    python benchmarks/peers_profile.py --env_steps 5000

Writes ``benchmarks/results/peers/profile.md`` (and prints it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import amago_pl.callbacks.rollout as rollout_module  # noqa: E402
from benchmarks.learning import run_task  # noqa: E402
from benchmarks.learning_tasks import Budget  # noqa: E402
from benchmarks.peers import timed_validation  # noqa: E402
from benchmarks.peers_ppo import run_ppo  # noqa: E402
from benchmarks.peers_tasks import PEER_TASKS, PeerTask  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "peers"


@contextmanager
def _timed(owner: Any, name: str, total: list[float]) -> Iterator[None]:
    """Add the wall seconds of every call of ``owner.name`` to ``total[0]`` while inside."""
    original: Callable = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def profile_amago(pt: PeerTask, epochs: int, seed: int) -> dict[str, float]:
    collect = [0.0]
    with timed_validation() as marks, _timed(rollout_module, "interact", collect):
        r = run_task(pt.task, seed=seed, budget=Budget(epochs, pt.task.full.updates), early_stop=False)
    val_wall = marks[-1][0] if marks else 0.0
    # Only the training rollouts go through rollout_module.interact (EvalCallback imports its own
    # reference), so the validations are in val_wall alone.
    return _row(r.env_steps, r.updates, r.wall_s - val_wall, collect[0])


def profile_ppo(pt: PeerTask, env_steps: int, seed: int, setting: str) -> dict[str, float]:
    from sb3_contrib import RecurrentPPO

    collect, train = [0.0], [0.0]
    with _timed(RecurrentPPO, "collect_rollouts", collect), _timed(RecurrentPPO, "train", train):
        r = run_ppo(pt, seed, setting, env_steps)
    # The curve evaluations run inside collect_rollouts (a callback's on_step).
    collecting = collect[0] - r.eval_s
    return _row(r.env_steps, r.updates, r.wall_s, collecting)


def _row(env_steps: int, updates: int, wall: float, collecting: float) -> dict[str, float]:
    updating = max(wall - collecting, 0.0)
    return {
        "env_steps": float(env_steps),
        "updates": float(updates),
        "wall_1k": 1000.0 * wall / max(env_steps, 1),
        "collect_share": collecting / wall if wall > 0 else math.nan,
        "collect_1k": 1000.0 * collecting / max(env_steps, 1),
        "update_1k": 1000.0 * updating / max(env_steps, 1),
        "ms_per_update": 1000.0 * updating / updates if updates else math.nan,
        "updates_per_1k": 1000.0 * updates / max(env_steps, 1),
    }


def chosen_setting(pt: PeerTask) -> str:
    path = OUT / "sweep.json"
    if path.exists():
        chosen = json.loads(path.read_text()).get(pt.name, {}).get("chosen")
        if chosen:
            return chosen
    return pt.ppo_default


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    out = [
        "| task | library (setting) | env steps | updates per 1,000 env steps | wall s per 1,000 env steps | "
        "collecting: s per 1,000 (share) | updating: s per 1,000 | ms per update |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, label, r in rows:
        out.append(
            f"| {task} | {label} | {r['env_steps']:,.0f} | {r['updates_per_1k']:.0f} | {r['wall_1k']:.2f} | "
            f"{r['collect_1k']:.2f} ({100 * r['collect_share']:.0f}%) | {r['update_1k']:.2f} | "
            f"{r['ms_per_update']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=list(PEER_TASKS), choices=list(PEER_TASKS))
    p.add_argument("--env_steps", type=int, default=5000, help="per library and task (whole amago_pl epochs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT / "profile.md")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = []
    for name in args.tasks:
        pt = PEER_TASKS[name]
        epochs = max(1, math.ceil(args.env_steps / pt.steps_per_epoch))
        a = profile_amago(pt, epochs, args.seed)
        rows.append((pt.task.description, "amago_pl (recipe)", a))
        setting = chosen_setting(pt)
        rows.append(
            (
                pt.task.description,
                f"RecurrentPPO ({setting})",
                profile_ppo(pt, int(a["env_steps"]), args.seed, setting),
            )
        )
        print(table(rows[-2:]), flush=True)
    text = (
        "# Where the training wall time goes (benchmarks/peers_profile.py)\n\n"
        f"Seed {args.seed}, the first ~{args.env_steps:,} env steps of each task, one torch thread.\n\n"
        + table(rows)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
