"""Regular latitude-longitude grids of the model (the CMFD geometry).

The China Meteorological Forcing Dataset (CMFD) grid has 0.1 degree cells,
700 columns x 400 rows, centres 70.05..139.95 E and 15.05..54.95 N.  The model
always works with **latitude ascending** (row 0 is the southernmost row);
readers flip files that store latitude descending.  Coarser grids whose cells
are unions of whole CMFD cells (e.g. the 0.5 degree demo grid) share the same
cell edges, so every cell of any model grid maps onto whole CMFD cells.

A :class:`Domain` is a grid plus the set of active (simulated) cells in a fixed
order: row-major over (lat, lon), south to north, west to east.  That order is
the column order of the kernel and the basis of the decomposition over MPI
ranks, so it must not depend on how many ranks there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: WGS84 authalic (equal-area) sphere radius [m], for cell areas.
AUTHALIC_RADIUS = 6371007.181


@dataclass(frozen=True)
class LatLonGrid:
    """Cell-centred regular grid, latitude ascending."""

    lon0: float    # centre of the westernmost column [deg E]
    lat0: float    # centre of the southernmost row [deg N]
    dlon: float    # [deg]
    dlat: float    # [deg]
    nlon: int
    nlat: int

    @property
    def shape(self) -> tuple[int, int]:
        """(nlat, nlon)"""
        return (self.nlat, self.nlon)

    @property
    def lons(self) -> np.ndarray:
        return np.round(self.lon0 + self.dlon * np.arange(self.nlon), 10)

    @property
    def lats(self) -> np.ndarray:
        return np.round(self.lat0 + self.dlat * np.arange(self.nlat), 10)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) edges [deg]."""
        return (self.lon0 - self.dlon / 2, self.lat0 - self.dlat / 2,
                self.lon0 + self.dlon * (self.nlon - 0.5), self.lat0 + self.dlat * (self.nlat - 0.5))

    def north_up_transform(self):
        """Affine transform of the grid written north-up (row 0 = north), for GeoTIFFs."""
        from affine import Affine
        west, _, _, north = self.bounds
        return Affine(self.dlon, 0.0, west, 0.0, -self.dlat, north)

    def cell_area_km2(self) -> np.ndarray:
        """(nlat, nlon) cell areas on the authalic sphere [km2]."""
        lat_s = np.radians(self.lats - self.dlat / 2)
        lat_n = np.radians(self.lats + self.dlat / 2)
        band = AUTHALIC_RADIUS ** 2 * np.radians(self.dlon) * (np.sin(lat_n) - np.sin(lat_s))
        return np.repeat((band / 1e6)[:, None], self.nlon, axis=1)

    def index_of(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of the cells containing the points; -1 where outside."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        west, south, _, _ = self.bounds
        col = np.floor((lon - west) / self.dlon + 1e-9).astype(int)
        row = np.floor((lat - south) / self.dlat + 1e-9).astype(int)
        bad = (col < 0) | (col >= self.nlon) | (row < 0) | (row >= self.nlat)
        return np.where(bad, -1, row), np.where(bad, -1, col)

    def subgrid(self, bbox: tuple[float, float, float, float]) -> tuple["LatLonGrid", slice, slice]:
        """Cells whose centres fall inside bbox = (west, south, east, north).

        Returns the sub-grid and the (row, col) slices of this grid it covers.
        """
        west, south, east, north = bbox
        cols = np.flatnonzero((self.lons >= west) & (self.lons <= east))
        rows = np.flatnonzero((self.lats >= south) & (self.lats <= north))
        if cols.size == 0 or rows.size == 0:
            raise ValueError(f"bbox {bbox} contains no cell centre of the grid {self}")
        sub = LatLonGrid(float(self.lons[cols[0]]), float(self.lats[rows[0]]), self.dlon, self.dlat,
                         int(cols.size), int(rows.size))
        return sub, slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)

    def coarsen_factor(self, fine: "LatLonGrid") -> int:
        """How many cells of ``fine`` span one cell of this grid along each axis.

        Raises ValueError unless this grid's cell edges coincide with fine cell
        edges (same orientation, integer ratio, aligned origin).
        """
        ratio = self.dlon / fine.dlon
        k = int(round(ratio))
        if abs(ratio - k) > 1e-9 or abs(self.dlat / fine.dlat - k) > 1e-9 or k < 1:
            raise ValueError(f"grid spacing {self.dlon} is not a whole multiple of {fine.dlon}")
        w0 = (self.bounds[0] - fine.bounds[0]) / fine.dlon
        s0 = (self.bounds[1] - fine.bounds[1]) / fine.dlat
        if abs(w0 - round(w0)) > 1e-6 or abs(s0 - round(s0)) > 1e-6:
            raise ValueError("grid cell edges are not aligned with the fine grid")
        return k


#: The CMFD 0.1 degree grid.
CMFD_GRID = LatLonGrid(lon0=70.05, lat0=15.05, dlon=0.1, dlat=0.1, nlon=700, nlat=400)


@dataclass(frozen=True)
class Domain:
    """A grid and its active cells, in the canonical (row-major) order."""

    grid: LatLonGrid
    active: np.ndarray      # (nlat, nlon) bool

    def __post_init__(self):
        if self.active.shape != self.grid.shape:
            raise ValueError(f"active mask shape {self.active.shape} != grid shape {self.grid.shape}")

    @property
    def ncells(self) -> int:
        return int(self.active.sum())

    @property
    def cell_rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of every active cell, canonical order."""
        return np.nonzero(self.active)

    def to_grid(self, values: np.ndarray, fill=np.nan) -> np.ndarray:
        """Scatter per-cell values (..., ncells) onto the grid (..., nlat, nlon)."""
        values = np.asarray(values)
        out = np.full(values.shape[:-1] + self.grid.shape, fill,
                      dtype=np.result_type(values.dtype, np.min_scalar_type(fill))
                      if not (isinstance(fill, float) and math.isnan(fill)) else np.float64)
        out[..., self.active] = values
        return out

    def from_grid(self, field: np.ndarray) -> np.ndarray:
        """Gather (..., nlat, nlon) grid values at the active cells (..., ncells)."""
        return np.asarray(field)[..., self.active]
