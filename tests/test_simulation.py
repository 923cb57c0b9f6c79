"""Gridded runs: restarts, rank independence, spin-up convergence, products."""

import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from mpi_support import mpi_available

from noahtibet.demo_run import demo_config
from noahtibet.simulation import Simulation, latest_restart, read_restart

SMALL = {"domain": {"max_cells": 12}, "spinup": {"start_year": 1979, "end_year": 1979,
                                                  "cycles": 2},
         "run": {"start_year": 1979, "end_year": 1981, "product_start_year": 1980}}


def small_config(out, **over):
    sections = {k: dict(v) for k, v in SMALL.items()}
    for k, v in over.items():
        sections.setdefault(k, {}).update(v)
    return demo_config(out, **sections)


def read_outputs(out: Path) -> dict:
    """All numeric content of the annual files and the last restart."""
    result = {}
    for f in sorted((out / "annual").glob("annual_*.nc")) + [latest_restart(out / "restart")]:
        with netCDF4.Dataset(f) as nc:
            nc.set_auto_mask(False)
            for v in nc.variables:
                result[f"{f.name}:{v}"] = np.array(nc[v][:])
    return result


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    sim = Simulation(small_config(out))
    summary = sim.run()
    return out, summary


def test_annual_water_balance_closes(straight_run):
    """Every cell-year: storage change = precipitation - evapotranspiration - runoff -
    drainage + clamped water, to round-off (the terms come from the kernel's sums, the
    storage from the states at the year's ends)."""
    out, summary = straight_run
    names = ("precipitation", "evapotranspiration", "surface_runoff", "drainage",
             "water_clamped", "water_storage_change", "water_balance_residual")
    for f in sorted((out / "annual").glob("annual_*.nc")):
        with netCDF4.Dataset(f) as nc:
            nc.set_auto_mask(False)
            w = {n: np.array(nc[n][:]) for n in names}
            assert nc["water_balance_residual"].units == "m"
        assert np.all(w["precipitation"] > 0.05) and np.all(w["evapotranspiration"] != 0)
        assert np.all(np.abs(w["water_storage_change"]) > 0)
        assert np.abs(w["water_balance_residual"]).max() < 1e-9, f.name
        inflow = (w["precipitation"] - w["evapotranspiration"] - w["surface_runoff"]
                  - w["drainage"] + w["water_clamped"])
        np.testing.assert_allclose(w["water_storage_change"] - w["water_balance_residual"],
                                   inflow, rtol=0, atol=1e-12)
    assert 0 <= summary.max_water_residual_m < 1e-9


def test_products_and_annual_files_exist(straight_run):
    out, summary = straight_run
    assert sorted(p.name for p in (out / "products").glob("*.tif")) == [
        "noahtibet_frozen_ground_1980.tif", "noahtibet_frozen_ground_1981.tif"]
    with netCDF4.Dataset(out / "products" / "noahtibet_frozen_ground.nc") as nc:
        assert list(nc["year"][:]) == [1980, 1981]
        classes = np.array(nc["frozen_ground_class"][:].filled(255))
    assert set(np.unique(classes)) <= {1, 2, 3, 255}
    assert np.sum(classes != 255) == 2 * 12    # the 12 simulated cells, two years
    assert summary.column_steps == 12 * (2 * 2920 + 2920 + 2928 + 2920)


def test_run_split_by_restart_equals_straight_run(tmp_path, straight_run):
    straight, _ = straight_run
    out = tmp_path / "split"
    # stop after the spin-up and the first transient year, as a killed job would
    cfg = small_config(out, run={"end_year": 1979})
    Simulation(cfg).run()
    assert latest_restart(out / "restart").name == "transient_1979.nc"
    cfg_full = small_config(out)
    state, prev, info, extra = read_restart(latest_restart(out / "restart"))
    # restarts carry the digest of the config that wrote them; rewrite it for the full config
    from noahtibet.simulation import config_digest, write_restart
    info["config_digest"] = config_digest(cfg_full)
    write_restart(out / "restart" / "transient_1979.nc", state, prev, info)
    Simulation(cfg_full).run(resume=True)
    assert_same(read_outputs(out), read_outputs(straight))


def test_resume_refuses_a_different_configuration(tmp_path):
    out = tmp_path / "r"
    Simulation(small_config(out, run={"end_year": 1979})).run()
    changed = small_config(out, physics={"surface_exchange": "myj"})
    with pytest.raises(RuntimeError, match="different configuration"):
        Simulation(changed).run(resume=True)


def test_resume_mid_spinup_equals_straight_run(tmp_path, straight_run):
    straight, _ = straight_run
    out = tmp_path / "mid"
    Simulation(small_config(out)).run()
    # pretend the job was killed after spin-up cycle 1: keep only that restart
    for f in (out / "restart").glob("*.nc"):
        if f.name != "spinup_cycle_0001.nc":
            f.unlink()
    shutil.rmtree(out / "annual")
    Simulation(small_config(out)).run(resume=True)
    assert_same(read_outputs(out), read_outputs(straight))


def test_spinup_stops_at_the_first_cycle_below_tolerance(tmp_path):
    # free run: record the per-cycle changes
    free = tmp_path / "free"
    cfg = small_config(free, spinup={"cycles": 5}, run={"end_year": 1979})
    sim = Simulation(cfg)
    sim.run(stages=("spinup",))
    changes = []
    for c in range(1, 6):
        _, _, _, extra = read_restart(free / "restart" / f"spinup_cycle_{c:04d}.nc")
        changes.append(extra["cycle_change"].max())
    assert np.isinf(changes[0]) and all(np.isfinite(changes[1:]))
    # the known answer: with this tolerance the first cycle whose largest change is
    # below it is the cycle with the smallest change (or an earlier one below it)
    tol = float(min(changes[1:])) * 1.0001
    expected = next(c for c in range(2, 6) if changes[c - 1] < tol)
    stop = tmp_path / "stop"
    sim2 = Simulation(small_config(stop, spinup={"cycles": 5, "tolerance": tol},
                                   run={"end_year": 1979}))
    sim2.run(stages=("spinup",))
    assert sim2.summary.spinup_cycles == expected
    assert not (stop / "restart" / f"spinup_cycle_{expected + 1:04d}.nc").exists()
    a, _, _, _ = read_restart(free / "restart" / f"spinup_cycle_{expected:04d}.nc")
    b, _, _, _ = read_restart(stop / "restart" / f"spinup_cycle_{expected:04d}.nc")
    assert np.array_equal(a.stc, b.stc)


def test_unconverged_cells_are_listed(tmp_path):
    out = tmp_path / "u"
    sim = Simulation(small_config(out, spinup={"cycles": 2, "tolerance": 1e-12},
                                  run={"end_year": 1979}))
    sim.run(stages=("spinup",))
    import json
    report = json.loads((out / "spinup_report.json").read_text())
    assert len(report["unconverged_cells"]) == 12
    assert {"column", "lon", "lat", "change_K"} <= set(report["unconverged_cells"][0])


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
@pytest.mark.parametrize("ranks", [2, 3])
def test_results_do_not_depend_on_the_number_of_ranks(tmp_path, straight_run, ranks):
    straight, _ = straight_run
    out = tmp_path / f"mpi{ranks}"
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "from test_simulation import small_config\n"
        "from noahtibet.simulation import Simulation\n"
        "from noahtibet.parallel import get_comm\n"
        "Simulation(small_config(sys.argv[1]), get_comm(True)).run()\n" % str(Path(__file__).parent))
    proc = subprocess.run(["mpiexec", "-n", str(ranks), sys.executable, str(script), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same(read_outputs(out), read_outputs(straight))


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
def test_a_failing_rank_stops_the_job_naming_the_cell(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "from test_simulation import small_config\n"
        "from noahtibet.simulation import Simulation\n"
        "from noahtibet.parallel import get_comm\n"
        "from noahtibet import layout\n"
        "comm = get_comm(True)\n"
        "sim = Simulation(small_config(sys.argv[1]), comm)\n"
        "if comm.rank == 1:\n"
        "    sim.local.state.surface[0, layout.index(layout.SURFACE_STATE, 'snow_depth')] = 1e-9\n"
        "    sim.local.state.surface[0, layout.index(layout.SURFACE_STATE, 'snow_water')] = 1.0\n"
        "sim.run()\n" % str(Path(__file__).parent))
    proc = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "rank 1 of 2 failed" in proc.stderr
    assert "snow density" in proc.stderr and "cell 6 at" in proc.stderr


def test_classify_stage_remakes_the_same_products(tmp_path, straight_run):
    straight, _ = straight_run
    out = tmp_path / "cls"
    shutil.copytree(straight, out)
    for tif in (out / "products").glob("*.tif"):
        tif.unlink()
    (out / "products" / "noahtibet_frozen_ground.nc").unlink()
    sim = Simulation(small_config(out))
    assert sim.classify_products() == [1979, 1980, 1981]
    import rasterio
    for year in (1980, 1981):
        name = f"noahtibet_frozen_ground_{year}.tif"
        with rasterio.open(straight / "products" / name) as a, rasterio.open(out / "products" / name) as b:
            assert np.array_equal(a.read(1), b.read(1))
    with netCDF4.Dataset(straight / "products" / "noahtibet_frozen_ground.nc") as a, \
            netCDF4.Dataset(out / "products" / "noahtibet_frozen_ground.nc") as b:
        assert np.array_equal(a["frozen_ground_class"][:], b["frozen_ground_class"][:])


def test_daily_points_are_written(tmp_path):
    from noahtibet.simulation import build_model
    cfg = small_config(tmp_path / "pts", run={"end_year": 1979})
    model = build_model(cfg)
    rows, cols = model.simulated.cell_rows_cols
    lon, lat = float(model.grid.lons[cols[3]]), float(model.grid.lats[rows[3]])
    cfg = small_config(tmp_path / "pts", run={"end_year": 1979},
                       output={"points": [["site_a", lon, lat], ["far_away", 0.0, 0.0]]})
    straight = small_config(tmp_path / "nopts", run={"end_year": 1979})
    Simulation(cfg).run()
    Simulation(straight).run()
    with netCDF4.Dataset(tmp_path / "pts" / "points" / "points_1979.nc") as nc:
        assert nc.point_names == "site_a"
        t = np.array(nc["soil_temperature"][:])
    assert t.shape == (1, 365, 20)
    # the annual mean of the daily means equals the annual file's mean of that cell
    with netCDF4.Dataset(tmp_path / "pts" / "annual" / "annual_1979.nc") as nc:
        tmean = np.array(nc["tmean"][:])[3]
    assert np.allclose(t[0].mean(axis=0), tmean, atol=1e-9)
    # recording the point does not change any result
    assert_same(read_outputs(tmp_path / "pts"), read_outputs(tmp_path / "nopts"))


def test_forcing_prefetch_gives_identical_results(tmp_path, straight_run):
    straight, _ = straight_run
    out = tmp_path / "prefetch"
    # no spin-up cache, so every month of every cycle is read (ahead) by the thread
    Simulation(small_config(out, forcing={"prefetch": True, "cache_spinup": False})).run()
    assert_same(read_outputs(out), read_outputs(straight))


def test_forcing_prefetch_reads_in_order_in_a_thread_and_raises_when_asked():
    import threading

    from noahtibet.errors import InputError
    from noahtibet.simulation import ForcingSource

    class Provider:
        def __init__(self):
            self.calls = []

        def read(self, rows, cols, start, end):
            self.calls.append((str(start)[:7], threading.current_thread().name))
            if str(start).startswith("1979-03"):
                raise InputError("no file for this month", path="x.nc", field="temp",
                                 value="1979-03")
            return np.array([start]), np.zeros((1, 7, 1))

    p = Provider()
    src = ForcingSource(p, np.array([0]), np.array([0]), prefetch=True)
    try:
        assert src.month(1979, 1, following=(1979, 2))[0][0] == np.datetime64("1979-01-01")
        src.month(1979, 2, following=(1979, 3))       # 1979-03 fails in the thread: not yet
        src.settle()
        with pytest.raises(InputError, match="1979-03"):
            src.month(1979, 3, following=(1979, 4))
        src.month(1979, 5)                             # a month not read ahead
    finally:
        src.close()
    assert [m for m, _ in p.calls] == ["1979-01", "1979-02", "1979-03", "1979-05"]
    assert all(name.startswith("noahtibet-forcing") for _, name in p.calls)
