"""Bad settings fail at construction with the setting and the fix (issue 21 item 14), and a full
disk while writing config.txt or the CSV log names the file and what to do (item 13)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import gin
import pytest

import amago_pl.callbacks.config_logging as config_logging
import amago_pl.run.csv_logger as csv_logger
from amago_pl.callbacks.config_logging import write_config_txt
from amago_pl.run.csv_logger import SafeCSVLogger
from tests.faults.support import tiny_experiment
from tests.integration.cli_support import run_cli, write_configs


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("dloader_workers", -1, "dloader_workers=-1 must be an integer >= 0"),
        ("learning_rate", -1e-3, "learning_rate=-0.001 must be a number > 0 or None"),
        ("learning_rate", float("nan"), "learning_rate=nan must be a number > 0 or None (and finite)"),
        ("learning_rate", float("inf"), "learning_rate=inf must be a number > 0 or None (and finite)"),
        ("grad_clip", -1, "grad_clip=-1 must be a number >= 0 or None"),
    ],
)
def test_experiment_refuses_bad_values_at_construction(
    tmp_path: Path, setting: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match="Invalid Experiment settings") as err:
        tiny_experiment(tmp_path, **{setting: value})
    assert message in str(err.value)
    # nothing was built or written beyond the dataset folder the test itself constructed
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["buffer"]


def test_cli_refuses_bad_values_before_building_anything(tmp_path: Path) -> None:
    yaml_path, gin_path = write_configs(tmp_path)
    out = run_cli(
        "fit", "--config", str(yaml_path), "--gin", str(gin_path), "--data.dloader_workers", "-1",
        "--model.learning_rate", ".nan", "--trainer.gradient_clip_val", "-1", timeout=300,
    )  # fmt: skip
    assert out.returncode != 0
    for line in (
        "model.learning_rate=nan must be > 0 (and finite)",
        "data.dloader_workers=-1 must be >= 0",
        "trainer.gradient_clip_val=-1 must be >= 0",
    ):
        assert line in out.stderr, out.stderr
    assert not (tmp_path / "cli").exists()


def _enospc(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_writing_config_txt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gin.clear_config()
    monkeypatch.setattr(config_logging.os, "fsync", _enospc)  # the bytes do not reach the disk
    with pytest.raises(OSError) as err:
        write_config_txt(tmp_path / "run")
    assert err.value.errno == errno.ENOSPC
    message = str(err.value)
    assert str(tmp_path / "run" / "config.txt") in message and "disk full" in message
    assert "Free space on" in message and "resume" in message
    assert sorted(os.listdir(tmp_path / "run")) == []  # no .config.txt.tmp left behind


def test_disk_full_writing_the_csv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = SafeCSVLogger(save_dir=str(tmp_path), name="logs")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    metrics = Path(logger.experiment.metrics_file_path)
    first = metrics.read_text()

    # A new column makes the writer rewrite the file; a full disk there used to truncate it.
    monkeypatch.setattr(csv_logger.os, "fsync", _enospc)
    logger.log_metrics({"loss": 0.5, "buffer/files": 3.0}, step=1)
    with pytest.raises(OSError) as err:
        logger.save()
    assert (
        err.value.errno == errno.ENOSPC and str(metrics) in str(err.value) and "disk full" in str(err.value)
    )
    assert metrics.read_text() == first  # earlier rows intact
    assert sorted(p.name for p in metrics.parent.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()

    # Appending rows on a full device (/dev/full fails every write with ENOSPC).
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    logger = SafeCSVLogger(save_dir=str(tmp_path / "full"), name="logs")
    target = Path(logger.experiment.metrics_file_path)
    os.symlink("/dev/full", target)
    logger.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(OSError) as err:
        logger.save()
    assert err.value.errno == errno.ENOSPC and str(target) in str(err.value)
