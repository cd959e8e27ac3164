"""Lightning's ``CSVLogger`` with writes that fail clearly and never lose earlier rows.

Two things go wrong with the stock writer when the disk fills (issue 21 item 13): the error is a
bare ``OSError`` without the file's path, and when a new metric appears the whole
``metrics.csv`` is rewritten in place (``_rewrite_with_new_header`` in
lightning/fabric/loggers/csv_logs.py), so a failure there truncates every row logged so far.
Here the rewrite goes through a temporary file and ``os.replace``, and every failure is an
``OSError`` (same errno) naming the file and what to do.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from amago_pl.callbacks.config_logging import write_failure


class _SafeExperimentWriter(ExperimentWriter):
    def _local(self) -> bool:
        return "file" in (self._fs.protocol if isinstance(self._fs.protocol, tuple) else (self._fs.protocol,))

    def save(self) -> None:
        try:
            super().save()
        except OSError as e:
            raise OSError(e.errno, write_failure(Path(self.metrics_file_path), e)) from e

    def log_hparams(self, params: dict[str, Any]) -> None:
        try:
            super().log_hparams(params)
        except OSError as e:
            path = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
            raise OSError(e.errno, write_failure(Path(path), e)) from e

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        if not self._local():
            return super()._rewrite_with_new_header(fieldnames)
        with open(self.metrics_file_path, newline="") as file:
            rows = list(csv.DictReader(file))
        tmp = os.path.join(self.log_dir, f".{self.NAME_METRICS_FILE}.tmp")
        try:
            with open(tmp, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.metrics_file_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class SafeCSVLogger(CSVLogger):
    """``CSVLogger`` (same arguments) whose writes name the file on failure and whose header
    rewrite is atomic."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _SafeExperimentWriter(log_dir=self.log_dir)
        return self._experiment
