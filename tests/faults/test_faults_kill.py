"""SIGKILL during collection (inside a trajectory write), inside a checkpoint write and at a random
moment, each followed by ``--ckpt_path last``: the run resumes from the last complete checkpoint,
no partial file is ever visible, and no stored trajectory is lost or duplicated.

(tests/integration/test_resume.py covers a kill during training and exact state restoration.)
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.support import digests, store_files
from tests.integration.cli_support import (
    REPO,
    cli_command,
    load_ckpt,
    rollout_state,
    subprocess_env,
    write_configs,
)

pytestmark = pytest.mark.integration


def _configs(root: Path) -> tuple[Path, Path]:
    """The tiny CLI run on CartPole: continuous observations from random initial states, so two
    stored files with the same bytes can only be a duplicated write, never a coincidence."""
    yaml_path, gin_path = write_configs(root, epochs=200, batches=2)
    text = yaml_path.read_text().replace("env: tmaze", "env: gym:CartPole-v1")
    yaml_path.write_text(text.replace("env_kwargs: {corridor_length: 3}", "env_kwargs: {}"))
    return yaml_path, gin_path


def _launch(yaml_path: Path, gin_path: Path, *extra: str, resume: bool) -> subprocess.Popen:
    args = ["fit", "--config", str(yaml_path), "--gin", str(gin_path), *extra]
    if resume:
        # Env seeds differ per launch (far apart: env i uses seed + i), so a resumed run's first
        # episodes cannot repeat the killed run's first episodes bit for bit.
        _launch.count = getattr(_launch, "count", 0) + 1
        args += ["--ckpt_path", "last", "--run.seed", str(1000 * _launch.count)]
    return subprocess.Popen(
        cli_command(*args),
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _killer(where: str, count: int) -> str:
    cb = {"class_path": "tests.faults.support.KillInsideWrite", "init_args": {"where": where, "count": count}}
    return f"--trainer.callbacks+={json.dumps(cb)}"


def _counters(ckpt_dir: Path) -> tuple[int, int, int]:
    ckpt = load_ckpt(ckpt_dir / "last.ckpt")  # must always be complete and loadable
    return ckpt["epoch"], ckpt["global_step"], rollout_state(ckpt)["total_frames"]


class StoreAudit:
    """Across kills: every visible file loads completely, nothing seen before disappears or
    changes, no content is stored twice, and temp files never look like trajectories."""

    def __init__(self, buffer: Path):
        self.buffer = buffer
        self.seen: dict[str, str] = {}

    def check(self) -> int:
        now = digests(store_files(self.buffer))
        lost = set(self.seen) - set(now)
        assert not lost, f"trajectory files disappeared: {sorted(lost)[:5]}"
        assert all(now[k] == v for k, v in self.seen.items()), "a stored file changed"
        assert len(set(now.values())) == len(now), "the same trajectory was stored twice"
        self.seen = now
        return len(now)


def _wait_killed(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the planted kill never happened")
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]


def test_kill_loop_resumes_from_last_complete_checkpoint(tmp_path: Path) -> None:
    yaml_path, gin_path = _configs(tmp_path)
    run = tmp_path / "cli"
    ckpt_dir, audit = run / "ckpts", StoreAudit(run / "buffer")
    history: list[tuple[int, int, int]] = []

    # 1. Killed inside the 7th trajectory write (epoch >= 1's collection): temp written, not renamed.
    proc = _launch(yaml_path, gin_path, _killer("trajectory", 7), resume=False)
    _wait_killed(proc, timeout=240)
    temps = list((run / "buffer" / "fifo").glob(".*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the half-done write is invisible...
    audit.check()  # ...and every visible file is complete
    history.append(_counters(ckpt_dir))

    # 2. Resumed, then killed halfway through writing its 3rd checkpoint file (epoch=N.ckpt).
    proc = _launch(yaml_path, gin_path, _killer("checkpoint", 3), resume=True)
    _wait_killed(proc, timeout=240)
    partial = list(ckpt_dir.glob(".*.tmp"))
    assert len(partial) == 1, sorted(p.name for p in ckpt_dir.iterdir())
    epoch, step, frames = _counters(ckpt_dir)  # last.ckpt is the previous complete one
    assert not (ckpt_dir / f"epoch={epoch + 1}.ckpt").exists()
    history.append((epoch, step, frames))
    audit.check()

    # 3. Resumed, then killed at a random moment after it made progress.
    rng = random.Random(0)
    proc = _launch(yaml_path, gin_path, resume=True)
    target = ckpt_dir / f"epoch={epoch + 1}.ckpt"
    deadline = time.monotonic() + 240
    while not target.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the resumed run made no progress"
        time.sleep(0.1)
    time.sleep(rng.uniform(0.0, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    history.append(_counters(ckpt_dir))
    audit.check()

    # 4. Resumed to the end: completes, removes the dead writer's checkpoint temp file.
    end_epoch = history[-1][0] + 3
    proc = _launch(yaml_path, gin_path, "--trainer.max_epochs", str(end_epoch), resume=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    history.append(_counters(ckpt_dir))
    assert history[-1][0] == end_epoch - 1
    assert not list(ckpt_dir.glob(".*.tmp"))
    audit.check()

    for before, after in zip(history, history[1:]):
        assert all(b <= a for b, a in zip(before, after)), history  # epoch, step, frames never go back
    assert history[-1][1] > history[0][1] and history[-1][2] > history[0][2]
