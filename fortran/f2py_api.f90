!> The flat interface that f2py wraps (module noahtibet._kernel).
!>
!> Only scalars and arrays of c_double / c_int cross this boundary; every
!> structure lives on one side.  Python (python/noahtibet/kernel.py) is the
!> only caller: it builds the arrays with the layout of
!> fortran/parameter_layout.f90, checks shapes and dtypes, and turns status
!> codes into exceptions.  External (non-module) procedures keep the f2py
!> wrapper free of generated Fortran.

!> Advance ncol columns over nstep steps (see nt_column_kernel::run_columns).
subroutine nt_run_columns(ncol, nlay, nstep, nrec, nforc_, nlpar_, ncpar_, nmon_, nsst_, nout_, &
                          nopt_, nwb_, dt, options, forcing, month_prev, month_next, month_weight, &
                          monthly, layer_par, column_par, stc, smc, sh2o, sstate, &
                          diag_tmin, diag_tmax, diag_tsum, diag_thaw, diag_count, diag_water, &
                          rec_stc, rec_smc, rec_sh2o, rec_out, status, fail_step)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_column_kernel, only: run_columns
  implicit none
  ! the wrapper releases the GIL during the call (Python threads, e.g. the forcing
  ! prefetch, run meanwhile); the kernel itself touches only its arguments
  !f2py threadsafe
  integer(c_int), intent(in) :: ncol, nlay, nstep, nrec, nforc_, nlpar_, ncpar_, nmon_, nsst_
  integer(c_int), intent(in) :: nout_, nopt_, nwb_
  real(c_double), intent(in) :: dt
  integer(c_int), intent(in) :: options(nopt_)
  real(c_double), intent(in) :: forcing(ncol, nforc_, nstep)
  integer(c_int), intent(in) :: month_prev(nstep), month_next(nstep)
  real(c_double), intent(in) :: month_weight(nstep)
  real(c_double), intent(in) :: monthly(12, nmon_, ncol)
  real(c_double), intent(in) :: layer_par(nlpar_, nlay, ncol)
  real(c_double), intent(in) :: column_par(ncpar_, ncol)
  real(c_double), intent(inout) :: stc(nlay, ncol), smc(nlay, ncol), sh2o(nlay, ncol)
  real(c_double), intent(inout) :: sstate(nsst_, ncol)
  real(c_double), intent(inout) :: diag_tmin(nlay, ncol), diag_tmax(nlay, ncol)
  real(c_double), intent(inout) :: diag_tsum(nlay, ncol), diag_thaw(ncol)
  integer(c_int), intent(inout) :: diag_count(ncol)
  real(c_double), intent(inout) :: diag_water(nwb_, ncol)
  real(c_double), intent(inout) :: rec_stc(nlay, ncol, nrec), rec_smc(nlay, ncol, nrec)
  real(c_double), intent(inout) :: rec_sh2o(nlay, ncol, nrec), rec_out(nout_, ncol, nrec)
  integer(c_int), intent(inout) :: status(ncol), fail_step(ncol)

  call run_columns(ncol, nlay, nstep, nrec, dt, options, forcing, month_prev, month_next, &
                   month_weight, monthly, layer_par, column_par, stc, smc, sh2o, sstate, &
                   diag_tmin, diag_tmax, diag_tsum, diag_thaw, diag_count, diag_water, &
                   rec_stc, rec_smc, rec_sh2o, rec_out, status, fail_step)
end subroutine nt_run_columns

!> Sizes of the flat arrays, so Python can check its layout against this build.
subroutine nt_layout_sizes(sizes)
  use, intrinsic :: iso_c_binding, only: c_int
  use nt_parameter_layout, only: nforc, nlpar, ncpar, nmon, nsst, nout, nopt, nwb
  implicit none
  integer(c_int), intent(out) :: sizes(8)
  sizes = [nforc, nlpar, ncpar, nmon, nsst, nout, nopt, nwb]
end subroutine nt_layout_sizes

!> One step of the soil heat solver alone (nt_soil_heat::shflx), for tests
!> against analytic solutions and for energy-conservation checks.  Integer
!> arrays: tc_class.  g_top / f_bottom: the surface flux applied (new stc(1))
!> and the explicit bottom flux [W m-2, positive downward].
subroutine nt_soil_heat_step(nsoil, dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz, &
                             psisat_frz, quartz, tc_option, tc_class, tc_kappa_unfrozen, &
                             tc_kappa_frozen, tc_dry_coef, csoil, stc, sh2o, g_top, f_bottom)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_soil_heat, only: shflx
  implicit none
  integer(c_int), intent(in) :: nsoil, tc_option
  real(c_double), intent(in) :: dt, yy, zz1, df1, zbot, tbot
  real(c_double), intent(in) :: zsoil(nsoil), smc(nsoil), smcmax(nsoil), bexp_frz(nsoil)
  real(c_double), intent(in) :: psisat_frz(nsoil), quartz(nsoil)
  integer(c_int), intent(in) :: tc_class(nsoil)
  real(c_double), intent(in) :: tc_kappa_unfrozen(nsoil), tc_kappa_frozen(nsoil)
  real(c_double), intent(in) :: tc_dry_coef(nsoil), csoil(nsoil)
  real(c_double), intent(inout) :: stc(nsoil), sh2o(nsoil)
  real(c_double), intent(out) :: g_top, f_bottom
  integer :: tc_class_i(nsoil)

  tc_class_i = tc_class
  call shflx(int(nsoil), dt, yy, zz1, df1, zsoil, zbot, tbot, smc, smcmax, bexp_frz, psisat_frz, &
             quartz, int(tc_option), tc_class_i, tc_kappa_unfrozen, tc_kappa_frozen, tc_dry_coef, &
             csoil, stc, sh2o, g_top, f_bottom)
end subroutine nt_soil_heat_step

!> Thermal conductivity [W m-1 K-1] of n soil states (nt_thermal_conductivity).
subroutine nt_thermal_conductivity(n, option, smc, quartz, smcmax, sh2o, tc_class, &
                                   kappa_unfrozen, kappa_frozen, dry_coef, df)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_thermal_conductivity, only: thermal_conductivity
  implicit none
  integer(c_int), intent(in) :: n, option
  real(c_double), intent(in) :: smc(n), quartz(n), smcmax(n), sh2o(n)
  integer(c_int), intent(in) :: tc_class(n)
  real(c_double), intent(in) :: kappa_unfrozen(n), kappa_frozen(n), dry_coef(n)
  real(c_double), intent(out) :: df(n)
  integer :: i
  do i = 1, n
    df(i) = thermal_conductivity(int(option), smc(i), quartz(i), smcmax(i), sh2o(i), &
                                 int(tc_class(i)), kappa_unfrozen(i), kappa_frozen(i), dry_coef(i))
  end do
end subroutine nt_thermal_conductivity

!> The same conductivities as nt_thermal_conductivity, by the kernel's vectorised path
!> (tc_static_terms, then nt_thermal_conductivity::tc_layers for all n states at once), for
!> tests: the two must give the same bits.
subroutine nt_thermal_conductivity_layers(n, option, smc, quartz, smcmax, sh2o, tc_class, &
                                          kappa_unfrozen, kappa_frozen, dry_coef, df)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_kinds, only: dp
  use nt_thermal_conductivity, only: tc_static_terms, tc_layers, tc_option_stock, tc_class_other
  implicit none
  integer(c_int), intent(in) :: n, option
  real(c_double), intent(in) :: smc(n), quartz(n), smcmax(n), sh2o(n)
  integer(c_int), intent(in) :: tc_class(n)
  real(c_double), intent(in) :: kappa_unfrozen(n), kappa_frozen(n), dry_coef(n)
  real(c_double), intent(out) :: df(n)
  integer :: cls(n)
  real(dp) :: ku(n), kf(n), dry(n), solid(n), thkdry(n)
  if (option == tc_option_stock) then
    ! as tdfcnd_stock: the class and the Cote-Konrad terms are not used
    cls = tc_class_other
    ku = 0.0_dp
    kf = 0.0_dp
    dry = 0.0_dp
  else
    cls = tc_class
    ku = kappa_unfrozen
    kf = kappa_frozen
    dry = dry_coef
  end if
  call tc_static_terms(int(option), quartz, smcmax, cls, dry, solid, thkdry)
  call tc_layers(int(option), int(n), smc, smcmax, sh2o, cls, ku, kf, solid, thkdry, df)
end subroutine nt_thermal_conductivity_layers

!> Equilibrium (supercooled) liquid water content of n states (nt_supercooled_water::frh2o).
subroutine nt_supercooled_water(n, tkelv, smc, sh2o, smcmax, bexp, psisat, free)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_supercooled_water, only: frh2o
  implicit none
  integer(c_int), intent(in) :: n
  real(c_double), intent(in) :: tkelv(n), smc(n), sh2o(n), smcmax(n), bexp(n), psisat(n)
  real(c_double), intent(out) :: free(n)
  integer :: i
  do i = 1, n
    free(i) = frh2o(tkelv(i), smc(i), sh2o(i), smcmax(i), bexp(i), psisat(i))
  end do
end subroutine nt_supercooled_water

!> y = exp(x) elementwise by the in-house nt_elementary::fexp (exp_array), for tests.
subroutine nt_exp_array(n, x, y)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_elementary, only: exp_array
  implicit none
  integer(c_int), intent(in) :: n
  real(c_double), intent(in) :: x(n)
  real(c_double), intent(out) :: y(n)
  call exp_array(int(n), x, y)
end subroutine nt_exp_array

!> y = log(x) elementwise by the in-house nt_elementary::flog (log_array), for tests.
subroutine nt_log_array(n, x, y)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_elementary, only: log_array
  implicit none
  integer(c_int), intent(in) :: n
  real(c_double), intent(in) :: x(n)
  real(c_double), intent(out) :: y(n)
  call log_array(int(n), x, y)
end subroutine nt_log_array

!> y = log(x) elementwise by nt_elementary::log_array_positive (positive normal x only),
!> for tests.
subroutine nt_log_array_positive(n, x, y)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_elementary, only: log_array_positive
  implicit none
  integer(c_int), intent(in) :: n
  real(c_double), intent(in) :: x(n)
  real(c_double), intent(out) :: y(n)
  call log_array_positive(int(n), x, y)
end subroutine nt_log_array_positive

!> y = exp(x) elementwise by nt_elementary::exp_array_inrange (-708 <= x <= 709.78 only),
!> for tests.
subroutine nt_exp_array_inrange(n, x, y)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_elementary, only: exp_array_inrange
  implicit none
  integer(c_int), intent(in) :: n
  real(c_double), intent(in) :: x(n)
  real(c_double), intent(out) :: y(n)
  call exp_array_inrange(int(n), x, y)
end subroutine nt_exp_array_inrange
