"""A fast, pickle-free reader for the store's ``.npz`` files.

``np.load`` spends most of its time per archive member (zip bookkeeping and an ``ast`` parse of
each ``.npy`` header); a trajectory file has ~7 small members, so that overhead dominates replay
sampling. This reader reads the file once, parses the standard header with a regex and builds
each array from the bytes. Anything unusual falls back to numpy's own reader, still with
``allow_pickle=False``; object arrays are always refused.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile

import numpy as np

_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(r"\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([0-9, ]*)\), *\}")


def _parse_npy(raw: bytes) -> np.ndarray:
    if raw[:6] != _MAGIC:
        raise ValueError("not a .npy member")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    header = raw[start : start + hlen].decode("latin1").strip()
    m = _HEADER.fullmatch(header)
    if m is None:  # a header layout we do not know: let numpy parse it (no pickles)
        return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    dtype = np.dtype(m.group(1))
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed in trajectory files")
    shape = tuple(int(s) for s in m.group(3).replace(" ", "").split(",") if s)
    count = int(np.prod(shape)) if shape else 1
    # bytearray: a writable copy, like np.load's result
    flat = np.frombuffer(bytearray(raw[start + hlen :]), dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if m.group(2) == "True" else "C")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (plain or compressed), keyed without the ``.npy`` suffix."""
    with open(path, "rb") as f:
        data = f.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {
            (name[:-4] if name.endswith(".npy") else name): _parse_npy(zf.read(name))
            for name in zf.namelist()
        }
