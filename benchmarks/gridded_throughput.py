"""Throughput of a gridded run against the kernel alone, scaling over ranks, memory.

    python benchmarks/gridded_throughput.py [--cells 400] [--years 6] [--ranks 2]
                                            [--forcing demo|cmfd|both] [--prefetch]

Two set-ups (``--forcing``, default both):

demo
    the built-in demo domain (0.5 degree cells, the first ``--cells`` domain cells),
    forcing generated on the fly by the SYNTHETIC generator;
cmfd
    a real-data run (``domain.kind = "cmfd"``): a square patch of about ``--cells``
    0.1 degree cells whose static inputs (soil, vegetation, LAI, green fraction, TBOT,
    slope, masks) are GeoTIFFs and whose forcing is real-format CMFD monthly netCDF
    files (int16 packed, latitude descending, precipitation in mm/hr, as CMFD 1.6),
    all written first from the demo; the files end with the run's last year.

For each it prints, with 3-hourly steps and 20 layers:

1. the kernel's own cost on the same columns (forcing read first, then one kernel
   call per month, nothing else), in CPU time of the calling thread;
2. the end-to-end cost of a run on one process (``Simulation`` set-up and ``run``:
   forcing, kernel, annual diagnostics, classification, GeoTIFF / netCDF / restart
   output), in CPU time of the process, and the kernel's share of it (the ratio of
   throughputs); the overhead per column-step; wall-clock figures beside them;
3. (demo) the same run under ``mpiexec -n RANKS``: wall-clock speed-up and CPU per
   column-step summed over ranks;
4. (demo) peak memory per rank for two domain sizes (it must follow the cells a rank
   owns, not the domain);
5. an estimate of the core-hours of the full product (26,000 cells, 500-year spin-up
   + 40-year run, 13 ensemble members) from the end-to-end figure.

CPU time is used for the ratios because the machine may be shared: wall-clock
figures of a loaded machine measure the other jobs too.  ``--prefetch`` runs with
``forcing.prefetch = true`` (the next month read in a thread while the kernel runs):
it can only shorten the wall-clock time, and only when a core is idle.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: south-west corner of the cmfd patch (plateau interior of the demo, no glacier)
PATCH_ORIGIN = (89.0, 32.0)


def _toml(data: dict) -> str:
    from noahtibet.config import _toml_value

    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


PREFETCH = False


def demo_setup(work: str, cells: int, years: int) -> str:
    """Config file of the demo set-up; returns its path."""
    from noahtibet.demo_run import DEMO_SETTINGS

    data = {k: dict(v) for k, v in DEMO_SETTINGS.items()}
    if PREFETCH:
        data["forcing"]["prefetch"] = True
    data["domain"]["max_cells"] = cells
    data["spinup"]["cycles"] = 0
    data["run"] = {"start_year": 1979, "end_year": 1979 + years - 1, "product_start_year": 1980}
    data["output"] = {"directory": os.path.join(work, "out")}
    path = os.path.join(work, "demo.toml")
    with open(path, "w") as f:
        f.write(_toml(data))
    return path


def cmfd_setup(work: str, cells: int, years: int) -> str:
    """Write the cmfd set-up's static GeoTIFFs, CMFD files and config; return its path."""
    import rasterio

    from noahtibet.demo import DemoDomain
    from noahtibet.forcing import write_cmfd

    side = int(math.ceil(math.sqrt(cells)))
    west, south = PATCH_ORIGIN
    extent = (west, south, round(west + 0.1 * side, 1), round(south + 0.1 * side, 1))
    demo = DemoDomain(spacing=0.1, extent=extent)
    g = demo.grid
    static = os.path.join(work, "static")
    os.makedirs(static, exist_ok=True)

    def tif(name, bands, dtype, nodata):
        bands = np.asarray(bands)
        bands = bands[None] if bands.ndim == 2 else bands
        path = os.path.join(static, name)
        with rasterio.open(path, "w", driver="GTiff", width=g.nlon, height=g.nlat,
                           count=bands.shape[0], dtype=dtype, crs="EPSG:4326",
                           transform=g.north_up_transform(), nodata=nodata) as dst:
            dst.write(bands[:, ::-1, :].astype(dtype))
        return path

    st = {
        "soil": tif("soil.tif", np.moveaxis(demo.soil_class, -1, 0), "int16", 0),
        "vegetation": tif("veg.tif", demo.vegetation_class, "int16", 0),
        "vegetation_crosswalk": "usgs",
        "lai": tif("lai.tif", np.moveaxis(demo.lai_monthly, -1, 0), "float64", np.nan),
        "green_fraction": tif("gf.tif", np.moveaxis(demo.green_fraction_monthly, -1, 0),
                              "float64", np.nan),
        "tbot": tif("tbot.tif", demo.deep_temperature, "float64", np.nan),
        "slope": tif("slope.tif", demo.slope_class, "int16", 0),
        "domain_boundary": tif("domain.tif", demo.domain.active.astype(np.uint8), "uint8", None),
        "glacier": tif("glacier.tif", demo.glacier_mask.astype(np.uint8), "uint8", None),
    }
    forcing = os.path.join(work, "cmfd")
    last = 1979 + years - 1
    for y in range(1979, last + 1):      # a year at a time: bounded memory
        write_cmfd(demo.cmfd_dataset(f"{y}-01", f"{y}-12"), forcing, packed=True,
                   lat_descending=True, precip_units="mm/hr")
    data = {
        "domain": {"kind": "cmfd", "bbox": list(extent), "spacing": 0.1, "max_cells": cells},
        "forcing": {"provider": "cmfd", "path": forcing,
                    **({"prefetch": True} if PREFETCH else {})},
        "static": st,
        "spinup": {"start_year": 1979, "end_year": 1979, "cycles": 0},
        "run": {"start_year": 1979, "end_year": last, "product_start_year": 1980},
        "output": {"directory": os.path.join(work, "out")},
    }
    path = os.path.join(work, "cmfd.toml")
    with open(path, "w") as f:
        f.write(_toml(data))
    return path


def kernel_only(config_path: str) -> dict:
    """CPU seconds (calling thread) and wall seconds of the kernel alone on the run's columns."""
    from noahtibet import config
    from noahtibet.kernel import AnnualDiagnostics, Calendar, run_columns
    from noahtibet.legacy_forcing import month_interpolation
    from noahtibet.simulation import Simulation, month_starts

    cfg = config.load(config_path)
    sim = Simulation(cfg)
    loc = sim.local
    cpu = wall = 0.0
    steps = 0
    diag = AnnualDiagnostics.empty(loc.n, loc.state.nlay)
    for y in range(cfg.run.start_year, cfg.run.end_year + 1):
        s = month_starts(y)
        for m in range(12):     # forcing of a month read first, then timed alone
            times, forcing = sim.model.provider.read(loc.rows, loc.cols, s[m], s[m + 1])
            p, n, w = month_interpolation(times)
            c0, w0 = time.thread_time(), time.perf_counter()
            run_columns(forcing, Calendar(p, n, w), loc.monthly, loc.layer_par, loc.column_par,
                        loc.state, sim.dt, sim.options, diag)
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
            steps += forcing.shape[0] * loc.n
    return {"steps": steps, "cpu": cpu, "wall": wall}


_RUN = """
import json, os, resource, sys, time
from noahtibet import config
from noahtibet.parallel import get_comm
from noahtibet.simulation import Simulation
comm = get_comm({mpi})
cfg = config.load({path!r})
cfg.output.directory = os.path.join(cfg.output.directory, "r%d" % comm.size)
c0, w0 = time.process_time(), time.perf_counter()
sim = Simulation(cfg, comm)
c1, w1 = time.process_time(), time.perf_counter()
s = sim.run()
c2, w2 = time.process_time(), time.perf_counter()
cpu = comm.allreduce(c2 - c0, op="sum")
run_cpu = comm.allreduce(c2 - c1, op="sum")
if comm.rank == 0:
    print(json.dumps({{"steps": s.column_steps, "cpu": cpu, "run_cpu": run_cpu,
                      "wall": w2 - w0, "run_wall": w2 - w1, "peak_mb": s.peak_memory_mb,
                      "peak_mb_by_rank": s.peak_memory_mb_by_rank}}))
"""


def end_to_end(config_path: str, ranks: int = 1) -> dict:
    """Set up and run a Simulation in a subprocess (under mpiexec when ranks > 1)."""
    code = _RUN.format(mpi="True" if ranks > 1 else "False", path=config_path)
    cmd = [sys.executable, "-c", code]
    if ranks > 1:
        cmd = ["mpiexec", "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _us(seconds: float, steps: int) -> float:
    return 1e6 * seconds / steps


def report(name: str, config_path: str, ranks: int, memory: bool, cells: int) -> float:
    k = kernel_only(config_path)
    e1 = end_to_end(config_path, 1)
    k_us = _us(k["cpu"], k["steps"])
    e_us = _us(e1["cpu"], e1["steps"])
    r_us = _us(e1["run_cpu"], e1["steps"])
    print(f"  kernel alone:            {k_us:6.3f} us CPU per column-step "
          f"(wall {_us(k['wall'], k['steps']):.3f})")
    print(f"  end to end, 1 process:   {e_us:6.3f} us CPU per column-step "
          f"(run() only {r_us:.3f}; wall {_us(e1['wall'], e1['steps']):.3f}); "
          f"kernel share {100 * k_us / e_us:.0f} % ({100 * k_us / r_us:.0f} % of run() only)")
    print(f"  overhead:                {e_us - k_us:6.3f} us CPU per column-step "
          f"({r_us - k_us:.3f} in run()); peak memory {e1['peak_mb']:.0f} MB")
    if ranks > 1 and shutil.which("mpiexec"):
        en = end_to_end(config_path, ranks)
        by_rank = ", ".join(f"{m:.0f}" for m in en["peak_mb_by_rank"])
        print(f"  end to end, {ranks} ranks:     {_us(en['cpu'], en['steps']):6.3f} us CPU per "
              f"column-step (sum over ranks); wall speed-up {e1['wall'] / en['wall']:.2f} x one "
              f"process; peak memory by rank {by_rank} MB (rank 0 also writes the products)")
    if memory:
        with tempfile.TemporaryDirectory() as tmp:
            half = end_to_end(demo_setup(tmp, cells // 2, 1), 1)
            full = end_to_end(demo_setup(tmp, cells, 1), 1)
        print(f"  peak memory, 1 year (no product year): {cells // 2} cells "
              f"{half['peak_mb']:.0f} MB, {cells} cells {full['peak_mb']:.0f} MB (per-cell share "
              f"{(full['peak_mb'] - half['peak_mb']) / (cells - cells // 2) * 1024:.0f} kB)")
    return e_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=400)
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--forcing", choices=("demo", "cmfd", "both"), default="both")
    ap.add_argument("--prefetch", action="store_true",
                    help="run with forcing.prefetch = true")
    args = ap.parse_args()
    global PREFETCH
    PREFETCH = args.prefetch
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[0]} on {os.cpu_count()} cores")
    e_us = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.forcing in ("demo", "both"):
            print(f"demo domain (SYNTHETIC forcing generated on the fly), {args.cells} cells of "
                  f"0.5 deg, {args.years} years, 3-hourly, 20 layers")
            work = os.path.join(tmp, "demo")
            os.makedirs(work)
            e_us = report("demo", demo_setup(work, args.cells, args.years), args.ranks, True,
                          args.cells)
        if args.forcing in ("cmfd", "both"):
            work = os.path.join(tmp, "cmfd")
            os.makedirs(work)
            t0 = time.perf_counter()
            path = cmfd_setup(work, args.cells, args.years)
            print(f"real-data run (domain.kind = cmfd) reading CMFD-format files (int16, "
                  f"latitude descending, mm/hr; written in {time.perf_counter() - t0:.0f} s), "
                  f"{args.cells} cells of 0.1 deg, {args.years} years")
            c_us = report("cmfd", path, args.ranks if args.forcing == "cmfd" else 1, False,
                          args.cells)
            e_us = e_us if e_us is not None else c_us
    steps = 26000 * (500 + 40) * 2920 * 13
    print(f"full product (26,000 cells x 540 years x 2920 steps x 13 members = {steps:.3g} "
          f"column-steps): {steps * e_us * 1e-6 / 3600:.3g} core-hours at the end-to-end CPU "
          f"cost{' of the demo set-up' if args.forcing != 'cmfd' else ''}")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[0]}")


if __name__ == "__main__":
    main()
