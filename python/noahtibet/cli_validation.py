"""Subcommands ``report``, ``compare-legacy``, ``export-point`` and ``compare-products``.

:func:`add_parser` adds them to the ``noahtibet`` command's subparsers
(``noahtibet.cli.build_parser`` calls it).  Bad input raises
:class:`noahtibet.errors.InputError`, which the command prints as a one-line
error naming the file, field and value.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("noahtibet")


def _years(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of years") \
            from None


def _cmd_report(args) -> int:
    from .report import build_report

    observations = None
    if args.no_observations:
        observations = []
    elif args.observations:
        observations = args.observations
    reference = "" if args.no_reference else args.reference
    res = build_report(args.run_dir, args.out, observations=observations, reference=reference,
                       reference_year=args.reference_year, reference_mapping=args.reference_mapping,
                       map_years=args.years, config=args.config, title=args.title,
                       max_distance_km=args.max_distance_km,
                       min_trend_years=args.min_trend_years)
    missing = [s.title for s in res.sections if not s.present]
    log.info("report: %s (metrics %s)", res.html, res.json)
    if missing:
        log.info("sections without inputs: %s", ", ".join(missing))
    return 0


def _cmd_compare_legacy(args) -> int:
    from .compare import compare_legacy

    cmp = compare_legacy(args.forcing_file, args.legacy_output, args.out,
                         sfcdif_option=args.sfcdif_option, legacy_quirks=args.legacy_quirks,
                         rtol=args.rtol, first_steps=args.first_steps,
                         record_pass=args.spinup_pass)
    acc = cmp.acceptance()
    div = cmp.divergence
    log.info("%d steps compared; largest per-layer STC RMSE %.4f K; first %d steps: largest "
             "relative difference %.3g", cmp.time.size, acc["max_stc_rmse_K"], cmp.first_steps,
             acc["first_steps_max_relative_difference"])
    if div is None:
        log.info("no step diverges beyond the tolerance")
    else:
        log.info("first divergence: step %d (%s), %s%s", div["step"], div["time"],
                 div["variable"], f" layer {div['layer']}" if div.get("layer") else "")
    log.info("report: %s/legacy_comparison.html", args.out)
    return 0


def _cmd_export_point(args) -> int:
    from . import config
    from .export_point import export_cell

    cfg = config.load(args.config)
    first, last = args.years
    res = export_cell(cfg, args.lon, args.lat, first, last, args.output, state=args.state)
    log.info("cell (%d, %d): %d steps %d..%d, initial state from %s -> %s (details in %s)",
             *res.cell, res.steps, first, last, res.state_source, res.path, res.metadata_path)
    return 0


def _cmd_compare_products(args) -> int:
    from .compare import compare_products

    res = compare_products(args.a, args.b, args.out, labels=(args.label_a, args.label_b),
                           years=args.years)
    k = [r["kappa_binary"] for r in res["per_year"]]
    finite = [x for x in k if x is not None]
    log.info("%d years compared; kappa (permafrost / not) %s..%s", len(res["years"]),
             f"{min(finite):.3f}" if finite else "-", f"{max(finite):.3f}" if finite else "-")
    log.info("report: %s/products_comparison.html", args.out)
    return 0


def add_cell_arguments(p) -> None:
    """The run configuration and the cell (LON/LAT) of a per-cell command."""
    p.add_argument("config", help="TOML configuration file of the run")
    p.add_argument("--lon", type=float, required=True, help="longitude of the cell [deg E]")
    p.add_argument("--lat", type=float, required=True, help="latitude of the cell [deg N]")


def add_parser(sub) -> None:
    """Add ``report``, ``compare-legacy``, ``export-point`` and ``compare-products`` to ``sub``."""
    p = sub.add_parser(
        "report", help="validation report of a gridded run (HTML, JSON, CSV)",
        description="Write a self-contained HTML validation report of a run directory, with "
                    "the metrics as JSON and CSV: maps, permafrost area, agreement with a "
                    "reference map, observed vs simulated ALT/TTOP/GT10m and their trends "
                    "beside the published product's figures, calibration and ensemble when "
                    "present, and the provenance of every input and setting.")
    p.add_argument("run_dir", help="output directory of 'noahtibet run' or 'noahtibet demo'")
    p.add_argument("--out", help="directory for the report (default RUN_DIR/report)")
    p.add_argument("--observations", action="append", metavar="FILE",
                   help="an observation file: plain CSV or a Zhao et al. 2021 workbook (.xlsx); "
                        "repeat for several; default RUN_DIR/truth/observations.csv if present")
    p.add_argument("--no-observations", action="store_true", help="do not look for observations")
    p.add_argument("--reference", metavar="MAP",
                   help="reference class map (GeoTIFF; codes 1/2/3, 0 no data); default "
                        "RUN_DIR/truth/reference_permafrost_YEAR.tif if present")
    p.add_argument("--reference-year", type=int, help="year of the reference map "
                                                      "(default: from its file name, else 2010)")
    p.add_argument("--reference-mapping", metavar="CSV",
                   help="code table of the reference map (code,class; see "
                        "noahtibet.masks.reference_map)")
    p.add_argument("--no-reference", action="store_true", help="do not look for a reference map")
    p.add_argument("--years", type=_years, help="years to map, e.g. 1980,2000,2018")
    p.add_argument("--config", help="the run's TOML configuration (default: stored in products)")
    p.add_argument("--title", help="report title")
    p.add_argument("--max-distance-km", type=float,
                   help="largest site-to-cell distance (default 2 cell heights)")
    p.add_argument("--min-trend-years", type=int, help="fewest years for a site trend "
                                                       "(default 5)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "export-point", help="write one cell of a gridded run as a legacy point-forcing file",
        description="Write the legacy Noah-Tibet point-forcing file (namelist + <Forcing> "
                    "records) of one simulated cell of a run configuration: its forcing as the "
                    "gridded run receives it, its layers, classes and options, and its state at "
                    "the start of the years (the run's restart, or the cold start). Run the "
                    "legacy code and 'noahtibet point' on it, then 'noahtibet compare-legacy'. "
                    "Refused when the legacy code cannot reproduce the run's parameters or "
                    "physics; details in OUTPUT.json.")
    add_cell_arguments(p)
    p.add_argument("--years", type=int, nargs=2, required=True, metavar=("FIRST", "LAST"),
                   help="calendar years to export")
    p.add_argument("--state", choices=("auto", "restart", "cold"), default="auto",
                   help="initial state: the run's restart at the start of FIRST, the cold "
                        "start, or restart when there is one (default)")
    p.add_argument("--output", "-o", required=True, help="point-forcing file to write")
    p.set_defaults(func=_cmd_export_point)

    p = sub.add_parser(
        "compare-legacy", help="run a legacy point-forcing file and compare with the legacy "
                               "model's output",
        description="Run noahtibet on a legacy point-forcing file and compare every step with "
                    "the legacy model's output (its text output, or the full-precision state "
                    "dump): per-layer RMSE, bias and largest difference of soil temperature and "
                    "moisture, the first step where they diverge, time-series plots.")
    p.add_argument("forcing_file", help="legacy point-forcing file")
    p.add_argument("legacy_output", help="legacy output (.txt text output or state dump, "
                                         "optionally gzip-compressed)")
    p.add_argument("--out", default="legacy_comparison", help="output directory "
                                                              "(default ./legacy_comparison)")
    p.add_argument("--sfcdif-option", type=int, choices=(0, 1, 2),
                   help="override the file's sfcdif_option (as the legacy run used)")
    p.add_argument("--pass", dest="spinup_pass", type=int, metavar="K",
                   help="with loop_for_a_while = L > 0 in the forcing file: the pass 0..L the "
                        "legacy output holds (its OUTPUT.K; default L)")
    quirks = p.add_mutually_exclusive_group()
    quirks.add_argument("--legacy-quirks", dest="legacy_quirks", action="store_true",
                        default=True, help="reproduce the legacy parameter routing (default)")
    quirks.add_argument("--no-legacy-quirks", dest="legacy_quirks", action="store_false",
                        help="consistent physics")
    p.add_argument("--rtol", type=float, default=1e-6,
                   help="relative tolerance for the first divergence (default 1e-6)")
    p.add_argument("--first-steps", type=int, default=30,
                   help="steps of the early-agreement check (default 30)")
    p.set_defaults(func=_cmd_compare_legacy)

    p = sub.add_parser(
        "compare-products", help="compare two product sets year by year",
        description="Compare two frozen-ground product sets (directories of yearly GeoTIFFs, "
                    "a GeoTIFF, or netCDF products): per-year confusion matrix, kappa, overall "
                    "accuracy, quantity/allocation disagreement, class areas and their "
                    "differences, difference maps.")
    p.add_argument("a", help="first product set (the reference of the confusion matrices)")
    p.add_argument("b", help="second product set (resampled onto the first if needed)")
    p.add_argument("--out", default="products_comparison",
                   help="output directory (default ./products_comparison)")
    p.add_argument("--label-a", default="A", help="name of the first set in the report")
    p.add_argument("--label-b", default="B", help="name of the second set in the report")
    p.add_argument("--years", type=_years, help="years to compare (default: all common years)")
    p.set_defaults(func=_cmd_compare_products)
