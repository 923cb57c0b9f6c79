!> Surface exchange coefficient for heat, option 2 (sfcdif_option = 2).
!>
!> K. Yang's bare-soil flux scheme (legacy SFCDIF_MYJ_Y08; Yang et al. 2002,
!> 2008): thermal roughness z0h = 70 nu/u* exp(-beta sqrt(u*) |T*|^(1/4))
!> (Yang et al. 2008), analytical approximation of the Monin-Obukhov length
!> from the bulk Richardson number (Yang et al. 2001) and Hogstrom (1996)
!> profile functions.  Despite the legacy name it is not MYJ.
!> Specification: spec/physics.md section 2.3 (and trap 16 of section 13).
module nt_sfc_exchange_yang08
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_elementary, only: exp_array_inrange, log_array_positive
  implicit none
  private

  public :: sfcdif_yang08, sfcdif_yang08_block

  ! Constants of the Y08 scheme (spec 2.3, legacy include file most.inc)
  real(dp), parameter :: kv       = 0.4_dp        !< von Karman constant
  real(dp), parameter :: prantl01 = 1.0_dp        !< turbulent Prandtl number, stable
  real(dp), parameter :: prantl02 = 0.95_dp       !< turbulent Prandtl number, unstable
  real(dp), parameter :: gamma_m  = 19.0_dp       !< unstable momentum profile coefficient
  real(dp), parameter :: gamma_h  = 11.6_dp       !< unstable heat profile coefficient
  real(dp), parameter :: beta_m   = 5.3_dp        !< stable momentum profile coefficient
  real(dp), parameter :: beta_h   = 8.0_dp        !< stable heat profile coefficient
  real(dp), parameter :: rd       = 287.0_dp      !< gas constant of dry air [J kg-1 K-1] (Y08 value)
  real(dp), parameter :: cp       = 1004.0_dp     !< specific heat of air [J kg-1 K-1] (Y08 value)
  real(dp), parameter :: rddcp    = rd/cp         !< R/cp
  real(dp), parameter :: grav     = 9.8_dp        !< gravity in the Richardson number [m s-2]
  real(dp), parameter :: grav_p   = 9.81_dp       !< gravity in the hydrostatic pressure at zh [m s-2]
  real(dp), parameter :: p0       = 1.0e5_dp      !< reference pressure [Pa]
  real(dp), parameter :: excm     = 0.001_dp      !< CH floor times wind height [m2 s-1]
  real(dp), parameter :: t_ref_nu = 273.15_dp     !< reference temperature of the viscosity law [K]
  integer,  parameter :: n_iter   = 3             !< fixed number of iterations

contains

  !> Heat exchange coefficient CH of the Yang et al. (2008) scheme (spec 2.3).
  !> Exactly 3 iterations of (z0h, Monin-Obukhov length, u*/T*).  The skin
  !> temperature is used directly as the surface potential temperature.
  !> The initial Obukhov length of the legacy code is never used and is not
  !> computed.  CM is not computed by this scheme.
  !>   z0m      : momentum roughness (previous SFLX, incl. snow) [m] (in)
  !>   zm       : wind height ZLVL_WIND [m] (in)
  !>   zh       : temperature/humidity height ZLVL [m] (in)
  !>   wind     : wind speed [m s-1] (in)
  !>   tsfc     : skin temperature T1 of the previous step [K] (in)
  !>   tair     : air temperature SFCTMP [K] (in)
  !>   qair     : air specific humidity Q2 [kg kg-1] (in)
  !>   psfc     : surface pressure [Pa] (in)
  !>   z0h_beta : coefficient beta in z0h (7.2 reproduces the legacy) [s^0.5 m^-0.5 K^-0.25] (in)
  !>   ch       : exchange coefficient for heat, CH = u* c_pt >= 0.001/zm [m s-1] (out)
  !>   ribb     : bulk Richardson number (clipped) of the last iteration [-] (out)
  !>   status   : 0 ok; 1 if |1 - coef p| < 1e-6 in the unstable Obukhov-length
  !>              solution (the legacy code stops there); then ch = 0.001/zm and
  !>              ribb = the clipped Rib of that iteration (out)
  pure subroutine sfcdif_yang08(z0m, zm, zh, wind, tsfc, tair, qair, psfc, z0h_beta, ch, ribb, status)
    real(dp), intent(in)  :: z0m, zm, zh, wind, tsfc, tair, qair, psfc, z0h_beta
    real(dp), intent(out) :: ch, ribb
    integer,  intent(out) :: status
    real(dp) :: ch1(1), ribb1(1)
    integer  :: status1(1)
    call sfcdif_yang08_block(1, [z0m], [zm], [zh], [wind], [tsfc], [tair], [qair], [psfc], &
                             [z0h_beta], ch1, ribb1, status1)
    ch = ch1(1)
    ribb = ribb1(1)
    status = status1(1)
  end subroutine sfcdif_yang08

  !> sfcdif_yang08 for nb columns (lanes) at once: every argument is an array
  !> over lanes, each lane's arithmetic is exactly that of one column.  The
  !> logarithms and exponentials of an iteration are computed for all lanes
  !> together by nt_elementary's array routines (vectorised); powers x**y are
  !> exp(y ln x) as nt_elementary::fpow, the quarter powers sqrt(sqrt(x)).  The
  !> branch-specific logarithms are computed for every lane and used only by
  !> the lanes on that branch (on the others they may be NaN).  A lane that
  !> stops (status 1) keeps its outputs; the others go on.
  pure subroutine sfcdif_yang08_block(nb, z0m, zm, zh, wind, tsfc, tair, qair, psfc, z0h_beta, &
                                      ch, ribb, status)
    integer,  intent(in)  :: nb
    real(dp), intent(in)  :: z0m(nb), zm(nb), zh(nb), wind(nb), tsfc(nb), tair(nb), qair(nb)
    real(dp), intent(in)  :: psfc(nb), z0h_beta(nb)
    real(dp), intent(out) :: ch(nb), ribb(nb)
    integer,  intent(out) :: status(nb)

    real(dp) :: u(nb)                 ! floored wind speed [m s-1]
    real(dp) :: rho                   ! air density [kg m-3]
    real(dp) :: theta_a(nb), theta_s(nb)  ! air / surface potential temperature [K]
    real(dp) :: c_u(nb), c_pt(nb)     ! bulk transfer coefficients (u* = c_u U, T* = c_pt dtheta)
    real(dp) :: ustar(nb), tstar(nb)  ! friction velocity [m s-1], temperature scale [K]
    real(dp) :: nu(nb)                ! kinematic viscosity [m2 s-1]
    real(dp) :: z0h(nb)               ! thermal roughness [m]
    real(dp) :: log_m(nb)             ! ln(zm/z0m)
    real(dp) :: log_h(nb)             ! ln(zh/z0h)
    real(dp) :: d                     ! Rib/Pr
    real(dp) :: rib_u, rib_s          ! Rib clipped for the unstable / stable branch
    real(dp) :: rib_new(nb)           ! Rib of the lane's branch
    real(dp) :: d_u(nb)               ! Rib/Pr of the unstable branch
    real(dp) :: coef_u(nb)            ! the unstable fit's coefficient times (zh - z0h)
    real(dp) :: one_minus_m(nb)       ! 1 - z0m/zm
    real(dp) :: zh10(nb)              ! zh/10, the upper clip of z0h
    real(dp) :: lg_fit(2*nb), lg_h(nb)    ! ln(-d), ln(ln(zm/z0m)); ln(ln(zh/z0h))
    logical  :: any_unstable          ! some lane has Rib < 0
    real(dp) :: s_u, s_s, denom       ! 1/L of the unstable / stable branch; the fit's denominator
    logical  :: unstable              ! Rib < 0
    integer(int64) :: singular(nb)    ! 1 where the unstable fit is singular (the lane stops)
    real(dp) :: rib_raw(nb)           ! bulk Richardson number before the clips
    real(dp) :: s                     ! 1/L [m-1]
    real(dp) :: obukhov_l(nb)         ! Monin-Obukhov length L [m]
    real(dp) :: num, pa, pb, pc, p, coef   ! unstable-case fit
    real(dp) :: qa, qb, qc                 ! stable-case quadratic a, b, c
    real(dp) :: x1(nb), x2(nb), y1, y2, psi_m, psi_h, f_m, f_h
    real(dp) :: atan_x1(nb), atan_x2(nb)   ! arctangents of x1, x2 (unstable lanes)
    real(dp) :: f_m_u(nb), f_h_u(nb)       ! unstable profiles: f_m, f_h Pr
    real(dp) :: arg(3*nb), lg(3*nb)   ! arguments and their logarithms / exponentials
    logical  :: running(nb)           ! the lane has not stopped
    integer  :: c, iter

    status = 0
    ribb   = 0.0_dp
    running = .true.

    do c = 1, nb
      u(c)   = max(wind(c), 0.01_dp)
      rho    = psfc(c)/(rd*tair(c)*(1.0_dp + 0.61_dp*qair(c)))
      arg(c) = psfc(c)/(psfc(c) - rho*grav_p*zh(c))
      arg(nb + c) = zm(c)/z0m(c)
      arg(2*nb + c) = zh(c)/z0m(c)
    end do
    call log_array_positive(3*nb, arg, lg)
    do c = 1, nb
      arg(c) = rddcp*lg(c)
    end do
    call exp_array_inrange(nb, arg, theta_a)                      ! (psfc/(psfc - rho g zh))**(R/cp)
    do c = 1, nb
      theta_a(c) = tair(c)*theta_a(c)
      theta_s(c) = tsfc(c)
      log_m(c) = lg(nb + c)
      c_u(c)   = kv/log_m(c)
      c_pt(c)  = kv/lg(2*nb + c)
      tstar(c) = c_pt(c)*(theta_a(c) - theta_s(c))
      ustar(c) = c_u(c)*u(c)
      arg(c) = theta_a(c)/t_ref_nu
    end do
    call log_array_positive(nb, arg, lg)
    do c = 1, nb
      arg(c) = 1.754_dp*lg(c)
    end do
    call exp_array_inrange(nb, arg, nu)                           ! (theta_a/T_ref)**1.754
    do c = 1, nb
      nu(c) = 1.328e-5_dp*(p0/psfc(c))*nu(c)
    end do

    ! The terms of the Obukhov-length step that do not change over the iterations
    ! (the same operations as in the iteration, done once): the bulk Richardson
    ! number, Rib/Pr and the leading factor of the unstable fit, 1 - z0m/zm of the
    ! stable clip, and the logarithms ln(-d), ln(ln(zm/z0m)) of the unstable fit
    ! if a lane needs them.
    do c = 1, nb
      rib_raw(c) = (grav/theta_a(c))*(theta_a(c) - theta_s(c))*(zm(c) - z0m(c))/u(c)**2
      d_u(c) = max(rib_raw(c), -10.0_dp)/prantl02
      coef_u(c) = d_u(c)*gamma_m**2/8.0_dp/gamma_h*(zm(c) - z0m(c))
      one_minus_m(c) = 1.0_dp - z0m(c)/zm(c)
      zh10(c) = zh(c)/10.0_dp
    end do
    any_unstable = any(rib_raw < 0.0_dp)
    if (any_unstable) then
      do c = 1, nb
        arg(c) = -d_u(c)
        arg(nb + c) = log_m(c)
      end do
      call log_array_positive(2*nb, arg, lg_fit)
    end if

    do iter = 1, n_iter
      ! --- thermal roughness (Yang et al. 2008) ---
      do c = 1, nb
        arg(c) = -z0h_beta(c)*sqrt(ustar(c))*sqrt(sqrt(abs(tstar(c))))
      end do
      call exp_array_inrange(nb, arg, z0h)
      do c = 1, nb
        z0h(c) = 70.0_dp*nu(c)/ustar(c)*z0h(c)
        z0h(c) = min(zh10(c), max(z0h(c), 1.0e-10_dp))
        arg(c) = zh(c)/z0h(c)
      end do
      call log_array_positive(nb, arg, log_h)

      ! --- Monin-Obukhov length from the bulk Richardson number ---
      ! the logarithm of the unstable-case fit that changes, ln(ln(zh/z0h)), if a
      ! lane needs it
      if (any_unstable) call log_array_positive(nb, log_h, lg_h)
      ! Both branches for every lane, then a selection (a loop without branches,
      ! so it vectorises across lanes; the unstable branch's values of a stable
      ! lane, and the reverse, are computed from whatever lg holds and not used).
      do c = 1, nb
        ! unstable (Rib < 0): the fit of the Obukhov length
        rib_u = max(rib_raw(c), -10.0_dp)
        d   = d_u(c)
        num = d*(log_m(c)**2/log_h(c))/(zm(c) - z0m(c))
        pa  = lg_fit(c)
        pb  = lg_fit(nb + c)
        pc  = lg_h(c)
        p   = 0.03728_dp - 0.093143_dp*pa - 0.24069_dp*pb + 0.30616_dp*pc &
              + 0.017131_dp*pa**2 + 0.037666_dp*pa*pb - 0.084598_dp*pb**2 - 0.016498_dp*pa*pc &
              + 0.1828_dp*pb*pc - 0.12587_dp*pc**2
        p   = max(0.0_dp, p)
        coef = coef_u(c)/(zh(c) - z0h(c))
        denom = 1.0_dp - coef*p
        ! (singular fit: the lane stops, below; s = -1, any finite value)
        s_u = merge(-1.0_dp, num/denom, abs(denom) < 1.0e-6_dp)
        ! stable: the quadratic
        rib_s = min(rib_raw(c), 0.2_dp, prantl01*beta_h*(1.0_dp - z0h(c)/zh(c))/beta_m**2 &
                                        /one_minus_m(c) - 0.05_dp)
        d   = rib_s/prantl01
        qa  = d*beta_m**2*(zm(c) - z0m(c)) - beta_h*(zh(c) - z0h(c))
        qb  = 2.0_dp*d*beta_m*log_m(c) - log_h(c)
        qc  = d*log_m(c)**2/(zm(c) - z0m(c))
        s_s = (-qb - sqrt(abs(qb**2 - 4.0_dp*qa*qc)))/(2.0_dp*qa)

        unstable = rib_raw(c) < 0.0_dp
        rib_new(c) = merge(rib_u, rib_s, unstable)
        singular(c) = merge(1_int64, 0_int64, unstable .and. abs(denom) < 1.0e-6_dp)
        s = merge(s_u, s_s, unstable)
        s = merge(1.0e-6_dp, s, s > 0.0_dp .and. s < 1.0e-6_dp)
        s = merge(-1.0e-6_dp, s, s > -1.0e-6_dp .and. s < 0.0_dp)
        ! exact neutrality (theta_a == theta_s gives s = +-0): IEEE 1/s would be
        ! +-Infinity; +-huge gives bit-identical coefficients (s = -0 from the
        ! stable quadratic selects the unstable profile branch, as +-Infinity
        ! would)
        obukhov_l(c) = merge(1.0_dp/s, sign(huge(1.0_dp), s), abs(s) > 0.0_dp)
      end do
      do c = 1, nb
        if (.not. running(c)) cycle
        ribb(c) = rib_new(c)
        if (singular(c) /= 0) then
          status(c) = 1
          ch(c)     = excm/zm(c)
          running(c) = .false.
        end if
      end do

      ! --- transfer coefficients (Hogstrom 1996 profiles) ---
      ! the logarithms of the unstable profiles (used where L < 0), if a lane needs them
      if (any(obukhov_l < 0.0_dp)) then
        do c = 1, nb
          x1(c) = sqrt(sqrt(1.0_dp - gamma_m*z0m(c)/obukhov_l(c)))
          x2(c) = sqrt(sqrt(1.0_dp - gamma_m*zm(c)/obukhov_l(c)))
          y1 = sqrt(1.0_dp - gamma_h*z0h(c)/obukhov_l(c))
          y2 = sqrt(1.0_dp - gamma_h*zh(c)/obukhov_l(c))
          arg(c) = (1.0_dp + x2(c))/(1.0_dp + x1(c))
          arg(nb + c) = (1.0_dp + x2(c)**2)/(1.0_dp + x1(c)**2)
          arg(2*nb + c) = (1.0_dp + y2)/(1.0_dp + y1)
        end do
        call log_array_positive(3*nb, arg, lg)
      end if
      ! The arctangents of the unstable lanes (scalar C-library calls); then the
      ! unstable profiles' denominators of every lane, in a loop of their own (the
      ! compiler would otherwise evaluate them under the selection's condition,
      ! which does not vectorise); then the stable ones, the selection and the
      ! two divisions (vectorised across lanes; the unstable values of a stable
      ! lane are computed from whatever lg holds and not used).
      do c = 1, nb
        if (obukhov_l(c) < 0.0_dp) then
          atan_x1(c) = atan(x1(c))
          atan_x2(c) = atan(x2(c))
        else
          atan_x1(c) = 0.0_dp
          atan_x2(c) = 0.0_dp
        end if
      end do
      do c = 1, nb
        psi_m = 2.0_dp*lg(c) + lg(nb + c) - 2.0_dp*atan_x2(c) + 2.0_dp*atan_x1(c)
        psi_h = 2.0_dp*lg(2*nb + c)
        f_m_u(c) = max(log_m(c) - psi_m, 0.50_dp*log_m(c))
        f_h_u(c) = max(log_h(c) - psi_h, 0.33_dp*log_m(c))*prantl02
      end do
      do c = 1, nb
        psi_m = max(-beta_m, -beta_m*(zm(c) - z0m(c))/obukhov_l(c))
        psi_h = max(-beta_h, -beta_h*(zh(c) - z0h(c))/obukhov_l(c))
        f_m = min(log_m(c) - psi_m, 2.0_dp*log_m(c))
        f_h = min(log_h(c) - psi_h, 2.0_dp*log_m(c))   ! cap uses zm/z0m as in the legacy (spec trap 16)
        f_m = merge(f_m_u(c), f_m, obukhov_l(c) < 0.0_dp)
        f_h = merge(f_h_u(c), f_h*prantl01, obukhov_l(c) < 0.0_dp)
        c_u(c)  = kv/f_m
        c_pt(c) = kv/f_h                                 ! kv/(f_h Pr)
        ustar(c) = c_u(c)*u(c)
        tstar(c) = c_pt(c)*(theta_a(c) - theta_s(c))
      end do
    end do

    do c = 1, nb
      if (running(c)) ch(c) = max(ustar(c)*c_pt(c), excm/zm(c))
    end do
  end subroutine sfcdif_yang08_block

end module nt_sfc_exchange_yang08
