"""The in-memory trajectory cache behind TrajectoryStore.load: same samples, fewer reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from replay_factories import assert_traj_equal, make_traj

import amago_pl.datamodules.store as store_module
from amago_pl.datamodules import DiskTrajDataset, TrajectoryStore
from amago_pl.datamodules.file_checks import TrajSpec
from amago_pl.datamodules.traj_cache import TrajCache, cache_key, traj_nbytes


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    original = store_module.read_npz

    def counting(path, *args, **kwargs):
        reads.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(store_module, "read_npz", counting)
    return reads


def test_a_file_drawn_again_is_served_from_memory_with_the_same_arrays(tmp_path, monkeypatch):
    store = TrajectoryStore(tmp_path / "buffer")
    traj = make_traj(30, traj_id=7, seed=2)
    path = store.write(traj, "env")
    reads = _count_reads(monkeypatch)
    first, second = store.load(path), store.load(path)
    assert reads == [path]  # the second draw did not touch the file
    assert_traj_equal(traj, first)
    assert_traj_equal(traj, second)
    assert (store.cache.hits, store.cache.misses) == (1, 1)


def test_editing_a_loaded_trajectory_in_place_does_not_change_the_next_draw(tmp_path):
    # Relabelers may edit the trajectory they get (amago_pl.datamodules.relabel).
    store = TrajectoryStore(tmp_path / "buffer")
    traj = make_traj(12, traj_id=1)
    path = store.write(traj, "env")
    for _ in range(2):
        loaded = store.load(path)
        assert_traj_equal(traj, loaded)
        loaded.rews[:] = 99.0
        loaded.obs["id"][:] = -1
        loaded.rl2s[:] = 0.0


def test_a_replaced_or_rewritten_file_is_read_again(tmp_path):
    store = TrajectoryStore(tmp_path / "buffer")
    path = store.write(make_traj(10, traj_id=1), "env")
    assert store.load(path).obs["id"][0, 0] == 1
    # Replaced by a rename (how the store and `cp` to a temp name + `mv` publish files).
    other = store.write(make_traj(10, traj_id=2), "env")
    os.replace(other, path)
    assert store.load(path).obs["id"][0, 0] == 2
    # Rewritten in place with the same size: the modification time tells them apart.
    same_size = store.write(make_traj(10, traj_id=5), "env")
    assert same_size.stat().st_size == path.stat().st_size
    with open(path, "r+b") as f:  # same inode, same size
        f.write(same_size.read_bytes())
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert store.load(path).obs["id"][0, 0] == 5


def test_a_vanished_or_corrupt_file_is_never_served_from_memory(tmp_path):
    store = TrajectoryStore(tmp_path / "buffer")
    path = store.write(make_traj(10), "env")
    assert store.load(path) is not None and len(store.cache) == 1
    path.unlink()
    assert store.load(path) is None  # evicted by another rank: gone, not cached
    bad = store.fifo_dir / "env_1_n0r0p1_abcdefgh.npz"
    bad.write_bytes(b"not a zip file")
    os.utime(bad, ns=(0, 0))  # old enough to be quarantined, not retried
    assert store.load(bad) is None and len(store.cache) == 1
    assert not bad.exists() and any(store.quarantine_dir.iterdir())


def test_the_cache_keeps_at_most_its_bytes_dropping_the_least_recently_used(tmp_path):
    trajs = [make_traj(20, traj_id=i, seed=i) for i in range(4)]
    size = traj_nbytes(trajs[0])
    cache = TrajCache(max_bytes=2 * size + size // 2)  # room for two
    keys = [(f"f{i}", i, size, i) for i in range(4)]
    cache.put(keys[0], trajs[0])
    cache.put(keys[1], trajs[1])
    assert cache.get(keys[0]) is not None  # 0 is now the most recent
    cache.put(keys[2], trajs[2])  # drops 1
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None
    assert len(cache) == 2 and cache.bytes == 2 * size <= cache.max_bytes
    cache.put(("big", 9, 9, 9), make_traj(500))  # larger than the whole cache: not kept
    assert len(cache) == 2
    with pytest.raises(ValueError, match="max_bytes >= 0"):
        TrajCache(-1)


def test_cache_mb_zero_reads_every_draw_and_bad_values_are_refused(tmp_path, monkeypatch):
    data = DiskTrajDataset(tmp_path, "d", dset_max_size=10, cache_mb=0)
    path = data.store.write(make_traj(10), "env")
    reads = _count_reads(monkeypatch)
    data.store.load(path)
    data.store.load(path)
    assert reads == [path, path] and len(data.store.cache) == 0
    with pytest.raises(ValueError, match="DiskTrajDataset 'e': cache_mb=-1 .*DiskTrajDataset.cache_mb"):
        DiskTrajDataset(tmp_path, "e", dset_max_size=10, cache_mb=-1)


def test_a_new_spec_empties_the_cache(tmp_path):
    # Entries were checked against the spec of their time; a different spec checks them again.
    store = TrajectoryStore(tmp_path / "buffer")
    path = store.write(make_traj(10, num_actions=4), "env")
    store.load(path)
    assert len(store.cache) == 1
    spec = TrajSpec(obs={"id": ((1,), np.dtype(np.int64))}, rl2_dim=5, action_is_index=True)
    store.spec = spec
    assert len(store.cache) == 0
    store.spec = spec
    assert store.spec is spec


def test_cache_key_names_path_inode_size_and_mtime(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    st = os.stat(f)
    assert cache_key(f, st) == (str(f), st.st_ino, 3, st.st_mtime_ns)


@pytest.mark.parametrize(
    "cache_mb,workers,expected_mb",
    [(None, 0, 64), (None, 2, 0), (8, 2, 8), (0, 0, 0)],
)
def test_the_default_caches_only_when_the_training_process_reads_the_files(
    tmp_path, cache_mb, workers, expected_mb
):
    # With loader workers the reads overlap the updates and each worker would hold its own cache.
    data = DiskTrajDataset(tmp_path, "d", dset_max_size=10, cache_mb=cache_mb)
    data.configure(batch_size=4, max_seq_len=8, train_batches_per_epoch=2, dloader_workers=workers)
    assert data.store.cache.max_bytes == expected_mb * 2**20
