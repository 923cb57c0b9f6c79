!> Numeric kinds used everywhere in noahtibet.
!>
!> One real kind and one integer kind, both interoperable with C so that the
!> f2py boundary (fortran/f2py_api.f90) passes NumPy float64 / int32 arrays
!> without conversion.  Physics code never uses default REAL or literal
!> constants without the _dp suffix.
module nt_kinds
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  implicit none
  private
  integer, parameter, public :: dp = c_double  !< double precision (IEEE binary64)
  integer, parameter, public :: ip = c_int     !< default integer at the API boundary
end module nt_kinds
