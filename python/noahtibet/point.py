"""Single-column ("point") runs from a legacy point-forcing file.

``run_point_file`` reads a legacy Noah-Tibet input file (namelist header and
``<Forcing>`` records), builds the column's parameters from the tables and its
initial state from the namelist exactly as the legacy driver does
(spec/physics.md section 1.6), runs the kernel in record mode and returns an
xarray Dataset with CF attributes.  ``write_dataset`` writes it atomically.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__, layout
from .kernel import Calendar, ColumnState, Records, run_columns
from .legacy_forcing import PointCase, model_forcing, read_point_file
from .errors import InputError
from .parameters import ColumnSpec, PhysicsOptions, Tables, column_parameters

#: Initial values the legacy driver sets before the first step (spec 1.6).
INITIAL_EMISSIVITY = 0.96
INITIAL_EXCHANGE_COEFFICIENT = 1.0e-4


def options_for_case(case: PointCase, legacy_quirks: bool = True) -> PhysicsOptions:
    """Physics options as the legacy namelist sets them."""
    return PhysicsOptions.from_sfcdif_option(
        int(case.sfcdif_option), iz0tlnd=int(case.iz0tlnd), legacy_quirks=legacy_quirks,
        use_monthly_albedo=bool(case.use_monthly_albedo),
        use_monthly_lai=bool(case.read_monthly_lai))


def column_spec_for_case(case: PointCase) -> ColumnSpec:
    return ColumnSpec(
        layer_thickness=np.asarray(case.layer_thickness, dtype=np.float64),
        soil_class=np.asarray(case.soil_class, dtype=int),
        vegetation_class=int(case.vegetation_type_index),
        slope_class=int(case.slope_type_index),
        deep_soil_temperature=float(case.deep_soil_temperature),
        green_fraction_min=float(case.green_vegetation_min),
        green_fraction_max=float(case.green_vegetation_max),
        max_snow_albedo=float(case.max_snow_albedo),
        air_temperature_level=float(case.air_temperature_level),
        wind_level=float(case.wind_level),
        soil_type_index=int(case.soil_type_index),
    )


def _monthly_value(a12: np.ndarray, calendar: Calendar, step: int) -> float:
    w = calendar.month_weight[step]
    return a12[calendar.month_prev[step] - 1] * (1.0 - w) + a12[calendar.month_next[step] - 1] * w


def initial_state(case: PointCase, calendar: Calendar, first_q2: float,
                  sfcdif_option: int) -> ColumnState:
    """The legacy driver's initial state (spec 1.6) for one column."""
    nlay = len(case.layer_thickness)
    state = ColumnState.allocate(1, nlay)
    state.stc[0] = case.initial_soil_temperature
    state.smc[0] = case.initial_soil_moisture
    state.sh2o[0] = case.initial_soil_liquid
    z0 = _monthly_value(np.asarray(case.z0brd_monthly, dtype=np.float64), calendar, 0)
    values = {
        "skin_temperature": case.skin_temperature,
        "canopy_water": case.canopy_water,
        "snow_depth": case.snow_depth,
        "snow_water": case.snow_water_equivalent,
        "albedo": _monthly_value(np.asarray(case.albedo_monthly, dtype=np.float64), calendar, 0),
        "emissivity": INITIAL_EMISSIVITY,
        "z0": z0,
        "z0brd": z0,
        "ch": INITIAL_EXCHANGE_COEFFICIENT,
        "cm": INITIAL_EXCHANGE_COEFFICIENT,
        "q1": first_q2,
        "snow_age": 0.0,
        "ribb": 0.0,
    }
    state.surface[0] = [values[n] for n in layout.SURFACE_STATE]
    return state


def column_batch(case: PointCase, soil_profiles, temperature_offset=None,
                 precipitation_factor=None):
    """A batch of columns on one point file's forcing, for benchmarks and tests.

    Column c has the soil classes ``soil_profiles[c]`` (one per layer, top to bottom),
    the file's forcing with ``temperature_offset[c]`` K added to the air temperature and
    the precipitation times ``precipitation_factor[c]`` (defaults: 0 and 1), and the
    file's initial state, its moisture limited to each layer's porosity.  Returns
    ``(forcing, calendar, monthly, layer_par, column_par, state)`` for
    :func:`noahtibet.kernel.run_columns`; the forcing is on the file's records
    (``case.model_timestep`` and ``case.enddate`` choose the steps)."""
    pf = model_forcing(case)
    ncol = len(soil_profiles)
    base = np.stack([getattr(pf, n) for n in layout.FORCING], axis=1)
    forcing = base[:, :, None] + np.zeros((1, 1, ncol))
    if temperature_offset is not None:
        forcing[:, layout.index(layout.FORCING, "air_temperature"), :] += temperature_offset
    if precipitation_factor is not None:
        forcing[:, layout.index(layout.FORCING, "precipitation"), :] *= precipitation_factor
    calendar = Calendar(pf.month_prev, pf.month_next, pf.month_weight)
    spec = column_spec_for_case(case)
    nlay = len(case.layer_thickness)
    layer_par = np.empty((ncol, nlay, len(layout.LAYER_PARAMETERS)))
    column_par = np.empty((ncol, len(layout.COLUMN_PARAMETERS)))
    for c, profile in enumerate(soil_profiles):
        layer_par[c], column_par[c] = column_parameters(
            dataclasses.replace(spec, soil_class=np.asarray(profile)))
    one = initial_state(case, calendar, float(pf.specific_humidity[0]), 2)
    smcmax = layer_par[:, :, layout.index(layout.LAYER_PARAMETERS, "smcmax")]
    smc = np.minimum(np.repeat(one.smc, ncol, 0), smcmax)
    state = ColumnState(np.repeat(one.stc, ncol, 0), smc,
                        np.minimum(np.repeat(one.sh2o, ncol, 0), smc),
                        np.repeat(one.surface, ncol, 0))
    monthly = np.zeros((ncol, len(layout.MONTHLY), 12))
    monthly[:, layout.index(layout.MONTHLY, "green_fraction")] = case.shdfac_monthly
    monthly[:, layout.index(layout.MONTHLY, "lai")] = case.lai_monthly
    monthly[:, layout.index(layout.MONTHLY, "albedo")] = case.albedo_monthly
    return forcing, calendar, monthly, layer_par, column_par, state


def run_point(case: PointCase, options: PhysicsOptions | None = None,
              tables: Tables | None = None, record_pass: int | None = None,
              diagnostics=None) -> tuple[np.ndarray, Records, np.ndarray]:
    """Run one column over the whole file; return (times, records, node depths).

    With ``loop_for_a_while = L > 0`` the legacy driver repeats the period L + 1 times
    with the state carried from pass to pass (spin-up; spec/physics.md section 1.5) and
    writes every pass to its own file (OUTPUT.0000 ... OUTPUT.L); here every pass is run
    and pass ``record_pass`` (0 ... L, default L: the spun-up pass) is recorded.
    ``diagnostics`` (a :class:`~noahtibet.kernel.AnnualDiagnostics`) accumulates over the
    recorded pass.
    """
    passes = int(getattr(case, "loop_for_a_while", 0) or 0) + 1
    if record_pass is None:
        record_pass = passes - 1
    if not 0 <= record_pass < passes:
        raise InputError(f"has {passes} pass(es) (loop_for_a_while = {passes - 1}); pass "
                         f"{record_pass} does not exist", path=str(case.path),
                         field="pass", value=record_pass)
    options = options or options_for_case(case)
    tables = tables or Tables.load()
    pf = model_forcing(case)
    forcing = np.stack([getattr(pf, name) for name in layout.FORCING], axis=1)[:, :, None]
    calendar = Calendar(np.asarray(pf.month_prev), np.asarray(pf.month_next),
                        np.asarray(pf.month_weight))
    layer_par, column_par = column_parameters(column_spec_for_case(case), tables)
    monthly = np.zeros((1, len(layout.MONTHLY), 12))
    monthly[0, layout.index(layout.MONTHLY, "green_fraction")] = case.shdfac_monthly
    for name, values in (("lai", case.lai_monthly), ("albedo", case.albedo_monthly)):
        if values is not None:   # optional when the namelist does not use them
            monthly[0, layout.index(layout.MONTHLY, name)] = values
    state = initial_state(case, calendar, float(pf.specific_humidity[0]),
                          int(case.sfcdif_option))
    records = None
    for k in range(record_pass + 1):    # passes after the recorded one change nothing in it
        rec = run_columns(forcing, calendar, monthly, layer_par[None], column_par[None], state,
                          float(case.model_timestep), options.as_array(),
                          diagnostics if k == record_pass else None,
                          record=k == record_pass, labels=[f"{case.path} (pass {k})"])
        if k == record_pass:
            records = rec
    dz = np.asarray(case.layer_thickness, dtype=np.float64)
    node_depth = np.cumsum(dz) - 0.5 * dz
    return np.asarray(pf.time), records, node_depth


def to_dataset(times: np.ndarray, records: Records, node_depth: np.ndarray,
               options: PhysicsOptions, source: str = "", pass_info: tuple[int, int] = (0, 1)
               ) -> xr.Dataset:
    """CF-style Dataset of a point run (column 0 of the records)."""
    def series(name):
        return records.output(name)[:, 0]

    variables = {
        "soil_temperature": (("time", "layer"), records.stc[:, 0, :],
                             {"units": "K", "standard_name": "soil_temperature",
                              "long_name": "soil temperature at the layer node"}),
        "soil_moisture": (("time", "layer"), records.smc[:, 0, :],
                          {"units": "m3 m-3", "long_name": "total (liquid + frozen) volumetric soil water"}),
        "soil_liquid_water": (("time", "layer"), records.sh2o[:, 0, :],
                              {"units": "m3 m-3", "long_name": "liquid volumetric soil water"}),
        "skin_temperature": (("time",), series("skin_temperature"),
                             {"units": "K", "standard_name": "surface_temperature",
                              "long_name": "skin temperature"}),
        "snow_depth": (("time",), series("snow_depth"),
                       {"units": "m", "standard_name": "thickness_of_snowfall_amount",
                        "long_name": "snow depth"}),
        "snow_water_equivalent": (("time",), series("snow_water"),
                                  {"units": "m", "long_name": "snow water equivalent"}),
        "sensible_heat_flux": (("time",), series("sensible_heat"),
                               {"units": "W m-2",
                                "standard_name": "surface_upward_sensible_heat_flux",
                                "long_name": "sensible heat flux, positive upward"}),
        "latent_heat_flux": (("time",), series("latent_heat"),
                             {"units": "W m-2",
                              "standard_name": "surface_upward_latent_heat_flux",
                              "long_name": "latent heat flux, positive upward"}),
        "ground_heat_flux": (("time",), series("ground_heat"),
                             {"units": "W m-2",
                              "standard_name": "downward_heat_flux_at_ground_level_in_soil",
                              "long_name": "ground heat flux, positive into the soil"}),
        "layer_depth": (("layer",), node_depth,
                        {"units": "m", "positive": "down", "standard_name": "depth",
                         "long_name": "depth of the layer node (mid-point)"}),
    }
    ds = xr.Dataset({k: xr.Variable(dims, np.asarray(v, dtype=np.float64), attrs)
                     for k, (dims, v, attrs) in variables.items()},
                    coords={"time": ("time", times.astype("datetime64[ns]")),
                            "layer": ("layer", np.arange(1, node_depth.size + 1, dtype=np.int32))})
    ds["time"].attrs.update({"standard_name": "time", "axis": "T",
                             "long_name": "forcing time of the step; state at the end of the step"})
    ds["layer"].attrs.update({"long_name": "soil layer index, 1 = top"})
    ds.attrs.update({
        "Conventions": "CF-1.8",
        "title": "noahtibet point run",
        "source": f"noahtibet {__version__} (Noah-Tibet column model)",
        "forcing_file": source,
        "surface_exchange": options.surface_exchange,
        "thermal_conductivity": options.thermal_conductivity,
        "frozen_soil_hydraulics": options.frozen_soil_hydraulics,
        "legacy_quirks": int(options.legacy_quirks),
        "spinup_pass": int(pass_info[0]),
        "spinup_passes": int(pass_info[1]),
    })
    if pass_info[1] > 1:
        ds.attrs["comment"] = (f"pass {pass_info[0]} of the passes 0..{pass_info[1] - 1} over the "
                               "forcing period (loop_for_a_while), the state carried from pass "
                               "to pass; the legacy driver writes it to "
                               f"OUTPUT.{pass_info[0]:04d}.txt")
    return ds


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to netCDF at ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        encoding = {"time": {"units": "minutes since 1970-01-01 00:00:00", "calendar": "standard",
                             "dtype": "float64"}}
        ds.to_netcdf(tmp, format="NETCDF4", encoding=encoding)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def run_point_file(forcing_file: str | os.PathLike, legacy_quirks: bool = True,
                   tables: Tables | None = None, record_pass: int | None = None) -> xr.Dataset:
    """Read a legacy point-forcing file, run it, return the Dataset (of pass
    ``record_pass`` when the file loops over its period; default the last)."""
    case = read_point_file(forcing_file)
    options = options_for_case(case, legacy_quirks=legacy_quirks)
    passes = int(case.loop_for_a_while) + 1
    k = passes - 1 if record_pass is None else int(record_pass)
    times, records, node_depth = run_point(case, options, tables, record_pass=k)
    return to_dataset(times, records, node_depth, options, source=str(forcing_file),
                      pass_info=(k, passes))
