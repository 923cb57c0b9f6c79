!> Soil thermal conductivity.
!>
!> Johansen (1975) / Peters-Lidard et al. (1998) normalised-conductivity
!> scheme (stock Noah TDFCND, OPT_TCND = 1) and the Noah-Tibet variant
!> (TDFCND_C05, OPT_TCND = 2, default) that switches to Cote & Konrad (2005)
!> for gravel and to the Johansen crushed-rock dry conductivity for bedrock.
!> Specification: spec/physics.md section 7.3 and trap 8 of section 13.
!>
!> Common part (spec 7.3), with n = porosity (smcmax):
!>   Sr         = smc/n
!>   lambda_s   = 7.7**qz * 2.0**(1-qz)
!>   xu         = (sh2o/smc)*n                     (smc must be > 0)
!>   lambda_sat = lambda_s**(1-n) * 2.2**(n-xu) * 0.57**xu
!>   frozen    <=> sh2o + 0.0005 < smc
!>   lambda     = Ke*(lambda_sat - lambda_dry) + lambda_dry
!> The Kersten number log10(Sr)+1 (Sr > 0.1, else 0) is not clamped to <= 1.
module nt_thermal_conductivity
  use nt_kinds, only: dp
  implicit none
  private

  public :: tdfcnd_stock, tdfcnd_c05, thermal_conductivity

  !> Soil class switch of TDFCND_C05 (the caller maps soil table class
  !> 13 GRAVEL -> tc_class_gravel, 14 BEDROCK -> tc_class_bedrock, others -> other).
  integer, parameter, public :: tc_class_other   = 0
  integer, parameter, public :: tc_class_gravel  = 1
  integer, parameter, public :: tc_class_bedrock = 2

  !> Conductivity option (legacy OPT_TCND).
  integer, parameter, public :: tc_option_stock = 1   !< stock Noah TDFCND
  integer, parameter, public :: tc_option_c05   = 2   !< Noah-Tibet TDFCND_C05 (default)

  ! Constituent conductivities [W m-1 K-1], spec 7.3 / section 9.
  real(dp), parameter :: thk_ice = 2.2_dp    !< ice
  real(dp), parameter :: thk_wat = 0.57_dp   !< liquid water
  real(dp), parameter :: thk_oth = 2.0_dp    !< non-quartz minerals
  real(dp), parameter :: thk_qtz = 7.7_dp    !< quartz
  ! Gravel / bedrock dry-conductivity exponents (spec 7.3 table, Cote & Konrad 2005 eta;
  ! Johansen crushed rock)
  real(dp), parameter :: gravel_eta  = 1.80_dp  !< lambda_dry = chi*10**(-eta*n)
  real(dp), parameter :: bedrock_exp = 2.2_dp   !< lambda_dry = c*n**(-2.2)
  ! Liquid-water margin of the frozen test [m3 m-3]
  real(dp), parameter :: frozen_margin = 0.0005_dp

contains

  !> Saturated conductivity lambda_sat of the common part (spec 7.3).
  !>   smc, qz, smcmax, sh2o: see tdfcnd_stock (in)
  elemental function saturated_conductivity(smc, qz, smcmax, sh2o) result(thksat)
    real(dp), intent(in) :: smc, qz, smcmax, sh2o
    real(dp) :: thksat
    real(dp) :: thks, xu
    thks = thk_qtz**qz * thk_oth**(1.0_dp - qz)                 ! lambda_s
    xu = (sh2o/smc)*smcmax                                       ! XU
    thksat = thks**(1.0_dp - smcmax) * thk_ice**(smcmax - xu) * thk_wat**xu
  end function saturated_conductivity

  !> Johansen dry conductivity of natural soil from the dry density
  !> gamma_d = 2700(1-n) [kg m-3] (spec 7.3).
  !>   smcmax : porosity n [m3 m-3] (in)
  elemental function dry_conductivity_johansen(smcmax) result(thkdry)
    real(dp), intent(in) :: smcmax
    real(dp) :: thkdry
    real(dp) :: gammd
    gammd = (1.0_dp - smcmax)*2700.0_dp
    thkdry = (0.135_dp*gammd + 64.7_dp)/(2700.0_dp - 0.947_dp*gammd)
  end function dry_conductivity_johansen

  !> Johansen Kersten number: Sr if frozen; else log10(Sr)+1 if Sr > 0.1, else 0
  !> (no clamp, spec 7.3).
  !>   sr     : degree of saturation smc/smcmax [-] (in)
  !>   frozen : frozen test result (in)
  elemental function kersten_johansen(sr, frozen) result(ake)
    real(dp), intent(in) :: sr
    logical,  intent(in) :: frozen
    real(dp) :: ake
    if (frozen) then
      ake = sr
    else if (sr > 0.1_dp) then
      ake = log10(sr) + 1.0_dp
    else
      ake = 0.0_dp
    end if
  end function kersten_johansen

  !> Stock Noah thermal conductivity (TDFCND, OPT_TCND = 1), spec 7.3.
  !>   smc    : total volumetric soil moisture [m3 m-3], > 0 (in)
  !>   qz     : quartz fraction of the solids [-] (in)
  !>   smcmax : porosity [m3 m-3] (in)
  !>   sh2o   : liquid volumetric soil moisture [m3 m-3] (in)
  !>   df     : thermal conductivity [W m-1 K-1] (result)
  elemental function tdfcnd_stock(smc, qz, smcmax, sh2o) result(df)
    real(dp), intent(in) :: smc, qz, smcmax, sh2o
    real(dp) :: df
    real(dp) :: sr, thksat, thkdry, ake
    sr = smc/smcmax
    thksat = saturated_conductivity(smc, qz, smcmax, sh2o)
    thkdry = dry_conductivity_johansen(smcmax)
    ake = kersten_johansen(sr, (sh2o + frozen_margin) < smc)
    df = ake*(thksat - thkdry) + thkdry
  end function tdfcnd_stock

  !> Noah-Tibet thermal conductivity (TDFCND_C05, OPT_TCND = 2), spec 7.3.
  !>   other   : as tdfcnd_stock.
  !>   gravel  : lambda_dry = dry_coef*10**(-1.80 n) (chi = dry_coef = 1.70),
  !>             Ke = kappa Sr/(1 + (kappa-1) Sr), kappa = kappa_frozen (1.70) if
  !>             frozen else kappa_unfrozen (4.60)  (Cote & Konrad 2005).
  !>   bedrock : lambda_dry = dry_coef*n**(-2.2) (dry_coef = 0.039), Johansen Ke.
  !>   smc            : total volumetric soil moisture [m3 m-3], > 0 (in)
  !>   qz             : quartz fraction [-] (in)
  !>   smcmax         : porosity n [m3 m-3] (in)
  !>   sh2o           : liquid volumetric soil moisture [m3 m-3] (in)
  !>   tc_class       : tc_class_other / tc_class_gravel / tc_class_bedrock (in)
  !>   kappa_unfrozen : Cote-Konrad kappa, unfrozen [-] (in; gravel only)
  !>   kappa_frozen   : Cote-Konrad kappa, frozen [-] (in; gravel only)
  !>   dry_coef       : chi (gravel) or c (bedrock) of lambda_dry [W m-1 K-1] (in; unused for other)
  !>   df             : thermal conductivity [W m-1 K-1] (result)
  elemental function tdfcnd_c05(smc, qz, smcmax, sh2o, tc_class, kappa_unfrozen, &
                                kappa_frozen, dry_coef) result(df)
    real(dp), intent(in) :: smc, qz, smcmax, sh2o
    integer,  intent(in) :: tc_class
    real(dp), intent(in) :: kappa_unfrozen, kappa_frozen, dry_coef
    real(dp) :: df
    real(dp) :: sr, thksat, thkdry, ake, kappa
    logical  :: frozen

    sr = smc/smcmax
    thksat = saturated_conductivity(smc, qz, smcmax, sh2o)
    frozen = (sh2o + frozen_margin) < smc
    select case (tc_class)
    case (tc_class_gravel)
      thkdry = dry_coef*10.0_dp**(-gravel_eta*smcmax)
      if (frozen) then
        kappa = kappa_frozen
      else
        kappa = kappa_unfrozen
      end if
      ake = kappa*sr/(1.0_dp + (kappa - 1.0_dp)*sr)
    case (tc_class_bedrock)
      thkdry = dry_coef*smcmax**(-bedrock_exp)
      ake = kersten_johansen(sr, frozen)
    case default
      thkdry = dry_conductivity_johansen(smcmax)
      ake = kersten_johansen(sr, frozen)
    end select
    df = ake*(thksat - thkdry) + thkdry
  end function tdfcnd_c05

  !> Thermal conductivity for the chosen option (tc_option_stock: tdfcnd_stock,
  !> ignoring the class arguments; otherwise tdfcnd_c05).  Arguments as tdfcnd_c05,
  !> preceded by
  !>   option : tc_option_stock or tc_option_c05 (in)
  elemental function thermal_conductivity(option, smc, qz, smcmax, sh2o, tc_class, &
                                          kappa_unfrozen, kappa_frozen, dry_coef) result(df)
    integer,  intent(in) :: option
    real(dp), intent(in) :: smc, qz, smcmax, sh2o
    integer,  intent(in) :: tc_class
    real(dp), intent(in) :: kappa_unfrozen, kappa_frozen, dry_coef
    real(dp) :: df
    if (option == tc_option_stock) then
      df = tdfcnd_stock(smc, qz, smcmax, sh2o)
    else
      df = tdfcnd_c05(smc, qz, smcmax, sh2o, tc_class, kappa_unfrozen, kappa_frozen, dry_coef)
    end if
  end function thermal_conductivity

end module nt_thermal_conductivity
