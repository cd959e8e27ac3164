"""Replay: the on-disk trajectory store, the rollout writer and the training DataModules.

``amago.loading`` and ``amago.hindsight`` of the original map to this package.
"""

from amago_pl.datamodules.collate import collate_trajs
from amago_pl.datamodules.dataset import DoNothingDataset, RLDataset
from amago_pl.datamodules.disk import DiskTrajDataset
from amago_pl.datamodules.file_checks import TrajSpec
from amago_pl.datamodules.hindsight import HindsightInstructionReplay
from amago_pl.datamodules.mixture import MixtureOfDatasets
from amago_pl.datamodules.npz import TrajectoryFileError
from amago_pl.datamodules.offline import write_offline_dataset
from amago_pl.datamodules.relabel import NoOpRelabeler, Relabeler
from amago_pl.datamodules.sampling import PADDED_SAMPLING_MODES, random_slice
from amago_pl.datamodules.store import StoreWriteError, TrajectoryStore, UnusableStoreError
from amago_pl.datamodules.stream import BufferEmptyError, EpochDataLoader, TrainBatchStream
from amago_pl.datamodules.writer import TrajectoryWriter

__all__ = [
    "PADDED_SAMPLING_MODES",
    "BufferEmptyError",
    "DiskTrajDataset",
    "DoNothingDataset",
    "EpochDataLoader",
    "HindsightInstructionReplay",
    "MixtureOfDatasets",
    "NoOpRelabeler",
    "RLDataset",
    "Relabeler",
    "StoreWriteError",
    "TrainBatchStream",
    "TrajSpec",
    "TrajectoryFileError",
    "TrajectoryStore",
    "TrajectoryWriter",
    "UnusableStoreError",
    "collate_trajs",
    "random_slice",
    "write_offline_dataset",
]
