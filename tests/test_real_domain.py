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
from noahtibet.errors import ConfigError, InputError
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


# ---- TBOT from the forcing (static.tbot_source = "forcing") ---------------------------------

def _numpy_maat(forcing_dir, years, lat, lon):
    """Mean annual air temperature [K] of the CMFD cell at (lat, lon) straight from the
    temp files: per year the mean of the records at the year's 3-h step ends (Jan 1 03:00 ..
    Jan 1 00:00 of the next year; after the last file its last record), then the mean over
    the years."""
    from pathlib import Path

    stamps, values = [], []
    for path in sorted(Path(forcing_dir).rglob("temp_*.nc")):
        with netCDF4.Dataset(path) as nc:
            la = np.asarray(nc["lat"][:], dtype=float)
            lo = np.asarray(nc["lon"][:], dtype=float)
            r, c = int(np.argmin(np.abs(la - lat))), int(np.argmin(np.abs(lo - lon)))
            t = nc["time"]
            stamps.append(np.array([np.datetime64(x, "s") for x in netCDF4.num2date(
                t[:], t.units, only_use_cftime_datetimes=False,
                only_use_python_datetimes=True)]))
            values.append(np.asarray(nc["temp"][:, r, c], dtype=np.float64))
    stamps, values = np.concatenate(stamps), np.concatenate(values)
    means = []
    for y in years:
        ends = np.arange(np.datetime64(f"{y}-01-01T03:00", "s"),
                         np.datetime64(f"{y + 1}-01-01T03:00", "s"), np.timedelta64(3, "h"))
        idx = np.minimum(np.searchsorted(stamps, ends), stamps.size - 1)
        assert np.all((stamps[idx] == ends) | (idx == stamps.size - 1))
        means.append(values[idx].mean())
    return float(np.mean(means))


def test_tbot_from_the_forcing_is_the_mean_annual_air_temperature_plus_offset(inputs, tmp_path):
    demo, _, forcing = inputs
    cfg = make_config(inputs, tmp_path / "out", drop=("tbot",), domain={"max_cells": 0},
                      static={"tbot_source": "forcing", "tbot_period": [1979, 1980],
                              "tbot_offset": 1.5})
    model = cmfd_model(cfg)
    rows, cols = model.simulated.cell_rows_cols
    for k in (0, rows.size // 2, rows.size - 1):
        r, c = int(rows[k]), int(cols[k])
        want = _numpy_maat(forcing, (1979, 1980), demo.grid.lats[r], demo.grid.lons[c]) + 1.5
        got = model.column_spec(r, c).deep_soil_temperature
        assert got == pytest.approx(want, rel=1e-12, abs=0)
        # and it is not simply the demo's own climatological TBOT
        assert abs(got - demo.deep_temperature[r, c]) > 1e-3


def test_tbot_from_the_forcing_defaults_to_the_spinup_period(inputs, tmp_path):
    demo, _, forcing = inputs
    cfg = make_config(inputs, tmp_path / "out", drop=("tbot",),
                      static={"tbot_source": "forcing"})      # spin-up period 1979-1979
    model = cmfd_model(cfg)
    r, c = (int(v[0]) for v in model.simulated.cell_rows_cols)
    want = _numpy_maat(forcing, (1979,), demo.grid.lats[r], demo.grid.lons[c])
    assert model.column_spec(r, c).deep_soil_temperature == pytest.approx(want, rel=1e-12)


def test_tbot_from_the_forcing_does_not_depend_on_the_rank_split(inputs, tmp_path):
    from noahtibet.parallel import partition
    from noahtibet.simulation import build_local_columns

    cfg = make_config(inputs, tmp_path / "out", drop=("tbot",), domain={"max_cells": 7},
                      static={"tbot_source": "forcing"})
    i = layout.index(layout.COLUMN_PARAMETERS, "tbot")
    whole = build_local_columns(cmfd_model(cfg), np.arange(7), cfg).column_par[:, i]
    for nranks in (2, 3):
        model = cmfd_model(cfg)      # fresh: nothing computed yet
        parts = [build_local_columns(model, partition(7, nranks, rank), cfg).column_par[:, i]
                 for rank in range(nranks)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert np.all((whole > 240) & (whole < 290))


@pytest.mark.parametrize("static, key, value", [
    ({"tbot_source": "file"}, "static.tbot_source", "file"),
    ({"tbot_source": "forcing", "tbot_period": [1983, 1979]}, "static.tbot_period", "1983"),
    ({"tbot_source": "forcing", "tbot_period": [1979]}, "static.tbot_period", "1979"),
    ({"tbot_source": "forcing", "tbot_period": [1979, "1983"]}, "static.tbot_period", "1983"),
    ({"tbot_source": "forcing", "tbot_offset": float("nan")}, "static.tbot_offset", "nan"),
    ({"tbot_source": "forcing", "tbot_offset": "1"}, "static.tbot_offset", "1"),
    ({"tbot_period": [1979, 1983]}, "static.tbot_period", "1979"),    # source "raster"
    ({"tbot_offset": 2.0}, "static.tbot_offset", "2.0"),               # source "raster"
])
def test_bad_tbot_options_are_config_errors(inputs, tmp_path, static, key, value):
    with pytest.raises(ConfigError) as e:
        make_config(inputs, tmp_path / "out", drop=("tbot",) if "tbot_source" in static else (),
                    static=static)
    assert e.value.field == key and value in str(e.value)


def test_tbot_from_the_forcing_excludes_a_tbot_raster_and_the_demo(inputs, tmp_path):
    with pytest.raises(ConfigError) as e:
        make_config(inputs, tmp_path / "out", static={"tbot_source": "forcing"})
    assert e.value.field == "static.tbot" and "tbot.tif" in str(e.value)
    with pytest.raises(ConfigError) as e:
        config.from_dict({"static": {"tbot_source": "forcing"}})
    assert e.value.field == "static.tbot_source" and "demo" in str(e.value)


def test_config_template_documents_the_tbot_options():
    text = config.template()
    for key in ("tbot_source", "tbot_period", "tbot_offset"):
        assert f"\n{key} = " in text
    assert "mean annual air temperature" in text
    assert config.from_dict(__import__("tomllib").loads(text)).static.tbot_source == "raster"


def write_nc(path, var, bands, grid, dim):
    """(nband, nlat, nlon) latitude-ascending arrays -> a CF netCDF variable (dim, lat, lon)
    on 1-D degree coordinates, latitude descending as many products store it."""
    import netCDF4

    bands = np.asarray(bands)
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension(dim, bands.shape[0])
        nc.createDimension("lat", grid.nlat)
        nc.createDimension("lon", grid.nlon)
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat[:] = grid.lats[::-1]
        lat.units, lat.standard_name = "degrees_north", "latitude"
        lon = nc.createVariable("lon", "f8", ("lon",))
        lon[:] = grid.lons
        lon.units, lon.standard_name = "degrees_east", "longitude"
        nc.createVariable(dim, "i4", (dim,))[:] = np.arange(1, bands.shape[0] + 1)
        v = nc.createVariable(var, bands.dtype, (dim, "lat", "lon"), fill_value=0
                              if bands.dtype.kind == "i" else np.nan)
        v[:] = bands[:, ::-1, :]
    return f"{path}:{var}"


def test_netcdf_sources_with_a_layer_or_month_dimension(inputs, tmp_path):
    """static.soil / static.lai as "file.nc:var" with a leading layer / month dimension give
    the same classes and monthly fields as the multi-band GeoTIFFs."""
    demo, paths, _ = inputs
    g = demo.grid
    soil = write_nc(tmp_path / "soil.nc", "stas_class",
                    np.moveaxis(demo.soil_class, -1, 0).astype(np.int16), g, "layer")
    lai = write_nc(tmp_path / "lai.nc", "lai", np.moveaxis(demo.lai_monthly, -1, 0), g, "month")
    tif = cmfd_model(make_config(inputs, tmp_path / "a", domain={"max_cells": 0}))
    nc = cmfd_model(make_config(inputs, tmp_path / "b", domain={"max_cells": 0},
                                static={"soil": soil, "lai": lai}))
    assert np.array_equal(nc.simulated.active, tif.simulated.active)
    rows, cols = np.nonzero(nc.simulated.active)
    assert rows.size > 20
    for r, c in zip(rows, cols):
        a, b = tif.column_spec(int(r), int(c)), nc.column_spec(int(r), int(c))
        assert np.array_equal(a.soil_class, b.soil_class), (r, c)
        assert np.array_equal(b.soil_class, demo.soil_class[r, c]), (r, c)
        np.testing.assert_allclose(nc.monthly(int(r), int(c)), tif.monthly(int(r), int(c)),
                                   rtol=0, atol=1e-12)
    # a netCDF soil source with the wrong number of layers is refused, naming it
    short = write_nc(tmp_path / "short.nc", "stas_class",
                     np.moveaxis(demo.soil_class, -1, 0)[:5].astype(np.int16), g, "layer")
    with pytest.raises(InputError, match="short.nc"):
        cmfd_model(make_config(inputs, tmp_path / "c", static={"soil": short}))
