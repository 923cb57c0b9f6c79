!> Surface exchange coefficient for heat, option 2 (sfcdif_option = 2).
!>
!> K. Yang's bare-soil flux scheme (legacy SFCDIF_MYJ_Y08; Yang et al. 2002,
!> 2008): thermal roughness z0h = 70 nu/u* exp(-beta sqrt(u*) |T*|^(1/4))
!> (Yang et al. 2008), analytical approximation of the Monin-Obukhov length
!> from the bulk Richardson number (Yang et al. 2001) and Hogstrom (1996)
!> profile functions.  Despite the legacy name it is not MYJ.
!> Specification: spec/physics.md section 2.3 (and trap 16 of section 13).
module nt_sfc_exchange_yang08
  use nt_kinds, only: dp
  implicit none
  private

  public :: sfcdif_yang08

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

    real(dp) :: u                 ! floored wind speed [m s-1]
    real(dp) :: rho               ! air density [kg m-3]
    real(dp) :: theta_a, theta_s  ! air / surface potential temperature [K]
    real(dp) :: c_u, c_pt         ! bulk transfer coefficients (u* = c_u U, T* = c_pt dtheta)
    real(dp) :: ustar, tstar      ! friction velocity [m s-1], temperature scale [K]
    real(dp) :: nu                ! kinematic viscosity [m2 s-1]
    real(dp) :: z0h               ! thermal roughness [m]
    real(dp) :: log_m             ! ln(zm/z0m)
    real(dp) :: log_h             ! ln(zh/z0h)
    real(dp) :: rib, d            ! bulk Richardson number, Rib/Pr
    real(dp) :: s                 ! 1/L [m-1]
    real(dp) :: obukhov_l         ! Monin-Obukhov length L [m]
    real(dp) :: num, pa, pb, pc, p, coef   ! unstable-case fit
    real(dp) :: qa, qb, qc                 ! stable-case quadratic a, b, c
    real(dp) :: x1, x2, y1, y2, psi_m, psi_h, f_m, f_h
    integer  :: iter

    status = 0
    ribb   = 0.0_dp

    u   = max(wind, 0.01_dp)
    rho = psfc/(rd*tair*(1.0_dp + 0.61_dp*qair))
    theta_a = tair*(psfc/(psfc - rho*grav_p*zh))**rddcp
    theta_s = tsfc

    log_m = log(zm/z0m)
    c_u   = kv/log_m
    c_pt  = kv/log(zh/z0m)
    tstar = c_pt*(theta_a - theta_s)
    ustar = c_u*u

    nu = 1.328e-5_dp*(p0/psfc)*(theta_a/t_ref_nu)**1.754_dp

    do iter = 1, n_iter
      ! --- thermal roughness (Yang et al. 2008) ---
      z0h = 70.0_dp*nu/ustar*exp(-z0h_beta*sqrt(ustar)*sqrt(sqrt(abs(tstar))))
      z0h = min(zh/10.0_dp, max(z0h, 1.0e-10_dp))
      log_h = log(zh/z0h)

      ! --- Monin-Obukhov length from the bulk Richardson number ---
      rib = (grav/theta_a)*(theta_a - theta_s)*(zm - z0m)/u**2
      if (rib < 0.0_dp) then
        rib = max(rib, -10.0_dp)
        d   = rib/prantl02
        num = d*(log_m**2/log_h)/(zm - z0m)
        pa  = log(-d)
        pb  = log(log_m)
        pc  = log(log_h)
        p   = 0.03728_dp - 0.093143_dp*pa - 0.24069_dp*pb + 0.30616_dp*pc &
              + 0.017131_dp*pa**2 + 0.037666_dp*pa*pb - 0.084598_dp*pb**2 - 0.016498_dp*pa*pc &
              + 0.1828_dp*pb*pc - 0.12587_dp*pc**2
        p   = max(0.0_dp, p)
        coef = d*gamma_m**2/8.0_dp/gamma_h*(zm - z0m)/(zh - z0h)
        if (abs(1.0_dp - coef*p) < 1.0e-6_dp) then
          status = 1
          ribb   = rib
          ch     = excm/zm
          return
        end if
        s = num/(1.0_dp - coef*p)
      else
        rib = min(rib, 0.2_dp, prantl01*beta_h*(1.0_dp - z0h/zh)/beta_m**2/(1.0_dp - z0m/zm) - 0.05_dp)
        d   = rib/prantl01
        qa  = d*beta_m**2*(zm - z0m) - beta_h*(zh - z0h)
        qb  = 2.0_dp*d*beta_m*log_m - log_h
        qc  = d*log_m**2/(zm - z0m)
        s   = (-qb - sqrt(abs(qb**2 - 4.0_dp*qa*qc)))/(2.0_dp*qa)
      end if
      if (s > 0.0_dp .and. s < 1.0e-6_dp) s = 1.0e-6_dp
      if (s > -1.0e-6_dp .and. s < 0.0_dp) s = -1.0e-6_dp
      if (abs(s) > 0.0_dp) then
        obukhov_l = 1.0_dp/s
      else
        ! exact neutrality (theta_a == theta_s gives s = +-0): IEEE 1/s would be
        ! +-Infinity; +-huge gives bit-identical coefficients without raising
        ! a division-by-zero exception (s = -0 from the stable quadratic
        ! selects the unstable profile branch, as +-Infinity would)
        obukhov_l = sign(huge(1.0_dp), s)
      end if
      ribb = rib

      ! --- transfer coefficients (Hogstrom 1996 profiles) ---
      if (obukhov_l < 0.0_dp) then
        x1 = sqrt(sqrt(1.0_dp - gamma_m*z0m/obukhov_l))
        x2 = sqrt(sqrt(1.0_dp - gamma_m*zm/obukhov_l))
        psi_m = 2.0_dp*log((1.0_dp + x2)/(1.0_dp + x1)) + log((1.0_dp + x2**2)/(1.0_dp + x1**2)) &
                - 2.0_dp*atan(x2) + 2.0_dp*atan(x1)
        y1 = sqrt(1.0_dp - gamma_h*z0h/obukhov_l)
        y2 = sqrt(1.0_dp - gamma_h*zh/obukhov_l)
        psi_h = 2.0_dp*log((1.0_dp + y2)/(1.0_dp + y1))
        f_m = max(log_m - psi_m, 0.50_dp*log_m)
        f_h = max(log_h - psi_h, 0.33_dp*log_m)
        c_u  = kv/f_m
        c_pt = kv/(f_h*prantl02)
      else
        psi_m = max(-beta_m, -beta_m*(zm - z0m)/obukhov_l)
        psi_h = max(-beta_h, -beta_h*(zh - z0h)/obukhov_l)
        f_m = min(log_m - psi_m, 2.0_dp*log_m)
        f_h = min(log_h - psi_h, 2.0_dp*log_m)   ! cap uses zm/z0m as in the legacy (spec trap 16)
        c_u  = kv/f_m
        c_pt = kv/(f_h*prantl01)
      end if
      ustar = c_u*u
      tstar = c_pt*(theta_a - theta_s)
    end do

    ch = max(ustar*c_pt, excm/zm)
  end subroutine sfcdif_yang08

end module nt_sfc_exchange_yang08
