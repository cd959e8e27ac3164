"""Nothing hangs without a message (issue 21, items 8, 9 and 12).

- An env that blocks in ``step`` or ``reset`` is stopped after ``hang_timeout`` in sync and async
  mode, with an ``EnvTimeoutError`` naming the env index, its name and how to raise the limit; a
  hung async worker is killed. Through an Experiment the setting reaches the envs.
- Async workers exit when their parent is SIGKILLed (none is orphaned in a hung env).
- A killed async worker is reported as "async env worker N died (killed by SIGKILL)" with the
  env's name, every time (5 of 5), whenever the parent notices.
- A learner without loadable data never waits forever: impossible store sizes fail when the
  Experiment is built; an all-corrupt offline store and an empty store end after hang_timeout
  with ``NoTrainingDataError`` naming the cause (also through ``amago-pl --run.hang_timeout``);
  SIGTERM during the wait ends the process with a non-zero status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gin
import numpy as np
import pytest

from amago_pl import DiskTrajDataset
from amago_pl.datamodules.data_wait import DEFAULT_HANG_TIMEOUT as DATA_DEFAULT
from amago_pl.datamodules.data_wait import NoTrainingDataError
from amago_pl.envs import make_parallel_envs
from amago_pl.envs.watchdog import DEFAULT_HANG_TIMEOUT, EnvTimeoutError, EnvWorkerDiedError
from tests.faults.hang_support import HangingTMaze, MakeHanging
from tests.faults.support import MakeFaulty, tiny_experiment
from tests.integration.cli_support import REPO, run_cli, subprocess_env, write_configs

LIMIT = 1.0  # seconds: short hang limits keep these tests fast


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------- item 9: hung envs
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("call", ["step", "reset"])
def test_hung_env_is_timed_out_naming_it(mode: str, call: str) -> None:
    # reset hangs at the 2nd reset: the autoreset after the first 4-step episode, inside a step.
    envs = make_parallel_envs(
        [MakeFaulty(), MakeHanging(call, at=2)], 2, mode=mode, seed=0, envs_per_worker=1, hang_timeout=LIMIT
    )
    pids = envs.worker_pids() if mode == "async" else []
    try:
        envs.reset()
        start = time.monotonic()
        with pytest.raises(EnvTimeoutError) as err:
            for _ in range(6):
                envs.step(np.zeros(2, dtype=np.int64))
        waited = time.monotonic() - start
    finally:
        envs.close()
    message = str(err.value)
    assert f"env 1 ('HangMaze') did not return from {call}() within hang_timeout=1 s" in message
    assert "Experiment(hang_timeout=SECONDS)" in message and "hang_timeout=None waits forever" in message
    assert LIMIT <= waited < LIMIT + 3.0
    if mode == "async":
        assert "now killed" in message
        assert not _alive(pids[1])


@pytest.mark.parametrize("call", ["step", "reset"])
def test_hung_already_vectorized_env_is_timed_out(call: str) -> None:
    # One VectorEnv holding both envs (env_mode="already_vectorized"): timed as one call.
    from gymnasium.vector import SyncVectorEnv

    def make_vector():
        return SyncVectorEnv([lambda: HangingTMaze("step", 10**9), lambda: HangingTMaze(call, 2)])

    envs = make_parallel_envs(make_vector, 2, mode="already_vectorized", seed=0, hang_timeout=LIMIT)
    try:
        envs.reset()
        start = time.monotonic()
        with pytest.raises(EnvTimeoutError) as err:
            for _ in range(6):
                envs.step(np.zeros(2, dtype=np.int64))
        waited = time.monotonic() - start
    finally:
        envs.close()
    message = str(err.value)
    assert f"the vector env 'SyncVectorEnv' did not return from {call}() within hang_timeout=1 s" in message
    assert "already_vectorized" in message and "Experiment(hang_timeout=SECONDS)" in message
    assert LIMIT <= waited < LIMIT + 3.0


def test_experiment_hang_timeout_reaches_the_envs(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path, make_env=MakeHanging("step", at=3), env_mode="sync", hang_timeout=LIMIT)
    exp.start()
    start = time.monotonic()
    with pytest.raises(EnvTimeoutError, match=r"env [01] \('HangMaze'\) did not return from step\(\)"):
        exp.learn()
    assert time.monotonic() - start < 30


def test_async_workers_exit_when_the_parent_is_sigkilled(tmp_path: Path) -> None:
    out = tmp_path / "pids.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.hang_support", "envs", str(out)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no worker pids"
        workers = json.loads(out.read_text())["workers"]
        time.sleep(0.5)  # the parent is now blocked on env 1's step
        assert all(_alive(p) for p in workers)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "async env workers outlived their SIGKILLed parent"
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------- item 12: dead workers
def test_killed_async_worker_is_reported_every_time() -> None:
    messages = []
    for trial in range(5):
        envs = make_parallel_envs(MakeFaulty(), 3, mode="async", seed=0, envs_per_worker=1)
        try:
            envs.reset()
            victim = envs.worker_pids()[1]
            os.kill(victim, signal.SIGKILL)
            if trial % 2:  # noticed on send (the pipe is closed by then) or while waiting
                time.sleep(0.3)
            with pytest.raises(EnvWorkerDiedError) as err:
                for _ in range(3):
                    envs.step(np.zeros(3, dtype=np.int64))
            messages.append(str(err.value))
        finally:
            envs.close()
    assert len(messages) == 5
    for message in messages:
        assert message.startswith("async env worker 1 died (killed by SIGKILL) during step")
        assert "env 1 ('TMaze')" in message


# ---------------------------------------------------------------------- item 8: no data
@pytest.mark.parametrize(
    ("max_size", "min_size", "expected"),
    [
        (0, 1, r"dset_max_size=0 keeps no collected files.*use dset_max_size >= 1"),
        (5, 5, r"dset_min_size=5 >= dset_max_size=5.*lower dset_min_size or raise dset_max_size"),
    ],
)
def test_impossible_store_sizes_fail_at_construction(
    tmp_path: Path, max_size: int, min_size: int, expected: str
) -> None:
    dataset = DiskTrajDataset(
        dset_root=str(tmp_path), dset_name="tiny", dset_max_size=max_size, dset_min_size=min_size
    )
    with pytest.raises(ValueError, match=expected):
        tiny_experiment(tmp_path, dataset=dataset)


def test_all_corrupt_offline_data_ends_after_hang_timeout(tmp_path: Path) -> None:
    dataset = DiskTrajDataset(dset_root=str(tmp_path), dset_name="tiny", dset_max_size=1000)
    for i in range(3):  # offline data, written a minute ago, that turns out to be unreadable
        path = dataset.store.protected_dir / f"offline_{i}.npz"
        path.write_bytes(b"not a zip archive")
        os.utime(path, (time.time() - 60,) * 2)  # settled: not a copy in progress (store.py)
    dataset.refresh()
    # Offline epochs only (no collection): the learner can only use the protected files.
    exp = tiny_experiment(
        tmp_path, dataset=dataset, train_timesteps_per_epoch=0, epochs=1, hang_timeout=2, val_interval=None
    )
    exp.start()
    start = time.monotonic()
    with pytest.raises(NoTrainingDataError) as err:
        exp.learn()
    waited = time.monotonic() - start
    message = str(err.value)
    assert "hang_timeout=2 s" in message and "DiskTrajDataset 'tiny'" in message
    assert "3 file(s) of 'tiny' are in" in message and "quarantine" in message
    assert "raise the limit" in message
    assert 2 <= waited < 20


def test_cli_run_without_data_ends_after_run_hang_timeout(tmp_path: Path) -> None:
    yaml_path, gin_path = write_configs(tmp_path, epochs=1, batches=2)
    result = run_cli(
        "fit",
        "--config",
        str(yaml_path),
        "--gin",
        str(gin_path),
        "--run.timesteps_per_epoch",
        "0",
        "--run.hang_timeout",
        "2",
        timeout=180,
    )
    assert result.returncode != 0
    assert "NoTrainingDataError" in result.stderr and "hang_timeout=2 s" in result.stderr
    assert "DiskTrajDataset 'cli'" in result.stderr


def test_sigterm_while_waiting_for_data_exits_non_zero(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.hang_support", "wait", str(tmp_path)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # epoch 1 waits for data (hang_timeout is 120 s)
        assert line.strip() == "WAITING", proc.stderr.read()
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read()
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert time.monotonic() - start < 15
        assert code == 128 + signal.SIGTERM  # non-zero: a preempted run did not finish
        assert "NoTrainingDataError" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------------- the setting
def test_one_hang_timeout_setting_with_a_stated_default(tmp_path: Path) -> None:
    from amago_pl import Experiment
    from amago_pl.run.settings import CLI_KEYS, Settings

    assert DEFAULT_HANG_TIMEOUT == DATA_DEFAULT == 600.0
    assert Settings.__dataclass_fields__["hang_timeout"].default == 600.0
    assert CLI_KEYS["hang_timeout"] == "run.hang_timeout"
    assert tiny_experiment(tmp_path).hang_timeout == 600.0
    with gin.unlock_config():
        gin.bind_parameter("Experiment.hang_timeout", 7.5)
    try:
        assert tiny_experiment(tmp_path).hang_timeout == 7.5
        assert Experiment.__dataclass_fields__["hang_timeout"].default == 600.0
    finally:
        gin.clear_config()
    with pytest.raises(ValueError, match=r"hang_timeout=-1 must be a number > 0 or None"):
        tiny_experiment(tmp_path, hang_timeout=-1)
