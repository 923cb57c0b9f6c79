"""One cell of a gridded run as a legacy point-forcing file (noahtibet export-point).

The exported file must give the legacy driver (and ``noahtibet point``) the
forcing, parameters and state of the gridded cell: read back through the
legacy reader, its forcing equals the gridded run's to the text precision, its
parameters equal the run's exactly, and a point run on it follows the gridded
kernel run of that cell.
"""

from pathlib import Path

import numpy as np
import pytest

from noahtibet import layout
from noahtibet.demo_run import demo_config
from noahtibet.errors import ConfigError, InputError
from noahtibet.export_point import export_cell, legacy_clamps, relative_humidity_percent
from noahtibet.kernel import Calendar, run_columns
from noahtibet.legacy_forcing import (month_interpolation, read_point_file,
                                      specific_humidity_from_rh)
from noahtibet.parameters import column_parameters
from noahtibet.point import column_spec_for_case, initial_state, options_for_case, run_point
from noahtibet.providers import PointFileProvider
from noahtibet.simulation import Simulation, build_model, month_starts, physics_options

SMALL = {"domain": {"max_cells": 6}, "spinup": {"start_year": 1979, "end_year": 1979, "cycles": 1},
         "run": {"start_year": 1979, "end_year": 1980, "product_start_year": 1980}}
YEAR = 1980


def small_config(out, **over):
    sections = {k: dict(v) for k, v in SMALL.items()}
    for k, v in over.items():
        sections.setdefault(k, {}).update(v)
    return demo_config(out, **sections)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export_run")
    cfg = small_config(out)
    Simulation(cfg).run()
    model = build_model(cfg)
    rows, cols = model.simulated.cell_rows_cols
    cell = (float(model.grid.lons[cols[3]]), float(model.grid.lats[rows[3]]))
    return cfg, model, cell, (int(rows[3]), int(cols[3]))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    cfg, model, (lon, lat), _ = run
    path = tmp_path_factory.mktemp("export") / "cell.dat"
    res = export_cell(cfg, lon, lat, YEAR, YEAR, path)
    return res, read_point_file(path)


def provider_forcing(model, rc):
    times, chunks = [], []
    starts = month_starts(YEAR)
    for m in range(12):
        t, f = model.provider.read(np.array([rc[0]]), np.array([rc[1]]), starts[m], starts[m + 1])
        times.append(t)
        chunks.append(f[:, :, 0])
    return np.concatenate(times), np.concatenate(chunks)


def test_relative_humidity_inverts_the_legacy_reader():
    rng = np.random.default_rng(3)
    t = rng.uniform(240.0, 300.0, 1000)
    p = rng.uniform(50000.0, 70000.0, 1000)
    svp = 611.2 * np.exp((2.501e6 - 2317.0 * (t - 273.15)) * (1 / 273.15 - 1 / t) / 461.5)
    qs = 0.622 * svp / (p - 0.378 * svp)
    q = rng.uniform(0.02, 0.98, 1000) * qs
    back = specific_humidity_from_rh(t, p, relative_humidity_percent(t, p, q) * 1e-2)
    np.testing.assert_allclose(back, q, rtol=1e-13)
    low, high = legacy_clamps(t, p, np.concatenate([[1e-7], q[1:-1], [qs[-1]]]))
    assert low[0] and not low[1:].any() and high[-1] and not high[:-1].any()


def test_file_reproduces_the_forcing(run, exported):
    cfg, model, _, rc = run
    res, case = exported
    times, forcing = provider_forcing(model, rc)
    pf = PointFileProvider(res.path, spacing=model.grid.dlon)
    t2, f2 = pf.read([0], [0], month_starts(YEAR)[0], month_starts(YEAR)[-1])
    assert np.array_equal(np.asarray(t2, "datetime64[s]"), np.asarray(times, "datetime64[s]"))
    f2 = f2[:, :, 0]
    fi = {n: layout.index(layout.FORCING, n) for n in layout.FORCING}
    low, high = legacy_clamps(forcing[:, fi["air_temperature"]], forcing[:, fi["pressure"]],
                              forcing[:, fi["specific_humidity"]])
    assert res.humidity_clamped_low == low.sum() and res.humidity_clamped_high == high.sum()
    for name in layout.FORCING:
        a, b = forcing[:, fi[name]], f2[:, fi[name]]
        if name == "specific_humidity":
            a, b = a[~(low | high)], b[~(low | high)]
        # F17.10 fields: 5e-11 absolute; precipitation (exponent form): 11 significant digits
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=6e-11, err_msg=name)


def test_file_reproduces_parameters_and_state(run, exported):
    cfg, model, _, rc = run
    res, case = exported
    lp, cp = column_parameters(model.column_spec(*rc))
    lp2, cp2 = column_parameters(column_spec_for_case(case))
    assert np.array_equal(lp, lp2) and np.array_equal(cp, cp2)
    # the state after 1979 in the run's restart, written in full precision
    from noahtibet.simulation import read_restart

    state, _, _, _ = read_restart(Path(cfg.output.directory) / "restart" / f"transient_{YEAR - 1}.nc")
    rows, cols = model.simulated.cell_rows_cols
    i = int(np.flatnonzero((rows == rc[0]) & (cols == rc[1]))[0])
    assert np.array_equal(case.initial_soil_temperature, state.stc[i])
    assert np.array_equal(case.initial_soil_liquid, state.sh2o[i])
    assert res.state_source.startswith("restart")
    assert options_for_case(case) == physics_options(cfg)


def test_point_run_equals_the_gridded_kernel_run(run, exported):
    """The same column through both drivers: the gridded path (provider stamps, month
    calendar, the run's parameters and monthly fields) and the point path (namelist,
    legacy reader).  Fed the file's forcing values, they agree bit for bit."""
    cfg, model, _, rc = run
    res, case = exported
    times, _ = provider_forcing(model, rc)
    pf = PointFileProvider(res.path, spacing=model.grid.dlon)
    _, file_forcing = pf.read([0], [0], month_starts(YEAR)[0], month_starts(YEAR)[-1])
    fi = layout.index(layout.FORCING, "specific_humidity")

    ptimes, precords, _ = run_point(case)
    calendar = Calendar(*month_interpolation(times))
    lp, cp = column_parameters(model.column_spec(*rc))
    state = initial_state(case, calendar, float(file_forcing[0, fi, 0]), int(case.sfcdif_option))
    grecords = run_columns(file_forcing, calendar, model.monthly(*rc)[None], lp[None], cp[None],
                           state, float(cfg.physics.timestep), physics_options(cfg).as_array(),
                           record=True)
    assert np.array_equal(np.asarray(ptimes, "datetime64[s]"), np.asarray(times, "datetime64[s]"))
    for name in ("stc", "smc", "sh2o"):
        assert np.array_equal(getattr(precords, name), getattr(grecords, name)), name
    assert np.array_equal(precords.output("skin_temperature"), grecords.output("skin_temperature"))


def test_point_run_stays_close_to_the_provider_forcing_run(run, exported):
    """With the provider's own values (the file holds them to 11 digits) the runs differ by
    the model's sensitivity to such perturbations (its thresholds turn a difference in the
    11th digit into a step's delay): thousandths of a kelvin RMS over a year, single steps up
    to tenths of a kelvin near 0 C (README: round-off sensitivity), and no more than the
    same perturbation causes inside the gridded run."""
    cfg, model, _, rc = run
    res, case = exported
    times, forcing = provider_forcing(model, rc)
    fi = {n: layout.index(layout.FORCING, n) for n in layout.FORCING}
    t, p, q = (forcing[:, fi[n]] for n in ("air_temperature", "pressure", "specific_humidity"))
    low, high = legacy_clamps(t, p, q)
    svp = 611.2 * np.exp((2.501e6 - 2317.0 * (t - 273.15)) * (1 / 273.15 - 1 / t) / 461.5)
    qs = 0.622 * svp / (p - 0.378 * svp)
    forcing[:, fi["specific_humidity"]] = np.where(high, 0.99 * qs, np.where(low, 1e-6, q))

    calendar = Calendar(*month_interpolation(times))
    lp, cp = column_parameters(model.column_spec(*rc))

    def gridded(f):
        state = initial_state(case, calendar, float(f[0, fi["specific_humidity"]]),
                              int(case.sfcdif_option))
        return run_columns(f[:, :, None], calendar, model.monthly(*rc)[None], lp[None], cp[None],
                           state, float(cfg.physics.timestep), physics_options(cfg).as_array(),
                           record=True).stc[:, 0]

    _, precords, _ = run_point(case)
    base = gridded(forcing)
    diff = np.abs(precords.stc[:, 0] - base).max()
    rms = np.sqrt(np.mean((precords.stc[:, 0] - base) ** 2))
    noise = 1.0 + 1e-11 * np.random.default_rng(1).standard_normal(forcing.shape)
    pert = gridded(forcing * noise) - base
    self_diff = np.abs(pert).max()
    self_rms = np.sqrt(np.mean(pert ** 2))
    assert rms < 0.01, f"RMS soil-temperature difference {rms:.3g} K"
    assert diff < 0.5, f"largest soil-temperature difference {diff:.3g} K"
    assert rms < 20 * max(self_rms, 1e-8), (rms, self_rms)
    assert diff < 20 * max(self_diff, 1e-6), (diff, self_diff)


def test_cold_state_and_missing_restart(run, tmp_path):
    cfg, model, (lon, lat), _ = run
    res = export_cell(cfg, lon, lat, YEAR, YEAR, tmp_path / "cold.dat", state="cold")
    assert res.state_source.startswith("cold")
    with pytest.raises(InputError, match="no restart"):
        export_cell(cfg, lon, lat, 1985, 1985, tmp_path / "x.dat", state="restart")
    assert not (tmp_path / "x.dat").exists()


@pytest.mark.parametrize("change, match", [
    ({"parameters": {"column": {"z0h_beta": 5.0}}}, "parameters"),
    ({"physics": {"thermal_conductivity": "stock"}}, "thermal_conductivity"),
    ({"physics": {"frozen_soil_hydraulics": "stock"}}, "frozen_soil_hydraulics"),
])
def test_runs_the_legacy_code_cannot_reproduce_are_refused(tmp_path, change, match):
    cfg = small_config(tmp_path / "run", **change)
    with pytest.raises(ConfigError, match=match):
        export_cell(cfg, 85.25, 28.25, YEAR, YEAR, tmp_path / "cell.dat", state="cold")
    assert not (tmp_path / "cell.dat").exists()


def test_cell_outside_the_domain_is_refused(run, tmp_path):
    cfg, model, _, _ = run
    with pytest.raises(ConfigError, match="not a simulated cell"):
        export_cell(cfg, 0.0, 0.0, YEAR, YEAR, tmp_path / "cell.dat", model=model)


def test_command_line(run, tmp_path):
    from noahtibet.cli import main

    cfg, model, (lon, lat), _ = run
    path = tmp_path / "cli.dat"
    toml = tmp_path / "run.toml"
    toml.write_text(f'[domain]\nmax_cells = 6\n[spinup]\nstart_year = 1979\nend_year = 1979\n'
                    f'cycles = 1\n[run]\nstart_year = 1979\nend_year = 1980\n'
                    f'[output]\ndirectory = "{cfg.output.directory}"\n')
    assert main(["export-point", str(toml), "--lon", str(lon), "--lat", str(lat),
                 "--years", "1980", "1980", "-o", str(path)]) == 0
    case = read_point_file(path)
    assert case.records.shape[0] == 366 * 8
    assert path.with_name("cli.dat.json").is_file()


def test_parameters_command_prints_what_the_run_uses(run, tmp_path, capsys):
    """'noahtibet parameters' (the same cell lookup) prints the kernel rows the run builds."""
    from noahtibet.cli import main
    from noahtibet.simulation import build_local_columns

    cfg, model, (lon, lat), rc = run
    toml = tmp_path / "run.toml"
    toml.write_text('[domain]\nmax_cells = 6\n[parameters]\ncolumn = {z0h_beta = 5.5}\n')
    assert main(["parameters", str(toml), "--lon", str(lon), "--lat", str(lat), "--csv"]) == 0
    text = capsys.readouterr().out
    column = dict(line.split(",") for line in
                  text.split("# column parameters\n")[1].split("\n#")[0].splitlines()[1:])
    assert float(column["z0h_beta"]) == 5.5
    layers = [line.split(",") for line in
              text.split("# layer parameters")[1].split("\n#")[0].splitlines()[2:]]
    rows, cols = model.simulated.cell_rows_cols
    idx = int(np.flatnonzero((rows == rc[0]) & (cols == rc[1]))[0])
    from noahtibet import config

    ref = build_local_columns(model, np.array([idx]), config.load(toml))
    assert len(layers) == ref.layer_par.shape[1]
    got = np.array([[float(v) for v in row[3:]] for row in layers])
    np.testing.assert_allclose(got, ref.layer_par[0], rtol=1e-5)
    assert float(column["tbot"]) == pytest.approx(ref.column_par[0, layout.index(
        layout.COLUMN_PARAMETERS, "tbot")], rel=1e-9)
