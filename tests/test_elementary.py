"""In-house exp and log (fortran/elementary.f90, module nt_elementary).

1. Accuracy against a reference more precise than double (x86 80-bit long double
   expl/logl, itself checked against mpmath on a sample): max error <= 1 ulp over
   millions of points spanning the domain; the shares of results bit-identical to
   numpy's exp/log and to the C library's (glibc) are printed (pytest -s) and must
   stay high.
2. Special values and the documented domain edges.
3. Monotonicity on consecutive doubles near 1 (log), near 0 (exp) and across the
   argument-reduction boundaries.
4. Vectorised and scalar evaluation give the same bits: arrays whose lengths are
   not multiples of the vector width (vector body + scalar epilogue), misaligned
   starts, against element-by-element calls (n = 1).
5. Instruction sets: the module compiled standalone by gfortran for the x86-64
   baseline (SSE2), x86-64-v3 (AVX2) and x86-64-v4 (AVX-512), at -O2 and -O3 with
   -ffp-contract=off, gives bit-identical outputs on the same inputs, equal to the
   installed build's.  The comparison is shown to be able to fail: with
   -ffp-contract=fast (FMA contraction) the v3 build gives other bits.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from noahtibet import _kernel as K

ROOT = Path(__file__).parents[1]
FORTRAN = ROOT / "fortran"
LD = np.longdouble
HAVE_LONGDOUBLE = np.finfo(LD).nmant >= 63          # x86 80-bit extended

pytestmark = pytest.mark.skipif(not HAVE_LONGDOUBLE, reason="needs an 80-bit long double reference")


def fexp(x):
    return K.nt_exp_array(np.ascontiguousarray(x, dtype=np.float64))


def flog(x):
    return K.nt_log_array(np.ascontiguousarray(x, dtype=np.float64))


def ulp_error(y, ref):
    """|y - ref| in units of the last place of the (double) result at ref."""
    _, e = np.frexp(ref)
    ulp = np.ldexp(LD(1), e - 53)
    return np.abs((y.astype(LD) - ref) / ulp).astype(np.float64)


def _same_as_glibc(f, x, y, n=300_000):
    """Share of y bit-identical to the C library's scalar function (Python's math module
    calls it) on a sample: numpy 2 has its own SIMD exp/log on AVX2/AVX-512 CPUs."""
    idx = np.random.default_rng(3).choice(x.size, min(n, x.size), replace=False)
    ref = np.frompyfunc(f, 1, 1)(x[idx]).astype(np.float64)
    return np.mean(y[idx] == ref)


def exp_points(rng):
    return np.concatenate([
        rng.uniform(-708.0, 709.78, 3_000_000),             # the whole domain
        rng.uniform(-1.0, 1.0, 1_000_000),                  # dense near 0
        rng.standard_normal(500_000) * 1e-3,
        rng.standard_normal(200_000) * 1e-9,
        rng.uniform(-0.35, 0.35, 500_000),                  # k = 0: the polynomial alone
        (np.arange(-1021, 1025)[:, None] + rng.uniform(-0.5, 0.5, (2046, 200))).ravel()
        * np.log(2.0),                                      # every k, edges of r included
    ]).clip(-708.0, 709.78)


def log_points(rng):
    x = np.concatenate([
        10.0 ** rng.uniform(-307.6, 308.2, 2_000_000),      # normal numbers
        rng.uniform(0.0, 2.2250738585072014e-308, 300_000),  # subnormals
        np.ldexp(rng.uniform(0.5, 1.0, 200_000), rng.integers(-1074, -1022, 200_000)),
        1.0 + rng.uniform(-0.3, 0.42, 1_000_000),           # dense near 1, k = 0 and -1
        1.0 + rng.standard_normal(500_000) * 1e-6,
        1.0 + rng.standard_normal(200_000) * 1e-12,
        rng.uniform(0.5, 0.75, 500_000),                    # cancellation with k = -1
        rng.uniform(0.0, 10.0, 500_000),
    ])
    return x[(x > 0) & (x != 1.0)]


def test_reference_is_more_precise_than_double():
    """longdouble expl/logl agree with mpmath to far below a double ulp (when mpmath exists)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    rng = np.random.default_rng(7)
    xe = np.concatenate([rng.uniform(-708, 709.78, 300), rng.uniform(-1, 1, 200)])
    xl = np.concatenate([10.0 ** rng.uniform(-307, 308, 300), 1 + rng.uniform(-0.3, 0.4, 200)])
    for x, f, mf in ((xe, np.exp, mp.exp), (xl, np.log, mp.log)):
        ref = f(x.astype(LD))
        exact = [mf(mp.mpf(float(v))) for v in x]
        err = max(float(abs((mp.mpf(str(r)) - e) / e)) for r, e in zip(ref, exact) if e != 0)
        assert err < 2.0 ** -60, err                     # < 1/128 ulp of a double


def test_exp_accuracy_within_one_ulp():
    x = exp_points(np.random.default_rng(1))
    y = fexp(x)
    err = ulp_error(y, np.exp(x.astype(LD)))
    same = np.mean(y == np.exp(x))
    glibc = _same_as_glibc(math.exp, x, y)
    print(f"\nfexp: {x.size} points, max error {err.max():.3f} ulp (at x = {x[err.argmax()]!r}), "
          f"mean {err.mean():.3f} ulp; bit-identical to numpy's exp: {100 * same:.2f} %, "
          f"to glibc's (sample): {100 * glibc:.2f} %")
    assert err.max() <= 1.0
    assert same > 0.9 and glibc > 0.9


def test_log_accuracy_within_one_ulp():
    x = log_points(np.random.default_rng(2))
    y = flog(x)
    err = ulp_error(y, np.log(x.astype(LD)))
    same = np.mean(y == np.log(x))
    glibc = _same_as_glibc(math.log, x, y)
    print(f"\nflog: {x.size} points, max error {err.max():.3f} ulp (at x = {x[err.argmax()]!r}), "
          f"mean {err.mean():.3f} ulp; bit-identical to numpy's log: {100 * same:.2f} %, "
          f"to glibc's (sample): {100 * glibc:.2f} %")
    assert err.max() <= 1.0
    assert same > 0.95 and glibc > 0.95


def test_exp_special_values_and_domain_edges():
    below = np.nextafter(-708.0, -np.inf)
    above = np.nextafter(709.78, np.inf)
    x = np.array([0.0, -0.0, 1e-300, -1e-300, 1e-17, -1e-17, -708.0, below, -745.2, -1e308,
                  709.78, above, 709.79, 1e308, np.inf, -np.inf, np.nan, 1.0])
    y = fexp(x)
    assert y[0] == 1.0 and y[1] == 1.0 and y[2] == 1.0 and y[3] == 1.0
    assert y[4] == 1.0 and y[5] == 1.0                            # exp(+-1e-17) rounds to 1
    assert y[6] == np.exp(-708.0) and y[6] >= np.finfo(float).tiny   # smallest result: normal
    assert y[7] == 0.0 and y[8] == 0.0 and y[9] == 0.0           # below -708: 0, no subnormals
    assert np.isfinite(y[10]) and abs(y[10] - np.exp(709.78)) <= np.spacing(y[10])
    assert y[11] == np.inf and y[12] == np.inf and y[13] == np.inf
    assert y[14] == np.inf and y[15] == 0.0
    assert np.isnan(y[16])
    assert y[17] == np.exp(1.0)
    assert not np.signbit(y[15]) and not np.signbit(y[7])


def test_log_special_values():
    tiny = np.finfo(float).tiny
    x = np.array([0.0, -0.0, -1.0, -5e-324, -np.inf, np.inf, np.nan, -np.nan, 1.0, 2.0,
                  5e-324, tiny, np.nextafter(tiny, 0), np.finfo(float).max, np.e])
    y = flog(x)
    assert y[0] == -np.inf and y[1] == -np.inf
    assert np.isnan(y[2:5]).all()
    assert y[5] == np.inf
    assert np.isnan(y[6]) and np.isnan(y[7])
    assert y[8] == 0.0 and not np.signbit(y[8])
    assert y[9] == np.log(2.0)
    np.testing.assert_array_equal(y[10:14], np.log(x[10:14]))   # subnormals, extremes
    assert y[14] == 1.0


def _consecutive(x0, count, step=1):
    """count doubles upwards from x0 (> 0), step ulps apart."""
    bits = np.array([x0]).view(np.int64)[0] + step * np.arange(count, dtype=np.int64)
    return bits.view(np.float64)


@pytest.mark.parametrize("x0, step", [
    (np.nextafter(1.0, 0.0) - 2.0 ** -44, 1),          # every double around 1
    (1.0 - 1e-6, 4096),
    (np.sqrt(0.5) * (1 - 2.0 ** -40), 1),              # reduction boundary sqrt(2)/2
    (np.sqrt(2.0) * (1 - 2.0 ** -40), 1),
    (2.0 ** -1022 * (1 - 2.0 ** -40), 64),             # subnormal -> normal
])
def test_log_monotone(x0, step):
    x = _consecutive(x0, 200_000, step)
    assert np.all(np.diff(flog(x)) >= 0)


@pytest.mark.parametrize("make", [
    lambda: np.arange(-100_000, 100_000) * 2.0 ** -60,   # through 0, exp steps by 1 ulp
    lambda: np.arange(-100_000, 100_000) * 2.0 ** -40,
    lambda: -_consecutive(2.0 ** -53, 200_000)[::-1],   # every double just below 0 ...
    lambda: _consecutive(2.0 ** -53, 200_000),          # ... and just above
    lambda: _consecutive(0.5 * np.log(2.0) * (1 - 2.0 ** -40), 200_000),   # k = 0 -> 1
    lambda: -_consecutive(0.5 * np.log(2.0) * (1 - 2.0 ** -40), 200_000)[::-1],  # k -1 -> 0
    lambda: _consecutive(700.5 * np.log(2.0) * (1 - 2.0 ** -44), 200_000),
], ids=["grid-60", "grid-40", "below0", "above0", "k0to1", "k-1to0", "k1010"])
def test_exp_monotone(make):
    x = make()
    assert np.all(np.diff(x) > 0)
    assert np.all(np.diff(fexp(x)) >= 0)


@pytest.mark.parametrize("n", [1, 3, 7, 1_000_003])
@pytest.mark.parametrize("offset", [0, 1])
def test_vector_and_scalar_evaluation_identical(n, offset):
    """A whole array (vector body + scalar epilogue, aligned or not) against one call per
    element (n = 1: the scalar code path)."""
    rng = np.random.default_rng(n)
    xe = np.concatenate([[0.0], rng.uniform(-720, 720, n + offset)])[:n + offset]
    xl = np.concatenate([[0.0], 10.0 ** rng.uniform(-320, 308, n + offset)])[:n + offset]
    for f, x in ((K.nt_exp_array, xe), (K.nt_log_array, xl)):
        x = x[offset:]                          # offset 1: start 8 bytes off the allocation
        assert x.flags.c_contiguous
        y = f(x)
        idx = np.arange(n) if n < 100 else np.concatenate(
            [np.arange(64), np.arange(n - 64, n), rng.choice(n, 20_000, replace=False)])
        one = np.array([f(x[i:i + 1])[0] for i in idx])
        np.testing.assert_array_equal(y[idx].view(np.int64), one.view(np.int64))


# --- across instruction sets ------------------------------------------------------------

DRIVER = """
program elementary_driver
  use nt_kinds, only: dp
  use nt_elementary, only: fexp, flog, fpow, exp_array, log_array
  implicit none
  integer :: n, i, u
  real(dp), allocatable :: xe(:), xl(:), px(:), py(:), out(:, :)
  character(len=512) :: inp, outp
  call get_command_argument(1, inp)
  call get_command_argument(2, outp)
  open(newunit=u, file=trim(inp), access='stream', form='unformatted', status='old')
  read(u) n
  allocate(xe(n), xl(n), px(n), py(n), out(n, 6))
  read(u) xe, xl, px, py
  close(u)
  call exp_array(n, xe, out(:, 1))
  call log_array(n, xl, out(:, 2))
  do i = 1, n                  ! elemental calls (inlined or not: the compiler decides)
    out(i, 3) = fexp(xe(i))
    out(i, 4) = flog(xl(i))
    out(i, 5) = fpow(px(i), py(i))
  end do
  out(:, 6) = fexp(py*flog(px))
  open(newunit=u, file=trim(outp), access='stream', form='unformatted', status='replace')
  write(u) out
  close(u)
end program elementary_driver
"""

ISA_FLAGS = {"baseline": [], "v3": ["-march=x86-64-v3"], "v4": ["-march=x86-64-v4"]}
ISA_CPU_FLAGS = {
    "baseline": set(),
    "v3": {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
    "v4": {"avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def _runnable_isas() -> list[str]:
    flags = _cpu_flags()
    return [isa for isa, need in ISA_CPU_FLAGS.items() if need <= flags]


def _cross_isa_inputs(n=200_003):
    rng = np.random.default_rng(11)
    xe = np.concatenate([rng.uniform(-745, 712, n - 200), rng.uniform(-1, 1, 190),
                         [0.0, -0.0, np.inf, -np.inf, np.nan, -708.0, 709.78, 1e-300, -1e308, 1e308]])
    xl = np.concatenate([10.0 ** rng.uniform(-323, 308, n - 200), 1 + rng.uniform(-0.3, 0.4, 190),
                         [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 5e-324, 1.0, 2.0, 1e308]])
    px = 10.0 ** rng.uniform(-3, 3, n)                  # fpow: x > 0 only
    py = rng.uniform(-40, 40, n)
    return xe, xl, px, py


def _build_and_run(tmp: Path, name: str, flags: list[str], inp: Path) -> np.ndarray:
    exe = tmp / name
    src = tmp / "driver.f90"
    if not src.exists():
        src.write_text(DRIVER)
    objdir = tmp / f"obj_{name}"
    objdir.mkdir()
    cmd = ["gfortran", *flags, "-fimplicit-none", "-J", str(objdir), "-o", str(exe),
           str(FORTRAN / "kinds.f90"), str(FORTRAN / "elementary.f90"), str(src)]
    subprocess.run(cmd, check=True, cwd=objdir, capture_output=True, text=True)
    out = tmp / f"{name}.bin"
    subprocess.run([str(exe), str(inp), str(out)], check=True, capture_output=True)
    return np.fromfile(out, dtype=np.int64)   # raw bits


@pytest.fixture(scope="module")
def cross_isa(tmp_path_factory):
    if shutil.which("gfortran") is None:
        pytest.skip("gfortran not installed")
    tmp = tmp_path_factory.mktemp("elementary_isa")
    xe, xl, px, py = _cross_isa_inputs()
    inp = tmp / "input.bin"
    with open(inp, "wb") as fh:
        np.array([xe.size], dtype=np.int32).tofile(fh)
        for a in (xe, xl, px, py):
            a.astype(np.float64).tofile(fh)
    return tmp, inp, (xe, xl, px, py)


def test_bit_identical_across_instruction_sets(cross_isa):
    tmp, inp, (xe, xl, px, py) = cross_isa
    isas = _runnable_isas()
    results = {}
    for isa in isas:
        for opt in ("-O2", "-O3"):
            results[f"{isa}{opt}"] = _build_and_run(
                tmp, f"{isa}{opt}", [opt, "-ffp-contract=off", *ISA_FLAGS[isa]], inp)
    print(f"\nbuilt and ran: {', '.join(results)}")
    ref_name, ref = next(iter(results.items()))
    for name, bits in results.items():
        differ = np.count_nonzero(bits != ref)
        assert differ == 0, f"{name} differs from {ref_name} in {differ} of {bits.size} values"
    # the installed (meson, f2py) build gives the same bits as well
    n = xe.size
    out = ref.reshape(6, n)
    np.testing.assert_array_equal(fexp(xe).view(np.int64), out[0])
    np.testing.assert_array_equal(flog(xl).view(np.int64), out[1])
    # elemental calls and array routines agree; fpow = fexp(y*flog(x))
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])
    np.testing.assert_array_equal(out[4], out[5])
    if len(isas) < 3:
        pytest.skip(f"CPU lacks {sorted(set(ISA_FLAGS) - set(isas))}: compared {isas} only")


def test_cross_isa_comparison_detects_fma_contraction(cross_isa):
    """The comparison above can fail: -ffp-contract=fast lets the v3 (FMA) build fuse a*b+c,
    which changes the bits of many results."""
    if "v3" not in _runnable_isas():
        pytest.skip("CPU lacks x86-64-v3 (FMA)")
    tmp, inp, _ = cross_isa
    base = _build_and_run(tmp, "fma_base", ["-O3", "-ffp-contract=off"], inp)
    fused = _build_and_run(tmp, "fma_v3", ["-O3", "-ffp-contract=fast", "-march=x86-64-v3"], inp)
    differ = np.count_nonzero(base != fused)
    print(f"\n-ffp-contract=fast on x86-64-v3: {differ} of {base.size} results differ from baseline")
    assert differ > 0


def _lean_variant_equals(entry: str, x: np.ndarray, reference: np.ndarray) -> None:
    """The f2py entry point ``entry`` of every processor variant of the kernel this machine
    runs gives ``reference``'s bits on ``x``."""
    import importlib
    from noahtibet import _dispatch
    variants = [v for v in _dispatch.supported(_dispatch.host_flags()) if v in _dispatch.built()]
    assert "baseline" in variants
    for variant in variants:
        mod = importlib.import_module(f"noahtibet.{_dispatch.MODULES[variant]}")
        lean = getattr(mod, entry)(np.ascontiguousarray(x))
        assert lean.view(np.int64).tobytes() == reference.view(np.int64).tobytes(), variant


def test_log_array_positive_gives_log_arrays_bits_on_positive_normal_values():
    """log_array_positive (the kernel's logarithm where arguments are known to be positive
    and normal) leaves out only the special-value handling: the same bits as log_array,
    in every processor variant of the kernel this machine runs."""
    rng = np.random.default_rng(11)
    tiny = np.finfo(np.float64).tiny
    x = np.concatenate([
        np.exp(rng.uniform(np.log(tiny), np.log(1.7e308), 400_000)),   # every binade
        1.0 + rng.uniform(-0.3, 0.3, 200_000),                       # near 1 (f small)
        np.sqrt(0.5) * (1.0 + rng.uniform(-1e-6, 1e-6, 50_000)),     # near the m split
        [tiny, np.nextafter(tiny, 1.0), 1.0, np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0),
         2.0, 0.5, np.finfo(np.float64).max, 0.01, 3.7e-6],
    ])
    _lean_variant_equals("nt_log_array_positive", x, K.nt_log_array(x))


def test_exp_array_inrange_gives_exp_arrays_bits_inside_the_domain():
    """exp_array_inrange (the kernel's exponential where arguments are known to lie in
    -708..709.78) leaves out only the clamp and the out-of-domain handling: the same bits
    as exp_array there, in every processor variant of the kernel this machine runs."""
    rng = np.random.default_rng(12)
    x = np.concatenate([
        rng.uniform(-708.0, 709.78, 400_000),
        rng.uniform(-1.0, 1.0, 200_000),
        rng.normal(0.0, 1e-8, 50_000),
        [-708.0, 709.78, 0.0, -0.0, np.log(2.0) / 2, -np.log(2.0) / 2, 1e-300, -1e-300],
    ])
    _lean_variant_equals("nt_exp_array_inrange", x, K.nt_exp_array(x))
