!> Equilibrium (supercooled) liquid water content of frozen soil.
!>
!> Koren et al. (1999), J. Geophys. Res. 104(D16), eq. 17, solved by Newton
!> iteration on the ice content, with the Flerchinger & Saxton (1989) explicit
!> form (no ice-blocking term) as fall-back (legacy FRH2O, OPT_FRZ = 1).
!> Specification: spec/physics.md section 7.6 and trap 7 of section 13.
!>
!> Two entry points with the same iteration:
!>   frh2o        : one layer, the legacy argument list (tkelv, smc, sh2o, smcmax, bexp, psis);
!>   frh2o_layers : the layers of a column at once, with the parameter-only terms
!>                  (frh2o_constants) computed once per layer by the caller (soil heat step).
module nt_supercooled_water
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_constants, only: tfreez, lsubf
  use nt_elementary, only: flog, fpow, log_array_positive
  implicit none
  private

  public :: frh2o, frh2o_layers, frh2o_constants

  ! Routine-specific constants, spec 7.6 / section 9.
  real(dp), parameter :: ck       = 8.0_dp    !< ice-blocking coefficient CK [-]
  real(dp), parameter :: blim     = 5.5_dp    !< upper limit of the Campbell exponent BLIM [-]
  real(dp), parameter :: tol_swl  = 0.005_dp  !< Newton convergence tolerance ERROR [m3 m-3]
  real(dp), parameter :: grav     = 9.81_dp   !< gravity GS as coded in FRH2O [m s-2]
  real(dp), parameter :: min_liq  = 0.02_dp   !< minimum liquid water kept by the clamps [m3 m-3]
  real(dp), parameter :: t_margin = 1.0e-3_dp !< no freezing above tfreez - t_margin [K]
  integer,  parameter :: max_iter = 10        !< maximum number of Newton iterations

contains

  !> Parameter-only terms of the FRH2O residual (spec 7.6), for frh2o_layers:
  !>   bx     : BX = min(BEXP, BLIM) [-] (out)
  !>   log_a  : ln(PSIS*GS/HLICE) + BX*ln(SMCMAX), the constant part of the
  !>            residual DF written as a sum of logarithms (see frh2o_layers) (out)
  !>   smcmax : porosity [m3 m-3] (in);  bexp : Campbell b [-] (in);
  !>   psis   : saturated matric suction, positive [m] (in)
  elemental subroutine frh2o_constants(smcmax, bexp, psis, bx, log_a)
    real(dp), intent(in)  :: smcmax, bexp, psis
    real(dp), intent(out) :: bx, log_a
    bx = bexp
    if (bexp > blim) bx = blim
    log_a = flog(psis*grav/lsubf) + bx*flog(smcmax)
  end subroutine frh2o_constants

  !> Liquid water content in equilibrium with temperature tkelv (spec 7.6):
  !> solves  -(T-T0)/T = (psis g/Lf) (1 + CK theta_i)**2 (n/(smc - theta_i))**b
  !> for the ice content theta_i by Newton iteration on its logarithmic form,
  !> starting from the current ice content smc - sh2o, clamping the iterate to
  !> [0, smc-0.02] at every step, stopping when |change| <= 0.005 or after 10
  !> iterations.  If not converged: explicit form without ice blocking
  !> (CK = 0), floored at 0.02 and capped at smc (the legacy message is not printed).
  !> (One-layer form of frh2o_layers.)
  !>   tkelv  : temperature [K] (in)
  !>   smc    : total volumetric soil moisture [m3 m-3] (in)
  !>   sh2o   : liquid volumetric soil moisture [m3 m-3] (in)
  !>   smcmax : porosity [m3 m-3] (in)
  !>   bexp   : Campbell exponent b [-] (in; limited to 5.5 here)
  !>   psis   : saturated matric suction, positive [m] (in)
  !>   free   : equilibrium liquid water content [m3 m-3] (result)
  pure function frh2o(tkelv, smc, sh2o, smcmax, bexp, psis) result(free)
    real(dp), intent(in) :: tkelv, smc, sh2o, smcmax, bexp, psis
    real(dp) :: free
    real(dp) :: bx(1), log_a(1), free1(1)
    call frh2o_constants(smcmax, bexp, psis, bx(1), log_a(1))
    call frh2o_layers(1, [1_int64], [tkelv], [smc], [sh2o], [smcmax], [psis], bx, log_a, free1)
    free = free1(1)
  end function frh2o

  !> FRH2O (spec 7.6) of the layers k with need(k), given the parameter-only
  !> terms of frh2o_constants (bx, log_a).
  !>
  !> The Newton residual of spec 7.6,
  !>   DF = ln( (PSIS GS/HLICE) (1 + CK SWL)**2 (SMCMAX/(SMC-SWL))**BX ) - ln(-(T-T0)/T),
  !> is evaluated as the equal (in exact arithmetic; a few ulp apart in
  !> floating point) sum of logarithms
  !>   DF = log_a + 2 ln(1 + CK SWL) - BX ln(SMC - SWL) - ln(-(T-T0)/T),
  !> and the Newton step DF/DENOM, DENOM = 2 CK/u + BX/v with u = 1 + CK SWL and
  !> v = SMC - SWL, as DF*(u*v/(2 CK v + BX u)) (one division instead of three,
  !> and one that does not wait for the logarithms).  The clamps to [0, SMC-0.02]
  !> are written as min/max (the same selections).
  !>
  !> Each layer's iteration is exactly that of spec 7.6 (start from the current
  !> ice, at most 10 iterations, stop when |change| <= 0.005, fall-back if not
  !> converged); the layers are only interleaved: one Newton iteration is done
  !> for every layer still iterating, and the converged layers are then dropped
  !> from the list.  The layers still iterating are kept packed (their data
  !> contiguous), so that an iteration is a loop the compiler vectorises, its
  !> logarithms (two per layer) computed together by nt_elementary::log_array_positive.
  !> The layers may be those of several columns (the soil heat step of a block
  !> passes all layers of all its lanes).
  !>   n      : number of layers (in)
  !>   need   : FRH2O is wanted for layer k if need(k) /= 0 (in)
  !>   tkelv  : temperature (TAVG) per layer [K] (in; read where need)
  !>   smc, sh2o, smcmax, psis : per layer, as frh2o (in)
  !>   bx, log_a : per layer, from frh2o_constants(smcmax, bexp, psis) (in)
  !>   free   : equilibrium liquid water content [m3 m-3] (out; smc where not need)
  pure subroutine frh2o_layers(n, need, tkelv, smc, sh2o, smcmax, psis, bx, log_a, free)
    integer,  intent(in)  :: n
    integer(int64), intent(in) :: need(n)
    real(dp), intent(in)  :: tkelv(n), smc(n), sh2o(n), smcmax(n), psis(n), bx(n), log_a(n)
    real(dp), intent(out) :: free(n)

    ! the layers still iterating, packed: i = 1..m is layer idx(i)
    integer  :: idx(n)
    real(dp) :: swl(n)        ! SWL, ice content iterate [m3 m-3]
    real(dp) :: swl_max(n)    ! upper clamp SMC - 0.02
    real(dp) :: smc_i(n)      ! SMC
    real(dp) :: bx_i(n)       ! BX
    real(dp) :: log_const(n)  ! log_a - ln(-(T-T0)/T): the SWL-independent part of DF
    logical  :: converged(n)
    real(dp) :: arg(2*n), lg(2*n)  ! arguments and logarithms, packed
    real(dp) :: swlk    ! SWLK, next iterate
    real(dp) :: resid   ! DF, residual of the log equation
    real(dp) :: u, v    ! 1 + CK SWL and SMC - SWL
    real(dp) :: rslope  ! 1/DENOM = u v/(2 CK v + BX u)
    real(dp) :: fk      ! Flerchinger explicit liquid content
    integer  :: m, mm, i, k, iter

    ! no freezing above T0 - 1e-3: FREE = SMC; the other wanted layers iterate
    m = 0
    do k = 1, n
      free(k) = smc(k)
      if (need(k) /= 0 .and. .not. (tkelv(k) > (tfreez - t_margin))) then
        m = m + 1
        idx(m) = k
      end if
    end do

    ! start from the current ice, clamped to [0, SMC-0.02] (upper bound first)
    do i = 1, m
      k = idx(i)
      smc_i(i) = smc(k)
      bx_i(i) = bx(k)
      swl_max(i) = smc(k) - min_liq
      swl(i) = max(min(smc(k) - sh2o(k), swl_max(i)), 0.0_dp)
      arg(i) = -(tkelv(k) - tfreez)/tkelv(k)
    end do
    call log_array_positive(m, arg, lg)
    do i = 1, m
      log_const(i) = log_a(idx(i)) - lg(i)
    end do

    do iter = 1, max_iter
      ! one Newton iteration of every layer still iterating (a vectorised loop),
      ! the logarithms of u = 1 + CK SWL and v = SMC - SWL of all of them first
      do i = 1, m
        arg(i) = 1.0_dp + ck*swl(i)
        arg(m + i) = smc_i(i) - swl(i)
      end do
      call log_array_positive(2*m, arg, lg)
      do i = 1, m
        u = arg(i)
        v = arg(m + i)
        rslope = (u*v)/(2.0_dp*ck*v + bx_i(i)*u)
        resid = log_const(i) + 2.0_dp*lg(i) - bx_i(i)*lg(m + i)
        swlk = max(min(swl(i) - resid*rslope, swl_max(i)), 0.0_dp)
        converged(i) = abs(swlk - swl(i)) <= tol_swl
        swl(i) = swlk
      end do
      ! the converged layers' result; the others move up the list (in place: mm < i)
      mm = 0
      do i = 1, m
        if (converged(i)) then
          free(idx(i)) = smc_i(i) - swl(i)
        else
          mm = mm + 1
          idx(mm) = idx(i)
          smc_i(mm) = smc_i(i)
          bx_i(mm) = bx_i(i)
          swl_max(mm) = swl_max(i)
          swl(mm) = swl(i)
          log_const(mm) = log_const(i)
        end if
      end do
      m = mm
      if (m == 0) exit
    end do

    ! not converged in max_iter iterations: Flerchinger explicit form
    do i = 1, m
      k = idx(i)
      fk = fpow((lsubf/(grav*(-psis(k))))*((tkelv(k) - tfreez)/tkelv(k)), -1.0_dp/bx(k))*smcmax(k)
      if (fk < min_liq) fk = min_liq
      free(k) = min(fk, smc(k))
    end do
  end subroutine frh2o_layers

end module nt_supercooled_water
