"""CMFD forcing: reader, forcing provider and writer of real-format files.

The China Meteorological Forcing Dataset (CMFD; Yang et al. 2010, He et al. 2020)
comes as monthly netCDF files, one per variable::

    {var}_CMFD_V0106_B-01_03hr_010deg_YYYYMM.nc          (release 1.6)
    {var}_ITPCAS-CMFD_V0106_B-01_03hr_010deg_YYYYMM.nc   (older 1.6 naming)
    {var}_CMFD_V0200_B-01_03hr_010deg_YYYYMM.nc          (release 2.0)

with ``var`` one of :data:`VARIABLES`.  Files may sit directly in the directory
or in sub-directories of it (the distribution has one folder per variable).
Each file holds ``var(time, lat, lon)`` on (a sub-grid of) the 0.1 degree grid
:data:`noahtibet.grid.CMFD_GRID` and 8 records a day, stamped 00, 03, ..., 21 UTC.

Meaning of a record stamped ``t`` (CMFD user guide / data-centre description):

=====  ===========================================  ==============================
var    quantity                                      time meaning
=====  ===========================================  ==============================
temp   2 m air temperature                           instantaneous at t
pres   surface pressure                              instantaneous at t
shum   specific humidity                             instantaneous at t
wind   wind speed                                    instantaneous at t
srad   downward shortwave radiation                  mean over [t - 1.5 h, t + 1.5 h]
lrad   downward longwave radiation                   mean over [t - 1.5 h, t + 1.5 h]
prec   precipitation rate                            mean over [t - 3 h, t]
=====  ===========================================  ==============================

Decoding never trusts the version in the file name: packing (``scale_factor``,
``add_offset``), missing values (``missing_value``, ``_FillValue``, the netCDF
default fill value, NaN, ``valid_min``/``valid_max``/``valid_range``) and units
are taken from each file's own attributes, so the same code reads release 1.6
(precipitation in mm/hr) and 2.0 (kg m-2 s-1).  Time may use any CF
"<unit> since <date>" with a standard/Gregorian calendar; times are returned
in UTC.  Latitude may be stored descending; everything returned here is
latitude ascending.

Public API
----------
``open_cmfd(path, start, end, bbox=None) -> xarray.Dataset``
    Months ``start``..``end`` (inclusive) as one Dataset in SI units.
``CMFDProvider(directory, grid=CMFD_GRID, step_seconds=10800)``
    :class:`~noahtibet.providers.ForcingProvider` for the model: reads only the
    requested cells, a month at a time, and applies the timing rules below.
``write_cmfd(ds, directory, scheme="V0106", packed=False, lat_descending=False,
precip_units="mm/hr") -> list[Path]``
    Writes a Dataset of the ``open_cmfd`` layout as real-format monthly files.

Timing used by the provider (model step ending at ``t`` covers ``(t - dt, t]``)
--------------------------------------------------------------------------------
* temp, pres, shum, wind: the value at ``t`` (for steps shorter than 3 h ending
  between two records: linear interpolation in time);
* prec: the record stamped ``T`` is the mean over ``(T - 3 h, T]``; a step gets
  the time-weighted mean of the records whose intervals it overlaps; with the
  3-hour step this is the record stamped ``t`` itself;
* srad, lrad: the record stamped ``T`` is taken as constant over
  ``(T - 1.5 h, T + 1.5 h]``; a step gets the time-weighted mean over the
  records it overlaps; with the 3-hour step this is ``(R(t - 3 h) + R(t)) / 2``,
  which keeps the daily (and any longer) total.  For the very first step of
  the dataset (no month before the earliest month on disk) the missing earlier
  record is replaced by the first record, i.e. ``R(t)`` is used, and an INFO
  message is logged.
* The very last step of the dataset (ending at the first stamp of the month
  after the latest month on disk) uses the last record on disk in place of the
  missing one, for every variable (INFO message); later steps are gaps.
* A model grid coarser than 0.1 degree whose cells are unions of k x k CMFD
  cells (:meth:`noahtibet.grid.LatLonGrid.coarsen_factor`) gets, for each
  variable and step, the arithmetic mean over its CMFD cells (all must have
  data).

Any bad input raises :class:`noahtibet.errors.InputError` naming the file, the
variable and the offending value or time.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .grid import CMFD_GRID, LatLonGrid
from .layout import FORCING
from .providers import ForcingProvider

__all__ = [
    "VARIABLES",
    "SCHEMES",
    "RECORD_SECONDS",
    "KERNEL_SOURCES",
    "SI_UNITS",
    "open_cmfd",
    "CMFDProvider",
    "write_cmfd",
    "cmfd_filename",
]

log = logging.getLogger(__name__)

#: The seven CMFD variables, in file-name spelling.
VARIABLES = ("temp", "pres", "shum", "wind", "srad", "lrad", "prec")

#: File-name scheme -> the product part of the file name.
SCHEMES = {"V0106": "CMFD_V0106", "ITPCAS": "ITPCAS-CMFD_V0106", "V0200": "CMFD_V0200"}

#: Spacing of CMFD records [s].
RECORD_SECONDS = 10800

#: Kernel forcing variable (noahtibet.layout.FORCING) -> CMFD variable.
KERNEL_SOURCES = {
    "wind": "wind",
    "air_temperature": "temp",
    "specific_humidity": "shum",
    "pressure": "pres",
    "shortwave": "srad",
    "longwave": "lrad",
    "precipitation": "prec",
}

#: Units of the values returned by this module.
SI_UNITS = {"temp": "K", "pres": "Pa", "shum": "kg kg-1", "wind": "m s-1",
            "srad": "W m-2", "lrad": "W m-2", "prec": "kg m-2 s-1"}

_ATTRS = {
    "temp": ("near-surface (2 m) air temperature", "air_temperature", "time: point"),
    "pres": ("surface air pressure", "surface_air_pressure", "time: point"),
    "shum": ("near-surface specific humidity", "specific_humidity", "time: point"),
    "wind": ("near-surface wind speed", "wind_speed", "time: point"),
    "srad": ("downward shortwave radiation at the surface",
             "surface_downwelling_shortwave_flux_in_air",
             "time: mean (interval: 3 hours, centred on the time stamp)"),
    "lrad": ("downward longwave radiation at the surface",
             "surface_downwelling_longwave_flux_in_air",
             "time: mean (interval: 3 hours, centred on the time stamp)"),
    "prec": ("precipitation rate", "precipitation_flux",
             "time: mean (interval: 3 hours, ending at the time stamp)"),
}

# Accepted unit spellings (lower case, single spaces) -> (factor, offset) to SI.
_MM_HR = (1.0 / 3600.0, 0.0)
_ONE = (1.0, 0.0)
_UNITS = {
    "temp": {"k": _ONE, "kelvin": _ONE, "degk": _ONE, "deg_k": _ONE, "degrees_k": _ONE,
             "degc": (1.0, 273.15), "deg_c": (1.0, 273.15), "celsius": (1.0, 273.15),
             "degrees_c": (1.0, 273.15), "°c": (1.0, 273.15)},
    "pres": {"pa": _ONE, "pascal": _ONE, "pascals": _ONE, "hpa": (100.0, 0.0),
             "mbar": (100.0, 0.0), "mb": (100.0, 0.0), "kpa": (1000.0, 0.0)},
    "shum": {"kg/kg": _ONE, "kg kg-1": _ONE, "kg kg^-1": _ONE, "kg kg**-1": _ONE,
             "kg.kg-1": _ONE, "1": _ONE, "g/kg": (1e-3, 0.0), "g kg-1": (1e-3, 0.0)},
    "wind": {"m/s": _ONE, "m s-1": _ONE, "m s^-1": _ONE, "m s**-1": _ONE, "m.s-1": _ONE,
             "m/sec": _ONE},
    "srad": {"w/m2": _ONE, "w m-2": _ONE, "w/m^2": _ONE, "w/m**2": _ONE, "w m^-2": _ONE,
             "w m**-2": _ONE, "w.m-2": _ONE},
    "prec": {"mm/hr": _MM_HR, "mm hr-1": _MM_HR, "mm h-1": _MM_HR, "mm/h": _MM_HR,
             "mm hr^-1": _MM_HR, "mm h^-1": _MM_HR, "mm/hour": _MM_HR,
             "kg m-2 s-1": _ONE, "kg/m2/s": _ONE, "kg m^-2 s^-1": _ONE,
             "kg m**-2 s**-1": _ONE, "kg.m-2.s-1": _ONE, "mm/s": _ONE, "mm s-1": _ONE},
}
_UNITS["lrad"] = _UNITS["srad"]

_FILE_RE = re.compile(
    r"^(temp|pres|shum|wind|srad|lrad|prec)_(CMFD_V0106|ITPCAS-CMFD_V0106|CMFD_V0200)"
    r"_B-01_03hr_010deg_(\d{4})(\d{2})\.nc$")

_TIME_UNIT_SECONDS = {}
for _names, _sec in ((("seconds", "second", "secs", "sec", "s"), 1),
                     (("minutes", "minute", "mins", "min"), 60),
                     (("hours", "hour", "hrs", "hr", "h"), 3600),
                     (("days", "day", "d"), 86400)):
    for _n in _names:
        _TIME_UNIT_SECONDS[_n] = _sec
_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")
_TOL_DEG = 1e-4    # coordinate tolerance (files often store float32 coordinates)
_INT16_MISSING = -32767


def cmfd_filename(var: str, month, scheme: str = "V0106") -> str:
    """File name of variable ``var`` for ``month`` (anything np.datetime64 accepts)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of {sorted(SCHEMES)}")
    m = np.datetime64(month, "M").astype(object)
    return f"{var}_{SCHEMES[scheme]}_B-01_03hr_010deg_{m.year:04d}{m.month:02d}.nc"


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------

def _iso(t) -> str:
    return str(np.datetime64(t, "s"))


def _month(value, what: str) -> np.datetime64:
    try:
        if isinstance(value, str):
            if not re.fullmatch(r"\d{4}-\d{2}", value.strip()):
                raise ValueError(value)
            return np.datetime64(value.strip(), "M")
        return np.datetime64(value, "M")
    except (ValueError, TypeError):
        raise ValueError(f"{what} {value!r} is not a month 'YYYY-MM'") from None


def _month_start(month: np.datetime64) -> np.datetime64:
    return month.astype("datetime64[s]")


def _norm_units(text: str) -> str:
    return " ".join(str(text).strip().lower().split())


class _Index:
    """Which file holds which (variable, month) under a directory (searched recursively)."""

    def __init__(self, directory):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise InputError("CMFD forcing directory does not exist (or is not a directory)",
                             path=self.directory)
        self.files: dict[tuple[str, np.datetime64], list[Path]] = {}
        for root, dirs, names in os.walk(self.directory):
            dirs.sort()
            for name in sorted(names):
                m = _FILE_RE.match(name)
                if m is None:
                    continue
                month = np.datetime64(f"{m[3]}-{m[4]}", "M")
                self.files.setdefault((m[1], month), []).append(Path(root) / name)
        months = [k[1] for k in self.files]
        #: earliest month with any CMFD file: the start of the data set on disk
        self.first_month = min(months) if months else None
        #: latest month with any CMFD file: the end of the data set on disk
        self.last_month = max(months) if months else None

    def path(self, var: str, month: np.datetime64) -> Path:
        found = self.files.get((var, month), [])
        if len(found) > 1:
            raise InputError(
                f"several files for variable '{var}' and month {month}: "
                + ", ".join(str(p) for p in found) + " (keep exactly one)",
                path=found[0], field=var, value=str(month))
        if not found:
            names = " or ".join(cmfd_filename(var, month, s) for s in SCHEMES)
            raise InputError(f"no file for this month of variable '{var}' (gap in the "
                             f"forcing): expected {names}",
                             path=self.directory, field=var, value=str(month))
        return found[0]


# ----------------------------------------------------------------------------------------
# one file
# ----------------------------------------------------------------------------------------

@dataclass
class _Meta:
    """What the reader needs to know about one open file."""

    path: Path
    var: str                 # CMFD variable
    name: str                # its name inside the file
    times: np.ndarray        # datetime64[s], UTC
    row0: int                # CMFD row of the southernmost file row
    col0: int                # CMFD column of the westernmost file column
    nlat: int
    nlon: int
    lat_descending: bool
    units: str
    to_si: tuple[float, float]

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        return (self.row0, self.col0, self.nlat, self.nlon)

    def describe_geometry(self) -> str:
        lats, lons = CMFD_GRID.lats, CMFD_GRID.lons
        return (f"lon {lons[self.col0]:.2f}..{lons[self.col0 + self.nlon - 1]:.2f}, "
                f"lat {lats[self.row0]:.2f}..{lats[self.row0 + self.nlat - 1]:.2f} "
                f"({self.nlon} x {self.nlat} cells)")


def _open(path: Path, var: str):
    import netCDF4
    try:
        return netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"is not a readable netCDF file ({exc})", path=path, field=var,
                         value=path.name) from None


def _find_coord(nc, names, path, var, kind):
    for n in names:
        if n in nc.variables:
            return nc.variables[n]
    lower = {k.lower(): k for k in nc.variables}
    for n in names:
        if n in lower:
            return nc.variables[lower[n]]
    raise InputError(f"file has no {kind} coordinate variable (looked for {', '.join(names)})",
                     path=path, field=var)


def _axis_indices(values, origin: float, n_full: int, kind: str, path, var,
                  allow_descending: bool) -> tuple[int, bool]:
    """CMFD index of the first (lowest) cell of a coordinate axis and whether it is descending."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise InputError(f"{kind} coordinate is empty or not finite", path=path, field=kind,
                         value=values[:3].tolist())
    idx = np.rint((values - origin) / 0.1)
    off = np.abs(values - (origin + 0.1 * idx))
    bad = np.flatnonzero((off > _TOL_DEG) | (idx < 0) | (idx >= n_full))
    if bad.size:
        raise InputError(f"is not a cell centre of the CMFD 0.1 degree grid ({kind} centres "
                         f"{origin:.2f} + 0.1 k, k = 0..{n_full - 1}); variable '{var}'",
                         path=path, field=kind, value=float(values[bad[0]]))
    idx = idx.astype(np.int64)
    step = np.diff(idx)
    descending = False
    if step.size:
        if np.all(step == 1):
            descending = False
        elif np.all(step == -1) and allow_descending:
            descending = True
        else:
            k = int(np.flatnonzero(np.abs(step) != 1)[0]) if np.any(np.abs(step) != 1) else 0
            raise InputError(f"{kind} coordinate is not a contiguous run of CMFD 0.1 degree "
                             f"cells{'' if allow_descending else ' in ascending order'} "
                             f"(variable '{var}')", path=path, field=kind,
                             value=float(values[k + 1]))
    return int(idx.min()), descending


def _decode_time(tvar, path, var) -> np.ndarray:
    import cftime
    units = getattr(tvar, "units", None)
    if units is None:
        raise InputError("time variable has no 'units' attribute", path=path, field="time")
    m = re.match(r"^\s*([A-Za-z]+)\s+since\s+(.+)$", str(units))
    if m is None or m[1].lower() not in _TIME_UNIT_SECONDS:
        raise InputError("time units are not understood (expected '<seconds|minutes|hours|"
                         f"days> since <date>'; variable '{var}')", path=path, field="time",
                         value=units)
    calendar = str(getattr(tvar, "calendar", "standard")).strip().lower()
    if calendar not in _CALENDARS:
        raise InputError(f"time calendar is not supported (use one of {', '.join(_CALENDARS)};"
                         f" variable '{var}')", path=path, field="time", value=calendar)
    try:
        ref = cftime.num2date(0, str(units), calendar="proleptic_gregorian",
                              only_use_cftime_datetimes=False, only_use_python_datetimes=True)
    except Exception as exc:    # cftime raises several types for malformed dates
        raise InputError(f"time units are not understood ({exc})", path=path, field="time",
                         value=units) from None
    ref = np.datetime64(ref.replace(tzinfo=None) if ref.tzinfo else ref, "s")
    tvar.set_auto_maskandscale(False)
    raw = np.asarray(tvar[:], dtype=np.float64).ravel()
    if not np.all(np.isfinite(raw)):
        k = int(np.flatnonzero(~np.isfinite(raw))[0])
        raise InputError(f"time value number {k} is not finite (variable '{var}')",
                         path=path, field="time", value=raw[k])
    secs = np.rint(raw * _TIME_UNIT_SECONDS[m[1].lower()]).astype(np.int64)
    return ref + secs.astype("timedelta64[s]")


def _check_times(times: np.ndarray, month: np.datetime64, path, var) -> None:
    """Times of a monthly file must be the complete 3-hourly series of its month."""
    t0 = _month_start(month)
    t1 = _month_start(month + 1)
    if times.size == 0:
        raise InputError(f"file has no time records (variable '{var}')", path=path,
                         field="time", value=str(month))
    step = np.diff(times).astype(np.int64)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        k = int(bad[0])
        raise InputError(f"time is not increasing: it follows {_iso(times[k])} "
                         f"(variable '{var}')", path=path, field="time",
                         value=_iso(times[k + 1]))
    bad = np.flatnonzero(step != RECORD_SECONDS)
    if bad.size:
        k = int(bad[0])
        raise InputError(f"time step from {_iso(times[k])} is {step[k] / 3600:g} h, not 3 h "
                         f"(variable '{var}'; missing or extra records)", path=path,
                         field="time", value=_iso(times[k + 1]))
    if times[0] < t0 or times[-1] >= t1:
        k = 0 if times[0] < t0 else times.size - 1
        raise InputError(f"time is outside the file's month {month} (variable '{var}')",
                         path=path, field="time", value=_iso(times[k]))
    if times[0] != t0:
        raise InputError(f"first record is not at the start of month {month} "
                         f"({_iso(t0)}): records are missing (gap; variable '{var}')",
                         path=path, field="time", value=_iso(times[0]))
    last = t1 - np.timedelta64(RECORD_SECONDS, "s")
    if times[-1] != last:
        raise InputError(f"last record is not the last of month {month} ({_iso(last)}): "
                         f"records are missing (gap; variable '{var}')", path=path,
                         field="time", value=_iso(times[-1]))


def _meta(nc, path: Path, var: str, month: np.datetime64) -> _Meta:
    name = var if var in nc.variables else None
    if name is None:
        cands = [k for k in nc.variables if k.lower() == var]
        name = cands[0] if len(cands) == 1 else None
    if name is None:
        raise InputError(f"variable '{var}' is not in the file (it has: "
                         f"{', '.join(nc.variables) or 'none'})", path=path, field=var)
    v = nc.variables[name]
    tvar = _find_coord(nc, ("time",), path, var, "time")
    latv = _find_coord(nc, ("lat", "latitude"), path, var, "latitude")
    lonv = _find_coord(nc, ("lon", "longitude"), path, var, "longitude")
    if len(v.dimensions) != 3 or v.dimensions[0] != tvar.dimensions[0] or \
            v.dimensions[1] != latv.dimensions[0] or v.dimensions[2] != lonv.dimensions[0]:
        raise InputError("variable must have dimensions (time, lat, lon)", path=path,
                         field=var, value=str(v.dimensions))
    units_raw = getattr(v, "units", None)
    if units_raw is None:
        raise InputError("variable has no 'units' attribute", path=path, field=var)
    units = _norm_units(units_raw)
    if units not in _UNITS[var]:
        raise InputError(f"units are not known to the CMFD reader (accepted: "
                         f"{', '.join(sorted(_UNITS[var]))})", path=path, field=var,
                         value=units_raw)
    row0, desc = _axis_indices(latv[:], CMFD_GRID.lat0, CMFD_GRID.nlat, "latitude", path, var,
                               allow_descending=True)
    col0, _ = _axis_indices(lonv[:], CMFD_GRID.lon0, CMFD_GRID.nlon, "longitude", path, var,
                            allow_descending=False)
    times = _decode_time(tvar, path, var)
    _check_times(times, month, path, var)
    return _Meta(path=path, var=var, name=name, times=times, row0=row0, col0=col0,
                 nlat=int(latv.shape[0]), nlon=int(lonv.shape[0]), lat_descending=desc,
                 units=str(units_raw), to_si=_UNITS[var][units])


def _read_raw(nc, meta: _Meta, it0: int, it1: int, r0: int, r1: int, c0: int, c1: int):
    """Stored (packed) values of records it0:it1, CMFD rows r0:r1, columns c0:c1.

    Rows are returned south to north.  The block must lie inside the file grid.
    """
    v = nc.variables[meta.name]
    v.set_auto_maskandscale(False)
    fr0, fr1 = r0 - meta.row0, r1 - meta.row0
    fc0, fc1 = c0 - meta.col0, c1 - meta.col0
    if meta.lat_descending:
        block = np.asarray(v[it0:it1, meta.nlat - fr1:meta.nlat - fr0, fc0:fc1])
        return block[:, ::-1, :]
    return np.asarray(v[it0:it1, fr0:fr1, fc0:fc1])


def _decode(nc, meta: _Meta, raw: np.ndarray) -> np.ndarray:
    """Stored values -> float64 in SI units, NaN where missing (CF packing conventions)."""
    v = nc.variables[meta.name]
    attrs = set(v.ncattrs())
    missing = np.zeros(raw.shape, dtype=bool)
    if raw.dtype.kind == "f":
        missing |= ~np.isfinite(raw)
    flags = []
    if "missing_value" in attrs:
        flags.extend(np.atleast_1d(v.getncattr("missing_value")).tolist())
    if "_FillValue" in attrs:
        flags.append(np.asarray(v.getncattr("_FillValue")).item())
    else:
        import netCDF4
        default = netCDF4.default_fillvals.get(raw.dtype.str[1:])
        if default is not None and raw.dtype.kind != "S":
            flags.append(default)
    for f in flags:
        missing |= raw == np.asarray(f).astype(raw.dtype)
    if "valid_range" in attrs:
        lo, hi = np.asarray(v.getncattr("valid_range")).ravel()[:2]
        missing |= (raw < lo) | (raw > hi)
    if "valid_min" in attrs:
        missing |= raw < v.getncattr("valid_min")
    if "valid_max" in attrs:
        missing |= raw > v.getncattr("valid_max")
    out = raw.astype(np.float64)
    if "scale_factor" in attrs:
        out *= float(np.asarray(v.getncattr("scale_factor")).item())
    if "add_offset" in attrs:
        out += float(np.asarray(v.getncattr("add_offset")).item())
    factor, offset = meta.to_si
    if factor != 1.0:
        out *= factor
    if offset != 0.0:
        out += offset
    out[missing] = np.nan
    return out


# ----------------------------------------------------------------------------------------
# open_cmfd
# ----------------------------------------------------------------------------------------

def open_cmfd(path, start: str, end: str, bbox=None):
    """Read months ``start``..``end`` (inclusive, 'YYYY-MM') of CMFD files under ``path``.

    Parameters
    ----------
    path : directory holding the monthly files (searched recursively), named
        ``{var}_CMFD_V0106_...``, ``{var}_ITPCAS-CMFD_V0106_...`` or
        ``{var}_CMFD_V0200_..._YYYYMM.nc``; per variable and month exactly one must exist.
    start, end : first and last month, 'YYYY-MM'.
    bbox : optional (west, south, east, north) [degrees]: keep the cells whose
        centres lie inside (edges included).

    Returns
    -------
    xarray.Dataset with variables :data:`VARIABLES`, each float32 ``(time, lat, lon)``,
    latitude ascending, in SI units (attribute ``units``: K, Pa, kg kg-1, m s-1, W m-2,
    W m-2, kg m-2 s-1; precipitation converted from mm/hr when the file says so),
    NaN where the file has no data (e.g. over the sea); ``time`` datetime64 in UTC,
    the stamps of the files (see the module docstring for what a stamp means).
    Coordinates ``lat``/``lon`` are the exact CMFD cell centres [degrees].

    Raises InputError (naming file, variable and value) for a missing directory, a
    missing or duplicated file, a variable missing in a file, unknown units, a grid
    that is not a CMFD sub-grid or differs between files, an incomplete,
    non-3-hourly or non-monotonic time axis, or a file that is not netCDF.
    """
    import xarray as xr

    index = _Index(path)
    m0, m1 = _month(start, "start"), _month(end, "end")
    if m1 < m0:
        raise ValueError(f"end month {m1} is before start month {m0}")
    months = np.arange(m0, m1 + 1, dtype="datetime64[M]")

    # pass 1: metadata of every file (cheap), grid and time consistency
    metas: dict[str, list[_Meta]] = {}
    ref: _Meta | None = None
    month_times: dict[np.datetime64, np.ndarray] = {}
    for var in VARIABLES:
        metas[var] = []
        for month in months:
            p = index.path(var, month)
            with _open(p, var) as nc:
                meta = _meta(nc, p, var, month)
            if ref is None:
                ref = meta
            elif meta.geometry != ref.geometry:
                raise InputError(f"grid differs between files: {meta.describe_geometry()} "
                                 f"here, {ref.describe_geometry()} in {ref.path} "
                                 f"(variable '{var}')", path=p, field=var, value=str(month))
            metas[var].append(meta)
            month_times.setdefault(month, meta.times)

    # selection of rows/cols (CMFD indices)
    r0, r1 = ref.row0, ref.row0 + ref.nlat
    c0, c1 = ref.col0, ref.col0 + ref.nlon
    if bbox is not None:
        west, south, east, north = (float(x) for x in bbox)
        if west > east or south > north:
            raise ValueError(f"bbox {bbox} must be (west, south, east, north)")
        lats = CMFD_GRID.lats[r0:r1]
        lons = CMFD_GRID.lons[c0:c1]
        rows = np.flatnonzero((lats >= south - 1e-9) & (lats <= north + 1e-9))
        cols = np.flatnonzero((lons >= west - 1e-9) & (lons <= east + 1e-9))
        if rows.size == 0 or cols.size == 0:
            raise ValueError(f"bbox {bbox} contains no cell centre of the files "
                             f"({ref.describe_geometry()})")
        r0, r1 = r0 + int(rows[0]), r0 + int(rows[-1]) + 1
        c0, c1 = c0 + int(cols[0]), c0 + int(cols[-1]) + 1

    times = np.concatenate([month_times[m] for m in months])
    data_vars = {}
    for var in VARIABLES:
        arr = np.empty((times.size, r1 - r0, c1 - c0), dtype=np.float32)
        pos = 0
        for meta in metas[var]:
            n = meta.times.size
            with _open(meta.path, var) as nc:
                for i in range(0, n, 64):     # bounded temporary memory for large grids
                    j = min(n, i + 64)
                    raw = _read_raw(nc, meta, i, j, r0, r1, c0, c1)
                    arr[pos + i:pos + j] = _decode(nc, meta, raw)
            pos += n
        long_name, std, cell_methods = _ATTRS[var]
        data_vars[var] = (("time", "lat", "lon"), arr,
                          {"units": SI_UNITS[var], "long_name": long_name,
                           "standard_name": std, "cell_methods": cell_methods})
    coords = {
        "time": ("time", times.astype("datetime64[ns]"), {"long_name": "time (UTC)"}),
        "lat": ("lat", CMFD_GRID.lats[r0:r1],
                {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", CMFD_GRID.lons[c0:c1],
                {"units": "degrees_east", "standard_name": "longitude"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs={
        "source": f"CMFD files under {Path(path)}",
        "time_zone": "UTC",
        "note": "srad/lrad: 3-h means centred on the stamp; prec: mean over the 3 h "
                "ending at the stamp; other variables instantaneous",
    })


# ----------------------------------------------------------------------------------------
# provider
# ----------------------------------------------------------------------------------------

#: metadata of this many files is kept by a provider (a few months of all variables)
_KEPT_METAS = 64

_INSTANT, _PRECIP, _RADIATION = "instant", "precip", "radiation"
_KIND = {"temp": _INSTANT, "pres": _INSTANT, "shum": _INSTANT, "wind": _INSTANT,
         "srad": _RADIATION, "lrad": _RADIATION, "prec": _PRECIP}
# interval (relative to the stamp, seconds) a record of a mean quantity represents
_SUPPORT = {_PRECIP: (-RECORD_SECONDS, 0), _RADIATION: (-RECORD_SECONDS // 2,
                                                         RECORD_SECONDS // 2)}


def _step_weights(kind: str, step_end: np.ndarray, dt: int, rec: np.ndarray) -> np.ndarray:
    """(nstep, nrec) weights turning records (stamps ``rec``, int s) into step values."""
    b = step_end[:, None].astype(np.float64)
    T = rec[None, :].astype(np.float64)
    if kind == _INSTANT:   # value at the step end, linear in time between records
        return np.maximum(0.0, 1.0 - np.abs(b - T) / RECORD_SECONDS)
    lo, hi = _SUPPORT[kind]
    overlap = np.minimum(b, T + hi) - np.maximum(b - dt, T + lo)
    return np.maximum(0.0, overlap) / dt


class CMFDProvider(ForcingProvider):
    """Forcing of the model from CMFD monthly files (see the module docstring for timing).

    Parameters
    ----------
    directory : directory of CMFD files (searched recursively; any naming scheme).
    grid : the model grid the (row, col) indices of :meth:`read` refer to: the CMFD
        grid itself, a 0.1 degree sub-grid of it, or a coarser grid whose cells are
        unions of k x k CMFD cells (then each variable is the mean over those cells).
    step_seconds : model step [s]; 10800 (the CMFD record spacing) is the normal case.

    ``read`` reads, per variable and month, only the bounding box of the CMFD cells
    under the requested cells (then gathers them) and only the records the steps need;
    nothing larger than one month of the requested cells is held.
    """

    def __init__(self, directory, grid: LatLonGrid = CMFD_GRID, step_seconds: int = 10800):
        self.directory = Path(directory)
        self.grid = grid
        if int(step_seconds) != step_seconds or step_seconds <= 0:
            raise ValueError(f"step_seconds must be a positive whole number, got {step_seconds}")
        self.step_seconds = int(step_seconds)
        try:
            self.factor = grid.coarsen_factor(CMFD_GRID)
        except ValueError as exc:
            raise ValueError(f"model grid {grid} is not made of whole CMFD cells: {exc}") \
                from None
        west, south = grid.bounds[0], grid.bounds[1]
        self.row0 = int(round((south - CMFD_GRID.bounds[1]) / CMFD_GRID.dlat))
        self.col0 = int(round((west - CMFD_GRID.bounds[0]) / CMFD_GRID.dlon))
        if self.row0 < 0 or self.col0 < 0 or \
                self.row0 + grid.nlat * self.factor > CMFD_GRID.nlat or \
                self.col0 + grid.nlon * self.factor > CMFD_GRID.nlon:
            raise ValueError(f"model grid {grid} extends beyond the CMFD grid")
        self._index = _Index(self.directory)
        self._ref: _Meta | None = None     # first file opened: the grid all files must share
        self._metas: dict[Path, _Meta] = {}   # metadata of every file opened (checked once)
        # per variable: the last two months read ((cells, month), first stamp, values)
        self._months: dict[str, list] = {}

    def describe(self) -> str:
        return (f"CMFDProvider({self.directory}, {self.grid.nlon}x{self.grid.nlat} cells of "
                f"{self.grid.dlon:g} deg, step {self.step_seconds} s)")

    # -- public ----------------------------------------------------------------------------
    def read(self, rows, cols, start, end):
        """Forcing of cells (rows[i], cols[i]) for the model steps ending in (start, end].

        Returns (times datetime64[s] (nstep,), forcing float64 (nstep, 7, ncell)) in the
        order and units of :data:`noahtibet.layout.FORCING`.  Steps are processed a month
        (of step-end times) at a time.  Raises InputError naming file, variable and time
        for a gap, a missing variable, NaN/missing data in a requested cell, unknown units
        or a grid mismatch.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same length")
        if rows.size and (rows.min() < 0 or rows.max() >= self.grid.nlat or
                          cols.min() < 0 or cols.max() >= self.grid.nlon):
            raise ValueError(f"cell indices outside the model grid {self.grid.shape}")
        start = np.datetime64(start, "s")
        end = np.datetime64(end, "s")
        span = int((end - start).astype(np.int64))
        if span < 0 or span % self.step_seconds:
            raise ValueError(f"(start, end] = ({start}, {end}] is not a whole number of "
                             f"{self.step_seconds} s steps")
        nstep = span // self.step_seconds
        times = start + (np.arange(1, nstep + 1, dtype=np.int64)
                         * self.step_seconds).astype("timedelta64[s]")
        out = self.empty(nstep, rows.size)
        if nstep == 0 or rows.size == 0:
            return times, out
        cells = self._cells(rows, cols)
        months = times.astype("datetime64[M]")
        bounds = np.flatnonzero(np.diff(months.astype(np.int64))) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, nstep]):
            out[lo:hi] = self._chunk(times[lo:hi], cells)
        return times, out

    # -- internals -------------------------------------------------------------------------
    def _cells(self, rows, cols):
        """CMFD rows/cols of the k x k fine cells of each model cell and their bounding box."""
        k = self.factor
        d = np.arange(k)
        fr = (self.row0 + rows * k)[:, None, None] + d[None, :, None]    # (ncell, k, 1)
        fc = (self.col0 + cols * k)[:, None, None] + d[None, None, :]    # (ncell, 1, k)
        fr = np.broadcast_to(fr, (rows.size, k, k)).reshape(rows.size, k * k)
        fc = np.broadcast_to(fc, (rows.size, k, k)).reshape(rows.size, k * k)
        return {"fr": fr, "fc": fc, "r0": int(fr.min()), "r1": int(fr.max()) + 1,
                "c0": int(fc.min()), "c1": int(fc.max()) + 1,
                "key": (rows.tobytes(), cols.tobytes())}

    def _chunk(self, times, cells):
        dt = self.step_seconds
        t_end = times.astype(np.int64)
        a_min, b_max = int(t_end[0]) - dt, int(t_end[-1])
        # candidate record stamps (int seconds since 1970, on the 3-h grid)
        lo = (a_min - RECORD_SECONDS) // RECORD_SECONDS * RECORD_SECONDS
        hi = -(-(b_max + RECORD_SECONDS) // RECORD_SECONDS) * RECORD_SECONDS
        rec = np.arange(lo, hi + 1, RECORD_SECONDS, dtype=np.int64)
        out = np.empty((times.size, len(FORCING), cells["fr"].shape[0]))
        first = (None if self._index.first_month is None
                 else int(_month_start(self._index.first_month).astype(np.int64)))
        last = (None if self._index.last_month is None
                else int(_month_start(self._index.last_month + 1).astype(np.int64)))
        weights = {}
        for kind in (_INSTANT, _PRECIP, _RADIATION):
            w = _step_weights(kind, t_end, dt, rec)
            w[w < 1e-12] = 0.0
            if kind == _RADIATION and first is not None and np.any(w[:, rec < first] > 0):
                # dataset start: no earlier record on disk -> use the first record
                # (steps ending before the first record fail on the instantaneous
                # variables: a gap, never extrapolated)
                before = rec < first
                if first in rec:
                    j = int(np.flatnonzero(rec == first)[0])
                    moved = np.where(t_end >= first, w[:, before].sum(axis=1), 0.0)
                    w[:, j] += moved
                    w[np.ix_(moved > 0, before)] = 0.0
                    hit = times[moved > 0]
                    if hit.size:
                        log.info("CMFD srad/lrad for the steps ending %s..%s: there is no "
                                 "record before the first one on disk (%s); the first record "
                                 "stands in for the missing earlier one", _iso(hit[0]),
                                 _iso(hit[-1]), _iso(np.datetime64(first, "s")))
            if last is not None and np.any(w[:, rec == last] > 0):
                # dataset end: the record at the very end of the last month on disk (the
                # first stamp of the month after it) does not exist -> the last record
                # stands in for it (records later than that stay gaps: never extrapolated)
                j_end = int(np.flatnonzero(rec == last)[0])
                j_last = int(np.flatnonzero(rec == last - RECORD_SECONDS)[0])
                moved = w[:, j_end].copy()
                w[:, j_last] += moved
                w[:, j_end] = 0.0
                hit = times[moved > 0]
                log.info("CMFD %s for the steps ending %s..%s: the data set on disk ends with "
                         "%s; its last record (%s) stands in for the record at %s",
                         "/".join(v for v in VARIABLES if _KIND[v] == kind), _iso(hit[0]),
                         _iso(hit[-1]), self._index.last_month,
                         _iso(np.datetime64(last - RECORD_SECONDS, "s")),
                         _iso(np.datetime64(last, "s")))
            used = np.flatnonzero(w.any(axis=0))
            weights[kind] = (_sparse(w[:, used[0]:used[-1] + 1]), rec[used[0]:used[-1] + 1])
        for i, name in enumerate(FORCING):
            var = KERNEL_SOURCES[name]
            sw, rv = weights[_KIND[var]]
            values = self._records(var, rv, cells)          # (nrec, ncell)
            out[:, i, :] = _apply_sparse(sw, values)
        return out

    def _records(self, var, rec, cells):
        """Values (nrec, ncell) of ``var`` at stamps ``rec``: mean over each cell's CMFD cells."""
        t = rec.astype("datetime64[s]")
        out = np.empty((rec.size, cells["fr"].shape[0]))
        months = t.astype("datetime64[M]")
        for month in np.unique(months):
            sel = np.flatnonzero(months == month)
            first, values = self._month_values(var, month, cells)
            it = (rec[sel] - first) // RECORD_SECONDS
            vals = values[it]
            if not np.all(np.isfinite(vals)):
                self._raise_missing(var, month, cells, rec[sel])
            out[sel] = vals
        return out

    def _month_values(self, var, month, cells):
        """(first stamp [s], values (nrec, ncell)) of a whole month of ``var`` for the cells.

        The last two months read per variable are kept (each month's file is opened once
        although a month's steps need the first record of the next month and its first
        step the last record of the previous one); values are what a read of any part of
        the month gives.  NaN where a cell has missing data (checked by the caller on
        the records it needs)."""
        kept = self._months.setdefault(var, [])
        for key, first, values in kept:
            if key == (cells["key"], month):
                return first, values
        fr, fc = cells["fr"], cells["fc"]
        r0, r1, c0, c1 = cells["r0"], cells["r1"], cells["c0"], cells["c1"]
        flat = (fr - r0) * (c1 - c0) + (fc - c0)                   # (ncell, kk)
        path = self._index.path(var, month)
        with _open(path, var) as nc:
            meta = self._metas.get(path)
            if meta is None:        # each file's metadata is read and checked once
                meta = self._metas[path] = _meta(nc, path, var, month)
                while len(self._metas) > _KEPT_METAS:        # bounded: the oldest go
                    del self._metas[next(iter(self._metas))]
            self._check_grid(meta, r0, r1, c0, c1, month)
            raw = _read_raw(nc, meta, 0, meta.times.size, r0, r1, c0, c1)
            raw = raw.reshape(raw.shape[0], -1)[:, flat]           # (nrec, ncell, kk)
            vals = _decode(nc, meta, raw)
        values = vals[:, :, 0] if vals.shape[2] == 1 else vals.mean(axis=2)
        first = int(meta.times[0].astype(np.int64))
        kept.append(((cells["key"], month), first, values))
        del kept[:-2]
        return first, values

    def _raise_missing(self, var, month, cells, stamps):
        """InputError naming the first missing value among ``stamps`` of ``month``."""
        fr, fc = cells["fr"], cells["fc"]
        r0, r1, c0, c1 = cells["r0"], cells["r1"], cells["c0"], cells["c1"]
        flat = (fr - r0) * (c1 - c0) + (fc - c0)
        path = self._index.path(var, month)
        t = stamps.astype("datetime64[s]")
        with _open(path, var) as nc:
            meta = self._metas.get(path) or _meta(nc, path, var, month)
            it = (t - meta.times[0]).astype(np.int64) // RECORD_SECONDS
            raw = _read_raw(nc, meta, int(it[0]), int(it[-1]) + 1, r0, r1, c0, c1)
            vals = _decode(nc, meta, raw.reshape(raw.shape[0], -1)[:, flat])
        ti, ci, ki = (int(x[0]) for x in np.nonzero(~np.isfinite(vals)))
        lon = CMFD_GRID.lons[fc[ci, ki]]
        lat = CMFD_GRID.lats[fr[ci, ki]]
        raise InputError(
            f"missing value (NaN or fill value) in a requested cell at "
            f"{_iso(t[ti])} UTC, CMFD cell lon {lon:.2f} lat {lat:.2f} "
            f"(model cell row {(fr[ci, ki] - self.row0) // self.factor}, col "
            f"{(fc[ci, ki] - self.col0) // self.factor})",
            path=path, field=var, value=_iso(t[ti]))

    def _check_grid(self, meta: _Meta, r0, r1, c0, c1, month):
        if self._ref is None:
            self._ref = meta
        elif meta.geometry != self._ref.geometry:
            raise InputError(f"grid differs between files: {meta.describe_geometry()} here, "
                             f"{self._ref.describe_geometry()} in {self._ref.path} "
                             f"(variable '{meta.var}')", path=meta.path, field=meta.var,
                             value=str(month))
        if r0 < meta.row0 or c0 < meta.col0 or r1 > meta.row0 + meta.nlat or \
                c1 > meta.col0 + meta.nlon:
            lons, lats = CMFD_GRID.lons, CMFD_GRID.lats
            raise InputError(f"file grid ({meta.describe_geometry()}) does not cover the "
                             f"requested cells (lon {lons[c0]:.2f}..{lons[c1 - 1]:.2f}, lat "
                             f"{lats[r0]:.2f}..{lats[r1 - 1]:.2f}; variable '{meta.var}')",
                             path=meta.path, field=meta.var, value=str(month))


def _sparse(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero weights of each step of w (nstep, nrec), columns in increasing order:
    (order (nstep, m), weights (nstep, m)), m the most nonzero weights of a step."""
    nnz = (w != 0).sum(axis=1)
    m = int(nnz.max())
    order = np.argsort(w == 0, axis=1, kind="stable")[:, :m]        # nonzero columns first
    return order, np.take_along_axis(w, order, axis=1)


def _apply_sparse(sparse, values: np.ndarray) -> np.ndarray:
    """w (nstep, nrec) @ values (nrec, ncell) from ``_sparse(w)``, using only the few nonzero
    weights per step."""
    order, ww = sparse
    m = order.shape[1]
    out = ww[:, 0, None] * values[order[:, 0]]
    for j in range(1, m):
        out += ww[:, j, None] * values[order[:, j]]
    return out


# ----------------------------------------------------------------------------------------
# writer
# ----------------------------------------------------------------------------------------

_PRECIP_WRITE = {"mm/hr": 3600.0, "mm hr-1": 3600.0, "mm h-1": 3600.0, "kg m-2 s-1": 1.0}


def write_cmfd(ds, directory, scheme: str = "V0106", packed: bool = False,
               lat_descending: bool = False, precip_units: str = "mm/hr") -> list[Path]:
    """Write ``ds`` (the :func:`open_cmfd` layout, SI units) as real-format monthly CMFD files.

    One file per variable of :data:`VARIABLES` present in ``ds`` and per calendar month of
    its ``time`` coordinate (UTC), named by ``scheme`` ("V0106", "ITPCAS" or "V0200").
    ``lon``/``lat`` must be centres of a contiguous block of the CMFD 0.1 degree grid.
    Time is stored as float64 "hours since 1900-01-01 00:00:00"; coordinates as float32.
    ``packed``: int16 with per-file ``scale_factor``/``add_offset`` and
    ``missing_value``/``_FillValue`` -32767 (NaN -> missing); otherwise float32 with
    fill value -9999.  ``lat_descending`` stores north first.  ``precip_units`` is the
    units attribute of ``prec``: "mm/hr", "mm hr-1", "mm h-1" (values x 3600) or
    "kg m-2 s-1".  Each file is written under a temporary name in ``directory`` and
    renamed when complete.  The writer does not check the time axis (tests use it to
    make bad files).  Returns the paths written.
    """
    import netCDF4

    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of {sorted(SCHEMES)}")
    if precip_units not in _PRECIP_WRITE:
        raise ValueError(f"precip_units {precip_units!r} is not one of {sorted(_PRECIP_WRITE)}")
    present = [v for v in VARIABLES if v in ds.data_vars]
    if not present:
        raise ValueError(f"dataset has none of the CMFD variables {VARIABLES}")
    lat = np.asarray(ds["lat"].values, dtype=np.float64)
    lon = np.asarray(ds["lon"].values, dtype=np.float64)
    _axis_indices(lat, CMFD_GRID.lat0, CMFD_GRID.nlat, "latitude", "<dataset>", "lat", False)
    _axis_indices(lon, CMFD_GRID.lon0, CMFD_GRID.nlon, "longitude", "<dataset>", "lon", False)
    times = np.asarray(ds["time"].values).astype("datetime64[s]")
    hours = (times - np.datetime64("1900-01-01T00:00:00", "s")).astype(np.int64) / 3600.0
    months = times.astype("datetime64[M]")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    flip = slice(None, None, -1) if lat_descending else slice(None)
    for var in present:
        data = np.asarray(ds[var].transpose("time", "lat", "lon").values, dtype=np.float64)
        units = SI_UNITS[var]
        if var == "prec":
            data = data * _PRECIP_WRITE[precip_units]
            units = precip_units
        for month in np.unique(months):
            sel = np.flatnonzero(months == month)
            block = data[sel][:, flip, :]
            name = cmfd_filename(var, month, scheme)
            final = directory / name
            tmp = directory / f".{name}.{os.getpid()}.tmp"
            try:
                with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                    nc.createDimension("time", None)
                    nc.createDimension("lat", lat.size)
                    nc.createDimension("lon", lon.size)
                    tv = nc.createVariable("time", "f8", ("time",))
                    tv.units = "hours since 1900-01-01 00:00:00"
                    tv.calendar = "gregorian"
                    tv.long_name = "time (UTC)"
                    tv[:] = hours[sel]
                    la = nc.createVariable("lat", "f4", ("lat",))
                    la.units = "degrees_north"
                    la[:] = lat[flip]
                    lo = nc.createVariable("lon", "f4", ("lon",))
                    lo.units = "degrees_east"
                    lo[:] = lon
                    _write_var(nc, var, block, packed, units)
                    nc.title = f"CMFD-format {var} written by noahtibet.forcing.write_cmfd"
                    nc.Conventions = "CF-1.6"
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    tmp.unlink()
            written.append(final)
    return written


def _write_var(nc, var, block, packed, units):
    long_name, _, cell_methods = _ATTRS[var]
    finite = np.isfinite(block)
    if packed:
        vals = block[finite]
        vmin, vmax = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
        scale = (vmax - vmin) / 65532.0 if vmax > vmin else 1.0
        offset = 0.5 * (vmax + vmin)
        v = nc.createVariable(var, "i2", ("time", "lat", "lon"), zlib=True, complevel=1,
                              fill_value=np.int16(_INT16_MISSING))
        v.set_auto_maskandscale(False)
        v.scale_factor = np.float64(scale)
        v.add_offset = np.float64(offset)
        v.missing_value = np.int16(_INT16_MISSING)
        raw = np.full(block.shape, _INT16_MISSING, dtype=np.int16)
        raw[finite] = np.clip(np.rint((block[finite] - offset) / scale), -32766, 32766)
        v[:] = raw
    else:
        v = nc.createVariable(var, "f4", ("time", "lat", "lon"), zlib=True, complevel=1,
                              fill_value=np.float32(-9999.0))
        v.set_auto_maskandscale(False)
        v.missing_value = np.float32(-9999.0)
        v[:] = np.where(finite, block, -9999.0).astype(np.float32)
    v.units = units
    v.long_name = long_name
    v.cell_methods = cell_methods
