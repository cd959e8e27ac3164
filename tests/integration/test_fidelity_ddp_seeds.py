"""Row 6: under DDP the ranks must not draw the same random numbers.

Every rank seeds torch with the same run seed (and torch starts from one fixed seed anyway), so
without a per-rank reseed two ranks that see the same observations sample the same actions and
store the same trajectories. This file is both the pytest test and, run as a script, the 2-process
CPU (gloo) Experiment that Lightning's launcher re-runs for rank 1 (as tests/integration/ddp_script.py).

The env ignores its seed and always shows the same observation, so the actions the policy samples
depend only on each rank's random generators (exploration is off). The Experiment gets no seed:
each rank process draws its own, and both must end up with rank 0's (recorded in the checkpoint).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.cli_support import load_ckpt, subprocess_env  # noqa: E402

pytestmark = pytest.mark.integration
ACTORS = 2
STEPS = 12
EPISODE = 6


class ConstantEnv(gym.Env):
    """One observation forever, 6 actions, no reward; records the actions it receives."""

    received: list[int] = []  # per process: every action any instance was given

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(6)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.full(2, 0.5, dtype=np.float32), {}

    def step(self, action):
        ConstantEnv.received.append(int(np.asarray(action).reshape(-1)[0]))
        self.t += 1
        return np.full(2, 0.5, dtype=np.float32), 0.0, self.t >= EPISODE, False, {}


class MakeConstant:
    def __call__(self):
        from amago_pl.envs import AMAGOEnv

        return AMAGOEnv(ConstantEnv(), env_name="Constant")


def main(out_dir: str) -> None:
    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.callbacks import RolloutCallback
    from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
    from amago_pl.modules.agent import Agent
    from tests.integration.helpers import TINY_GIN

    config = dict(TINY_GIN)
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "gru")
    use_config(config, finalize=False)
    exp = Experiment(
        run_name="ddp_seeds",
        ckpt_base_dir=out_dir,
        max_seq_len=EPISODE,
        dataset=DiskTrajDataset(dset_root=out_dir, dset_name="ddp_seeds", dset_max_size=1000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=Agent,
        make_train_env=MakeConstant(),
        make_val_env=MakeConstant(),
        val_timesteps_per_epoch=0,
        parallel_actors=ACTORS,
        env_mode="sync",
        exploration_wrapper_type=None,
        epochs=1,
        train_timesteps_per_epoch=STEPS,
        train_batches_per_epoch=2,
        batch_size=2,
        val_interval=None,
        ckpt_interval=1,
        dloader_workers=0,
        verbose=False,
        traj_save_len=EPISODE + 1,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
    )
    exp.start()
    exp.learn()
    rollout = next(cb for cb in exp.trainer.callbacks if isinstance(cb, RolloutCallback))
    report = {
        "rank": exp.trainer.global_rank,
        "seed": exp.seed,
        "env_seed": getattr(rollout, "env_seed", None),
        "actions": ConstantEnv.received[: ACTORS * STEPS],
    }
    (Path(out_dir) / f"rank{exp.trainer.global_rank}.json").write_text(json.dumps(report))


def _stored_actions(run_root: Path) -> dict[str, list[bytes]]:
    """Action arrays of the stored trajectory files, by the rank tag in the file name (``n0r1``)."""
    by_rank: dict[str, list[bytes]] = {}
    for f in sorted((run_root / "ddp_seeds" / "buffer" / "fifo").glob("*.npz")):
        tag = f.name.split("_")[2][:4]
        with np.load(f, allow_pickle=False) as data:
            by_rank.setdefault(tag, []).append(np.asarray(data["actions"]).tobytes())
    return by_rank


def test_ddp_ranks_sample_and_store_different_data(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(r0["actions"]) == len(r1["actions"]) == ACTORS * STEPS
    # Same weights, same observations: only the ranks' generators can make these differ.
    assert r0["actions"] != r1["actions"], "both ranks sampled the same actions"
    stored = _stored_actions(tmp_path)
    assert {"n0r0", "n0r1"} <= set(stored), sorted(stored)
    assert set(stored["n0r0"]) != set(stored["n0r1"]), "both ranks stored the same trajectories"
    # Env seeds: rank 0 keeps the run seed, rank 1 derives its own; env i adds i, so the two
    # ranks' windows [s, s + ACTORS) must not overlap.
    assert r0["env_seed"] == r0["seed"]
    assert abs(r0["env_seed"] - r1["env_seed"]) >= ACTORS
    # Each process drew its own seed; both run with rank 0's, which the checkpoint records.
    assert r0["seed"] == r1["seed"]
    assert load_ckpt(tmp_path / "ddp_seeds" / "ckpts" / "last.ckpt")["amago_pl_seed"] == r0["seed"]


if __name__ == "__main__":
    main(sys.argv[1])
