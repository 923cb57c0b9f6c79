!> Soil water and canopy water for one soil column.
!>
!> Liquid-water diffusion-gravity equation on the soil layers, implicit in the
!> liquid content with explicit diffusivity/conductivity (Kalnay & Kanamitsu
!> 1988 scheme "D"), or a predictor-corrector pass with coefficients at the
!> averaged state (scheme "F"); Schaake et al. (1996) infiltration; free
!> drainage at the bottom; canopy interception bucket.  Ice is immobile and
!> held fixed.  Legacy SMFLX -> SRT + SSTEP, WDFCND, WDFCND_NY06, FAC2MIT.
!> Specification: spec/physics.md sections 8.0-8.5; traps 5, 9, 10, 15 of section 13.
!>
!> Organisation for speed (the arithmetic differs from the legacy code only
!> at round-off level; equations, branches and clamps are those of the
!> specification): everything that depends only on the column's geometry and
!> parameters (layer thicknesses, node distances and their reciprocals, the
!> exponents of the hydraulic functions) is computed once per column by
!> water_prepare into a water_column; the SRT system of spec 8.4 is solved
!> with each row k multiplied by Delta z_k / DT (the same linear equations;
!> see srt), so that the assembly needs no division and the matrix is
!> symmetric (nt_tridiagonal::tridiag_solve_sym).
module nt_soil_water
  use nt_kinds, only: dp
  use nt_tridiagonal, only: tridiag_solve_sym
  implicit none
  private

  public :: fac2mit, wdfcnd_stock, wdfcnd_ice_impedance, smflx
  public :: water_column, water_prepare, smflx_prepared

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
  real(dp), parameter :: ln10 = log(10.0_dp)

  !> Geometry- and parameter-only quantities of the water step of one column
  !> (filled by water_prepare, used by smflx_prepared).  Layer k spans
  !> zsoil(k-1)..zsoil(k) (zsoil(0) = 0).
  type :: water_column
    integer :: nsoil = 0
    integer :: hyd_option = hyd_option_ice_impedance
    real(dp), allocatable :: dz(:)     !< Delta z_k = zsoil(k-1) - zsoil(k), DENOM2 of SRT [m]
    real(dp), allocatable :: rdz(:)    !< 1/Delta z_k [m-1]
    !> 1/d_{k+1/2} = 2/(zsoil(k-1) - zsoil(k+1)) [m-1], reciprocal distance between the
    !> nodes of layers k and k+1 (DDZ2 of SRT); 0 for k = N (no diffusion through the bottom)
    real(dp), allocatable :: rdist(:)
    ! per-layer parameters (spec 8.3-8.5)
    real(dp), allocatable :: smcmax(:), smcwlt(:), bexp(:), dksat(:), dwsat(:)
    real(dp), allocatable :: rsmcmax(:)   !< 1/SMCMAX
    real(dp), allocatable :: sat_two_pass(:)  !< FLIMIT*SMCMAX, liquid water that triggers two passes
    real(dp), allocatable :: expo_d(:)    !< BB + 2, exponent of the diffusivity
    real(dp), allocatable :: expo_k(:)    !< 2 BB + 3, exponent of the conductivity
    !> -E_D ln 10 and -E_K ln 10: the ice impedance 10**(-E SICE) = exp(imp SICE) (option 2)
    real(dp), allocatable :: imp_d(:), imp_k(:)
    ! column scalars (spec 8.1-8.3)
    real(dp) :: kdt = 0, frzx = 0, slope = 0, cmcmax = 0
    real(dp) :: smcwlt_entry1 = 0, smcwlt_entry2 = 0   !< WLTSMC of SMCAV in pass 1 / pass 2 (Q2)
    !> two-pass trigger on the water reaching the soil, 0.0001*1000*(-zsoil(1))*SMCMAX_1 [m]
    real(dp) :: pcp_two_pass = 0
  end type water_column

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
    call wdfcnd_ice_impedance_prepared(theta_tot, 1.0_dp/smcmax, bexp + 2.0_dp,            &
                                       2.0_dp*bexp + 3.0_dp, dksat, dwsat, sice,           &
                                       -imp_exp_d*ln10, -imp_exp_k*ln10, wdf, wcnd)
  end subroutine wdfcnd_ice_impedance

  !> wdfcnd_ice_impedance with the parameter-only terms given (water_column):
  !> each power and its impedance factor are one exponential of one logarithm,
  !>   wdf  = dwsat exp((b+2) ln FACTR - E_D ln10 sice),
  !>   wcnd = dksat exp((2b+3) ln FACTR - E_K ln10 sice)
  !> (equal in exact arithmetic to the formulas of spec 8.5, a few ulp apart in
  !> floating point; with sice = 0 the impedance term adds exactly 0).
  !>   theta_tot, dksat, dwsat, sice, wdf, wcnd : as wdfcnd_ice_impedance
  !>   rsmcmax        : 1/smcmax (in)
  !>   expo_d, expo_k : b + 2 and 2b + 3 (in)
  !>   imp_d, imp_k   : -E_D ln 10 and -E_K ln 10 (in)
  elemental subroutine wdfcnd_ice_impedance_prepared(theta_tot, rsmcmax, expo_d, expo_k, dksat, &
                                                     dwsat, sice, imp_d, imp_k, wdf, wcnd)
    real(dp), intent(in)  :: theta_tot, rsmcmax, expo_d, expo_k, dksat, dwsat, sice, imp_d, imp_k
    real(dp), intent(out) :: wdf, wcnd
    real(dp) :: log_factr
    log_factr = log(max(factr_min, theta_tot*rsmcmax))
    wdf = dwsat*exp(expo_d*log_factr + imp_d*sice)
    wcnd = dksat*exp(expo_k*log_factr + imp_k*sice)
  end subroutine wdfcnd_ice_impedance_prepared

  !> Geometry- and parameter-only quantities of the water step of one column
  !> (call once per column; wc is reallocated only if nsoil changes).
  !> Requires nsoil >= 2.  Arguments as smflx (same names), plus
  !>   cmcmax : canopy water capacity [m] (in)
  !>   wc     : the column's water_column (inout)
  pure subroutine water_prepare(nsoil, zsoil, cmcmax, kdt, frzx, slope, flimit, hyd_option, &
                                smcmax, bexp, dksat, dwsat, smcwlt, imp_exp_d, imp_exp_k,   &
                                smcwlt_entry_pass1, smcwlt_entry_pass2, wc)
    integer,  intent(in) :: nsoil, hyd_option
    real(dp), intent(in) :: zsoil(nsoil), cmcmax, kdt, frzx, slope, flimit
    real(dp), intent(in) :: smcmax(nsoil), bexp(nsoil), dksat(nsoil), dwsat(nsoil), smcwlt(nsoil)
    real(dp), intent(in) :: imp_exp_d(nsoil), imp_exp_k(nsoil)
    real(dp), intent(in) :: smcwlt_entry_pass1, smcwlt_entry_pass2
    type(water_column), intent(inout) :: wc
    real(dp) :: ztop
    integer  :: k

    if (wc%nsoil /= nsoil .or. .not. allocated(wc%dz)) then
      if (allocated(wc%dz)) then
        deallocate(wc%dz, wc%rdz, wc%rdist, wc%smcmax, wc%smcwlt, wc%bexp, wc%dksat, wc%dwsat, &
                   wc%rsmcmax, wc%sat_two_pass, wc%expo_d, wc%expo_k, wc%imp_d, wc%imp_k)
      end if
      allocate(wc%dz(nsoil), wc%rdz(nsoil), wc%rdist(nsoil), wc%smcmax(nsoil), wc%smcwlt(nsoil), &
               wc%bexp(nsoil), wc%dksat(nsoil), wc%dwsat(nsoil), wc%rsmcmax(nsoil), &
               wc%sat_two_pass(nsoil), &
               wc%expo_d(nsoil), wc%expo_k(nsoil), wc%imp_d(nsoil), wc%imp_k(nsoil))
      wc%nsoil = nsoil
    end if

    ztop = 0.0_dp
    do k = 1, nsoil
      wc%dz(k) = ztop - zsoil(k)                  ! (0 - zsoil(1) == -zsoil(1) exactly)
      ztop = zsoil(k)
      wc%rdz(k) = 1.0_dp/wc%dz(k)
    end do
    wc%rdist(1) = 2.0_dp/(-zsoil(2))              ! 1/(-zsoil(2)/2), DDZ of layer 1
    do k = 2, nsoil - 1
      wc%rdist(k) = 2.0_dp/(zsoil(k-1) - zsoil(k+1))
    end do
    wc%rdist(nsoil) = 0.0_dp

    wc%hyd_option = hyd_option
    wc%smcmax = smcmax
    wc%smcwlt = smcwlt
    wc%bexp = bexp
    wc%dksat = dksat
    wc%dwsat = dwsat
    wc%rsmcmax = 1.0_dp/smcmax
    wc%sat_two_pass = flimit*smcmax
    wc%expo_d = bexp + 2.0_dp
    wc%expo_k = 2.0_dp*bexp + 3.0_dp
    wc%imp_d = -imp_exp_d*ln10
    wc%imp_k = -imp_exp_k*ln10

    wc%kdt = kdt
    wc%frzx = frzx
    wc%slope = slope
    wc%cmcmax = cmcmax
    wc%smcwlt_entry1 = smcwlt_entry_pass1
    wc%smcwlt_entry2 = smcwlt_entry_pass2
    wc%pcp_two_pass = 0.0001_dp*1000.0_dp*(-zsoil(1))*smcmax(1)
  end subroutine water_prepare

  !> Infiltration and the tridiagonal system of the water step (legacy SRT,
  !> spec 8.3-8.4).  Gradients use sh2o, coefficients use sh2oa.
  !>
  !> In the notation of spec 8.4, with WDF_k, WCND_k the coefficients of layer k and
  !>   H_k = WDF_k/d_{k+1/2}   (WDF_k DDZ2, diffusive conductance below layer k; H_N = 0),
  !>   Q_k = H_k (SH2O_k - SH2O_{k+1}) + WCND_k   (downward flux below layer k, k < N;
  !>                                                = WDF_k DSMDZ2 + WCND_k),
  !>   Q_N = SLOPE WCND_N  (free drainage),  Q_0 = PDDUM - EDIR,
  !> SRT's rows are AI(k) = -H_{k-1}/Delta z_k, CI(k) = -H_k/Delta z_k,
  !> BI(k) = -(AI(k) + CI(k)) and RHSTT(k) = -(Q_k - Q_{k-1} + ET_k)/Delta z_k
  !> (row 1: (WDF_1 DSMDZ + WCND_1 - PDDUM + EDIR + ET_1)/ZSOIL(1), the same), and
  !> SSTEP solves (AI DT, 1 + BI DT, CI DT | RHSTT DT).  Row k multiplied by
  !> Delta z_k/DT gives the same equations as
  !>   -H_{k-1} dW_{k-1} + (Delta z_k/DT + H_{k-1} + H_k) dW_k - H_k dW_{k+1} = Q_{k-1} - Q_k - ET_k,
  !> returned here as (diag, cond, rhs) for tridiag_solve_sym.
  !>   wc           : from water_prepare (in)
  !>   dt           : time step [s] (in)
  !>   sh2o         : liquid water of the gradients (start of step) [m3 m-3] (in)
  !>   sh2oa        : liquid water of the coefficients [m3 m-3] (in)
  !>   sice         : ice content [m3 m-3] (in)
  !>   sicemax      : column maximum of sice (option 1) (in)
  !>   dice         : ice depth DICE (option 1) [m] (in)
  !>   pcpdrp       : water reaching the soil [m s-1] (in)
  !>   edir, et     : direct evaporation, transpiration per layer [m s-1] (in)
  !>   smcwlt_entry : wilting point of SMCAV and DMAX_1 (pass 1 / pass 2, Q2) (in)
  !>   diag, cond, rhs : the scaled system (cond(N) = 0) (out)
  !>   runoff1, runoff2 : surface runoff, drainage [m s-1] (out)
  pure subroutine srt(wc, dt, sh2o, sh2oa, sice, sicemax, dice, pcpdrp, edir, et, smcwlt_entry, &
                      diag, cond, rhs, runoff1, runoff2)
    type(water_column), intent(in) :: wc
    real(dp), intent(in)  :: dt, sh2o(wc%nsoil), sh2oa(wc%nsoil), sice(wc%nsoil)
    real(dp), intent(in)  :: sicemax, dice, pcpdrp, edir, et(wc%nsoil), smcwlt_entry
    real(dp), intent(out) :: diag(wc%nsoil), cond(wc%nsoil), rhs(wc%nsoil), runoff1, runoff2

    real(dp) :: wdf(wc%nsoil), wcnd(wc%nsoil)   ! WDF_k, WCND_k
    real(dp) :: flux(0:wc%nsoil)                ! Q_k [m s-1]
    real(dp) :: pddum                           ! infiltration [m s-1]
    real(dp) :: dt1, smcav, dmax, dd, val, ddt, px, infmax, acrt, sumf, fcr, rdt
    integer  :: n, k

    n = wc%nsoil
    rdt = 1.0_dp/dt

    ! ---- diffusivity and conductivity of every layer (spec 8.5) ----
    if (wc%hyd_option == hyd_option_stock) then
      do k = 1, n
        call wdfcnd_stock(sh2oa(k), wc%smcmax(k), wc%bexp(k), wc%dksat(k), wc%dwsat(k), sicemax, &
                          wdf(k), wcnd(k))
      end do
    else
      ! (no libmvec: see "Vectorisation" in soil_heat.f90)
!GCC$ novector
      do k = 1, n
        call wdfcnd_ice_impedance_prepared(sh2oa(k) + sice(k), wc%rsmcmax(k), wc%expo_d(k), &
                                           wc%expo_k(k), wc%dksat(k), wc%dwsat(k), sice(k),  &
                                           wc%imp_d(k), wc%imp_k(k), wdf(k), wcnd(k))
      end do
    end if

    ! ---- infiltration (spec 8.3) ----
    pddum = pcpdrp
    runoff1 = 0.0_dp
    if (pcpdrp /= 0.0_dp) then
      dt1 = dt/sec_per_day
      smcav = wc%smcmax(1) - smcwlt_entry
      dmax = wc%dz(1)*smcav*(1.0_dp - (sh2oa(1) + sice(1) - smcwlt_entry)/smcav)
      dd = dmax
      do k = 2, n
        dmax = wc%dz(k)*smcav*(1.0_dp - (sh2oa(k) + sice(k) - wc%smcwlt(k))/smcav)
        dd = dd + dmax
      end do
      val = 1.0_dp - exp(-wc%kdt*dt1)
      ddt = dd*val
      px = pcpdrp*dt
      if (px < 0.0_dp) px = 0.0_dp
      infmax = (px*(ddt/(px + ddt)))/dt
      if (wc%hyd_option == hyd_option_stock) then
        fcr = 1.0_dp
        if (dice > dice_min) then
          acrt = cvfrz*wc%frzx/dice
          sumf = 1.0_dp + acrt**2/2.0_dp + acrt   ! CVFRZ = 3 series
          fcr = 1.0_dp - exp(-acrt)*sumf
        end if
        infmax = infmax*fcr
      end if
      infmax = max(infmax, wcnd(1))
      infmax = min(infmax, px/dt)
      if (pcpdrp > infmax) then
        runoff1 = pcpdrp - infmax
        pddum = infmax
      end if
    end if

    ! ---- matrix coefficients (spec 8.4), rows scaled by Delta z_k / DT ----
    flux(0) = pddum - edir
    do k = 1, n - 1
      cond(k) = wdf(k)*wc%rdist(k)
      flux(k) = cond(k)*(sh2o(k) - sh2o(k+1)) + wcnd(k)
    end do
    cond(n) = 0.0_dp
    flux(n) = wc%slope*wcnd(n)
    runoff2 = flux(n)
    diag(1) = wc%dz(1)*rdt + cond(1)
    rhs(1) = flux(0) - flux(1) - et(1)
    do k = 2, n
      diag(k) = wc%dz(k)*rdt + cond(k-1) + cond(k)
      rhs(k) = flux(k-1) - flux(k) - et(k)
    end do
  end subroutine srt

  !> Implicit update of the liquid water with porosity cap (excess passed
  !> down), 0.02 floor and fixed ice (legacy SSTEP without the canopy part,
  !> spec 8.4).
  !>   diag, cond, rhs : the scaled system from srt (in)
  !>   sh2o_in  : liquid water at the start of the step (in)
  !>   sh2o_out : new liquid water (out); smc : new total moisture (out)
  !>   wplus    : excess leaving the bottom layer [m] (out)
  !>   created  : water added by the 0.02 floor [m] (out)
  pure subroutine sstep(wc, diag, cond, rhs, sh2o_in, sice, sh2o_out, smc, wplus, created)
    type(water_column), intent(in) :: wc
    real(dp), intent(in)  :: diag(wc%nsoil), cond(wc%nsoil), rhs(wc%nsoil)
    real(dp), intent(in)  :: sh2o_in(wc%nsoil), sice(wc%nsoil)
    real(dp), intent(out) :: sh2o_out(wc%nsoil), smc(wc%nsoil), wplus, created

    real(dp) :: dsh2o(wc%nsoil)
    real(dp) :: stot, capped
    integer  :: k

    call tridiag_solve_sym(1, wc%nsoil, diag, cond, rhs, dsh2o)

    wplus = 0.0_dp
    created = 0.0_dp
    do k = 1, wc%nsoil
      sh2o_out(k) = sh2o_in(k) + dsh2o(k) + wplus*wc%rdz(k)
      stot = sh2o_out(k) + sice(k)
      if (stot > wc%smcmax(k)) then
        wplus = (stot - wc%smcmax(k))*wc%dz(k)
      else
        wplus = 0.0_dp
      end if
      capped = min(stot, wc%smcmax(k))
      smc(k) = max(capped, smc_floor)
      if (smc(k) > capped) created = created + (smc(k) - capped)*wc%dz(k)
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
  !> (water_prepare + smflx_prepared; a caller stepping one column many times
  !> should call water_prepare once and smflx_prepared every step.)
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
    type(water_column) :: wc

    call water_prepare(nsoil, zsoil, cmcmax, kdt, frzx, slope, flimit, hyd_option, smcmax, bexp, &
                       dksat, dwsat, smcwlt, imp_exp_d, imp_exp_k, smcwlt_entry_pass1,         &
                       smcwlt_entry_pass2, wc)
    call smflx_prepared(wc, dt, prcp1, edir1, ec1, et1, shdfac, cmc, smc, sh2o, runoff1, runoff2, &
                        runoff3, drip, water_created)
  end subroutine smflx

  !> One soil-water and canopy-water step (spec 8.1-8.4) with the column's
  !> water_column.  Arguments as smflx:
  !>   smflx_prepared(wc, dt, prcp1, edir1, ec1, et1, shdfac, cmc, smc, sh2o,
  !>                  runoff1, runoff2, runoff3, drip, water_created)
  pure subroutine smflx_prepared(wc, dt, prcp1, edir1, ec1, et1, shdfac, cmc, smc, sh2o, &
                                 runoff1, runoff2, runoff3, drip, water_created)
    type(water_column), intent(in) :: wc
    real(dp), intent(in)    :: dt, prcp1, edir1, ec1, et1(wc%nsoil), shdfac
    real(dp), intent(inout) :: cmc, smc(wc%nsoil), sh2o(wc%nsoil)
    real(dp), intent(out)   :: runoff1, runoff2, runoff3, drip, water_created

    real(dp) :: diag(wc%nsoil), cond(wc%nsoil), rhs(wc%nsoil)   ! scaled system of srt
    real(dp) :: sice(wc%nsoil)       ! SICE, ice content held fixed [m3 m-3]
    real(dp) :: sh2o0(wc%nsoil)      ! liquid water at the start of the step
    real(dp) :: sh2ofg(wc%nsoil)     ! predictor of the two-pass scheme
    real(dp) :: sh2oa(wc%nsoil)      ! state of the coefficients in pass 2
    real(dp) :: rhsct, excess, pcpdrp, sicemax, dice, created
    logical  :: two_pass
    integer  :: n, k

    n = wc%nsoil

    ! ---- canopy interception (spec 8.1) ----
    rhsct = shdfac*prcp1 - ec1
    drip = 0.0_dp
    excess = cmc + dt*rhsct
    if (excess > wc%cmcmax) drip = excess - wc%cmcmax
    pcpdrp = (1.0_dp - shdfac)*prcp1 + drip/dt

    ! ice, start-of-step liquid water, and the saturation test of spec 8.2,
    ! FAC2 = max_k sh2o/smcmax > FLIMIT, evaluated as sh2o > FLIMIT*smcmax in some layer
    two_pass = .false.
    do k = 1, n
      sice(k) = smc(k) - sh2o(k)
      sh2o0(k) = sh2o(k)
      two_pass = two_pass .or. (sh2o(k) > wc%sat_two_pass(k))
    end do
    ! option 1 only: column maximum of ice (SICEMAX) and ice depth DICE = sum dz_k sice_k [m]
    sicemax = 0.0_dp
    dice = 0.0_dp
    if (wc%hyd_option == hyd_option_stock) then
      do k = 1, n
        if (sice(k) > sicemax) sicemax = sice(k)
        if (k == 1) then
          dice = wc%dz(k)*sice(k)
        else
          dice = dice + wc%dz(k)*sice(k)
        end if
      end do
    end if

    ! ---- single- or two-pass decision (spec 8.2) ----
    if (((pcpdrp*dt) > wc%pcp_two_pass) .or. two_pass) then
      ! predictor (SMC overwritten, canopy not updated)
      call srt(wc, dt, sh2o0, sh2o0, sice, sicemax, dice, pcpdrp, edir1, et1, wc%smcwlt_entry1, &
               diag, cond, rhs, runoff1, runoff2)
      call sstep(wc, diag, cond, rhs, sh2o0, sice, sh2ofg, smc, runoff3, created)
      do k = 1, n
        sh2oa(k) = (sh2o0(k) + sh2ofg(k))*0.5_dp
      end do
      ! corrector: coefficients at the averaged state, restart from the original sh2o
      call srt(wc, dt, sh2o0, sh2oa, sice, sicemax, dice, pcpdrp, edir1, et1, wc%smcwlt_entry2, &
               diag, cond, rhs, runoff1, runoff2)
    else
      call srt(wc, dt, sh2o0, sh2o0, sice, sicemax, dice, pcpdrp, edir1, et1, wc%smcwlt_entry1, &
               diag, cond, rhs, runoff1, runoff2)
    end if
    call sstep(wc, diag, cond, rhs, sh2o0, sice, sh2o, smc, runoff3, created)
    water_created = created

    ! ---- canopy update (final pass only, spec 8.1) ----
    cmc = cmc + dt*rhsct
    if (cmc < cmc_small) then
      water_created = water_created - cmc
      cmc = 0.0_dp
    end if
    cmc = min(cmc, wc%cmcmax)
  end subroutine smflx_prepared

end module nt_soil_water
