"""The ``noahtibet`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from . import __version__
from ._dispatch import KernelSelectionError
from .errors import InputError

log = logging.getLogger("noahtibet")


def _cmd_point(args: argparse.Namespace) -> int:
    from .point import run_point_file, write_dataset

    t0 = time.perf_counter()
    ds = run_point_file(args.forcing_file, legacy_quirks=args.legacy_quirks,
                        record_pass=args.spinup_pass)
    elapsed = time.perf_counter() - t0
    path = write_dataset(ds, args.output)
    nstep, nlay = ds.sizes["time"], ds.sizes["layer"]
    log.info("point run: %s -> %s", args.forcing_file, path)
    log.info("%d steps, %d layers, legacy quirks %s, surface exchange %s%s; %.2f s",
             nstep, nlay, "on" if args.legacy_quirks else "off",
             ds.attrs["surface_exchange"],
             f", pass {ds.attrs['spinup_pass']} of 0..{ds.attrs['spinup_passes'] - 1}"
             if ds.attrs["spinup_passes"] > 1 else "", elapsed)
    return 0


def _simulation(args, cfg):
    from .parallel import comm_from_option
    from .simulation import Simulation

    comm = comm_from_option(args.mpi)
    if comm.rank == 0:
        log.info("noahtibet %s: configuration %s, %d rank(s)", __version__, cfg.path, comm.size)
    return Simulation(cfg, comm)


def _report_summary(sim) -> None:
    if sim.comm.rank != 0:
        return
    s = sim.summary
    if s.permafrost_area_km2:
        years = sorted(s.permafrost_area_km2)
        first, last = years[0], years[-1]
        log.info("permafrost area %d: %.0f km2, %d: %.0f km2", first,
                 s.permafrost_area_km2[first], last, s.permafrost_area_km2[last])
    log.info("outputs in %s", sim.out)


def _cmd_stage(stages):
    def run(args):
        from . import config

        cfg = config.load(args.config)
        sim = _simulation(args, cfg)
        sim.run(resume=args.resume, stages=stages)
        _report_summary(sim)
        return 0
    return run


def _cmd_classify(args) -> int:
    from . import config

    cfg = config.load(args.config)
    sim = _simulation(args, cfg)
    years = sim.classify_products()
    if years:
        log.info("classified %d years (%d..%d); products in %s/products", len(years), years[0],
                 years[-1], sim.out)
    return 0


def _cmd_demo(args) -> int:
    from .demo_run import run_demo

    return run_demo(args)


def _print_table(rows: list[tuple], csv: bool) -> None:
    """Rows of strings, comma-separated or in aligned columns."""
    if csv:
        for row in rows:
            print(",".join(row))
        return
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    for row in rows:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())


def _cmd_parameters(args) -> int:
    """Print the parameters a cell of a run gets, exactly as the run builds them."""
    import numpy as np

    from . import config, layout
    from .export_point import locate_cell
    from .parameters import Tables
    from .simulation import build_local_columns, build_model

    cfg = config.load(args.config)
    model = build_model(cfg)
    r, c, idx = locate_cell(cfg, model, args.lon, args.lat, prepare=False)
    cols = build_local_columns(model, np.array([idx]), cfg)     # (prepares the cell)
    spec = model.column_spec(r, c)
    tables = Tables.load()
    print(f"# cell {idx} (row {r}, col {c}) at {model.grid.lons[c]:.3f} E "
          f"{model.grid.lats[r]:.3f} N of {cfg.path}")
    print(f"# vegetation class {spec.vegetation_class} "
          f"({tables.veg.NAME[spec.vegetation_class - 1]}), slope class {spec.slope_class}; "
          f"[parameters] overrides: {dict(cfg.parameters.column) or 'none'} (column), "
          f"{dict(cfg.parameters.layer) or 'none'} (layer)")
    print("# column parameters")
    _print_table([("name", "value")] + [(n, f"{v:.10g}") for n, v in
                                        zip(layout.COLUMN_PARAMETERS, cols.column_par[0])],
                 args.csv)
    print("# layer parameters (one row per layer, top first)")
    rows = [("layer", "soil_class", "soil_name") + layout.LAYER_PARAMETERS]
    for k, row in enumerate(cols.layer_par[0]):
        cls = int(spec.soil_class[k])
        rows.append((str(k + 1), str(cls), tables.soil.NAME[cls - 1].replace(",", " "))
                    + tuple(f"{v:.6g}" for v in row))
    _print_table(rows, args.csv)
    print("# monthly climatologies (January .. December)")
    _print_table([(n,) + tuple(f"{v:.4g}" for v in row)
                  for n, row in zip(layout.MONTHLY, cols.monthly[0])], args.csv)
    return 0


def _cmd_template(args) -> int:
    from .config import template

    print(template(), end="")
    return 0


def _add_run_options(p):
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest restart file in the output directory")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="use MPI (auto: when started by mpirun/mpiexec)")


class _Version(argparse.Action):
    """--version: the package version and the compiled kernel variant in use (imported
    only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ._dispatch import kernel_variant
        try:
            variant = kernel_variant()
        except KernelSelectionError as exc:
            parser.exit(2, f"noahtibet: error: {exc}\n")
        print(f"noahtibet {__version__} (kernel {variant})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noahtibet",
        description="Noah-Tibet land-surface model for frozen-ground maps of the "
                    "Qinghai-Tibet Plateau.")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the version and the kernel variant in use, and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("point", help="run one column from a legacy point-forcing file",
                       description="Run one soil column from a legacy Noah-Tibet point-forcing "
                                   "file (namelist header and <Forcing> records) and write every "
                                   "step's state and fluxes to netCDF.")
    p.add_argument("forcing_file", help="legacy point-forcing file")
    p.add_argument("--output", "-o", required=True, help="netCDF file to write")
    p.add_argument("--pass", dest="spinup_pass", type=int, metavar="K",
                   help="with loop_for_a_while = L > 0 in the file: the pass 0..L to write "
                        "(the legacy driver's OUTPUT.K; default L, the spun-up pass)")
    quirks = p.add_mutually_exclusive_group()
    quirks.add_argument("--legacy-quirks", dest="legacy_quirks", action="store_true",
                        default=True,
                        help="reproduce the legacy model's parameter routing (default)")
    quirks.add_argument("--no-legacy-quirks", dest="legacy_quirks", action="store_false",
                        help="consistent physics: every layer uses its own soil parameters")
    p.set_defaults(func=_cmd_point)

    for name, stages, text in (
            ("run", ("spinup", "transient"), "spin-up, transient run and yearly products"),
            ("spinup", ("spinup",), "the spin-up stage only (restart files per cycle)"),
            ("transient", ("transient",), "the transient run from the finished spin-up"),
    ):
        p = sub.add_parser(name, help=text, description=f"Gridded simulation: {text}.")
        _add_run_options(p)
        p.set_defaults(func=_cmd_stage(stages))

    p = sub.add_parser("classify", help="re-make the yearly classes and products from a run",
                       description="Re-classify every simulated year from the annual files of a "
                                   "run (current masks and product settings) and rewrite the "
                                   "GeoTIFFs and the netCDF product.")
    p.add_argument("config", help="TOML configuration file of the run")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="off")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("demo", help="the whole pipeline on the built-in synthetic demo domain",
                       description="Run spin-up, transient run 1979-2018 and the yearly products "
                                   "on the built-in SYNTHETIC demo domain, shortened to fit a "
                                   "laptop; prints what was shortened.")
    p.add_argument("--out", default="noahtibet_demo", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo")
    p.add_argument("--mpi", choices=("auto", "on", "off"), default="auto")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("parameters", help="print the parameters one cell of a run gets",
                       description="Print the kernel parameters (column and per layer, with the "
                                   "soil and vegetation classes) and monthly climatologies of the "
                                   "simulated cell containing LON/LAT, exactly as the run builds "
                                   "them (tables, static data and [parameters] overrides).")
    from .cli_validation import add_cell_arguments
    add_cell_arguments(p)
    p.add_argument("--csv", action="store_true", help="comma-separated output")
    p.set_defaults(func=_cmd_parameters)

    p = sub.add_parser("config-template", help="print a configuration file with every default")
    p.set_defaults(func=_cmd_template)

    from .cli_validation import add_parser as add_validation_commands
    add_validation_commands(sub)    # report, compare-legacy, compare-products
    from .cli_calibration import add_parser as add_calibration_commands
    add_calibration_commands(sub)   # calibrate, ensemble
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except (InputError, KernelSelectionError) as exc:
        print(f"noahtibet: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
