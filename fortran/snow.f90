!> Snow-pack process routines: new-snow density, snow thermal conductivity,
!> snow cover fraction, snow albedo and emissivity, roughness over snow and
!> snow compaction (legacy SNOW_NEW, CSNOW, SNFRAC, ALCALC, SNOWZ0, SNOWPACK).
!> Specification: spec/physics.md sections 3.3, 3.4, 3.6 and 6.4.
module nt_snow
  use nt_kinds, only: dp
  use nt_constants, only: tfreez
  implicit none
  private

  public :: snow_new, csnow, snfrac, alcalc, snowz0, snowpack

  ! Constants (spec 3.3, 3.4, 3.6, 6.4 and section 9)
  real(dp), parameter :: csnow_unit  = 0.11631_dp  !< unit-conversion factor of the Dyachkova formula to W m-1 K-1 (as coded)
  real(dp), parameter :: csnow_coef  = 0.328_dp    !< Dyachkova (1960) coefficient
  real(dp), parameter :: emissi_snow = 0.95_dp     !< emissivity of snow [-]
  real(dp), parameter :: snacca      = 0.94_dp     !< snow-albedo decay base (Livneh)
  real(dp), parameter :: snaccb      = 0.58_dp     !< snow-albedo decay exponent (Livneh)
  real(dp), parameter :: fresh_snow_albedo = 0.85_dp !< albedo approached through LVCOEF [-]
  real(dp), parameter :: seconds_per_day = 86400.0_dp
  real(dp), parameter :: z0_snow     = 0.001_dp    !< roughness of a snow surface Z0S [m]
  real(dp), parameter :: compaction_c1 = 0.01_dp   !< SNOWPACK C1 [cm-1 h-1]
  real(dp), parameter :: compaction_c2 = 21.0_dp   !< SNOWPACK C2 [cm3 g-1]
  real(dp), parameter :: sndens_min  = 0.05_dp     !< lower bound of compacted density [-]
  real(dp), parameter :: sndens_max  = 0.40_dp     !< upper bound of compacted density [-]

contains

  !> Density and depth update of the pack for new snowfall (Gottlieb 1980;
  !> legacy SNOW_NEW, spec 3.3).  Computation in cm and g cm-3.
  !>   sfctmp : air temperature [K] (in)
  !>   sn_new : new snow water equivalent PRCP*DT*0.001 [m] (in)
  !>   snowh  : snow depth [m] (inout)
  !>   sndens : snow density as a fraction of water density [-] (inout)
  pure subroutine snow_new(sfctmp, sn_new, snowh, sndens)
    real(dp), intent(in)    :: sfctmp, sn_new
    real(dp), intent(inout) :: snowh, sndens

    real(dp) :: temp_c         ! air temperature [deg C]
    real(dp) :: dens_new       ! density of the new snow [g cm-3]
    real(dp) :: h_old, h_new   ! old / new snow depth [cm]

    temp_c = sfctmp - tfreez
    if (temp_c <= -15.0_dp) then
      dens_new = 0.05_dp
    else
      dens_new = 0.05_dp + 0.0017_dp*(temp_c + 15.0_dp)**1.5_dp
    end if
    h_old = 100.0_dp*snowh
    h_new = 100.0_dp*sn_new/dens_new
    if (h_old + h_new < 1.0e-3_dp) then
      sndens = max(dens_new, sndens)
    else
      sndens = (h_old*sndens + h_new*dens_new)/(h_old + h_new)
    end if
    snowh = 0.01_dp*(h_old + h_new)
  end subroutine snow_new

  !> Snow thermal conductivity (Dyachkova 1960 times a multiplier; legacy
  !> CSNOW, spec 3.3): multiplier*0.11631*(0.328*10**(2.25*sndens)).
  !>   sndens     : snow density as a fraction of water density [-] (in)
  !>   multiplier : conductivity multiplier; 2.0 reproduces the legacy [-] (in)
  !>   sncond     : snow thermal conductivity [W m-1 K-1] (result)
  elemental function csnow(sndens, multiplier) result(sncond)
    real(dp), intent(in) :: sndens, multiplier
    real(dp) :: sncond
    sncond = multiplier*csnow_unit*(csnow_coef*10.0_dp**(2.25_dp*sndens))
  end function csnow

  !> Snow cover fraction (legacy SNFRAC, spec 3.4).  Returns the RAW value;
  !> the cap min(SNCOVR, 0.98) is applied by the caller (SFLX).
  !>   sneqv  : snow water equivalent [m] (in)
  !>   snup   : SWE of full snow cover [m] (in)
  !>   salp   : shape parameter of the depletion curve [-] (in)
  !>   exp_minus_salp : exp(-salp), a column constant (in)
  !>   sncovr : snow cover fraction, not capped [-] (out)
  pure subroutine snfrac(sneqv, snup, salp, exp_minus_salp, sncovr)
    real(dp), intent(in)  :: sneqv, snup, salp, exp_minus_salp
    real(dp), intent(out) :: sncovr
    real(dp) :: ratio
    if (sneqv < snup) then
      ratio  = sneqv/snup
      sncovr = 1.0_dp - (exp(-salp*ratio) - ratio*exp_minus_salp)
    else
      sncovr = 1.0_dp
    end if
  end subroutine snfrac

  !> Surface albedo and emissivity with snow (Livneh et al. 2010 snow-albedo
  !> decay; legacy ALCALC, spec 3.4).  Call only if SNEQV > 0.
  !>   alb      : snow-free albedo [-] (in)
  !>   snoalb   : maximum (deep-snow) albedo [-] (in)
  !>   embrd    : snow-free emissivity [-] (in)
  !>   sncovr   : snow cover fraction (capped at 0.98 by the caller) [-] (in)
  !>   snowng   : .true. if it snows this step (resets the snow age) (in)
  !>   dt       : time step [s] (in)
  !>   lvcoef   : weight of 0.85 in the fresh-snow albedo [-] (in)
  !>   snotime1 : age of the snow surface [s] (inout)
  !>   albedo   : surface albedo [-] (out)
  !>   emissi   : surface emissivity [-] (out)
  pure subroutine alcalc(alb, snoalb, embrd, sncovr, snowng, dt, lvcoef, snotime1, albedo, emissi)
    real(dp), intent(in)    :: alb, snoalb, embrd, sncovr, dt, lvcoef
    logical,  intent(in)    :: snowng
    real(dp), intent(inout) :: snotime1
    real(dp), intent(out)   :: albedo, emissi

    real(dp) :: snoalb1   ! fresh-snow albedo
    real(dp) :: snoalb2   ! aged-snow albedo

    emissi  = embrd + sncovr*(emissi_snow - embrd)
    snoalb1 = snoalb + lvcoef*(fresh_snow_albedo - snoalb)
    if (snowng) then
      snotime1 = 0.0_dp
      snoalb2  = snoalb1
    else
      snotime1 = snotime1 + dt
      snoalb2  = snoalb1*snacca**((snotime1/seconds_per_day)**snaccb)
    end if
    snoalb2 = max(snoalb2, alb)
    albedo  = alb + sncovr*(snoalb2 - alb)
    albedo  = min(albedo, snoalb2)
  end subroutine alcalc

  !> Roughness length for the next exchange-coefficient call, accounting for
  !> burial of the roughness elements by snow (legacy SNOWZ0, spec 3.6).
  !>   sncovr : snow cover fraction [-] (in)
  !>   z0brd  : snow-free roughness length [m] (in)
  !>   snowh  : snow depth (after new snow) [m] (in)
  !>   z0     : effective roughness length [m] (out)
  pure subroutine snowz0(sncovr, z0brd, snowh, z0)
    real(dp), intent(in)  :: sncovr, z0brd, snowh
    real(dp), intent(out) :: z0
    real(dp) :: burial, z0_eff
    if (sncovr > 0.0_dp) then
      burial = 7.0_dp*z0brd - snowh
      if (burial <= 0.0007_dp) then
        z0_eff = z0_snow
      else
        z0_eff = burial/7.0_dp
      end if
      z0 = (1.0_dp - sncovr)*z0brd + sncovr*z0_eff
    else
      z0 = z0brd
    end if
  end subroutine snowz0

  !> Snow compaction (Anderson 1976 via Koren et al. 1999; legacy SNOWPACK,
  !> spec 6.4).  Call only if esd > 0.  Computation in cm, hours, deg C.
  !>   esd    : snow water equivalent after sublimation/melt [m] (in)
  !>   dt     : time step [s] (in)
  !>   snowh  : snow depth [m] (inout)
  !>   sndens : snow density as a fraction of water density [-] (inout)
  !>   tsnow  : snow-surface (skin) temperature T1 [K] (in)
  !>   tsoil  : soil-surface temperature YY [K] (in)
  pure subroutine snowpack(esd, dt, snowh, sndens, tsnow, tsoil)
    real(dp), intent(in)    :: esd, dt, tsnow, tsoil
    real(dp), intent(inout) :: snowh, sndens

    real(dp) :: esd_cm      ! E_c, SWE [cm]
    real(dp) :: esd_cm_x    ! E_x = max(E_c, 0.01) [cm]
    real(dp) :: dt_hours    ! time step [h]
    real(dp) :: tsnow_c, tsoil_c, tavg_c   ! [deg C]
    real(dp) :: bfac, pexp, dw
    integer  :: j

    ! (100*SNOWH, the depth in cm, is not needed: the new depth follows from E_c/SNDENS)
    esd_cm   = 100.0_dp*esd
    dt_hours = dt/3600.0_dp
    tsnow_c  = tsnow - tfreez
    tsoil_c  = tsoil - tfreez
    tavg_c   = 0.5_dp*(tsnow_c + tsoil_c)
    esd_cm_x = max(esd_cm, 0.01_dp)

    bfac = dt_hours*compaction_c1*exp(0.08_dp*tavg_c - compaction_c2*sndens)
    ! truncated series of (exp(x) - 1)/x, x = BFAC*E_x, evaluated Horner-like
    pexp = 0.0_dp
    do j = 4, 1, -1
      pexp = (1.0_dp + pexp)*bfac*esd_cm_x/real(j + 1, dp)
    end do
    pexp = pexp + 1.0_dp

    sndens = min(max(sndens*pexp, sndens_min), sndens_max)
    if (tsnow_c >= 0.0_dp) then
      dw = 0.13_dp*dt_hours/24.0_dp
      sndens = min(sndens*(1.0_dp - dw) + dw, sndens_max)
    end if
    snowh = 0.01_dp*esd_cm/sndens
  end subroutine snowpack

end module nt_snow
