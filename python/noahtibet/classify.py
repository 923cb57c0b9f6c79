"""Frozen-ground classes per cell and year (the product's rule).

Classes (uint8):

* ``1`` permafrost: at least one soil layer stays at or below 0 C (273.15 K)
  throughout the current **and** the previous year, i.e. its annual maximum
  temperature is <= 273.15 K in both years;
* ``2`` seasonally frozen ground: not permafrost, and at least one layer is at
  or below 0 C at some time in the year (annual minimum <= 273.15 K);
* ``3`` non-frozen ground: otherwise;
* ``255`` NoData: glaciers (static mask), lakes (the year's mask) and cells
  outside the study domain.

"At or below 0 C" includes exactly 0 C, as in the permafrost definition.  The
rule works on the per-layer annual minimum and maximum soil temperature that
the kernel accumulates (:class:`noahtibet.kernel.AnnualDiagnostics`).  With no
previous year (``previous_tmax=None``) the permafrost test uses the current
year alone; gridded runs always pass the previous year (for the first product
year, 1980, that is 1979; for 1979, the last spin-up year).
"""

from __future__ import annotations

import numpy as np

PERMAFROST = 1
SEASONALLY_FROZEN = 2
NON_FROZEN = 3
NODATA = 255
CLASS_NAMES = {PERMAFROST: "permafrost", SEASONALLY_FROZEN: "seasonally frozen ground",
               NON_FROZEN: "non-frozen ground"}
FREEZING_POINT = 273.15


def classify(tmin: np.ndarray, tmax: np.ndarray, previous_tmax: np.ndarray | None = None,
             nodata_mask: np.ndarray | None = None) -> np.ndarray:
    """Classes of cells from per-layer annual temperature extremes.

    tmin, tmax: (..., nlay) annual minimum / maximum soil temperature [K] of the
    year; previous_tmax: (..., nlay) annual maximum of the previous year, or
    None; nodata_mask: (...) True where the cell is glacier, lake or outside
    the domain.  Returns a uint8 array of shape (...).
    """
    tmin = np.asarray(tmin, dtype=np.float64)
    tmax = np.asarray(tmax, dtype=np.float64)
    if tmin.shape != tmax.shape:
        raise ValueError(f"tmin shape {tmin.shape} != tmax shape {tmax.shape}")
    frozen_all_year = tmax <= FREEZING_POINT
    if previous_tmax is not None:
        previous_tmax = np.asarray(previous_tmax, dtype=np.float64)
        if previous_tmax.shape != tmax.shape:
            raise ValueError(f"previous_tmax shape {previous_tmax.shape} != {tmax.shape}")
        frozen_all_year &= previous_tmax <= FREEZING_POINT
    permafrost = frozen_all_year.any(axis=-1)
    freezes = (tmin <= FREEZING_POINT).any(axis=-1)
    classes = np.full(tmax.shape[:-1], NON_FROZEN, dtype=np.uint8)
    classes[freezes] = SEASONALLY_FROZEN
    classes[permafrost] = PERMAFROST
    # a cell whose temperatures are missing (NaN) cannot be classified
    classes[np.isnan(tmax).all(axis=-1)] = NODATA
    if nodata_mask is not None:
        classes[np.asarray(nodata_mask, dtype=bool)] = NODATA
    return classes


def permafrost_area_km2(classes: np.ndarray, cell_area_km2: np.ndarray) -> float:
    """Total area [km2] of permafrost cells."""
    return float(np.sum(np.where(classes == PERMAFROST, cell_area_km2, 0.0)))
