"""A small calibration and ensemble on the demo domain, after the demo's product run.

The demo's truth (:mod:`noahtibet.demo_truth`) provides the 2010 reference map;
the product run with the default parameters (``output.directory``) is reused as
the default run (no second run), and the trials start from its state at the end
of :data:`DEMO_CALIBRATION` ``continue_from_year`` (a warm start, the cheapest
protocol), so the whole calibration costs about ``trials x sensitive cells x
(2010 - continue_from_year)`` column-years.

The ensemble (:data:`DEMO_ENSEMBLE`) runs its members under the same protocol
(``ensemble.protocol = "calibration"``): every cell of the domain, from the
default run's 2005 state, to the reference year, so that each member's map of
the sensitive cells is the one its trial was ranked by and the ensemble mean can
be compared with the default run and the reference over the whole domain.
:func:`ensemble_shortenings` says what that leaves out of the product's
ensemble protocol.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import settings as settings_mod

log = logging.getLogger("noahtibet")

#: The demo's calibration (everything else: the defaults of CalibrationSettings).
DEMO_CALIBRATION = {
    "protocol": "continued",
    "continue_from_year": 2005,
    "spinup_cycles": 0,
    "buffer_cells": 1,
    "trials": 16,
    "batch_size": 8,
    "startup_trials": 8,
    "seed": 1,
}


#: The demo's ensemble: 3 members to the reference year under the trials' protocol.
DEMO_ENSEMBLE = {"members": 3, "protocol": "calibration", "end_year": 2010}


def demo_settings(cfg, ensemble: dict | None = None, **overrides):
    """(CalibrationSettings, EnsembleSettings) of the demo for a demo run configuration."""
    out = Path(cfg.output.directory)
    cal = settings_mod.CalibrationSettings(**{**DEMO_CALIBRATION, **overrides})
    cal.directory = cal.directory or str(out / "calibration")
    cal.default_run = cal.default_run or str(out)
    ens = settings_mod.EnsembleSettings(**{
        **DEMO_ENSEMBLE, "directory": str(out / "ensemble"),
        "parameter_file": str(Path(cal.directory) / "ensemble_parameters.toml"),
        **(ensemble or {})})
    settings_mod.validate(cfg.path, cal, ens, cfg)
    return cal, ens


def run_demo_calibration(cfg, comm=None, resume: bool = False, **overrides):
    """Calibrate on the demo after its product run (which must have reached 2010)."""
    from .optimizer import calibrate

    cal, ens = demo_settings(cfg, **overrides)
    if comm is None or comm.rank == 0:
        log.info("demo calibration: %d trials in batches of %d against the demo truth's 2010 "
                 "map; trials %s", cal.trials, cal.batch_size,
                 settings_mod.trial_protocol(cfg, cal).describe())
    return calibrate(cfg, cal, comm, members=ens.members, resume=resume)


def ensemble_shortenings(cfg, cal, ens) -> list[str]:
    """What the demo's ensemble leaves out of the product's ensemble protocol."""
    p = settings_mod.ensemble_protocol(cfg, cal, ens)
    lines = [f"{ens.members} ensemble members instead of 13"]
    if p.start != "cold":
        lines.append("members start from the default run's state at the end of "
                     f"{p.start_year if p.start == 'year' else 'its spin-up'} (the calibration's "
                     "protocol) instead of their own cold start and spin-up")
    if (p.first_year, p.last_year) != (cfg.run.start_year, cfg.run.end_year):
        lines.append(f"ensemble years {p.first_year}-{p.last_year} instead of "
                     f"{cfg.run.start_year}-{cfg.run.end_year}")
    return lines


def run_demo_ensemble(cfg, comm=None, resume: bool = False, **overrides):
    """The demo's ensemble of the best trials (after :func:`run_demo_calibration`)."""
    from .ensemble import run_ensemble

    cal, ens = demo_settings(cfg, **overrides)
    if comm is None or comm.rank == 0:
        for line in ensemble_shortenings(cfg, cal, ens):
            log.info("shortened relative to the product's ensemble: %s", line)
    return run_ensemble(cfg, cal, ens, comm, resume=resume)
