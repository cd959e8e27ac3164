"""Waiting for training data, bounded: no learner waits forever for data that cannot come.

Two places wait for a dataset's ``ready_for_training``: the rollout callback (it keeps collecting,
in the training process) and the batch stream (it sleep-polls, e.g. a learner fed by separate
collector processes). Both use ``DataWait``: it gives up after ``hang_timeout`` seconds *without
a new file* (so a slow but steady warm-up is never cut short) and raises ``NoTrainingDataError``
naming the dataset, what it holds, what was quarantined, and the fixes (issue 21, item 8).

``readiness_problem`` catches the configurations that can never become ready before anything is
built: a FIFO that keeps no files (``dset_max_size < 1``) or keeps fewer than training waits for
(``dset_min_size >= dset_max_size``), unless protected (offline) files make up the difference.

Only the datasets' public attributes are read (``num_files``, ``dset_min_size``,
``dset_max_size``, ``store``, ``datasets`` of a mixture, ``get_description()``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from lightning.pytorch.utilities.exceptions import SIGTERMException

# Same default as amago_pl.envs.watchdog.DEFAULT_HANG_TIMEOUT (datamodules may not import envs;
# tests/faults/test_faults_hangs.py checks that the two agree).
DEFAULT_HANG_TIMEOUT = 600.0

RAISE_LIMIT = (
    "If data is only slow to arrive (e.g. a collector process that starts later), raise the limit: "
    "Experiment(hang_timeout=SECONDS), --run.hang_timeout SECONDS (amago-pl) or gin "
    "'Experiment.hang_timeout = SECONDS'; hang_timeout=None waits forever."
)


class NoTrainingDataError(TimeoutError):
    """The dataset stayed unready for ``hang_timeout`` seconds without gaining a file."""


def components(dataset: Any) -> list[Any]:
    """The dataset itself, or the parts of a mixture."""
    parts = getattr(dataset, "datasets", None)
    return list(parts) if isinstance(parts, (list, tuple)) else [dataset]


def _file_count(dataset: Any) -> int | None:
    counts = [getattr(d, "num_files", None) for d in components(dataset)]
    counts = [c for c in counts if isinstance(c, int)]
    return sum(counts) if counts else None


def _count(folder: Any, pattern: str = "*") -> int:
    try:
        return sum(1 for p in folder.glob(pattern) if p.is_file())
    except (OSError, AttributeError):
        return 0


def _store_notes(dataset: Any) -> list[str]:
    notes = []
    for d in components(dataset):
        store = getattr(d, "store", None)
        quarantined = _count(getattr(store, "quarantine_dir", None))
        name = getattr(d, "dset_name", d)
        if quarantined:
            notes.append(
                f"{quarantined} file(s) of '{name}' are in {store.quarantine_dir}: they could not be read "
                "as trajectories (corrupt, truncated, wrong format); fix or replace them"
            )
        skipped = len(getattr(store, "skipped", None) or {})
        if skipped:
            notes.append(
                f"{skipped} file(s) of '{name}' could not be read and are skipped for this run (this process "
                "may not move them to quarantine); fix or replace them"
            )
        pending = len(getattr(store, "pending", None) or {})
        if pending:
            notes.append(
                f"{pending} file(s) of '{name}' failed to load and were modified recently, so they are "
                "retried once unchanged (possibly still being copied); if they are complete, they are corrupt"
            )
    return notes


def describe_no_data(dataset: Any, waited: float, timeout: float, collecting: bool | None) -> str:
    """The message of ``NoTrainingDataError``: what the dataset holds, likely causes, the fixes."""
    desc = dataset.get_description() if hasattr(dataset, "get_description") else repr(dataset)
    lines = [
        f"No training data: the dataset is still not ready after {waited:.0f} s, the last "
        f"hang_timeout={timeout:g} s of them without a new trajectory file. {desc}."
    ]
    lines += [f"- {note}" for note in _store_notes(dataset)]
    if collecting is not False:
        lines.append(
            "- collection writes no files: a trajectory is saved when its episode ends or after "
            "traj_save_len steps, so envs whose episodes never end write nothing (add a time limit or "
            "lower traj_save_len)"
        )
    if collecting is not True:
        lines.append(
            "- if this process does not collect (train_timesteps_per_epoch=0 or before "
            "start_collecting_at_epoch): the data must already be in the store (offline data in "
            "protected/) or come from a collector process writing to the same dset_root/dset_name"
        )
    sizes = [
        (getattr(d, "dset_min_size", None), getattr(d, "dset_max_size", None)) for d in components(dataset)
    ]
    for low, high in sizes:
        if isinstance(low, int):
            lines.append(
                f"- training starts above dset_min_size={low} files (dset_max_size={high}); lower "
                "dset_min_size if fewer files are expected"
            )
    lines.append(RAISE_LIMIT)
    return "\n".join(lines)


class DataWait:
    """A wait for ``dataset.ready_for_training`` that ends ``timeout`` s after the last new file."""

    def __init__(self, dataset: Any, timeout: float | None, collecting: bool | None = None):
        self.dataset = dataset
        self.timeout = timeout
        self.collecting = collecting
        self.start = self.last_progress = time.monotonic()
        self.files = _file_count(dataset)

    def check(self) -> None:
        """Raise ``NoTrainingDataError`` once ``timeout`` s passed without a new file."""
        now = time.monotonic()
        files = _file_count(self.dataset)
        if files != self.files:
            self.files, self.last_progress = files, now
        if self.timeout is not None and now - self.last_progress >= self.timeout:
            raise NoTrainingDataError(
                describe_no_data(self.dataset, now - self.start, self.timeout, self.collecting)
            )


def sigterm_received(dataset: Any) -> bool:
    """Whether the Trainer that drives ``dataset`` got SIGTERM (False in loader worker processes,
    whose dataset copy holds no Trainer: the main process stops them)."""
    trainer = getattr(dataset, "trainer", None)
    return bool(getattr(trainer, "received_sigterm", False))


def readiness_problem(dataset: Any) -> str | None:
    """Why ``dataset`` can never become ready for training, or None if it can (or is unknown)."""
    problems = []
    parts = components(dataset)
    for d in parts:
        problem = _component_problem(d)
        if problem is None:
            return None  # a mixture trains as soon as any part is ready
        problems.append(problem)
    if not problems:
        return None
    return "; ".join(problems)


def _component_problem(d: Any) -> str | None:
    high, low = getattr(d, "dset_max_size", None), getattr(d, "dset_min_size", None)
    if not (isinstance(high, int) and isinstance(low, int)):
        return None  # not a FIFO store: nothing to check
    store = getattr(d, "store", None)
    protected = _count(getattr(store, "protected_dir", None), "*.npz")
    if max(high, 0) + protected > low:
        return None
    name = getattr(d, "dset_name", None) or type(d).__name__
    held = f" plus {protected} protected file(s)" if protected else ""
    if high < 1:
        return (
            f"dataset '{name}': dset_max_size={high} keeps no collected files{held}, but training starts "
            f"only above dset_min_size={low} files, so it would wait forever; use dset_max_size >= 1 "
            f"(the number of trajectory files to keep, e.g. {max(low + 1, 1000)})"
        )
    return (
        f"dataset '{name}': dset_min_size={low} >= dset_max_size={high}: training waits for more than "
        f"{low} files, but the FIFO keeps at most {high}{held}, so it would wait forever; lower "
        f"dset_min_size or raise dset_max_size"
    )


def trains_in_epoch(dataset: Any, epoch: int) -> bool:
    """Whether the stream will draw batches in ``epoch`` (so readiness matters now)."""
    batches = getattr(dataset, "train_batches_per_epoch", None) or 0
    return batches > 0 and epoch >= getattr(dataset, "start_learning_at_epoch", 0)


def sleep_and_refresh(dataset: Any) -> None:
    time.sleep(getattr(dataset, "wait_poll_seconds", 1.0))
    dataset.refresh()


def wait_for_data(
    dataset: Any,
    timeout: float | None,
    step: Callable[[], Any],
    collecting: bool | None = None,
    max_rounds: int | None = None,
) -> None:
    """Call ``step`` (collect more, or sleep and re-list) until the dataset is ready.

    Raises ``NoTrainingDataError`` after ``timeout`` s without a new file, and Lightning's
    ``SIGTERMException`` (exit status 143, not 0: a preempted run did not finish) once the
    Trainer got SIGTERM, which Lightning itself would only notice after the wait.
    """
    limit = DataWait(dataset, timeout, collecting)
    rounds = 0
    while not dataset.ready_for_training and (max_rounds is None or rounds < max_rounds):
        if sigterm_received(dataset):
            raise SIGTERMException(128 + signal.SIGTERM)
        limit.check()
        step()
        rounds += 1
