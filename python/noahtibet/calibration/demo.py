"""A small calibration on the demo domain, after the demo's product run.

The demo's truth (:mod:`noahtibet.demo_truth`) provides the 2010 reference map;
the product run with the default parameters (``output.directory``) is reused as
the default run (no second run), and the trials start from its state at the end
of :data:`DEMO_CALIBRATION` ``continue_from_year`` (a warm start, the cheapest
protocol), so the whole calibration costs about ``trials x sensitive cells x
(2010 - continue_from_year)`` column-years.

The lead can call :func:`run_demo_calibration` at the end of ``noahtibet demo``.
"""

from __future__ import annotations

import dataclasses
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


def demo_settings(cfg, **overrides):
    """(CalibrationSettings, EnsembleSettings) of the demo for a demo run configuration."""
    out = Path(cfg.output.directory)
    cal = settings_mod.CalibrationSettings(**{**DEMO_CALIBRATION, **overrides})
    cal.directory = cal.directory or str(out / "calibration")
    cal.default_run = cal.default_run or str(out)
    ens = settings_mod.EnsembleSettings(
        members=min(13, cal.trials), directory=str(out / "ensemble"),
        parameter_file=str(Path(cal.directory) / "ensemble_parameters.toml"))
    settings_mod.validate(cfg.path, cal, ens, cfg)
    return cal, ens


def run_demo_calibration(cfg, comm=None, resume: bool = False, **overrides):
    """Calibrate on the demo after its product run (which must have reached 2010)."""
    from .optimizer import calibrate

    cal, ens = demo_settings(cfg, **overrides)
    if comm is None or comm.rank == 0:
        log.info("demo calibration: %d trials in batches of %d against the demo truth's 2010 "
                 "map, warm start from the product run's %d state", cal.trials, cal.batch_size,
                 cal.continue_from_year)
    return calibrate(dataclasses.replace(cfg), cal, comm, members=ens.members, resume=resume)
