"""Throughput of a gridded run against the kernel alone, scaling over ranks, memory.

    python benchmarks/gridded_throughput.py [--cells 400] [--years 2] [--ranks 2]

Prints, for the built-in demo domain (3-hourly steps, 20 layers):

1. the kernel's own throughput on the same columns (forcing generated first,
   then one kernel call per month, nothing else);
2. the end-to-end throughput of ``Simulation.run`` (forcing generation, kernel,
   annual diagnostics, classification, GeoTIFF / netCDF / restart output) on
   one process, and its ratio to (1);
3. the same run under ``mpiexec -n RANKS`` and its speed-up over one process;
4. peak memory per rank for two domain sizes (it must follow the cells a rank
   owns, not the domain);
5. an estimate of the core-hours of the full product (26,000 cells, 500-year
   spin-up + 40-year run, 13 ensemble members) from the end-to-end figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _config(out, cells, years):
    from noahtibet.demo_run import demo_config
    return demo_config(out, domain={"max_cells": cells},
                       spinup={"cycles": 0},
                       run={"start_year": 1979, "end_year": 1979 + years - 1,
                            "product_start_year": 1980})


def kernel_only(cells: int, years: int) -> float:
    """Column-steps per second of the kernel alone on the demo columns."""
    from noahtibet.kernel import AnnualDiagnostics, Calendar, run_columns
    from noahtibet.legacy_forcing import month_interpolation
    from noahtibet.simulation import Simulation, month_starts

    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(_config(tmp, cells, years))
        loc = sim.local
        months = []
        for y in range(1979, 1979 + years):
            for m in range(1, 13):
                s = month_starts(y)
                months.append(sim.model.provider.read(loc.rows, loc.cols, s[m - 1], s[m]))
        diag = AnnualDiagnostics.empty(loc.n, loc.state.nlay)
        steps = 0
        t0 = time.perf_counter()
        for times, forcing in months:
            p, n, w = month_interpolation(times)
            run_columns(forcing, Calendar(p, n, w), loc.monthly, loc.layer_par, loc.column_par,
                        loc.state, sim.dt, sim.options, diag)
            steps += forcing.shape[0] * loc.n
        return steps / (time.perf_counter() - t0)


def end_to_end(cells: int, years: int, ranks: int = 1) -> dict:
    """Run Simulation.run (in a subprocess, under mpiexec when ranks > 1)."""
    tmp = tempfile.mkdtemp()
    code = (
        "import json, sys, time\n"
        "sys.path.insert(0, %r)\n"
        "from gridded_throughput import _config\n"
        "from noahtibet.simulation import Simulation\n"
        "from noahtibet.parallel import get_comm\n"
        "comm = get_comm(%s)\n"
        "sim = Simulation(_config(%r, %d, %d), comm)\n"
        "s = sim.run()\n"
        "if comm.rank == 0:\n"
        "    print(json.dumps({'steps': s.column_steps, 'wall': s.wall_seconds,\n"
        "                      'peak_mb': s.peak_memory_mb}))\n"
    ) % (HERE, "True" if ranks > 1 else "False", tmp, cells, years)
    cmd = [sys.executable, "-c", code]
    if ranks > 1:
        cmd = ["mpiexec", "-n", str(ranks)] + cmd
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=400)
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=2)
    args = ap.parse_args()

    k = kernel_only(args.cells, args.years)
    e1 = end_to_end(args.cells, args.years, 1)
    r1 = e1["steps"] / e1["wall"]
    print(f"demo domain, {args.cells} cells, {args.years} years, 3-hourly, 20 layers")
    print(f"kernel alone:              {k:12.4g} column-steps/s ({1e6 / k:.2f} us per column-step)")
    print(f"end to end, 1 process:     {r1:12.4g} column-steps/s = {100 * r1 / k:.0f} % of the "
          f"kernel; peak memory {e1['peak_mb']:.0f} MB")
    if args.ranks > 1 and shutil.which("mpiexec"):
        en = end_to_end(args.cells, args.years, args.ranks)
        rn = en["steps"] / en["wall"]
        print(f"end to end, {args.ranks} ranks:       {rn:12.4g} column-steps/s = "
              f"{rn / r1:.2f} x one process; peak memory per rank {en['peak_mb']:.0f} MB")
    half = end_to_end(args.cells // 2, args.years, 1)
    print(f"peak memory, {args.cells // 2} cells: {half['peak_mb']:.0f} MB; {args.cells} cells: "
          f"{e1['peak_mb']:.0f} MB (per-cell share "
          f"{(e1['peak_mb'] - half['peak_mb']) / (args.cells - args.cells // 2) * 1024:.0f} kB)")
    steps = 26000 * (500 + 40) * 2920 * 13
    print(f"full product (26,000 cells x 540 years x 2920 steps x 13 members = {steps:.3g} "
          f"column-steps): {steps / r1 / 3600:.3g} core-hours at the end-to-end rate")


if __name__ == "__main__":
    main()
