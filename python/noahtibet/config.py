"""Run configuration: a TOML file validated against a schema.

Every section and key is declared below with its type, default and meaning.
An unknown key, a value of the wrong type, a value out of range or a missing
input file is a :class:`~noahtibet.errors.ConfigError` naming the file, the
key (as ``section.key``) and the value.  ``noahtibet config-template`` prints a
complete file with every default.

Example (the built-in demo)::

    [domain]
    kind = "demo"
    spacing = 0.5

    [spinup]
    start_year = 1979
    end_year = 1983
    cycles = 4

    [run]
    start_year = 1979
    end_year = 2018

    [output]
    directory = "demo_output"
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import textwrap
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class DomainConfig:
    kind: str = "demo"                 # "demo" (built-in synthetic domain) or "cmfd"
    spacing: float = 0.5               # grid spacing [deg], a multiple of 0.1
    bbox: list = field(default_factory=lambda: [73.0, 26.0, 105.0, 40.0])  # west, south, east, north
    max_cells: int = 0                 # >0: keep only the first N domain cells (tests, quick looks)


@dataclass
class ForcingConfig:
    provider: str = "demo"             # "demo" or "cmfd"
    path: str = ""                     # directory of monthly CMFD files (provider "cmfd")
    cache_spinup: bool = True          # keep the spin-up period's forcing in memory between cycles
    prefetch: bool = False             # read the next month in a background thread while the kernel
    #                                    runs (same results; helps only when a core is idle)


#: The 20 Noah-Tibet soil layer thicknesses [m], top to bottom (15.2 m in total; the same
#: values as noahtibet.demo.LAYER_THICKNESS).
NOAH_TIBET_LAYERS = (0.045, 0.046, 0.075, 0.123, 0.204, 0.336, 0.371, 0.3, 0.5, 0.5,
                     0.7, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0)


@dataclass
class StaticConfig:
    """Static inputs of a real domain (paths); unused by the demo."""
    soil: str = ""
    vegetation: str = ""
    lai: str = ""
    green_fraction: str = ""
    elevation: str = ""
    domain_boundary: str = ""
    glacier: str = ""
    lakes: dict = field(default_factory=dict)   # year -> path
    reference_map: str = ""
    vegetation_crosswalk: str = "igbp_to_usgs"  # packaged name or CSV path; "usgs": already USGS
    slope: str = ""                    # raster of GENPARM slope classes; empty: class 1 everywhere
    tbot: str = ""                     # raster of the deep (ZBOT) temperature TBOT [K]
    tbot_source: str = "raster"        # "raster" (static.tbot) or "forcing": TBOT = mean annual
    #                                    air temperature of the forcing over tbot_period + offset
    tbot_period: list = field(default_factory=list)   # [first, last] year; []: spin-up period
    tbot_offset: float = 0.0           # [K] added to the forcing mean (tbot_source "forcing")
    max_snow_albedo: float = 0.75      # maximum albedo of deep snow, every column
    layer_thickness: list = field(default_factory=lambda: list(NOAH_TIBET_LAYERS))  # [m]


@dataclass
class PhysicsConfig:
    surface_exchange: str = "yang08"   # chen97 | myj | yang08
    iz0tlnd: int = 0
    thermal_conductivity: str = "noah_tibet"   # stock | noah_tibet
    frozen_soil_hydraulics: str = "ice_impedance"  # stock | ice_impedance
    legacy_quirks: bool = True
    timestep: int = 10800              # model step [s]


@dataclass
class SpinupConfig:
    start_year: int = 1979             # first year of the recycled forcing period
    end_year: int = 1983               # last year of the recycled forcing period
    cycles: int = 100                  # number of passes over the period (100 x 5 years = 500 years)
    tolerance: float = 0.0             # >0: stop when every cell changes less than this [K] per cycle
    initial_moisture_fraction: float = 0.5  # cold start: total moisture as a fraction of porosity


@dataclass
class RunConfig:
    start_year: int = 1979
    end_year: int = 2018
    product_start_year: int = 1980     # first year with a product (needs the previous year)


@dataclass
class OutputConfig:
    directory: str = "noahtibet_output"
    geotiff: bool = True
    netcdf: bool = True
    cell_size_m: float = 0.0           # 0: the products module's default
    points: list = field(default_factory=list)   # [[name, lon, lat], ...] saved daily


@dataclass
class ParametersConfig:
    """Named overrides applied to every column (see noahtibet.layout)."""
    column: dict = field(default_factory=dict)
    layer: dict = field(default_factory=dict)


@dataclass
class Config:
    domain: DomainConfig = field(default_factory=DomainConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    spinup: SpinupConfig = field(default_factory=SpinupConfig)
    run: RunConfig = field(default_factory=RunConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    parameters: ParametersConfig = field(default_factory=ParametersConfig)
    path: str = "<defaults>"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


_SECTIONS = {f.name: f.default_factory for f in fields(Config) if f.name != "path"}
#: Sections of the same file that other commands read and validate
#: (noahtibet.calibration.settings); a run ignores them.
OTHER_SECTIONS = ("calibration", "ensemble")


def _error(path, key, value, reason):
    return ConfigError(reason, path=path, field=key, value=value)


def _check_type(path, key, value, default):
    expected = type(default)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise _error(path, key, value, f"must be of type {expected.__name__}")
    return value


def _section(path, name, cls, data):
    if not isinstance(data, dict):
        raise _error(path, name, data, "must be a table ([section])")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise _error(path, f"{name}.{key}", value, f"is not a known key{extra}")
        values[key] = _check_type(path, f"{name}.{key}", value, getattr(defaults, key))
    return cls(**values)


def _validate(cfg: Config) -> None:
    p = cfg.path
    checks = [
        (cfg.domain.kind in ("demo", "cmfd"), "domain.kind", cfg.domain.kind, "must be 'demo' or 'cmfd'"),
        (cfg.forcing.provider in ("demo", "cmfd"), "forcing.provider", cfg.forcing.provider,
         "must be 'demo' or 'cmfd'"),
        (cfg.domain.spacing > 0 and abs(cfg.domain.spacing * 10 - round(cfg.domain.spacing * 10)) < 1e-9,
         "domain.spacing", cfg.domain.spacing, "must be a positive multiple of 0.1 degree"),
        (len(cfg.domain.bbox) == 4, "domain.bbox", cfg.domain.bbox, "must be [west, south, east, north]"),
        (cfg.physics.surface_exchange in ("chen97", "myj", "yang08"), "physics.surface_exchange",
         cfg.physics.surface_exchange, "must be chen97, myj or yang08"),
        (cfg.physics.thermal_conductivity in ("stock", "noah_tibet"), "physics.thermal_conductivity",
         cfg.physics.thermal_conductivity, "must be stock or noah_tibet"),
        (cfg.physics.frozen_soil_hydraulics in ("stock", "ice_impedance"),
         "physics.frozen_soil_hydraulics", cfg.physics.frozen_soil_hydraulics,
         "must be stock or ice_impedance"),
        (cfg.physics.timestep > 0 and 86400 % cfg.physics.timestep == 0, "physics.timestep",
         cfg.physics.timestep, "must divide a day into whole steps"),
        (cfg.spinup.end_year >= cfg.spinup.start_year, "spinup.end_year", cfg.spinup.end_year,
         "must not be before spinup.start_year"),
        (cfg.spinup.cycles >= 0, "spinup.cycles", cfg.spinup.cycles, "must be >= 0"),
        (cfg.spinup.tolerance >= 0, "spinup.tolerance", cfg.spinup.tolerance, "must be >= 0"),
        (0 < cfg.spinup.initial_moisture_fraction <= 1, "spinup.initial_moisture_fraction",
         cfg.spinup.initial_moisture_fraction, "must be in (0, 1]"),
        (cfg.run.end_year >= cfg.run.start_year, "run.end_year", cfg.run.end_year,
         "must not be before run.start_year"),
        (cfg.run.start_year <= cfg.run.product_start_year <= cfg.run.end_year + 1,
         "run.product_start_year", cfg.run.product_start_year, "must lie within the run"),
    ]
    for ok, key, value, reason in checks:
        if not ok:
            raise _error(p, key, value, reason)
    for i, point in enumerate(cfg.output.points):
        if not (isinstance(point, list) and len(point) == 3 and isinstance(point[0], str)
                and all(isinstance(v, (int, float)) for v in point[1:])):
            raise _error(p, f"output.points[{i}]", point, "must be [name, lon, lat]")
    if cfg.forcing.provider == "cmfd":
        if not cfg.forcing.path or not Path(cfg.forcing.path).is_dir():
            raise _error(p, "forcing.path", cfg.forcing.path, "is not an existing directory")
    for key in ("soil", "vegetation", "lai", "green_fraction", "elevation", "domain_boundary",
                "glacier", "reference_map", "slope", "tbot"):
        value = getattr(cfg.static, key)
        if value and not _source_exists(value):
            raise _error(p, f"static.{key}", value, "file does not exist")
    for year, value in cfg.static.lakes.items():
        try:
            int(year)
        except (TypeError, ValueError):
            raise _error(p, f"static.lakes.{year}", value, "key must be a year") from None
        if not isinstance(value, str) or not _source_exists(value):
            raise _error(p, f"static.lakes.{year}", value, "file does not exist")
    st = cfg.static
    if not 0 < st.max_snow_albedo <= 1:
        raise _error(p, "static.max_snow_albedo", st.max_snow_albedo, "must be in (0, 1]")
    if not st.layer_thickness or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for v in st.layer_thickness):
        raise _error(p, "static.layer_thickness", st.layer_thickness,
                     "must be a non-empty list of positive thicknesses [m]")
    if not st.vegetation_crosswalk:
        raise _error(p, "static.vegetation_crosswalk", st.vegetation_crosswalk,
                     "must name a crosswalk (e.g. 'igbp_to_usgs'), a CSV file or 'usgs'")
    _validate_tbot(cfg)
    if cfg.domain.kind == "cmfd":
        if cfg.forcing.provider != "cmfd":
            raise _error(p, "forcing.provider", cfg.forcing.provider,
                         "must be 'cmfd' when domain.kind = 'cmfd'")
        required = ("soil", "vegetation", "lai", "green_fraction") \
            + (("tbot",) if st.tbot_source == "raster" else ())
        for key in required:
            if not getattr(st, key):
                extra = (" (or set static.tbot_source = 'forcing' to derive TBOT from the "
                         "forcing)") if key == "tbot" else ""
                raise _error(p, f"static.{key}", "",
                             f"is required when domain.kind = 'cmfd'{extra}")
        b = cfg.domain.bbox
        if not (all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
                and b[0] < b[2] and b[1] < b[3]):
            raise _error(p, "domain.bbox", b, "must be four numbers west < east, south < north")


def tbot_period(cfg: Config) -> tuple[int, int]:
    """The years whose forcing gives TBOT (``static.tbot_period``, default the spin-up period)."""
    per = cfg.static.tbot_period
    return (int(per[0]), int(per[1])) if per else (cfg.spinup.start_year, cfg.spinup.end_year)


def _validate_tbot(cfg: Config) -> None:
    p, st = cfg.path, cfg.static
    if st.tbot_source not in ("raster", "forcing"):
        raise _error(p, "static.tbot_source", st.tbot_source, "must be 'raster' or 'forcing'")
    per = st.tbot_period
    if per and not (len(per) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in per) and 1900 <= per[0] <= per[1] <= 2200):
        raise _error(p, "static.tbot_period", per,
                     "must be [] (the spin-up period) or [first_year, last_year] with "
                     "first_year <= last_year")
    if not math.isfinite(st.tbot_offset):
        raise _error(p, "static.tbot_offset", st.tbot_offset, "must be a finite number [K]")
    if st.tbot_source == "raster":
        for key, value, unset in (("tbot_period", per, []), ("tbot_offset", st.tbot_offset, 0.0)):
            if value != unset:
                raise _error(p, f"static.{key}", value,
                             "applies only with static.tbot_source = 'forcing'")
        return
    if cfg.domain.kind != "cmfd":
        raise _error(p, "static.tbot_source", st.tbot_source,
                     "'forcing' applies to domain.kind = 'cmfd' (the demo domain has its own "
                     "TBOT)")
    if st.tbot:
        raise _error(p, "static.tbot", st.tbot,
                     "must be empty when static.tbot_source = 'forcing' (TBOT comes from the "
                     "forcing, not a raster)")


def _source_exists(value: str) -> bool:
    """A path, or ``file.nc:variable`` / ``file.gpkg:layer`` whose file exists."""
    if Path(value).exists():
        return True
    head, sep, tail = value.rpartition(":")
    return bool(sep and head and tail and not tail.startswith(("/", "\\"))
                and Path(head).exists())


def from_dict(data: dict, path: str = "<dict>", base_dir: Path | None = None) -> Config:
    """Validate a parsed configuration mapping."""
    sections = {}
    for name, value in data.items():
        if name in OTHER_SECTIONS:
            continue
        if name not in _SECTIONS:
            hint = difflib.get_close_matches(name, sorted(_SECTIONS), n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise _error(path, name, None, f"is not a known section{extra}")
        sections[name] = _section(path, name, _SECTIONS[name], value)
    cfg = Config(**sections, path=path)
    if base_dir is not None:   # relative input paths are relative to the config file
        if cfg.forcing.path and not Path(cfg.forcing.path).is_absolute():
            cfg.forcing.path = str(base_dir / cfg.forcing.path)
        if not Path(cfg.output.directory).is_absolute():
            cfg.output.directory = str(base_dir / cfg.output.directory)
        st = cfg.static
        for key in ("soil", "vegetation", "lai", "green_fraction", "elevation", "domain_boundary",
                    "glacier", "reference_map", "slope", "tbot"):
            value = getattr(st, key)
            if value and not Path(value).is_absolute():
                setattr(st, key, str(base_dir / value))
        st.lakes = {k: (str(base_dir / v) if isinstance(v, str) and v
                        and not Path(v).is_absolute() else v) for k, v in st.lakes.items()}
        cw = st.vegetation_crosswalk
        if cw.lower().endswith(".csv") and not Path(cw).is_absolute():
            st.vegetation_crosswalk = str(base_dir / cw)
    _validate(cfg)
    return cfg


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; an unreadable or invalid file is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", path=str(path)) from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"is not valid TOML: {exc}", path=str(path)) from None


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    return from_dict(read_toml(path), str(path), base_dir=path.parent)


#: Comment lines printed above a key by :func:`template`.
_TEMPLATE_NOTES = {
    "forcing.prefetch": "true: read the next month's forcing in a background thread while the "
                        "kernel runs this one (identical results; uses a second core, so it "
                        "helps only when a core is idle, e.g. one rank per two cores)",
    "static.tbot": "raster of the deep (ZBOT = 40 m) soil temperature TBOT [K] "
                   "(static.tbot_source = \"raster\"; required then for domain.kind = \"cmfd\")",
    "static.tbot_source": "\"raster\": TBOT from static.tbot; \"forcing\": TBOT = long-term mean "
                          "annual air temperature of the cell's forcing over static.tbot_period "
                          "+ static.tbot_offset (domain.kind = \"cmfd\"; static.tbot left empty)",
    "static.tbot_period": "[first_year, last_year] of that mean; [] = the spin-up period "
                          "(spinup.start_year .. spinup.end_year)",
    "static.tbot_offset": "[K] added to the forcing's mean annual air temperature "
                          "(tbot_source = \"forcing\")",
}


def template() -> str:
    """A complete configuration file with every default, as TOML."""
    lines = ["# noahtibet configuration: every key with its default"]
    for name, cls in _SECTIONS.items():
        lines.append(f"\n[{name}]")
        for f in fields(cls):
            note = _TEMPLATE_NOTES.get(f"{name}.{f.name}")
            if note:
                lines += [f"# {part}" for part in textwrap.wrap(note, 96)]
            lines.append(f"{f.name} = {_toml_value(getattr(cls(), f.name))}")
    # the tables of 'noahtibet calibrate' / 'noahtibet ensemble', which 'run' ignores
    from .calibration.settings import CalibrationSettings, EnsembleSettings

    lines.append("\n# [calibration] and [ensemble]: read by 'noahtibet calibrate' and 'noahtibet "
                 "ensemble'\n# (docs/calibration.md); 'noahtibet run' ignores them")
    for name, cls in (("calibration", CalibrationSettings), ("ensemble", EnsembleSettings)):
        lines.append(f"[{name}]")
        notes = _field_comments(cls)
        for f in fields(cls):
            if f.name in notes:
                lines += [f"# {part}" for part in textwrap.wrap(notes[f.name], 96)]
            lines.append(f"{f.name} = {_toml_value(getattr(cls(), f.name))}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _field_comments(cls) -> dict[str, str]:
    """The end-of-line comments of a dataclass's fields in its source (with the comment
    lines that continue them): the settings classes document their keys there."""
    import inspect
    import re

    notes: dict[str, str] = {}
    last = None
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.*)$", line)
        if m:
            last = m.group(1)
            notes[last] = m.group(2).strip()
            continue
        m = re.match(r"\s+#\s*(.*)$", line)
        if m and last is not None:
            notes[last] += " " + m.group(1).strip()
        else:
            last = None
    return notes


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)
