"""Validation of a gridded run against observations and reference maps.

Everything here is plain numpy/pandas arithmetic so that each number can be
checked by hand; :mod:`noahtibet.report` turns the results into a report.

Permafrost metrics per site and year
------------------------------------
The definitions are those of :mod:`noahtibet.metrics` (the plateau's synthesis
data set, Zhao et al. 2021, ESSD 13, 4207; and the published product's
validation):

* **ALT** [m], active-layer thickness: the maximum over the year of the depth
  of the 0 C isotherm below a thawed surface, linearly interpolated between
  layer nodes (:func:`thaw_depth`; the kernel accumulates the same quantity
  every step as ``max_thaw_depth``).  Defined only where the cell is
  permafrost (:mod:`noahtibet.classify`: a layer at or below 0 C throughout
  the year and the previous year).
* **TTOP** [C]: the annual-mean temperature at the permafrost table, i.e. the
  annual-mean profile interpolated linearly in depth to z = ALT.  Permafrost only.
* **GT10m** [C]: the annual-mean temperature interpolated linearly in depth to 10 m.

The thaw depth is the *first* 0 C crossing below the surface: with a talik
below the permafrost (a thawed layer deeper down) ALT is still the depth of the
permafrost table; with a supra-permafrost talik (a layer that does not refreeze
in winter) the summer thaw runs through it down to the permafrost table.  When
every node is thawed the thaw depth is the deepest node's depth and no layer
stays frozen, so the column is not permafrost and ALT is undefined (NaN).

Error metrics
-------------
For pairs (observed o_i, simulated s_i), i = 1..n, with both finite:
bias = mean(s - o); MAE = mean|s - o|; RMSE = sqrt(mean (s - o)^2);
r = Pearson correlation (NaN for n < 3 or a constant series).

Decadal trends
--------------
Per site and variable, the ordinary least-squares slope of value against year
over the years where both the observation and the simulation exist, times 10
(m/10a for ALT, C/10a for TTOP and GT10m).  A trend needs at least
:data:`MIN_TREND_YEARS` years.  The trend RMSE is the RMSE of (simulated trend
- observed trend) over the sites.

Permafrost area
---------------
The sum of the equal-area cell areas (:meth:`noahtibet.grid.LatLonGrid.cell_area_km2`,
authalic sphere) of the cells classed permafrost; its trend is the least-squares
slope over the years, in km2/10a and in % of the mean area per decade.

Map agreement
-------------
The confusion matrix counts cells (or sums ``weights``) by (reference class,
simulated class) over the cells valid in both maps (classes 1, 2, 3; NoData and
masked cells excluded).  With proportions p_ij = C_ij / N:

* overall accuracy p_o = sum_i p_ii;
* Cohen's kappa = (p_o - p_e) / (1 - p_e) with p_e = sum_i p_i+ p_+i (Cohen 1960);
* quantity disagreement Q = 1/2 sum_g |p_g+ - p_+g| and allocation disagreement
  A = 1/2 sum_g 2 min(p_g+ - p_gg, p_+g - p_gg), with Q + A = 1 - p_o
  (Pontius & Millones 2011, Int. J. Remote Sens. 32, 4407).

Kappa is 0/0 when p_e = 1 (both maps one and the same class everywhere): it is
then reported as 1 (perfect agreement).

"Binary" agreement merges seasonally frozen and non-frozen ground into "not
permafrost" (the calibration's target).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classify import FREEZING_POINT, NODATA, PERMAFROST, classify
from .errors import InputError
from .grid import LatLonGrid
from .metrics import annual_metrics, node_depths

log = logging.getLogger("noahtibet")

VARIABLES = ("ALT", "TTOP", "GT10m")
UNITS = {"ALT": "m", "TTOP": "C", "GT10m": "C"}
TREND_UNITS = {"ALT": "m/10a", "TTOP": "C/10a", "GT10m": "C/10a"}
#: Fewest years (with both observation and simulation) for a site trend.
MIN_TREND_YEARS = 5

#: The published product's validation figures, to stand beside ours.
PUBLISHED = {
    "ALT": {"rmse": 0.68, "n": 83, "trend_rmse": 0.08},
    "TTOP": {"rmse": 0.41, "n": 83, "trend_rmse": 0.36},
    "GT10m": {"rmse": 1.30, "n": 291, "trend_rmse": 0.64},
}

CLASSES = (1, 2, 3)
CLASS_LABELS = {1: "permafrost", 2: "seasonally frozen", 3: "non-frozen"}
BINARY_LABELS = {1: "permafrost", 2: "not permafrost"}


# ------------------------------------------------------------------------------------------
# Permafrost metrics from temperature profiles
# ------------------------------------------------------------------------------------------

def thaw_depth(stc, depths) -> np.ndarray:
    """Depth [m] of the 0 C isotherm below a thawed surface, for profiles (..., nlay) [K].

    The same rule as the kernel (fortran/column_kernel.f90, ``thaw_depth``):
    0 when the top node is at or below 0 C; otherwise the depth where the
    profile first reaches 0 C going down, linearly interpolated between the two
    nodes around the crossing; the deepest node's depth when no node is frozen.
    ``depths`` are node depths [m, positive down], increasing.
    """
    t = np.asarray(stc, dtype=float)
    z = np.asarray(depths, dtype=float)
    flat = t.reshape(-1, t.shape[-1])
    out = np.zeros(flat.shape[0])
    for i, prof in enumerate(flat):
        if not prof[0] > FREEZING_POINT:
            continue
        frozen = np.flatnonzero(prof <= FREEZING_POINT)
        if frozen.size == 0:
            out[i] = z[-1]
            continue
        k = frozen[0]
        out[i] = z[k - 1] + (z[k] - z[k - 1]) * (prof[k - 1] - FREEZING_POINT) / (prof[k - 1] - prof[k])
    return out.reshape(t.shape[:-1])


def profile_metrics(stc, layer_thickness, previous_tmax=None) -> dict:
    """ALT [m], TTOP [C] and GT10m [C] of one year of profiles ``stc`` (ntime, nlay) [K].

    ``previous_tmax`` (nlay,): the previous year's per-layer maximum for the
    permafrost test (None: the current year alone).  Returns a dict with the
    three metrics (NaN where undefined), ``permafrost`` (bool),
    ``thaw_depth_max`` [m] and ``class`` (1/2/3).
    """
    stc = np.asarray(stc, dtype=float)
    if stc.ndim != 2:
        raise ValueError(f"stc must be (ntime, nlay), got shape {stc.shape}")
    depths = node_depths(layer_thickness)
    if depths.size != stc.shape[1]:
        raise ValueError(f"{depths.size} layer thicknesses for {stc.shape[1]} layers")
    tmin, tmax, tmean = stc.min(axis=0), stc.max(axis=0), stc.mean(axis=0)
    cls = int(classify(tmin, tmax, previous_tmax))
    thaw = float(thaw_depth(stc, depths).max())
    permafrost = cls == PERMAFROST
    m = annual_metrics(tmean[None], np.array([thaw]), np.array([permafrost]), layer_thickness)
    return {"ALT": float(m["ALT"][0]), "TTOP": float(m["TTOP"][0]), "GT10m": float(m["GT10m"][0]),
            "permafrost": permafrost, "thaw_depth_max": thaw, "class": cls}


# ------------------------------------------------------------------------------------------
# Error metrics and trends
# ------------------------------------------------------------------------------------------

def pair_metrics(observed, simulated) -> dict:
    """n, bias (sim - obs), MAE, RMSE and Pearson r over the pairs where both are finite."""
    o = np.asarray(observed, dtype=float).ravel()
    s = np.asarray(simulated, dtype=float).ravel()
    if o.shape != s.shape:
        raise ValueError(f"{o.size} observations but {s.size} simulated values")
    ok = np.isfinite(o) & np.isfinite(s)
    o, s = o[ok], s[ok]
    n = int(o.size)
    if n == 0:
        return {"n": 0, "bias": math.nan, "mae": math.nan, "rmse": math.nan, "r": math.nan}
    d = s - o
    r = math.nan
    if n >= 3:
        so, ss = o - o.mean(), s - s.mean()
        den = math.sqrt(float(np.sum(so * so)) * float(np.sum(ss * ss)))
        if den > 0:
            r = float(np.sum(so * ss)) / den
    return {"n": n, "bias": float(d.mean()), "mae": float(np.abs(d).mean()),
            "rmse": float(math.sqrt(np.mean(d * d))), "r": r}


def linear_trend(x, y) -> float:
    """Least-squares slope of y against x (NaN with fewer than 2 distinct x)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan
    xm = x - x.mean()
    return float(np.sum(xm * (y - y.mean())) / np.sum(xm * xm))


def decadal_trend(years, values, min_years: int = MIN_TREND_YEARS) -> float:
    """Least-squares trend per decade (slope per year x 10); NaN with < ``min_years`` years."""
    years = np.asarray(years, dtype=float)
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(years) & np.isfinite(values)
    if np.unique(years[ok]).size < max(min_years, 2):
        return math.nan
    return 10.0 * linear_trend(years[ok], values[ok])


def site_trends(pairs, min_years: int = MIN_TREND_YEARS):
    """Per (site, variable): observed and simulated decadal trends over the common years.

    ``pairs``: a DataFrame with columns site, variable, year, obs, sim.  Returns a
    DataFrame site, variable, n_years, first_year, last_year, obs_trend, sim_trend
    (sites with fewer than ``min_years`` common years are left out).
    """
    import pandas as pd

    rows = []
    both = pairs[np.isfinite(pairs["obs"].astype(float)) & np.isfinite(pairs["sim"].astype(float))]
    for (site, var), g in both.groupby(["site", "variable"], sort=True):
        g = g.groupby("year", as_index=False)[["obs", "sim"]].mean()
        if g["year"].nunique() < min_years:
            continue
        rows.append({"site": site, "variable": var, "n_years": int(g["year"].nunique()),
                     "first_year": int(g["year"].min()), "last_year": int(g["year"].max()),
                     "obs_trend": decadal_trend(g["year"], g["obs"], min_years),
                     "sim_trend": decadal_trend(g["year"], g["sim"], min_years)})
    return pd.DataFrame(rows, columns=["site", "variable", "n_years", "first_year", "last_year",
                                       "obs_trend", "sim_trend"])


def trend_metrics(trends) -> dict:
    """Per variable: metrics of simulated against observed site trends (n = sites)."""
    out = {}
    for var in VARIABLES:
        g = trends[trends["variable"] == var]
        out[var] = pair_metrics(g["obs_trend"], g["sim_trend"])
    return out


# ------------------------------------------------------------------------------------------
# Permafrost area
# ------------------------------------------------------------------------------------------

def permafrost_area_km2(classes, grid: LatLonGrid) -> float:
    """Area [km2] of the permafrost cells of a (nlat, nlon) class map on ``grid``."""
    classes = np.asarray(classes)
    if classes.shape != grid.shape:
        raise ValueError(f"class map shape {classes.shape} != grid shape {grid.shape}")
    return float(np.sum(np.where(classes == PERMAFROST, grid.cell_area_km2(), 0.0)))


def area_trend(years, areas) -> dict:
    """Least-squares trend of the permafrost area: km2/10a and % of the mean area per decade."""
    years = np.asarray(years, dtype=float)
    areas = np.asarray(areas, dtype=float)
    slope = 10.0 * linear_trend(years, areas)
    mean = float(np.nanmean(areas)) if areas.size else math.nan
    return {"km2_per_decade": slope,
            "percent_per_decade": 100.0 * slope / mean if mean and np.isfinite(mean) else math.nan,
            "first_year": int(years.min()) if years.size else None,
            "last_year": int(years.max()) if years.size else None}


# ------------------------------------------------------------------------------------------
# Map agreement
# ------------------------------------------------------------------------------------------

def to_binary(classes) -> np.ndarray:
    """1 permafrost, 2 not permafrost (classes 2 and 3), 0 no data (anything else)."""
    c = np.asarray(classes)
    return np.where(c == 1, 1, np.where((c == 2) | (c == 3), 2, 0)).astype(np.uint8)


def confusion_matrix(reference, simulated, classes=CLASSES, mask=None, weights=None) -> np.ndarray:
    """C[i, j] = count (or sum of ``weights``) of cells with reference class
    ``classes[i]`` and simulated class ``classes[j]``.

    Cells where either map holds a value not in ``classes`` (no data) or where
    ``mask`` is False are excluded.
    """
    ref = np.asarray(reference)
    sim = np.asarray(simulated)
    if ref.shape != sim.shape:
        raise ValueError(f"reference shape {ref.shape} != simulated shape {sim.shape}")
    classes = list(classes)
    k = len(classes)
    ri = np.full(ref.shape, -1)
    si = np.full(sim.shape, -1)
    for i, c in enumerate(classes):
        ri[ref == c] = i
        si[sim == c] = i
    ok = (ri >= 0) & (si >= 0)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)
    w = None
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=float), ref.shape)[ok]
    flat = ri[ok] * k + si[ok]
    cm = np.bincount(flat, weights=w, minlength=k * k).reshape(k, k)
    return cm if weights is not None else cm.astype(np.int64)


def agreement(cm) -> dict:
    """Overall accuracy, Cohen's kappa, quantity and allocation disagreement of a
    confusion matrix (rows reference, columns simulated); see the module doc."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum()
    if n <= 0:
        return {"n": 0.0, "overall_accuracy": math.nan, "kappa": math.nan,
                "quantity_disagreement": math.nan, "allocation_disagreement": math.nan}
    p = cm / n
    po = float(np.trace(p))
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    pe = float(np.sum(rows * cols))
    kappa = (po - pe) / (1.0 - pe) if pe < 1.0 else (1.0 if po == 1.0 else math.nan)
    diag = np.diag(p)
    q = 0.5 * float(np.sum(np.abs(rows - cols)))
    a = 0.5 * float(np.sum(2.0 * np.minimum(rows - diag, cols - diag)))
    return {"n": float(n), "overall_accuracy": po, "kappa": float(kappa),
            "quantity_disagreement": q, "allocation_disagreement": a}


def map_agreement(reference, simulated, mask=None, weights=None) -> dict:
    """3-class and binary (permafrost / not) agreement of two class maps."""
    cm3 = confusion_matrix(reference, simulated, CLASSES, mask, weights)
    cm2 = confusion_matrix(to_binary(reference), to_binary(simulated), (1, 2), mask, weights)
    return {"classes": {"labels": [CLASS_LABELS[c] for c in CLASSES],
                        "confusion_matrix": cm3.tolist(), **agreement(cm3)},
            "binary": {"labels": [BINARY_LABELS[c] for c in (1, 2)],
                       "confusion_matrix": cm2.tolist(), **agreement(cm2)}}


# ------------------------------------------------------------------------------------------
# A run directory
# ------------------------------------------------------------------------------------------

PRODUCT_NETCDF = "noahtibet_frozen_ground.nc"


@dataclass
class RunData:
    """The files of a finished (or partial) gridded run, read lazily.

    Layout (written by :class:`noahtibet.simulation.Simulation`): ``annual/annual_YYYY.nc``
    (per simulated cell tmin/tmax/tmean (cell, layer) [K], max_thaw_depth [m],
    cell_row, cell_col; the grid's frozen_ground_class), ``products/`` (yearly
    GeoTIFFs and ``noahtibet_frozen_ground.nc`` with the configuration as JSON
    in its attributes), ``spinup_report.json``.
    """

    run_dir: Path
    annual_paths: dict
    grid: LatLonGrid
    cell_rows: np.ndarray
    cell_cols: np.ndarray
    config_dict: dict | None = None
    config_source: str = ""
    product_attrs: dict = field(default_factory=dict)
    cfg: object = None
    _model: object = None
    _classes: dict = field(default_factory=dict)
    _thickness: dict = field(default_factory=dict)
    _stored_thickness: object = None

    @property
    def years(self) -> list[int]:
        return sorted(self.annual_paths)

    @property
    def ncell(self) -> int:
        return int(self.cell_rows.size)

    def classes(self, year: int) -> np.ndarray:
        """(nlat, nlon) uint8 classes of ``year`` (255 NoData)."""
        if year not in self._classes:
            import netCDF4

            with netCDF4.Dataset(self.annual_paths[year]) as nc:
                nc.set_auto_mask(False)
                self._classes[year] = np.array(nc["frozen_ground_class"][:], dtype=np.uint8)
        return self._classes[year]

    def annual_attrs(self, year: int) -> dict:
        import netCDF4

        with netCDF4.Dataset(self.annual_paths[year]) as nc:
            return {k: nc.getncattr(k) for k in nc.ncattrs()}

    def water_balance(self) -> dict | None:
        """Mean over the cells of each annual water-balance term [m] per year, and the
        largest |residual| of a cell, from the annual files (None when they have none)."""
        import netCDF4

        out = {}
        for year in self.years:
            with netCDF4.Dataset(self.annual_paths[year]) as nc:
                if "water_balance_residual" not in nc.variables:
                    return None
                nc.set_auto_mask(False)
                row = {n: float(np.mean(nc[n][:])) for n in
                       ("precipitation", "evapotranspiration", "surface_runoff", "drainage",
                        "water_clamped", "water_storage_change")}
                row["max_abs_residual"] = float(np.max(np.abs(nc["water_balance_residual"][:])))
                row["max_water_clamped"] = float(np.max(nc["water_clamped"][:]))
            out[year] = row
        return out

    def layer_thickness(self, row: int, col: int) -> np.ndarray:
        """Layer thicknesses [m] of the cell (row, col).

        From the annual file's ``layer_thickness`` variable when it has one,
        otherwise from the run's configuration (the domain model's column spec).
        """
        import netCDF4

        key = (int(row), int(col))
        if key in self._thickness:
            return self._thickness[key]
        first = self.annual_paths[self.years[0]]
        if self._stored_thickness is None:
            with netCDF4.Dataset(first) as nc:
                self._stored_thickness = (np.array(nc["layer_thickness"][:], dtype=float)
                                          if "layer_thickness" in nc.variables else False)
        v = self._stored_thickness
        if v is not False:
            if v.ndim == 1:
                return v
            pos = np.flatnonzero((self.cell_rows == row) & (self.cell_cols == col))
            return v[pos[0]]
        if self.cfg is None:
            raise InputError("the layer thicknesses are not in the annual files and the run's "
                             "configuration is not available (no products/" + PRODUCT_NETCDF +
                             "); pass the configuration file", path=str(first),
                             field="layer_thickness")
        if self._model is None:
            from .simulation import build_model

            self._model = build_model(self.cfg)
        dz = np.asarray(self._model.column_spec(*key).layer_thickness, dtype=float)
        self._thickness[key] = dz
        return dz

    def cell_metrics(self, year: int, cells) -> dict:
        """ALT, TTOP, GT10m and class at the given cell positions (canonical order) in ``year``.

        ALT/TTOP are NaN where the cell is not permafrost; all three are NaN where
        the cell is NoData that year (e.g. a lake).
        """
        import netCDF4

        cells = np.asarray(cells, dtype=int)
        with netCDF4.Dataset(self.annual_paths[year]) as nc:
            nc.set_auto_mask(False)
            tmean = np.array(nc["tmean"][:])[cells]
            thaw = np.array(nc["max_thaw_depth"][:])[cells]
        cls = self.classes(year)[self.cell_rows[cells], self.cell_cols[cells]]
        out = {v: np.full(cells.size, np.nan) for v in VARIABLES}
        # group by layer geometry (normally one group)
        geoms: dict = {}
        for j, c in enumerate(cells):
            dz = self.layer_thickness(self.cell_rows[c], self.cell_cols[c])
            geoms.setdefault(tuple(np.round(dz, 9)), []).append(j)
        for dz, idx in geoms.items():
            idx = np.array(idx)
            m = annual_metrics(tmean[idx], thaw[idx], cls[idx] == PERMAFROST, np.array(dz))
            for v in VARIABLES:
                out[v][idx] = m[v]
        for v in VARIABLES:
            out[v][cls == NODATA] = np.nan
        out["class"] = cls
        return out


def _grid_from_netcdf(path: Path) -> LatLonGrid | None:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        if "lat" not in nc.variables or "lon" not in nc.variables:
            return None
        lat = np.array(nc["lat"][:], dtype=float)
        lon = np.array(nc["lon"][:], dtype=float)
        if "lat_bnds" in nc.variables and "lon_bnds" in nc.variables:
            lb = np.array(nc["lat_bnds"][:], dtype=float)
            ob = np.array(nc["lon_bnds"][:], dtype=float)
            dlat, dlon = abs(lb[0, 1] - lb[0, 0]), abs(ob[0, 1] - ob[0, 0])
        else:
            dlat = abs(lat[1] - lat[0]) if lat.size > 1 else None
            dlon = abs(lon[1] - lon[0]) if lon.size > 1 else None
            if dlat is None or dlon is None:
                return None
    if lat[0] > lat[-1]:
        raise InputError("latitude must be ascending (as written by noahtibet)", path=str(path),
                         field="lat")
    return LatLonGrid(float(lon[0]), float(lat[0]), round(float(dlon), 10), round(float(dlat), 10),
                      int(lon.size), int(lat.size))


def open_run(run_dir, config=None) -> RunData:
    """Open a run directory (see :class:`RunData`).

    ``config``: a TOML configuration file to use instead of the configuration
    stored in the products (needed when the run wrote no netCDF product).
    """
    import netCDF4

    from . import config as config_mod

    run_dir = Path(run_dir)
    annual = {}
    for p in sorted((run_dir / "annual").glob("annual_*.nc")):
        try:
            annual[int(p.stem.split("_")[-1])] = p
        except ValueError:
            continue
    if not annual:
        raise InputError("no annual/annual_YYYY.nc files: not a noahtibet run directory, or "
                         "the transient run has not written a year yet", path=str(run_dir),
                         field="annual")
    product = run_dir / "products" / PRODUCT_NETCDF
    attrs: dict = {}
    config_dict, source, cfg = None, "", None
    if product.exists():
        with netCDF4.Dataset(product) as nc:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    if config is not None:
        cfg = config_mod.load(config)
        config_dict, source = cfg.to_dict(), str(config)
    else:
        text = attrs.get("configuration")
        source = f"{product} (attribute 'configuration')"
        if text is None:
            for tif in sorted((run_dir / "products").glob("*.tif")):
                import rasterio

                with rasterio.open(tif) as src:
                    text = src.tags().get("configuration")
                if text:
                    source = f"{tif} (tag 'configuration')"
                    break
        if text:
            config_dict = json.loads(text)
            try:
                cfg = config_mod.from_dict(config_dict, path=source)
            except InputError as exc:   # e.g. input files of the run no longer reachable
                log.warning("the run's configuration does not validate here (%s); using it "
                            "for provenance only", exc)
                cfg = None
        else:
            source = ""
    with netCDF4.Dataset(annual[min(annual)]) as nc:
        nc.set_auto_mask(False)
        rows = np.array(nc["cell_row"][:], dtype=int)
        cols = np.array(nc["cell_col"][:], dtype=int)
        shape = (nc.dimensions["lat"].size, nc.dimensions["lon"].size)
    grid = _grid_from_netcdf(product) if product.exists() else None
    if grid is None and cfg is not None:
        from .simulation import build_model

        grid = build_model(cfg).grid
    if grid is None:
        raise InputError("cannot tell the grid: no products/" + PRODUCT_NETCDF + " with lat/lon "
                         "and no configuration; pass the configuration file", path=str(run_dir),
                         field="grid")
    if grid.shape != shape:
        raise InputError(f"grid {grid.shape} of the products does not match the annual files' "
                         f"{shape}", path=str(annual[min(annual)]), field="frozen_ground_class")
    return RunData(run_dir, annual, grid, rows, cols, config_dict, source, attrs, cfg)


# ------------------------------------------------------------------------------------------
# Sites
# ------------------------------------------------------------------------------------------

@dataclass
class SiteValidation:
    """Observed-vs-simulated pairs and their metrics."""

    matches: object          # DataFrame: one row per site (see observations.match_sites)
    pairs: object            # DataFrame: site, variable, year, obs, sim, cell, class
    metrics: dict            # variable -> pair_metrics
    trends: object           # DataFrame of site_trends
    trend_metrics: dict      # variable -> pair_metrics of the trends
    unmatched: list          # observations without a simulated counterpart (reasons)


def validate_sites(run: RunData, observations, max_distance_km: float | None = None,
                   min_trend_years: int = MIN_TREND_YEARS) -> SiteValidation:
    """Pair every observation (site, year, variable) with the run's value at the site's cell.

    Observations in years the run did not simulate are left out.  Where the
    simulated cell is not permafrost an observed ALT/TTOP has no simulated
    counterpart (sim = NaN): such pairs are kept in ``pairs`` (and counted in
    the report) but do not enter the metrics.
    """
    import pandas as pd

    from .observations import match_sites

    obs = observations
    sites = obs.groupby("site", sort=True).agg(lat=("lat", "first"), lon=("lon", "first"),
                                               elevation=("elevation", "first")).reset_index()
    matches = match_sites(sites, run.grid, run.cell_rows, run.cell_cols,
                          max_distance_km=max_distance_km)
    cell_of = {r.site: int(r.cell) for r in matches.itertuples() if r.cell >= 0}
    unmatched = [f"{r.site}: {r.note}" for r in matches.itertuples() if r.cell < 0]
    rows = []
    for year in run.years:
        sel = obs[(obs["year"] == year) & obs["site"].isin(cell_of.keys())]
        if sel.empty:
            continue
        site_list = sorted(sel["site"].unique())
        cells = np.array([cell_of[s] for s in site_list])
        m = run.cell_metrics(year, cells)
        pos = {s: j for j, s in enumerate(site_list)}
        for r in sel.itertuples():
            j = pos[r.site]
            rows.append({"site": r.site, "variable": r.variable, "year": int(year),
                         "obs": float(r.value), "sim": float(m[r.variable][j]),
                         "cell": int(cells[j]), "class": int(m["class"][j])})
    outside = obs[~obs["year"].isin(run.years)]
    if len(outside):
        log.info("%d observations fall in years the run did not simulate (%s..%s); left out",
                 len(outside), run.years[0], run.years[-1])
    pairs = pd.DataFrame(rows, columns=["site", "variable", "year", "obs", "sim", "cell", "class"])
    metrics = {v: pair_metrics(pairs.loc[pairs["variable"] == v, "obs"],
                               pairs.loc[pairs["variable"] == v, "sim"]) for v in VARIABLES}
    for v in VARIABLES:
        sub = pairs[pairs["variable"] == v]
        metrics[v]["n_observations"] = int(len(sub))
        metrics[v]["n_sim_missing"] = int(np.sum(~np.isfinite(sub["sim"].to_numpy(float))))
    trends = site_trends(pairs, min_trend_years)
    return SiteValidation(matches, pairs, metrics, trends, trend_metrics(trends), unmatched)
