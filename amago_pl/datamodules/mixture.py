"""`MixtureOfDatasets`: sample each trajectory from one of several datasets by weight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gin
import numpy as np

from amago_pl.datamodules.dataset import RLDataset
from amago_pl.datamodules.store import TrajectoryStore
from amago_pl.datamodules.stream import BufferEmptyError
from amago_pl.types import FrozenTraj


@gin.configurable
class MixtureOfDatasets(RLDataset):
    """A weighted mixture of datasets, e.g. an offline dataset plus the online FIFO buffer.

    Each trajectory comes from one child chosen with probability proportional to its weight;
    children that are not ready yet get weight 0 (weights renormalise over the ready ones).

    You construct it and pass it to ``Experiment``; ``start()`` configures every child with the
    Experiment's settings.

    Args:
        datasets: the children. At most one may take new trajectories (``save_new_trajs_to``).
        sampling_weights: final weight of each child (non-negative, one per child).
        initial_sampling_weights: optional starting weights; with ``smooth_sudden_starts`` a
            child's weight moves linearly from its initial to its final value over that many
            epochs, counted from the epoch the child became ready (so a freshly started online
            buffer does not suddenly take over the batch).
        smooth_sudden_starts: the anneal length in epochs (None: final weights at once).
    """

    def __init__(
        self,
        datasets: Sequence[RLDataset],
        sampling_weights: Sequence[float],
        initial_sampling_weights: Sequence[float] | None = None,
        smooth_sudden_starts: int | None = None,
        dset_name: str | None = None,
    ) -> None:
        super().__init__(dset_name=dset_name)
        if len(datasets) == 0 or len(datasets) != len(sampling_weights):
            raise ValueError("need one sampling weight per dataset (and at least one dataset)")
        if initial_sampling_weights is not None and len(initial_sampling_weights) != len(datasets):
            raise ValueError("initial_sampling_weights needs one entry per dataset")
        if any(w < 0 for w in sampling_weights) or any(w < 0 for w in initial_sampling_weights or ()):
            raise ValueError("sampling weights must be non-negative")
        writers = [d for d in datasets if d.save_new_trajs_to is not None]
        if len(writers) > 1:
            raise ValueError(
                "at most one dataset of a mixture may take new trajectories (save_new_trajs_to); "
                "build the others with DiskTrajDataset(..., accept_new_trajs=False)"
            )
        self.datasets = list(datasets)
        self.sampling_weights = np.asarray(sampling_weights, dtype=np.float64)
        self.initial_sampling_weights = (
            None
            if initial_sampling_weights is None
            else np.asarray(initial_sampling_weights, dtype=np.float64)
        )
        self.smooth_sudden_starts = smooth_sudden_starts
        self.ready_since: list[int | None] = [None] * len(self.datasets)  # epoch each child became ready
        self.sample_counts = np.zeros(len(self.datasets), dtype=np.int64)  # this process's draws

    def _names(self) -> list[str]:
        return [d.dset_name or str(i) for i, d in enumerate(self.datasets)]

    def configure(self, *args: Any, **kwargs: Any) -> MixtureOfDatasets:
        super().configure(*args, **kwargs)
        for d in self.datasets:
            d.configure(*args, **kwargs)
        return self

    @property
    def save_new_trajs_to(self) -> TrajectoryStore | None:
        for d in self.datasets:
            if d.save_new_trajs_to is not None:
                return d.save_new_trajs_to
        return None

    @property
    def ready_for_training(self) -> bool:
        return self.configured and any(d.ready_for_training for d in self.datasets)

    def refresh(self) -> None:
        for d in self.datasets:
            d.refresh()

    def refresh_if_changed(self) -> None:
        for d in self.datasets:
            d.refresh_if_changed()

    def expect(self, spec: Any) -> None:
        for d in self.datasets:
            d.expect(spec)

    # ---------------------------------------------------------------- weights
    def _mark_ready(self, epoch: int) -> None:
        for i, d in enumerate(self.datasets):
            if self.ready_since[i] is None and d.ready_for_training:
                self.ready_since[i] = epoch

    def raw_weights(self, epoch: int | None = None) -> np.ndarray:
        """(num_datasets,) unnormalised weights at ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        out = np.zeros(len(self.datasets))
        for i, d in enumerate(self.datasets):
            if not d.ready_for_training:
                continue
            final = self.sampling_weights[i]
            if self.initial_sampling_weights is None or not self.smooth_sudden_starts:
                out[i] = final
                continue
            since = self.ready_since[i] if self.ready_since[i] is not None else epoch
            progress = min(max(epoch - since, 0) / self.smooth_sudden_starts, 1.0)
            initial = self.initial_sampling_weights[i]
            out[i] = initial + (final - initial) * progress
        return out

    def current_weights(self, epoch: int | None = None) -> np.ndarray:
        """(num_datasets,) sampling probabilities over the ready children."""
        w = self.raw_weights(epoch)
        total = w.sum()
        if total <= 0:
            raise BufferEmptyError(f"no ready dataset with a positive weight in {self.get_description()}")
        return w / total

    # ---------------------------------------------------------------- sampling
    def sample_random_trajectory(self, rng: np.random.Generator | None = None) -> FrozenTraj:
        rng = rng if rng is not None else self._rng
        i = int(rng.choice(len(self.datasets), p=self.current_weights()))
        self.sample_counts[i] += 1
        return self.datasets[i].sample_random_trajectory(rng)

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for d in self.datasets:
            d.set_epoch(epoch)

    def begin_epoch(self) -> int:
        epoch = super().begin_epoch()
        for d in self.datasets:
            d.begin_epoch()
        self._mark_ready(epoch)
        return epoch

    def on_end_of_collection(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        trainer = getattr(self, "trainer", None)
        for name, d in zip(self._names(), self.datasets):
            d.trainer = trainer  # children decide "rank 0" the same way as the mixture
            for key, value in d.on_end_of_collection().items():
                metrics[key.replace("buffer/", f"buffer/{name}/", 1)] = value
        upcoming = self._pending_epoch if self._pending_epoch is not None else self.epoch + 1
        self._mark_ready(upcoming)
        raw = self.raw_weights(upcoming)
        total = raw.sum()
        counts = self.sample_counts.sum()
        for i, name in enumerate(self._names()):
            metrics[f"buffer/weight/{name}"] = float(raw[i])
            metrics[f"buffer/weight_normalized/{name}"] = float(raw[i] / total) if total > 0 else 0.0
            # Only draws made in this process: with dataloader workers it stays at zero.
            metrics[f"buffer/weight_empirical/{name}"] = (
                float(self.sample_counts[i] / counts) if counts else 0.0
            )
        return metrics

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ready_since"] = list(self.ready_since)
        state["children"] = [d.state_dict() for d in self.datasets]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.ready_since = list(state_dict.get("ready_since", self.ready_since))
        for d, s in zip(self.datasets, state_dict.get("children", [])):
            d.load_state_dict(s)

    def get_description(self) -> str:
        parts = ", ".join(
            f"{name} (w={w:g}): {d.get_description()}"
            for name, w, d in zip(self._names(), self.sampling_weights, self.datasets)
        )
        return f"MixtureOfDatasets[{parts}]"
