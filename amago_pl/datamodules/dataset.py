"""`RLDataset`: the replay buffer as a LightningDataModule, plus the eval-only `DoNothingDataset`.

A dataset is built by the user, configured by the Experiment (or by hand) with the training
shapes, and then asked for a `train_dataloader` that yields exactly ``train_batches_per_epoch``
`Batch`es per epoch on every rank. Concrete datasets say where new trajectories go
(`save_new_trajs_to`), when sampling can start (`ready_for_training`) and how to draw one
trajectory (`sample_random_trajectory`).
"""

from __future__ import annotations

import functools
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from amago_pl.datamodules.file_checks import TrajSpec
from amago_pl.datamodules.original_layout import as_frozen_traj
from amago_pl.datamodules.sampling import PADDED_SAMPLING_MODES
from amago_pl.datamodules.store import TrajectoryStore
from amago_pl.datamodules.stream import EpochDataLoader, TrainBatchStream
from amago_pl.types import FrozenTraj


class RLDataset(LightningDataModule, ABC):
    """Abstract replay dataset.

    Subclasses implement `save_new_trajs_to`, `sample_random_trajectory` and `get_description`,
    and usually `ready_for_training`, `refresh` and `on_end_of_collection`.

    Epochs: `set_epoch` names the epoch about to start; if nobody calls it, each iteration of the
    train dataloader starts the next epoch. The epoch feeds the sampling seeds, so runs are
    reproducible and every epoch draws different samples.
    """

    wait_poll_seconds: float = 1.0  # how often a stream re-checks a not-ready buffer
    wait_log_seconds: float = 60.0  # how often it says that it is waiting

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sampler = cls.__dict__.get("sample_random_trajectory")
        if sampler is not None and not getattr(sampler, "_accepts_original", False):
            cls.sample_random_trajectory = _accept_original_sampler(sampler)

    def __init__(self, dset_name: str | None = None) -> None:
        super().__init__()
        self.dset_name = dset_name
        self.batch_size: int | None = None
        self.max_seq_len: int | None = None
        self.train_batches_per_epoch: int | None = None
        self.padded_sampling = "none"
        self.dloader_workers = 0
        self.has_edit_rights = True
        self.seed: int | None = None
        self.start_learning_at_epoch = 0  # epochs before this yield no batches
        self.epoch = -1  # epoch of the current (last started) iteration; -1 before the first
        self._pending_epoch: int | None = None
        self._rng = np.random.default_rng()  # for direct calls outside a stream

    # ------------------------------------------------------------------ setup
    def configure(
        self,
        batch_size: int,
        max_seq_len: int,
        train_batches_per_epoch: int,
        padded_sampling: str = "none",
        dloader_workers: int = 0,
        has_edit_rights: bool = True,
        seed: int | None = None,
    ) -> RLDataset:
        """Set the training shapes. ``batch_size`` is per rank; ``seed`` defaults to torch's
        initial seed (set by ``seed_everything``) when the dataloader is built."""
        if padded_sampling not in PADDED_SAMPLING_MODES:
            raise ValueError(
                f"padded_sampling must be one of {PADDED_SAMPLING_MODES}, got {padded_sampling!r}"
            )
        for name, value in (("batch_size", batch_size), ("max_seq_len", max_seq_len)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.batch_size = int(batch_size)
        self.max_seq_len = int(max_seq_len)
        self.train_batches_per_epoch = int(train_batches_per_epoch)
        self.padded_sampling = padded_sampling
        self.dloader_workers = int(dloader_workers)
        self.has_edit_rights = bool(has_edit_rights)
        self.seed = seed
        return self

    def configure_schedule(self, start_learning_at_epoch: int = 0) -> RLDataset:
        """Epochs before ``start_learning_at_epoch`` yield no training batches (collect only)."""
        self.start_learning_at_epoch = int(start_learning_at_epoch)
        return self

    @property
    def configured(self) -> bool:
        return self.batch_size is not None

    @property
    def global_rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank)
        return int(os.environ.get("RANK", 0))

    # --------------------------------------------------------------- contract
    @property
    @abstractmethod
    def save_new_trajs_to(self) -> TrajectoryStore | None:
        """Where rollouts write new trajectories (None: this dataset takes no new data)."""

    @property
    def ready_for_training(self) -> bool:
        return self.configured

    @abstractmethod
    def sample_random_trajectory(self, rng: np.random.Generator | None = None) -> FrozenTraj:
        """One whole (relabeled) trajectory; the stream cuts the training window from it."""

    @abstractmethod
    def get_description(self) -> str:
        """A one-line summary for logs."""

    def refresh(self) -> None:
        """Re-read the buffer's contents (called at the start of each iteration in each worker)."""

    def refresh_if_changed(self) -> None:
        """Cheap check before each batch; re-read only if the buffer changed."""

    def expect(self, spec: TrajSpec | None) -> None:
        """What the training agent expects of every trajectory (its spaces); datasets that load
        files check them against it and set unusable ones aside. Called by `train_dataloader`."""

    def _expect_from_trainer(self) -> None:
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        if module is not None:
            self.expect(
                TrajSpec.from_spaces(
                    getattr(module, "obs_space", None),
                    getattr(module, "rl2_space", None),
                    getattr(module, "action_space", None),
                )
            )

    def on_end_of_collection(self) -> dict[str, float]:
        """Called after each collection round; returns ``buffer/...`` metrics."""
        self.refresh()
        return {}

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Declare the epoch about to start (the next dataloader iteration uses it)."""
        self._pending_epoch = int(epoch)

    def begin_epoch(self) -> int:
        """Start an iteration: use the declared epoch, or the one after the last."""
        self.epoch = self._pending_epoch if self._pending_epoch is not None else self.epoch + 1
        self._pending_epoch = None
        return self.epoch

    # -------------------------------------------------------------- dataloader
    def train_dataloader(self) -> DataLoader:
        if not self.configured:
            raise RuntimeError(
                f"{type(self).__name__} is not configured: call configure(batch_size, max_seq_len, "
                "train_batches_per_epoch, ...) (the Experiment does this) before training"
            )
        self._expect_from_trainer()
        seed = self.seed if self.seed is not None else torch.initial_seed() % (2**63)
        stream = TrainBatchStream(
            self,
            batch_size=self.batch_size,
            max_seq_len=self.max_seq_len,
            train_batches_per_epoch=self.train_batches_per_epoch,
            padded_sampling=self.padded_sampling,
            base_seed=int(seed),
            global_rank=self.global_rank,
        )
        return EpochDataLoader(stream, num_workers=self.dloader_workers, pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        """One stand-in item per validation epoch.

        Evaluation is env rollouts (``EvalCallback``), not a pass over stored data; the item only
        lets Lightning's validation loop (``check_val_every_n_epoch``, ``Trainer.validate``) run.
        """
        return DataLoader([torch.zeros(1)], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        """One stand-in item, so ``Trainer.test`` runs the test ``EvalCallback``."""
        return DataLoader([torch.zeros(1)], batch_size=None)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pending_epoch": self._pending_epoch, "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = int(state_dict.get("epoch", -1))
        self._pending_epoch = state_dict.get("pending_epoch")
        if state_dict.get("seed") is not None:
            self.seed = state_dict["seed"]

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes get a copy of the dataset; never drag the Trainer (and through it
        # the model and envs) along.
        state = self.__dict__.copy()
        state["trainer"] = None
        return state


def _accept_original_sampler(sampler: Callable) -> Callable:
    """Let a ``sample_random_trajectory`` written for the original run here: it may take no ``rng``
    (the original's signature) and return an ``RLData`` (amago/loading.py at 2d85600), which is
    converted to a ``FrozenTraj``."""
    takes_rng = len(inspect.signature(sampler).parameters) > 1

    @functools.wraps(sampler)
    def sample_random_trajectory(self: RLDataset, rng: np.random.Generator | None = None) -> FrozenTraj:
        return as_frozen_traj(sampler(self, rng) if takes_rng else sampler(self))

    sample_random_trajectory._accepts_original = True  # type: ignore[attr-defined]
    return sample_random_trajectory


class DoNothingDataset(RLDataset):
    """A dataset that is never ready: for evaluation-only or inference runs."""

    def __init__(self) -> None:
        super().__init__(dset_name=None)

    @property
    def save_new_trajs_to(self) -> TrajectoryStore | None:
        return None

    @property
    def ready_for_training(self) -> bool:
        return False

    def sample_random_trajectory(self, rng: np.random.Generator | None = None) -> FrozenTraj:
        raise RuntimeError("DoNothingDataset holds no data; use it only for evaluation runs")

    def get_description(self) -> str:
        return "DoNothingDataset (no training data)"

    def train_dataloader(self) -> DataLoader:
        # Waiting for data that can never arrive would hang the run; fail loudly instead.
        raise RuntimeError("DoNothingDataset cannot be trained on; use it only for evaluation runs")
