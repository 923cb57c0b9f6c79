"""Small helpers shared by the calibration modules: atomic files and rank-0 work.

Every file of a calibration or an ensemble is written through
:func:`atomic_output`: into a temporary file next to the target, renamed over
it only when complete, removed on any error, so a kill never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..simulation import _atomic_target


@contextmanager
def atomic_output(path: Path):
    """Yield a temporary path; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data) -> None:
    """JSON (NaN allowed, keys sorted) written atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=True))


def on_root(comm, fn):
    """Run ``fn`` on rank 0 and broadcast its result, or its exception, to every rank."""
    payload = None
    if comm.rank == 0:
        try:
            payload = ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            payload = ("error", exc)
    payload = comm.bcast(payload, root=0)
    if payload[0] == "error":
        raise payload[1]
    return payload[1]
