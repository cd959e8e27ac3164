"""TrajectoryStore: round-trips, atomic writes, quarantine, eviction, concurrent access."""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest
from replay_factories import assert_traj_equal, make_traj

from amago_pl.datamodules import StoreWriteError, TrajectoryStore
from amago_pl.datamodules.store import file_time_ns


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("num_actions", [None, 4, 1000])
def test_round_trip_every_field_and_dtype(tmp_path: Path, compressed: bool, num_actions: int | None) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    traj = make_traj(37, traj_id=3, num_actions=num_actions, seed=1)
    if num_actions == 1000:
        traj.actions[:] = np.arange(900, 936)[:, None]  # indices far beyond uint8
    path = store.write(traj, "my_env", compressed=compressed)
    loaded = store.load(path)
    assert loaded is not None
    assert_traj_equal(traj, loaded)
    if num_actions is not None:
        assert loaded.actions.dtype == np.int64 and loaded.action_is_index
        assert loaded.action_rep().shape == (36, num_actions)


def test_file_names_are_unique_sortable_and_parseable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "3")
    store = TrajectoryStore(tmp_path / "buffer")
    paths = [store.write(make_traj(3), "ALE/Pong_v5") for _ in range(5)]
    assert len({p.name for p in paths}) == 5
    for p in paths:
        env, t, token, uid = p.stem.split("_")
        assert env == "ALEPongv5" and t.isdigit() and "r3" in token and f"p{os.getpid()}" in token
        assert len(uid) == 8
    assert store.files() == paths  # oldest first
    assert [file_time_ns(p) for p in paths] == sorted(file_time_ns(p) for p in paths)


def test_half_written_temp_file_is_invisible(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    good = store.write(make_traj(5), "env")
    # What a writer killed mid-write leaves behind: a partial dot-file.
    data = good.read_bytes()
    (store.fifo_dir / f".env_{time.time_ns()}_n0r0p1_deadbeef.npz.tmp").write_bytes(data[: len(data) // 2])
    assert store.files() == [good]
    assert store.stats()["files"] == 1


def test_failed_write_removes_temp_and_names_path_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TrajectoryStore(tmp_path / "buffer")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StoreWriteError) as info:
        store.write(make_traj(50), "env")
    msg = str(info.value)
    assert "disk full" in msg and str(store.fifo_dir) in msg and "bytes" in msg
    assert info.value.errno == errno.ENOSPC
    assert list(store.fifo_dir.iterdir()) == []  # no temp file left


def test_corrupt_and_foreign_files_are_skipped_counted_quarantined(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    good = store.write(make_traj(8), "env")
    corrupt = store.fifo_dir / f"env_{time.time_ns()}_n0r0p1_aaaaaaaa.npz"
    corrupt.write_bytes(good.read_bytes()[:100])  # truncated zip
    foreign = store.fifo_dir / f"env_{time.time_ns()}_n0r0p1_bbbbbbbb.npz"
    np.savez(foreign, weights=np.ones(3))  # valid npz, not a trajectory
    pickled = store.fifo_dir / f"env_{time.time_ns()}_n0r0p1_cccccccc.npz"
    np.savez(pickled, rl2s=np.array([{"a": 1}], dtype=object))  # would need unpickling
    assert len(store.files()) == 4
    for bad in (corrupt, foreign, pickled):
        # Files that have been there a while: a just-modified file may be a copy in progress and
        # is only retried later (issue 21 item 3; tests/faults/test_faults_store_files.py).
        old = time.time() - 60
        os.utime(bad, (old, old))
        assert store.load(bad) is None
        assert not bad.exists() and (store.quarantine_dir / bad.name).exists()
    assert store.files() == [good]
    assert store.stats()["quarantined"] == 3
    assert store.quarantined_here == 3
    assert store.load(good) is not None


def test_missing_file_is_not_quarantined(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    assert store.load(store.fifo_dir / "gone_1_n0r0p1_00000000.npz") is None
    assert store.stats()["quarantined"] == 0


def test_eviction_keeps_newest_and_never_touches_protected(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer", max_size=3)
    protected = [store.write(make_traj(4), "demo", protected=True) for _ in range(4)]
    fifo = [store.write(make_traj(4), "env") for _ in range(7)]
    assert store.evict() == 4
    assert store.files(include_protected=False) == fifo[-3:]
    assert all(p.exists() for p in protected)
    stats = store.stats()
    assert stats["fifo_files"] == 3 and stats["protected_files"] == 4 and stats["evicted"] == 4
    assert stats["timesteps"] == pytest.approx(7 * 3)
    assert stats["bytes"] > 0
    assert store.evict() == 0


def test_stale_temp_files_are_cleaned_by_evict(tmp_path: Path) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    stale = store.fifo_dir / ".env_1_n0r0p1_00000000.npz.tmp"
    fresh = store.fifo_dir / ".env_2_n0r0p1_00000001.npz.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    store.evict()
    assert not stale.exists() and fresh.exists()  # a live writer's temp file is left alone


def _writer_proc(path: str, n: int) -> None:
    store = TrajectoryStore(path)
    for i in range(n):
        store.write(make_traj(200, traj_id=i, seed=i), "env", compressed=i % 2 == 0)


def _reader_proc(path: str, deadline: float, out: mp.Queue) -> None:
    store = TrajectoryStore(path)
    loaded = failures = 0
    while time.time() < deadline:
        for p in store.files():
            if store.load(p) is None:
                failures += 1
            else:
                loaded += 1
    out.put((loaded, failures))


def test_concurrent_writer_and_reader_never_see_partial_files(tmp_path: Path) -> None:
    path = str(tmp_path / "buffer")
    TrajectoryStore(path)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    writer = ctx.Process(target=_writer_proc, args=(path, 60))
    reader = ctx.Process(target=_reader_proc, args=(path, time.time() + 2.0, out))
    reader.start()
    writer.start()
    writer.join(30)
    loaded, failures = out.get(timeout=30)
    reader.join(30)
    assert writer.exitcode == 0 and reader.exitcode == 0
    assert failures == 0 and loaded > 0
    store = TrajectoryStore(path)
    assert len(store.files()) == 60 and store.stats()["quarantined"] == 0
