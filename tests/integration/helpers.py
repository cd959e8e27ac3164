"""Shared builders for the integration tests: a tiny T-Maze run."""

from __future__ import annotations

import csv
from pathlib import Path

from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive

TINY_GIN = {
    "FFTstepEncoder.d_hidden": 32,
    "FFTstepEncoder.d_output": 16,
    "TformerTrajEncoder.d_model": 32,
    "TformerTrajEncoder.d_ff": 64,
    "TformerTrajEncoder.n_layers": 1,
    "TformerTrajEncoder.n_heads": 2,
    "GRUTrajEncoder.d_hidden": 32,
    "GRUTrajEncoder.d_output": 32,
    "Actor.d_hidden": 32,
    "NCritics.d_hidden": 32,
}


class MakeTMaze:
    def __init__(self, corridor: int = 3):
        self.corridor = corridor

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(TMazeAltPassive(corridor_length=self.corridor), env_name="TMaze")


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(Path(run_dir).glob("logs/*/metrics.csv")):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


def metric_names(run_dir: Path) -> set[str]:
    names: set[str] = set()
    for row in read_metrics(run_dir):
        names |= {k for k, v in row.items() if v not in ("", None)}
    return names
