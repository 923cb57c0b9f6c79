"""One grid cell of a gridded run as a legacy point-forcing file.

Modellers compare noahtibet with the legacy Noah-Tibet code by running both on
the same inputs.  :func:`export_cell` writes, for one simulated cell of a run
configuration, the text file the legacy driver reads (spec/physics.md
sections 1.2-1.3: ``&METADATA_NAMELIST`` header, ``<Forcing>`` records in the
fixed format ``(I4.4, 4(1x,I2.2), 8(F17.10))``): the cell's forcing exactly as
the gridded run receives it (one record per model step, stamped as the
provider stamps it, so the legacy driver uses every record as it is, without
interpolation), its layers, soil classes, vegetation, slope, deep temperature,
monthly green fraction and LAI, physics options, and an initial state: the
run's restart at the start of the exported years (the spun-up state) or the
cold start.  ``noahtibet point`` reads the same file, so one file serves both
models, and ``noahtibet compare-legacy`` compares their outputs.

Conversions (the inverses of the legacy reader's): pressure Pa -> hPa;
specific humidity ->
relative humidity [%] by inverting the reader's NCEP formula, so that the
reader gives back the specific humidity (to the text precision) unless one of
its clamps applies (q < 1e-6, q >= 0.99 q_sat: such steps are counted).  Wind
direction is not used by the physics and is written as 0.  Precipitation is
written in 17-character exponent form (F input editing reads it), the other
fields as F17.10.

What the file cannot carry, and is therefore checked or reported:

* parameters: the legacy model takes them from its tables by class; a cell
  whose parameters differ from the tables (``[parameters]`` overrides, a
  calibrated member) is refused.  The export rebuilds the column's parameters
  from the written namelist and checks that they equal the run's, value for
  value;
* physics: the legacy code has the Noah-Tibet thermal conductivity and ice
  impedance compiled in and always the legacy quirks; other options are refused
  (quirks off: a warning);
* initial surface state: the legacy driver starts with emissivity 0.96,
  exchange coefficients 1e-4, the albedo and roughness of the monthly tables
  and a fresh snow age.  The export writes the restart's albedo and roughness as
  constant monthly values (used only for the initial state, as ``Usemonalb`` is
  off), so only the emissivity, exchange coefficients and snow age differ
  from the gridded run at the first step.

A JSON file next to the export (``<output>.json``) records the configuration,
cell, period, state source, the parameter check and the clamp counts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, layout
from .config import Config
from .errors import ConfigError, InputError

log = logging.getLogger("noahtibet")

#: Physics the legacy Noah-Tibet code has compiled in (spec 1.1: OPT_TCND = 2, ice impedance).
LEGACY_THERMAL_CONDUCTIVITY = "noah_tibet"
LEGACY_FROZEN_SOIL_HYDRAULICS = "ice_impedance"
SFCDIF_OPTION = {"chen97": 0, "myj": 1, "yang08": 2}

RECORD_WIDTH = 17
EPS = 0.622


@dataclass
class ExportResult:
    path: Path
    metadata_path: Path
    cell: tuple[int, int]
    steps: int
    state_source: str
    humidity_clamped_low: int = 0
    humidity_clamped_high: int = 0
    warnings: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Unit conversions
# --------------------------------------------------------------------------------------------

def saturation_vapour_pressure(temperature) -> np.ndarray:
    """The legacy reader's saturation vapour pressure [Pa] (NCEP v2.7.1 EsFuncT, spec 1.3)."""
    t = np.asarray(temperature, dtype=np.float64)
    lw = 2.501e6 - (4187.0 - 1870.0) * (t - 273.15)
    return 611.2 * np.exp(lw * (1.0 / 273.15 - 1.0 / t) / 461.5)


def relative_humidity_percent(temperature, pressure, specific_humidity) -> np.ndarray:
    """RH [%] that the legacy reader turns back into ``specific_humidity``.

    The reader computes e = p svp rhf / (p - svp (1 - rhf)) and q = eps e / (p - (1 - eps) e)
    (spec 1.3); inverted: e = q p / (eps + (1 - eps) q), rhf = e (p - svp) / (svp (p - e)).
    """
    p = np.asarray(pressure, dtype=np.float64)
    q = np.asarray(specific_humidity, dtype=np.float64)
    svp = saturation_vapour_pressure(temperature)
    e = q * p / (EPS + (1.0 - EPS) * q)
    return 100.0 * e * (p - svp) / (svp * (p - e))


def legacy_clamps(temperature, pressure, specific_humidity) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the steps where the legacy reader's humidity clamps change q (low, high)."""
    p = np.asarray(pressure, dtype=np.float64)
    q = np.asarray(specific_humidity, dtype=np.float64)
    svp = saturation_vapour_pressure(temperature)
    qs = EPS * svp / (p - (1.0 - EPS) * svp)
    return q < 0.1e-5, q >= qs


def _field(value: float, exponent: bool = False) -> str:
    text = f"{value:17.10E}" if exponent else f"{value:17.10f}"
    if len(text) != RECORD_WIDTH:
        raise ValueError(f"value {value!r} does not fit a {RECORD_WIDTH}-character field")
    return text


def format_records(times: np.ndarray, forcing: np.ndarray) -> list[str]:
    """Forcing records (steps, layout.FORCING) in the legacy fixed format."""
    fi = {n: layout.index(layout.FORCING, n) for n in layout.FORCING}
    t = forcing[:, fi["air_temperature"]]
    p = forcing[:, fi["pressure"]]
    rh = relative_humidity_percent(t, p, forcing[:, fi["specific_humidity"]])
    precip = forcing[:, fi["precipitation"]]               # kg m-2 s-1, as the kernel's
    precip = np.where(precip < 1e-99, 0.0, precip)
    stamps = np.asarray(times, dtype="datetime64[m]")
    lines = []
    for i, stamp in enumerate(stamps):
        s = str(stamp)   # YYYY-MM-DDTHH:MM
        head = f"{s[0:4]} {s[5:7]} {s[8:10]} {s[11:13]} {s[14:16]}"
        values = (forcing[i, fi["wind"]], 0.0, t[i], rh[i], p[i] / 100.0,
                  forcing[i, fi["shortwave"]], forcing[i, fi["longwave"]])
        lines.append(head + "".join(_field(v) for v in values) + _field(precip[i], exponent=True))
    return lines


# --------------------------------------------------------------------------------------------
# Namelist
# --------------------------------------------------------------------------------------------

def _nl_value(value) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return " ".join(_nl_value(v) for v in value)


def format_namelist(values: dict) -> list[str]:
    return ["&METADATA_NAMELIST"] + [f"{k} = {_nl_value(v)}" for k, v in values.items()] + ["/"]


HEADER = [
    "-" * 152,
    " UTC date/time        windspeed       wind dir         temperature      humidity        "
    "pressure           shortwave      longwave          precipitation",
    "yyyy mm dd hh mi       m s{-1}        degrees               K               %             "
    "hPa               W m{-2}        W m{-2}          kg m{-2} s{-1}",
    "-" * 152,
]


# --------------------------------------------------------------------------------------------
# The export
# --------------------------------------------------------------------------------------------

def _initial_state(cfg: Config, model, cell_index: int, start_year: int, layer_par, column_par,
                   state: str):
    """(ColumnState of one column, description) at the start of start_year."""
    from .simulation import cold_start_state, read_restart

    restart_dir = Path(cfg.output.directory) / "restart"
    if state in ("auto", "restart"):
        candidates = [restart_dir / f"transient_{start_year - 1:04d}.nc"]
        if start_year == cfg.run.start_year:
            candidates += sorted(restart_dir.glob("spinup_cycle_*.nc"))[-1:]
        found = [p for p in candidates if p.is_file()]
        if found:
            from .simulation import config_digest

            st, _, info, _ = read_restart(found[0])
            if info.get("config_digest") not in (None, config_digest(cfg)):
                raise InputError("restart was written with a different configuration",
                                 path=str(found[0]), field="config_digest",
                                 value=info.get("config_digest"))
            from .kernel import ColumnState

            one = ColumnState(st.stc[cell_index:cell_index + 1].copy(),
                              st.smc[cell_index:cell_index + 1].copy(),
                              st.sh2o[cell_index:cell_index + 1].copy(),
                              st.surface[cell_index:cell_index + 1].copy())
            return one, f"restart {found[0]}"
        if state == "restart":
            raise InputError(f"no restart holds the state at the start of {start_year} "
                             f"(looked for {', '.join(str(p) for p in candidates)})",
                             path=str(restart_dir), field="state", value="restart")
    st = cold_start_state(layer_par[None], column_par[None], cfg.spinup.initial_moisture_fraction)
    return st, "cold start (no spin-up)"


def locate_cell(cfg: Config, model, lon: float, lat: float, prepare: bool = True
                ) -> tuple[int, int, int]:
    """(row, col, column index) of the simulated cell containing (lon, lat); a ConfigError
    when it is not simulated.  With ``prepare``, the model's per-cell inputs of that cell
    are computed (as build_local_columns does for a rank's cells)."""
    r, c = (int(v) for v in model.grid.index_of(lon, lat))
    rows_all, cols_all = model.simulated.cell_rows_cols
    hit = np.flatnonzero((rows_all == r) & (cols_all == c))
    if r < 0 or hit.size == 0:
        raise ConfigError("is not a simulated cell of this run (outside the domain, glacier or "
                          "without static data)", path=cfg.path, field="cell",
                          value=f"{lon} E {lat} N")
    if prepare and getattr(model, "prepare", None) is not None:   # e.g. TBOT from the forcing
        model.prepare(np.array([r]), np.array([c]))
    return r, c, int(hit[0])


def export_cell(cfg: Config, lon: float, lat: float, start_year: int, end_year: int,
                output, state: str = "auto", model=None) -> ExportResult:
    """Write the legacy point-forcing file of the simulated cell containing (lon, lat).

    ``state``: ``restart`` (the run's restart at the start of ``start_year``: the state
    after ``start_year - 1``, or after spin-up when ``start_year`` is the run's first
    year), ``cold`` (the gridded run's cold start) or ``auto`` (restart if there is
    one, else cold).
    """
    from .legacy_forcing import read_point_file
    from .parameters import column_parameters
    from .point import column_spec_for_case
    from .simulation import build_model, month_starts, physics_options

    if state not in ("auto", "restart", "cold"):
        raise ConfigError("must be auto, restart or cold", path=cfg.path, field="state",
                          value=state)
    if end_year < start_year:
        raise ConfigError("the last year is before the first", path=cfg.path, field="years",
                          value=(start_year, end_year))
    model = model or build_model(cfg)
    warnings = []

    # physics the legacy code can run
    opts = physics_options(cfg)
    for name, legacy in (("thermal_conductivity", LEGACY_THERMAL_CONDUCTIVITY),
                         ("frozen_soil_hydraulics", LEGACY_FROZEN_SOIL_HYDRAULICS)):
        if getattr(opts, name) != legacy:
            raise ConfigError(f"the legacy Noah-Tibet code has '{legacy}' compiled in; this "
                              "run's physics cannot be reproduced by it",
                              path=cfg.path, field=f"physics.{name}", value=getattr(opts, name))
    if not opts.legacy_quirks:
        warnings.append("physics.legacy_quirks is off in this run; the legacy code always has "
                        "the quirks Q1-Q5, so the two models differ by them")
    if cfg.parameters.column or cfg.parameters.layer:
        names = sorted(set(cfg.parameters.column) | set(cfg.parameters.layer))
        raise ConfigError("the legacy model takes parameters from its tables by class; a point "
                          "file cannot carry overridden parameters", path=cfg.path,
                          field="parameters", value=", ".join(names))

    r, c, cell_index = locate_cell(cfg, model, lon, lat)
    spec = model.column_spec(r, c)
    if spec.overrides or spec.layer_overrides:
        raise ConfigError("this cell's parameters differ from the tables; a point file cannot "
                          "carry them", path=cfg.path, field="parameters",
                          value=", ".join(sorted({**spec.overrides, **spec.layer_overrides})))
    layer_par, column_par = column_parameters(spec)
    monthly = model.monthly(r, c)
    st, state_source = _initial_state(cfg, model, cell_index, start_year, layer_par, column_par,
                                      state)

    # forcing, a month at a time, exactly as the gridded run reads it
    times, chunks = [], []
    for year in range(start_year, end_year + 1):
        starts = month_starts(year)
        for m in range(12):
            t, f = model.provider.read(np.array([r]), np.array([c]), starts[m], starts[m + 1])
            times.append(np.asarray(t, dtype="datetime64[s]"))
            chunks.append(f[:, :, 0])
    times = np.concatenate(times)
    forcing = np.concatenate(chunks)
    steps = np.unique(np.diff(times).astype("timedelta64[s]").astype(np.int64))
    if steps.size != 1:
        raise InputError("the forcing steps are not evenly spaced", path=model.provider.describe(),
                         field="time", value=steps.tolist())
    dt = int(steps[0])
    fi = {n: layout.index(layout.FORCING, n) for n in layout.FORCING}
    low, high = legacy_clamps(forcing[:, fi["air_temperature"]], forcing[:, fi["pressure"]],
                              forcing[:, fi["specific_humidity"]])
    if low.any() or high.any():
        warnings.append(f"the legacy reader clamps the specific humidity at {int(low.sum())} "
                        f"step(s) (q < 1e-6) and {int(high.sum())} step(s) (q >= saturation -> "
                        "0.99 saturation); noahtibet uses the forcing as it is")

    surf = {n: float(st.surface[0, i]) for i, n in enumerate(layout.SURFACE_STATE)}
    gi = layout.index(layout.MONTHLY, "green_fraction")
    li = layout.index(layout.MONTHLY, "lai")
    first, last = np.datetime64(times[0], "m"), np.datetime64(times[-1], "m")
    namelist = {
        "startdate": str(first).replace("-", "").replace("T", "").replace(":", ""),
        "enddate": str(last).replace("-", "").replace("T", "").replace(":", ""),
        "loop_for_a_while": 0,
        "output_dir": ".",
        "Latitude": float(model.grid.lats[r]),
        "Longitude": float(model.grid.lons[c]),
        "Forcing_Timestep": dt,
        "Noahlsm_Timestep": dt,
        "Sea_ice_point": False,
        "Soil_layer_thickness": [float(v) for v in spec.layer_thickness],
        "Soil_Temperature": [float(v) for v in st.stc[0]],
        "Soil_Moisture": [float(v) for v in st.smc[0]],
        "Soil_Liquid": [float(v) for v in st.sh2o[0]],
        "Soil_htype": [int(v) for v in spec.soil_class],
        "Skin_Temperature": surf["skin_temperature"],
        "Canopy_water": surf["canopy_water"],
        "Snow_depth": surf["snow_depth"],
        "Snow_equivalent": surf["snow_water"],
        "Deep_Soil_Temperature": float(spec.deep_soil_temperature),
        "Landuse_dataset": "USGS",
        "Soil_type_index": int(spec.soil_class[0] if spec.soil_type_index is None
                               else spec.soil_type_index),
        "Vegetation_type_index": int(spec.vegetation_class),
        "Urban_veg_category": 1,
        "glacial_veg_category": 24,
        "Slope_type_index": int(spec.slope_class),
        "Max_snow_albedo": float(spec.max_snow_albedo),
        "Air_temperature_level": float(spec.air_temperature_level),
        "Wind_level": float(spec.wind_level),
        "Green_Vegetation_Min": float(spec.green_fraction_min),
        "Green_Vegetation_Max": float(spec.green_fraction_max),
        "Usemonalb": bool(opts.use_monthly_albedo),
        "Rdlai2d": bool(opts.use_monthly_lai),
        "sfcdif_option": SFCDIF_OPTION[opts.surface_exchange],
        "iz0tlnd": int(opts.iz0tlnd),
        # used by the legacy driver only for the initial albedo and roughness
        "Albedo_monthly": [surf["albedo"]] * 12,
        "Shdfac_monthly": [float(v) for v in monthly[gi]],
        "lai_monthly": [float(v) for v in monthly[li]],
        "Z0brd_monthly": [surf["z0brd"]] * 12,
    }
    output = Path(output)
    text = "\n".join(format_namelist(namelist) + HEADER + [
        f"<Forcing>  noahtibet {__version__}: cell ({r}, {c}) of {cfg.path} "
        f"(forcing source in {output.name}.json)"] + format_records(times, forcing)) + "\n"

    _write_atomic(output, text)
    # the file must give back the run's parameters, value for value
    try:
        case = read_point_file(output)
        lp2, cp2 = column_parameters(column_spec_for_case(case))
    except Exception:
        output.unlink(missing_ok=True)
        raise
    if not (np.array_equal(lp2, layer_par) and np.array_equal(cp2, column_par)):
        output.unlink(missing_ok=True)
        bad = [n for i, n in enumerate(layout.COLUMN_PARAMETERS) if cp2[i] != column_par[i]]
        bad += [n for i, n in enumerate(layout.LAYER_PARAMETERS)
                if not np.array_equal(lp2[:, i], layer_par[:, i])]
        raise InputError("the written namelist does not reproduce the cell's parameters",
                         path=str(output), field="parameters", value=", ".join(bad))

    meta = {
        "noahtibet_version": __version__, "configuration": str(cfg.path),
        "cell": {"row": r, "col": c, "index": cell_index, "lon": float(model.grid.lons[c]),
                 "lat": float(model.grid.lats[r])},
        "years": [start_year, end_year], "steps": int(times.size), "step_seconds": dt,
        "forcing": model.provider.describe(), "initial_state": state_source,
        "parameters_reproduced": True,
        "physics": {"surface_exchange": opts.surface_exchange, "iz0tlnd": opts.iz0tlnd,
                    "legacy_quirks": opts.legacy_quirks},
        "humidity_clamped": {"low": int(low.sum()), "high": int(high.sum())},
        "warnings": warnings,
    }
    meta_path = output.with_name(output.name + ".json")
    _write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    for w in warnings:
        log.warning("%s", w)
    return ExportResult(output, meta_path, (r, c), int(times.size), state_source,
                        int(low.sum()), int(high.sum()), warnings)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
