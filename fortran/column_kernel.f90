!> The batch kernel: advances many independent soil columns over many time
!> steps in one call.
!>
!> Per step and column it does what the legacy point driver does around SFLX
!> (spec/physics.md section 1.4): derived air properties (CALTMP, CALHUM),
!> the monthly green fraction / LAI / albedo, the surface exchange coefficient
!> of the chosen scheme (called *before* the land step with the previous
!> step's skin temperature and roughness), absorbed radiation with the previous
!> step's albedo and emissivity, then one land-surface step.  It accumulates the
!> annual diagnostics the gridded products need (per-layer minimum, maximum and
!> sum of soil temperature; maximum thaw depth; the water-balance sums) and, in
!> record mode, every step's state and fluxes.
!>
!> Columns are independent; the loop over steps is innermost so that a column's
!> state stays in cache.  No allocation happens inside the step loop.
module nt_column_kernel
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use nt_kinds, only: dp
  use nt_constants, only: tfreez
  use nt_parameter_layout
  use nt_land_surface_step, only: column_params, column_options, step_forcing, step_diagnostics, &
                                  prepare_column, land_surface_step
  use nt_sfc_exchange_chen97, only: sfcdif_chen97, czil_chen_zhang
  use nt_sfc_exchange_myj, only: myj_init, sfcdif_myj
  use nt_sfc_exchange_yang08, only: sfcdif_yang08
  implicit none
  private
  public :: run_columns, options_from_array, thaw_depth

  ! CALHUM constants (spec 1.4)
  real(dp), parameter :: e0 = 611.0_dp, rv_calhum = 461.0_dp, elwv = 2.501e6_dp
  real(dp), parameter :: eps_q = 0.622_dp
  real(dp), parameter :: a23m4 = 17.67_dp * (273.15_dp - 29.65_dp), a4 = 29.65_dp

contains

  !> Translate the integer option vector into named options.
  pure function options_from_array(options) result(opt)
    integer, intent(in) :: options(nopt)
    type(column_options) :: opt
    opt%sfcdif = options(opt_sfcdif)
    opt%iz0tlnd = options(opt_iz0tlnd)
    opt%thermal_conductivity = options(opt_thermal_conductivity)
    opt%frozen_hydraulics = options(opt_frozen_hydraulics)
    opt%legacy_quirks = options(opt_legacy_quirks) /= 0
    opt%use_monthly_albedo = options(opt_use_monthly_albedo) /= 0
    opt%use_monthly_lai = options(opt_use_monthly_lai) /= 0
  end function options_from_array

  !> Depth [m, positive] of the 0 C isotherm below a thawed surface, linearly
  !> interpolated between layer nodes; 0 when the top node is frozen, the
  !> deepest node depth when every node is above 0 C.
  pure function thaw_depth(n, stc, zsoil) result(depth)
    integer, intent(in) :: n
    real(dp), intent(in) :: stc(n), zsoil(n)
    real(dp) :: depth, z_up, z_dn
    integer :: k
    depth = 0.0_dp
    if (stc(1) <= tfreez) return
    z_up = 0.5_dp * zsoil(1)
    do k = 2, n
      z_dn = 0.5_dp * (zsoil(k-1) + zsoil(k))
      if (stc(k) <= tfreez) then
        depth = -(z_up + (z_dn - z_up) * (stc(k-1) - tfreez) / (stc(k-1) - stc(k)))
        return
      end if
      z_up = z_dn
    end do
    depth = -z_up
  end function thaw_depth

  !> Advance ncol columns over nstep steps of dt seconds.
  !>
  !> forcing(ncol, nforc, nstep): see nt_parameter_layout; month_prev/next and
  !> month_weight(nstep) interpolate the monthly climatologies to each step
  !> (value = a(prev)*(1-w) + a(next)*w).  State arrays are updated in place.
  !> Diagnostics are accumulated (the caller resets them, e.g. each year).
  !> When nrec == nstep every step is recorded in rec_*; otherwise (nrec = 1)
  !> nothing is recorded.  status(icol) /= 0 marks a column that failed at step
  !> fail_step(icol); it is not advanced further.
  subroutine run_columns(ncol, nlay, nstep, nrec, dt, options, forcing, month_prev, month_next, &
                         month_weight, monthly, layer_par, column_par, stc, smc, sh2o, sstate, &
                         diag_tmin, diag_tmax, diag_tsum, diag_thaw, diag_count, diag_water, &
                         rec_stc, rec_smc, rec_sh2o, rec_out, status, fail_step)
    integer, intent(in) :: ncol, nlay, nstep, nrec
    real(dp), intent(in) :: dt
    integer, intent(in) :: options(nopt)
    real(dp), intent(in) :: forcing(ncol, nforc, nstep)
    integer, intent(in) :: month_prev(nstep), month_next(nstep)
    real(dp), intent(in) :: month_weight(nstep)
    real(dp), intent(in) :: monthly(12, nmon, ncol)
    real(dp), intent(in) :: layer_par(nlpar, nlay, ncol)
    real(dp), intent(in) :: column_par(ncpar, ncol)
    real(dp), intent(inout) :: stc(nlay, ncol), smc(nlay, ncol), sh2o(nlay, ncol)
    real(dp), intent(inout) :: sstate(nsst, ncol)
    real(dp), intent(inout) :: diag_tmin(nlay, ncol), diag_tmax(nlay, ncol), diag_tsum(nlay, ncol)
    real(dp), intent(inout) :: diag_thaw(ncol)
    integer, intent(inout) :: diag_count(ncol)
    real(dp), intent(inout) :: diag_water(nwb, ncol)
    real(dp), intent(inout) :: rec_stc(nlay, ncol, nrec), rec_smc(nlay, ncol, nrec)
    real(dp), intent(inout) :: rec_sh2o(nlay, ncol, nrec), rec_out(nout, ncol, nrec)
    integer, intent(inout) :: status(ncol), fail_step(ncol)

    type(column_options) :: opt
    type(column_params) :: p
    type(step_forcing) :: f
    type(step_diagnostics) :: d
    integer :: icol, istep, ierr
    logical :: record
    real(dp) :: t1, cmc, snowh, sneqv, albedo, emissi, z0, z0brd, ch, cm, q1, snotime1, ribb
    real(dp) :: wind, t1v, th2v, es, czil, w, lwdown
    real(dp) :: dt_water   ! dt / water density: kg m-2 s-1 over a step -> m of water
    real(dp) :: t(nlay), sm(nlay), sl(nlay)

    opt = options_from_array(options)
    dt_water = dt/1000.0_dp
    if (opt%sfcdif == 1) call myj_init()
    record = nrec == nstep .and. nstep > 0

    do icol = 1, ncol
      if (status(icol) /= status_ok) cycle
      call prepare_column(nlay, layer_par(:, :, icol), column_par(:, icol), monthly(:, :, icol), &
                          opt, p, ierr)
      if (ierr /= status_ok) then
        status(icol) = ierr
        fail_step(icol) = 0
        cycle
      end if

      t = stc(:, icol)
      sm = smc(:, icol)
      sl = sh2o(:, icol)
      t1 = sstate(ss_skin_temperature, icol)
      cmc = sstate(ss_canopy_water, icol)
      snowh = sstate(ss_snow_depth, icol)
      sneqv = sstate(ss_snow_water, icol)
      albedo = sstate(ss_albedo, icol)
      emissi = sstate(ss_emissivity, icol)
      z0 = sstate(ss_z0, icol)
      z0brd = sstate(ss_z0brd, icol)
      ch = sstate(ss_ch, icol)
      cm = sstate(ss_cm, icol)
      q1 = sstate(ss_q1, icol)
      snotime1 = sstate(ss_snow_age, icol)
      ribb = sstate(ss_ribb, icol)

      do istep = 1, nstep
        ! --- driver-level quantities (spec 1.4)
        wind = forcing(icol, f_wind, istep)
        f%sfctmp = forcing(icol, f_air_temperature, istep)
        f%q2 = forcing(icol, f_specific_humidity, istep)
        f%sfcprs = forcing(icol, f_pressure, istep)
        f%soldn = forcing(icol, f_shortwave, istep)
        lwdown = forcing(icol, f_longwave, istep)
        f%prcp = forcing(icol, f_precipitation, istep)
        if (f%prcp > 0.0_dp .and. f%sfctmp < tfreez) then
          f%ffrozp = 1.0_dp
        else
          f%ffrozp = 0.0_dp
        end if
        ! CALTMP
        f%th2 = f%sfctmp + 0.0098_dp * p%zlvl
        t1v = t1 * (1.0_dp + 0.61_dp * f%q2)
        th2v = f%th2 * (1.0_dp + 0.61_dp * f%q2)
        ! CALHUM
        es = e0 * exp(elwv / rv_calhum * (1.0_dp / 273.15_dp - 1.0_dp / f%sfctmp))
        f%q2sat = eps_q * es / (f%sfcprs - (1.0_dp - eps_q) * es)
        f%dqsdt2 = f%q2sat * a23m4 / (f%sfctmp - a4)**2
        ! monthly climatologies
        w = month_weight(istep)
        f%shdfac = p%monthly(month_prev(istep), mo_green_fraction) * (1.0_dp - w) &
                   + p%monthly(month_next(istep), mo_green_fraction) * w
        f%lai_month = p%monthly(month_prev(istep), mo_lai) * (1.0_dp - w) &
                      + p%monthly(month_next(istep), mo_lai) * w
        f%alb_month = p%monthly(month_prev(istep), mo_albedo) * (1.0_dp - w) &
                      + p%monthly(month_next(istep), mo_albedo) * w

        ! --- surface exchange coefficient, before the land step (spec 2)
        select case (opt%sfcdif)
        case (0)
          czil = p%czil
          if (opt%iz0tlnd == 1) czil = czil_chen_zhang(z0)
          call sfcdif_chen97(p%zlvl, p%zlvl_wind, z0, t1v, th2v, wind, czil, cm, ch)
        case (1)
          czil = p%czil
          if (opt%iz0tlnd == 1) czil = czil_chen_zhang(z0)
          call sfcdif_myj(p%zlvl, p%zlvl_wind, z0, z0brd, f%sfcprs, t1, f%sfctmp, q1, f%q2, wind, &
                          czil, ribb, cm, ch)
        case default
          call sfcdif_yang08(z0, p%zlvl_wind, p%zlvl, wind, t1, f%sfctmp, f%q2, f%sfcprs, &
                             p%z0h_beta, ch, ribb, ierr)
          if (ierr /= 0) then
            status(icol) = status_yang08
            fail_step(icol) = istep
            exit
          end if
        end select

        ! --- absorbed radiation with the previous step's albedo / emissivity
        f%solnet = f%soldn * (1.0_dp - albedo)
        f%lwdn = lwdown * emissi

        call land_surface_step(p, opt, dt, f, ch, ribb, t, sm, sl, t1, cmc, snowh, sneqv, &
                               albedo, emissi, z0, z0brd, snotime1, q1, d)

        if (d%status /= status_ok .or. .not. ieee_is_finite(t1 + sum(t) + sum(sl))) then
          status(icol) = d%status
          if (status(icol) == status_ok) status(icol) = status_nonfinite
          fail_step(icol) = istep
          exit
        end if

        ! --- annual diagnostics
        diag_tmin(:, icol) = min(diag_tmin(:, icol), t)
        diag_tmax(:, icol) = max(diag_tmax(:, icol), t)
        diag_tsum(:, icol) = diag_tsum(:, icol) + t
        diag_thaw(icol) = max(diag_thaw(icol), thaw_depth(nlay, t, p%zsoil))
        diag_count(icol) = diag_count(icol) + 1
        diag_water(wb_precipitation, icol) = diag_water(wb_precipitation, icol) + f%prcp*dt_water
        diag_water(wb_evaporation, icol) = diag_water(wb_evaporation, icol) + d%evaporation*dt_water
        diag_water(wb_surface_runoff, icol) = diag_water(wb_surface_runoff, icol) + d%runoff1*dt_water
        diag_water(wb_drainage, icol) = diag_water(wb_drainage, icol) + d%runoff2*dt_water
        diag_water(wb_water_clamped, icol) = diag_water(wb_water_clamped, icol) &
                                             + d%water_clamped*dt_water

        if (record) then
          rec_stc(:, icol, istep) = t
          rec_smc(:, icol, istep) = sm
          rec_sh2o(:, icol, istep) = sl
          rec_out(out_skin_temperature, icol, istep) = t1
          rec_out(out_snow_depth, icol, istep) = snowh
          rec_out(out_snow_water, icol, istep) = sneqv
          rec_out(out_sensible_heat, icol, istep) = d%sheat
          rec_out(out_latent_heat, icol, istep) = d%eta
          rec_out(out_ground_heat, icol, istep) = d%ssoil
          rec_out(out_soil_heat_top, icol, istep) = d%g_top
          rec_out(out_soil_heat_bottom, icol, istep) = d%f_bottom
          rec_out(out_precipitation, icol, istep) = f%prcp
          rec_out(out_evaporation, icol, istep) = d%evaporation
          rec_out(out_surface_runoff, icol, istep) = d%runoff1
          rec_out(out_drainage, icol, istep) = d%runoff2
          rec_out(out_water_clamped, icol, istep) = d%water_clamped
          rec_out(out_canopy_water, icol, istep) = cmc
          rec_out(out_potential_evap, icol, istep) = d%etp
          rec_out(out_edir, icol, istep) = d%edir
          rec_out(out_ec, icol, istep) = d%ec
          rec_out(out_ett, icol, istep) = d%ett
          rec_out(out_albedo, icol, istep) = albedo
          rec_out(out_snow_cover, icol, istep) = d%sncovr
          rec_out(out_ch, icol, istep) = ch
        end if
      end do

      stc(:, icol) = t
      smc(:, icol) = sm
      sh2o(:, icol) = sl
      sstate(ss_skin_temperature, icol) = t1
      sstate(ss_canopy_water, icol) = cmc
      sstate(ss_snow_depth, icol) = snowh
      sstate(ss_snow_water, icol) = sneqv
      sstate(ss_albedo, icol) = albedo
      sstate(ss_emissivity, icol) = emissi
      sstate(ss_z0, icol) = z0
      sstate(ss_z0brd, icol) = z0brd
      sstate(ss_ch, icol) = ch
      sstate(ss_cm, icol) = cm
      sstate(ss_q1, icol) = q1
      sstate(ss_snow_age, icol) = snotime1
      sstate(ss_ribb, icol) = ribb
    end do
  end subroutine run_columns

end module nt_column_kernel
