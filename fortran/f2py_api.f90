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
                          nopt_, dt, options, forcing, month_prev, month_next, month_weight, &
                          monthly, layer_par, column_par, stc, smc, sh2o, sstate, &
                          diag_tmin, diag_tmax, diag_tsum, diag_thaw, diag_count, &
                          rec_stc, rec_smc, rec_sh2o, rec_out, status, fail_step)
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use nt_column_kernel, only: run_columns
  implicit none
  integer(c_int), intent(in) :: ncol, nlay, nstep, nrec, nforc_, nlpar_, ncpar_, nmon_, nsst_
  integer(c_int), intent(in) :: nout_, nopt_
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
  real(c_double), intent(inout) :: rec_stc(nlay, ncol, nrec), rec_smc(nlay, ncol, nrec)
  real(c_double), intent(inout) :: rec_sh2o(nlay, ncol, nrec), rec_out(nout_, ncol, nrec)
  integer(c_int), intent(inout) :: status(ncol), fail_step(ncol)

  call run_columns(ncol, nlay, nstep, nrec, dt, options, forcing, month_prev, month_next, &
                   month_weight, monthly, layer_par, column_par, stc, smc, sh2o, sstate, &
                   diag_tmin, diag_tmax, diag_tsum, diag_thaw, diag_count, &
                   rec_stc, rec_smc, rec_sh2o, rec_out, status, fail_step)
end subroutine nt_run_columns

!> Sizes of the flat arrays, so Python can check its layout against this build.
subroutine nt_layout_sizes(sizes)
  use, intrinsic :: iso_c_binding, only: c_int
  use nt_parameter_layout, only: nforc, nlpar, ncpar, nmon, nsst, nout, nopt
  implicit none
  integer(c_int), intent(out) :: sizes(7)
  sizes = [nforc, nlpar, ncpar, nmon, nsst, nout, nopt]
end subroutine nt_layout_sizes
