"""Cell masks (study domain, glaciers, yearly lakes) and the reference permafrost map.

Masks from polygons
-------------------
A cell is masked when the fraction of its area covered by the polygons **exceeds** a threshold
(default 0.5; a cell covered exactly half is not masked).  The covered fraction is computed

* **exactly** (default, ``supersample=None``): the polygons (in EPSG:4326, after reprojection
  from the file's CRS) are transformed to grid-index space, where every cell is the unit square
  ``[col, col+1] x [row, row+1]``, and intersected with the cells (shapely/GEOS).  Cells entirely
  inside the polygons get 1 without an intersection; only cells on the boundary are intersected,
  row strip by row strip.  Overlapping polygons are merged first, so they are not counted twice.
  The fraction is an area fraction in latitude-longitude space, which differs from the fraction
  on the sphere by less than ``dlat * tan(lat)`` relative (< 0.1 % for 0.1 degree cells on the
  plateau).
* or by **supersampling** (``supersample=k``): the fraction of the ``k x k`` sub-cell centres
  that fall inside the polygons (e.g. k = 10 gives 1 % steps).

To keep an exactly-half cell from flipping on rounding, the comparison is
``fraction > threshold + 1e-9``.

Vector files (shapefile, GeoPackage, GeoJSON, ... any OGR format) are read with ``pyogrio``
(bundled GDAL/OGR); only (multi)polygons are accepted.  Geometries in a projected CRS are
densified (segments no longer than 1/20 of a cell, measured in the source CRS at the grid
centre) before reprojection to EPSG:4326, so straight projected edges stay close to their true
curved lat-lon shape.  Invalid polygons are repaired with ``shapely.make_valid``.

Masks from rasters
------------------
A pixel covers its area when its value is non-zero (or, with ``values=``, one of the given
codes); no-data pixels and areas outside the raster do not cover.  The covered fraction is the
fraction of the cell's sub-cells (see :mod:`noahtibet.static`) that land on covering pixels.

Yearly lake masks
-----------------
:class:`LakeMasks` maps years to sources.  For a year without its own source the **nearest**
year's source is used; on a tie (a year exactly between two) the **earlier** year wins.

Reference permafrost map
------------------------
:func:`reference_map` maps the codes of the 2010 reference map (about 1 km, geographic WGS84
GeoTIFF) to 1 permafrost, 2 seasonally frozen ground, 3 unfrozen ground or no data, pixel by
pixel, and aggregates the mapped classes to the model grid by majority (ties -> smaller class;
no-data pixels ignored; cells without any classified pixel get 0 = no data).
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import ConfigError, InputError
from .grid import Domain, LatLonGrid
from .static import (RegridResult, _aggregate, _as_crosswalk, _auto_supersample,
                     _check_supersample, _regrid_raster, _split_source, apply_crosswalk,
                     read_source)

__all__ = [
    "DEFAULT_THRESHOLD",
    "REFERENCE_CLASSES",
    "DEFAULT_REFERENCE_MAPPING",
    "read_polygons",
    "coverage_fraction",
    "mask_from_fraction",
    "mask_from_vector",
    "raster_coverage_fraction",
    "mask_from_raster",
    "mask_from_source",
    "domain_from_source",
    "LakeMasks",
    "reference_map",
]

#: Default covered fraction a cell must exceed to be masked.
DEFAULT_THRESHOLD = 0.5
#: Classes of the reference map and of the products.
REFERENCE_CLASSES = {1: "permafrost", 2: "seasonally frozen ground", 3: "unfrozen ground"}
#: Default code mapping of the reference map: codes 1, 2, 3 are the classes themselves; 0 (the
#: usual background outside the mapped area) is no data, as is the file's declared NoData value.
#: Any other code raises InputError: give the map's own legend as ``mapping=`` (a dict or a CSV
#: ``code,class`` with ``nodata`` for no data), e.g. to send glacier or lake codes to no data.
DEFAULT_REFERENCE_MAPPING = {0: None, 1: 1, 2: 2, 3: 3}

_RASTER_EXT = (".tif", ".tiff", ".nc", ".nc4", ".img", ".vrt", ".asc")
_TOL = 1e-9


def _check_threshold(threshold, path=None) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not math.isfinite(threshold) or not 0.0 <= threshold < 1.0:
        raise ConfigError("mask threshold must be a covered fraction in [0, 1)", path=path,
                          field="threshold", value=threshold)
    return float(threshold)


# ------------------------------------------------------------------------------------------
# Vector input
# ------------------------------------------------------------------------------------------


def read_polygons(path: str | os.PathLike, layer: str | int | None = None):
    """(geometries, crs) of the (multi)polygons of a vector file (pyogrio / OGR).

    ``crs`` is the file's CRS as a string accepted by rasterio (EPSG code or WKT).  Raises
    :class:`InputError` for a missing or unreadable file, an unknown layer, a missing CRS or
    non-polygon geometries.
    """
    import shapely
    try:
        import pyogrio
        import pyogrio.raw
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ConfigError("reading vector files needs the 'pyogrio' package", path=path,
                          field=None) from exc
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path, field=None if layer is None else
                         f"layer {layer}")
    try:
        meta, _, wkb, _ = pyogrio.raw.read(path, layer=layer, columns=[])
    except Exception as exc:  # noqa: BLE001 - pyogrio raises DataSourceError, DataLayerError ...
        raise InputError(f"cannot be read as a vector file ({exc})", path=path,
                         field=None if layer is None else f"layer {layer}") from exc
    crs = meta.get("crs")
    if not crs:
        raise InputError("has no coordinate reference system (CRS); add a .prj / define it",
                         path=path, field="crs")
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.array([], dtype=object)
    geoms = geoms[~shapely.is_missing(geoms)]
    geoms = geoms[~shapely.is_empty(geoms)]
    types = set(shapely.get_type_id(geoms).tolist())
    polygonal = {3, 6}                                  # Polygon, MultiPolygon
    if types - polygonal:
        names = sorted({shapely.get_type_id(g) for g in geoms} - polygonal)
        raise InputError("has non-polygon geometries (only polygons can cover cells)",
                         path=path, field="geometry",
                         value=",".join(str(shapely.GeometryType(n).name) for n in names))
    return list(geoms), crs


def _to_lonlat(geoms, crs, grid: LatLonGrid, path):
    """Reproject shapely geometries from ``crs`` to EPSG:4326 (densified first)."""
    import shapely
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_transform

    try:
        src = CRS.from_user_input(crs)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"CRS cannot be interpreted ({exc})", path=path, field="crs",
                         value=str(crs)[:80]) from exc
    if src == CRS.from_epsg(4326) or (src.is_geographic and src.to_epsg() == 4326):
        return geoms
    # densify: 1/20 of a cell, measured in the source CRS near the grid centre
    lon_c = grid.lon0 + grid.dlon * (grid.nlon - 1) / 2
    lat_c = grid.lat0 + grid.dlat * (grid.nlat - 1) / 2
    xs, ys = warp_transform("EPSG:4326", src, [lon_c, lon_c + grid.dlon],
                            [lat_c, lat_c + grid.dlat])
    seg = max(min(abs(xs[1] - xs[0]), abs(ys[1] - ys[0])) / 20.0, 1e-12)
    out = []
    for g in geoms:
        g = shapely.segmentize(g, seg)

        def fn(coords, _src=src):
            x, y = warp_transform(_src, "EPSG:4326", coords[:, 0].tolist(),
                                  coords[:, 1].tolist())
            return np.column_stack([x, y])
        out.append(shapely.transform(g, fn))
    return out


def _as_lonlat_geometries(geometries_or_path, grid, layer, crs):
    """Geometries in EPSG:4326 from a vector path, (path, layer), or shapely geometries."""
    import shapely
    if isinstance(geometries_or_path, tuple) and geometries_or_path and all(
            isinstance(g, shapely.Geometry) for g in geometries_or_path):
        geometries_or_path = list(geometries_or_path)
    if isinstance(geometries_or_path, (str, os.PathLike, tuple)):
        path, lay = _split_source(geometries_or_path)
        if layer is not None:
            lay = layer
        geoms, file_crs = read_polygons(path, lay)
        return _to_lonlat(geoms, file_crs, grid, path), path
    if isinstance(geometries_or_path, shapely.Geometry):
        geoms = [geometries_or_path]
    else:
        geoms = list(geometries_or_path)
    for g in geoms:
        if not isinstance(g, shapely.Geometry) or shapely.get_type_id(g) not in (3, 6, 7):
            raise InputError("is not a shapely polygon", path="<geometries>", field="geometry",
                             value=repr(g)[:60])
    if crs is not None:
        geoms = _to_lonlat(geoms, crs, grid, "<geometries>")
    return geoms, "<geometries>"


def _index_space_union(geoms, grid: LatLonGrid):
    """Union of the geometries in grid-index space (cell (r, c) = [c, c+1] x [r, r+1])."""
    import shapely
    west, south, _, _ = grid.bounds
    scale = np.array([1.0 / grid.dlon, 1.0 / grid.dlat])
    origin = np.array([west, south])
    geoms = [shapely.make_valid(g) for g in geoms]
    if not geoms:
        return None
    u = shapely.union_all([shapely.transform(g, lambda c: (c - origin) * scale) for g in geoms])
    # keep only the areal part (make_valid may leave lines / points)
    parts = [p for p in shapely.get_parts(u) if shapely.get_type_id(p) in (3, 6)]
    if not parts:
        return None
    return shapely.union_all(parts)


def coverage_fraction(geometries_or_path, grid: LatLonGrid, supersample: int | None = None, *,
                      layer: str | int | None = None, crs: Any = None) -> np.ndarray:
    """Fraction [0, 1] of every cell's area covered by polygons, (nlat, nlon), lat ascending.

    ``geometries_or_path``: a vector file path (``"file.gpkg:layer"`` or ``(path, layer)`` to
    choose a layer), or shapely (multi)polygons in ``crs`` (default EPSG:4326 lon/lat).
    ``supersample``: None = exact (module doc); an integer k = fraction of k x k sub-cell
    centres inside the polygons.
    """
    import shapely
    geoms, _ = _as_lonlat_geometries(geometries_or_path, grid, layer, crs)
    frac = np.zeros(grid.shape)
    g = _index_space_union(geoms, grid)
    if g is None:
        return frac
    x0, y0, x1, y1 = shapely.bounds(g)
    c0, c1 = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)), grid.nlon)
    r0, r1 = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)), grid.nlat)
    if c0 >= c1 or r0 >= r1:
        return frac
    shapely.prepare(g)
    if supersample is not None:
        k = _check_supersample(supersample)
        off = (np.arange(k) + 0.5) / k
        cols = np.arange(c0, c1)
        xs = (cols[:, None] + off[None, :]).ravel()               # (ncol*k,)
        for r in range(r0, r1):
            ys = r + off
            X, Y = np.meshgrid(xs, ys)                            # (k, ncol*k)
            inside = shapely.contains_xy(g, X, Y)
            frac[r, c0:c1] = inside.reshape(k, c1 - c0, k).sum(axis=(0, 2)) / (k * k)
        return frac
    cols = np.arange(c0, c1)
    for r in range(r0, r1):
        boxes = shapely.box(cols, r, cols + 1, r + 1)
        inside = shapely.contains_properly(g, boxes)
        touch = shapely.intersects(g, boxes) & ~inside
        frac[r, c0:c1][inside] = 1.0
        if touch.any():
            strip = shapely.clip_by_rect(g, c0, r, c1, r + 1)
            areas = shapely.area(shapely.intersection(strip, boxes[touch]))
            frac[r, c0:c1][touch] = np.clip(areas, 0.0, 1.0)
    return frac


def mask_from_fraction(fraction: np.ndarray, threshold: float = DEFAULT_THRESHOLD
                       ) -> np.ndarray:
    """Boolean mask: covered fraction > threshold (with a 1e-9 tolerance, see module doc)."""
    t = _check_threshold(threshold)
    return np.asarray(fraction) > t + _TOL


def mask_from_vector(path, grid: LatLonGrid, threshold: float = DEFAULT_THRESHOLD,
                     layer: str | int | None = None, *, supersample: int | None = None
                     ) -> np.ndarray:
    """Boolean (nlat, nlon) mask of the cells whose polygon-covered fraction exceeds
    ``threshold`` (vector file: shapefile, GeoPackage, ...; optional ``layer``)."""
    t = _check_threshold(threshold, path)
    return coverage_fraction(path, grid, supersample, layer=layer) > t + _TOL


def raster_coverage_fraction(source, grid: LatLonGrid, *, values: Iterable[float] | None = None,
                             supersample: int | None = None, band: int = 0) -> np.ndarray:
    """Fraction of every cell covered by a raster's covering pixels (non-zero, or in ``values``);
    no data and areas outside the raster do not cover.  (nlat, nlon), latitude ascending."""
    raster = read_source(source, grid)
    nb = raster.data.shape[0]
    if not 0 <= band < nb:
        raise ConfigError(f"band index must be in 0..{nb - 1}", path=raster.path, field="band",
                          value=band)
    d = raster.data[band:band + 1]
    if values is None:
        ind = np.where(np.isnan(d), 0.0, (d != 0).astype(np.float64))
    else:
        ind = np.isin(d, np.asarray(list(values), dtype=np.float64)).astype(np.float64)
    raster.data = ind
    k = _auto_supersample(raster, grid) if supersample is None else _check_supersample(
        supersample)
    frac, _ = _aggregate(raster, grid, "cover", k)
    return frac[0]


def mask_from_raster(source, grid: LatLonGrid, threshold: float = DEFAULT_THRESHOLD, *,
                     values: Iterable[float] | None = None, supersample: int | None = None,
                     band: int = 0) -> np.ndarray:
    """Boolean mask from a raster (GeoTIFF or ``"file.nc:var"``): covered fraction > threshold.
    """
    t = _check_threshold(threshold, _split_source(source)[0])
    frac = raster_coverage_fraction(source, grid, values=values, supersample=supersample,
                                    band=band)
    return frac > t + _TOL


def _is_raster_path(path: str) -> bool:
    return path.lower().endswith(_RASTER_EXT)


def mask_from_source(source, grid: LatLonGrid, threshold: float = DEFAULT_THRESHOLD, *,
                     layer=None, values=None, supersample: int | None = None) -> np.ndarray:
    """Mask from a vector file, a raster, or a ready (nlat, nlon) boolean/fraction array.

    Raster files are recognised by extension (.tif, .tiff, .nc, ...; ``"file.nc:var"``);
    anything else is read as a vector file.  A float array is taken as covered fractions.
    """
    if isinstance(source, np.ndarray):
        if source.shape != grid.shape:
            raise InputError(f"mask array shape {source.shape} != grid shape {grid.shape}",
                             path="<array>", field="mask")
        if source.dtype == bool:
            return source.copy()
        return mask_from_fraction(source, threshold)
    path, sub = _split_source(source)
    if _is_raster_path(path):
        return mask_from_raster(source, grid, threshold, values=values, supersample=supersample)
    return mask_from_vector(path, grid, threshold, layer if layer is not None else sub,
                            supersample=supersample)


def domain_from_source(source, grid: LatLonGrid, threshold: float = DEFAULT_THRESHOLD, *,
                       layer=None, values=None, supersample: int | None = None) -> Domain:
    """The study domain (e.g. the plateau boundary polygon) as a :class:`~noahtibet.grid.Domain`:
    active cells are those whose covered fraction exceeds ``threshold``
    (see :func:`mask_from_source`).  Glacier and lake masks are applied by the caller."""
    active = mask_from_source(source, grid, threshold, layer=layer, values=values,
                              supersample=supersample)
    return Domain(grid=grid, active=active)


# ------------------------------------------------------------------------------------------
# Yearly lake masks
# ------------------------------------------------------------------------------------------


class LakeMasks:
    """Yearly lake masks: ``LakeMasks({1990: "lakes_1990.shp", 2010: ...}, grid)``.

    ``sources``: year -> vector file (``"file.gpkg:layer"`` or ``(path, layer)`` allowed),
    raster, or a ready (nlat, nlon) array (see :func:`mask_from_source`).
    :meth:`for_year` uses the year's own source, else the nearest year's (ties -> the earlier
    year).  Masks are computed once per source year and cached.
    """

    def __init__(self, sources: Mapping[int, Any], grid: LatLonGrid,
                 threshold: float = DEFAULT_THRESHOLD, *, values=None,
                 supersample: int | None = None):
        if not sources:
            raise ConfigError("no lake sources given", path=None, field="lake_masks")
        self._sources = {}
        for y, s in sources.items():
            if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
                raise ConfigError("lake mask years must be integers", path=None,
                                  field="lake_masks", value=y)
            self._sources[int(y)] = s
        self.grid = grid
        self.threshold = _check_threshold(threshold)
        self.values = values
        self.supersample = supersample
        self._cache: dict[int, np.ndarray] = {}

    @property
    def years(self) -> list[int]:
        """Years that have their own source, ascending."""
        return sorted(self._sources)

    def source_year(self, year: int) -> int:
        """The year whose source is used for ``year`` (nearest; ties -> earlier)."""
        year = int(year)
        return min(self.years, key=lambda y: (abs(y - year), y))

    def for_year(self, year: int) -> np.ndarray:
        """Boolean (nlat, nlon) lake mask for ``year`` (a copy)."""
        y = self.source_year(year)
        if y not in self._cache:
            self._cache[y] = mask_from_source(self._sources[y], self.grid, self.threshold,
                                              values=self.values, supersample=self.supersample)
        return self._cache[y].copy()


# ------------------------------------------------------------------------------------------
# Reference permafrost map
# ------------------------------------------------------------------------------------------


def reference_map(source, grid: LatLonGrid, mapping=None, *, supersample: int | None = None,
                  band: int = 0) -> RegridResult:
    """The reference permafrost map aggregated to ``grid`` by majority.

    ``mapping``: source code -> 1 (permafrost), 2 (seasonally frozen), 3 (unfrozen) or None (no
    data); a dict, a CSV path (``code,class`` columns, ``nodata`` allowed, see
    :func:`noahtibet.static.load_crosswalk`) or None for :data:`DEFAULT_REFERENCE_MAPPING`.
    The file's own NoData pixels are always no data.  A code present in the map (in the window
    read) but not in the mapping raises :class:`InputError` naming the file and the code.

    Returns RegridResult(values int64 (nlat, nlon) in {0 = no data, 1, 2, 3}, coverage = fraction
    of the cell with a classified pixel).
    """
    cw = _as_crosswalk(DEFAULT_REFERENCE_MAPPING if mapping is None else mapping)
    for code, target in cw.mapping.items():
        if target is not None and target not in REFERENCE_CLASSES:
            raise ConfigError("reference classes must be 1, 2, 3 or nodata", path=cw.path,
                              field=f"class of code {code}", value=target)
    raster = read_source(source, grid)
    nb = raster.data.shape[0]
    if not 0 <= band < nb:
        raise ConfigError(f"band index must be in 0..{nb - 1}", path=raster.path, field="band",
                          value=band)
    raster.data = apply_crosswalk(raster.data[band:band + 1], cw, path=raster.path,
                                  field=raster.field)
    raster.two_d = True
    return _regrid_raster(raster, grid, "majority", None, supersample, 0)

