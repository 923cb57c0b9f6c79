!> Physical constants shared by several processes.
!>
!> The legacy Noah-Tibet code (modified Noah LSM 3.4.1) uses *different*
!> numerical values for "the same" constant in different routines (e.g. cp
!> 1004.5 / 1004.6 / 1004.0, R 287.04 / 287.0, g 9.81 / 9.8).  Reproducing the
!> legacy model requires each routine to keep its own value: those live as
!> named local parameters in the process modules, with their source.  Only the
!> values that are identical wherever they are used are collected here.
!> Source of every value: spec/physics.md section 9 (constants table).
module nt_constants
  use nt_kinds, only: dp
  implicit none
  private
  real(dp), parameter, public :: tfreez = 273.15_dp   !< freezing point of water [K]
  real(dp), parameter, public :: lvh2o  = 2.501e6_dp  !< latent heat of vaporisation [J kg-1]
  real(dp), parameter, public :: lsubs  = 2.83e6_dp   !< latent heat of sublimation [J kg-1]
  real(dp), parameter, public :: lsubf  = 3.335e5_dp  !< latent heat of fusion [J kg-1]
  real(dp), parameter, public :: sigma_sb = 5.67e-8_dp !< Stefan-Boltzmann constant as coded [W m-2 K-4]
  real(dp), parameter, public :: cph2o  = 4.218e3_dp  !< specific heat of liquid water [J kg-1 K-1]
  real(dp), parameter, public :: cpice  = 2.106e3_dp  !< specific heat of ice [J kg-1 K-1]
  real(dp), parameter, public :: rhowater = 1000.0_dp !< density of liquid water [kg m-3]
end module nt_constants
