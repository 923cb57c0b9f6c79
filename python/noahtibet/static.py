"""Static per-cell fields on a model grid: regridding, soil, vegetation, LAI, terrain, TBOT.

Sources
-------
A *source* is one of

* a path to a GeoTIFF (any GDAL raster; every band is read), or
* ``"file.nc:varname"`` (or the tuple ``("file.nc", "varname")``): a netCDF variable whose last two
  dimensions are the horizontal axes (1-D regular coordinate variables; latitude may run either
  way).  A leading third dimension (month, depth, ...) becomes the band axis.  Packing
  (``scale_factor``/``add_offset``) and ``_FillValue``/``missing_value`` are applied by netCDF4.

The coordinate reference system (CRS) comes from the GeoTIFF, or for netCDF from the
``grid_mapping`` variable's ``crs_wkt``/``spatial_ref`` attribute; a netCDF variable on 1-D
latitude/longitude coordinates (units ``degrees_north``/``degrees_east``, or standard names
``latitude``/``longitude``) without a grid mapping is taken as geographic WGS84 (EPSG:4326), the
CF default reading.  A source without a CRS is an :class:`~noahtibet.errors.InputError`.

Only the part of a source that covers the target grid (plus a one-pixel margin) is read.

Regridding method
-----------------
Every model cell is split into ``k x k`` equal sub-cells in latitude-longitude (the *supersample
factor*).  The source is resampled to the centres of these sub-cells by nearest neighbour with
``rasterio.warp.reproject`` (GDAL; any source CRS), and the sub-cells are then aggregated per model
cell by our own code:

* ``"majority"`` (classes): the most frequent valid value among the cell's sub-cells; ties go to the
  **smallest** class value (deterministic); sub-cells without data are ignored.
* ``"mean"`` (continuous): the area-weighted mean of the valid sub-cells (weights are the sub-cell
  areas on the sphere, proportional to ``sin(lat_n) - sin(lat_s)``).

The returned ``coverage`` is the fraction of the ``k*k`` sub-cells that had valid source data (0 where
the source has no data or does not reach the cell).  Cells without any valid sub-cell get the fill
value (NaN for ``"mean"``, ``fill`` for ``"majority"``).

Choice of ``k`` (``supersample=None``): the ratio of the model cell size to the source pixel size
(in degrees, estimated from the source window's extent in EPSG:4326), rounded up, at least 1 and at
most 64.  For a geographic source whose pixel edges coincide with the model cell edges (e.g. a
1/120 degree map on a 0.1 degree grid: k = 12) every sub-cell centre lies inside exactly one source
pixel, so the majority and the (area-weighted) mean are exact pixel statistics.  For other
sources each source pixel is sampled about once, which is the usual "nearest-neighbour then
aggregate" estimate.  GDAL's own ``mode``/``average`` resampling was not used because it gives
neither deterministic tie-breaking nor the valid-coverage fraction.

Per-cell fields
---------------
All fields are (nlat, nlon) arrays (monthly fields (12, nlat, nlon), soil (nlayer, nlat, nlon)) with
**latitude ascending** (row 0 = southernmost row), like every model grid (:mod:`noahtibet.grid`).

====================  ==========  ===============================================================
field                 units       function / method
====================  ==========  ===============================================================
soil class per layer  STAS 1-19   :func:`soil_classes` (USDA texture of the cell-mean fractions)
vegetation class      USGS 1-27   :func:`vegetation_class` (crosswalk, then majority)
LAI (12 months)       m2 m-2      :func:`monthly_lai` (mean)
green fraction (12)   0-1         :func:`monthly_green_fraction` (mean)
elevation             m           :func:`elevation` (mean)
slope class           1-9         :func:`slope_class` (per-pixel class, then majority)
deep temperature      K           :func:`deep_temperature` (mean annual air temperature + offset)
====================  ==========  ===============================================================
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Union

import numpy as np

from .errors import ConfigError, InputError
from .grid import LatLonGrid

__all__ = [
    "RegridResult",
    "Crosswalk",
    "regrid",
    "read_source",
    "load_crosswalk",
    "apply_crosswalk",
    "soil_classes",
    "texture_class",
    "layers_from_depth_intervals",
    "vegetation_class",
    "monthly_lai",
    "monthly_green_fraction",
    "elevation",
    "slope_class",
    "slope_class_from_degrees",
    "deep_temperature",
    "deep_temperature_from_source",
    "DEFAULT_GRAVEL_THRESHOLD",
    "DEFAULT_SLOPE_THRESHOLDS_PERCENT",
    "DEFAULT_TBOT_OFFSET",
    "USDA_TEXTURE_NAMES",
]

Source = Union[str, os.PathLike, tuple]

#: Largest automatic supersample factor (sub-cells per model cell along each axis).
MAX_SUPERSAMPLE = 64
#: Target number of sub-cells per processing chunk (bounds memory: 8 bytes each, a few copies).
_CHUNK_SUBCELLS = 4_000_000

_NETCDF_EXT = (".nc", ".nc4", ".cdf", ".netcdf")


class RegridResult(NamedTuple):
    """Field on the model grid and the fraction of valid source coverage of every cell.

    ``values``: (nlat, nlon) or (nband, nlat, nlon), latitude ascending.
    ``coverage``: same shape, fraction [0, 1] of the cell's sub-cells with valid source data.
    """

    values: np.ndarray
    coverage: np.ndarray


# ------------------------------------------------------------------------------------------
# Reading sources
# ------------------------------------------------------------------------------------------


@dataclass
class _Raster:
    """A north-up window of a source, as float64 with NaN = no data."""

    path: str
    field: str                # variable name, or "band" for a GeoTIFF (error messages)
    data: np.ndarray          # (nband, ny, nx) float64, NaN = no data; row 0 = north edge
    transform: Any            # affine.Affine of the window
    crs: Any                  # rasterio.crs.CRS
    two_d: bool               # the source itself is a single 2-D field
    band_labels: tuple        # labels of the bands (1-based band numbers or coordinate values)


def _split_source(source: Source) -> tuple[str, str | None]:
    """(path, variable) of a source given as path, "file.nc:var" or (path, var)."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ConfigError("a source tuple must be (path, variable_or_layer)",
                              path=str(source[0]) if source else None, field="source",
                              value=source)
        return str(source[0]), (None if source[1] is None else str(source[1]))
    text = os.fspath(source)
    if os.path.exists(text):
        return text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and not tail.startswith(("/", "\\")):
        return head, tail
    return text, None


def _is_netcdf(path: str) -> bool:
    return path.lower().endswith(_NETCDF_EXT)


def _target_bounds_in(crs, grid: LatLonGrid) -> tuple[float, float, float, float] | None:
    """The grid's bounds in ``crs`` (densified edges), or None if they cannot be computed."""
    from rasterio.warp import transform_bounds
    try:
        b = transform_bounds("EPSG:4326", crs, *grid.bounds, densify_pts=51)
    except Exception:  # noqa: BLE001 - a CRS where the box is not representable: read everything
        return None
    if not all(math.isfinite(v) for v in b):
        return None
    return b


def read_source(source: Source, grid: LatLonGrid | None = None) -> _Raster:
    """Read a source (see module doc) as float64 with NaN where there is no data.

    With ``grid`` only the window covering the grid (plus one pixel) is read.  Raises
    :class:`InputError` for a missing or unreadable file, a missing variable, or a missing CRS.
    """
    path, var = _split_source(source)
    if not os.path.exists(path):
        raise InputError("file not found", path=path, field=var)
    if var is not None or _is_netcdf(path):
        return _read_netcdf(path, var, grid)
    return _read_gdal(path, grid)


def _read_gdal(path: str, grid: LatLonGrid | None) -> _Raster:
    import rasterio
    from rasterio.windows import Window

    try:
        src = rasterio.open(path)
    except Exception as exc:  # noqa: BLE001 - rasterio raises RasterioIOError and others
        raise InputError(f"cannot be read as a raster ({exc})", path=path, field=None) from exc
    with src:
        if src.crs is None:
            raise InputError("has no coordinate reference system (CRS); georeference the file",
                             path=path, field="crs")
        full = Window(0, 0, src.width, src.height)
        window = full
        t = src.transform
        if grid is not None and t.b == 0 and t.d == 0:
            b = _target_bounds_in(src.crs, grid)
            if b is not None:
                inv = ~t
                cr = [inv * (x, y) for x in (b[0], b[2]) for y in (b[1], b[3])]
                col0 = math.floor(min(c for c, _ in cr)) - 1
                row0 = math.floor(min(r for _, r in cr)) - 1
                col1 = math.ceil(max(c for c, _ in cr)) + 1
                row1 = math.ceil(max(r for _, r in cr)) + 1
                col0, row0 = max(col0, 0), max(row0, 0)
                col1, row1 = min(col1, src.width), min(row1, src.height)
                window = Window(col0, row0, max(col1 - col0, 0), max(row1 - row0, 0))
        try:
            if window.width == 0 or window.height == 0:
                data = np.full((src.count, 0, 0), np.nan)
            else:
                masked = src.read(window=window, masked=True)
                data = np.ma.filled(masked.astype(np.float64), np.nan)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot be read ({exc})", path=path, field="band") from exc
        scales, offsets = src.scales, src.offsets
        for i in range(src.count):
            if scales[i] not in (None, 1.0) or offsets[i] not in (None, 0.0):
                data[i] = data[i] * scales[i] + offsets[i]
        return _Raster(path=path, field="band", data=data,
                       transform=src.window_transform(window), crs=src.crs,
                       two_d=src.count == 1, band_labels=tuple(range(1, src.count + 1)))


def _coord_is_regular(c: np.ndarray) -> bool:
    d = np.diff(c)
    return bool(d.size) and bool(np.all(np.abs(d - d[0]) <= 1e-6 * abs(d[0]) + 1e-12)) and d[0] != 0


def _read_netcdf(path: str, var: str | None, grid: LatLonGrid | None) -> _Raster:
    import netCDF4
    from affine import Affine
    from rasterio.crs import CRS

    if var is None:
        raise InputError("a netCDF source must name its variable as 'file.nc:variable'",
                         path=path, field=None)
    try:
        ds = netCDF4.Dataset(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot be read as netCDF ({exc})", path=path, field=var) from exc
    with ds:
        if var not in ds.variables:
            raise InputError(f"variable not in file (variables: {', '.join(ds.variables)})",
                             path=path, field=var)
        v = ds.variables[var]
        if v.ndim not in (2, 3):
            raise InputError(f"has {v.ndim} dimensions {v.dimensions}; 2 (y, x) or 3 "
                             "(band, y, x) expected", path=path, field=var)
        ydim, xdim = v.dimensions[-2:]
        coords = {}
        for d in (ydim, xdim):
            if d not in ds.variables or ds.variables[d].ndim != 1:
                raise InputError(f"dimension '{d}' has no 1-D coordinate variable",
                                 path=path, field=var)
            c = np.asarray(ds.variables[d][:], dtype=np.float64)
            if c.size < 2 or not _coord_is_regular(c) or not np.all(np.isfinite(c)):
                raise InputError("coordinate is not a regular axis of at least 2 values",
                                 path=path, field=d)
            coords[d] = c
        x, y = coords[xdim], coords[ydim]
        if x[1] < x[0]:
            raise InputError("x/longitude coordinate must increase", path=path, field=xdim)

        crs = None
        gm = getattr(v, "grid_mapping", None)
        if gm:
            gm_name = str(gm).split(":")[0].strip()
            if gm_name not in ds.variables:
                raise InputError(f"grid_mapping variable '{gm_name}' not in file",
                                 path=path, field=var)
            gv = ds.variables[gm_name]
            wkt = getattr(gv, "crs_wkt", None) or getattr(gv, "spatial_ref", None)
            if not wkt:
                raise InputError(f"grid_mapping '{gm_name}' has no crs_wkt/spatial_ref "
                                 "attribute: CRS missing", path=path, field="crs")
            try:
                crs = CRS.from_wkt(str(wkt))
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"grid_mapping '{gm_name}' crs_wkt cannot be parsed ({exc})",
                                 path=path, field="crs") from exc
        else:
            xv, yv = ds.variables[xdim], ds.variables[ydim]
            xu = str(getattr(xv, "units", "")).lower().replace(" ", "")
            yu = str(getattr(yv, "units", "")).lower().replace(" ", "")
            xs = str(getattr(xv, "standard_name", "")).lower()
            ys = str(getattr(yv, "standard_name", "")).lower()
            if ((xu.startswith("degree") and xu.endswith(("east", "e")) or xs == "longitude")
                    and (yu.startswith("degree") and yu.endswith(("north", "n"))
                         or ys == "latitude")):
                crs = CRS.from_epsg(4326)
            else:
                raise InputError("no CRS: no grid_mapping attribute and the coordinates are "
                                 "not latitude/longitude in degrees", path=path, field="crs")

        dx = x[1] - x[0]
        dy = abs(y[1] - y[0])
        ysl, xsl = slice(0, y.size), slice(0, x.size)
        if grid is not None:
            b = _target_bounds_in(crs, grid)
            if b is not None:
                west, south, east, north = b
                xi = np.flatnonzero((x + dx / 2 >= west - dx) & (x - dx / 2 <= east + dx))
                yi = np.flatnonzero((y + dy / 2 >= south - dy) & (y - dy / 2 <= north + dy))
                if xi.size == 0 or yi.size == 0:
                    nb = v.shape[0] if v.ndim == 3 else 1
                    return _Raster(path, var, np.full((nb, 0, 0), np.nan), Affine.identity(),
                                   crs, v.ndim == 2, tuple(range(1, nb + 1)))
                xsl = slice(int(xi[0]), int(xi[-1]) + 1)
                ysl = slice(int(yi[0]), int(yi[-1]) + 1)
        try:
            raw = v[..., ysl, xsl]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot be read ({exc})", path=path, field=var) from exc
        data = np.ma.filled(np.ma.asarray(raw).astype(np.float64), np.nan)
        if data.ndim == 2:
            data = data[None]
        xw, yw = x[xsl], y[ysl]
        if yw.size > 1 and yw[1] > yw[0]:      # latitude / y ascending: flip to north-up
            data = data[:, ::-1, :]
            yw = yw[::-1]
        transform = Affine(dx, 0.0, xw[0] - dx / 2, 0.0, -dy, yw[0] + dy / 2)
        if v.ndim == 3:
            lead = v.dimensions[0]
            if lead in ds.variables and ds.variables[lead].ndim == 1:
                labels = tuple(np.asarray(ds.variables[lead][:]).tolist())
            else:
                labels = tuple(range(1, v.shape[0] + 1))
        else:
            labels = (1,)
        return _Raster(path=path, field=var, data=np.ascontiguousarray(data),
                       transform=transform, crs=crs, two_d=v.ndim == 2, band_labels=labels)


# ------------------------------------------------------------------------------------------
# Regridding
# ------------------------------------------------------------------------------------------


def _auto_supersample(raster: _Raster, grid: LatLonGrid) -> int:
    """Cell size / source pixel size (degrees), rounded up, in [1, MAX_SUPERSAMPLE]."""
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    _, ny, nx = raster.data.shape
    if nx == 0 or ny == 0:
        return 1
    try:
        west, south, east, north = transform_bounds(
            raster.crs, "EPSG:4326", *array_bounds(ny, nx, raster.transform), densify_pts=21)
        px = abs(east - west) / nx
        py = abs(north - south) / ny
    except Exception:  # noqa: BLE001
        return 1
    if not (px > 0 and py > 0 and math.isfinite(px) and math.isfinite(py)):
        return 1
    ratio = max(grid.dlon / px, grid.dlat / py)
    k = round(ratio) if abs(ratio - round(ratio)) < 1e-6 else math.ceil(ratio)
    return int(min(max(k, 1), MAX_SUPERSAMPLE))


def _check_supersample(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1024:
        raise ConfigError("must be an integer in 1..1024", path=None, field="supersample",
                          value=k)
    return int(k)


def _subcells(raster: _Raster, band: int, grid: LatLonGrid, k: int, r0: int, r1: int
              ) -> np.ndarray:
    """Sub-cell values (r1-r0, nlon, k*k) of grid rows r0..r1-1 (ascending), NaN = no data.

    Sub-cell order inside a cell: k sub-rows south to north, each k sub-columns west to east.
    """
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    nrow = r1 - r0
    west, south, _, _ = grid.bounds
    dst = np.full((nrow * k, grid.nlon * k), np.nan, dtype=np.float64)
    src = raster.data[band]
    if src.size:
        north = south + grid.dlat * r1
        dst_t = Affine(grid.dlon / k, 0.0, west, 0.0, -grid.dlat / k, north)
        reproject(source=src, destination=dst, src_transform=raster.transform,
                  src_crs=raster.crs, src_nodata=np.nan, dst_transform=dst_t,
                  dst_crs="EPSG:4326", dst_nodata=np.nan, resampling=Resampling.nearest,
                  init_dest_nodata=True)
    dst = dst[::-1]                                     # south to north
    return dst.reshape(nrow, k, grid.nlon, k).transpose(0, 2, 1, 3).reshape(nrow, grid.nlon,
                                                                            k * k)


def _majority(sub: np.ndarray, fill) -> tuple[np.ndarray, np.ndarray]:
    """Mode over the last axis ignoring NaN; ties -> smallest value; (values, nvalid)."""
    valid = ~np.isnan(sub)
    nvalid = valid.sum(axis=-1)
    best = np.full(sub.shape[:-1], np.nan)
    best_n = np.zeros(sub.shape[:-1], dtype=np.int64)
    for c in np.unique(sub[valid]):                   # ascending: ties keep the smaller class
        n = (sub == c).sum(axis=-1)
        better = n > best_n
        best[better] = c
        best_n[better] = n[better]
    out = np.where(nvalid > 0, best, np.nan)
    return out, nvalid


def _weighted_mean(sub: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted mean over the last axis ignoring NaN; (values, nvalid)."""
    valid = ~np.isnan(sub)
    w = np.where(valid, weights, 0.0)
    wsum = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(wsum > 0, (np.where(valid, sub, 0.0) * w).sum(axis=-1) / wsum, np.nan)
    return out, valid.sum(axis=-1)


def _subcell_weights(grid: LatLonGrid, k: int, r0: int, r1: int) -> np.ndarray:
    """(r1-r0, 1, k*k) relative sub-cell areas (sin(lat_n) - sin(lat_s))."""
    south = grid.bounds[1]
    edges = south + grid.dlat * (r0 + np.arange((r1 - r0) * k + 1) / k)
    s = np.sin(np.radians(edges))
    band = (s[1:] - s[:-1]).reshape(r1 - r0, k)
    return np.repeat(band, k, axis=1)[:, None, :]


def _aggregate(raster: _Raster, grid: LatLonGrid, method: str, k: int, fill=0
               ) -> tuple[np.ndarray, np.ndarray]:
    """(values (nband, nlat, nlon), coverage (nband, nlat, nlon)) of a read source.

    ``method``: "majority", "mean" or "cover" (sum of the sub-cell values / k*k: the covered
    fraction of a 0/1 indicator; NaN counts as 0).
    """
    nband = raster.data.shape[0]
    shape = (nband,) + grid.shape
    if method == "majority":
        values = np.full(shape, fill, dtype=np.int64)
    else:
        values = np.full(shape, np.nan)
    coverage = np.zeros(shape)
    m = k * k
    step = max(1, _CHUNK_SUBCELLS // max(1, grid.nlon * m))
    for b in range(nband):
        for r0 in range(0, grid.nlat, step):
            r1 = min(r0 + step, grid.nlat)
            sub = _subcells(raster, b, grid, k, r0, r1)
            if method == "majority":
                v, n = _majority(sub, fill)
                values[b, r0:r1] = np.where(n > 0, np.nan_to_num(v), fill).astype(np.int64)
            elif method == "mean":
                v, n = _weighted_mean(sub, _subcell_weights(grid, k, r0, r1))
                values[b, r0:r1] = v
            elif method == "cover":
                n = (~np.isnan(sub)).sum(axis=-1)
                values[b, r0:r1] = np.nansum(sub, axis=-1) / m
            else:  # pragma: no cover - guarded by callers
                raise ValueError(method)
            coverage[b, r0:r1] = n / m
    return values, coverage


def _finish(raster: _Raster, values, coverage, band) -> RegridResult:
    if band is not None:
        return RegridResult(values[band], coverage[band])
    if raster.two_d:
        return RegridResult(values[0], coverage[0])
    return RegridResult(values, coverage)


def _check_band(raster: _Raster, band):
    if band is None:
        return None
    nb = raster.data.shape[0]
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 0 <= band < nb:
        raise ConfigError(f"band index must be in 0..{nb - 1} (0-based)", path=raster.path,
                          field="band", value=band)
    return int(band)


def _regrid_raster(raster: _Raster, grid: LatLonGrid, method: str, band=None,
                   supersample=None, fill=0) -> RegridResult:
    if method not in ("majority", "mean"):
        raise ConfigError("regrid method must be 'majority' or 'mean'", path=raster.path,
                          field="method", value=method)
    band = _check_band(raster, band)
    k = _auto_supersample(raster, grid) if supersample is None else _check_supersample(
        supersample)
    if band is not None:
        one = _Raster(raster.path, raster.field, raster.data[band:band + 1], raster.transform,
                      raster.crs, True, (raster.band_labels[band],))
        values, coverage = _aggregate(one, grid, method, k, fill)
        return RegridResult(values[0], coverage[0])
    values, coverage = _aggregate(raster, grid, method, k, fill)
    return _finish(raster, values, coverage, None)


def regrid(source: Source, grid: LatLonGrid, method: str, *, band: int | None = None,
           supersample: int | None = None, fill: int = 0) -> RegridResult:
    """Regrid a GeoTIFF or netCDF variable (any CRS, any resolution) to ``grid``.

    Parameters
    ----------
    source : path of a GeoTIFF, ``"file.nc:var"`` or ``(path, var)`` (see the module doc).
    grid : target model grid (EPSG:4326); the result is latitude ascending.
    method : ``"majority"`` (classes; ties -> smallest class; no data ignored) or ``"mean"``
        (continuous; area-weighted mean of the valid sub-cells).
    band : 0-based band (or leading-dimension index) to regrid; None = all bands.
    supersample : sub-cells per model cell along each axis; None = automatic (module doc).
    fill : value of ``"majority"`` cells without valid data (``"mean"`` gives NaN).

    Returns
    -------
    RegridResult(values, coverage): (nlat, nlon) arrays for a single-band source or a selected
    band, else (nband, nlat, nlon).  ``values`` is int64 for ``"majority"``, float64 for
    ``"mean"``; ``coverage`` is the valid-data fraction of each cell.
    """
    return _regrid_raster(read_source(source, grid), grid, method, band, supersample, fill)


# ------------------------------------------------------------------------------------------
# Crosswalk tables (class code -> class code)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crosswalk:
    """A class-code mapping read from a CSV table.

    ``mapping[source_code]`` is the target class, or None for "no data" (the pixel is ignored).
    """

    path: str
    mapping: dict
    source_names: dict


_NODATA_WORDS = ("", "nodata", "none", "na", "-")


def _crosswalk_text(table) -> tuple[str, str]:
    if isinstance(table, str) and "/" not in table and os.sep not in table \
            and not table.lower().endswith(".csv"):
        res = resources.files("noahtibet").joinpath("data", "crosswalks", table + ".csv")
        try:
            return str(res), res.read_text(encoding="utf-8")
        except (FileNotFoundError, OSError) as exc:
            raise ConfigError("no packaged crosswalk of this name", path=str(res),
                              field="crosswalk", value=table) from exc
    p = Path(table)
    if not p.is_file():
        raise ConfigError("crosswalk file not found", path=p, field="crosswalk")
    try:
        return str(p), p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"crosswalk file cannot be read ({exc})", path=p,
                          field="crosswalk") from exc


def load_crosswalk(table: str | os.PathLike) -> Crosswalk:
    """Load a crosswalk CSV: a packaged name (e.g. ``"igbp_to_usgs"``) or a path.

    Format: ``#`` comment lines, then a header whose first two columns are the source and target
    codes (names free, e.g. ``igbp,usgs``); further columns are free text (names, rationale).
    Each row maps one integer source code to an integer target class, or to no data when the
    target is empty or ``nodata``.  Duplicate or non-integer codes raise :class:`InputError`
    naming the file, line and column.
    """
    path, text = _crosswalk_text(table)
    header = None
    mapping: dict[int, int | None] = {}
    names: dict[int, str] = {}
    lines: dict[int, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([raw]))]
        if header is None:
            if len(cells) < 2:
                raise InputError("header needs at least two columns (source, target)",
                                 path=path, line=lineno, field=None, value=raw)
            header = cells
            continue
        if len(cells) < 2:
            raise InputError("row needs a source and a target code", path=path, line=lineno,
                             field=header[1], value=raw)
        try:
            code = int(cells[0])
        except ValueError:
            raise InputError("is not an integer class code", path=path, line=lineno,
                             field=header[0], value=cells[0]) from None
        if code in mapping:
            raise InputError(f"is mapped twice (first at line {lines[code]})", path=path,
                             line=lineno, field=header[0], value=cells[0])
        target_text = cells[1]
        if target_text.lower() in _NODATA_WORDS:
            target = None
        else:
            try:
                target = int(target_text)
            except ValueError:
                raise InputError("is not an integer class (or 'nodata')", path=path,
                                 line=lineno, field=header[1], value=target_text) from None
        mapping[code] = target
        lines[code] = lineno
        names[code] = cells[2] if len(cells) > 2 else ""
    if header is None or not mapping:
        raise InputError("crosswalk has no rows", path=path, field=None)
    return Crosswalk(path=path, mapping=mapping, source_names=names)


def _as_crosswalk(table) -> Crosswalk:
    if isinstance(table, Crosswalk):
        return table
    if isinstance(table, Mapping):
        return Crosswalk(path="<mapping>", mapping={int(k): (None if v is None else int(v))
                                                    for k, v in table.items()},
                         source_names={})
    return load_crosswalk(table)


def apply_crosswalk(codes: np.ndarray, crosswalk: Crosswalk, *, path: str, field: str
                    ) -> np.ndarray:
    """Map an array of source codes (float, NaN = no data) through a crosswalk.

    Returns float64 target classes with NaN for no data (NaN input or a code mapped to nodata).
    A code that is not in the crosswalk (or not an integer) raises :class:`InputError` naming
    ``path`` (the source file), ``field`` and the code.
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.full(codes.shape, np.nan)
    valid = ~np.isnan(codes)
    uniq, inverse = np.unique(codes[valid], return_inverse=True)
    targets = np.empty(uniq.size)
    for i, c in enumerate(uniq):
        if c != math.floor(c):
            raise InputError("is not an integer class code", path=path, field=field,
                             value=float(c))
        t = crosswalk.mapping.get(int(c), "missing")
        if t == "missing":
            raise InputError(f"is a class code not in the crosswalk {crosswalk.path}",
                             path=path, field=field, value=int(c))
        targets[i] = np.nan if t is None else t
    out[valid] = targets[inverse]
    return out


# ------------------------------------------------------------------------------------------
# Soil classes
# ------------------------------------------------------------------------------------------

#: USDA texture class names in the order of :func:`texture_class` codes 1..12.
USDA_TEXTURE_NAMES = ("SAND", "LOAMY SAND", "SANDY LOAM", "LOAM", "SILT LOAM", "SILT",
                      "SANDY CLAY LOAM", "CLAY LOAM", "SILTY CLAY LOAM", "SANDY CLAY",
                      "SILTY CLAY", "CLAY")

#: Default volumetric coarse-fragment (gravel) fraction above which a layer is GRAVEL (13).
#: 0.5 = gravel is the larger part of the layer volume.  For reference, the USDA texture
#: modifiers are "gravelly" 15-35 %, "very gravelly" 35-60 %, "extremely gravelly" 60-90 %
#: coarse fragments by volume (Soil Survey Manual, USDA Handbook 18).
DEFAULT_GRAVEL_THRESHOLD = 0.5

_STAS_GRAVEL = 13
_STAS_BEDROCK = 14


def texture_class(sand, clay) -> np.ndarray:
    """USDA texture class (1..12 in :data:`USDA_TEXTURE_NAMES` order) from sand and clay [%].

    Silt = 100 - sand - clay.  The rules are the USDA texture-triangle definitions (Soil Survey
    Manual, USDA Handbook 18, as implemented in the NRCS texture calculator), evaluated in the
    order below; the first that holds gives the class, so shared boundaries go to the earlier
    class.  NaN input gives 0.
    """
    sand = np.asarray(sand, dtype=np.float64)
    clay = np.asarray(clay, dtype=np.float64)
    silt = 100.0 - sand - clay
    conds = [
        silt + 1.5 * clay < 15,                                                   # sand
        (silt + 1.5 * clay >= 15) & (silt + 2 * clay < 30),                       # loamy sand
        ((clay >= 7) & (clay < 20) & (sand > 52) & (silt + 2 * clay >= 30))
        | ((clay < 7) & (silt < 50) & (silt + 2 * clay >= 30)),                   # sandy loam
        (clay >= 7) & (clay < 27) & (silt >= 28) & (silt < 50) & (sand <= 52),    # loam
        ((silt >= 50) & (clay >= 12) & (clay < 27))
        | ((silt >= 50) & (silt < 80) & (clay < 12)),                             # silt loam
        (silt >= 80) & (clay < 12),                                               # silt
        (clay >= 20) & (clay < 35) & (silt < 28) & (sand > 45),                   # sandy clay loam
        (clay >= 27) & (clay < 40) & (sand > 20) & (sand <= 45),                  # clay loam
        (clay >= 27) & (clay < 40) & (sand <= 20),                                # silty clay loam
        (clay >= 35) & (sand > 45),                                               # sandy clay
        (clay >= 40) & (silt >= 40),                                              # silty clay
        (clay >= 40) & (sand <= 45) & (silt < 40),                                # clay
    ]
    out = np.select(conds, list(range(1, 13)), default=0).astype(np.int16)
    out[np.isnan(sand) | np.isnan(clay)] = 0
    return out


def _stas_of_texture(soil_table=None) -> np.ndarray:
    """Lookup (13,) from texture code 0..12 to the STAS class with the same NAME (0 -> 0)."""
    from .tables import load_soil_table
    table = soil_table if soil_table is not None else load_soil_table()
    names = [n.strip().upper() for n in table.NAME]
    lut = np.zeros(13, dtype=np.int16)
    for i, name in enumerate(USDA_TEXTURE_NAMES, start=1):
        if name not in names:
            raise ConfigError("soil table has no class of this name", path=table.path,
                              field="NAME", value=name)
        lut[i] = names.index(name) + 1
    for k, name in ((_STAS_GRAVEL, "GRAVEL"), (_STAS_BEDROCK, "BEDROCK")):
        if len(names) < k or names[k - 1] != name:
            raise ConfigError(f"soil class {k} must be {name} (Noah-Tibet STAS ordering)",
                              path=table.path, field="NAME",
                              value=names[k - 1] if len(names) >= k else None)
    return lut


def _check_fraction_array(a, name, source, units, allow_nan=True) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    scale = 100.0 if units == "fraction" else 1.0
    bad = ~np.isnan(a) & ((a < 0) | (a > 1.0 * 100.0 / scale + 1e-9))
    if np.any(bad):
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise InputError(f"is outside 0..{'1' if units == 'fraction' else '100'} ({units}) at "
                         f"index {idx}", path=source, field=name, value=float(a[idx]))
    # round away representation noise (0.07 * 100 = 7.000000000000001) so that values given on
    # a texture-triangle boundary fall on the boundary
    return np.round(a * scale, 9)


def soil_classes(sand, clay, gravel=None, *, layer_bottoms=None, depth_to_bedrock=None,
                 gravel_threshold: float = DEFAULT_GRAVEL_THRESHOLD, units: str = "fraction",
                 soil_table=None, source: str = "<soil arrays>") -> np.ndarray:
    """Noah-Tibet STAS soil class of every layer and cell.

    Parameters
    ----------
    sand, clay : (nlayer, ...) sand and clay content of the fine earth per layer (mass fractions
        of the < 2 mm soil, as in the texture triangle), ``units="fraction"`` (0-1, default) or
        ``"percent"``; NaN = no data.
    gravel : (nlayer, ...) volumetric coarse-fragment fraction (same ``units``), or None.
    layer_bottoms : (nlayer,) depths of the layer bottoms below the surface [m, positive,
        increasing]; needed with ``depth_to_bedrock``.
    depth_to_bedrock : (...) depth to bedrock [m, positive]; NaN or inf = no bedrock in the column.
    gravel_threshold : a layer with gravel fraction **above** this is GRAVEL (13); default
        :data:`DEFAULT_GRAVEL_THRESHOLD` (0.5), always given as a fraction.
    soil_table : a :class:`noahtibet.tables.SoilTable` (default: the packaged STAS table).

    Rules, in order of precedence: a layer whose **mid-depth** lies at or below the depth to
    bedrock (i.e. more than half of it is rock) is BEDROCK (14); else a layer with gravel above
    the threshold is GRAVEL (13); else the USDA texture class of (sand, clay) mapped by name to
    the STAS class (STAS order 1 CLAY ... 12 SAND, the reverse of the stock STATSGO table).  Cells
    with no data (NaN sand or clay, not bedrock/gravel) get 0.

    Returns int16 (nlayer, ...).
    """
    if units not in ("fraction", "percent"):
        raise ConfigError("units must be 'fraction' or 'percent'", path=source, field="units",
                          value=units)
    if not (isinstance(gravel_threshold, (int, float)) and 0.0 <= gravel_threshold <= 1.0):
        raise ConfigError("must be a fraction in 0..1", path=source, field="gravel_threshold",
                          value=gravel_threshold)
    sand_p = _check_fraction_array(sand, "sand", source, units)
    clay_p = _check_fraction_array(clay, "clay", source, units)
    if sand_p.shape != clay_p.shape or sand_p.ndim < 1:
        raise InputError(f"sand {sand_p.shape} and clay {clay_p.shape} shapes differ (or are "
                         "not (nlayer, ...))", path=source, field="clay")
    over = (sand_p + clay_p) > 100.0 + 1e-6
    if np.any(over):
        idx = tuple(int(i[0]) for i in np.nonzero(over))
        raise InputError(f"sand + clay exceeds 100 % at index {idx}", path=source,
                         field="sand+clay", value=float(sand_p[idx] + clay_p[idx]))
    lut = _stas_of_texture(soil_table)
    out = lut[texture_class(sand_p, clay_p)]
    if gravel is not None:
        g = _check_fraction_array(gravel, "gravel", source, units) / 100.0
        if g.shape != sand_p.shape:
            raise InputError(f"gravel shape {g.shape} != sand shape {sand_p.shape}",
                             path=source, field="gravel")
        out = np.where(g > gravel_threshold, np.int16(_STAS_GRAVEL), out)
    if depth_to_bedrock is not None:
        if layer_bottoms is None:
            raise ConfigError("layer_bottoms is needed with depth_to_bedrock", path=source,
                              field="layer_bottoms")
        zb = np.asarray(layer_bottoms, dtype=np.float64)
        if zb.shape != (sand_p.shape[0],) or np.any(zb <= 0) or np.any(np.diff(zb) <= 0):
            raise ConfigError("layer_bottoms must be nlayer positive increasing depths [m]",
                              path=source, field="layer_bottoms", value=list(zb.ravel()))
        mid = (np.concatenate(([0.0], zb[:-1])) + zb) / 2.0
        dtb = np.asarray(depth_to_bedrock, dtype=np.float64)
        if dtb.shape != sand_p.shape[1:]:
            raise InputError(f"depth_to_bedrock shape {dtb.shape} != cell shape "
                             f"{sand_p.shape[1:]}", path=source, field="depth_to_bedrock")
        if np.any(dtb < 0):
            raise InputError("depth to bedrock is negative", path=source,
                             field="depth_to_bedrock", value=float(np.nanmin(dtb)))
        mid_b = mid.reshape((-1,) + (1,) * dtb.ndim)
        rock = ~np.isnan(dtb) & (mid_b >= dtb)
        out = np.where(rock, np.int16(_STAS_BEDROCK), out)
    return out.astype(np.int16)


def layers_from_depth_intervals(values, source_bottoms, layer_bottoms) -> np.ndarray:
    """Assign source depth-interval values (nsrc, ...) to model layers (nlayer, ...).

    Each model layer takes the value of the source interval containing the layer's mid-depth;
    layers deeper than the deepest source interval take the deepest values.  Depths [m] are
    positive and increasing (bottoms of the source intervals / model layers).
    """
    values = np.asarray(values)
    sb = np.asarray(source_bottoms, dtype=np.float64)
    zb = np.asarray(layer_bottoms, dtype=np.float64)
    if sb.ndim != 1 or sb.size != values.shape[0] or np.any(np.diff(sb) <= 0) or np.any(sb <= 0):
        raise ConfigError("source_bottoms must be positive increasing depths, one per source "
                          "interval", path=None, field="source_bottoms", value=list(sb.ravel()))
    if zb.ndim != 1 or np.any(np.diff(zb) <= 0) or np.any(zb <= 0):
        raise ConfigError("layer_bottoms must be positive increasing depths [m]", path=None,
                          field="layer_bottoms", value=list(zb.ravel()))
    mid = (np.concatenate(([0.0], zb[:-1])) + zb) / 2.0
    idx = np.minimum(np.searchsorted(sb, mid, side="left"), sb.size - 1)
    return values[idx]


# ------------------------------------------------------------------------------------------
# Vegetation, LAI, green fraction
# ------------------------------------------------------------------------------------------


def vegetation_class(source: Source, grid: LatLonGrid, crosswalk="igbp_to_usgs", *,
                     supersample: int | None = None, band: int | None = None) -> RegridResult:
    """USGS 27-class vegetation type per cell from a land-cover map.

    The map's class codes are translated pixel by pixel through ``crosswalk`` (a packaged name,
    a CSV path, a dict or a :class:`Crosswalk`; default the packaged IGBP 17-class table
    ``igbp_to_usgs``, see ``data/crosswalks/PROVENANCE.md``) and then aggregated by majority
    (ties -> smaller USGS class).  Pixels that are the file's no data, or mapped to nodata, are
    ignored.  A code found in the map (in the window read) but absent from the crosswalk raises
    :class:`InputError` naming the map file and the code.  Result: int64 USGS class (0 where no
    data), coverage fraction.
    """
    cw = _as_crosswalk(crosswalk)
    for code, target in cw.mapping.items():
        if target is not None and not 1 <= target <= 27:
            raise ConfigError("is not a USGS vegetation class (1..27)", path=cw.path,
                              field=f"target of code {code}", value=target)
    raster = read_source(source, grid)
    if band is not None:
        band = _check_band(raster, band)
    elif raster.data.shape[0] != 1:
        raise InputError(f"land-cover source has {raster.data.shape[0]} bands; choose one with "
                         "band=", path=raster.path, field=raster.field)
    b = band or 0
    raster.data = apply_crosswalk(raster.data[b:b + 1], cw, path=raster.path, field=raster.field)
    raster.two_d = True
    return _regrid_raster(raster, grid, "majority", None, supersample, 0)


def _monthly(source, grid, supersample, scale, lo, hi, what, units) -> RegridResult:
    raster = read_source(source, grid)
    nb = raster.data.shape[0]
    if nb != 12:
        raise InputError(f"{what} needs 12 monthly bands (January..December); the source has "
                         f"{nb}", path=raster.path, field=raster.field, value=nb)
    labels = raster.band_labels
    if all(isinstance(v, (int, float)) for v in labels) and sorted(labels) == list(
            range(1, 13)) and list(labels) != list(range(1, 13)):
        raise InputError("month coordinate is not in calendar order 1..12", path=raster.path,
                         field=raster.field, value=list(labels))
    raster.data = raster.data * scale
    bad = ~np.isnan(raster.data) & ((raster.data < lo) | (raster.data > hi))
    if np.any(bad):
        bi, yi, xi = (int(i[0]) for i in np.nonzero(bad))
        raise InputError(f"{what} outside {lo}..{hi} {units} (month {bi + 1}; after "
                         f"scale={scale})", path=raster.path, field=raster.field,
                         value=float(raster.data[bi, yi, xi]))
    return _regrid_raster(raster, grid, "mean", None, supersample)


def monthly_lai(source: Source, grid: LatLonGrid, *, scale: float = 1.0,
                supersample: int | None = None) -> RegridResult:
    """Monthly leaf-area index [m2 m-2], (12, nlat, nlon), area mean of a 12-band source.

    Bands (GeoTIFF) or the leading dimension (netCDF) are January..December.  ``scale``
    multiplies the stored values (e.g. 0.1 for LAI stored as integer tenths).  Values outside
    0..15 m2 m-2 after scaling raise :class:`InputError`.
    """
    return _monthly(source, grid, supersample, scale, 0.0, 15.0, "LAI", "m2 m-2")


def monthly_green_fraction(source: Source, grid: LatLonGrid, *, scale: float = 1.0,
                           supersample: int | None = None) -> RegridResult:
    """Monthly green-vegetation fraction [0-1], (12, nlat, nlon), area mean of a 12-band source.

    ``scale`` converts stored values to a fraction (0.01 for percent).  Values outside 0..1
    after scaling raise :class:`InputError`.
    """
    return _monthly(source, grid, supersample, scale, 0.0, 1.0, "green fraction", "(fraction)")


# ------------------------------------------------------------------------------------------
# Terrain
# ------------------------------------------------------------------------------------------


def elevation(source: Source, grid: LatLonGrid, *, supersample: int | None = None,
              band: int | None = None) -> RegridResult:
    """Cell-mean surface elevation [m above sea level] (area mean of a DEM in metres).

    Values outside -500..9000 m raise :class:`InputError` (wrong units or fill values).
    """
    raster = read_source(source, grid)
    b = _check_band(raster, band)
    d = raster.data if b is None else raster.data[b:b + 1]
    bad = ~np.isnan(d) & ((d < -500.0) | (d > 9000.0))
    if np.any(bad):
        raise InputError("elevation outside -500..9000 m (wrong units or undeclared fill "
                         "value?)", path=raster.path, field=raster.field,
                         value=float(d[bad][0]))
    return _regrid_raster(raster, grid, "mean", b, supersample)


#: Slope-percent limits between GENPARM slope classes 1 | 2 | 3.
DEFAULT_SLOPE_THRESHOLDS_PERCENT = (8.0, 30.0)


def slope_class_from_degrees(slope_deg, thresholds_percent=DEFAULT_SLOPE_THRESHOLDS_PERCENT
                             ) -> np.ndarray:
    """GENPARM slope class 1, 2 or 3 from the slope angle [degrees]; NaN -> 0.

    Slope in percent = 100 tan(angle); class 1 below ``thresholds_percent[0]`` (8 %), class 2 up
    to ``thresholds_percent[1]`` (30 %), class 3 at or above it (see :func:`slope_class`).
    """
    lo, hi = thresholds_percent
    if not 0 < lo < hi:
        raise ConfigError("slope thresholds must satisfy 0 < low < high [%]", path=None,
                          field="thresholds_percent", value=thresholds_percent)
    s = np.asarray(slope_deg, dtype=np.float64)
    pct = 100.0 * np.tan(np.radians(s))
    out = np.where(pct < lo, 1, np.where(pct < hi, 2, 3)).astype(np.int16)
    out[np.isnan(s)] = 0
    return out


def slope_class(source: Source, grid: LatLonGrid, *, kind: str = "degrees",
                thresholds_percent=DEFAULT_SLOPE_THRESHOLDS_PERCENT, num_slope: int = 9,
                supersample: int | None = None) -> RegridResult:
    """GENPARM slope class (``SLOPETYP``, 1..``num_slope``) per cell.

    The 9 GENPARM slope classes are the slope categories of Noah's global slope-type map
    (FAO / Zobler 1986): 1 = 0-8 %, 2 = 8-30 %, 3 = > 30 %, 4-7 = mixtures of these (4: 1+2,
    5: 1+3, 6: 2+3, 7: all; the Noah-Tibet SLOPE_DATA of 4, 5, 6 are exactly the means of their
    components' values), 8-9 = other categories (SLOPE_DATA 0: no drainage).  SLOPE_DATA is the
    bottom free-drainage coefficient.

    ``kind="degrees"`` (or ``"percent"``): a slope raster; every source pixel is classed
    1/2/3 by :func:`slope_class_from_degrees` (limits ``thresholds_percent``, default 8 and
    30 %), then the cell takes the majority class (ties -> smaller class, i.e. less drainage).
    Mixture classes 4-7 are not produced.  ``kind="class"``: a raster of slope classes,
    aggregated by majority; codes outside 1..``num_slope`` raise :class:`InputError`.
    """
    if kind not in ("degrees", "percent", "class"):
        raise ConfigError("kind must be 'degrees', 'percent' or 'class'", path=None,
                          field="kind", value=kind)
    raster = read_source(source, grid)
    if raster.data.shape[0] != 1:
        raise InputError(f"slope source has {raster.data.shape[0]} bands, 1 expected",
                         path=raster.path, field=raster.field)
    d = raster.data
    if kind == "class":
        bad = ~np.isnan(d) & ((d < 1) | (d > num_slope) | (d != np.floor(d)))
        if np.any(bad):
            raise InputError(f"is not a slope class 1..{num_slope}", path=raster.path,
                             field=raster.field, value=float(d[bad][0]))
    else:
        if kind == "percent":
            d = np.degrees(np.arctan(d / 100.0))
        bad = ~np.isnan(d) & ((d < 0) | (d > 90))
        if np.any(bad):
            raise InputError("slope angle outside 0..90 degrees", path=raster.path,
                             field=raster.field, value=float(d[bad][0]))
        cls = slope_class_from_degrees(d, thresholds_percent).astype(np.float64)
        cls[cls == 0] = np.nan
        d = cls
    raster.data = d
    return _regrid_raster(raster, grid, "majority", None, supersample, 0)


# ------------------------------------------------------------------------------------------
# Deep (lower-boundary) temperature
# ------------------------------------------------------------------------------------------

#: Default TBOT offset [K] added to the mean annual air temperature.
DEFAULT_TBOT_OFFSET = 0.0


def deep_temperature(mean_annual_air_temperature, offset: float = DEFAULT_TBOT_OFFSET, *,
                     source: str = "<mean annual air temperature>") -> np.ndarray:
    """Lower-boundary temperature TBOT [K] at ZBOT (GENPARM ZBOT_DATA, -40 m in Noah-Tibet).

    Method: TBOT = long-term mean annual air temperature of the forcing at the cell [K] +
    ``offset`` [K].  This is the usual Noah practice (the deep-soil temperature of the stock
    model is an annual-mean air-temperature climatology).  The default offset is 0 K.  Real
    ground at 40 m is usually warmer than the air (snow/vegetation surface offset, thermal offset
    and the geothermal gradient), so the offset is configurable; for reference, the legacy
    Tanggula example (33.02 N, 91.96 E) uses TBOT = 272.43 K while its forcing's 2008-2010 mean
    air temperature is about 268.3 K, i.e. an offset of about +4.1 K there.

    ``mean_annual_air_temperature``: (nlat, nlon) array [K]; NaN (no forcing) stays NaN.  Values
    outside 180..330 K raise :class:`InputError` (e.g. degrees Celsius given).
    """
    t = np.asarray(mean_annual_air_temperature, dtype=np.float64)
    if not (isinstance(offset, (int, float)) and math.isfinite(offset)):
        raise ConfigError("must be a finite number [K]", path=None, field="tbot_offset",
                          value=offset)
    bad = ~np.isnan(t) & ((t < 180.0) | (t > 330.0))
    if np.any(bad):
        raise InputError("mean annual air temperature outside 180..330 K (Celsius given?)",
                         path=source, field="mean_annual_air_temperature",
                         value=float(t[bad][0]))
    return t + float(offset)


def deep_temperature_from_source(source: Source, grid: LatLonGrid, *,
                                 supersample: int | None = None) -> RegridResult:
    """TBOT [K] from a provided raster of deep-ground temperature (area mean).

    Values outside 180..330 K raise :class:`InputError` (e.g. a map in degrees Celsius).
    """
    raster = read_source(source, grid)
    d = raster.data
    bad = ~np.isnan(d) & ((d < 180.0) | (d > 330.0))
    if np.any(bad):
        raise InputError("deep temperature outside 180..330 K (Celsius given?)",
                         path=raster.path, field=raster.field, value=float(d[bad][0]))
    if d.shape[0] != 1:
        raise InputError(f"TBOT source has {d.shape[0]} bands, 1 expected", path=raster.path,
                         field=raster.field)
    return _regrid_raster(raster, grid, "mean", None, supersample)
