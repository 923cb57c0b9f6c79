!> Equilibrium (supercooled) liquid water content of frozen soil.
!>
!> Koren et al. (1999), J. Geophys. Res. 104(D16), eq. 17, solved by Newton
!> iteration on the ice content, with the Flerchinger & Saxton (1989) explicit
!> form (no ice-blocking term) as fall-back (legacy FRH2O, OPT_FRZ = 1).
!> Specification: spec/physics.md section 7.6 and trap 7 of section 13.
module nt_supercooled_water
  use nt_kinds, only: dp
  use nt_constants, only: tfreez, lsubf
  implicit none
  private

  public :: frh2o

  ! Routine-specific constants, spec 7.6 / section 9.
  real(dp), parameter :: ck       = 8.0_dp    !< ice-blocking coefficient CK [-]
  real(dp), parameter :: blim     = 5.5_dp    !< upper limit of the Campbell exponent BLIM [-]
  real(dp), parameter :: tol_swl  = 0.005_dp  !< Newton convergence tolerance ERROR [m3 m-3]
  real(dp), parameter :: grav     = 9.81_dp   !< gravity GS as coded in FRH2O [m s-2]
  real(dp), parameter :: min_liq  = 0.02_dp   !< minimum liquid water kept by the clamps [m3 m-3]
  real(dp), parameter :: t_margin = 1.0e-3_dp !< no freezing above tfreez - t_margin [K]
  integer,  parameter :: max_iter = 10        !< maximum number of Newton iterations

contains

  !> Liquid water content in equilibrium with temperature tkelv (spec 7.6):
  !> solves  -(T-T0)/T = (psis g/Lf) (1 + CK theta_i)**2 (n/(smc - theta_i))**b
  !> for the ice content theta_i by Newton iteration on its logarithmic form,
  !> starting from the current ice content smc - sh2o, clamping the iterate to
  !> [0, smc-0.02] at every step, stopping when |change| <= 0.005 or after 10
  !> iterations.  If not converged: explicit form without ice blocking
  !> (CK = 0), floored at 0.02 and capped at smc (the legacy message is not printed).
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

    real(dp) :: bx      ! BX, limited Campbell exponent
    real(dp) :: swl     ! SWL, ice content iterate [m3 m-3]
    real(dp) :: swlk    ! SWLK, next iterate
    real(dp) :: dswl    ! |SWLK - SWL|
    real(dp) :: resid   ! DF, residual of the log equation
    real(dp) :: slope   ! DENOM, derivative of the residual w.r.t. SWL
    real(dp) :: fk      ! Flerchinger explicit liquid content
    real(dp) :: psis_term  ! psis*g/Lf [-]
    real(dp) :: log_temp   ! ln(-(T-T0)/T)
    integer  :: nlog
    logical  :: converged

    bx = bexp
    if (bexp > blim) bx = blim

    if (tkelv > (tfreez - t_margin)) then
      free = smc
      return
    end if

    swl = smc - sh2o
    if (swl > (smc - min_liq)) swl = smc - min_liq
    if (swl < 0.0_dp) swl = 0.0_dp

    ! loop-invariant parts of the residual (same values as evaluated inside the loop)
    psis_term = psis*grav/lsubf
    log_temp = log(-(tkelv - tfreez)/tkelv)

    nlog = 0
    converged = .false.
    do while (nlog < max_iter .and. .not. converged)
      nlog = nlog + 1
      ! ln(psis g/Lf (1+CK SWL)^2 (SMCMAX/(SMC-SWL))^BX) - ln(-(T-T0)/T), with the
      ! power taken out of the logarithm (two logarithms instead of a logarithm
      ! and a power; equal in exact arithmetic, a few ulp apart in floating point).
      resid = log(psis_term*((1.0_dp + ck*swl)**2)) + bx*log(smcmax/(smc - swl)) - log_temp
      slope = 2.0_dp*ck/(1.0_dp + ck*swl) + bx/(smc - swl)
      swlk = swl - resid/slope
      if (swlk > (smc - min_liq)) swlk = smc - min_liq
      if (swlk < 0.0_dp) swlk = 0.0_dp
      dswl = abs(swlk - swl)
      swl = swlk
      if (dswl <= tol_swl) converged = .true.
    end do
    free = smc - swl

    if (.not. converged) then
      fk = (((lsubf/(grav*(-psis)))*((tkelv - tfreez)/tkelv))**(-1.0_dp/bx))*smcmax
      if (fk < min_liq) fk = min_liq
      free = min(fk, smc)
    end if
  end function frh2o

end module nt_supercooled_water
