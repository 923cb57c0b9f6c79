"""The demo's "truth": what a calibration and a validation are tested against.

The built-in demo domain is SYNTHETIC, so it has no real reference map and no
real boreholes.  Instead the model itself, run with a hidden "true" parameter
set that differs from the defaults, provides them (a twin experiment):

* the **2010 reference permafrost map**: the true run's 2010 classes, written
  as a geographic (WGS84) GeoTIFF with codes 1 permafrost, 2 seasonally
  frozen, 3 non-frozen, 0 no data, the layout of the real reference map;
* **observation sites**: a few dozen cells with yearly ALT, TTOP (permafrost
  only) and GT10m over a site-specific span of years, with measurement noise,
  in the plain observation CSV (site, lat, lon, elevation, year, variable, value).

"Hidden" means that the calibration never reads :data:`TRUE_PARAMETERS`; only
tests that check the twin experiment's outcome do.  Everything is deterministic.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import netCDF4
import numpy as np

from .classify import NODATA, PERMAFROST
from .config import Config
from .demo import LAYER_THICKNESS, SYNTHETIC_NOTICE
from .metrics import annual_metrics
from .simulation import Simulation, _atomic_target

log = logging.getLogger("noahtibet")

#: The hidden "true" parameter set (named kernel parameters, applied to every column).
#: Defaults: sbeta -2.0, salp 2.6, snow_cond_mult 2.0, z0h_beta 7.2, ice_impedance ~17.25.
TRUE_PARAMETERS = {
    "column": {"sbeta": -3.0, "salp": 4.0, "snow_cond_mult": 1.4, "z0h_beta": 5.5},
    "layer": {"ice_impedance": 9.0},
}
REFERENCE_YEAR = 2010
N_SITES = 36
#: Standard deviation of the measurement noise added to the true values.
NOISE = {"ALT": 0.10, "TTOP": 0.20, "GT10m": 0.30}
SEED = 777

REFERENCE_MAP = "reference_permafrost_2010.tif"
OBSERVATIONS = "observations.csv"


def truth_config(cfg: Config) -> Config:
    """The demo configuration with the true parameters and its own output directory."""
    import dataclasses

    out = Path(cfg.output.directory) / "truth"
    return dataclasses.replace(
        cfg,
        parameters=dataclasses.replace(cfg.parameters, column=dict(TRUE_PARAMETERS["column"]),
                                       layer=dict(TRUE_PARAMETERS["layer"])),
        output=dataclasses.replace(cfg.output, directory=str(out), geotiff=False, netcdf=False,
                                   points=[]),
    )


def make_truth(cfg: Config, comm=None, resume: bool = True) -> Path:
    """Run the true model (or resume it) and write the reference map and observations.

    Returns the truth directory.  Already written truth files are kept.
    """
    tcfg = truth_config(cfg)
    out = Path(tcfg.output.directory)
    if (out / REFERENCE_MAP).exists() and (out / OBSERVATIONS).exists():
        return out
    sim = Simulation(tcfg, comm)
    sim.run(resume=resume)
    if sim.comm.rank == 0:
        write_reference_map(sim, out / REFERENCE_MAP)
        write_observations(sim, out / OBSERVATIONS)
    sim.comm.barrier()
    return out


def _annual(sim: Simulation, year: int):
    with netCDF4.Dataset(sim.annual_dir / f"annual_{year:04d}.nc") as nc:
        nc.set_auto_mask(False)
        return (np.array(nc["tmean"][:]), np.array(nc["max_thaw_depth"][:]),
                np.array(nc["frozen_ground_class"][:]))


def write_reference_map(sim: Simulation, path: Path) -> None:
    import rasterio

    _, _, classes = _annual(sim, REFERENCE_YEAR)
    codes = np.where(classes == NODATA, 0, classes).astype(np.uint8)
    grid = sim.model.grid
    tmp = _atomic_target(path)
    try:
        with rasterio.open(tmp, "w", driver="GTiff", width=grid.nlon, height=grid.nlat, count=1,
                           dtype="uint8", crs="EPSG:4326", transform=grid.north_up_transform(),
                           nodata=0, compress="deflate") as dst:
            dst.write(codes[::-1], 1)   # north-up
            dst.update_tags(description=f"demo reference permafrost map {REFERENCE_YEAR}",
                            codes="1 permafrost, 2 seasonally frozen, 3 non-frozen, 0 no data",
                            notice=SYNTHETIC_NOTICE)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def site_cells(sim: Simulation) -> np.ndarray:
    """Canonical column indices of the observation sites (deterministic, spread out)."""
    n = sim.ncol
    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(n, size=min(N_SITES, n), replace=False))


def write_observations(sim: Simulation, path: Path) -> None:
    rows_all, cols_all = sim.model.simulated.cell_rows_cols
    sites = site_cells(sim)
    rng = np.random.default_rng(SEED + 1)
    first, last = sim.cfg.run.product_start_year, sim.cfg.run.end_year
    spans = {}
    for s in sites:   # each site observed over 5-20 consecutive years
        length = int(rng.integers(5, 21))
        start = int(rng.integers(first, max(first, last - length + 1) + 1))
        spans[s] = (start, min(last, start + length - 1))
    records = []
    for year in range(first, last + 1):
        tmean, thaw, classes = _annual(sim, year)
        active = [s for s in sites if spans[s][0] <= year <= spans[s][1]]
        if not active:
            continue
        idx = np.array(active)
        cls = classes[rows_all[idx], cols_all[idx]]
        m = annual_metrics(tmean[idx], thaw[idx], cls == PERMAFROST, LAYER_THICKNESS)
        for j, s in enumerate(active):
            r, c = rows_all[s], cols_all[s]
            for var in ("ALT", "TTOP", "GT10m"):
                value = m[var][j]
                if np.isnan(value):
                    continue
                noise = np.random.default_rng([SEED, int(s), year, len(var)]).normal(0, NOISE[var])
                records.append((f"DEMO{int(s):04d}", float(sim.model.grid.lats[r]),
                                float(sim.model.grid.lons[c]),
                                round(float(sim.model.elevation[r, c]), 1)
                                if sim.model.elevation is not None else float("nan"),
                                year, var, round(float(value + noise), 3)))
    tmp = _atomic_target(path)
    with open(tmp, "w", newline="") as fh:
        fh.write("".join(f"# {line}\n" for line in SYNTHETIC_NOTICE.splitlines()))
        w = csv.writer(fh)
        w.writerow(["site", "lat", "lon", "elevation", "year", "variable", "value"])
        w.writerows(records)
    os.replace(tmp, path)
