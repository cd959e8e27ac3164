"""The per-epoch stream of training batches behind `RLDataset.train_dataloader`.

Why an IterableDataset: every item is a random draw (no index), the buffer grows between epochs,
and each DDP rank must run exactly ``train_batches_per_epoch`` steps whatever its workers do.
So the stream yields whole collated `Batch`es (DataLoader ``batch_size=None``), splits the epoch's
batches among workers, defines ``__len__`` (Lightning then knows the epoch length and needs no
look-ahead batch), and re-lists the store in each worker at the start of each iteration.
"""

from __future__ import annotations

import logging
import random
import signal
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torch.utils.data.dataloader import _BaseDataLoaderIter

from amago_pl.datamodules.collate import collate_trajs
from amago_pl.datamodules.data_wait import DEFAULT_HANG_TIMEOUT, DataWait, sigterm_received
from amago_pl.datamodules.sampling import random_slice
from amago_pl.types import Batch, FrozenTraj

if TYPE_CHECKING:
    from amago_pl.datamodules.dataset import RLDataset


class BufferEmptyError(RuntimeError):
    """No loadable trajectory right now (all listed files vanished or were quarantined)."""


log = logging.getLogger(__name__)

# Lightning warns that a sized IterableDataset may over-count with several workers; this one
# splits its batches among workers exactly (see `worker_share`), so the warning is noise.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def worker_share(train_batches_per_epoch: int, worker_id: int, num_workers: int) -> int:
    """Batches worker ``worker_id`` yields so that the workers' total is exactly ``train_batches_per_epoch``."""
    return train_batches_per_epoch // num_workers + int(worker_id < train_batches_per_epoch % num_workers)


def stream_seed(base_seed: int, global_rank: int, worker_id: int, epoch: int) -> np.random.SeedSequence:
    """Independent, reproducible randomness per (run seed, rank, worker, epoch)."""
    return np.random.SeedSequence([base_seed, global_rank, worker_id, max(epoch, 0)])


class TrainBatchStream(IterableDataset):
    """Yields ``train_batches_per_epoch`` collated `Batch`es per iteration (summed over workers).

    The epoch comes from ``source.epoch`` at iteration time: `EpochDataLoader` advances it in
    the main process before workers are started, so the worker copies carry the right value.
    """

    def __init__(
        self,
        source: RLDataset,
        batch_size: int,
        max_seq_len: int,
        train_batches_per_epoch: int,
        padded_sampling: str,
        base_seed: int,
        global_rank: int,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.train_batches_per_epoch = train_batches_per_epoch
        self.padded_sampling = padded_sampling
        self.base_seed = base_seed
        self.global_rank = global_rank

    def __len__(self) -> int:
        # Lightning ends ``fit`` at once on a zero-length loader ("No training batches"), but a
        # collect-only run (``train_batches_per_epoch=0``) still needs its epochs: collection and
        # the latest-policy reload run in epoch hooks. Such an epoch announces one batch, yields
        # none, and Lightning ends it on StopIteration (as for epochs before start_learning_at_epoch).
        return max(self.train_batches_per_epoch, 1)

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        count = worker_share(self.train_batches_per_epoch, worker_id, num_workers)
        if self.source.epoch < self.source.start_learning_at_epoch:
            count = 0  # a collect-only epoch: no gradient steps yet (Experiment.start_learning_at_epoch)
        seed = stream_seed(self.base_seed, self.global_rank, worker_id, self.source.epoch)
        rng = np.random.default_rng(seed)
        if info is not None:
            # Relabelers may use the global RNGs; in a worker (its own process) seeding them is
            # harmless and makes runs reproducible. Never in the main process: that would
            # disturb the training RNG streams.
            worker_seed = int(seed.generate_state(1)[0])
            random.seed(worker_seed)
            np.random.seed(worker_seed)
        if count == 0:
            return
        self.source.refresh()
        self._wait_until_ready()
        for _ in range(count):
            self.source.refresh_if_changed()
            windows = [
                random_slice(self._draw(rng), self.max_seq_len, self.padded_sampling, rng)
                for _ in range(self.batch_size)
            ]
            yield collate_trajs(windows)

    def _draw(self, rng: np.random.Generator) -> FrozenTraj:
        limit = None
        while True:
            try:
                return self.source.sample_random_trajectory(rng)
            except BufferEmptyError:
                # Every listed file was evicted or quarantined under us: wait for new data
                # rather than ending the epoch early (other ranks would hang in DDP), but not
                # forever (data_wait.py).
                limit = limit or DataWait(self.source, _hang_timeout(self.source))
                limit.check()
                self.source.refresh()
                self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Sleep-poll until the buffer can be sampled (e.g. a learner waiting for collectors).

        A warning every ``wait_log_seconds`` says why training does not advance.
        """
        start = last_log = time.monotonic()
        limit = DataWait(self.source, _hang_timeout(self.source))
        while not self.source.ready_for_training:
            if sigterm_received(self.source):  # preempted: exit 143, not 0, and do not wait on
                raise SIGTERMException(128 + signal.SIGTERM)
            limit.check()  # NoTrainingDataError after hang_timeout without a new file
            now = time.monotonic()
            if now - last_log >= self.source.wait_log_seconds:
                last_log = now
                log.warning(
                    "Waiting %.0fs for training data: %s is not ready yet",
                    now - start,
                    self.source.get_description(),
                )
            time.sleep(self.source.wait_poll_seconds)
            self.source.refresh()


def _hang_timeout(source: Any) -> float | None:
    # Set by the run's builder (run/build.py configure_dataset) from Settings.hang_timeout.
    return getattr(source, "hang_timeout", DEFAULT_HANG_TIMEOUT)


def _identity(batch: Any) -> Any:
    return batch


class EpochDataLoader(DataLoader):
    """A DataLoader that starts a new sampling epoch on its dataset each time it is iterated.

    The epoch is advanced in the main process, before worker processes copy the dataset, so
    every epoch draws fresh (and reproducible) samples even when nobody calls ``set_epoch``.
    """

    def __init__(self, stream: TrainBatchStream, num_workers: int = 0, pin_memory: bool = False) -> None:
        super().__init__(
            stream,
            batch_size=None,
            num_workers=num_workers,
            collate_fn=_identity,
            pin_memory=pin_memory,
            # Fresh workers each epoch: each re-lists the files written during collection.
            persistent_workers=False,
        )

    def __iter__(self) -> _BaseDataLoaderIter:
        self.dataset.source.begin_epoch()
        return super().__iter__()
