"""A fast, pickle-free and size-checked reader for the store's ``.npz`` files.

``np.load`` spends most of its time per archive member (zip bookkeeping and an ``ast`` parse of
each ``.npy`` header); a trajectory file has ~7 small members, so that overhead dominates replay
sampling. This reader reads the file once, parses the standard header with a regex and builds
each array from the bytes.

It also refuses hostile or damaged files before they cost memory or crash a worker: the sizes the
zip directory declares are summed and compared with ``max_bytes`` *before* anything is
decompressed (a 1 MB zip bomb declares ~1 GB), every ``.npy`` header must describe exactly the
bytes its member holds (absurd or truncated shapes), and every parsing failure (``zlib.error``,
``struct.error``, ``BadZipFile``, ``OverflowError``...) comes out as one `TrajectoryFileError`
whose message says what is wrong. Object and structured arrays are always refused.
"""

from __future__ import annotations

import ast
import io
import math
import os
import re
import struct
import zipfile
import zlib

import numpy as np

_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(r"\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([0-9, ]*)\), *\}")
# Default cap on a file's total uncompressed size. Large enough for long image episodes (10,000
# steps of 84x84x3 uint8 is ~210 MB), small enough that a zip bomb is refused from its directory.
DEFAULT_MAX_BYTES = 512 * 2**20


class TrajectoryFileError(ValueError):
    """A store file that cannot be trajectory data; the message says what is wrong with it."""


def _header_fields(header: str) -> tuple[str, bool, tuple[int, ...]]:
    m = _HEADER.fullmatch(header)
    if m is not None:
        shape = tuple(int(s) for s in m.group(3).replace(" ", "").split(",") if s)
        return m.group(1), m.group(2) == "True", shape
    # Another writer's layout (key order, spacing): a literal-only parse, never code.
    try:
        d = ast.literal_eval(header)
        descr, fortran, shape = d["descr"], bool(d["fortran_order"]), tuple(int(s) for s in d["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as e:
        raise TrajectoryFileError(f"unreadable .npy header {header[:80]!r}") from e
    if not isinstance(descr, str):
        raise TrajectoryFileError(f"structured dtype {descr!r} is not trajectory data")
    return descr, fortran, shape


def _parse_npy(raw: bytes, member: str) -> np.ndarray:
    if raw[:6] != _MAGIC or len(raw) < 10:
        raise TrajectoryFileError(f"member {member!r} is not a .npy array (bad magic or truncated header)")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    elif major in (2, 3) and len(raw) >= 12:
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    else:
        raise TrajectoryFileError(f"member {member!r} has an unknown .npy version {major}")
    if start + hlen > len(raw):
        raise TrajectoryFileError(f"member {member!r} has a truncated .npy header")
    descr, fortran, shape = _header_fields(raw[start : start + hlen].decode("latin1").strip())
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError) as e:
        raise TrajectoryFileError(f"member {member!r} has an unknown dtype {descr!r}") from e
    if dtype.hasobject or dtype.fields is not None:
        raise TrajectoryFileError(f"member {member!r}: object or structured arrays are not allowed")
    if any(s < 0 for s in shape):
        raise TrajectoryFileError(f"member {member!r} declares a negative shape {shape}")
    count = math.prod(shape)  # Python ints: an absurd shape cannot overflow here
    data = len(raw) - start - hlen
    if count * dtype.itemsize != data:
        raise TrajectoryFileError(
            f"member {member!r} declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
            f"but holds {data} bytes (truncated or absurd shape)"
        )
    # bytearray: a writable copy, like np.load's result
    flat = np.frombuffer(bytearray(raw[start + hlen :]), dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if fortran else "C")


def read_npz(path: str | os.PathLike, max_bytes: int | None = DEFAULT_MAX_BYTES) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (plain or compressed), keyed without the ``.npy`` suffix.

    Raises `TrajectoryFileError` (a ValueError) for anything that is not a sane archive of plain
    arrays, and for files whose declared uncompressed size exceeds ``max_bytes`` (None: no cap);
    ``FileNotFoundError`` and other ``OSError``s pass through.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise TrajectoryFileError(f"the file is {size} bytes, above the limit of {max_bytes} bytes")
        data = f.read()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if max_bytes is not None and declared > max_bytes:
                raise TrajectoryFileError(
                    f"its members declare {declared} bytes uncompressed ({len(data)} on disk), above the "
                    f"limit of {max_bytes} bytes (a zip bomb, or a genuine file larger than the limit)"
                )
            out: dict[str, np.ndarray] = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if key in out:
                    raise TrajectoryFileError(f"member {info.filename!r} appears twice")
                out[key] = _parse_npy(zf.read(info), info.filename)
            return out
    except TrajectoryFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error, OverflowError) as e:
        raise TrajectoryFileError(f"corrupt archive ({type(e).__name__}: {e})") from e
    except (NotImplementedError, RuntimeError, ValueError, UnicodeDecodeError) as e:
        # unsupported compression or encryption, or zipfile's own header checks
        raise TrajectoryFileError(f"unreadable archive ({type(e).__name__}: {e})") from e
