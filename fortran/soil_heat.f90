!> Soil heat transfer with freeze-thaw for one soil column.
!>
!> Finite-volume heat equation on the soil layers (temperatures at layer
!> mid-points), backward Euler for diffusion with start-of-step conductivities
!> and heat capacities, explicit lower-boundary flux to TBOT at ZBOT, and an
!> explicit phase-change source limited by the Koren et al. (1999) equilibrium
!> liquid water (legacy SHFLX -> HRT + HSTEP, TBND, TMPAVG, SNKSRC).
!> Specification: spec/physics.md sections 7.0-7.5; traps 4, 5, 14 of section 13.
module nt_soil_heat
  use nt_kinds, only: dp
  use nt_constants, only: tfreez, lsubf, rhowater
  use nt_tridiagonal, only: tridiag_solve
  use nt_thermal_conductivity, only: tc_static_terms, tc_from_static_terms
  use nt_supercooled_water, only: frh2o
  implicit none
  private

  public :: shflx, shflx_cached, tbnd, tmpavg, snksrc

  ! Volumetric heat capacities local to the legacy HRT [J m-3 K-1], spec 7.1 / section 9
  ! (note ch2o = 4.2e6 here, not 1000*cph2o).
  real(dp), parameter :: ch2o = 4.2e6_dp     !< liquid water
  real(dp), parameter :: cice = 2.106e6_dp   !< ice
  real(dp), parameter :: cair = 1004.0_dp    !< air

contains

  !> Temperature at the bottom interface of layer k by linear interpolation
  !> between the node values tu (layer k) and tb (layer k+1, or TBOT for k = nsoil),
  !> spec 7.4 (legacy TBND):
  !>   z_up = 0 (k = 1) else zsoil(k-1);  z_b = zsoil(k+1) (k < nsoil) else 2 zbot - zsoil(nsoil)
  !>   t    = tu + (tb - tu)(z_up - zsoil(k))/(z_up - z_b)
  !>   tu    : temperature of layer k [K] (in)
  !>   tb    : temperature of layer k+1, or TBOT if k = nsoil [K] (in)
  !>   nsoil : number of layers (in)
  !>   zsoil : depth of the layer bottoms, negative [m] (in)
  !>   zbot  : depth of TBOT, negative [m] (in)
  !>   k     : layer index, 1..nsoil (in)
  !>   tbk   : interface temperature [K] (result)
  pure function tbnd(tu, tb, nsoil, zsoil, zbot, k) result(tbk)
    integer,  intent(in) :: nsoil, k
    real(dp), intent(in) :: tu, tb, zsoil(nsoil), zbot
    real(dp) :: tbk
    real(dp) :: zup, zb
    if (k == 1) then
      zup = 0.0_dp
    else
      zup = zsoil(k-1)
    end if
    if (k == nsoil) then
      zb = 2.0_dp*zbot - zsoil(k)
    else
      zb = zsoil(k+1)
    end if
    tbk = tu + (tb - tu)*(zup - zsoil(k))/(zup - zb)
  end function tbnd

  !> Layer-average temperature of the piecewise-linear profile through the
  !> top-interface, mid-point and bottom-interface temperatures, with the
  !> parts above/below freezing resolved (spec 7.4, legacy TMPAVG; 8 branches).
  !>   tup  : temperature at the top interface [K] (in)
  !>   tm   : temperature at the mid-point [K] (in)
  !>   tdn  : temperature at the bottom interface [K] (in)
  !>   dz   : layer thickness [m], > 0 (in)
  !>   tavg : layer-average temperature [K] (result)
  elemental function tmpavg(tup, tm, tdn, dz) result(tavg)
    real(dp), intent(in) :: tup, tm, tdn, dz
    real(dp) :: tavg
    real(dp) :: dzh    ! h = dz/2
    real(dp) :: x0, xup, xdn

    dzh = dz*0.5_dp
    if (tup < tfreez) then
      if (tm < tfreez) then
        if (tdn < tfreez) then
          tavg = (tup + 2.0_dp*tm + tdn)/4.0_dp
        else
          x0 = (tfreez - tm)*dzh/(tdn - tm)
          tavg = 0.5_dp*(tup*dzh + tm*(dzh + x0) + tfreez*(2.0_dp*dzh - x0))/dz
        end if
      else
        if (tdn < tfreez) then
          xup = (tfreez - tup)*dzh/(tm - tup)
          xdn = dzh - (tfreez - tm)*dzh/(tdn - tm)
          tavg = 0.5_dp*(tup*xup + tfreez*(2.0_dp*dz - xup - xdn) + tdn*xdn)/dz
        else
          xup = (tfreez - tup)*dzh/(tm - tup)
          tavg = 0.5_dp*(tup*xup + tfreez*(2.0_dp*dz - xup))/dz
        end if
      end if
    else
      if (tm < tfreez) then
        if (tdn < tfreez) then
          xup = dzh - (tfreez - tup)*dzh/(tm - tup)
          tavg = 0.5_dp*(tfreez*(dz - xup) + tm*(dzh + xup) + tdn*dzh)/dz
        else
          xup = dzh - (tfreez - tup)*dzh/(tm - tup)
          xdn = (tfreez - tm)*dzh/(tdn - tm)
          tavg = 0.5_dp*(tfreez*(2.0_dp*dz - xup - xdn) + tm*(xup + xdn))/dz
        end if
      else
        if (tdn < tfreez) then
          xdn = dzh - (tfreez - tm)*dzh/(tdn - tm)
          tavg = (tfreez*(dz - xdn) + 0.5_dp*(tfreez + tdn)*xdn)/dz
        else
          tavg = (tup + 2.0_dp*tm + tdn)/4.0_dp
        end if
      end if
    end if
  end function tmpavg

  !> Phase-change source of one layer (spec 7.5, legacy SNKSRC, Koren et al.
  !> 1999 eq. 18): the liquid content moves towards the value reached if all
  !> net heat gain went into phase change, limited by the equilibrium liquid
  !> water FRH2O(tavg) and by [0, smc]; returns the latent heat exchanged.
  !>   dt     : time step [s] (in)
  !>   dz     : layer thickness [m] (in)
  !>   tavg   : layer-average temperature [K] (in)
  !>   smc    : total volumetric moisture [m3 m-3] (in)
  !>   smcmax : porosity used by FRH2O [m3 m-3] (in)
  !>   psisat : saturated matric suction used by FRH2O [m] (in)
  !>   bexp   : Campbell b used by FRH2O [-] (in)
  !>   qtot   : net heat gain of the layer from the explicit flux divergence [W m-2] (in)
  !>   sh2o   : liquid volumetric moisture [m3 m-3] (inout: start-of-step in, after phase change out)
  !>   tsnsr  : heat sink of freezing/thawing, -rho_w Lf dz d(sh2o)/dt [W m-2]; < 0 when melting (out)
  pure subroutine snksrc(dt, dz, tavg, smc, smcmax, psisat, bexp, qtot, sh2o, tsnsr)
    real(dp), intent(in)    :: dt, dz, tavg, smc, smcmax, psisat, bexp, qtot
    real(dp), intent(inout) :: sh2o
    real(dp), intent(out)   :: tsnsr
    real(dp) :: free   ! FREE, equilibrium liquid water
    real(dp) :: xh2o   ! X, new liquid water

    free = frh2o(tavg, smc, sh2o, smcmax, bexp, psisat)
    xh2o = sh2o + qtot*dt/(rhowater*lsubf*dz)
    ! freezing limited by the equilibrium content
    if (xh2o < sh2o .and. xh2o < free) then
      if (free > sh2o) then
        xh2o = sh2o
      else
        xh2o = free
      end if
    end if
    ! thawing limited by the equilibrium content
    if (xh2o > sh2o .and. xh2o > free) then
      if (free < sh2o) then
        xh2o = sh2o
      else
        xh2o = free
      end if
    end if
    if (xh2o < 0.0_dp) xh2o = 0.0_dp
    if (xh2o > smc) xh2o = smc
    tsnsr = -rhowater*lsubf*dz*(xh2o - sh2o)/dt
    sh2o = xh2o
  end subroutine snksrc

  !> Volumetric heat capacity of a layer (spec 7.1) [J m-3 K-1].
  !>   sh2o, smc, smcmax [m3 m-3], csoil [J m-3 K-1] (in)
  elemental function heat_capacity(sh2o, smc, smcmax, csoil) result(hcpct)
    real(dp), intent(in) :: sh2o, smc, smcmax, csoil
    real(dp) :: hcpct
    hcpct = sh2o*ch2o + (1.0_dp - smcmax)*csoil + (smcmax - smc)*cair + (smc - sh2o)*cice
  end function heat_capacity

  !> One soil heat step (spec 7.0-7.2, legacy SHFLX = HRT + HSTEP):
  !> assembles the tridiagonal backward-Euler system with start-of-step
  !> conductivities (interface k-1/k uses layer k-1's conductivity; layer 1/2
  !> uses df1) and heat capacities, applies the explicit phase-change source of
  !> each layer that meets the freezing test, solves, and updates stc.
  !> Requires nsoil >= 2.
  !>   nsoil             : number of soil layers (in)
  !>   dt                : time step [s] (in)
  !>   yy                : YY, effective surface temperature of the linearised top boundary [K] (in)
  !>   zz1               : ZZ1, top-boundary factor [-] (1 under snow) (in)
  !>   df1               : conductivity of layer 1 / surface conductance factor [W m-1 K-1] (in)
  !>   zsoil             : depth of the layer bottoms, negative [m] (in)
  !>   zbot              : depth of TBOT, negative (e.g. -40) [m] (in)
  !>   tbot              : lower-boundary temperature [K] (in)
  !>   smc               : total volumetric moisture [m3 m-3] (in, unchanged)
  !>   smcmax            : porosity per layer [m3 m-3] (in)
  !>   bexp_frz          : Campbell b used in the freezing of each layer [-] (in)
  !>   psisat_frz        : saturated suction used in the freezing of each layer [m] (in)
  !>   quartz            : quartz fraction per layer [-] (in; layers >= 2)
  !>   tc_option         : tc_option_stock or tc_option_c05 (in)
  !>   tc_class          : conductivity class per layer (nt_thermal_conductivity) (in; layers >= 2)
  !>   tc_kappa_unfrozen : gravel kappa, unfrozen, per layer [-] (in; layers >= 2)
  !>   tc_kappa_frozen   : gravel kappa, frozen, per layer [-] (in; layers >= 2)
  !>   tc_dry_coef       : gravel/bedrock dry-conductivity coefficient per layer (in; layers >= 2)
  !>   csoil             : heat capacity of the soil solids per layer [J m-3 K-1] (in)
  !>   stc               : soil temperature [K] (inout)
  !>   sh2o              : liquid volumetric moisture [m3 m-3] (inout; phase change)
  !>   g_top             : heat flux into layer 1 used by the implicit solve,
  !>                       df1 (yy - stc_new(1))/(zz1 dz1/2), positive downward [W m-2] (out)
  !>   f_bottom          : explicit flux out of the column bottom,
  !>                       lambda_N (stc_old(N) - tbot)/(z_N - zbot), positive downward [W m-2] (out)
  pure subroutine shflx(nsoil, dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz, &
                        psisat_frz, quartz, tc_option, tc_class, tc_kappa_unfrozen,        &
                        tc_kappa_frozen, tc_dry_coef, csoil, stc, sh2o, g_top, f_bottom)
    integer,  intent(in)    :: nsoil
    real(dp), intent(in)    :: dt, yy, zz1, df1
    real(dp), intent(in)    :: zsoil(nsoil), zbot, tbot
    real(dp), intent(in)    :: smc(nsoil), smcmax(nsoil), bexp_frz(nsoil), psisat_frz(nsoil)
    real(dp), intent(in)    :: quartz(nsoil)
    integer,  intent(in)    :: tc_option, tc_class(nsoil)
    real(dp), intent(in)    :: tc_kappa_unfrozen(nsoil), tc_kappa_frozen(nsoil), tc_dry_coef(nsoil)
    real(dp), intent(in)    :: csoil(nsoil)
    real(dp), intent(inout) :: stc(nsoil), sh2o(nsoil)
    real(dp), intent(out)   :: g_top, f_bottom

    real(dp) :: tc_solid_term(nsoil), tc_dry(nsoil)

    ! layer 1 uses df1: its static terms are not needed
    tc_solid_term(1) = 0.0_dp
    tc_dry(1) = 0.0_dp
    call tc_static_terms(tc_option, quartz(2:nsoil), smcmax(2:nsoil), tc_class(2:nsoil), &
                         tc_dry_coef(2:nsoil), tc_solid_term(2:nsoil), tc_dry(2:nsoil))
    call shflx_cached(nsoil, dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz,  &
                      psisat_frz, tc_option, tc_class, tc_kappa_unfrozen, tc_kappa_frozen, &
                      tc_solid_term, tc_dry, csoil, stc, sh2o, g_top, f_bottom)
  end subroutine shflx

  !> Same as shflx (bitwise identical results), but with the parameter-only
  !> conductivity factors precomputed by the caller with
  !> nt_thermal_conductivity::tc_static_terms (saves 3 of the 5 powers per layer
  !> and step).  Arguments as shflx, except that (quartz, tc_dry_coef) are replaced by
  !>   tc_solid_term : lambda_s**(1-smcmax) per layer (tc_static_terms solid_term) (in; layers >= 2)
  !>   tc_dry        : dry conductivity per layer [W m-1 K-1] (tc_static_terms thkdry) (in; layers >= 2)
  !> and they come after tc_kappa_frozen:
  !>   shflx_cached(nsoil, dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz, psisat_frz,
  !>                tc_option, tc_class, tc_kappa_unfrozen, tc_kappa_frozen, tc_solid_term, tc_dry,
  !>                csoil, stc, sh2o, g_top, f_bottom)
  pure subroutine shflx_cached(nsoil, dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz, &
                               psisat_frz, tc_option, tc_class, tc_kappa_unfrozen,                &
                               tc_kappa_frozen, tc_solid_term, tc_dry, csoil, stc, sh2o, g_top,   &
                               f_bottom)
    integer,  intent(in)    :: nsoil
    real(dp), intent(in)    :: dt, yy, zz1, df1
    real(dp), intent(in)    :: zsoil(nsoil), zbot, tbot
    real(dp), intent(in)    :: smc(nsoil), smcmax(nsoil), bexp_frz(nsoil), psisat_frz(nsoil)
    integer,  intent(in)    :: tc_option, tc_class(nsoil)
    real(dp), intent(in)    :: tc_kappa_unfrozen(nsoil), tc_kappa_frozen(nsoil)
    real(dp), intent(in)    :: tc_solid_term(nsoil), tc_dry(nsoil)
    real(dp), intent(in)    :: csoil(nsoil)
    real(dp), intent(inout) :: stc(nsoil), sh2o(nsoil)
    real(dp), intent(out)   :: g_top, f_bottom

    real(dp) :: ai(nsoil), bi(nsoil), ci(nsoil), rhsts(nsoil)   ! AI, BI, CI, RHSTS (per second)
    real(dp) :: a(nsoil), b(nsoil), c(nsoil), r(nsoil)          ! system times dt
    real(dp) :: dstc(nsoil)                                     ! temperature increment [K]
    real(dp) :: hcpct      ! C_k, heat capacity [J m-3 K-1]
    real(dp) :: ddz, ddz2  ! 1/d_{k-1/2}, 1/d_{k+1/2} [m-1]
    real(dp) :: dtsdz, dtsdz2  ! temperature gradients at the top/bottom of layer k [K m-1]
    real(dp) :: den        ! node distance below layer k [m]
    real(dp) :: denom      ! DENOM_k = (zsoil(k) - zsoil(k-1)) C_k
    real(dp) :: ssoil_h    ! surface flux with start-of-step stc(1) [W m-2]
    real(dp) :: qtot       ! net heat gain of the layer [W m-2]
    real(dp) :: tsurf      ! surface temperature of the linearisation [K]
    real(dp) :: tbk, tbk1  ! interface temperatures above/below layer k [K]
    real(dp) :: tavg       ! layer-average temperature [K]
    real(dp) :: tsnsr      ! phase-change heat sink [W m-2]
    real(dp) :: df1k, df1n ! conductivity of layer k-1 and layer k [W m-1 K-1]
    real(dp) :: dz         ! layer thickness [m]
    integer  :: k

    ! ---- layer 1 (spec 7.1) ----
    hcpct = heat_capacity(sh2o(1), smc(1), smcmax(1), csoil(1))
    ddz = 1.0_dp/(-0.5_dp*zsoil(2))
    ai(1) = 0.0_dp
    ci(1) = df1*ddz/(zsoil(1)*hcpct)
    bi(1) = -ci(1) + df1/(0.5_dp*zsoil(1)*zsoil(1)*hcpct*zz1)
    dtsdz = (stc(1) - stc(2))/(-0.5_dp*zsoil(2))
    ssoil_h = df1*(stc(1) - yy)/(0.5_dp*zsoil(1)*zz1)
    denom = zsoil(1)*hcpct
    rhsts(1) = (df1*dtsdz - ssoil_h)/denom
    qtot = -rhsts(1)*denom
    tsurf = (yy + (zz1 - 1.0_dp)*stc(1))/zz1
    tbk = tbnd(stc(1), stc(2), nsoil, zsoil, zbot, 1)
    if ((smc(1) - sh2o(1) > 0.0_dp) .or. (stc(1) < tfreez) .or. (tsurf < tfreez) &
        .or. (tbk < tfreez)) then
      dz = -zsoil(1)
      tavg = tmpavg(tsurf, stc(1), tbk, dz)
      call snksrc(dt, dz, tavg, smc(1), smcmax(1), psisat_frz(1), bexp_frz(1), qtot, &
                  sh2o(1), tsnsr)
      rhsts(1) = rhsts(1) - tsnsr/denom
    end if

    ! ---- layers 2..nsoil ----
    df1k = df1
    f_bottom = 0.0_dp
    do k = 2, nsoil
      ! heat capacity and conductivity from sh2o before this layer's phase change
      hcpct = heat_capacity(sh2o(k), smc(k), smcmax(k), csoil(k))
      df1n = tc_from_static_terms(tc_option, smc(k), smcmax(k), sh2o(k), tc_class(k),         &
                                  tc_kappa_unfrozen(k), tc_kappa_frozen(k), tc_solid_term(k), tc_dry(k))
      if (k < nsoil) then
        den = 0.5_dp*(zsoil(k-1) - zsoil(k+1))
        dtsdz2 = (stc(k) - stc(k+1))/den
        ddz2 = 2.0_dp/(zsoil(k-1) - zsoil(k+1))
        ci(k) = -df1n*ddz2/((zsoil(k-1) - zsoil(k))*hcpct)
        tbk1 = tbnd(stc(k), stc(k+1), nsoil, zsoil, zbot, k)
      else
        den = 0.5_dp*(zsoil(k-1) + zsoil(k)) - zbot
        dtsdz2 = (stc(k) - tbot)/den
        ddz2 = 0.0_dp
        ci(k) = 0.0_dp
        tbk1 = tbnd(stc(k), tbot, nsoil, zsoil, zbot, k)
        f_bottom = df1n*dtsdz2
      end if
      denom = (zsoil(k) - zsoil(k-1))*hcpct
      rhsts(k) = (df1n*dtsdz2 - df1k*dtsdz)/denom
      qtot = -denom*rhsts(k)
      if ((smc(k) - sh2o(k) > 0.0_dp) .or. (stc(k) < tfreez) .or. (tbk < tfreez) &
          .or. (tbk1 < tfreez)) then
        dz = zsoil(k-1) - zsoil(k)
        tavg = tmpavg(tbk, stc(k), tbk1, dz)
        call snksrc(dt, dz, tavg, smc(k), smcmax(k), psisat_frz(k), bexp_frz(k), qtot, &
                    sh2o(k), tsnsr)
        rhsts(k) = rhsts(k) - tsnsr/denom
      end if
      ai(k) = -df1k*ddz/((zsoil(k-1) - zsoil(k))*hcpct)
      bi(k) = -(ai(k) + ci(k))
      tbk = tbk1
      df1k = df1n
      dtsdz = dtsdz2
      ddz = ddz2
    end do

    ! ---- implicit step (spec 7.2, legacy HSTEP) ----
    do k = 1, nsoil
      r(k) = rhsts(k)*dt
      a(k) = ai(k)*dt
      b(k) = 1.0_dp + bi(k)*dt
      c(k) = ci(k)*dt
    end do
    call tridiag_solve(nsoil, a, b, c, r, dstc)
    do k = 1, nsoil
      stc(k) = stc(k) + dstc(k)
    end do

    g_top = df1*(yy - stc(1))/(zz1*0.5_dp*(-zsoil(1)))
  end subroutine shflx_cached

end module nt_soil_heat
