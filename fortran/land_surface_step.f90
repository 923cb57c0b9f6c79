!> One land-surface time step of one soil column (the SFLX of Noah LSM 3.4.1 as
!> modified for the Qinghai-Tibet Plateau, "Noah-Tibet").
!>
!> This module orchestrates the process modules in the order of the physics
!> specification (spec/physics.md section 3.0):
!>   green-fraction interpolation -> new snow -> snow cover, albedo, emissivity
!>   -> surface conductance and provisional ground heat flux -> roughness for
!>   the next exchange-coefficient call -> Penman potential evaporation ->
!>   canopy resistance -> snow-free (NOPAC) or snow (SNOPAC) branch: water then
!>   heat -> post-processing.
!>
!> The step is split around its two soil solves so that the driver can solve
!> the soil water and heat equations of a block of columns at once
!> (nt_column_kernel): land_surface_step does everything up to the soil water
!> step and leaves that step's inputs in a step_work; the driver solves the
!> water step (nt_soil_water::smflx_block); step_after_water does the rest of
!> NOPAC/SNOPAC (including snow compaction) and SFLX's post-processing and
!> returns the linearised top boundary of the heat solve in a heat_request; the
!> driver solves the heat step (nt_soil_heat::shflx_block); finish_step does
!> what depends on the new soil temperatures (the snow-free skin temperature,
!> ground and sensible heat fluxes).  Nothing computed after a solve in SFLX
!> feeds back into it (snow compaction uses the start-of-step soil
!> temperature), so the order of operations of every quantity is the
!> specification's.
!>
!> Legacy quirks.  The legacy code routes soil parameters through argument
!> aliasing so that some terms use the class of the namelist Soil_type_index
!> ("P_S"), the bottom layer's class, or no class at all (spec 3.1, quirks
!> Q1-Q5).  All of that routing is resolved once per column in
!> `prepare_column` below, into explicit "effective" parameters; the process
!> modules only see plain per-layer arrays.  With `legacy_quirks = .false.`
!> every term uses the parameters of the layer it belongs to.
module nt_land_surface_step
  use nt_kinds, only: dp
  use nt_constants, only: tfreez, lvh2o, lsubs, lsubf, sigma_sb, cph2o, cpice
  use nt_parameter_layout
  use nt_thermal_conductivity, only: tc_static_terms, tc_class_other
  use nt_soil_heat, only: heat_block, heat_prepare
  use nt_soil_water, only: water_block, water_prepare
  use nt_potential_evaporation, only: penman
  use nt_canopy_resistance, only: canres
  use nt_evapotranspiration, only: evapo
  use nt_snow, only: snow_new, csnow, snfrac, alcalc, snowz0, snowpack
  implicit none
  private

  public :: column_params, column_options, step_forcing, step_diagnostics, heat_request, step_work
  public :: prepare_column, land_surface_step, step_after_water, finish_step

  ! Constants of the SFLX post-processing (spec 3.9, 9): cp and R as coded there.
  real(dp), parameter :: cp_sflx = 1004.5_dp   !< cp of module_model_constants (7*287/2)
  real(dp), parameter :: r_sflx = 287.04_dp     !< R of the Noah LSM module
  real(dp), parameter :: snow_swe_min = 1.0e-7_dp  !< SNEQV below this is removed at step start
  real(dp), parameter :: esdmin = 1.0e-6_dp     !< smallest snowpack kept in SNOPAC [m]
  real(dp), parameter :: snow_cover_cap = 0.98_dp
  real(dp), parameter :: full_snow_cover_df = 0.97_dp  !< above this cover, DF1 = snow conductivity

  !> Run-wide physics switches.
  type :: column_options
    integer :: sfcdif = 1
    integer :: iz0tlnd = 0
    integer :: thermal_conductivity = 2
    integer :: frozen_hydraulics = 2
    logical :: legacy_quirks = .true.
    logical :: use_monthly_albedo = .false.
    logical :: use_monthly_lai = .false.
  end type column_options

  !> All parameters of one column, with the legacy routing already resolved.
  type :: column_params
    integer :: nsoil = 0
    integer :: nroot = 0
    real(dp), allocatable :: dz(:), zsoil(:), rtdis(:)
    ! per-layer soil parameters of each layer's own class (P_k)
    real(dp), allocatable :: bexp(:), smcdry(:), smcmax(:), smcref(:), psisat(:)
    real(dp), allocatable :: dksat(:), dwsat(:), smcwlt(:), quartz(:), csoil(:)
    integer, allocatable :: tc_class(:)
    real(dp), allocatable :: tc_kappa_unfrozen(:), tc_kappa_frozen(:), tc_dry_coef(:)
    ! effective (routed) per-layer parameters
    real(dp), allocatable :: bexp_frz(:), psisat_frz(:)   !< freezing (FRH2O); Q1 in layer 1
    real(dp), allocatable :: imp_exp_d(:), imp_exp_k(:)   !< ice-impedance exponents; Q5
    real(dp), allocatable :: smcwlt_veg(:), smcref_veg(:) !< CANRES / TRANSP wilting and reference
    real(dp), allocatable :: tc_solid(:), tc_dry(:)       !< parameter-only conductivity factors
    ! effective scalars
    real(dp) :: df1_quartz, df1_smcmax      !< SFLX-level surface conductivity (spec 3.5)
    integer :: df1_class
    real(dp) :: df1_solid, df1_dry
    real(dp) :: nopac_quartz, nopac_smcmax  !< snow-free heat solve conductivity (spec 5; Q3)
    integer :: nopac_class
    real(dp) :: nopac_solid, nopac_dry
    real(dp) :: devap_smcmax, devap_smcdry  !< direct soil evaporation
    real(dp) :: kdt, frzx, flimit
    real(dp) :: smcwlt_entry1, smcwlt_entry2  !< infiltration capacity SMCAV, pass 1 / 2 (Q2)
    ! vegetation
    real(dp) :: rsmin, rgl, hs, snup, laimin, laimax, emissmin, emissmax
    real(dp) :: albedomin, albedomax, z0min, z0max, shdmin, shdmax, snoalb
    logical :: bare = .false.
    real(dp) :: topt, rsmax, cmcmax, cfactr
    ! general and site
    real(dp) :: slope, sbeta, fxexp, salp, lvcoef, zbot, czil, tbot
    real(dp) :: exp_minus_salp   !< exp(-salp), for the snow cover fraction
    real(dp) :: zlvl, zlvl_wind, z0h_beta, snow_cond_mult
    real(dp) :: monthly(12, nmon)
    type(heat_block) :: heat    !< geometry/parameter-only terms of the soil heat step (one lane)
    type(water_block) :: water  !< geometry/parameter-only terms of the soil water step (one lane)
  end type column_params

  !> Meteorology and derived quantities of one step (computed by the driver).
  type :: step_forcing
    real(dp) :: sfctmp      !< air temperature [K]
    real(dp) :: sfcprs      !< pressure [Pa]
    real(dp) :: q2          !< specific humidity [kg kg-1]
    real(dp) :: q2sat       !< saturation specific humidity at sfctmp [kg kg-1]
    real(dp) :: dqsdt2      !< d q2sat / dT [kg kg-1 K-1]
    real(dp) :: th2         !< potential temperature at zlvl [K]
    real(dp) :: soldn       !< downward shortwave [W m-2]
    real(dp) :: solnet      !< absorbed shortwave [W m-2]
    real(dp) :: lwdn        !< absorbed longwave = LW * previous emissivity [W m-2]
    real(dp) :: prcp        !< precipitation [kg m-2 s-1]
    real(dp) :: ffrozp      !< frozen fraction of precipitation [-]
    real(dp) :: shdfac      !< green vegetation fraction [-]
    real(dp) :: alb_month   !< monthly background albedo (if used) [-]
    real(dp) :: lai_month   !< monthly LAI (if used) [m2 m-2]
  end type step_forcing

  !> The soil heat solve a step asks for (spec 5, 6.3), and what finish_step
  !> needs afterwards.
  type :: heat_request
    real(dp) :: yy = 0      !< YY, effective surface temperature of the top boundary [K]
    real(dp) :: zz1 = 1     !< ZZ1, top-boundary factor [-] (1 under snow)
    real(dp) :: df1 = 0     !< conductivity of layer 1 used by the solve [W m-1 K-1]
    logical  :: snow_free = .true.  !< NOPAC: the skin temperature follows the new stc(1)
    real(dp) :: sheat_coef = 0      !< -(CH cp p)/(R T2V): sensible heat = coef (TH2 - T1) [W m-2 K-1]
    real(dp) :: th2 = 0             !< potential air temperature [K]
  end type heat_request

  !> What a column's step keeps between its phases (land_surface_step, the
  !> driver's soil water step, step_after_water): the soil water step's inputs
  !> and outputs and the quantities of SFLX, NOPAC and SNOPAC used on both sides
  !> of it (names and units as in land_surface_step).
  type :: step_work
    logical :: snow_free = .true.   !< NOPAC (no snow on the ground at the step's start)
    real(dp) :: shdfac = 0, sncovr = 0, sndens = 0, ssoil = 0, df1 = 0
    real(dp) :: veg_reduction = 1   !< exp(SBETA SHDFAC), the vegetation factor of DF1
    real(dp) :: fdown = 0, t24 = 0, etp = 0, rch = 1, epsca = 0, rr = 1, t2v = 1
    real(dp) :: edir = 0, ec = 0, ett = 0, esnow = 0, snow_created = 0
    real(dp) :: etns = 0, esnow2 = 0, esd = 0, dew = 0, eta1 = 0, ett1 = 0
    !> inputs of the soil water step (smflx): water reaching the canopy top,
    !> direct soil and canopy evaporation [m s-1]
    !> (the transpiration per layer, et1, goes to land_surface_step's argument)
    real(dp) :: prcp1 = 0, edir1 = 0, ec1 = 0
    !> outputs of the soil water step: runoff [m s-1], bottom excess [m], water
    !> created by its clamps [m]
    real(dp) :: runoff1 = 0, runoff2 = 0, runoff3 = 0, created = 0
  end type step_work

  !> Fluxes and diagnostics of one step.
  type :: step_diagnostics
    real(dp) :: sheat = 0, eta = 0, ssoil = 0, g_top = 0, f_bottom = 0
    real(dp) :: evaporation = 0, runoff1 = 0, runoff2 = 0, water_clamped = 0
    real(dp) :: etp = 0, edir = 0, ec = 0, ett = 0, sncovr = 0
    integer :: status = status_ok
  end type step_diagnostics

contains

  !> Fill a column_params from the flat parameter arrays and resolve the
  !> legacy routing (spec 3.1) into effective parameters.
  subroutine prepare_column(nlay, layer_par, column_par, monthly, opt, p, status)
    integer, intent(in) :: nlay
    real(dp), intent(in) :: layer_par(nlpar, nlay)
    real(dp), intent(in) :: column_par(ncpar)
    real(dp), intent(in) :: monthly(12, nmon)
    type(column_options), intent(in) :: opt
    type(column_params), intent(inout) :: p
    integer, intent(out) :: status
    integer :: k

    status = status_ok
    if (p%nsoil /= nlay) call allocate_column(p, nlay)

    p%dz = layer_par(lp_thickness, :)
    p%zsoil(1) = -p%dz(1)
    do k = 2, nlay
      p%zsoil(k) = p%zsoil(k-1) - p%dz(k)
    end do
    p%bexp = layer_par(lp_bexp, :)
    p%smcdry = layer_par(lp_smcdry, :)
    p%smcmax = layer_par(lp_smcmax, :)
    p%smcref = layer_par(lp_smcref, :)
    p%psisat = layer_par(lp_psisat, :)
    p%dksat = layer_par(lp_dksat, :)
    p%dwsat = layer_par(lp_dwsat, :)
    p%smcwlt = layer_par(lp_smcwlt, :)
    p%quartz = layer_par(lp_quartz, :)
    p%csoil = layer_par(lp_csoil, :)
    p%tc_class = nint(layer_par(lp_tc_class, :))
    p%tc_kappa_unfrozen = layer_par(lp_tc_kappa_unfrozen, :)
    p%tc_kappa_frozen = layer_par(lp_tc_kappa_frozen, :)
    p%tc_dry_coef = layer_par(lp_tc_dry_coef, :)

    ! vegetation, general and site parameters
    p%nroot = max(nint(column_par(cp_nroot)), 1)
    if (p%nroot > nlay) then
      status = status_bad_parameter
      p%nroot = nlay
    end if
    p%rsmin = column_par(cp_rsmin)
    p%rgl = column_par(cp_rgl)
    p%hs = column_par(cp_hs)
    p%snup = column_par(cp_snup)
    p%laimin = column_par(cp_laimin)
    p%laimax = column_par(cp_laimax)
    p%emissmin = column_par(cp_emissmin)
    p%emissmax = column_par(cp_emissmax)
    p%albedomin = column_par(cp_albedomin)
    p%albedomax = column_par(cp_albedomax)
    p%z0min = column_par(cp_z0min)
    p%z0max = column_par(cp_z0max)
    p%bare = column_par(cp_bare) > 0.5_dp
    p%shdmin = column_par(cp_shdmin)
    p%shdmax = column_par(cp_shdmax)
    p%snoalb = column_par(cp_snoalb)
    p%topt = column_par(cp_topt)
    p%rsmax = column_par(cp_rsmax)
    p%cmcmax = column_par(cp_cmcmax)
    p%cfactr = column_par(cp_cfactr)
    p%slope = column_par(cp_slope)
    p%sbeta = column_par(cp_sbeta)
    p%fxexp = column_par(cp_fxexp)
    p%salp = column_par(cp_salp)
    p%exp_minus_salp = exp(-p%salp)
    p%lvcoef = column_par(cp_lvcoef)
    p%zbot = column_par(cp_zbot)
    p%czil = column_par(cp_czil)
    p%tbot = column_par(cp_tbot)
    p%zlvl = column_par(cp_zlvl)
    p%zlvl_wind = column_par(cp_zlvl_wind)
    p%z0h_beta = column_par(cp_z0h_beta)
    p%snow_cond_mult = column_par(cp_snow_cond_mult)
    p%flimit = column_par(cp_flimit)
    p%monthly = monthly

    ! Root distribution: uniform density by thickness (spec 4).
    p%rtdis = 0.0_dp
    do k = 1, p%nroot
      p%rtdis(k) = -p%dz(k) / p%zsoil(p%nroot)
    end do

    ! Effective parameters.  Start from the consistent choice: each term uses
    ! the parameters of the layer it belongs to.
    p%bexp_frz = p%bexp
    p%psisat_frz = p%psisat
    p%imp_exp_d = layer_par(lp_ice_impedance, :)
    p%imp_exp_k = layer_par(lp_ice_impedance, :)
    p%smcwlt_veg = p%smcwlt
    p%smcref_veg = p%smcref
    p%df1_quartz = p%quartz(1)
    p%df1_smcmax = p%smcmax(1)
    p%df1_class = p%tc_class(1)
    p%nopac_quartz = p%quartz(1)
    p%nopac_smcmax = p%smcmax(1)
    p%nopac_class = p%tc_class(1)
    p%devap_smcmax = p%smcmax(1)
    p%devap_smcdry = p%smcdry(1)
    p%kdt = column_par(cp_refkdt) * p%dksat(1) / column_par(cp_refdk)
    p%frzx = column_par(cp_frzk) * (p%smcmax(1) / p%smcref(1)) * (0.412_dp / 0.468_dp)
    p%smcwlt_entry1 = p%smcwlt(1)
    p%smcwlt_entry2 = p%smcwlt(1)

    if (opt%legacy_quirks) then
      ! Q4: the namelist Soil_type_index class (P_S) drives infiltration,
      ! the surface conductance, direct evaporation and transpiration.
      p%kdt = column_par(cp_refkdt) * column_par(cp_sfc_dksat) / column_par(cp_refdk)
      p%frzx = column_par(cp_frzk) * (column_par(cp_sfc_smcmax) / column_par(cp_sfc_smcref)) &
               * (0.412_dp / 0.468_dp)
      p%df1_quartz = column_par(cp_sfc_quartz)
      p%df1_smcmax = column_par(cp_sfc_smcmax)
      p%nopac_quartz = column_par(cp_sfc_quartz)
      p%devap_smcmax = column_par(cp_sfc_smcmax)
      p%devap_smcdry = column_par(cp_sfc_smcdry)
      p%smcwlt_veg = column_par(cp_sfc_smcwlt)
      p%smcref_veg = column_par(cp_sfc_smcref)
      ! Q1: layer-1 supercooled water uses b of the bottom layer's class and the
      ! saturated suction of P_S.
      p%bexp_frz(1) = p%bexp(nlay)
      p%psisat_frz(1) = column_par(cp_sfc_psisat)
      ! Q2: second-pass infiltration capacity uses the bottom layer's wilting point.
      p%smcwlt_entry2 = p%smcwlt(nlay)
      ! Q3: the snow-free heat solve evaluates layer 1 with an undefined class,
      ! which in the shipped build never selects gravel or bedrock.
      p%nopac_class = tc_class_other
      ! Q5: the ice-impedance exponent is computed from SATDW / SATDK where a
      ! soil property was intended, giving about 17.25 for every class.
      do k = 1, nlay
        p%imp_exp_d(k) = 1.25_dp * (p%dwsat(k) - 3.0_dp)**2 + 6.0_dp
        p%imp_exp_k(k) = 1.25_dp * (p%dksat(k) - 3.0_dp)**2 + 6.0_dp
      end do
    end if

    ! Conductivity factors that depend only on parameters, computed once.
    call tc_static_terms(opt%thermal_conductivity, p%quartz, p%smcmax, p%tc_class, p%tc_dry_coef, &
                         p%tc_solid, p%tc_dry)
    call tc_static_terms(opt%thermal_conductivity, p%df1_quartz, p%df1_smcmax, p%df1_class, &
                         p%tc_dry_coef(1), p%df1_solid, p%df1_dry)
    call tc_static_terms(opt%thermal_conductivity, p%nopac_quartz, p%nopac_smcmax, p%nopac_class, &
                         p%tc_dry_coef(1), p%nopac_solid, p%nopac_dry)
    call heat_prepare(nlay, p%zsoil, p%zbot, p%smcmax, p%bexp_frz, p%psisat_frz, &
                      opt%thermal_conductivity, p%tc_class, p%tc_kappa_unfrozen, &
                      p%tc_kappa_frozen, p%tc_solid, p%tc_dry, p%csoil, p%heat)
    call water_prepare(nlay, p%zsoil, p%cmcmax, p%kdt, p%frzx, p%slope, p%flimit, &
                       opt%frozen_hydraulics, p%smcmax, p%bexp, p%dksat, p%dwsat, p%smcwlt, &
                       p%imp_exp_d, p%imp_exp_k, p%smcwlt_entry1, p%smcwlt_entry2, p%water)
  end subroutine prepare_column

  subroutine allocate_column(p, n)
    type(column_params), intent(inout) :: p
    integer, intent(in) :: n
    if (allocated(p%dz)) then
      deallocate(p%dz, p%zsoil, p%rtdis, p%bexp, p%smcdry, p%smcmax, p%smcref, p%psisat, &
                 p%dksat, p%dwsat, p%smcwlt, p%quartz, p%csoil, p%tc_class, p%tc_kappa_unfrozen, &
                 p%tc_kappa_frozen, p%tc_dry_coef, p%bexp_frz, p%psisat_frz, p%imp_exp_d, &
                 p%imp_exp_k, p%smcwlt_veg, p%smcref_veg, p%tc_solid, p%tc_dry)
    end if
    allocate(p%dz(n), p%zsoil(n), p%rtdis(n), p%bexp(n), p%smcdry(n), p%smcmax(n), p%smcref(n), &
             p%psisat(n), p%dksat(n), p%dwsat(n), p%smcwlt(n), p%quartz(n), p%csoil(n), &
             p%tc_class(n), p%tc_kappa_unfrozen(n), p%tc_kappa_frozen(n), p%tc_dry_coef(n), &
             p%bexp_frz(n), p%psisat_frz(n), p%imp_exp_d(n), p%imp_exp_k(n), p%smcwlt_veg(n), &
             p%smcref_veg(n), p%tc_solid(n), p%tc_dry(n))
    p%nsoil = n
  end subroutine allocate_column

  !> Advance one column by one step (spec 3.0-3.9, 5, 6) up to its soil water
  !> step; the rest is the driver's soil water step with the inputs left in w,
  !> step_after_water, the driver's soil heat step with the request it
  !> returns, and finish_step.
  !>
  !> State in: stc [K], smc, sh2o [m3 m-3] (nsoil).  In/out: t1 skin temperature [K],
  !> cmc canopy water [m], snowh snow depth [m], sneqv snow water equivalent
  !> [m], albedo and emissi (returned for the next step's radiation), z0 and
  !> z0brd roughness [m], snotime1 snow age [s], q1 surface humidity.
  !> ch [m s-1] and ribb come from the exchange-coefficient call before this step.
  subroutine land_surface_step(p, opt, dt, f, ch, ribb, stc, smc, sh2o, t1, cmc, snowh, sneqv, &
                               albedo, emissi, z0, z0brd, snotime1, q1, d, w, et1_out, df1_soil)
    type(column_params), intent(in) :: p
    type(column_options), intent(in) :: opt
    real(dp), intent(in) :: dt
    type(step_forcing), intent(in) :: f
    real(dp), intent(in) :: ch, ribb
    ! (assumed shape: the driver passes the lane's row of its block arrays)
    real(dp), intent(in) :: stc(:), smc(:), sh2o(:)
    real(dp), intent(inout) :: t1, cmc, snowh, sneqv, albedo, emissi, z0, z0brd, snotime1, q1
    type(step_diagnostics), intent(inout) :: d
    type(step_work), intent(inout) :: w
    !> transpiration per layer [m s-1], an input of the soil water step: set in
    !> the root layers unless the step fails (below the roots it is always 0,
    !> which the caller's array holds)
    real(dp), intent(inout) :: et1_out(:)
    !> conductivity of the surface layer at the step's start, tc_from_static_terms
    !> with the df1_* terms (spec 3.5; the driver computes it for a block's lanes
    !> together) [W m-1 K-1]
    real(dp), intent(in) :: df1_soil

    integer :: n
    real(dp) :: shdfac, embrd, xlai, alb, frac
    real(dp) :: sndens, sncond, sncovr, sn_new, prcpf
    logical :: snowng, frzgra
    real(dp) :: df1, dsoil, dtot, ssoil, fdown, t2v
    real(dp) :: t24, etp, rch, epsca, rr, flx2, rc, pc
    real(dp) :: edir, ec, ett, esnow
    real(dp) :: snow_created

    n = p%nsoil
    d%status = status_ok
    shdfac = f%shdfac
    if (p%bare) shdfac = 0.0_dp

    ! --- green-fraction interpolation of the vegetation parameters (spec 3.2)
    xlai = f%lai_month
    alb = f%alb_month
    if (shdfac >= p%shdmax) then
      embrd = p%emissmax
      if (.not. opt%use_monthly_lai) xlai = p%laimax
      if (.not. opt%use_monthly_albedo) alb = p%albedomin
      z0brd = p%z0max
    else if (shdfac <= p%shdmin) then
      embrd = p%emissmin
      if (.not. opt%use_monthly_lai) xlai = p%laimin
      if (.not. opt%use_monthly_albedo) alb = p%albedomax
      z0brd = p%z0min
    else if (p%shdmax > p%shdmin) then
      frac = max(min((shdfac - p%shdmin) / (p%shdmax - p%shdmin), 1.0_dp), 0.0_dp)
      embrd = (1.0_dp - frac) * p%emissmin + frac * p%emissmax
      if (.not. opt%use_monthly_lai) xlai = (1.0_dp - frac) * p%laimin + frac * p%laimax
      if (.not. opt%use_monthly_albedo) alb = (1.0_dp - frac) * p%albedomax + frac * p%albedomin
      z0brd = (1.0_dp - frac) * p%z0min + frac * p%z0max
    else
      embrd = 0.5_dp * p%emissmin + 0.5_dp * p%emissmax
      if (.not. opt%use_monthly_lai) xlai = 0.5_dp * p%laimin + 0.5_dp * p%laimax
      if (.not. opt%use_monthly_albedo) alb = 0.5_dp * p%albedomin + 0.5_dp * p%albedomax
      z0brd = 0.5_dp * p%z0min + 0.5_dp * p%z0max
    end if

    ! --- snow state, precipitation type, new snow (spec 3.3)
    snowng = f%prcp > 0.0_dp .and. f%ffrozp > 0.5_dp
    frzgra = f%prcp > 0.0_dp .and. (.not. snowng) .and. t1 <= tfreez
    snow_created = 0.0_dp
    if (sneqv <= snow_swe_min) then
      snow_created = -sneqv        ! a trace of snow is removed (legacy threshold)
      sneqv = 0.0_dp
      sndens = 0.0_dp
      snowh = 0.0_dp
      sncond = 1.0_dp
    else
      sndens = sneqv / snowh
      if (sndens > 1.0_dp) then
        d%status = status_snow_density
        return
      end if
      ! (with new snow, the conductivity is that of the new density, below)
      if (.not. (snowng .or. frzgra)) sncond = csnow(sndens, p%snow_cond_mult)
    end if
    if (snowng .or. frzgra) then
      sn_new = f%prcp * dt * 0.001_dp
      sneqv = sneqv + sn_new
      prcpf = 0.0_dp
      call snow_new(f%sfctmp, sn_new, snowh, sndens)
      sncond = csnow(sndens, p%snow_cond_mult)
    else
      prcpf = f%prcp
    end if

    ! --- snow cover, albedo, emissivity (spec 3.4)
    if (sneqv == 0.0_dp) then
      sncovr = 0.0_dp
      albedo = alb
      emissi = embrd
    else
      call snfrac(sneqv, p%snup, p%salp, p%exp_minus_salp, sncovr)
      sncovr = min(sncovr, snow_cover_cap)
      call alcalc(alb, p%snoalb, embrd, sncovr, snowng, dt, p%lvcoef, snotime1, albedo, emissi)
    end if

    ! --- surface-layer conductance and provisional ground heat flux (spec 3.5)
    df1 = df1_soil
    w%veg_reduction = exp(p%sbeta * shdfac)    ! (again after the water step)
    df1 = df1 * w%veg_reduction
    if (sncovr > full_snow_cover_df) df1 = sncond
    dsoil = -0.5_dp * p%zsoil(1)
    if (sneqv == 0.0_dp) then
      ssoil = df1 * (t1 - stc(1)) / dsoil
    else
      dtot = snowh + dsoil
      df1 = ((snowh / dtot) * sncond + (dsoil / dtot) * df1) * sncovr + df1 * (1.0_dp - sncovr)
      ssoil = df1 * (t1 - stc(1)) / dtot
    end if

    ! --- roughness for the next exchange-coefficient call (spec 3.6)
    if (sncovr > 0.0_dp) then
      call snowz0(sncovr, z0brd, snowh, z0)
    else
      z0 = z0brd
    end if

    ! --- potential evaporation and canopy resistance (spec 3.7, 3.8)
    fdown = f%solnet + f%lwdn
    t2v = f%sfctmp * (1.0_dp + 0.61_dp * f%q2)
    call penman(f%sfctmp, f%sfcprs, ch, t2v, f%th2, f%prcp, fdown, ssoil, f%q2, f%q2sat, &
                f%dqsdt2, emissi, sncovr, snowng, frzgra, t24, etp, rch, epsca, rr, flx2)
    pc = 0.0_dp
    rc = 0.0_dp
    if (shdfac > 0.0_dp) then
      call canres(p%nroot, f%soldn, ch, f%sfctmp, f%q2, f%sfcprs, f%q2sat, f%dqsdt2, emissi, &
                  xlai, p%rsmin, p%rgl, p%hs, p%topt, p%rsmax, p%zsoil(1:p%nroot), &
                  sh2o(1:p%nroot), p%smcwlt_veg(1:p%nroot), p%smcref_veg(1:p%nroot), rc, pc)
    end if

    ! --- snow-free or snow branch (spec 5, 6), up to the soil water step
    esnow = 0.0_dp
    edir = 0.0_dp
    ec = 0.0_dp
    ett = 0.0_dp
    w%snow_free = sneqv == 0.0_dp
    if (w%snow_free) then
      call nopac_to_water()
    else
      call snopac_to_water()
    end if

    ! what the rest of the step needs (step_after_water)
    w%shdfac = shdfac
    w%sncovr = sncovr
    w%sndens = sndens
    w%ssoil = ssoil
    w%df1 = df1
    w%fdown = fdown
    w%t24 = t24
    w%etp = etp
    w%rch = rch
    w%epsca = epsca
    w%rr = rr
    w%t2v = t2v
    w%edir = edir
    w%ec = ec
    w%ett = ett
    w%esnow = esnow
    w%snow_created = snow_created

  contains

    !> Snow-free branch (spec 5) up to its soil water step.
    subroutine nopac_to_water()
      real(dp) :: prcp1, etp1, dew
      real(dp) :: eta1, edir1, ec1, ett1, et1(n)

      prcp1 = f%prcp * 0.001_dp
      etp1 = etp * 0.001_dp
      dew = 0.0_dp
      edir1 = 0.0_dp
      ec1 = 0.0_dp
      ett1 = 0.0_dp
      eta1 = 0.0_dp
      et1 = 0.0_dp
      if (etp > 0.0_dp) then
        call evapo(n, p%nroot, dt, etp1, smc(1), sh2o, p%devap_smcmax, p%devap_smcdry, p%fxexp, &
                   shdfac, cmc, p%cmcmax, p%cfactr, pc, p%rtdis, p%smcwlt_veg, p%smcref_veg, &
                   eta1, edir1, ec1, et1, ett1)
      else
        ! dew: water input, no evaporation (edir1 = ec1 = et1 = 0)
        dew = -etp1
        prcp1 = prcp1 + dew
      end if
      w%prcp1 = prcp1
      w%edir1 = edir1
      w%ec1 = ec1
      et1_out(1:p%nroot) = et1(1:p%nroot)   ! (below the roots: 0, as the driver's array)
      w%ett1 = ett1
      w%eta1 = eta1
      w%dew = dew
    end subroutine nopac_to_water

    !> Snow branch (spec 6) up to its soil water step.
    subroutine snopac_to_water()
      real(dp), parameter :: snoexp = 2.0_dp
      real(dp) :: prcp1, etp1, beta, etns, esnow2, etanrg, flx1, flx3, denom, t12a, t12b, t12
      real(dp) :: esd, ex, snomlt, seh, t14
      real(dp) :: eta1, edir1, ec1, ett1, etns1, et1(n)

      prcp1 = prcpf * 0.001_dp
      beta = 1.0_dp
      etns = 0.0_dp
      esnow2 = 0.0_dp
      edir1 = 0.0_dp
      ec1 = 0.0_dp
      ett1 = 0.0_dp
      et1 = 0.0_dp
      esd = sneqv

      ! Sublimation / deposition and evaporation from the snow-free part (6.1).
      if (etp <= 0.0_dp) then
        if (ribb >= 0.1_dp .and. fdown > 150.0_dp) then
          etp = (min(etp * (1.0_dp - ribb), 0.0_dp) * sncovr / snow_cover_cap &
                 + etp * (snow_cover_cap - sncovr)) / snow_cover_cap
        end if
        if (etp == 0.0_dp) beta = 0.0_dp
        etp1 = etp * 0.001_dp
        esnow2 = etp1 * dt
        etanrg = etp * ((1.0_dp - sncovr) * lvh2o + sncovr * lsubs)
      else
        etp1 = etp * 0.001_dp
        if (sncovr < 1.0_dp) then
          call evapo(n, p%nroot, dt, etp1, smc(1), sh2o, p%devap_smcmax, p%devap_smcdry, &
                     p%fxexp, shdfac, cmc, p%cmcmax, p%cfactr, pc, p%rtdis, p%smcwlt_veg, &
                     p%smcref_veg, eta1, edir1, ec1, et1, ett1)
          etns1 = eta1
          edir1 = edir1 * (1.0_dp - sncovr)
          ec1 = ec1 * (1.0_dp - sncovr)
          et1(1:p%nroot) = et1(1:p%nroot) * (1.0_dp - sncovr)   ! (0 below the roots)
          ett1 = ett1 * (1.0_dp - sncovr)
          etns1 = etns1 * (1.0_dp - sncovr)
          etns = etns1 * 1000.0_dp
        end if
        esnow = etp * sncovr
        esnow2 = esnow * 0.001_dp * dt
        etanrg = esnow * lsubs + etns * lvh2o
      end if
      edir = edir1 * 1000.0_dp
      ec = ec1 * 1000.0_dp
      ett = ett1 * 1000.0_dp

      ! Snow-surface temperature and melt (6.2).
      if (snowng) then
        flx1 = cpice * f%prcp * (t1 - f%sfctmp)
      else if (f%prcp > 0.0_dp) then
        flx1 = cph2o * f%prcp * (t1 - f%sfctmp)
      else
        flx1 = 0.0_dp
      end if
      dsoil = -0.5_dp * p%zsoil(1)
      dtot = snowh + dsoil
      denom = 1.0_dp + df1 / (dtot * rr * rch)
      t12a = ((fdown - flx1 - flx2 - emissi * sigma_sb * t24) / rch + f%th2 - f%sfctmp &
              - etanrg / rch) / rr
      t12b = df1 * stc(1) / (dtot * rr * rch)
      t12 = (f%sfctmp + t12a + t12b) / denom
      if (t12 <= tfreez) then
        t1 = t12
        ssoil = df1 * (t1 - stc(1)) / dtot
        if (esd - esnow2 < 0.0_dp) snow_created = snow_created - (esd - esnow2)
        esd = max(0.0_dp, esd - esnow2)
        flx3 = 0.0_dp
        ex = 0.0_dp
        snomlt = 0.0_dp
      else
        t1 = tfreez * sncovr**snoexp + t12 * (1.0_dp - sncovr**snoexp)
        beta = 1.0_dp
        ssoil = df1 * (t1 - stc(1)) / dtot
        if (esd - esnow2 <= esdmin) then
          snow_created = snow_created - (esd - esnow2)
          esd = 0.0_dp
          ex = 0.0_dp
          snomlt = 0.0_dp
          flx3 = 0.0_dp
        else
          esd = esd - esnow2
          seh = rch * (t1 - f%th2)
          t14 = t1 * t1
          t14 = t14 * t14
          flx3 = fdown - flx1 - flx2 - emissi * sigma_sb * t14 - ssoil - seh - etanrg
          if (flx3 <= 0.0_dp) flx3 = 0.0_dp
          ex = flx3 * 0.001_dp / lsubf
          snomlt = ex * dt
          if (esd - snomlt >= esdmin) then
            esd = esd - snomlt
          else
            ex = esd / dt
            flx3 = ex * 1000.0_dp * lsubf
            snomlt = esd
            esd = 0.0_dp
          end if
        end if
        prcp1 = prcp1 + ex
      end if

      ! the soil water step (6.3) and what follows: the driver, step_after_water
      w%prcp1 = prcp1
      w%edir1 = edir1
      w%ec1 = ec1
      et1_out(1:p%nroot) = et1(1:p%nroot)   ! (below the roots: 0, as the driver's array)
      w%ett1 = ett1
      w%etns = etns
      w%esnow2 = esnow2
      w%esd = esd
    end subroutine snopac_to_water

  end subroutine land_surface_step

  !> The step after the driver's soil water step (smflx with the inputs in w,
  !> outputs stored back in w): the rest of NOPAC or SNOPAC (spec 5, 6.3,
  !> 6.4) and SFLX's post-processing (spec 3.9).  Returns the request h of the
  !> soil heat solve (the driver's; then finish_step).
  !>   p, opt, dt, f, ch, emissi : as land_surface_step (in)
  !>   stc, smc, sh2o    : soil state after the water step (in)
  !>   t1, snowh, sneqv, q1 : as land_surface_step (inout)
  !>   d : the step's diagnostics (inout);  w : from land_surface_step and the water step (in)
  !>   h : the heat solve's request (out)
  subroutine step_after_water(p, opt, dt, f, ch, emissi, stc, smc, sh2o, t1, snowh, sneqv, q1, d, &
                              w, h, df1n_soil)
    type(column_params), intent(in) :: p
    type(column_options), intent(in) :: opt
    real(dp), intent(in) :: dt
    type(step_forcing), intent(in) :: f
    real(dp), intent(in) :: ch, emissi
    real(dp), intent(in) :: stc(:), smc(:), sh2o(:)
    real(dp), intent(inout) :: t1, snowh, sneqv, q1
    type(step_diagnostics), intent(inout) :: d
    type(step_work), intent(in) :: w
    type(heat_request), intent(out) :: h
    !> conductivity of the surface layer after the water step, tc_from_static_terms
    !> with the nopac_* terms (spec 5, quirk Q3; the driver computes it for a
    !> block's lanes together) [W m-1 K-1]
    real(dp), intent(in) :: df1n_soil

    real(dp) :: shdfac, sncovr, sndens, ssoil, df1, fdown, t24, etp, rch, epsca, rr, t2v
    real(dp) :: eta_kin, eta, edir, ec, ett, esnow, lvh_eff
    real(dp) :: snow_created, soil_created

    shdfac = w%shdfac
    sncovr = w%sncovr
    sndens = w%sndens
    ssoil = w%ssoil
    df1 = w%df1
    fdown = w%fdown
    t24 = w%t24
    etp = w%etp
    rch = w%rch
    epsca = w%epsca
    rr = w%rr
    t2v = w%t2v
    edir = w%edir
    ec = w%ec
    ett = w%ett
    esnow = w%esnow
    snow_created = w%snow_created
    soil_created = w%created

    if (w%snow_free) then
      call nopac_after_water()
      eta_kin = eta
    else
      call snopac_after_water()
    end if

    ! --- post-processing (spec 3.9)
    q1 = f%q2 + eta_kin * cp_sflx / rch
    h%sheat_coef = -(ch * cp_sflx * f%sfcprs) / (r_sflx * t2v)   ! sensible heat: finish_step
    h%th2 = f%th2
    edir = edir * lvh2o
    ec = ec * lvh2o
    ett = ett * lvh2o
    esnow = esnow * lsubs
    lvh_eff = (1.0_dp - sncovr) * lvh2o + sncovr * lsubs
    etp = etp * lvh_eff
    if (etp > 0.0_dp) then
      eta = edir + ec + ett + esnow
    else
      eta = etp
    end if
    d%eta = eta
    d%ssoil = ssoil
    d%etp = etp
    d%edir = edir
    d%ec = ec
    d%ett = ett
    d%sncovr = sncovr
    ! Water created or removed by the legacy clamps (soil moisture floor, snow
    ! thresholds), tracked where each clamp acts so that the water balance
    ! P - E - R + clamped = d(storage) can be checked independently.
    d%water_clamped = (soil_created + snow_created) * 1000.0_dp / dt

  contains

    !> Snow-free branch (spec 5) after its soil water step.
    subroutine nopac_after_water()
      real(dp) :: beta, yy, zz1, df1n

      if (etp > 0.0_dp) then
        eta = w%eta1 * 1000.0_dp
        d%evaporation = eta
      else
        d%evaporation = -w%dew * 1000.0_dp
      end if
      if (etp <= 0.0_dp) then
        beta = 0.0_dp
        eta = etp
        if (etp < 0.0_dp) beta = 1.0_dp
      else
        beta = eta / etp
      end if
      edir = w%edir1 * 1000.0_dp
      ec = w%ec1 * 1000.0_dp
      ett = w%ett1 * 1000.0_dp
      d%runoff1 = w%runoff1 * 1000.0_dp
      d%runoff2 = (w%runoff2 + w%runoff3 / dt) * 1000.0_dp

      ! Soil heat with the moisture after the water step (spec 5; quirk Q3).
      df1n = df1n_soil
      df1n = df1n * w%veg_reduction           ! exp(SBETA SHDFAC)
      yy = f%sfctmp + ((fdown - emissi * sigma_sb * t24) / rch + f%th2 - f%sfctmp - beta * epsca) / rr
      zz1 = df1n / (-0.5_dp * p%zsoil(1) * rch * rr) + 1.0_dp
      ! the heat solve, then T1 and SSOIL from the new stc(1): finish_step
      h%yy = yy
      h%zz1 = zz1
      h%df1 = df1n
      h%snow_free = .true.
    end subroutine nopac_after_water

    !> Snow branch (spec 6.3, 6.4) after its soil water step.
    subroutine snopac_after_water()
      real(dp) :: esd, yy, zz1

      esd = w%esd
      zz1 = 1.0_dp
      yy = stc(1) - 0.5_dp * ssoil * p%zsoil(1) * zz1 / df1
      ! the heat solve (the driver's, after this step; it changes neither T1
      ! nor anything below)
      h%yy = yy
      h%zz1 = zz1
      h%df1 = df1
      h%snow_free = .false.

      ! Compaction (6.4).
      if (esd > 0.0_dp) then
        call snowpack(esd, dt, snowh, sndens, t1, yy)
      else
        esd = 0.0_dp
        snowh = 0.0_dp
        sndens = 0.0_dp
        sncovr = 0.0_dp
      end if
      sneqv = esd
      eta_kin = esnow + w%etns

      d%evaporation = (w%edir1 + w%ec1 + w%ett1) * 1000.0_dp + w%esnow2 / dt * 1000.0_dp
      d%runoff1 = w%runoff1 * 1000.0_dp
      d%runoff2 = (w%runoff2 + w%runoff3 / dt) * 1000.0_dp
    end subroutine snopac_after_water

  end subroutine step_after_water

  !> The end of a step after the soil heat solve of request h (spec 5, 3.9):
  !> in the snow-free branch the skin temperature T1 = (YY + (ZZ1-1) STC(1))/ZZ1
  !> and the ground heat flux from the new stc(1); then the sensible heat flux.
  !>   p   : the column's parameters (in)
  !>   h   : the request land_surface_step returned (in)
  !>   stc : soil temperature after the heat solve [K] (in)
  !>   t1  : skin temperature [K] (inout)
  !>   d   : the step's diagnostics (inout: ssoil, sheat)
  pure subroutine finish_step(p, h, stc, t1, d)
    type(column_params), intent(in) :: p
    type(heat_request), intent(in) :: h
    real(dp), intent(in) :: stc(:)
    real(dp), intent(inout) :: t1
    type(step_diagnostics), intent(inout) :: d
    if (h%snow_free) then
      t1 = (h%yy + (h%zz1 - 1.0_dp) * stc(1)) / h%zz1
      d%ssoil = h%df1 * (stc(1) - t1) / (0.5_dp * p%zsoil(1))
    end if
    d%sheat = h%sheat_coef * (h%th2 - t1)
  end subroutine finish_step

end module nt_land_surface_step
