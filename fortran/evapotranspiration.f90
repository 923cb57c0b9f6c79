!> Actual evapotranspiration components (legacy EVAPO, DEVAP, TRANSP).
!>
!> Splits the potential evaporation into direct soil evaporation (bare
!> fraction, Betts et al. 1997 / Ek et al. 2003 power law of the top-layer
!> relative moisture), transpiration (root-weighted soil-moisture
!> availability, Jarvis-Stewart plant coefficient PC) and evaporation of
!> intercepted canopy water (Noilhan & Planton 1989 / Pan & Mahrt 1987).
!> All fluxes are in m s-1 of liquid water.
!> Specification: spec/physics.md section 4 (parameter routing: 3.1).
module nt_evapotranspiration
  use nt_kinds, only: dp
  implicit none
  private

  public :: evapo, devap, transp

contains

  !> Evapotranspiration components for one step (spec 4).  Nothing is
  !> computed (all outputs 0) unless etp1 > 0.
  !>   nsoil      : number of soil layers (in)
  !>   nroot      : number of root layers, 1 <= nroot <= nsoil (in)
  !>   dt         : time step [s] (in)
  !>   etp1       : potential evaporation ETP*0.001 [m s-1] (in)
  !>   smc1       : total volumetric moisture of layer 1 [m3 m-3] (in)
  !>   sh2o       : liquid volumetric moisture [m3 m-3] (in, nsoil)
  !>   smcmax_dir : porosity used by direct evaporation (P_S) [m3 m-3] (in)
  !>   smcdry_dir : air-dry moisture used by direct evaporation (P_S) [m3 m-3] (in)
  !>   fxexp      : exponent of the direct-evaporation law [-] (in)
  !>   shdfac     : green vegetation fraction [-] (in)
  !>   cmc        : canopy water content [m] (in)
  !>   cmcmax     : maximum canopy water content [m] (in)
  !>   cfactr     : canopy water exponent [-] (in)
  !>   pc         : plant coefficient from CANRES [-] (in; unused if shdfac = 0)
  !>   rtdis      : root fraction per layer [-] (in, nsoil)
  !>   smcwlt     : wilting point per layer (P_S in every layer for the legacy) [m3 m-3] (in, nsoil)
  !>   smcref     : reference moisture per layer (idem) [m3 m-3] (in, nsoil)
  !>   eta1       : total evapotranspiration EDIR1 + ETT1 + EC1 [m s-1] (out)
  !>   edir1      : direct soil evaporation [m s-1] (out)
  !>   ec1        : canopy water evaporation [m s-1] (out)
  !>   et1        : transpiration per layer, 0 below nroot [m s-1] (out, nsoil)
  !>   ett1       : total transpiration [m s-1] (out)
  pure subroutine evapo(nsoil, nroot, dt, etp1, smc1, sh2o, smcmax_dir, smcdry_dir, fxexp, shdfac, &
                        cmc, cmcmax, cfactr, pc, rtdis, smcwlt, smcref, eta1, edir1, ec1, et1, ett1)
    integer,  intent(in)  :: nsoil, nroot
    real(dp), intent(in)  :: dt, etp1, smc1
    real(dp), intent(in)  :: sh2o(:)
    real(dp), intent(in)  :: smcmax_dir, smcdry_dir, fxexp, shdfac, cmc, cmcmax, cfactr, pc
    real(dp), intent(in)  :: rtdis(nsoil), smcwlt(nsoil), smcref(nsoil)
    real(dp), intent(out) :: eta1, edir1, ec1, ett1
    real(dp), intent(out) :: et1(nsoil)

    real(dp) :: wet_fraction   ! (CMC/CMCMAX)**CFACTR
    integer :: k

    edir1 = 0.0_dp
    ec1   = 0.0_dp
    ett1  = 0.0_dp
    et1   = 0.0_dp

    if (etp1 > 0.0_dp) then
      if (shdfac < 1.0_dp) then
        call devap(etp1, smc1, shdfac, smcmax_dir, smcdry_dir, fxexp, edir1)
      end if
      if (shdfac > 0.0_dp) then
        ! the wet canopy fraction (CMC/CMCMAX)**CFACTR, used by TRANSP and for EC1
        ! (computed once; 0 for a dry canopy, where neither uses it)
        if (abs(cmc) > 0.0_dp) then
          wet_fraction = (cmc/cmcmax)**cfactr
        else
          wet_fraction = 0.0_dp
        end if
        call transp(nsoil, nroot, etp1, sh2o, wet_fraction, shdfac, pc, rtdis, smcwlt, smcref, et1)
        do k = 1, nroot                ! (et1 = +0 below the roots)
          ett1 = ett1 + et1(k)
        end do
        if (cmc > 0.0_dp) then
          ec1 = shdfac*wet_fraction*etp1
        else
          ec1 = 0.0_dp
        end if
        ec1 = min(ec1, cmc/dt)
      end if
    end if

    eta1 = edir1 + ett1 + ec1
  end subroutine evapo

  !> Direct evaporation from the bare-soil fraction (legacy DEVAP, spec 4).
  !> Uses the TOTAL moisture of layer 1.
  !>   etp1   : potential evaporation [m s-1] (in)
  !>   smc1   : total volumetric moisture of layer 1 [m3 m-3] (in)
  !>   shdfac : green vegetation fraction [-] (in)
  !>   smcmax : porosity [m3 m-3] (in)
  !>   smcdry : air-dry moisture [m3 m-3] (in)
  !>   fxexp  : exponent [-] (in)
  !>   edir1  : direct evaporation FX (1 - SHDFAC) ETP1 [m s-1] (out)
  pure subroutine devap(etp1, smc1, shdfac, smcmax, smcdry, fxexp, edir1)
    real(dp), intent(in)  :: etp1, smc1, shdfac, smcmax, smcdry, fxexp
    real(dp), intent(out) :: edir1

    real(dp) :: sratio   ! relative moisture above air-dry
    real(dp) :: fx       ! evaporation reduction factor

    sratio = (smc1 - smcdry)/(smcmax - smcdry)
    if (sratio > 0.0_dp) then
      fx = min(max(sratio**fxexp, 0.0_dp), 1.0_dp)
    else
      fx = 0.0_dp
    end if
    edir1 = fx*(1.0_dp - shdfac)*etp1
  end subroutine devap

  !> Transpiration per root layer (legacy TRANSP, spec 4).  Uses the LIQUID
  !> moisture.  Layers below nroot get 0.
  !>   nsoil  : number of soil layers (in)
  !>   nroot  : number of root layers (in)
  !>   etp1   : potential evaporation [m s-1] (in)
  !>   sh2o   : liquid volumetric moisture [m3 m-3] (in, nsoil)
  !>   wet_fraction : (CMC/CMCMAX)**CFACTR of the canopy water CMC, capacity
  !>            CMCMAX and exponent CFACTR; 0 if CMC = 0 (in)
  !>   shdfac : green vegetation fraction [-] (in)
  !>   pc     : plant coefficient [-] (in)
  !>   rtdis  : root fraction per layer [-] (in, nsoil)
  !>   smcwlt : wilting point per layer [m3 m-3] (in, nsoil)
  !>   smcref : reference moisture per layer [m3 m-3] (in, nsoil)
  !>   et1    : transpiration per layer [m s-1] (out, nsoil)
  pure subroutine transp(nsoil, nroot, etp1, sh2o, wet_fraction, shdfac, pc, rtdis, &
                         smcwlt, smcref, et1)
    integer,  intent(in)  :: nsoil, nroot
    real(dp), intent(in)  :: etp1
    real(dp), intent(in)  :: sh2o(:)
    real(dp), intent(in)  :: wet_fraction, shdfac, pc
    real(dp), intent(in)  :: rtdis(nsoil), smcwlt(nsoil), smcref(nsoil)
    real(dp), intent(out) :: et1(nsoil)

    real(dp) :: etp1a          ! transpiration demand of the canopy [m s-1]
    real(dp) :: gx(nsoil)      ! moisture availability per layer
    real(dp) :: gx_mean        ! mean availability over the root zone
    real(dp) :: denom
    integer  :: i

    ! (for a dry canopy, wet_fraction = 0 and the factor is exactly 1)
    etp1a = shdfac*pc*etp1*(1.0_dp - wet_fraction)

    gx_mean = 0.0_dp
    do i = 1, nroot
      gx(i) = min(max((sh2o(i) - smcwlt(i))/(smcref(i) - smcwlt(i)), 0.0_dp), 1.0_dp)
      gx_mean = gx_mean + gx(i)
    end do
    gx_mean = gx_mean/real(nroot, dp)

    denom = 0.0_dp
    do i = 1, nroot
      gx(i) = gx(i)*max(rtdis(i) + gx(i) - gx_mean, 0.0_dp)
      denom = denom + gx(i)
    end do
    if (denom <= 0.0_dp) denom = 1.0_dp

    et1 = 0.0_dp
    do i = 1, nroot
      et1(i) = etp1a*gx(i)/denom
    end do
  end subroutine transp

end module nt_evapotranspiration
