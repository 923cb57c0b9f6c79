"""Static fields, masks and the reference map on small synthetic inputs (noahtibet.static/.masks).

Every expected value is computed by hand or by an independent direct computation in the test,
never taken from the code under test.
"""

from __future__ import annotations

import warnings

import netCDF4
import numpy as np
import pyogrio.raw as pyogrio_raw        # vector I/O (bundled GDAL/OGR), a package dependency
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

from noahtibet import masks, static
from noahtibet.errors import ConfigError, InputError
from noahtibet.grid import LatLonGrid

# 4 x 3 cells of 0.5 degree: lon 100.0..102.0 E, lat 30.0..31.5 N (cell edges on whole halves).
G = LatLonGrid(lon0=100.25, lat0=30.25, dlon=0.5, dlat=0.5, nlon=4, nlat=3)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def write_tif(path, data, *, west, north, res, crs="EPSG:4326", nodata=None, dtype=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=dtype or data.dtype, crs=crs,
                       transform=from_origin(west, north, res, res), nodata=nodata) as dst:
        dst.write(data.astype(dtype or data.dtype))
    return str(path)


def write_polygons(path, geoms, crs="EPSG:4326", layer=None, driver=None, append=False):
    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio_raw.write(str(path), wkb, [], [], layer=layer, driver=driver, crs=crs,
                      geometry_type="Polygon", promote_to_multi=False, append=append)
    return str(path)


def cells_fine(grid, k):
    """Source raster 'per model cell' layout: array (nlat*k, nlon*k) north-up, k px per cell."""
    return np.zeros((grid.nlat * k, grid.nlon * k))


def put_cell(arr, grid, k, row, col, block):
    """Write a k x k block (north-up) into model cell (row ascending, col) of a north-up array."""
    r_top = (grid.nlat - 1 - row) * k
    arr[r_top:r_top + k, col * k:(col + 1) * k] = block


# --------------------------------------------------------------------------------------------
# coverage fractions and masks from polygons
# --------------------------------------------------------------------------------------------


def test_square_covering_one_and_a_half_by_two_cells(tmp_path):
    # lon 100.0..100.75 (1.5 cells), lat 30.0..31.0 (2 cells): by hand
    expected = np.zeros(G.shape)
    expected[0:2, 0] = 1.0
    expected[0:2, 1] = 0.5
    square = shapely.box(100.0, 30.0, 100.75, 31.0)
    shp = write_polygons(tmp_path / "square.shp", [square])
    gpkg = write_polygons(tmp_path / "square.gpkg", [square], layer="sq")
    for src in (shp, gpkg, (gpkg, "sq"), [square]):
        frac = masks.coverage_fraction(src, G)
        np.testing.assert_allclose(frac, expected, atol=1e-12)
    # supersampling with k = 10: the 0.5 boundary falls between sub-cell centres -> exact too
    np.testing.assert_allclose(masks.coverage_fraction(shp, G, supersample=10), expected)
    # threshold: 0.5 is not exceeded by a half-covered cell; 0.49 is
    m = masks.mask_from_vector(shp, G)
    assert m.sum() == 2 and m[0, 0] and m[1, 0] and not m[0, 1]
    m = masks.mask_from_vector(gpkg, G, threshold=0.49, layer="sq")
    np.testing.assert_array_equal(m, expected > 0)
    m0 = masks.mask_from_vector(shp, G, threshold=0.0)
    np.testing.assert_array_equal(m0, expected > 0)
    dom = masks.domain_from_source(gpkg, G)
    assert dom.ncells == 2 and dom.active[0, 0] and dom.active[1, 0]


def test_triangle_exact_and_supersampled(tmp_path):
    # right triangle (100,30) (101,30) (100,31): x + y <= 1 degree from the corner.
    # cell (0,0) lies below the hypotenuse (its NE corner is on it) -> 1; (0,1) and (1,0) hold a
    # right triangle of legs 0.5 -> 0.125 / 0.25 = 0.5; (1,1) -> 0.
    tri = shapely.Polygon([(100, 30), (101, 30), (100, 31)])
    path = write_polygons(tmp_path / "tri.gpkg", [tri])
    expected = np.zeros(G.shape)
    expected[0, 0] = 1.0
    expected[0, 1] = expected[1, 0] = 0.5
    np.testing.assert_allclose(masks.coverage_fraction(path, G), expected, atol=1e-12)
    # k = 10 sub-centres: in cell (0,1) the centres (1 + (i+.5)/10, (j+.5)/10) (index units) are
    # strictly inside for i + j <= 8 (45 of 100); the 10 with i + j = 9 lie on the hypotenuse and
    # may go either way in floating point -> 0.45 .. 0.55
    sup = masks.coverage_fraction(path, G, supersample=10)
    assert sup[0, 0] == 1.0 and sup[1, 1] == 0.0
    for v in (sup[0, 1], sup[1, 0]):
        assert 0.45 - 1e-12 <= v <= 0.55 + 1e-12
    m = masks.mask_from_vector(path, G, threshold=0.45)
    np.testing.assert_array_equal(m, expected > 0.45)


def test_overlapping_polygons_are_not_counted_twice_and_outside_is_clipped():
    a = shapely.box(100.0, 30.0, 100.5, 30.5)
    b = shapely.box(100.25, 30.0, 100.5, 30.5)          # inside a
    c = shapely.box(99.0, 31.25, 100.25, 33.0)           # sticks out of the grid (west, north)
    frac = masks.coverage_fraction([a, b, c], G)
    assert frac[0, 0] == pytest.approx(1.0)
    # c covers lon 100.0..100.25 x lat 31.25..31.5 of cell (2, 0): 0.5 * 0.5 = 0.25
    assert frac[2, 0] == pytest.approx(0.25)
    assert frac.sum() == pytest.approx(1.25)


def test_polygons_in_a_projected_crs(tmp_path):
    # a Mercator box is a lon-lat box: lon 100.75..101.5, lat 30.5..31.5 -> by hand
    xs, ys = warp_transform("EPSG:4326", "EPSG:3857", [100.75, 101.5], [30.5, 31.5])
    box = shapely.box(xs[0], ys[0], xs[1], ys[1])
    path = write_polygons(tmp_path / "merc.shp", [box], crs="EPSG:3857")
    expected = np.zeros(G.shape)
    expected[1:3, 1] = 0.5
    expected[1:3, 2] = 1.0
    np.testing.assert_allclose(masks.coverage_fraction(path, G), expected, atol=1e-6)
    # the same from shapely geometries with an explicit CRS
    np.testing.assert_allclose(masks.coverage_fraction([box], G, crs="EPSG:3857"), expected,
                               atol=1e-6)


def test_mask_threshold_validation_and_bad_vector_inputs(tmp_path):
    path = write_polygons(tmp_path / "sq.gpkg", [shapely.box(100, 30, 101, 31)])
    for bad in (1.0, -0.1, float("nan"), "0.5", True):
        with pytest.raises(ConfigError, match="threshold"):
            masks.mask_from_vector(path, G, threshold=bad)
    with pytest.raises(InputError, match="file not found") as ei:
        masks.mask_from_vector(tmp_path / "nope.shp", G)
    assert "nope.shp" in str(ei.value)
    with pytest.raises(InputError, match="layer"):
        masks.mask_from_vector(path, G, layer="no_such_layer")
    # shapefile without .prj: no CRS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)        # pyogrio: 'crs' was not provided
        nocrs = write_polygons(tmp_path / "nocrs.shp", [shapely.box(100, 30, 101, 31)],
                               crs=None)
    with pytest.raises(InputError, match="coordinate reference system") as ei:
        masks.mask_from_vector(nocrs, G)
    assert "nocrs.shp" in str(ei.value)
    # points cannot cover cells
    pts = tmp_path / "pts.gpkg"
    pyogrio_raw.write(str(pts), np.array([shapely.to_wkb(shapely.Point(100.2, 30.2))],
                                         dtype=object), [], [], crs="EPSG:4326",
                      geometry_type="Point")
    with pytest.raises(InputError, match="non-polygon"):
        masks.mask_from_vector(pts, G)
    with pytest.raises(ConfigError, match="supersample"):
        masks.coverage_fraction(path, G, supersample=0)


def test_mask_from_raster(tmp_path):
    k = 5                                                   # 0.1 degree pixels
    lake = cells_fine(G, k)
    block = np.zeros((k, k))
    block[:, :3] = 1                                        # 15 / 25 = 0.6 of the cell
    put_cell(lake, G, k, 1, 2, block)
    block = np.zeros((k, k))
    block[:2, :] = 7                                        # 10 / 25 = 0.4, code 7
    put_cell(lake, G, k, 0, 0, block)
    lake[0, 0] = 255                                        # nodata pixel in cell (2, 0)
    path = write_tif(tmp_path / "lake.tif", lake, west=100, north=31.5, res=0.1, nodata=255,
                     dtype="uint8")
    frac = masks.raster_coverage_fraction(path, G)
    expected = np.zeros(G.shape)
    expected[1, 2] = 0.6
    expected[0, 0] = 0.4
    np.testing.assert_allclose(frac, expected)
    m = masks.mask_from_raster(path, G)
    assert m.sum() == 1 and m[1, 2]
    m = masks.mask_from_raster(path, G, threshold=0.3, values=[7])
    assert m.sum() == 1 and m[0, 0]
    with pytest.raises(ConfigError, match="threshold"):
        masks.mask_from_raster(path, G, threshold=2)


def test_lake_masks_nearest_year_rule(tmp_path):
    a = np.zeros(G.shape, bool)
    a[0, 0] = True
    b = np.zeros(G.shape, bool)
    b[1, 1] = True
    gpkg = tmp_path / "lakes.gpkg"
    write_polygons(gpkg, [shapely.box(101.5, 31.0, 102.0, 31.5)], layer="y2020")
    lm = masks.LakeMasks({2000: a, 2010: b, 2020: (str(gpkg), "y2020")}, G)
    assert lm.years == [2000, 2010, 2020]
    cases = {1979: 2000, 2000: 2000, 2004: 2000, 2005: 2000,   # 2005: tie -> earlier year
             2006: 2010, 2015: 2010, 2016: 2020, 2040: 2020}
    for year, src in cases.items():
        assert lm.source_year(year) == src, year
    np.testing.assert_array_equal(lm.for_year(2005), a)
    np.testing.assert_array_equal(lm.for_year(2006), b)
    m = lm.for_year(2030)
    assert m.sum() == 1 and m[2, 3]
    with pytest.raises(ConfigError):
        masks.LakeMasks({}, G)
    # a float array is a covered fraction: masked only above the threshold
    frac = np.zeros(G.shape)
    frac[0, :3] = [0.5, 0.5 + 1e-6, 0.5 + 1e-12]
    lm2 = masks.LakeMasks({2000: frac}, G)
    np.testing.assert_array_equal(lm2.for_year(1999)[0], [False, True, False, False])
    with pytest.raises(InputError, match="shape"):
        masks.LakeMasks({2000: np.zeros((2, 2))}, G).for_year(2000)
    with pytest.raises(ConfigError, match="threshold"):
        masks.LakeMasks({2000: a}, G, threshold=1.5)
    # a year whose file is missing fails when it is needed, naming the file
    lm = masks.LakeMasks({2000: a, 2010: str(tmp_path / "missing.shp")}, G)
    lm.for_year(2001)
    with pytest.raises(InputError, match="missing.shp"):
        lm.for_year(2009)


# --------------------------------------------------------------------------------------------
# regridding
# --------------------------------------------------------------------------------------------


def _shuffled_block(rng, counts, k):
    """k*k pixels holding counts {value: n} (rest NaN) in random positions, as (k, k)."""
    flat = np.full(k * k, np.nan)
    pos = rng.permutation(k * k)
    i = 0
    for v, n in counts.items():
        flat[pos[i:i + n]] = v
        i += n
    return flat.reshape(k, k)


def test_majority_geographic_with_ties_and_nodata(tmp_path):
    rng = np.random.default_rng(3)
    k = 5
    arr = cells_fine(G, k) + np.nan
    counts = {
        (0, 0): {3: 13, 1: 12},          # -> 3
        (0, 1): {5: 10, 2: 10},          # tie -> 2 (smaller); 5 nodata pixels
        (1, 1): {},                      # all nodata -> fill, coverage 0
        (2, 3): {7: 1},                  # one pixel -> 7, coverage 1/25
    }
    for (r, c), cnt in counts.items():
        put_cell(arr, G, k, r, c, _shuffled_block(rng, cnt, k))
    for r in range(G.nlat):
        for c in range(G.nlon):
            if (r, c) not in counts:
                put_cell(arr, G, k, r, c, np.full((k, k), 4.0))
    arr = np.where(np.isnan(arr), 99, arr)
    path = write_tif(tmp_path / "cls.tif", arr, west=100, north=31.5, res=0.1, nodata=99,
                     dtype="int16")
    res = static.regrid(path, G, "majority")
    exp = np.full(G.shape, 4)
    exp[0, 0], exp[0, 1], exp[1, 1], exp[2, 3] = 3, 2, 0, 7
    np.testing.assert_array_equal(res.values, exp)
    cov = np.ones(G.shape)
    cov[0, 1], cov[1, 1], cov[2, 3] = 20 / 25, 0.0, 1 / 25
    np.testing.assert_allclose(res.coverage, cov)
    assert res.values.dtype.kind == "i"


def test_mean_geographic_is_the_area_weighted_pixel_mean(tmp_path):
    rng = np.random.default_rng(7)
    k = 5
    arr = rng.uniform(0, 100, size=(G.nlat * k, G.nlon * k))
    arr[3, 4] = -9999.0                                     # nodata in cell (2, 0)
    path = write_tif(tmp_path / "v.tif", arr, west=100, north=31.5, res=0.1, nodata=-9999.0,
                     dtype="float64")
    res = static.regrid(path, G, "mean")
    # independent: weights sin(lat_n) - sin(lat_s) of every pixel row
    north = 31.5 - 0.1 * np.arange(arr.shape[0])
    w_row = np.sin(np.radians(north)) - np.sin(np.radians(north - 0.1))
    exp = np.empty(G.shape)
    for r in range(G.nlat):
        for c in range(G.nlon):
            rows = slice((G.nlat - 1 - r) * k, (G.nlat - r) * k)
            v = arr[rows, c * k:(c + 1) * k]
            w = np.repeat(w_row[rows][:, None], k, axis=1)
            ok = v != -9999.0
            exp[r, c] = (v[ok] * w[ok]).sum() / w[ok].sum()
    np.testing.assert_allclose(res.values, exp, rtol=1e-12)
    assert res.coverage[2, 0] == pytest.approx(24 / 25)
    assert np.count_nonzero(res.coverage == 1.0) == G.nlat * G.nlon - 1


def test_regrid_projected_source(tmp_path):
    # 2 km pixels in an Albers projection; the value of each pixel is a function of the
    # longitude of its centre, so the expected cell results follow from geography alone.
    crs = ("+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +datum=WGS84 +units=m +no_defs")
    xs, ys = warp_transform("EPSG:4326", crs, [99.8, 102.2, 99.8, 102.2], [29.8, 29.8, 31.7, 31.7])
    res_m = 2000.0
    west, east = min(xs), max(xs)
    south, north = min(ys), max(ys)
    nx, ny = int((east - west) / res_m) + 1, int((north - south) / res_m) + 1
    cx = west + res_m * (np.arange(nx) + 0.5)
    cy = north - res_m * (np.arange(ny) + 0.5)
    X, Y = np.meshgrid(cx, cy)
    lon, lat = warp_transform(crs, "EPSG:4326", X.ravel().tolist(), Y.ravel().tolist())
    lon = np.array(lon).reshape(ny, nx)
    cls = np.where(lon < 101.0, 1, 2).astype("uint8")
    p_cls = write_tif(tmp_path / "aea_cls.tif", cls, west=west, north=north, res=res_m, crs=crs)
    p_lon = write_tif(tmp_path / "aea_lon.tif", lon, west=west, north=north, res=res_m, crs=crs)
    res = static.regrid(p_cls, G, "majority")
    exp = np.tile(np.array([1, 1, 2, 2]), (G.nlat, 1))
    np.testing.assert_array_equal(res.values, exp)
    assert np.all(res.coverage == 1.0)
    mean = static.regrid(p_lon, G, "mean", supersample=20)
    np.testing.assert_allclose(mean.values, np.tile(G.lons, (G.nlat, 1)), atol=0.01)
    with pytest.raises(ConfigError, match="method"):
        static.regrid(p_cls, G, "nearest")
    # the same field as a CF netCDF with a grid_mapping (crs_wkt), y stored ascending
    nc = tmp_path / "aea.nc"
    with netCDF4.Dataset(nc, "w") as ds:
        ds.createDimension("y", ny)
        ds.createDimension("x", nx)
        ds.createVariable("x", "f8", ("x",))[:] = cx
        ds.createVariable("y", "f8", ("y",))[:] = cy[::-1]
        gm = ds.createVariable("albers", "i4", ())
        gm.crs_wkt = rasterio.crs.CRS.from_string(crs).to_wkt()
        v = ds.createVariable("lon", "f8", ("y", "x"))
        v.grid_mapping = "albers"
        v[:] = lon[::-1]
    mean_nc = static.regrid(f"{nc}:lon", G, "mean", supersample=20)
    np.testing.assert_allclose(mean_nc.values, mean.values, atol=1e-9)


def test_regrid_netcdf_matches_geotiff_and_months(tmp_path):
    rng = np.random.default_rng(11)
    k = 5
    arr = rng.uniform(0, 6, size=(12, G.nlat * k, G.nlon * k))
    arr = np.round(arr, 2)
    tif = write_tif(tmp_path / "lai.tif", arr, west=100, north=31.5, res=0.1, dtype="float64")
    nc = tmp_path / "lai.nc"
    lats = 31.5 - 0.1 * (np.arange(arr.shape[1]) + 0.5)
    lons = 100 + 0.1 * (np.arange(arr.shape[2]) + 0.5)
    with netCDF4.Dataset(nc, "w") as ds:
        ds.createDimension("month", 12)
        ds.createDimension("lat", lats.size)
        ds.createDimension("lon", lons.size)
        ds.createVariable("month", "i4", ("month",))[:] = np.arange(1, 13)
        v = ds.createVariable("lat", "f8", ("lat",))
        v.units = "degrees_north"
        v[:] = lats[::-1]                                   # stored south to north
        v = ds.createVariable("lon", "f8", ("lon",))
        v.units = "degrees_east"
        v[:] = lons
        v = ds.createVariable("LAI", "i2", ("month", "lat", "lon"), fill_value=-1)
        v.scale_factor = 0.01
        v[:] = arr[:, ::-1, :]
    a = static.monthly_lai(tif, G)
    b = static.monthly_lai(f"{nc}:LAI", G)
    assert a.values.shape == (12,) + G.shape
    np.testing.assert_allclose(b.values, a.values, atol=1e-9)
    # month 3 cell (0, 0): independent mean of the 25 pixels (equal weights up to cos(lat))
    blk = arr[2, (G.nlat - 1) * k:, 0:k]
    assert b.values[2, 0, 0] == pytest.approx(blk.mean(), abs=0.01)
    # a single band of the netCDF
    one = static.regrid((str(nc), "LAI"), G, "mean", band=5)
    np.testing.assert_allclose(one.values, a.values[5], atol=1e-9)
    with pytest.raises(InputError, match="12 monthly bands"):
        static.monthly_lai(write_tif(tmp_path / "x.tif", arr[:3], west=100, north=31.5,
                                     res=0.1), G)
    with pytest.raises(InputError, match="green fraction") as ei:
        static.monthly_green_fraction(tif, G)                # values up to 6 > 1
    assert "lai.tif" in str(ei.value)
    gvf = static.monthly_green_fraction(tif, G, scale=1 / 6)
    np.testing.assert_allclose(gvf.values, a.values / 6, atol=1e-12)


def test_bad_raster_sources(tmp_path):
    with pytest.raises(InputError, match="file not found") as ei:
        static.regrid(tmp_path / "none.tif", G, "mean")
    assert "none.tif" in str(ei.value)
    # GeoTIFF without CRS
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       transform=from_origin(100, 31.5, 0.5, 0.5)) as d:
        d.write(np.ones((1, 4, 4), "float32"))
    with pytest.raises(InputError, match="coordinate reference system") as ei:
        static.regrid(p, G, "mean")
    assert "nocrs.tif" in str(ei.value)
    # corrupt file
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="cannot be read"):
        static.regrid(bad, G, "mean")
    # netCDF: missing variable; projected coordinates without grid mapping
    nc = tmp_path / "proj.nc"
    with netCDF4.Dataset(nc, "w") as ds:
        ds.createDimension("y", 3)
        ds.createDimension("x", 3)
        v = ds.createVariable("x", "f8", ("x",))
        v.units = "m"
        v[:] = [0, 1000, 2000]
        v = ds.createVariable("y", "f8", ("y",))
        v.units = "m"
        v[:] = [0, 1000, 2000]
        ds.createVariable("elev", "f4", ("y", "x"))[:] = np.ones((3, 3))
    with pytest.raises(InputError, match="variable not in file") as ei:
        static.regrid(f"{nc}:height", G, "mean")
    assert "height" in str(ei.value)
    with pytest.raises(InputError, match="no CRS") as ei:
        static.regrid(f"{nc}:elev", G, "mean")
    assert "proj.nc" in str(ei.value)
    # elevation in wrong units
    ft = write_tif(tmp_path / "feet.tif", np.full((15, 20), 15000.0), west=100, north=31.5,
                   res=0.1)
    with pytest.raises(InputError, match="elevation outside"):
        static.elevation(ft, G)
    ok = write_tif(tmp_path / "dem.tif", np.full((15, 20), 4500.0), west=100, north=31.5,
                   res=0.1)
    np.testing.assert_allclose(static.elevation(ok, G).values, 4500.0)


# --------------------------------------------------------------------------------------------
# soil classes
# --------------------------------------------------------------------------------------------

# (sand %, clay %) -> USDA class by the texture-triangle definitions (silt = 100 - sand - clay)
TEXTURE_POINTS = [
    (92, 3, "SAND"), (80, 5, "LOAMY SAND"), (65, 10, "SANDY LOAM"), (40, 20, "LOAM"),
    (20, 15, "SILT LOAM"), (10, 5, "SILT"), (60, 25, "SANDY CLAY LOAM"), (30, 33, "CLAY LOAM"),
    (10, 33, "SILTY CLAY LOAM"), (55, 40, "SANDY CLAY"), (5, 45, "SILTY CLAY"),
    (20, 60, "CLAY"),
    # on shared boundaries (Soil Survey Manual limits)
    (10, 10, "SILT"),            # silt exactly 80 %, clay < 12 -> silt
    (45, 27, "CLAY LOAM"),       # clay 27, sand 45 -> clay loam (sand <= 45)
    (20, 40, "SILTY CLAY"),      # clay 40, silt 40 -> silty clay (clay >= 40, silt >= 40)
]


def test_texture_classes_at_known_points():
    sand = np.array([p[0] for p in TEXTURE_POINTS], float)
    clay = np.array([p[1] for p in TEXTURE_POINTS], float)
    got = static.texture_class(sand, clay)
    names = [static.USDA_TEXTURE_NAMES[i - 1] for i in got]
    assert names == [p[2] for p in TEXTURE_POINTS]


def test_every_point_of_the_triangle_gets_a_class():
    s, c = np.meshgrid(np.arange(0, 100.01, 0.5), np.arange(0, 100.01, 0.5))
    ok = s + c <= 100
    cls = static.texture_class(s[ok], c[ok])
    assert cls.min() >= 1 and cls.max() <= 12
    assert set(cls.tolist()) == set(range(1, 13))


def test_soil_classes_stas_ordering_gravel_and_bedrock():
    # 5 layers x 2 cells; fractions
    sand = np.array([[0.20, 0.92]] * 5)
    clay = np.array([[0.60, 0.03]] * 5)
    gravel = np.array([[0.0, 0.0], [0.5, 0.6], [0.7, 0.1], [0.9, 0.9], [0.0, 0.0]])
    bottoms = [0.1, 0.3, 0.6, 1.0, 2.0]                     # mid-depths 0.05 0.2 0.45 0.8 1.5
    dtb = np.array([0.5, np.nan])     # cell 0: layers with mid-depth >= 0.5 (layer 3 is 0.3-0.6)
    out = static.soil_classes(sand, clay, gravel, layer_bottoms=bottoms, depth_to_bedrock=dtb)
    # STAS: 1 CLAY, 12 SAND (reverse of stock STATSGO), 13 GRAVEL, 14 BEDROCK
    np.testing.assert_array_equal(out[:, 0], [1, 1, 13, 14, 14])   # 0.5 is not above 0.5
    np.testing.assert_array_equal(out[:, 1], [12, 13, 12, 13, 12])
    out = static.soil_classes(sand * 100, clay * 100, gravel * 100, units="percent",
                              gravel_threshold=0.3)
    np.testing.assert_array_equal(out[:, 0], [1, 13, 13, 13, 1])
    loam = static.soil_classes(np.array([[0.4]]), np.array([[0.2]]))
    assert loam[0, 0] == 7                                  # LOAM is STAS 7
    nan = static.soil_classes(np.array([[np.nan]]), np.array([[0.2]]))
    assert nan[0, 0] == 0
    with pytest.raises(InputError, match="sand \\+ clay"):
        static.soil_classes(np.array([[0.7]]), np.array([[0.5]]))
    with pytest.raises(InputError, match="outside"):
        static.soil_classes(np.array([[40.0]]), np.array([[20.0]]))   # percent given as fraction
    with pytest.raises(ConfigError, match="gravel_threshold"):
        static.soil_classes(sand, clay, gravel, gravel_threshold=1.5)
    with pytest.raises(ConfigError, match="layer_bottoms"):
        static.soil_classes(sand, clay, depth_to_bedrock=dtb)


def test_layers_from_depth_intervals():
    vals = np.array([[1.0], [2.0], [3.0]])                  # 0-0.05, 0.05-0.3, 0.3-1.0 m
    out = static.layers_from_depth_intervals(vals, [0.05, 0.3, 1.0],
                                             [0.045, 0.091, 0.166, 1.2, 15.2])
    # mids 0.0225 0.068 0.1285 0.683 8.2
    np.testing.assert_array_equal(out[:, 0], [1, 2, 2, 3, 3])


# --------------------------------------------------------------------------------------------
# vegetation crosswalk, slope, TBOT
# --------------------------------------------------------------------------------------------


def test_vegetation_crosswalk_maps_before_majority(tmp_path):
    rng = np.random.default_rng(5)
    k = 10
    arr = cells_fine(G, k) + 10                              # IGBP grassland everywhere
    # cell (0, 0): 40 grassland (10), 30 woody savanna (8), 30 savanna (9): IGBP majority would
    # be grassland, but 8 and 9 both map to USGS 10 Savanna (60 %) -> 10
    put_cell(arr, G, k, 0, 0, _shuffled_block(rng, {10: 40, 8: 30, 9: 30}, k))
    # cell (1, 2): 60 water (17 -> 16), 40 unclassified (255 -> nodata)
    put_cell(arr, G, k, 1, 2, _shuffled_block(rng, {17: 60, 255: 40}, k))
    put_cell(arr, G, k, 2, 3, np.full((k, k), 1.0))         # evergreen needleleaf -> 14
    path = write_tif(tmp_path / "igbp.tif", arr, west=100, north=31.5, res=0.05, dtype="uint8")
    res = static.vegetation_class(path, G)
    exp = np.full(G.shape, 7)                                # grassland
    exp[0, 0], exp[1, 2], exp[2, 3] = 10, 16, 14
    np.testing.assert_array_equal(res.values, exp)
    assert res.coverage[1, 2] == pytest.approx(0.6)
    # an IGBP code that is not in the crosswalk
    arr[0, 0] = 42
    bad = write_tif(tmp_path / "igbp_bad.tif", arr, west=100, north=31.5, res=0.05,
                    dtype="uint8")
    with pytest.raises(InputError) as ei:
        static.vegetation_class(bad, G)
    assert "igbp_bad.tif" in str(ei.value) and "'42'" in str(ei.value)
    # a user crosswalk whose target is not a USGS class
    cw = tmp_path / "cw.csv"
    cw.write_text("# mine\nsrc,usgs\n10,30\n")
    with pytest.raises(ConfigError, match="USGS") as ei:
        static.vegetation_class(path, G, crosswalk=cw)
    assert "cw.csv" in str(ei.value)
    cw.write_text("src,usgs\n10,7\n10,8\n")
    with pytest.raises(InputError, match="mapped twice"):
        static.load_crosswalk(cw)
    # the packaged table maps all 17 IGBP classes to USGS classes 1..27
    table = static.load_crosswalk("igbp_to_usgs")
    assert set(range(1, 18)) <= set(table.mapping)
    assert all(1 <= table.mapping[c] <= 27 for c in range(1, 18))


def test_slope_classes(tmp_path):
    deg = np.array([0.0, 4.5, 4.6, 10.0, 16.6, 16.8, 45.0, np.nan])
    # tan(4.574 deg) = 0.08, tan(16.699 deg) = 0.30
    np.testing.assert_array_equal(static.slope_class_from_degrees(deg),
                                  [1, 1, 2, 2, 2, 3, 3, 0])
    k = 5
    arr = cells_fine(G, k) + 2.0                             # 2 degrees -> class 1
    blk = np.full((k, k), 2.0)
    blk[:3, :] = 20.0                                        # 15 of 25 pixels class 3
    put_cell(arr, G, k, 2, 1, blk)
    path = write_tif(tmp_path / "slope.tif", arr, west=100, north=31.5, res=0.1)
    res = static.slope_class(path, G)
    exp = np.ones(G.shape, int)
    exp[2, 1] = 3
    np.testing.assert_array_equal(res.values, exp)
    cls = write_tif(tmp_path / "slopecls.tif", np.where(arr > 10, 6, 4), west=100, north=31.5,
                    res=0.1, dtype="uint8")
    res = static.slope_class(cls, G, kind="class")
    np.testing.assert_array_equal(res.values, np.where(exp == 3, 6, 4))
    badcls = write_tif(tmp_path / "slopebad.tif", np.full_like(arr, 12), west=100, north=31.5,
                       res=0.1, dtype="uint8")
    with pytest.raises(InputError, match="slope class"):
        static.slope_class(badcls, G, kind="class")


def test_deep_temperature():
    maat = np.array([[268.3, np.nan], [280.0, 250.0]])
    tb = static.deep_temperature(maat, offset=4.1)
    np.testing.assert_allclose(tb, maat + 4.1)
    assert np.isnan(tb[0, 1])
    np.testing.assert_array_equal(static.deep_temperature(maat), maat)
    with pytest.raises(InputError, match="Celsius"):
        static.deep_temperature(maat - 273.15)
    with pytest.raises(ConfigError):
        static.deep_temperature(maat, offset=float("nan"))


# --------------------------------------------------------------------------------------------
# reference map
# --------------------------------------------------------------------------------------------


def test_reference_map_majority_with_code_mapping(tmp_path):
    rng = np.random.default_rng(9)
    g = LatLonGrid(lon0=100.05, lat0=30.05, dlon=0.1, dlat=0.1, nlon=4, nlat=3)
    k = 12                                                   # 1/120 degree: about 1 km
    arr = cells_fine(g, k) + 30
    # cell (0, 0): codes 10 and 11 both mean permafrost: 40 + 40 of 144 beat 64 unfrozen (30)
    put_cell(arr, g, k, 0, 0, _shuffled_block(rng, {10: 40, 11: 40, 30: 64}, k))
    # cell (1, 1): 100 glacier (99 -> nodata), 30 seasonal (20), 14 unfrozen (30)
    put_cell(arr, g, k, 1, 1, _shuffled_block(rng, {99: 100, 20: 30, 30: 14}, k))
    # cell (2, 2): 72 / 72 tie between seasonal (20) and permafrost (10) -> 1 (smaller)
    put_cell(arr, g, k, 2, 2, _shuffled_block(rng, {20: 72, 10: 72}, k))
    # cell (2, 3): the file's NoData everywhere
    put_cell(arr, g, k, 2, 3, np.full((k, k), 255.0))
    path = write_tif(tmp_path / "ref2010.tif", arr, west=100, north=30.3, res=1 / 120,
                     nodata=255, dtype="uint8")
    mapping = {10: 1, 11: 1, 20: 2, 30: 3, 99: None}
    res = masks.reference_map(path, g, mapping)
    exp = np.full(g.shape, 3)
    exp[0, 0], exp[1, 1], exp[2, 2], exp[2, 3] = 1, 2, 1, 0
    np.testing.assert_array_equal(res.values, exp)
    assert res.coverage[1, 1] == pytest.approx(44 / 144)
    assert res.coverage[2, 3] == 0.0
    # the same mapping from a CSV file
    csvp = tmp_path / "legend.csv"
    csvp.write_text("code,class\n10,1\n11,1\n20,2\n30,3\n99,nodata\n")
    np.testing.assert_array_equal(masks.reference_map(path, g, csvp).values, exp)
    # default mapping: codes 10.. are unknown -> error naming the file and a code
    with pytest.raises(InputError) as ei:
        masks.reference_map(path, g)
    assert "ref2010.tif" in str(ei.value) and "'10'" in str(ei.value)
    # default mapping on a 1/2/3 map with background 0
    simple = np.where(arr == 10, 1, np.where(arr == 20, 2, np.where(arr == 30, 3, 0)))
    p2 = write_tif(tmp_path / "ref123.tif", simple, west=100, north=30.3, res=1 / 120,
                   dtype="uint8")
    r2 = masks.reference_map(p2, g)
    # cell (0, 0) now holds 40 x 1, 40 x 0 (background) and 64 x 3 -> 3
    assert r2.values[0, 0] == 3 and r2.values[2, 3] == 0
    with pytest.raises(ConfigError, match="1, 2, 3"):
        masks.reference_map(path, g, {10: 4})
