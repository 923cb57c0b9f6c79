"""Gridded simulation: cold start, spin-up, transient run, restarts, products.

The job (``noahtibet run CONFIG``) does what the published product did:

1. **Spin-up**: recycle a forcing period (default 1979-1983) for a number of
   cycles (default 100, i.e. 500 years), the state carried across cycles.  After
   each cycle it reports, per cell, the change of the cycle-mean soil temperature
   (maximum over layers) from the previous cycle; with ``spinup.tolerance > 0``
   it stops as soon as every cell changes by less than the tolerance, and lists
   the cells that never did.
2. **Transient run** from the spun-up state over ``run.start_year`` ..
   ``run.end_year`` (1979-2018), accumulating per-layer annual minimum, maximum
   and mean soil temperature and maximum thaw depth in the kernel.
3. **Products**: per year the frozen-ground class (:mod:`noahtibet.classify`)
   written as a Cloud-Optimized GeoTIFF (``run.product_start_year`` onward) and,
   at the end, all years in one CF netCDF on the native grid.

Columns are the simulated cells in canonical order (row-major, south to north);
each MPI rank owns a contiguous slice, reads only its cells' forcing (a month at
a time) and holds only its cells' parameters and state.  Rank 0 gathers the
annual diagnostics and writes every file once; restarts (netCDF) are written at
the end of every spin-up cycle and every simulated year, and ``--resume``
continues from the newest one with bit-for-bit the same results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, layout
from .classify import NODATA, PERMAFROST, classify
from .config import Config
from .grid import Domain, LatLonGrid
from .kernel import AnnualDiagnostics, Calendar, ColumnState, run_columns
from .legacy_forcing import month_interpolation
from .parallel import SerialComm, abort_on_error, gather_columns, partition
from .parameters import PhysicsOptions, Tables, column_parameters
from .providers import ForcingProvider

log = logging.getLogger("noahtibet")

T0 = 273.15
RESTART_VERSION = 1


# --------------------------------------------------------------------------------------------
# What is simulated
# --------------------------------------------------------------------------------------------

@dataclass
class DomainModel:
    """The simulated cells and everything needed to build their columns.

    ``simulated`` is the study domain minus static NoData cells (glaciers); its
    cells, in canonical order, are the kernel columns.  ``column_specs(idx)``
    builds the parameters of a subset of columns (only a rank's own cells).
    """

    grid: LatLonGrid
    simulated: Domain
    static_nodata: np.ndarray                 # (nlat, nlon) outside domain or glacier
    lake_mask: Callable[[int], np.ndarray]    # year -> (nlat, nlon) bool
    provider: ForcingProvider
    column_spec: Callable[[int, int], object]   # (row, col) -> parameters.ColumnSpec
    monthly: Callable[[int, int], np.ndarray]   # (row, col) -> (nmon, 12)
    description: str = ""
    elevation: np.ndarray | None = None         # (nlat, nlon) [m], for site metadata
    #: called with the (rows, cols) of a rank's cells before their column_spec: lets a
    #: model compute per-cell inputs in one pass (e.g. TBOT from the forcing)
    prepare: Callable[[np.ndarray, np.ndarray], None] | None = None

    @property
    def ncol(self) -> int:
        return self.simulated.ncells


def demo_model(cfg: Config) -> DomainModel:
    """The built-in synthetic demo domain (see :mod:`noahtibet.demo`)."""
    from .demo import DemoDomain, DemoForcingProvider

    demo = DemoDomain(spacing=cfg.domain.spacing)
    study = demo.domain.active.copy()
    simulated = study & ~demo.glacier_mask
    if cfg.domain.max_cells > 0:
        keep = np.zeros(simulated.size, dtype=bool)
        keep[np.flatnonzero(simulated.ravel())[:cfg.domain.max_cells]] = True
        simulated = keep.reshape(simulated.shape)
    gi = layout.index(layout.MONTHLY, "green_fraction")
    li = layout.index(layout.MONTHLY, "lai")

    def monthly(r, c):
        m = np.zeros((len(layout.MONTHLY), 12))
        m[gi] = demo.green_fraction_monthly[r, c]
        m[li] = demo.lai_monthly[r, c]
        return m

    return DomainModel(
        grid=demo.grid, simulated=Domain(demo.grid, simulated),
        static_nodata=~(study & ~demo.glacier_mask), lake_mask=demo.lake_mask,
        provider=DemoForcingProvider(demo), column_spec=demo.column_spec, monthly=monthly,
        description="built-in SYNTHETIC demo domain (not real data)", elevation=demo.elevation)


def build_model(cfg: Config) -> DomainModel:
    if cfg.domain.kind == "demo":
        return demo_model(cfg)
    if cfg.domain.kind == "cmfd":
        from .real_domain import cmfd_model
        return cmfd_model(cfg)
    from .errors import ConfigError
    raise ConfigError("must be 'demo' or 'cmfd'", path=cfg.path, field="domain.kind",
                      value=cfg.domain.kind)


def physics_options(cfg: Config) -> PhysicsOptions:
    p = cfg.physics
    return PhysicsOptions(surface_exchange=p.surface_exchange, iz0tlnd=p.iz0tlnd,
                          thermal_conductivity=p.thermal_conductivity,
                          frozen_soil_hydraulics=p.frozen_soil_hydraulics,
                          legacy_quirks=p.legacy_quirks)


# --------------------------------------------------------------------------------------------
# Columns of one rank
# --------------------------------------------------------------------------------------------

@dataclass
class LocalColumns:
    """Parameters and state of the columns a rank owns."""

    index: np.ndarray          # global column indices (canonical order)
    rows: np.ndarray
    cols: np.ndarray
    layer_par: np.ndarray      # (n, nlay, nlpar)
    column_par: np.ndarray     # (n, ncpar)
    monthly: np.ndarray        # (n, nmon, 12)
    state: ColumnState
    labels: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.index.size


def build_local_columns(model: DomainModel, index: np.ndarray, cfg: Config,
                        parameter_sets: dict | None = None) -> LocalColumns:
    rows_all, cols_all = model.simulated.cell_rows_cols
    rows, cols = rows_all[index], cols_all[index]
    lps, cps, mos = [], [], []
    overrides = dict(cfg.parameters.column)
    layer_overrides = dict(cfg.parameters.layer)
    if parameter_sets:
        overrides.update(parameter_sets.get("column", {}))
        layer_overrides.update(parameter_sets.get("layer", {}))
    tables = Tables.load()    # read once, not per column
    if model.prepare is not None:
        model.prepare(rows, cols)
    for r, c in zip(rows, cols):
        spec = model.column_spec(int(r), int(c))
        spec.overrides = {**spec.overrides, **overrides}
        spec.layer_overrides = {**spec.layer_overrides, **layer_overrides}
        lp, cp = column_parameters(spec, tables)
        lps.append(lp)
        cps.append(cp)
        mos.append(model.monthly(int(r), int(c)))
    nlay = lps[0].shape[0] if lps else 0
    layer_par = np.array(lps).reshape(index.size, nlay, len(layout.LAYER_PARAMETERS))
    column_par = np.array(cps).reshape(index.size, len(layout.COLUMN_PARAMETERS))
    monthly = np.array(mos).reshape(index.size, len(layout.MONTHLY), 12)
    lats, lons = model.grid.lats[rows], model.grid.lons[cols]
    labels = [f"cell {i} at {lon:.2f}E {lat:.2f}N" for i, lon, lat in zip(index, lons, lats)]
    state = cold_start_state(layer_par, column_par, cfg.spinup.initial_moisture_fraction)
    return LocalColumns(index, rows, cols, layer_par, column_par, monthly, state, labels)


def cold_start_state(layer_par: np.ndarray, column_par: np.ndarray,
                     moisture_fraction: float) -> ColumnState:
    """Initial state before spin-up: the deep temperature in every layer, soil
    water a fixed fraction of porosity, split into liquid and ice at equilibrium."""
    from .kernel import _kernel

    n, nlay = layer_par.shape[:2]
    L = {name: layer_par[:, :, i] for i, name in enumerate(layout.LAYER_PARAMETERS)}
    C = {name: column_par[:, i] for i, name in enumerate(layout.COLUMN_PARAMETERS)}
    state = ColumnState.allocate(n, nlay)
    state.stc[:] = C["tbot"][:, None]
    state.smc[:] = moisture_fraction * L["smcmax"]
    free = _kernel.nt_supercooled_water(state.stc.ravel(), state.smc.ravel(), state.smc.ravel(),
                                        L["smcmax"].ravel(), L["bexp"].ravel(),
                                        L["psisat"].ravel())
    state.sh2o[:] = np.minimum(free.reshape(n, nlay), state.smc)
    values = {
        "skin_temperature": state.stc[:, 0], "canopy_water": 0.0, "snow_depth": 0.0,
        "snow_water": 0.0, "albedo": 0.2, "emissivity": 0.96,
        "z0": 0.5 * (C["z0min"] + C["z0max"]), "z0brd": 0.5 * (C["z0min"] + C["z0max"]),
        "ch": 1.0e-4, "cm": 1.0e-4, "q1": 0.0, "snow_age": 0.0, "ribb": 0.0,
    }
    for i, name in enumerate(layout.SURFACE_STATE):
        state.surface[:, i] = values[name]
    return state


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

def month_starts(year: int) -> list[np.datetime64]:
    return [np.datetime64(f"{year:04d}-{m:02d}-01T00:00", "s") for m in range(1, 13)] + \
           [np.datetime64(f"{year + 1:04d}-01-01T00:00", "s")]


class ForcingSource:
    """A provider restricted to a rank's cells, with an optional cache of whole months and
    an optional prefetch.

    With ``prefetch``, every provider read runs in one background thread, and
    :meth:`month` starts reading the month the caller says comes next while the
    caller runs the kernel on this one (the kernel releases the GIL).  Reads stay
    sequential and in the same order as without prefetch, so results are identical;
    an error of a prefetched month is raised when that month is asked for.
    """

    def __init__(self, provider: ForcingProvider, rows, cols, cache_years=(),
                 prefetch: bool = False):
        self.provider, self.rows, self.cols = provider, rows, cols
        self.cache_years = set(cache_years)
        self._cache: dict = {}
        self._pool = None
        if prefetch:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noahtibet-forcing")
        self._pending = None        # ((year, month), Future) of the month read ahead

    def clear_cache(self) -> None:
        self._cache.clear()
        self.cache_years = set()

    def _read(self, year: int, month: int):
        starts = month_starts(year)
        return self.provider.read(self.rows, self.cols, starts[month - 1], starts[month])

    def month(self, year: int, month: int, following: tuple[int, int] | None = None):
        """Forcing (times, values) of a calendar month; ``following``: the (year, month)
        the caller will ask for next (read ahead when prefetching)."""
        key = (year, month)
        if key in self._cache:
            result = self._cache[key]
        elif self._pool is None:
            result = self._read(year, month)
        else:
            pending, self._pending = self._pending, None
            if pending is not None and pending[0] == key:
                result = pending[1].result()          # raises the read's error, if any
            else:
                if pending is not None:               # a month not asked for after all
                    pending[1].exception()            # wait; its outcome does not matter
                result = self._pool.submit(self._read, year, month).result()
        if year in self.cache_years:
            self._cache[key] = result
        if self._pool is not None and following is not None and \
                tuple(following) not in self._cache:
            self._pending = (tuple(following), self._pool.submit(self._read, *following))
        return result

    def settle(self) -> None:
        """Wait until no read is in progress (before the caller uses netCDF/HDF5 itself:
        the libraries are not used from two threads at once)."""
        if self._pending is not None:
            self._pending[1].exception()

    def close(self) -> None:
        """Drop a read ahead (waiting for it) and stop the thread; a later :meth:`month`
        reads in the calling thread."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending[1].cancel():
            pending[1].exception()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# --------------------------------------------------------------------------------------------
# Restart files
# --------------------------------------------------------------------------------------------

def config_digest(cfg: Config) -> str:
    """Digest of everything that changes results (not the output directory)."""
    d = cfg.to_dict()
    d["output"] = {k: v for k, v in d["output"].items() if k == "points"}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_restart(path: Path, state: ColumnState, prev_tmax: np.ndarray | None, info: dict,
                  extra: dict | None = None) -> None:
    """Write the full state of all columns (rank 0) through a temporary file."""
    import netCDF4

    tmp = _atomic_target(path)
    try:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("column", state.ncol)
            nc.createDimension("layer", state.nlay)
            nc.createDimension("surface_variable", len(layout.SURFACE_STATE))
            for name, data in (("stc", state.stc), ("smc", state.smc), ("sh2o", state.sh2o)):
                nc.createVariable(name, "f8", ("column", "layer"))[:] = data
            nc.createVariable("surface", "f8", ("column", "surface_variable"))[:] = state.surface
            if prev_tmax is not None:
                nc.createVariable("previous_year_tmax", "f8", ("column", "layer"))[:] = prev_tmax
            for name, data in (extra or {}).items():
                data = np.asarray(data, dtype=np.float64)
                dims = ("column", "layer")[:data.ndim] if data.shape[:1] == (state.ncol,) else None
                if dims is None:
                    nc.createDimension(f"{name}_n", data.size)
                    dims = (f"{name}_n",)
                    data = data.ravel()
                nc.createVariable(name, "f8", dims)[:] = data
            nc.surface_variables = " ".join(layout.SURFACE_STATE)
            nc.restart_version = RESTART_VERSION
            nc.noahtibet_version = __version__
            nc.info_json = json.dumps(info, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def read_restart(path: Path) -> tuple[ColumnState, np.ndarray | None, dict, dict]:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        info = json.loads(nc.info_json)
        state = ColumnState(np.array(nc["stc"][:]), np.array(nc["smc"][:]), np.array(nc["sh2o"][:]),
                            np.array(nc["surface"][:]))
        prev = np.array(nc["previous_year_tmax"][:]) if "previous_year_tmax" in nc.variables else None
        extra = {k: np.array(v[:]) for k, v in nc.variables.items()
                 if k not in ("stc", "smc", "sh2o", "surface", "previous_year_tmax")}
    return state, prev, info, extra


def latest_restart(directory: Path) -> Path | None:
    """Newest complete restart: transient years after spin-up cycles."""
    if not directory.is_dir():
        return None
    transient = sorted(directory.glob("transient_*.nc"))
    if transient:
        return transient[-1]
    spinup = sorted(directory.glob("spinup_cycle_*.nc"))
    return spinup[-1] if spinup else None


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

class Progress:
    """One log line per unit of work, with rate and time left (rank 0 only)."""

    def __init__(self, what: str, total: int, comm):
        self.what, self.total, self.comm = what, total, comm
        self.t0 = time.perf_counter()
        self.done = 0

    def step(self, message: str) -> None:
        self.done += 1
        if self.comm.rank != 0:
            return
        elapsed = time.perf_counter() - self.t0
        left = elapsed / self.done * (self.total - self.done)
        log.info("%s %d/%d %s (%.1f s elapsed, ~%.0f s left)", self.what, self.done, self.total,
                 message, elapsed, left)


#: Annual water-balance variables of the annual files (m of water over the year).
WATER_BALANCE_NAMES = {
    "precipitation": "precipitation",
    "evapotranspiration": "evapotranspiration (dew negative)",
    "surface_runoff": "surface runoff",
    "drainage": "drainage at the bottom of the soil column",
    "water_clamped": "water created (negative: removed) by the legacy model's clamps",
    "water_storage_change": "change of soil, canopy and snow water over the year",
    "water_balance_residual": "storage change - (precipitation - evapotranspiration - runoff - "
                              "drainage + clamped): round-off when the model conserves water",
}
#: A cell-year whose |residual| exceeds this is logged as a warning [m].
WATER_RESIDUAL_WARNING_M = 1.0e-6


def water_balance(water: np.ndarray, storage_change: np.ndarray) -> dict:
    """Annual water-balance terms per cell from the kernel's sums (ncol, WATER_BALANCE)
    and the storage change (ncol,) [m]."""
    term = {n: water[:, i] for i, n in enumerate(layout.WATER_BALANCE)}
    inflow = (term["precipitation"] - term["evaporation"] - term["surface_runoff"]
              - term["drainage"] + term["water_clamped"])
    return {"precipitation": term["precipitation"], "evapotranspiration": term["evaporation"],
            "surface_runoff": term["surface_runoff"], "drainage": term["drainage"],
            "water_clamped": term["water_clamped"], "water_storage_change": storage_change,
            "water_balance_residual": storage_change - inflow}


def peak_memory_mb() -> float:
    """Peak resident memory of this process [MB]: VmHWM of /proc/self/status where there is
    one (Linux), else getrusage's ru_maxrss, which on Linux also counts the memory of the
    process image before an exec (e.g. a large parent that started this process)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class RunSummary:
    column_steps: int = 0
    kernel_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0         # the largest peak resident memory of a rank
    peak_memory_mb_by_rank: list = field(default_factory=list)   # rank 0 also writes the products
    spinup_cycles: int = 0
    unconverged_cells: list = field(default_factory=list)
    years: list = field(default_factory=list)
    permafrost_area_km2: dict = field(default_factory=dict)
    #: largest |water-balance residual| of any cell in any transient year [m]
    max_water_residual_m: float = 0.0


class Simulation:
    """A gridded run of one configuration on one communicator."""

    def __init__(self, cfg: Config, comm=None, model: DomainModel | None = None):
        self.cfg = cfg
        self.comm = comm or SerialComm()
        self.model = model or build_model(cfg)
        self.options = physics_options(cfg).as_array()
        self.dt = float(cfg.physics.timestep)
        self.out = Path(cfg.output.directory)
        self.restart_dir = self.out / "restart"
        self.annual_dir = self.out / "annual"
        self.ncol = self.model.ncol
        my = partition(self.ncol, self.comm.size, self.comm.rank)
        self.local = build_local_columns(self.model, my, cfg)
        self.summary = RunSummary()
        self.digest = config_digest(cfg)
        spin = cfg.spinup
        # the recycled period is read once and kept while more than one cycle needs it
        cache = cfg.forcing.cache_spinup and spin.cycles > 1
        self.forcing = ForcingSource(
            self.model.provider, self.local.rows, self.local.cols,
            cache_years=range(spin.start_year, spin.end_year + 1) if cache else (),
            prefetch=cfg.forcing.prefetch)
        self.point_cells = self._point_cells()
        self._cold = True        # no step run yet from the cold-start state
        self._prev_tmax = None   # annual maximum temperatures of the previous year

    # ---- helpers ---------------------------------------------------------------------------
    def _point_cells(self) -> dict:
        """Local column positions of the configured points (name -> position)."""
        out = {}
        if not self.cfg.output.points:
            return out
        rows_all, cols_all = self.model.simulated.cell_rows_cols
        for name, lon, lat in self.cfg.output.points:
            r, c = self.model.grid.index_of(lon, lat)
            hit = np.flatnonzero((rows_all == r) & (cols_all == c))
            if hit.size == 0:
                if self.comm.rank == 0:
                    log.warning("point %s (%.3f E, %.3f N) is not a simulated cell; skipped",
                                name, lon, lat)
                continue
            pos = np.flatnonzero(self.local.index == hit[0])
            if pos.size:
                out[name] = int(pos[0])
        return out

    def _run_year(self, year: int, diag: AnnualDiagnostics, daily: dict | None = None,
                  next_year: int | None = None) -> None:
        """Advance the local columns through one calendar year (``next_year``: the year
        run after this one, if any, whose January can be read ahead)."""
        loc = self.local
        for month in range(1, 13):
            following = (year, month + 1) if month < 12 else \
                ((next_year, 1) if next_year is not None else None)
            times, forcing = self.forcing.month(year, month, following)
            if self._cold:   # the legacy driver's Q1 = Q2 on the very first step
                qi = layout.index(layout.SURFACE_STATE, "q1")
                loc.state.surface[:, qi] = forcing[0, layout.index(layout.FORCING,
                                                                  "specific_humidity"), :]
                self._cold = False
            prev, nxt, w = month_interpolation(times)
            calendar = Calendar(prev, nxt, w)
            t0 = time.perf_counter()
            if daily is not None and self.point_cells:
                self._run_with_points(times, forcing, calendar, diag, daily)
            else:
                run_columns(forcing, calendar, loc.monthly, loc.layer_par, loc.column_par, loc.state,
                            self.dt, self.options, diag, labels=loc.labels)
            self.summary.kernel_seconds += time.perf_counter() - t0
            self.summary.column_steps += forcing.shape[0] * loc.n
            # released before the next month is read: one month of forcing at a time
            del times, forcing, calendar

    def _run_with_points(self, times, forcing, calendar, diag, daily):
        """Run point columns in record mode and the others without; results identical."""
        loc = self.local
        pts = np.array(sorted(set(self.point_cells.values())))
        rest = np.setdiff1d(np.arange(loc.n), pts)
        for idx, record in ((rest, False), (pts, True)):
            if idx.size == 0:
                continue
            sub = ColumnState(loc.state.stc[idx], loc.state.smc[idx], loc.state.sh2o[idx],
                              loc.state.surface[idx])
            sdiag = AnnualDiagnostics(diag.tmin[idx], diag.tmax[idx], diag.tsum[idx],
                                      diag.thaw_depth_max[idx], diag.count[idx], diag.water[idx])
            rec = run_columns(np.ascontiguousarray(forcing[:, :, idx]), calendar, loc.monthly[idx],
                              loc.layer_par[idx], loc.column_par[idx], sub, self.dt, self.options,
                              sdiag, record=record, labels=[loc.labels[i] for i in idx])
            loc.state.stc[idx], loc.state.smc[idx], loc.state.sh2o[idx] = sub.stc, sub.smc, sub.sh2o
            loc.state.surface[idx] = sub.surface
            diag.tmin[idx], diag.tmax[idx], diag.tsum[idx] = sdiag.tmin, sdiag.tmax, sdiag.tsum
            diag.thaw_depth_max[idx], diag.count[idx] = sdiag.thaw_depth_max, sdiag.count
            diag.water[idx] = sdiag.water
            if record:
                # a step belongs to the day in which it ends (a step ending at 00:00 closes
                # the previous day), so a day is the mean of its 8 three-hour steps
                days = (times - np.timedelta64(1, "s")).astype("datetime64[D]")
                for name, pos in self.point_cells.items():
                    j = int(np.flatnonzero(pts == pos)[0])
                    for d in np.unique(days):
                        sel = days == d
                        daily.setdefault(name, []).append((d, rec.stc[sel, j, :].mean(axis=0)))

    def _gather_state(self) -> ColumnState | None:
        s = self.local.state
        parts = [gather_columns(self.comm, a, self.ncol) for a in (s.stc, s.smc, s.sh2o, s.surface)]
        return ColumnState(*parts) if self.comm.rank == 0 else None

    def _scatter_state(self, state: ColumnState | None) -> None:
        state = self.comm.bcast(state, root=0)
        idx = self.local.index
        self.local.state = ColumnState(state.stc[idx].copy(), state.smc[idx].copy(),
                                       state.sh2o[idx].copy(), state.surface[idx].copy())

    def _gather(self, a):
        return gather_columns(self.comm, a, self.ncol)

    # ---- stages ------------------------------------------------------------------------------
    def run(self, resume: bool = False, stages: tuple = ("spinup", "transient")) -> RunSummary:
        """Run the given stages; with ``resume`` continue from the newest restart."""
        try:
            return self._run(resume, stages)
        finally:
            self.forcing.close()

    def _run(self, resume: bool, stages: tuple) -> RunSummary:
        with abort_on_error(self.comm):
            t0 = time.perf_counter()
            start = self._resume_point() if resume else {"stage": "cold"}
            if start["stage"] in ("cold", "spinup"):
                finished = start["stage"] == "spinup" and (
                    start.get("converged") or int(start["cycle"]) >= self.cfg.spinup.cycles)
                if "spinup" in stages:
                    self.spinup(start)
                elif not finished and not (start["stage"] == "cold"
                                           and self.cfg.spinup.cycles == 0):
                    raise RuntimeError(f"no finished spin-up in {self.restart_dir}: run the "
                                       "spin-up stage first (noahtibet spinup CONFIG)")
                start = {"stage": "transient_start"}
            if "transient" in stages:
                self.transient(start)
            self.summary.wall_seconds = time.perf_counter() - t0
            peak = peak_memory_mb()
            self.summary.peak_memory_mb_by_rank = self.comm.allgather(peak)
            self.summary.peak_memory_mb = max(self.summary.peak_memory_mb_by_rank)
            steps = self.comm.allreduce(self.summary.column_steps, op="sum")
            if self.comm.rank == 0:
                rate = steps / max(self.summary.wall_seconds, 1e-9)
                log.info("done: %d column-steps in %.1f s on %d rank(s): %.3g column-steps/s; "
                         "peak memory per rank %.0f MB", steps, self.summary.wall_seconds,
                         self.comm.size, rate, self.summary.peak_memory_mb)
                if self.summary.years:
                    log.info("water balance: largest |residual| of a cell-year %.2g m",
                             self.summary.max_water_residual_m)
            self.summary.column_steps = steps
        return self.summary

    def _resume_point(self) -> dict:
        path = latest_restart(self.restart_dir) if self.comm.rank == 0 else None
        payload = None
        if self.comm.rank == 0 and path is not None:
            state, prev, info, extra = read_restart(path)
            if info.get("config_digest") != self.digest:
                raise RuntimeError(f"{path}: restart was written with a different configuration "
                                   f"(digest {info.get('config_digest')} != {self.digest}); "
                                   "refusing to resume")
            payload = (state, prev, info, extra)
            log.info("resuming from %s", path)
        payload = self.comm.bcast(payload, root=0)
        if payload is None:
            return {"stage": "cold"}
        state, prev, info, extra = payload
        self._scatter_state(state)
        self._cold = False
        self._prev_tmax = None if prev is None else prev[self.local.index]
        info = dict(info)
        info["extra"] = extra
        return info

    def spinup(self, start: dict) -> None:
        cfg = self.cfg.spinup
        years = list(range(cfg.start_year, cfg.end_year + 1))
        first_cycle = 1
        previous_mean = None
        history = []
        if start["stage"] == "spinup":
            first_cycle = int(start["cycle"]) + 1
            extra = start["extra"]
            previous_mean = extra.get("cycle_mean_stc")
            if previous_mean is not None:
                previous_mean = previous_mean[self.local.index]
            history = list(start.get("history", []))
            if start.get("converged"):
                first_cycle = cfg.cycles + 1
        progress = Progress("spin-up cycle", cfg.cycles, self.comm)
        progress.done = first_cycle - 1
        for cycle in range(first_cycle, cfg.cycles + 1):
            tsum = np.zeros_like(self.local.state.stc)
            count = 0
            for i, year in enumerate(years):
                diag = AnnualDiagnostics.empty(self.local.n, self.local.state.nlay)
                nxt = years[i + 1] if i + 1 < len(years) else \
                    (years[0] if cycle < cfg.cycles else None)
                self._run_year(year, diag, next_year=nxt)
                tsum += diag.tsum
                count = count + diag.count
            # the last spin-up year is the "previous year" of the first transient year
            self._prev_tmax = diag.tmax.copy()
            mean = tsum / np.maximum(count, 1)[:, None]
            change = (np.full(self.local.n, np.inf) if previous_mean is None
                      else np.abs(mean - previous_mean).max(axis=1))
            previous_mean = mean
            all_change = self._gather(change)
            converged = False
            if self.comm.rank == 0:
                finite = all_change[np.isfinite(all_change)]
                stats = {"cycle": cycle, "max_change": float(finite.max()) if finite.size else None,
                         "mean_change": float(finite.mean()) if finite.size else None,
                         "cells_above_tolerance": int(np.sum(all_change >= cfg.tolerance))
                         if cfg.tolerance > 0 else None}
                history.append(stats)
                converged = cfg.tolerance > 0 and bool(np.all(all_change < cfg.tolerance))
            converged = self.comm.bcast(converged, root=0)
            self.forcing.settle()
            state = self._gather_state()
            mean_all = self._gather(mean)
            prev_all = self._gather(self._prev_tmax)
            msg = ""
            if self.comm.rank == 0:
                info = {"stage": "spinup", "cycle": cycle, "config_digest": self.digest,
                        "history": history, "converged": converged}
                write_restart(self.restart_dir / f"spinup_cycle_{cycle:04d}.nc", state, prev_all,
                              info, extra={"cycle_mean_stc": mean_all, "cycle_change": all_change})
                if history[-1]["max_change"] is not None:
                    msg = f"(largest change of a cell {history[-1]['max_change']:.4f} K)"
            progress.step(msg)
            self.summary.spinup_cycles = cycle
            if converged:
                if self.comm.rank == 0:
                    log.info("spin-up converged after %d cycles (tolerance %g K)", cycle,
                             cfg.tolerance)
                break
        self.forcing.clear_cache()   # the transient run reads each month once
        self.forcing.settle()
        if self.comm.rank == 0:
            self._write_spinup_report(history)

    def _write_spinup_report(self, history) -> None:
        cfg = self.cfg.spinup
        last = latest_restart(self.restart_dir)
        unconverged = []
        if cfg.tolerance > 0 and last is not None and "spinup" in last.name:
            _, _, _, extra = read_restart(last)
            change = extra.get("cycle_change")
            if change is not None:
                rows, cols = self.model.simulated.cell_rows_cols
                for i in np.flatnonzero(~(change < cfg.tolerance)):
                    unconverged.append((int(i), float(self.model.grid.lons[cols[i]]),
                                        float(self.model.grid.lats[rows[i]]), float(change[i])))
        self.summary.unconverged_cells = unconverged
        path = self.out / "spinup_report.json"
        tmp = _atomic_target(path)
        tmp.write_text(json.dumps({"cycles": history, "tolerance": cfg.tolerance,
                                   "unconverged_cells": [
                                       {"column": i, "lon": lon, "lat": lat, "change_K": ch}
                                       for i, lon, lat, ch in unconverged]}, indent=1))
        os.replace(tmp, path)
        if unconverged:
            log.warning("%d cells did not converge within the spin-up (see %s)",
                        len(unconverged), path)

    def transient(self, start: dict) -> None:
        cfg = self.cfg.run
        first = cfg.start_year
        prev_tmax = self._prev_tmax
        if start["stage"] == "transient":
            first = int(start["year"]) + 1
        years = list(range(first, cfg.end_year + 1))
        progress = Progress("year", cfg.end_year - cfg.start_year + 1, self.comm)
        progress.done = first - cfg.start_year
        for year in years:
            t0 = time.perf_counter()
            diag = AnnualDiagnostics.empty(self.local.n, self.local.state.nlay)
            daily: dict = {}
            storage = self._water_storage()
            self._run_year(year, diag, daily=daily,
                           next_year=year + 1 if year < cfg.end_year else None)
            self.forcing.settle()
            self._year_outputs(year, diag, prev_tmax, daily, self._water_storage() - storage)
            prev_tmax = diag.tmax.copy()
            state = self._gather_state()
            prev_all = self._gather(prev_tmax)
            if self.comm.rank == 0:
                info = {"stage": "transient", "year": year, "config_digest": self.digest}
                write_restart(self.restart_dir / f"transient_{year:04d}.nc", state, prev_all, info)
            progress.step(f"({year}, {time.perf_counter() - t0:.1f} s)")
        self._prev_tmax = prev_tmax
        if self.comm.rank == 0:
            self._write_netcdf_product()

    # ---- the classify stage --------------------------------------------------------------------
    def classify_products(self) -> list[int]:
        """Re-make the yearly classes and products from the annual files (rank 0 writes).

        Classes come from each year's per-layer temperature extremes and the previous
        year's maxima (the first year keeps the class stored at run time, which used
        the last spin-up year); the current masks and product settings apply.  Returns
        the years written.
        """
        import netCDF4

        if self.comm.rank != 0:
            return []
        files = sorted(self.annual_dir.glob("annual_*.nc"))
        if not files:
            raise RuntimeError(f"no annual files in {self.annual_dir}: run the transient stage first")
        prev_tmax, written = None, []
        for f in files:
            with netCDF4.Dataset(f) as nc:
                nc.set_auto_mask(False)
                year = int(nc.year)
                if nc.config_digest != self.digest:
                    raise RuntimeError(f"{f}: written with a different configuration "
                                       f"(digest {nc.config_digest} != {self.digest})")
                tmin, tmax = np.array(nc["tmin"][:]), np.array(nc["tmax"][:])
                stored = np.array(nc["frozen_ground_class"][:])
            grid_classes = stored.copy()
            if prev_tmax is not None:
                grid_classes[self.model.simulated.active] = classify(tmin, tmax, prev_tmax)
            grid_classes[self.model.static_nodata | self.model.lake_mask(year)] = NODATA
            prev_tmax = tmax
            if self.cfg.output.geotiff and year >= self.cfg.run.product_start_year:
                from .products import write_class_geotiff
                kwargs = {"cell_size_m": self.cfg.output.cell_size_m} \
                    if self.cfg.output.cell_size_m > 0 else {}
                write_class_geotiff(grid_classes, self.model.grid, year,
                                    self.out / "products" / f"noahtibet_frozen_ground_{year}.tif",
                                    provenance=self._provenance(), **kwargs)
            written.append(year)
        self._write_netcdf_product()
        return written

    # ---- outputs -----------------------------------------------------------------------------
    def _water_storage(self) -> np.ndarray:
        """Water held by each local column [m]: soil water (total, liquid + ice) of every
        layer, canopy water and snow water equivalent (summed layer by layer, so a column's
        value does not depend on the other columns of the rank)."""
        loc = self.local
        dz = loc.layer_par[:, :, layout.index(layout.LAYER_PARAMETERS, "thickness")]
        total = loc.state.smc[:, 0] * dz[:, 0]
        for k in range(1, dz.shape[1]):
            total = total + loc.state.smc[:, k] * dz[:, k]
        surface = loc.state.surface
        return (total + surface[:, layout.index(layout.SURFACE_STATE, "canopy_water")]
                + surface[:, layout.index(layout.SURFACE_STATE, "snow_water")])

    def _year_outputs(self, year, diag, prev_tmax, daily, storage_change) -> None:
        tmin, tmax, tsum = self._gather(diag.tmin), self._gather(diag.tmax), self._gather(diag.tsum)
        count, thaw = self._gather(diag.count), self._gather(diag.thaw_depth_max)
        prev = self._gather(prev_tmax) if prev_tmax is not None else None
        water, change = self._gather(diag.water), self._gather(storage_change)
        all_daily = self.comm.gather(daily, root=0)
        if self.comm.rank != 0:
            return
        balance = water_balance(water, change)
        worst = int(np.argmax(np.abs(balance["water_balance_residual"])))
        residual = float(abs(balance["water_balance_residual"][worst]))
        self.summary.max_water_residual_m = max(self.summary.max_water_residual_m, residual)
        if residual > WATER_RESIDUAL_WARNING_M:
            rows, cols = self.model.simulated.cell_rows_cols
            log.warning("%d: the water balance of cell %d (%.2f E %.2f N) does not close: "
                        "residual %.3g m (storage change minus precipitation, evaporation, "
                        "runoff and clamps)", year, worst, self.model.grid.lons[cols[worst]],
                        self.model.grid.lats[rows[worst]], residual)
        tmean = tsum / np.maximum(count, 1)[:, None]
        classes_cells = classify(tmin, tmax, prev)
        grid_classes = np.full(self.model.grid.shape, NODATA, dtype=np.uint8)
        grid_classes[self.model.simulated.active] = classes_cells
        grid_classes[self.model.static_nodata | self.model.lake_mask(year)] = NODATA
        area = float(np.sum(np.where(grid_classes == PERMAFROST,
                                     self.model.grid.cell_area_km2(), 0.0)))
        self.summary.years.append(year)
        self.summary.permafrost_area_km2[year] = area
        self._write_annual(year, tmin, tmax, tmean, thaw, grid_classes, balance)
        merged = {}
        for part in all_daily:
            merged.update(part)
        if merged:
            self._write_points(year, merged)
        if self.cfg.output.geotiff and year >= self.cfg.run.product_start_year:
            from .products import write_class_geotiff
            kwargs = {}
            if self.cfg.output.cell_size_m > 0:
                kwargs["cell_size_m"] = self.cfg.output.cell_size_m
            write_class_geotiff(grid_classes, self.model.grid, year,
                                self.out / "products" / f"noahtibet_frozen_ground_{year}.tif",
                                provenance=self._provenance(), **kwargs)

    def _provenance(self) -> dict:
        return {"configuration": json.dumps(self.cfg.to_dict(), sort_keys=True),
                "parameter_set": json.dumps({"column": self.cfg.parameters.column,
                                             "layer": self.cfg.parameters.layer}, sort_keys=True),
                "domain": self.model.description, "config_digest": self.digest}

    def _write_annual(self, year, tmin, tmax, tmean, thaw, grid_classes, balance=None) -> None:
        import netCDF4

        path = self.annual_dir / f"annual_{year:04d}.nc"
        tmp = _atomic_target(path)
        rows, cols = self.model.simulated.cell_rows_cols
        try:
            with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                nc.createDimension("cell", tmin.shape[0])
                nc.createDimension("layer", tmin.shape[1])
                nc.createDimension("lat", self.model.grid.nlat)
                nc.createDimension("lon", self.model.grid.nlon)
                for name, data, units, long_name in (
                        ("tmin", tmin, "K", "annual minimum soil temperature"),
                        ("tmax", tmax, "K", "annual maximum soil temperature"),
                        ("tmean", tmean, "K", "annual mean soil temperature")):
                    v = nc.createVariable(name, "f8", ("cell", "layer"))
                    v[:] = data
                    v.units, v.long_name = units, long_name
                v = nc.createVariable("max_thaw_depth", "f8", ("cell",))
                v[:] = thaw
                v.units, v.long_name = "m", "maximum depth of the 0 C isotherm below a thawed surface"
                for name, data in (balance or {}).items():
                    v = nc.createVariable(name, "f8", ("cell",))
                    v[:] = data
                    v.units, v.long_name = "m", WATER_BALANCE_NAMES[name]
                nc.createVariable("cell_row", "i4", ("cell",))[:] = rows
                nc.createVariable("cell_col", "i4", ("cell",))[:] = cols
                v = nc.createVariable("frozen_ground_class", "u1", ("lat", "lon"))
                v[:] = grid_classes
                nc.year = year
                nc.config_digest = self.digest
            os.replace(tmp, path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise

    def _write_points(self, year, daily) -> None:
        import netCDF4

        path = self.out / "points" / f"points_{year:04d}.nc"
        tmp = _atomic_target(path)
        names = sorted(daily)
        days = np.array([d for d, _ in daily[names[0]]])
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("point", len(names))
            nc.createDimension("day", days.size)
            nc.createDimension("layer", daily[names[0]][0][1].size)
            v = nc.createVariable("day", "i4", ("day",))
            v[:] = (days - np.datetime64("1970-01-01")).astype(int)
            v.units = "days since 1970-01-01"
            v = nc.createVariable("soil_temperature", "f8", ("point", "day", "layer"))
            v[:] = np.array([[t for _, t in daily[n]] for n in names])
            v.units, v.long_name = "K", "daily mean soil temperature"
            nc.point_names = " ".join(names)
        os.replace(tmp, path)

    def _write_netcdf_product(self) -> None:
        if not self.cfg.output.netcdf:
            return
        import netCDF4

        from .products import write_class_netcdf

        years = [y for y in range(self.cfg.run.product_start_year, self.cfg.run.end_year + 1)
                 if (self.annual_dir / f"annual_{y:04d}.nc").exists()]
        if not years:
            return
        stack = []
        for y in years:
            with netCDF4.Dataset(self.annual_dir / f"annual_{y:04d}.nc") as nc:
                stack.append(np.array(nc["frozen_ground_class"][:]))
        write_class_netcdf(np.array(stack), years, self.model.grid,
                           self.out / "products" / "noahtibet_frozen_ground.nc",
                           provenance=self._provenance())
