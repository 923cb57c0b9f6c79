"""Real-data gridded domain (``domain.kind = "cmfd"``) assembled from the data-layer readers.

:func:`cmfd_model` builds the :class:`~noahtibet.simulation.DomainModel` of a run on a
CMFD-aligned grid from the inputs named in the ``[static]`` and ``[forcing]`` sections:

=====================  =====================================================================
item                   source (config key) and method
=====================  =====================================================================
grid                   ``domain.bbox`` at ``domain.spacing``: cells of whole CMFD cells, origin
                       at the bbox's south-west corner, which must be a CMFD cell edge
                       (70.0 E / 15.0 N + multiples of 0.1); enough cells to cover the bbox
forcing                :class:`noahtibet.forcing.CMFDProvider` on ``forcing.path``
study domain           ``static.domain_boundary`` (vector or raster, covered fraction > 0.5);
                       every cell of the grid when empty
glaciers               ``static.glacier`` (same rules); none when empty
lakes (per year)       ``static.lakes`` (year -> source, nearest year used); none when empty
soil class per layer   ``static.soil``: a raster with one band (GeoTIFF) or leading-dimension
                       entry (``"file.nc:var"``) per model layer holding STAS classes;
                       majority per cell, band by band
vegetation             ``static.vegetation`` through ``static.vegetation_crosswalk`` (packaged
                       name or CSV; ``"usgs"``: the map already holds USGS classes 1..27)
LAI, green fraction    ``static.lai`` / ``static.green_fraction``: 12 monthly bands, area mean;
                       shdmin/shdmax = min/max of the cell's 12 green fractions
slope class            ``static.slope`` (raster of GENPARM slope classes, majority); class 1
                       everywhere when empty
deep temperature       ``static.tbot`` (raster [K], area mean), or with
                       ``static.tbot_source = "forcing"`` the mean annual air temperature of
                       the cell's forcing over ``static.tbot_period`` (default the spin-up
                       years) plus ``static.tbot_offset`` [K]
                       (:func:`noahtibet.providers.mean_annual_air_temperature`,
                       :func:`noahtibet.static.deep_temperature`)
max snow albedo        ``static.max_snow_albedo`` (one value for every column)
layer thicknesses      ``static.layer_thickness`` (default the 20 Noah-Tibet layers)
elevation (optional)   ``static.elevation`` (DEM [m], area mean), site metadata only
=====================  =====================================================================

Simulated cells = study domain & not glacier & complete static data.  Cells of the study
domain without soil (any layer), vegetation, LAI, green fraction, slope or TBOT data, or whose
vegetation is the unsupported urban class, are left out and counted in a log warning.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from . import layout, static
from .config import Config
from .errors import ConfigError, InputError
from .grid import CMFD_GRID, Domain, LatLonGrid
from .masks import LakeMasks, mask_from_source
from .parameters import URBAN_CLASS, ColumnSpec, Tables

log = logging.getLogger("noahtibet")

#: ``static.vegetation_crosswalk`` value meaning "the map already holds USGS classes".
USGS_IDENTITY = "usgs"

__all__ = ["cmfd_grid", "cmfd_model", "StaticFields", "read_static_fields", "USGS_IDENTITY"]


def cmfd_grid(bbox, spacing: float, path: str = "<config>") -> LatLonGrid:
    """The model grid covering ``bbox`` = (west, south, east, north) with cells of ``spacing``
    degrees made of whole CMFD cells.  Misaligned or out-of-CMFD boxes are ConfigErrors."""
    west, south, east, north = (float(v) for v in bbox)
    if not (east > west and north > south):
        raise ConfigError("must be [west, south, east, north] with west < east, south < north",
                          path=path, field="domain.bbox", value=list(bbox))
    nlon = int(math.ceil((east - west) / spacing - 1e-9))
    nlat = int(math.ceil((north - south) / spacing - 1e-9))
    grid = LatLonGrid(round(west + spacing / 2, 10), round(south + spacing / 2, 10),
                      float(spacing), float(spacing), nlon, nlat)
    try:
        grid.coarsen_factor(CMFD_GRID)
    except ValueError as exc:
        raise ConfigError(f"do not give cells made of whole CMFD cells ({exc}); the south-west "
                          "corner must be 70.0 E / 15.0 N plus multiples of 0.1 degree and the "
                          "spacing a multiple of 0.1", path=path, field="domain.bbox/domain.spacing",
                          value=(list(bbox), spacing)) from None
    cw, cs, ce, cn = CMFD_GRID.bounds
    gw, gs, ge, gn = grid.bounds
    if gw < cw - 1e-9 or gs < cs - 1e-9 or ge > ce + 1e-9 or gn > cn + 1e-9:
        raise ConfigError(f"extends beyond the CMFD grid {CMFD_GRID.bounds} (grid bounds "
                          f"{tuple(round(v, 6) for v in grid.bounds)})", path=path,
                          field="domain.bbox", value=list(bbox))
    return grid


class StaticFields:
    """Static fields on the model grid (latitude ascending); 0 / NaN where no data."""

    def __init__(self, soil, vegetation, lai, green_fraction, slope, tbot, elevation):
        self.soil = soil                    # (nlay, nlat, nlon) int, 0 = no data
        self.vegetation = vegetation        # (nlat, nlon) int, 0 = no data
        self.lai = lai                      # (12, nlat, nlon) float, NaN = no data
        self.green_fraction = green_fraction
        self.slope = slope                  # (nlat, nlon) int, 0 = no data
        self.tbot = tbot                    # (nlat, nlon) float [K], NaN = no data; None:
        #                                     from the forcing (static.tbot_source = "forcing")
        self.elevation = elevation          # (nlat, nlon) float [m] or None

    def valid(self) -> np.ndarray:
        """Cells with every field present and a supported vegetation class."""
        return (np.all(self.soil > 0, axis=0) & (self.vegetation > 0)
                & (self.vegetation != URBAN_CLASS)
                & np.all(np.isfinite(self.lai), axis=0)
                & np.all(np.isfinite(self.green_fraction), axis=0)
                & (self.slope > 0)
                & (np.isfinite(self.tbot) if self.tbot is not None else True))


def _soil_classes(source: str, grid: LatLonGrid, nlay: int, nsoil: int) -> np.ndarray:
    raster = static.read_source(source, grid)
    nb = raster.data.shape[0]
    if nb != nlay:
        raise InputError(f"soil source has {nb} bands but static.layer_thickness has {nlay} "
                         "layers (one STAS class per model layer is needed)", path=raster.path,
                         field=raster.field, value=nb)
    d = raster.data
    bad = ~np.isnan(d) & ((d < 1) | (d > nsoil) | (d != np.floor(d)))
    if np.any(bad):
        b = int(np.nonzero(bad)[0][0])
        raise InputError(f"is not a STAS soil class 1..{nsoil} (band {b + 1})", path=raster.path,
                         field=raster.field, value=float(d[bad][0]))
    # majority band by band (the module's regridder, on the raster already read)
    values, _ = static._regrid_raster(raster, grid, "majority", None, None, 0)
    return np.asarray(values).reshape(nlay, *grid.shape)


def _vegetation(source: str, grid: LatLonGrid, crosswalk: str, nveg: int) -> np.ndarray:
    if crosswalk.lower() == USGS_IDENTITY:
        cw = {c: c for c in range(1, nveg + 1)}   # codes outside 1..nveg raise InputError
        return static.vegetation_class(source, grid, crosswalk=cw).values
    return static.vegetation_class(source, grid, crosswalk=crosswalk).values


def read_static_fields(cfg: Config, grid: LatLonGrid) -> StaticFields:
    """Read and regrid every static input of ``cfg.static`` onto ``grid``."""
    st = cfg.static
    tables = Tables.load()
    nlay = len(st.layer_thickness)
    soil = _soil_classes(st.soil, grid, nlay, len(tables.soil.NAME))
    veg = _vegetation(st.vegetation, grid, st.vegetation_crosswalk, len(tables.veg.NAME))
    lai = static.monthly_lai(st.lai, grid).values
    gf = static.monthly_green_fraction(st.green_fraction, grid).values
    nslope = len(tables.general["SLOPE_DATA"])
    if st.slope:
        slope = static.slope_class(st.slope, grid, kind="class", num_slope=nslope).values
    else:
        slope = np.ones(grid.shape, dtype=np.int64)
    tbot = (static.deep_temperature_from_source(st.tbot, grid).values
            if st.tbot_source == "raster" else None)
    elev = static.elevation(st.elevation, grid).values if st.elevation else None
    return StaticFields(soil, veg, lai, gf, slope, tbot, elev)


def cmfd_model(cfg: Config):
    """The :class:`~noahtibet.simulation.DomainModel` of a real-data run (module doc)."""
    from .forcing import CMFDProvider
    from .simulation import DomainModel

    if cfg.static.tbot_source == "raster" and not cfg.static.tbot:
        raise ConfigError("is required when domain.kind = 'cmfd' and static.tbot_source = "
                          "'raster'", path=cfg.path, field="static.tbot", value="")
    grid = cmfd_grid(cfg.domain.bbox, cfg.domain.spacing, cfg.path)
    try:
        provider = CMFDProvider(cfg.forcing.path, grid, step_seconds=cfg.physics.timestep)
    except ValueError as exc:
        raise ConfigError(str(exc), path=cfg.path, field="forcing.path",
                          value=cfg.forcing.path) from None
    st = cfg.static
    study = (mask_from_source(st.domain_boundary, grid) if st.domain_boundary
             else np.ones(grid.shape, dtype=bool))
    glacier = (mask_from_source(st.glacier, grid) if st.glacier
               else np.zeros(grid.shape, dtype=bool))
    if st.lakes:
        lakes = LakeMasks({int(y): p for y, p in st.lakes.items()}, grid)
        lake_mask = lakes.for_year
    else:
        def lake_mask(year):
            return np.zeros(grid.shape, dtype=bool)

    fields = read_static_fields(cfg, grid)
    land = study & ~glacier
    valid = fields.valid()
    missing = land & ~valid
    if missing.any():
        log.warning("%d of %d domain cells (not glacier) lack static data (soil, vegetation, "
                    "LAI, green fraction, slope or TBOT, or are urban) and are not simulated",
                    int(missing.sum()), int(land.sum()))
    usable = land & valid
    if not usable.any():
        raise InputError("no cell of the domain has complete static data", path=cfg.path,
                         field="static", value=int(land.sum()))
    simulated = usable
    if cfg.domain.max_cells > 0:
        keep = np.zeros(simulated.size, dtype=bool)
        keep[np.flatnonzero(simulated.ravel())[:cfg.domain.max_cells]] = True
        simulated = keep.reshape(simulated.shape)

    dz = np.asarray(st.layer_thickness, dtype=np.float64)
    gi = layout.index(layout.MONTHLY, "green_fraction")
    li = layout.index(layout.MONTHLY, "lai")

    tbot_forcing = ForcingTBOT(provider, cfg) if st.tbot_source == "forcing" else None

    def tbot(row: int, col: int) -> float:
        if tbot_forcing is not None:
            return tbot_forcing.value(row, col)
        return float(fields.tbot[row, col])

    def column_spec(row: int, col: int) -> ColumnSpec:
        gfc = fields.green_fraction[:, row, col]
        return ColumnSpec(
            layer_thickness=dz.copy(),
            soil_class=fields.soil[:, row, col].astype(np.int64),
            vegetation_class=int(fields.vegetation[row, col]),
            slope_class=int(fields.slope[row, col]),
            deep_soil_temperature=tbot(row, col),
            green_fraction_min=float(gfc.min()),
            green_fraction_max=float(gfc.max()),
            max_snow_albedo=float(st.max_snow_albedo),
        )

    def monthly(row: int, col: int) -> np.ndarray:
        m = np.zeros((len(layout.MONTHLY), 12))
        m[gi] = fields.green_fraction[:, row, col]
        m[li] = fields.lai[:, row, col]
        return m

    description = (f"CMFD-forced domain {grid.nlat} x {grid.nlon} cells of {grid.dlon:g} deg "
                   f"(bounds {tuple(round(v, 4) for v in grid.bounds)}), "
                   f"{int(simulated.sum())} simulated cells; forcing {cfg.forcing.path}")
    return DomainModel(grid=grid, simulated=Domain(grid, simulated), static_nodata=~usable,
                       lake_mask=lake_mask, provider=provider, column_spec=column_spec,
                       monthly=monthly, description=description, elevation=fields.elevation,
                       prepare=tbot_forcing.prepare if tbot_forcing is not None else None)


class ForcingTBOT:
    """TBOT of cells from the forcing (``static.tbot_source = "forcing"``).

    TBOT = :func:`noahtibet.static.deep_temperature` of the cell's long-term mean annual
    air temperature (:func:`noahtibet.providers.mean_annual_air_temperature` over
    ``static.tbot_period``, default the spin-up years) with offset ``static.tbot_offset``.
    ``prepare(rows, cols)`` computes the cells a rank owns in one pass over the period's
    forcing; a cell asked for without it is computed alone (same value: a cell's mean
    depends only on its own forcing).
    """

    def __init__(self, provider, cfg: Config):
        from .config import tbot_period

        self.provider = provider
        self.first, self.last = tbot_period(cfg)
        self.offset = float(cfg.static.tbot_offset)
        self.what = (f"mean annual air temperature {self.first}-{self.last} of the forcing "
                     f"{cfg.forcing.path}")
        self._values: dict = {}

    def prepare(self, rows, cols) -> None:
        from .providers import mean_annual_air_temperature

        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        todo = [k for k, key in enumerate(zip(rows.tolist(), cols.tolist()))
                if key not in self._values]
        if not todo:
            return
        r, c = rows[todo], cols[todo]
        log.info("TBOT of %d cells from the forcing: %s + %g K", len(todo), self.what,
                 self.offset)
        maat = mean_annual_air_temperature(self.provider, r, c, self.first, self.last)
        tbot = static.deep_temperature(maat, self.offset, source=self.what)
        for key, value in zip(zip(r.tolist(), c.tolist()), tbot.tolist()):
            self._values[key] = value

    def value(self, row: int, col: int) -> float:
        key = (int(row), int(col))
        if key not in self._values:
            self.prepare([row], [col])
        return self._values[key]
