"""Tests of the SYNTHETIC built-in demo domain (noahtibet.demo).

Determinism (same output twice, subsets and chunks equal the same part of a
bigger request, order independence), plausibility of every static field and
forcing variable, timing conventions of the provider and of the CMFD layout,
and that every column builds valid kernel parameters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from noahtibet import layout
from noahtibet.demo import (
    FIRST_YEAR, LAST_YEAR, LAYER_THICKNESS, SYNTHETIC_NOTICE, WARMING_TREND, DemoDomain,
    DemoForcingProvider, toa_mean_shortwave)
from noahtibet.errors import InputError
from noahtibet.grid import CMFD_GRID
from noahtibet.parameters import Tables, column_parameters
from noahtibet.providers import ForcingProvider

EPOCH = np.datetime64("1979-01-01T00:00:00", "s")
IWIND, ITEMP, IQ, IPRES, ISW, ILW, IPREC = (layout.FORCING.index(n) for n in layout.FORCING)


@pytest.fixture(scope="module")
def demo():
    return DemoDomain()


@pytest.fixture(scope="module")
def provider(demo):
    return DemoForcingProvider(demo)


def interior_cells(demo):
    """Plateau-interior cells: in the domain, not glacier, 32-35.5 N, 80-97 E, 4300-5300 m."""
    lon, lat = np.meshgrid(demo.grid.lons, demo.grid.lats)
    sel = (demo.domain.active & ~demo.glacier_mask & (lat >= 32) & (lat <= 35.5) & (lon >= 80)
           & (lon <= 97) & (demo.elevation > 4300) & (demo.elevation < 5300))
    return np.nonzero(sel)


def sample_cells(demo, every=9):
    r, c = demo.domain.cell_rows_cols
    return r[::every], c[::every]


@pytest.fixture(scope="module")
def year_1998(demo, provider):
    rows, cols = sample_cells(demo)
    times, f = provider.read(rows, cols, np.datetime64("1998-01-01T00"),
                             np.datetime64("1999-01-01T00"))
    return rows, cols, times, f


# -------------------------------------------------------------------------------------------
# geometry
# -------------------------------------------------------------------------------------------

def test_default_grid_is_cmfd_aligned(demo):
    g = demo.grid
    assert (g.lon0, g.lat0, g.nlon, g.nlat, g.dlon) == (73.25, 26.25, 64, 28, 0.5)
    assert g.bounds == pytest.approx((73.0, 26.0, 105.0, 40.0))
    assert g.coarsen_factor(CMFD_GRID) == 5
    assert demo.domain.grid == g and demo.domain.active.shape == g.shape
    assert LAYER_THICKNESS.size == 20 and LAYER_THICKNESS.sum() == pytest.approx(15.2)


def test_finer_spacing_aggregates_to_the_coarse_fields():
    extent = (88.0, 30.0, 92.0, 34.0)
    fine = DemoDomain(spacing=0.1, extent=extent)
    coarse = DemoDomain(spacing=0.5, extent=extent)
    assert fine.grid.shape == (40, 40) and coarse.grid.shape == (8, 8)
    assert fine.grid.coarsen_factor(CMFD_GRID) == 1
    block = fine.elevation.reshape(8, 5, 8, 5).mean(axis=(1, 3))
    np.testing.assert_allclose(block, coarse.elevation, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [{"spacing": 0.25}, {"spacing": 0.0},
                                    {"extent": (73.05, 26.0, 105.0, 40.0)}])
def test_bad_geometry_is_refused(kwargs):
    with pytest.raises(InputError, match="demo"):
        DemoDomain(**kwargs)


# -------------------------------------------------------------------------------------------
# static fields
# -------------------------------------------------------------------------------------------

def test_static_fields_are_deterministic_and_seeded(demo):
    again = DemoDomain()
    other = DemoDomain(seed=7)
    for name in ("elevation", "soil_class", "vegetation_class", "slope_class", "lai_monthly",
                 "green_fraction_monthly", "max_snow_albedo", "deep_temperature",
                 "glacier_mask"):
        np.testing.assert_array_equal(getattr(demo, name), getattr(again, name), err_msg=name)
    np.testing.assert_array_equal(demo.domain.active, again.domain.active)
    assert not np.array_equal(demo.elevation, other.elevation)


def test_terrain_plateau_rims_and_lowlands(demo):
    z, dom = demo.elevation, demo.domain.active
    lon, lat = np.meshgrid(demo.grid.lons, demo.grid.lats)
    assert 0.3 < dom.mean() < 0.7
    assert np.all(z[dom] >= 3000.0) and z.max() < 8000
    ri, ci = interior_cells(demo)
    assert 4300 < np.median(z[ri, ci]) < 5100
    # south of the southern rim: plains; the south rim is higher than the interior
    assert np.all(z[lat < 27.0] < 1000.0)
    assert np.all(z[(lon > 103.5) & (lat < 32.0)] < 2500.0)      # Sichuan-like lowland
    for col in range(demo.grid.nlon // 4, 3 * demo.grid.nlon // 4):
        column = np.where(dom[:, col], z[:, col], -np.inf)
        southern = column[: demo.grid.nlat // 2]
        assert southern.max() > np.median(z[ri, ci]) + 300
    # a Qaidam-like basin below the domain threshold between the northern ranges
    basin = (lon > 92) & (lon < 97) & (lat > 37.0) & (lat < 37.5)
    assert basin.any() and np.all(~dom[basin]) and np.all(z[basin] > 2000)


def test_glaciers_on_the_highest_domain_cells(demo):
    g, dom = demo.glacier_mask, demo.domain.active
    assert 0 < g.sum() < 0.1 * dom.sum()
    assert np.all(dom[g])
    others = dom & ~g
    assert np.median(demo.elevation[g]) > np.percentile(demo.elevation[others], 95)
    assert np.all(demo.vegetation_class[g] == 24)


def test_lakes_grow_monotonically_on_the_plateau(demo):
    masks = [demo.lake_mask(y) for y in range(FIRST_YEAR, LAST_YEAR + 1)]
    counts = [int(m.sum()) for m in masks]
    assert counts[0] >= 3 and counts[-1] > counts[0]
    for earlier, later in zip(masks, masks[1:]):
        assert np.all(later[earlier])                     # a lake cell stays a lake
    final = masks[-1]
    assert np.all(demo.domain.active[final]) and not np.any(demo.glacier_mask[final])
    np.testing.assert_array_equal(demo.lake_mask(1950), masks[0])     # nearest year
    np.testing.assert_array_equal(demo.lake_mask(2030), masks[-1])


def test_soils_layered_with_gravel_and_bedrock(demo):
    soil, dom = demo.soil_class, demo.domain.active
    assert soil.shape == demo.grid.shape + (20,)
    assert np.all((soil >= 1) & (soil <= 19))
    top, bottom = soil[dom][:, 0], soil[dom][:, -1]
    assert np.isin(top, (7, 9, 12)).all() and np.isin(7, top) and np.isin(9, top)
    assert np.isin(bottom, (13, 14)).all()
    assert (bottom == 13).any() and (bottom == 14).any()
    # bedrock only under mountains: cells with bedrock are higher or steeper on average
    rock = dom & (soil[..., -1] == 14)
    assert (np.mean(demo.elevation[rock]) > np.mean(demo.elevation[dom & ~rock])
            or np.mean(demo.slope_class[rock]) > np.mean(demo.slope_class[dom & ~rock]))
    # grain size never gets finer downwards in a non-mountain plateau column
    order = {7: 0, 9: 1, 11: 2, 12: 3, 13: 4, 14: 5}
    plain = dom & ~rock
    ranks = np.vectorize(order.get)(soil[plain])
    assert np.all(np.diff(ranks, axis=1) >= 0)


def test_vegetation_lai_green_fraction(demo):
    dom, veg = demo.domain.active & ~demo.glacier_mask, demo.vegetation_class
    assert set(np.unique(veg[dom])) <= {7, 8, 9, 19}
    assert {7, 19} <= set(np.unique(veg[dom]))
    # meadow where wet, barren where dry or cold
    assert (np.median(demo.annual_precipitation[dom & (veg == 7)])
            > np.median(demo.annual_precipitation[dom & (veg == 8)]))
    lai, gf = demo.lai_monthly, demo.green_fraction_monthly
    assert lai.shape == gf.shape == demo.grid.shape + (12,)
    assert np.all(gf >= 0.0) and np.all(gf <= 1.0) and np.all(lai > 0)
    summer, winter = gf[..., 6], gf[..., 0]
    assert np.all(summer[dom] >= winter[dom]) and summer[dom].mean() > 2 * winter[dom].mean()
    meadow = lai[dom & (veg == 7)]
    assert np.all(meadow[:, 6] == meadow.max(axis=-1)) and np.all(meadow[:, 6] > meadow[:, 0])
    lon, lat = np.meshgrid(demo.grid.lons, demo.grid.lats)
    se = dom & (lon > 95) & (lat < 33)
    nw = dom & (lon < 84) & (lat > 33)
    assert gf[se][:, 6].mean() > gf[nw][:, 6].mean() + 0.2
    assert np.all((demo.max_snow_albedo > 0.4) & (demo.max_snow_albedo < 0.9))


def test_deep_temperature_is_maat_plus_offset(demo):
    offset = demo.deep_temperature - demo.mean_annual_air_temperature
    assert np.allclose(offset, offset.flat[0]) and 0.0 < offset.flat[0] <= 2.0


def test_every_column_builds_valid_kernel_parameters(demo):
    tables = Tables.load()
    rows, cols = np.nonzero(np.ones(demo.grid.shape, bool))
    for r, c in zip(rows[::3], cols[::3]):
        spec = demo.column_spec(r, c)
        layer, column = column_parameters(spec, tables)
        assert layer.shape == (20, len(layout.LAYER_PARAMETERS))
        assert np.all(np.isfinite(layer)) and np.all(np.isfinite(column))
        assert spec.green_fraction_min <= spec.green_fraction_max
        assert 1 <= column[layout.COLUMN_PARAMETERS.index("nroot")] <= 20
        monthly = demo.monthly_parameters(r, c)
        assert monthly.shape == (len(layout.MONTHLY), 12) and np.all(np.isfinite(monthly))
    with pytest.raises(InputError, match="outside"):
        demo.column_spec(demo.grid.nlat, 0)


def test_permafrost_climate_targets(demo):
    maat = demo.mean_annual_air_temperature - 273.15
    ri, ci = interior_cells(demo)
    assert ri.size > 50
    assert -6.0 <= maat[ri, ci].mean() <= -2.0
    land = demo.domain.active & ~demo.glacier_mask
    # proxy of permafrost occurrence (the column model's ground is a few K warmer than
    # the air): mean annual air temperature below -3 C
    assert 0.3 <= np.mean(maat[land] < -3.0) <= 0.6
    p = demo.annual_precipitation[land]
    assert np.percentile(p, 5) >= 80 and np.percentile(p, 95) <= 750
    assert np.percentile(p, 5) <= 150 and np.percentile(p, 95) >= 400


# -------------------------------------------------------------------------------------------
# forcing: determinism
# -------------------------------------------------------------------------------------------

def test_provider_interface(provider, demo):
    assert isinstance(provider, ForcingProvider)
    assert provider.step_seconds == 10800 and provider.grid == demo.grid
    assert "SYNTHETIC" in provider.describe()
    times, f = provider.read([10], [20], "1985-07-01T00", "1985-07-01T12")
    np.testing.assert_array_equal(times, np.arange(np.datetime64("1985-07-01T03", "s"),
                                                   np.datetime64("1985-07-01T15", "s"),
                                                   np.timedelta64(3, "h")))
    assert times.dtype == np.dtype("datetime64[s]")
    assert f.shape == (4, len(layout.FORCING), 1) and f.dtype == np.float64


def test_forcing_same_twice_and_seeded(demo, provider):
    rows, cols = sample_cells(demo, 40)
    a = provider.read(rows, cols, "1990-02-27T00", "1990-03-03T00")[1]
    b = DemoForcingProvider(DemoDomain()).read(rows, cols, "1990-02-27T00", "1990-03-03T00")[1]
    c = DemoForcingProvider(DemoDomain(seed=1)).read(rows, cols, "1990-02-27T00",
                                                      "1990-03-03T00")[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:, ITEMP], c[:, ITEMP])


def test_subsets_chunks_and_order_give_identical_values(demo):
    rows, cols = sample_cells(demo, 15)
    big = DemoForcingProvider(demo)
    t_all, f_all = big.read(rows, cols, "2003-12-20T00", "2004-01-20T00")
    # a subset of cells and of time
    pick = np.array([5, 1, 17, 3])
    t_sub, f_sub = big.read(rows[pick], cols[pick], "2003-12-31T06", "2004-01-02T21")
    i0 = int(np.flatnonzero(t_all == t_sub[0])[0])
    np.testing.assert_array_equal(f_sub, f_all[i0:i0 + t_sub.size][:, :, pick])
    # reversed order of the cells
    _, f_rev = big.read(rows[::-1], cols[::-1], "2003-12-20T00", "2004-01-20T00")
    np.testing.assert_array_equal(f_rev, f_all[:, :, ::-1])
    # tiny blocks of cells and time
    small = DemoForcingProvider(demo, max_points=50)
    _, f_small = small.read(rows, cols, "2003-12-20T00", "2004-01-20T00")
    np.testing.assert_array_equal(f_small, f_all)
    # consecutive requests join seamlessly
    _, f1 = big.read(rows, cols, "2003-12-20T00", "2004-01-01T00")
    _, f2 = big.read(rows, cols, "2004-01-01T00", "2004-01-20T00")
    np.testing.assert_array_equal(np.concatenate([f1, f2]), f_all)


def test_cells_of_different_grids_share_nothing_but_are_valid():
    demo = DemoDomain(spacing=0.1, extent=(90.0, 33.0, 91.0, 34.0))
    _, f = DemoForcingProvider(demo).read(np.arange(10), np.arange(10), "2000-01-01T00",
                                          "2000-01-02T00")
    assert np.all(np.isfinite(f))


def test_bad_requests(provider):
    with pytest.raises(InputError, match="3-hourly"):
        provider.read([0], [0], "1990-01-01T01", "1990-01-02T00")
    with pytest.raises(InputError, match="covers"):
        provider.read([0], [0], "1978-12-31T00", "1979-01-02T00")
    with pytest.raises(InputError, match="covers"):
        provider.read([0], [0], "2018-12-31T00", "2019-01-01T03")
    with pytest.raises(InputError, match="after start"):
        provider.read([0], [0], "1990-01-02T00", "1990-01-01T00")
    with pytest.raises(InputError, match="outside"):
        provider.read([0, 99], [0, 0], "1990-01-01T00", "1990-01-02T00")
    with pytest.raises(InputError, match="not a time"):
        provider.read([0], [0], "yesterday", "1990-01-02T00")


# -------------------------------------------------------------------------------------------
# forcing: plausibility
# -------------------------------------------------------------------------------------------

def saturation_specific_humidity(t, p):
    """Over water or ice (Magnus, WMO-No. 8), a looser independent bound."""
    tc = t - 273.15
    es = np.where(tc >= 0, 611.2 * np.exp(17.62 * tc / (243.12 + tc)),
                  611.2 * np.exp(22.46 * tc / (272.62 + tc)))
    return 0.622 * es / (p - 0.378 * es)


def test_variable_ranges(year_1998, demo):
    rows, cols, _, f = year_1998
    assert np.all(np.isfinite(f))
    assert 215 < f[:, ITEMP].min() and f[:, ITEMP].max() < 310
    assert 0.3 <= f[:, IWIND].min() and f[:, IWIND].max() < 30 and 2.5 < f[:, IWIND].mean() < 5
    assert np.all(f[:, IQ] > 0)
    assert np.all(f[:, IQ] <= saturation_specific_humidity(f[:, ITEMP], f[:, IPRES]) * 1.0001)
    assert 40000 < f[:, IPRES].min() and f[:, IPRES].max() < 72000
    assert 0 <= f[:, ISW].min() and f[:, ISW].max() < 1361 * 1.035
    assert 150 < f[:, ISW].mean() < 280
    assert 50 < f[:, ILW].min() and f[:, ILW].max() < 480 and 180 < f[:, ILW].mean() < 280
    assert f[:, IPREC].min() == 0 and f[:, IPREC].max() < 0.005
    wet = f[:, IPREC] > 0
    assert 0.03 < wet.mean() < 0.35                   # intermittent
    # pressure follows elevation (barometric)
    z = demo.elevation[rows, cols]
    p = f[:, IPRES].mean(axis=0)
    assert np.corrcoef(z, np.log(p))[0, 1] < -0.99
    scale_height = -np.polyfit(z, np.log(p), 1)[0] ** -1
    assert 7000 < scale_height < 9000


def test_temperature_climate_and_lapse_rate(year_1998, demo):
    rows, cols, times, f = year_1998
    t = f[:, ITEMP] - 273.15
    maat = t.mean(axis=0)
    clim = demo.mean_annual_air_temperature[rows, cols] - 273.15
    assert np.all(np.abs(maat - clim) < 1.5)          # one year's anomaly
    slope = np.polyfit(demo.elevation[rows, cols], maat, 1)[0]
    assert -0.008 < slope < -0.004                    # K/m
    month = times.astype("datetime64[M]").astype(int) % 12
    monthly = np.array([t[month == m].mean() for m in range(12)])
    assert np.argmin(monthly) in (11, 0, 1) and np.argmax(monthly) in (5, 6, 7)
    assert 15 < monthly.max() - monthly.min() < 30
    # day-to-day weather: autocorrelated daily means
    daily = t.reshape(-1, 8, t.shape[1]).mean(axis=1)
    anom = daily - np.array([np.convolve(daily[:, i], np.ones(31) / 31, "same")
                             for i in range(daily.shape[1])]).T
    anom = anom[20:-20]
    r1 = np.mean([np.corrcoef(anom[:-1, i], anom[1:, i])[0, 1] for i in range(anom.shape[1])])
    assert 0.4 < r1 < 0.95 and 0.8 < anom.std() < 4.0
    # diurnal cycle: afternoon warmer than night (local solar time from longitude)
    hour = (times.astype("datetime64[h]").astype(int) % 24)[:, None] + demo.grid.lons[cols] / 15
    local = np.mod(hour, 24)
    afternoon = (local > 12) & (local < 18)
    night = (local > 0) & (local < 6)
    assert t[afternoon].mean() > t[night].mean() + 5


def test_plateau_interior_maat_from_the_forcing(demo, provider):
    ri, ci = interior_cells(demo)
    ri, ci = ri[::4], ci[::4]
    _, f = provider.read(ri, ci, "1998-07-01T00", "1999-07-01T00")
    maat = f[:, ITEMP].mean() - 273.15
    assert -6.0 <= maat <= -2.0


def test_precipitation_monsoon(year_1998, demo):
    rows, cols, times, f = year_1998
    mm = f[:, IPREC] * 10800.0
    month = times.astype("datetime64[M]").astype(int) % 12
    monthly = np.array([mm[month == m].sum(axis=0).mean() for m in range(12)])
    assert np.argmax(monthly) in (5, 6, 7)
    assert monthly[5:8].sum() > 0.5 * monthly.sum()
    assert monthly[[11, 0, 1]].sum() < 0.1 * monthly.sum()
    annual = mm.sum(axis=0)
    clim = demo.annual_precipitation[rows, cols]
    assert 0.7 < annual.sum() / clim.sum() < 1.3
    assert np.corrcoef(annual, clim)[0, 1] > 0.8
    lon, lat = demo.grid.lons[cols], demo.grid.lats[rows]
    se = (lon > 94) & (lat < 33)
    nw = (lon < 84) & (lat > 33)
    assert annual[se].mean() > 2.5 * annual[nw].mean()
    assert 50 < np.median(annual) < 700
    # wet days are cloudier: shortwave lower on days with precipitation (summer)
    day = mm.reshape(-1, 8, mm.shape[1]).sum(axis=1)
    sw = f[:, ISW].reshape(-1, 8, mm.shape[1]).mean(axis=1)
    summer = slice(150, 240)
    wet, dry = day[summer] > 1.0, day[summer] == 0.0
    assert sw[summer][wet].mean() < 0.85 * sw[summer][dry].mean()


def spencer_cos_zenith(t_s, lon, lat):
    """Instantaneous cosine of the solar zenith angle (Spencer 1971 / Iqbal 1983)."""
    g = 2 * np.pi * np.mod(t_s / 86400.0, 365.2425) / 365.2425
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    eot = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                    - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g)) / 60.0
    hour = np.mod(t_s / 3600.0, 24.0) + lon / 15.0 + eot
    omega = (hour - 12.0) * np.pi / 12.0
    phi = np.radians(lat)
    return np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(omega)


def test_toa_integral_matches_brute_force():
    t0 = np.array([0.0, 3.1e8, 4.7e8 + 5400, 9.9e8 + 3600 * 7, 1.2e9 + 3600 * 23.5])
    for lon, lat in ((73.25, 26.25), (90.0, 33.0), (104.75, 39.75)):
        exact = toa_mean_shortwave(t0, 10800.0, lon, lat)
        sub = t0[:, None] + (np.arange(10800) + 0.5)[None, :]
        mid = (t0 + 5400.0) / 86400.0
        g = 2 * np.pi * np.mod(mid, 365.2425) / 365.2425
        ecc = (1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g)
               + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g))
        # declination at the window midpoint as in the function, hour angle per second
        cz = spencer_cos_zenith(sub, lon, lat)
        brute = 1361.0 * ecc * np.maximum(cz, 0).mean(axis=1)
        np.testing.assert_allclose(exact, brute, rtol=2e-3, atol=0.5)


def test_shortwave_zero_at_night_and_below_toa(year_1998, demo):
    rows, cols, times, f = year_1998
    ends = (times - EPOCH).astype(np.int64).astype(float)
    lon, lat = demo.grid.lons[cols], demo.grid.lats[rows]
    sub = np.arange(0, 10801, 300.0)
    cz = np.stack([spencer_cos_zenith((ends - 10800 + s)[:, None], lon[None, :],
                                      lat[None, :]) for s in sub])
    night = cz.max(axis=0) < -0.01
    assert night.mean() > 0.3
    sw = f[:, ISW]
    assert np.all(sw[night] == 0.0)
    toa = 1361.0 * 1.035 * np.maximum(cz, 0).mean(axis=0)
    toa_hi = 1361.0 * 1.035 * np.maximum(cz, 0).max(axis=0)
    assert np.all(sw <= toa_hi + 0.01)   # sampled every 5 min: sunset within a sample
    assert np.all(sw <= toa * 1.02 + 2.0)
    assert sw.mean() < 0.85 * toa.mean()


def test_warming_trend_1979_2018(demo, provider):
    ri, ci = interior_cells(demo)
    ri, ci = ri[::25], ci[::25]
    years = np.arange(FIRST_YEAR, LAST_YEAR + 1)
    means = []
    for y in years:
        _, f = provider.read(ri, ci, f"{y}-01-01T00", f"{y + 1}-01-01T00")
        means.append(f[:, ITEMP].mean())
    slope = np.polyfit(years, means, 1)[0] * 10
    assert WARMING_TREND * 10 == pytest.approx(0.35)
    assert 0.22 < slope < 0.48                         # K per decade
    resid = np.array(means) - np.polyval(np.polyfit(years, means, 1), years)
    assert 0.05 < resid.std() < 0.8                    # weather gives year-to-year variability


# -------------------------------------------------------------------------------------------
# CMFD layout
# -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def december(demo):
    return demo.cmfd_dataset("1998-12", "1998-12", bbox=(85.0, 30.0, 95.0, 35.0))


def test_cmfd_dataset_layout_and_notice(december, demo):
    ds = december
    assert set(ds.data_vars) == {"temp", "pres", "shum", "wind", "srad", "lrad", "prec"}
    assert ds["temp"].dims == ("time", "lat", "lon")
    assert ds.sizes["time"] == 31 * 8
    assert np.all(np.diff(ds["lat"].values) > 0)
    assert ds["lon"].values[0] >= 85.0 and ds["lon"].values[-1] <= 95.0
    assert ds["time"].values[0] == np.datetime64("1998-12-01T00")
    assert ds["time"].values[-1] == np.datetime64("1998-12-31T21")
    units = {"temp": "K", "pres": "Pa", "shum": "kg kg-1", "wind": "m s-1", "srad": "W m-2",
             "lrad": "W m-2", "prec": "kg m-2 s-1"}
    for name, u in units.items():
        assert ds[name].attrs["units"] == u
        assert "SYNTHETIC" in ds[name].attrs["long_name"]
    assert ds.attrs["synthetic_notice"] == SYNTHETIC_NOTICE
    assert "SYNTHETIC" in ds.attrs["title"] and "SYNTHETIC" in SYNTHETIC_NOTICE


def test_cmfd_dataset_agrees_with_the_provider(december, demo, provider):
    ds = december
    lat, lon = ds["lat"].values, ds["lon"].values
    rr, cc = demo.grid.index_of(*np.meshgrid(lon, lat)[::1])
    rows, cols = rr.ravel(), cc.ravel()
    times, f = provider.read(rows, cols, "1998-11-30T21", "1998-12-31T21")
    assert times[0] == ds["time"].values[0]
    n = times.size
    for name, i in (("temp", ITEMP), ("pres", IPRES), ("shum", IQ), ("wind", IWIND),
                    ("prec", IPREC)):
        np.testing.assert_array_equal(ds[name].values.reshape(n, -1), f[:, i], err_msg=name)
    # radiation: the centred 3-h means and the step means describe one series; over
    # stamps 1998-12-01T21 .. 1998-12-31T21 the two sums differ only by two half
    # windows that lie in the night here, so shortwave sums agree exactly
    k0 = 7
    srad = ds["srad"].values.reshape(n, -1)[k0:]
    assert np.allclose(srad.sum(axis=0), f[k0:, ISW].sum(axis=0), rtol=1e-12, atol=1e-6)
    lrad = ds["lrad"].values.reshape(n, -1)
    np.testing.assert_allclose(lrad.mean(axis=0), f[:, ILW].mean(axis=0), rtol=0.01)
    assert not np.allclose(srad, f[k0:, ISW])          # but they are shifted by 1.5 h
    # timing: a CMFD record is dark when the 3 h centred on its stamp are, the provider's
    # step when the 3 h before its end are
    stamps = (times - EPOCH).astype(np.int64).astype(float)
    lon2, lat2 = np.meshgrid(lon, lat)
    sub = np.arange(-5400.0, 5401.0, 300.0)
    cz_centred = np.max([spencer_cos_zenith((stamps + s)[:, None], lon2.ravel()[None, :],
                                            lat2.ravel()[None, :]) for s in sub], axis=0)
    cz_before = np.max([spencer_cos_zenith((stamps - 5400 + s)[:, None], lon2.ravel()[None, :],
                                           lat2.ravel()[None, :]) for s in sub], axis=0)
    srad_all = ds["srad"].values.reshape(n, -1)
    assert np.all(srad_all[cz_centred < -0.01] == 0.0)
    assert np.all(f[:, ISW][cz_before < -0.01] == 0.0)
    assert np.any(srad_all[cz_before < -0.01] > 1.0)   # the windows really differ


def test_cmfd_dataset_bad_months(demo):
    with pytest.raises(InputError, match="within 1979-01"):
        demo.cmfd_dataset("1978-12", "1979-01")
    with pytest.raises(InputError, match="before start"):
        demo.cmfd_dataset("1990-05", "1990-04")


def test_speed_one_year_400_cells(demo, provider):
    import time
    r, c = demo.domain.cell_rows_cols
    sel = np.linspace(0, r.size - 1, 400).astype(int)
    t = time.perf_counter()
    provider.read(r[sel], c[sel], "2010-01-01T00", "2011-01-01T00")
    assert time.perf_counter() - t < 4.0
    assert math.isfinite(t)
