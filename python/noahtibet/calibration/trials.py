"""Sensitive regions and the evaluation of a batch of trials.

Sensitive regions
-----------------
:func:`default_run` runs the model with the default parameters (the run
configuration's own, including its ``[parameters]`` overrides) from a cold start
through its spin-up and up to the reference year, in
``<calibration directory>/default_run`` (resumable, like any run).
:func:`sensitive_cells` classifies that run's reference year, compares it with
the reference map aggregated to the model grid
(:func:`noahtibet.masks.reference_map`, majority of the map's pixels per cell) and
selects the cells where one says permafrost and the other does not.  Cells
without reference data, glaciers, lakes of the reference year and cells outside
the simulated domain are never selected.  ``buffer_cells = N`` adds the valid
cells within N cells (8-neighbourhood, i.e. a (2N+1) x (2N+1) square) of a
disagreeing cell.

One trial
---------
A trial is one parameter set evaluated on the sensitive cells: spin-up by the
configured protocol (:mod:`noahtibet.calibration.settings`), transient years up to
the reference year, classification of that year (:func:`noahtibet.classify.classify`
with the previous year's maxima) and the 2 x 2 confusion matrix against the
reference (:mod:`noahtibet.calibration.agreement`).

A batch of B candidates on S sensitive cells is one set of B x S columns,
ordered candidate-major (pair ``k * S + i``), divided over the ranks by
:func:`noahtibet.parallel.partition`.  Each rank reads the forcing of its
distinct cells once per month and gives it to all its candidates of those cells.
Each rank adds its pairs to per-candidate confusion matrices; the integer
matrices are summed over ranks (``allreduce``), so every rank count gives the
same kappa, bit for bit.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classify import NODATA, PERMAFROST, classify
from ..errors import ConfigError
from ..parallel import partition
from ..simulation import Simulation, config_digest, physics_options
from .agreement import REFERENCE_NODATA, map_agreement, scores
from .common import atomic_output, on_root, write_json
from .engine import (CellBlock, build_pairs, merge_failures, run_spinup, run_year,
                     start_pairs, take_state)
from .restarts import read_restart_rows, restart_info
from .settings import Protocol, trial_protocol
from .space import ParameterSpace

log = logging.getLogger("noahtibet")


# --------------------------------------------------------------------------------------------
# The default run and the reference map
# --------------------------------------------------------------------------------------------

def default_config(cfg, cal):
    """The run configuration of the default run: up to the reference year, no products."""
    return dataclasses.replace(
        cfg,
        run=dataclasses.replace(cfg.run, end_year=cal.reference_year,
                                product_start_year=min(cfg.run.product_start_year,
                                                       cal.reference_year)),
        output=dataclasses.replace(cfg.output, directory=str(Path(cal.directory) / "default_run"),
                                   geotiff=False, netcdf=False, points=[]),
    )


@dataclass
class DefaultRun:
    """Where the default run's files are, and the configuration digest its restarts carry."""

    out: Path
    digest: str

    @property
    def annual_dir(self) -> Path:
        return self.out / "annual"

    @property
    def restart_dir(self) -> Path:
        return self.out / "restart"


def default_run_location(cfg, cal) -> DefaultRun:
    """Where the default run of this calibration is (or will be), and its digest."""
    if cal.default_run:
        return DefaultRun(Path(cal.default_run), config_digest(cfg))
    dcfg = default_config(cfg, cal)
    return DefaultRun(Path(dcfg.output.directory), config_digest(dcfg))


def default_run(cfg, cal, comm, model=None) -> DefaultRun:
    """Run (or resume, or find finished) the default parameters to the reference year.

    With ``calibration.default_run`` set, an existing run of exactly this
    configuration (e.g. the product run in ``output.directory``) is used instead:
    its restarts must carry the configuration's digest and its annual file of the
    reference year must exist.
    """
    year = cal.reference_year
    run = default_run_location(cfg, cal)
    if cal.default_run:
        def check():
            annual = run.annual_dir / f"annual_{year:04d}.nc"
            if not annual.exists():
                raise ConfigError(f"has no annual file of {year} ({annual})", path=cfg.path,
                                  field="calibration.default_run", value=cal.default_run)
            import netCDF4
            with netCDF4.Dataset(annual) as nc:
                found = getattr(nc, "config_digest", None)
            if found != run.digest:
                raise ConfigError(f"was run with a different configuration (digest {found} != "
                                  f"{run.digest})", path=cfg.path,
                                  field="calibration.default_run", value=cal.default_run)
            log.info("default run: reusing %s", run.out)
        on_root(comm, check)
        return run
    sim = Simulation(default_config(cfg, cal), comm, model)
    if comm.rank == 0:
        log.info("default run to %d in %s", year, sim.out)
    sim.run(resume=True)
    comm.barrier()
    annual = sim.annual_dir / f"annual_{year:04d}.nc"
    if comm.rank == 0 and not annual.exists():
        raise RuntimeError(f"{annual}: the default run did not write its reference year")
    return run


def default_restart(run: DefaultRun, protocol: Protocol) -> Path:
    """The default run's restart a non-cold protocol starts from (digest checked)."""
    if protocol.start == "year":
        files = [run.restart_dir / f"transient_{protocol.start_year:04d}.nc"]
        files = [f for f in files if f.exists()]
    else:
        files = sorted(run.restart_dir.glob("spinup_cycle_*.nc"))
    if not files:
        what = f"transient year {protocol.start_year}" if protocol.start == "year" \
            else "the end of the spin-up"
        raise RuntimeError(f"{run.restart_dir}: no restart of the default run at {what} "
                           f"(the {protocol.name} protocol starts from it)")
    info = restart_info(files[-1])
    if info.get("config_digest") != run.digest:
        raise RuntimeError(f"{files[-1]}: restart of a different configuration "
                           f"({info.get('config_digest')} != {run.digest})")
    return files[-1]


def reference_path(cfg, cal, comm) -> Path:
    """The reference map: configured, or (demo domain) the demo truth's 2010 map."""
    if cal.reference_map:
        return Path(cal.reference_map)
    if cfg.domain.kind != "demo":
        raise ConfigError("no reference map: set calibration.reference_map or "
                          "static.reference_map", path=cfg.path, field="calibration.reference_map",
                          value="")
    from ..demo_truth import REFERENCE_MAP, REFERENCE_YEAR, make_truth
    if cal.reference_year != REFERENCE_YEAR:
        raise ConfigError(f"the demo truth's reference map is of {REFERENCE_YEAR}", path=cfg.path,
                          field="calibration.reference_year", value=cal.reference_year)
    if comm.rank == 0:
        log.info("reference map: the demo truth (a run with hidden parameters)")
    return make_truth(cfg, comm) / REFERENCE_MAP


def reference_classes(path, grid, mapping: str = "") -> np.ndarray:
    """The reference map on the model grid: 0 no data, 1/2/3 classes."""
    from ..masks import reference_map

    res = reference_map(str(path), grid, mapping or None)
    return np.asarray(res.values, dtype=np.int64)


def read_annual_classes(sim, year: int) -> np.ndarray:
    import netCDF4

    with netCDF4.Dataset(sim.annual_dir / f"annual_{year:04d}.nc") as nc:
        nc.set_auto_mask(False)
        return np.array(nc["frozen_ground_class"][:])


# --------------------------------------------------------------------------------------------
# Sensitive cells
# --------------------------------------------------------------------------------------------

@dataclass
class Sensitive:
    """The sensitive cells (canonical simulated-column indices) and their reference."""

    cells: np.ndarray                 # (S,) column indices, increasing
    reference_permafrost: np.ndarray  # (S,) bool
    disagreeing: int                  # cells where the default run disagrees
    summary: dict

    @property
    def n(self) -> int:
        return self.cells.size


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(n):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[1:, 1:] |= out[:-1, :-1]
        grown[1:, :-1] |= out[:-1, 1:]
        grown[:-1, 1:] |= out[1:, :-1]
        grown[:-1, :-1] |= out[1:, 1:]
        out = grown
    return out


def sensitive_cells(model, default_classes: np.ndarray, reference: np.ndarray,
                    buffer_cells: int = 0, year: int = 2010) -> Sensitive:
    """Cells where the default run's permafrost disagrees with the reference (plus a buffer)."""
    active = model.simulated.active
    valid = active & (default_classes != NODATA) & (reference != REFERENCE_NODATA) \
        & ~model.lake_mask(year) & ~model.static_nodata
    dpf, rpf = default_classes == PERMAFROST, reference == PERMAFROST
    disagree = valid & (dpf != rpf)
    selected = _dilate(disagree, buffer_cells) & valid if buffer_cells else disagree
    per_cell = selected[active]
    cells = np.flatnonzero(per_cell)
    rows, cols = model.simulated.cell_rows_cols
    whole = map_agreement(np.where(valid, default_classes, NODATA), reference)
    on_sensitive = map_agreement(np.where(selected, default_classes, NODATA), reference)
    summary = {
        "year": year, "simulated_cells": int(active.sum()), "valid_cells": int(valid.sum()),
        "disagreeing_cells": int(disagree.sum()), "buffer_cells": int(buffer_cells),
        "sensitive_cells": int(cells.size),
        "default_kappa_domain": whole["kappa"],
        "default_overall_agreement_domain": whole["overall_agreement"],
        "default_kappa_sensitive": on_sensitive["kappa"],
        "default_overall_agreement_sensitive": on_sensitive["overall_agreement"],
        "reference_permafrost_cells": int((valid & rpf).sum()),
        "default_permafrost_cells": int((valid & dpf).sum()),
    }
    r, c = rows[cells], cols[cells]
    return Sensitive(cells, rpf[r, c], int(disagree.sum()), summary)


def write_sensitive(path_dir: Path, model, sens: Sensitive, reference, default_classes) -> None:
    rows, cols = model.simulated.cell_rows_cols
    with atomic_output(Path(path_dir) / "sensitive_cells.csv") as tmp, \
            open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["column", "row", "col", "lon", "lat", "reference_class", "default_class",
                    "disagrees"])
        for i in sens.cells:
            r, c = int(rows[i]), int(cols[i])
            w.writerow([int(i), r, c, f"{model.grid.lons[c]:.4f}", f"{model.grid.lats[r]:.4f}",
                        int(reference[r, c]), int(default_classes[r, c]),
                        int((reference[r, c] == PERMAFROST)
                            != (default_classes[r, c] == PERMAFROST))])
    write_json(Path(path_dir) / "sensitive_cells.json", sens.summary)


def read_sensitive_columns(path_dir: Path) -> np.ndarray | None:
    """The sensitive cells' column indices from ``sensitive_cells.csv`` (None if absent)."""
    path = Path(path_dir) / "sensitive_cells.csv"
    if not path.exists():
        return None
    with open(path, newline="") as fh:
        return np.array([int(r["column"]) for r in csv.DictReader(fh)], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Evaluating a batch
# --------------------------------------------------------------------------------------------

@dataclass
class StartState:
    """State of the sensitive cells in the default run where a non-cold protocol starts."""

    state: object                   # ColumnState (S columns)
    prev_tmax: np.ndarray | None    # (S, nlay)


def default_start_state(run: DefaultRun, cells: np.ndarray, protocol: Protocol) -> StartState:
    """The default run's state where ``protocol`` starts, restricted to ``cells``."""
    state, prev = read_restart_rows(default_restart(run, protocol), cells)
    return StartState(state, prev)


class TrialEvaluator:
    """Evaluates batches of parameter sets on the sensitive cells (collective over ranks)."""

    def __init__(self, cfg, cal, model, space: ParameterSpace, sens: Sensitive, comm,
                 start: StartState | None = None):
        self.cfg, self.cal, self.model, self.space = cfg, cal, model, space
        self.sens, self.comm, self.start = sens, comm, start
        self.options = physics_options(cfg).as_array()
        self.dt = float(cfg.physics.timestep)
        self.protocol = trial_protocol(cfg, cal)
        if self.protocol.start != "cold" and start is None:
            raise ValueError("the continued protocol needs the default run's state")
        p = self.protocol
        years = set(p.transient_years) | (set(p.spinup_years) if p.cycles else set())
        self._cache_years = sorted(years) if cal.cache_forcing else []
        self._blocks: dict = {}
        self.column_years = 0      # pair-years simulated on this rank

    def _block(self, cells: np.ndarray) -> CellBlock:
        key = cells.tobytes()
        if key not in self._blocks:
            self._blocks = {key: CellBlock(self.cfg, self.model, self.sens.cells[cells],
                                           self._cache_years)}
        return self._blocks[key]

    def evaluate(self, sets: list, labels: list | None = None, return_classes: bool = False):
        """Scores of every parameter set (same list on every rank).

        Returns (results, classes): results[k] is a dict of :func:`agreement.scores`
        plus ``status`` ("ok" / "failed"), ``message`` and ``confusion``; classes
        (rank 0, when asked) the (len(sets), S) uint8 classes of the reference year
        (255 for a failed set).  A failed set has no confusion matrix (zeros, kappa
        NaN) and the message of its earliest failure: the same on any number of ranks.
        """
        comm, S, B, p = self.comm, self.sens.n, len(sets), self.protocol
        mine = partition(B * S, comm.size, comm.rank)
        set_index, cell_index = mine // S, mine % S
        ucells, cell_pos = np.unique(cell_index, return_inverse=True)
        block = self._block(ucells)
        pc = build_pairs(block, self.space, sets, mine, set_index, cell_pos.ravel(), labels)
        # pc.cell_pos indexes the block; the sensitive-cell index is ucells[cell_pos]
        if p.start == "cold":
            start_pairs(pc, p, self.cfg.spinup.initial_moisture_fraction)
        else:
            prev = None if self.start.prev_tmax is None else self.start.prev_tmax[ucells]
            start_pairs(pc, p, 0.0, take_state(self.start.state, ucells), prev)
        self.column_years += run_spinup(block, pc, p, self.dt, self.options)
        for year in p.transient_years:
            diag = run_year(block, pc, year, self.dt, self.options)
            self.column_years += pc.n
            if year < p.last_year:
                pc.prev_tmax = diag.tmax.copy()
        classes = classify(diag.tmin, diag.tmax, pc.prev_tmax) if pc.n else \
            np.zeros(0, np.uint8)
        ref = self.sens.reference_permafrost[ucells[pc.cell_pos]]
        cm = np.zeros((B, 2, 2), dtype=np.int64)
        valid = classes != NODATA
        np.add.at(cm, (pc.set_index[valid], ref[valid].astype(int),
                       (classes[valid] == PERMAFROST).astype(int)), 1)
        cm = comm.allreduce(cm, op="sum")
        failed = merge_failures(comm.allgather(pc.failed))
        results = []
        for k in range(B):
            if k in failed:
                cm[k] = 0         # the pairs counted depend on where the set failed
            r = scores(cm[k])
            if k in failed:
                r.update(kappa=float("nan"), status="failed", message=failed[k][2])
            elif not np.isfinite(r["kappa"]):
                r.update(status="failed", message="kappa undefined")
            else:
                r.update(status="ok", message="")
            r["confusion"] = cm[k].tolist()
            results.append(r)
        out_classes = None
        if return_classes:
            parts = comm.gather((pc.pair, classes), root=0)
            if comm.rank == 0:
                out_classes = np.full(B * S, NODATA, dtype=np.uint8)
                for pairs, cls in parts:
                    out_classes[pairs] = cls
                out_classes = out_classes.reshape(B, S)
        return results, out_classes


def check_space_on_cells(space: ParameterSpace, cfg, model, cells: np.ndarray) -> None:
    """Refuse a space whose constraints can fail on the given simulated cells."""
    block = CellBlock(cfg, model, cells)
    if block.n:
        space.check_constraints(block.base.layer_par, block.base.column_par, block.classes,
                                what=f"the {block.n} calibrated cells")
