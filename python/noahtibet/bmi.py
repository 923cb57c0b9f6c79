"""A Basic Model Interface (CSDMS BMI 2.0) to one noahtibet soil column.

Frameworks that couple models through the BMI (pymt, the NextGen water-resources
framework, bmi-tester) can step noahtibet one model step at a time, read its
state and fluxes by name with units, and feed it forcing from another model::

    from noahtibet.bmi import NoahTibetBmi

    m = NoahTibetBmi()
    m.initialize("site.dat")                      # a legacy point-forcing file, or a TOML file
    t = np.empty(m.get_var_nbytes("soil_temperature") // 8)
    while m.get_current_time() < m.get_end_time():
        m.set_value("air_temperature", np.array([265.0]))   # optional: override the file's forcing
        m.update()
        m.get_value("soil_temperature", t)
    m.finalize()

The column, its parameters, options, initial state and forcing come from a
legacy point-forcing file (as ``noahtibet point``), given directly or named in a
TOML configuration::

    forcing_file = "site.dat"     # relative to the TOML file
    legacy_quirks = true          # default

Time: seconds since one model step before the file's ``startdate``, so that
after ``k`` updates the current time is ``k * dt`` and the state is the one the
legacy driver stamps ``startdate + (k - 1) dt`` (``get_time_reference``).
Input variables: the seven forcing variables (CF standard names).  A value set
with ``set_value`` replaces the file's forcing for the next update only.  Output
variables: soil temperature, total and liquid moisture per layer (grid 1: the
layer nodes, ``z`` = depth below the surface, negative), and the surface state
and fluxes (grid 0: a scalar), the same as ``noahtibet point`` writes.

Stepping with ``update`` gives bit-for-bit the states of ``noahtibet point``
(one kernel call per step; tests/test_bmi.py).  The implementation follows the
BMI 2.0 specification (Hutton et al. 2020, JOSS 5(51), 2317; bmi.readthedocs.io)
without depending on the ``bmipy`` package.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layout
from .errors import ConfigError
from .kernel import Calendar, run_columns

#: name: (kernel forcing row, units, CF standard name = the name)
_INPUTS = {
    "wind_speed": ("wind", "m s-1"),
    "air_temperature": ("air_temperature", "K"),
    "specific_humidity": ("specific_humidity", "1"),
    "surface_air_pressure": ("pressure", "Pa"),
    "surface_downwelling_shortwave_flux_in_air": ("shortwave", "W m-2"),
    "surface_downwelling_longwave_flux_in_air": ("longwave", "W m-2"),
    "precipitation_flux": ("precipitation", "kg m-2 s-1"),
}


@dataclass(frozen=True)
class _Output:
    source: str          # "stc" | "smc" | "sh2o" | an entry of layout.OUTPUTS
    units: str
    grid: int            # 0 scalar, 1 layer nodes


_OUTPUTS = {
    "soil_temperature": _Output("stc", "K", 1),
    "soil_moisture": _Output("smc", "m3 m-3", 1),
    "soil_liquid_water": _Output("sh2o", "m3 m-3", 1),
    "skin_temperature": _Output("skin_temperature", "K", 0),
    "snow_depth": _Output("snow_depth", "m", 0),
    "snow_water_equivalent": _Output("snow_water", "m", 0),
    "sensible_heat_flux": _Output("sensible_heat", "W m-2", 0),
    "latent_heat_flux": _Output("latent_heat", "W m-2", 0),
    "ground_heat_flux": _Output("ground_heat", "W m-2", 0),
}


class NoahTibetBmi:
    """BMI 2.0 for one noahtibet column (see the module documentation)."""

    _name = "noahtibet Noah-Tibet land-surface column"

    def __init__(self):
        self._ready = False

    # ---- control ---------------------------------------------------------------------------

    def initialize(self, config_file: str) -> None:
        from .legacy_forcing import model_forcing, read_point_file
        from .parameters import column_parameters
        from .point import column_spec_for_case, initial_state, options_for_case

        path = Path(config_file)
        legacy_quirks = True
        if path.suffix.lower() == ".toml":
            try:
                cfg = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot be read as TOML ({exc})", path=str(path)) from None
            unknown = set(cfg) - {"forcing_file", "legacy_quirks"}
            if unknown:
                raise ConfigError("unknown key", path=str(path), field=sorted(unknown)[0])
            if not isinstance(cfg.get("forcing_file"), str):
                raise ConfigError("a string naming the point-forcing file is required",
                                  path=str(path), field="forcing_file",
                                  value=cfg.get("forcing_file"))
            if not isinstance(cfg.get("legacy_quirks", True), bool):
                raise ConfigError("must be true or false", path=str(path), field="legacy_quirks",
                                  value=cfg["legacy_quirks"])
            legacy_quirks = cfg.get("legacy_quirks", True)
            path = (path.parent / cfg["forcing_file"]).resolve()
        case = read_point_file(path)
        if case.loop_for_a_while:
            raise ConfigError("spin-up passes are not stepped through the BMI; use a file with "
                              "loop_for_a_while = 0 (or 'noahtibet point --pass')",
                              path=str(path), field="loop_for_a_while",
                              value=case.loop_for_a_while)
        self._case = case
        self._options = options_for_case(case, legacy_quirks=legacy_quirks).as_array()
        pf = model_forcing(case)
        self._times = np.asarray(pf.time, dtype="datetime64[s]")
        self._forcing = np.stack([np.asarray(getattr(pf, n), dtype=np.float64)
                                  for n in layout.FORCING], axis=1)
        self._calendar = (np.asarray(pf.month_prev), np.asarray(pf.month_next),
                          np.asarray(pf.month_weight))
        self._layer_par, self._column_par = column_parameters(column_spec_for_case(case))
        self._monthly = np.zeros((1, len(layout.MONTHLY), 12))
        self._monthly[0, layout.index(layout.MONTHLY, "green_fraction")] = case.shdfac_monthly
        for name, values in (("lai", case.lai_monthly), ("albedo", case.albedo_monthly)):
            if values is not None:
                self._monthly[0, layout.index(layout.MONTHLY, name)] = values
        self._state = initial_state(case, Calendar(*self._calendar),
                                    float(pf.specific_humidity[0]), int(case.sfcdif_option))
        self._dt = float(case.model_timestep)
        dz = np.asarray(case.layer_thickness, dtype=np.float64)
        self._depth = np.cumsum(dz) - 0.5 * dz
        self._step = 0
        self._pending: dict[str, float] = {}
        # fluxes of the last step (before the first update: zero; the state: the initial one)
        self._last = np.zeros(len(layout.OUTPUTS))
        for name in ("skin_temperature", "snow_depth", "snow_water"):
            self._last[layout.index(layout.OUTPUTS, name)] = \
                self._state.surface[0, layout.index(layout.SURFACE_STATE, name)]
        self._ready = True

    def update(self) -> None:
        self._check_ready()
        i = self._step
        if i >= self._times.size:
            raise RuntimeError(f"{self._case.path}: the forcing ends at {self._times[-1]}; "
                               "no step left to run")
        forcing = self._forcing[i:i + 1].copy()
        for name, value in self._pending.items():
            forcing[0, layout.index(layout.FORCING, _INPUTS[name][0])] = value
        self._pending.clear()
        prev, nxt, w = self._calendar
        rec = run_columns(forcing[:, :, None], Calendar(prev[i:i + 1], nxt[i:i + 1], w[i:i + 1]),
                          self._monthly, self._layer_par[None], self._column_par[None],
                          self._state, self._dt, self._options, record=True,
                          labels=[str(self._case.path)])
        self._last = rec.out[0, 0].copy()
        self._step += 1

    def update_until(self, time: float) -> None:
        self._check_ready()
        steps = (float(time) - self.get_current_time()) / self._dt
        if steps < 0 or abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"time {time} is not a whole number of steps ({self._dt:g} s) after "
                             f"the current time {self.get_current_time():g}")
        for _ in range(int(round(steps))):
            self.update()

    def finalize(self) -> None:
        self._ready = False

    # ---- information -----------------------------------------------------------------------

    def get_component_name(self) -> str:
        return self._name

    def get_input_item_count(self) -> int:
        return len(_INPUTS)

    def get_output_item_count(self) -> int:
        return len(_OUTPUTS)

    def get_input_var_names(self) -> tuple[str, ...]:
        return tuple(_INPUTS)

    def get_output_var_names(self) -> tuple[str, ...]:
        return tuple(_OUTPUTS)

    # ---- variables ---------------------------------------------------------------------------

    def _var(self, name: str):
        if name in _INPUTS:
            return "input"
        if name in _OUTPUTS:
            return "output"
        raise KeyError(f"noahtibet BMI has no variable {name!r}; inputs: {', '.join(_INPUTS)}; "
                       f"outputs: {', '.join(_OUTPUTS)}")

    def get_var_grid(self, name: str) -> int:
        return _OUTPUTS[name].grid if self._var(name) == "output" else 0

    def get_var_type(self, name: str) -> str:
        self._var(name)
        return "float64"

    def get_var_units(self, name: str) -> str:
        return _OUTPUTS[name].units if self._var(name) == "output" else _INPUTS[name][1]

    def get_var_itemsize(self, name: str) -> int:
        self._var(name)
        return 8

    def get_var_nbytes(self, name: str) -> int:
        return self.get_var_itemsize(name) * self.get_grid_size(self.get_var_grid(name))

    def get_var_location(self, name: str) -> str:
        self._var(name)
        return "node"

    # ---- time ----------------------------------------------------------------------------------

    def get_start_time(self) -> float:
        return 0.0

    def get_end_time(self) -> float:
        self._check_ready()
        return self._times.size * self._dt

    def get_current_time(self) -> float:
        self._check_ready()
        return self._step * self._dt

    def get_time_step(self) -> float:
        self._check_ready()
        return self._dt

    def get_time_units(self) -> str:
        return "s"

    def get_time_reference(self) -> np.datetime64:
        """The date and time of model time 0 (one step before the file's startdate);
        not part of the BMI."""
        self._check_ready()
        return self._times[0] - np.timedelta64(int(self._dt), "s")

    # ---- getters and setters -----------------------------------------------------------------

    def _current(self, name: str) -> np.ndarray:
        self._check_ready()
        if self._var(name) == "input":
            if name in self._pending:
                return np.array([self._pending[name]])
            i = min(self._step, self._times.size - 1)      # the forcing of the next step
            return self._forcing[i:i + 1, layout.index(layout.FORCING, _INPUTS[name][0])].copy()
        source = _OUTPUTS[name].source
        if source in ("stc", "smc", "sh2o"):
            return getattr(self._state, source)[0]
        return self._last[layout.index(layout.OUTPUTS, source)][None]

    def get_value(self, name: str, dest: np.ndarray) -> np.ndarray:
        dest[:] = self._current(name)
        return dest

    def get_value_ptr(self, name: str) -> np.ndarray:
        """The model's own array for the layer variables (the kernel updates it in place,
        so it follows the model); a copy for the others."""
        return self._current(name)

    def get_value_at_indices(self, name: str, dest: np.ndarray, inds: np.ndarray) -> np.ndarray:
        dest[:] = self._current(name)[np.asarray(inds, dtype=np.int64)]
        return dest

    def set_value(self, name: str, src: np.ndarray) -> None:
        self._check_ready()
        if self._var(name) != "input":
            raise KeyError(f"{name!r} is an output of noahtibet; only the forcing variables "
                           f"({', '.join(_INPUTS)}) can be set")
        value = np.asarray(src, dtype=np.float64).ravel()
        if value.size != 1 or not np.isfinite(value[0]):
            raise ValueError(f"{name} takes one finite value, got {src!r}")
        self._pending[name] = float(value[0])

    def set_value_at_indices(self, name: str, inds: np.ndarray, src: np.ndarray) -> None:
        if list(np.asarray(inds).ravel()) != [0]:
            raise IndexError(f"{name} has the single index 0")
        self.set_value(name, src)

    # ---- grids ---------------------------------------------------------------------------------

    def _grid(self, grid: int) -> int:
        if grid not in (0, 1):
            raise KeyError(f"noahtibet BMI has grids 0 (scalar) and 1 (layer nodes), not {grid}")
        return grid

    def get_grid_rank(self, grid: int) -> int:
        return 0 if self._grid(grid) == 0 else 1

    def get_grid_size(self, grid: int) -> int:
        self._check_ready()
        return 1 if self._grid(grid) == 0 else int(self._depth.size)

    def get_grid_type(self, grid: int) -> str:
        return "scalar" if self._grid(grid) == 0 else "points"

    def get_grid_node_count(self, grid: int) -> int:
        return self.get_grid_size(grid)

    def get_grid_x(self, grid: int, x: np.ndarray) -> np.ndarray:
        x[:] = float(self._case.longitude or 0.0)
        return x

    def get_grid_y(self, grid: int, y: np.ndarray) -> np.ndarray:
        y[:] = float(self._case.latitude or 0.0)
        return y

    def get_grid_z(self, grid: int, z: np.ndarray) -> np.ndarray:
        """Height of the nodes [m]: minus the node depths (0 for the scalar grid)."""
        z[:] = 0.0 if self._grid(grid) == 0 else -self._depth
        return z

    def get_grid_shape(self, grid: int, shape: np.ndarray) -> np.ndarray:
        shape[:] = self.get_grid_size(grid)
        return shape

    def _not_structured(self, *args):
        raise NotImplementedError("noahtibet's BMI grids are a scalar and points; they have no "
                                  "spacing, origin, edges or faces")

    get_grid_spacing = get_grid_origin = _not_structured
    get_grid_edge_count = get_grid_face_count = get_grid_edge_nodes = _not_structured
    get_grid_face_edges = get_grid_face_nodes = get_grid_nodes_per_face = _not_structured

    def _check_ready(self):
        if not self._ready:
            raise RuntimeError("noahtibet BMI: call initialize(config_file) first")
