"""Conservation checks that need no legacy model.

a. Energy of one soil heat step (nt_soil_heat_step, spec 7), to round-off:
       sum_k C_k dz_k (T_new - T_old)
         == dt (g_top - f_bottom) + rho_w Lf sum_k dz_k (sh2o_old - sh2o_new)
   with C_k of the start-of-step state, for random physical profiles (frozen, freezing,
   thawing and unfrozen layers; classes other/gravel/bedrock; both conductivity options;
   zz1 = 1 and zz1 > 1).
b. Water of the full model, per step:
       S_t - S_{t-1} == dt/1000 (P - E - R_surface - R_drainage + clamped),
       S = sum(smc dz) + canopy_water + snow_water,
   on the Tanggula daily file (legacy quirks on and off) and the 3-hourly file.
c. In snow-free (NOPAC) steps the ground heat flux SSOIL equals the flux applied to the top of
   the soil heat solve (the same flux computed two ways).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from noahtibet.kernel import _kernel as K
from noahtibet import analytic as an
from noahtibet import layout
from noahtibet.kernel import AnnualDiagnostics
from noahtibet.legacy_forcing import model_forcing, read_point_file
from noahtibet.point import options_for_case, run_point

T0 = an.T_FREEZE
RHO_LF = an.RHO_WATER * an.LATENT_FUSION
DATA = Path(__file__).resolve().parents[1] / "validation" / "reference" / "tanggula"


# --------------------------------------------------------------------------------------------
# a. energy, soil heat solver alone
# --------------------------------------------------------------------------------------------

def _random_column(rng):
    """A random but physical column; layer states drawn from four regimes."""
    n = int(rng.integers(4, 21))
    dz = rng.uniform(0.02, 0.6, n)
    smcmax = rng.uniform(0.25, 0.50, n)
    smc = smcmax * rng.uniform(0.15, 1.0, n)
    regime = rng.integers(0, 4, n)  # 0 unfrozen warm, 1 frozen cold, 2 thawing, 3 freezing
    stc = np.empty(n)
    sh2o = smc.copy()
    for k in range(n):
        if regime[k] == 0:
            stc[k] = T0 + rng.uniform(0.5, 15.0)
        elif regime[k] == 1:
            stc[k] = T0 - rng.uniform(0.5, 15.0)
            sh2o[k] = rng.uniform(0.02, 1.0) * smc[k] if smc[k] > 0.02 else smc[k]
        elif regime[k] == 2:  # ice present, temperature around / just above freezing
            stc[k] = T0 + rng.uniform(-0.05, 0.5)
            sh2o[k] = rng.uniform(0.0, 0.9) * smc[k]
        else:  # liquid, just below freezing
            stc[k] = T0 - rng.uniform(0.0, 0.5)
    tc_class = rng.integers(0, 3, n).astype(np.int32)
    dry_coef = np.where(tc_class == 1, 1.70, np.where(tc_class == 2, 0.039, 1.0))
    return {
        "zsoil": -np.cumsum(dz), "dz": dz, "smc": smc, "smcmax": smcmax,
        "bexp": rng.uniform(2.0, 11.0, n), "psisat": rng.uniform(0.03, 0.8, n),
        "quartz": rng.uniform(0.1, 0.9, n), "tc_class": tc_class,
        "kappa_u": np.full(n, 4.6), "kappa_f": np.full(n, 1.7), "dry_coef": dry_coef,
        "csoil": rng.uniform(1.8e6, 2.4e6, n), "stc": stc, "sh2o": sh2o,
    }


def _energy_step(col, stc, sh2o, dt, yy, zz1, df1, tc_option, zbot=-40.0, tbot=272.43):
    """One step; returns (residual, scale, latent) of the energy identity."""
    c = an.heat_capacity(col["smc"], sh2o, col["smcmax"], col["csoil"])  # start of step
    t_old, w_old = stc.copy(), sh2o.copy()
    g_top, f_bottom = K.nt_soil_heat_step(
        dt, yy, zz1, df1, col["zsoil"], zbot, tbot, col["smc"], col["smcmax"], col["bexp"],
        col["psisat"], col["quartz"], tc_option, col["tc_class"], col["kappa_u"],
        col["kappa_f"], col["dry_coef"], col["csoil"], stc, sh2o)
    dz = col["dz"]
    stored = c * dz * (stc - t_old)
    latent = RHO_LF * dz * (w_old - sh2o)
    residual = stored.sum() - (dt * (g_top - f_bottom) + latent.sum())
    scale = np.abs(stored).sum() + dt * (abs(g_top) + abs(f_bottom)) + np.abs(latent).sum()
    return residual, scale, latent


def test_energy_identity_single_steps():
    # 400 random single steps.  Achieved max |residual|/scale = 2.8e-13 (round-off: T_new - T_old
    # of ~273 K numbers, and dt*g_top nearly cancelling dt*f_bottom + latent); bound 1e-10.
    rng = np.random.default_rng(20240611)
    worst, n_freeze, n_thaw, n_zz1 = 0.0, 0, 0, 0
    for case in range(400):
        col = _random_column(rng)
        tc_option = 1 + case % 2
        zz1 = 1.0 if case % 3 == 0 else float(rng.uniform(1.05, 8.0))
        n_zz1 += zz1 != 1.0
        dt = float(rng.choice([900.0, 1800.0, 3600.0, 86400.0]))
        yy = T0 + float(rng.uniform(-20.0, 20.0))
        df1 = float(rng.uniform(0.2, 3.0))
        stc, sh2o = col["stc"].copy(), col["sh2o"].copy()
        res, scale, latent = _energy_step(col, stc, sh2o, dt, yy, zz1, df1, tc_option)
        assert np.all(np.isfinite(stc)) and np.all(sh2o >= 0) and np.all(sh2o <= col["smc"])
        assert abs(res) <= 1e-10 * scale, (case, res, scale)
        worst = max(worst, abs(res) / scale)
        n_freeze += int((latent > 0).any())
        n_thaw += int((latent < 0).any())
    # the sample really exercised freezing, thawing and the zz1 != 1 top boundary
    assert n_freeze > 50 and n_thaw > 50 and n_zz1 > 100, (n_freeze, n_thaw, n_zz1)


def test_energy_identity_freeze_thaw_sequence():
    # A column driven through freeze-thaw cycles (hourly steps, surface temperature
    # oscillating +-12 K around 0 C with a 2-day period), every step checked; both options.
    rng = np.random.default_rng(7)
    for tc_option in (1, 2):
        col = _random_column(rng)
        stc = np.full(col["dz"].size, T0 + 1.0)
        sh2o = col["smc"].copy()
        phase_steps, worst = 0, 0.0
        for i in range(480):
            yy = T0 + 12.0 * np.sin(2 * np.pi * i / 48.0)
            zz1 = 1.0 if i % 2 else 2.5
            res, scale, latent = _energy_step(col, stc, sh2o, 3600.0, yy, zz1, 1.2, tc_option,
                                              zbot=-8.0, tbot=T0 + 1.0)
            assert abs(res) <= 1e-10 * scale, (tc_option, i, res, scale)
            phase_steps += int(np.any(latent != 0))
            worst = max(worst, abs(res) / scale)
        assert phase_steps > 100, phase_steps


def test_energy_identity_needs_start_of_step_capacity():
    # Non-vacuity: with phase change, the identity fails when C is taken from the end-of-step
    # state or when the latent term is dropped.
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(50):
        col = _random_column(rng)
        stc, sh2o = col["stc"].copy(), col["sh2o"].copy()
        t_old, w_old = stc.copy(), sh2o.copy()
        res, scale, latent = _energy_step(col, stc, sh2o, 3600.0, T0 - 10.0, 1.0, 1.0, 2)
        if np.abs(latent).sum() < 1e-3 * scale:
            continue
        checked += 1
        dz = col["dz"]
        c_end = an.heat_capacity(col["smc"], sh2o, col["smcmax"], col["csoil"])
        c_old = an.heat_capacity(col["smc"], w_old, col["smcmax"], col["csoil"])
        wrong_c = res + ((c_end - c_old) * dz * (stc - t_old)).sum()
        assert abs(res + latent.sum()) > 1e-4 * scale
        if np.abs((c_end - c_old) * dz * (stc - t_old)).sum() > 1e-6 * scale:
            assert abs(wrong_c) > 1e3 * abs(res)
    assert checked > 10


# --------------------------------------------------------------------------------------------
# b. water balance of the full model; c. surface flux consistency
# --------------------------------------------------------------------------------------------

RUNS = {
    "daily-quirks": ("forcing_daily_2007_2010.dat", True),
    "daily-noquirks": ("forcing_daily_2007_2010.dat", False),
    "3hourly-quirks": ("forcing_3hourly_synthetic_2007_2008.dat", True),
}
_CACHE: dict[str, tuple] = {}


def _run(key):
    if key not in _CACHE:
        fname, quirks = RUNS[key]
        case = read_point_file(DATA / fname)
        _, rec, _ = run_point(case, options_for_case(case, legacy_quirks=quirks))
        _CACHE[key] = (case, rec)
    return _CACHE[key]


def _water_terms(case, rec):
    dz = np.asarray(case.layer_thickness, dtype=np.float64)
    dt = float(case.model_timestep)

    def out(name):
        return rec.output(name)[:, 0]

    storage = (rec.smc[:, 0, :] * dz).sum(axis=1) + out("canopy_water") + out("snow_water")
    s0 = (float(np.dot(np.asarray(case.initial_soil_moisture, dtype=np.float64), dz))
          + float(case.canopy_water) + float(case.snow_water_equivalent))
    d_storage = np.diff(np.concatenate([[s0], storage]))
    terms = {  # m per step, signed as they enter the balance
        "precipitation": dt / 1000 * out("precipitation"),
        "evaporation": -dt / 1000 * out("evaporation"),
        "surface_runoff": -dt / 1000 * out("surface_runoff"),
        "drainage": -dt / 1000 * out("drainage"),
        "water_clamped": dt / 1000 * out("water_clamped"),
    }
    return d_storage, terms


@pytest.mark.parametrize("key", ["daily-quirks", "3hourly-quirks"])
def test_water_balance_sums_of_the_diagnostics(key):
    """The kernel's accumulated water-balance terms (what gridded runs write per cell and
    year) equal the sums of the recorded fluxes and close the balance over the run."""
    fname, quirks = RUNS[key]
    case = read_point_file(DATA / fname)
    diag = AnnualDiagnostics.empty(1, case.n_layers)
    _, rec, _ = run_point(case, options_for_case(case, legacy_quirks=quirks), diagnostics=diag)
    d_storage, terms = _water_terms(case, rec)
    signs = {"precipitation": 1, "evaporation": -1, "surface_runoff": -1, "drainage": -1,
             "water_clamped": 1}
    for name in layout.WATER_BALANCE:
        np.testing.assert_allclose(signs[name] * diag.water_sum(name)[0], terms[name].sum(),
                                   rtol=1e-12, atol=1e-15, err_msg=name)
    change = sum(signs[n] * diag.water_sum(n)[0] for n in layout.WATER_BALANCE)
    assert abs(change - d_storage.sum()) < 1e-10
    assert diag.water_sum("precipitation")[0] > 0.5      # a real run, not zeros


@pytest.mark.parametrize("key", list(RUNS))
def test_water_balance_per_step(key):
    # Achieved max |residual| ~ 2e-15 m per step (storage ~ 5 m); bound 1e-12 m.
    # Clamp totals over the run (all water removed by the snow 1e-7 m threshold):
    # daily-quirks -7.8e-7 m, daily-noquirks -6.5e-7 m, 3hourly -1.1e-8 m, against
    # precipitation totals of 2.9 m / 2.9 m / 0.98 m.
    case, rec = _run(key)
    assert rec.stc.shape[0] > 1000
    d_storage, terms = _water_terms(case, rec)
    residual = d_storage - sum(terms.values())
    worst = int(np.argmax(np.abs(residual)))
    assert np.abs(residual).max() < 1e-12, (key, worst, residual[worst],
                                            {k: v[worst] for k, v in terms.items()})
    # the clamp term is small over the run, so the identity is not closed by it
    clamped = terms["water_clamped"]
    assert np.abs(clamped).sum() < 1e-5, (key, clamped.sum(), np.abs(clamped).sum())
    assert np.abs(clamped).sum() < 1e-5 * terms["precipitation"].sum()
    # the run exercised snow and frozen soil
    assert rec.output("snow_water")[:, 0].max() > 1e-3
    assert (rec.smc - rec.sh2o).max() > 0.1
    # non-vacuity: dropping any one flux breaks the identity by far more than the tolerance
    for name, term in terms.items():
        broken = residual + term
        assert np.abs(broken).max() > 1e3 * 1e-12, (key, name, np.abs(broken).max())
    broken = d_storage - sum(v for k, v in terms.items() if k != "evaporation")
    assert np.abs(broken).max() > 1e-4  # evaporation: up to 3 mm per daily step


def _snow_free_steps(case, rec):
    """Steps that take the snow-free branch NOPAC (spec 3.3, 1.3): no snow at the start of the
    step (SNEQV <= 1e-7 is zeroed) and no new snow / freezing rain (any precipitation with
    SFCTMP < 273.15 or previous skin temperature <= 273.15 goes to SNOPAC)."""
    pf = model_forcing(case)
    snow = rec.output("snow_water")[:, 0]
    snow_before = np.concatenate([[float(case.snow_water_equivalent)], snow[:-1]])
    skin = rec.output("skin_temperature")[:, 0]
    skin_before = np.concatenate([[float(case.skin_temperature)], skin[:-1]])
    prcp = np.asarray(pf.precipitation, dtype=np.float64)
    tair = np.asarray(pf.air_temperature, dtype=np.float64)
    np.testing.assert_array_equal(prcp, rec.output("precipitation")[:, 0])
    new_snow = (prcp > 0) & ((tair < 273.15) | (skin_before <= 273.15))
    return (snow_before <= 1e-7) & ~new_snow


@pytest.mark.parametrize("key", list(RUNS))
def test_ground_heat_equals_soil_top_flux_when_snow_free(key):
    # SSOIL = DF1 (STC1 - T1)/(ZSOIL1/2) with T1 = (YY + (ZZ1-1) STC1)/ZZ1 is algebraically
    # DF1 (YY - STC1)/(ZZ1 DZ1/2).  Achieved max difference 1.4e-12 W m-2 (fluxes up to
    # 200 W m-2); bound 1e-9 + 1e-11 |G|.
    case, rec = _run(key)
    nopac = _snow_free_steps(case, rec)
    assert nopac.sum() >= 20, nopac.sum()  # daily: 402 steps, 3-hourly: 20 steps
    g = rec.output("ground_heat")[:, 0][nopac]
    top = rec.output("soil_heat_top")[:, 0][nopac]
    assert np.abs(g).max() > 10.0
    np.testing.assert_allclose(top, g, rtol=1e-11, atol=1e-9)
