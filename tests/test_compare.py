"""Legacy comparison (``noahtibet compare-legacy``) on the bundled Tanggula case, the legacy text
output reader/writer, and the comparison of two product sets (``noahtibet compare-products``)."""

import argparse
import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noahtibet.compare import (compare_legacy, compare_products, compare_series,
                               fortran_g, read_legacy_output, read_legacy_text_output,
                               run_noahtibet_point, write_legacy_text_output)
from noahtibet.errors import InputError
from noahtibet.grid import AUTHALIC_RADIUS, LatLonGrid
from noahtibet.legacy_output import read_state_dump

REF = Path(__file__).parents[1] / "validation" / "reference" / "tanggula"
FORCING = REF / "forcing_daily_2007_2010.dat"


# ------------------------------------------------------------------------------------------
# Tanggula: noahtibet against the legacy model's full-precision states
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_case(tmp_path_factory):
    out = tmp_path_factory.mktemp("legacy_cmp")
    cmp = compare_legacy(FORCING, REF / "legacy_default.txt.gz", out)
    return cmp, out


def test_tanggula_reproduces_the_column_model_agreement(default_case):
    cmp, _ = default_case
    acc = cmp.acceptance()
    assert cmp.time.size == 1371 and cmp.steps_only_ours == 0 and cmp.steps_only_legacy == 0
    assert acc["first_steps"] == 30 and acc["first_steps_max_relative_difference"] <= 1e-6
    assert acc["first_steps_ok"] and acc["stc_rmse_ok"]
    assert cmp.max_stc_rmse <= 0.05


def test_per_layer_statistics_equal_independent_computation(default_case):
    cmp, _ = default_case
    legacy = read_state_dump(REF / "legacy_default.txt.gz")
    _, ours, _, _ = run_noahtibet_point(FORCING)
    for name, theirs in (("STC", legacy.stc), ("SMC", legacy.smc), ("SH2O", legacy.sh2o)):
        d = ours[name] - theirs
        assert np.allclose(cmp.stats[name]["rmse"], np.sqrt((d ** 2).mean(axis=0)), rtol=1e-12)
        assert np.allclose(cmp.stats[name]["bias"], d.mean(axis=0), rtol=1e-12, atol=1e-18)
        assert np.array_equal(cmp.stats[name]["max_abs_diff"], np.abs(d).max(axis=0))
        bad = np.abs(d) > 1e-6 * np.abs(theirs)
        first = int(np.flatnonzero(bad.any(axis=1))[0]) if bad.any() else None
        fd = cmp.first_divergence[name]
        assert (fd["step"] if fd else None) == first
    # the first 30 steps, as the column model's test measures them
    a, b = ours["STC"][:30], legacy.stc[:30]
    rel = np.where(a == b, 0, np.abs(a - b) / np.abs(b))
    assert cmp.first_steps_max_rel["STC"] == pytest.approx(rel.max(), abs=1e-20)


def test_report_files(default_case):
    cmp, out = default_case
    html = (out / "legacy_comparison.html").read_text()
    for sid in ("summary", "layers", "single", "series"):
        assert f"<section id='{sid}'>" in html
    assert html.count("data:image/png;base64,") >= 6 and "http" not in html
    assert "met" in html and "not met" not in html
    data = json.loads((out / "legacy_comparison.json").read_text())
    assert data["acceptance"]["max_stc_rmse_K"] == pytest.approx(cmp.max_stc_rmse)
    assert data["legacy_format"] == "state dump"
    table = pd.read_csv(out / "legacy_comparison.csv")
    stc = table[table.variable == "STC"]
    assert list(stc.layer.astype(int)) == list(range(1, 21))
    assert np.allclose(stc.rmse, cmp.stats["STC"]["rmse"])
    assert not list(out.glob(".*.part"))


def test_sfcdif2_case_also_agrees():
    cmp = compare_legacy(FORCING, REF / "legacy_sfcdif2.txt.gz", sfcdif_option=2, write=False)
    acc = cmp.acceptance()
    assert acc["first_steps_ok"] and acc["stc_rmse_ok"], acc
    # and the wrong option is detected at once
    wrong = compare_legacy(FORCING, REF / "legacy_sfcdif2.txt.gz", write=False)
    assert wrong.divergence is not None and wrong.divergence["step"] < 30


def test_first_divergence_finds_a_planted_difference(default_case):
    cmp, _ = default_case
    legacy = read_legacy_output(REF / "legacy_default.txt.gz")
    stc = legacy.stc.copy()
    stc[40, 4] += 1e-3
    planted = dataclasses.replace(legacy, stc=stc)
    _, ours, depths, _ = run_noahtibet_point(FORCING)
    times = legacy.time
    res = compare_series(times, ours, planted, depths=depths)
    assert res.divergence == {"variable": "STC", "step": 40, "time": "2007-05-11T00:00",
                              "layer": 5, "noahtibet": pytest.approx(ours["STC"][40, 4]),
                              "legacy": pytest.approx(stc[40, 4])}


# ------------------------------------------------------------------------------------------
# The legacy text output
# ------------------------------------------------------------------------------------------

G_VALUES = [274.63806174550980, 0.0, 0.1, 0.09999996, 0.0999999996, 999999.4, 999999.6, 1e-7,
            -3.2e-12, 1e36, -1e36, 0.123456789, 12345.678, -271.449, 0.3404, 1e100, 2.5e-101,
            5.55e-5, -0.0004567891]


def test_fortran_g_matches_gfortran(tmp_path):
    gfortran = shutil.which("gfortran")
    if gfortran is None:
        pytest.skip("gfortran not installed")
    rng = np.random.default_rng(3)
    values = G_VALUES + [float(x) for x in
                         rng.normal(size=20) * 10.0 ** rng.integers(-8, 8, size=20)]
    lits = ", &\n  ".join(repr(v).replace("e", "d") + ("" if "e" in repr(v) else "d0")
                          for v in values)
    src = (f"program g\n implicit none\n real(8) :: v({len(values)}) = (/ &\n  {lits} /)\n"
           f" integer :: i\n do i = 1, {len(values)}\n  write(*,'(G15.6)') v(i)\n end do\n"
           "end program\n")
    (tmp_path / "g.f90").write_text(src)
    subprocess.run([gfortran, "g.f90", "-o", "g"], cwd=tmp_path, check=True)
    out = subprocess.run([str(tmp_path / "g")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [fortran_g(v) for v in values]


def _legacy_lines():
    """Three header lines and two rows as the legacy driver writes them (module_ascii_io.F:
    15-character fields; values as gfortran's G15.6 writes them, typed here by hand)."""
    names = ["Times", "STC( 1)", "STC( 2)", "SMC( 1)", "SMC( 2)", "SH2O( 1)", "SH2O( 2)",
             "SNOWH", "SNEQV", "EC", "EDIR", "ETT", "ETP", "SFRUNOFF", "UDRUNOFF"]
    units = ["YYYYMMDD HH:mm", "K", "K"] + ["m{3} m{-3}"] * 4 + ["m", "m"] + ["W m{-2}"] * 4 \
        + ["m s{-1}"] * 2
    fmts = ["I8,1X,2(I2,1X)"] + ["G15.6"] * 14
    rows = [
        ["20070401 00:00 ", "    274.638    ", "    272.924    ", "   0.316813    ",
         "   0.339800    ", "   0.112340    ", "   0.339800    ", "    0.00000    ",
         "    0.00000    ", "    0.00000    ", "    21.4455    ", "    0.00000    ",
         "    96.1210    ", "    0.00000    ", "   0.123400E-07"],
        ["20070402 00:00 ", "    274.364    ", "    272.938    ", "   0.316100    ",
         "   0.339800    ", "   0.101000    ", "   0.339800    ", "   0.120000E-01",
         "   0.250000-100", "  -0.100000E+37", "    19.0000    ", "    0.00000    ",
         "    80.0000    ", "    0.00000    ", "    0.00000    "],
    ]
    assert all(len(f) == 15 for r in rows for f in r)
    head = ["".join(f"{x:<15}" for x in line) for line in (names, units, fmts)]
    return head + ["".join(r) for r in rows]


LEGACY_TEXT = "\n".join(_legacy_lines()) + "\n"


def test_text_output_reader_on_the_legacy_layout(tmp_path):
    p = tmp_path / "case.txt"
    p.write_text(LEGACY_TEXT)
    out = read_legacy_output(p)
    assert out.kind == "text" and out.nlay == 2 and out.time.size == 2
    assert str(out.time[1]) == "2007-04-02T00:00"
    assert out.stc[0].tolist() == [274.638, 272.924]
    assert out.sh2o[1].tolist() == [0.101, 0.3398]
    assert out.scalars["SNOWH"][1] == 0.012 and out.scalars["SNEQV"][1] == 2.5e-101
    assert out.scalars["EC"][1] == -1e36 and out.scalars["UDRUNOFF"][0] == 1.234e-8
    assert out.units["SMC"] == "m{3} m{-3}" and out.units["ETP"] == "W m{-2}"
    bad = LEGACY_TEXT.replace("272.938", "27x.938")
    p.write_text(bad)
    with pytest.raises(InputError, match="is not a number") as e:
        read_legacy_text_output(p)
    assert e.value.line == 5 and e.value.field == "STC( 2)"


def test_text_output_round_trip_and_comparison(tmp_path):
    legacy = read_state_dump(REF / "legacy_default.txt.gz")
    p = tmp_path / "forcing_daily_2007_2010.txt"
    write_legacy_text_output(p, legacy.time, legacy.stc, legacy.smc, legacy.sh2o,
                             {"SNOWH": legacy.snowh, "SNEQV": legacy.sneqv})
    text = read_legacy_output(p)
    assert text.kind == "text" and text.nlay == 20
    assert np.array_equal(text.stc, np.vectorize(lambda v: float(fortran_g(v)))(legacy.stc))
    assert np.all(np.abs(text.stc - legacy.stc) <= 5e-6 * np.abs(legacy.stc))
    cmp = compare_legacy(FORCING, p, write=False)
    acc = cmp.acceptance()
    assert acc["first_steps_ok"] and acc["stc_rmse_ok"]
    ref = compare_legacy(FORCING, REF / "legacy_default.txt.gz", write=False)
    assert np.allclose(cmp.stats["STC"]["rmse"], ref.stats["STC"]["rmse"], atol=1e-3)


def test_bad_legacy_output_is_refused(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello world\n")
    with pytest.raises(InputError, match="neither the legacy text output"):
        read_legacy_output(p)
    legacy = read_legacy_output(REF / "legacy_default.txt.gz")
    short = dataclasses.replace(legacy, stc=legacy.stc[:, :10], smc=legacy.smc[:, :10],
                                sh2o=legacy.sh2o[:, :10])
    _, ours, depths, _ = run_noahtibet_point(FORCING)
    with pytest.raises(InputError, match="10 layers"):
        compare_series(legacy.time, ours, short, depths=depths)


# ------------------------------------------------------------------------------------------
# Product sets
# ------------------------------------------------------------------------------------------

GRID = LatLonGrid(90.25, 30.25, 0.5, 0.5, 8, 6)


def _classes(seed):
    rng = np.random.default_rng(seed)
    c = rng.choice(np.array([1, 2, 3, 255], dtype=np.uint8), size=(2,) + GRID.shape,
                   p=[0.45, 0.3, 0.15, 0.1])
    return c


def _write_nc(path, classes):
    from noahtibet.products import write_class_netcdf

    write_class_netcdf(classes, [2000, 2001], GRID, path,
                       provenance={"configuration": "test", "parameter_set": "test"})


def test_netcdf_products_per_year_matrix_kappa_and_areas(tmp_path):
    a = _classes(1)
    b = a.copy()
    flip = np.random.default_rng(2).random(b.shape) < 0.25
    b[flip] = np.where(b[flip] == 1, 2, np.where(b[flip] == 255, 255, 1))
    _write_nc(tmp_path / "a.nc", a)
    _write_nc(tmp_path / "b.nc", b)
    res = compare_products(tmp_path / "a.nc", tmp_path / "b.nc", tmp_path / "out",
                           labels=("legacy", "noahtibet"))
    assert res["years"] == [2000, 2001] and not res["resampled_b_onto_a"]
    band = AUTHALIC_RADIUS ** 2 * math.radians(0.5) * (
        np.sin(np.radians(GRID.lats + 0.25)) - np.sin(np.radians(GRID.lats - 0.25))) / 1e6
    cms = pd.DataFrame(res["confusion_matrices"], columns=["year", "a", "b", "n"])
    for k, row in enumerate(res["per_year"]):
        cm = np.zeros((3, 3), dtype=int)
        for x, y in zip(a[k].ravel(), b[k].ravel()):
            if x != 255 and y != 255:
                cm[x - 1, y - 1] += 1
        got = cms[cms.year == row["year"]].pivot(index="a", columns="b", values="n").to_numpy()
        assert np.array_equal(got, cm)
        n = cm.sum()
        po, pe = np.trace(cm) / n, np.sum(cm.sum(0) * cm.sum(1)) / n ** 2
        assert row["kappa_3class"] == pytest.approx((po - pe) / (1 - pe))
        assert row["overall_accuracy_3class"] == pytest.approx(po)
        c2 = np.array([[cm[0, 0], cm[0, 1:].sum()], [cm[1:, 0].sum(), cm[1:, 1:].sum()]])
        po2, pe2 = np.trace(c2) / n, np.sum(c2.sum(0) * c2.sum(1)) / n ** 2
        assert row["kappa_binary"] == pytest.approx((po2 - pe2) / (1 - pe2))
        area = band[:, None] * np.ones(GRID.shape)
        pa = float(area[a[k] == 1].sum())
        pb = float(area[b[k] == 1].sum())
        assert row["area_permafrost_km2_legacy"] == pytest.approx(pa)
        assert row["area_permafrost_km2_noahtibet"] == pytest.approx(pb)
        assert row["area_permafrost_km2_difference"] == pytest.approx(pb - pa)
        assert row["pixels_differing"] == int(cm.sum() - np.trace(cm))
    html = (tmp_path / "out" / "products_comparison.html").read_text()
    assert "Difference maps" in html and html.count("data:image/png;base64,") >= 2
    per_year = pd.read_csv(tmp_path / "out" / "products_comparison.csv")
    assert list(per_year.year) == [2000, 2001]


def test_geotiff_set_against_netcdf_and_itself(tmp_path):
    from noahtibet.products import write_class_geotiff

    a = _classes(5)
    _write_nc(tmp_path / "a.nc", a)
    tifs = tmp_path / "tifs"
    for k, y in enumerate((2000, 2001)):
        write_class_geotiff(a[k], GRID, y, tifs / f"legacy_permafrost_{y}.tif",
                            provenance={"configuration": "test", "parameter_set": "x"},
                            cell_size_m=10000.0)
    same = compare_products(tifs, tifs, tmp_path / "o1", write=False)
    assert all(r["kappa_3class"] == 1.0 and r["pixels_differing"] == 0 for r in same["per_year"])
    assert "equal-area" in same["area_note"]
    # the netCDF set (geographic) resampled onto the Albers rasters with the products' own
    # nearest rule reproduces the GeoTIFFs exactly
    mixed = compare_products(tifs, tmp_path / "a.nc", tmp_path / "o2", years=[2001])
    assert mixed["resampled_b_onto_a"] and mixed["years"] == [2001]
    assert mixed["per_year"][0]["kappa_3class"] == 1.0
    assert mixed["per_year"][0]["pixels_differing"] == 0
    assert mixed["per_year"][0]["pixels_compared"] > 100
    assert (tmp_path / "o2" / "products_comparison.html").exists()
    with pytest.raises(InputError, match="1999"):
        compare_products(tifs, tmp_path / "a.nc", tmp_path / "o3", years=[1999])


def test_cli_compare_legacy_and_products(tmp_path):
    from noahtibet.cli_validation import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["compare-legacy", str(FORCING), str(REF / "legacy_sfcdif2.txt.gz"),
                              "--sfcdif-option", "2", "--out", str(tmp_path / "lc")])
    assert args.func(args) == 0
    data = json.loads((tmp_path / "lc" / "legacy_comparison.json").read_text())
    assert data["settings"]["sfcdif_option"] == 2 and data["acceptance"]["stc_rmse_ok"]
    _write_nc(tmp_path / "a.nc", _classes(7))
    args = parser.parse_args(["compare-products", str(tmp_path / "a.nc"), str(tmp_path / "a.nc"),
                              "--out", str(tmp_path / "pc")])
    assert args.func(args) == 0
    assert (tmp_path / "pc" / "confusion_matrices.csv").exists()
