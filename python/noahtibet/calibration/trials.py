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
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classify import NODATA, PERMAFROST, classify
from ..parallel import partition
from ..errors import ConfigError
from ..simulation import (Simulation, _atomic_target, config_digest, physics_options,
                          read_restart)
from .agreement import REFERENCE_NODATA, confusion, map_agreement, scores
from .engine import CellBlock, build_pairs, cold_start, continue_from, run_year
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


def default_run(cfg, cal, comm, model=None) -> DefaultRun:
    """Run (or resume, or find finished) the default parameters to the reference year.

    With ``calibration.default_run`` set, an existing run of exactly this
    configuration (e.g. the product run in ``output.directory``) is used instead:
    its restarts must carry the configuration's digest and its annual file of the
    reference year must exist.
    """
    year = cal.reference_year
    if cal.default_run:
        run = DefaultRun(Path(cal.default_run), config_digest(cfg))

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
        from .optimizer import _share
        _share(comm, check)
        return run
    dcfg = default_config(cfg, cal)
    sim = Simulation(dcfg, comm, model)
    if comm.rank == 0:
        log.info("default run to %d in %s", year, sim.out)
    sim.run(resume=True)
    comm.barrier()
    annual = sim.annual_dir / f"annual_{year:04d}.nc"
    if comm.rank == 0 and not annual.exists():
        raise RuntimeError(f"{annual}: the default run did not write its reference year")
    return DefaultRun(sim.out, sim.digest)


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
    default_permafrost: np.ndarray    # (S,) bool
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
    return Sensitive(cells, rpf[r, c], dpf[r, c], int(disagree.sum()), summary)


def write_sensitive(path_dir: Path, model, sens: Sensitive, reference, default_classes) -> None:
    rows, cols = model.simulated.cell_rows_cols
    path = Path(path_dir) / "sensitive_cells.csv"
    tmp = _atomic_target(path)
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["column", "row", "col", "lon", "lat", "reference_class", "default_class",
                    "disagrees"])
        for i in sens.cells:
            r, c = int(rows[i]), int(cols[i])
            w.writerow([int(i), r, c, f"{model.grid.lons[c]:.4f}", f"{model.grid.lats[r]:.4f}",
                        int(reference[r, c]), int(default_classes[r, c]),
                        int((reference[r, c] == PERMAFROST)
                            != (default_classes[r, c] == PERMAFROST))])
    os.replace(tmp, path)
    path = Path(path_dir) / "sensitive_cells.json"
    tmp = _atomic_target(path)
    tmp.write_text(json.dumps(sens.summary, indent=1, sort_keys=True))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Evaluating a batch
# --------------------------------------------------------------------------------------------

@dataclass
class StartState:
    """State of the sensitive cells at the end of the default spin-up (continued protocol)."""

    state: object                   # ColumnState (S columns)
    prev_tmax: np.ndarray | None    # (S, nlay)


def default_start_state(run: DefaultRun, cells: np.ndarray, year: int = 0) -> StartState:
    """The default run's state at the end of its spin-up (``year`` 0) or of a transient
    year, restricted to ``cells`` (rank 0 reads)."""
    if year:
        files = [run.restart_dir / f"transient_{year:04d}.nc"]
        files = [f for f in files if f.exists()]
    else:
        files = sorted(run.restart_dir.glob("spinup_cycle_*.nc"))
    if not files:
        what = f"transient year {year}" if year else "the end of the spin-up"
        raise RuntimeError(f"{run.restart_dir}: no restart of the default run at {what} "
                           "(the continued protocol starts from it)")
    state, prev, info, _ = read_restart(files[-1])
    if info.get("config_digest") != run.digest:
        raise RuntimeError(f"{files[-1]}: restart of a different configuration "
                           f"({info.get('config_digest')} != {run.digest})")
    from ..kernel import ColumnState
    sub = ColumnState(state.stc[cells], state.smc[cells], state.sh2o[cells], state.surface[cells])
    return StartState(sub, None if prev is None else prev[cells])


class TrialEvaluator:
    """Evaluates batches of parameter sets on the sensitive cells (collective over ranks)."""

    def __init__(self, cfg, cal, model, space: ParameterSpace, sens: Sensitive, comm,
                 start: StartState | None = None):
        self.cfg, self.cal, self.model, self.space = cfg, cal, model, space
        self.sens, self.comm, self.start = sens, comm, start
        self.options = physics_options(cfg).as_array()
        self.dt = float(cfg.physics.timestep)
        sp = cfg.spinup
        self.spinup_years = list(range(sp.start_year, sp.end_year + 1))
        first = cfg.run.start_year
        if cal.protocol == "continued" and cal.continue_from_year:
            first = cal.continue_from_year + 1
        self.transient_years = list(range(first, cal.reference_year + 1))
        self.cycles = {"full": sp.cycles, "shortened": cal.spinup_cycles,
                       "continued": cal.spinup_cycles}[cal.protocol]
        if cal.protocol == "continued" and start is None:
            raise ValueError("the continued protocol needs the default spin-up state")
        years = set(self.transient_years) | (set(self.spinup_years) if self.cycles else set())
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
        plus ``status`` ("ok" / "failed") and ``message``; classes (rank 0, when
        asked) the (len(sets), S) uint8 classes of the reference year (255 for a
        failed set).
        """
        comm, S, B = self.comm, self.sens.n, len(sets)
        mine = partition(B * S, comm.size, comm.rank)
        set_index, cell_index = mine // S, mine % S
        ucells, cell_pos = np.unique(cell_index, return_inverse=True)
        block = self._block(ucells)
        pc = build_pairs(block, self.space, sets, mine, set_index, cell_pos.ravel(), labels)
        # pc.cell_pos indexes the block; the sensitive-cell index is ucells[cell_pos]
        if self.cal.protocol == "continued":
            st = self.start.state
            from ..kernel import ColumnState
            local = ColumnState(st.stc[ucells], st.smc[ucells], st.sh2o[ucells],
                                st.surface[ucells])
            prev = None if self.start.prev_tmax is None else self.start.prev_tmax[ucells]
            continue_from(pc, local, prev)
        else:
            cold_start(pc, self.cfg.spinup.initial_moisture_fraction)
        diag = None
        for _ in range(self.cycles):
            for year in self.spinup_years:
                diag = run_year(block, pc, year, self.dt, self.options)
                self.column_years += pc.n
            if diag is not None:
                pc.prev_tmax = diag.tmax.copy()
        for year in self.transient_years:
            diag = run_year(block, pc, year, self.dt, self.options)
            self.column_years += pc.n
            if year < self.cal.reference_year:
                pc.prev_tmax = diag.tmax.copy()
        classes = classify(diag.tmin, diag.tmax, pc.prev_tmax) if pc.n else \
            np.zeros(0, np.uint8)
        sens_idx = ucells[pc.cell_pos]
        ref = self.sens.reference_permafrost[sens_idx]
        cm = np.zeros((B, 2, 2), dtype=np.int64)
        valid = classes != NODATA
        np.add.at(cm, (pc.set_index[valid], ref[valid].astype(int),
                       (classes[valid] == PERMAFROST).astype(int)), 1)
        failed = np.zeros(B, dtype=np.int64)
        for k in pc.failed:
            failed[k] = 1
        cm = comm.allreduce(cm, op="sum")
        failed = comm.allreduce(failed, op="sum")
        messages = comm.gather(pc.failed, root=0)
        results = []
        if comm.rank == 0:
            merged = {}
            for part in messages:
                for k, msg in part.items():
                    merged.setdefault(k, msg)
            for k in range(B):
                r = scores(cm[k])
                if failed[k]:
                    r.update(kappa=float("nan"), status="failed", message=merged.get(k, ""))
                elif not np.isfinite(r["kappa"]):
                    r.update(status="failed", message="kappa undefined")
                else:
                    r.update(status="ok", message="")
                r["confusion"] = cm[k].tolist()
                results.append(r)
        results = comm.bcast(results, root=0)
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


def agreement_of_classes(classes: np.ndarray, reference_permafrost: np.ndarray) -> dict:
    """Scores of per-cell classes against per-cell reference permafrost (255 excluded)."""
    valid = classes != NODATA
    return scores(confusion(reference_permafrost, classes == PERMAFROST, valid))
