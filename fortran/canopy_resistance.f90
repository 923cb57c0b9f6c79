!> Canopy (stomatal) resistance (legacy CANRES).
!>
!> Jarvis (1976) / Noilhan & Planton (1989) multiplicative stress model:
!> RC = RSMIN/(LAI F_solar F_temperature F_humidity F_soil), and the plant
!> coefficient PC that converts potential evaporation into transpiration.
!> Called only if SHDFAC > 0.
!> Specification: spec/physics.md section 3.8 (parameter routing: 3.1).
module nt_canopy_resistance
  use nt_kinds, only: dp
  implicit none
  private

  public :: canres

  ! Routine-specific constants of CANRES (spec 3.8)
  real(dp), parameter :: cp    = 1004.5_dp    !< specific heat of air [J kg-1 K-1]
  real(dp), parameter :: rd    = 287.04_dp    !< gas constant of dry air [J kg-1 K-1]
  real(dp), parameter :: sigma = 5.67e-8_dp   !< Stefan-Boltzmann constant as coded [W m-2 K-4]
  real(dp), parameter :: slv   = 2.501e6_dp   !< latent heat of vaporisation [J kg-1]

contains

  !> Canopy resistance RC and plant coefficient PC (spec 3.8).
  !>   nroot  : number of root layers (in)
  !>   soldn  : incoming (not net) solar radiation [W m-2] (in)
  !>   ch     : exchange coefficient for heat [m s-1] (in)
  !>   sfctmp : air temperature [K] (in)
  !>   q2     : air specific humidity [kg kg-1] (in)
  !>   sfcprs : surface pressure [Pa] (in)
  !>   q2sat  : saturation specific humidity [kg kg-1] (in)
  !>   dqsdt2 : slope of q_sat(T) [kg kg-1 K-1] (in)
  !>   emissi : surface emissivity [-] (in)
  !>   xlai   : leaf area index [m2 m-2] (in)
  !>   rsmin  : minimum stomatal resistance [s m-1] (in)
  !>   rgl    : radiation stress parameter [W m-2] (in)
  !>   hs     : vapour-pressure-deficit stress parameter [kg kg-1]^-1 (in)
  !>   topt   : optimum transpiration air temperature [K] (in)
  !>   rsmax  : maximum stomatal resistance [s m-1] (in)
  !>   zsoil  : depth of the bottom of each root layer, negative [m] (in, nroot)
  !>   sh2o   : liquid volumetric soil moisture [m3 m-3] (in, nroot)
  !>   smcwlt : wilting point per root layer (P_S value in every layer for the legacy) [m3 m-3] (in, nroot)
  !>   smcref : reference (field-capacity) moisture per root layer [m3 m-3] (in, nroot)
  !>   rc     : canopy resistance [s m-1] (out)
  !>   pc     : plant coefficient [-] (out)
  pure subroutine canres(nroot, soldn, ch, sfctmp, q2, sfcprs, q2sat, dqsdt2, emissi, xlai, rsmin, &
                         rgl, hs, topt, rsmax, zsoil, sh2o, smcwlt, smcref, rc, pc)
    integer,  intent(in)  :: nroot
    real(dp), intent(in)  :: soldn, ch, sfctmp, q2, sfcprs, q2sat, dqsdt2, emissi, xlai
    real(dp), intent(in)  :: rsmin, rgl, hs, topt, rsmax
    real(dp), intent(in)  :: zsoil(nroot), smcwlt(nroot), smcref(nroot)
    real(dp), intent(in)  :: sh2o(:)   ! (nroot; assumed shape: may be a strided section)
    real(dp), intent(out) :: rc, pc

    real(dp) :: ff                ! FF, solar term
    real(dp) :: f_solar           ! RCS
    real(dp) :: f_temperature     ! RCT
    real(dp) :: f_humidity        ! RCQ
    real(dp) :: f_soil            ! RCSOIL
    real(dp) :: gx, weight        ! layer moisture availability and thickness weight
    real(dp) :: rr_c              ! RRc
    real(dp) :: delta_c           ! DELTAc
    integer  :: k

    ff      = 0.55_dp*2.0_dp*soldn/(rgl*xlai)
    f_solar = max((ff + rsmin/rsmax)/(1.0_dp + ff), 1.0e-4_dp)

    f_temperature = max(1.0_dp - 0.0016_dp*(topt - sfctmp)**2, 1.0e-4_dp)

    f_humidity = max(1.0_dp/(1.0_dp + hs*(q2sat - q2)), 0.01_dp)

    ! layer 1: weight ZSOIL(1)/ZSOIL(NROOT); layer k: (ZSOIL(k) - ZSOIL(k-1))/ZSOIL(NROOT)
    gx     = min(max((sh2o(1) - smcwlt(1))/(smcref(1) - smcwlt(1)), 0.0_dp), 1.0_dp)
    weight = zsoil(1)/zsoil(nroot)
    f_soil = 0.0_dp + weight*gx
    do k = 2, nroot
      gx     = min(max((sh2o(k) - smcwlt(k))/(smcref(k) - smcwlt(k)), 0.0_dp), 1.0_dp)
      weight = (zsoil(k) - zsoil(k - 1))/zsoil(nroot)
      f_soil = f_soil + weight*gx
    end do
    f_soil = max(f_soil, 1.0e-4_dp)

    rc = rsmin/(xlai*f_solar*f_temperature*f_humidity*f_soil)

    rr_c    = (4.0_dp*emissi*sigma*rd/cp)*sfctmp**4/(sfcprs*ch) + 1.0_dp
    delta_c = (slv/cp)*dqsdt2
    pc      = (rr_c + delta_c)/(rr_c*(1.0_dp + rc*ch) + delta_c)
  end subroutine canres

end module nt_canopy_resistance
