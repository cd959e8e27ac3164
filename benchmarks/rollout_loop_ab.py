"""Collection speed of the rollout loop at two commits, measured in one process (issue [policy] item 2).

The rollout loop (``amago_pl/callbacks/interact.py``) now acts through ``amago_pl.policy.step``,
the step a deployed ``Policy`` runs. This script loads the loop's file as it was at an earlier
commit (``--before``, default the commit before that change) next to the current one and times
both on the same agent, the same kind of envs and the same machine load, alternating blocks of
``--block`` steps (before, after, before, ...; each variant has its own envs so its episodes and
written trajectories are continuous). Two separate processes would each see a different load on a
shared machine; alternating in one process makes the ratio trustworthy.

    python benchmarks/rollout_loop_ab.py                      # T-Maze 10, 8 sync actors
    python benchmarks/rollout_loop_ab.py --rounds 20 --block 40

Prints a table: median and best env steps/s of each loop and the ratio after / before.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.rollout import CONTEXT, build_agent, make_env_fn  # noqa: E402

LOOP_FILE = "amago_pl/callbacks/interact.py"
BEFORE = "909220c"  # the last commit whose loop called agent.get_actions itself


def load_loop_at(commit: str, folder: str):
    """The module ``interact.py`` as it was at ``commit`` (imported under another name)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{LOOP_FILE}"], check=True, capture_output=True, text=True
    ).stdout
    path = os.path.join(folder, f"interact_{commit}.py")
    Path(path).write_text(source)
    spec = importlib.util.spec_from_file_location(f"interact_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def bench(env: str, actors: int, policy: str, block: int, rounds: int, before: str) -> dict[str, list[float]]:
    """Seconds per batched step of each loop, one entry per timed block."""
    # import_module, not ``import ... as``: the package exports a function named ``interact``.
    after_loop = importlib.import_module("amago_pl.callbacks.interact")
    from amago_pl.datamodules import TrajectoryStore, TrajectoryWriter
    from amago_pl.envs import EpsilonGreedy, make_parallel_envs

    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        loops = {"before": load_loop_at(before, tmp), "after": after_loop}
        envs = {k: make_parallel_envs(make_env_fn(env), actors, mode="sync", seed=0) for k in loops}
        try:
            agent = build_agent(envs["after"], policy, CONTEXT[env])
            state, writer, explore = {}, {}, {}
            for k, loop in loops.items():
                ts = envs[k].reset()
                state[k] = loop.fresh_state(agent, ts, agent.device)
                writer[k] = TrajectoryWriter(TrajectoryStore(os.path.join(tmp, k)), actors, 10**10)
                writer[k].start(ts)
                explore[k] = EpsilonGreedy(envs[k].single_action_space, actors, steps_anneal=10**6)
            for r in range(rounds + 1):  # round 0 warms up
                for k, loop in loops.items():
                    start = time.perf_counter()
                    loop.interact(agent, envs[k], state[k], block, exploration=explore[k], writer=writer[k])
                    if r:
                        times[k].append((time.perf_counter() - start) / block)
        finally:
            for e in envs.values():
                e.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="tmaze", choices=sorted(CONTEXT))
    parser.add_argument("--actors", type=int, default=8)
    parser.add_argument("--policies", nargs="+", default=["ff", "gru", "transformer"])
    parser.add_argument("--block", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--before", default=BEFORE, help="commit of the 'before' loop")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(
        "| env | actors | policy | before median / best (steps/s) | after median / best | after / before (median) |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for policy in args.policies:
        t = bench(args.env, args.actors, policy, args.block, args.rounds, args.before)
        rate = {k: (args.actors / statistics.median(v), args.actors / min(v)) for k, v in t.items()}
        print(
            f"| {args.env} | {args.actors} | {policy} | {rate['before'][0]:,.0f} / {rate['before'][1]:,.0f} | "
            f"{rate['after'][0]:,.0f} / {rate['after'][1]:,.0f} | {rate['after'][0] / rate['before'][0]:.3f} |",
            flush=True,
        )
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
