"""Columns that are (parameter set, cell) pairs: many parameter sets in one kernel pass.

A calibration batch or an ensemble runs the same cells with several parameter
sets.  A rank holds a list of pairs; :class:`CellBlock` holds the default
kernel arrays, the classes and a forcing source of the distinct cells of those
pairs, and :class:`PairColumns` the per-pair arrays (the set's values applied to
the cell's defaults by :meth:`ParameterSpace.apply`) and states.  Every month
the forcing of the distinct cells is read **once** and fanned out to the pairs
(``forcing[:, :, cell_of_pair]``), then one kernel call advances all pairs.

The kernel treats columns independently and gives bit-identical results for a
column in any batch, so a pair's result depends neither on the other pairs nor
on the number of ranks.

A parameter set that makes a column fail in the kernel (non-finite state, ...)
is dropped: the month is re-run from a copy of the state without the pairs of
that set, and the set is reported as failed.  Its failure is recorded as
(month number since the start, global pair id, message): the earliest month,
then the lowest pair, is what one rank holding all pairs would report first, so
ranks merge their failures by taking the smallest key and every rank count
reports the same failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import layout
from ..kernel import AnnualDiagnostics, Calendar, ColumnState, KernelError, run_columns
from ..legacy_forcing import month_interpolation
from ..simulation import ForcingSource, build_local_columns, cold_start_state
from .space import ColumnClasses, ParameterSpace

log = logging.getLogger("noahtibet")


class CellBlock:
    """Default kernel arrays, classes and forcing of a set of simulated cells (one rank)."""

    def __init__(self, cfg, model, cells: np.ndarray, cache_years=()):
        self.cells = np.asarray(cells, dtype=np.int64)
        if self.cells.size == 0:     # a rank without work
            rows, cols = model.simulated.cell_rows_cols
            nlay = len(model.column_spec(int(rows[0]), int(cols[0])).layer_thickness) \
                if rows.size else 0
            self.base, self.classes = _EmptyBase(nlay), None
            self.forcing = ForcingSource(model.provider, rows[:0], cols[:0])   # never read
            self.lons = self.lats = np.zeros(0)
            return
        self.base = build_local_columns(model, self.cells, cfg)
        specs = [model.column_spec(int(r), int(c)) for r, c in zip(self.base.rows,
                                                                   self.base.cols)]
        self.classes = ColumnClasses.from_specs(specs) if specs else None
        self.forcing = ForcingSource(model.provider, self.base.rows, self.base.cols,
                                     cache_years=cache_years)
        self.lons = model.grid.lons[self.base.cols]
        self.lats = model.grid.lats[self.base.rows]

    @property
    def n(self) -> int:
        return self.cells.size


class _EmptyBase:
    """The default arrays of no cell (a rank without work), with the right shapes."""

    def __init__(self, nlay: int):
        self.layer_par = np.zeros((0, nlay, len(layout.LAYER_PARAMETERS)))
        self.column_par = np.zeros((0, len(layout.COLUMN_PARAMETERS)))
        self.monthly = np.zeros((0, len(layout.MONTHLY), 12))
        self.labels: list = []


@dataclass
class PairColumns:
    """Pairs (parameter set, cell) of one rank, with their arrays and state."""

    pair: np.ndarray          # global pair ids (any order the caller chooses)
    set_index: np.ndarray     # parameter set of each pair
    cell_pos: np.ndarray      # position of its cell in the CellBlock
    layer_par: np.ndarray
    column_par: np.ndarray
    monthly: np.ndarray
    labels: list
    state: ColumnState | None = None
    prev_tmax: np.ndarray | None = None
    cold: bool = True
    months: int = 0                               # months run since the start
    failed: dict = field(default_factory=dict)    # set index -> (month, pair, message)

    @property
    def n(self) -> int:
        return self.pair.size

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the pairs where ``mask`` is True."""
        for name in ("pair", "set_index", "cell_pos", "layer_par", "column_par", "monthly",
                     "prev_tmax"):
            a = getattr(self, name)
            if a is not None:
                setattr(self, name, a[mask])
        self.labels = [lab for lab, k in zip(self.labels, mask) if k]
        if self.state is not None:
            self.state = take_state(self.state, mask)


def take_state(state: ColumnState, idx) -> ColumnState:
    """Copy of the state of the columns ``idx``."""
    return ColumnState(state.stc[idx].copy(), state.smc[idx].copy(), state.sh2o[idx].copy(),
                       state.surface[idx].copy())


def _take_diag(d: AnnualDiagnostics, idx) -> AnnualDiagnostics:
    return AnnualDiagnostics(d.tmin[idx].copy(), d.tmax[idx].copy(), d.tsum[idx].copy(),
                             d.thaw_depth_max[idx].copy(), d.count[idx].copy())


def build_pairs(block: CellBlock, space: ParameterSpace, sets: list, pair: np.ndarray,
                set_index: np.ndarray, cell_pos: np.ndarray, set_labels=None) -> PairColumns:
    """Kernel arrays of the pairs: set ``set_index[i]`` applied to cell ``cell_pos[i]``."""
    n = pair.size
    base = block.base
    nlay = base.layer_par.shape[1]
    lp = np.empty((n, nlay, len(layout.LAYER_PARAMETERS)))
    cp = np.empty((n, len(layout.COLUMN_PARAMETERS)))
    for k in np.unique(set_index):
        sel = np.flatnonzero(set_index == k)
        cells = cell_pos[sel]
        lp[sel], cp[sel] = space.apply(sets[int(k)], base.layer_par[cells],
                                       base.column_par[cells], block.classes.take(cells))
    monthly = base.monthly[cell_pos] if n else np.empty((0, len(layout.MONTHLY), 12))
    names = set_labels or [f"set {k}" for k in range(len(sets))]
    labels = [f"{names[int(k)]}, {base.labels[int(c)]}" for k, c in zip(set_index, cell_pos)]
    return PairColumns(pair, set_index, cell_pos, lp, cp, monthly, labels)


def start_pairs(pc: PairColumns, protocol, moisture_fraction: float,
                state: ColumnState | None = None, prev_tmax: np.ndarray | None = None) -> None:
    """The state every pair starts from under ``protocol`` (:class:`settings.Protocol`).

    Cold start: from the pair's own parameters.  Otherwise from the given per-cell
    state (indexed by ``cell_pos``), the default run's; total soil moisture above
    the pair's porosity is set to the porosity and liquid water to at most the
    total, so a smaller calibrated porosity starts consistent.
    """
    pc.months = 0
    if protocol.start == "cold":
        pc.state = cold_start_state(pc.layer_par, pc.column_par, moisture_fraction) if pc.n \
            else ColumnState.allocate(0, pc.layer_par.shape[1])
        pc.cold, pc.prev_tmax = True, None
        return
    if state is None:
        raise ValueError(f"protocol {protocol.name} starts from the default run's state")
    s = take_state(state, pc.cell_pos)
    smcmax = pc.layer_par[:, :, layout.index(layout.LAYER_PARAMETERS, "smcmax")]
    np.minimum(s.smc, smcmax, out=s.smc)
    np.minimum(s.sh2o, s.smc, out=s.sh2o)
    pc.state, pc.cold = s, False
    pc.prev_tmax = None if prev_tmax is None else prev_tmax[pc.cell_pos].copy()


def run_spinup(block: CellBlock, pc: PairColumns, protocol, dt: float, options: np.ndarray,
               first_cycle: int = 1, on_failure: str = "drop", after_cycle=None) -> int:
    """Cycles ``first_cycle .. protocol.cycles`` over the spin-up years; returns pair-years.

    After each cycle the last year's maxima become the previous-year maxima and
    ``after_cycle(cycle)`` is called (restarts of the ensemble).
    """
    pair_years = 0
    for cycle in range(first_cycle, protocol.cycles + 1):
        for year in protocol.spinup_years:
            diag = run_year(block, pc, year, dt, options, on_failure)
            pair_years += pc.n
        pc.prev_tmax = diag.tmax.copy()
        if after_cycle is not None:
            after_cycle(cycle)
    return pair_years


def run_year(block: CellBlock, pc: PairColumns, year: int, dt: float, options: np.ndarray,
             on_failure: str = "drop") -> AnnualDiagnostics:
    """Advance every pair through one calendar year; return its diagnostics.

    ``on_failure``: ``"drop"`` removes the parameter set of a failing column (its
    message kept in ``pc.failed``) and repeats the month without it; ``"raise"``
    re-raises the kernel's error.
    """
    diag = AnnualDiagnostics.empty(pc.n, pc.layer_par.shape[1])
    for month in range(1, 13):
        pc.months += 1
        if pc.n == 0:
            continue
        times, forcing = block.forcing.month(year, month)
        calendar = Calendar(*month_interpolation(times))
        while pc.n:
            f = np.ascontiguousarray(forcing[:, :, pc.cell_pos])
            if on_failure == "drop":     # a copy to repeat the month without a failing set
                saved_state, saved_diag = pc.state.copy(), _take_diag(diag, slice(None))
            if pc.cold:   # the legacy driver's Q1 = Q2 on the very first step
                qi = layout.index(layout.SURFACE_STATE, "q1")
                pc.state.surface[:, qi] = f[0, layout.index(layout.FORCING, "specific_humidity")]
            try:
                run_columns(f, calendar, pc.monthly, pc.layer_par, pc.column_par, pc.state, dt,
                            options, diag, labels=pc.labels)
            except KernelError as exc:
                if on_failure == "raise":
                    raise
                bad = int(pc.set_index[exc.column])
                what = layout.STATUS.get(exc.code, f"status {exc.code}")
                message = (f"{pc.labels[exc.column]} failed in {year}-{month:02d} at step "
                           f"{exc.step}: {what}")
                pc.failed[bad] = (pc.months, int(pc.pair[exc.column]), message)
                log.info("parameter set %d dropped: %s", bad, message)
                keep = pc.set_index != bad
                pc.state = saved_state
                pc.keep(keep)
                diag = _take_diag(saved_diag, keep)
                continue
            pc.cold = False
            break
    return diag


def merge_failures(parts) -> dict:
    """Failures of several ranks (dicts set -> (month, pair, message)): the earliest per set."""
    merged: dict = {}
    for part in parts:
        for k, rec in part.items():
            if k not in merged or tuple(rec[:2]) < tuple(merged[k][:2]):
                merged[k] = rec
    return merged
