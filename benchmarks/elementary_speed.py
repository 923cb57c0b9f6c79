"""Speed of the in-house exp and log (fortran/elementary.f90): nanoseconds per value.

Two measurements:

1. Through the installed package (noahtibet._kernel.nt_exp_array / nt_log_array,
   the meson build: baseline x86-64, -O3) against numpy's np.exp / np.log, on
   arrays of --n values (the f2py call overhead is included: use a large n).
   Note: numpy 2 on a CPU with AVX2/AVX-512 uses its own SIMD exp/log for
   float64, not glibc's.
2. A small Fortran program compiled here by gfortran for each instruction set
   (baseline SSE2, -march=x86-64-v3, -march=x86-64-v4; those the CPU runs) at
   -O3 -ffp-contract=off, which times in the same loop harness
     glibc    y(i) = exp(x(i)) / log(x(i)) under !GCC$ novector: scalar glibc
              calls, as the kernel makes them
     mvec     the same loop vectorised: gfortran calls glibc's libmvec
              (declared in glibc's math-vector-fortran.h, pre-included by
              Debian's gfortran) -- other bits than scalar glibc
     ours     call exp_array(n, x, y) / log_array(n, x, y)
   on arrays of 20 values (one column's layers) and of 4096 values.

    python benchmarks/elementary_speed.py [--n 100000] [--repeat 5]

Timings are wall-clock minima over --repeat runs on a (possibly shared) machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORTRAN = ROOT / "fortran"

HARNESS = """
program elementary_speed
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_elementary, only: exp_array, log_array
  implicit none
  integer, parameter :: sizes(2) = [20, 4096]
  integer :: s, n, reps, r, i, rep, v
  real(dp), allocatable :: xe(:), xl(:), y(:)
  real(dp) :: best(6), sink
  integer(int64) :: c0, c1, rate
  character(len=32) :: arg
  call get_command_argument(1, arg)
  read(arg, *) rep
  sink = 0
  do s = 1, size(sizes)
    n = sizes(s)
    reps = max(1, 40000000 / n)
    allocate(xe(n), xl(n), y(n))
    call random_number(xe)
    xe = -20.0_dp + 25.0_dp*xe            ! typical arguments of the kernel's exponentials
    call random_number(xl)
    xl = 10.0_dp**(6.0_dp*xl - 3.0_dp)    ! 1e-3 .. 1e3
    best = huge(1.0_dp)
    do r = 1, rep
      do v = 1, 6
        call system_clock(c0, rate)
        do i = 1, reps
          select case (v)
          case (1); call glibc_exp(n, xe, y)
          case (2); call mvec_exp(n, xe, y)
          case (3); call exp_array(n, xe, y)
          case (4); call glibc_log(n, xl, y)
          case (5); call mvec_log(n, xl, y)
          case (6); call log_array(n, xl, y)
          end select
          sink = sink + y(1 + mod(i, n))
        end do
        call system_clock(c1)
        best(v) = min(best(v), real(c1 - c0, dp)/rate/(real(n, dp)*reps)*1e9_dp)
      end do
    end do
    print '(i6, 6f10.3)', n, best
    deallocate(xe, xl, y)
  end do
  if (sink == 12345.0_dp) print *, sink
contains
  subroutine glibc_exp(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    integer :: i
    !GCC$ novector
    do i = 1, n
      y(i) = exp(x(i))
    end do
  end subroutine glibc_exp
  subroutine glibc_log(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    integer :: i
    !GCC$ novector
    do i = 1, n
      y(i) = log(x(i))
    end do
  end subroutine glibc_log
  subroutine mvec_exp(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    integer :: i
    do i = 1, n
      y(i) = exp(x(i))
    end do
  end subroutine mvec_exp
  subroutine mvec_log(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    integer :: i
    do i = 1, n
      y(i) = log(x(i))
    end do
  end subroutine mvec_log
end program elementary_speed
"""

ISAS = {
    "baseline": ([], set()),
    "x86-64-v3": (["-march=x86-64-v3"], {"avx2", "fma", "bmi2", "movbe"}),
    "x86-64-v4": (["-march=x86-64-v4"], {"avx512f", "avx512bw", "avx512dq", "avx512vl"}),
}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def per_value_ns(f, x, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(x)
        best = min(best, time.perf_counter() - t0)
    return best / x.size * 1e9


def package_figures(n, repeat):
    from noahtibet import _kernel as K

    rng = np.random.default_rng(0)
    xe = rng.uniform(-20.0, 5.0, n)
    xl = 10.0 ** rng.uniform(-3.0, 3.0, n)
    print(f"installed build (f2py call included), {n} values, ns per value:")
    print(f"  exp  in-house {per_value_ns(K.nt_exp_array, xe, repeat):6.2f}   "
          f"numpy {per_value_ns(np.exp, xe, repeat):6.2f}")
    print(f"  log  in-house {per_value_ns(K.nt_log_array, xl, repeat):6.2f}   "
          f"numpy {per_value_ns(np.log, xl, repeat):6.2f}")


def isa_figures(repeat):
    if shutil.which("gfortran") is None:
        print("gfortran not found: no per-instruction-set figures")
        return
    flags = cpu_flags()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "harness.f90").write_text(HARNESS)
        print("\nstandalone, gfortran -O3 -ffp-contract=off, ns per value:")
        print(f"{'instruction set':16s}{'n':>6s}" + "".join(
            f"{h:>11s}" for h in ("exp glibc", "exp mvec", "exp ours",
                                   "log glibc", "log mvec", "log ours")))
        for name, (march, need) in ISAS.items():
            if not need <= flags:
                print(f"{name:16s}  (not run: CPU lacks it)")
                continue
            exe = tmp / f"speed_{name}"
            obj = tmp / f"obj_{name}"
            obj.mkdir()
            subprocess.run(["gfortran", "-O3", "-ffp-contract=off", *march, "-J", str(obj),
                            "-o", str(exe), str(FORTRAN / "kinds.f90"),
                            str(FORTRAN / "elementary.f90"), str(tmp / "harness.f90")],
                           check=True, cwd=obj)
            out = subprocess.run([str(exe), str(repeat)], check=True, capture_output=True,
                                 text=True).stdout
            for line in out.split("\n"):
                if line.strip():
                    n, *v = line.split()
                    print(f"{name:16s}{int(n):6d}" + "".join(f"{float(a):11.2f}" for a in v))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    package_figures(args.n, args.repeat)
    isa_figures(args.repeat)


if __name__ == "__main__":
    main()
