"""The fast npz reader agrees with np.load and never unpickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amago_pl.datamodules.npz import read_npz


@pytest.mark.parametrize("compressed", [False, True])
def test_read_npz_matches_np_load(tmp_path: Path, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "obs.img": rng.integers(0, 255, size=(5, 3, 4, 4), dtype=np.uint8),
        "obs.fortran": np.asfortranarray(rng.normal(size=(6, 3))),
        "rews": rng.normal(size=7).astype(np.float32),
        "dones": np.array([True, False, True]),
        "actions": np.array([[999], [1]], dtype=np.int64),
        "scalar": np.asarray(True),
        "empty": np.zeros((0, 4), np.float32),
        "big_endian": np.arange(4, dtype=">i4"),
    }
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    got = read_npz(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(got) == sorted(z.files)
        for k in z.files:
            assert got[k].dtype == z[k].dtype and got[k].shape == z[k].shape, k
            np.testing.assert_array_equal(got[k], z[k])
            assert got[k].flags.writeable


def test_read_npz_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError):
        read_npz(path)
