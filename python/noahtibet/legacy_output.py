"""Readers for output of the legacy Noah-Tibet model.

``read_state_dump`` reads the full-precision state format of the project's
reference runs (validation/reference/tanggula/legacy_*.txt.gz): one row per
model step, ``YYYYMMDDHHmm STC(1..N) SMC(1..N) SH2O(1..N) SNOWH SNEQV T1``,
the state at the end of the step whose forcing record carries that time stamp.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass
class LegacyStates:
    path: str
    time: np.ndarray   # datetime64[m], (nstep,)
    stc: np.ndarray    # (nstep, nlay) K
    smc: np.ndarray    # (nstep, nlay) m3 m-3
    sh2o: np.ndarray   # (nstep, nlay) m3 m-3
    snowh: np.ndarray  # (nstep,) m
    sneqv: np.ndarray  # (nstep,) m
    t1: np.ndarray     # (nstep,) K


def _open_text(path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt")
    return open(path, "rt")


def read_state_dump(path: str | os.PathLike, nlay: int | None = None) -> LegacyStates:
    """Read a full-precision legacy state dump (optionally gzip-compressed)."""
    path = str(path)
    stamps, rows = [], []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            stamp = parts[0]
            if len(stamp) != 12 or not stamp.isdigit():
                raise InputError("is not a YYYYMMDDHHmm time stamp", path=path, line=lineno,
                                 field="time", value=stamp)
            try:
                values = [float(x) for x in parts[1:]]
            except ValueError:
                bad = next(x for x in parts[1:] if not _is_float(x))
                raise InputError("is not a number", path=path, line=lineno, field="state",
                                 value=bad) from None
            if rows and len(values) != len(rows[0]):
                raise InputError(f"row has {len(values)} values, the first row has "
                                 f"{len(rows[0])}", path=path, line=lineno, field="state")
            stamps.append(stamp)
            rows.append(values)
    if not rows:
        raise InputError("contains no rows", path=path, field="state")
    data = np.array(rows)
    ncols = data.shape[1]
    n = (ncols - 3) // 3 if nlay is None else nlay
    if 3 * n + 3 != ncols:
        raise InputError(f"{ncols} values per row do not fit 3*nlay + 3", path=path, line=1,
                         field="state")
    time = np.array([f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}" for s in stamps],
                    dtype="datetime64[m]")
    return LegacyStates(path, time, data[:, :n], data[:, n:2 * n], data[:, 2 * n:3 * n],
                        data[:, 3 * n], data[:, 3 * n + 1], data[:, 3 * n + 2])


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
