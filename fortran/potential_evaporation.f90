!> Potential evaporation (legacy PENMAN).
!>
!> Penman-Monteith type potential evaporation of a saturated surface, with the
!> linearised upward long-wave and sensible-heat terms collected in RR, the
!> heat carried by falling precipitation and the latent heat of freezing rain.
!> Latent heat and Lv/cp are blended between liquid and snow surfaces with the
!> snow cover fraction.
!> Specification: spec/physics.md section 3.7 (constants: section 9).
module nt_potential_evaporation
  use nt_kinds, only: dp
  use nt_constants, only: lvh2o, lsubs, lsubf, sigma_sb, cph2o, cpice
  implicit none
  private

  public :: penman

  ! Routine-specific constants of PENMAN (spec 3.7)
  real(dp), parameter :: elcp = 2.4888e3_dp   !< Lv/cp [K]
  real(dp), parameter :: cp   = 1004.6_dp     !< specific heat of air, PENMAN value [J kg-1 K-1]
  real(dp), parameter :: rd   = 287.04_dp     !< gas constant of dry air [J kg-1 K-1]
  real(dp), parameter :: rr_lw = 6.48e-8_dp   !< ~ 4 sigma R_d / c_p, long-wave term of RR as coded

contains

  !> Potential evaporation and the terms of the linearised energy balance
  !> shared with NOPAC/SNOPAC (spec 3.7).
  !>   sfctmp : air temperature [K] (in)
  !>   sfcprs : surface pressure [Pa] (in)
  !>   ch     : exchange coefficient for heat [m s-1] (in)
  !>   t2v    : virtual air temperature SFCTMP(1+0.61 Q2) [K] (in)
  !>   th2    : air potential temperature [K] (in)
  !>   prcp   : precipitation rate [kg m-2 s-1] (in)
  !>   fdown  : absorbed solar + absorbed downward long-wave [W m-2] (in)
  !>   ssoil  : provisional ground heat flux, positive downward [W m-2] (in)
  !>   q2     : air specific humidity [kg kg-1] (in)
  !>   q2sat  : saturation specific humidity at SFCTMP [kg kg-1] (in)
  !>   dqsdt2 : slope of q_sat(T) at SFCTMP [kg kg-1 K-1] (in)
  !>   emissi : surface emissivity [-] (in)
  !>   sncovr : snow cover fraction [-] (in)
  !>   snowng : .true. if precipitation falls as snow (in)
  !>   frzgra : .true. if precipitation is freezing rain (in)
  !>   t24    : SFCTMP**4 [K4] (out)
  !>   etp    : potential evaporation [kg m-2 s-1] (out)
  !>   rch    : rho cp CH [W m-2 K-1] (out)
  !>   epsca  : Penman term (A RR + RAD DELTA)/(DELTA + RR) [K] (out)
  !>   rr     : 1 + long-wave and precipitation terms [-] (out)
  !>   flx2   : freezing-rain latent heat flux, -LSUBF PRCP or 0 [W m-2] (out)
  pure subroutine penman(sfctmp, sfcprs, ch, t2v, th2, prcp, fdown, ssoil, q2, q2sat, dqsdt2, &
                         emissi, sncovr, snowng, frzgra, t24, etp, rch, epsca, rr, flx2)
    real(dp), intent(in)  :: sfctmp, sfcprs, ch, t2v, th2, prcp, fdown, ssoil, q2, q2sat, dqsdt2
    real(dp), intent(in)  :: emissi, sncovr
    logical,  intent(in)  :: snowng, frzgra
    real(dp), intent(out) :: t24, etp, rch, epsca, rr, flx2

    real(dp) :: elcp1   ! snow-weighted L/cp [K]
    real(dp) :: lvs     ! snow-weighted latent heat [J kg-1]
    real(dp) :: delta   ! ELCP1*DQSDT2 [-]
    real(dp) :: rho     ! air density [kg m-3]
    real(dp) :: fnet    ! net available energy [W m-2]
    real(dp) :: rad     ! radiative term [K]
    real(dp) :: a       ! ELCP1*(Q2SAT - Q2) [K]

    elcp1 = (1.0_dp - sncovr)*elcp + sncovr*elcp*lsubs/lvh2o
    lvs   = (1.0_dp - sncovr)*lvh2o + sncovr*lsubs

    delta = elcp1*dqsdt2
    t24   = sfctmp**4
    rr    = emissi*t24*rr_lw/(sfcprs*ch) + 1.0_dp
    rho   = sfcprs/(rd*t2v)
    rch   = rho*cp*ch

    if (.not. snowng) then
      if (prcp > 0.0_dp) rr = rr + cph2o*prcp/rch
    else
      rr = rr + cpice*prcp/rch
    end if

    fnet = fdown - emissi*sigma_sb*t24 - ssoil
    flx2 = 0.0_dp
    if (frzgra) then
      flx2 = -lsubf*prcp
      fnet = fnet - flx2
    end if

    rad   = fnet/rch + th2 - sfctmp
    a     = elcp1*(q2sat - q2)
    epsca = (a*rr + rad*delta)/(delta + rr)
    etp   = epsca*rch/lvs
  end subroutine penman

end module nt_potential_evaporation
