"""DiskTrajDataset / MixtureOfDatasets / the train dataloader (workers, ranks, epochs, waiting)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from replay_factories import make_traj

from amago_pl.datamodules import (
    DiskTrajDataset,
    DoNothingDataset,
    MixtureOfDatasets,
    Relabeler,
)
from amago_pl.types import Batch, FrozenTraj


def _fill(ds: DiskTrajDataset, ids: list[int], T: int = 30, protected: bool = False) -> None:
    for i in ids:
        ds.store.write(make_traj(T, traj_id=i, seed=i), "env", protected=protected)


def _ids(batch: Batch) -> set[int]:
    return set(batch.obs["id"][batch.mask].reshape(-1).tolist())


def _check_windows(batch: Batch, max_seq_len: int) -> None:
    """Each row comes from one file, contiguous, at most max_seq_len + 1 real steps."""
    assert batch.seq_len <= max_seq_len + 1
    for b in range(batch.batch_size):
        real = batch.mask[b]
        assert real[0] and real.tolist() == sorted(real.tolist(), reverse=True)  # right-padded
        ids = batch.obs["id"][b][real].reshape(-1)
        assert (ids == ids[0]).all()  # never crosses a trajectory boundary
        t = batch.obs["t"][b][real].reshape(-1)
        assert torch.equal(t, torch.arange(int(t[0]), int(t[0]) + len(t)))
        assert torch.equal(batch.time_idxs[b][real], t)


def _dataset(tmp_path: Path, workers: int = 0, batches: int = 7, **kw) -> DiskTrajDataset:
    ds = DiskTrajDataset(tmp_path, "dset", dset_max_size=100, **kw)
    return ds.configure(4, 8, batches, padded_sampling="both", dloader_workers=workers, seed=123)


def test_two_workers_yield_exactly_the_epoch_and_see_new_files(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, workers=2, batches=7)
    _fill(ds, [0, 1])
    loader = ds.train_dataloader()
    assert len(loader) == 7
    epoch0 = list(loader)
    assert len(epoch0) == 7 and all(isinstance(b, Batch) for b in epoch0)
    assert set().union(*map(_ids, epoch0)) <= {0, 1}
    for b in epoch0:
        _check_windows(b, 8)
    # between epochs: old files go, new ones arrive; the same loader object is iterated again
    ds.delete()
    _fill(ds, [5, 6, 7])
    epoch1 = list(loader)
    assert len(epoch1) == 7
    assert set().union(*map(_ids, epoch1)) == {5, 6, 7}
    assert ds.epoch == 1


def test_epochs_are_reproducible_and_different(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    _fill(ds, range(10))
    first = [b.obs["t"] for b in ds.train_dataloader()]
    second = [b.obs["t"] for b in ds.train_dataloader()]  # auto-advanced to epoch 1
    ds.set_epoch(0)
    again = [b.obs["t"] for b in ds.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, second))


def test_two_ranks_draw_different_samples_and_the_same_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        ds = _dataset(tmp_path, batches=5)
        if rank == "0":
            _fill(ds, range(20))
        seen.append([(b.obs["id"], b.obs["t"]) for b in ds.train_dataloader()])
    assert len(seen[0]) == len(seen[1]) == 5
    assert any(not torch.equal(a[0], b[0]) or not torch.equal(a[1], b[1]) for a, b in zip(*seen))


def test_stream_waits_until_the_store_is_ready(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, batches=2)
    ds.wait_poll_seconds = 0.05
    assert not ds.ready_for_training
    _fill(ds, [0])
    assert not ds.ready_for_training  # needs more than dset_min_size=1 files
    timer = threading.Timer(0.3, _fill, args=(ds, [1]))
    timer.start()
    start = time.monotonic()
    batches = list(ds.train_dataloader())
    timer.join()
    assert len(batches) == 2 and time.monotonic() - start >= 0.25


class _SevenRewards(Relabeler):
    def relabel(self, traj: FrozenTraj) -> FrozenTraj:
        rews = np.full_like(traj.rews, 7.0)
        rl2s = traj.rl2s.copy()
        rl2s[1:, 0] = rews
        return FrozenTraj(
            traj.obs, rl2s, traj.time_idxs, rews, traj.dones, traj.actions, traj.action_is_index
        )


def test_relabeler_sees_the_whole_file_before_slicing(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, relabeler=_SevenRewards)
    _fill(ds, [0, 1])
    for b in ds.train_dataloader():
        assert (b.rews[b.transition_mask] == 7.0).all()
    stored = ds.store.load(ds.store.files()[0])
    assert (stored.rews != 7.0).any()  # the file itself is untouched


def test_end_of_collection_evicts_on_rank_zero_with_edit_rights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = DiskTrajDataset(tmp_path, "dset", dset_max_size=3).configure(2, 8, 1, has_edit_rights=False)
    _fill(ds, range(5))
    _fill(ds, [99], protected=True)
    assert ds.on_end_of_collection()["buffer/fifo_files"] == 5  # no edit rights: no eviction
    ds.configure(2, 8, 1, has_edit_rights=True)
    monkeypatch.setenv("RANK", "1")
    assert ds.on_end_of_collection()["buffer/fifo_files"] == 5  # not rank 0
    monkeypatch.setenv("RANK", "0")
    metrics = ds.on_end_of_collection()
    assert metrics["buffer/fifo_files"] == 3 and metrics["buffer/protected_files"] == 1
    assert metrics["buffer/evicted"] == 2 and metrics["buffer/files"] == 4 == ds.num_files
    assert {"buffer/timesteps", "buffer/disk_mb", "buffer/quarantined"} <= metrics.keys()
    assert "dset" in ds.get_description()


def test_mixture_weights_anneal_from_the_epoch_a_child_becomes_ready(tmp_path: Path) -> None:
    offline = DiskTrajDataset(tmp_path, "offline", dset_max_size=100, dset_min_size=0, accept_new_trajs=False)
    online = DiskTrajDataset(tmp_path, "online", dset_max_size=100, dset_min_size=0)
    _fill(offline, [0], protected=True)
    mix = MixtureOfDatasets(
        [offline, online], [0.25, 0.75], initial_sampling_weights=[1.0, 0.0], smooth_sudden_starts=4
    )
    mix.configure(64, 8, 3, seed=0)
    assert mix.save_new_trajs_to is online.store
    list(mix.train_dataloader())  # epoch 0: only offline is ready
    np.testing.assert_allclose(mix.current_weights(), [1.0, 0.0])
    _fill(online, [1])
    metrics = mix.on_end_of_collection()  # online becomes ready for epoch 1
    assert metrics["buffer/weight/online"] == pytest.approx(0.0)
    assert mix.ready_since == [0, 1]
    expected = {1: 0.0, 2: 0.75 / 4, 3: 0.75 / 2, 5: 0.75, 9: 0.75}
    for epoch, w_online in expected.items():
        w = mix.raw_weights(epoch)
        assert w[1] == pytest.approx(w_online)
        assert w[0] == pytest.approx(1.0 + (0.25 - 1.0) * min((epoch - 0) / 4, 1.0))
    # empirical frequencies follow the weights (0 workers: counted in this process)
    mix.set_epoch(9)
    mix.sample_counts[:] = 0
    ids = np.concatenate([b.obs["id"][:, 0, 0].numpy() for b in mix.train_dataloader()])
    assert (ids == 1).mean() == pytest.approx(0.75, abs=0.12)
    assert mix.sample_counts.sum() == 3 * 64
    state = mix.state_dict()
    fresh = MixtureOfDatasets([offline, online], [0.25, 0.75], [1.0, 0.0], 4)
    fresh.load_state_dict(state)
    assert fresh.ready_since == [0, 1] and fresh.epoch == 9


def test_mixture_rejects_two_writers_and_bad_weights(tmp_path: Path) -> None:
    a = DiskTrajDataset(tmp_path, "a", dset_max_size=10)
    b = DiskTrajDataset(tmp_path, "b", dset_max_size=10)
    with pytest.raises(ValueError, match="at most one"):
        MixtureOfDatasets([a, b], [1.0, 1.0])
    with pytest.raises(ValueError, match="one sampling weight"):
        MixtureOfDatasets([a], [1.0, 2.0])


def test_do_nothing_dataset_is_never_ready() -> None:
    ds = DoNothingDataset().configure(2, 8, 1)
    assert not ds.ready_for_training and ds.save_new_trajs_to is None
    with pytest.raises(RuntimeError, match="evaluation"):
        ds.train_dataloader()


def test_state_dict_round_trip(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    ds.set_epoch(4)
    ds.begin_epoch()
    other = _dataset(tmp_path)
    other.load_state_dict(ds.state_dict())
    assert other.epoch == 4 and other.begin_epoch() == 5


class _CountingModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.rows = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        assert isinstance(batch, Batch)
        self.rows += batch.batch_size
        return (self.w * batch.rews.sum()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_runs_exactly_train_batches_per_epoch(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, batches=5)
    _fill(ds, [0, 1, 2])
    module = _CountingModule()
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=ds)
    assert trainer.global_step == 10 and module.rows == 10 * 4
    assert ds.epoch == 1


def test_sampling_skips_and_quarantines_a_corrupt_file(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, workers=0, batches=7)
    _fill(ds, [0, 1])
    good = ds.store.files()[0]
    corrupt = ds.store.fifo_dir / ("corrupt" + good.name[3:])
    corrupt.write_bytes(good.read_bytes()[:200])
    os.utime(corrupt, (time.time() - 60,) * 2)  # settled: not a copy in progress (issue 21 item 3)
    batches = list(ds.train_dataloader())
    assert len(batches) == 7 and set().union(*map(_ids, batches)) <= {0, 1}
    assert ds.on_end_of_collection()["buffer/quarantined"] == 1 and ds.num_files == 2
