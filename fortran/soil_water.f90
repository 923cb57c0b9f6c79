!> Soil water and canopy water for a block of soil columns.
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
!> water_prepare; the SRT system of spec 8.4 is solved
!> with each row k multiplied by Delta z_k / DT (the same linear equations;
!> see srt_block), so that the assembly needs no division and the matrix is
!> symmetric (nt_tridiagonal::tridiag_solve_sym).  The columns of a block
!> (nt_column_kernel) are solved together, lane index first and loops over
!> lanes inside every loop over layers, so that the compiler vectorises
!> across columns; the exponentials and logarithms of the hydraulic functions
!> of all layers of all lanes come from nt_elementary's array routines.  Each
!> lane's arithmetic is exactly that of a single column.
module nt_soil_water
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_tridiagonal, only: tridiag_solve_sym
  use nt_elementary, only: fexp, flog, fpow, exp_array_inrange, log_array_positive
  implicit none
  private

  public :: fac2mit, wdfcnd_stock, wdfcnd_ice_impedance, smflx
  public :: water_block, water_block_allocate, water_prepare, water_block_set_lane, smflx_block

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

  !> Geometry- and parameter-only quantities of the water step of a block of
  !> columns (lanes), lane index first: water_prepare fills a one-lane block
  !> for one column, water_block_set_lane copies it into a lane of a block,
  !> and smflx_block steps all lanes.  Layer k spans zsoil(k-1)..zsoil(k)
  !> (zsoil(0) = 0).
  type :: water_block
    integer :: nlanes = 0
    integer :: nsoil = 0
    integer :: hyd_option = hyd_option_ice_impedance
    real(dp), allocatable :: dz(:, :)     !< Delta z_k = zsoil(k-1) - zsoil(k), DENOM2 of SRT [m]
    real(dp), allocatable :: rdz(:, :)    !< 1/Delta z_k [m-1]
    !> 1/d_{k+1/2} = 2/(zsoil(k-1) - zsoil(k+1)) [m-1], reciprocal distance between the
    !> nodes of layers k and k+1 (DDZ2 of SRT); 0 for k = N (no diffusion through the bottom)
    real(dp), allocatable :: rdist(:, :)
    ! per-layer parameters (spec 8.3-8.5)
    real(dp), allocatable :: smcmax(:, :), smcwlt(:, :), bexp(:, :), dksat(:, :), dwsat(:, :)
    real(dp), allocatable :: rsmcmax(:, :)   !< 1/SMCMAX
    real(dp), allocatable :: sat_two_pass(:, :)  !< FLIMIT*SMCMAX, liquid water that triggers two passes
    real(dp), allocatable :: expo_d(:, :)    !< BB + 2, exponent of the diffusivity
    real(dp), allocatable :: expo_k(:, :)    !< 2 BB + 3, exponent of the conductivity
    !> -E_D ln 10 and -E_K ln 10: the ice impedance 10**(-E SICE) = exp(imp SICE) (option 2)
    real(dp), allocatable :: imp_d(:, :), imp_k(:, :)
    ! column scalars (spec 8.1-8.3), per lane
    real(dp), allocatable :: kdt(:), frzx(:), slope(:), cmcmax(:)
    !> WLTSMC of SMCAV in pass 1 / pass 2 (Q2)
    real(dp), allocatable :: smcwlt_entry1(:), smcwlt_entry2(:)
    !> two-pass trigger on the water reaching the soil, 0.0001*1000*(-zsoil(1))*SMCMAX_1 [m]
    real(dp), allocatable :: pcp_two_pass(:)
  end type water_block

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
    wdf = dwsat*fpow(factr2, expon)
    if (sicemax > 0.0_dp) then
      vkwgt = 1.0_dp/(1.0_dp + (500.0_dp*sicemax)**3)
      wdf = vkwgt*wdf + (1.0_dp - vkwgt)*dwsat*fpow(factr1, expon)
    end if
    expon = (2.0_dp*bexp) + 3.0_dp
    wcnd = dksat*fpow(factr2, expon)
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

  !> wdfcnd_ice_impedance with the parameter-only terms given (water_block):
  !> each power and its impedance factor are one exponential of one logarithm,
  !>   wdf  = dwsat exp((b+2) ln FACTR - E_D ln10 sice),
  !>   wcnd = dksat exp((2b+3) ln FACTR - E_K ln10 sice)
  !> (equal in exact arithmetic to the formulas of spec 8.5, a few ulp apart in
  !> floating point; with sice = 0 the impedance term adds exactly 0).  Exponents
  !> below -708 count as -708 (exp ~ 3e-308 instead of 0; realistic ones are
  !> above -200), as in srt_block.
  !>   theta_tot, dksat, dwsat, sice, wdf, wcnd : as wdfcnd_ice_impedance
  !>   rsmcmax        : 1/smcmax (in)
  !>   expo_d, expo_k : b + 2 and 2b + 3 (in)
  !>   imp_d, imp_k   : -E_D ln 10 and -E_K ln 10 (in)
  elemental subroutine wdfcnd_ice_impedance_prepared(theta_tot, rsmcmax, expo_d, expo_k, dksat, &
                                                     dwsat, sice, imp_d, imp_k, wdf, wcnd)
    real(dp), intent(in)  :: theta_tot, rsmcmax, expo_d, expo_k, dksat, dwsat, sice, imp_d, imp_k
    real(dp), intent(out) :: wdf, wcnd
    real(dp) :: log_factr
    log_factr = flog(max(factr_min, theta_tot*rsmcmax))
    wdf = dwsat*fexp(max(expo_d*log_factr + imp_d*sice, -708.0_dp))
    wcnd = dksat*fexp(max(expo_k*log_factr + imp_k*sice, -708.0_dp))
  end subroutine wdfcnd_ice_impedance_prepared

  !> (Re)allocate a water_block for nlanes lanes of nsoil layers (only if the
  !> shape changes).
  pure subroutine water_block_allocate(wb, nlanes, nsoil)
    type(water_block), intent(inout) :: wb
    integer, intent(in) :: nlanes, nsoil
    if (allocated(wb%dz)) then
      if (wb%nlanes == nlanes .and. wb%nsoil == nsoil) return
      deallocate(wb%dz, wb%rdz, wb%rdist, wb%smcmax, wb%smcwlt, wb%bexp, wb%dksat, wb%dwsat,  &
                 wb%rsmcmax, wb%sat_two_pass, wb%expo_d, wb%expo_k, wb%imp_d, wb%imp_k,       &
                 wb%kdt, wb%frzx, wb%slope, wb%cmcmax, wb%smcwlt_entry1, wb%smcwlt_entry2,   &
                 wb%pcp_two_pass)
    end if
    allocate(wb%dz(nlanes, nsoil), wb%rdz(nlanes, nsoil), wb%rdist(nlanes, nsoil),          &
             wb%smcmax(nlanes, nsoil), wb%smcwlt(nlanes, nsoil), wb%bexp(nlanes, nsoil),    &
             wb%dksat(nlanes, nsoil), wb%dwsat(nlanes, nsoil), wb%rsmcmax(nlanes, nsoil),   &
             wb%sat_two_pass(nlanes, nsoil), wb%expo_d(nlanes, nsoil),                      &
             wb%expo_k(nlanes, nsoil), wb%imp_d(nlanes, nsoil), wb%imp_k(nlanes, nsoil),    &
             wb%kdt(nlanes), wb%frzx(nlanes), wb%slope(nlanes), wb%cmcmax(nlanes),          &
             wb%smcwlt_entry1(nlanes), wb%smcwlt_entry2(nlanes), wb%pcp_two_pass(nlanes))
    wb%nlanes = nlanes
    wb%nsoil = nsoil
  end subroutine water_block_allocate

  !> Geometry- and parameter-only quantities of the water step of one column,
  !> as a one-lane water_block (call once per column).
  !> Requires nsoil >= 2.  Arguments as smflx (same names), plus
  !>   cmcmax : canopy water capacity [m] (in)
  !>   wc     : the column's one-lane water_block (inout)
  pure subroutine water_prepare(nsoil, zsoil, cmcmax, kdt, frzx, slope, flimit, hyd_option, &
                                smcmax, bexp, dksat, dwsat, smcwlt, imp_exp_d, imp_exp_k,   &
                                smcwlt_entry_pass1, smcwlt_entry_pass2, wc)
    integer,  intent(in) :: nsoil, hyd_option
    real(dp), intent(in) :: zsoil(nsoil), cmcmax, kdt, frzx, slope, flimit
    real(dp), intent(in) :: smcmax(nsoil), bexp(nsoil), dksat(nsoil), dwsat(nsoil), smcwlt(nsoil)
    real(dp), intent(in) :: imp_exp_d(nsoil), imp_exp_k(nsoil)
    real(dp), intent(in) :: smcwlt_entry_pass1, smcwlt_entry_pass2
    type(water_block), intent(inout) :: wc
    real(dp) :: ztop
    integer  :: k

    call water_block_allocate(wc, 1, nsoil)
    ztop = 0.0_dp
    do k = 1, nsoil
      wc%dz(1, k) = ztop - zsoil(k)               ! (0 - zsoil(1) == -zsoil(1) exactly)
      ztop = zsoil(k)
      wc%rdz(1, k) = 1.0_dp/wc%dz(1, k)
    end do
    wc%rdist(1, 1) = 2.0_dp/(-zsoil(2))           ! 1/(-zsoil(2)/2), DDZ of layer 1
    do k = 2, nsoil - 1
      wc%rdist(1, k) = 2.0_dp/(zsoil(k-1) - zsoil(k+1))
    end do
    wc%rdist(1, nsoil) = 0.0_dp

    wc%hyd_option = hyd_option
    wc%smcmax(1, :) = smcmax
    wc%smcwlt(1, :) = smcwlt
    wc%bexp(1, :) = bexp
    wc%dksat(1, :) = dksat
    wc%dwsat(1, :) = dwsat
    wc%rsmcmax(1, :) = 1.0_dp/smcmax
    wc%sat_two_pass(1, :) = flimit*smcmax
    wc%expo_d(1, :) = bexp + 2.0_dp
    wc%expo_k(1, :) = 2.0_dp*bexp + 3.0_dp
    wc%imp_d(1, :) = -imp_exp_d*ln10
    wc%imp_k(1, :) = -imp_exp_k*ln10

    wc%kdt(1) = kdt
    wc%frzx(1) = frzx
    wc%slope(1) = slope
    wc%cmcmax(1) = cmcmax
    wc%smcwlt_entry1(1) = smcwlt_entry_pass1
    wc%smcwlt_entry2(1) = smcwlt_entry_pass2
    wc%pcp_two_pass(1) = 0.0001_dp*1000.0_dp*(-zsoil(1))*smcmax(1)
  end subroutine water_prepare

  !> Copy lane 1 of src (a column's water_prepare) into lane `lane` of wb
  !> (allocated with water_block_allocate for src's number of layers).
  pure subroutine water_block_set_lane(wb, lane, src)
    type(water_block), intent(inout) :: wb
    integer, intent(in) :: lane
    type(water_block), intent(in) :: src
    wb%hyd_option = src%hyd_option
    wb%dz(lane, :) = src%dz(1, :)
    wb%rdz(lane, :) = src%rdz(1, :)
    wb%rdist(lane, :) = src%rdist(1, :)
    wb%smcmax(lane, :) = src%smcmax(1, :)
    wb%smcwlt(lane, :) = src%smcwlt(1, :)
    wb%bexp(lane, :) = src%bexp(1, :)
    wb%dksat(lane, :) = src%dksat(1, :)
    wb%dwsat(lane, :) = src%dwsat(1, :)
    wb%rsmcmax(lane, :) = src%rsmcmax(1, :)
    wb%sat_two_pass(lane, :) = src%sat_two_pass(1, :)
    wb%expo_d(lane, :) = src%expo_d(1, :)
    wb%expo_k(lane, :) = src%expo_k(1, :)
    wb%imp_d(lane, :) = src%imp_d(1, :)
    wb%imp_k(lane, :) = src%imp_k(1, :)
    wb%kdt(lane) = src%kdt(1)
    wb%frzx(lane) = src%frzx(1)
    wb%slope(lane) = src%slope(1)
    wb%cmcmax(lane) = src%cmcmax(1)
    wb%smcwlt_entry1(lane) = src%smcwlt_entry1(1)
    wb%smcwlt_entry2(lane) = src%smcwlt_entry2(1)
    wb%pcp_two_pass(lane) = src%pcp_two_pass(1)
  end subroutine water_block_set_lane

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
  !>   wb           : the block's parameters (in)
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
  !> All arrays have the lane index first; per-lane scalars are arrays over lanes.
  pure subroutine srt_block(wb, dt, sh2o, sh2oa, sice, sicemax, dice, pcpdrp, edir, et, &
                            smcwlt_entry, diag, cond, rhs, runoff1, runoff2)
    type(water_block), intent(in) :: wb
    real(dp), intent(in)  :: dt
    real(dp), intent(in)  :: sh2o(wb%nlanes, wb%nsoil), sh2oa(wb%nlanes, wb%nsoil)
    real(dp), intent(in)  :: sice(wb%nlanes, wb%nsoil), et(wb%nlanes, wb%nsoil)
    real(dp), intent(in)  :: sicemax(wb%nlanes), dice(wb%nlanes), pcpdrp(wb%nlanes), edir(wb%nlanes)
    real(dp), intent(in)  :: smcwlt_entry(wb%nlanes)
    real(dp), intent(out) :: diag(wb%nlanes, wb%nsoil), cond(wb%nlanes, wb%nsoil)
    real(dp), intent(out) :: rhs(wb%nlanes, wb%nsoil), runoff1(wb%nlanes), runoff2(wb%nlanes)

    real(dp) :: wdf(wb%nlanes, wb%nsoil), wcnd(wb%nlanes, wb%nsoil)   ! WDF_k, WCND_k
    ! (option 2) ln FACTR, and the exponents of the diffusivity and conductivity
    real(dp) :: log_factr(wb%nlanes, wb%nsoil), arg_d(wb%nlanes, wb%nsoil), arg_k(wb%nlanes, wb%nsoil)
    real(dp) :: flux(wb%nlanes, 0:wb%nsoil)                           ! Q_k [m s-1]
    real(dp) :: pddum(wb%nlanes)                                      ! infiltration [m s-1]
    real(dp) :: kdt_arg(wb%nlanes), exp_kdt(wb%nlanes)                ! -KDT DT1, its exponential
    real(dp) :: smcav_l(wb%nlanes), dd_l(wb%nlanes)                   ! SMCAV and DD per lane
    real(dp) :: dt1, dmax, dd, val, ddt, px, infmax, acrt, sumf, fcr, rdt
    integer  :: nb, n, c, k

    nb = wb%nlanes
    n = wb%nsoil
    rdt = 1.0_dp/dt

    ! ---- diffusivity and conductivity of every layer (spec 8.5) ----
    if (wb%hyd_option == hyd_option_stock) then
      do k = 1, n
        do c = 1, nb
          call wdfcnd_stock(sh2oa(c, k), wb%smcmax(c, k), wb%bexp(c, k), wb%dksat(c, k), &
                            wb%dwsat(c, k), sicemax(c), wdf(c, k), wcnd(c, k))
        end do
      end do
    else
      ! wdfcnd_ice_impedance_prepared for all layers of all lanes, its logarithms
      ! and exponentials each in one vectorised call
      do k = 1, n
        do c = 1, nb
          arg_d(c, k) = max(factr_min, (sh2oa(c, k) + sice(c, k))*wb%rsmcmax(c, k))   ! FACTR
        end do
      end do
      call log_array_positive(nb*n, arg_d, log_factr)
      do k = 1, n
        do c = 1, nb
          ! (kept in exp_array_inrange's domain: below -708 the exponential is
          ! taken as exp(-708) ~ 3e-308 instead of 0; realistic exponents are
          ! above -200)
          arg_d(c, k) = max(wb%expo_d(c, k)*log_factr(c, k) + wb%imp_d(c, k)*sice(c, k), -708.0_dp)
          arg_k(c, k) = max(wb%expo_k(c, k)*log_factr(c, k) + wb%imp_k(c, k)*sice(c, k), -708.0_dp)
        end do
      end do
      call exp_array_inrange(nb*n, arg_d, wdf)
      call exp_array_inrange(nb*n, arg_k, wcnd)
      do k = 1, n
        do c = 1, nb
          wdf(c, k) = wb%dwsat(c, k)*wdf(c, k)
          wcnd(c, k) = wb%dksat(c, k)*wcnd(c, k)
        end do
      end do
    end if

    ! ---- infiltration (spec 8.3), lanes with water reaching the soil ----
    dt1 = dt/sec_per_day
    do c = 1, nb
      kdt_arg(c) = -wb%kdt(c)*dt1
    end do
    call exp_array_inrange(nb, kdt_arg, exp_kdt)          ! exp(-KDT DT1) of every lane
    ! DD = sum of DMAX_k of every lane, layer by layer over the lanes (the same
    ! order of additions as layer by layer in each lane); used where water
    ! reaches the soil (if it reaches no lane's soil, not computed)
    if (any(pcpdrp /= 0.0_dp)) then
      do c = 1, nb
        smcav_l(c) = wb%smcmax(c, 1) - smcwlt_entry(c)
        dd_l(c) = wb%dz(c, 1)*smcav_l(c)*(1.0_dp - (sh2oa(c, 1) + sice(c, 1) - smcwlt_entry(c)) &
                                          /smcav_l(c))
      end do
      do k = 2, n
        do c = 1, nb
          dmax = wb%dz(c, k)*smcav_l(c)*(1.0_dp - (sh2oa(c, k) + sice(c, k) - wb%smcwlt(c, k)) &
                                         /smcav_l(c))
          dd_l(c) = dd_l(c) + dmax
        end do
      end do
    end if
    do c = 1, nb
      pddum(c) = pcpdrp(c)
      runoff1(c) = 0.0_dp
      if (pcpdrp(c) /= 0.0_dp) then
        dd = dd_l(c)
        val = 1.0_dp - exp_kdt(c)
        ddt = dd*val
        px = pcpdrp(c)*dt
        if (px < 0.0_dp) px = 0.0_dp
        infmax = (px*(ddt/(px + ddt)))/dt
        if (wb%hyd_option == hyd_option_stock) then
          fcr = 1.0_dp
          if (dice(c) > dice_min) then
            acrt = cvfrz*wb%frzx(c)/dice(c)
            sumf = 1.0_dp + acrt**2/2.0_dp + acrt   ! CVFRZ = 3 series
            fcr = 1.0_dp - fexp(-acrt)*sumf
          end if
          infmax = infmax*fcr
        end if
        infmax = max(infmax, wcnd(c, 1))
        infmax = min(infmax, px/dt)
        if (pcpdrp(c) > infmax) then
          runoff1(c) = pcpdrp(c) - infmax
          pddum(c) = infmax
        end if
      end if
    end do

    ! ---- matrix coefficients (spec 8.4), rows scaled by Delta z_k / DT ----
    do c = 1, nb
      flux(c, 0) = pddum(c) - edir(c)
    end do
    do k = 1, n - 1
      do c = 1, nb
        cond(c, k) = wdf(c, k)*wb%rdist(c, k)
        flux(c, k) = cond(c, k)*(sh2o(c, k) - sh2o(c, k+1)) + wcnd(c, k)
      end do
    end do
    do c = 1, nb
      cond(c, n) = 0.0_dp
      flux(c, n) = wb%slope(c)*wcnd(c, n)
      runoff2(c) = flux(c, n)
      diag(c, 1) = wb%dz(c, 1)*rdt + cond(c, 1)
      rhs(c, 1) = flux(c, 0) - flux(c, 1) - et(c, 1)
    end do
    do k = 2, n
      do c = 1, nb
        diag(c, k) = wb%dz(c, k)*rdt + cond(c, k-1) + cond(c, k)
        rhs(c, k) = flux(c, k-1) - flux(c, k) - et(c, k)
      end do
    end do
  end subroutine srt_block

  !> Implicit update of the liquid water with porosity cap (excess passed
  !> down), 0.02 floor and fixed ice (legacy SSTEP without the canopy part,
  !> spec 8.4).
  !>   diag, cond, rhs : the scaled system from srt_block (in)
  !>   sh2o_in  : liquid water at the start of the step (in)
  !>   sh2o_out : new liquid water (out); smc : new total moisture (out)
  !>   wplus    : excess leaving the bottom layer [m] (out)
  !>   created  : water added by the 0.02 floor [m] (out)
  !> (All lanes of a block; arrays lane index first.)
  pure subroutine sstep_block(wb, diag, cond, rhs, sh2o_in, sice, sh2o_out, smc, wplus, created)
    type(water_block), intent(in) :: wb
    real(dp), intent(in)  :: diag(wb%nlanes, wb%nsoil), cond(wb%nlanes, wb%nsoil)
    real(dp), intent(in)  :: rhs(wb%nlanes, wb%nsoil)
    real(dp), intent(in)  :: sh2o_in(wb%nlanes, wb%nsoil), sice(wb%nlanes, wb%nsoil)
    real(dp), intent(out) :: sh2o_out(wb%nlanes, wb%nsoil), smc(wb%nlanes, wb%nsoil)
    real(dp), intent(out) :: wplus(wb%nlanes), created(wb%nlanes)

    real(dp) :: dsh2o(wb%nlanes, wb%nsoil)
    real(dp) :: stot, capped
    real(dp) :: excess   ! water above the porosity [m]
    real(dp) :: added    ! water added by the floor [m]
    integer  :: c, k

    call tridiag_solve_sym(wb%nlanes, wb%nsoil, diag, cond, rhs, dsh2o)

    wplus = 0.0_dp
    created = 0.0_dp
    do k = 1, wb%nsoil
      do c = 1, wb%nlanes
        ! (selections by MERGE of values computed unconditionally, so that the
        ! loop vectorises; created starts at +0 and only grows, so adding +0
        ! leaves it unchanged)
        sh2o_out(c, k) = sh2o_in(c, k) + dsh2o(c, k) + wplus(c)*wb%rdz(c, k)
        stot = sh2o_out(c, k) + sice(c, k)
        excess = (stot - wb%smcmax(c, k))*wb%dz(c, k)
        wplus(c) = merge(excess, 0.0_dp, stot > wb%smcmax(c, k))
        capped = min(stot, wb%smcmax(c, k))
        smc(c, k) = max(capped, smc_floor)
        added = (smc(c, k) - capped)*wb%dz(c, k)
        created(c) = created(c) + merge(added, 0.0_dp, smc(c, k) > capped)
        sh2o_out(c, k) = max(smc(c, k) - sice(c, k), 0.0_dp)
      end do
    end do
  end subroutine sstep_block

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
  !> (water_prepare + smflx_block; a caller stepping columns many times
  !> prepares them once and calls smflx_block every step.)
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
    type(water_block) :: wc
    real(dp) :: r1(1), r2(1), r3(1), dr(1), cr(1), cmc1(1)

    call water_prepare(nsoil, zsoil, cmcmax, kdt, frzx, slope, flimit, hyd_option, smcmax, bexp, &
                       dksat, dwsat, smcwlt, imp_exp_d, imp_exp_k, smcwlt_entry_pass1,         &
                       smcwlt_entry_pass2, wc)
    cmc1(1) = cmc
    call smflx_block(wc, dt, [prcp1], [edir1], [ec1], et1, [shdfac], cmc1, smc, sh2o, r1, r2, r3, &
                     dr, cr)
    cmc = cmc1(1)
    runoff1 = r1(1)
    runoff2 = r2(1)
    runoff3 = r3(1)
    drip = dr(1)
    water_created = cr(1)
  end subroutine smflx

  !> One soil-water and canopy-water step (spec 8.1-8.4) of every lane of a
  !> water_block.  Arguments as smflx, per lane (arrays lane index first):
  !>   smflx_block(wb, dt, prcp1, edir1, ec1, et1, shdfac, cmc, smc, sh2o,
  !>               runoff1, runoff2, runoff3, drip, water_created)
  !> Each lane's arithmetic is exactly that of a single column.  The two-pass
  !> scheme (spec 8.2) is decided per lane: if any lane needs it, the predictor
  !> is computed for the block and used by those lanes only; the other lanes'
  !> final pass uses their start-of-step state, as in the single pass.
  pure subroutine smflx_block(wb, dt, prcp1, edir1, ec1, et1, shdfac, cmc, smc, sh2o, &
                              runoff1, runoff2, runoff3, drip, water_created)
    type(water_block), intent(in) :: wb
    real(dp), intent(in)    :: dt
    real(dp), intent(in)    :: prcp1(wb%nlanes), edir1(wb%nlanes), ec1(wb%nlanes), shdfac(wb%nlanes)
    real(dp), intent(in)    :: et1(wb%nlanes, wb%nsoil)
    real(dp), intent(inout) :: cmc(wb%nlanes), smc(wb%nlanes, wb%nsoil), sh2o(wb%nlanes, wb%nsoil)
    real(dp), intent(out)   :: runoff1(wb%nlanes), runoff2(wb%nlanes), runoff3(wb%nlanes)
    real(dp), intent(out)   :: drip(wb%nlanes), water_created(wb%nlanes)

    ! scaled system of srt
    real(dp) :: diag(wb%nlanes, wb%nsoil), cond(wb%nlanes, wb%nsoil), rhs(wb%nlanes, wb%nsoil)
    real(dp) :: sice(wb%nlanes, wb%nsoil)     ! SICE, ice content held fixed [m3 m-3]
    real(dp) :: sh2o0(wb%nlanes, wb%nsoil)    ! liquid water at the start of the step
    real(dp) :: sh2ofg(wb%nlanes, wb%nsoil)   ! predictor of the two-pass scheme
    real(dp) :: sh2oa(wb%nlanes, wb%nsoil)    ! state of the coefficients in the final pass
    real(dp) :: smc_fg(wb%nlanes, wb%nsoil)   ! total moisture of the predictor (not used)
    real(dp) :: rhsct(wb%nlanes), excess, pcpdrp(wb%nlanes), sicemax(wb%nlanes), dice(wb%nlanes)
    real(dp) :: entry(wb%nlanes)               ! wilting point of SMCAV in the final pass
    real(dp) :: created(wb%nlanes)
    logical  :: two_pass(wb%nlanes)
    integer(int64) :: saturated(wb%nlanes)     ! 1 if FAC2 > FLIMIT (some layer), else 0
    integer(int64) :: two_pass_flag(wb%nlanes) ! two_pass as 1 / 0 (vectorised selections)
    integer  :: nb, n, c, k

    nb = wb%nlanes
    n = wb%nsoil

    ! ---- canopy interception (spec 8.1) ----
    do c = 1, nb
      rhsct(c) = shdfac(c)*prcp1(c) - ec1(c)
      drip(c) = 0.0_dp
      excess = cmc(c) + dt*rhsct(c)
      if (excess > wb%cmcmax(c)) drip(c) = excess - wb%cmcmax(c)
      pcpdrp(c) = (1.0_dp - shdfac(c))*prcp1(c) + drip(c)/dt
    end do

    ! ice, start-of-step liquid water, and the saturation test of spec 8.2,
    ! FAC2 = max_k sh2o/smcmax > FLIMIT, evaluated as sh2o > FLIMIT*smcmax in some layer
    ! (saturated: a 64-bit integer flag, not a LOGICAL, so that the loop vectorises)
    saturated = 0
    do k = 1, n
      do c = 1, nb
        sice(c, k) = smc(c, k) - sh2o(c, k)
        sh2o0(c, k) = sh2o(c, k)
        saturated(c) = ior(saturated(c), merge(1_int64, 0_int64, sh2o(c, k) > wb%sat_two_pass(c, k)))
      end do
    end do
    ! option 1 only: column maximum of ice (SICEMAX) and ice depth DICE = sum dz_k sice_k [m]
    sicemax = 0.0_dp
    dice = 0.0_dp
    if (wb%hyd_option == hyd_option_stock) then
      do c = 1, nb
        dice(c) = wb%dz(c, 1)*sice(c, 1)
        if (sice(c, 1) > sicemax(c)) sicemax(c) = sice(c, 1)
      end do
      do k = 2, n
        do c = 1, nb
          if (sice(c, k) > sicemax(c)) sicemax(c) = sice(c, k)
          dice(c) = dice(c) + wb%dz(c, k)*sice(c, k)
        end do
      end do
    end if

    ! ---- single- or two-pass decision (spec 8.2) ----
    do c = 1, nb
      two_pass(c) = ((pcpdrp(c)*dt) > wb%pcp_two_pass(c)) .or. saturated(c) /= 0
    end do
    if (any(two_pass)) then
      ! predictor (canopy not updated)
      call srt_block(wb, dt, sh2o0, sh2o0, sice, sicemax, dice, pcpdrp, edir1, et1, &
                     wb%smcwlt_entry1, diag, cond, rhs, runoff1, runoff2)
      call sstep_block(wb, diag, cond, rhs, sh2o0, sice, sh2ofg, smc_fg, runoff3, created)
      ! corrector: coefficients at the averaged state, restart from the original sh2o
      do c = 1, nb
        two_pass_flag(c) = merge(1_int64, 0_int64, two_pass(c))
      end do
      do k = 1, n
        do c = 1, nb
          sh2oa(c, k) = merge((sh2o0(c, k) + sh2ofg(c, k))*0.5_dp, sh2o0(c, k), &
                              two_pass_flag(c) /= 0)
        end do
      end do
      entry = merge(wb%smcwlt_entry2, wb%smcwlt_entry1, two_pass)
    else
      sh2oa = sh2o0
      entry = wb%smcwlt_entry1
    end if
    call srt_block(wb, dt, sh2o0, sh2oa, sice, sicemax, dice, pcpdrp, edir1, et1, entry, &
                   diag, cond, rhs, runoff1, runoff2)
    call sstep_block(wb, diag, cond, rhs, sh2o0, sice, sh2o, smc, runoff3, created)

    ! ---- canopy update (final pass only, spec 8.1) ----
    do c = 1, nb
      water_created(c) = created(c)
      cmc(c) = cmc(c) + dt*rhsct(c)
      if (cmc(c) < cmc_small) then
        water_created(c) = water_created(c) - cmc(c)
        cmc(c) = 0.0_dp
      end if
      cmc(c) = min(cmc(c), wb%cmcmax(c))
    end do
  end subroutine smflx_block

end module nt_soil_water
