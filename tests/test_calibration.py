"""CaliMAP calibration and the calibrated ensemble (noahtibet.calibration).

The gridded checks use one small twin experiment on the SYNTHETIC demo domain
(1 degree cells, the first 64 cells): the reference map is the 2010 map of the
demo truth (noahtibet.demo_truth, a run with the hidden TRUE_PARAMETERS), the
"default" is the same run with the default parameters.  To make a few model
years meaningful the runs start with little soil water
(``initial_moisture_fraction = 0.05``): with the product's 50 % of porosity the
deep ice takes decades to respond and a short run has no disagreeing cell at all
(measured: 0 of 214 cells after 10 years).  Spin-up 1 x 2007, run 2008-2010.
With that, 3 cells disagree in 2010 and the 1-cell buffer makes 17 sensitive
cells holding both classes (with only the disagreeing cells kappa would be 0
for every candidate, because the reference is then a single class).
"""

import csv
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mpi_support import mpi_available

from noahtibet import layout
from noahtibet.calibration import agreement, settings
from noahtibet.calibration.space import KNOWN, ColumnClasses, load_space
from noahtibet.classify import NODATA, PERMAFROST, classify
from noahtibet.errors import ConfigError
from noahtibet.parallel import SerialComm

HIDDEN = {"SNOW_COND_MULT": 1.4, "SBETA": -3.0, "SALP": 4.0, "Z0H_BETA": 5.5,
          "ICE_IMPEDANCE": 9.0}
DEFAULTS = {"SNOW_COND_MULT": 2.0, "SBETA": -2.0, "SALP": 2.6, "Z0H_BETA": 7.2}


def base_config(out, **calibration):
    return {
        "domain": {"kind": "demo", "spacing": 1.0, "max_cells": 64},
        "spinup": {"start_year": 2007, "end_year": 2007, "cycles": 1,
                   "initial_moisture_fraction": 0.05},
        "run": {"start_year": 2008, "end_year": 2010, "product_start_year": 2010},
        "output": {"directory": str(out), "geotiff": True, "netcdf": True, "cell_size_m": 25000.0},
        "calibration": {"buffer_cells": 1, "protocol": "full", "trials": 12, "batch_size": 4,
                        "startup_trials": 4, "seed": 3, **calibration},
        "ensemble": {"members": 2},
    }


# ------------------------------------------------------------------------------------------
# Parameter space
# ------------------------------------------------------------------------------------------

def test_default_space_maps_the_26_parameters_to_kernel_rows():
    space = load_space()
    assert len(space.entries) == 26
    assert len({e.parameter for e in space.entries}) == 26
    for e in space.entries:
        for group, row in KNOWN[e.parameter].rows:
            table = layout.LAYER_PARAMETERS if group == "layer" else layout.COLUMN_PARAMETERS
            assert row in table, (e.name, row)
        assert e.lower < e.upper
    # the hidden parameters of the demo truth lie inside the bounds
    for name, value in HIDDEN.items():
        e = space.entry(name)
        assert e.lower <= value <= e.upper


def _columns():
    """Two columns: (loam over gravel, grassland) and (sand over bedrock, barren)."""
    from noahtibet.parameters import ColumnSpec, column_parameters

    specs = [ColumnSpec(np.full(4, 0.5), np.array([7, 7, 13, 13]), 7, 1, 271.0, 0.1, 0.6, 0.75),
             ColumnSpec(np.full(4, 0.5), np.array([12, 12, 14, 14]), 19, 2, 274.0, 0.1, 0.2,
                        0.8)]
    lp, cp = zip(*[column_parameters(s) for s in specs])
    return np.array(lp), np.array(cp), ColumnClasses.from_specs(specs)


def test_apply_changes_only_the_scoped_rows(tmp_path):
    lp, cp, classes = _columns()
    path = tmp_path / "space.toml"
    path.write_text(textwrap.dedent("""
        [[parameter]]
        name = "BB_loam"
        parameter = "BB"
        scope = "soil_class"
        classes = [7]
        bounds = [0.5, 2.0]
        [[parameter]]
        name = "GRAVEL_KAPPA"
        scope = "soil_class"
        mode = "absolute"
        bounds = [3.0, 5.0]
        [[parameter]]
        name = "CSOIL"
        scope = "layer"
        layers = [2, 3]
        bounds = [0.5, 2.0]
        [[parameter]]
        name = "ALBEDOMAX"
        scope = "vegetation_class"
        classes = [19]
        bounds = [0.5, 2.0]
        [[parameter]]
        name = "TBOT"
        mode = "offset"
        bounds = [-2.0, 2.0]
        [[parameter]]
        name = "QTZ"
        scope = "soil_class"
        classes = [12]
        bounds = [0.5, 1.05]
    """))
    space = load_space(path)
    values = {"BB_loam": 1.5, "GRAVEL_KAPPA": 3.5, "CSOIL": 1.25, "ALBEDOMAX": 0.8,
              "TBOT": -1.0, "QTZ": 0.6}
    new_lp, new_cp = space.apply(values, lp, cp, classes)
    L = {n: i for i, n in enumerate(layout.LAYER_PARAMETERS)}
    C = {n: i for i, n in enumerate(layout.COLUMN_PARAMETERS)}
    expect_lp, expect_cp = lp.copy(), cp.copy()
    expect_lp[0, :2, L["bexp"]] *= 1.5                     # loam layers of column 0 only
    expect_lp[0, 2:, L["tc_kappa_unfrozen"]] = 3.5          # gravel layers only
    expect_lp[:, 1:3, L["csoil"]] *= 1.25                   # layers 2 and 3 of both columns
    expect_cp[1, C["albedomax"]] *= 0.8                     # barren column only
    expect_cp[:, C["tbot"]] -= 1.0
    expect_lp[1, :2, L["quartz"]] *= 0.6                    # sand layers ...
    expect_cp[1, C["sfc_quartz"]] *= 0.6                    # ... and its Soil_type_index row
    np.testing.assert_array_equal(new_lp, expect_lp)
    np.testing.assert_array_equal(new_cp, expect_cp)
    # the inputs are untouched and a missing value keeps the default
    same_lp, same_cp = space.apply({}, lp, cp, classes)
    np.testing.assert_array_equal(same_lp, lp)
    np.testing.assert_array_equal(same_cp, cp)


def _space_file(tmp_path, text):
    path = tmp_path / "bad_space.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text, words", [
    ("""
     [[parameter]]
     name = "PORSITY"
     bounds = [0.9, 1.1]
     """, ["bad_space.toml", "PORSITY", "not a known parameter"]),
    ("""
     [[parameter]]
     name = "SALP"
     mode = "absolute"
     bounds = [6.0, 1.0]
     """, ["bad_space.toml", "SALP", "[6.0, 1.0]", "reversed"]),
    ("""
     constraints = ["DRYSMC <= WLTSMC"]
     [[parameter]]
     name = "DRYSMC"
     scope = "soil_class"
     bounds = [0.8, 1.3]
     [[parameter]]
     name = "WLTSMC"
     scope = "soil_class"
     bounds = [0.9, 1.2]
     """, ["bad_space.toml", "DRYSMC <= WLTSMC", "DRYSMC in [0.8, 1.3]", "violated"]),
    ("""
     constraints = ["WLTSMC < REFSMC < MAXSMC"]
     [[parameter]]
     name = "REFSMC"
     scope = "soil_class"
     bounds = [0.9, 1.2]
     """, ["bad_space.toml", "REFSMC in [0.9, 1.2]", "violated", "MAXSMC"]),
    ("""
     [[parameter]]
     name = "SALP"
     bounds = [1.0, 6.0]
     sigma = 2
     """, ["bad_space.toml", "SALP.sigma", "not a known key"]),
    # SLOPE x 1.5 is fine for slope class 1 (0.1) but not for class 3 (1.0)
    ("""
     constraints = ["SLOPE <= 1"]
     [[parameter]]
     name = "SLOPE"
     bounds = [0.2, 1.5]
     """, ["bad_space.toml", "SLOPE <= 1", "slope class 3", "SLOPE in [0.2, 1.5]"]),
    ("""
     [[parameter]]
     name = "SNUP"
     scope = "soil_class"
     bounds = [0.5, 2.0]
     """, ["bad_space.toml", "SNUP.scope", "soil_class"]),
    ("""
     [[parameter]]
     name = "BB"
     scope = "soil_class"
     bounds = [0.5, 2.0]
     [[parameter]]
     name = "BB_sand"
     parameter = "BB"
     scope = "soil_class"
     classes = [12]
     bounds = [0.5, 2.0]
     """, ["bad_space.toml", "BB_sand", "already"]),
])
def test_bad_space_files_are_refused(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        load_space(_space_file(tmp_path, text))
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_bad_calibration_settings_are_refused(tmp_path):
    data = base_config(tmp_path, protocol="fast")
    with pytest.raises(ConfigError, match="calibration.protocol.*fast"):
        settings.from_dict(data, "cal.toml")
    data = base_config(tmp_path)
    data["calibration"]["trails"] = 5
    with pytest.raises(ConfigError, match="cal.toml.*calibration.trails.*did you mean 'trials'"):
        settings.from_dict(data, "cal.toml")


# ------------------------------------------------------------------------------------------
# Agreement scores
# ------------------------------------------------------------------------------------------

def _oracle(sim, ref, cells):
    """Kappa etc. by the closed 2 x 2 forms, counting cells one by one."""
    a = b = c = d = 0
    for s, r, k in zip(sim.ravel(), ref.ravel(), cells.ravel()):
        if not k or s == 255 or r == 0:
            continue
        rp, sp = r == 1, s == 1
        a += rp and sp
        b += rp and not sp
        c += (not rp) and sp
        d += (not rp) and (not sp)
    n = a + b + c + d
    kappa = 2.0 * (a * d - b * c) / ((a + b) * (b + d) + (a + c) * (c + d))
    return {"kappa": kappa, "overall_agreement": (a + d) / n,
            "quantity_disagreement": abs(b - c) / n, "allocation_disagreement": 2 * min(b, c) / n,
            "n_cells": n}


def test_kappa_matches_an_independent_computation_with_masked_cells():
    rng = np.random.default_rng(5)
    for trial in range(20):
        shape = (17, 23)
        ref = rng.integers(1, 4, shape)
        sim = np.where(rng.random(shape) < 0.7, ref, rng.integers(1, 4, shape)).astype(np.uint8)
        ref[rng.random(shape) < 0.1] = 0          # reference without data
        sim[rng.random(shape) < 0.1] = NODATA     # glacier / lake
        cells = rng.random(shape) < 0.8
        got = agreement.map_agreement(sim, ref, cells)
        want = _oracle(sim, ref, cells)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (trial, key)
        assert got["quantity_disagreement"] + got["allocation_disagreement"] == \
            pytest.approx(1 - got["overall_agreement"], abs=1e-12)


def test_kappa_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(9)
    ref = rng.integers(0, 4, 500)
    sim = np.where(rng.random(500) < 0.6, np.maximum(ref, 1), rng.integers(1, 4, 500))
    sim[rng.random(500) < 0.1] = NODATA
    valid = (ref != 0) & (sim != NODATA)
    want = sklearn_metrics.cohen_kappa_score(ref[valid] == 1, sim[valid] == 1)
    assert agreement.map_agreement(sim, ref)["kappa"] == pytest.approx(want, abs=1e-12)


def test_kappa_edge_cases():
    assert agreement.scores([[0, 0], [0, 0]])["n_cells"] == 0
    assert math.isnan(agreement.scores([[0, 0], [0, 0]])["kappa"])
    assert agreement.scores([[0, 0], [0, 7]])["kappa"] == 1.0     # one class, full agreement
    assert agreement.scores([[0, 0], [3, 4]])["kappa"] == 0.0     # single-class reference


# ------------------------------------------------------------------------------------------
# Pairs engine
# ------------------------------------------------------------------------------------------

def test_a_failing_parameter_set_is_dropped_without_changing_the_others(tmp_path):
    """Porosity x 1e-6 makes the kernel fail: that set is reported and dropped, the month
    is repeated without it, and the other sets equal a batch that never held it."""
    from noahtibet.calibration.engine import CellBlock, build_pairs, run_year, start_pairs
    from noahtibet.calibration.space import Entry, ParameterSpace
    from noahtibet.simulation import build_model, physics_options

    data = {"domain": {"kind": "demo", "spacing": 1.0, "max_cells": 3},
            "spinup": {"start_year": 2007, "end_year": 2007, "cycles": 1},
            "run": {"start_year": 2007, "end_year": 2007, "product_start_year": 2007},
            "output": {"directory": str(tmp_path)},
            "calibration": {"reference_year": 2007, "protocol": "full"}}
    cfg, cal, _ = settings.from_dict(data, "<test>")
    model = build_model(cfg)
    space = ParameterSpace([Entry("X", "MAXSMC", "global", "multiplier", 1e-9, 10.0)])
    block = CellBlock(cfg, model, np.arange(3))
    options, dt = physics_options(cfg).as_array(), cfg.physics.timestep
    protocol = settings.trial_protocol(cfg, cal)

    def run(sets):
        n = 3 * len(sets)
        pc = build_pairs(block, space, sets, np.arange(n), np.arange(n) // 3, np.arange(n) % 3)
        start_pairs(pc, protocol, 0.5)
        return pc, run_year(block, pc, 2007, dt, options)

    pc, diag = run([{"X": 1.05}, {"X": 1e-6}, {}])
    assert list(pc.failed) == [1] and "NaN or infinite" in pc.failed[1][2]
    assert list(pc.set_index) == [0, 0, 0, 2, 2, 2]
    ref_pc, ref_diag = run([{"X": 1.05}, {}])
    np.testing.assert_array_equal(diag.tmax, ref_diag.tmax)
    np.testing.assert_array_equal(pc.state.stc, ref_pc.state.stc)


# ------------------------------------------------------------------------------------------
# The twin experiment on the demo domain
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """Demo truth, default run to 2010 and the model, shared by the gridded tests."""
    from noahtibet.calibration.trials import default_run
    from noahtibet.demo_truth import REFERENCE_MAP, make_truth
    from noahtibet.simulation import build_model

    out = tmp_path_factory.mktemp("calibration") / "out"
    cfg, cal, ens = settings.from_dict(base_config(out), "<test configuration>")
    model = build_model(cfg)
    truth = make_truth(cfg)
    sim = default_run(cfg, cal, SerialComm(), model)
    return SimpleNamespace(out=out, cfg=cfg, cal=cal, ens=ens, model=model, sim=sim,
                           reference=truth / REFERENCE_MAP)


def fresh(twin, name, **calibration):
    """Settings with their own calibration directory holding a copy of the default run."""
    data = base_config(twin.out, directory=str(twin.out / name), **calibration)
    cfg, cal, ens = settings.from_dict(data, "<test configuration>")
    target = Path(cal.directory) / "default_run"
    if not target.exists():
        shutil.copytree(Path(twin.cal.directory) / "default_run", target)
    return cfg, cal, ens


@pytest.fixture(scope="module")
def twin_calibration(twin):
    from noahtibet.calibration.optimizer import calibrate

    cfg, cal, ens = fresh(twin, "twin", parameters=sorted(HIDDEN))
    res = calibrate(cfg, cal, SerialComm(), members=ens.members, model=twin.model)
    return SimpleNamespace(cfg=cfg, cal=cal, ens=ens, result=res)


def _sensitive(twin):
    from noahtibet.calibration.trials import (read_annual_classes, reference_classes,
                                              sensitive_cells)

    ref = reference_classes(twin.reference, twin.model.grid)
    dcl = read_annual_classes(twin.sim, 2010)
    return sensitive_cells(twin.model, dcl, ref, twin.cal.buffer_cells), ref, dcl


def test_sensitive_cells_are_the_disagreeing_cells_and_their_neighbours(twin):
    sens, ref, dcl = _sensitive(twin)
    model = twin.model
    rows, cols = model.simulated.cell_rows_cols
    r, c = rows[sens.cells], cols[sens.cells]
    disagree = (ref == 1) != (dcl == 1)
    valid = model.simulated.active & (ref != 0) & (dcl != NODATA)
    n_dis = int((disagree & valid).sum())
    assert n_dis >= 2, "the twin fixture must have disagreeing cells to test anything"
    assert sens.summary["disagreeing_cells"] == n_dis
    # every selected cell disagrees or touches (8-neighbourhood) a disagreeing cell
    dr, dc = np.nonzero(disagree & valid)
    for ri, ci in zip(r, c):
        assert np.any((np.abs(dr - ri) <= 1) & (np.abs(dc - ci) <= 1))
    # and every valid neighbour of a disagreeing cell is selected
    sel = np.zeros_like(valid)
    sel[r, c] = True
    for ri, ci in zip(dr, dc):
        block = (slice(max(ri - 1, 0), ri + 2), slice(max(ci - 1, 0), ci + 2))
        assert np.all(sel[block] | ~valid[block])
    assert sens.n == sens.summary["sensitive_cells"] > n_dis
    assert set(np.unique(sens.reference_permafrost)) == {False, True}


def test_trial_engine_reproduces_the_default_run_and_its_kappa(twin):
    """A trial of the default parameters (full protocol) equals the default run cell by cell,
    whatever its place in the batch; its kappa is the independent kappa of the same maps."""
    from noahtibet.calibration.trials import TrialEvaluator

    sens, ref, dcl = _sensitive(twin)
    space = load_space().subset(["Z0H_BETA", "TBOT"])
    ev = TrialEvaluator(twin.cfg, twin.cal, twin.model, space, sens, SerialComm())
    sets = [{}, {"Z0H_BETA": 5.0, "TBOT": -1.0}, {}]
    results, classes = ev.evaluate(sets, return_classes=True)
    rows, cols = twin.model.simulated.cell_rows_cols
    default_cells = dcl[rows[sens.cells], cols[sens.cells]]
    np.testing.assert_array_equal(classes[0], default_cells)
    np.testing.assert_array_equal(classes[2], default_cells)
    assert np.any(classes[1] != default_cells)
    # kappa from the summed confusion matrix == oracle on the trial's own map
    for k in range(len(sets)):
        sim_map = np.full(twin.model.grid.shape, NODATA, np.uint8)
        sim_map[rows[sens.cells], cols[sens.cells]] = classes[k]
        cells = np.zeros(twin.model.grid.shape, bool)
        cells[rows[sens.cells], cols[sens.cells]] = True
        want = _oracle(sim_map, ref, cells)
        assert results[k]["kappa"] == pytest.approx(want["kappa"], abs=1e-12)
        assert results[k]["n_cells"] == want["n_cells"] == sens.n
    assert results[0]["kappa"] == pytest.approx(sens.summary["default_kappa_sensitive"], abs=1e-12)


def test_twin_experiment_raises_kappa_and_moves_the_sensitive_parameter_to_the_truth(
        twin, twin_calibration):
    """Honest scope: 12 trials, 17 cells, 4 model years.  The test shows that the
    calibration finds sets better than the default and that the parameter which
    alone explains the truth's map (found by a one-at-a-time screen below) moves
    toward its hidden value.  It cannot show that all five hidden values are
    recovered: at this size the map constrains only the parameters that change it."""
    from noahtibet.calibration.trials import TrialEvaluator

    res = twin_calibration.result
    baseline = res.baseline["kappa"]
    best = res.ranking[0]["kappa"]
    assert best > baseline + 0.2, (best, baseline)
    # one-at-a-time screen: which hidden parameter alone moves the map toward the truth?
    sens, _, _ = _sensitive(twin)
    space = load_space().subset(sorted(HIDDEN))
    ev = TrialEvaluator(twin.cfg, twin.cal, twin.model, space, sens, SerialComm())
    sets = [{name: value} for name, value in HIDDEN.items()]
    screen, _ = ev.evaluate(sets)
    gains = {name: r["kappa"] - baseline for name, r in zip(HIDDEN, screen)}
    sensitive = [n for n, g in gains.items() if g > 0.1]
    assert sensitive, f"no hidden parameter alone changes the map: {gains}"
    top = res.ranking[:3]
    for name in sensitive:
        default = DEFAULTS.get(name, 17.25)
        mean = float(np.mean([r["values"][name] for r in top]))
        assert abs(mean - HIDDEN[name]) < abs(default - HIDDEN[name]), (name, mean, gains)
    # outputs of the calibration
    d = Path(twin_calibration.cal.directory)
    for f in ("trials.json", "trials.csv", "ensemble_parameters.toml", "convergence.png",
              "calibration_summary.json", "sensitive_cells.csv", "sensitive_cells.json"):
        assert (d / f).stat().st_size > 0, f
    with open(d / "trials.csv") as fh:
        table = list(csv.DictReader(l for l in fh))
    assert len(table) == 12
    assert max(float(r["kappa"]) for r in table) == best
    assert (d / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------
# Reproducibility: resume after a kill, 1 and 2 ranks
# ------------------------------------------------------------------------------------------

SMALL = dict(protocol="continued", spinup_cycles=0, trials=5, batch_size=3, startup_trials=3,
             seed=11, parameters=["Z0H_BETA", "TBOT", "SNOW_COND_MULT"])


def _history(directory):
    data = json.loads((Path(directory) / "trials.json").read_text())
    return [(t["tid"], t["values"], t["kappa"], t["confusion"]) for t in data["trials"]]


@pytest.fixture(scope="module")
def straight(twin):
    from noahtibet.calibration.optimizer import calibrate

    cfg, cal, ens = fresh(twin, "straight", **SMALL)
    calibrate(cfg, cal, SerialComm(), members=2, model=twin.model)
    return _history(cal.directory)


def _toml(data: dict) -> str:
    from noahtibet.config import _toml_value

    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def test_resume_after_a_kill_during_a_batch_gives_the_same_history(twin, straight, tmp_path):
    from noahtibet.calibration.optimizer import CalibrationInterrupted, calibrate
    from noahtibet.cli_calibration import add_parser
    import argparse

    cfg, cal, ens = fresh(twin, "killed", **SMALL)
    with pytest.raises(CalibrationInterrupted):
        calibrate(cfg, cal, SerialComm(), members=2, model=twin.model, stop_after_batches=1)
    partial = _history(cal.directory)
    assert len(partial) == 3 and partial == straight[:3]
    assert not list(Path(cal.directory).glob("*.part"))
    # resume through the command line, from a configuration file with [calibration]
    data = base_config(twin.out, directory=cal.directory, **SMALL)
    path = tmp_path / "calibration.toml"
    path.write_text(_toml(data))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", str(path), "--resume", "--mpi", "off"])
    assert args.func(args) == 0
    assert _history(cal.directory) == straight
    assert len(straight) == 5 and len({json.dumps(h[1]) for h in straight}) == 5


def test_resume_refuses_a_different_setting(twin, straight):
    from noahtibet.calibration.optimizer import calibrate

    cfg, cal, ens = fresh(twin, "straight", **{**SMALL, "seed": 12})
    with pytest.raises(ConfigError, match="different seed"):
        calibrate(cfg, cal, SerialComm(), members=2, model=twin.model, resume=True)


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
def test_one_and_two_ranks_give_the_same_history(twin, straight, tmp_path):
    cfg, cal, ens = fresh(twin, "two_ranks", **SMALL)
    data = base_config(twin.out, directory=cal.directory, **SMALL)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        from noahtibet.calibration import settings
        from noahtibet.calibration.optimizer import calibrate
        from noahtibet.parallel import get_comm
        cfg, cal, ens = settings.from_dict(json.loads({json.dumps(json.dumps(data))}), "mpi")
        comm = get_comm(True)
        assert comm.size == 2
        calibrate(cfg, cal, comm, members=2)
    """))
    proc = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _history(cal.directory) == straight


# ------------------------------------------------------------------------------------------
# The ensemble
# ------------------------------------------------------------------------------------------

def test_ensemble_members_mean_probability_and_products(twin, twin_calibration):
    import netCDF4

    from noahtibet.calibration.ensemble import read_year, run_ensemble
    from noahtibet.calibration.optimizer import read_ensemble_file

    tc = twin_calibration
    ens = settings.EnsembleSettings(members=2, parameter_file=tc.ens.parameter_file,
                                    directory=str(twin.out / "ensemble"))
    run_ensemble(tc.cfg, tc.cal, ens, SerialComm(), model=twin.model)
    members, _, info = read_ensemble_file(tc.ens.parameter_file)
    assert info["protocol"] == "full"
    assert [m["trial"] for m in members[:2]] == [r["tid"] for r in tc.result.ranking[:2]]
    out = Path(ens.directory)
    model = twin.model
    g10, g09 = read_year(out, 2010), read_year(out, 2009)
    active = model.simulated.active
    land = ~(model.static_nodata | model.lake_mask(2010))[active]
    mc = g10["member_class"]                                    # (member, cell)
    assert mc.shape == (2, model.ncol)
    # probability = fraction of members classifying permafrost
    prob = g10["probability"][active]
    np.testing.assert_array_equal(prob[land], (mc == PERMAFROST).mean(axis=0)[land])
    # ensemble-mean class = class of the members' mean annual extremes
    want = classify(g10["tmin"], g10["tmax"], g09["tmax"])
    np.testing.assert_array_equal(g10["ensemble_class"][active][land], want[land])
    # each member reproduces its calibration kappa on the sensitive cells (same protocol)
    sens, ref, _ = _sensitive(twin)
    for m in range(2):
        got = agreement.scores(agreement.confusion(sens.reference_permafrost,
                                                   mc[m, sens.cells] == PERMAFROST))
        assert got["kappa"] == tc.result.ranking[m]["kappa"]
    # products
    assert (out / "products" / "noahtibet_ensemble_mean_2010.tif").exists()
    with netCDF4.Dataset(out / "products" / "noahtibet_ensemble.nc") as nc:
        for v in ("frozen_ground_class", "permafrost_probability", "permafrost_margin_spread"):
            assert v in nc.variables
        p = np.ma.filled(nc["permafrost_probability"][0], np.nan)
        assert set(np.unique(p[np.isfinite(p)])) <= {0.0, 0.5, 1.0}
    # resume: the last year again from the restart of the year before gives the same files
    first = {k: v.copy() for k, v in g10.items()}
    (out / "restart" / "transient_2010.json").unlink()
    (out / "annual" / "ensemble_2010.nc").unlink()
    run_ensemble(tc.cfg, tc.cal, ens, SerialComm(), model=twin.model, resume=True)
    again = read_year(out, 2010)
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])
    with open(out / "member_kappa.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["member"] for r in rows] == ["default", "1", "2", "ensemble_mean"]
    rows_, cols_ = model.simulated.cell_rows_cols
    for m in range(2):
        sim_map = np.full(model.grid.shape, NODATA, np.uint8)
        sim_map[rows_, cols_] = mc[m]
        sim_map[model.lake_mask(2010)] = NODATA
        want = _oracle(sim_map, ref, np.ones(model.grid.shape, bool))
        row = rows[m + 1]
        assert float(row["kappa_domain_2010"]) == pytest.approx(want["kappa"], abs=1e-12)
        # the sensitive-cell kappa of the ensemble run is the member's calibration kappa
        assert float(row["kappa_sensitive_cells_2010"]) == float(
            row["calibration_kappa_sensitive_cells"]) == tc.result.ranking[m]["kappa"]
    assert float(rows[0]["kappa_sensitive_cells_2010"]) == pytest.approx(
        tc.result.baseline["kappa"], abs=1e-12)


# ------------------------------------------------------------------------------------------
# Failed trials: the same failure on any number of ranks
# ------------------------------------------------------------------------------------------

FAILURE_CONFIG = {
    "domain": {"kind": "demo", "spacing": 1.0, "max_cells": 4},
    "spinup": {"start_year": 2007, "end_year": 2007, "cycles": 1},
    "run": {"start_year": 2007, "end_year": 2007, "product_start_year": 2007},
    "calibration": {"reference_year": 2007, "protocol": "full"},
}
# set "b" fails on cell 0 in September of the spin-up year and on cell 3 in March: a rank
# holding only cell 0 sees the September failure, but the run fails first in March
FAILURES = {("b, cell 0 ", (2007, 9)), ("b, cell 3 ", (2007, 3))}


def inject_failures(monkeypatch_setattr, failures=FAILURES):
    """Make the kernel report a failure of the columns whose label starts with a given
    text in a given (year, month), as a parameter set that breaks the physics would."""
    from noahtibet.calibration import engine
    from noahtibet.kernel import KernelError
    from noahtibet.simulation import ForcingSource

    now = []
    real_month, real_run = ForcingSource.month, engine.run_columns

    def month(self, year, m):
        now[:] = [(year, m)]
        return real_month(self, year, m)

    def run_columns(*args, labels=None, **kwargs):
        real_run(*args, labels=labels, **kwargs)
        for j, label in enumerate(labels):
            if any(label.startswith(text) and now[0] == ym for text, ym in failures):
                raise KernelError(j, 7, 1, label)

    monkeypatch_setattr(ForcingSource, "month", month)
    monkeypatch_setattr(engine, "run_columns", run_columns)


def _failure_setup(out):
    from noahtibet.calibration.trials import Sensitive
    from noahtibet.simulation import build_model

    cfg, cal, _ = settings.from_dict({**FAILURE_CONFIG, "output": {"directory": str(out)}},
                                     "<test>")
    sens = Sensitive(np.arange(4), np.array([True, False, True, False]), 0, {})
    return cfg, cal, build_model(cfg), load_space().subset(["TBOT", "SALP"]), sens


def test_a_set_failing_on_several_cells_reports_its_earliest_failure_on_any_split(
        tmp_path, monkeypatch):
    """Pairs split as two ranks would hold them report, once merged, the failure that
    one rank holding every pair reports: the earliest month, then the lowest pair."""
    from noahtibet.calibration.engine import (CellBlock, build_pairs, merge_failures,
                                              run_year, start_pairs)
    from noahtibet.simulation import physics_options

    inject_failures(monkeypatch.setattr)
    cfg, cal, model, space, _ = _failure_setup(tmp_path)
    protocol = settings.trial_protocol(cfg, cal)
    sets = [{}, {"TBOT": 0.5}, {"SALP": 3.0}]
    options, dt = physics_options(cfg).as_array(), cfg.physics.timestep

    def run(pairs):
        cells = np.unique(pairs % 4)
        block = CellBlock(cfg, model, cells)
        pc = build_pairs(block, space, sets, pairs, pairs // 4,
                         np.searchsorted(cells, pairs % 4), ["a", "b", "c"])
        start_pairs(pc, protocol, 0.5)
        for year in (2007, 2007):        # spin-up year, then the transient year
            run_year(block, pc, year, dt, options)
        return pc.failed

    whole = run(np.arange(12))
    assert list(whole) == [1] and "2007-03" in whole[1][2] and whole[1][1] == 7
    split = merge_failures([run(np.arange(0, 6)), run(np.arange(6, 12))])
    assert split == whole
    # the split on which the rank holding the lower pairs fails later (September)
    lower_first = [run(np.arange(0, 5)), run(np.arange(5, 12))]
    assert "2007-09" in lower_first[0][1][2]
    assert merge_failures(lower_first) == whole


def _failure_results(cfg, cal, model, space, sens, comm):
    from noahtibet.calibration.trials import TrialEvaluator

    ev = TrialEvaluator(cfg, cal, model, space, sens, comm)
    results, _ = ev.evaluate([{}, {"TBOT": 0.5}, {"SALP": 3.0}], ["a", "b", "c"])
    return results


def test_a_failed_trial_has_no_confusion_matrix(tmp_path, monkeypatch):
    inject_failures(monkeypatch.setattr)
    results = _failure_results(*_failure_setup(tmp_path), SerialComm())
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    assert results[1]["confusion"] == [[0, 0], [0, 0]] and math.isnan(results[1]["kappa"])
    assert results[1]["message"].startswith("b, cell 3 ") and "2007-03" in results[1]["message"]
    assert sum(map(sum, results[0]["confusion"])) == 4


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
def test_trial_results_with_a_failed_set_are_the_same_on_two_ranks(tmp_path, monkeypatch):
    """Rank 0 holds set b on cells 0-1 (failing in September), rank 1 on cells 2-3
    (failing in March): both ranks' results equal one rank's, message and matrix."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_calibration import _failure_setup, _failure_results, inject_failures
        from noahtibet.parallel import get_comm
        inject_failures(setattr)
        comm = get_comm(True)
        assert comm.size == 2
        res = _failure_results(*_failure_setup({str(tmp_path / "mpi")!r}), comm)
        with open({str(tmp_path)!r} + f"/rank{{comm.rank}}.json", "w") as fh:
            json.dump(res, fh)
    """))
    proc = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inject_failures(monkeypatch.setattr)
    serial = _failure_results(*_failure_setup(tmp_path / "serial"), SerialComm())
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert json.dumps(got, sort_keys=True) == json.dumps(serial, sort_keys=True)


# ------------------------------------------------------------------------------------------
# The ensemble under the calibration's protocol; per-rank restarts
# ------------------------------------------------------------------------------------------

def test_restart_points_are_complete_bounded_and_readable_on_any_split(tmp_path):
    """A point exists once its manifest does; any cell range reads back its rows only; the
    last two points are kept."""
    from noahtibet.calibration.restarts import RestartSet
    from noahtibet.kernel import ColumnState

    M, ncell, nlay, nsurf = 3, 7, 4, len(layout.SURFACE_STATE)

    def state(seed):
        r = np.random.default_rng(seed)
        return ColumnState(*(r.random((ncell * M, k)) for k in (nlay, nlay, nlay, nsurf))), \
            r.random((ncell * M, nlay))

    rs = RestartSet(tmp_path / "restart", SerialComm(), M, "digest-1")
    for i, name in enumerate(("spinup_cycle_0001", "transient_2008", "transient_2009")):
        st, prev = state(i)
        rs.write(name, 0, ncell, st, prev, {"stage": name.split("_")[0], "n": i})
    assert rs.names() == ["transient_2008", "transient_2009"]
    assert not (tmp_path / "restart" / "spinup_cycle_0001").exists()
    latest = rs.latest()
    assert latest["name"] == "transient_2009" and latest["info"]["n"] == 2
    st, prev = state(2)
    for lo, hi in ((0, 7), (0, 3), (3, 7), (5, 6), (2, 2)):
        got, got_prev = rs.read(latest, lo, hi)
        if hi == lo:
            assert got is None
            continue
        np.testing.assert_array_equal(got.stc, st.stc[lo * M:hi * M])
        np.testing.assert_array_equal(got.surface, st.surface[lo * M:hi * M])
        np.testing.assert_array_equal(got_prev, prev[lo * M:hi * M])
    # parts written without a manifest (a kill before the point completed) are not a point
    (tmp_path / "restart" / "transient_2010").mkdir()
    assert rs.latest()["name"] == "transient_2009"
    # another configuration's restarts are refused
    with pytest.raises(RuntimeError, match="different configuration"):
        RestartSet(tmp_path / "restart", SerialComm(), M, "digest-2").latest()


@pytest.fixture(scope="module")
def continued_ensemble(twin, straight):
    """The 2-member ensemble of the 'straight' calibration (protocol continued from the
    default run's spin-up), serial."""
    from noahtibet.calibration.ensemble import run_ensemble

    cfg, cal, _ = fresh(twin, "straight", **SMALL)
    ens = settings.EnsembleSettings(members=2, parameter_file=str(Path(cal.directory) /
                                                                 "ensemble_parameters.toml"),
                                    directory=str(twin.out / "ensemble_continued"))
    res = run_ensemble(cfg, cal, ens, SerialComm(), model=twin.model)
    return SimpleNamespace(cfg=cfg, cal=cal, ens=ens, result=res)


def _ensemble_files(directory):
    """Every output of an ensemble run that must not depend on ranks or resumption."""
    from noahtibet.calibration.ensemble import read_year

    out = {}
    for y in (2008, 2009, 2010):
        for k, v in read_year(directory, y).items():
            out[f"{y}/{k}"] = v
    with open(Path(directory) / "member_kappa.csv") as fh:
        out["member_kappa"] = fh.read()
    return out


def test_members_keep_their_calibration_kappa_under_the_calibration_protocol(
        twin, continued_ensemble):
    """The scientific point of ensemble.protocol = "calibration": a member run over the
    domain and period has, on the sensitive cells, exactly its calibration kappa."""
    res = continued_ensemble.result
    assert res.protocol["start"] == "spinup" and res.protocol["first_year"] == 2008
    rows = {r["member"]: r for r in res.agreement}
    assert [r["member"] for r in res.agreement] == ["default", "1", "2", "ensemble_mean"]
    for m in ("1", "2"):
        assert rows[m]["kappa_sensitive_cells_2010"] == rows[m]["calibration_kappa_sensitive_cells"]
    baseline = json.loads((Path(continued_ensemble.cal.directory) / "trials.json").read_text())
    assert rows["default"]["kappa_sensitive_cells_2010"] == pytest.approx(
        baseline["baseline"]["kappa"], abs=1e-12)
    summary = json.loads((Path(continued_ensemble.ens.directory) /
                          "ensemble_summary.json").read_text())
    assert summary["protocol"]["description"].startswith("continued: start from the default")


def test_the_ensemble_refuses_members_calibrated_with_another_protocol(twin, straight):
    from noahtibet.calibration.ensemble import run_ensemble

    cfg, cal, _ = fresh(twin, "straight", **{**SMALL, "spinup_cycles": 1})
    ens = settings.EnsembleSettings(members=2, parameter_file=str(Path(cal.directory) /
                                                                 "ensemble_parameters.toml"),
                                    directory=str(twin.out / "ensemble_refused"))
    with pytest.raises(ConfigError, match="ensemble_parameters.toml.*spinup_cycles.*0"):
        run_ensemble(cfg, cal, ens, SerialComm(), model=twin.model)


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
def test_ensemble_on_two_ranks_and_after_a_kill_resumed_on_one_rank_is_identical(
        twin, continued_ensemble, tmp_path):
    """Two ranks give the serial ensemble's files bit for bit; a 2-rank run stopped after
    2008 and resumed on one rank (reading the two ranks' restart parts) too."""
    c = continued_ensemble
    data = base_config(twin.out, directory=c.cal.directory, **SMALL)
    script = tmp_path / "run.py"

    def run(directory, ranks, stop=None, resume=False):
        script.write_text(textwrap.dedent(f"""
            import json, logging
            from noahtibet.calibration import settings
            from noahtibet.calibration.ensemble import run_ensemble
            logging.basicConfig(level=logging.INFO)
            from noahtibet.parallel import get_comm
            cfg, cal, _ = settings.from_dict(json.loads({json.dumps(json.dumps(data))}), "mpi")
            ens = settings.EnsembleSettings(members=2, parameter_file={c.ens.parameter_file!r},
                                            directory={str(directory)!r})
            comm = get_comm({ranks > 1})
            assert comm.size == {ranks}
            run_ensemble(cfg, cal, ens, comm, resume={resume}, stop_after_year={stop})
        """))
        cmd = ([] if ranks == 1 else ["mpiexec", "-n", str(ranks)]) + [sys.executable,
                                                                       str(script)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    want = _ensemble_files(c.ens.directory)
    proc = run(tmp_path / "two", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = _ensemble_files(tmp_path / "two")
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    parts = sorted(p.name for p in (tmp_path / "two" / "restart" / "transient_2010").iterdir())
    assert len(parts) == 2, parts        # one part per rank, nothing gathered
    killed = tmp_path / "killed"
    proc = run(killed, 2, stop=2008)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert not (killed / "annual" / "ensemble_2009.nc").exists()
    proc = run(killed, 1, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming the ensemble" in proc.stderr
    got = _ensemble_files(killed)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_cli_refuses_a_bad_trial_count(tmp_path):
    import argparse

    from noahtibet.cli_calibration import add_parser

    path = tmp_path / "calibration.toml"
    path.write_text(_toml(base_config(tmp_path)))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", str(path), "--trials", "0", "--mpi", "off"])
    with pytest.raises(ConfigError, match="calibration.toml.*calibration.trials.*0"):
        args.func(args)


def test_one_configuration_file_serves_the_run_and_the_calibration(tmp_path):
    """A run of the file is the calibration's default run (same digest), so the product
    run can be reused with calibration.default_run; typos in [calibration] are still refused."""
    from noahtibet import config
    from noahtibet.simulation import config_digest

    path = tmp_path / "plateau.toml"
    path.write_text(_toml(base_config(tmp_path)))
    run_cfg = config.load(path)
    cfg, cal, ens = settings.load(path)
    assert config_digest(run_cfg) == config_digest(cfg) and cal.trials == 12
    data = base_config(tmp_path)
    data["ensemble"]["protocl"] = "full"
    path.write_text(_toml(data))
    config.load(path)
    with pytest.raises(ConfigError, match="ensemble.protocl.*did you mean 'protocol'"):
        settings.load(path)


def test_constraints_are_checked_with_the_runs_parameter_overrides(twin):
    """[parameters] overrides hold in every cell, so the space is checked with them: a field
    capacity of 0.40 everywhere leaves no room below the porosity of the coarse classes."""
    import dataclasses

    from noahtibet.calibration.optimizer import prepare_space

    prepare_space(twin.cfg, twin.cal, twin.model)          # accepted without the override
    params = dataclasses.replace(twin.cfg.parameters, layer={"smcref": 0.40})
    cfg = dataclasses.replace(twin.cfg, parameters=params)
    with pytest.raises(ConfigError, match="REFSMC < MAXSMC.*violated"):
        prepare_space(cfg, twin.cal, twin.model)


TINY_ENSEMBLE = {
    "domain": {"kind": "demo", "spacing": 1.0, "max_cells": 1},
    "spinup": {"start_year": 2007, "end_year": 2007, "cycles": 1},
    "run": {"start_year": 2007, "end_year": 2008, "product_start_year": 2007},
    "calibration": {"reference_year": 2008, "protocol": "full", "parameters": ["TBOT"]},
}
TINY_MEMBERS = [{"trial": 1, "values": {"TBOT": 0.0}}, {"trial": 2, "values": {"TBOT": 1.5}}]


def tiny_ensemble(out, comm):
    from noahtibet.calibration.ensemble import run_ensemble

    cfg, cal, ens = settings.from_dict({**TINY_ENSEMBLE, "output": {"directory": str(out)}},
                                       "<test>")
    run_ensemble(cfg, cal, ens, comm, members=TINY_MEMBERS)
    return ens.directory


@pytest.mark.skipif(not mpi_available(), reason="mpi4py / mpiexec not installed")
def test_an_ensemble_with_more_ranks_than_cells(tmp_path):
    """Rank 1 holds no cell: it still takes part in every collective step, and the files
    equal the serial run's."""
    from noahtibet.calibration.ensemble import read_year

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_calibration import tiny_ensemble
        from noahtibet.parallel import get_comm
        tiny_ensemble({str(tmp_path / "two")!r}, get_comm(True))
    """))
    proc = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    serial = tiny_ensemble(tmp_path / "one", SerialComm())
    for year in (2007, 2008):
        want, got = read_year(serial, year), read_year(tmp_path / "two" / "ensemble", year)
        assert want["member_class"].shape == (2, 1)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
