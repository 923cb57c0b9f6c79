"""The kernel steps columns in blocks of 32 lanes (fortran/column_kernel.f90): a column's
results must not depend on the block it is in, on its lane, on the other lanes' weather or
failures, nor on how a run is cut into kernel calls.

Every comparison is bit for bit (the lanes' arithmetic is each column's own)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from noahtibet import layout
from noahtibet.kernel import AnnualDiagnostics, Calendar, ColumnState, KernelError, run_columns
from noahtibet.legacy_forcing import read_point_file
from noahtibet.parameters import PhysicsOptions
from noahtibet.point import column_batch

FORCING = (Path(__file__).resolve().parents[1] / "validation" / "reference" / "tanggula"
           / "forcing_3hourly_synthetic_2007_2008.dat")
BLOCK = 32                        # block_width of nt_column_kernel
PROFILES = [                      # soil classes per layer, mixed over the columns
    [7, 7, 7, 7, 9, 7, 7, 7, 7, 7, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13],
    [9, 9, 9, 9, 9, 9, 12, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 14],
    [3, 3, 3, 3, 4, 4, 4, 4, 7, 7, 7, 7, 7, 12, 12, 12, 13, 13, 14, 14],
]
FI = {n: layout.index(layout.FORCING, n) for n in layout.FORCING}


@pytest.fixture(scope="module")
def columns():
    """70 columns (blocks of 32, 32 and 6), 4 months of 3-hourly steps from the Tanggula
    forcing, each column with its own air temperature offset (-3..+9 K: permafrost to
    unfrozen), rain amplification (two-pass water steps in some lanes only) and soil profile."""
    case = read_point_file(FORCING)
    case = dataclasses.replace(case, model_timestep=10800,
                               enddate=np.datetime64("2007-10-31T21:00", "m"))
    ncol = 2 * BLOCK + 6
    rng = np.random.default_rng(7)
    offsets = rng.uniform(-3.0, 9.0, ncol)
    rain = rng.choice([1.0, 1.0, 30.0], ncol)
    return column_batch(case, [PROFILES[c % len(PROFILES)] for c in range(ncol)],
                        temperature_offset=offsets, precipitation_factor=rain)


def _run(columns, cols, options, forcing=None, steps=slice(None)):
    """Run the columns `cols` (in that order) in one kernel call; states, records, diagnostics."""
    f, cal, mon, lp, cp, st = columns
    f = (f if forcing is None else forcing)[steps][:, :, cols]
    cal = Calendar(cal.month_prev[steps], cal.month_next[steps], cal.month_weight[steps])
    state = ColumnState(st.stc[cols].copy(), st.smc[cols].copy(), st.sh2o[cols].copy(),
                        st.surface[cols].copy())
    diag = AnnualDiagnostics.empty(len(cols), lp.shape[1])
    diag.water = np.zeros((len(cols), len(layout.WATER_BALANCE)))
    rec = run_columns(f, cal, mon[cols], lp[cols], cp[cols], state, 10800.0, options,
                      diagnostics=diag, record=True)
    return state, rec, diag


def _arrays(result, j):
    """Every array of column j of a _run result."""
    state, rec, diag = result
    return ([state.stc[j], state.smc[j], state.sh2o[j], state.surface[j],
             rec.stc[:, j], rec.smc[:, j], rec.sh2o[:, j], rec.out[:, j],
             diag.tmin[j], diag.tmax[j], diag.tsum[j], diag.water[j]]
            + [np.asarray(diag.thaw_depth_max[j]), np.asarray(diag.count[j])])


def _same(a, b):
    return all(x.tobytes() == y.tobytes() for x, y in zip(a, b))


@pytest.mark.parametrize("exchange", ["yang08", "chen97", "myj"])
def test_a_column_gives_the_same_bits_alone_and_in_any_block_or_lane(columns, exchange):
    options = PhysicsOptions(surface_exchange=exchange).as_array()
    ncol = columns[0].shape[2]
    forward = list(range(ncol))
    together = _run(columns, forward, options)
    shuffled_order = list(np.random.default_rng(3).permutation(ncol))
    shuffled = _run(columns, shuffled_order, options)
    # the columns' states differ (the test would not see a lane mix-up otherwise)
    assert len({together[0].stc[j].tobytes() for j in range(ncol)}) == ncol
    for c in (0, 5, BLOCK - 1, BLOCK, 2 * BLOCK + 5):        # block edges and the short block
        alone = _run(columns, [c], options)
        assert _same(_arrays(together, c), _arrays(alone, 0)), c
        assert _same(_arrays(together, c), _arrays(shuffled, shuffled_order.index(c))), c


def test_cutting_a_run_into_calls_changes_nothing(columns):
    """The state carries everything between kernel calls (blocks are rebuilt every call)."""
    options = PhysicsOptions().as_array()
    cols = list(range(BLOCK + 3))
    nstep = columns[0].shape[0]
    whole = _run(columns, cols, options)
    f, cal, mon, lp, cp, st = columns
    half = nstep // 2
    first = _run(columns, cols, options, steps=slice(0, half))
    mid = ColumnState(first[0].stc, first[0].smc, first[0].sh2o, first[0].surface)
    second_cols = (f, cal, mon[cols], lp[cols], cp[cols], mid)
    second = _run(second_cols, list(range(len(cols))), options,
                  forcing=f[:, :, cols], steps=slice(half, None))
    for name in ("stc", "smc", "sh2o", "surface"):
        assert getattr(whole[0], name).tobytes() == getattr(second[0], name).tobytes(), name
    assert whole[1].stc[half:].tobytes() == second[1].stc.tobytes()


def test_a_failing_column_does_not_disturb_its_block(columns):
    """A column whose forcing turns to NaN fails (KernelError names it and the step); the
    other lanes of its block, computed with it, give the bits they give without it (the
    kernel has updated every column's state in place when the error is raised)."""
    options = PhysicsOptions().as_array()
    f, cal, mon, lp, cp, st = columns
    f = f.copy()
    bad = 3
    f[200, FI["air_temperature"], bad] = np.nan
    cols = list(range(BLOCK))
    state = ColumnState(st.stc[cols].copy(), st.smc[cols].copy(), st.sh2o[cols].copy(),
                        st.surface[cols].copy())
    with pytest.raises(KernelError) as err:
        run_columns(f[:, :, cols], cal, mon[cols], lp[cols], cp[cols], state, 10800.0, options)
    assert err.value.column == bad and err.value.step == 201
    others = [c for c in cols if c != bad]
    without = _run(columns, others, options, forcing=f)[0]
    for j, c in enumerate(others):
        assert _same([state.stc[c], state.smc[c], state.sh2o[c], state.surface[c]],
                     [without.stc[j], without.smc[j], without.sh2o[j], without.surface[j]]), c
    # the failing column keeps the soil state it failed with: that of the column run
    # alone (which fails at the same step), not one the block's solves went on to
    # compute.  (Its surface state is not compared: NaN travels differently through
    # vector and scalar code, so a failed column's non-finite values may differ.)
    alone = ColumnState(st.stc[[bad]].copy(), st.smc[[bad]].copy(), st.sh2o[[bad]].copy(),
                        st.surface[[bad]].copy())
    with pytest.raises(KernelError) as err_alone:
        run_columns(f[:, :, [bad]], cal, mon[[bad]], lp[[bad]], cp[[bad]], alone, 10800.0, options)
    assert err_alone.value.step == 201
    for name in ("stc", "smc", "sh2o"):
        assert np.array_equal(getattr(state, name)[bad], getattr(alone, name)[0], equal_nan=True), name
    # (and it is the state of step 201, which holds the non-finite values, not the
    # state the column started with)
    assert not np.all(np.isfinite(np.concatenate([state.stc[bad], state.sh2o[bad]])))


@pytest.mark.parametrize("option", [1, 2])   # stock TDFCND, Noah-Tibet TDFCND_C05
def test_vectorised_conductivity_has_the_bits_of_the_elemental_one(option):
    """The kernel's vectorised thermal conductivity (tc_layers over many layers at once:
    branch-free selection of the Kersten form, ln(Sr) only when a layer uses it) gives
    the bits of the elemental function on every kind of layer: frozen and unfrozen,
    Sr below and above 0.1, other soils, gravel and bedrock; also when no layer needs
    ln(Sr) (all frozen) and when only a few do."""
    from noahtibet.kernel import _kernel as K
    rng = np.random.default_rng(7)
    n = 3000
    smcmax = rng.uniform(0.05, 0.5, n)
    smc = smcmax*rng.uniform(0.03, 1.0, n)                     # Sr from 0.03 to 1
    frozen = rng.random(n) < 0.5
    sh2o = np.where(frozen, smc*rng.uniform(0.05, 0.9, n), smc)
    quartz = rng.uniform(0.05, 0.9, n)
    tc_class = rng.integers(0, 3, n).astype(np.int32)          # other, gravel, bedrock
    ku, kf = np.full(n, 4.6), np.full(n, 1.7)
    dry = np.where(tc_class == layout.TC_CLASS_GRAVEL, 1.70, 0.039)
    sr = smc/smcmax
    for idx in (np.arange(n), np.flatnonzero(frozen), np.flatnonzero(~frozen),
                np.flatnonzero(~frozen & (sr > 0.1) & (sr < 0.2))):
        args = (option, smc[idx], quartz[idx], smcmax[idx], sh2o[idx], tc_class[idx], ku[idx],
                kf[idx], dry[idx])
        elemental = K.nt_thermal_conductivity(*args)
        vectorised = K.nt_thermal_conductivity_layers(*args)
        assert np.all(np.isfinite(elemental))
        assert vectorised.tobytes() == elemental.tobytes()


def test_column_batch_builds_the_columns_asked_for():
    """noahtibet.point.column_batch (the batch of these tests and of the benchmarks): one
    column per soil profile, each with its own air-temperature offset and precipitation
    factor, moisture within each layer's porosity."""
    case = dataclasses.replace(read_point_file(FORCING), model_timestep=10800,
                               enddate=np.datetime64("2007-04-10T21:00", "m"))
    profiles = [PROFILES[0], PROFILES[2], PROFILES[0]]
    f, cal, mon, lp, cp, st = column_batch(case, profiles, temperature_offset=[0.0, 1.5, -2.0],
                                           precipitation_factor=[1.0, 3.0, 0.0])
    nstep = f.shape[0]
    assert f.shape == (nstep, len(layout.FORCING), 3) and len(cal.month_weight) == nstep
    assert lp.shape[:2] == (3, 20) and cp.shape[0] == 3 and st.stc.shape == (3, 20)
    air, rain = f[:, FI["air_temperature"]], f[:, FI["precipitation"]]
    np.testing.assert_allclose(air[:, 1] - air[:, 0], 1.5)
    np.testing.assert_allclose(air[:, 2] - air[:, 0], -2.0)
    assert rain[:, 0].max() > 0 and np.array_equal(rain[:, 1], 3.0*rain[:, 0])
    assert not rain[:, 2].any()
    smcmax = lp[:, :, layout.index(layout.LAYER_PARAMETERS, "smcmax")]
    assert np.array_equal(lp[0], lp[2]) and not np.array_equal(smcmax[0], smcmax[1])
    assert np.all(st.smc <= smcmax) and np.all(st.sh2o <= st.smc)
