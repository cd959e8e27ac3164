"""TrajectoryWriter: episode ends, splitting with overlap, dones, dropped episodes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from replay_factories import FakeEnvs

from amago_pl.datamodules import TrajectoryStore, TrajectoryWriter
from amago_pl.types import FrozenTraj


def _run(
    tmp_path: Path,
    episode_lens: list[int],
    steps: int,
    traj_save_len: int = 1000,
    kind: str = "terminated",
    save_len_range: tuple[int, int] | None = None,
    drop_at: dict[int, int] | None = None,
) -> tuple[TrajectoryStore, TrajectoryWriter, list[FrozenTraj]]:
    store = TrajectoryStore(tmp_path / "buffer")
    envs = FakeEnvs(len(episode_lens), episode_lens, kind)
    writer = TrajectoryWriter(store, len(episode_lens), traj_save_len, save_len_range=save_len_range)
    writer.start(envs.reset())
    total = 0
    for step in range(steps):
        actions = np.arange(len(episode_lens), dtype=np.int64) % 4
        dropped = np.zeros(len(episode_lens), bool)
        if drop_at and step in drop_at:
            dropped[drop_at[step]] = True
        total += writer.add(actions, envs.step(actions, dropped))
    assert total == writer.files_written == len(store.files())
    return store, writer, [store.load(p) for p in store.files()]


def test_finished_episodes_are_saved_whole_with_terminated_dones(tmp_path: Path) -> None:
    _, writer, trajs = _run(tmp_path, [3, 5], steps=10)
    assert writer.flush() == 0  # unfinished episodes stay in memory
    by_len = sorted(len(t) for t in trajs)
    assert by_len == [3, 3, 3, 5, 5]  # env0: 3 episodes in 10 steps (1 pending), env1: 2
    for t in trajs:
        assert t.dones.tolist() == [False] * (len(t) - 1) + [True]
        np.testing.assert_array_equal(t.time_idxs, np.arange(len(t) + 1))
        assert t.actions.dtype == np.int64 and t.actions.shape == (len(t), 1) and t.action_is_index
        # the last timestep is the true final one (from result.final), not the reset obs
        assert t.obs["x"][-1, 0] == t.obs["x"][0, 0] + len(t)
        # rl2s hold the reward received on arriving, i.e. rews shifted by one
        np.testing.assert_array_equal(t.rl2s[1:, 0], t.rews)
        assert (t.rl2s[0] == 0).all()
    assert writer.pending_transitions() == [1, 0]


def test_truncated_episodes_store_no_done(tmp_path: Path) -> None:
    _, _, trajs = _run(tmp_path, [4], steps=8, kind="truncated")
    assert len(trajs) == 2
    for t in trajs:
        assert not t.dones.any()
        assert t.obs["x"][-1, 0] == t.obs["x"][0, 0] + 4  # bootstraps from the real last obs


def test_long_episodes_are_split_with_one_overlapping_timestep(tmp_path: Path) -> None:
    _, _, trajs = _run(tmp_path, [23], steps=23, traj_save_len=5)
    assert [len(t) for t in trajs] == [5, 5, 5, 5, 3]
    for a, b in zip(trajs, trajs[1:]):
        np.testing.assert_array_equal(a.obs["x"][-1], b.obs["x"][0])
        np.testing.assert_array_equal(a.rl2s[-1], b.rl2s[0])
        assert a.time_idxs[-1] == b.time_idxs[0]
    # together the pieces hold every transition exactly once
    rews = np.concatenate([t.rews for t in trajs])
    np.testing.assert_array_equal(rews, np.arange(1, 24, dtype=np.float32))
    assert [t.dones.any() for t in trajs] == [False] * 4 + [True]


def test_save_len_range_draws_integer_lengths(tmp_path: Path) -> None:
    random.seed(0)
    _, _, trajs = _run(tmp_path, [200], steps=200, traj_save_len=10**9, save_len_range=(5, 9))
    lens = [len(t) for t in trajs]
    assert all(5 <= n <= 9 for n in lens[:-1]) and len(set(lens[:-1])) > 1
    assert sum(lens) == 200
    with pytest.raises(ValueError, match="ints"):
        TrajectoryWriter(TrajectoryStore(tmp_path / "b2"), 1, 10, save_len_range=(2.0, 5.0))


def test_dropped_episode_is_discarded(tmp_path: Path) -> None:
    # env0 crashes at step 2 of an episode of length 5; env1 keeps going.
    _, writer, trajs = _run(tmp_path, [5, 5], steps=9, drop_at={2: 0})
    assert writer.discarded == 1
    assert sorted(len(t) for t in trajs) == [5, 5]  # env0's first episode was lost; its restart finished
    starts = sorted(float(t.obs["x"][0, 0]) for t in trajs)
    assert starts == [0.0, 3.0]  # env1's episode from 0, env0's fresh episode after the crash


def test_continuous_actions_are_float32(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    envs = FakeEnvs(2, [3, 3], num_actions=2)
    writer = TrajectoryWriter(store, 2, 100)
    writer.start(envs.reset())
    for _ in range(3):
        result = envs.step(np.zeros(2, np.int64))
        writer.add(np.full((2, 2), 0.5, np.float64), result)
    trajs = [store.load(p) for p in store.files()]
    assert len(trajs) == 2
    for t in trajs:
        assert t.actions.dtype == np.float32 and t.actions.shape == (3, 2) and not t.action_is_index


def test_add_before_start_fails(tmp_path: Path) -> None:
    writer = TrajectoryWriter(TrajectoryStore(tmp_path / "buffer"), 1, 10)
    with pytest.raises(RuntimeError, match="start"):
        writer.add(np.zeros(1, np.int64), FakeEnvs(1, [3]).step(np.zeros(1, np.int64)))
