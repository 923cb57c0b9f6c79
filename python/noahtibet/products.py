"""Frozen-ground products: yearly class maps as Cloud-Optimized GeoTIFFs and one CF netCDF.

Classes (``uint8``)
-------------------
=====  ==========================  =======================================
value  name                        meaning
=====  ==========================  =======================================
1      permafrost                  perennially frozen ground
2      seasonally_frozen_ground    frozen part of the year only
3      non_frozen_ground           no freezing
255    NoData                      glacier, lake, or outside the domain
=====  ==========================  =======================================

Input class arrays are on a model :class:`~noahtibet.grid.LatLonGrid`, shape
``(nlat, nlon)``, **latitude ascending** (row 0 is the southernmost row).  They
may be integer arrays holding 1, 2, 3 or 255, float arrays where NaN means
NoData, or numpy masked arrays (masked means NoData).  Any other value is an
error naming the value, the cell (row, col, lon, lat) and the year.

GeoTIFF products
----------------
:func:`write_class_geotiff` writes one year as a Cloud-Optimized GeoTIFF (GDAL
``COG`` driver) in an Albers Equal Area Conic projection on the WGS84 datum
(:class:`AlbersParams`; default standard parallels 25 and 47 N, central meridian
105 E, latitude of origin 0, false easting/northing 0, metres), deflate
compressed, 512 x 512 internal tiles, internal overviews built with MODE
resampling (each overview pixel takes the most frequent class of the pixels it
covers, so overviews never invent classes by averaging codes; NoData pixels do
not take part, an overview pixel is NoData only if all its pixels are).

Resampling is nearest-neighbour, done here rather than by a warper so the rule
is exact: each Albers pixel takes the class of the model cell that contains the
pixel centre (for a regular lon/lat grid this is the cell with the nearest
centre in lon/lat); pixel centres outside the model grid are NoData.  The
pixel-to-cell map is computed once per (grid, raster) and reused for every year
(int32 per pixel: about 25 MB for the plateau at 1 km).

The output extent is the Albers bounding box of the whole model grid (its
boundary densified and projected, including the central meridian where the
parallels' arcs reach their extreme), snapped outward to whole multiples of the
cell size, so pixel edges of products from different runs line up.

Default cell size: **1000 m**.  A 0.1 degree model cell is about 11 km north-south
and 9-10 km east-west over the plateau, so 1 km pixels keep the nearest-neighbour
staircase along cell boundaries below a tenth of a model cell; 1 km is also the
resolution of the 2010 reference permafrost map, so products and reference can
be compared pixel by pixel; and the whole plateau (about 3000 x 1700 km) stays a
few million pixels, a few megabytes compressed.  Use ``cell_size_m`` to change it.

Tags: ``class_1``, ``class_2``, ``class_3`` (class names), ``class_255``
(NoData meaning), ``nodata_value``, ``product``, ``year``, ``noahtibet_version``
and every key of the run's ``provenance`` (strings as is, anything else as
JSON), plus the whole provenance as JSON in ``provenance_json``.  Band 1 has
the description ``frozen_ground_class`` and a colour table.

netCDF product
--------------
:func:`write_class_netcdf` writes all years on the native grid: variable
``frozen_ground_class(year, lat, lon)`` (ubyte, ``_FillValue`` 255, CF
``flag_values``/``flag_meanings``), latitude ascending, ``crs`` grid mapping
(WGS84 lon/lat), ``time(year)`` auxiliary coordinate with yearly bounds, and
optional extra float fields per year (e.g. permafrost probability).

Provenance
----------
``provenance`` is a mapping that must hold at least ``configuration`` (the run
configuration, e.g. a dict or the text of the configuration file) and
``parameter_set`` (its name or values); other keys are kept too.  The writers
add ``noahtibet_version`` and, for GeoTIFFs, ``year``.  Keys must be names
(letter first, then letters, digits, underscores) so they are valid both as
GeoTIFF tags and netCDF attributes.

Atomic writes
-------------
Every file is written to a hidden temporary name ``.<name>.<random>.part`` in
the target directory, flushed to disk and renamed onto the final name only when
complete.  On any error or interruption (including KeyboardInterrupt) the
temporary file is removed and a previous file of the final name, if any, is
left untouched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ConfigError
from .grid import LatLonGrid

__all__ = [
    "PERMAFROST", "SEASONALLY_FROZEN", "NON_FROZEN", "NODATA", "CLASS_NAMES", "CLASS_COLOURS",
    "DEFAULT_CELL_SIZE_M", "AlbersParams", "AlbersTarget", "albers_target", "resample_to_albers",
    "write_class_geotiff", "write_class_maps", "write_class_netcdf",
]

PERMAFROST = 1
SEASONALLY_FROZEN = 2
NON_FROZEN = 3
NODATA = 255

#: class value -> name (also the CF flag meanings, in this order)
CLASS_NAMES = {
    PERMAFROST: "permafrost",
    SEASONALLY_FROZEN: "seasonally_frozen_ground",
    NON_FROZEN: "non_frozen_ground",
}
NODATA_MEANING = "nodata (glacier, lake or outside the domain)"

#: colour table of the GeoTIFFs (RGBA); NoData is transparent
CLASS_COLOURS = {
    PERMAFROST: (44, 123, 182, 255),
    SEASONALLY_FROZEN: (171, 217, 233, 255),
    NON_FROZEN: (253, 174, 97, 255),
    NODATA: (0, 0, 0, 0),
}

#: default Albers pixel size [m] (see the module documentation for the choice)
DEFAULT_CELL_SIZE_M = 1000.0

DEFAULT_PATTERN = "noahtibet_frozen_ground_{year}.tif"

_CONFIG_SOURCE = "<products configuration>"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_REQUIRED_PROVENANCE = ("configuration", "parameter_set")
_RESERVED_TAGS = {"year", "noahtibet_version", "product", "nodata_value", "provenance_json",
                  "class_1", "class_2", "class_3", "class_255"}
# output pixels handled per coordinate-transformation batch (bounds memory)
_POINTS_PER_STRIP = 250_000     # pixels per strip of the pixel-to-cell map (bounds its temporaries)


# --------------------------------------------------------------------------- projection

@dataclass(frozen=True)
class AlbersParams:
    """Albers Equal Area Conic on the WGS84 ellipsoid; angles in degrees, offsets in metres."""

    lat_1: float = 25.0     # first standard parallel [deg N]
    lat_2: float = 47.0     # second standard parallel [deg N]
    lat_0: float = 0.0      # latitude of origin [deg N]
    lon_0: float = 105.0    # central meridian [deg E]
    x_0: float = 0.0        # false easting [m]
    y_0: float = 0.0        # false northing [m]

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(value)):
                raise ConfigError("is not a finite number", path=_CONFIG_SOURCE,
                                  field=f"albers.{name}", value=value)
        for name in ("lat_1", "lat_2", "lat_0"):
            v = getattr(self, name)
            if not -90.0 < v < 90.0:
                raise ConfigError("is not a latitude strictly between -90 and 90 degrees",
                                  path=_CONFIG_SOURCE, field=f"albers.{name}", value=v)
        if not -180.0 <= self.lon_0 <= 180.0:
            raise ConfigError("is not a longitude in [-180, 180] degrees", path=_CONFIG_SOURCE,
                              field="albers.lon_0", value=self.lon_0)
        if abs(self.lat_1 + self.lat_2) < 1e-9:
            raise ConfigError("makes the standard parallels symmetric about the equator, "
                              "which does not define an Albers cone", path=_CONFIG_SOURCE,
                              field="albers.lat_2", value=self.lat_2)

    @classmethod
    def from_any(cls, params: "AlbersParams | Mapping | None") -> "AlbersParams":
        """``None`` (defaults), an AlbersParams, or a mapping of some of its fields."""
        if params is None:
            return cls()
        if isinstance(params, cls):
            return params
        if not isinstance(params, Mapping):
            raise ConfigError("is not a mapping of Albers parameters", path=_CONFIG_SOURCE,
                              field="albers", value=params)
        known = set(cls.__dataclass_fields__)
        for key in params:
            if key not in known:
                raise ConfigError(f"is not an Albers parameter (known: {', '.join(sorted(known))})",
                                  path=_CONFIG_SOURCE, field="albers", value=key)
        return cls(**dict(params))

    @property
    def proj4(self) -> str:
        return (f"+proj=aea +lat_1={self.lat_1:g} +lat_2={self.lat_2:g} +lat_0={self.lat_0:g} "
                f"+lon_0={self.lon_0:g} +x_0={self.x_0:g} +y_0={self.y_0:g} "
                "+datum=WGS84 +units=m +no_defs")

    def crs(self):
        """The rasterio CRS."""
        from rasterio.crs import CRS
        return CRS.from_proj4(self.proj4)


@dataclass(frozen=True)
class AlbersTarget:
    """North-up Albers raster covering a model grid."""

    params: AlbersParams
    cell_size_m: float
    west: float     # [m]
    north: float    # [m]
    width: int
    height: int

    @property
    def transform(self):
        from affine import Affine
        return Affine(self.cell_size_m, 0.0, self.west, 0.0, -self.cell_size_m, self.north)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) [m]."""
        return (self.west, self.north - self.height * self.cell_size_m,
                self.west + self.width * self.cell_size_m, self.north)


def _geo_crs():
    from rasterio.crs import CRS
    return CRS.from_epsg(4326)


def _boundary_lonlat(grid: LatLonGrid, lon_0: float) -> tuple[np.ndarray, np.ndarray]:
    """Densely sampled boundary of the grid (cell edges) [deg], including the central meridian."""
    west, south, east, north = grid.bounds
    nx = max(int(math.ceil((east - west) / 0.05)), 8) + 1
    ny = max(int(math.ceil((north - south) / 0.05)), 8) + 1
    lons = np.linspace(west, east, nx)
    # the arcs of the parallels reach their extreme y on the central meridian
    for m in (lon_0, lon_0 - 360.0, lon_0 + 360.0):
        if west < m < east:
            lons = np.append(lons, m)
    lats = np.linspace(south, north, ny)
    blon = np.concatenate([lons, lons, np.full(ny, west), np.full(ny, east)])
    blat = np.concatenate([np.full(lons.size, south), np.full(lons.size, north), lats, lats])
    return blon, blat


def albers_target(grid: LatLonGrid, cell_size_m: float = DEFAULT_CELL_SIZE_M,
                  crs_params: AlbersParams | Mapping | None = None) -> AlbersTarget:
    """The Albers raster (extent snapped outward to multiples of ``cell_size_m``) covering ``grid``."""
    from rasterio.warp import transform as warp_transform

    params = AlbersParams.from_any(crs_params)
    try:
        cell = float(cell_size_m)
    except (TypeError, ValueError):
        cell = float("nan")
    if not math.isfinite(cell) or cell <= 0:
        raise ConfigError("is not a positive number of metres", path=_CONFIG_SOURCE,
                          field="cell_size_m", value=cell_size_m)
    blon, blat = _boundary_lonlat(grid, params.lon_0)
    x, y = warp_transform(_geo_crs(), params.crs(), blon, blat)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConfigError(f"cannot project the grid boundary {grid.bounds} with {params.proj4}",
                          path=_CONFIG_SOURCE, field="albers", value=params)
    x0 = math.floor(x.min() / cell) * cell
    x1 = math.ceil(x.max() / cell) * cell
    y0 = math.floor(y.min() / cell) * cell
    y1 = math.ceil(y.max() / cell) * cell
    width = int(round((x1 - x0) / cell))
    height = int(round((y1 - y0) / cell))
    if width * height > 2_000_000_000:
        raise ConfigError(f"gives a {width} x {height} pixel raster for grid bounds {grid.bounds}; "
                          "choose a larger cell size", path=_CONFIG_SOURCE, field="cell_size_m",
                          value=cell_size_m)
    return AlbersTarget(params, cell, x0, y1, width, height)


# WGS84 ellipsoid (the datum of AlbersParams.proj4)
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563
#: A pixel whose centre lies within this fraction of a cell of a cell edge (by the
#: closed-form formulas) is located with PROJ itself, so the closed form never decides
#: a pixel whose cell could depend on the last digits of the projection.
_EDGE_TOLERANCE_CELLS = 1e-6


class _AlbersCone:
    """Closed-form ellipsoidal Albers (WGS84): Snyder (1987), Map Projections - A Working
    Manual, USGS PP 1395, eqs. 3-12, 14-3 .. 14-6, 14-14 .. 14-17 and 14-19 .. 14-22.

    In polar coordinates about the cone's apex a meridian is a ray (angle
    ``theta = n (lon - lon_0)``) and a parallel a circle of radius ``rho(lat)``, so the
    cell of a point follows from ``theta`` (longitude) and from comparing ``rho`` with
    the radii of the grid's parallels (latitude), without inverting for latitude.
    """

    def __init__(self, params: AlbersParams):
        a, f = _WGS84_A, _WGS84_F
        self.e2 = f * (2.0 - f)
        self.e = math.sqrt(self.e2)
        self.params = params
        p1, p2, p0 = (math.radians(v) for v in (params.lat_1, params.lat_2, params.lat_0))
        m1, m2 = self._m(p1), self._m(p2)
        q1, q2 = self._q(np.float64(p1)), self._q(np.float64(p2))
        self.n = (m1 * m1 - m2 * m2) / (q2 - q1) if abs(p1 - p2) > 1e-10 else math.sin(p1)
        self.c = m1 * m1 + self.n * q1
        self.a = a
        self.rho0 = self.rho(np.float64(params.lat_0))

    def _m(self, phi):
        s = math.sin(phi)
        return math.cos(phi) / math.sqrt(1.0 - self.e2 * s * s)

    def _q(self, phi):
        s = np.sin(phi)
        e, e2 = self.e, self.e2
        return (1.0 - e2) * (s / (1.0 - e2 * s * s)
                             - 1.0 / (2.0 * e) * np.log((1.0 - e * s) / (1.0 + e * s)))

    def rho(self, lat_deg):
        """Radius [m] of the parallels ``lat_deg`` on the map."""
        return self.a * np.sqrt(self.c - self.n * self._q(np.radians(lat_deg))) / self.n

    def polar(self, x, y):
        """(rho, longitude [deg, not wrapped]) of map points (x, y) [m]."""
        xx = np.asarray(x, dtype=np.float64) - self.params.x_0
        yy = self.rho0 - (np.asarray(y, dtype=np.float64) - self.params.y_0)
        if self.n < 0:
            xx, yy = -xx, -yy
        sign = 1.0 if self.n > 0 else -1.0
        return sign * np.hypot(xx, yy), self.params.lon_0 + np.degrees(np.arctan2(xx, yy) / self.n)


def _lonlat_to_cells(grid: LatLonGrid, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Flat cell index (row * nlon + col) of points, -1 outside the grid or not finite."""
    west = grid.bounds[0]
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon = np.where(ok, west + np.mod(lon - west, 360.0), west - 1.0)   # same turn as the grid
    lat = np.where(ok, lat, -1000.0)
    row, col = grid.index_of(lon, lat)
    return np.where(row >= 0, row * grid.nlon + col, -1)


def _pixel_cells_proj(grid: LatLonGrid, target: AlbersTarget) -> np.ndarray:
    """Reference implementation of :func:`_pixel_cells`: every pixel centre through PROJ."""
    from rasterio.warp import transform as warp_transform

    crs_a, crs_g = target.params.crs(), _geo_crs()
    out = np.full((target.height, target.width), -1, dtype=np.int32)
    xc = target.west + (np.arange(target.width) + 0.5) * target.cell_size_m
    rows_per_strip = max(1, _POINTS_PER_STRIP // max(target.width, 1))
    for r0 in range(0, target.height, rows_per_strip):
        r1 = min(target.height, r0 + rows_per_strip)
        yc = target.north - (np.arange(r0, r1) + 0.5) * target.cell_size_m
        xx, yy = np.meshgrid(xc, yc)
        lon, lat = warp_transform(crs_a, crs_g, xx.ravel(), yy.ravel())
        cells = _lonlat_to_cells(grid, np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        out[r0:r1] = cells.reshape(r1 - r0, target.width)
    return out


@functools.lru_cache(maxsize=1)
def _pixel_cells(grid: LatLonGrid, target: AlbersTarget) -> np.ndarray:
    """(height, width) int32: flat (row-major, latitude ascending) index of the model cell
    containing each pixel centre, -1 outside the grid.  Cached: the same for every year.

    Exactly the map PROJ gives pixel by pixel (:func:`_pixel_cells_proj`, tested) at a
    fraction of the cost: the column comes from the closed-form longitude of the pixel
    centre, the row from comparing its radius about the cone apex with the radii of the
    grid's parallels (:class:`_AlbersCone`, within ~1e-8 m of PROJ); the few pixel
    centres within 1e-6 of a cell (a few cm) of a cell edge are inverted with PROJ.
    """
    from rasterio.warp import transform as warp_transform

    cone = _AlbersCone(target.params)
    west, south, _, _ = grid.bounds
    tol = _EDGE_TOLERANCE_CELLS
    # grid.index_of: row = floor((lat - south) / dlat + 1e-9); boundary k at u = k
    k = np.arange(grid.nlat + 1, dtype=np.float64)
    lat_b = south + (k - 1e-9) * grid.dlat
    rho_b = cone.rho(lat_b)                                        # monotonic in k
    rho_tol = np.abs(cone.rho(lat_b + tol * grid.dlat) - rho_b)
    ascending = rho_b[-1] > rho_b[0]
    rb = rho_b if ascending else rho_b[::-1]
    rt = rho_tol if ascending else rho_tol[::-1]
    out = np.full((target.height, target.width), -1, dtype=np.int32)
    xc = target.west + (np.arange(target.width) + 0.5) * target.cell_size_m
    rows_per_strip = max(1, _POINTS_PER_STRIP // max(target.width, 1))
    for r0 in range(0, target.height, rows_per_strip):
        r1 = min(target.height, r0 + rows_per_strip)
        yc = target.north - (np.arange(r0, r1) + 0.5) * target.cell_size_m
        xx, yy = np.meshgrid(xc, yc)
        xx, yy = xx.ravel(), yy.ravel()
        rho, lon = cone.polar(xx, yy)
        # row: the number of parallels k the point is north of (or on), minus one
        j = np.searchsorted(rb, rho, side="right")             # rb[j-1] <= rho < rb[j]
        row = j - 1 if ascending else grid.nlat - j
        jl, jh = np.clip(j - 1, 0, rb.size - 1), np.clip(j, 0, rb.size - 1)
        near = (np.abs(rho - rb[jl]) <= rt[jl]) | (np.abs(rho - rb[jh]) <= rt[jh])
        lw = np.mod(lon - west, 360.0)
        u = (west + lw - west) / grid.dlon + 1e-9
        near |= np.abs(u - np.rint(u)) <= tol
        near |= ~(np.isfinite(rho) & np.isfinite(lon))
        col = np.floor(u).astype(np.int64)
        bad = (col < 0) | (col >= grid.nlon) | (row < 0) | (row >= grid.nlat)
        cells = np.where(bad, -1, row * grid.nlon + col)
        exact = np.flatnonzero(near)
        if exact.size:
            plon, plat = warp_transform(target.params.crs(), _geo_crs(), xx[exact], yy[exact])
            cells[exact] = _lonlat_to_cells(grid, np.asarray(plon, dtype=float),
                                            np.asarray(plat, dtype=float))
        out[r0:r1] = cells.reshape(r1 - r0, target.width)
    out.flags.writeable = False
    return out


def resample_to_albers(classes: np.ndarray, grid: LatLonGrid, target: AlbersTarget) -> np.ndarray:
    """Nearest-neighbour: each pixel takes the class of the model cell containing its centre.

    ``classes`` is a validated (nlat, nlon) uint8 array, latitude ascending.
    Returns (height, width) uint8, north-up; pixels outside the grid are NODATA.
    """
    cells = _pixel_cells(grid, target)
    flat = np.append(np.asarray(classes, dtype=np.uint8).ravel(), np.uint8(NODATA))
    return flat[cells]          # index -1 picks the appended NODATA


# --------------------------------------------------------------------------- validation

def _as_classes(values, shape: tuple[int, ...], what: str, years: Sequence[int] | None = None,
                grid: LatLonGrid | None = None) -> np.ndarray:
    """Validate a class array and return it as uint8 with NODATA for missing cells."""
    mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else None
    arr = np.asarray(np.ma.getdata(values) if mask is not None else values)
    if arr.shape != tuple(shape):
        raise ValueError(f"{what}: shape {arr.shape} does not match the expected {tuple(shape)} "
                         f"(years x nlat x nlon, latitude ascending)")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{what}: dtype {arr.dtype} is not an integer or float class array")
    missing = np.zeros(arr.shape, bool) if mask is None else mask.copy()
    if np.issubdtype(arr.dtype, np.floating):
        missing |= np.isnan(arr)
    valid_codes = np.isin(arr, [PERMAFROST, SEASONALLY_FROZEN, NON_FROZEN, NODATA])
    bad = ~missing & ~valid_codes
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        where = f"index {idx}"
        if grid is not None:
            r, c = idx[-2], idx[-1]
            where += f" (row {r}, col {c}: lon {grid.lons[c]:g}, lat {grid.lats[r]:g})"
        if years is not None and len(idx) == 3:
            where += f", year {years[idx[0]]}"
        raise ValueError(f"{what}: value {arr[idx].item()!r} at {where} is not a class code "
                         f"(1 permafrost, 2 seasonally frozen, 3 non-frozen, 255 NoData, NaN/masked)"
                         f"; {int(bad.sum())} such value(s)")
    out = np.where(missing, NODATA, np.where(valid_codes, arr, NODATA)).astype(np.uint8)
    return out


def _check_year(year) -> int:
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)) or not 1 <= int(year) <= 9999:
        raise ValueError(f"year {year!r} is not an integer calendar year")
    return int(year)


def _check_provenance(provenance) -> dict:
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a mapping, got {type(provenance).__name__}")
    missing = [k for k in _REQUIRED_PROVENANCE if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks required key(s) {missing} (needs at least "
                         f"{list(_REQUIRED_PROVENANCE)}; has {sorted(map(str, provenance))})")
    for key in provenance:
        if not isinstance(key, str) or not _NAME_RE.match(key):
            raise ValueError(f"provenance key {key!r} is not a name (letter first, then letters, "
                             "digits or underscores)")
        if key in _RESERVED_TAGS:
            raise ValueError(f"provenance key {key!r} is reserved; the writer sets it")
    return dict(provenance)


def _tag_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _provenance_json(prov: dict) -> str:
    return json.dumps({"noahtibet_version": __version__, **prov}, sort_keys=True, default=str)


# --------------------------------------------------------------------------- atomic writing

@contextlib.contextmanager
def _atomic_path(path: Path):
    """Yield a temporary path in ``path``'s directory; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and an existing ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:          # contents on disk before the name appears
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; products are for sharing
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------- GeoTIFF

def write_class_geotiff(classes, grid: LatLonGrid, year: int, path: str | os.PathLike, *,
                        provenance: Mapping, crs_params: AlbersParams | Mapping | None = None,
                        cell_size_m: float = DEFAULT_CELL_SIZE_M, blocksize: int = 512) -> Path:
    """Write one year's class map as a Cloud-Optimized GeoTIFF in Albers; return the path.

    ``classes``: (nlat, nlon) on ``grid``, latitude ascending (row 0 = south),
    values 1/2/3, NoData as 255, NaN or masked.  ``crs_params``: Albers
    parameters (:class:`AlbersParams` or a mapping of some of its fields).
    ``cell_size_m``: pixel size [m].  ``blocksize``: internal tile size [pixels]
    (a power of two >= 16); overviews are made until the image fits one tile.
    ``provenance``: see the module documentation.
    """
    import rasterio
    from rasterio import shutil as rio_shutil
    from rasterio.enums import ColorInterp
    from rasterio.io import MemoryFile

    path = Path(path)
    year = _check_year(year)
    prov = _check_provenance(provenance)
    data = _as_classes(classes, grid.shape, f"classes of year {year}", grid=grid)
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) \
            or blocksize < 16 or blocksize & (blocksize - 1):
        raise ConfigError("is not a power of two >= 16", path=_CONFIG_SOURCE, field="blocksize",
                          value=blocksize)
    target = albers_target(grid, cell_size_m, crs_params)
    image = resample_to_albers(data, grid, target)

    tags = {
        "product": "noahtibet frozen-ground class map",
        "year": str(year),
        "noahtibet_version": __version__,
        "nodata_value": str(NODATA),
        "class_255": NODATA_MEANING,
        **{f"class_{v}": name for v, name in CLASS_NAMES.items()},
        **{k: _tag_value(v) for k, v in prov.items()},
        "provenance_json": _provenance_json({**prov, "year": year}),
    }
    profile = dict(driver="GTiff", width=target.width, height=target.height, count=1,
                   dtype="uint8", crs=target.params.crs(), transform=target.transform,
                   nodata=NODATA)
    with _atomic_path(path) as tmp:
        with MemoryFile() as mem:
            with mem.open(**profile) as src:
                # the palette interpretation must be set before pixels are written
                src.colorinterp = [ColorInterp.palette]
                src.write_colormap(1, CLASS_COLOURS)
                src.write(image, 1)
                src.update_tags(**tags)
                src.set_band_description(1, "frozen_ground_class")
                src.update_tags(1, **{f"class_{v}": name for v, name in CLASS_NAMES.items()})
            with mem.open() as src:
                rio_shutil.copy(src, str(tmp), driver="COG", COMPRESS="DEFLATE",
                                BLOCKSIZE=int(blocksize), OVERVIEWS="AUTO",
                                OVERVIEW_RESAMPLING="MODE",
                                BIGTIFF="IF_SAFER")
        with rasterio.open(tmp) as check:     # a readable, complete file before the rename
            if (check.width, check.height) != (target.width, target.height):
                raise OSError(f"{tmp}: written raster has the wrong size")
    return path


def _years_and_stack(classes_by_year, years) -> tuple[list[int], list]:
    if isinstance(classes_by_year, Mapping):
        if years is not None:
            raise ValueError("give years only with a (nyear, nlat, nlon) array, not with a dict")
        ys = [_check_year(y) for y in classes_by_year]
        order = sorted(range(len(ys)), key=lambda i: ys[i])
        keys = list(classes_by_year)
        return [ys[i] for i in order], [classes_by_year[keys[i]] for i in order]
    arr = classes_by_year
    if np.ndim(arr) != 3:
        raise ValueError(f"classes_by_year has shape {np.shape(arr)}; expected a dict year -> "
                         "(nlat, nlon) array or a (nyear, nlat, nlon) array")
    if years is None:
        raise ValueError("years are required with a (nyear, nlat, nlon) array")
    ys = [_check_year(y) for y in years]
    if len(ys) != np.shape(arr)[0]:
        raise ValueError(f"{len(ys)} years given for {np.shape(arr)[0]} class maps")
    return ys, [arr[i] for i in range(len(ys))]


def write_class_maps(classes_by_year, grid: LatLonGrid, out_dir: str | os.PathLike,
                     pattern: str = DEFAULT_PATTERN, *, years: Sequence[int] | None = None,
                     provenance: Mapping, crs_params: AlbersParams | Mapping | None = None,
                     cell_size_m: float = DEFAULT_CELL_SIZE_M, blocksize: int = 512) -> list[Path]:
    """Write one COG per year (see :func:`write_class_geotiff`); return the paths in year order.

    ``classes_by_year``: dict year -> (nlat, nlon) array, or a (nyear, nlat,
    nlon) array with ``years``.  ``pattern``: file name with a ``{year}`` field.
    All years are validated before the first file is written.
    """
    if "{year" not in pattern:
        raise ConfigError("has no {year} field", path=_CONFIG_SOURCE, field="pattern", value=pattern)
    ys, maps = _years_and_stack(classes_by_year, years)
    if len(set(ys)) != len(ys):
        raise ValueError(f"years {ys} contain duplicates")
    _check_provenance(provenance)
    checked = [_as_classes(m, grid.shape, f"classes of year {y}", grid=grid) for y, m in zip(ys, maps)]
    names = [pattern.format(year=y) for y in ys]
    if len(set(names)) != len(names):
        raise ConfigError("maps different years to the same file name", path=_CONFIG_SOURCE,
                          field="pattern", value=pattern)
    out_dir = Path(out_dir)
    return [write_class_geotiff(m, grid, y, out_dir / name, provenance=provenance,
                                crs_params=crs_params, cell_size_m=cell_size_m, blocksize=blocksize)
            for y, m, name in zip(ys, checked, names)]


# --------------------------------------------------------------------------- netCDF

_NETCDF_RESERVED = {"year", "time", "time_bnds", "lat", "lon", "lat_bnds", "lon_bnds", "crs", "nv",
                    "frozen_ground_class"}


def _extra_fields(extra_fields, shape, years) -> list[tuple[str, np.ndarray, dict]]:
    out = []
    for name, spec in (extra_fields or {}).items():
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in _NETCDF_RESERVED:
            raise ValueError(f"extra field name {name!r} is not a free netCDF variable name")
        if isinstance(spec, tuple):
            if len(spec) != 2 or not isinstance(spec[1], Mapping):
                raise ValueError(f"extra field {name!r}: give an array or (array, attrs dict)")
            values, attrs = spec
        else:
            values, attrs = spec, {}
        arr = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)
        if arr.shape != tuple(shape):
            raise ValueError(f"extra field {name!r}: shape {arr.shape} does not match {tuple(shape)} "
                             "(years x nlat x nlon, latitude ascending)")
        inf = np.isinf(arr)
        if inf.any():
            i = tuple(int(k[0]) for k in np.nonzero(inf))
            raise ValueError(f"extra field {name!r}: value {arr[i]} at index {i} (year {years[i[0]]}) "
                             "is infinite")
        bad_attr = [k for k in attrs if k in ("_FillValue", "grid_mapping") or not isinstance(k, str)]
        if bad_attr:
            raise ValueError(f"extra field {name!r}: attribute(s) {bad_attr} are set by the writer")
        out.append((name, arr.astype(np.float32), dict(attrs)))
    return out


def _year_time_bounds(years: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 of each year's start/end and its midpoint."""
    epoch = _dt.date(1970, 1, 1)
    start = np.array([(_dt.date(y, 1, 1) - epoch).days for y in years], dtype=np.float64)
    end = np.array([(_dt.date(y + 1, 1, 1) - epoch).days if y < 9999 else
                    (_dt.date(9999, 12, 31) - epoch).days + 1 for y in years], dtype=np.float64)
    return (start + end) / 2.0, np.stack([start, end], axis=1)


def _wgs84_wkt() -> str | None:
    try:
        return _geo_crs().to_wkt()
    except Exception:       # rasterio missing: the CF parameters alone still define the CRS
        return None


def _fill_netcdf(nc, data: np.ndarray, years: list[int], grid: LatLonGrid, prov: dict,
                 extras: list[tuple[str, np.ndarray, dict]]) -> None:
    """Define and write every variable and attribute of the class netCDF."""
    nyear, nlat, nlon = data.shape
    nc.createDimension("year", nyear)
    nc.createDimension("lat", nlat)
    nc.createDimension("lon", nlon)
    nc.createDimension("nv", 2)

    v = nc.createVariable("year", "i4", ("year",))
    v.long_name = "calendar year the classes describe"
    v[:] = np.asarray(years, dtype=np.int32)

    mid, bnds = _year_time_bounds(years)
    v = nc.createVariable("time", "f8", ("year",))
    v.standard_name = "time"
    v.long_name = "middle of the year"
    v.units = "days since 1970-01-01 00:00:00"
    v.calendar = "standard"
    v.bounds = "time_bnds"
    v[:] = mid
    v = nc.createVariable("time_bnds", "f8", ("year", "nv"))
    v[:] = bnds

    west, south, _, _ = grid.bounds
    for name, n, d, centres, edge0, std, units, axis in (
            ("lat", nlat, grid.dlat, grid.lats, south, "latitude", "degrees_north", "Y"),
            ("lon", nlon, grid.dlon, grid.lons, west, "longitude", "degrees_east", "X")):
        v = nc.createVariable(name, "f8", (name,))
        v.standard_name = std
        v.long_name = f"{std} of the cell centre"
        v.units = units
        v.axis = axis
        v.bounds = f"{name}_bnds"
        v[:] = centres
        b = nc.createVariable(f"{name}_bnds", "f8", (name, "nv"))
        lo = np.round(edge0 + d * np.arange(n), 10)
        b[:] = np.stack([lo, np.round(lo + d, 10)], axis=1)

    crs = nc.createVariable("crs", "i4", ())
    crs.grid_mapping_name = "latitude_longitude"
    crs.longitude_of_prime_meridian = 0.0
    crs.semi_major_axis = 6378137.0
    crs.inverse_flattening = 298.257223563
    crs.epsg_code = "EPSG:4326"
    wkt = _wgs84_wkt()
    if wkt:
        crs.crs_wkt = wkt

    v = nc.createVariable("frozen_ground_class", "u1", ("year", "lat", "lon"), zlib=True, complevel=4,
                          chunksizes=(1, nlat, nlon), fill_value=np.uint8(NODATA))
    v.long_name = "frozen-ground class"
    v.flag_values = np.array(list(CLASS_NAMES), dtype=np.uint8)
    v.flag_meanings = " ".join(CLASS_NAMES.values())
    v.valid_range = np.array([min(CLASS_NAMES), max(CLASS_NAMES)], dtype=np.uint8)
    v.grid_mapping = "crs"
    v.coordinates = "time"
    v.comment = f"_FillValue {NODATA}: {NODATA_MEANING}"
    v.set_auto_maskandscale(False)
    for i in range(nyear):
        v[i] = data[i]

    for name, arr, attrs in extras:
        e = nc.createVariable(name, "f4", ("year", "lat", "lon"), zlib=True, complevel=4,
                              chunksizes=(1, nlat, nlon), fill_value=np.float32(np.nan))
        for key, value in attrs.items():
            e.setncattr(key, value)
        e.grid_mapping = "crs"
        e.coordinates = "time"
        e.set_auto_maskandscale(False)
        for i in range(nyear):
            e[i] = arr[i]

    nc.Conventions = "CF-1.8"
    nc.title = "noahtibet yearly frozen-ground classes"
    nc.source = f"noahtibet {__version__} (Noah-Tibet land-surface column model)"
    nc.history = (f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')} "
                  f"written by noahtibet {__version__}")
    nc.noahtibet_version = __version__
    for key, value in prov.items():
        nc.setncattr(key, _tag_value(value))
    nc.provenance_json = _provenance_json(prov)


def write_class_netcdf(classes, years: Sequence[int], grid: LatLonGrid, path: str | os.PathLike, *,
                       provenance: Mapping, extra_fields: Mapping | None = None) -> Path:
    """Write all years' classes on the native grid as one CF netCDF4 file; return the path.

    ``classes``: (nyear, nlat, nlon), latitude ascending, values 1/2/3, NoData
    as 255, NaN or masked.  ``years``: one integer per map, strictly increasing.
    ``extra_fields``: optional ``{name: array}`` or ``{name: (array, attrs)}``
    of float fields (nyear, nlat, nlon), e.g. permafrost probability; NaN or
    masked = missing; written as float32 with ``_FillValue`` NaN and the given
    attributes (``units``, ``long_name``, ...).
    """
    import netCDF4

    path = Path(path)
    ys = [_check_year(y) for y in years]
    if any(b <= a for a, b in zip(ys, ys[1:])):
        raise ValueError(f"years {ys} are not strictly increasing")
    prov = _check_provenance(provenance)
    shape = (len(ys),) + grid.shape
    data = _as_classes(classes, shape, "classes", years=ys, grid=grid)
    extras = _extra_fields(extra_fields, shape, ys)
    with _atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            _fill_netcdf(nc, data, ys, grid, prov, extras)
    return path
