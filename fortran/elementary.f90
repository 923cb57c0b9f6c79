!> In-house exponential and logarithm: branch-free, vectorisable, the same bits
!> on every x86-64 instruction set.
!>
!> glibc's exp/log are scalar calls (a loop calling them does not vectorise) and
!> its vector library libmvec gives other bits than the scalar library, which
!> also change between glibc versions.  The code here is IEEE-754 binary64
!> +, -, *, / (one rounding each, round to nearest), MIN/MAX for a clamp, and
!> integer and/or/shift on the bit patterns (TRANSFER); no branch, no library
!> call, no fused multiply-add written in the code.  Built with
!> -ffp-contract=off (fortran_args in meson.build) the baseline (SSE2),
!> x86-64-v3 (AVX2) and x86-64-v4 (AVX-512) builds, vectorised or not, give
!> identical bits (tests/test_elementary.py compiles this file for each and
!> compares).  With -ffp-contract=fast (GNU's default when the flag is absent)
!> the v3/v4 builds contract a*b+c into FMA and the bits differ.
!>
!> Functions (elemental, pure, double precision):
!>   fexp(x)    exp(x).  Computed for -708 <= x <= 709.78, error < 1 ulp
!>              (measured max 0.63 ulp).  x < -708 gives 0: no subnormal
!>              results, exp(-708) ~ 3.3e-308 is the smallest non-zero value.
!>              x > 709.78 gives +Inf (the true overflow threshold is 709.7827:
!>              (709.78, 709.7827] gives +Inf too).  NaN gives NaN.
!>   flog(x)    log(x) for every double, error < 1 ulp (measured max 0.66 ulp),
!>              subnormal inputs included (scaled by 2**54 first);
!>              log(+-0) = -Inf, log(x < 0) = NaN, log(+Inf) = +Inf, NaN: NaN.
!>   fpow(x,y)  x**y as fexp(y*flog(x)), for x > 0 ONLY: no special cases (x <= 0
!>              gives NaN or -Inf-derived values, not IEEE pow's results), and
!>              the domain of fexp applies to y ln x.  Its error grows with
!>              |y ln x| as for any exp(y log x): measured below
!>              2 (1 + |y ln x|) ulp (e.g. 150 ulp at |y ln x| = 100).
!>   exp_array(n, x, y), log_array(n, x, y): y(1:n) = fexp/flog(x(1:n)).
!>   log_array_positive(n, x, y): log_array for positive normal finite x only.
!>   exp_array_inrange(n, x, y): exp_array for -708 <= x <= 709.78 only.
!>
!> Selections are integer bit masks (pick, neg_mask, nan_mask), not MERGE on
!> reals: gfortran 12 turns MERGE into a conditional, sinks the computation of
!> the value that only one side uses into that side, and, as floating-point
!> operations may trap (-ftrapping-math, the default), can then not if-convert
!> the loop: it does not vectorise (it does with -fno-trapping-math, which the
!> meson build now sets; the masks keep these routines independent of it).  Logical
!> -> int64 masks (MERGE(-1, 0, a < b)) do not vectorise with SSE2 either (no
!> V2DF-compare -> V2DI select), hence masks from sign bits of differences.
!>
!> Calling pattern.  gfortran 12 without -flto does not inline a module
!> procedure into another module (file): a loop there calling fexp is a loop of
!> calls and does not vectorise; with -flto it is inlined and vectorises.
!> Inside this module, inlining depends on size heuristics (flog is past the
!> -O3 limit), so the array routines hold the code itself (the bodies are the
!> include files elementary_exp.inc / elementary_log.inc, shared with fexp and
!> flog).  Callers in other modules call exp_array / log_array on whole layer or
!> lane arrays.  Loops vectorise at -O3 (the meson release build); at -O2 GCC
!> 12's "very cheap" vectoriser cost model refuses loops of unknown length.
module nt_elementary
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  implicit none
  private

  public :: fexp, flog, fpow, exp_array, exp_array_inrange, log_array, log_array_positive

  ! --- IEEE-754 binary64 bit patterns ------------------------------------------
  real(dp), parameter :: pinf = transfer(int(z'7FF0000000000000', int64), 1.0_dp)   !< +Inf
  real(dp), parameter :: ninf = transfer(int(z'FFF0000000000000', int64), 1.0_dp)   !< -Inf
  real(dp), parameter :: qnan = transfer(int(z'7FF8000000000000', int64), 1.0_dp)   !< quiet NaN
  real(dp), parameter :: tiny_normal = 2.2250738585072014e-308_dp                  !< 2**-1022
  integer(int64), parameter :: inf_bits = int(z'7FF0000000000000', int64)
  integer(int64), parameter :: abs_mask = int(z'7FFFFFFFFFFFFFFF', int64)
  integer(int64), parameter :: mant_mask = int(z'000FFFFFFFFFFFFF', int64)         !< 52 mantissa bits

  ! --- shared: ln 2 split so that k*ln2_hi is exact for |k| <= 2**21 ------------
  ! (fdlibm's values: ln2_hi has 32 significant bits, its last 21 bits are zero)
  real(dp), parameter :: ln2_hi = 6.93147180369123816490e-01_dp   !< 0x3FE62E42FEE00000
  real(dp), parameter :: ln2_lo = 1.90821492927058770002e-10_dp   !< 0x3DEA39EF35793C76

  ! --- fexp ----------------------------------------------------------------------
  real(dp), parameter :: exp_xmin = -708.0_dp     !< below: 0 (avoids subnormal results)
  real(dp), parameter :: exp_xmax = 709.78_dp     !< above: +Inf (k <= 1024 and r <= 0 at the top)
  real(dp), parameter :: inv_ln2 = 1.4426950408889634_dp          !< 1/ln 2
  !> 1.5*2**52: t = x/ln2 + shifter rounds x/ln2 to the nearest integer k (ties to
  !> even), which then sits in the low mantissa bits of t; t - shifter is k exactly.
  real(dp), parameter :: shifter = 6755399441055744.0_dp
  integer(int64), parameter :: shifter_bits = int(z'4338000000000000', int64)
  ! exp(r) = 1 + r + r**2 q(r) on |r| <= ln2/2, q of degree 10: minimax for the
  ! relative error of q, derived by the Remez algorithm in 60-digit arithmetic
  ! (scripts/derive_exp_minimax.py, mpmath), rounded to double.  Checked there in
  ! high precision: |1 + r + r**2 q(r) - exp(r)| / exp(r) <= 4.3e-19 (0.002 ulp)
  ! with these double coefficients (Taylor of the same degree: 1.04 ulp, Taylor
  ! needs degree 13; degree 9 minimax: 0.07 ulp, which showed in the measured
  ! maximum error of fexp, 0.71 ulp instead of 0.63).
  real(dp), parameter :: ec0 = 0.5_dp
  real(dp), parameter :: ec1 = 0.1666666666666667_dp
  real(dp), parameter :: ec2 = 0.041666666666666616_dp
  real(dp), parameter :: ec3 = 0.008333333333326167_dp
  real(dp), parameter :: ec4 = 0.0013888888888917957_dp
  real(dp), parameter :: ec5 = 0.0001984126987472082_dp
  real(dp), parameter :: ec6 = 2.4801587245744916e-05_dp
  real(dp), parameter :: ec7 = 2.755725551421637e-06_dp
  real(dp), parameter :: ec8 = 2.755734961731694e-07_dp
  real(dp), parameter :: ec9 = 2.5105173629812176e-08_dp
  real(dp), parameter :: ec10 = 2.0889374585980396e-09_dp

  ! --- flog ----------------------------------------------------------------------
  ! Coefficients Lg1..Lg7 of the polynomial in s**2 (s = f/(2+f)): from fdlibm,
  ! Sun Microsystems, e_log.c (1993), "Copyright (C) 1993 by Sun Microsystems,
  ! Inc. ... Permission to use, copy, modify, and distribute this software is
  ! freely granted, provided that this notice is preserved."  |error| < 2**-58.45
  ! for the polynomial on |s| <= 0.1716 (fdlibm's note).  The code below is ours.
  real(dp), parameter :: lg1 = 6.666666666666735130e-01_dp   !< 0x3FE5555555555593
  real(dp), parameter :: lg2 = 3.999999999940941908e-01_dp   !< 0x3FD999999997FA04
  real(dp), parameter :: lg3 = 2.857142874366239149e-01_dp   !< 0x3FD2492494229359
  real(dp), parameter :: lg4 = 2.222219843214978396e-01_dp   !< 0x3FCC71C51D8E78AF
  real(dp), parameter :: lg5 = 1.818357216161805012e-01_dp   !< 0x3FC7466496CB03DE
  real(dp), parameter :: lg6 = 1.531383769920937332e-01_dp   !< 0x3FC39A09D078C69F
  real(dp), parameter :: lg7 = 1.479819860511658591e-01_dp   !< 0x3FC2F112DF3E5244
  real(dp), parameter :: two54 = 18014398509481984.0_dp      !< 2**54, scales subnormals up
  real(dp), parameter :: two52 = 4503599627370496.0_dp       !< 2**52
  integer(int64), parameter :: two52_bits = int(z'4330000000000000', int64)
  !> Added to the bits, carries into the exponent when the mantissa is >= sqrt(2)
  !> (0x3FF00000 - 0x3FE6A09E in the high word): m lands in [sqrt(2)/2, sqrt(2)).
  integer(int64), parameter :: sqrt2_shift = int(z'00095F6200000000', int64)
  integer(int64), parameter :: split_mask = int(z'FFFFFFFFF8000000', int64)  !< keeps 26 bits
  integer(int64), parameter :: sqrt2_half_bits = int(z'3FE6A09E00000000', int64)

contains

  !> exp(x); see the module header for the domain.
  pure elemental function fexp(x) result(y)
    real(dp), intent(in) :: x
    real(dp) :: y
    real(dp) :: e_x, e_y
    e_x = x
    include 'elementary_exp.inc'
    y = e_y
  end function fexp

  !> Natural logarithm; see the module header for the special values.
  pure elemental function flog(x) result(y)
    real(dp), intent(in) :: x
    real(dp) :: y
    real(dp) :: l_x, l_y
    l_x = x
    include 'elementary_log.inc'
    y = l_y
  end function flog

  !> x**y = exp(y ln x) for x > 0 only (no special cases; see the module header).
  pure elemental function fpow(x, y) result(z)
    real(dp), intent(in) :: x, y
    real(dp) :: z
    z = fexp(y*flog(x))
  end function fpow

  !> All ones where d has its sign bit set (d < 0 or -0 or a NaN with the sign
  !> bit), else zero.  With d = a - b (b finite) this is the mask of a < b for
  !> non-NaN a: a - b is never -0 in round-to-nearest, and never 0 when a /= b.
  pure elemental function neg_mask(d) result(m)
    real(dp), intent(in) :: d
    integer(int64) :: m
    m = -ishft(transfer(d, 0_int64), -63)
  end function neg_mask

  !> All ones where x is a NaN (|bits| > bits of +Inf), else zero.
  pure elemental function nan_mask(x) result(m)
    real(dp), intent(in) :: x
    integer(int64) :: m
    m = -ishft(inf_bits - iand(transfer(x, 0_int64), abs_mask), -63)
  end function nan_mask

  !> a where mask m is set, else b: a select on the bit patterns.
  pure elemental function pick(m, a, b) result(y)
    integer(int64), intent(in) :: m
    real(dp), intent(in) :: a, b
    real(dp) :: y
    y = transfer(ior(iand(transfer(a, 0_int64), m), iand(transfer(b, 0_int64), not(m))), 1.0_dp)
  end function pick

  !> y(i) = fexp(x(i)), i = 1..n: a loop that vectorises (the body is in the loop,
  !> not a call).  For loops in other modules, on whole layer or lane arrays.
  pure subroutine exp_array(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    real(dp) :: e_x, e_y
    integer :: i
    do i = 1, n
      e_x = x(i)
      include 'elementary_exp.inc'
      y(i) = e_y
    end do
  end subroutine exp_array

  !> y(i) = fexp(x(i)), i = 1..n, for arguments known to lie in fexp's domain
  !> -708 <= x <= 709.78 (no NaN): the same bits as exp_array on such arguments,
  !> without the clamp and the out-of-domain handling.  Other arguments give
  !> unspecified values (no trap).
  pure subroutine exp_array_inrange(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    real(dp) :: xr, e_y
    integer :: i
    do i = 1, n
      xr = x(i)
      include 'elementary_exp_core.inc'
      y(i) = e_y
    end do
  end subroutine exp_array_inrange

  !> y(i) = flog(x(i)), i = 1..n: a loop that vectorises (the body is in the loop,
  !> not a call).  For loops in other modules, on whole layer or lane arrays.
  pure subroutine log_array(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    real(dp) :: l_x, l_y
    integer :: i
    do i = 1, n
      l_x = x(i)
      include 'elementary_log.inc'
      y(i) = l_y
    end do
  end subroutine log_array

  !> y(i) = flog(x(i)), i = 1..n, for arguments known to be positive, normal and
  !> finite (no subnormal, zero, negative, infinite or NaN x): the same bits as
  !> log_array on such arguments, without the special-value handling (about a
  !> fifth of the work).  Other arguments give unspecified values (no trap).
  pure subroutine log_array_positive(n, x, y)
    integer, intent(in) :: n
    real(dp), intent(in) :: x(n)
    real(dp), intent(out) :: y(n)
    real(dp) :: xs, ebias, l_y
    integer :: i
    ebias = 1023.0_dp
    do i = 1, n
      xs = x(i)
      include 'elementary_log_core.inc'
      y(i) = l_y
    end do
  end subroutine log_array_positive

end module nt_elementary
