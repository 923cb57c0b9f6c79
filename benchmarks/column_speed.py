"""Speed of the column kernel: microseconds per column-step.

Configuration: the 20-layer Noah-Tibet column of the Tanggula case (15.2 m),
double precision, 3-hourly model step (one year, 2920 steps), Yang-2008
surface exchange, a batch of columns with mixed soil profiles (loam, sandy
loam, sand, gravel and bedrock layers), one core.  Prints the figure in batch
mode (all columns in one kernel call) and one column at a time (one call per
column, same steps), and checks that both give identical states.

    python benchmarks/column_speed.py [--columns 256] [--repeat 3] [--warming K] [--all-variants]

--all-variants runs the benchmark once for every processor variant of the
kernel this machine supports (NOAHTIBET_KERNEL=..., see docs/performance.md),
each in its own process, and prints their figures one after the other.

The Tanggula climate keeps every column in permafrost (every layer frozen, the
most expensive case: supercooled water is solved in every layer every step);
--warming shifts the air temperature to measure seasonally frozen columns.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from noahtibet import _dispatch
from noahtibet.kernel import KERNEL_VARIANT, ColumnState, run_columns
from noahtibet.legacy_forcing import read_point_file
from noahtibet.parameters import PhysicsOptions
from noahtibet.point import column_batch

ROOT = Path(__file__).resolve().parents[1]
FORCING = ROOT / "validation" / "reference" / "tanggula" / "forcing_3hourly_synthetic_2007_2008.dat"

# Soil profiles mixed over the batch (STAS classes per layer, top to bottom).
PROFILES = [
    [7, 7, 7, 7, 9, 7, 7, 7, 7, 7, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13],
    [9, 9, 9, 9, 9, 9, 12, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 14],
    [13, 13, 13, 7, 7, 7, 7, 7, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14],
    [3, 3, 3, 3, 4, 4, 4, 4, 7, 7, 7, 7, 7, 12, 12, 12, 13, 13, 14, 14],
]


def build(ncol: int, warming: float = 0.0):
    case = read_point_file(FORCING)
    # 3-hourly model step straight on the 3-hourly records (no interpolation)
    case = dataclasses.replace(case, model_timestep=10800,
                               enddate=np.datetime64("2008-03-31T21:00", "m"))
    rng = np.random.default_rng(1)
    # small per-column offsets of air temperature so columns differ
    offsets = rng.normal(0, 1.5, ncol) + warming
    forcing, calendar, monthly, layer_par, column_par, state = column_batch(
        case, [PROFILES[c % len(PROFILES)] for c in range(ncol)], temperature_offset=offsets)
    options = PhysicsOptions(surface_exchange="yang08").as_array()
    return forcing, calendar, monthly, layer_par, column_par, state, options, forcing.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--columns", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warming", type=float, default=0.0, help="air temperature offset [K]")
    ap.add_argument("--all-variants", action="store_true",
                    help="run once per processor variant of the kernel (each in its own process)")
    args = ap.parse_args()
    if args.all_variants:
        variants = [v for v in _dispatch.supported(_dispatch.host_flags()) if v in _dispatch.built()]
        for variant in variants:
            cmd = [sys.executable, __file__, "--columns", str(args.columns), "--repeat",
                   str(args.repeat), "--warming", str(args.warming)]
            env = dict(os.environ, **{_dispatch.ENV: variant})
            subprocess.run(cmd, env=env, check=True)
        return
    forcing, calendar, monthly, lp, cp, state0, options, nstep = build(args.columns, args.warming)
    ncol = args.columns

    batch_times, single_times = [], []
    for _ in range(args.repeat):
        s = state0.copy()
        t0 = time.thread_time()
        run_columns(forcing, calendar, monthly, lp, cp, s, 10800.0, options)
        batch_times.append(time.thread_time() - t0)
        batch_state = s

        s1 = state0.copy()
        f_cols = [np.ascontiguousarray(forcing[:, :, c:c + 1]) for c in range(ncol)]
        t0 = time.thread_time()
        for c in range(ncol):
            sc = ColumnState(s1.stc[c:c + 1].copy(), s1.smc[c:c + 1].copy(),
                             s1.sh2o[c:c + 1].copy(), s1.surface[c:c + 1].copy())
            run_columns(f_cols[c], calendar, monthly[c:c + 1], lp[c:c + 1], cp[c:c + 1], sc,
                        10800.0, options)
            s1.stc[c], s1.smc[c], s1.sh2o[c], s1.surface[c] = sc.stc[0], sc.smc[0], sc.sh2o[0], sc.surface[0]
        single_times.append(time.thread_time() - t0)

    identical = all(np.array_equal(getattr(batch_state, n), getattr(s1, n))
                    for n in ("stc", "smc", "sh2o", "surface"))
    steps = nstep * ncol
    frozen = np.mean(batch_state.smc - batch_state.sh2o > 1e-3)
    print(f"noahtibet column kernel: 20 layers, dt = 3 h, {nstep} steps x {ncol} columns, "
          f"1 core, air temperature offset {args.warming:+.1f} K, kernel {KERNEL_VARIANT}"
          + (f" (batches under {_dispatch.SMALL_BATCH} columns: {small})"
             if (small := _dispatch.load_small()[0]) != KERNEL_VARIANT else ""))
    print(f"layers holding ice at the end: {100 * frozen:.0f} %")
    print(f"batch mode:        {min(batch_times) / steps * 1e6:8.3f} us per column-step "
          f"(CPU time of the calling thread, best of {args.repeat})")
    print(f"one column a call: {min(single_times) / steps * 1e6:8.3f} us per column-step "
          f"(best of {args.repeat})")
    print(f"batch and single-column states identical: {identical}")


if __name__ == "__main__":
    main()
