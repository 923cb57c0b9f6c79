"""The ``noahtibet`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from . import __version__
from .errors import InputError

log = logging.getLogger("noahtibet")


def _cmd_point(args: argparse.Namespace) -> int:
    from .point import run_point_file, write_dataset

    t0 = time.perf_counter()
    ds = run_point_file(args.forcing_file, legacy_quirks=args.legacy_quirks)
    elapsed = time.perf_counter() - t0
    path = write_dataset(ds, args.output)
    nstep, nlay = ds.sizes["time"], ds.sizes["layer"]
    log.info("point run: %s -> %s", args.forcing_file, path)
    log.info("%d steps, %d layers, legacy quirks %s, surface exchange %s; %.2f s",
             nstep, nlay, "on" if args.legacy_quirks else "off",
             ds.attrs["surface_exchange"], elapsed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noahtibet",
        description="Noah-Tibet land-surface model for frozen-ground maps of the "
                    "Qinghai-Tibet Plateau.")
    parser.add_argument("--version", action="version", version=f"noahtibet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("point", help="run one column from a legacy point-forcing file",
                       description="Run one soil column from a legacy Noah-Tibet point-forcing "
                                   "file (namelist header and <Forcing> records) and write every "
                                   "step's state and fluxes to netCDF.")
    p.add_argument("forcing_file", help="legacy point-forcing file")
    p.add_argument("--output", "-o", required=True, help="netCDF file to write")
    quirks = p.add_mutually_exclusive_group()
    quirks.add_argument("--legacy-quirks", dest="legacy_quirks", action="store_true",
                        default=True,
                        help="reproduce the legacy model's parameter routing (default)")
    quirks.add_argument("--no-legacy-quirks", dest="legacy_quirks", action="store_false",
                        help="consistent physics: every layer uses its own soil parameters")
    p.set_defaults(func=_cmd_point)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except InputError as exc:
        print(f"noahtibet: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
