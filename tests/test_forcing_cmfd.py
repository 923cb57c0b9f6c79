"""Tests of the CMFD forcing reader, provider and writer (noahtibet.forcing).

All data are small synthetic fields written in tmp directories: a 20 x 15 cell block
of the CMFD 0.1 degree grid (lon 90.05..91.95 E, lat 30.05..31.45 N), 3-hourly,
January-March 1979.  The expected values are computed independently of the reader,
with netCDF4's own CF decoding (masking, scale/offset) and cftime's time decoding.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from noahtibet import forcing
from noahtibet.errors import InputError
from noahtibet.forcing import (CMFDProvider, SCHEMES, VARIABLES, cmfd_filename, open_cmfd,
                               write_cmfd)
from noahtibet.grid import CMFD_GRID, LatLonGrid
from noahtibet.layout import FORCING

ROW0, COL0, NLAT, NLON = 150, 200, 15, 20        # CMFD indices of the test block
H3 = np.timedelta64(3, "h")


# --------------------------------------------------------------------------------------------
# synthetic data and an independent direct reader
# --------------------------------------------------------------------------------------------

def make_ds(first="1979-01", last="1979-03", seed=0, row0=ROW0, col0=COL0, nlat=NLAT,
            nlon=NLON) -> xr.Dataset:
    """Plausible random CMFD fields in SI units (precipitation kg m-2 s-1)."""
    t0 = np.datetime64(first, "M").astype("datetime64[s]")
    t1 = (np.datetime64(last, "M") + 1).astype("datetime64[s]")
    times = np.arange(t0, t1, H3)
    rng = np.random.default_rng(seed)
    shape = (times.size, nlat, nlon)
    u = lambda: rng.random(shape)  # noqa: E731
    data = {
        "temp": 240.0 + 40.0 * u(),
        "pres": 5.0e4 + 1.5e4 * u(),
        "shum": 1e-4 + 8e-3 * u(),
        "wind": 12.0 * u(),
        "srad": np.maximum(0.0, 1300.0 * u() - 400.0),
        "lrad": 150.0 + 250.0 * u(),
        "prec": np.where(u() < 0.6, 0.0, 8e-4 * u()),
    }
    coords = {"time": times, "lat": CMFD_GRID.lats[row0:row0 + nlat],
              "lon": CMFD_GRID.lons[col0:col0 + nlon]}
    return xr.Dataset({k: (("time", "lat", "lon"), v) for k, v in data.items()}, coords=coords)


def files_of(directory: Path, var: str) -> list[Path]:
    return sorted(p for p in Path(directory).rglob(f"{var}_*.nc"))


def direct(directory: Path, var: str):
    """(times datetime64[s], data (nt, nlat, nlon) float64 SI, latitude ascending, row0, col0)

    Uses netCDF4's automatic CF masking/scaling and cftime: independent of the reader.
    """
    times, blocks = [], []
    for p in files_of(directory, var):
        with netCDF4.Dataset(p) as nc:
            v = nc.variables[var]
            a = np.ma.filled(v[:].astype(np.float64), np.nan)
            t = nc.variables["time"]
            tt = netCDF4.num2date(t[:], t.units, getattr(t, "calendar", "standard"),
                                  only_use_cftime_datetimes=False,
                                  only_use_python_datetimes=True)
            lat = np.asarray(nc.variables["lat"][:], dtype=float)
            lon = np.asarray(nc.variables["lon"][:], dtype=float)
            if lat.size > 1 and lat[0] > lat[-1]:
                a, lat = a[:, ::-1, :], lat[::-1]
            if var == "prec" and v.units.startswith("mm"):
                a = a / 3600.0
        times.append(np.array([np.datetime64(x, "s") for x in tt]))
        blocks.append(a)
    row0 = int(round((lat[0] - 15.05) / 0.1))
    col0 = int(round((lon[0] - 70.05) / 0.1))
    return np.concatenate(times), np.concatenate(blocks), row0, col0


def at(d, t, rows, cols):
    """Direct values at time t of CMFD cells (rows, cols)."""
    times, data, row0, col0 = d
    k = int(np.flatnonzero(times == np.datetime64(t, "s"))[0])
    return data[k, np.asarray(rows) - row0, np.asarray(cols) - col0]


@pytest.fixture(scope="module")
def base_ds():
    return make_ds()


@pytest.fixture(scope="module")
def cmfd_dir(tmp_path_factory, base_ds):
    """Three months, ITPCAS names, int16-packed, latitude descending, precipitation mm/hr."""
    d = tmp_path_factory.mktemp("cmfd")
    write_cmfd(base_ds, d, scheme="ITPCAS", packed=True, lat_descending=True,
               precip_units="mm/hr")
    return d


@pytest.fixture()
def bad_dir(tmp_path, cmfd_dir):
    """A private copy of cmfd_dir to damage."""
    d = tmp_path / "bad"
    shutil.copytree(cmfd_dir, d)
    return d


def path_of(directory, var, month, scheme="ITPCAS"):
    return Path(directory) / cmfd_filename(var, month, scheme)


# --------------------------------------------------------------------------------------------
# reading back every file variant
# --------------------------------------------------------------------------------------------

VARIANTS = [  # (scheme, packed, lat_descending, precip_units): every option value appears
    ("V0106", False, False, "mm/hr"),
    ("V0106", True, True, "kg m-2 s-1"),
    ("ITPCAS", True, False, "mm hr-1"),
    ("ITPCAS", False, True, "kg m-2 s-1"),
    ("V0200", False, False, "kg m-2 s-1"),
    ("V0200", True, True, "mm h-1"),
]


@pytest.mark.parametrize("scheme,packed,lat_desc,punits", VARIANTS)
def test_round_trip_every_variant(tmp_path, scheme, packed, lat_desc, punits):
    ds = make_ds("1979-01", "1979-02", seed=1)
    written = write_cmfd(ds, tmp_path, scheme=scheme, packed=packed, lat_descending=lat_desc,
                         precip_units=punits)
    assert sorted(p.name for p in written) == sorted(
        cmfd_filename(v, m, scheme) for v in VARIABLES for m in ("1979-01", "1979-02"))
    assert not list(tmp_path.glob(".*"))                 # no temporary files left
    # the files really are in the requested variant
    with netCDF4.Dataset(path_of(tmp_path, "prec", "1979-02", scheme)) as nc:
        v = nc.variables["prec"]
        assert v.dtype == (np.int16 if packed else np.float32)
        assert ("scale_factor" in v.ncattrs()) == packed
        assert v.units == punits
        lat = nc.variables["lat"][:]
        assert (lat[0] > lat[-1]) == lat_desc
        assert nc.variables["time"].units == "hours since 1900-01-01 00:00:00"

    out = open_cmfd(tmp_path, start="1979-01", end="1979-02")
    assert dict(out.sizes) == {"time": ds.sizes["time"], "lat": NLAT, "lon": NLON}
    assert out["temp"].dims == ("time", "lat", "lon")
    assert np.all(np.diff(out["lat"].values) > 0)
    np.testing.assert_allclose(out["lat"].values, ds["lat"].values, atol=1e-9)
    np.testing.assert_allclose(out["lon"].values, ds["lon"].values, atol=1e-9)
    assert np.array_equal(out["time"].values.astype("datetime64[s]"),
                          ds["time"].values.astype("datetime64[s]"))
    assert out["prec"].attrs["units"] == "kg m-2 s-1"
    assert out["temp"].attrs["units"] == "K" and out["pres"].attrs["units"] == "Pa"
    for var in VARIABLES:
        want = ds[var].values
        got = out[var].values.astype(np.float64)
        if packed:   # half a packing step (per file, from its own range) + float32 rounding
            months = ds["time"].values.astype("datetime64[M]")
            for m in np.unique(months):
                sel = months == m
                step = (want[sel].max() - want[sel].min()) / 65532
                np.testing.assert_allclose(got[sel], want[sel], rtol=1e-6,
                                           atol=0.5 * step * 1.0001, err_msg=var)
        else:
            np.testing.assert_allclose(got, want, rtol=3e-7, atol=0, err_msg=var)


def test_files_in_subdirectories_and_any_time_units(tmp_path, base_ds):
    """Files in per-variable folders; time in minutes since a local (UTC+8) reference."""
    ds = base_ds.sel(time=slice("1979-01-01", "1979-01-31T21:00"))
    for var in VARIABLES:
        write_cmfd(ds[[var]], tmp_path / var.capitalize(), scheme="V0200")
    p = path_of(tmp_path / "Temp", "temp", "1979-01", "V0200")
    with netCDF4.Dataset(p, "r+") as nc:
        t = nc.variables["time"]
        utc = ds["time"].values.astype("datetime64[s]")
        t.units = "minutes since 1979-01-01 08:00:00 +08:00"   # = 1979-01-01 00:00 UTC
        t[:] = (utc - np.datetime64("1979-01-01T00:00:00")).astype(np.int64) / 60.0
    out = open_cmfd(tmp_path, "1979-01", "1979-01")
    assert np.array_equal(out["time"].values.astype("datetime64[s]"), utc)
    np.testing.assert_allclose(out["temp"].values, ds["temp"].values, rtol=2e-7)


def test_bbox_subset_equals_cells_of_full_read(cmfd_dir):
    full = open_cmfd(cmfd_dir, "1979-02", "1979-03")
    bbox = (90.3, 30.5, 91.05, 31.0)
    sub = open_cmfd(cmfd_dir, "1979-02", "1979-03", bbox=bbox)
    lon_in = (full["lon"].values >= bbox[0]) & (full["lon"].values <= bbox[2])
    lat_in = (full["lat"].values >= bbox[1]) & (full["lat"].values <= bbox[3])
    assert sub.sizes["lon"] == lon_in.sum() and sub.sizes["lat"] == lat_in.sum()
    np.testing.assert_array_equal(sub["lon"].values, full["lon"].values[lon_in])
    np.testing.assert_array_equal(sub["lat"].values, full["lat"].values[lat_in])
    for var in VARIABLES:
        np.testing.assert_array_equal(sub[var].values,
                                      full[var].values[:, lat_in][:, :, lon_in])


# --------------------------------------------------------------------------------------------
# provider
# --------------------------------------------------------------------------------------------

def expected_steps(directory, times, rows, cols):
    """Kernel forcing at 3-hour steps ending at ``times``, computed directly from the files."""
    d = {v: direct(directory, v) for v in VARIABLES}
    out = np.empty((times.size, len(FORCING), len(rows)))
    for i, t in enumerate(times):
        for j, name in enumerate(FORCING):
            var = forcing.KERNEL_SOURCES[name]
            if var in ("srad", "lrad"):     # 3-h means centred on the stamps t-3h and t
                out[i, j] = 0.5 * (at(d[var], t - H3, rows, cols) + at(d[var], t, rows, cols))
            else:                           # instantaneous at t / mean over (t-3h, t]
                out[i, j] = at(d[var], t, rows, cols)
    return out


def test_provider_equals_direct_computation_across_month_boundary(cmfd_dir):
    rows = np.array([150, 157, 164, 150])
    cols = np.array([200, 211, 219, 219])
    prov = CMFDProvider(cmfd_dir)
    start, end = np.datetime64("1979-01-31T12:00"), np.datetime64("1979-02-01T09:00")
    times, f = prov.read(rows, cols, start, end)
    assert times.dtype == np.dtype("datetime64[s]")
    assert times[0] == start + H3 and times[-1] == end and times.size == 7
    assert f.shape == (7, len(FORCING), 4) and f.dtype == np.float64
    want = expected_steps(cmfd_dir, times, rows, cols)
    np.testing.assert_allclose(f, want, rtol=1e-12, atol=0)
    # the step ending 1979-02-01 00:00 averages radiation across the two monthly files
    k = int(np.flatnonzero(times == np.datetime64("1979-02-01T00:00"))[0])
    d = direct(cmfd_dir, "srad")
    np.testing.assert_allclose(f[k, FORCING.index("shortwave")],
                               0.5 * (at(d, "1979-01-31T21:00", rows, cols)
                                      + at(d, "1979-02-01T00:00", rows, cols)), rtol=1e-12)


def test_radiation_average_conserves_the_total(cmfd_dir):
    """The sum over 3-h steps of the averaged radiation equals the sum of the records."""
    prov = CMFDProvider(cmfd_dir)
    rows, cols = np.array([155, 160]), np.array([205, 215])
    start, end = np.datetime64("1979-02-09T21:00"), np.datetime64("1979-02-20T21:00")
    _, f = prov.read(rows, cols, start, end)
    d = direct(cmfd_dir, "lrad")
    recs = np.array([at(d, start + i * H3, rows, cols) for i in range(89)])
    # steps use records start..end with half weights at both ends
    total = recs[1:-1].sum(axis=0) + 0.5 * (recs[0] + recs[-1])
    np.testing.assert_allclose(f[:, FORCING.index("longwave")].sum(axis=0), total,
                               rtol=1e-12)


def test_first_step_of_dataset_uses_value_at_t_and_logs(cmfd_dir, caplog):
    rows, cols = np.array([152, 163]), np.array([203, 204])
    prov = CMFDProvider(cmfd_dir)
    with caplog.at_level(logging.INFO, logger="noahtibet.forcing"):
        times, f = prov.read(rows, cols, np.datetime64("1978-12-31T21:00"),
                             np.datetime64("1979-01-01T06:00"))
    assert "no record before the first one on disk" in caplog.text
    d = direct(cmfd_dir, "srad")
    t0 = np.datetime64("1979-01-01T00:00")
    assert times[0] == t0
    np.testing.assert_allclose(f[0, FORCING.index("shortwave")], at(d, t0, rows, cols),
                               rtol=1e-12)
    np.testing.assert_allclose(f[1, FORCING.index("shortwave")],
                               0.5 * (at(d, t0, rows, cols) + at(d, t0 + H3, rows, cols)),
                               rtol=1e-12)
    # a step ending before the first record is a gap, not extrapolated
    with pytest.raises(InputError) as e:
        prov.read(rows, cols, np.datetime64("1978-12-31T18:00"),
                  np.datetime64("1979-01-01T00:00"))
    assert e.value.value == "1978-12" and e.value.field in VARIABLES


def test_last_step_of_dataset_uses_the_last_record_and_logs(cmfd_dir, caplog):
    """The data set ends with March 1979: the step ending 1979-04-01 00:00 (the last step
    of March) has no record at its end; the last record (03-31 21:00) stands in for it."""
    rows, cols = np.array([152, 163]), np.array([203, 214])
    prov = CMFDProvider(cmfd_dir)
    with caplog.at_level(logging.INFO, logger="noahtibet.forcing"):
        times, f = prov.read(rows, cols, np.datetime64("1979-03-01T00:00"),
                             np.datetime64("1979-04-01T00:00"))
    assert "ends with 1979-03" in caplog.text
    t_last = np.datetime64("1979-03-31T21:00")
    assert times[-1] == np.datetime64("1979-04-01T00:00") and times.size == 31 * 8
    for name, var in (("air_temperature", "temp"), ("pressure", "pres"),
                      ("specific_humidity", "shum"), ("wind", "wind"), ("precipitation", "prec"),
                      ("shortwave", "srad"), ("longwave", "lrad")):
        want = at(direct(cmfd_dir, var), t_last, rows, cols)
        np.testing.assert_allclose(f[-1, FORCING.index(name)], want, rtol=1e-12, err_msg=name)
    # every earlier step is the normal rule
    np.testing.assert_allclose(f[:-1], expected_steps(cmfd_dir, times[:-1], rows, cols),
                               rtol=1e-12, atol=0)
    # beyond the end of the data set nothing is extrapolated
    with pytest.raises(InputError) as e:
        prov.read(rows, cols, np.datetime64("1979-03-31T21:00"),
                  np.datetime64("1979-04-01T03:00"))
    assert e.value.value == "1979-04" and e.value.field in VARIABLES and "gap" in str(e.value)


def test_a_missing_month_inside_the_data_set_is_still_a_gap(bad_dir):
    """With February missing for every variable the data set still runs to March, so the
    last step of January (ending 02-01 00:00) is a gap, not an end of the data set."""
    for var in VARIABLES:
        path_of(bad_dir, var, "1979-02").unlink()
    prov = CMFDProvider(bad_dir)
    with pytest.raises(InputError) as e:
        prov.read(np.array([150]), np.array([200]), np.datetime64("1979-01-01T00:00"),
                  np.datetime64("1979-02-01T00:00"))
    assert e.value.value == "1979-02" and e.value.field in VARIABLES
    assert "gap" in str(e.value) and "197902.nc" in str(e.value)


def test_one_variable_ending_early_is_a_gap_of_that_variable(bad_dir):
    path_of(bad_dir, "shum", "1979-03").unlink()       # the others still have March
    with pytest.raises(InputError) as e:
        CMFDProvider(bad_dir).read(np.array([150]), np.array([200]),
                                   np.datetime64("1979-02-28T21:00"),
                                   np.datetime64("1979-03-02T00:00"))
    assert e.value.field == "shum" and e.value.value == "1979-03" and "gap" in str(e.value)


def test_coarse_grid_cell_is_mean_of_its_cmfd_cells(cmfd_dir):
    coarse = LatLonGrid(lon0=90.25, lat0=30.25, dlon=0.5, dlat=0.5, nlon=4, nlat=3)
    prov = CMFDProvider(cmfd_dir, grid=coarse)
    rows, cols = np.array([0, 2, 1]), np.array([0, 3, 2])
    times, f = prov.read(rows, cols, np.datetime64("1979-02-28T15:00"),
                         np.datetime64("1979-03-01T06:00"))
    want = np.zeros_like(f)
    for dr in range(5):
        for dc in range(5):
            want += expected_steps(cmfd_dir, times, ROW0 + rows * 5 + dr, COL0 + cols * 5 + dc)
    np.testing.assert_allclose(f, want / 25.0, rtol=1e-12)


def test_hourly_steps_agree_with_three_hourly(cmfd_dir):
    rows, cols = np.array([151, 158]), np.array([201, 217])
    start, end = np.datetime64("1979-02-28T12:00"), np.datetime64("1979-03-01T12:00")
    t3, f3 = CMFDProvider(cmfd_dir).read(rows, cols, start, end)
    t1, f1 = CMFDProvider(cmfd_dir, step_seconds=3600).read(rows, cols, start, end)
    assert t1.size == 3 * t3.size
    inst = [FORCING.index(n) for n in ("wind", "air_temperature", "specific_humidity",
                                       "pressure")]
    mean = [FORCING.index(n) for n in ("shortwave", "longwave", "precipitation")]
    # instantaneous: equal at the 3-h stamps, linear in between
    np.testing.assert_allclose(f1[2::3][:, inst], f3[:, inst], rtol=1e-12)
    prev = np.concatenate([expected_steps(cmfd_dir, t3[:1] - H3, rows, cols), f3[:-1]])
    np.testing.assert_allclose(f1[0::3][:, inst], (2 * prev[:, inst] + f3[:, inst]) / 3,
                               rtol=1e-12)
    # means over the step: three hourly steps average to the 3-hourly one
    np.testing.assert_allclose(f1[:, mean].reshape(-1, 3, len(mean), 2).mean(axis=1),
                               f3[:, mean], rtol=1e-12)
    # radiation: first hour from the earlier record, last hour from the later one
    d = direct(cmfd_dir, "srad")
    sw = FORCING.index("shortwave")
    np.testing.assert_allclose(f1[0::3, sw], [at(d, t - H3, rows, cols) for t in t3],
                               rtol=1e-12)
    np.testing.assert_allclose(f1[2::3, sw], [at(d, t, rows, cols) for t in t3], rtol=1e-12)


def test_provider_reads_only_the_bounding_box_a_month_at_a_time(cmfd_dir, monkeypatch):
    blocks = []
    real = forcing._read_raw

    def spy(nc, meta, it0, it1, r0, r1, c0, c1):
        out = real(nc, meta, it0, it1, r0, r1, c0, c1)
        blocks.append((meta.path.name, out.shape))
        return out

    monkeypatch.setattr(forcing, "_read_raw", spy)
    rows, cols = np.array([152, 155, 153]), np.array([204, 206, 209])
    CMFDProvider(cmfd_dir).read(rows, cols, np.datetime64("1979-01-15T00:00"),
                                np.datetime64("1979-03-02T00:00"))
    assert blocks
    assert {s[1:] for _, s in blocks} == {(4, 6)}          # rows 152..155, cols 204..209
    assert max(s[0] for _, s in blocks) <= 31 * 8
    assert {n for n, _ in blocks if "197903" in n}          # all three months visited


def test_provider_cells_outside_the_files(cmfd_dir):
    with pytest.raises(InputError) as e:
        CMFDProvider(cmfd_dir).read([150], [230], np.datetime64("1979-01-10T00:00"),
                                    np.datetime64("1979-01-10T03:00"))
    assert "does not cover" in str(e.value) and e.value.path.endswith(".nc")


# --------------------------------------------------------------------------------------------
# bad input: file, variable and value named
# --------------------------------------------------------------------------------------------

def read_all(directory):
    """Provider read over all three months (a few cells)."""
    return CMFDProvider(directory).read([150, 160], [200, 210],
                                        np.datetime64("1979-01-01T00:00"),
                                        np.datetime64("1979-03-31T21:00"))


def test_missing_directory(tmp_path):
    for call in (lambda: open_cmfd(tmp_path / "nope", "1979-01", "1979-01"),
                 lambda: CMFDProvider(tmp_path / "nope")):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path.endswith("nope") and "does not exist" in str(e.value)


def test_missing_month_file_is_a_gap(bad_dir):
    path_of(bad_dir, "shum", "1979-02").unlink()
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == "shum" and e.value.value == "1979-02"
        assert "gap" in str(e.value)
        assert "shum_CMFD_V0106_B-01_03hr_010deg_197902.nc" in str(e.value)
    open_cmfd(bad_dir, "1979-03", "1979-03")        # other months still readable


def test_two_variants_of_one_file(bad_dir):
    src = path_of(bad_dir, "temp", "1979-01")
    shutil.copy(src, path_of(bad_dir, "temp", "1979-01", "V0200"))
    with pytest.raises(InputError) as e:
        open_cmfd(bad_dir, "1979-01", "1979-01")
    assert e.value.field == "temp" and e.value.value == "1979-01"
    assert src.name in str(e.value) and "CMFD_V0200" in str(e.value)


def test_variable_missing_in_file(bad_dir):
    p = path_of(bad_dir, "wind", "1979-02")
    with netCDF4.Dataset(p, "r+") as nc:
        nc.renameVariable("wind", "ws10")
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path == str(p) and e.value.field == "wind"
        assert "ws10" in str(e.value)


@pytest.mark.parametrize("packed", [True, False])
def test_nan_in_requested_cell(tmp_path, packed):
    ds = make_ds("1979-01", "1979-02", seed=3)
    k, i, j = 300, 4, 7                 # 1979-02-07 12:00, lat 30.45, lon 90.75
    ds["temp"].values[k, i, j] = np.nan
    write_cmfd(ds, tmp_path, packed=packed)
    t_bad = ds["time"].values[k].astype("datetime64[s]")
    prov = CMFDProvider(tmp_path)
    with pytest.raises(InputError) as e:
        prov.read([ROW0 + i, ROW0], [COL0 + j, COL0], t_bad - 2 * H3, t_bad + H3)
    msg = str(e.value)
    assert e.value.field == "temp" and e.value.value == str(t_bad)
    assert e.value.path.endswith("temp_CMFD_V0106_B-01_03hr_010deg_197902.nc")
    assert "lon 90.75 lat 30.45" in msg
    # other cells and other times are fine; open_cmfd gives NaN there (sea cells do that)
    prov.read([ROW0 + i], [COL0 + j + 1], t_bad - 2 * H3, t_bad + H3)
    prov.read([ROW0 + i], [COL0 + j], t_bad, t_bad + 2 * H3)
    out = open_cmfd(tmp_path, "1979-02", "1979-02")
    assert np.isnan(out["temp"].values[k - 31 * 8, i, j])
    assert np.isfinite(out["temp"].values).sum() == out["temp"].size - 1


@pytest.mark.parametrize("var,units", [("prec", "inch/day"), ("temp", "degF"),
                                       ("shum", "%"), ("srad", None)])
def test_unknown_or_missing_units(bad_dir, var, units):
    p = path_of(bad_dir, var, "1979-03")
    with netCDF4.Dataset(p, "r+") as nc:
        if units is None:
            nc.variables[var].delncattr("units")
        else:
            nc.variables[var].units = units
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path == str(p) and e.value.field == var and e.value.value == units
        assert "units" in str(e.value)


def test_accepted_unit_spellings(bad_dir, cmfd_dir):
    for var, units in (("shum", "1"), ("shum", "kg/kg"), ("wind", "m/s"), ("lrad", "W/m2"),
                       ("prec", "mm/h")):
        with netCDF4.Dataset(path_of(bad_dir, var, "1979-01"), "r+") as nc:
            nc.variables[var].units = units
    a = open_cmfd(bad_dir, "1979-01", "1979-01")
    b = open_cmfd(cmfd_dir, "1979-01", "1979-01")
    for var in VARIABLES:
        np.testing.assert_array_equal(a[var].values, b[var].values)


def test_grid_not_a_cmfd_subgrid(bad_dir):
    p = path_of(bad_dir, "lrad", "1979-01")
    with netCDF4.Dataset(p, "r+") as nc:
        nc.variables["lon"][:] = nc.variables["lon"][:] + 0.05
    with pytest.raises(InputError) as e:
        open_cmfd(bad_dir, "1979-01", "1979-01")
    assert e.value.path == str(p) and e.value.field == "longitude"
    assert abs(e.value.value - 90.10) < 1e-4 and "lrad" in str(e.value)
    with pytest.raises(InputError):
        read_all(bad_dir)


def test_grid_differs_between_files(bad_dir, base_ds):
    feb = base_ds.sel(time=slice("1979-02-01", "1979-02-28T21:00")).isel(lon=slice(1, None))
    for p in files_of(bad_dir, "pres"):
        if "197902" in p.name:
            p.unlink()
    write_cmfd(feb[["pres"]], bad_dir, scheme="ITPCAS")
    p = path_of(bad_dir, "pres", "1979-02")
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path == str(p) and e.value.field == "pres"
        assert "grid differs" in str(e.value) and e.value.value == "1979-02"


@pytest.mark.parametrize("damage,reason", [("shift", "not 3 h"), ("swap", "not increasing"),
                                           ("truncate", "missing")])
def test_bad_time_axis(bad_dir, base_ds, damage, reason):
    p = path_of(bad_dir, "srad", "1979-02")
    if damage == "truncate":        # last day missing
        p.unlink()
        feb = base_ds.sel(time=slice("1979-02-01", "1979-02-27T21:00"))
        write_cmfd(feb[["srad"]], bad_dir, scheme="ITPCAS")
        bad_time = "1979-02-27T21:00:00"
    else:
        with netCDF4.Dataset(p, "r+") as nc:
            t = nc.variables["time"]
            h = t[:].copy()
            if damage == "shift":
                h[10] += 1.0
            else:
                h[10], h[11] = h[11], h[10]
            t[:] = h
        bad_time = "1979-02-02T07:00:00" if damage == "shift" else "1979-02-02T06:00:00"
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path == str(p) and e.value.field == "time"
        assert e.value.value == bad_time and reason in str(e.value) and "srad" in str(e.value)


def test_corrupt_file(bad_dir):
    p = path_of(bad_dir, "lrad", "1979-02")
    p.write_bytes(b"this is not a netCDF file\n" * 10)
    for call in (lambda: open_cmfd(bad_dir, "1979-01", "1979-03"), lambda: read_all(bad_dir)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.path == str(p) and e.value.field == "lrad"
        assert "not a readable netCDF" in str(e.value)


def test_writer_refuses_non_cmfd_grid_and_bad_options(tmp_path, base_ds):
    off = base_ds.assign_coords(lon=base_ds["lon"].values + 0.03)
    with pytest.raises(InputError):
        write_cmfd(off, tmp_path)
    with pytest.raises(ValueError):
        write_cmfd(base_ds, tmp_path, scheme="V9999")
    with pytest.raises(ValueError):
        write_cmfd(base_ds, tmp_path, precip_units="inch/day")
    assert not any(tmp_path.iterdir())
    assert set(SCHEMES) == {"V0106", "ITPCAS", "V0200"}
