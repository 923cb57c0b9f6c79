"""Where the column kernel spends its work: instructions per column-step, by routine.

    python benchmarks/kernel_profile.py [--columns 4] [--warming K]

Runs the configuration of ``column_speed.py`` (20 layers, 3-hourly steps,
Yang-2008 exchange, mixed soil profiles, one year) under valgrind's callgrind
and prints, per column-step,

* the machine instructions executed by the kernel (``nt_run_columns`` and all
  it calls), in all and per routine (self and inclusive);
* how often the C library's elementary functions (exp, log, pow, atan, log10)
  are called, and the instructions they take.

Instruction counts do not depend on the load of the machine (unlike timings on
a shared two-core box), so they are the figure to compare two versions of the
kernel with; ``column_speed.py`` gives the time.  Needs ``valgrind`` on the
PATH; takes about half a minute for the default 4 columns.

Profiles the kernel variant in use (``NOAHTIBET_KERNEL``, see
docs/performance.md), with x86-64-v3 in place of x86-64-v4: valgrind does not
run AVX-512 code.  The counts differ between variants.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from noahtibet import _dispatch

CHILD = """
import sys
sys.path.insert(0, {bench!r})
import column_speed as cs
from noahtibet.kernel import KERNEL_VARIANT, run_columns
f, cal, mon, lp, cp, st, opt, nstep = cs.build({columns}, {warming})
run_columns(f, cal, mon, lp, cp, st, 10800.0, opt)
print(KERNEL_VARIANT, nstep)
"""

LIBM = ("exp", "log", "pow", "atan", "log10")


def _annotate(out: Path, *args: str) -> str:
    return subprocess.run(["callgrind_annotate", *args, str(out)], check=True,
                          capture_output=True, text=True).stdout


def _rows(text: str):
    """(instructions, function name, calls or None) of the function lines."""
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(?:\*|<|>)?\s*(\S+?):(\S+)(?: \(([\d,]+)x\))?", line)
        if m:
            yield (int(m.group(1).replace(",", "")), m.group(3),
                   int(m.group(4).replace(",", "")) if m.group(4) else None)


def _short(name: str) -> str:
    m = re.match(r"__nt_(\w+?)_MOD_(\w+)", name)
    return f"{m.group(1)}::{m.group(2)}" if m else name.split("@")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--columns", type=int, default=4)
    ap.add_argument("--warming", type=float, default=0.0, help="air temperature offset [K]")
    ap.add_argument("--top", type=int, default=14, help="routines listed")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        sys.exit("kernel_profile: valgrind (with callgrind_annotate) is not installed")

    bench = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(bench=bench, columns=args.columns, warming=args.warming))
        # the real interpreter, not a launcher script (valgrind would follow the launcher);
        # in a virtual environment its own link to it (which keeps the environment's packages)
        python = Path(sys.executable)
        if sys.prefix == sys.base_prefix:
            python = python.resolve()
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              "--toggle-collect=nt_run_columns*", str(python), str(script)],
                             check=True, capture_output=True, text=True,
                             env={**os.environ, _dispatch.ENV: _variant()})
        variant, nstep = run.stdout.split()[-2], int(run.stdout.split()[-1])
        self_text = _annotate(out)
        incl_text = _annotate(out, "--inclusive=yes")
        tree_text = _annotate(out, "--tree=caller")

    colsteps = nstep * args.columns
    incl = {name: ir for ir, name, _ in _rows(incl_text)}
    total = incl.get("__nt_column_kernel_MOD_run_columns") or max(incl.values())
    print(f"noahtibet kernel profile: {args.columns} columns x {nstep} steps, 20 layers, dt = 3 h, "
          f"air temperature offset {args.warming:+.1f} K, kernel {variant} (callgrind)")
    print(f"instructions per column-step: {total / colsteps:,.0f}")
    print(f"\n{'routine':44s} {'self':>9s} {'inclusive':>10s}  (instructions per column-step)")
    selfs = [(ir, name) for ir, name, _ in _rows(self_text)]
    for ir, name in sorted(selfs, reverse=True)[:args.top]:
        print(f"{_short(name):44s} {ir / colsteps:9,.0f} {incl.get(name, ir) / colsteps:10,.0f}")

    # calls of the C library's elementary functions made by the kernel's routines
    # (callers named __nt_*), under their entry point (exp@@GLIBC..., __atan_fma, ...)
    calls = {f: 0 for f in LIBM}
    instr = {f: 0 for f in LIBM}
    callers = []
    for line in tree_text.splitlines():
        rows = list(_rows(line))
        if not rows:
            callers = []
            continue
        ir, name, ncall = rows[0]
        if "< " in line:
            if ncall is not None and name.startswith("__nt_"):
                callers.append(ncall)
        elif "* " in line:
            base = _libm_name(name)
            if base in calls and callers:
                calls[base] += sum(callers)
                instr[base] += incl.get(name, ir)
            callers = []
    print(f"\n{'C library function':20s} {'calls':>8s} {'instructions':>13s}  (per column-step)")
    for f in LIBM:
        print(f"{f:20s} {calls[f] / colsteps:8.1f} {instr[f] / colsteps:13,.0f}")
    print(f"{'all':20s} {sum(calls.values()) / colsteps:8.1f} {sum(instr.values()) / colsteps:13,.0f}"
          f"  ({100 * sum(instr.values()) / total:.0f} % of the kernel's instructions)")


def _variant() -> str:
    """The kernel variant to profile: the one in use, but valgrind runs no AVX-512 code,
    so x86-64-v3 in place of an automatically chosen x86-64-v4."""
    variant = _dispatch.choose()
    if variant == "x86-64-v4":
        if os.environ.get(_dispatch.ENV):
            sys.exit(f"kernel_profile: valgrind does not run AVX-512 code; set "
                     f"{_dispatch.ENV} to x86-64-v3 or baseline")
        variant = "x86-64-v3"
    return variant


def _libm_name(name: str) -> str:
    """exp@@GLIBC_2.29 -> exp, __atan_fma -> atan, __log10_finite@GLIBC_2.15 -> log10."""
    base = name.split("@")[0].lstrip("_")
    return re.sub(r"_(fma|finite|avx2|sse2)$", "", base)


if __name__ == "__main__":
    main()
