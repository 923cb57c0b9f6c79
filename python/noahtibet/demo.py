"""The built-in demo domain: a SYNTHETIC plateau-like domain and its SYNTHETIC forcing.

Everything in this module is **synthetic**.  It is a deterministic generator of a
physically plausible but invented landscape and climate shaped loosely like the
Qinghai-Tibet Plateau, meant for demonstrations, tutorials and tests of the
whole processing chain without downloading real data.  It is *not* an
observation, a reanalysis or a model product, and nothing derived from it says
anything about the real plateau (:data:`SYNTHETIC_NOTICE`).

Geometry
    A regular latitude-longitude grid whose cell edges are CMFD cell edges
    (:mod:`noahtibet.grid`), by default 0.5 degree over 26-40 N, 73-105 E
    (64 x 28 cells, centres 73.25..104.75 E, 26.25..39.75 N), latitude
    ascending.  Any spacing that is a whole multiple of 0.1 degree works.
    The terrain is an analytic function sampled at the 0.1 degree (CMFD) cell
    centres: the elevation and slope of a coarser cell are the means of its
    0.1 degree cells, its glacier mask their covered fraction; the classes are
    derived from the cell's own fields.

Static fields (all on the grid, row 0 = south)
    elevation [m] (a high plateau of 4500-5000 m with a Himalaya-like south rim,
    Kunlun-like north rim, Qilian-like range and a Qaidam-like basin, lowlands
    outside); the study domain (the largest 4-connected region of cells with a
    mean elevation >= 3000 m); a static glacier mask
    (cells more than half covered by 0.1 degree cells above
    :data:`GLACIER_ELEVATION`); yearly lake masks 1979-2018 (discs on the
    plateau interior whose radii grow monotonically; a cell is lake when more
    than half of it is covered); the STAS soil class of each of the 20
    Noah-Tibet layers (:data:`LAYER_THICKNESS`); USGS vegetation, slope class,
    monthly LAI, green fraction and snow-free albedo, maximum snow albedo and
    the deep soil temperature TBOT (see :attr:`DemoDomain.deep_temperature`).

Forcing 1979-2018 (:class:`DemoForcingProvider`, :meth:`DemoDomain.cmfd_dataset`)
    3-hourly, generated on the fly for any cells and time range.  Air
    temperature from latitude, elevation (lapse rate 6.5 K/km plus a plateau
    heating term), season, a diurnal cycle damped by cloud, a warming trend of
    :data:`WARMING_TREND` and day-to-day weather noise; monsoon-shaped
    precipitation (summer maximum, decreasing from south-east to north-west,
    intermittent wet days and wet 3-h steps); shortwave from solar geometry
    (Spencer 1971 declination, eccentricity and equation of time; the exact
    integral of the cosine of the zenith angle over each window),
    elevation-dependent clear-sky transmissivity (FAO-56, Allen et al. 1998,
    eq. 37) and cloud attenuation (Kasten & Czeplak 1980); longwave from the
    Brutsaert (1975) clear-sky emissivity and the cloud factor (1 + 0.22 c**2)
    of Bolz (1949), c the cloud fraction; humidity from a relative-humidity
    climatology converted with the vapour pressure held at the daily-smooth
    temperature (capped at saturation)
    (Magnus formulas of WMO-No. 8, 2008); pressure from the hypsometric
    equation; wind with a plateau mean of about 3.5 m/s (windier in
    spring and in the afternoon).  Plateau-interior mean annual air
    temperature is about -4 C, about 45 % of the domain has a mean annual air
    temperature below -3 C, and annual precipitation is about 100-700 mm.

Determinism
    All randomness is *counter based*: every random number is a hash
    (SplitMix64 finaliser, Steele et al. 2014) of (seed, stream, cell key,
    day or step index), never the state of a stream.  Day-to-day weather noise
    is a finite moving-average (truncated AR(1)) filter of such numbers, plus
    a large-scale part interpolated from a 4-degree lattice of the same kind,
    so a value depends only on its cell and time: any subset of cells or of
    the time range, in any order and in any chunking, gives bit-identical
    values.  Reductions only run over fixed-length axes for the same reason.
    Across machines the integers are identical; floating point results are
    identical as long as the platform's exp/log/sin/cos are (IEEE-754
    arithmetic otherwise).

Time conventions
    Times are UTC.  The model step is 3 h (10800 s), stamped with its END.
    Internally everything is built on 1.5-h half windows: shortwave and
    longwave of a half window are its mean (shortwave: exact top-of-atmosphere
    integral; transmissivity, cloud, temperature and humidity at the
    half-window midpoint).  The provider's step mean over (t-3h, t] is the mean
    of its two half windows; a CMFD record at stamp t holds the 3-h mean
    centred on t, i.e. the mean of the half windows (t-1.5h, t] and
    (t, t+1.5h] - so both describe the same underlying series exactly.
    Precipitation is a per-step amount: the CMFD record at t (mean of the
    preceding 3 h) equals the provider's step ending at t.  Temperature,
    humidity, pressure and wind are instantaneous at the stamp in both.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .grid import Domain, LatLonGrid
from .layout import FORCING, MONTHLY
from .parameters import BEDROCK_CLASS, GRAVEL_CLASS, ColumnSpec, Tables
from .providers import ForcingProvider

__all__ = [
    "SYNTHETIC_NOTICE", "LAYER_THICKNESS", "DEFAULT_SEED", "DEFAULT_EXTENT", "FIRST_YEAR",
    "LAST_YEAR", "STEP_SECONDS", "WARMING_TREND", "DemoDomain", "DemoForcingProvider",
    "toa_mean_shortwave",
]

#: Stated on every product of this module.
SYNTHETIC_NOTICE = (
    "SYNTHETIC DATA: generated by noahtibet.demo, a deterministic synthetic plateau-like "
    "demo domain (invented terrain, soils, vegetation, lakes, glaciers and forcing). "
    "It is not an observation, reanalysis or model product and says nothing about the "
    "real Qinghai-Tibet Plateau.")

#: Noah-Tibet layer thicknesses, top to bottom [m] (20 layers, 15.2 m in total).
LAYER_THICKNESS = np.array([0.045, 0.046, 0.075, 0.123, 0.204, 0.336, 0.371, 0.3, 0.5, 0.5,
                            0.7, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
LAYER_THICKNESS.setflags(write=False)
_LAYER_BOTTOM = np.cumsum(LAYER_THICKNESS)
_LAYER_MID = _LAYER_BOTTOM - 0.5 * LAYER_THICKNESS

DEFAULT_SEED = 20240603
#: (west, south, east, north) [deg] of the default demo grid (CMFD cell edges).
DEFAULT_EXTENT = (73.0, 26.0, 105.0, 40.0)
FIRST_YEAR, LAST_YEAR = 1979, 2018
STEP_SECONDS = 10800
#: Warming trend of the synthetic air temperature [K per year] (0.35 K per decade),
#: centred on 1999-01-01 so that 1979-2018 means equal the climatology.
WARMING_TREND = 0.035

_EPOCH = np.datetime64("1979-01-01T00:00:00", "s")
_PERIOD_END = np.datetime64(f"{LAST_YEAR + 1}-01-01T00:00:00", "s")
_TREND_CENTRE_DAYS = int((np.datetime64("1999-01-01", "D")
                          - np.datetime64("1979-01-01", "D")).astype(int))
_YEAR_DAYS = 365.2425
_SOURCE = "<noahtibet.demo synthetic generator>"

# ---- physical constants (with sources) ------------------------------------------------------
SOLAR_CONSTANT = 1361.0        # W m-2, total solar irradiance (Kopp & Lean 2011)
STEFAN_BOLTZMANN = 5.670374419e-8   # W m-2 K-4 (CODATA 2018)
GRAVITY = 9.80665              # m s-2, standard gravity
R_DRY = 287.05                 # J kg-1 K-1, gas constant of dry air
P_SEA_LEVEL = 101325.0         # Pa, standard sea-level pressure
LAPSE_RATE = 0.0065            # K m-1, standard-atmosphere lapse rate
EPSILON = 0.622                # ratio of the gas constants of dry air and water vapour
T_FREEZE = 273.15              # K

# ---- synthetic-climate design constants ---------------------------------------------------
#: 0.1-degree cells above this elevation [m] count as glacier-covered.
GLACIER_ELEVATION = 5850.0
#: Study domain: cells whose mean elevation is at least this [m].
DOMAIN_ELEVATION = 3000.0
#: TBOT offset [K] over the mean annual air temperature: a geothermal gradient of
#: about 0.025 K/m over the 40 m depth of ZBOT (GENPARM ZBOT_DATA = -40 m).
DEEP_TEMPERATURE_OFFSET = 1.0
_FINE = 0.1                    # deg, the CMFD spacing the terrain is defined on
_CMFD_WEST, _CMFD_SOUTH = 70.0, 15.0
_LATTICE = 4.0                 # deg, spacing of the large-scale weather-noise lattice

# Synthetic lakes: (name, lon, lat, radius 1979 [km], radius 2018 [km]).
_LAKES = (
    ("lake A (Siling-Co-like)", 89.25, 31.75, 30.0, 52.0),
    ("lake B (Nam-Co-like)", 90.75, 30.75, 28.0, 33.0),
    ("lake C (Qinghai-like)", 100.25, 36.75, 32.0, 36.0),
    ("lake D (Zonag-like)", 91.75, 35.25, 8.0, 44.0),
    ("lake E (Dogai-Coring-like)", 87.75, 34.25, 24.0, 48.0),
)

# Hash streams.
_S_RELIEF, _S_SOIL, _S_SNOALB = 1, 2, 3
_S_T, _S_WET, _S_HUM, _S_WIND, _S_PRES = 11, 12, 13, 14, 15
_S_PAMOUNT, _S_PSLOT = 21, 22
_LOCAL, _LARGE = 0, 1

#: (stream, phi, filter length [days], large-scale share) of the day-to-day noises.
_NOISE = {
    "temperature": (_S_T, 0.65, 32, 0.85),
    "wetness": (_S_WET, 0.55, 24, 0.70),
    "humidity": (_S_HUM, 0.60, 24, 0.50),
    "wind": (_S_WIND, 0.50, 20, 0.60),
    "pressure": (_S_PRES, 0.80, 40, 0.95),
}

# ============================================================================================
# Counter-based random numbers
# ============================================================================================

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) on uint64 arrays (wrapping)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=_U64)
        x = x ^ (x >> _U64(30))
        x = x * _M1
        x = x ^ (x >> _U64(27))
        x = x * _M2
        return x ^ (x >> _U64(31))


def _hash(seed: int, *keys) -> np.ndarray:
    """uint64 hash of (seed, *keys); keys are non-negative integer arrays (broadcast)."""
    keys = [np.asarray(k).astype(np.int64).astype(_U64) for k in keys]
    shape = np.broadcast_shapes(*(k.shape for k in keys))
    h = np.full(shape, _U64(seed & 0xFFFFFFFFFFFFFFFF), dtype=_U64)
    return _hash_more(h, *keys)


def _hash_more(h: np.ndarray, *keys) -> np.ndarray:
    """Continue a hash with more keys: _hash(seed, *a, *b) == _hash_more(_hash(seed, *a), *b)
    (how draws sharing leading keys share their work)."""
    for k in keys:
        k = np.asarray(k).astype(np.int64).astype(_U64)
        with np.errstate(over="ignore"):
            h = _mix64(h ^ _mix64(k + _GOLDEN))
    return h


def _uniform(h: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) float64 from the top 53 bits of a hash."""
    return ((h >> _U64(11)).astype(np.float64) + 0.5) * (2.0 ** -53)


def _normal(seed: int, *keys) -> np.ndarray:
    """Standard normal (Box-Muller) from two hashes of the keys."""
    h = _hash(seed, *keys)
    u1 = _uniform(_hash_more(h, 0))
    u2 = _uniform(_hash_more(h, 1))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


_DAY_OFFSET = 1 << 24   # keeps day indices before 1979 non-negative in the hash


def _innovations(seed, stream, kind, ka, kb, day_lo: int, day_hi: int) -> np.ndarray:
    """(day_hi - day_lo, n) standard normal innovations of days day_lo .. day_hi - 1."""
    days = np.arange(day_lo, day_hi, dtype=np.int64) + _DAY_OFFSET
    return _normal(seed, stream, kind, ka[None, :], kb[None, :], days[:, None])


class _DayCache:
    """Innovations of consecutive requests, by key: a later request for days that overlap
    the previous one computes only the days it lacks.  Every value is a function of
    (key, cell, day) only, so what is cached never changes a result; only the last range
    per key is kept (memory: about two months of one noise for the cells)."""

    def __init__(self):
        self._store: dict = {}

    def get(self, key, lo: int, hi: int, compute) -> np.ndarray:
        old = self._store.get(key)
        if old is None or not old[0] <= lo < old[0] + old[1].shape[0]:
            e = compute(lo, hi)
        else:
            first, data = old
            have = first + data.shape[0]
            parts = [data[lo - first:min(hi, have) - first]]
            if hi > have:
                parts.append(compute(have, hi))
            e = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._store[key] = (lo, e)
        return e


class _Blocks(list):
    """The cell blocks of a request: (cell slice, _Cells, lattice, _DayCache) each."""

    @classmethod
    def of(cls, demo, rows, cols, max_cells: int, state: dict | None) -> "_Blocks":
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        key = (rows.tobytes(), cols.tobytes(), int(max_cells))
        if state is not None and state.get("key") == key:
            return state["blocks"]
        cells = demo._cells(rows, cols)
        blocks = cls()
        for c0 in range(0, cells.n, max_cells):
            cs = slice(c0, min(c0 + max_cells, cells.n))
            sub = _Cells(**{f: getattr(cells, f)[cs] for f in cells.__dataclass_fields__})
            blocks.append((cs, sub, demo._lattice(sub), _DayCache()))
        if state is not None:       # only the last set of cells is kept
            state.clear()
            state.update(key=key, blocks=blocks)
        return blocks


def _daily_noise(seed: int, stream: int, kind: int, ka: np.ndarray, kb: np.ndarray,
                 d0: int, nd: int, phi: float, length: int,
                 cache: "_DayCache | None" = None) -> np.ndarray:
    """Unit-variance autocorrelated daily noise (nd, n) for days d0..d0+nd-1.

    x[d] = sum_k c_k e[d-k], k = 0..length-1, c_k proportional to phi**k and
    normalised to unit variance: a truncated AR(1) (lag-1 correlation ~ phi) whose
    value on a day depends only on (key, day), not on the requested range.
    """
    lo = d0 - length + 1
    if cache is None:
        e = _innovations(seed, stream, kind, ka, kb, lo, d0 + nd)
    else:
        e = cache.get((stream, kind), lo, d0 + nd,
                      lambda a, b: _innovations(seed, stream, kind, ka, kb, a, b))
    coef = phi ** np.arange(length, dtype=np.float64)
    coef = coef / math.sqrt(float(np.sum(coef * coef)))
    x = np.zeros((nd, ka.size))
    for k in range(length):
        x += coef[k] * e[length - 1 - k:length - 1 - k + nd]
    return x


# ============================================================================================
# Solar geometry
# ============================================================================================

def _day_angle(t_days: np.ndarray) -> np.ndarray:
    """Spencer's day angle [rad] from days since 1979-01-01 (a 365.2425-day year)."""
    return 2.0 * np.pi * np.mod(t_days, _YEAR_DAYS) / _YEAR_DAYS


def _solar_terms(t_days):
    """(declination [rad], eccentricity factor (r0/r)**2, equation of time [h]); Spencer (1971)."""
    g = _day_angle(t_days)
    c1, s1, c2, s2, c3, s3 = (np.cos(g), np.sin(g), np.cos(2 * g), np.sin(2 * g),
                              np.cos(3 * g), np.sin(3 * g))
    decl = (0.006918 - 0.399912 * c1 + 0.070257 * s1 - 0.006758 * c2 + 0.000907 * s2
            - 0.002697 * c3 + 0.00148 * s3)
    ecc = 1.000110 + 0.034221 * c1 + 0.001280 * s1 + 0.000719 * c2 + 0.000077 * s2
    eot_min = 229.18 * (0.000075 + 0.001868 * c1 - 0.032077 * s1 - 0.014615 * c2
                        - 0.040849 * s2)
    return decl, ecc, eot_min / 60.0


def toa_mean_shortwave(t_start_s, duration_s: float, lon, lat) -> np.ndarray:
    """Mean top-of-atmosphere downward shortwave [W m-2] over windows.

    ``t_start_s``: window starts in seconds since 1979-01-01T00 UTC; ``lon``,
    ``lat`` in degrees (broadcast together).  Declination, eccentricity and
    equation of time (Spencer 1971) are taken at the window midpoint; the
    cosine of the solar zenith angle, max(0, sin(phi) sin(delta) +
    cos(phi) cos(delta) cos(omega)), is integrated exactly over the hour
    angle omega of the window (valid for windows shorter than 12 h).
    """
    t0 = np.asarray(t_start_s, dtype=np.float64)
    mid_days = (t0 + 0.5 * duration_s) / 86400.0
    decl, ecc, eot = _solar_terms(mid_days)
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    a = np.sin(phi) * np.sin(decl)
    b = np.cos(phi) * np.cos(decl)
    ws = np.arccos(np.clip(-a / b, -1.0, 1.0))          # sunset hour angle
    hours = np.mod(t0 / 3600.0, 24.0)
    lon = np.asarray(lon, dtype=np.float64)
    # hour angle at the window start at the window-midpoint equation of time, in [-pi, pi)
    w1 = np.mod((hours + lon / 15.0 + eot - 12.0) * (np.pi / 12.0) + np.pi, 2 * np.pi) - np.pi
    width = duration_s / 3600.0 * (np.pi / 12.0)
    w2 = w1 + width
    shape = np.broadcast_shapes(w1.shape, ws.shape, np.shape(a), np.shape(b))
    total = np.zeros(shape)
    # the window starts in [-pi, pi): it can meet the day [-ws, ws] and, when the sunset
    # angle ws is near pi, the next day [2 pi - ws, 2 pi + ws]; the integral is evaluated
    # only where the window meets daylight (elsewhere it adds nothing)
    for k in (0.0, 1.0):
        lo = np.maximum(w1, -ws + 2 * np.pi * k)
        hi = np.minimum(w2, ws + 2 * np.pi * k)
        lit = np.broadcast_to(hi > lo, shape)
        if not lit.any():
            continue
        lo, hi = np.broadcast_to(lo, shape)[lit], np.broadcast_to(hi, shape)[lit]
        part = np.broadcast_to(a, shape)[lit] * (hi - lo) \
            + np.broadcast_to(b, shape)[lit] * (np.sin(hi) - np.sin(lo))
        total[lit] += np.maximum(part, 0.0)
    return SOLAR_CONSTANT * ecc * total / width


# ============================================================================================
# Terrain and climatology (analytic functions of position)
# ============================================================================================

def _sig(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))   # logistic, overflow-free


def _himalaya_lat(x):
    return 28.3 + 0.022 * (x - 89.0) ** 2


def _kunlun_lat(x):
    return np.where(x < 80.0, 36.24 + 0.06 * (80.0 - x), 36.24 - 0.035 * (x - 80.0))


def _qilian_lat(x):
    return 37.6 + 0.065 * (x - 86.0)


_EAST_EDGE = 102.0


class _Relief:
    """Sum of random plane waves (seeded): smooth synthetic relief of unit variance."""

    N = 48

    def __init__(self, seed: int):
        j = np.arange(self.N)
        u = [_uniform(_hash(seed, _S_RELIEF, j, c)) for c in range(3)]
        wavelength = 0.35 * (6.0 / 0.35) ** u[0]              # deg, log-uniform 0.35..6
        direction = 2 * np.pi * u[1]
        self.kx = 2 * np.pi / wavelength * np.cos(direction)
        self.ky = 2 * np.pi / wavelength * np.sin(direction)
        self.phase = 2 * np.pi * u[2]
        amp = wavelength ** 0.8
        self.amp = amp / math.sqrt(float(np.sum(amp * amp)) / 2.0)

    def __call__(self, x, y):
        out = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))
        for j in range(self.N):
            out += self.amp[j] * np.cos(self.kx[j] * x + self.ky[j] * y + self.phase[j])
        return out


def _terrain(x, y, relief: _Relief):
    """Synthetic elevation [m] and the mountain-ridge part [m] at points (lon x, lat y)."""
    yh, yk, yq = _himalaya_lat(x), _kunlun_lat(x), _qilian_lat(x)
    # lowland bases: Indian plains (south), Sichuan / Loess (east), Tarim / Gobi (north)
    south = _sig((yh - 0.6 - y) / 0.5)
    east = _sig((x - _EAST_EDGE) / 0.5)
    base_s = 150.0 + 60.0 * (y - 26.0)
    base_e = 500.0 + 1000.0 * _sig((y - 34.0) / 0.7)
    base_n = 1200.0 + 600.0 * _sig((x - 100.0) / 1.0)
    base = south * base_s + (1 - south) * (east * base_e + (1 - east) * base_n)
    # plateau, north-eastern plateau (Qinghai-Lake-like) and a Qaidam-like basin
    plateau = _sig((y - yh) / 0.3) * _sig((yk - y) / 0.3) * _sig((_EAST_EDGE - x) / 0.5)
    between = _sig((y - yk) / 0.3) * _sig((yq - y) / 0.3) * _sig((_EAST_EDGE + 0.5 - x) / 0.5)
    ne = between * _sig((x - 98.8) / 0.5)
    basin = between * _sig((98.8 - x) / 0.5) * _sig((x - 90.5) / 0.7)
    top = (4800.0 - 1000.0 * np.clip((x - 95.0) / 7.0, 0.0, 1.0) ** 1.3
           - 60.0 * (y - 32.0))
    z = base + plateau * (top - base) + ne * (3550.0 - base) + basin * (2850.0 - base)
    # ranges: Himalaya-like (south rim), Kunlun-like (north rim), Altun/Qilian-like, an
    # interior Tanggula-like range, and a valley (Yarlung-like) behind the south rim
    ridge = (3100.0 * (1.0 - 0.4 * np.clip((x - 96.0) / 6.0, 0.0, 1.0))
             * np.exp(-((y - yh) / 0.6) ** 2)
             + (2100.0 - 800.0 * np.clip((x - 85.0) / 15.0, 0.0, 1.0))
             * np.exp(-((y - yk) / 0.45) ** 2)
             + 1800.0 * np.exp(-((y - yq) / 0.45) ** 2) * _sig((x - 86.5) / 0.5)
             * _sig((103.5 - x) / 0.5)
             + 500.0 * np.exp(-((y - 32.9) / 0.4) ** 2) * _sig((x - 87.0) / 1.0)
             * _sig((95.0 - x) / 1.0))
    valley = -700.0 * np.exp(-((y - yh - 0.9) / 0.35) ** 2) * _sig((x - 83.0) / 1.0) \
        * _sig((95.5 - x) / 0.8)
    amplitude = 100.0 + 170.0 * plateau + 0.05 * ridge
    z = z + ridge + valley + amplitude * relief(x, y)
    return np.maximum(z, 20.0), ridge


def _monsoon_index(x, y):
    """0 (dry north-west) .. 1 (wet south-east): the monsoon influence."""
    return np.clip(0.55 * (x - 78.0) / 24.0 + 0.45 * (36.5 - y) / 8.0, 0.0, 1.0)


def _annual_precipitation(x, y):
    """Climatological annual precipitation [mm]: ~100 (NW) to ~700 (SE) on the plateau,
    wetter on the windward (southern) side of the south rim, drier north of the north rim."""
    m = _monsoon_index(x, y)
    p = 95.0 * 7.5 ** m
    windward = _sig((_himalaya_lat(x) - 0.9 - y) / 0.3)
    shadow = _sig((y - _kunlun_lat(x) - 0.7) / 0.3) * _sig((99.0 - x) / 0.7)
    return p * (1.0 + 1.6 * windward) * (1.0 - 0.5 * shadow)


def _annual_air_temperature(y, z):
    """Climatological (1979-2018) mean air temperature [deg C] at latitude y, elevation z.

    A sea-level-like temperature falling with latitude, minus the 6.5 K/km
    lapse rate, plus an elevated-heating term of up to 5.5 K (high terrain is
    warmer than the free atmosphere at the same height).
    """
    return 26.8 - 0.7 * (y - 26.0) + 5.5 * np.clip(z / 4000.0, 0.0, 1.0) - LAPSE_RATE * z


def _seasonal_amplitude(y, m):
    """Half the annual range of daily mean air temperature [K]."""
    return 7.0 + 0.45 * (y - 26.0) - 1.5 * m


# ============================================================================================
# The domain
# ============================================================================================

@dataclass(frozen=True)
class _Cells:
    """Per-cell constants of the forcing generator (arrays of shape (n,))."""

    lon: np.ndarray
    lat: np.ndarray
    key_x: np.ndarray
    key_y: np.ndarray
    elevation: np.ndarray
    t_ann: np.ndarray        # deg C
    amplitude: np.ndarray    # K
    monsoon: np.ndarray
    p_ann: np.ndarray        # mm
    kappa: np.ndarray        # von Mises concentration of the precipitation season
    p_surface: np.ndarray    # Pa
    wind_base: np.ndarray    # m s-1

    @property
    def n(self) -> int:
        return int(self.lon.size)


class DemoDomain:
    """The SYNTHETIC built-in demo domain (plateau-like; see the module docstring).

    Parameters
    ----------
    spacing : float
        Grid spacing [deg], a whole multiple of 0.1 (default 0.5).
    seed : int
        Seed of every random element (terrain relief, soil depths, weather).
    extent : (west, south, east, north)
        Region [deg]; edges must be CMFD cell edges (multiples of 0.1 from
        70.0 E / 15.0 N).  Whole cells that fit are used.

    Attributes (read-only arrays on the grid, (nlat, nlon) unless stated, row 0 south)
    ----------
    grid : LatLonGrid;  domain : grid.Domain of the study (plateau) cells, which
        include glacier and lake cells (mask those per product / year);
    elevation [m]; glacier_mask (bool); lake_mask(year) (bool);
    soil_class (nlat, nlon, 20): STAS class of each layer of :data:`LAYER_THICKNESS`;
    vegetation_class: USGS class (7 grassland/alpine meadow, 9 mixed shrub/grassland
        (alpine steppe), 8 shrubland (desert steppe), 19 barren, 24 snow/ice on
        glaciers; outside the domain also 2 cropland and 15 mixed forest);
        lake cells keep their land class (USGS water has no root layer);
    slope_class: 1..3 (GENPARM SLOPE_DATA index);
    lai_monthly [m2 m-2], green_fraction_monthly [-], albedo_monthly [-] (nlat, nlon, 12);
    max_snow_albedo [-];
    mean_annual_air_temperature [K]: the 1979-2018 climatology of the forcing;
    annual_precipitation [mm]: its climatological annual total;
    deep_temperature [K]: TBOT at ZBOT = 40 m, the cell's mean annual air temperature
        plus :data:`DEEP_TEMPERATURE_OFFSET` (1 K, a geothermal gradient of about
        0.025 K/m over 40 m); a climatology, without the warming trend.
    """

    def __init__(self, spacing: float = 0.5, seed: int = DEFAULT_SEED,
                 extent: tuple[float, float, float, float] = DEFAULT_EXTENT):
        k = int(round(spacing / _FINE))
        if k < 1 or abs(spacing - k * _FINE) > 1e-9:
            raise InputError("must be a whole multiple of 0.1 degree", path=_SOURCE,
                             field="spacing", value=spacing)
        west, south, east, north = (float(v) for v in extent)
        for name, edge, origin in (("west", west, _CMFD_WEST), ("south", south, _CMFD_SOUTH),
                                   ("east", east, _CMFD_WEST), ("north", north, _CMFD_SOUTH)):
            off = (edge - origin) / _FINE
            if abs(off - round(off)) > 1e-6:
                raise InputError("is not a CMFD cell edge (a multiple of 0.1 degree)",
                                 path=_SOURCE, field=f"extent.{name}", value=edge)
        nlon = int(math.floor((east - west) / spacing + 1e-9))
        nlat = int(math.floor((north - south) / spacing + 1e-9))
        if nlon < 1 or nlat < 1:
            raise InputError("holds no whole cell", path=_SOURCE, field="extent", value=extent)
        self.seed = int(seed)
        self.spacing = round(k * _FINE, 10)
        self.grid = LatLonGrid(round(west + self.spacing / 2, 10),
                               round(south + self.spacing / 2, 10),
                               self.spacing, self.spacing, nlon, nlat)
        self._k = k
        self._relief = _Relief(self.seed)
        self._build_static()

    # ---------------------------------------------------------------- static fields ---------
    def _fine_points(self, n_per_cell: int):
        """Sample points (lon, lat) of shape (nlat*n, nlon*n): n x n per cell, cell-centred."""
        g = self.grid
        west, south, _, _ = g.bounds
        step = g.dlon / n_per_cell
        x = west + step * (np.arange(g.nlon * n_per_cell) + 0.5)
        y = south + step * (np.arange(g.nlat * n_per_cell) + 0.5)
        return np.meshgrid(x, y)

    def _block_mean(self, fine: np.ndarray, n: int) -> np.ndarray:
        g = self.grid
        return fine.reshape(g.nlat, n, g.nlon, n).mean(axis=(1, 3))

    def _build_static(self):
        g, k = self.grid, self._k
        fx, fy = self._fine_points(k)
        fz, fridge = _terrain(fx, fy, self._relief)
        # slope [%] of the 0.1 degree terrain (central differences over one fine cell)
        h = 0.05
        zx = (_terrain(fx + h, fy, self._relief)[0] - _terrain(fx - h, fy, self._relief)[0]) \
            / (2 * h * 111320.0 * np.cos(np.radians(fy)))
        zy = (_terrain(fx, fy + h, self._relief)[0] - _terrain(fx, fy - h, self._relief)[0]) \
            / (2 * h * 110570.0)
        slope_pct = 100.0 * np.hypot(zx, zy)

        self.elevation = self._block_mean(fz, k)
        ridge = self._block_mean(fridge, k)
        slope = self._block_mean(slope_pct, k)
        glacier_fraction = self._block_mean((fz >= GLACIER_ELEVATION).astype(np.float64), k)
        lon2, lat2 = np.meshgrid(g.lons, g.lats)
        self._lon2, self._lat2 = lon2, lat2

        # study domain: high cells connected to the largest high region
        high = self.elevation >= DOMAIN_ELEVATION
        self.domain = Domain(g, _largest_component(high))
        self.glacier_mask = self.domain.active & (glacier_fraction > 0.5)

        # lakes: covered fraction of each cell by each year's discs
        self._lake_cover = self._lake_cover_by_year()

        # climate
        m = _monsoon_index(lon2, lat2)
        self._monsoon = m
        self.annual_precipitation = _annual_precipitation(lon2, lat2)
        t_ann = _annual_air_temperature(lat2, self.elevation)
        self.mean_annual_air_temperature = t_ann + T_FREEZE
        self._amplitude = _seasonal_amplitude(lat2, m)
        self.deep_temperature = self.mean_annual_air_temperature + DEEP_TEMPERATURE_OFFSET

        # slope class (synthetic thresholds for the smooth 0.1 degree terrain)
        self.slope_class = np.where(slope < 2.0, 1, np.where(slope < 5.0, 2, 3)).astype(np.int32)
        mountain = (ridge > 900.0) | (self.elevation > 5300.0) | (self.slope_class == 3)

        self.vegetation_class = self._vegetation(mountain, t_ann)
        self.soil_class = self._soils(mountain)
        self._phenology(t_ann)
        jitter = _uniform(_hash(self.seed, _S_SNOALB, *self._cell_keys(lon2, lat2)))
        base = np.select([self.vegetation_class == 24, self.vegetation_class == 19,
                          np.isin(self.vegetation_class, (11, 12, 13, 14, 15))],
                         [0.85, 0.80, 0.50], 0.75)
        self.max_snow_albedo = np.round(base + 0.04 * (jitter - 0.5), 3)
        for name in ("elevation", "glacier_mask", "annual_precipitation",
                     "mean_annual_air_temperature", "deep_temperature", "slope_class",
                     "vegetation_class", "soil_class", "lai_monthly", "green_fraction_monthly",
                     "albedo_monthly", "max_snow_albedo"):
            getattr(self, name).setflags(write=False)

    @staticmethod
    def _cell_keys(lon, lat):
        """Integer keys of cell centres: position in units of 0.05 deg from 70 E / 15 N."""
        return (np.round((np.asarray(lon) - _CMFD_WEST) / 0.05).astype(np.int64),
                np.round((np.asarray(lat) - _CMFD_SOUTH) / 0.05).astype(np.int64))

    def _lake_cover_by_year(self) -> np.ndarray:
        """(nyears, nlat, nlon) lake-covered fraction of every cell, 1979..2018.

        Each lake is a disc whose radius grows from its 1979 to its 2018 value as
        ((year - 1979) / 39) ** 1.5 (faster late in the period); the covered
        fraction of a cell is estimated on 10 x 10 points per cell, so it can only
        grow with the radius.
        """
        g, n = self.grid, 10
        years = np.arange(FIRST_YEAR, LAST_YEAR + 1)
        growth = ((years - FIRST_YEAR) / (LAST_YEAR - FIRST_YEAR)) ** 1.5
        cover = np.zeros((years.size,) + g.shape)
        west, south, _, _ = g.bounds
        for _, lon, lat, r0, r1 in _LAKES:
            # the cells the largest disc can reach
            kx = 111.32 * math.cos(math.radians(lat))
            dx, dy = r1 / kx + g.dlon, r1 / 110.57 + g.dlat
            c0 = max(int(math.floor((lon - dx - west) / g.dlon)), 0)
            c1 = min(int(math.ceil((lon + dx - west) / g.dlon)), g.nlon)
            q0 = max(int(math.floor((lat - dy - south) / g.dlat)), 0)
            q1 = min(int(math.ceil((lat + dy - south) / g.dlat)), g.nlat)
            if c1 <= c0 or q1 <= q0:
                continue
            step = g.dlon / n
            px = west + g.dlon * c0 + step * (np.arange((c1 - c0) * n) + 0.5)
            py = south + g.dlat * q0 + step * (np.arange((q1 - q0) * n) + 0.5)
            px, py = np.meshgrid(px, py)
            dist = np.hypot((px - lon) * kx, (py - lat) * 110.57)
            for i, f in enumerate(growth):
                inside = (dist <= r0 + (r1 - r0) * f).astype(np.float64)
                cover[i, q0:q1, c0:c1] += inside.reshape(q1 - q0, n, c1 - c0, n).mean(axis=(1, 3))
        return np.minimum(cover, 1.0)

    def lake_mask(self, year: int) -> np.ndarray:
        """(nlat, nlon) bool: lake cells of ``year`` (inside the domain, not glacier).

        Lakes grow monotonically from 1979 to 2018; a year outside that range
        uses the nearest year of it.
        """
        i = int(np.clip(int(year), FIRST_YEAR, LAST_YEAR)) - FIRST_YEAR
        return (self._lake_cover[i] > 0.5) & self.domain.active & ~self.glacier_mask

    def _vegetation(self, mountain, t_ann) -> np.ndarray:
        """USGS classes: 7 grassland (alpine meadow), 9 mixed shrub/grassland (alpine
        steppe), 8 shrubland (desert steppe), 19 barren (high, cold or dry), 24 snow/ice
        (glaciers); outside the domain 2 cropland, 15 mixed forest, 7 grassland, 19 barren."""
        p, z = self.annual_precipitation, self.elevation
        inside = self.domain.active
        plateau = np.select([p >= 400.0, p >= 250.0, p >= 150.0], [7, 9, 8], 19)
        plateau = np.where((z > 5300.0) | (t_ann < -7.5) | mountain & (p < 250.0), 19, plateau)
        outside = np.select([p < 200.0, (z < 1000.0) & (p >= 600.0), p >= 800.0],
                            [19, 2, 15], 7)
        veg = np.where(inside, plateau, outside)
        veg = np.where(self.glacier_mask, 24, veg)
        return veg.astype(np.int32)

    def _soils(self, mountain) -> np.ndarray:
        """STAS class per layer: loams at the top, sand below, gravel at depth; bedrock
        under thin gravelly soils in mountain cells.  Transition depths vary per cell."""
        lon2, lat2 = self._lon2, self._lat2
        kx, ky = self._cell_keys(lon2, lat2)
        u = [_uniform(_hash(self.seed, _S_SOIL, kx, ky, j)) for j in range(4)]
        p = self.annual_precipitation
        wet = p >= 350.0
        d_top = 0.15 + 0.35 * u[0]                 # fine top soil [m]
        d_mid = 0.8 + 1.2 * u[1]                   # sandy loam / loamy sand to [m]
        d_sand = 2.0 + 3.0 * u[2]                  # sand to [m], gravel below
        d_rock = 1.0 + 3.0 * u[3]                  # mountain cells: bedrock below [m]
        top = np.where(wet, 7, 9)                  # LOAM (meadow) / SANDY LOAM (steppe)
        mid = np.where(wet, 9, 11)                 # SANDY LOAM / LOAMY SAND
        depth = _LAYER_MID[None, None, :]
        soil = np.where(depth < d_top[..., None], top[..., None],
                        np.where(depth < d_mid[..., None], mid[..., None],
                                 np.where(depth < d_sand[..., None], 12, GRAVEL_CLASS)))
        m_soil = np.where(depth < 0.5 * d_top[..., None], 9,
                          np.where(depth < d_rock[..., None], GRAVEL_CLASS, BEDROCK_CLASS))
        # lowlands outside the domain: deep loams (clay loam below 1 m)
        low = np.where(depth < 1.0, 7, np.where(depth < 8.0, 4, 9))
        dry = p < 150.0
        soil = np.where(dry[..., None] & (depth < d_mid[..., None]), 12, soil)
        soil = np.where(mountain[..., None], m_soil, soil)
        outside = ~self.domain.active & ~mountain & (self.elevation < 2500.0)
        soil = np.where(outside[..., None] & ~dry[..., None], low, soil)
        return soil.astype(np.int32)

    def _phenology(self, t_ann):
        """Monthly LAI, green fraction and snow-free albedo from temperature and wetness.

        Growing-season factor of month m: clip(T_month / 10 K, 0, 1), T_month the
        climatological mid-month air temperature [deg C]; wetness factor
        clip((P - 100 mm) / 500 mm, 0.1, 1).  LAI = LAIMIN + (LAIMAX - LAIMIN) *
        growth * wetness; green fraction = (0.05 + 0.8 * wetness) * growth (at
        least 0.01); albedo linear from ALBEDOMAX (no green vegetation) to ALBEDOMIN
        (maximum green fraction).
        """
        veg = Tables.load().veg
        cls = self.vegetation_class
        laimin = veg.LAIMIN[cls - 1]
        laimax = veg.LAIMAX[cls - 1]
        albmin = veg.ALBEDOMIN[cls - 1]
        albmax = veg.ALBEDOMAX[cls - 1]
        mid_day = (np.arange(12) + 0.5) * _YEAR_DAYS / 12.0
        seas = -np.cos(2 * np.pi * (mid_day - 15.0) / _YEAR_DAYS)
        t_month = t_ann[..., None] + self._amplitude[..., None] * seas
        growth = np.clip(t_month / 10.0, 0.0, 1.0)
        wet = np.clip((self.annual_precipitation - 100.0) / 500.0, 0.1, 1.0)[..., None]
        self.lai_monthly = np.round(laimin[..., None] + (laimax - laimin)[..., None]
                                    * growth * wet, 3)
        gf = np.maximum((0.05 + 0.8 * wet) * growth, 0.01)
        gf = np.where((cls == 24)[..., None], 0.01, gf)
        self.green_fraction_monthly = np.round(gf, 3)
        gmax = self.green_fraction_monthly.max(axis=-1, keepdims=True)
        self.albedo_monthly = np.round(albmax[..., None] - (albmax - albmin)[..., None]
                                       * self.green_fraction_monthly / gmax, 3)

    # ---------------------------------------------------------------- per column ------------
    def _check_cell(self, row, col):
        g = self.grid
        if not (0 <= int(row) < g.nlat and 0 <= int(col) < g.nlon):
            raise InputError(f"is outside the {g.nlat} x {g.nlon} demo grid", path=_SOURCE,
                             field="(row, col)", value=(row, col))

    def column_spec(self, row: int, col: int) -> ColumnSpec:
        """The :class:`~noahtibet.parameters.ColumnSpec` of cell (row, col) (SYNTHETIC)."""
        self._check_cell(row, col)
        gf = self.green_fraction_monthly[row, col]
        return ColumnSpec(
            layer_thickness=np.array(LAYER_THICKNESS),
            soil_class=np.array(self.soil_class[row, col]),
            vegetation_class=int(self.vegetation_class[row, col]),
            slope_class=int(self.slope_class[row, col]),
            deep_soil_temperature=float(self.deep_temperature[row, col]),
            green_fraction_min=float(gf.min()),
            green_fraction_max=float(gf.max()),
            max_snow_albedo=float(self.max_snow_albedo[row, col]),
            air_temperature_level=2.0,
            wind_level=10.0,
        )

    def monthly_parameters(self, row: int, col: int) -> np.ndarray:
        """(len(layout.MONTHLY), 12) monthly green fraction, LAI and albedo of a cell."""
        self._check_cell(row, col)
        fields = {"green_fraction": self.green_fraction_monthly, "lai": self.lai_monthly,
                  "albedo": self.albedo_monthly}
        return np.stack([fields[n][row, col] for n in MONTHLY])

    # ---------------------------------------------------------------- forcing ---------------
    def _cells(self, rows, cols) -> _Cells:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        g = self.grid
        if rows.shape != cols.shape:
            raise InputError(f"rows has {rows.size} entries but cols has {cols.size}",
                             path=_SOURCE, field="cols", value=cols.size)
        bad = (rows < 0) | (rows >= g.nlat) | (cols < 0) | (cols >= g.nlon)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"is outside the {g.nlat} x {g.nlon} demo grid", path=_SOURCE,
                             field="(row, col)", value=(int(rows[i]), int(cols[i])))
        lon, lat = g.lons[cols], g.lats[rows]
        kx, ky = self._cell_keys(lon, lat)
        z = self.elevation[rows, cols]
        t_ann = self.mean_annual_air_temperature[rows, cols] - T_FREEZE
        m = self._monsoon[rows, cols]
        # hypsometric equation with the mean temperature of a layer from the surface down
        # to sea level along the standard lapse rate
        t_layer = t_ann + T_FREEZE + 0.5 * LAPSE_RATE * z
        p_surface = P_SEA_LEVEL * np.exp(-GRAVITY * z / (R_DRY * t_layer))
        wind = 2.0 + 1.8 * np.clip((z - 1000.0) / 3500.0, 0.0, 1.0)
        return _Cells(lon=lon, lat=lat, key_x=kx, key_y=ky, elevation=z, t_ann=t_ann,
                      amplitude=self._amplitude[rows, cols], monsoon=m,
                      p_ann=self.annual_precipitation[rows, cols], kappa=1.2 + 1.5 * m,
                      p_surface=p_surface, wind_base=wind)

    @staticmethod
    def _lattice(cells: _Cells):
        """Large-scale noise lattice of cells: (nodes (2, nnode), inverse (4, n), corner
        weights (4 arrays (n,)), norm (n,))."""
        gx = (cells.lon - _CMFD_WEST) / _LATTICE
        gy = (cells.lat - _CMFD_SOUTH) / _LATTICE
        i0, j0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        fx, fy = gx - i0, gy - j0
        corners = ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                   (0, 1, (1 - fx) * fy), (1, 1, fx * fy))
        node_i = np.concatenate([i0 + di for di, _, _ in corners])
        node_j = np.concatenate([j0 + dj for _, dj, _ in corners])
        nodes, inverse = np.unique(np.stack([node_i, node_j]), axis=1, return_inverse=True)
        inverse = inverse.reshape(4, -1)
        norm = np.zeros(cells.n)
        for _, _, w in corners:
            norm += w * w
        return nodes, inverse, [w for _, _, w in corners], norm

    def _noise(self, name: str, cells: _Cells, d0: int, nd: int, lattice=None,
               cache: "_DayCache | None" = None) -> np.ndarray:
        """(nd, ncell) unit-variance daily noise: large-scale (lattice) + local parts.

        ``lattice`` (:meth:`_lattice` of ``cells``) and ``cache`` (innovations of the
        previous request for the same cells) only save work."""
        stream, phi, length, share = _NOISE[name]
        local = _daily_noise(self.seed, stream, _LOCAL, cells.key_x, cells.key_y, d0, nd, phi,
                             length, cache)
        nodes, inverse, weights, norm = lattice if lattice is not None else self._lattice(cells)
        series = _daily_noise(self.seed, stream, _LARGE, nodes[0], nodes[1], d0, nd, phi, length,
                              cache)
        large = np.zeros_like(local)
        for c, w in enumerate(weights):
            large += w * series[:, inverse[c]]
        large /= np.sqrt(norm)
        return share * large + math.sqrt(1.0 - share * share) * local

    @staticmethod
    def _noise_days(t_end: np.ndarray) -> tuple[int, int]:
        """First day and number of days whose noise the stamps ``t_end`` need (linear
        interpolation between day centres of the state at t - 3 h .. t + 1.5 h)."""
        first = int(np.floor((t_end.min() - STEP_SECONDS) / 86400.0 - 0.5))
        last = int(np.floor((t_end.max() + STEP_SECONDS // 2) / 86400.0 - 0.5)) + 1
        return first, last - first + 1

    def _generate(self, cells: _Cells, step_end_s: np.ndarray, centred: bool,
                  noise_of=None) -> dict[str, np.ndarray]:
        """Forcing at stamps ``step_end_s`` [s since 1979-01-01 UTC], arrays (nt, ncell).

        temp, pres, shum, wind: instantaneous at the stamp t; prec: mean rate of the
        step (t-3h, t] [kg m-2 s-1]; sw, lw: mean over (t-3h, t] or, if ``centred``,
        over (t-1.5h, t+1.5h) - in both cases the mean of two 1.5-h half windows,
        each a function of its start time only.  ``noise_of(d0, nd)``: the daily noises
        of days d0 .. d0+nd-1 (a name -> (nd, ncell) mapping), if already at hand.
        """
        t_end = np.asarray(step_end_s, dtype=np.int64)
        half = STEP_SECONDS // 2
        d0, nd = self._noise_days(t_end)
        noise = (noise_of(d0, nd) if noise_of is not None
                 else {name: self._noise(name, cells, d0, nd) for name in _NOISE})

        def interp_weights(t_s):
            u = t_s / 86400.0 - 0.5
            d = np.floor(u)
            return (d - d0).astype(np.int64), (u - d)[:, None]

        def interp(x, where):
            idx, f = where
            a = x[idx]
            return a + f * (x[idx + 1] - a)

        monsoon = cells.monsoon[None, :]
        kappa = cells.kappa[None, :]
        e2k = np.exp(-2.0 * kappa)
        diurnal_base = 4.0 + 3.0 * (1.0 - monsoon)
        lon_h = cells.lon[None, :] / 15.0

        def state(t_s):
            """Cloud fraction, air temperature [K] and vapour pressure [Pa] at times t_s."""
            t_s = t_s.astype(np.float64)
            where = interp_weights(t_s)
            t_days = t_s / 86400.0
            cos_season = np.cos(2 * np.pi * (t_days - 15.0) / _YEAR_DAYS)[:, None]  # 1 mid-Jan
            cos_theta = np.cos(2 * np.pi * (t_days - 200.0) / _YEAR_DAYS)[:, None]  # monsoon
            shape = (np.exp(kappa * (cos_theta - 1.0)) - e2k) / (1.0 - e2k)  # 0..1, 1 at peak
            wet = interp(noise["wetness"], where)
            c_clim = np.clip(0.40 + 0.25 * monsoon + 0.35 * shape, 0.05, 0.92)
            cloud = 1.0 / (1.0 + (1.0 - c_clim) / c_clim * np.exp(-1.4 * wet))
            hour = np.mod(t_s / 3600.0, 24.0)[:, None]
            trend = (WARMING_TREND * (t_days - _TREND_CENTRE_DAYS) / _YEAR_DAYS)[:, None]
            t_smooth = (cells.t_ann[None, :] + T_FREEZE - cells.amplitude[None, :] * cos_season
                        + trend + (2.5 + 0.9 * cos_season) * interp(noise["temperature"], where))
            temp = t_smooth + diurnal_base * (1.0 - 0.5 * cloud) \
                * np.cos((2 * np.pi / 24.0) * (hour + lon_h - 14.5))
            rh = np.clip(0.30 + 0.25 * monsoon + 0.30 * shape
                         + 0.08 * wet + 0.07 * interp(noise["humidity"], where), 0.08, 0.98)
            e = np.minimum(rh * _saturation_vapour_pressure(t_smooth),
                           _saturation_vapour_pressure(temp))
            return cloud, temp, e, where

        out: dict[str, np.ndarray] = {}
        # ---- stamps: instantaneous values
        _, temp, e, where = state(t_end)
        t_days = t_end / 86400.0
        local_h = np.mod(t_end / 3600.0, 24.0)[:, None] + lon_h
        pres = cells.p_surface[None, :] * (1.0 + 0.004 * interp(noise["pressure"], where))
        out["temp"] = temp
        out["pres"] = pres
        out["shum"] = EPSILON * e / (pres - (1.0 - EPSILON) * e)
        windy = 1.0 + 0.25 * np.cos(2 * np.pi * (t_days - 75.0) / _YEAR_DAYS)[:, None]
        gust = 1.0 + 0.3 * np.cos(2 * np.pi * (local_h - 15.0) / 24.0)
        out["wind"] = np.maximum(cells.wind_base[None, :] * windy * gust
                                 * np.exp(0.35 * interp(noise["wind"], where) - 0.06125), 0.3)
        # ---- half windows: radiation
        out["sw"] = np.zeros_like(temp)
        out["lw"] = np.zeros_like(temp)
        for offset in ((half, 0) if centred else (STEP_SECONDS, half)):
            start = t_end - offset
            mid = start + half // 2 + (half % 2) * 0.5
            cloud, temp_m, e_m, _ = state(np.asarray(mid, dtype=np.float64))
            toa = toa_mean_shortwave(start[:, None].astype(np.float64), float(half),
                                     cells.lon[None, :], cells.lat[None, :])
            clear = 0.75 + 2.0e-5 * cells.elevation[None, :]          # FAO-56 eq. 37
            out["sw"] += 0.5 * (toa * clear * (1.0 - 0.75 * np.exp(3.4 * np.log(cloud))))
            e_hpa = e_m / 100.0
            eps_clear = 1.24 * (e_hpa / temp_m) ** (1.0 / 7.0)        # Brutsaert (1975)
            eps = np.minimum(eps_clear * (1.0 + 0.22 * cloud * cloud), 1.0)   # Bolz (1949)
            out["lw"] += 0.5 * (eps * STEFAN_BOLTZMANN * temp_m ** 4)
        # ---- precipitation: daily wet/dry and amount, shared out over the 8 steps of the day
        step_start = t_end - STEP_SECONDS
        day = np.floor_divide(step_start, 86400)
        slot = (step_start - day * 86400) // STEP_SECONDS
        days = np.arange(day.min(), day.max() + 1)
        day_mid = (days + 0.5)
        theta = 2 * np.pi * (day_mid - 200.0) / _YEAR_DAYS
        kappa = cells.kappa[None, :]
        # mm/day: the annual total spread over the year as a von Mises density
        rate = (cells.p_ann[None, :] / _YEAR_DAYS) \
            * np.exp(kappa * (np.cos(theta)[:, None] - 1.0)) / (np.i0(kappa) * np.exp(-kappa))
        prob = rate / (rate + 3.0)                                     # wet-day probability
        z = noise["wetness"][days - d0]                                # day-centre wetness
        wet_day = _normal_cdf(z) > 1.0 - prob
        dkey = (days + _DAY_OFFSET)[:, None]
        h_amount = _hash(self.seed, _S_PAMOUNT, cells.key_x[None, :], cells.key_y[None, :], dkey)
        amount_u = [_uniform(_hash_more(h_amount, j)) for j in range(2)]
        gamma2 = -0.5 * (np.log(amount_u[0]) + np.log(amount_u[1]))  # Gamma(2, 1/2): mean 1
        amount = np.where(wet_day, (rate + 3.0) * gamma2, 0.0)         # mm per day
        # sub-daily shares: afternoon/evening maximum (local time), ~40 % of steps dry
        weights = np.zeros((8,) + amount.shape)
        h_slot = _hash(self.seed, _S_PSLOT, cells.key_x[None, :], cells.key_y[None, :], dkey)
        for s in range(8):
            hour = (3 * s + 1.5) + cells.lon[None, :] / 15.0
            shape_s = 1.0 + 0.6 * np.cos(2 * np.pi * (hour - 19.0) / 24.0)
            u = _uniform(_hash_more(h_slot, s))
            ex = -np.log(u)
            weights[s] = shape_s * np.maximum(ex - 0.5, 0.0) + 1e-12 * shape_s * ex
        total = weights[0].copy()
        for s in range(1, 8):
            total += weights[s]
        share = weights / total[None]
        share = np.where(share < 1e-9, 0.0, share)
        di = day - days[0]
        picked = share[slot, di, :] * amount[di, :]
        out["prec"] = picked / STEP_SECONDS                            # mm = kg m-2
        return out

    def _fill(self, rows, cols, stamps_s: np.ndarray, centred: bool, sink,
              max_points: int = 40_000, max_cells: int = 512, min_steps: int = 8,
              state: dict | None = None) -> None:
        """Generate in blocks of at most ``max_cells`` cells x max(min_steps,
        max_points // cells) stamps and hand each block to ``sink(tslice, cslice,
        values)``; blocks never change the values, only the working memory.
        ``state``: a dict the caller keeps between calls, in which the cells' constants
        and the noise innovations of the last request are kept for the next request of
        the same cells (a month after a month: only the new days are drawn)."""
        nt = stamps_s.size
        if nt == 0:
            return
        blocks = _Blocks.of(self, rows, cols, max_cells, state)
        # each cell block's daily noises for the whole request, computed once: a noise
        # value depends only on (cell, day), so slicing never changes it
        D0, ND = self._noise_days(np.asarray(stamps_s, dtype=np.int64))
        for cs, sub, lattice, cache in blocks:
            noise = {name: self._noise(name, sub, D0, ND, lattice, cache) for name in _NOISE}

            def noise_of(d0, nd, noise=noise):
                return {k: v[d0 - D0:d0 - D0 + nd] for k, v in noise.items()}

            per = max(min_steps, max_points // sub.n)
            for t0 in range(0, nt, per):
                ts = slice(t0, min(t0 + per, nt))
                sink(ts, cs, self._generate(sub, stamps_s[ts], centred, noise_of))

    def cmfd_dataset(self, start, end, bbox=None):
        """SYNTHETIC forcing in the CMFD file layout, months ``start``..``end`` inclusive.

        ``start``/``end``: "YYYY-MM" (or numpy datetime64), within 1979-01..2018-12.
        ``bbox``: optional (west, south, east, north) [deg]: cells whose centres lie
        inside.  Returns an xarray Dataset with dimensions (time, lat, lon), latitude
        ascending, 8 records a day at 00, 03, ..., 21 UTC and the CMFD variables in SI
        units: temp [K], pres [Pa], shum [kg kg-1], wind [m s-1] instantaneous at the
        stamp; srad, lrad [W m-2] the 3-h mean centred on the stamp; prec
        [kg m-2 s-1] the mean of the preceding 3 h.  Every cell of the rectangle is
        generated (also outside the study domain).
        """
        import xarray as xr

        m0, m1 = _month(start, "start"), _month(end, "end")
        if m1 < m0:
            raise InputError(f"is before start {m0}", path=_SOURCE, field="end", value=str(m1))
        first = np.datetime64(m0, "s")
        stop = np.datetime64(m1 + np.timedelta64(1, "M"), "s")
        grid, rs, cs = (self.grid, slice(0, self.grid.nlat), slice(0, self.grid.nlon)) \
            if bbox is None else self.grid.subgrid(tuple(bbox))
        rr, cc = np.meshgrid(np.arange(rs.start, rs.stop), np.arange(cs.start, cs.stop),
                             indexing="ij")
        stamps = np.arange(first, stop, np.timedelta64(STEP_SECONDS, "s"))
        t = (stamps - _EPOCH).astype(np.int64)
        names = ("temp", "pres", "shum", "wind", "sw", "lw", "prec")
        f = {n: np.empty((t.size, rr.size)) for n in names}

        def sink(ts, cs, values):
            for n in names:
                f[n][ts, cs] = values[n]

        self._fill(rr.ravel(), cc.ravel(), t, True, sink)
        shape = (t.size, grid.nlat, grid.nlon)

        def grid_of(a):
            return a.reshape(shape)

        specs = {
            "temp": (f["temp"], "K", "air_temperature", "near-surface air temperature",
                     "instantaneous at the stamp"),
            "pres": (f["pres"], "Pa", "surface_air_pressure", "surface pressure",
                     "instantaneous at the stamp"),
            "shum": (f["shum"], "kg kg-1", "specific_humidity",
                     "near-surface specific humidity", "instantaneous at the stamp"),
            "wind": (f["wind"], "m s-1", "wind_speed", "near-surface wind speed",
                     "instantaneous at the stamp"),
            "srad": (f["sw"], "W m-2", "surface_downwelling_shortwave_flux_in_air",
                     "surface downward shortwave radiation",
                     "mean over the 3 hours centred on the stamp"),
            "lrad": (f["lw"], "W m-2", "surface_downwelling_longwave_flux_in_air",
                     "surface downward longwave radiation",
                     "mean over the 3 hours centred on the stamp"),
            "prec": (f["prec"], "kg m-2 s-1", "precipitation_flux", "precipitation rate",
                     "mean over the 3 hours before the stamp"),
        }
        data_vars = {}
        for name, (values, units, std, long_name, timing) in specs.items():
            data_vars[name] = (("time", "lat", "lon"), grid_of(values),
                               {"units": units, "standard_name": std,
                                "long_name": f"{long_name} (SYNTHETIC)", "timing": timing,
                                "comment": SYNTHETIC_NOTICE})
        ds = xr.Dataset(
            data_vars,
            coords={"time": ("time", stamps.astype("datetime64[ns]"), {"long_name": "time (UTC)"}),
                    "lat": ("lat", grid.lats, {"units": "degrees_north",
                                               "standard_name": "latitude"}),
                    "lon": ("lon", grid.lons, {"units": "degrees_east",
                                               "standard_name": "longitude"})})
        ds.attrs.update({
            "title": "SYNTHETIC CMFD-layout forcing of the noahtibet demo domain",
            "synthetic": "yes",
            "synthetic_notice": SYNTHETIC_NOTICE,
            "source": f"noahtibet.demo (seed {self.seed}, spacing {self.spacing} deg)",
            "comment": SYNTHETIC_NOTICE,
        })
        return ds

    def describe(self) -> str:
        return (f"SYNTHETIC noahtibet demo domain: {self.grid.nlat} x {self.grid.nlon} cells of "
                f"{self.spacing} deg, {self.domain.ncells} study cells, seed {self.seed}")


class DemoForcingProvider(ForcingProvider):
    """:class:`~noahtibet.providers.ForcingProvider` of the SYNTHETIC demo forcing.

    3-h steps stamped with their end, 1979-01-01T03 .. 2019-01-01T00 UTC; values
    in the kernel's variables and units (:data:`noahtibet.layout.FORCING`):
    wind, air temperature, specific humidity and pressure instantaneous at the
    step end; shortwave, longwave and precipitation means over the step.
    Only the requested cells are generated.
    """

    step_seconds = STEP_SECONDS

    def __init__(self, demo: DemoDomain, max_points: int = 40_000):
        """``max_points``: (steps x cells) generated at a time, which bounds the working
        memory (about 1 kB per point); it never changes the values."""
        self.demo = demo
        self.grid = demo.grid
        self.max_points = int(max_points)
        self._state: dict = {}     # the last request's cells and noise innovations

    def read(self, rows, cols, start, end):
        t0 = _stamp(start, "start")
        t1 = _stamp(end, "end")
        if t1 <= t0:
            raise InputError(f"must be after start {t0}", path=_SOURCE, field="end", value=str(t1))
        if t0 < _EPOCH or t1 > _PERIOD_END:
            raise InputError(f"the demo forcing covers {_EPOCH} .. {_PERIOD_END} (step ends "
                             f"after the first)", path=_SOURCE, field="start/end",
                             value=f"{t0} .. {t1}")
        s0 = int((t0 - _EPOCH).astype(np.int64))
        s1 = int((t1 - _EPOCH).astype(np.int64))
        ends = np.arange(s0 + STEP_SECONDS, s1 + 1, STEP_SECONDS, dtype=np.int64)
        rows = np.asarray(rows).ravel()
        out = self.empty(ends.size, rows.size)
        index = {"wind": "wind", "air_temperature": "temp", "specific_humidity": "shum",
                 "pressure": "pres", "shortwave": "sw", "longwave": "lw",
                 "precipitation": "prec"}

        def sink(ts, cs, values):
            for i, name in enumerate(FORCING):
                out[ts, i, cs] = values[index[name]]

        self.demo._fill(rows, cols, ends, False, sink, self.max_points, state=self._state)
        return _EPOCH + ends.astype("timedelta64[s]"), out

    def describe(self) -> str:
        return "DemoForcingProvider: " + self.demo.describe() + " - " + SYNTHETIC_NOTICE


# ============================================================================================
# helpers
# ============================================================================================

def _saturation_vapour_pressure(t_k: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure [Pa] over water (t >= 0 C) or ice (t < 0 C).

    Magnus formulas of WMO-No. 8 (2008), Annex 4.B: 611.2 exp(17.62 t / (243.12 + t))
    over water and 611.2 exp(22.46 t / (272.62 + t)) over ice, t in deg C.
    """
    tc = t_k - T_FREEZE
    over_water = tc >= 0.0
    a = np.where(over_water, 17.62, 22.46)
    b = np.where(over_water, 243.12, 272.62)
    return 611.2 * np.exp(a * tc / (b + tc))


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                         + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean grid (ties: the first found)."""
    nlat, nlon = mask.shape
    label = np.zeros(mask.shape, dtype=np.int64)
    best, best_size, current = 0, 0, 0
    for r0, c0 in zip(*np.nonzero(mask)):
        if label[r0, c0]:
            continue
        current += 1
        label[r0, c0] = current
        size, queue = 0, deque([(r0, c0)])
        while queue:
            r, c = queue.popleft()
            size += 1
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < nlat and 0 <= cc < nlon and mask[rr, cc] and not label[rr, cc]:
                    label[rr, cc] = current
                    queue.append((rr, cc))
        if size > best_size:
            best, best_size = current, size
    return label == best if best else np.zeros(mask.shape, dtype=bool)


def _stamp(value, field: str) -> np.datetime64:
    """A step-end time as datetime64[s], on the 3-hour grid (00, 03, ... UTC)."""
    try:
        t = np.datetime64(value, "s")
    except (ValueError, TypeError) as exc:
        raise InputError(f"is not a time ({exc})", path=_SOURCE, field=field, value=value) from None
    if np.isnat(t):
        raise InputError("is not a time", path=_SOURCE, field=field, value=value)
    if int((t - _EPOCH).astype(np.int64)) % STEP_SECONDS:
        raise InputError("is not on the 3-hourly step grid (00, 03, ..., 21 UTC)",
                         path=_SOURCE, field=field, value=str(t))
    return t


def _month(value, field: str) -> np.datetime64:
    try:
        m = np.datetime64(value, "M")
    except (ValueError, TypeError) as exc:
        raise InputError(f"is not a month YYYY-MM ({exc})", path=_SOURCE, field=field,
                         value=value) from None
    lo, hi = np.datetime64(f"{FIRST_YEAR}-01"), np.datetime64(f"{LAST_YEAR}-12")
    if np.isnat(m) or not lo <= m <= hi:
        raise InputError(f"must be a month within {FIRST_YEAR}-01..{LAST_YEAR}-12", path=_SOURCE,
                         field=field, value=str(value))
    return m
