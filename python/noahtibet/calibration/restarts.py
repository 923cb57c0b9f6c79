"""Restarts that every rank writes and reads for its own columns only.

An ensemble has ``members x cells`` columns (13 x 26,000 on the plateau), too
many to gather on one rank.  A restart point (e.g. ``transient_2010``) is
therefore a directory of part files, one per rank that holds cells, each with
the columns of a contiguous range of cells ``[cell_start, cell_stop)`` in
canonical order (``columns_per_cell`` columns per cell, cell-major), and a
manifest ``<name>.json`` beside the directory naming the parts:

* every rank writes its part atomically (temporary file, then rename);
* after all parts are written rank 0 writes the manifest atomically: a point
  exists only once its manifest does, so a kill at any moment leaves either the
  previous point or a complete new one;
* to resume, each rank reads from the parts only the rows of its own cells
  (netCDF slices), so memory per rank is bounded by its own columns and a run
  can resume on any number of ranks;
* when a point is complete, points older than the previous one are removed
  (``keep`` points stay), which bounds the disk used.

The part files have the layout of :func:`noahtibet.simulation.write_restart`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..kernel import ColumnState
from ..simulation import write_restart
from .common import on_root, write_json

MANIFEST_VERSION = 1


def restart_info(path: Path) -> dict:
    """The ``info`` of a restart file (attributes only, no data read)."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        return json.loads(nc.info_json)


def read_restart_rows(path: Path, rows) -> tuple[ColumnState, np.ndarray | None]:
    """State and previous-year maxima of the columns ``rows`` (a slice or increasing
    indices) of a restart file, reading only those rows."""
    import netCDF4

    if not isinstance(rows, slice):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            rows = slice(0, 0)
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        if isinstance(rows, slice):
            get = lambda v: np.array(nc[v][rows])            # noqa: E731
        else:
            get = lambda v: np.array(nc[v][rows, :])          # noqa: E731
        state = ColumnState(get("stc"), get("smc"), get("sh2o"), get("surface"))
        prev = get("previous_year_tmax") if "previous_year_tmax" in nc.variables else None
    return state, prev


class RestartSet:
    """Per-rank restart points in ``directory`` (see the module documentation)."""

    def __init__(self, directory: Path, comm, columns_per_cell: int, digest: str,
                 keep: int = 2):
        self.directory = Path(directory)
        self.comm, self.per_cell, self.digest, self.keep = comm, columns_per_cell, digest, keep

    def _manifest(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def names(self) -> list[str]:
        """Complete points, oldest first (spin-up cycles sort before transient years)."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def write(self, name: str, cell_start: int, cell_stop: int, state: ColumnState,
              prev_tmax: np.ndarray | None, info: dict) -> None:
        """Write this rank's columns (cells ``[cell_start, cell_stop)``) of point ``name``."""
        comm = self.comm
        folder = self.directory / name

        def clear():                       # an older, possibly incomplete, point of this name
            self._manifest(name).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        on_root(comm, clear)
        part = None
        if cell_stop > cell_start:
            file = f"cells_{cell_start:08d}_{cell_stop:08d}.nc"
            write_restart(folder / file, state, prev_tmax,      # atomic itself
                          {**info, "cell_start": cell_start, "cell_stop": cell_stop,
                           "digest": self.digest})
            part = {"file": file, "cell_start": int(cell_start), "cell_stop": int(cell_stop)}
        parts = comm.gather(part, root=0)

        def finish():
            write_json(self._manifest(name), {
                "version": MANIFEST_VERSION, "name": name, "info": info, "digest": self.digest,
                "columns_per_cell": self.per_cell,
                "parts": sorted((p for p in parts if p), key=lambda p: p["cell_start"])})
            for old in self.names()[:-self.keep]:
                self._manifest(old).unlink()
                shutil.rmtree(self.directory / old, ignore_errors=True)
        on_root(comm, finish)

    def latest(self) -> dict | None:
        """The manifest of the newest complete point (every rank), digest checked."""
        def read():
            names = self.names()
            if not names:
                return None
            path = self._manifest(names[-1])
            data = json.loads(path.read_text())
            if data.get("digest") != self.digest or data.get("columns_per_cell") != self.per_cell:
                raise RuntimeError(f"{path}: restart of a different configuration, member "
                                   "list or protocol; refusing to resume")
            return data
        return on_root(self.comm, read)

    def read(self, manifest: dict, cell_start: int, cell_stop: int):
        """This rank's columns (cells ``[cell_start, cell_stop)``) of a point."""
        folder = self.directory / manifest["name"]
        states, prevs, covered = [], [], cell_start
        for part in manifest["parts"]:
            lo, hi = max(cell_start, part["cell_start"]), min(cell_stop, part["cell_stop"])
            if lo >= hi:
                continue
            if lo != covered:
                break
            off = part["cell_start"]
            s, p = read_restart_rows(folder / part["file"],
                                     slice((lo - off) * self.per_cell, (hi - off) * self.per_cell))
            states.append(s)
            prevs.append(p)
            covered = hi
        if covered != cell_stop and cell_stop > cell_start:
            raise RuntimeError(f"{folder}: the parts do not cover cells {covered}..{cell_stop}")
        if not states:
            return None, None
        state = ColumnState(*(np.concatenate([getattr(s, a) for s in states])
                              for a in ("stc", "smc", "sh2o", "surface")))
        prev = None if prevs[0] is None else np.concatenate(prevs)
        return state, prev
