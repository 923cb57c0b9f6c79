"""Tests of the legacy point-forcing reader, the legacy forcing preparation and the tables."""

from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from noahtibet.errors import ConfigError, InputError
from noahtibet.legacy_forcing import (
    RECORD_FIELDS,
    model_forcing,
    month_d,
    month_interpolation,
    read_point_file,
    simulation_times,
    specific_humidity_from_rh,
)
from noahtibet.tables import load_general_parameters, load_soil_table, load_veg_table

REF = Path(__file__).parents[1] / "validation" / "reference"
DAILY = REF / "tanggula" / "forcing_daily_2007_2010.dat"
HOURLY3 = REF / "tanggula" / "forcing_3hourly_synthetic_2007_2008.dat"
BONDVILLE = REF / "bondville" / "forcing_bondville_1998_30min.dat"
TABLES = Path(__file__).parents[1] / "python" / "noahtibet" / "data" / "tables"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _split(path: Path):
    lines = path.read_text().split("\n")
    if lines[-1] == "":
        lines.pop()
    tag = next(i for i, ln in enumerate(lines) if ln.lower().startswith("<forcing>"))
    return lines[: tag + 1], lines[tag + 1:]


def small_case(n_records: int = 10):
    """Header and the first records of the daily file, enddate = last kept record."""
    head, recs = _split(DAILY)
    recs = recs[:n_records]
    end = recs[-1][:16].replace(" ", "")
    head = set_key(head, "enddate", f'"{end}"')
    return head, recs


def set_key(head, key, value_text):
    out = list(head)
    for i, ln in enumerate(out):
        if re.match(rf"\s*{re.escape(key)}\s*=", ln, re.IGNORECASE):
            out[i] = f"{key} = {value_text}"
            return out
    raise KeyError(key)


def drop_key(head, key):
    return [ln for ln in head if not re.match(rf"\s*{key}\s*=", ln, re.IGNORECASE)]


def key_line(head, key) -> int:
    return next(i + 1 for i, ln in enumerate(head) if re.match(rf"\s*{key}\s*=", ln, re.IGNORECASE))


def set_field(line: str, k: int, text: str) -> str:
    a = 16 + 17 * k
    return line[:a] + text.rjust(17) + line[a + 17:]


def write(tmp_path: Path, head, recs, name="case.dat") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(list(head) + list(recs)) + "\n")
    return p


def check_error(exc: InputError, path: Path, line: int | None, field: str):
    msg = str(exc)
    assert str(path) in msg
    assert exc.path == str(path)
    assert exc.field == field
    assert f"field '{field}'" in msg
    if line is not None:
        assert exc.line == line
        assert f"line {line}," in msg


def expect_error(path: Path, line: int | None, field: str) -> InputError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError) as info:
            read_point_file(path)
    check_error(info.value, path, line, field)
    return info.value


# --------------------------------------------------------------------------------------------
# reading the reference files
# --------------------------------------------------------------------------------------------


def test_read_daily_tanggula():
    case = read_point_file(DAILY)
    assert case.n_layers == 20
    assert case.records.shape == (1371, 8)
    np.testing.assert_array_equal(
        case.soil_class, [7, 7, 7, 7, 9, 7, 7, 7, 7, 7, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13])
    assert case.soil_class_given
    assert case.layer_thickness.sum() == pytest.approx(15.2)
    assert case.startdate == np.datetime64("2007-04-01T00:00")
    assert case.enddate == np.datetime64("2010-12-31T00:00")
    assert case.model_timestep == 86400 and case.forcing_timestep == 86400
    assert case.sfcdif_option == 1 and case.iz0tlnd == 0
    assert case.soil_type_index == 3 and case.vegetation_type_index == 9
    assert case.slope_type_index == 3 and case.glacial_veg_category == 24
    assert case.deep_soil_temperature == 272.43
    assert case.skin_temperature == 271.241
    assert not case.use_monthly_albedo and not case.read_monthly_lai
    assert case.output_dir == "." and case.landuse_dataset == "USGS"
    assert case.latitude == 33.02 and case.longitude == 91.96
    assert case.ice_flag == 0
    assert case.z0brd_monthly.shape == (12,) and case.z0brd_monthly[5] == 0.036
    assert case.forcing_tag_line == 45 and case.record_lines[0] == 46
    assert case.line_of("model_timestep") == 9
    # first record, exactly as the Fortran F17.10 fields read it
    raw = DAILY.read_text().split("\n")[45]
    assert raw[135:152] == " 0.00000000031044"  # the 19-wide field cut to its first 17 characters
    assert case.records[0, 7] == float(" 0.00000000031044") == 3.1044e-10
    assert case.records[0, 4] == 548.22 and case.records[0, 2] == 271.2412439391
    assert case.records_truncated == 1371

    forcing = model_forcing(case)
    assert forcing.nsteps == 1371 and forcing.passes == 1
    assert forcing.time[0] == case.startdate and forcing.time[-1] == case.enddate
    assert forcing.exact.all()
    np.testing.assert_array_equal(forcing.air_temperature, case.records[:, 2])
    np.testing.assert_array_equal(forcing.pressure, case.records[:, 4] * 1.0e2)
    np.testing.assert_array_equal(forcing.precipitation, case.records[:, 7])
    np.testing.assert_array_equal(forcing.relative_humidity, case.records[:, 3] * 1.0e-2)


def test_read_3hourly_is_fast_and_interpolates():
    t0 = time.perf_counter()
    case = read_point_file(HOURLY3)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5
    assert case.records.shape == (10968, 8)
    forcing = model_forcing(case)
    # 2007-04-01 00:00 .. 2008-03-31 00:00 (leap day included), both ends
    assert forcing.nsteps == 365 * 24 + 1
    rec = case.records
    # 01:00 lies 1 h after the 00:00 record and 2 h before the 03:00 record
    k = 1
    assert forcing.time[k] == np.datetime64("2007-04-01T01:00")
    assert forcing.record_before[k] == 0 and forcing.record_after[k] == 1
    w = (180 - 60) / 180
    assert forcing.weight[k] == w
    assert forcing.air_temperature[k] == rec[0, 2] * w + rec[1, 2] * (1.0 - w)
    assert forcing.wind[k] == rec[0, 0] * w + rec[1, 0] * (1.0 - w)
    assert forcing.pressure[k] == (rec[0, 4] * w + rec[1, 4] * (1.0 - w)) * 1.0e2
    assert forcing.relative_humidity[k] == (rec[0, 3] * w + rec[1, 3] * (1.0 - w)) * 1.0e-2
    assert forcing.longwave[k] == rec[0, 6] * w + rec[1, 6] * (1.0 - w)
    # precipitation is carried forward from the earlier record (records 2 -> 3 change it)
    i = np.flatnonzero(rec[1:, 7] != rec[:-1, 7])[0]  # rec[i] != rec[i+1]
    steps = np.flatnonzero((forcing.record_before == i) & ~forcing.exact)
    assert steps.size == 2
    np.testing.assert_array_equal(forcing.precipitation[steps], rec[i, 7])
    # exact matches every third step
    assert forcing.exact[::3].all() and not forcing.exact[1::3].any()
    np.testing.assert_array_equal(forcing.air_temperature[::3], rec[: forcing.nsteps // 3 + 1, 2])


def test_halfway_step_is_mean_of_neighbours(tmp_path):
    head, recs = _split(HOURLY3)
    head = set_key(head, "Noahlsm_Timestep", "5400")  # 1.5 h: every other step is halfway
    p = write(tmp_path, head, recs[:3000])
    case = read_point_file(p)
    forcing = model_forcing(case)
    k = 1
    assert forcing.time[k] == np.datetime64("2007-04-01T01:30")
    assert forcing.weight[k] == 0.5
    rec = case.records
    assert forcing.air_temperature[k] == 0.5 * (rec[0, 2] + rec[1, 2])
    assert forcing.precipitation[k] == rec[0, 7]
    assert forcing.time[3] == np.datetime64("2007-04-01T04:30")
    assert forcing.air_temperature[3] == 0.5 * (rec[1, 2] + rec[2, 2])
    assert forcing.precipitation[3] == rec[1, 7]


def test_read_bondville():
    with pytest.warns(UserWarning, match="Soil_htype"):
        case = read_point_file(BONDVILLE)
    assert case.n_layers == 4
    np.testing.assert_array_equal(case.layer_thickness, [0.1, 0.3, 0.6, 1.0])
    np.testing.assert_array_equal(case.soil_class, [8, 8, 8, 8])
    assert not case.soil_class_given
    assert case.canopy_water == 3.9353027e-04
    assert case.deep_soil_temperature == 285.0
    assert case.longitude == -88.37
    np.testing.assert_array_equal(case.z0brd_monthly[:3], [0.020, 0.020, 0.025])  # comma lists
    assert case.records.shape == (17521, 8)
    assert case.records_truncated == 0
    forcing = model_forcing(case)
    assert forcing.nsteps == 17521 and forcing.exact.all()
    assert forcing.time[-1] == np.datetime64("1999-01-01T06:30")


# --------------------------------------------------------------------------------------------
# humidity and month_d
# --------------------------------------------------------------------------------------------


def _q_by_hand(t, p, rhf):
    lw = 2.501e6 - (4187.0 - 1870.0) * (t - 273.15)
    svp = 611.2 * math.exp(lw * (1.0 / 273.15 - 1.0 / t) / 461.5)
    qs = 0.622 * svp / (p - (1.0 - 0.622) * svp)
    e = p * svp * rhf / (p - svp * (1.0 - rhf))
    q = 0.622 * e / (p - (1.0 - 0.622) * e)
    if q < 1.0e-6:
        q = 1.0e-6
    if q >= qs:
        q = 0.99 * qs
    return q, qs


def test_specific_humidity_hand_computation():
    case = read_point_file(DAILY)
    forcing = model_forcing(case)
    for k in (0, 100, 500):
        t, rh, p = case.records[k, 2], case.records[k, 3], case.records[k, 4]
        q, _ = _q_by_hand(t, p * 1.0e2, rh * 1.0e-2)
        assert forcing.specific_humidity[k] == pytest.approx(q, rel=1e-14)
    # first day by hand: T = 271.2412439391 K, RH = 25.9113713626 %, p = 548.22 hPa
    assert forcing.specific_humidity[0] == pytest.approx(1.5751e-3, rel=1e-4)
    # clamps
    q_dry = specific_humidity_from_rh(250.0, 60000.0, 0.0)
    assert q_dry == 1.0e-6
    q_sat, qs = _q_by_hand(280.0, 90000.0, 1.2)
    assert specific_humidity_from_rh(280.0, 90000.0, 1.2) == pytest.approx(0.99 * qs, rel=1e-14)
    assert q_sat == pytest.approx(0.99 * qs, rel=1e-14)


@pytest.mark.parametrize(
    "date, prev, nxt, f",
    [
        ("2008-02-20", 2, 3, 5 / 29),  # d > 15, leap February
        ("2007-02-20", 2, 3, 5 / 28),
        ("2007-03-01", 2, 3, (28 - 15 + 1) / 28),  # d < 15: prev = February of 2007
        ("2008-03-01", 2, 3, (29 - 15 + 1) / 29),
        ("2007-04-15", 4, 4, 0.0),  # d == 15
        ("2007-01-10", 12, 1, (31 - 15 + 10) / 31),  # wraps to December
        ("2007-12-20", 12, 1, 5 / 31),  # wraps to January
        ("2007-04-30", 4, 5, 15 / 30),
    ],
)
def test_month_interpolation(date, prev, nxt, f):
    for hhmm in ("00:00", "23:30"):  # only the calendar day matters
        p, n, w = month_interpolation(np.array([f"{date}T{hhmm}"], dtype="datetime64[m]"))
        assert (p[0], n[0]) == (prev, nxt)
        assert w[0] == f


def test_month_d_values():
    a12 = np.arange(1.0, 13.0) * 0.01
    p, n, w = month_interpolation(np.array(["2007-03-01", "2007-04-15"], dtype="datetime64[m]"))
    v = month_d(a12, p, n, w)
    assert v[0] == 0.02 * 0.5 + 0.03 * 0.5
    assert v[1] == 0.04
    case = read_point_file(DAILY)
    forcing = model_forcing(case)
    shd = forcing.month_d(case.shdfac_monthly)
    # 2007-04-01: between March 15 (0.07) and April 15 (0.17), f = (31-15+1)/31
    f = 17 / 31
    assert shd[0] == 0.07 * (1.0 - f) + 0.17 * f


# --------------------------------------------------------------------------------------------
# namelist features and loop_for_a_while
# --------------------------------------------------------------------------------------------


def test_namelist_syntax_features(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Soil_htype", "4*7 9 5*7 3*12 7*13  ! repeat counts and a comment")
    head = set_key(head, "Usemonalb", "T")
    head = set_key(head, "Rdlai2d", ".true.")
    head = set_key(head, "output_dir", "'out dir'")
    head = set_key(head, "Albedo_monthly",
                   "0.18 0.17 0.16 0.15\n   0.15, 0.15, 0.15, 0.16,\n 4*0.17")
    head = [ln.replace("Skin_Temperature", "SKIN_temperature") for ln in head]
    p = write(tmp_path, head, recs)
    case = read_point_file(p)
    np.testing.assert_array_equal(case.soil_class, [7] * 4 + [9] + [7] * 5 + [12] * 3 + [13] * 7)
    assert case.use_monthly_albedo and case.read_monthly_lai
    assert case.output_dir == "out dir"
    np.testing.assert_array_equal(case.albedo_monthly[8:], [0.17] * 4)
    assert case.skin_temperature == 271.241


def test_defaults(tmp_path):
    head, recs = small_case()
    for key in ("sfcdif_option", "iz0tlnd", "loop_for_a_while", "output_dir", "Usemonalb"):
        head = drop_key(head, key)
    case = read_point_file(write(tmp_path, head, recs))
    assert case.sfcdif_option == 0 and case.iz0tlnd == 0 and case.loop_for_a_while == 0
    assert case.output_dir == "." and not case.use_monthly_albedo


def test_loop_for_a_while(tmp_path):
    head, recs = small_case(10)  # records 04-01 .. 04-10
    head = set_key(head, "enddate", '"200704100000"')
    head = set_key(head, "loop_for_a_while", "2")
    # the legacy driver needs the file to end at enddate - DT
    case = read_point_file(write(tmp_path, head, recs[:9]))
    times = simulation_times(case)
    assert times[0] == np.datetime64("2007-04-01T00:00")
    assert times[-1] == np.datetime64("2007-04-09T00:00")
    forcing = model_forcing(case)
    assert forcing.passes == 3 and forcing.nsteps == 9
    # a record beyond enddate - DT is refused
    p = write(tmp_path, head, recs, name="loop_bad.dat")
    expect_error(p, len(head) + 10, "date")


# --------------------------------------------------------------------------------------------
# bad inputs: each error names the file, the line and the field
# --------------------------------------------------------------------------------------------


def test_missing_required_key(tmp_path):
    head, recs = small_case()
    head = drop_key(head, "Skin_Temperature")
    end_line = next(i + 1 for i, ln in enumerate(head) if ln.strip() == "/")
    expect_error(write(tmp_path, head, recs), end_line, "Skin_Temperature")


def test_unknown_key(tmp_path):
    head, recs = small_case()
    head = head[:5] + ["  Foo_bar = 3"] + head[5:]
    err = expect_error(write(tmp_path, head, recs), 6, "Foo_bar")
    assert "not a key" in str(err)


def test_array_length_mismatch(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Soil_Temperature", " ".join(["270.0"] * 19))
    p = write(tmp_path, head, recs)
    err = expect_error(p, key_line(head, "Soil_Temperature"), "Soil_Temperature")
    assert err.value == 19
    head, recs = small_case()
    head = set_key(head, "Soil_htype", " ".join(["7"] * 21))
    expect_error(write(tmp_path, head, recs, "b.dat"), key_line(head, "Soil_htype"), "Soil_htype")


def test_non_positive_layer_thickness(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Soil_layer_thickness", "0.045 0.0 " + " ".join(["1.0"] * 18))
    err = expect_error(write(tmp_path, head, recs), key_line(head, "Soil_layer_thickness"),
                       "Soil_layer_thickness")
    assert err.value == 0.0 and "layer 2" in str(err)


def test_timestep_not_multiple_of_60(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Noahlsm_Timestep", "90")
    p = write(tmp_path, head, recs)
    err = expect_error(p, key_line(head, "Noahlsm_Timestep"), "Noahlsm_Timestep")
    assert err.value == 90


def test_snow_density_above_one(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Snow_depth", "0.01")
    head = set_key(head, "Snow_equivalent", "0.02")
    p = write(tmp_path, head, recs)
    err = expect_error(p, key_line(head, "Snow_equivalent"), "Snow_equivalent")
    assert err.value == 0.02


def test_skin_temperature_below_150(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Skin_Temperature", "-1.9")
    p = write(tmp_path, head, recs)
    expect_error(p, key_line(head, "Skin_Temperature"), "Skin_Temperature")


def test_green_max_below_min(tmp_path):
    head, recs = small_case()
    head = set_key(head, "Green_Vegetation_Max", "0.001")
    p = write(tmp_path, head, recs)
    expect_error(p, key_line(head, "Green_Vegetation_Max"), "Green_Vegetation_Max")


def test_bad_namelist_value_type(tmp_path):
    head, recs = small_case()
    head = set_key(head, "sfcdif_option", "1.0")
    p = write(tmp_path, head, recs)
    err = expect_error(p, key_line(head, "sfcdif_option"), "sfcdif_option")
    assert "'1.0'" in str(err)


def test_no_forcing_tag(tmp_path):
    head, recs = small_case()
    head = [ln for ln in head if not ln.lower().startswith("<forcing>")]
    p = write(tmp_path, head, recs)
    expect_error(p, len(head) + len(recs), "<Forcing>")


def test_forcing_tag_is_case_insensitive(tmp_path):
    head, recs = small_case()
    head[-1] = "  <FORCING> upper case"
    assert read_point_file(write(tmp_path, head, recs)).records.shape == (10, 8)


def test_record_missing_field(tmp_path):
    head, recs = small_case()
    recs[3] = recs[3][: 16 + 17 * 6]  # only 6 of 8 fields
    expect_error(write(tmp_path, head, recs), len(head) + 4, "longwave")


def test_record_non_numeric_field(tmp_path):
    head, recs = small_case()
    recs[4] = set_field(recs[4], 4, "abc")
    p = write(tmp_path, head, recs, "forcing.dat")
    err = expect_error(p, len(head) + 5, "pressure")
    line = len(head) + 5
    assert str(err) == (f"{p}, line {line}, field 'pressure': value 'abc' is not a number "
                        "(columns 85-101)")


def test_record_field_without_decimal_point(tmp_path):
    head, recs = small_case()
    recs[2] = set_field(recs[2], 4, "548")
    err = expect_error(write(tmp_path, head, recs), len(head) + 3, "pressure")
    assert err.value == "548" and "decimal point" in str(err)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "1.0e999", "-Infinity"])
def test_record_non_finite(tmp_path, text):
    head, recs = small_case()
    recs[1] = set_field(recs[1], 2, text)
    expect_error(write(tmp_path, head, recs), len(head) + 2, "air_temperature")


def test_record_bad_date(tmp_path):
    head, recs = small_case()
    recs[5] = "2007 04 31" + recs[5][10:]
    expect_error(write(tmp_path, head, recs), len(head) + 6, "date")


def test_time_going_backwards(tmp_path):
    head, recs = small_case()
    recs[4], recs[5] = recs[5], recs[4]
    err = expect_error(write(tmp_path, head, recs), len(head) + 6, "date")
    assert "time going backwards" in str(err)


def test_duplicate_time(tmp_path):
    head, recs = small_case()
    recs = recs[:5] + [recs[4]] + recs[5:]
    err = expect_error(write(tmp_path, head, recs), len(head) + 6, "date")
    assert "duplicate time" in str(err)


def test_first_record_after_startdate(tmp_path):
    head, recs = small_case()
    head = set_key(head, "startdate", '"200703310000"')
    expect_error(write(tmp_path, head, recs), len(head) + 1, "date")


def test_records_do_not_cover_enddate(tmp_path):
    head, recs = small_case()
    head = set_key(head, "enddate", '"200704200000"')
    err = expect_error(write(tmp_path, head, recs), len(head) + len(recs), "date")
    assert "2007-04-20" in str(err)


def test_error_is_value_error_and_picklable(tmp_path):
    import pickle

    head, recs = small_case()
    recs[0] = set_field(recs[0], 0, "x.5")
    p = write(tmp_path, head, recs)
    with pytest.raises(ValueError) as info:
        read_point_file(p)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.field == "wind_speed"
    assert RECORD_FIELDS[0] == "wind_speed"


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def test_tables_packaged():
    soil = load_soil_table()
    assert soil.nclasses == 19 and soil.get("NAME", 13) == "GRAVEL"
    assert soil.get("SATDW", 1) == float("0.112E-4")
    assert soil.row(7)["MAXSMC"] == 0.439
    veg = load_veg_table()
    assert veg.nclasses == 27 and veg.get("NROOT", 9) == 3 and veg.get("EMISSMIN", 1) == 0.88
    gen = load_general_parameters()
    assert gen["SLOPE_DATA"].shape == (9,) and gen["SLOPE_DATA"][2] == 1.0
    assert gen["ZBOT_DATA"] == -40.0 and gen["CSOIL_DATA"] == 2.0e6
    assert gen["BARE"] == 19 and gen["CMCMAX_DATA"] == 0.5e-3
    with pytest.raises(ConfigError):
        soil.get("BB", 20)


def test_tables_user_directory_and_errors(tmp_path):
    for name in ("genparm.csv", "soilparm.csv", "vegparm.csv", "vegparm_globals.csv"):
        (tmp_path / name).write_text((TABLES / name).read_text())
    lines = (tmp_path / "soilparm.csv").read_text().split("\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith("7,"))
    lines[k] = lines[k].replace("0.439", "0.450")
    (tmp_path / "soilparm.csv").write_text("\n".join(lines))
    assert load_soil_table(tmp_path).get("MAXSMC", 7) == 0.45
    lines[k] = lines[k].replace("0.450", "0.4x")
    (tmp_path / "soilparm.csv").write_text("\n".join(lines))
    with pytest.raises(InputError) as info:
        load_soil_table(tmp_path)
    check_error(info.value, tmp_path / "soilparm.csv", k + 1, "MAXSMC")
    with pytest.raises(ConfigError):
        load_veg_table(tmp_path / "nowhere")


def _legacy_sequential(case, nsteps):
    """Step-by-step emulation of the legacy reader's before/after bookkeeping (scalar code)."""
    times = case.records_time.astype(np.int64)
    rec = case.records
    step = case.model_timestep // 60
    t0 = int(np.datetime64(case.startdate, "m").astype(np.int64))
    before = after = None  # record indices
    nxt = 0  # next record to read
    out = []
    for k in range(nsteps):
        now = t0 + k * step
        while not (before is not None and after is not None
                   and times[before] <= now <= times[after]):
            r = nxt
            nxt += 1
            if times[r] > now:
                if after is not None:
                    before = after
                after = r
                break
            before = r
            if times[r] == now:
                break
        if times[before] == now:
            use = (rec[before], None, 1.0)
        elif after is not None and times[after] == now:
            use = (rec[after], None, 1.0)
            before, after = after, None
        else:
            idts = now - times[before]
            idts2 = times[after] - times[before]
            use = (rec[before], rec[after], float(idts2 - idts) / float(idts2))
        xb, xa, f = use
        if xa is None:
            t, p, rh, prcp = xb[2], xb[4] * 1.0e2, xb[3] * 1.0e-2, xb[7]
        else:
            t = xb[2] * f + xa[2] * (1.0 - f)
            p = (xb[4] * f + xa[4] * (1.0 - f)) * 1.0e2
            rh = (xb[3] * f + xa[3] * (1.0 - f)) * 1.0e-2
            prcp = xb[7]
        out.append((t, p, rh, prcp, _q_by_hand(t, p, rh)[0]))
    return np.array(out)


@pytest.mark.parametrize("dt", [3600, 4800, 5400, 10800, 14400])
def test_vectorised_forcing_matches_sequential_reader(tmp_path, dt):
    head, recs = _split(HOURLY3)
    head = set_key(head, "Noahlsm_Timestep", str(dt))
    head = set_key(head, "enddate", '"200705010000"')
    case = read_point_file(write(tmp_path, head, recs[:400]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 4-h step triggers the documented reader quirk
        forcing = model_forcing(case)
    ref = _legacy_sequential(case, forcing.nsteps)
    np.testing.assert_array_equal(forcing.air_temperature, ref[:, 0])
    np.testing.assert_array_equal(forcing.pressure, ref[:, 1])
    np.testing.assert_array_equal(forcing.relative_humidity, ref[:, 2])
    np.testing.assert_array_equal(forcing.precipitation, ref[:, 3])
    np.testing.assert_allclose(forcing.specific_humidity, ref[:, 4], rtol=1e-14, atol=0)


def test_legacy_reader_quirk_with_long_model_step(tmp_path):
    """Model step (4 h) longer than the record spacing (3 h): the legacy reader's stale
    'after becomes before' makes 16:00 interpolate between 09:00 and 18:00."""
    head, recs = _split(HOURLY3)
    head = set_key(head, "Noahlsm_Timestep", "14400")
    head = set_key(head, "enddate", '"200704020000"')
    case = read_point_file(write(tmp_path, head, recs[:20]))
    with pytest.warns(UserWarning, match="non-adjacent records"):
        legacy = model_forcing(case)
    k = 4
    assert legacy.time[k] == np.datetime64("2007-04-01T16:00")
    assert (legacy.record_before[k], legacy.record_after[k]) == (3, 6)
    w = (540 - 420) / 540
    assert legacy.weight[k] == w
    rec = case.records
    assert legacy.air_temperature[k] == rec[3, 2] * w + rec[6, 2] * (1.0 - w)
    assert legacy.precipitation[k] == rec[3, 7]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = model_forcing(case, legacy_reader=False)
    assert (clean.record_before[k], clean.record_after[k]) == (5, 6)
    assert clean.weight[k] == (180 - 60) / 180


def test_point_file_as_forcing_provider():
    """The legacy file through the common provider interface gives the kernel forcing."""
    import numpy as np

    from noahtibet import layout
    from noahtibet.legacy_forcing import model_forcing, read_point_file
    from noahtibet.providers import PointFileProvider

    path = Path(__file__).parents[1] / "validation" / "reference" / "tanggula" / \
        "forcing_3hourly_synthetic_2007_2008.dat"
    provider = PointFileProvider(path)
    assert provider.step_seconds == 3600
    assert provider.grid.nlat == provider.grid.nlon == 1
    r, c = provider.grid.index_of(91.96, 33.02)
    assert (int(r), int(c)) == (0, 0)
    start = np.datetime64("2007-06-01T00:00", "s")
    end = np.datetime64("2007-06-02T00:00", "s")
    times, forcing = provider.read(np.array([0]), np.array([0]), start, end)
    assert forcing.shape == (24, len(layout.FORCING), 1)
    pf = model_forcing(read_point_file(path))
    sel = (pf.time > start) & (pf.time <= end)
    for i, name in enumerate(layout.FORCING):
        assert np.array_equal(forcing[:, i, 0], getattr(pf, name)[sel]), name
    with pytest.raises(InputError, match="covers"):
        provider.read(np.array([0]), np.array([0]), start, np.datetime64("2009-01-01", "s"))
