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
!> Columns are independent.  They are stepped in blocks of block_width lanes
!> (the loop over steps inside the loop over blocks, so that a block's state
!> stays in cache): the exchange coefficient of Yang et al. (2008), the soil
!> water step and the soil heat step are solved for the block's lanes at once
!> (vectorised across columns), the rest lane by lane (see run_columns).  Each
!> lane's arithmetic is its column's own: a column gives the same bits alone or
!> in any block.  No allocation happens inside the step loop.
module nt_column_kernel
  use, intrinsic :: iso_fortran_env, only: int64
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use nt_kinds, only: dp
  use nt_constants, only: tfreez
  use nt_parameter_layout
  use nt_land_surface_step, only: column_params, column_options, step_forcing, step_diagnostics, &
                                  heat_request, step_work, prepare_column, land_surface_step, &
                                  step_after_water, finish_step
  use nt_soil_water, only: water_block, water_block_allocate, water_block_set_lane, smflx_block
  use nt_soil_heat, only: heat_block, heat_block_allocate, heat_block_set_lane, shflx_block
  use nt_sfc_exchange_chen97, only: sfcdif_chen97, czil_chen_zhang
  use nt_sfc_exchange_myj, only: myj_init, sfcdif_myj
  use nt_sfc_exchange_yang08, only: sfcdif_yang08_block
  use nt_thermal_conductivity, only: tc_layers
  implicit none
  private
  public :: run_columns, options_from_array, thaw_depth

  !> Columns stepped together: the lanes of the block-wise exchange, soil water
  !> and soil heat steps.  32 was the fastest of 4, 8, 16, 32, 64 lanes
  !> (benchmarks/column_speed.py, every instruction set; docs/performance.md).
  integer, parameter :: block_width = 32

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
    real(dp), intent(in) :: stc(:), zsoil(n)
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
    type(column_params) :: p(block_width)
    type(step_forcing) :: f(block_width)
    type(step_diagnostics) :: d(block_width)
    type(heat_request) :: h(block_width)
    type(step_work) :: wk(block_width)
    integer :: icol, istep, ierr, next_col, nb, l, k
    integer :: lane_col(block_width)  ! the column of each lane of the block
    logical :: record
    logical :: running(block_width)   ! the lane's column has not failed
    real(dp), dimension(block_width) :: t1, cmc, snowh, sneqv, albedo, emissi, z0, z0brd, ch, cm, &
                                        q1, snotime1, ribb
    real(dp) :: wind, t1v, th2v, es, czil, w, lwdown
    ! the block's Yang et al. (2008) exchange coefficients: inputs (heights and
    ! beta set with the block) and outputs
    real(dp), dimension(block_width) :: yz0, yzm, yzh, ywind, yt1, ytair, yq2, ypsfc, ybeta, &
                                        ych, yribb
    integer :: ystatus(block_width)
    real(dp) :: dt_water   ! dt / water density: kg m-2 s-1 over a step -> m of water
    ! the block's soil heat solve: parameters, and inputs/outputs lane index first
    type(heat_block) :: hb
    real(dp), dimension(block_width) :: hyy, hzz1, hdf1, tbot, g_top, f_bottom
    ! The block's soil state, lane index first: soil temperature, total and
    ! liquid moisture of each lane are tb(l, :), smb(l, :), slb(l, :), which the
    ! block solves use as they are and the lane-by-lane routines read as
    ! strided sections.  (Allocated (nb, nlay) for each block, so that whole
    ! arrays are passed: a section (1:nb, :) of a smaller block would be copied
    ! at every call.)
    real(dp), allocatable, dimension(:, :) :: tb, smb, slb
    ! the block's annual minimum, maximum and sum of soil temperature (lane, layer)
    real(dp), allocatable, dimension(:, :) :: dtmin, dtmax, dtsum
    real(dp), dimension(block_width) :: sum_t, sum_l   ! column sums of tb and slb
    integer(int64) :: running_flag(block_width)        ! running as 1 / 0
    ! the conductivity of each lane's surface layer at the step's start (df1_*
    ! terms, spec 3.5) and after the water step (nopac_* terms, spec 5), for the
    ! block's lanes together (from the top layer's smb(:, 1), slb(:, 1)): the terms, results
    real(dp), dimension(block_width) :: df1_soil, df1n_soil
    real(dp), dimension(block_width) :: df1_smcmax, df1_solid, df1_dry, nopac_smcmax, nopac_solid, &
                                        nopac_dry, top_kappa_unfrozen, top_kappa_frozen
    integer, dimension(block_width) :: df1_class, nopac_class
    ! the block's soil water step: parameters, inputs and outputs
    type(water_block) :: wb
    real(dp), dimension(block_width) :: wprcp1, wedir1, wec1, wshdfac, wcmc, wrun1, wrun2, wrun3, &
                                        wdrip, wcreated
    real(dp), allocatable :: wet1(:, :)

    opt = options_from_array(options)
    dt_water = dt/1000.0_dp
    if (opt%sfcdif == 1) call myj_init()
    record = nrec == nstep .and. nstep > 0

    ! The columns are stepped in blocks of block_width lanes: each step runs
    ! the surface physics lane by lane, the soil water step of the block's
    ! lanes, the rest of the land step lane by lane, the soil heat solve of the
    ! block's lanes, then finishes each lane.  Every lane's arithmetic is
    ! its own, so a column's results do not depend on the block it is in.  A
    ! lane whose column fails keeps the state it failed with (its water and
    ! heat solves are still computed, with the block, and discarded); that
    ! state may hold non-finite values, whose propagation through min/max
    ! can differ between vectorised and scalar code, so it is not compared.
    next_col = 1
    do while (next_col <= ncol)
      ! the next block: up to block_width columns that have not failed and prepare
      nb = 0
      do while (nb < block_width .and. next_col <= ncol)
        icol = next_col
        next_col = next_col + 1
        if (status(icol) /= status_ok) cycle
        call prepare_column(nlay, layer_par(:, :, icol), column_par(:, icol), monthly(:, :, icol), &
                            opt, p(nb + 1), ierr)
        if (ierr /= status_ok) then
          status(icol) = ierr
          fail_step(icol) = 0
          cycle
        end if
        nb = nb + 1
        lane_col(nb) = icol
      end do
      if (nb == 0) exit

      call heat_block_allocate(hb, nb, nlay)
      call water_block_allocate(wb, nb, nlay)
      if (allocated(tb)) then
        if (size(tb, 1) /= nb) deallocate(tb, smb, slb, wet1, dtmin, dtmax, dtsum)
      end if
      if (.not. allocated(tb)) allocate(tb(nb, nlay), smb(nb, nlay), slb(nb, nlay), wet1(nb, nlay), &
                                        dtmin(nb, nlay), dtmax(nb, nlay), dtsum(nb, nlay))
      wet1 = 0.0_dp     ! (land_surface_step sets the root layers; below them it stays 0)
      do l = 1, nb
        icol = lane_col(l)
        call heat_block_set_lane(hb, l, p(l)%heat)
        call water_block_set_lane(wb, l, p(l)%water)
        tbot(l) = p(l)%tbot
        yzm(l) = p(l)%zlvl_wind
        yzh(l) = p(l)%zlvl
        ybeta(l) = p(l)%z0h_beta
        df1_smcmax(l) = p(l)%df1_smcmax
        df1_class(l) = p(l)%df1_class
        df1_solid(l) = p(l)%df1_solid
        df1_dry(l) = p(l)%df1_dry
        nopac_smcmax(l) = p(l)%nopac_smcmax
        nopac_class(l) = p(l)%nopac_class
        nopac_solid(l) = p(l)%nopac_solid
        nopac_dry(l) = p(l)%nopac_dry
        top_kappa_unfrozen(l) = p(l)%tc_kappa_unfrozen(1)
        top_kappa_frozen(l) = p(l)%tc_kappa_frozen(1)
        tb(l, :) = stc(:, icol)
        smb(l, :) = smc(:, icol)
        slb(l, :) = sh2o(:, icol)
        dtmin(l, :) = diag_tmin(:, icol)
        dtmax(l, :) = diag_tmax(:, icol)
        dtsum(l, :) = diag_tsum(:, icol)
        t1(l) = sstate(ss_skin_temperature, icol)
        cmc(l) = sstate(ss_canopy_water, icol)
        snowh(l) = sstate(ss_snow_depth, icol)
        sneqv(l) = sstate(ss_snow_water, icol)
        albedo(l) = sstate(ss_albedo, icol)
        emissi(l) = sstate(ss_emissivity, icol)
        z0(l) = sstate(ss_z0, icol)
        z0brd(l) = sstate(ss_z0brd, icol)
        ch(l) = sstate(ss_ch, icol)
        cm(l) = sstate(ss_cm, icol)
        q1(l) = sstate(ss_q1, icol)
        snotime1(l) = sstate(ss_snow_age, icol)
        ribb(l) = sstate(ss_ribb, icol)
      end do
      running = .false.
      running(1:nb) = .true.

      do istep = 1, nstep
        if (.not. any(running(1:nb))) exit

        ! --- forcing and surface exchange, lane by lane (Yang-2008: the block at once)
        do l = 1, nb
          if (.not. running(l)) cycle
          icol = lane_col(l)
          associate (fl => f(l), pl => p(l))
            ! driver-level quantities (spec 1.4)
            wind = forcing(icol, f_wind, istep)
            fl%sfctmp = forcing(icol, f_air_temperature, istep)
            fl%q2 = forcing(icol, f_specific_humidity, istep)
            fl%sfcprs = forcing(icol, f_pressure, istep)
            fl%soldn = forcing(icol, f_shortwave, istep)
            lwdown = forcing(icol, f_longwave, istep)
            fl%prcp = forcing(icol, f_precipitation, istep)
            if (fl%prcp > 0.0_dp .and. fl%sfctmp < tfreez) then
              fl%ffrozp = 1.0_dp
            else
              fl%ffrozp = 0.0_dp
            end if
            ! CALTMP
            fl%th2 = fl%sfctmp + 0.0098_dp * pl%zlvl
            t1v = t1(l) * (1.0_dp + 0.61_dp * fl%q2)
            th2v = fl%th2 * (1.0_dp + 0.61_dp * fl%q2)
            ! CALHUM
            es = e0 * exp(elwv / rv_calhum * (1.0_dp / 273.15_dp - 1.0_dp / fl%sfctmp))
            fl%q2sat = eps_q * es / (fl%sfcprs - (1.0_dp - eps_q) * es)
            fl%dqsdt2 = fl%q2sat * a23m4 / (fl%sfctmp - a4)**2
            ! monthly climatologies
            w = month_weight(istep)
            fl%shdfac = pl%monthly(month_prev(istep), mo_green_fraction) * (1.0_dp - w) &
                        + pl%monthly(month_next(istep), mo_green_fraction) * w
            fl%lai_month = pl%monthly(month_prev(istep), mo_lai) * (1.0_dp - w) &
                           + pl%monthly(month_next(istep), mo_lai) * w
            fl%alb_month = pl%monthly(month_prev(istep), mo_albedo) * (1.0_dp - w) &
                           + pl%monthly(month_next(istep), mo_albedo) * w

            ! surface exchange coefficient, before the land step (spec 2)
            select case (opt%sfcdif)
            case (0)
              czil = pl%czil
              if (opt%iz0tlnd == 1) czil = czil_chen_zhang(z0(l))
              call sfcdif_chen97(pl%zlvl, pl%zlvl_wind, z0(l), t1v, th2v, wind, czil, cm(l), ch(l))
            case (1)
              czil = pl%czil
              if (opt%iz0tlnd == 1) czil = czil_chen_zhang(z0(l))
              call sfcdif_myj(pl%zlvl, pl%zlvl_wind, z0(l), z0brd(l), fl%sfcprs, t1(l), fl%sfctmp, &
                              q1(l), fl%q2, wind, czil, ribb(l), cm(l), ch(l))
            case default
              ! Yang et al. (2008): for the block's lanes together, below
              ywind(l) = wind
            end select
            ! absorbed radiation with the previous step's albedo / emissivity
            fl%solnet = fl%soldn * (1.0_dp - albedo(l))
            fl%lwdn = lwdown * emissi(l)
          end associate
        end do
        if (opt%sfcdif == 2) then
          ! (all nb lanes are computed; a failed lane's results are not used)
          do l = 1, nb
            yz0(l) = z0(l)
            yt1(l) = t1(l)
            ytair(l) = f(l)%sfctmp
            yq2(l) = f(l)%q2
            ypsfc(l) = f(l)%sfcprs
          end do
          call sfcdif_yang08_block(nb, yz0, yzm, yzh, ywind, yt1, ytair, yq2, ypsfc, ybeta, &
                                   ych, yribb, ystatus)
          do l = 1, nb
            if (.not. running(l)) cycle
            ch(l) = ych(l)
            ribb(l) = yribb(l)
            if (ystatus(l) /= 0) then
              status(lane_col(l)) = status_yang08
              fail_step(lane_col(l)) = istep
              running(l) = .false.
              call store_lane(l, tb, smb, slb, stc(:, lane_col(l)), smc(:, lane_col(l)), &
                            sh2o(:, lane_col(l)))
            end if
          end do
        end if

        ! --- the land step up to its soil water step, lane by lane (the surface
        ! layer's conductivity of every lane first)
        call tc_layers(opt%thermal_conductivity, nb, smb(:, 1), df1_smcmax, slb(:, 1), df1_class, &
                       top_kappa_unfrozen, top_kappa_frozen, df1_solid, df1_dry, df1_soil)
        do l = 1, nb
          if (.not. running(l)) cycle
          icol = lane_col(l)
          call land_surface_step(p(l), opt, dt, f(l), ch(l), ribb(l), tb(l, :), smb(l, :),       &
                                 slb(l, :), t1(l), cmc(l), snowh(l), sneqv(l), albedo(l), emissi(l), &
                                 z0(l), z0brd(l), snotime1(l), q1(l), d(l), wk(l), wet1(l, :),  &
                                 df1_soil(l))
          if (d(l)%status /= status_ok) then
            status(icol) = d(l)%status
            fail_step(icol) = istep
            running(l) = .false.
            call store_lane(l, tb, smb, slb, stc(:, icol), smc(:, icol), sh2o(:, icol))
          end if
        end do

        ! --- soil water of the block's lanes
        ! (all nb lanes are solved; a failed lane's results are not used)
        do l = 1, nb
          wprcp1(l) = wk(l)%prcp1
          wedir1(l) = wk(l)%edir1
          wec1(l) = wk(l)%ec1
          wshdfac(l) = wk(l)%shdfac
          wcmc(l) = cmc(l)
        end do
        call smflx_block(wb, dt, wprcp1(1:nb), wedir1(1:nb), wec1(1:nb), wet1, wshdfac(1:nb), &
                         wcmc(1:nb), smb, slb, wrun1(1:nb), wrun2(1:nb), wrun3(1:nb),         &
                         wdrip(1:nb), wcreated(1:nb))

        ! --- the rest of the land step, lane by lane (the surface layer's
        ! conductivity of every lane after the water step first)
        call tc_layers(opt%thermal_conductivity, nb, smb(:, 1), nopac_smcmax, slb(:, 1), nopac_class, &
                       top_kappa_unfrozen, top_kappa_frozen, nopac_solid, nopac_dry, df1n_soil)
        do l = 1, nb
          if (.not. running(l)) cycle
          cmc(l) = wcmc(l)
          wk(l)%runoff1 = wrun1(l)
          wk(l)%runoff2 = wrun2(l)
          wk(l)%runoff3 = wrun3(l)
          wk(l)%created = wcreated(l)
          call step_after_water(p(l), opt, dt, f(l), ch(l), emissi(l), tb(l, :), smb(l, :),   &
                                slb(l, :), t1(l), snowh(l), sneqv(l), q1(l), d(l), wk(l), h(l), &
                                df1n_soil(l))
        end do

        ! --- soil heat of the block's lanes
        ! (all nb lanes are solved; a failed lane's results are not used)
        do l = 1, nb
          hyy(l) = h(l)%yy
          hzz1(l) = h(l)%zz1
          hdf1(l) = h(l)%df1
        end do
        call shflx_block(hb, dt, hyy(1:nb), hzz1(1:nb), hdf1(1:nb), tbot(1:nb), smb, tb, slb, &
                         g_top(1:nb), f_bottom(1:nb))
        do l = 1, nb
          if (.not. running(l)) cycle
          d(l)%g_top = g_top(l)
          d(l)%f_bottom = f_bottom(l)
        end do

        ! --- end of the step: each lane's finish, then the block's column sums
        ! (layer by layer over the lanes: the additions of SUM in its order)
        do l = 1, nb
          if (.not. running(l)) cycle
          call finish_step(p(l), h(l), tb(l, :), t1(l), d(l))
        end do
        sum_t(1:nb) = 0.0_dp
        sum_l(1:nb) = 0.0_dp
        do k = 1, nlay
          do l = 1, nb
            sum_t(l) = sum_t(l) + tb(l, k)
            sum_l(l) = sum_l(l) + slb(l, k)
          end do
        end do
        do l = 1, nb
          if (.not. running(l)) cycle
          icol = lane_col(l)
          if (.not. ieee_is_finite(t1(l) + sum_t(l) + sum_l(l))) then
            status(icol) = status_nonfinite
            fail_step(icol) = istep
            running(l) = .false.
            call store_lane(l, tb, smb, slb, stc(:, icol), smc(:, icol), sh2o(:, icol))
          end if
        end do
        ! the annual temperature diagnostics of the lanes still running, over the
        ! block's lanes together
        do l = 1, nb
          running_flag(l) = merge(1_int64, 0_int64, running(l))
        end do
        do k = 1, nlay
          do l = 1, nb
            dtmin(l, k) = merge(min(dtmin(l, k), tb(l, k)), dtmin(l, k), running_flag(l) /= 0)
            dtmax(l, k) = merge(max(dtmax(l, k), tb(l, k)), dtmax(l, k), running_flag(l) /= 0)
            dtsum(l, k) = merge(dtsum(l, k) + tb(l, k), dtsum(l, k), running_flag(l) /= 0)
          end do
        end do
        ! the other diagnostics and the records, lane by lane
        do l = 1, nb
          if (.not. running(l)) cycle
          icol = lane_col(l)
          diag_thaw(icol) = max(diag_thaw(icol), thaw_depth(nlay, tb(l, :), p(l)%zsoil))
          diag_count(icol) = diag_count(icol) + 1
          diag_water(wb_precipitation, icol) = diag_water(wb_precipitation, icol) + f(l)%prcp*dt_water
          diag_water(wb_evaporation, icol) = diag_water(wb_evaporation, icol) &
                                             + d(l)%evaporation*dt_water
          diag_water(wb_surface_runoff, icol) = diag_water(wb_surface_runoff, icol) &
                                                + d(l)%runoff1*dt_water
          diag_water(wb_drainage, icol) = diag_water(wb_drainage, icol) + d(l)%runoff2*dt_water
          diag_water(wb_water_clamped, icol) = diag_water(wb_water_clamped, icol) &
                                               + d(l)%water_clamped*dt_water

          if (record) then
            rec_stc(:, icol, istep) = tb(l, :)
            rec_smc(:, icol, istep) = smb(l, :)
            rec_sh2o(:, icol, istep) = slb(l, :)
            rec_out(out_skin_temperature, icol, istep) = t1(l)
            rec_out(out_snow_depth, icol, istep) = snowh(l)
            rec_out(out_snow_water, icol, istep) = sneqv(l)
            rec_out(out_sensible_heat, icol, istep) = d(l)%sheat
            rec_out(out_latent_heat, icol, istep) = d(l)%eta
            rec_out(out_ground_heat, icol, istep) = d(l)%ssoil
            rec_out(out_soil_heat_top, icol, istep) = d(l)%g_top
            rec_out(out_soil_heat_bottom, icol, istep) = d(l)%f_bottom
            rec_out(out_precipitation, icol, istep) = f(l)%prcp
            rec_out(out_evaporation, icol, istep) = d(l)%evaporation
            rec_out(out_surface_runoff, icol, istep) = d(l)%runoff1
            rec_out(out_drainage, icol, istep) = d(l)%runoff2
            rec_out(out_water_clamped, icol, istep) = d(l)%water_clamped
            rec_out(out_canopy_water, icol, istep) = cmc(l)
            rec_out(out_potential_evap, icol, istep) = d(l)%etp
            rec_out(out_edir, icol, istep) = d(l)%edir
            rec_out(out_ec, icol, istep) = d(l)%ec
            rec_out(out_ett, icol, istep) = d(l)%ett
            rec_out(out_albedo, icol, istep) = albedo(l)
            rec_out(out_snow_cover, icol, istep) = d(l)%sncovr
            rec_out(out_ch, icol, istep) = ch(l)
          end if
        end do
      end do

      do l = 1, nb
        icol = lane_col(l)
        diag_tmin(:, icol) = dtmin(l, :)
        diag_tmax(:, icol) = dtmax(l, :)
        diag_tsum(:, icol) = dtsum(l, :)
        ! (a failed lane's soil state is already stored)
        if (running(l)) call store_lane(l, tb, smb, slb, stc(:, icol), smc(:, icol), sh2o(:, icol))
        sstate(ss_skin_temperature, icol) = t1(l)
        sstate(ss_canopy_water, icol) = cmc(l)
        sstate(ss_snow_depth, icol) = snowh(l)
        sstate(ss_snow_water, icol) = sneqv(l)
        sstate(ss_albedo, icol) = albedo(l)
        sstate(ss_emissivity, icol) = emissi(l)
        sstate(ss_z0, icol) = z0(l)
        sstate(ss_z0brd, icol) = z0brd(l)
        sstate(ss_ch, icol) = ch(l)
        sstate(ss_cm, icol) = cm(l)
        sstate(ss_q1, icol) = q1(l)
        sstate(ss_snow_age, icol) = snotime1(l)
        sstate(ss_ribb, icol) = ribb(l)
      end do
    end do
  end subroutine run_columns

  !> The soil state of lane l of a block (tb, smb, slb: lane, layer) into one
  !> column's arrays.  The driver stores a lane's state when its column fails
  !> (the block solves go on computing a failed lane, whose results are not
  !> used) and the running lanes' states at the end of a block.
  pure subroutine store_lane(l, tb, smb, slb, stc, smc, sh2o)
    integer,  intent(in)  :: l
    real(dp), intent(in)  :: tb(:, :), smb(:, :), slb(:, :)
    real(dp), intent(out) :: stc(:), smc(:), sh2o(:)
    stc = tb(l, :)
    smc = smb(l, :)
    sh2o = slb(l, :)
  end subroutine store_lane

end module nt_column_kernel
