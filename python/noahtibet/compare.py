"""Comparisons with the legacy model: point runs and product sets.

``noahtibet compare-legacy FORCING_FILE LEGACY_OUTPUT``
--------------------------------------------------------
Runs noahtibet on a legacy point-forcing file (:mod:`noahtibet.point`) and
compares every step with the legacy model's output, which may be either

* the legacy **text output** (spec/physics.md section 12;
  ``module_ascii_io.F`` of the legacy code): line 1 column names, line 2
  units, line 3 Fortran formats, each in 15-character fields, then one row per
  step: the time stamp ``YYYYMMDD HH:mm`` in 15 characters and ``G15.6``
  values ``STC(1..N) SMC(1..N) SH2O(1..N) SNOWH SNEQV EC EDIR ETT ETP
  SFRUNOFF UDRUNOFF`` (six significant digits; read by
  :func:`read_legacy_text_output`), or
* the **full-precision state dump** of the project's reference runs
  (:func:`noahtibet.legacy_output.read_state_dump`: ``YYYYMMDDHHmm STC SMC
  SH2O SNOWH SNEQV T1``).

The format is recognised from the first line.  Steps are matched by time
stamp.  For soil temperature and moisture (total and liquid) it reports per
layer the RMSE, the bias (noahtibet minus legacy) and the largest absolute
difference with its step; for the single-level variables the same; and the
**first step where they diverge**: the first step where some value differs by
more than ``rtol * |legacy| + q``, with ``q`` half a unit in the sixth
significant digit of the legacy value for the text output (its rounding) and 0
for the full-precision dump (steps are counted from 0, the first common time
stamp; the overall first divergence is the earliest over the state
variables STC, SMC, SH2O, SNOWH, SNEQV and T1).  It also reports the largest relative difference
over the first ``first_steps`` steps and checks the column model's acceptance
figures (issue 2: first 30 steps within 1e-6 relative, per-layer STC RMSE at
most 0.05 K).  noahtibet's fluxes are converted to the legacy units (runoff
kg m-2 s-1 -> m s-1); EC, EDIR, ETT and ETP are W m-2 in both.

Outputs (``--out``, default ``legacy_comparison``): ``legacy_comparison.html``
(the report style of :mod:`noahtibet.report`, with time-series plots),
``legacy_comparison.json`` and ``legacy_comparison.csv`` (per variable and
layer), written atomically.

``noahtibet compare-products A B``
-----------------------------------
Compares two product sets year by year.  Each is a directory of yearly
GeoTIFFs (year from the ``year`` tag, else the last 4-digit year in the file
name), a single GeoTIFF, or a netCDF product with ``frozen_ground_class(year,
lat, lon)`` (noahtibet's, :mod:`noahtibet.products`).  Classes 1 permafrost, 2
seasonally frozen, 3 non-frozen; every other value is no data.  When B is on
another raster than A it is resampled onto A's by nearest neighbour: every pixel
of A takes the class of the pixel of B that contains its centre (centres
transformed exactly with PROJ; the rule of :mod:`noahtibet.products`).
Per common year: confusion matrix (rows A, columns B), kappa, overall
accuracy, quantity and allocation disagreement (3 classes and permafrost / not,
:mod:`noahtibet.validation`), the area of every class in A and B and their
difference (pixel areas: exact on the sphere for geographic rasters; the
constant pixel area for projected rasters, exact only for equal-area
projections, which the report notes), and difference maps.  Outputs
(``--out``, default ``products_comparison``): ``products_comparison.html``,
``.json``, ``.csv`` (per year) and ``confusion_matrices.csv``.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .report import (Section, absent, esc, figure_html, fmt, kv_table, new_figure, page, table,
                     write_csv_atomic, write_json_atomic, write_text_atomic, file_fingerprint,
                     jsonable, single_map_figure, _crop)
from .validation import agreement, confusion_matrix, to_binary

log = logging.getLogger("noahtibet")

#: Single-level columns of the legacy text output, in order, with units.
TEXT_SCALARS = (("SNOWH", "m"), ("SNEQV", "m"), ("EC", "W m-2"), ("EDIR", "W m-2"),
                ("ETT", "W m-2"), ("ETP", "W m-2"), ("SFRUNOFF", "m s-1"),
                ("UDRUNOFF", "m s-1"))
LAYERED = (("STC", "K"), ("SMC", "m3 m-3"), ("SH2O", "m3 m-3"))
#: Acceptance figures of the column model (issue 2).
ACCEPT_FIRST_STEPS = 30
ACCEPT_RTOL = 1e-6
ACCEPT_STC_RMSE = 0.05
#: State variables: the ones the acceptance figures and the overall first divergence use
#: (the fluxes are compared and reported too).
STATE_VARIABLES = ("STC", "SMC", "SH2O", "SNOWH", "SNEQV", "T1")


# ==========================================================================================
# The legacy text output
# ==========================================================================================

def fortran_g(value: float, width: int = 15, digits: int = 6) -> str:
    """``value`` as Fortran's ``Gw.d`` edit descriptor writes it (gfortran).

    After rounding to ``digits`` significant digits, a value with
    0.1 <= |x| < 10**digits is written as ``F(w-4).(d-k)`` followed by four
    blanks (k: number of integer digits), anything else (and 0 as F) as
    ``Ew.d`` with a 0.ddd mantissa; exponents beyond 99 drop the ``E``.
    """
    x = float(value)
    if not math.isfinite(x):
        return ("NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")).rjust(width)
    if x == 0.0:
        return (f"{x:{width - 4}.{digits - 1}f}" + " " * 4)
    s = f"{abs(x):.{digits - 1}e}"
    mant, exp = s.split("e")
    e10 = int(exp)
    k = e10 + 1                      # integer digits of the rounded value
    if 0 <= k <= digits:    # '#': keep the decimal point of 'F' with no decimals ("999999.")
        return f"{x:#{width - 4}.{digits - k}f}" + " " * 4
    mdigits = mant.replace(".", "")
    e = e10 + 1
    exp_text = f"E{e:+03d}" if abs(e) <= 99 else f"{e:+04d}"
    text = ("-" if x < 0 else "") + "0." + mdigits + exp_text
    return text.rjust(width)


@dataclass
class LegacyOutput:
    """A legacy run's output, from either format."""

    path: str
    kind: str                  # "text" (G15.6) or "state dump" (full precision)
    time: np.ndarray           # datetime64[m]
    stc: np.ndarray            # (nstep, nlay)
    smc: np.ndarray
    sh2o: np.ndarray
    scalars: dict = field(default_factory=dict)   # name -> (nstep,)
    units: dict = field(default_factory=dict)

    @property
    def nlay(self) -> int:
        return int(self.stc.shape[1])

    @property
    def full_precision(self) -> bool:
        return self.kind != "text"


def _open_text(path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path, "rt")


_E_NO_LETTER = re.compile(r"^([+-]?\d*\.\d*)([+-]\d{3})$")


def _fortran_float(text: str) -> float:
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        m = _E_NO_LETTER.match(t)
        if m:
            return float(f"{m[1]}E{m[2]}")
        raise


def _fields(line: str, n: int) -> list[str]:
    return [line[i:i + 15] for i in range(0, n * 15, 15)]


def read_legacy_text_output(path) -> LegacyOutput:
    """Read the legacy driver's text output (layout in the module documentation)."""
    path = str(path)
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    if len(lines) < 4:
        raise InputError("has fewer than 4 lines (3 header lines and at least one step)",
                         path=path, field="header")
    names_line = lines[0].rstrip()
    ncols = int(math.ceil(len(names_line) / 15))
    names = [f.strip() for f in _fields(names_line.ljust(ncols * 15), ncols)]
    if not names or names[0].lower() not in ("times", "time", "date"):
        raise InputError("first header field must be 'Times' (the legacy text output)",
                         path=path, line=1, field="Times", value=names[0] if names else "")
    units = [f.strip() for f in _fields(lines[1].ljust(ncols * 15), ncols)]
    layered = {}
    scal = []
    for j, name in enumerate(names[1:], start=1):
        m = re.fullmatch(r"([A-Z0-9_]+)\(\s*(\d+)\)", name.replace(" ", "").upper())
        if m:
            layered.setdefault(m[1], []).append((int(m[2]), j))
        elif name:
            scal.append((name.upper(), j))
    for var, _ in LAYERED:
        if var not in layered:
            raise InputError(f"header has no {var}( 1).. columns", path=path, line=1,
                             field=var)
    nlay = len(layered["STC"])
    for var, _ in LAYERED:
        idx = [k for k, _ in layered[var]]
        if idx != list(range(1, nlay + 1)):
            raise InputError(f"{var} columns are not layers 1..{nlay}", path=path, line=1,
                             field=var, value=idx)
    stamps, rows = [], []
    for lineno, line in enumerate(lines[3:], start=4):
        if not line.strip():
            continue
        stamp = line[:15].strip()
        m = re.fullmatch(r"(\d{8}) (\d{2}):(\d{2})", stamp)
        if not m:
            raise InputError("is not a 'YYYYMMDD HH:mm' time stamp", path=path, line=lineno,
                             field="Times", value=stamp)
        body = line[15:].rstrip()
        fields = _fields(body.ljust((ncols - 1) * 15), ncols - 1)
        if len(body) > (ncols - 1) * 15 + 1 or not fields[-1].strip():
            # not fixed width (e.g. edited by hand): fall back to blanks as separators
            fields = body.split()
        if len(fields) != ncols - 1:
            raise InputError(f"has {len(fields)} values, the header names {ncols - 1}",
                             path=path, line=lineno, field="row")
        vals = []
        for j, f in enumerate(fields, start=1):
            try:
                vals.append(_fortran_float(f))
            except ValueError:
                raise InputError("is not a number", path=path, line=lineno,
                                 field=names[j] if j < len(names) else f"column {j + 1}",
                                 value=f.strip()) from None
        stamps.append(f"{m[1][:4]}-{m[1][4:6]}-{m[1][6:8]}T{m[2]}:{m[3]}")
        rows.append(vals)
    if not rows:
        raise InputError("has no data rows", path=path, field="rows")
    data = np.array(rows)

    def cols(var):
        return data[:, [j - 1 for _, j in sorted(layered[var])]]

    scalars = {name: data[:, j - 1] for name, j in scal}
    unit_of = {names[j]: units[j] for j in range(len(names))}
    u = {var: unit_of.get(f"{var}( 1)", "") for var, _ in LAYERED}
    u.update({name: unit_of.get(name, "") for name, _ in scal})
    return LegacyOutput(path, "text", np.array(stamps, dtype="datetime64[m]"), cols("STC"),
                        cols("SMC"), cols("SH2O"), scalars, u)


def write_legacy_text_output(path, time, stc, smc, sh2o, scalars: dict) -> Path:
    """Write the legacy driver's text output layout (for tests and exchange).

    ``scalars``: name -> (nstep,) series, written in :data:`TEXT_SCALARS` order
    (missing ones are written as the legacy ``badval`` -1e36).
    """
    time = np.asarray(time, dtype="datetime64[m]")
    stc, smc, sh2o = (np.asarray(a, dtype=float) for a in (stc, smc, sh2o))
    nlay = stc.shape[1]
    names = ["Times"] + [f"{v}({k:2d})" for v, _ in LAYERED for k in range(1, nlay + 1)] + \
        [n for n, _ in TEXT_SCALARS]
    units = ["YYYYMMDD HH:mm"] + [u for _, u in LAYERED for _ in range(nlay)] + \
        [u for _, u in TEXT_SCALARS]
    units = [u.replace("m3 m-3", "m{3} m{-3}").replace("W m-2", "W m{-2}")
             .replace("m s-1", "m s{-1}") for u in units]
    fmts = ["I8,1X,2(I2,1X)"] + ["G15.6"] * (len(names) - 1)
    cols = [stc, smc, sh2o]
    series = [np.asarray(scalars.get(n, np.full(time.size, -1e36)), dtype=float)
              for n, _ in TEXT_SCALARS]
    out = ["".join(f"{n:<15}" for n in names).rstrip(),
           "".join(f"{u:<15}" for u in units).rstrip(),
           "".join(f"{f:<15}" for f in fmts).rstrip()]
    for i, t in enumerate(time):
        s = str(t)
        stamp = f"{s[0:4]}{s[5:7]}{s[8:10]} {s[11:13]}:{s[14:16]} "
        vals = [v for c in cols for v in c[i]] + [c[i] for c in series]
        out.append(stamp + "".join(fortran_g(v) for v in vals))
    return write_text_atomic(path, "\n".join(out) + "\n")


def read_legacy_output(path, nlay: int | None = None) -> LegacyOutput:
    """Read either legacy format, recognised from the first non-blank line."""
    from .legacy_output import read_state_dump

    path = str(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path)
    with _open_text(path) as fh:
        first = ""
        for line in fh:
            if line.strip():
                first = line
                break
    token = first.split()[0] if first.split() else ""
    if re.fullmatch(r"\d{12}", token):
        d = read_state_dump(path, nlay)
        return LegacyOutput(path, "state dump", d.time, d.stc, d.smc, d.sh2o,
                            {"SNOWH": d.snowh, "SNEQV": d.sneqv, "T1": d.t1},
                            {"STC": "K", "SMC": "m3 m-3", "SH2O": "m3 m-3", "SNOWH": "m",
                             "SNEQV": "m", "T1": "K"})
    if token.lower() in ("times", "time"):
        return read_legacy_text_output(path)
    raise InputError("is neither the legacy text output (first field 'Times') nor a "
                     "full-precision state dump (rows 'YYYYMMDDHHmm ...')", path=path, line=1,
                     field="format", value=first.strip()[:40])


# ==========================================================================================
# Point comparison
# ==========================================================================================

def half_ulp_g6(values) -> np.ndarray:
    """Half a unit in the 6th significant digit of each value (0 for 0): the rounding of G15.6."""
    v = np.abs(np.asarray(values, dtype=float))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log10(np.where(v > 0, v, 1.0)))
    return np.where(v > 0, 0.5 * 10.0 ** (e - 5), 0.0)


@dataclass
class PointComparison:
    forcing_file: str
    legacy: LegacyOutput
    time: np.ndarray                    # common steps
    ours: dict                          # name -> (nstep,[nlay])
    theirs: dict
    depths: np.ndarray
    rtol: float
    first_steps: int
    stats: dict                         # name -> per-layer / scalar statistics
    first_divergence: dict              # name -> {"step", "time", "layer", ...} or None
    first_steps_max_rel: dict           # name -> float
    steps_only_ours: int
    steps_only_legacy: int
    settings: dict

    @property
    def divergence(self) -> dict | None:
        """The earliest divergence over the state variables."""
        hits = [(v["step"], k, v) for k, v in self.first_divergence.items()
                if v is not None and k in STATE_VARIABLES]
        if not hits:
            return None
        step, name, v = min(hits, key=lambda h: h[0])
        return {"variable": name, **v}

    @property
    def max_stc_rmse(self) -> float:
        return float(np.max(self.stats["STC"]["rmse"]))

    def acceptance(self) -> dict:
        """The column model's agreement figures and whether they are met."""
        first = max((v for k, v in self.first_steps_max_rel.items()
                     if k in STATE_VARIABLES and np.isfinite(v)), default=0.0)
        out = {"first_steps": self.first_steps, "first_steps_max_relative_difference": first,
               "first_steps_limit": ACCEPT_RTOL, "max_stc_rmse_K": self.max_stc_rmse,
               "stc_rmse_limit_K": ACCEPT_STC_RMSE,
               "stc_rmse_ok": self.max_stc_rmse <= ACCEPT_STC_RMSE}
        if self.legacy.full_precision:
            out["first_steps_ok"] = first <= ACCEPT_RTOL
        else:   # six significant digits: agreement within the rounding of the output
            ok = True
            for name, theirs in self.theirs.items():
                if name not in STATE_VARIABLES:
                    continue
                a = self.ours[name][:self.first_steps]
                b = theirs[:self.first_steps]
                ok &= bool(np.all(np.abs(a - b) <= ACCEPT_RTOL * np.abs(b) + half_ulp_g6(b)))
            out["first_steps_ok"] = ok
            out["note"] = ("legacy text output has six significant digits: the first steps "
                           "are checked against 1e-6 relative plus the output's rounding")
        return out


def _stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = a - b
    absd = np.abs(d)
    if d.ndim == 1:
        d, absd = d[:, None], absd[:, None]
    imax = np.argmax(absd, axis=0)
    return {"rmse": np.sqrt(np.mean(d * d, axis=0)), "bias": d.mean(axis=0),
            "max_abs_diff": absd.max(axis=0), "step_of_max": imax}


def compare_series(time, ours: dict, legacy: LegacyOutput, rtol: float = ACCEPT_RTOL,
                   first_steps: int = ACCEPT_FIRST_STEPS, depths=None,
                   forcing_file: str = "", settings: dict | None = None) -> PointComparison:
    """Compare noahtibet series ``ours`` (name -> (nstep[, nlay]) at ``time``) with the legacy output."""
    time = np.asarray(time).astype("datetime64[m]")
    common, ia, ib = np.intersect1d(time, legacy.time, return_indices=True)
    if common.size == 0:
        raise InputError(f"no time stamp in common with the noahtibet run ({time[0]} .. "
                         f"{time[-1]})", path=legacy.path, field="time")
    theirs_all = {"STC": legacy.stc, "SMC": legacy.smc, "SH2O": legacy.sh2o, **legacy.scalars}
    names = [n for n in theirs_all if n in ours]
    if legacy.nlay != ours["STC"].shape[1]:
        raise InputError(f"legacy output has {legacy.nlay} layers, the forcing file's column "
                         f"{ours['STC'].shape[1]}", path=legacy.path, field="STC")
    o = {n: np.asarray(ours[n], dtype=float)[ia] for n in names}
    t = {n: np.asarray(theirs_all[n], dtype=float)[ib] for n in names}
    stats, first_div, rel = {}, {}, {}
    for n in names:
        stats[n] = _stats(o[n], t[n])
        q = 0.0 if legacy.full_precision else half_ulp_g6(t[n])
        tol = rtol * np.abs(t[n]) + q
        bad = np.abs(o[n] - t[n]) > tol
        if bad.ndim == 1:
            bad = bad[:, None]
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            s = int(rows[0])
            layer = int(np.flatnonzero(bad[s])[0])
            oo = o[n][s] if o[n].ndim == 1 else o[n][s, layer]
            tt = t[n][s] if t[n].ndim == 1 else t[n][s, layer]
            first_div[n] = {"step": s, "time": str(common[s]),
                            "layer": layer + 1 if o[n].ndim == 2 else None,
                            "noahtibet": float(oo), "legacy": float(tt)}
        else:
            first_div[n] = None
        a, b = o[n][:first_steps], t[n][:first_steps]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
        r = np.where(a == b, 0.0, r)
        rel[n] = float(np.max(r)) if r.size else math.nan
    nl = legacy.nlay
    return PointComparison(
        str(forcing_file), legacy, common, o, t,
        np.asarray(depths if depths is not None else np.arange(1, nl + 1), dtype=float),
        rtol, first_steps, stats, first_div, rel, int(time.size - common.size),
        int(legacy.time.size - common.size), settings or {})


def run_noahtibet_point(forcing_file, sfcdif_option: int | None = None,
                        legacy_quirks: bool = True, record_pass: int | None = None):
    """Run noahtibet on a legacy point-forcing file; return (times, series, depths, case)."""
    import dataclasses

    from .legacy_forcing import read_point_file
    from .point import options_for_case, run_point

    case = read_point_file(forcing_file)
    if sfcdif_option is not None:
        case = dataclasses.replace(case, sfcdif_option=int(sfcdif_option))
    times, rec, depths = run_point(case, options_for_case(case, legacy_quirks=legacy_quirks),
                                   record_pass=record_pass)
    series = {
        "STC": rec.stc[:, 0, :], "SMC": rec.smc[:, 0, :], "SH2O": rec.sh2o[:, 0, :],
        "SNOWH": rec.output("snow_depth")[:, 0], "SNEQV": rec.output("snow_water")[:, 0],
        "T1": rec.output("skin_temperature")[:, 0],
        "EC": rec.output("ec")[:, 0], "EDIR": rec.output("edir")[:, 0],
        "ETT": rec.output("ett")[:, 0], "ETP": rec.output("potential_evap")[:, 0],
        # kg m-2 s-1 -> m s-1 of water
        "SFRUNOFF": rec.output("surface_runoff")[:, 0] / 1000.0,
        "UDRUNOFF": rec.output("drainage")[:, 0] / 1000.0,
    }
    return times, series, depths, case


def compare_legacy(forcing_file, legacy_output, out_dir="legacy_comparison", *,
                   sfcdif_option: int | None = None, legacy_quirks: bool = True,
                   rtol: float = ACCEPT_RTOL, first_steps: int = ACCEPT_FIRST_STEPS,
                   write: bool = True, record_pass: int | None = None) -> PointComparison:
    """Run noahtibet on ``forcing_file``, compare with ``legacy_output``, write the report."""
    legacy = read_legacy_output(legacy_output)
    times, series, depths, case = run_noahtibet_point(forcing_file, sfcdif_option, legacy_quirks,
                                                      record_pass)
    passes = int(case.loop_for_a_while) + 1
    settings = {"sfcdif_option": int(case.sfcdif_option), "legacy_quirks": bool(legacy_quirks),
                "spinup_pass": passes - 1 if record_pass is None else int(record_pass),
                "spinup_passes": passes,
                "rtol": rtol, "first_steps": first_steps,
                "model_timestep_s": int(case.model_timestep),
                "latitude": case.latitude, "longitude": case.longitude,
                "layers": int(case.n_layers)}
    cmp = compare_series(times, series, legacy, rtol, first_steps, depths,
                         forcing_file=str(forcing_file), settings=settings)
    if write:
        write_point_report(cmp, Path(out_dir))
    return cmp


# ---- point report -----------------------------------------------------------------------------

def _layers_to_plot(nlay: int) -> list[int]:
    if nlay <= 4:
        return list(range(nlay))
    return sorted({0, nlay // 4, nlay // 2, nlay - 1})


def _series_figure(cmp: PointComparison, name: str, unit: str):
    t = cmp.time.astype("datetime64[s]").astype(object)
    o, th = cmp.ours[name], cmp.theirs[name]
    fig = new_figure(11, 5.2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    if o.ndim == 2:
        layers = _layers_to_plot(o.shape[1])
        colours = ["#1f3b57", "#2c7bb6", "#1a9641", "#d7191c"]
        for c, k in zip(colours, layers):
            lab = f"layer {k + 1} ({cmp.depths[k]:.2f} m)"
            ax1.plot(t, th[:, k], "-", color=c, lw=2.2, alpha=0.35)
            ax1.plot(t, o[:, k], "-", color=c, lw=0.9, label=lab)
            ax2.plot(t, o[:, k] - th[:, k], "-", color=c, lw=0.9)
        ax1.plot([], [], "-", color="#888", lw=2.2, alpha=0.35, label="legacy (wide, pale)")
    else:
        ax1.plot(t, th, "-", color="#2c7bb6", lw=2.2, alpha=0.35, label="legacy")
        ax1.plot(t, o, "-", color="#1f3b57", lw=0.9, label="noahtibet")
        ax2.plot(t, o - th, "-", color="#d7191c", lw=0.9)
    ax1.set_ylabel(f"{name} [{unit}]")
    ax2.set_ylabel("noahtibet - legacy")
    ax1.legend(fontsize=8, ncol=3)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig


def _profile_figure(cmp: PointComparison):
    fig = new_figure(11, 3.8)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (name, unit) in zip(axes, LAYERED):
        s = cmp.stats[name]
        floor = 1e-16   # log axis: exact zeros drawn at the floor
        ax.plot(np.maximum(s["rmse"], floor), cmp.depths, "o-", color="#2c7bb6", ms=3,
                label="RMSE")
        ax.plot(np.maximum(np.abs(s["bias"]), floor), cmp.depths, "s--", color="#fdae61", ms=3,
                label="|bias|")
        ax.plot(np.maximum(s["max_abs_diff"], floor), cmp.depths, "^:", color="#d7191c", ms=3,
                label="max |diff|")
        if name == "STC":
            ax.axvline(ACCEPT_STC_RMSE, color="#555", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{name} [{unit}]", fontsize=11)
        ax.set_xlabel("difference")
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    axes[0].set_ylabel("node depth [m]")
    axes[0].legend(fontsize=8)
    return fig


def write_point_report(cmp: PointComparison, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    units = {**dict(LAYERED), **dict(TEXT_SCALARS), "T1": "K", **cmp.legacy.units}
    acc = cmp.acceptance()
    div = cmp.divergence
    rows_csv, data_json = [], {}
    for name, s in cmp.stats.items():
        layered = cmp.ours[name].ndim == 2
        fd = cmp.first_divergence[name]
        data_json[name] = {"unit": units.get(name, ""), "rmse": s["rmse"], "bias": s["bias"],
                           "max_abs_diff": s["max_abs_diff"], "step_of_max": s["step_of_max"],
                           "first_divergence": fd,
                           "first_steps_max_relative_difference": cmp.first_steps_max_rel[name]}
        for k in range(len(s["rmse"])):
            rows_csv.append((name, k + 1 if layered else "",
                             round(float(cmp.depths[k]), 4) if layered else "",
                             units.get(name, ""), float(s["rmse"][k]), float(s["bias"][k]),
                             float(s["max_abs_diff"][k]), int(s["step_of_max"][k]),
                             str(cmp.time[int(s["step_of_max"][k])]),
                             fd["step"] if fd else "", fd["time"] if fd else ""))
    result = {"forcing_file": cmp.forcing_file, "legacy_output": cmp.legacy.path,
              "legacy_format": cmp.legacy.kind, "steps_compared": int(cmp.time.size),
              "steps_only_noahtibet": cmp.steps_only_ours,
              "steps_only_legacy": cmp.steps_only_legacy, "settings": cmp.settings,
              "first_divergence": div, "acceptance": acc, "variables": data_json,
              "inputs": [file_fingerprint(cmp.forcing_file), file_fingerprint(cmp.legacy.path)]}
    write_json_atomic(out_dir / "legacy_comparison.json", result)
    write_csv_atomic(out_dir / "legacy_comparison.csv",
                     ["variable", "layer", "depth_m", "unit", "rmse", "bias", "max_abs_diff",
                      "step_of_max", "time_of_max", "first_divergence_step",
                      "first_divergence_time"], rows_csv)
    # ---- HTML
    good = "<b style='color:#1a9641'>met</b>"
    bad = "<b style='color:#d7191c'>not met</b>"
    summary = [
        ("forcing file", f"<code>{esc(cmp.forcing_file)}</code>"),
        ("legacy output", f"<code>{esc(cmp.legacy.path)}</code> ({esc(cmp.legacy.kind)})"),
        ("steps compared", f"{cmp.time.size:,} ({esc(cmp.time[0])} &ndash; "
                           f"{esc(cmp.time[-1])})"),
        ("steps in one run only", f"noahtibet {cmp.steps_only_ours}, legacy "
                                  f"{cmp.steps_only_legacy}"),
        ("settings", esc(", ".join(f"{k} = {v}" for k, v in cmp.settings.items()))),
        ("first divergence", "none (every step within tolerance)" if div is None else
         f"step {div['step']} ({esc(div['time'])}), {esc(div['variable'])}"
         f"{' layer ' + str(div['layer']) if div.get('layer') else ''}: noahtibet "
         f"{div['noahtibet']:.9g}, legacy {div['legacy']:.9g}"),
        (f"first {cmp.first_steps} steps: largest relative difference",
         f"{acc['first_steps_max_relative_difference']:.3g} (limit {ACCEPT_RTOL:g}) "
         f"{good if acc['first_steps_ok'] else bad}"),
        ("largest per-layer STC RMSE", f"{acc['max_stc_rmse_K']:.4f} K (limit "
                                       f"{ACCEPT_STC_RMSE} K) "
                                       f"{good if acc['stc_rmse_ok'] else bad}"),
    ]
    tol_note = ("Tolerance for divergence: |noahtibet - legacy| &gt; rtol&middot;|legacy|"
                f" with rtol = {cmp.rtol:g}" + ("" if cmp.legacy.full_precision else
                                                 " plus half a unit in the sixth significant "
                                                 "digit (the text output's rounding)") + ".")
    if acc.get("note"):
        tol_note += " " + esc(acc["note"]) + "."
    sections = [Section("summary", "Summary", kv_table(summary)
                        + f"<p class='note'>{tol_note}</p>")]
    lay_rows = []
    for k in range(cmp.legacy.nlay):
        row = [str(k + 1), fmt(cmp.depths[k])]
        for name, _ in LAYERED:
            s = cmp.stats[name]
            row += [f"{s['rmse'][k]:.3g}", f"{s['bias'][k]:.3g}", f"{s['max_abs_diff'][k]:.3g}"]
        lay_rows.append(row)
    hdr = ["layer", "depth [m]"] + [f"{n} {w}" for n, _ in LAYERED
                                    for w in ("RMSE", "bias", "max |diff|")]
    sections.append(Section("layers", "Soil temperature and moisture per layer",
                            figure_html(_profile_figure(cmp), "per-layer differences")
                            + table(hdr, lay_rows, left_cols=())))
    sc_rows = []
    for name, s in cmp.stats.items():
        if cmp.ours[name].ndim == 2:
            continue
        fd = cmp.first_divergence[name]
        sc_rows.append((esc(name), esc(units.get(name, "")), f"{s['rmse'][0]:.3g}",
                        f"{s['bias'][0]:.3g}", f"{s['max_abs_diff'][0]:.3g}",
                        f"{fd['step']} ({esc(fd['time'])})" if fd else "none"))
    div_rows = [(esc(n), f"{v['step']}" if v else "none", esc(v["time"]) if v else "",
                 str(v["layer"]) if v and v.get("layer") else "",
                 f"{cmp.first_steps_max_rel[n]:.3g}")
                for n, v in cmp.first_divergence.items()]
    sections.append(Section("single", "Single-level variables and first divergence",
                            table(["variable", "unit", "RMSE", "bias", "max |diff|",
                                   "first divergence"], sc_rows)
                            + table(["variable", "first divergent step", "time", "layer",
                                     f"max relative difference, first {cmp.first_steps} steps"],
                                    div_rows)))
    ts = []
    for name, unit in LAYERED:
        ts.append(f"<h3>{esc(name)}</h3>" + figure_html(_series_figure(cmp, name, unit),
                                                        f"{name} time series"))
    for name in ("SNOWH", "SNEQV", "T1"):
        if name in cmp.ours:
            ts.append(f"<h3>{esc(name)}</h3>" + figure_html(
                _series_figure(cmp, name, units.get(name, "")), f"{name} time series"))
    sections.append(Section("series", "Time series", "".join(ts)))
    text = page("noahtibet vs the legacy model: point run",
                [f"{esc(Path(cmp.forcing_file).name)} vs {esc(Path(cmp.legacy.path).name)}"],
                sections)
    write_text_atomic(out_dir / "legacy_comparison.html", text)
    log.info("legacy comparison written to %s", out_dir / "legacy_comparison.html")
    return result


# ==========================================================================================
# Product sets
# ==========================================================================================

@dataclass
class ProductSet:
    source: str
    years: dict          # year -> (path, index or None)
    crs: object          # rasterio CRS
    transform: object    # affine, north-up
    shape: tuple
    kind: str            # "geotiff" or "netcdf"

    def read(self, year: int) -> np.ndarray:
        """(height, width) uint8 class map, north-up; values other than 1/2/3 -> 255."""
        path, idx = self.years[year]
        if self.kind == "geotiff":
            import rasterio

            with rasterio.open(path) as src:
                a = src.read(1)
        else:
            import netCDF4

            with netCDF4.Dataset(path) as nc:
                nc.set_auto_mask(False)
                a = np.array(nc["frozen_ground_class"][idx])
                lat = np.array(nc["lat"][:])
            if lat[0] < lat[-1]:
                a = a[::-1]
        a = np.asarray(a)
        return np.where(np.isin(a, (1, 2, 3)), a, 255).astype(np.uint8)


def _tif_year(path) -> int | None:
    import rasterio

    with rasterio.open(path) as src:
        y = src.tags().get("year")
    if y and y.strip().isdigit():
        return int(y)
    m = re.findall(r"(?<!\d)(1[89]\d\d|2[01]\d\d)(?!\d)", Path(path).stem)
    return int(m[-1]) if m else None


def open_product_set(path) -> ProductSet:
    """A directory of yearly GeoTIFFs, one GeoTIFF, or a netCDF product (see the module doc)."""
    import rasterio

    p = Path(path)
    if not p.exists():
        raise InputError("not found", path=str(p))
    if p.is_file() and p.suffix.lower() in (".nc", ".nc4"):
        import netCDF4
        from affine import Affine
        from rasterio.crs import CRS

        with netCDF4.Dataset(p) as nc:
            if "frozen_ground_class" not in nc.variables:
                raise InputError("has no variable frozen_ground_class", path=str(p),
                                 field="frozen_ground_class")
            v = nc["frozen_ground_class"]
            if v.ndim != 3:
                raise InputError("frozen_ground_class must be (year, lat, lon)", path=str(p),
                                 field="frozen_ground_class", value=v.dimensions)
            years = [int(y) for y in np.array(nc["year"][:])]
            lat = np.array(nc["lat"][:], dtype=float)
            lon = np.array(nc["lon"][:], dtype=float)
        dlon = abs(lon[1] - lon[0]) if lon.size > 1 else 1.0
        dlat = abs(lat[1] - lat[0]) if lat.size > 1 else 1.0
        transform = Affine(dlon, 0, lon.min() - dlon / 2, 0, -dlat, lat.max() + dlat / 2)
        return ProductSet(str(p), {y: (p, i) for i, y in enumerate(years)}, CRS.from_epsg(4326),
                          transform, (lat.size, lon.size), "netcdf")
    files = [p] if p.is_file() else sorted(list(p.glob("*.tif")) + list(p.glob("*.tiff")))
    if not files:
        raise InputError("has no GeoTIFF files (*.tif) and is not a netCDF product",
                         path=str(p))
    years, ref = {}, None
    for f in files:
        y = _tif_year(f)
        if y is None:
            raise InputError("has no year (no 'year' tag, no year in the file name)",
                             path=str(f), field="year")
        if y in years:
            raise InputError(f"year {y} also comes from {years[y][0]}", path=str(f),
                             field="year", value=y)
        with rasterio.open(f) as src:
            geo = (src.crs, src.transform, (src.height, src.width))
        if ref is None:
            ref = geo
        elif geo[0] != ref[0] or not geo[1].almost_equals(ref[1]) or geo[2] != ref[2]:
            raise InputError("is on another raster (CRS, transform or size) than "
                             f"{files[0].name}; the files of a set must share one",
                             path=str(f), field="georeference")
        years[y] = (f, None)
    return ProductSet(str(p), years, ref[0], ref[1], ref[2], "geotiff")


def _pixel_index(a: ProductSet, b: ProductSet) -> np.ndarray:
    """(height, width) of A: flat index of the pixel of B that contains each A pixel centre
    (exact PROJ transformation of the centres, no approximation), -1 outside B."""
    from rasterio.warp import transform as warp_transform

    ta, tb = a.transform, b.transform
    inv = ~tb
    h, w = a.shape
    out = np.full((h, w), -1, dtype=np.int64)
    xc = ta.c + ta.a * (np.arange(w) + 0.5)
    rows_per_strip = max(1, 1_000_000 // max(w, 1))
    for r0 in range(0, h, rows_per_strip):
        r1 = min(h, r0 + rows_per_strip)
        yc = ta.f + ta.e * (np.arange(r0, r1) + 0.5)
        xx, yy = np.meshgrid(xc, yc)
        if a.crs != b.crs:
            x, y = warp_transform(a.crs, b.crs, xx.ravel(), yy.ravel())
            x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        else:
            x, y = xx.ravel(), yy.ravel()
        col = np.floor(inv.a * x + inv.b * y + inv.c + 1e-9)
        row = np.floor(inv.d * x + inv.e * y + inv.f + 1e-9)
        ok = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < b.shape[1]) & \
            (row >= 0) & (row < b.shape[0])
        idx = np.where(ok, row * b.shape[1] + col, -1).astype(np.int64)
        out[r0:r1] = idx.reshape(r1 - r0, w)
    return out


def _regrid_to(b_map, index: np.ndarray) -> np.ndarray:
    """B's classes on A's pixels (nearest: the B pixel containing the A pixel centre)."""
    flat = np.append(np.asarray(b_map, dtype=np.uint8).ravel(), np.uint8(255))
    return flat[index]


def pixel_areas_km2(ps: ProductSet) -> tuple[np.ndarray, str]:
    """(height, width) or broadcastable pixel areas [km2] and a note on their accuracy."""
    from .grid import AUTHALIC_RADIUS

    t = ps.transform
    h, w = ps.shape
    if ps.crs is not None and ps.crs.is_geographic:
        north = t.f + t.e * np.arange(h)
        south = north + t.e
        band = (AUTHALIC_RADIUS ** 2 * math.radians(abs(t.a))
                * np.abs(np.sin(np.radians(north)) - np.sin(np.radians(south)))) / 1e6
        return band[:, None] * np.ones((1, w)), "geographic raster: exact areas on the sphere"
    area = abs(t.a * t.e) / 1e6
    proj = (ps.crs.to_proj4() if ps.crs is not None else "") or ""
    equal = any(f"+proj={k}" in proj for k in ("aea", "laea", "cea", "moll", "sinu", "eck4"))
    note = ("equal-area projection: constant pixel area" if equal else
            "NOT an equal-area projection: areas use the nominal pixel area and are approximate")
    return np.full((1, 1), area), note


def compare_products(a_path, b_path, out_dir="products_comparison", *, labels=("A", "B"),
                     years=None, max_maps: int = 4, write: bool = True) -> dict:
    """Compare two product sets year by year (see the module documentation)."""
    a, b = open_product_set(a_path), open_product_set(b_path)
    common = sorted(set(a.years) & set(b.years))
    if years is not None:
        missing = [y for y in years if y not in common]
        if missing:
            raise InputError(f"year(s) {missing} are not in both sets (common: "
                             f"{common[:1] + ['...'] + common[-1:] if common else 'none'})",
                             path=str(b_path), field="years", value=missing)
        common = sorted(years)
    if not common:
        raise InputError(f"no year in common with {a_path} ({sorted(a.years)})",
                         path=str(b_path), field="years", value=sorted(b.years))
    same_grid = (a.crs == b.crs and a.transform.almost_equals(b.transform)
                 and a.shape == b.shape)
    areas, area_note = pixel_areas_km2(a)
    index = None if same_grid else _pixel_index(a, b)
    per_year, cms, maps = [], [], {}
    for y in common:
        am = a.read(y)
        bm = b.read(y)
        if not same_grid:
            bm = _regrid_to(bm, index)
        cm3 = confusion_matrix(am, bm)
        cm2 = confusion_matrix(to_binary(am), to_binary(bm), (1, 2))
        g3, g2 = agreement(cm3), agreement(cm2)
        w = np.broadcast_to(areas, am.shape)
        row = {"year": y, **{f"{k}_3class": v for k, v in g3.items()},
               **{f"{k}_binary": v for k, v in g2.items()}}
        for c, name in ((1, "permafrost"), (2, "seasonally_frozen"), (3, "non_frozen")):
            aa, bb = float(w[am == c].sum()), float(w[bm == c].sum())
            row[f"area_{name}_km2_{labels[0]}"] = aa
            row[f"area_{name}_km2_{labels[1]}"] = bb
            row[f"area_{name}_km2_difference"] = bb - aa
        row["pixels_compared"] = int(cm3.sum())
        row["pixels_differing"] = int(cm3.sum() - np.trace(cm3))
        per_year.append(row)
        for i, ca in enumerate((1, 2, 3)):
            for j, cb in enumerate((1, 2, 3)):
                cms.append((y, ca, cb, int(cm3[i, j])))
        maps[y] = (am, bm)
    # years to map: first, last, and the worst binary kappa
    kap = {r["year"]: r["kappa_binary"] for r in per_year}
    finite = [y for y in common if np.isfinite(kap[y])]
    chosen = [common[0], common[-1]]
    if finite:
        chosen.append(min(finite, key=lambda y: kap[y]))
    chosen = sorted(set(chosen))[:max_maps]
    result = {"a": {"source": a.source, "label": labels[0], "kind": a.kind,
                    "years": sorted(a.years), "crs": _crs_text(a.crs), "shape": a.shape},
              "b": {"source": b.source, "label": labels[1], "kind": b.kind,
                    "years": sorted(b.years), "crs": _crs_text(b.crs), "shape": b.shape},
              "resampled_b_onto_a": not same_grid, "area_note": area_note,
              "years": common, "per_year": per_year, "mapped_years": chosen}
    if write:
        _write_products_report(result, maps, cms, a, Path(out_dir), labels)
    result["confusion_matrices"] = cms
    return jsonable(result)


def _crs_text(crs) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_proj4() or crs.to_string())


class _RasterGrid:
    """Adapter giving a north-up raster the grid interface of the map figures (lat ascending)."""

    def __init__(self, ps: ProductSet, stride: int):
        t = ps.transform
        self.nlat = int(math.ceil(ps.shape[0] / stride))
        self.nlon = int(math.ceil(ps.shape[1] / stride))
        self.shape = (self.nlat, self.nlon)
        self.dlon = abs(t.a) * stride
        self.dlat = abs(t.e) * stride
        south = t.f + t.e * ps.shape[0]
        self.bounds = (t.c, south, t.c + self.dlon * self.nlon, south + self.dlat * self.nlat)
        self.geographic = bool(ps.crs is not None and ps.crs.is_geographic)


def _write_products_report(result, maps, cms, a: ProductSet, out_dir: Path, labels):
    from .report import AGREEMENT_CATEGORIES

    per_year = result["per_year"]
    write_json_atomic(out_dir / "products_comparison.json", result)
    cols = list(per_year[0])
    write_csv_atomic(out_dir / "products_comparison.csv", cols,
                     [[r[c] for c in cols] for r in per_year])
    write_csv_atomic(out_dir / "confusion_matrices.csv",
                     ["year", f"class_{labels[0]}", f"class_{labels[1]}", "pixels"], cms)
    la, lb = labels
    years = np.array(result["years"])
    fig = new_figure(11, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(years, [r["kappa_binary"] for r in per_year], "o-", ms=3, color="#2c7bb6",
             label="permafrost / not")
    ax1.plot(years, [r["kappa_3class"] for r in per_year], "s--", ms=3, color="#fdae61",
             label="three classes")
    ax1.set_ylabel("kappa")
    ax1.set_xlabel("year")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.plot(years, [r[f"area_permafrost_km2_{la}"] / 1e3 for r in per_year], "o-", ms=3,
             color="#1f3b57", label=la)
    ax2.plot(years, [r[f"area_permafrost_km2_{lb}"] / 1e3 for r in per_year], "s--", ms=3,
             color="#d7191c", label=lb)
    ax2.set_ylabel("permafrost area [10³ km²]")
    ax2.set_xlabel("year")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    rows = []
    for r in per_year:
        rows.append((str(r["year"]), fmt(r["kappa_binary"]), fmt(r["overall_accuracy_binary"]),
                     fmt(r["kappa_3class"]), fmt(r["overall_accuracy_3class"]),
                     fmt(r["quantity_disagreement_3class"]),
                     fmt(r["allocation_disagreement_3class"]),
                     fmt(r[f"area_permafrost_km2_{la}"]), fmt(r[f"area_permafrost_km2_{lb}"]),
                     fmt(r["area_permafrost_km2_difference"]), fmt(r["pixels_differing"])))
    hdr = ["year", "kappa (PF/not)", "OA (PF/not)", "kappa (3 cl.)", "OA (3 cl.)", "quantity",
           "allocation", f"PF area {esc(la)} [km²]", f"PF area {esc(lb)} [km²]",
           f"{esc(lb)} &minus; {esc(la)}", "pixels differing"]
    summary = kv_table([
        (la, f"<code>{esc(result['a']['source'])}</code> ({result['a']['kind']}, "
             f"{len(result['a']['years'])} years)"),
        (lb, f"<code>{esc(result['b']['source'])}</code> ({result['b']['kind']}, "
             f"{len(result['b']['years'])} years)"),
        ("years compared", f"{result['years'][0]}&ndash;{result['years'][-1]} "
                           f"({len(result['years'])})"),
        ("raster", f"{esc(_crs_text(a.crs))}, {a.shape[1]} &times; {a.shape[0]} pixels"),
        ("resampling", f"{esc(lb)} resampled onto {esc(la)}'s raster (nearest neighbour: the "
                       f"{esc(lb)} pixel containing each {esc(la)} pixel centre)"
         if result["resampled_b_onto_a"] else "none (same raster)"),
        ("areas", esc(result["area_note"])),
    ])
    sections = [Section("summary", "Summary", summary + figure_html(fig, "kappa and area")),
                Section("years", "Per year", "<p class='note'>Confusion matrices of every year "
                        "are in confusion_matrices.csv (rows " + esc(la) + ", columns "
                        + esc(lb) + "). Quantity and allocation disagreement after Pontius "
                        "&amp; Millones (2011).</p><div class='scroll'>"
                        + table(hdr, rows) + "</div>")]
    stride = max(1, int(math.ceil(max(a.shape) / 700)))
    grid = _RasterGrid(a, stride)
    cats = AGREEMENT_CATEGORIES[:2] + (
        (3, f"permafrost in {lb} only", "#d7191c"), (4, f"permafrost in {la} only", "#7b3294"),
        (5, "seasonally frozen vs non-frozen", "#fdae61"))
    figs = []
    for y in result["mapped_years"]:
        am, bm = maps[y]
        codes = np.zeros(am.shape, dtype=np.uint8)
        ok = (am != 255) & (bm != 255)
        codes[ok & (am == 1) & (bm == 1)] = 1
        codes[ok & (am != 1) & (bm != 1) & (am == bm)] = 2
        codes[ok & (am != 1) & (bm == 1)] = 3
        codes[ok & (am == 1) & (bm != 1)] = 4
        codes[ok & (am != 1) & (bm != 1) & (am != bm)] = 5
        small = codes[::stride, ::stride][::-1]          # latitude/northing ascending
        crop = _crop(grid, [np.where(small == 0, 255, small)])
        f = single_map_figure(grid, small, cats, f"{y}: {la} vs {lb}", crop, width=9.0)
        figs.append(f"<h3>{y}</h3>" + figure_html(f, f"difference map {y}"))
    sections.append(Section("maps", "Difference maps",
                            (f"<p class='note'>Years: first, last and the lowest kappa; shown "
                             f"every {stride} pixel(s).</p>" if stride > 1 else "")
                            + "".join(figs) if figs else absent("no maps")))
    text = page("noahtibet product comparison", [f"{esc(la)} vs {esc(lb)}"], sections)
    write_text_atomic(out_dir / "products_comparison.html", text)
    log.info("product comparison written to %s", out_dir / "products_comparison.html")
