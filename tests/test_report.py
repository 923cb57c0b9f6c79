"""``noahtibet report``: built from a small real demo run (12 cells, 2005-2012) with the demo's
truth (reference map 2010 and observation sites); every number checked against an independent
computation from the run's files; rendered in a real (headless) browser."""

import argparse
import json
import math
import shutil
import subprocess
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from noahtibet.demo import LAYER_THICKNESS
from noahtibet.demo_run import demo_config
from noahtibet.demo_truth import make_truth
from noahtibet.errors import InputError
from noahtibet.grid import AUTHALIC_RADIUS
from noahtibet.report import SECTIONS, build_report
from noahtibet.simulation import Simulation

T0 = 273.15


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_run") / "run"
    cfg = demo_config(out, domain={"max_cells": 12},
                      spinup={"start_year": 1979, "end_year": 1979, "cycles": 1},
                      run={"start_year": 2005, "end_year": 2012, "product_start_year": 2006},
                      output={"cell_size_m": 25000.0})
    make_truth(cfg)
    Simulation(cfg).run()
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    return build_report(run_dir)


def _annual(run_dir, year):
    with netCDF4.Dataset(run_dir / "annual" / f"annual_{year}.nc") as nc:
        nc.set_auto_mask(False)
        return {k: np.array(nc[k][:]) for k in nc.variables}


def _grid_lat(run_dir):
    with netCDF4.Dataset(run_dir / "products" / "noahtibet_frozen_ground.nc") as nc:
        return np.array(nc["lat"][:]), np.array(nc["lon"][:])


def test_every_section_present_and_self_contained(report):
    html = report.html.read_text()
    for sid, title in SECTIONS:
        assert f"<section id='{sid}'>" in html, sid
        assert title in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert html.count("src='data:image/png;base64,") >= 7
    present = {s.id: s.present for s in report.sections}
    assert all(present[s] for s in ("overview", "maps", "area", "reference", "sites", "trends",
                                    "spinup", "provenance"))
    assert not present["calibration"] and not present["ensemble"]
    assert "No calibration in this run directory" in html
    for v in ("ALT", "TTOP", "GT10m"):
        assert f"<td class='l'>{v}</td>" in html
    for pub in ("0.680", "0.410", "1.300", "0.080", "0.360", "0.640"):
        assert pub in html                         # published figures beside ours
    out = report.html.parent
    for name in ("metrics.json", "metrics.csv", "permafrost_area.csv", "site_pairs.csv",
                 "site_trends.csv", "site_matches.csv", "map_agreement.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.part"))           # nothing half-written left behind


def test_area_equals_independent_computation(run_dir, report):
    lat, _ = _grid_lat(run_dir)
    d = math.radians(0.5)
    band = AUTHALIC_RADIUS ** 2 * d * (np.sin(np.radians(lat + 0.25)) -
                                       np.sin(np.radians(lat - 0.25))) / 1e6
    table = pd.read_csv(report.html.parent / "permafrost_area.csv")
    for row in table.itertuples():
        cls = _annual(run_dir, row.year)["frozen_ground_class"]
        expected = float(np.sum((cls == 1) * band[:, None]))
        assert expected > 0
        assert row.permafrost_area_km2 == pytest.approx(expected, abs=1e-3)
    m = json.loads((report.html.parent / "metrics.json").read_text())
    years = [int(y) for y in m["permafrost_area_km2"] if int(y) >= 2006]
    areas = [m["permafrost_area_km2"][str(y)] for y in years]
    assert m["area_trend"]["km2_per_decade"] == pytest.approx(10 * np.polyfit(years, areas, 1)[0],
                                                              abs=1e-6)


def test_site_values_and_metrics_equal_independent_computation(run_dir, report):
    pairs = pd.read_csv(report.html.parent / "site_pairs.csv")
    obs = pd.read_csv(run_dir / "truth" / "observations.csv", comment="#")
    assert len(pairs) == len(obs[obs["year"].between(2005, 2012)])
    depths = np.cumsum(LAYER_THICKNESS) - 0.5 * LAYER_THICKNESS
    lat, lon = _grid_lat(run_dir)
    checked = 0
    for year, g in pairs.groupby("year"):
        a = _annual(run_dir, year)
        for r in g.itertuples():
            o = obs[(obs.site == r.site) & (obs.year == year) & (obs.variable == r.variable)]
            assert r.obs == pytest.approx(float(o["value"].iloc[0]))
            c = r.cell
            row, col = a["cell_row"][c], a["cell_col"][c]
            assert (lat[row], lon[col]) == pytest.approx((o["lat"].iloc[0], o["lon"].iloc[0]))
            pf = a["frozen_ground_class"][row, col] == 1
            alt = a["max_thaw_depth"][c]
            expected = {"ALT": alt if pf else np.nan,
                        "TTOP": np.interp(alt, depths, a["tmean"][c]) - T0 if pf else np.nan,
                        "GT10m": np.interp(10.0, depths, a["tmean"][c]) - T0}[r.variable]
            assert r.sim == pytest.approx(expected, abs=1e-9, nan_ok=True)
            checked += 1
    assert checked > 50
    metrics = pd.read_csv(report.html.parent / "metrics.csv").set_index("variable")
    for v in ("ALT", "TTOP", "GT10m"):
        g = pairs[(pairs.variable == v) & pairs.sim.notna()]
        d = g.sim.to_numpy() - g.obs.to_numpy()
        assert metrics.loc[v, "n"] == len(g) > 0
        assert metrics.loc[v, "rmse"] == pytest.approx(np.sqrt(np.mean(d ** 2)))
        assert metrics.loc[v, "bias"] == pytest.approx(d.mean())
        assert metrics.loc[v, "r"] == pytest.approx(np.corrcoef(g.obs, g.sim)[0, 1])
        assert metrics.loc[v, "published_rmse"] == {"ALT": 0.68, "TTOP": 0.41, "GT10m": 1.30}[v]


def test_reference_agreement_equals_hand_count(run_dir, report):
    import rasterio

    with rasterio.open(run_dir / "truth" / "reference_permafrost_2010.tif") as src:
        ref = src.read(1)[::-1]              # north-up -> latitude ascending
    sim = _annual(run_dir, 2010)["frozen_ground_class"]
    cm = np.zeros((2, 2), dtype=int)
    for r, s in zip(ref.ravel(), sim.ravel()):
        if r in (1, 2, 3) and s in (1, 2, 3):
            cm[0 if r == 1 else 1, 0 if s == 1 else 1] += 1
    m = json.loads((report.html.parent / "metrics.json").read_text())
    b = m["reference"]["agreement"]["binary"]
    assert b["confusion_matrix"] == cm.tolist() and cm.sum() == 12
    n = cm.sum()
    po = np.trace(cm) / n
    pe = np.sum(cm.sum(0) * cm.sum(1)) / n ** 2
    expected = (po - pe) / (1 - pe) if pe < 1 else 1.0
    assert b["kappa"] == pytest.approx(expected)
    assert b["overall_accuracy"] == pytest.approx(po)


def _fabricate_ensemble(run, years=(2010, 2011, 2012), nmember=3):
    """The layout of noahtibet.calibration.ensemble: annual/ensemble_YYYY.nc with every member's
    class per cell, products/noahtibet_ensemble.nc with the probability, member_kappa.csv."""
    from noahtibet.grid import LatLonGrid
    from noahtibet.products import write_class_netcdf

    e = run / "ensemble"
    (e / "annual").mkdir(parents=True)
    grids, probs, member_areas = [], [], {}
    lat, lon = _grid_lat(run)
    for y in years:
        a = _annual(run, y)
        rows, cols = a["cell_row"], a["cell_col"]
        base = a["frozen_ground_class"][rows, cols]
        mc = np.repeat(base[None], nmember, axis=0)
        pf = np.flatnonzero(base == 1)
        for m in range(nmember):
            mc[m, pf[:m]] = 2                    # member m loses m permafrost cells
        with netCDF4.Dataset(e / "annual" / f"ensemble_{y}.nc", "w") as nc:
            nc.createDimension("cell", rows.size)
            nc.createDimension("member", nmember)
            nc.createDimension("lat", lat.size)
            nc.createDimension("lon", lon.size)
            nc.createVariable("member_class", "u1", ("member", "cell"))[:] = mc
            nc.createVariable("cell_row", "i4", ("cell",))[:] = rows
            nc.createVariable("cell_col", "i4", ("cell",))[:] = cols
            nc.createVariable("frozen_ground_class", "u1", ("lat", "lon"))[:] = \
                a["frozen_ground_class"]
        prob = np.full(a["frozen_ground_class"].shape, np.nan)
        prob[rows, cols] = (mc == 1).mean(axis=0)
        grids.append(a["frozen_ground_class"])
        probs.append(prob)
        member_areas[y] = mc
    grid = LatLonGrid(float(lon[0]), float(lat[0]), 0.5, 0.5, lon.size, lat.size)
    write_class_netcdf(np.array(grids), list(years), grid, e / "products" / "noahtibet_ensemble.nc",
                       provenance={"configuration": "{}", "parameter_set": "ensemble"},
                       extra_fields={"permafrost_probability": np.array(probs)})
    (e / "member_kappa.csv").write_text("member,trial,kappa_calibration\n1,3,0.55\n2,4,0.51\n"
                                        "3,1,0.42\n")
    return member_areas, probs[-1]


def test_calibration_and_ensemble_sections_when_present(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report", "restart"))
    (run / "calibration").mkdir()
    kappas = [0.31, 0.42, 0.40, 0.55, 0.51]
    # the columns of noahtibet.calibration's trial table
    # (the last trial failed: no kappa)
    pd.DataFrame({"trial": range(6), "batch": [0, 0, 1, 1, 1, 2], "rank": [5, 3, 4, 1, 2, None],
                  "status": ["ok"] * 5 + ["error"], "kappa": kappas + [None],
                  "best_kappa_so_far": list(np.maximum.accumulate(kappas)) + [0.55],
                  "overall_agreement": [0.7] * 6, "n_cells": [12] * 6,
                  "sbeta": [-2, -2.5, -3, -2.9, -3.1, -1.0], "salp": [2.6, 3, 3.5, 4, 3.9, 1.0],
                  "message": [""] * 5 + ["kernel error"]}).to_csv(
        run / "calibration" / "trials.csv", index=False)
    member_classes, prob = _fabricate_ensemble(run)
    res = build_report(run, tmp_path / "rep")
    present = {s.id: s.present for s in res.sections}
    assert present["calibration"] and present["ensemble"]
    m = res.metrics
    assert m["calibration"]["best_kappa"] == max(kappas) and m["calibration"]["best_trial"] == 3
    assert m["calibration"]["best_parameters"] == {"sbeta": -2.9, "salp": 4.0}
    spread = m["ensemble"]["spread"]
    assert spread["years"] == [2010, 2011, 2012]
    # member areas: independent sum of cell areas (authalic sphere) of the members' permafrost
    lat, _ = _grid_lat(run)
    band = AUTHALIC_RADIUS ** 2 * math.radians(0.5) * (
        np.sin(np.radians(lat + 0.25)) - np.sin(np.radians(lat - 0.25))) / 1e6
    rows = _annual(run, 2012)["cell_row"]
    areas = [float(np.sum(band[rows] * (member_classes[2012][k] == 1))) for k in range(3)]
    got = [m["ensemble"]["members"][f"member {k + 1}"]["2012"] for k in range(3)]
    assert got == pytest.approx(areas) and areas[0] > areas[2]
    assert spread["max"][2] == pytest.approx(max(areas))
    assert m["ensemble"]["uncertain_cells"] == int(np.sum((prob > 0) & (prob < 1))) > 0
    html = res.html.read_text()
    assert "best kappa 0.550" in html and "permafrost probability" in html
    assert "member_kappa.csv" in html


def test_cli_without_observations_or_reference(run_dir, tmp_path):
    from noahtibet.cli_validation import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir), "--out", str(tmp_path / "r"),
                              "--no-observations", "--no-reference", "--years", "2006,2012",
                              "--title", "Test report"])
    assert args.func(args) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<title>Test report</title>" in html and "No observations" in html
    assert "No reference map" in html
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["sites"] is None and m["reference"] is None
    assert m["sections"]["sites"] is False and m["sections"]["maps"] is True
    # several observation files, given before the run directory
    args = parser.parse_args(["report", "--observations", "a.csv", "--observations", "b.xlsx",
                              str(run_dir)])
    assert args.observations == ["a.csv", "b.xlsx"] and args.run_dir == str(run_dir)


def test_configuration_from_geotiff_tags_without_netcdf_product(run_dir, report, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("report", "restart", "truth"))
    (run / "products" / "noahtibet_frozen_ground.nc").unlink()
    res = build_report(run, tmp_path / "rep")
    assert "(tag 'configuration')" in res.metrics["provenance"]["configuration_source"]
    assert res.metrics["permafrost_area_km2"] == report.metrics["permafrost_area_km2"]
    shutil.rmtree(run / "products")
    with pytest.raises(InputError, match="configuration"):
        build_report(run, tmp_path / "rep2")


def test_errors_name_the_problem(run_dir, tmp_path):
    with pytest.raises(InputError, match="annual") as e:
        build_report(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(InputError, match="1999"):
        build_report(run_dir, tmp_path / "x", map_years=[1999])


def _not_blank(png: Path) -> tuple[float, int]:
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    colours = np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0).shape[0]
    return float(img.std()), colours


def test_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    png = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
           "--window-size=1200,3000", report.html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), proc.stderr[-2000:]
    std, colours = _not_blank(png)
    assert std > 0.1 and colours > 200, (std, colours)


def test_water_balance_summary_equals_the_annual_files(run_dir, report):
    m = json.loads((report.html.parent / "metrics.json").read_text())["water_balance"]
    assert sorted(int(y) for y in m) == list(range(2005, 2013))
    for year, row in m.items():
        a = _annual(run_dir, int(year))
        assert row["precipitation"] == pytest.approx(a["precipitation"].mean(), rel=1e-12)
        assert row["water_clamped"] == pytest.approx(a["water_clamped"].mean(), rel=1e-12)
        assert row["max_abs_residual"] == np.abs(a["water_balance_residual"]).max() < 1e-9
    assert "Water balance (mean of cells and years)" in report.html.read_text()
