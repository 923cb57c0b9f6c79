"""Permafrost metrics from simulated soil temperatures.

Definitions (as used for the published product's validation and the
plateau's permafrost synthesis data, e.g. Zhao et al. 2021):

* **ALT**, active-layer thickness [m]: the maximum depth of the 0 C isotherm
  during the year, interpolated linearly between layer nodes (the kernel
  accumulates it per step as ``thaw_depth_max``).  Defined for permafrost
  cells only.
* **TTOP**, temperature at the top of permafrost [C]: the mean annual
  temperature at the permafrost table (depth = ALT), interpolated linearly in
  depth between layer nodes of the annual-mean profile.
* **GT10m**, ground temperature at 10 m [C]: the mean annual temperature
  interpolated linearly in depth to 10 m.

Depths are positive downward from the surface; node depths are layer mid-points.
"""

from __future__ import annotations

import numpy as np

T0 = 273.15


def node_depths(layer_thickness) -> np.ndarray:
    dz = np.asarray(layer_thickness, dtype=float)
    return np.cumsum(dz) - 0.5 * dz


def interpolate_profile(values: np.ndarray, depths: np.ndarray, target) -> np.ndarray:
    """Linear interpolation of (..., nlay) profiles at depth(s) ``target`` (...).

    Above the first node the first node's value is used; below the last node, NaN.
    """
    values = np.asarray(values, dtype=float)
    target = np.broadcast_to(np.asarray(target, dtype=float), values.shape[:-1])
    out = np.full(values.shape[:-1], np.nan)
    flat_v = values.reshape(-1, values.shape[-1])
    flat_t = target.reshape(-1)
    res = out.reshape(-1)
    for i, (v, z) in enumerate(zip(flat_v, flat_t)):
        if np.isnan(z) or z > depths[-1]:
            continue
        res[i] = np.interp(z, depths, v)
    return res.reshape(values.shape[:-1])


def annual_metrics(tmean: np.ndarray, thaw_depth_max: np.ndarray, permafrost: np.ndarray,
                   layer_thickness) -> dict:
    """ALT [m], TTOP [C] and GT10m [C] per cell from annual diagnostics.

    tmean: (ncell, nlay) annual mean soil temperature [K]; thaw_depth_max:
    (ncell,) [m]; permafrost: (ncell,) bool.  ALT and TTOP are NaN where the
    cell is not permafrost; GT10m is given for every cell.
    """
    depths = node_depths(layer_thickness)
    alt = np.where(permafrost, thaw_depth_max, np.nan)
    ttop = interpolate_profile(tmean, depths, alt) - T0
    gt10 = interpolate_profile(tmean, depths, np.full(tmean.shape[0], 10.0)) - T0
    return {"ALT": alt, "TTOP": np.where(permafrost, ttop, np.nan), "GT10m": gt10}
