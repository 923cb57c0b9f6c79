"""``noahtibet calibrate CONFIG`` and ``noahtibet ensemble CONFIG``.

The lead wires these in with one line in :func:`noahtibet.cli.build_parser`::

    from .cli_calibration import add_parser as add_calibration_parsers
    add_calibration_parsers(sub)

CONFIG is a run configuration (:mod:`noahtibet.config`) with optional
``[calibration]`` and ``[ensemble]`` tables
(:mod:`noahtibet.calibration.settings`).
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("noahtibet")


def _comm(args):
    from .parallel import comm_from_option

    return comm_from_option(args.mpi)


def _cmd_calibrate(args) -> int:
    from .calibration import settings
    from .calibration.optimizer import calibrate

    cfg, cal, ens = settings.load(args.config)
    if args.trials is not None:
        cal.trials = args.trials
        settings.validate(f"{cfg.path} with --trials", cal, ens, cfg)
    comm = _comm(args)
    if comm.rank == 0:
        log.info("calibration of %s: %d trials in batches of %d, protocol %s, %d rank(s) -> %s",
                 cfg.path, cal.trials, cal.batch_size, cal.protocol, comm.size, cal.directory)
    res = calibrate(cfg, cal, comm, members=ens.members, resume=args.resume)
    if comm.rank == 0 and res.ranking:
        log.info("best kappa %.4f (trial %d); trial table %s", res.ranking[0]["kappa"],
                 res.ranking[0]["tid"], res.directory / "trials.csv")
    return 0


def _cmd_ensemble(args) -> int:
    from .calibration import settings
    from .calibration.ensemble import run_ensemble

    cfg, cal, ens = settings.load(args.config)
    comm = _comm(args)
    res = run_ensemble(cfg, cal, ens, comm, resume=args.resume)
    if comm.rank == 0:
        log.info("ensemble of %d members (%s): products in %s", len(res.members),
                 res.protocol["description"], res.directory / "products")
    return 0


def add_parser(sub) -> None:
    """Add the ``calibrate`` and ``ensemble`` subcommands to an argparse subparsers object."""
    p = sub.add_parser(
        "calibrate", help="map-based Bayesian calibration (CaliMAP) against a reference map",
        description="Run the default parameters to the reference year, select the cells where "
                    "the simulated permafrost disagrees with the reference map, and tune the "
                    "parameters of the parameter space with hyperopt's TPE to maximise Cohen's "
                    "kappa there.  Batches of trials run in parallel over MPI ranks; the trials "
                    "are checkpointed after every batch (--resume continues exactly).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="TOML configuration with a [calibration] table")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint (trials.json) of the calibration directory")
    p.add_argument("--trials", type=int, default=None,
                   help="total number of trials (overrides calibration.trials)")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="use MPI (auto: when started by mpirun/mpiexec)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser(
        "ensemble", help="run the calibrated ensemble and write mean and probability maps",
        description="Run every member of the calibrated ensemble (the best trials) over the "
                    "whole domain and period; write the yearly ensemble-mean class maps "
                    "(GeoTIFF), the permafrost probability and member spread (netCDF) and the "
                    "kappa of the default run, every member and the ensemble mean.  The "
                    "members run the calibration's protocol (ensemble.protocol = "
                    "\"calibration\", default) or the product's (\"full\").")
    p.add_argument("config", help="TOML configuration (the one given to 'calibrate')")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest ensemble restart")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="auto")
    p.set_defaults(func=_cmd_ensemble)
