"""Analytic solutions and independent property formulas for verifying the soil heat solver.

Pure numpy (plus :mod:`math` for ``erf``/``erfc``); nothing here calls the Fortran kernel, so
these functions can serve as an independent reference in tests and validation reports.

Contents
--------
* Soil thermal properties as written in the specification (spec/physics.md 7.1, 7.3):
  :func:`heat_capacity` and :func:`johansen_conductivity` (stock Johansen / Peters-Lidard,
  soil class "other").
* :class:`PeriodicSurfaceWave` -- semi-infinite homogeneous conductor whose surface temperature
  is ``Tm + A sin(omega t)`` (periodic state):
  ``T(z, t) = Tm + A exp(-z/d) sin(omega t - z/d)``, ``d = sqrt(2 kappa/omega)``.
* :class:`NeumannFreezing` -- two-phase Neumann (Stefan) solution for freezing of a
  semi-infinite soil initially at ``Ti > Tf`` whose surface is held at ``Ts < Tf`` from t = 0:
  front depth ``X(t) = 2 xi sqrt(kappa_f t)`` with ``xi`` the root of the transcendental
  Stefan condition (solved by bisection).

Depths ``z`` are positive downward [m]; temperatures in K; SI units throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Constants as used by the legacy heat solver (spec 7.1, 7.5, section 9).
RHO_WATER = 1000.0      #: density of liquid water [kg m-3]
LATENT_FUSION = 3.335e5  #: latent heat of fusion [J kg-1]
C_WATER = 4.2e6         #: volumetric heat capacity of liquid water in HRT [J m-3 K-1]
C_ICE = 2.106e6         #: volumetric heat capacity of ice [J m-3 K-1]
C_AIR = 1004.0          #: volumetric heat capacity of air as coded [J m-3 K-1]
T_FREEZE = 273.15       #: freezing point [K]

_erf = np.vectorize(math.erf, otypes=[float])
_erfc = np.vectorize(math.erfc, otypes=[float])


# --------------------------------------------------------------------------------------------
# Soil thermal properties (spec 7.1 and 7.3)
# --------------------------------------------------------------------------------------------

def heat_capacity(smc, sh2o, smcmax, csoil):
    """Volumetric heat capacity [J m-3 K-1] of spec 7.1:
    ``sh2o*4.2e6 + (1-smcmax)*csoil + (smcmax-smc)*1004 + (smc-sh2o)*2.106e6``."""
    smc, sh2o, smcmax, csoil = (np.asarray(a, dtype=float) for a in (smc, sh2o, smcmax, csoil))
    return sh2o * C_WATER + (1.0 - smcmax) * csoil + (smcmax - smc) * C_AIR + (smc - sh2o) * C_ICE


def johansen_conductivity(smc, sh2o, smcmax, quartz):
    """Stock Noah (Johansen 1975 / Peters-Lidard et al. 1998) thermal conductivity
    [W m-1 K-1], spec 7.3, soil class "other" (also TDFCND_C05 for that class).

    ``Sr = smc/n``; ``lambda_s = 7.7**qz * 2**(1-qz)``; ``xu = (sh2o/smc) n``;
    ``lambda_sat = lambda_s**(1-n) 2.2**(n-xu) 0.57**xu``;
    ``lambda_dry = (0.135 g + 64.7)/(2700 - 0.947 g)``, ``g = 2700 (1-n)``;
    ``Ke = Sr`` if frozen (``sh2o + 0.0005 < smc``) else ``log10(Sr) + 1`` (``Sr > 0.1``) or 0;
    ``lambda = Ke (lambda_sat - lambda_dry) + lambda_dry``.
    """
    smc, sh2o, n, qz = (np.asarray(a, dtype=float) for a in (smc, sh2o, smcmax, quartz))
    sr = smc / n
    lam_s = 7.7 ** qz * 2.0 ** (1.0 - qz)
    xu = (sh2o / smc) * n
    lam_sat = lam_s ** (1.0 - n) * 2.2 ** (n - xu) * 0.57 ** xu
    gamma_d = 2700.0 * (1.0 - n)
    lam_dry = (0.135 * gamma_d + 64.7) / (2700.0 - 0.947 * gamma_d)
    frozen = (sh2o + 0.0005) < smc
    with np.errstate(divide="ignore"):
        ke_unfrozen = np.where(sr > 0.1, np.log10(np.maximum(sr, 1e-300)) + 1.0, 0.0)
    ke = np.where(frozen, sr, ke_unfrozen)
    return ke * (lam_sat - lam_dry) + lam_dry


# --------------------------------------------------------------------------------------------
# Periodic surface temperature (no phase change)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeriodicSurfaceWave:
    """Periodic state of a homogeneous half-space, surface temperature ``tm + amp sin(omega t)``.

    ``kappa`` is the thermal diffusivity lambda/C [m2 s-1].
    """

    tm: float
    amp: float
    omega: float
    kappa: float

    @property
    def damping_depth(self) -> float:
        """``d = sqrt(2 kappa/omega)`` [m]."""
        return math.sqrt(2.0 * self.kappa / self.omega)

    def amplitude(self, z):
        """Temperature amplitude at depth z: ``amp exp(-z/d)`` [K]."""
        return self.amp * np.exp(-np.asarray(z, dtype=float) / self.damping_depth)

    def phase_lag(self, z):
        """Phase lag behind the surface wave at depth z: ``z/d`` [rad]."""
        return np.asarray(z, dtype=float) / self.damping_depth

    def temperature(self, z, t):
        """``T(z, t) = tm + amp exp(-z/d) sin(omega t - z/d)`` [K]."""
        z = np.asarray(z, dtype=float)
        d = self.damping_depth
        return self.tm + self.amp * np.exp(-z / d) * np.sin(self.omega * np.asarray(t) - z / d)


def fit_harmonic(t, values, omega):
    """Least-squares fit ``values ~ c0 + a cos(omega t) + b sin(omega t)`` along axis 0.

    Returns ``(mean, amplitude, phase)`` with ``values ~ mean + amplitude sin(omega t - phase)``
    (so ``phase`` is the lag behind ``sin(omega t)`` [rad]).
    """
    t = np.asarray(t, dtype=float)
    values = np.asarray(values, dtype=float)
    design = np.stack([np.ones_like(t), np.cos(omega * t), np.sin(omega * t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, values.reshape(len(t), -1), rcond=None)
    c0, a, b = coef
    # a cos + b sin = R sin(wt - phi)  with  R cos(phi) = b, -R sin(phi) = a
    amplitude = np.hypot(a, b)
    phase = np.arctan2(-a, b)
    shape = values.shape[1:]
    return c0.reshape(shape), amplitude.reshape(shape), phase.reshape(shape)


# --------------------------------------------------------------------------------------------
# Two-phase Neumann (Stefan) freezing problem
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NeumannFreezing:
    """Two-phase Neumann solution for freezing from the surface.

    Semi-infinite medium at ``t_initial`` (> ``t_freeze``); from t = 0 the surface z = 0 is
    held at ``t_surface`` (< ``t_freeze``).  Frozen zone 0 < z < X(t) has conductivity
    ``lam_frozen`` and volumetric heat capacity ``c_frozen``; the unfrozen zone
    ``lam_unfrozen``, ``c_unfrozen``.  ``latent`` is the latent heat released per unit volume
    when the front passes [J m-3], e.g. ``rho_w Lf (smc - residual liquid)``.
    """

    lam_frozen: float
    c_frozen: float
    lam_unfrozen: float
    c_unfrozen: float
    latent: float
    t_surface: float
    t_initial: float
    t_freeze: float = T_FREEZE

    def __post_init__(self):
        if not self.t_surface < self.t_freeze <= self.t_initial:
            raise ValueError("need t_surface < t_freeze <= t_initial")
        if min(self.lam_frozen, self.c_frozen, self.lam_unfrozen, self.c_unfrozen,
               self.latent) <= 0.0:
            raise ValueError("properties and latent heat must be positive")

    @property
    def kappa_frozen(self) -> float:
        return self.lam_frozen / self.c_frozen

    @property
    def kappa_unfrozen(self) -> float:
        return self.lam_unfrozen / self.c_unfrozen

    def stefan_residual(self, xi: float) -> float:
        """Heat-flux balance at the front divided by ``sqrt(kappa_f)`` (decreasing in xi):

        ``lam_f (Tf-Ts) e^{-xi^2} / (erf(xi) sqrt(pi) kf)
          - lam_u (Ti-Tf) e^{-nu^2} / (erfc(nu) sqrt(pi kf ku)) - L xi``,
        ``nu = xi sqrt(kf/ku)``; zero at the similarity constant.
        """
        kf, ku = self.kappa_frozen, self.kappa_unfrozen
        nu = xi * math.sqrt(kf / ku)
        q_frozen = (self.lam_frozen * (self.t_freeze - self.t_surface) * math.exp(-xi * xi)
                    / (math.erf(xi) * math.sqrt(math.pi) * kf))
        q_unfrozen = (self.lam_unfrozen * (self.t_initial - self.t_freeze) * math.exp(-nu * nu)
                      / (math.erfc(nu) * math.sqrt(math.pi * kf * ku)))
        return q_frozen - q_unfrozen - self.latent * xi

    @property
    def xi(self) -> float:
        """Similarity constant of ``X = 2 xi sqrt(kappa_f t)``, by bisection (to ~1e-15)."""
        lo, hi = 1e-12, 1.0
        while self.stefan_residual(hi) > 0.0:
            hi *= 2.0
            if hi > 1e3:  # pragma: no cover - unphysical inputs
                raise ArithmeticError("Stefan condition: no root bracketed")
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if self.stefan_residual(mid) > 0.0:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * hi:
                break
        return 0.5 * (lo + hi)

    def front_depth(self, t):
        """Freezing-front depth ``X(t) = 2 xi sqrt(kappa_f t)`` [m]."""
        return 2.0 * self.xi * np.sqrt(self.kappa_frozen * np.asarray(t, dtype=float))

    def temperature(self, z, t):
        """Temperature [K] at depths z (>= 0) and time t > 0."""
        z = np.asarray(z, dtype=float)
        t = float(t)
        xi = self.xi
        kf, ku = self.kappa_frozen, self.kappa_unfrozen
        nu = xi * math.sqrt(kf / ku)
        x = 2.0 * xi * math.sqrt(kf * t)
        frozen = self.t_surface + (self.t_freeze - self.t_surface) * (
            _erf(z / (2.0 * math.sqrt(kf * t))) / math.erf(xi))
        unfrozen = self.t_initial - (self.t_initial - self.t_freeze) * (
            _erfc(z / (2.0 * math.sqrt(ku * t))) / math.erfc(nu))
        return np.where(z < x, frozen, unfrozen)
