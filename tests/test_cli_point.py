"""The ``noahtibet point`` command: netCDF contents, atomic writing, errors."""

import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from noahtibet.cli import main
from noahtibet.legacy_output import read_state_dump

REF = Path(__file__).parents[1] / "validation" / "reference" / "tanggula"
FORCING = REF / "forcing_daily_2007_2010.dat"

EXPECTED = {
    "soil_temperature": ("K", ("time", "layer")),
    "soil_moisture": ("m3 m-3", ("time", "layer")),
    "soil_liquid_water": ("m3 m-3", ("time", "layer")),
    "skin_temperature": ("K", ("time",)),
    "snow_depth": ("m", ("time",)),
    "snow_water_equivalent": ("m", ("time",)),
    "sensible_heat_flux": ("W m-2", ("time",)),
    "latent_heat_flux": ("W m-2", ("time",)),
    "ground_heat_flux": ("W m-2", ("time",)),
    "layer_depth": ("m", ("layer",)),
}


@pytest.fixture(scope="module")
def point_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("point") / "tanggula.nc"
    assert main(["-q", "point", str(FORCING), "--output", str(out)]) == 0
    return out


def test_variables_dimensions_units(point_output):
    with netCDF4.Dataset(point_output) as nc:
        assert nc.dimensions["time"].size == 1371
        assert nc.dimensions["layer"].size == 20
        for name, (units, dims) in EXPECTED.items():
            var = nc.variables[name]
            assert var.units == units, name
            assert var.dimensions == dims, name
            assert var.long_name
        assert nc.Conventions.startswith("CF-")
        assert nc.legacy_quirks == 1


def test_time_stamps_and_state_match_the_legacy_output(point_output):
    legacy = read_state_dump(REF / "legacy_default.txt.gz")
    with netCDF4.Dataset(point_output) as nc:
        times = netCDF4.num2date(nc["time"][:], nc["time"].units, only_use_cftime_datetimes=False)
        stamps = np.array([np.datetime64(t.isoformat(), "m") for t in times])
        assert np.array_equal(stamps, legacy.time)
        stc = nc["soil_temperature"][:]
        assert np.allclose(stc[:30], legacy.stc[:30], rtol=1e-9, atol=0)
        depth = nc["layer_depth"][:]
        assert depth[0] == pytest.approx(0.0225) and depth[-1] == pytest.approx(14.2)


def test_no_partial_file_left_behind(tmp_path):
    out = tmp_path / "x.nc"
    assert main(["-q", "point", str(FORCING), "--output", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nc"]


def test_bad_file_gives_clear_error_and_no_output(tmp_path, capsys):
    text = FORCING.read_text().replace("Soil_type_index = 3", "Soil_type_indx = 3")
    bad = tmp_path / "bad.dat"
    bad.write_text(text)
    out = tmp_path / "out.nc"
    assert main(["point", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.dat" in err and "line 22" in err and "Soil_type_indx" in err
    assert not out.exists()


def test_console_script_runs(tmp_path):
    out = tmp_path / "y.nc"
    proc = subprocess.run([sys.executable, "-m", "noahtibet.cli", "-q", "point", str(FORCING),
                           "--output", str(out), "--no-legacy-quirks"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with netCDF4.Dataset(out) as nc:
        assert nc.legacy_quirks == 0
