"""Pieces of the hang tests: a T-Maze that blocks in ``step`` or ``reset``, and a script that runs
parallel envs or a tiny Experiment in a subprocess (killed or SIGTERMed by the test).

    python -m tests.faults.hang_support envs OUT_JSON        async envs whose env 1 hangs in step
    python -m tests.faults.hang_support wait RUN_DIR         a learner waiting for data that never comes
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from amago_pl.envs import AMAGOEnv
from tests.faults.support import FaultyTMaze

HANG_SECONDS = 3600.0  # "forever" for a test; the process is timed out or killed long before


class HangingTMaze(FaultyTMaze):
    """T-Maze whose ``call`` ("step" or "reset") blocks from its ``at``-th call on."""

    def __init__(self, call: str, at: int):
        super().__init__(None, 0)
        self.call, self.at = call, at

    def reset(self, **kwargs: Any):
        if self.call == "reset" and self.resets + 1 >= self.at:
            time.sleep(HANG_SECONDS)
        return super().reset(**kwargs)

    def step(self, action: Any):
        if self.call == "step" and self.steps + 1 >= self.at:
            time.sleep(HANG_SECONDS)
        return super().step(action)


class MakeHanging:
    """Picklable factory of ``AMAGOEnv(HangingTMaze(...))`` named "HangMaze"."""

    def __init__(self, call: str = "step", at: int = 2):
        self.call, self.at = call, at

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(HangingTMaze(self.call, self.at), env_name="HangMaze")


def _envs(out: Path) -> None:
    from amago_pl.envs import make_parallel_envs
    from tests.faults.support import MakeFaulty

    envs = make_parallel_envs(
        [MakeFaulty(), MakeHanging("step", 1)], 2, mode="async", seed=0, envs_per_worker=1, hang_timeout=None
    )
    envs.reset()
    out.write_text(json.dumps({"workers": envs.worker_pids()}))
    envs.step(np.zeros(2, dtype=np.int64))  # env 1 never returns: the test SIGKILLs this process


def _wait(run_root: Path) -> None:
    from tests.faults.support import tiny_experiment

    # No collection and an empty store: the learner waits for a collector that never comes. It
    # starts learning at epoch 1, so the wait runs inside the fit loop, where Lightning's SIGTERM
    # handler is installed (it is installed only after on_fit_start).
    exp = tiny_experiment(
        run_root, train_timesteps_per_epoch=0, hang_timeout=120, epochs=2, start_learning_at_epoch=1
    )
    exp.start()
    import amago_pl.callbacks.rollout as rollout

    real = rollout.sleep_and_refresh

    def announce_then_wait(dataset: Any) -> None:  # tells the test that the wait has begun
        if not getattr(announce_then_wait, "said", False):
            announce_then_wait.said = True
            print("WAITING", flush=True)
        real(dataset)

    rollout.sleep_and_refresh = announce_then_wait
    exp.learn()


if __name__ == "__main__":
    {"envs": _envs, "wait": _wait}[sys.argv[1]](Path(sys.argv[2]))
