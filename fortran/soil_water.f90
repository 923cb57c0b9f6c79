!> Soil water and canopy water for one soil column.
!>
!> Liquid-water diffusion-gravity equation on the soil layers, implicit in the
!> liquid content with explicit diffusivity/conductivity (Kalnay & Kanamitsu
!> 1988 scheme "D"), or a predictor-corrector pass with coefficients at the
!> averaged state (scheme "F"); Schaake et al. (1996) infiltration; free
!> drainage at the bottom; canopy interception bucket.  Ice is immobile and
!> held fixed.  Legacy SMFLX -> SRT + SSTEP, WDFCND, WDFCND_NY06, FAC2MIT.
!> Specification: spec/physics.md sections 8.0-8.5; traps 5, 9, 10, 15 of section 13.
module nt_soil_water
  use nt_kinds, only: dp
  use nt_tridiagonal, only: tridiag_solve
  implicit none
  private

  public :: fac2mit, wdfcnd_stock, wdfcnd_ice_impedance, smflx

  !> Hydraulics / infiltration option (legacy OPT_INF).
  integer, parameter, public :: hyd_option_stock = 1          !< WDFCND + Koren FCR infiltration reduction
  integer, parameter, public :: hyd_option_ice_impedance = 2  !< WDFCND_NY06 (Noah-Tibet default), FCR = 1

  ! Routine-specific constants (spec 8.1-8.5, section 9).
  real(dp), parameter :: smc_floor  = 0.02_dp    !< SSTEP lower bound of total moisture [m3 m-3]
  real(dp), parameter :: cmc_small  = 1.0e-20_dp !< canopy water below this is zeroed [m]
  real(dp), parameter :: cvfrz      = 3.0_dp     !< CVFRZ, frozen-ground shape parameter (option 1)
  real(dp), parameter :: dice_min   = 1.0e-2_dp  !< ice depth above which FCR applies [m] (option 1)
  real(dp), parameter :: sec_per_day = 86400.0_dp !< DT1 = DT/86400 in the infiltration formula
  real(dp), parameter :: factr_min  = 0.01_dp    !< lower bound of the saturation in WDFCND_NY06

contains

  !> Saturation threshold that triggers the two-pass water solve (legacy
  !> FAC2MIT, spec 8.2); exact equality tests on the porosity.
  !>   smcmax : porosity of layer 1 [m3 m-3] (in)
  !>   flimit : threshold on max_k sh2o/smcmax [-] (result)
  pure function fac2mit(smcmax) result(flimit)
    real(dp), intent(in) :: smcmax
    real(dp) :: flimit
    if (smcmax == 0.395_dp) then
      flimit = 0.59_dp
    else if (smcmax == 0.434_dp .or. smcmax == 0.404_dp) then
      flimit = 0.85_dp
    else if (smcmax == 0.465_dp .or. smcmax == 0.406_dp) then
      flimit = 0.86_dp
    else if (smcmax == 0.476_dp .or. smcmax == 0.439_dp) then
      flimit = 0.74_dp
    else if (smcmax == 0.200_dp .or. smcmax == 0.464_dp) then
      flimit = 0.80_dp
    else
      flimit = 0.90_dp
    end if
  end function fac2mit

  !> Stock Noah hydraulic diffusivity and conductivity (legacy WDFCND, spec 8.5,
  !> option 1): Campbell forms on the liquid content, with the diffusivity
  !> blended towards its value at 0.05 m3 m-3 when the column contains ice.
  !>   theta_liq : liquid volumetric moisture (SH2OA) [m3 m-3] (in)
  !>   smcmax    : porosity [m3 m-3] (in)
  !>   bexp      : Campbell b [-] (in)
  !>   dksat     : saturated hydraulic conductivity [m s-1] (in)
  !>   dwsat     : saturated hydraulic diffusivity [m2 s-1] (in)
  !>   sicemax   : maximum ice content of the column [m3 m-3] (in)
  !>   wdf       : hydraulic diffusivity [m2 s-1] (out)
  !>   wcnd      : hydraulic conductivity [m s-1] (out)
  pure subroutine wdfcnd_stock(theta_liq, smcmax, bexp, dksat, dwsat, sicemax, wdf, wcnd)
    real(dp), intent(in)  :: theta_liq, smcmax, bexp, dksat, dwsat, sicemax
    real(dp), intent(out) :: wdf, wcnd
    real(dp) :: factr1, factr2, expon, vkwgt
    factr1 = 0.05_dp/smcmax
    factr2 = theta_liq/smcmax
    factr1 = min(factr1, factr2)
    expon = bexp + 2.0_dp
    wdf = dwsat*factr2**expon
    if (sicemax > 0.0_dp) then
      vkwgt = 1.0_dp/(1.0_dp + (500.0_dp*sicemax)**3.0_dp)
      wdf = vkwgt*wdf + (1.0_dp - vkwgt)*dwsat*factr1**expon
    end if
    expon = (2.0_dp*bexp) + 3.0_dp
    wcnd = dksat*factr2**expon
  end subroutine wdfcnd_stock

  !> Noah-Tibet hydraulic diffusivity and conductivity with ice impedance
  !> (legacy WDFCND_NY06, spec 8.5, option 2, quirk Q5):
  !>   FACTR = max(0.01, theta_tot/smcmax)   (not capped at 1)
  !>   wdf   = dwsat FACTR**(b+2)  10**(-E_D sice)
  !>   wcnd  = dksat FACTR**(2b+3) 10**(-E_K sice)
  !>   theta_tot : total moisture SH2OA + SICE [m3 m-3] (in)
  !>   smcmax    : porosity [m3 m-3] (in)
  !>   bexp      : Campbell b [-] (in)
  !>   dksat     : saturated hydraulic conductivity [m s-1] (in)
  !>   dwsat     : saturated hydraulic diffusivity [m2 s-1] (in)
  !>   sice      : volumetric ice content of the layer [m3 m-3] (in)
  !>   imp_exp_d : impedance exponent E_D of the diffusivity [-] (in; legacy 1.25(SATDW-3)**2+6)
  !>   imp_exp_k : impedance exponent E_K of the conductivity [-] (in; legacy 1.25(SATDK-3)**2+6)
  !>   wdf       : hydraulic diffusivity [m2 s-1] (out)
  !>   wcnd      : hydraulic conductivity [m s-1] (out)
  pure subroutine wdfcnd_ice_impedance(theta_tot, smcmax, bexp, dksat, dwsat, sice, &
                                       imp_exp_d, imp_exp_k, wdf, wcnd)
    real(dp), intent(in)  :: theta_tot, smcmax, bexp, dksat, dwsat, sice, imp_exp_d, imp_exp_k
    real(dp), intent(out) :: wdf, wcnd
    real(dp), parameter :: ln10 = log(10.0_dp)
    real(dp) :: factr, log_factr
    factr = max(factr_min, theta_tot/smcmax)
    ! The powers factr**(b+2), factr**(2b+3) and 10**(-E*sice) evaluated as
    ! exponentials of one logarithm (equal in exact arithmetic; this routine is
    ! called for every layer and pass, and the powers dominated its cost).
    log_factr = log(factr)
    wdf = dwsat*exp((bexp + 2.0_dp)*log_factr)
    wcnd = dksat*exp((2.0_dp*bexp + 3.0_dp)*log_factr)
    ! 10**(-E*0) = 1 exactly: skip the impedance factors when there is no ice
    if (sice /= 0.0_dp) then
      wdf = wdf*exp(-imp_exp_d*sice*ln10)
      wcnd = wcnd*exp(-imp_exp_k*sice*ln10)
    end if
  end subroutine wdfcnd_ice_impedance

  !> Diffusivity/conductivity of layer k for the chosen option (spec 8.5).
  pure subroutine layer_wdfcnd(hyd_option, sh2oa, sice, sicemax, smcmax, bexp, dksat, dwsat, &
                               imp_exp_d, imp_exp_k, wdf, wcnd)
    integer,  intent(in)  :: hyd_option
    real(dp), intent(in)  :: sh2oa, sice, sicemax, smcmax, bexp, dksat, dwsat, imp_exp_d, imp_exp_k
    real(dp), intent(out) :: wdf, wcnd
    if (hyd_option == hyd_option_stock) then
      call wdfcnd_stock(sh2oa, smcmax, bexp, dksat, dwsat, sicemax, wdf, wcnd)
    else
      call wdfcnd_ice_impedance(sh2oa + sice, smcmax, bexp, dksat, dwsat, sice, &
                                imp_exp_d, imp_exp_k, wdf, wcnd)
    end if
  end subroutine layer_wdfcnd

  !> Infiltration and the tridiagonal system of the water step (legacy SRT,
  !> spec 8.3-8.4).  Gradients use sh2o, coefficients use sh2oa.
  !>   smcmax_entry, smcwlt_entry : porosity and wilting point of SMCAV (and of
  !>                                DMAX_1) [m3 m-3] (in)
  !>   ai, bi, ci, rhstt          : system coefficients per second (out)
  !>   runoff1, runoff2           : surface runoff, drainage [m s-1] (out)
  pure subroutine srt(nsoil, dt, zsoil, sh2o, sh2oa, sice, sicemax, dice, pcpdrp, edir, et, &
                      kdt, frzx, slope, hyd_option, smcmax, bexp, dksat, dwsat, smcwlt,     &
                      imp_exp_d, imp_exp_k, smcmax_entry, smcwlt_entry,                      &
                      ai, bi, ci, rhstt, runoff1, runoff2)
    integer,  intent(in)  :: nsoil, hyd_option
    real(dp), intent(in)  :: dt, zsoil(nsoil), sh2o(nsoil), sh2oa(nsoil), sice(nsoil)
    real(dp), intent(in)  :: sicemax, dice, pcpdrp, edir, et(nsoil), kdt, frzx, slope
    real(dp), intent(in)  :: smcmax(nsoil), bexp(nsoil), dksat(nsoil), dwsat(nsoil), smcwlt(nsoil)
    real(dp), intent(in)  :: imp_exp_d(nsoil), imp_exp_k(nsoil), smcmax_entry, smcwlt_entry
    real(dp), intent(out) :: ai(nsoil), bi(nsoil), ci(nsoil), rhstt(nsoil), runoff1, runoff2

    real(dp) :: wdf, wcnd, wdf2, wcnd2   ! diffusivity/conductivity of layers k-1 and k
    real(dp) :: pddum                    ! infiltration [m s-1]
    real(dp) :: dt1, smcav, dmax, dd, val, ddt, px, infmax, acrt, sumf, fcr
    real(dp) :: ddz, ddz2, dsmdz, dsmdz2, denom, denom2, slopx, numer
    integer  :: k

    call layer_wdfcnd(hyd_option, sh2oa(1), sice(1), sicemax, smcmax(1), bexp(1), dksat(1), &
                      dwsat(1), imp_exp_d(1), imp_exp_k(1), wdf, wcnd)

    ! ---- infiltration (spec 8.3) ----
    pddum = pcpdrp
    runoff1 = 0.0_dp
    if (pcpdrp /= 0.0_dp) then
      dt1 = dt/sec_per_day
      smcav = smcmax_entry - smcwlt_entry
      dmax = -zsoil(1)*smcav*(1.0_dp - (sh2oa(1) + sice(1) - smcwlt_entry)/smcav)
      dd = dmax
      do k = 2, nsoil
        dmax = (zsoil(k-1) - zsoil(k))*smcav*(1.0_dp - (sh2oa(k) + sice(k) - smcwlt(k))/smcav)
        dd = dd + dmax
      end do
      val = 1.0_dp - exp(-kdt*dt1)
      ddt = dd*val
      px = pcpdrp*dt
      if (px < 0.0_dp) px = 0.0_dp
      infmax = (px*(ddt/(px + ddt)))/dt
      if (hyd_option == hyd_option_stock) then
        fcr = 1.0_dp
        if (dice > dice_min) then
          acrt = cvfrz*frzx/dice
          sumf = 1.0_dp + acrt**2/2.0_dp + acrt   ! CVFRZ = 3 series
          fcr = 1.0_dp - exp(-acrt)*sumf
        end if
        infmax = infmax*fcr
      end if
      infmax = max(infmax, wcnd)
      infmax = min(infmax, px/dt)
      if (pcpdrp > infmax) then
        runoff1 = pcpdrp - infmax
        pddum = infmax
      end if
    end if

    ! ---- matrix coefficients (spec 8.4) ----
    ddz = 1.0_dp/(-0.5_dp*zsoil(2))
    ai(1) = 0.0_dp
    bi(1) = wdf*ddz/(-zsoil(1))
    ci(1) = -bi(1)
    dsmdz = (sh2o(1) - sh2o(2))/(-0.5_dp*zsoil(2))
    rhstt(1) = (wdf*dsmdz + wcnd - pddum + edir + et(1))/zsoil(1)
    runoff2 = 0.0_dp
    do k = 2, nsoil
      denom2 = zsoil(k-1) - zsoil(k)
      call layer_wdfcnd(hyd_option, sh2oa(k), sice(k), sicemax, smcmax(k), bexp(k), dksat(k), &
                        dwsat(k), imp_exp_d(k), imp_exp_k(k), wdf2, wcnd2)
      if (k < nsoil) then
        slopx = 1.0_dp
        denom = zsoil(k-1) - zsoil(k+1)
        dsmdz2 = (sh2o(k) - sh2o(k+1))/(denom*0.5_dp)
        ddz2 = 2.0_dp/denom
        ci(k) = -wdf2*ddz2/denom2
      else
        slopx = slope
        dsmdz2 = 0.0_dp
        ddz2 = 0.0_dp
        ci(k) = 0.0_dp
      end if
      numer = wdf2*dsmdz2 + slopx*wcnd2 - wdf*dsmdz - wcnd + et(k)
      rhstt(k) = -numer/denom2
      ai(k) = -wdf*ddz/denom2
      bi(k) = -(ai(k) + ci(k))
      if (k == nsoil) runoff2 = slopx*wcnd2
      wdf = wdf2
      wcnd = wcnd2
      dsmdz = dsmdz2
      ddz = ddz2
    end do
  end subroutine srt

  !> Implicit update of the liquid water with porosity cap (excess passed
  !> down), 0.02 floor and fixed ice (legacy SSTEP without the canopy part,
  !> spec 8.4).
  !>   sh2o_in  : liquid water at the start of the step (in)
  !>   sh2o_out : new liquid water (out); smc : new total moisture (out)
  !>   wplus    : excess leaving the bottom layer [m] (out)
  !>   created  : water added by the 0.02 floor [m] (out)
  pure subroutine sstep(nsoil, dt, zsoil, sh2o_in, sice, smcmax, ai, bi, ci, rhstt, &
                        sh2o_out, smc, wplus, created)
    integer,  intent(in)  :: nsoil
    real(dp), intent(in)  :: dt, zsoil(nsoil), sh2o_in(nsoil), sice(nsoil), smcmax(nsoil)
    real(dp), intent(in)  :: ai(nsoil), bi(nsoil), ci(nsoil), rhstt(nsoil)
    real(dp), intent(out) :: sh2o_out(nsoil), smc(nsoil), wplus, created

    real(dp) :: a(nsoil), b(nsoil), c(nsoil), r(nsoil), dsh2o(nsoil)
    real(dp) :: dz, ztop, stot, capped
    integer  :: k

    do k = 1, nsoil
      r(k) = rhstt(k)*dt
      a(k) = ai(k)*dt
      b(k) = 1.0_dp + bi(k)*dt
      c(k) = ci(k)*dt
    end do
    call tridiag_solve(nsoil, a, b, c, r, dsh2o)

    wplus = 0.0_dp
    created = 0.0_dp
    ztop = 0.0_dp
    do k = 1, nsoil
      dz = ztop - zsoil(k)          ! layer thickness (0 - zsoil(1) == -zsoil(1) exactly)
      ztop = zsoil(k)
      sh2o_out(k) = sh2o_in(k) + dsh2o(k) + wplus/dz
      stot = sh2o_out(k) + sice(k)
      if (stot > smcmax(k)) then
        wplus = (stot - smcmax(k))*dz
      else
        wplus = 0.0_dp
      end if
      capped = min(stot, smcmax(k))
      smc(k) = max(capped, smc_floor)
      if (smc(k) > capped) created = created + (smc(k) - capped)*dz
      sh2o_out(k) = max(smc(k) - sice(k), 0.0_dp)
    end do
  end subroutine sstep

  !> One soil-water and canopy-water step (legacy SMFLX, spec 8.1-8.4):
  !> canopy interception and drip, single- or two-pass implicit solve of the
  !> liquid water with infiltration and free drainage, canopy update.
  !> Requires nsoil >= 2.
  !>   nsoil              : number of soil layers (in)
  !>   dt                 : time step [s] (in)
  !>   zsoil              : depth of the layer bottoms, negative [m] (in)
  !>   prcp1              : water arriving at the canopy top (rain + dew, or melt) [m s-1] (in)
  !>   edir1              : direct soil evaporation from layer 1 [m s-1] (in)
  !>   ec1                : canopy evaporation [m s-1] (in)
  !>   et1                : transpiration per layer [m s-1] (in)
  !>   shdfac             : green vegetation fraction [-] (in)
  !>   cmcmax             : canopy water capacity [m] (in)
  !>   kdt                : infiltration parameter REFKDT*SATDK/REFDK [day-1] (used with dt/86400) (in)
  !>   frzx               : frozen-ground infiltration parameter (in; hyd_option_stock only)
  !>   slope              : drainage coefficient [-] (in)
  !>   flimit             : two-pass threshold, fac2mit(smcmax(1)) (in)
  !>   hyd_option         : hyd_option_stock or hyd_option_ice_impedance (in)
  !>   smcmax, bexp, dksat, dwsat, smcwlt : per-layer porosity [m3 m-3], Campbell b [-],
  !>                        saturated conductivity [m s-1], diffusivity [m2 s-1],
  !>                        wilting point [m3 m-3] (in)
  !>   imp_exp_d, imp_exp_k : per-layer ice-impedance exponents (in; hyd_option 2 only)
  !>   smcwlt_entry_pass1 : wilting point of SMCAV / DMAX_1 in the first (or only) SRT pass (in)
  !>   smcwlt_entry_pass2 : wilting point of SMCAV / DMAX_1 in the second SRT pass (in; quirk Q2)
  !>   cmc                : canopy water [m] (inout)
  !>   smc                : total volumetric moisture [m3 m-3] (inout)
  !>   sh2o               : liquid volumetric moisture [m3 m-3] (inout)
  !>   runoff1            : surface runoff [m s-1] (out)
  !>   runoff2            : gravity drainage slope*K_N [m s-1] (out)
  !>   runoff3            : excess water leaving the bottom layer (WPLUS) [m] (out)
  !>   drip               : canopy drip [m] (out)
  !>   water_created      : water created by the clamps (0.02 floor, canopy zeroing) [m] (out):
  !>       d(sum(smc dz) + cmc) = (prcp1 - edir1 - ec1 - sum(et1)) dt - (runoff1 + runoff2) dt
  !>                              - runoff3 + water_created   (to round-off)
  pure subroutine smflx(nsoil, dt, zsoil, prcp1, edir1, ec1, et1, shdfac, cmcmax, kdt, frzx, &
                        slope, flimit, hyd_option, smcmax, bexp, dksat, dwsat, smcwlt,          &
                        imp_exp_d, imp_exp_k, smcwlt_entry_pass1, smcwlt_entry_pass2,          &
                        cmc, smc, sh2o, runoff1, runoff2, runoff3, drip, water_created)
    integer,  intent(in)    :: nsoil, hyd_option
    real(dp), intent(in)    :: dt, zsoil(nsoil), prcp1, edir1, ec1, et1(nsoil)
    real(dp), intent(in)    :: shdfac, cmcmax, kdt, frzx, slope, flimit
    real(dp), intent(in)    :: smcmax(nsoil), bexp(nsoil), dksat(nsoil), dwsat(nsoil), smcwlt(nsoil)
    real(dp), intent(in)    :: imp_exp_d(nsoil), imp_exp_k(nsoil)
    real(dp), intent(in)    :: smcwlt_entry_pass1, smcwlt_entry_pass2
    real(dp), intent(inout) :: cmc, smc(nsoil), sh2o(nsoil)
    real(dp), intent(out)   :: runoff1, runoff2, runoff3, drip, water_created

    real(dp) :: ai(nsoil), bi(nsoil), ci(nsoil), rhstt(nsoil)
    real(dp) :: sice(nsoil)       ! SICE, ice content held fixed [m3 m-3]
    real(dp) :: sh2o0(nsoil)      ! liquid water at the start of the step
    real(dp) :: sh2ofg(nsoil)     ! predictor of the two-pass scheme
    real(dp) :: sh2oa(nsoil)      ! state of the coefficients in pass 2
    real(dp) :: rhsct, excess, pcpdrp, fac2, sicemax, dice, created, ztop
    integer  :: k

    ! ---- canopy interception (spec 8.1) ----
    rhsct = shdfac*prcp1 - ec1
    drip = 0.0_dp
    excess = cmc + dt*rhsct
    if (excess > cmcmax) drip = excess - cmcmax
    pcpdrp = (1.0_dp - shdfac)*prcp1 + drip/dt

    do k = 1, nsoil
      sice(k) = smc(k) - sh2o(k)
      sh2o0(k) = sh2o(k)
    end do
    ! option 1 only: column maximum of ice (SICEMAX) and ice depth DICE = sum dz_k sice_k [m]
    sicemax = 0.0_dp
    dice = 0.0_dp
    if (hyd_option == hyd_option_stock) then
      ztop = 0.0_dp
      do k = 1, nsoil
        if (sice(k) > sicemax) sicemax = sice(k)
        if (k == 1) then
          dice = (ztop - zsoil(k))*sice(k)
        else
          dice = dice + (ztop - zsoil(k))*sice(k)
        end if
        ztop = zsoil(k)
      end do
    end if

    ! ---- single- or two-pass decision (spec 8.2) ----
    fac2 = 0.0_dp
    do k = 1, nsoil
      fac2 = max(fac2, sh2o(k)/smcmax(k))
    end do

    if (((pcpdrp*dt) > (0.0001_dp*1000.0_dp*(-zsoil(1))*smcmax(1))) .or. (fac2 > flimit)) then
      ! predictor (SMC overwritten, canopy not updated)
      call srt(nsoil, dt, zsoil, sh2o0, sh2o0, sice, sicemax, dice, pcpdrp, edir1, et1, kdt, &
               frzx, slope, hyd_option, smcmax, bexp, dksat, dwsat, smcwlt, imp_exp_d,       &
               imp_exp_k, smcmax(1), smcwlt_entry_pass1, ai, bi, ci, rhstt, runoff1, runoff2)
      call sstep(nsoil, dt, zsoil, sh2o0, sice, smcmax, ai, bi, ci, rhstt, sh2ofg, smc, &
                 runoff3, created)
      do k = 1, nsoil
        sh2oa(k) = (sh2o0(k) + sh2ofg(k))*0.5_dp
      end do
      ! corrector: coefficients at the averaged state, restart from the original sh2o
      call srt(nsoil, dt, zsoil, sh2o0, sh2oa, sice, sicemax, dice, pcpdrp, edir1, et1, kdt, &
               frzx, slope, hyd_option, smcmax, bexp, dksat, dwsat, smcwlt, imp_exp_d,       &
               imp_exp_k, smcmax(1), smcwlt_entry_pass2, ai, bi, ci, rhstt, runoff1, runoff2)
    else
      call srt(nsoil, dt, zsoil, sh2o0, sh2o0, sice, sicemax, dice, pcpdrp, edir1, et1, kdt, &
               frzx, slope, hyd_option, smcmax, bexp, dksat, dwsat, smcwlt, imp_exp_d,       &
               imp_exp_k, smcmax(1), smcwlt_entry_pass1, ai, bi, ci, rhstt, runoff1, runoff2)
    end if
    call sstep(nsoil, dt, zsoil, sh2o0, sice, smcmax, ai, bi, ci, rhstt, sh2o, smc, &
               runoff3, created)
    water_created = created

    ! ---- canopy update (final pass only, spec 8.1) ----
    cmc = cmc + dt*rhsct
    if (cmc < cmc_small) then
      water_created = water_created - cmc
      cmc = 0.0_dp
    end if
    cmc = min(cmc, cmcmax)
  end subroutine smflx

end module nt_soil_water
