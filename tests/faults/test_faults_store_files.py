"""Bad trajectory files of every kind (issue 21 items 3, 7, 10, 11): each is found at load, named
(path and what is wrong) and moved to ``buffer/quarantine/``, or in a store this process may not
edit, skipped for the run; a store with nothing usable fails with a message instead of spinning; a
file still being copied in is retried, not quarantined; a zip bomb is refused from its headers."""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from amago_pl.datamodules import DiskTrajDataset
from amago_pl.datamodules.file_checks import TrajSpec
from amago_pl.datamodules.store import TrajectoryStore, UnusableStoreError
from amago_pl.types import FrozenTraj
from tests.faults.support import metric_values, tiny_experiment
from tests.integration.cli_support import REPO, subprocess_env

T = 5
# The tiny T-Maze's spaces (tests/faults/support.py): obs Box(3,) float32, Discrete(4), rl2 Box(5).
SPEC = TrajSpec(obs={"observation": ((3,), np.dtype(np.float32))}, rl2_dim=5, action_is_index=True)


def _good(reward: float = 0.0) -> dict[str, np.ndarray]:
    rl2s = np.zeros((T, 5), np.float32)
    rl2s[1:, 0], rl2s[1:, 1] = reward, 1.0
    return FrozenTraj(
        obs={"observation": np.zeros((T, 3), np.float32)},
        rl2s=rl2s,
        time_idxs=np.arange(T, dtype=np.int64),
        rews=np.full(T - 1, reward, np.float32),
        dones=np.zeros(T - 1, bool),
        actions=np.zeros((T - 1, 1), np.int64),
        action_is_index=True,
    ).to_dict()


def _npz(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _npy_with_header(header: str, payload: bytes, declared_len: int | None = None) -> bytes:
    text = header.encode("latin1")
    hlen = len(text) if declared_len is None else declared_len
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", hlen) + text + payload


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


def _members(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    out = {}
    for k, v in arrays.items():
        b = io.BytesIO()
        np.save(b, v)
        out[f"{k}.npy"] = b.getvalue()
    return out


def _corrupt_member() -> bytes:
    data = bytearray(_npz(_good(), compressed=True))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("obs.observation.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + info.compress_size] = b"\xff" * info.compress_size  # not a deflate stream
    return bytes(data)


def _bad_file(kind: str) -> bytes:
    d = _good()
    if kind == "obs_shape":  # the env's observation grew from 3 to 7 values, same dataset name
        d["obs.observation"] = np.zeros((T, 7), np.float32)
    elif kind == "obs_dtype":
        d["obs.observation"] = np.full((T, 3), "x")
    elif kind == "missing_key":
        d["obs.pixels"] = d.pop("obs.observation")
    elif kind == "action_range":
        d["actions"] = np.full((T - 1, 1), 99, np.int64)
    elif kind == "corrupt_member":
        return _corrupt_member()
    elif kind == "truncated_header":
        members = _members(d)
        members["rews.npy"] = _npy_with_header("{'descr': '<f4'", b"", declared_len=500)
        return _zip(members)
    elif kind == "absurd_shape":
        members = _members(d)
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000000000,), }"
        members["rews.npy"] = _npy_with_header(header, b"\0" * 16)
        return _zip(members)
    return _npz(d)


KINDS = {
    "obs_shape": "has shape (7,) per step; the agent's observation space expects (3,)",
    "obs_dtype": "not numeric",
    "missing_key": "missing ['observation'], unexpected ['pixels']",
    "action_range": "action index 99 is out of range for 4 actions",
    "corrupt_member": "corrupt archive",
    "truncated_header": "truncated .npy header",
    "absurd_shape": "truncated or absurd shape",
}


def _plant(folder: Path, name: str, data: bytes, age: float = 60.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (time.time() - age,) * 2)  # already there before the run (not a copy in progress)
    return path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_bad_kind_is_named_and_quarantined(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = TrajectoryStore(tmp_path / "buffer")
    store.spec = SPEC
    bad = _plant(store.fifo_dir, f"TMaze_1_n0r0p1_{kind}.npz", _bad_file(kind))
    good = _plant(store.fifo_dir, "TMaze_2_n0r0p1_good.npz", _npz(_good()))
    with caplog.at_level(logging.WARNING, logger="amago_pl.datamodules.store"):
        assert store.load(bad) is None
    assert (store.quarantine_dir / bad.name).exists() and not bad.exists()
    assert str(bad) in caplog.text and KINDS[kind] in caplog.text, caplog.text
    assert store.load(good) is not None and store.stats()["quarantined"] == 1


def test_bad_files_end_to_end_run_and_read_only_rerun(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real run quarantines every kind and trains all its steps; a second launch without edit
    rights meets the same kinds in protected/, skips them in place, reports each once, trains."""
    fifo, protected = tmp_path / "tiny" / "buffer" / "fifo", tmp_path / "tiny" / "buffer" / "protected"
    names = {k: f"TMaze_{i}_n0r0p1_{k}.npz" for i, k in enumerate(sorted(KINDS), start=1000)}
    for kind, name in names.items():
        _plant(fifo, name, _bad_file(kind))
    exp = tiny_experiment(tmp_path, epochs=2, train_batches_per_epoch=6, batch_size=8)
    exp.start()
    with caplog.at_level(logging.WARNING, logger="amago_pl.datamodules.store"):
        exp.learn()
    assert exp.trainer.global_step == 2 * 6
    quarantine = tmp_path / "tiny" / "buffer" / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == sorted(names.values())
    assert max(metric_values(tmp_path / "tiny", "buffer/quarantined")) == len(KINDS)
    messages = [r.getMessage() for r in caplog.records]
    for kind, name in names.items():  # each file named with what is wrong and where it went
        assert any(str(fifo / name) in m and KINDS[kind] in m and "moved to" in m for m in messages), kind

    for kind, name in names.items():  # the same files again, now where this launch may not move them
        (quarantine / name).unlink()
        _plant(protected, name, _bad_file(kind))
    caplog.clear()
    exp = tiny_experiment(tmp_path, run_name="again", epochs=1, train_batches_per_epoch=6, batch_size=8)
    exp.has_dset_edit_rights = False
    exp.start()
    with caplog.at_level(logging.WARNING, logger="amago_pl.datamodules.store"):
        exp.learn()
    assert exp.trainer.global_step == 6
    assert sorted(p.name for p in protected.iterdir()) == sorted(names.values())  # left in place
    reports = [r.getMessage() for r in caplog.records if "Unusable trajectory file" in r.getMessage()]
    assert all("skipped for this run" in m for m in reports)
    assert len(reports) == len({m.split(":")[0] for m in reports})  # each file reported once
    assert len(list(fifo.glob("*.npz"))) > 0  # trained on the files the two launches collected


def test_all_bad_store_without_edit_rights_fails_clearly_without_spinning(tmp_path: Path) -> None:
    ds = DiskTrajDataset(tmp_path, "ro", dset_max_size=100)
    ds.configure(4, 4, 3, has_edit_rights=False, seed=0)
    ds.expect(SPEC)
    for kind in KINDS:
        _plant(ds.store.protected_dir, f"TMaze_1_n0r0p1_{kind}.npz", _bad_file(kind))
    loads = 0
    real_load = ds.store.load

    def counting_load(path):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        return real_load(path)

    ds.store.load = counting_load  # type: ignore[method-assign]
    ds.refresh()
    start = time.monotonic()
    with pytest.raises(UnusableStoreError) as err:
        next(iter(ds.train_dataloader()))
    assert time.monotonic() - start < 10 and loads == len(KINDS)  # each file read once, no spin
    message = str(err.value)
    assert f"all {len(KINDS)} files are unusable" in message and "Fix or remove these files" in message
    assert str(ds.store.protected_dir / "TMaze_1_n0r0p1_obs_shape.npz") in message
    assert sorted(p.name for p in ds.store.protected_dir.iterdir()) == sorted(
        f"TMaze_1_n0r0p1_{k}.npz" for k in KINDS
    )


def test_file_copied_into_protected_while_sampling_is_kept_and_used(tmp_path: Path) -> None:
    """``cp`` writes in place: the sampler sees the partial file first. It must wait, not quarantine."""
    ds = DiskTrajDataset(tmp_path, "cp", dset_max_size=100)
    ds.configure(4, 4, 8, seed=0)
    ds.expect(SPEC)
    ds.store.settle_seconds = 0.5  # (default 10 s) a quiet file is retried after this
    for i in range(2):
        _plant(ds.store.fifo_dir, f"TMaze_{i}_n0r0p1_x.npz", _npz(_good(reward=0.0)))
    data = _npz(_good(reward=7.0))
    target = ds.store.protected_dir / "offline_demo.npz"
    with open(target, "wb") as f:  # the copy is half done while an epoch samples
        f.write(data[: len(data) // 2])
        f.flush()
        early = list(ds.train_dataloader())
        assert len(early) == 8 and all((b.rews != 7.0).all() for b in early)
        assert target.exists() and not list(ds.store.quarantine_dir.iterdir())
        f.write(data[len(data) // 2 :])  # the copy completes
    time.sleep(0.6)
    later = list(ds.train_dataloader())
    assert any((b.rews == 7.0).any() for b in later)  # the copied file is used
    assert target.exists() and not list(ds.store.quarantine_dir.iterdir())
    assert ds.store.quarantined_here == 0


_BOMB_SCRIPT = """
import sys
from amago_pl.datamodules.store import TrajectoryStore
store = TrajectoryStore(sys.argv[1])
path = store.fifo_dir / "TMaze_1_n0r0p1_bomb.npz"
hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
before = hwm()  # the imports (torch, lightning) alone
assert store.load(path) is None
print("growth_mb", hwm() - before)
print("quarantined", (store.quarantine_dir / path.name).exists())
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of a
# long pytest process reports the parent's peak (782 MB in a full CI run) instead of its own.
print("peak_mb", hwm())
"""


def test_zip_bomb_is_quarantined_from_its_headers(tmp_path: Path) -> None:
    arrays = _good()
    arrays["obs.observation"] = np.zeros((T, 3), np.float32)
    members = _members(arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
        # ~1 GB of zeros behind a valid header: ~1 MB on disk
        bomb = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
        bomb["shape"] = (250_000_000,)
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, bomb)
        with zf.open("extra.npy", "w", force_zip64=True) as member:
            member.write(head.getvalue())
            zero = bytes(2**24)
            for _ in range(1_000_000_000 // len(zero)):
                member.write(zero)
            member.write(bytes(1_000_000_000 % len(zero)))
    assert buf.tell() < 2_000_000
    _plant(tmp_path / "buffer" / "fifo", "TMaze_1_n0r0p1_bomb.npz", buf.getvalue())
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_SCRIPT, str(tmp_path / "buffer")],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "quarantined True" in out.stdout and "above the limit" in out.stderr
    # Was 3.4 GB (issue 21 item 11): now the imports (torch, lightning; ~420 MB) plus the load's
    # own growth (< 1 MB: nothing is decompressed).
    assert float(out.stdout.split("growth_mb")[1].split()[0]) < 50, out.stdout
    assert float(out.stdout.split("peak_mb")[1].split()[0]) < 500, out.stdout


_DISCRETE_SCRIPT = """
import sys
import gymnasium as gym
import numpy as np
from amago_pl.datamodules import TrajectoryStore
from amago_pl.datamodules.writer import TrajectoryWriter
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.parallel import make_parallel_envs

def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024

class Huge(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(200_000)
    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}
    def step(self, a):
        self.t += 1
        return np.full(3, a / 200_000, np.float32), 0.0, False, self.t >= 500, {}

envs = make_parallel_envs(lambda: AMAGOEnv(Huge(), env_name="Huge"), 2, mode="sync", seed=0)
store = TrajectoryStore(sys.argv[1])
writer = TrajectoryWriter(store, 2, traj_save_len=16)
writer.start(envs.reset())
rng = np.random.default_rng(0)
for i in range(3000):
    a = rng.integers(0, 200_000, size=2)
    writer.add(a, envs.step(a))
    if i == 49:
        base = rss_mb()
traj = store.load(store.files()[-1])
hot = traj.rl2s[1:, 1:]  # (T-1, 200000): one-hot of the action that led to each step
print(rss_mb() - base, store.stats()["bytes"] / 2**20, traj.rl2s.shape[1], len(traj),
      int(hot.sum()), int((hot.argmax(1) == traj.actions[:, 0]).all()))
"""


def test_discrete_200000_actions_do_not_grow_memory(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _DISCRETE_SCRIPT, str(tmp_path / "buffer")],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    growth, disk, width, steps, ones, match = (float(v) for v in out.stdout.split())
    assert growth < 200, out.stdout  # was ~760 MB over 500 steps (a one-hot cached per action)
    assert disk < 50, out.stdout  # rl2s stored as reward + index: ~1 MB instead of ~4.8 GB
    assert width == 200_001 and ones == steps > 0 and match == 1  # the dense rl2s come back exactly
