!> Surface exchange coefficients, option 0 (sfcdif_option = 0).
!>
!> Chen et al. (1997) surface-layer scheme: Paulson (1970) profile functions
!> for unstable and linear (5 zeta) functions for stable stratification, with
!> the Zilitinkevich (1995) thermal roughness z0h = z0 exp(-k C_zil sqrt(Re*)).
!> Beljaars (1995) convective velocity correction of u*.
!> Specification: spec/physics.md section 2.1 (and trap 18 of section 13).
module nt_sfc_exchange_chen97
  use nt_kinds, only: dp
  implicit none
  private

  public :: sfcdif_chen97, czil_chen_zhang

  ! Routine-specific constants (spec 2.1).  Note g = 9.8 here (not 9.81).
  real(dp), parameter :: wwst2  = 1.44_dp           !< (Beljaars factor 1.2)**2 as given in spec 2.1
  real(dp), parameter :: grav   = 9.8_dp            !< gravity [m s-2] (SFCDIF_off value)
  real(dp), parameter :: vkrm   = 0.40_dp           !< von Karman constant
  real(dp), parameter :: excm   = 0.001_dp          !< exchange-coefficient floor times height (CXCH = EXCM/ZLM_WIND) [m2 s-1]
  real(dp), parameter :: beta   = 1.0_dp/270.0_dp   !< buoyancy parameter 1/theta_ref [K-1]
  real(dp), parameter :: btg    = beta*grav         !< BTG
  real(dp), parameter :: elfc   = vkrm*btg          !< ELFC
  real(dp), parameter :: wold   = 0.15_dp           !< weight of the old inverse M-O length
  real(dp), parameter :: wnew   = 0.85_dp           !< weight of the new inverse M-O length
  integer,  parameter :: itrmx  = 5                 !< fixed number of iterations (no convergence test)
  real(dp), parameter :: pihf   = 3.14159265_dp/2.0_dp !< pi/2 as coded (spec 2.1)
  real(dp), parameter :: epsu2  = 1.0e-4_dp         !< floor of U**2 [m2 s-2]
  real(dp), parameter :: epsust = 0.07_dp           !< floor of u* [m s-1]
  real(dp), parameter :: ztmin  = -5.0_dp           !< lower bound of zeta
  real(dp), parameter :: ztmax  = 1.0_dp            !< upper bound of zeta (stable)
  real(dp), parameter :: hpbl   = 1000.0_dp         !< boundary-layer height for w* [m]
  real(dp), parameter :: sqvisc = 258.2_dp          !< sqrt(1/nu) with nu = 1.5e-5 m2 s-1 [s^0.5 m-1]

contains

  !> Chen & Zhang (2009) vegetation-dependent Zilitinkevich coefficient,
  !> CZIL = 10**(-0.40 Z0/0.07) (spec 2.1; used by the caller when iz0tlnd = 1
  !> and the point is not urban, for options 0 and 1).
  !>   z0   : momentum roughness length [m] (in)
  !>   czil : Zilitinkevich coefficient [-] (result)
  pure function czil_chen_zhang(z0) result(czil)
    real(dp), intent(in) :: z0
    real(dp) :: czil
    czil = 10.0_dp**(-0.40_dp*z0/0.07_dp)
  end function czil_chen_zhang

  !> Surface exchange coefficients for momentum (CM) and heat (CH) of the
  !> Chen et al. (1997) scheme (legacy SFCDIF_off), spec section 2.1.
  !> Exactly 5 iterations; inside an iteration SIMH uses the thermal
  !> roughness ZT and RLOGT of the previous iteration (they are updated after
  !> the new u*, for use in the next iteration).
  !>   zlm      : height of the air temperature/humidity observation [m] (in)
  !>   zlm_wind : height of the wind observation [m] (in)
  !>   z0       : momentum roughness length (incl. snow effect) [m] (in)
  !>   thz0     : virtual skin (potential) temperature T1V [K] (in)
  !>   thlm     : virtual air potential temperature TH2V [K] (in)
  !>   wind     : wind speed SFCSPD [m s-1] (in)
  !>   czil     : Zilitinkevich coefficient, chosen by the caller [-] (in)
  !>   akms     : CM, exchange coefficient for momentum [m s-1] (inout: previous in, new out)
  !>   akhs     : CH, exchange coefficient for heat/moisture [m s-1] (inout: previous in, new out)
  pure subroutine sfcdif_chen97(zlm, zlm_wind, z0, thz0, thlm, wind, czil, akms, akhs)
    real(dp), intent(in)    :: zlm, zlm_wind, z0, thz0, thlm, wind, czil
    real(dp), intent(inout) :: akms, akhs

    real(dp) :: zilfc            ! ZILFC
    real(dp) :: zu, zt           ! momentum / thermal roughness [m]
    real(dp) :: cxch             ! floor of AKMS/AKHS [m s-1]
    real(dp) :: dthv             ! virtual potential temperature difference [K]
    real(dp) :: du2              ! floored squared wind [m2 s-2]
    real(dp) :: btgh             ! BTG*HPBL
    real(dp) :: wstar2           ! convective velocity scale squared [m2 s-2]
    real(dp) :: ustar            ! friction velocity [m s-1]
    real(dp) :: zslu, zslt       ! heights + roughness [m]
    real(dp) :: rlogu, rlogt     ! ln(zslu/zu), ln(zslt/zt)
    real(dp) :: rlmo, rlmn       ! inverse Monin-Obukhov length (old, new) [m-1]
    real(dp) :: zetalu, zetalt, zetau, zetat
    real(dp) :: simm, simh       ! integrated stability functions (momentum, heat)
    integer  :: itr

    zilfc = -czil*vkrm*sqvisc
    zu    = z0
    cxch  = excm/zlm_wind
    dthv  = thlm - thz0
    du2   = max(wind*wind, epsu2)
    btgh  = btg*hpbl

    wstar2 = beljaars_wstar2(btgh, akhs, dthv)
    ustar  = max(sqrt(akms*sqrt(du2 + wstar2)), epsust)

    zt    = exp(zilfc*sqrt(ustar*z0))*z0
    zslu  = zlm_wind + zu
    zslt  = zlm + zt
    rlogu = log(zslu/zu)
    rlogt = log(zslt/zt)
    rlmo  = elfc*akhs*dthv/ustar**3

    do itr = 1, itrmx
      zetalt = max(zslt*rlmo, ztmin)
      rlmo   = zetalt/zslt
      zetalu = zslu*rlmo
      zetau  = zu*rlmo
      zetat  = zt*rlmo

      if (rlmo < 0.0_dp) then
        ! unstable: Paulson functions of x = (1 - 16 zeta)**(1/4)
        simm = psi_m_paulson(zetalu) - psi_m_paulson(zetau) + rlogu
        simh = psi_h_paulson(zetalt) - psi_h_paulson(zetat) + rlogt
      else
        ! stable: psi = 5 zeta, capped at ZTMAX at the observation levels
        zetalu = min(zetalu, ztmax)
        zetalt = min(zetalt, ztmax)
        simm = 5.0_dp*zetalu - 5.0_dp*zetau + rlogu
        simh = 5.0_dp*zetalt - 5.0_dp*zetat + rlogt
      end if

      ! u* from AKMS and WSTAR2 of the previous iteration
      ustar = max(sqrt(akms*sqrt(du2 + wstar2)), epsust)
      ! thermal roughness for the NEXT iteration
      zt    = exp(zilfc*sqrt(ustar*z0))*z0
      zslt  = zlm + zt
      rlogt = log(zslt/zt)

      akms = max(vkrm*ustar/simm, cxch)
      akhs = max(vkrm*ustar/simh, cxch)

      wstar2 = beljaars_wstar2(btgh, akhs, dthv)
      rlmn   = elfc*akhs*dthv/ustar**3
      rlmo   = wold*rlmo + wnew*rlmn
    end do
  end subroutine sfcdif_chen97

  !> Beljaars convective velocity squared WWST2*|BTGH*AKHS*DTHV|**(2/3),
  !> zero if the product is exactly zero.
  pure function beljaars_wstar2(btgh, akhs, dthv) result(wstar2)
    real(dp), intent(in) :: btgh, akhs, dthv
    real(dp) :: wstar2
    real(dp) :: prod
    prod = btgh*akhs*dthv
    if (abs(prod) > 0.0_dp) then   ! exactly-zero product gives 0
      wstar2 = wwst2*abs(prod)**(2.0_dp/3.0_dp)
    else
      wstar2 = 0.0_dp
    end if
  end function beljaars_wstar2

  !> Paulson momentum function psi_m(zeta), zeta < 0.
  pure function psi_m_paulson(zeta) result(psi)
    real(dp), intent(in) :: zeta
    real(dp) :: psi, x
    x = (1.0_dp - 16.0_dp*zeta)**0.25_dp
    psi = -2.0_dp*log((x + 1.0_dp)/2.0_dp) - log((x*x + 1.0_dp)/2.0_dp) + 2.0_dp*atan(x) - pihf
  end function psi_m_paulson

  !> Paulson heat function psi_h(zeta), zeta < 0.
  pure function psi_h_paulson(zeta) result(psi)
    real(dp), intent(in) :: zeta
    real(dp) :: psi, x
    x = (1.0_dp - 16.0_dp*zeta)**0.25_dp
    psi = -2.0_dp*log((x*x + 1.0_dp)/2.0_dp)
  end function psi_h_paulson

end module nt_sfc_exchange_chen97
