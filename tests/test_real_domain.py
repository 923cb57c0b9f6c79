"""Real-data gridded run (domain.kind = "cmfd") assembled from real-format input files.

The synthetic demo domain is written out as the files a real run reads (multi-band soil
GeoTIFF, USGS vegetation, monthly LAI / green fraction, TBOT, slope classes, domain and
glacier masks, CMFD monthly forcing); the assembled model must reproduce the demo's
simulated cells and column parameters, and a short run must complete.
"""

import logging

import netCDF4
import numpy as np
import pytest
import rasterio

from noahtibet import config, layout
from noahtibet.demo import DemoDomain
from noahtibet.errors import ConfigError
from noahtibet.forcing import write_cmfd
from noahtibet.parameters import column_parameters
from noahtibet.real_domain import cmfd_grid, cmfd_model
from noahtibet.simulation import Simulation

EXTENT = (89.0, 32.0, 91.0, 34.0)


def write_tif(path, bands, grid, dtype, nodata):
    """(nband, nlat, nlon) latitude-ascending arrays -> north-up EPSG:4326 GeoTIFF."""
    bands = np.asarray(bands)
    if bands.ndim == 2:
        bands = bands[None]
    with rasterio.open(path, "w", driver="GTiff", width=grid.nlon, height=grid.nlat,
                       count=bands.shape[0], dtype=dtype, crs="EPSG:4326",
                       transform=grid.north_up_transform(), nodata=nodata) as dst:
        dst.write(bands[:, ::-1, :].astype(dtype))
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    demo = DemoDomain(spacing=0.1, extent=EXTENT)
    g = demo.grid
    d = tmp_path_factory.mktemp("static")
    paths = {
        "soil": write_tif(d / "soil.tif", np.moveaxis(demo.soil_class, -1, 0), g, "int16", 0),
        "vegetation": write_tif(d / "veg.tif", demo.vegetation_class, g, "int16", 0),
        "lai": write_tif(d / "lai.tif", np.moveaxis(demo.lai_monthly, -1, 0), g, "float64",
                         np.nan),
        "green_fraction": write_tif(d / "gf.tif", np.moveaxis(demo.green_fraction_monthly, -1, 0),
                                    g, "float64", np.nan),
        "tbot": write_tif(d / "tbot.tif", demo.deep_temperature, g, "float64", np.nan),
        "slope": write_tif(d / "slope.tif", demo.slope_class, g, "int16", 0),
        "domain_boundary": write_tif(d / "domain.tif", demo.domain.active.astype(np.uint8), g,
                                     "uint8", None),
        "glacier": write_tif(d / "glacier.tif", demo.glacier_mask.astype(np.uint8), g, "uint8",
                             None),
        "elevation": write_tif(d / "dem.tif", demo.elevation, g, "float64", np.nan),
    }
    forcing = tmp_path_factory.mktemp("cmfd")
    # through 1980-12 only, the run's last year: the last 3-h step of 1980 ends at
    # 1981-01-01 00 UTC, beyond the data set, and uses its last record (docs/forcing.md)
    write_cmfd(demo.cmfd_dataset("1979-01", "1980-12"), forcing)
    return demo, paths, str(forcing)


def make_config(inputs, out, drop=(), **over):
    demo, paths, forcing = inputs
    static = {k: v for k, v in paths.items() if k not in drop}
    static["vegetation_crosswalk"] = "usgs"
    data = {
        "domain": {"kind": "cmfd", "bbox": list(EXTENT), "spacing": 0.1, "max_cells": 6},
        "forcing": {"provider": "cmfd", "path": forcing},
        "static": static,
        "spinup": {"start_year": 1979, "end_year": 1979, "cycles": 1},
        "run": {"start_year": 1979, "end_year": 1980, "product_start_year": 1980},
        "output": {"directory": str(out)},
    }
    for k, v in over.items():
        data.setdefault(k, {}).update(v)
    return config.from_dict(data)


def test_model_reproduces_the_demo_cells_and_parameters(inputs, tmp_path):
    demo, _, _ = inputs
    cfg = make_config(inputs, tmp_path / "out", domain={"max_cells": 0})
    model = cmfd_model(cfg)
    assert model.grid == demo.grid
    expected = demo.domain.active & ~demo.glacier_mask
    assert expected.sum() > 20      # (this demo extent is all study domain, no glacier)
    assert np.array_equal(model.simulated.active, expected)
    assert np.array_equal(model.static_nodata, ~expected)
    np.testing.assert_allclose(model.elevation, demo.elevation, rtol=1e-12)

    soil_rows = [layout.index(layout.LAYER_PARAMETERS, n) for n in layout.LAYER_PARAMETERS]
    cp = {n: layout.index(layout.COLUMN_PARAMETERS, n) for n in layout.COLUMN_PARAMETERS}
    # vegetation-, slope- and TBOT-derived column parameters (not snoalb: a config constant)
    veg_cols = [cp[n] for n in ("nroot", "rsmin", "rgl", "hs", "snup", "laimin", "laimax",
                                "emissmin", "emissmax", "albedomin", "albedomax", "z0min",
                                "z0max", "bare")]
    soil_cols = [cp[n] for n in layout.COLUMN_PARAMETERS if n.startswith("sfc_")] + [cp["flimit"]]
    rows, cols = np.nonzero(expected)
    for r, c in zip(rows, cols):
        lp_m, cp_m = column_parameters(model.column_spec(int(r), int(c)))
        lp_d, cp_d = column_parameters(demo.column_spec(int(r), int(c)))
        assert np.array_equal(lp_m[:, soil_rows], lp_d[:, soil_rows]), (r, c)
        assert np.array_equal(cp_m[veg_cols + soil_cols], cp_d[veg_cols + soil_cols]), (r, c)
        assert cp_m[cp["slope"]] == cp_d[cp["slope"]], (r, c)
        assert cp_m[cp["tbot"]] == pytest.approx(cp_d[cp["tbot"]], rel=1e-12, abs=0), (r, c)
        gf = demo.green_fraction_monthly[r, c]
        assert cp_m[cp["shdmin"]] == pytest.approx(gf.min(), abs=1e-12)
        assert cp_m[cp["shdmax"]] == pytest.approx(gf.max(), abs=1e-12)
        assert cp_m[cp["snoalb"]] == 0.75
        mo = model.monthly(int(r), int(c))
        np.testing.assert_allclose(mo[layout.index(layout.MONTHLY, "lai")],
                                   demo.lai_monthly[r, c], atol=1e-12)


def test_slope_classes_come_from_the_slope_raster(inputs, tmp_path):
    # the demo extent is all slope class 1, so give some cells classes 2 and 3
    demo, _, _ = inputs
    assert np.all(demo.slope_class == 1)
    slope = demo.slope_class.copy()
    slope[3, 4], slope[10, 11], slope[15, 2] = 2, 3, 2
    path = write_tif(tmp_path / "slope2.tif", slope, demo.grid, "int16", 0)
    cfg = make_config(inputs, tmp_path / "out", domain={"max_cells": 0},
                      static={"slope": path})
    model = cmfd_model(cfg)
    i = layout.index(layout.COLUMN_PARAMETERS, "slope")
    got = {(r, c): column_parameters(model.column_spec(r, c))[1][i]
           for r, c in ((3, 4), (10, 11), (15, 2), (0, 0))}
    ref = {k: column_parameters(demo.column_spec(*k))[1][i] for k in got}   # class 1
    assert len(set(got.values())) == 3 and got[(0, 0)] == ref[(0, 0)]
    assert got[(3, 4)] == got[(15, 2)] != ref[(3, 4)]
    # no slope raster: class 1 everywhere, i.e. the demo's values here
    cfg = make_config(inputs, tmp_path / "out", domain={"max_cells": 0}, drop=("slope",))
    assert column_parameters(cmfd_model(cfg).column_spec(3, 4))[1][i] == ref[(3, 4)]


def test_cells_without_static_data_are_excluded_and_reported(inputs, tmp_path, caplog):
    demo, paths, _ = inputs
    g = demo.grid
    expected = demo.domain.active & ~demo.glacier_mask
    veg = demo.vegetation_class.copy()
    holes = np.argwhere(expected)[:3]
    for r, c in holes:
        veg[r, c] = 0                                   # no data
    path = write_tif(tmp_path / "veg_holes.tif", veg, g, "int16", 0)
    cfg = make_config(inputs, tmp_path / "out", domain={"max_cells": 0},
                      static={"vegetation": path})
    with caplog.at_level(logging.WARNING, logger="noahtibet"):
        model = cmfd_model(cfg)
    expected[tuple(holes.T)] = False
    assert np.array_equal(model.simulated.active, expected)
    assert any("3 of" in rec.getMessage() for rec in caplog.records)


def test_domain_polygon_and_glacier_raster_are_applied(inputs, tmp_path):
    import pyogrio
    import shapely

    demo, _, _ = inputs
    g = demo.grid
    # domain: the polygon of the western half (89.0..90.0 E); glacier: two cells there
    poly = shapely.box(89.0, 32.0, 90.0, 34.0)
    vec = tmp_path / "domain.gpkg"
    pyogrio.raw.write(
        str(vec), geometry=np.array([shapely.to_wkb(poly)], dtype=object), field_data=[],
        fields=[], geometry_type="Polygon", crs="EPSG:4326", driver="GPKG")
    glacier = np.zeros(g.shape, dtype=np.uint8)
    glacier[5, 3] = glacier[12, 7] = 1
    gpath = write_tif(tmp_path / "glacier2.tif", glacier, g, "uint8", None)
    cfg = make_config(inputs, tmp_path / "out", domain={"max_cells": 0},
                      static={"domain_boundary": str(vec), "glacier": gpath})
    model = cmfd_model(cfg)
    expected = np.zeros(g.shape, dtype=bool)
    expected[:, :10] = True
    expected[5, 3] = expected[12, 7] = False
    assert np.array_equal(model.simulated.active, expected)


def test_short_run_completes_with_annual_files(inputs, tmp_path):
    out = tmp_path / "out"
    cfg = make_config(inputs, out)
    Simulation(cfg).run()
    files = sorted(p.name for p in (out / "annual").glob("annual_*.nc"))
    assert files == ["annual_1979.nc", "annual_1980.nc"]
    with netCDF4.Dataset(out / "annual" / "annual_1980.nc") as nc:
        assert nc.dimensions["cell"].size == 6
        tmean = np.array(nc["tmean"][:])
        assert np.all(np.isfinite(tmean)) and np.all((tmean > 200) & (tmean < 320))
        classes = np.array(nc["frozen_ground_class"][:])
    assert np.sum(classes != 255) == 6


def test_missing_tbot_is_a_config_error(inputs, tmp_path):
    with pytest.raises(ConfigError, match="static.tbot"):
        make_config(inputs, tmp_path / "out", drop=("tbot",))


def test_misaligned_grid_is_a_config_error():
    with pytest.raises(ConfigError, match="domain.bbox"):
        cmfd_grid((89.05, 32.0, 91.0, 34.0), 0.1)
    assert cmfd_grid((89.0, 32.0, 91.0, 34.0), 0.5).shape == (4, 4)
