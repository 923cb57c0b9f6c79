"""Soil heat solver (nt_soil_heat_step, spec 7) against analytic solutions.

1. Periodic surface temperature over a homogeneous unfrozen column (no phase change):
   amplitude A exp(-z/d) and lag z/d, d = sqrt(2 kappa/omega), plus first-order convergence
   in the time step (backward Euler).
2. Freezing from the surface vs the two-phase Neumann (Stefan) solution, with the residual
   liquid water (0.02 floor of FRH2O) excluded from the latent heat.

The reference solutions and the property formulas (Johansen conductivity, heat capacity) are
independent numpy code in noahtibet.analytic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from noahtibet.kernel import _kernel as K
from noahtibet import analytic as an

T0 = an.T_FREEZE


def _call_step(dt, yy, zz1, df1, col, stc, sh2o, zbot, tbot, tc_option=1):
    return K.nt_soil_heat_step(
        dt, yy, zz1, df1, col["zsoil"], zbot, tbot, col["smc"], col["smcmax"], col["bexp"],
        col["psisat"], col["quartz"], tc_option, col["tc_class"], col["kappa_u"], col["kappa_f"],
        col["dry_coef"], col["csoil"], stc, sh2o)


def _uniform_column(dz, smc, smcmax, quartz, csoil, bexp=4.0, psisat=0.1):
    dz = np.asarray(dz, dtype=np.float64)
    n = dz.size
    one = np.ones(n)
    return {
        "dz": dz, "zsoil": -np.cumsum(dz), "z": np.cumsum(dz) - 0.5 * dz,
        "smc": smc * one, "smcmax": smcmax * one, "quartz": quartz * one, "csoil": csoil * one,
        "bexp": bexp * one, "psisat": psisat * one, "tc_class": np.zeros(n, dtype=np.int32),
        "kappa_u": 4.6 * one, "kappa_f": 1.7 * one, "dry_coef": 1.7 * one,
    }


# --------------------------------------------------------------------------------------------
# analytic solutions themselves
# --------------------------------------------------------------------------------------------

def test_periodic_wave_solves_heat_equation():
    # tm = 0 so that the finite differences do not lose digits to the mean
    w = an.PeriodicSurfaceWave(tm=0.0, amp=10.0, omega=2 * math.pi / 86400, kappa=6e-7)
    z, t, h, k = 0.07, 3.3e4, 1e-3, 1.0
    d2z = (w.temperature(z + h, t) - 2 * w.temperature(z, t) + w.temperature(z - h, t)) / h**2
    dtt = (w.temperature(z, t + k) - w.temperature(z, t - k)) / (2 * k)
    assert dtt == pytest.approx(w.kappa * d2z, rel=1e-4)
    assert w.temperature(0.0, 2e4) == pytest.approx(10 * math.sin(w.omega * 2e4), rel=1e-14)


def test_neumann_solution_is_consistent():
    sol = an.NeumannFreezing(lam_frozen=2.1, c_frozen=1.9e6, lam_unfrozen=1.5, c_unfrozen=2.5e6,
                             latent=9.3e7, t_surface=263.15, t_initial=275.15)
    xi = sol.xi
    assert abs(sol.stefan_residual(xi)) < 1e-9 * sol.latent * xi
    t = 5 * 86400.0
    x = float(sol.front_depth(t))
    # continuity at the front, boundary and far-field values
    assert float(sol.temperature(x * (1 - 1e-12), t)) == pytest.approx(T0, abs=1e-8)
    assert float(sol.temperature(x * (1 + 1e-12), t)) == pytest.approx(T0, abs=1e-8)
    assert float(sol.temperature(0.0, t)) == pytest.approx(263.15, abs=1e-12)
    assert float(sol.temperature(50.0, t)) == pytest.approx(275.15, abs=1e-9)
    # Stefan condition by finite differences of the temperature profile
    h = 1e-6
    gf = (float(sol.temperature(x - h, t)) - float(sol.temperature(x - 2 * h, t))) / h
    gu = (float(sol.temperature(x + 2 * h, t)) - float(sol.temperature(x + h, t))) / h
    dxdt = xi * math.sqrt(sol.kappa_frozen / t)
    assert sol.lam_frozen * gf - sol.lam_unfrozen * gu == pytest.approx(sol.latent * dxdt,
                                                                        rel=1e-4)
    # one-phase, small Stefan number limit: xi ~ sqrt(St/2)
    small = an.NeumannFreezing(2.0, 2e6, 1.5, 2.5e6, 1e10, 273.15 - 1.0, T0)
    st = small.c_frozen * 1.0 / small.latent
    assert small.xi == pytest.approx(math.sqrt(st / 2), rel=1e-3)


# --------------------------------------------------------------------------------------------
# 1. periodic surface temperature, no phase change
# --------------------------------------------------------------------------------------------

PERIOD = 86400.0
OMEGA = 2 * math.pi / PERIOD
SMC, SMCMAX, QUARTZ, CSOIL = 0.30, 0.40, 0.40, 2.0e6


def _periodic_run(dt, dz=0.01, nlay=120, periods=3):
    """Drive a 1.2 m column (~9 damping depths) of 0.01 m layers with yy = Tm + A sin(wt).

    The column starts from the analytic periodic state, so the start-up transient is only the
    discretisation mismatch; the last period is fitted.
    """
    col = _uniform_column(np.full(nlay, dz), SMC, SMCMAX, QUARTZ, CSOIL)
    lam = float(an.johansen_conductivity(SMC, SMC, SMCMAX, QUARTZ))
    cap = float(an.heat_capacity(SMC, SMC, SMCMAX, CSOIL))
    wave = an.PeriodicSurfaceWave(tm=288.15, amp=10.0, omega=OMEGA, kappa=lam / cap)
    stc = np.ascontiguousarray(wave.temperature(col["z"], 0.0))
    sh2o = col["smc"].copy()
    nper = int(round(PERIOD / dt))
    assert nper * dt == PERIOD
    rec = np.empty((nper, nlay))
    times = np.empty(nper)
    nstep = periods * nper
    for i in range(nstep):
        t = (i + 1) * dt  # backward Euler: boundary value at the end of the step
        _call_step(dt, float(wave.temperature(0.0, t)), 1.0, lam, col, stc, sh2o,
                   zbot=-50.0, tbot=wave.tm)
        j = i - (nstep - nper)
        if j >= 0:
            rec[j] = stc
            times[j] = t
    assert np.all(sh2o == col["smc"])  # never frozen: no phase change
    mean, amp, phase = an.fit_harmonic(times, rec, OMEGA)
    sel = col["z"] <= 3.0 * wave.damping_depth
    amp_err = amp[sel] / wave.amplitude(col["z"][sel]) - 1.0
    phase_err = phase[sel] - wave.phase_lag(col["z"][sel])
    return wave, lam, col, mean, amp_err, phase_err


def test_periodic_conductivity_matches_kernel():
    col = _uniform_column(np.full(5, 0.01), SMC, SMCMAX, QUARTZ, CSOIL)
    lam = an.johansen_conductivity(col["smc"], col["smc"], col["smcmax"], col["quartz"])
    for option in (1, 2):  # class "other": both options use the Johansen formula
        lk = K.nt_thermal_conductivity(option, col["smc"], col["quartz"], col["smcmax"],
                                       col["smc"].copy(), col["tc_class"], col["kappa_u"],
                                       col["kappa_f"], col["dry_coef"])
        np.testing.assert_allclose(lk, lam, rtol=1e-14)
    # frozen state too (used by the Stefan test)
    sh = np.full(5, 0.02)
    lk = K.nt_thermal_conductivity(1, col["smc"], col["quartz"], col["smcmax"], sh,
                                   col["tc_class"], col["kappa_u"], col["kappa_f"],
                                   col["dry_coef"])
    np.testing.assert_allclose(lk, an.johansen_conductivity(col["smc"], sh, col["smcmax"],
                                                            col["quartz"]), rtol=1e-14)


def test_periodic_surface_wave_amplitude_and_phase():
    # dt = 60 s: omega*dt = 4.4e-3.  Backward Euler replaces i*omega by (1 - exp(-i omega dt))/dt,
    # i.e. a relative error ~ omega*dt/4 in the complex wavenumber, which accumulates to
    # ~ (z/d)*sqrt(2)*omega*dt/4 ~ 0.5 % at z = 3d.  The spatial error (dz/d = 0.077) adds
    # ~0.15 %.  Achieved (nodes z <= 3d): amplitude 0.47 %, phase 3.2e-3 rad.
    # Bounds: amplitude 0.6 %, phase 0.0045 rad (~0.26 deg, ~1 min of lag).
    wave, lam, col, mean, amp_err, phase_err = _periodic_run(60.0)
    assert 0.10 < wave.damping_depth < 0.15 and col["dz"].sum() > 9 * wave.damping_depth
    assert np.abs(amp_err).max() < 6e-3, amp_err
    assert np.abs(phase_err).max() < 4.5e-3, phase_err
    assert np.abs(mean - wave.tm).max() < 1e-3


def test_periodic_surface_wave_first_order_in_time():
    # Errors e(dt) = c*dt + e_space: successive differences must halve (order 1), and the
    # dt -> 0 (Richardson) limit must be the small spatial error only.
    errs = {dt: _periodic_run(dt)[4:] for dt in (120.0, 60.0, 30.0)}
    for i in (0, 1):  # amplitude, phase
        d1 = np.abs(errs[120.0][i] - errs[60.0][i]).max()
        d2 = np.abs(errs[60.0][i] - errs[30.0][i]).max()
        order = math.log2(d1 / d2)
        assert 0.9 < order < 1.1, (i, d1, d2, order)  # achieved 0.99-1.0
        limit = 2 * errs[30.0][i] - errs[60.0][i]
        assert np.abs(limit).max() < 2.5e-3, limit  # achieved 1.5e-3 (spatial, dz = 0.01 m)
        assert np.abs(errs[30.0][i]).max() < np.abs(errs[120.0][i]).max()


# --------------------------------------------------------------------------------------------
# 2. freezing front vs the two-phase Neumann solution
# --------------------------------------------------------------------------------------------

RESIDUAL = 0.02  # FRH2O floor: with b = 1, psisat = 1e-4 m the liquid drops to it below T0-1e-3


def _stefan_grid(dz0=0.01, nfine=100, total=6.0, growth=1.15):
    dz = [dz0] * nfine
    while sum(dz) < total:
        dz.append(dz[-1] * growth)
    return np.array(dz)


def _stefan_run(dt, days, t_surface=T0 - 5.0, t_initial=T0 + 0.5, tc_option=1):
    col = _uniform_column(_stefan_grid(), SMC, SMCMAX, QUARTZ, CSOIL, bexp=1.0, psisat=1e-4)
    lam_u = float(an.johansen_conductivity(SMC, SMC, SMCMAX, QUARTZ))
    lam_f = float(an.johansen_conductivity(SMC, RESIDUAL, SMCMAX, QUARTZ))
    c_u = float(an.heat_capacity(SMC, SMC, SMCMAX, CSOIL))
    c_f = float(an.heat_capacity(SMC, RESIDUAL, SMCMAX, CSOIL))
    sol = an.NeumannFreezing(lam_f, c_f, lam_u, c_u,
                             an.RHO_WATER * an.LATENT_FUSION * (SMC - RESIDUAL),
                             t_surface, t_initial)
    stc = np.full(col["dz"].size, t_initial)
    sh2o = col["smc"].copy()
    one = np.ones(1)
    fronts, t, times = [], 0.0, np.asarray(days) * 86400.0
    for target in times:
        while t < target - 1e-6:
            # df1 = layer-1 conductivity of the start-of-step state (as the model does)
            df1 = float(K.nt_thermal_conductivity(tc_option, col["smc"][:1], col["quartz"][:1],
                                                  col["smcmax"][:1], sh2o[:1].copy(),
                                                  col["tc_class"][:1], one, one, one)[0])
            _call_step(dt, t_surface, 1.0, df1, col, stc, sh2o, zbot=-20.0, tbot=t_initial,
                       tc_option=tc_option)
            t += dt
        frac = (col["smc"] - sh2o) / (SMC - RESIDUAL)  # ice relative to its final value
        k = int(np.argmax(frac < 0.5))
        assert k > 0 and np.all(frac[:k] >= 0.5) and np.all(frac[k:] < 0.5)
        z = col["z"]
        fronts.append(z[k - 1] + (frac[k - 1] - 0.5) / (frac[k - 1] - frac[k]) * (z[k] - z[k - 1]))
    # frozen zone reached its final state: liquid at the floor, ice = smc - floor
    assert np.allclose(sh2o[: max(k - 2, 1)], RESIDUAL, atol=1e-12)
    return sol, times, np.array(fronts), stc, col


def test_frozen_parameters_give_a_sharp_front():
    # the chosen (b, psisat) put the equilibrium liquid at the 0.02 floor just below T0 - 1e-3
    t = np.array([T0 - 1.1e-3, T0 - 0.01, T0 - 1.0, T0 - 5.0])
    n = t.size
    free = K.nt_supercooled_water(t, np.full(n, SMC), np.full(n, SMC), np.full(n, SMCMAX),
                                  np.ones(n), np.full(n, 1e-4))
    np.testing.assert_allclose(free, RESIDUAL, rtol=0, atol=1e-15)


def test_freezing_front_matches_neumann():
    # Surface held at -5 C from t = 0, soil initially at +0.5 C; 0.01 m layers down to 1 m,
    # then growing to 6 m (the unfrozen thermal boundary layer stays < 2 m); dt = 300 s.
    # Stefan number c_f*5K/L = 0.10, xi = 0.217, X(16 d) = 0.55 m.
    # The model's front lags the analytic one because the phase change is explicit and starts
    # only once a layer's average temperature is below T0 - 1e-3; the lag shrinks with dt
    # (dt = 3600 / 600 / 300 / 60 s: -19 / -7 / -4 / -1.9 % at 1 day) and with time.
    # Achieved at dt = 300 s: -4.0 % (1 d), -3.2 % (2 d), -2.3 % (4 d), -1.4 % (8 d),
    # -1.0 % (16 d).  Bounds: |err| < 5.5 % at 1 day, < 3 % from 4 days, < 2 % from 8 days.
    # A 10 % error in the latent heat or the frozen conductivity shifts X by ~5 %, which these
    # bounds catch; the error must also shrink with time (it is a start-up lag).
    days = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    sol, times, fronts, stc, col = _stefan_run(300.0, days)
    x = sol.front_depth(times)
    rel = fronts / x - 1.0
    assert 0.2 < sol.xi < 0.24
    assert abs(rel[0]) < 0.055, rel
    assert np.all(np.abs(rel[2:]) < 0.03) and np.all(np.abs(rel[3:]) < 0.02), rel
    assert abs(rel[-1]) < abs(rel[0])
    # X ~ sqrt(t): log-log slope (achieved 0.51)
    slope = np.polyfit(np.log(times), np.log(fronts), 1)[0]
    assert abs(slope - 0.5) < 0.03, slope
    # temperature profile at the end: frozen zone within 0.03 K of the analytic (achieved 0.009)
    z = col["z"]
    frozen = z < 0.8 * fronts[-1]
    dev = stc[frozen] - sol.temperature(z[frozen], times[-1])
    assert np.abs(dev).max() < 0.03, dev
