"""Settings of a calibration and of an ensemble: ``[calibration]`` and ``[ensemble]`` tables.

They live in the run configuration file next to the sections of
:mod:`noahtibet.config`, which describe the model run the calibration tunes
(domain, forcing, physics, spin-up, run period); ``noahtibet run`` ignores them,
so one file serves the product run and its calibration::

    [calibration]
    trials = 200            # number of trials (parameter sets) evaluated in total
    batch_size = 16         # candidates asked from TPE at a time (independent of the ranks)
    seed = 1
    protocol = "continued"  # full | shortened | continued (see below)
    spinup_cycles = 2
    buffer_cells = 0

    [ensemble]
    members = 13
    protocol = "calibration"   # the trials' protocol (default) | full (cold start)

Every key, its default and meaning is in :class:`CalibrationSettings` and
:class:`EnsembleSettings`; an unknown key or a bad value is a
:class:`~noahtibet.errors.ConfigError` naming the file, ``section.key`` and the
value.  Relative paths are relative to the configuration file.

Spin-up protocol of a trial (``protocol``):

* ``full``: cold start with the candidate's parameters and the run's whole
  spin-up (``spinup.cycles`` cycles over ``spinup.start_year .. end_year``), then
  the transient years ``run.start_year .. reference_year``: the product's own
  protocol, exact but as costly as the default run for every trial;
* ``shortened``: the same with ``spinup_cycles`` cycles instead of ``spinup.cycles``;
* ``continued`` (default): start from the state of the default run at the end of
  its spin-up (its restart file), run ``spinup_cycles`` more cycles with the
  candidate's parameters (0 allowed), then the transient years.  Soil moisture
  above a candidate's porosity is set to the porosity (liquid water to at most
  the total).  Cheapest; the deep ground keeps a memory of the default
  parameters that shrinks with ``spinup_cycles``.  With ``continue_from_year = Y``
  the trials start from the default run's state at the end of year Y and run
  only Y+1 .. reference year (a warm start: cheaper still, more memory of the
  defaults).

The default run is done once in ``<directory>/default_run``; ``default_run`` may
instead name an existing run of exactly this configuration (the product run's
``output.directory``), whose reference-year annual file and restarts are then
used (checked by the configuration digest).  The spin-up tolerance of the run
configuration does not apply to trials or ensemble members: every parameter set
runs the same number of cycles.

Protocol of the ensemble (``[ensemble] protocol``):

* ``calibration`` (default): the protocol of the trials that selected the members,
  continued to ``run.end_year``: a member's map of the reference year on the
  sensitive cells is then exactly the map its trial was ranked by.  With
  ``continued`` the members start from the default run's state (end of its
  spin-up, or end of ``continue_from_year``: the ensemble then covers only the
  years after it);
* ``full``: cold start with each member's parameters, ``spinup.cycles`` cycles,
  ``run.start_year .. run.end_year`` (the product run's protocol).  Members
  selected with a cheaper protocol need not keep their calibration kappa under it
  (on the demo, 3 sets chosen with a warm start from 2005 gave an ensemble-mean
  kappa of 0.877 after a cold start, below the default's 0.939, and 0.968 under
  the calibration's protocol: ``docs/calibration.md``), so this is a choice to
  make knowingly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as config_mod
from ..errors import ConfigError

PROTOCOLS = ("full", "shortened", "continued")
ENSEMBLE_PROTOCOLS = ("calibration", "full")


@dataclass
class CalibrationSettings:
    directory: str = ""            # "" -> <output.directory>/calibration
    parameter_space: str = ""      # "" -> the bundled 26-parameter space
    parameters: list = field(default_factory=list)   # dimensions calibrated ([] = all)
    reference_map: str = ""        # "" -> static.reference_map, or the demo truth's map
    reference_mapping: str = ""    # CSV code,class of the reference map ("" = codes 1/2/3)
    reference_year: int = 2010
    buffer_cells: int = 0          # widen the sensitive cells by N cells (8-neighbourhood)
    protocol: str = "continued"    # full | shortened | continued
    spinup_cycles: int = 2         # cycles of the shortened / continued protocol
    continue_from_year: int = 0    # continued: start from the default run's state at the end
    #                                of this year (0: of the spin-up) instead
    default_run: str = ""          # "" -> run the defaults in <directory>/default_run; else an
    #                                existing run of this configuration (e.g. output.directory)
    trials: int = 200              # total number of trials
    batch_size: int = 16           # candidates per TPE ask (independent of the rank count)
    startup_trials: int = 20       # random trials before TPE starts modelling
    seed: int = 1
    cache_forcing: bool = True     # keep the trial years' forcing of a rank's cells in memory


@dataclass
class EnsembleSettings:
    members: int = 13              # best trials forming the ensemble
    parameter_file: str = ""       # "" -> <calibration directory>/ensemble_parameters.toml
    directory: str = ""            # "" -> <output.directory>/ensemble
    protocol: str = "calibration"  # calibration (the trials' protocol) | full (cold start)
    end_year: int = 0              # last year of the members (0: run.end_year)


@dataclass(frozen=True)
class Protocol:
    """How a parameter set is brought from its start to ``last_year`` (trials and members).

    ``start``: ``"cold"`` (cold start with the set's own parameters), ``"spinup"``
    (the default run's state at the end of its spin-up) or ``"year"`` (the
    default run's state at the end of ``start_year``).  Then ``cycles`` spin-up
    cycles over ``spinup_years`` and the transient years ``first_year .. last_year``.
    """

    name: str
    start: str
    start_year: int
    cycles: int
    spinup_years: tuple
    first_year: int
    last_year: int

    @property
    def transient_years(self) -> list:
        return list(range(self.first_year, self.last_year + 1))

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "spinup_years": list(self.spinup_years),
                "description": self.describe()}

    def describe(self) -> str:
        start = {"cold": "cold start",
                 "spinup": "start from the default run's state at the end of its spin-up",
                 "year": f"start from the default run's state at the end of {self.start_year}"
                 }[self.start]
        cycles = (f", {self.cycles} spin-up cycle(s) of {self.spinup_years[0]}-"
                  f"{self.spinup_years[-1]}") if self.cycles else ""
        return f"{self.name}: {start}{cycles}, then {self.first_year}-{self.last_year}"


def trial_protocol(cfg, cal: CalibrationSettings, last_year: int | None = None) -> Protocol:
    """The protocol of the calibration's trials (to ``last_year``, default the reference year)."""
    sp = cfg.spinup
    start, first = "cold", cfg.run.start_year
    if cal.protocol == "continued":
        start = "year" if cal.continue_from_year else "spinup"
        if cal.continue_from_year:
            first = cal.continue_from_year + 1
    cycles = sp.cycles if cal.protocol == "full" else cal.spinup_cycles
    return Protocol(cal.protocol, start, cal.continue_from_year, cycles,
                    tuple(range(sp.start_year, sp.end_year + 1)), first,
                    cal.reference_year if last_year is None else last_year)


def ensemble_protocol(cfg, cal: CalibrationSettings, ens: EnsembleSettings) -> Protocol:
    """The protocol of the ensemble members: the trials' (to the run's end) or the product's."""
    last = ens.end_year or cfg.run.end_year
    if ens.protocol == "calibration":
        return trial_protocol(cfg, cal, last)
    sp = cfg.spinup
    return Protocol("full", "cold", 0, sp.cycles, tuple(range(sp.start_year, sp.end_year + 1)),
                    cfg.run.start_year, last)


_section = config_mod._section   # the same key / type validation as the run configuration


def validate(path, c: CalibrationSettings, e: EnsembleSettings, cfg) -> None:
    """Raise ConfigError naming ``section.key`` and the value of the first bad setting."""
    checks = [
        (c.protocol in PROTOCOLS, "calibration.protocol", c.protocol,
         f"must be one of {', '.join(PROTOCOLS)}"),
        (c.spinup_cycles >= 0, "calibration.spinup_cycles", c.spinup_cycles, "must be >= 0"),
        (c.protocol != "shortened" or c.spinup_cycles >= 1, "calibration.spinup_cycles",
         c.spinup_cycles, "must be >= 1 with the shortened protocol"),
        (c.protocol != "continued" or cfg.spinup.cycles >= 1, "spinup.cycles", cfg.spinup.cycles,
         "must be >= 1 with the continued protocol (it starts from the default spin-up)"),
        (c.continue_from_year == 0 or (c.protocol == "continued" and cfg.run.start_year
                                        <= c.continue_from_year < c.reference_year),
         "calibration.continue_from_year", c.continue_from_year,
         "must be 0, or (protocol continued) a run year before the reference year"),
        (c.continue_from_year == 0 or c.spinup_cycles == 0, "calibration.spinup_cycles",
         c.spinup_cycles, "must be 0 when continuing from a transient year"),
        (c.trials >= 1, "calibration.trials", c.trials, "must be >= 1"),
        (c.batch_size >= 1, "calibration.batch_size", c.batch_size, "must be >= 1"),
        (c.startup_trials >= 1, "calibration.startup_trials", c.startup_trials, "must be >= 1"),
        (c.buffer_cells >= 0, "calibration.buffer_cells", c.buffer_cells, "must be >= 0"),
        (0 <= c.seed < 2**32, "calibration.seed", c.seed, "must be in 0 .. 2**32 - 1"),
        (cfg.run.start_year <= c.reference_year <= cfg.run.end_year, "calibration.reference_year",
         c.reference_year, f"must lie within the run {cfg.run.start_year}..{cfg.run.end_year}"),
        (all(isinstance(n, str) for n in c.parameters), "calibration.parameters", c.parameters,
         "must be a list of dimension names"),
        (e.members >= 1, "ensemble.members", e.members, "must be >= 1"),
        (e.protocol in ENSEMBLE_PROTOCOLS, "ensemble.protocol", e.protocol,
         f"must be one of {', '.join(ENSEMBLE_PROTOCOLS)}"),
        (e.end_year == 0 or c.reference_year <= e.end_year <= cfg.run.end_year,
         "ensemble.end_year", e.end_year,
         f"must be 0 or a year from calibration.reference_year ({c.reference_year}) to "
         f"run.end_year ({cfg.run.end_year})"),
    ]
    for ok, key, value, reason in checks:
        if not ok:
            raise ConfigError(reason, path=path, field=key, value=value)
    if c.default_run and not Path(c.default_run).is_dir():
        raise ConfigError("is not an existing run directory", path=path,
                          field="calibration.default_run", value=c.default_run)
    for key in ("parameter_space", "reference_map", "reference_mapping"):
        value = getattr(c, key)
        if value and not Path(value).exists():
            raise ConfigError("file does not exist", path=path, field=f"calibration.{key}",
                              value=value)


def from_dict(data: dict, path: str = "<dict>", base_dir: Path | None = None):
    """(run Config, CalibrationSettings, EnsembleSettings) from a parsed configuration."""
    data = dict(data)
    cal = _section(path, "calibration", CalibrationSettings, data.pop("calibration", {}))
    ens = _section(path, "ensemble", EnsembleSettings, data.pop("ensemble", {}))
    cfg = config_mod.from_dict(data, path, base_dir=base_dir)
    if base_dir is not None:
        for obj, keys in ((cal, ("directory", "parameter_space", "reference_map",
                                 "reference_mapping", "default_run")),
                          (ens, ("parameter_file", "directory"))):
            for key in keys:
                value = getattr(obj, key)
                if value and not Path(value).is_absolute():
                    setattr(obj, key, str(base_dir / value))
    out = Path(cfg.output.directory)
    if not cal.directory:
        cal.directory = str(out / "calibration")
    if not ens.directory:
        ens.directory = str(out / "ensemble")
    if not ens.parameter_file:
        ens.parameter_file = str(Path(cal.directory) / "ensemble_parameters.toml")
    if not cal.reference_map and cfg.static.reference_map:
        cal.reference_map = cfg.static.reference_map
    validate(path, cal, ens, cfg)
    return cfg, cal, ens


def load(path: str | Path):
    """Read a configuration file with ``[calibration]`` / ``[ensemble]`` tables."""
    path = Path(path)
    return from_dict(config_mod.read_toml(path), str(path), base_dir=path.parent)


def as_dict(obj) -> dict:
    return dataclasses.asdict(obj)
