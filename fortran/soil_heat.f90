!> Soil heat transfer with freeze-thaw for a block of soil columns.
!>
!> Finite-volume heat equation on the soil layers (temperatures at layer
!> mid-points), backward Euler for diffusion with start-of-step conductivities
!> and heat capacities, explicit lower-boundary flux to TBOT at ZBOT, and an
!> explicit phase-change source limited by the Koren et al. (1999) equilibrium
!> liquid water (legacy SHFLX -> HRT + HSTEP, TBND, TMPAVG, SNKSRC).
!> Specification: spec/physics.md sections 7.0-7.5; traps 4, 5, 14 of section 13.
!>
!> Organisation for speed (the arithmetic differs from the legacy code only
!> at round-off level; equations, branches, clamps and iterations are those of
!> the specification):
!>  - everything that depends only on the column's geometry and parameters
!>    (layer thicknesses, node distances and their reciprocals, TBND weights,
!>    the parameter-only terms of the conductivity and of FRH2O) is computed
!>    once per column by heat_prepare;
!>  - the HRT system of spec 7.1-7.2 is solved with each row k multiplied by
!>    Delta z_k C_k / DT (the same linear equations; see shflx_block): the
!>    assembly needs no division and the matrix is symmetric
!>    (nt_tridiagonal::tridiag_solve_sym);
!>  - the step works layer-wise in separate loops (properties, fluxes, freezing
!>    test, FRH2O of all freezing layers at once, phase change, solve), so that
!>    the independent work of different layers can overlap;
!>  - the columns of a block (nt_column_kernel) are solved together: every
!>    array has the lane (column) index first and every loop over layers runs
!>    over lanes inside, so that the compiler vectorises across columns; each
!>    lane's arithmetic is exactly that of a single column.
!>
!> Vectorisation and reproducibility.  The exponentials and logarithms of the
!> step's loops (saturated conductivity, FRH2O) come from the array routines
!> of nt_elementary, plain IEEE arithmetic that vectorises and gives the same
!> bits on every instruction set and C library.  (gfortran would otherwise
!> vectorise loops calling exp/log with glibc's libmvec, whose results differ
!> from the scalar libm and between glibc versions.)
module nt_soil_heat
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_constants, only: tfreez, lsubf, rhowater
  use nt_tridiagonal, only: tridiag_solve_sym
  use nt_thermal_conductivity, only: tc_static_terms, tc_layers
  use nt_supercooled_water, only: frh2o, frh2o_layers, frh2o_constants
  implicit none
  private

  public :: heat_block, heat_block_allocate, heat_prepare, heat_block_set_lane, shflx_block
  public :: shflx, tbnd_weight, tmpavg, snksrc

  ! Volumetric heat capacities local to the legacy HRT [J m-3 K-1], spec 7.1 / section 9
  ! (note ch2o = 4.2e6 here, not 1000*cph2o).
  real(dp), parameter :: ch2o = 4.2e6_dp     !< liquid water
  real(dp), parameter :: cice = 2.106e6_dp   !< ice
  real(dp), parameter :: cair = 1004.0_dp    !< air

  !> Geometry- and parameter-only quantities of the heat step of a block of
  !> columns (lanes), lane index first: heat_prepare fills a one-lane block for
  !> one column, heat_block_set_lane copies it into a lane of a block, and
  !> shflx_block steps all lanes.  Layer k spans zsoil(k-1)..zsoil(k)
  !> (zsoil(0) = 0); its node is at the mid-point.
  type :: heat_block
    integer :: nlanes = 0
    integer :: nsoil = 0
    integer :: tc_option = 0
    !> Delta z_k = zsoil(k-1) - zsoil(k), layer thickness [m]
    real(dp), allocatable :: dz(:, :)
    !> 1/d_{k+1/2} [m-1]: d_{k+1/2} = (zsoil(k-1) - zsoil(k+1))/2 is the distance
    !> between the nodes of layers k and k+1 (DDZ2 of HRT); for k = N,
    !> d = (zsoil(N-1) + zsoil(N))/2 - ZBOT, the distance from node N to TBOT
    real(dp), allocatable :: rdist(:, :)
    !> TBND weight w_k = (z_up - zsoil(k))/(z_up - z_b) (spec 7.4): the bottom-interface
    !> temperature of layer k is T_k + (T_{k+1} - T_k) w_k (T_{N+1} = TBOT)
    real(dp), allocatable :: wbnd(:, :)
    !> rho_w Lf Delta z_k, latent heat of melting a unit volume fraction [J m-2]
    real(dp), allocatable :: lf_dz(:, :)
    !> 1/(rho_w Lf Delta z_k) [m2 J-1]
    real(dp), allocatable :: rlf_dz(:, :)
    ! per-layer parameters (spec 7.1, 7.3, 7.6)
    real(dp), allocatable :: smcmax(:, :), csoil(:, :)
    real(dp), allocatable :: rsmcmax(:, :)   !< 1/smcmax
    integer,  allocatable :: tc_class(:, :)
    real(dp), allocatable :: tc_kappa_unfrozen(:, :), tc_kappa_frozen(:, :)
    real(dp), allocatable :: tc_solid(:, :), tc_dry(:, :)
    real(dp), allocatable :: psisat_frz(:, :)
    !> BX and the constant part of the FRH2O residual (frh2o_constants)
    real(dp), allocatable :: bx_frz(:, :), log_a_frz(:, :)
  end type heat_block

contains

  !> TBND interpolation weight of the bottom interface of layer k (spec 7.4, legacy TBND):
  !>   z_up = 0 (k = 1) else zsoil(k-1);  z_b = zsoil(k+1) (k < nsoil) else 2 zbot - zsoil(nsoil)
  !>   T_interface = T_u + (T_b - T_u) w,  w = (z_up - zsoil(k))/(z_up - z_b)
  !> with T_u the temperature of layer k and T_b that of layer k+1 (TBOT for k = nsoil).
  !>   nsoil : number of layers (in)
  !>   zsoil : depth of the layer bottoms, negative [m] (in)
  !>   zbot  : depth of TBOT, negative [m] (in)
  !>   k     : layer index, 1..nsoil (in)
  !>   w     : weight [-] (result)
  pure function tbnd_weight(nsoil, zsoil, zbot, k) result(w)
    integer,  intent(in) :: nsoil, k
    real(dp), intent(in) :: zsoil(nsoil), zbot
    real(dp) :: w
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
    w = (zup - zsoil(k))/(zup - zb)
  end function tbnd_weight

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
    tavg = layer_average_temperature(tup, tm, tdn, dz)
  end function tmpavg

  !> TMPAVG (see tmpavg; private so that the compiler may inline it in shflx_block).
  elemental function layer_average_temperature(tup, tm, tdn, dz) result(tavg)
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
  end function layer_average_temperature

  !> The freezing test of spec 7.1: phase change is computed for a layer with
  !> ice, or with its temperature or an interface temperature below T0.
  !>   smc, sh2o : total and liquid moisture [m3 m-3] (in)
  !>   tup, tm, tdn : upper interface, layer and lower interface temperature [K] (in)
  elemental logical function needs_phase_change(smc, sh2o, tup, tm, tdn)
    real(dp), intent(in) :: smc, sh2o, tup, tm, tdn
    needs_phase_change = (smc - sh2o > 0.0_dp) .or. (min(tup, tm, tdn) < tfreez)
  end function needs_phase_change

  !> The limits of SNKSRC (spec 7.5) on the new liquid water X:
  !>   if X < SH2O and X < FREE:  X = SH2O if FREE > SH2O else FREE   (freezing)
  !>   if X > SH2O and X > FREE:  X = SH2O if FREE < SH2O else FREE   (thawing)
  !>   X = min(max(X, 0), SMC)
  !> written without branches (the same selections, so exactly the same
  !> result): freezing (X < SH2O) gives max(X, min(FREE, SH2O)), thawing
  !> (X > SH2O) min(X, max(FREE, SH2O)), and either form returns X = SH2O.
  !>   xh2o : liquid water if all net heat went into phase change [m3 m-3] (in)
  !>   sh2o : liquid water at the start of the step [m3 m-3] (in)
  !>   free : equilibrium liquid water FRH2O [m3 m-3] (in)
  !>   smc  : total moisture [m3 m-3] (in)
  !>   x    : new liquid water [m3 m-3] (result)
  elemental function limit_phase_change(xh2o, sh2o, free, smc) result(x)
    real(dp), intent(in) :: xh2o, sh2o, free, smc
    real(dp) :: x
    x = merge(max(xh2o, min(free, sh2o)), min(xh2o, max(free, sh2o)), xh2o < sh2o)
    x = min(max(x, 0.0_dp), smc)
  end function limit_phase_change

  !> Phase-change source of one layer (spec 7.5, legacy SNKSRC, Koren et al.
  !> 1999 eq. 18): the liquid content moves towards the value reached if all
  !> net heat gain went into phase change, limited by the equilibrium liquid
  !> water FRH2O(tavg) and by [0, smc]; returns the latent heat exchanged.
  !> (shflx_block does the same inline with precomputed layer factors.)
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
    xh2o = limit_phase_change(sh2o + qtot*dt/(rhowater*lsubf*dz), sh2o, free, smc)
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

  !> (Re)allocate a heat_block for nlanes lanes of nsoil layers (only if the
  !> shape changes).
  pure subroutine heat_block_allocate(hb, nlanes, nsoil)
    type(heat_block), intent(inout) :: hb
    integer, intent(in) :: nlanes, nsoil
    if (allocated(hb%dz)) then
      if (hb%nlanes == nlanes .and. hb%nsoil == nsoil) return
      deallocate(hb%dz, hb%rdist, hb%wbnd, hb%lf_dz, hb%rlf_dz, hb%smcmax, hb%rsmcmax,     &
                 hb%csoil, hb%tc_class, hb%tc_kappa_unfrozen, hb%tc_kappa_frozen, hb%tc_solid, &
                 hb%tc_dry, hb%psisat_frz, hb%bx_frz, hb%log_a_frz)
    end if
    allocate(hb%dz(nlanes, nsoil), hb%rdist(nlanes, nsoil), hb%wbnd(nlanes, nsoil),           &
             hb%lf_dz(nlanes, nsoil), hb%rlf_dz(nlanes, nsoil), hb%smcmax(nlanes, nsoil),      &
             hb%rsmcmax(nlanes, nsoil), hb%csoil(nlanes, nsoil), hb%tc_class(nlanes, nsoil),   &
             hb%tc_kappa_unfrozen(nlanes, nsoil), hb%tc_kappa_frozen(nlanes, nsoil),          &
             hb%tc_solid(nlanes, nsoil), hb%tc_dry(nlanes, nsoil), hb%psisat_frz(nlanes, nsoil), &
             hb%bx_frz(nlanes, nsoil), hb%log_a_frz(nlanes, nsoil))
    hb%nlanes = nlanes
    hb%nsoil = nsoil
  end subroutine heat_block_allocate

  !> Geometry- and parameter-only quantities of the heat step of one column,
  !> as a one-lane heat_block (call once per column).
  !> Requires nsoil >= 2.  Arguments as shflx (per layer), except that
  !> (quartz, tc_dry_coef) are replaced by the parameter-only conductivity
  !> factors of nt_thermal_conductivity::tc_static_terms:
  !>   tc_solid_term : lambda_s**(1-smcmax) per layer (solid_term) (in; layers >= 2)
  !>   tc_dry        : dry conductivity per layer [W m-1 K-1] (thkdry) (in; layers >= 2)
  !> and
  !>   hc : the column's one-lane heat_block (inout)
  pure subroutine heat_prepare(nsoil, zsoil, zbot, smcmax, bexp_frz, psisat_frz, tc_option, &
                               tc_class, tc_kappa_unfrozen, tc_kappa_frozen, tc_solid_term, &
                               tc_dry, csoil, hc)
    integer,  intent(in) :: nsoil
    real(dp), intent(in) :: zsoil(nsoil), zbot
    real(dp), intent(in) :: smcmax(nsoil), bexp_frz(nsoil), psisat_frz(nsoil)
    integer,  intent(in) :: tc_option, tc_class(nsoil)
    real(dp), intent(in) :: tc_kappa_unfrozen(nsoil), tc_kappa_frozen(nsoil)
    real(dp), intent(in) :: tc_solid_term(nsoil), tc_dry(nsoil), csoil(nsoil)
    type(heat_block), intent(inout) :: hc
    real(dp) :: ztop
    integer  :: k

    call heat_block_allocate(hc, 1, nsoil)
    ztop = 0.0_dp
    do k = 1, nsoil
      hc%dz(1, k) = ztop - zsoil(k)              ! (0 - zsoil(1) == -zsoil(1) exactly)
      ztop = zsoil(k)
      hc%lf_dz(1, k) = rhowater*lsubf*hc%dz(1, k)
      hc%rlf_dz(1, k) = 1.0_dp/hc%lf_dz(1, k)
      hc%wbnd(1, k) = tbnd_weight(nsoil, zsoil, zbot, k)
    end do
    hc%rdist(1, 1) = 2.0_dp/(-zsoil(2))           ! 1/(-zsoil(2)/2), DDZ of layer 1
    do k = 2, nsoil - 1
      hc%rdist(1, k) = 2.0_dp/(zsoil(k-1) - zsoil(k+1))
    end do
    hc%rdist(1, nsoil) = 1.0_dp/(0.5_dp*(zsoil(nsoil-1) + zsoil(nsoil)) - zbot)

    hc%tc_option = tc_option
    hc%smcmax(1, :) = smcmax
    hc%rsmcmax(1, :) = 1.0_dp/smcmax
    hc%csoil(1, :) = csoil
    hc%tc_class(1, :) = tc_class
    hc%tc_kappa_unfrozen(1, :) = tc_kappa_unfrozen
    hc%tc_kappa_frozen(1, :) = tc_kappa_frozen
    hc%tc_solid(1, :) = tc_solid_term
    hc%tc_dry(1, :) = tc_dry
    hc%psisat_frz(1, :) = psisat_frz
    call frh2o_constants(smcmax, bexp_frz, psisat_frz, hc%bx_frz(1, :), hc%log_a_frz(1, :))
  end subroutine heat_prepare

  !> Copy lane 1 of src (a column's heat_prepare) into lane `lane` of hb
  !> (allocated with heat_block_allocate for src's number of layers).
  pure subroutine heat_block_set_lane(hb, lane, src)
    type(heat_block), intent(inout) :: hb
    integer, intent(in) :: lane
    type(heat_block), intent(in) :: src
    hb%tc_option = src%tc_option
    hb%dz(lane, :) = src%dz(1, :)
    hb%rdist(lane, :) = src%rdist(1, :)
    hb%wbnd(lane, :) = src%wbnd(1, :)
    hb%lf_dz(lane, :) = src%lf_dz(1, :)
    hb%rlf_dz(lane, :) = src%rlf_dz(1, :)
    hb%smcmax(lane, :) = src%smcmax(1, :)
    hb%rsmcmax(lane, :) = src%rsmcmax(1, :)
    hb%csoil(lane, :) = src%csoil(1, :)
    hb%tc_class(lane, :) = src%tc_class(1, :)
    hb%tc_kappa_unfrozen(lane, :) = src%tc_kappa_unfrozen(1, :)
    hb%tc_kappa_frozen(lane, :) = src%tc_kappa_frozen(1, :)
    hb%tc_solid(lane, :) = src%tc_solid(1, :)
    hb%tc_dry(lane, :) = src%tc_dry(1, :)
    hb%psisat_frz(lane, :) = src%psisat_frz(1, :)
    hb%bx_frz(lane, :) = src%bx_frz(1, :)
    hb%log_a_frz(lane, :) = src%log_a_frz(1, :)
  end subroutine heat_block_set_lane

  !> One soil heat step (spec 7.0-7.2, legacy SHFLX = HRT + HSTEP):
  !> assembles the tridiagonal backward-Euler system with start-of-step
  !> conductivities (interface k-1/k uses layer k-1's conductivity; layer 1/2
  !> uses df1) and heat capacities, applies the explicit phase-change source of
  !> each layer that meets the freezing test, solves, and updates stc.
  !> Requires nsoil >= 2.  (tc_static_terms + heat_prepare + shflx_block; a
  !> caller stepping a column many times prepares it once and calls shflx_block.)
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

    real(dp) :: tc_solid_term(nsoil), tc_dry(nsoil), g_top1(1), f_bottom1(1)
    type(heat_block) :: hc

    ! layer 1 uses df1: its static terms are not needed
    tc_solid_term(1) = 0.0_dp
    tc_dry(1) = 0.0_dp
    call tc_static_terms(tc_option, quartz(2:nsoil), smcmax(2:nsoil), tc_class(2:nsoil), &
                         tc_dry_coef(2:nsoil), tc_solid_term(2:nsoil), tc_dry(2:nsoil))
    call heat_prepare(nsoil, zsoil, zbot, smcmax, bexp_frz, psisat_frz, tc_option, tc_class, &
                      tc_kappa_unfrozen, tc_kappa_frozen, tc_solid_term, tc_dry, csoil, hc)
    call shflx_block(hc, dt, [yy], [zz1], [df1], [tbot], smc, stc, sh2o, g_top1, f_bottom1)
    g_top = g_top1(1)
    f_bottom = f_bottom1(1)
  end subroutine shflx

  !> One soil heat step (spec 7.0-7.2) of every lane of a heat_block.
  !>
  !> In the notation of spec 7.1, with C_k the start-of-step heat capacity,
  !> lambda_k the start-of-step conductivity (lambda_1 = DF1) and
  !>   G_k = lambda_k / d_{k+1/2}    (conductance of the interface below layer k,
  !>                                  i.e. DF1K*DDZ of HRT; k = N: to TBOT),
  !>   G_0 = DF1/(ZZ1 Delta z_1/2)   (surface conductance of the linearised top boundary),
  !>   F_k = G_k (T_k - T_{k+1})     (explicit downward flux below layer k, T_{N+1} = TBOT),
  !>   F_0 = G_0 (YY - T_1)          (explicit surface flux, = SSOILh),
  !> HRT's rows are
  !>   AI(k) = -G_{k-1}/(Delta z_k C_k),  CI(k) = -G_k/(Delta z_k C_k) (CI(N) = 0),
  !>   BI(k) = -(AI(k) + CI(k)) (+ G_0/(Delta z_1 C_1) in row 1),
  !>   RHSTS(k) = (QTOT_k + TSNSR_k)/(Delta z_k C_k),  QTOT_k = F_{k-1} - F_k,
  !> and HSTEP solves (AI DT, 1 + BI DT, CI DT | RHSTS DT).  Row k multiplied by
  !> Delta z_k C_k/DT gives the same equations as
  !>   -G_{k-1} dT_{k-1} + (Delta z_k C_k/DT + G_{k-1} + G_k) dT_k - G_k dT_{k+1} = QTOT_k + TSNSR_k
  !> (G_0 only on the diagonal, G_N only in the explicit F_N), which is solved
  !> here: no division per layer in the assembly, and a symmetric matrix.
  !>
  !> Every array has the lane index first and every loop over layers runs over
  !> lanes inside, so that the compiler vectorises across columns; each lane's
  !> arithmetic is exactly that of a single column (a column gives the same bits
  !> alone or in any block).
  !>   hb    : the block's parameters (heat_prepare, heat_block_set_lane) (in)
  !>   dt    : time step [s] (in)
  !>   yy, zz1, df1, tbot : per lane, as shflx (in)
  !>   smc   : total moisture (lane, layer) [m3 m-3] (in)
  !>   stc, sh2o : (lane, layer), as shflx (inout)
  !>   g_top, f_bottom : per lane, as shflx (out)
  pure subroutine shflx_block(hb, dt, yy, zz1, df1, tbot, smc, stc, sh2o, g_top, f_bottom)
    type(heat_block), intent(in) :: hb
    real(dp), intent(in)    :: dt
    real(dp), intent(in)    :: yy(hb%nlanes), zz1(hb%nlanes), df1(hb%nlanes), tbot(hb%nlanes)
    real(dp), intent(in)    :: smc(hb%nlanes, hb%nsoil)
    real(dp), intent(inout) :: stc(hb%nlanes, hb%nsoil), sh2o(hb%nlanes, hb%nsoil)
    real(dp), intent(out)   :: g_top(hb%nlanes), f_bottom(hb%nlanes)

    ! G_k, interface conductance below layer k [W m-2 K-1]; G_N = 0
    real(dp) :: cond(hb%nlanes, hb%nsoil)
    ! F_k, explicit downward flux below layer k [W m-2]
    real(dp) :: flux(hb%nlanes, 0:hb%nsoil)
    ! temperature of the interface below layer k (TBND); tint(:, 0) = TSURF [K]
    real(dp) :: tint(hb%nlanes, 0:hb%nsoil)
    real(dp) :: diag(hb%nlanes, hb%nsoil)    ! diagonal of the scaled system [W m-2 K-1]
    real(dp) :: rhs(hb%nlanes, hb%nsoil)     ! QTOT_k + TSNSR_k [W m-2]
    real(dp) :: dstc(hb%nlanes, hb%nsoil)    ! temperature increment [K]
    real(dp) :: hcpct(hb%nlanes, hb%nsoil)   ! C_k, start-of-step heat capacity [J m-3 K-1]
    ! lambda_k, start-of-step conductivity (lambda_1 = DF1) [W m-1 K-1]
    real(dp) :: lambda(hb%nlanes, hb%nsoil)
    real(dp) :: tavg(hb%nlanes, hb%nsoil)    ! layer-average temperature TMPAVG [K]
    real(dp) :: free(hb%nlanes, hb%nsoil)    ! equilibrium liquid water FRH2O [m3 m-3]
    ! 1 where the layer meets the freezing test of spec 7.1, else 0 (an integer
    ! of the width of a double, not a LOGICAL, so that the loops vectorise)
    integer(int64) :: need(hb%nlanes, hb%nsoil)
    real(dp) :: g0(hb%nlanes)  ! G_0, surface conductance [W m-2 K-1]
    real(dp) :: rdt            ! 1/DT [s-1]
    real(dp) :: xh2o           ! new liquid water [m3 m-3]
    real(dp) :: qnew           ! QTOT_k + TSNSR_k with that water [W m-2]
    real(dp) :: tlo, thi       ! lowest and highest of a layer's three TMPAVG temperatures [K]
    ! first / last layer of a lane with T0 between tlo and thi; a layer index or 0
    integer(int64) :: kmixed_lo(hb%nlanes), kmixed_hi(hb%nlanes), kk
    integer  :: nb, n, c, k

    nb = hb%nlanes
    n = hb%nsoil
    rdt = 1.0_dp/dt

    ! ---- start-of-step heat capacities and interface conductances (spec 7.1, 7.3) ----
    do k = 1, n
      do c = 1, nb
        hcpct(c, k) = heat_capacity(sh2o(c, k), smc(c, k), hb%smcmax(c, k), hb%csoil(c, k))
      end do
    end do
    lambda(:, 1) = df1
    ! layers 2..n of all lanes are one contiguous run of (n-1)*nb elements
    call tc_layers(hb%tc_option, nb*(n - 1), smc(:, 2:n), hb%smcmax(:, 2:n), sh2o(:, 2:n),     &
                   hb%tc_class(:, 2:n), hb%tc_kappa_unfrozen(:, 2:n), hb%tc_kappa_frozen(:, 2:n), &
                   hb%tc_solid(:, 2:n), hb%tc_dry(:, 2:n), lambda(:, 2:n), hb%rsmcmax(:, 2:n))
    do k = 1, n
      do c = 1, nb
        cond(c, k) = lambda(c, k)*hb%rdist(c, k)
      end do
    end do

    ! ---- explicit fluxes and interface temperatures (start-of-step temperatures) ----
    do c = 1, nb
      g0(c) = df1(c)/(zz1(c)*(0.5_dp*hb%dz(c, 1)))
      flux(c, 0) = g0(c)*(yy(c) - stc(c, 1))
      tint(c, 0) = (yy(c) + (zz1(c) - 1.0_dp)*stc(c, 1))/zz1(c)          ! TSURF
    end do
    do k = 1, n - 1
      do c = 1, nb
        flux(c, k) = cond(c, k)*(stc(c, k) - stc(c, k+1))
        tint(c, k) = stc(c, k) + (stc(c, k+1) - stc(c, k))*hb%wbnd(c, k)
      end do
    end do
    do c = 1, nb
      flux(c, n) = cond(c, n)*(stc(c, n) - tbot(c))                        ! explicit bottom flux
      tint(c, n) = stc(c, n) + (tbot(c) - stc(c, n))*hb%wbnd(c, n)
      f_bottom(c) = flux(c, n)
      cond(c, n) = 0.0_dp                                                  ! no implicit coupling to TBOT
    end do

    ! ---- net heat gain and phase change of each layer (spec 7.1 test, 7.4, 7.5) ----
    ! These loops are written without branches, so that they vectorise across
    ! lanes (selections by MERGE; -fno-trapping-math lets the compiler
    ! if-convert them).  TMPAVG of a layer whose three temperatures lie on one
    ! side of T0 is (T_up + 2 T_k + T_dn)/4 in both of its branches; that is
    ! computed for every layer, and the layers that T0 crosses (few: at the
    ! freezing and thawing fronts) get the full TMPAVG afterwards.
    ! (kmixed_lo/hi: the first and last such layer of each lane, n + 1 and 0 if none)
    do c = 1, nb
      kmixed_lo(c) = n + 1
      kmixed_hi(c) = 0
    end do
    do k = 1, n
      do c = 1, nb
        rhs(c, k) = flux(c, k-1) - flux(c, k)                              ! QTOT_k
        tavg(c, k) = (tint(c, k-1) + 2.0_dp*stc(c, k) + tint(c, k))/4.0_dp
        tlo = min(tint(c, k-1), stc(c, k), tint(c, k))
        thi = max(tint(c, k-1), stc(c, k), tint(c, k))
        kk = merge(int(k, int64), 0_int64, tlo < tfreez .and. .not. (thi < tfreez))
        kmixed_hi(c) = max(kmixed_hi(c), kk)
        kmixed_lo(c) = min(kmixed_lo(c), merge(kk, int(n + 1, int64), kk > 0))
      end do
    end do
    do c = 1, nb
      do k = int(kmixed_lo(c)), int(kmixed_hi(c))
        tlo = min(tint(c, k-1), stc(c, k), tint(c, k))
        thi = max(tint(c, k-1), stc(c, k), tint(c, k))
        if (tlo < tfreez .and. .not. (thi < tfreez)) &
          tavg(c, k) = layer_average_temperature(tint(c, k-1), stc(c, k), tint(c, k), hb%dz(c, k))
      end do
    end do
    do k = 1, n
      do c = 1, nb
        need(c, k) = merge(1_int64, 0_int64, needs_phase_change(smc(c, k), sh2o(c, k), &
                                                                tint(c, k-1), stc(c, k), tint(c, k)))
      end do
    end do
    ! FRH2O is independent per layer: all layers of all lanes in one call (it
    ! reads tavg where need only)
    call frh2o_layers(nb*n, need, tavg, smc, sh2o, hb%smcmax, hb%psisat_frz, hb%bx_frz, &
                      hb%log_a_frz, free)
    do k = 1, n
      do c = 1, nb
        ! where need: X = SH2O + QTOT DT/(rho_w Lf Delta z), limited;
        ! TSNSR = -rho_w Lf Delta z (X - SH2O)/DT
        xh2o = limit_phase_change(sh2o(c, k) + rhs(c, k)*dt*hb%rlf_dz(c, k), sh2o(c, k), &
                                  free(c, k), smc(c, k))
        qnew = rhs(c, k) - hb%lf_dz(c, k)*(xh2o - sh2o(c, k))*rdt          ! QTOT_k + TSNSR_k
        rhs(c, k) = merge(qnew, rhs(c, k), need(c, k) /= 0)
        sh2o(c, k) = merge(xh2o, sh2o(c, k), need(c, k) /= 0)
      end do
    end do

    ! ---- implicit step (spec 7.2, rows scaled by Delta z_k C_k / DT) ----
    do c = 1, nb
      diag(c, 1) = hb%dz(c, 1)*hcpct(c, 1)*rdt + g0(c) + cond(c, 1)
    end do
    do k = 2, n
      do c = 1, nb
        diag(c, k) = hb%dz(c, k)*hcpct(c, k)*rdt + cond(c, k-1) + cond(c, k)
      end do
    end do
    call tridiag_solve_sym(nb, n, diag, cond, rhs, dstc)
    do k = 1, n
      do c = 1, nb
        stc(c, k) = stc(c, k) + dstc(c, k)
      end do
    end do
    do c = 1, nb
      g_top(c) = g0(c)*(yy(c) - stc(c, 1))
    end do
  end subroutine shflx_block

end module nt_soil_heat
