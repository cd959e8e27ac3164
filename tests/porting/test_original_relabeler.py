"""A relabeler written for the original (``amago.hindsight.Relabeler``) runs after the rename: it
receives the original's layout, (T-1, 1) ``rews``/``dones`` and (T, 1) ``time_idxs``
(amago/hindsight.py:120-140 at 2d85600), may edit it in place, reassign slices and drop obs keys
(as examples/13_mazerunner_relabeling.py does), and the result reaches training."""

from __future__ import annotations

import numpy as np

from amago_pl import cli_utils
from amago_pl.envs.builtin.mazerunner import MazeRunnerAMAGOEnv
from amago_pl.hindsight import FrozenTraj, Relabeler
from amago_pl.loading import DiskTrajDataset
from amago_pl.types import FrozenTraj as StoredTraj
from tests.porting.porting_helpers import tiny_run


class FirstCellsRelabeler(Relabeler):
    """Pretend the instruction was "visit the first k new cells you visited": recompute rewards and
    terminals in place, then cut after the first terminal (a compact version of the original's
    HindsightInstructionReplay)."""

    calls = 0

    def __init__(self, num_goals: int):
        self.k = num_goals

    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        FirstCellsRelabeler.calls += 1
        length = len(traj.rews)
        assert traj.rews.shape == (length, 1) and traj.dones.shape == (length, 1)
        assert traj.time_idxs.shape == (length + 1, 1) and traj.actions.shape == (length, 5)
        real_hits = np.nonzero(traj.rews[:, 0])[0]  # the original's idiom
        assert len(real_hits) <= self.k
        achieved = traj.obs["achieved"][:, 0]  # (T, 2)
        seen, goals = {tuple(achieved[0])}, []
        for cell in achieved[1:]:
            if tuple(cell) not in seen and len(goals) < self.k:
                seen.add(tuple(cell))
                goals.append(cell)
        if len(goals) < self.k:
            del traj.obs["achieved"]
            return traj
        traj.rews[:] = 0.0
        traj.rl2s[:, 0] = 0.0
        traj.obs["goals"] = np.repeat(np.stack(goals)[None], length + 1, axis=0)
        active = 0
        for t in range(1, length + 1):
            if np.array_equal(achieved[t], goals[active]):
                traj.rews[t - 1] = 1.0
                traj.rl2s[t][0] = 1.0
                active += 1
            traj.obs["goals"][t][:active] = -1
            if active == self.k:
                traj.dones[t - 1] = True
                break
        del traj.obs["achieved"]
        traj.obs = {key: v[: t + 1] for key, v in traj.obs.items()}
        traj.rl2s, traj.time_idxs = traj.rl2s[: t + 1], traj.time_idxs[: t + 1]
        traj.rews, traj.dones, traj.actions = traj.rews[:t], traj.dones[:t], traj.actions[:t]
        return traj


def stored_traj() -> StoredTraj:
    """4 observations, 3 transitions of a k=2 maze; cells (1,1) -> (2,1) -> (2,1) -> (3,1); no reward."""
    achieved = np.array([[[1, 1]], [[2, 1]], [[2, 1]], [[3, 1]]], dtype=np.float32)  # (4, 1, 2)
    actions = np.array([[2], [0], [2]], dtype=np.int64)  # indices into Discrete(5)
    rl2s = np.zeros((4, 6), dtype=np.float32)
    rl2s[np.arange(1, 4), 1 + actions[:, 0]] = 1.0
    return StoredTraj(
        obs={
            "obs": np.zeros((4, 7), np.float32),
            "achieved": achieved,
            "goals": np.full((4, 2, 2), 9, np.float32),
        },
        rl2s=rl2s,
        time_idxs=np.arange(4),
        rews=np.zeros(3, np.float32),
        dones=np.zeros(3, bool),
        actions=actions,
        action_is_index=True,
    )


def test_relabeler_sees_and_edits_the_original_layout():
    traj = stored_traj()
    before = {k: v.copy() for k, v in traj.to_dict().items()}
    out = FirstCellsRelabeler(num_goals=2)(traj)
    # goals become (2,1) then (3,1): reached at t = 1 and t = 3, so rewards [1, 0, 1], done at the end
    np.testing.assert_array_equal(out.rews, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out.dones, [False, False, True])
    np.testing.assert_array_equal(out.rl2s[:, 0], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out.time_idxs, [0, 1, 2, 3])
    np.testing.assert_array_equal(out.actions, [[2], [0], [2]])  # indices again
    assert out.action_is_index and set(out.obs) == {"obs", "goals"}
    np.testing.assert_array_equal(out.obs["goals"][1], [[-1, -1], [3, 1]])
    assert all(np.array_equal(v, traj.to_dict()[k]) for k, v in before.items())  # input untouched


def test_relabeler_cuts_after_the_first_terminal():
    out = FirstCellsRelabeler(num_goals=1)(stored_traj())  # goal (2,1), reached at t = 1
    assert len(out) == 1 and out.rews.tolist() == [1.0] and out.dones.tolist() == [True]
    assert len(out.rl2s) == 2 and len(out.obs["goals"]) == 2


def test_relabeler_through_a_tiny_experiment(tmp_path):
    FirstCellsRelabeler.calls = 0
    config: dict = {}
    tstep = cli_utils.switch_tstep_encoder(
        config, arch="ff", n_layers=1, d_hidden=32, d_output=16, specify_obs_keys=["obs", "goals"]
    )
    dataset = DiskTrajDataset(
        dset_root=str(tmp_path),
        dset_name="port",
        dset_max_size=100,
        relabeler=FirstCellsRelabeler(num_goals=2),
    )

    def make_env():
        return MazeRunnerAMAGOEnv(maze_dim=7, num_goals=2, time_limit=8, randomized_action_space=True)

    tiny_run(tmp_path, make_env, tstep_encoder_type=tstep, config=config, max_seq_len=9, dataset=dataset,
             traj_save_len=9, stagger_traj_file_lengths=False)  # fmt: skip
    assert FirstCellsRelabeler.calls > 0
