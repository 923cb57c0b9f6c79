"""Validation metrics, observation readers and site matching (noahtibet.validation,
noahtibet.observations).

Every expected value is computed here independently: by hand for the
hand-made temperature profiles and the small confusion matrices, with plain
numpy formulas for the error metrics and areas.
"""

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noahtibet.errors import InputError
from noahtibet.grid import AUTHALIC_RADIUS, LatLonGrid
from noahtibet.observations import (match_sites, read_observation_csv, read_observations,
                                    read_zhao2021_active_layer, read_zhao2021_daily,
                                    read_zhao2021_ground_temperature)
from noahtibet.validation import (PUBLISHED, agreement, area_trend, confusion_matrix,
                                  decadal_trend, map_agreement, pair_metrics,
                                  permafrost_area_km2, profile_metrics, site_trends,
                                  thaw_depth, trend_metrics)

T0 = 273.15
DZ = np.ones(12)                   # 12 layers of 1 m: nodes at 0.5, 1.5, ..., 11.5 m
Z = np.arange(12) + 0.5
N = 365


def year_of(winter, summer, summer_days=(180,)):
    """A year of daily profiles [K]: ``winter`` every day except ``summer`` on summer_days."""
    stc = np.tile(np.asarray(winter, dtype=float), (N, 1))
    for d in summer_days:
        stc[d] = summer
    return stc


# ------------------------------------------------------------------------------------------
# ALT, TTOP, GT10m on hand-made profiles
# ------------------------------------------------------------------------------------------

def test_no_permafrost_gives_gt10m_only():
    # a seasonal cycle over an exactly periodic year around a linear warm profile
    base = T0 + 2.0 + 0.1 * Z
    k = np.arange(N)
    stc = base + 5.0 * np.exp(-Z / 2.0) * np.sin(2 * np.pi * k / N)[:, None]
    m = profile_metrics(stc, DZ)
    assert not m["permafrost"] and m["class"] == 2     # the surface freezes in winter
    assert math.isnan(m["ALT"]) and math.isnan(m["TTOP"])
    assert m["GT10m"] == pytest.approx(2.0 + 0.1 * 10.0, abs=1e-9)   # annual mean at 10 m


def test_permafrost_alt_ttop_gt10m_by_hand():
    winter = T0 - 1.0 - 0.1 * Z                  # frozen everywhere
    summer = T0 + (2.3 - Z)                      # crosses 0 C at exactly 2.3 m
    stc = year_of(winter, summer)
    m = profile_metrics(stc, DZ)
    assert m["permafrost"] and m["class"] == 1
    assert m["ALT"] == pytest.approx(2.3, abs=1e-12)
    # both profiles are linear in depth, so is their annual mean: evaluate it at 2.3 m and 10 m
    mean_at = lambda z: ((N - 1) * (-1.0 - 0.1 * z) + (2.3 - z)) / N   # noqa: E731
    # (temperatures pass through kelvin: round-off of 273.15 + x, hence 1e-9)
    assert m["TTOP"] == pytest.approx(mean_at(2.3), abs=1e-9)
    assert m["GT10m"] == pytest.approx(mean_at(10.0), abs=1e-9)


def test_talik_below_permafrost_keeps_the_permafrost_table():
    talik = Z > 6.0                              # thawed all year below 6 m
    winter = np.where(talik, T0 + 0.5, T0 - 1.0)
    summer = np.where(talik, T0 + 0.5, T0 + (2.3 - Z))
    m = profile_metrics(year_of(winter, summer), DZ)
    assert m["permafrost"]
    assert m["ALT"] == pytest.approx(2.3, abs=1e-12)     # the first crossing, not the talik
    assert m["GT10m"] == pytest.approx(0.5, abs=1e-9)


def test_supra_permafrost_talik_thaw_runs_through_it():
    # winter: frozen surface, an unfrozen layer at 1.5-2.5 m, permafrost below 3 m
    winter = np.array([-5.0, 0.5, 0.2] + [-1.0] * 9) + T0
    # summer: thawed down to the permafrost table at 3.2 m
    summer = np.array([8.0, 3.0, 0.7, -0.3] + [-1.0] * 8) + T0
    m = profile_metrics(year_of(winter, summer), DZ)
    assert m["permafrost"]
    assert m["ALT"] == pytest.approx(2.5 + 0.7 / 1.0, abs=1e-12)
    # winter thaw depth is 0 (frozen surface) although a layer below is unfrozen
    assert thaw_depth(winter, Z) == 0.0


def test_thaw_reaching_the_bottom_is_not_permafrost():
    winter = T0 - 2.0 + 0.0 * Z
    summer = T0 + 1.0 + 0.0 * Z                  # the whole column thaws
    m = profile_metrics(year_of(winter, summer), DZ)
    assert not m["permafrost"] and m["class"] == 2
    assert m["thaw_depth_max"] == pytest.approx(Z[-1])
    assert math.isnan(m["ALT"]) and math.isnan(m["TTOP"])


def test_previous_year_thawed_means_no_permafrost_yet():
    stc = year_of(T0 - 1.0 - 0.1 * Z, T0 + (2.3 - Z))
    m = profile_metrics(stc, DZ, previous_tmax=np.full(12, T0 + 0.5))
    assert not m["permafrost"] and math.isnan(m["ALT"])


def test_thaw_depth_matches_the_kernel_accumulation():
    """The numpy thaw depth equals the kernel's per-step maximum (Tanggula point run)."""
    from noahtibet import layout
    from noahtibet.kernel import AnnualDiagnostics, Calendar, run_columns
    from noahtibet.legacy_forcing import model_forcing, read_point_file
    from noahtibet.parameters import Tables, column_parameters
    from noahtibet.point import column_spec_for_case, initial_state, options_for_case

    case = read_point_file(Path(__file__).parents[1] / "validation" / "reference" / "tanggula"
                           / "forcing_daily_2007_2010.dat")
    pf = model_forcing(case)
    forcing = np.stack([getattr(pf, n) for n in layout.FORCING], axis=1)[:, :, None]
    cal = Calendar(np.asarray(pf.month_prev), np.asarray(pf.month_next),
                   np.asarray(pf.month_weight))
    lp, cp = column_parameters(column_spec_for_case(case), Tables.load())
    monthly = np.zeros((1, len(layout.MONTHLY), 12))
    monthly[0, layout.index(layout.MONTHLY, "green_fraction")] = case.shdfac_monthly
    for name, values in (("lai", case.lai_monthly), ("albedo", case.albedo_monthly)):
        if values is not None:
            monthly[0, layout.index(layout.MONTHLY, name)] = values
    state = initial_state(case, cal, float(pf.specific_humidity[0]), int(case.sfcdif_option))
    diag = AnnualDiagnostics.empty(1, case.n_layers)
    rec = run_columns(forcing, cal, monthly, lp[None], cp[None], state,
                      float(case.model_timestep), options_for_case(case).as_array(), diag,
                      record=True)
    depths = np.cumsum(case.layer_thickness) - 0.5 * np.asarray(case.layer_thickness)
    ours = thaw_depth(rec.stc[:, 0, :], depths)
    assert ours.max() > 0.5                         # it does thaw
    assert ours.max() == pytest.approx(diag.thaw_depth_max[0], rel=1e-12)


# ------------------------------------------------------------------------------------------
# Error metrics and trends
# ------------------------------------------------------------------------------------------

def test_pair_metrics_by_hand_and_nan_pairs_excluded():
    obs = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 7.0])
    sim = np.array([1.5, 1.5, 3.5, 5.0, 9.0, np.nan])
    m = pair_metrics(obs, sim)
    d = np.array([0.5, -0.5, 0.5, 1.0])
    assert m["n"] == 4
    assert m["bias"] == pytest.approx(0.375)
    assert m["mae"] == pytest.approx(0.625)
    assert m["rmse"] == pytest.approx(math.sqrt(np.sum(d ** 2) / 4))
    assert m["r"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3.5, 5.0])[0, 1])
    assert pair_metrics([1.0], [np.nan])["n"] == 0


def test_decadal_trend_and_minimum_years():
    years = np.arange(2000, 2010)
    assert decadal_trend(years, 3.0 + 0.05 * (years - 2000)) == pytest.approx(0.5)
    assert math.isnan(decadal_trend(years[:4], years[:4] * 1.0))        # < 5 years
    rng = np.random.default_rng(1)
    y = rng.normal(size=10)
    slope = np.polyfit(years, y, 1)[0]                                   # independent fit
    assert decadal_trend(years, y) == pytest.approx(10 * slope)


def test_site_trends_and_trend_rmse():
    rows = []
    for site, (so, ss) in {"A": (0.10, 0.30), "B": (-0.20, -0.10), "C": (0.0, 0.4)}.items():
        for y in range(2001, 2008):
            rows.append((site, "ALT", y, 1 + so * (y - 2000) / 10, 1 + ss * (y - 2000) / 10))
    rows.append(("D", "ALT", 2001, 1.0, 1.0))                           # too short: left out
    pairs = pd.DataFrame(rows, columns=["site", "variable", "year", "obs", "sim"])
    t = site_trends(pairs)
    assert list(t["site"]) == ["A", "B", "C"]
    assert np.allclose(t["obs_trend"], [0.10, -0.20, 0.0])
    assert np.allclose(t["sim_trend"], [0.30, -0.10, 0.4])
    tm = trend_metrics(t)
    assert tm["ALT"]["n"] == 3
    assert tm["ALT"]["rmse"] == pytest.approx(math.sqrt((0.2 ** 2 + 0.1 ** 2 + 0.4 ** 2) / 3))
    assert tm["TTOP"]["n"] == 0


def test_published_figures():
    assert PUBLISHED["ALT"] == {"rmse": 0.68, "n": 83, "trend_rmse": 0.08}
    assert PUBLISHED["TTOP"] == {"rmse": 0.41, "n": 83, "trend_rmse": 0.36}
    assert PUBLISHED["GT10m"] == {"rmse": 1.30, "n": 291, "trend_rmse": 0.64}


# ------------------------------------------------------------------------------------------
# Map agreement
# ------------------------------------------------------------------------------------------

def test_kappa_on_a_hand_computed_matrix_with_masked_cells_excluded():
    # reference/simulated pairs giving C = [[20, 5], [10, 15]] (1 permafrost, 2 not)
    ref = np.array([1] * 25 + [2] * 25)
    sim = np.array([1] * 20 + [2] * 5 + [1] * 10 + [2] * 15)
    # cells that must not count: no data in either map, or masked out
    ref = np.concatenate([ref, [255, 1, 0, 1, 2]])
    sim = np.concatenate([sim, [1, 255, 1, 2, 1]])
    mask = np.ones(ref.size, dtype=bool)
    mask[-2:] = False
    cm = confusion_matrix(ref, sim, (1, 2), mask=mask)
    assert cm.tolist() == [[20, 5], [10, 15]]
    a = agreement(cm)
    # p_o = 35/50; p_e = (25*30 + 25*20)/50^2 = 0.5; kappa = (0.7 - 0.5)/(1 - 0.5)
    assert a["overall_accuracy"] == pytest.approx(0.7)
    assert a["kappa"] == pytest.approx(0.4)
    # Pontius & Millones: Q = (|0.5-0.6| + |0.5-0.4|)/2; A = (2*0.1 + 2*0.1)/2
    assert a["quantity_disagreement"] == pytest.approx(0.1)
    assert a["allocation_disagreement"] == pytest.approx(0.2)
    assert a["quantity_disagreement"] + a["allocation_disagreement"] == pytest.approx(
        1 - a["overall_accuracy"])


def test_three_class_agreement_and_binary_merge():
    ref = np.array([[1, 1, 2, 3], [2, 3, 3, 255]], dtype=np.uint8)
    sim = np.array([[1, 2, 3, 3], [2, 2, 3, 1]], dtype=np.uint8)
    r = map_agreement(ref, sim)
    assert r["classes"]["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 1, 2]]
    # 7 cells: p_o = 4/7; rows (2,2,3)/7, cols (1,3,3)/7
    pe = (2 * 1 + 2 * 3 + 3 * 3) / 49
    assert r["classes"]["kappa"] == pytest.approx((4 / 7 - pe) / (1 - pe))
    assert r["binary"]["confusion_matrix"] == [[1, 1], [0, 5]]
    # weights change the sums, not the exclusion
    w = np.arange(8, dtype=float).reshape(2, 4) + 1
    cmw = confusion_matrix(ref, sim, weights=w)
    assert cmw[0, 0] == 1.0 and cmw[2, 2] == 4.0 + 7.0 and cmw.sum() == w.sum() - 8.0


def test_permafrost_area_on_equal_area_cells_and_trend():
    grid = LatLonGrid(90.25, 30.25, 0.5, 0.5, 4, 3)
    classes = np.array([[1, 1, 2, 255], [3, 1, 1, 1], [2, 2, 2, 1]], dtype=np.uint8)

    def cell_area(lat_c, dlat=0.5, dlon=0.5, n=2001):
        # numerical integral of R^2 cos(lat) dlat dlon (trapezoid), independent of grid.py
        phi = np.radians(np.linspace(lat_c - dlat / 2, lat_c + dlat / 2, n))
        c = np.cos(phi)
        integral = np.sum(0.5 * (c[1:] + c[:-1]) * np.diff(phi))
        return AUTHALIC_RADIUS ** 2 * np.radians(dlon) * integral / 1e6

    expected = 2 * cell_area(30.25) + 3 * cell_area(30.75) + 1 * cell_area(31.25)
    assert permafrost_area_km2(classes, grid) == pytest.approx(expected, rel=1e-9)
    t = area_trend([2000, 2001, 2002, 2003], [100.0, 98.0, 96.0, 94.0])
    assert t["km2_per_decade"] == pytest.approx(-20.0)
    assert t["percent_per_decade"] == pytest.approx(-20.0 / 97.0 * 100)


# ------------------------------------------------------------------------------------------
# Plain CSV
# ------------------------------------------------------------------------------------------

CSV = """# a comment line
# another
site,lat,lon,elevation,year,variable,value,extra
S1,34.5,92.25,4600,2005,ALT,2.1,x
S1,34.5,92.25,4600,2006,alt,-6999,x
S1,34.5,92.25,4600,2006,TTOP,-1.25,x
S2,35.0,93.0,,2005,GT10m,-0.5,
"""


def test_plain_csv(tmp_path):
    p = tmp_path / "obs.csv"
    p.write_text(CSV)
    df = read_observation_csv(p)
    assert list(df["site"]) == ["S1", "S1", "S2"]
    assert list(df["variable"]) == ["ALT", "TTOP", "GT10m"]
    assert df["value"].tolist() == [2.1, -1.25, -0.5]
    assert math.isnan(df["elevation"].iloc[2]) and df["year"].tolist() == [2005, 2006, 2005]
    assert df["source"].iloc[0] == "obs.csv:4"


@pytest.mark.parametrize("bad, line, field, value", [
    ("S1,34.5,92.25,4600,2005,MAGT,2.1", 3, "variable", "MAGT"),
    ("S1,34.5,92.25,4600,2005,ALT,abc", 3, "value", "abc"),
    ("S1,95,92.25,4600,2005,ALT,1", 3, "lat", "95"),
    ("S1,34.5,92.25,4600,20.5,ALT,1", 3, "year", "20.5"),
])
def test_plain_csv_errors_name_line_field_value(tmp_path, bad, line, field, value):
    p = tmp_path / "bad.csv"
    p.write_text("# c\nsite,lat,lon,elevation,year,variable,value\n" + bad + "\n")
    with pytest.raises(InputError) as e:
        read_observation_csv(p)
    assert e.value.line == line and e.value.field == field and e.value.value == value
    assert str(p) in str(e.value)


def test_plain_csv_missing_column_and_moved_site(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("site,lat,lon,year,variable,value\nS,30,90,2000,ALT,1\n")
    with pytest.raises(InputError, match="elevation"):
        read_observation_csv(p)
    p.write_text("site,lat,lon,elevation,year,variable,value\nS,30,90,,2000,ALT,1\n"
                 "S,30.5,90,,2001,ALT,1\n")
    with pytest.raises(InputError, match="one location") as e:
        read_observation_csv(p)
    assert e.value.line == 3


# ------------------------------------------------------------------------------------------
# Zhao et al. (2021) workbooks
# ------------------------------------------------------------------------------------------

DEPTHS = np.array([0.05, 0.5, 1.5, 3.0])
WINTER = np.array([-3.0, -2.0, -1.5, -1.8])
SUMMER = np.array([5.0, 2.0, -1.0, -2.0])      # 0 C between 0.5 m (+2) and 1.5 m (-1)


def _site_days(year, ndays=365):
    import datetime as dt

    days = [dt.datetime(year, 1, 1) + dt.timedelta(days=i) for i in range(ndays)]
    temp = np.tile(WINTER, (ndays, 1))
    for d in range(150, 240):                  # a summer that warms up and cools down
        w = math.sin(math.pi * (d - 150) / 90)
        temp[d] = WINTER + (SUMMER - WINTER) * w
    return days, temp


def _active_layer_workbook(path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sites"
    ws.append(["Site", "Latitude", "Longitude", "Elevation"])
    ws.append(["QT01", 99.0, 99.0, 1.0])        # overridden by the sheet's own metadata
    ws.append(["QT02", 35.5, 93.2, 4700])
    truth = {}
    for site in ("QT01", "QT02"):
        s = wb.create_sheet(site)
        if site == "QT01":
            s.append(["Latitude", 34.75])
            s.append(["Longitude", 92.5])
            s.append(["Elevation", 4650])
            s.append([])
        s.append(["Date", "Ts_5cm", "Ts_50cm", "SM_10cm", "Ts_1.5m", "Remark", "Ts_300cm"])
        rows = []
        for year, ndays in ((2010, 365), (2011, 300)):          # 2011: too few days
            days, temp = _site_days(year, ndays)
            temp = temp.copy()
            if site == "QT02":
                temp = temp + 2.5                                # thaws below the sensors
            temp[10, 1] = np.nan                                 # interior gap
            temp[20, 0] = np.nan                                 # top missing: day unusable
            for d, t in zip(days, temp):
                vals = [(-6999 if np.isnan(v) else float(v)) for v in t]
                s.append([d, vals[0], vals[1], 0.3, vals[2], "ok", vals[3]])
            rows.append((year, temp))
        truth[site] = rows
    wb.save(path)
    return truth


def test_active_layer_workbook(tmp_path):
    p = tmp_path / "al.xlsx"
    truth = _active_layer_workbook(p)
    sites = read_zhao2021_daily(p)
    assert [s.site for s in sites] == ["QT01", "QT02"]
    q1 = sites[0]
    assert (q1.lat, q1.lon, q1.elevation) == (34.75, 92.5, 4650.0)
    assert sites[1].lat == 35.5 and np.allclose(q1.depths, DEPTHS)
    assert q1.dates.size == 665 and np.isnan(q1.temperature[10, 1])
    obs = read_zhao2021_active_layer(p)
    # QT01 2010: ALT is the deepest daily crossing; with SUMMER at the summer's peak
    # (w = 1 at day 195) the crossing is 0.5 + 1.0 * 2/3
    year, temp = truth["QT01"][0]
    daily = []
    for row in temp:
        if np.isnan(row[0]) or np.isnan(row[-1]):
            continue
        ok = ~np.isnan(row)
        z, t = DEPTHS[ok], row[ok]
        if t[0] <= 0:
            daily.append(0.0)
            continue
        k = int(np.argmax(t <= 0))
        daily.append(z[k - 1] + (z[k] - z[k - 1]) * t[k - 1] / (t[k - 1] - t[k]))
    alt = max(daily)
    assert alt == pytest.approx(0.5 + 2.0 / 3.0, abs=1e-3)
    mean = np.nanmean(temp, axis=0)
    ttop = np.interp(alt, DEPTHS, mean)
    got = obs[(obs["site"] == "QT01") & (obs["year"] == 2010)].set_index("variable")["value"]
    assert got["ALT"] == pytest.approx(alt, abs=1e-12)
    assert got["TTOP"] == pytest.approx(ttop, abs=1e-12)
    assert "GT10m" not in got                            # no sensor near 10 m
    assert not ((obs["year"] == 2011).any())             # 300 days < 330
    assert not ((obs["site"] == "QT02") & (obs["variable"] == "ALT")).any()   # thaw to bottom


def test_active_layer_workbook_errors(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "X9"
    ws.append(["Date", "Ts_5cm"])
    ws.append(["2010-01-01", 1.0])
    p = tmp_path / "nolat.xlsx"
    wb.save(p)
    with pytest.raises(InputError, match="X9.*|Latitude") as e:
        read_zhao2021_daily(p)
    assert "X9" in str(e.value) and "Latitude" in str(e.value)
    ws.insert_rows(1, 2)
    ws["A1"], ws["B1"], ws["A2"], ws["B2"] = "Latitude", 30.0, "Longitude", 90.0
    ws.append(["2010-01-02", "warm"])
    wb.save(p)
    with pytest.raises(InputError, match="is not a number") as e:
        read_zhao2021_daily(p)
    assert "sheet 'X9' cell B5" in str(e.value) and e.value.line == 5


def test_ground_temperature_workbook(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "GT"
    ws.append(["Borehole ground temperature, mean annual, C"])
    ws.append(["Site", "Latitude", "Longitude", "Elevation", "Depth (m)", 2005, "2006", 2007])
    ws.append(["CN01", 34.8, 92.9, 4620, 10, -1.2, -6999, -1.0])
    ws.append(["CN02", 35.1, 93.0, 4700, 6, -0.5, -0.4, None])
    ws.append(["CN02", 35.1, 93.0, 4700, 12, -1.1, -1.0, -0.9])
    ws.append(["CN03", 33.0, 91.0, 4500, 15, -2.0, -2.0, -2.0])      # no 10 m: skipped
    p = tmp_path / "gt.xlsx"
    wb.save(p)
    obs = read_zhao2021_ground_temperature(p)
    got = {(r.site, r.year): r.value for r in obs.itertuples()}
    assert set(obs["variable"]) == {"GT10m"}
    # CN02: linear interpolation between 6 m and 12 m at 10 m (weight 4/6)
    assert got == pytest.approx({("CN01", 2005): -1.2, ("CN01", 2007): -1.0,
                                 ("CN02", 2005): -0.5 + (-1.1 + 0.5) * 4 / 6,
                                 ("CN02", 2006): -0.4 + (-1.0 + 0.4) * 4 / 6})
    (tmp_path / "x.csv").write_text(CSV)
    both = read_observations(p, tmp_path / "x.csv")       # a workbook and a CSV together
    assert len(both) == len(obs) + 3
    ws["F3"] = "cold"
    wb.save(p)
    with pytest.raises(InputError, match="sheet 'GT' cell F3"):
        read_zhao2021_ground_temperature(p)


# ------------------------------------------------------------------------------------------
# Site matching
# ------------------------------------------------------------------------------------------

def test_sites_match_containing_or_nearest_simulated_cell(caplog):
    grid = LatLonGrid(90.25, 30.25, 0.5, 0.5, 6, 4)
    rows = np.array([0, 0, 1])
    cols = np.array([0, 1, 1])
    sites = pd.DataFrame({"site": ["in", "masked", "far"],
                          "lat": [30.6, 30.2, 31.9], "lon": [90.7, 91.2, 92.9]})
    with caplog.at_level(logging.WARNING, logger="noahtibet"):
        m = match_sites(sites, grid, rows, cols)
    m = m.set_index("site")
    assert m.loc["in", "cell"] == 2 and not m.loc["in", "masked"]       # row 1, col 1
    # "masked": its cell (row 0, col 2) is not simulated; the nearest simulated is (0, 1)
    assert m.loc["masked", "masked"] and m.loc["masked", "cell"] == 1
    assert "nearest simulated cell (row 0, col 1)" in m.loc["masked", "note"]
    assert any("masked" in r.message or "not simulated" in r.message for r in caplog.records)
    assert m.loc["far", "cell"] == -1 and "not matched" in m.loc["far", "note"]
    # distance: haversine from the site to the cell centre (90.75 E, 30.25 N)
    lat1, lon1, lat2, lon2 = map(math.radians, (30.2, 91.2, 30.25, 90.75))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lon2 - lon1) / 2) ** 2
    assert m.loc["masked", "distance_km"] == pytest.approx(
        2 * AUTHALIC_RADIUS / 1000 * math.asin(math.sqrt(h)))
