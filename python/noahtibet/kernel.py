"""Python side of the column kernel: state, diagnostics and one call that
advances a batch of columns over many steps.

Array conventions (NumPy, C order; the Fortran sees the reversed shapes
without any copy):

* forcing ``(nstep, nforc, ncol)`` with variables in :data:`layout.FORCING`;
* layer parameters ``(ncol, nlay, nlpar)``, column parameters ``(ncol, ncpar)``,
  monthly climatologies ``(ncol, nmon, 12)``;
* soil state ``(ncol, nlay)``, surface state ``(ncol, nsst)``;
* records ``(nstep, ncol, nlay)`` and ``(nstep, ncol, nout)``.

There is no Python work per time step: one call runs every step in Fortran.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layout
from ._dispatch import SMALL_BATCH as _SMALL_BATCH
from ._dispatch import load as _load_kernel
from ._dispatch import load_small as _load_kernel_small

#: the compiled kernel in use: ``baseline``, ``x86-64-v3`` or ``x86-64-v4`` (see _dispatch)
KERNEL_VARIANT, _kernel = _load_kernel()

_SIZES = list(_kernel.nt_layout_sizes())
_EXPECTED = [len(layout.FORCING), len(layout.LAYER_PARAMETERS), len(layout.COLUMN_PARAMETERS),
             len(layout.MONTHLY), len(layout.SURFACE_STATE), len(layout.OUTPUTS),
             len(layout.OPTIONS), len(layout.WATER_BALANCE)]
if _SIZES != _EXPECTED:  # pragma: no cover - a build/source mismatch
    raise ImportError(f"noahtibet._kernel was built with layout sizes {_SIZES}, "
                      f"the Python package expects {_EXPECTED}: rebuild the package")


class KernelError(RuntimeError):
    """A column failed inside the kernel (non-finite state, impossible snow, ...)."""

    def __init__(self, column: int, step: int, code: int, label: str = ""):
        self.column, self.step, self.code = column, step, code
        what = layout.STATUS.get(code, f"status {code}")
        where = f"column {column}" + (f" ({label})" if label else "")
        super().__init__(f"{where} failed at step {step}: {what}")


@dataclass
class ColumnState:
    """Prognostic state of a batch of columns (arrays are updated in place)."""

    stc: np.ndarray     # (ncol, nlay) soil temperature, K
    smc: np.ndarray     # (ncol, nlay) total soil moisture, m3 m-3
    sh2o: np.ndarray    # (ncol, nlay) liquid soil moisture, m3 m-3
    surface: np.ndarray  # (ncol, nsst) rows in layout.SURFACE_STATE

    @classmethod
    def allocate(cls, ncol: int, nlay: int) -> "ColumnState":
        return cls(np.zeros((ncol, nlay)), np.zeros((ncol, nlay)), np.zeros((ncol, nlay)),
                   np.zeros((ncol, len(layout.SURFACE_STATE))))

    @property
    def ncol(self) -> int:
        return self.stc.shape[0]

    @property
    def nlay(self) -> int:
        return self.stc.shape[1]

    def surface_value(self, name: str) -> np.ndarray:
        return self.surface[:, layout.index(layout.SURFACE_STATE, name)]

    def copy(self) -> "ColumnState":
        return ColumnState(self.stc.copy(), self.smc.copy(), self.sh2o.copy(),
                           self.surface.copy())


@dataclass
class AnnualDiagnostics:
    """Accumulated soil-temperature statistics and water-balance sums (reset by the
    caller, e.g. yearly)."""

    tmin: np.ndarray    # (ncol, nlay) K
    tmax: np.ndarray    # (ncol, nlay) K
    tsum: np.ndarray    # (ncol, nlay) K summed over steps
    thaw_depth_max: np.ndarray  # (ncol,) m
    count: np.ndarray   # (ncol,) number of steps accumulated
    #: (ncol, len(layout.WATER_BALANCE)) m of water summed over the steps; None: not kept
    water: np.ndarray | None = None

    @classmethod
    def empty(cls, ncol: int, nlay: int) -> "AnnualDiagnostics":
        return cls(np.full((ncol, nlay), np.inf), np.full((ncol, nlay), -np.inf),
                   np.zeros((ncol, nlay)), np.zeros(ncol), np.zeros(ncol, dtype=np.int32),
                   np.zeros((ncol, len(layout.WATER_BALANCE))))

    def water_sum(self, name: str) -> np.ndarray:
        """(ncol,) sum of one water-balance term of :data:`layout.WATER_BALANCE` [m]."""
        return self.water[:, layout.index(layout.WATER_BALANCE, name)]

    @property
    def tmean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tsum / self.count[:, None]


@dataclass
class Records:
    """Every step's state and fluxes (record mode)."""

    stc: np.ndarray     # (nstep, ncol, nlay)
    smc: np.ndarray
    sh2o: np.ndarray
    out: np.ndarray     # (nstep, ncol, nout) rows in layout.OUTPUTS

    def output(self, name: str) -> np.ndarray:
        """(nstep, ncol) series of one output of :data:`layout.OUTPUTS`."""
        return self.out[:, :, layout.index(layout.OUTPUTS, name)]


@dataclass
class Calendar:
    """Per-step interpolation of monthly climatologies (valid on the 15th)."""

    month_prev: np.ndarray   # (nstep,) 1..12
    month_next: np.ndarray   # (nstep,) 1..12
    month_weight: np.ndarray  # (nstep,) weight of month_next


def _f64(a, shape, name):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def run_columns(forcing: np.ndarray, calendar: Calendar, monthly: np.ndarray,
                layer_par: np.ndarray, column_par: np.ndarray, state: ColumnState,
                dt: float, options: np.ndarray, diagnostics: AnnualDiagnostics | None = None,
                record: bool = False, labels=None) -> Records | None:
    """Advance ``state`` over all steps of ``forcing``; return records if asked.

    Raises :class:`KernelError` naming the first failing column and step.
    """
    nstep = forcing.shape[0]
    ncol, nlay = state.ncol, state.nlay
    forcing = _f64(forcing, (nstep, len(layout.FORCING), ncol), "forcing")
    monthly = _f64(monthly, (ncol, len(layout.MONTHLY), 12), "monthly")
    layer_par = _f64(layer_par, (ncol, nlay, len(layout.LAYER_PARAMETERS)), "layer_par")
    column_par = _f64(column_par, (ncol, len(layout.COLUMN_PARAMETERS)), "column_par")
    options = np.ascontiguousarray(options, dtype=np.int32)
    for name in ("stc", "smc", "sh2o", "surface"):
        a = getattr(state, name)
        if a.dtype != np.float64 or not a.flags.c_contiguous:
            setattr(state, name, np.ascontiguousarray(a, dtype=np.float64))
    if diagnostics is None:
        diagnostics = AnnualDiagnostics.empty(ncol, nlay)
    if diagnostics.water is None:
        water = np.zeros((ncol, len(layout.WATER_BALANCE)))    # accumulated, then dropped
    else:
        water = diagnostics.water = _f64(diagnostics.water, (ncol, len(layout.WATER_BALANCE)),
                                         "diagnostics.water")
    nrec = nstep if record else 1
    rec = Records(np.zeros((nrec, ncol, nlay)), np.zeros((nrec, ncol, nlay)),
                  np.zeros((nrec, ncol, nlay)), np.zeros((nrec, ncol, len(layout.OUTPUTS))))
    status = np.zeros(ncol, dtype=np.int32)
    fail_step = np.zeros(ncol, dtype=np.int32)
    # (a few columns: possibly another processor variant, see _dispatch.SMALL_BATCH;
    # the same bits)
    kernel = _kernel if ncol >= _SMALL_BATCH else _load_kernel_small()[1]
    kernel.nt_run_columns(
        float(dt), options, forcing.T,
        np.ascontiguousarray(calendar.month_prev, dtype=np.int32),
        np.ascontiguousarray(calendar.month_next, dtype=np.int32),
        np.ascontiguousarray(calendar.month_weight, dtype=np.float64),
        monthly.T, layer_par.T, column_par.T,
        state.stc.T, state.smc.T, state.sh2o.T, state.surface.T,
        diagnostics.tmin.T, diagnostics.tmax.T, diagnostics.tsum.T,
        diagnostics.thaw_depth_max, diagnostics.count, water.T,
        rec.stc.T, rec.smc.T, rec.sh2o.T, rec.out.T, status, fail_step)
    bad = np.flatnonzero(status)
    if bad.size:
        c = int(bad[0])
        label = str(labels[c]) if labels is not None else ""
        raise KernelError(c, int(fail_step[c]), int(status[c]), label)
    return rec if record else None
