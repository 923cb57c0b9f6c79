"""Frozen-ground products: COG class maps in Albers, the CF netCDF, atomic writes, bad input."""

import json
import os

import netCDF4
import numpy as np
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rio_cogeo.cogeo import cog_validate

from noahtibet import __version__
from noahtibet import products as P
from noahtibet.errors import ConfigError
from noahtibet.grid import LatLonGrid

# 40 x 30 cells of 0.5 degree over the plateau: 73-93 E, 26-41 N
GRID = LatLonGrid(lon0=73.25, lat0=26.25, dlon=0.5, dlat=0.5, nlon=40, nlat=30)
PROV = {"configuration": {"domain": "test", "spinup_years": 3}, "parameter_set": "unit-test-set",
        "forcing": "synthetic"}
CELL = 2000.0


def random_classes(seed=0, grid=GRID):
    rng = np.random.default_rng(seed)
    c = rng.integers(1, 4, grid.shape).astype(np.uint8)
    c[rng.random(grid.shape) < 0.1] = P.NODATA       # lakes, glaciers
    c[:4, :6] = P.NODATA                              # outside the domain (south-west corner)
    return c


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    classes = random_classes()
    path = tmp_path_factory.mktemp("cog") / "map_2010.tif"
    out = P.write_class_geotiff(classes, GRID, 2010, path, provenance=PROV, cell_size_m=CELL,
                                blocksize=256)
    assert out == path
    return path, classes


def boundary(grid, n=200):
    w, s, e, nn = grid.bounds
    lon = np.concatenate([np.linspace(w, e, n), np.linspace(w, e, n), np.full(n, w), np.full(n, e)])
    lat = np.concatenate([np.full(n, s), np.full(n, nn), np.linspace(s, nn, n), np.linspace(s, nn, n)])
    return lon, lat


def sample_points(ds, grid, classes, seed, npt=300):
    """Random lon/lat points well inside model cells; return (read pixel, expected class)."""
    rng = np.random.default_rng(seed)
    r = rng.integers(0, grid.nlat, npt)
    c = rng.integers(0, grid.nlon, npt)
    lon = grid.lons[c] + rng.uniform(-0.3, 0.3, npt) * grid.dlon
    lat = grid.lats[r] + rng.uniform(-0.3, 0.3, npt) * grid.dlat
    x, y = warp_transform(CRS.from_epsg(4326), ds.crs, lon, lat)
    got = np.array([v[0] for v in ds.sample(zip(x, y), indexes=1)])
    return got, classes[r, c]


# ----------------------------------------------------------------------------- GeoTIFF

def test_geotiff_is_valid_cog(product):
    path, _ = product
    valid, errors, _warnings = cog_validate(str(path))
    assert valid and errors == []
    with rasterio.open(path) as ds:
        assert ds.profile["compress"] == "deflate"
        assert ds.profile["tiled"] and ds.block_shapes[0] == (256, 256)
        assert ds.overviews(1) and ds.overviews(1)[0] == 2


def test_geotiff_crs_transform_nodata(product):
    path, _ = product
    with rasterio.open(path) as ds:
        d = ds.crs.to_dict()
        assert d["proj"] == "aea"
        assert (d["lat_1"], d["lat_2"], d["lat_0"], d["lon_0"]) == (25, 47, 0, 105)
        assert d.get("datum") == "WGS84" or d.get("ellps") == "WGS84"
        assert d.get("units") == "m"
        assert ds.crs == CRS.from_proj4(P.AlbersParams().proj4)
        t = ds.transform
        assert (t.a, t.b, t.d, t.e) == (CELL, 0.0, 0.0, -CELL)
        assert t.c % CELL == 0 and t.f % CELL == 0          # snapped to whole cells
        assert ds.dtypes == ("uint8",) and ds.nodata == 255 and ds.count == 1
        # the extent covers the whole grid, and not more than one cell beyond it
        lon, lat = boundary(GRID)
        x, y = np.asarray(warp_transform(CRS.from_epsg(4326), ds.crs, lon, lat))
        west, south, east, north = ds.bounds
        assert x.min() >= west and x.max() <= east and y.min() >= south and y.max() <= north
        assert x.min() - west < CELL and east - x.max() < CELL
        assert y.min() - south < CELL and north - y.max() < CELL


def test_geotiff_classes_at_points(product):
    path, classes = product
    with rasterio.open(path) as ds:
        got, expected = sample_points(ds, GRID, classes, seed=5)
        assert set(np.unique(expected)) == {1, 2, 3, 255}
        np.testing.assert_array_equal(got, expected)
        # pixels whose centres fall outside the model grid are NoData
        h, w = ds.shape
        rows = np.array([0, 0, h - 1, h - 1, 0, h // 2])
        cols = np.array([0, w - 1, 0, w - 1, w // 2, 0])
        xs, ys = rasterio.transform.xy(ds.transform, rows, cols)
        lon, lat = np.asarray(warp_transform(ds.crs, CRS.from_epsg(4326), xs, ys))
        gw, gs, ge, gn = GRID.bounds
        outside = (lon < gw) | (lon > ge) | (lat < gs) | (lat > gn)
        assert outside.sum() >= 3
        data = ds.read(1)
        assert np.all(data[rows[outside], cols[outside]] == 255)
        # class fractions of the map follow the model cells' (equal-area pixels, unequal cells)
        assert set(np.unique(data)) == {1, 2, 3, 255}


def test_geotiff_tags_and_colours(product):
    path, _ = product
    with rasterio.open(path) as ds:
        tags = ds.tags()
        assert tags["class_1"] == "permafrost"
        assert tags["class_2"] == "seasonally_frozen_ground"
        assert tags["class_3"] == "non_frozen_ground"
        assert "glacier" in tags["class_255"] and "lake" in tags["class_255"]
        assert tags["year"] == "2010"
        assert tags["noahtibet_version"] == __version__
        assert tags["parameter_set"] == "unit-test-set"
        assert json.loads(tags["configuration"]) == PROV["configuration"]
        assert tags["forcing"] == "synthetic"
        prov = json.loads(tags["provenance_json"])
        assert prov == {**PROV, "year": 2010, "noahtibet_version": __version__}
        assert ds.descriptions == ("frozen_ground_class",)
        cmap = ds.colormap(1)
        for value, rgba in P.CLASS_COLOURS.items():
            assert cmap[value] == rgba


def test_geotiff_overviews_keep_majority_class(tmp_path):
    """MODE overviews: the majority class wins, so it gains area at coarser levels.

    Fine random pattern, 60 % permafrost / 40 % non-frozen, ~2 pixels per model
    cell.  Nearest sampling would keep ~60 % at every level; averaging codes (or
    colours) would drift towards the other class or invent class 2.
    """
    grid = LatLonGrid(90.01, 33.01, 0.02, 0.02, 150, 100)
    rng = np.random.default_rng(1)
    classes = np.where(rng.random(grid.shape) < 0.6, 1, 3).astype(np.uint8)
    path = P.write_class_geotiff(classes, grid, 2000, tmp_path / "ov.tif", provenance=PROV,
                                 cell_size_m=1000, blocksize=16)
    with rasterio.open(path) as ds:
        full = ds.read(1)
        nlevels = len(ds.overviews(1))
    assert nlevels >= 3
    frac_full = np.mean(full[full != 255] == 1)
    assert 0.55 < frac_full < 0.65
    with rasterio.open(path, overview_level=2) as ov:     # factor 8
        o = ov.read(1)
    assert set(np.unique(o)) <= {1, 3, 255}
    assert np.mean(o[o != 255] == 1) > frac_full + 0.15


def test_geotiff_configured_projection(tmp_path):
    params = {"lat_1": 30.0, "lat_2": 40.0, "lon_0": 90.0}
    classes = random_classes(seed=3)
    path = P.write_class_geotiff(classes, GRID, 1999, tmp_path / "p.tif", provenance=PROV,
                                 crs_params=params, cell_size_m=5000)
    with rasterio.open(path) as ds:
        d = ds.crs.to_dict()
        assert (d["lat_1"], d["lat_2"], d["lon_0"], d["lat_0"]) == (30, 40, 90, 0)
        assert ds.res == (5000.0, 5000.0)
        got, expected = sample_points(ds, GRID, classes, seed=9, npt=200)
        np.testing.assert_array_equal(got, expected)


def test_geotiff_default_cell_size_and_input_forms(tmp_path):
    grid = LatLonGrid(90.05, 34.05, 0.1, 0.1, 12, 8)
    classes = random_classes(seed=4, grid=grid)
    as_float = np.where(classes == 255, np.nan, classes).astype(float)
    as_masked = np.ma.masked_equal(classes.astype(np.int16), 255)
    paths = [P.write_class_geotiff(v, grid, 2005, tmp_path / f"{i}.tif", provenance=PROV)
             for i, v in enumerate([classes, as_float, as_masked])]
    arrays = []
    for p in paths:
        with rasterio.open(p) as ds:
            assert ds.res == (P.DEFAULT_CELL_SIZE_M, P.DEFAULT_CELL_SIZE_M) == (1000.0, 1000.0)
            arrays.append(ds.read(1))
            got, expected = sample_points(ds, grid, classes, seed=2, npt=100)
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(arrays[0], arrays[1])
    np.testing.assert_array_equal(arrays[0], arrays[2])


def test_write_class_maps_one_file_per_year(tmp_path):
    maps = {2002: random_classes(1), 2001: random_classes(2)}
    paths = P.write_class_maps(maps, GRID, tmp_path / "maps", provenance=PROV, cell_size_m=10000)
    assert [p.name for p in paths] == ["noahtibet_frozen_ground_2001.tif",
                                       "noahtibet_frozen_ground_2002.tif"]
    for p, year in zip(paths, (2001, 2002)):
        with rasterio.open(p) as ds:
            assert ds.tags()["year"] == str(year)
            got, expected = sample_points(ds, GRID, maps[year], seed=year, npt=100)
            np.testing.assert_array_equal(got, expected)
    stack = np.stack([random_classes(7), random_classes(8)])
    paths = P.write_class_maps(stack, GRID, tmp_path / "s", pattern="fg_{year}.tif", years=[1990, 1991],
                               provenance=PROV, cell_size_m=10000)
    assert sorted(os.listdir(tmp_path / "s")) == ["fg_1990.tif", "fg_1991.tif"]
    with rasterio.open(paths[1]) as ds:
        got, expected = sample_points(ds, GRID, stack[1], seed=1, npt=100)
        np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------------- netCDF

def test_netcdf_round_trip(tmp_path):
    years = [2008, 2009, 2010]
    classes = np.stack([random_classes(s) for s in (11, 12, 13)]).astype(float)
    classes[1, 5, 7] = np.nan                       # NaN is NoData too
    prob = np.random.default_rng(0).random(classes.shape)
    prob[classes == 255] = np.nan
    path = P.write_class_netcdf(classes, years, GRID, tmp_path / "fg.nc", provenance=PROV,
                                extra_fields={"permafrost_probability":
                                              (prob, {"units": "1", "long_name": "p(permafrost)"})})
    expected = np.where(np.isnan(classes), 255, classes).astype(np.uint8)
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        v = nc["frozen_ground_class"]
        assert v.dimensions == ("year", "lat", "lon")
        assert v.dtype == np.uint8 and v._FillValue == 255
        np.testing.assert_array_equal(v.flag_values, [1, 2, 3])
        assert v.flag_meanings == "permafrost seasonally_frozen_ground non_frozen_ground"
        assert v.grid_mapping == "crs"
        np.testing.assert_array_equal(v[:], expected)
        np.testing.assert_array_equal(nc["year"][:], years)
        lat, lon = nc["lat"], nc["lon"]
        np.testing.assert_allclose(lat[:], GRID.lats)
        np.testing.assert_allclose(lon[:], GRID.lons)
        assert np.all(np.diff(lat[:]) > 0)
        assert (lat.standard_name, lat.units, lon.standard_name, lon.units) == (
            "latitude", "degrees_north", "longitude", "degrees_east")
        np.testing.assert_allclose(nc["lat_bnds"][0], [26.0, 26.5])
        np.testing.assert_allclose(nc["lon_bnds"][-1], [92.5, 93.0])
        assert nc["crs"].grid_mapping_name == "latitude_longitude"
        assert nc["crs"].semi_major_axis == 6378137.0
        assert nc.Conventions.startswith("CF-")
        assert nc.noahtibet_version == __version__
        assert nc.parameter_set == "unit-test-set"
        assert json.loads(nc.configuration) == PROV["configuration"]
        p = nc["permafrost_probability"]
        assert p.dtype == np.float32 and p.units == "1" and p.grid_mapping == "crs"
        np.testing.assert_allclose(p[:], prob.astype(np.float32), equal_nan=True)
    with xr.open_dataset(path) as ds:
        assert list(ds["year"].values) == years
        assert [t.year for t in ds["time"].to_index()] == years
        assert ds["frozen_ground_class"].isnull().sum() == (expected == 255).sum()


def test_netcdf_bad_input(tmp_path):
    classes = np.stack([random_classes(1), random_classes(2)])
    with pytest.raises(ValueError, match="increasing"):
        P.write_class_netcdf(classes, [2001, 2000], GRID, tmp_path / "a.nc", provenance=PROV)
    with pytest.raises(ValueError, match=r"shape \(2, 30, 40\)"):
        P.write_class_netcdf(classes, [2000, 2001, 2002], GRID, tmp_path / "a.nc", provenance=PROV)
    bad = classes.copy()
    bad[1, 2, 3] = 4
    with pytest.raises(ValueError, match=r"value 4 .*lon 74\.75, lat 27.*year 2001"):
        P.write_class_netcdf(bad, [2000, 2001], GRID, tmp_path / "a.nc", provenance=PROV)
    with pytest.raises(ValueError, match="'crs'"):
        P.write_class_netcdf(classes, [2000, 2001], GRID, tmp_path / "a.nc", provenance=PROV,
                             extra_fields={"crs": np.zeros(classes.shape)})
    with pytest.raises(ValueError, match="infinite"):
        P.write_class_netcdf(classes, [2000, 2001], GRID, tmp_path / "a.nc", provenance=PROV,
                             extra_fields={"p": np.full(classes.shape, np.inf)})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- bad input

def test_geotiff_bad_input(tmp_path):
    c = random_classes()
    with pytest.raises(ValueError, match=r"shape \(29, 40\)"):
        P.write_class_geotiff(c[1:], GRID, 2000, tmp_path / "a.tif", provenance=PROV)
    bad = c.astype(float)
    bad[10, 20] = 2.5
    with pytest.raises(ValueError, match=r"year 2000: value 2\.5 .*row 10, col 20: lon 83\.25, lat 31\.25"):
        P.write_class_geotiff(bad, GRID, 2000, tmp_path / "a.tif", provenance=PROV)
    with pytest.raises(ValueError, match="parameter_set"):
        P.write_class_geotiff(c, GRID, 2000, tmp_path / "a.tif", provenance={"configuration": {}})
    with pytest.raises(ValueError, match="reserved"):
        P.write_class_geotiff(c, GRID, 2000, tmp_path / "a.tif", provenance={**PROV, "year": 1})
    with pytest.raises(ConfigError, match=r"albers\.lat_1.*'95"):
        P.write_class_geotiff(c, GRID, 2000, tmp_path / "a.tif", provenance=PROV,
                              crs_params={"lat_1": 95})
    with pytest.raises(ConfigError, match="lat_3"):
        P.write_class_geotiff(c, GRID, 2000, tmp_path / "a.tif", provenance=PROV,
                              crs_params={"lat_3": 10})
    with pytest.raises(ConfigError, match="cell_size_m.*'-5'"):
        P.write_class_geotiff(c, GRID, 2000, tmp_path / "a.tif", provenance=PROV, cell_size_m=-5)
    with pytest.raises(ConfigError, match="pattern"):
        P.write_class_maps({2000: c}, GRID, tmp_path, pattern="fixed.tif", provenance=PROV)
    # one bad year in a series: nothing is written
    with pytest.raises(ValueError, match="year 2001"):
        P.write_class_maps({2000: c, 2001: np.full(GRID.shape, 9)}, GRID, tmp_path, provenance=PROV)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes

def test_geotiff_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    real_copy = rasterio.shutil.copy
    target = tmp_path / "map.tif"

    def copy_then_fail(src, dst, **kw):
        real_copy(src, dst, **kw)                 # the whole file is there, under its temp name
        assert os.path.exists(dst) and os.path.dirname(dst) == str(tmp_path) and dst != str(target)
        raise OSError("simulated: disk full while finishing")

    monkeypatch.setattr(rasterio.shutil, "copy", copy_then_fail)
    with pytest.raises(OSError, match="simulated"):
        P.write_class_geotiff(random_classes(), GRID, 2000, target, provenance=PROV, cell_size_m=10000)
    assert os.listdir(tmp_path) == []

    # a previous product of the same name survives a failed rewrite unchanged
    target.write_bytes(b"previous product")
    with pytest.raises(OSError, match="simulated"):
        P.write_class_geotiff(random_classes(), GRID, 2000, target, provenance=PROV, cell_size_m=10000)
    assert os.listdir(tmp_path) == ["map.tif"] and target.read_bytes() == b"previous product"

    monkeypatch.setattr(rasterio.shutil, "copy", real_copy)
    P.write_class_geotiff(random_classes(), GRID, 2000, target, provenance=PROV, cell_size_m=10000)
    assert os.listdir(tmp_path) == ["map.tif"]
    with rasterio.open(target) as ds:
        assert ds.tags()["year"] == "2000"


def test_netcdf_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    real_fill = P._fill_netcdf

    def fill_then_interrupt(nc, *args):
        real_fill(nc, *args)
        raise KeyboardInterrupt                  # e.g. Ctrl-C just before the rename

    monkeypatch.setattr(P, "_fill_netcdf", fill_then_interrupt)
    classes = random_classes()[None]
    with pytest.raises(KeyboardInterrupt):
        P.write_class_netcdf(classes, [2000], GRID, tmp_path / "fg.nc", provenance=PROV)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(P, "_fill_netcdf", real_fill)
    P.write_class_netcdf(classes, [2000], GRID, tmp_path / "fg.nc", provenance=PROV)
    assert os.listdir(tmp_path) == ["fg.nc"]


@pytest.mark.parametrize("grid, params, cell", [
    (GRID, P.AlbersParams(), CELL),
    (LatLonGrid(90.05, 33.05, 0.1, 0.1, 20, 15), P.AlbersParams(), 1000.0),
    # a pixel column centred on the central meridian, which is a cell edge (90 E), and
    # pixel rows whose centres fall on parallels: the PROJ fallback decides those pixels
    (LatLonGrid(85.25, 30.25, 0.5, 0.5, 20, 10),
     P.AlbersParams(lat_1=20, lat_2=50, lat_0=10, lon_0=90, x_0=500.0, y_0=-1e5), 1000.0),
])
def test_pixel_to_cell_map_is_exactly_the_proj_map(grid, params, cell):
    target = P.albers_target(grid, cell, params)
    P._pixel_cells.cache_clear()
    fast = P._pixel_cells(grid, target)
    reference = P._pixel_cells_proj(grid, target)
    assert (fast >= 0).mean() > 0.5
    np.testing.assert_array_equal(fast, reference)


def test_pixel_map_sends_pixels_on_cell_edges_to_proj(monkeypatch):
    import rasterio.warp

    grid = LatLonGrid(85.25, 30.25, 0.5, 0.5, 20, 10)
    params = P.AlbersParams(lon_0=90.0, x_0=500.0)   # pixel centres x = 0: on 90 E, a cell edge
    target = P.albers_target(grid, 1000.0, params)
    reference = P._pixel_cells_proj(grid, target)
    sent = []
    real = rasterio.warp.transform

    def counting(src, dst, xs, ys, *args, **kwargs):
        sent.append(np.asarray(xs).copy())
        return real(src, dst, xs, ys, *args, **kwargs)

    monkeypatch.setattr(rasterio.warp, "transform", counting)
    P._pixel_cells.cache_clear()
    fast = P._pixel_cells(grid, target)
    P._pixel_cells.cache_clear()
    xs = np.concatenate(sent)
    assert 0 < xs.size < 0.05 * fast.size            # a few pixels, not all
    assert np.any(np.abs(xs - params.x_0) < 1e-6)    # the central-meridian column among them
    np.testing.assert_array_equal(fast, reference)
