"""Observation readers and site-to-cell matching.

Every reader returns the same table (a pandas DataFrame), one row per
observation: ``site`` (str), ``lat``, ``lon`` [deg], ``elevation`` [m, NaN if
unknown], ``year`` (int), ``variable`` (``ALT`` [m], ``TTOP`` [C] or ``GT10m``
[C]), ``value``, and ``source`` (file, and sheet for workbooks).

1. Plain CSV (:func:`read_observation_csv`)
-------------------------------------------
UTF-8 text; lines whose first non-blank character is ``#`` are comments; the
first other line is the header with (at least) the columns ``site, lat, lon,
elevation, year, variable, value`` in any order (names case-insensitive; other
columns are ignored).  ``elevation`` may be empty.  ``variable`` is one of ALT,
TTOP, GT10m (case-insensitive).  An empty value, ``NaN`` or -6999 is a missing
observation and is skipped.  A site must keep one location: a row that gives a
known site another lat/lon is an error.  This is the layout of the demo's
``observations.csv`` (:mod:`noahtibet.demo_truth`).

2. The plateau's permafrost synthesis data set (Zhao et al. 2021)
-----------------------------------------------------------------
Zhao, L., Zou, D., Hu, G., et al. (2021): A synthesis dataset of permafrost
thermal state for the Qinghai-Tibet (Xizang) Plateau, China, Earth Syst. Sci.
Data 13, 4207-4218.  Its files are Excel workbooks; -6999 marks a missing value.
The layout assumed here (read with openpyxl, values not formulas) is:

**Active-layer workbook** (:func:`read_zhao2021_daily`, :func:`read_zhao2021_active_layer`):
one sheet per site with daily values at depths.

* An optional sheet named ``Sites`` (also ``Site``, ``Site info``, ``Stations``;
  case-insensitive) lists the sites: a header row ``Site | Latitude | Longitude
  | Elevation`` (aliases ``lat``, ``lon``/``long``, ``elev``/``altitude``) and one
  row per site.
* Every other sheet is one site; the site id is the sheet name.  Rows above the
  data header may hold ``key | value`` metadata: ``Site``, ``Latitude``,
  ``Longitude``, ``Elevation`` (same aliases); they override the Sites sheet.
  A site without latitude and longitude is an error.
* The data header is the first row whose first cell is ``Date`` (or ``Time``,
  ``Timestamp``, ``Datetime``, ``Day``).  The other header cells name the
  columns: soil temperature at a depth is ``Ts_<d>cm``, ``ST_<d>cm``,
  ``T_<d>m``, ``<d>cm`` or ``<d> m`` (prefixes ``Ts``, ``ST``, ``T``,
  ``Tsoil``, ``GT`` or ``Soil temperature``; unit ``cm`` or ``m``; separator
  ``_``, ``-``, blank or none); soil moisture ``SM_``/``SWC_``/``VWC_``... columns
  and anything else are ignored.
* Each data row is one day: a date (an Excel date, or text ``YYYY-MM-DD`` /
  ``YYYY/MM/DD``; an Excel serial day number is accepted) and the daily mean
  soil temperatures [C].  Blank cells and -6999 are missing.  Rows with an empty
  date end the table.

From the daily profiles :func:`yearly_from_daily` derives per calendar year
the same quantities as the model (:mod:`noahtibet.validation`): the daily
thaw depth is the first 0 C crossing below a thawed top sensor, linearly
interpolated between sensor depths; ALT is its yearly maximum; the site is
permafrost in a year when some sensor's yearly maximum is at or below 0 C;
TTOP is the annual mean interpolated to ALT; GT10m the annual mean at 10 m (a
sensor within 5 cm of 10 m, or interpolation between sensors bracketing it).
A year counts only with at least ``min_valid_days`` (default
:data:`MIN_VALID_DAYS`) days on which the top and the deepest sensor both have
data (interior gaps are bridged by interpolation); annual means use sensors
with at least ``min_valid_days`` valid days.  When the thaw reaches the
deepest sensor, ALT is not determined that year and is left out.

**Ground-temperature workbook** (:func:`read_zhao2021_ground_temperature`):
borehole ground temperature with site ids and yearly values.  On every sheet,
the header row is the first row (within the first 20) that has a cell ``Site``
(or ``Site id``, ``Site_id``, ``ID``, ``Borehole``); its other columns are
``Latitude``, ``Longitude``, ``Elevation`` (aliases as above), optionally
``Depth`` [m], and one column per year (a header that is a year number, e.g.
``2005``) holding the mean annual ground temperature [C] of that site (and
depth) and year; -6999 or blank is missing.  Without a ``Depth`` column the
values are taken as GT10m; with it, a site-year's GT10m is the value at 10 m
or the linear interpolation between the nearest depths above and below 10 m.
Sheets without such a header are skipped.

Site-to-cell matching (:func:`match_sites`)
-------------------------------------------
A site belongs to the grid cell that contains it.  When that cell is not
simulated (a glacier, outside the study domain; or a site outside the grid)
the site is matched to the **nearest simulated cell** (great-circle distance
from the site to cell centres on the authalic sphere) and a warning names the
site, both cells and the distance.  Sites farther than ``max_distance_km``
(default: :data:`DEFAULT_MAX_DISTANCE_CELLS` cell heights) from every
simulated cell are not matched.  A cell that is a lake in some years is
matched, and simply has no simulated value in those years.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .grid import AUTHALIC_RADIUS, LatLonGrid

log = logging.getLogger("noahtibet")

__all__ = [
    "COLUMNS", "MISSING", "MIN_VALID_DAYS", "DEFAULT_MAX_DISTANCE_CELLS", "DailyProfiles",
    "read_observation_csv", "read_zhao2021_daily", "yearly_from_daily",
    "read_zhao2021_active_layer", "read_zhao2021_ground_temperature", "read_observations",
    "match_sites",
]

COLUMNS = ("site", "lat", "lon", "elevation", "year", "variable", "value")
VARIABLES = {"alt": "ALT", "ttop": "TTOP", "gt10m": "GT10m"}
#: Missing-value code of the synthesis data set.
MISSING = -6999.0
#: Days with data a year needs before yearly values are derived from daily profiles.
MIN_VALID_DAYS = 330
#: Default largest site-to-cell distance, in cell heights (dlat).
DEFAULT_MAX_DISTANCE_CELLS = 2.0
KM_PER_DEGREE = math.pi * AUTHALIC_RADIUS / 180.0 / 1000.0
T0 = 273.15

_OUT_COLUMNS = list(COLUMNS) + ["source"]


def _frame(rows):
    import pandas as pd

    df = pd.DataFrame(rows, columns=_OUT_COLUMNS)
    df["year"] = df["year"].astype(int)
    for c in ("lat", "lon", "elevation", "value"):
        df[c] = df[c].astype(float)
    df["site"] = df["site"].astype(str)
    return df


def _is_missing(v: float) -> bool:
    return not math.isfinite(v) or abs(v - MISSING) < 1e-6


# ------------------------------------------------------------------------------------------
# Plain CSV
# ------------------------------------------------------------------------------------------

def read_observation_csv(path):
    """Read the plain observation CSV (see the module documentation)."""
    path = str(path)
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", path=path) from None
    rows, where = [], {}
    header, col = None, {}
    with fh:
        lines = ((i, line) for i, line in enumerate(fh, start=1)
                 if line.strip() and not line.lstrip().startswith("#"))
        for lineno, line in lines:
            cells = next(csv.reader([line]))
            cells = [c.strip() for c in cells]
            if header is None:
                header = [c.lower() for c in cells]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise InputError(f"header lacks the column(s) {', '.join(missing)} (needs "
                                     f"{', '.join(COLUMNS)})", path=path, line=lineno,
                                     field="header", value=",".join(cells))
                col = {c: header.index(c) for c in COLUMNS}
                continue
            if len(cells) < len(header):
                raise InputError(f"has {len(cells)} fields, the header has {len(header)}",
                                 path=path, line=lineno, field="row")

            def num(name, allow_empty=False):
                text = cells[col[name]]
                if allow_empty and text == "":
                    return math.nan
                try:
                    return float(text)
                except ValueError:
                    raise InputError("is not a number", path=path, line=lineno, field=name,
                                     value=text) from None

            site = cells[col["site"]]
            if not site:
                raise InputError("site id is empty", path=path, line=lineno, field="site")
            lat, lon = num("lat"), num("lon")
            if not -90 <= lat <= 90:
                raise InputError("is not a latitude in [-90, 90]", path=path, line=lineno,
                                 field="lat", value=cells[col["lat"]])
            if not -180 <= lon <= 360:
                raise InputError("is not a longitude in [-180, 360]", path=path, line=lineno,
                                 field="lon", value=cells[col["lon"]])
            elevation = num("elevation", allow_empty=True)
            year_f = num("year")
            if year_f != int(year_f) or not 1800 <= year_f <= 2200:
                raise InputError("is not a year", path=path, line=lineno, field="year",
                                 value=cells[col["year"]])
            var_text = cells[col["variable"]]
            var = VARIABLES.get(var_text.lower())
            if var is None:
                raise InputError("is not one of ALT, TTOP, GT10m", path=path, line=lineno,
                                 field="variable", value=var_text)
            value = num("value", allow_empty=True)
            if site in where and (abs(where[site][0] - lat) > 1e-6 or abs(where[site][1] - lon) > 1e-6):
                raise InputError(f"site '{site}' was at {where[site][1]} E {where[site][0]} N "
                                 f"on line {where[site][2]}; a site must keep one location",
                                 path=path, line=lineno, field="lat/lon",
                                 value=f"{lon},{lat}")
            where.setdefault(site, (lat, lon, lineno))
            if _is_missing(value):
                continue
            rows.append((site, lat, lon, elevation, int(year_f), var, value,
                         f"{os.path.basename(path)}:{lineno}"))
    if header is None:
        raise InputError("has no header line", path=path, field="header")
    return _frame(rows)


# ------------------------------------------------------------------------------------------
# Zhao et al. (2021) workbooks
# ------------------------------------------------------------------------------------------

_SITES_SHEETS = {"sites", "site", "site info", "siteinfo", "site_info", "stations"}
_DATE_HEADERS = {"date", "time", "timestamp", "datetime", "day"}
_KEY_ALIASES = {
    "site": "site", "site id": "site", "site_id": "site", "id": "site", "borehole": "site",
    "station": "site",
    "latitude": "lat", "lat": "lat",
    "longitude": "lon", "lon": "lon", "long": "lon",
    "elevation": "elevation", "elev": "elevation", "altitude": "elevation",
    "elevation (m)": "elevation", "altitude (m)": "elevation",
    "depth": "depth", "depth (m)": "depth", "depth_m": "depth", "depth(m)": "depth",
}
_TEMP_RE = re.compile(r"^(?:ts|st|t|tsoil|gt|soil[ _]?temp(?:erature)?)?[\s_\-]*"
                      r"(\d+(?:\.\d+)?)\s*(cm|m)$", re.IGNORECASE)
_MOIST_RE = re.compile(r"^(?:sm|swc|vwc|theta|w|soil[ _]?moisture)[\s_\-]*"
                       r"(\d+(?:\.\d+)?)\s*(cm|m)$", re.IGNORECASE)
_EXCEL_EPOCH = _dt.datetime(1899, 12, 30)


def _key(cell) -> str | None:
    if cell is None:
        return None
    text = str(cell).strip().lower().rstrip(":")
    return _KEY_ALIASES.get(text)


def _col_letter(j: int) -> str:
    s = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        s = chr(65 + r) + s
    return s


def _where(sheet: str, row: int, col: int, header: str | None = None) -> str:
    h = f" ({header})" if header else ""
    return f"sheet '{sheet}' cell {_col_letter(col)}{row}{h}"


def _number(value, path, sheet, row, col, header=None) -> float:
    """A cell as float (NaN for blank / -6999)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    if isinstance(value, bool):
        raise InputError("is not a number", path=path, line=row,
                         field=_where(sheet, row, col, header), value=value)
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        try:
            v = float(str(value).strip())
        except ValueError:
            raise InputError("is not a number", path=path, line=row,
                             field=_where(sheet, row, col, header), value=value) from None
    return math.nan if _is_missing(v) else v


def _date(value, path, sheet, row) -> np.datetime64:
    if isinstance(value, _dt.datetime):
        return np.datetime64(value.date(), "D")
    if isinstance(value, _dt.date):
        return np.datetime64(value, "D")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.datetime64((_EXCEL_EPOCH + _dt.timedelta(days=float(value))).date(), "D")
    text = str(value).strip()
    m = re.match(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$", text)
    if m:
        try:
            return np.datetime64(_dt.date(int(m[1]), int(m[2]), int(m[3])), "D")
        except ValueError:
            pass
    raise InputError("is not a date (YYYY-MM-DD or an Excel date)", path=path, line=row,
                     field=_where(sheet, row, 0, "date"), value=value)


def _open_workbook(path):
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - dependency
        raise ImportError("reading Excel workbooks needs openpyxl (pip install openpyxl)") from exc
    path = str(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path)
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises several kinds
        raise InputError(f"cannot be read as an Excel workbook ({exc})", path=path) from None


def _sites_sheet(wb, path) -> dict:
    """site -> {lat, lon, elevation} from a Sites sheet, if any."""
    out = {}
    for ws in wb.worksheets:
        if ws.title.strip().lower() not in _SITES_SHEETS:
            continue
        rows = list(ws.iter_rows(values_only=True))
        if not rows:
            continue
        header = [_key(c) for c in rows[0]]
        if "site" not in header or "lat" not in header or "lon" not in header:
            raise InputError("the Sites sheet's first row must name Site, Latitude and "
                             "Longitude columns", path=path, line=1,
                             field=f"sheet '{ws.title}'", value=list(rows[0]))
        idx = {k: header.index(k) for k in ("site", "lat", "lon", "elevation") if k in header}
        for i, r in enumerate(rows[1:], start=2):
            if r is None or all(v is None for v in r):
                continue
            site = r[idx["site"]]
            if site is None or str(site).strip() == "":
                continue
            entry = {k: _number(r[j] if j < len(r) else None, path, ws.title, i, j, k)
                     for k, j in idx.items() if k != "site"}
            out[str(site).strip()] = entry
    return out


@dataclass
class DailyProfiles:
    """Daily soil temperatures of one site (one sheet of the active-layer workbook)."""

    site: str
    lat: float
    lon: float
    elevation: float
    dates: np.ndarray          # datetime64[D], (nday,)
    depths: np.ndarray         # m, increasing, (ndepth,)
    temperature: np.ndarray    # C, (nday, ndepth), NaN missing
    source: str = ""


def read_zhao2021_daily(path) -> list[DailyProfiles]:
    """Read every site sheet of an active-layer workbook (layout in the module doc)."""
    wb = _open_workbook(path)
    path = str(path)
    try:
        meta_all = _sites_sheet(wb, path)
        out = []
        for ws in wb.worksheets:
            if ws.title.strip().lower() in _SITES_SHEETS:
                continue
            prof = _read_site_sheet(ws, path, meta_all)
            if prof is not None:
                out.append(prof)
    finally:
        wb.close()
    if not out:
        raise InputError("has no site sheet with a 'Date' header row and soil temperature "
                         "columns", path=path, field="sheets")
    return out


def _read_site_sheet(ws, path, meta_all) -> DailyProfiles | None:
    sheet = ws.title
    meta = {}
    header_row, header = None, None
    rows = ws.iter_rows(values_only=True)
    rowno = 0
    for r in rows:
        rowno += 1
        if not r or all(v is None for v in r):
            continue
        first = r[0]
        if isinstance(first, str) and first.strip().lower() in _DATE_HEADERS:
            header_row, header = rowno, list(r)
            break
        k = _key(first)
        if k is not None and len(r) > 1:
            meta[k] = r[1] if k == "site" else _number(r[1], path, sheet, rowno, 1, k)
    if header is None:
        log.info("%s: sheet '%s' has no 'Date' header row; skipped", path, sheet)
        return None
    site = str(meta.get("site") or sheet).strip()
    info = dict(meta_all.get(site, {}))
    info.update({k: v for k, v in meta.items() if k != "site"})
    for k, name in (("lat", "Latitude"), ("lon", "Longitude")):
        if not np.isfinite(info.get(k, math.nan)):
            raise InputError(f"site '{site}' has no {name}: give it in a '{name}' row above the "
                             "header or in the Sites sheet", path=path, line=header_row,
                             field=f"sheet '{sheet}'")
    temp_cols, depths, ignored = [], [], []
    for j, h in enumerate(header[1:], start=1):
        if h is None:
            continue
        text = str(h).strip()
        if _MOIST_RE.match(text):
            continue
        m = _TEMP_RE.match(text)
        if not m:
            ignored.append(text)
            continue
        depth = float(m[1]) / (100.0 if m[2].lower() == "cm" else 1.0)
        temp_cols.append(j)
        depths.append(depth)
    if ignored:
        log.info("%s: sheet '%s': columns not read: %s", path, sheet, ", ".join(ignored))
    if not temp_cols:
        raise InputError("has no soil temperature column (e.g. 'Ts_5cm')", path=path,
                         line=header_row, field=f"sheet '{sheet}' header",
                         value=[h for h in header if h is not None])
    if len(set(depths)) != len(depths):
        raise InputError("two soil temperature columns have the same depth", path=path,
                         line=header_row, field=f"sheet '{sheet}' header", value=depths)
    dates, values = [], []
    for r in rows:
        rowno += 1
        if not r or r[0] is None or (isinstance(r[0], str) and not r[0].strip()):
            break
        dates.append(_date(r[0], path, sheet, rowno))
        values.append([_number(r[j] if j < len(r) else None, path, sheet, rowno, j,
                               str(header[j])) for j in temp_cols])
    order = np.argsort(depths)
    dates_a = np.array(dates, dtype="datetime64[D]")
    if dates_a.size > 1 and np.any(np.diff(dates_a) <= np.timedelta64(0, "D")):
        bad = int(np.flatnonzero(np.diff(dates_a) <= np.timedelta64(0, "D"))[0])
        raise InputError("dates must increase (one row per day)", path=path,
                         line=header_row + bad + 2, field=f"sheet '{sheet}' date",
                         value=str(dates_a[bad + 1]))
    temp = np.array(values, dtype=float).reshape(len(values), len(temp_cols))[:, order]
    return DailyProfiles(site, float(info["lat"]), float(info["lon"]),
                         float(info.get("elevation", math.nan)), dates_a,
                         np.array(depths, dtype=float)[order], temp,
                         f"{os.path.basename(path)}[{sheet}]")


def _interp_depth(depths, values, z) -> float:
    ok = np.isfinite(values)
    d, v = depths[ok], values[ok]
    if d.size == 0 or not np.isfinite(z) or z > d[-1] + 1e-9:
        return math.nan
    return float(np.interp(z, d, v))


def yearly_from_daily(profiles: DailyProfiles, min_valid_days: int = MIN_VALID_DAYS) -> list:
    """(year, variable, value) tuples of ALT, TTOP, GT10m derived from daily profiles."""
    from .validation import thaw_depth

    p = profiles
    out = []
    years = p.dates.astype("datetime64[Y]").astype(int) + 1970
    for year in np.unique(years):
        sel = years == year
        t = p.temperature[sel]
        usable = np.isfinite(t[:, 0]) & np.isfinite(t[:, -1])
        ndays = int(usable.sum())
        if ndays < min_valid_days:
            log.info("%s %d: %d usable days < %d; no yearly values", p.site, year, ndays,
                     min_valid_days)
            continue
        nvalid = np.isfinite(t).sum(axis=0)
        full = nvalid >= min_valid_days
        with np.errstate(invalid="ignore"):
            tmax = np.where(full, np.nanmax(np.where(np.isfinite(t), t, -np.inf), axis=0), np.nan)
            tmean = np.where(full, np.nanmean(t, axis=0), np.nan)
        permafrost = bool(np.any(tmax[full] <= 0.0))
        if permafrost:
            daily = []
            reaches_bottom = False
            for row in t[usable]:
                ok = np.isfinite(row)
                d = thaw_depth(row[ok] + T0, p.depths[ok])
                daily.append(float(d))
                if row[0] > 0.0 and np.all(row[ok] > 0.0):
                    reaches_bottom = True
            if reaches_bottom:
                log.info("%s %d: thaw reaches the deepest sensor; ALT not determined", p.site,
                         year)
            else:
                alt = max(daily)
                out.append((int(year), "ALT", alt))
                ttop = _interp_depth(p.depths, tmean, alt)
                if np.isfinite(ttop):
                    out.append((int(year), "TTOP", ttop))
        near = np.flatnonzero(np.abs(p.depths - 10.0) <= 0.05)
        valid = p.depths[np.isfinite(tmean)]
        if near.size and np.isfinite(tmean[near[0]]):
            out.append((int(year), "GT10m", float(tmean[near[0]])))
        elif valid.size and valid[0] <= 10.0 <= valid[-1]:
            out.append((int(year), "GT10m", _interp_depth(p.depths, tmean, 10.0)))
    return out


def read_zhao2021_active_layer(path, min_valid_days: int = MIN_VALID_DAYS):
    """Yearly ALT, TTOP (and GT10m where a 10 m sensor exists) from an active-layer workbook."""
    rows = []
    for p in read_zhao2021_daily(path):
        for year, var, value in yearly_from_daily(p, min_valid_days):
            rows.append((p.site, p.lat, p.lon, p.elevation, year, var, value, p.source))
    return _frame(rows)


def read_zhao2021_ground_temperature(path):
    """Yearly GT10m per borehole from a ground-temperature workbook (layout in the module doc)."""
    wb = _open_workbook(path)
    path = str(path)
    records: dict = {}
    found = False
    try:
        for ws in wb.worksheets:
            rows = list(ws.iter_rows(values_only=True))
            hdr_i = None
            for i, r in enumerate(rows[:20]):
                if r and any(_key(c) == "site" for c in r):
                    hdr_i = i
                    break
            if hdr_i is None:
                continue
            header = rows[hdr_i]
            keys = [_key(c) for c in header]
            if "lat" not in keys or "lon" not in keys:
                raise InputError("the header row must name Latitude and Longitude columns",
                                 path=path, line=hdr_i + 1, field=f"sheet '{ws.title}'",
                                 value=[h for h in header if h is not None])
            year_cols = {}
            for j, h in enumerate(header):
                y = _year_header(h)
                if y is not None:
                    year_cols[j] = y
            if not year_cols:
                raise InputError("the header row has no year columns (e.g. 2005)", path=path,
                                 line=hdr_i + 1, field=f"sheet '{ws.title}'",
                                 value=[h for h in header if h is not None])
            found = True
            idx = {k: keys.index(k) for k in ("site", "lat", "lon", "elevation", "depth")
                   if k in keys}
            for i, r in enumerate(rows[hdr_i + 1:], start=hdr_i + 2):
                if not r or all(v is None for v in r):
                    continue
                site = r[idx["site"]] if idx["site"] < len(r) else None
                if site is None or str(site).strip() == "":
                    continue
                site = str(site).strip()

                def get(k):
                    j = idx.get(k)
                    if j is None:
                        return math.nan
                    return _number(r[j] if j < len(r) else None, path, ws.title, i, j, k)

                lat, lon, elev = get("lat"), get("lon"), get("elevation")
                if not (np.isfinite(lat) and np.isfinite(lon)):
                    raise InputError(f"site '{site}' has no latitude/longitude", path=path,
                                     line=i, field=f"sheet '{ws.title}'")
                depth = get("depth") if "depth" in idx else 10.0
                if not np.isfinite(depth):
                    raise InputError("depth is missing", path=path, line=i,
                                     field=_where(ws.title, i, idx["depth"], "depth"))
                for j, y in year_cols.items():
                    v = _number(r[j] if j < len(r) else None, path, ws.title, i, j, str(y))
                    if np.isfinite(v):
                        rec = records.setdefault((site, y), {"lat": lat, "lon": lon,
                                                             "elevation": elev, "values": [],
                                                             "source": f"{os.path.basename(path)}"
                                                                       f"[{ws.title}]"})
                        rec["values"].append((depth, v))
    finally:
        wb.close()
    if not found:
        raise InputError("has no sheet with a 'Site' header row and year columns", path=path,
                         field="sheets")
    rows = []
    for (site, year), rec in sorted(records.items()):
        dv = sorted(rec["values"])
        d = np.array([x for x, _ in dv])
        v = np.array([y for _, y in dv])
        exact = np.flatnonzero(np.abs(d - 10.0) < 1e-6)
        if exact.size:
            g = float(v[exact].mean())
        else:
            above, below = np.flatnonzero(d < 10.0), np.flatnonzero(d > 10.0)
            if not (above.size and below.size):
                continue
            a, b = above[-1], below[0]
            g = float(v[a] + (v[b] - v[a]) * (10.0 - d[a]) / (d[b] - d[a]))
        rows.append((site, rec["lat"], rec["lon"], rec["elevation"], year, "GT10m", g,
                     rec["source"]))
    return _frame(rows)


def _year_header(h) -> int | None:
    if isinstance(h, bool) or h is None:
        return None
    if isinstance(h, (int, float)):
        if float(h) == int(h) and 1800 <= int(h) <= 2200:
            return int(h)
        return None
    text = str(h).strip()
    if re.fullmatch(r"\d{4}", text) and 1800 <= int(text) <= 2200:
        return int(text)
    return None


def read_observations(*paths):
    """Read and concatenate observation files: ``.csv`` (plain CSV) or ``.xlsx`` workbooks
    (a ground-temperature workbook when a sheet has a 'Site' header with year columns,
    otherwise an active-layer workbook)."""
    import pandas as pd

    frames = []
    for path in paths:
        ext = Path(path).suffix.lower()
        if ext in (".xlsx", ".xlsm"):
            try:
                frames.append(read_zhao2021_ground_temperature(path))
            except InputError as exc:
                if "has no sheet with a 'Site' header" not in str(exc):
                    raise
                frames.append(read_zhao2021_active_layer(path))
        else:
            frames.append(read_observation_csv(path))
    if not frames:
        return _frame([])
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------
# Site-to-cell matching
# ------------------------------------------------------------------------------------------

def _distance_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance on the authalic sphere (haversine)."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = (np.sin((lat2 - lat1) / 2) ** 2
         + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    return 2 * AUTHALIC_RADIUS / 1000.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def match_sites(sites, grid: LatLonGrid, cell_rows, cell_cols, max_distance_km=None):
    """Match sites (DataFrame with site, lat, lon) to simulated cells.

    ``cell_rows``/``cell_cols``: the simulated cells in canonical order (their
    position is the ``cell`` index).  Returns a DataFrame: site, lat, lon, cell
    (-1 when unmatched), row, col, distance_km (site to the cell centre),
    masked (the containing cell is not simulated), note.
    """
    import pandas as pd

    cell_rows = np.asarray(cell_rows, dtype=int)
    cell_cols = np.asarray(cell_cols, dtype=int)
    if max_distance_km is None:
        max_distance_km = DEFAULT_MAX_DISTANCE_CELLS * grid.dlat * KM_PER_DEGREE
    lookup = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(cell_rows, cell_cols))}
    clon = grid.lons[cell_cols]
    clat = grid.lats[cell_rows]
    out = []
    for s in sites.itertuples():
        lat, lon = float(s.lat), float(s.lon)
        r, c = (int(x) for x in grid.index_of(lon, lat))
        cell, note, masked = lookup.get((r, c), -1), "", False
        if cell < 0:
            masked = True
            where = (f"its cell (row {r}, col {c}) is not simulated (glacier or outside the "
                     "domain)") if r >= 0 else "it lies outside the model grid"
            if clon.size:
                d = _distance_km(lon, lat, clon, clat)
                k = int(np.argmin(d))
                if d[k] <= max_distance_km:
                    cell = k
                    note = (f"{where}; matched to the nearest simulated cell (row "
                            f"{cell_rows[k]}, col {cell_cols[k]}) {d[k]:.1f} km away")
                else:
                    note = (f"{where}; no simulated cell within {max_distance_km:.1f} km "
                            f"(nearest {d[k]:.1f} km): not matched")
            else:
                note = f"{where}; no simulated cells: not matched"
            log.warning("site %s (%.3f E, %.3f N): %s", s.site, lon, lat, note)
        dist = (float(_distance_km(lon, lat, clon[cell], clat[cell])) if cell >= 0
                else math.nan)
        out.append({"site": s.site, "lat": lat, "lon": lon, "cell": int(cell),
                    "row": int(cell_rows[cell]) if cell >= 0 else -1,
                    "col": int(cell_cols[cell]) if cell >= 0 else -1,
                    "distance_km": dist, "masked": masked, "note": note})
    return pd.DataFrame(out, columns=["site", "lat", "lon", "cell", "row", "col", "distance_km",
                                      "masked", "note"])
