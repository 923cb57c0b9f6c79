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
  use, intrinsic :: iso_fortran_env, only: int64
  use nt_kinds, only: dp
  use nt_elementary, only: fexp, flog, fpow, exp_array_inrange, log_array_positive
  implicit none
  private

  public :: tdfcnd_stock, tdfcnd_c05, thermal_conductivity
  public :: tc_static_terms, tc_from_static_terms, tc_layers

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
  real(dp), parameter :: log_thk_ice = log(thk_ice)  !< ln(lambda_ice)
  real(dp), parameter :: log_thk_wat = log(thk_wat)  !< ln(lambda_w)
  real(dp), parameter :: inv_ln10 = 1.0_dp/log(10.0_dp)  !< log10(x) = ln(x)/ln(10)
  real(dp), parameter :: thk_oth = 2.0_dp    !< non-quartz minerals
  real(dp), parameter :: thk_qtz = 7.7_dp    !< quartz
  ! Gravel / bedrock dry-conductivity exponents (spec 7.3 table, Cote & Konrad 2005 eta;
  ! Johansen crushed rock)
  real(dp), parameter :: gravel_eta  = 1.80_dp  !< lambda_dry = chi*10**(-eta*n)
  real(dp), parameter :: bedrock_exp = 2.2_dp   !< lambda_dry = c*n**(-2.2)
  ! Liquid-water margin of the frozen test [m3 m-3]
  real(dp), parameter :: frozen_margin = 0.0005_dp

contains

  !> Parameter-only factors of the conductivity (they depend on the soil
  !> parameters, not on the moisture state), so a caller may compute them once
  !> per layer and use tc_from_static_terms every step; results are bitwise
  !> identical to thermal_conductivity.
  !>   option     : tc_option_stock or tc_option_c05 (in)
  !>   qz         : quartz fraction [-] (in)
  !>   smcmax     : porosity n [m3 m-3] (in)
  !>   tc_class   : tc_class_other / tc_class_gravel / tc_class_bedrock (in; option c05 only)
  !>   dry_coef   : chi (gravel) or c (bedrock) [W m-1 K-1] (in; unused for other)
  !>   solid_term : lambda_s**(1-n), lambda_s = 7.7**qz * 2.0**(1-qz) [W m-1 K-1]^(1-n) (out)
  !>   thkdry     : dry conductivity lambda_dry [W m-1 K-1] (out)
  elemental subroutine tc_static_terms(option, qz, smcmax, tc_class, dry_coef, solid_term, thkdry)
    integer,  intent(in)  :: option, tc_class
    real(dp), intent(in)  :: qz, smcmax, dry_coef
    real(dp), intent(out) :: solid_term, thkdry
    real(dp) :: thks, gammd
    thks = fpow(thk_qtz, qz) * fpow(thk_oth, 1.0_dp - qz)                 ! lambda_s
    solid_term = fpow(thks, 1.0_dp - smcmax)
    if (option /= tc_option_stock .and. tc_class == tc_class_gravel) then
      thkdry = dry_coef*fpow(10.0_dp, -gravel_eta*smcmax)
    else if (option /= tc_option_stock .and. tc_class == tc_class_bedrock) then
      thkdry = dry_coef*fpow(smcmax, -bedrock_exp)
    else
      gammd = (1.0_dp - smcmax)*2700.0_dp                        ! dry density gamma_d [kg m-3]
      thkdry = (0.135_dp*gammd + 64.7_dp)/(2700.0_dp - 0.947_dp*gammd)
    end if
  end subroutine tc_static_terms

  !> State-dependent part of the conductivity (spec 7.3), given the static
  !> terms of tc_static_terms.
  !>   option         : tc_option_stock or tc_option_c05 (in)
  !>   smc            : total volumetric soil moisture [m3 m-3], > 0 (in)
  !>   smcmax         : porosity n [m3 m-3] (in)
  !>   sh2o           : liquid volumetric soil moisture [m3 m-3] (in)
  !>   tc_class       : conductivity class (in; option c05 only)
  !>   kappa_unfrozen : Cote-Konrad kappa, unfrozen [-] (in; gravel only)
  !>   kappa_frozen   : Cote-Konrad kappa, frozen [-] (in; gravel only)
  !>   solid_term     : lambda_s**(1-n) from tc_static_terms (in)
  !>   thkdry         : lambda_dry from tc_static_terms [W m-1 K-1] (in)
  !>   df             : thermal conductivity [W m-1 K-1] (result)
  elemental function tc_from_static_terms(option, smc, smcmax, sh2o, tc_class, kappa_unfrozen, &
                                          kappa_frozen, solid_term, thkdry) result(df)
    integer,  intent(in) :: option, tc_class
    real(dp), intent(in) :: smc, smcmax, sh2o, kappa_unfrozen, kappa_frozen, solid_term, thkdry
    real(dp) :: df
    df = conductivity_from_saturated(option, smc/smcmax, smc, sh2o, tc_class, kappa_unfrozen, &
                                     kappa_frozen, saturated_conductivity(smc, smcmax, sh2o,  &
                                     solid_term), thkdry)
  end function tc_from_static_terms

  !> tc_from_static_terms for n layers (the layers of a block's lanes, or the
  !> top layer of each lane), vectorised.  Without rsmcmax the result has the
  !> bits of n calls of tc_from_static_terms (its exponential and logarithm are
  !> nt_elementary's array routines, which give fexp's and flog's bits); with
  !> rsmcmax, Sr = smc/smcmax is evaluated as smc*rsmcmax (the reciprocal of
  !> the porosity precomputed; a few ulp from the division).
  !>   option, tc_class, kappa_unfrozen, kappa_frozen, solid_term, thkdry,
  !>   smc, smcmax, sh2o : per layer, as tc_from_static_terms (in)
  !>   rsmcmax : 1/smcmax per layer (in, optional)
  !>   df      : thermal conductivity per layer [W m-1 K-1] (out)
  pure subroutine tc_layers(option, n, smc, smcmax, sh2o, tc_class, kappa_unfrozen, &
                            kappa_frozen, solid_term, thkdry, df, rsmcmax)
    integer,  intent(in)  :: option, n, tc_class(n)
    real(dp), intent(in)  :: smc(n), smcmax(n), sh2o(n)
    real(dp), intent(in), optional :: rsmcmax(n)
    real(dp), intent(in)  :: kappa_unfrozen(n), kappa_frozen(n), solid_term(n), thkdry(n)
    real(dp), intent(out) :: df(n)
    real(dp) :: thksat(n), arg(n), sr(n), log_sr(n)
    integer(int64) :: nlog   ! number of layers whose Kersten number needs ln(Sr)
    integer  :: k
    ! lambda_sat of every layer first (saturated_conductivity): the exponents,
    ! then their exponentials in one vectorised call
    do k = 1, n
      arg(k) = saturated_conductivity_exponent(smc(k), smcmax(k), sh2o(k))
    end do
    call exp_array_inrange(n, arg, thksat)     ! exponents in [-0.6, 0.8]
    do k = 1, n
      thksat(k) = solid_term(k)*thksat(k)
    end do
    ! ln(Sr) of every layer in one vectorised call (Sr >= 0.02/smcmax > 0), for the
    ! Kersten number of the unfrozen layers with Sr > 0.1 that use Johansen's
    ! form; skipped when no layer does (e.g. a permafrost column in winter:
    ! log_sr is then not read)
    if (present(rsmcmax)) then
      do k = 1, n
        sr(k) = smc(k)*rsmcmax(k)
      end do
    else
      do k = 1, n
        sr(k) = smc(k)/smcmax(k)
      end do
    end if
    nlog = 0
    do k = 1, n
      nlog = nlog + merge(1_int64, 0_int64, uses_log_sr(option, sr(k), smc(k), sh2o(k), tc_class(k)))
    end do
    if (nlog > 0) then
      call log_array_positive(n, sr, log_sr)
    else
      log_sr = 0.0_dp
    end if
    do k = 1, n
      df(k) = conductivity_from_saturated(option, sr(k), smc(k), sh2o(k), tc_class(k),          &
                                          kappa_unfrozen(k), kappa_frozen(k), thksat(k), thkdry(k), &
                                          log_sr(k))
    end do
  end subroutine tc_layers

  !> Whether conductivity_from_saturated uses ln(Sr) for a layer (the branch
  !> selection written there): unfrozen, Sr > 0.1, and Johansen's Kersten
  !> number (not the Cote & Konrad form of gravel).
  !>   option, sr, smc, sh2o, tc_class : as conductivity_from_saturated (in)
  elemental logical function uses_log_sr(option, sr, smc, sh2o, tc_class)
    integer,  intent(in) :: option, tc_class
    real(dp), intent(in) :: sr, smc, sh2o
    uses_log_sr = .not. (option /= tc_option_stock .and. tc_class == tc_class_gravel) &
                  .and. .not. ((sh2o + frozen_margin) < smc) .and. sr > 0.1_dp
  end function uses_log_sr

  !> Saturated conductivity lambda_sat = lambda_s**(1-n) * 2.2**(n-xu) * 0.57**xu,
  !> xu = (sh2o/smc) n (spec 7.3); the two powers as one exponential (equal in exact
  !> arithmetic, a few ulp apart in floating point).
  !>   smc, smcmax, sh2o : as tc_from_static_terms (in)
  !>   solid_term        : lambda_s**(1-n) from tc_static_terms (in)
  elemental function saturated_conductivity(smc, smcmax, sh2o, solid_term) result(thksat)
    real(dp), intent(in) :: smc, smcmax, sh2o, solid_term
    real(dp) :: thksat
    thksat = solid_term*fexp(saturated_conductivity_exponent(smc, smcmax, sh2o))
  end function saturated_conductivity

  !> The exponent of saturated_conductivity, (n - xu) ln lambda_ice + xu ln lambda_w,
  !> xu = (sh2o/smc) n.
  elemental function saturated_conductivity_exponent(smc, smcmax, sh2o) result(e)
    real(dp), intent(in) :: smc, smcmax, sh2o
    real(dp) :: e
    real(dp) :: xu
    xu = (sh2o/smc)*smcmax                                       ! XU
    e = (smcmax - xu)*log_thk_ice + xu*log_thk_wat
  end function saturated_conductivity_exponent

  !> Kersten number and conductivity from lambda_sat (spec 7.3):
  !> lambda = Ke (lambda_sat - lambda_dry) + lambda_dry.
  !>   option, smc, sh2o, tc_class, kappa_unfrozen, kappa_frozen, thkdry : as tc_from_static_terms (in)
  !>   sr     : Sr = smc/smcmax (in)
  !>   thksat : lambda_sat (in)
  !>   log_sr : ln(Sr), if the caller has it (tc_layers: all layers in one vectorised
  !>            call); otherwise computed here where needed (in, optional)
  elemental function conductivity_from_saturated(option, sr, smc, sh2o, tc_class, kappa_unfrozen, &
                                                 kappa_frozen, thksat, thkdry, log_sr) result(df)
    integer,  intent(in) :: option, tc_class
    real(dp), intent(in) :: sr, smc, sh2o, kappa_unfrozen, kappa_frozen, thksat, thkdry
    real(dp), intent(in), optional :: log_sr
    real(dp) :: df
    real(dp) :: ake, kappa
    logical  :: frozen

    frozen = (sh2o + frozen_margin) < smc
    if (option /= tc_option_stock .and. tc_class == tc_class_gravel) then
      ! Cote & Konrad (2005) normalised conductivity
      if (frozen) then
        kappa = kappa_frozen
      else
        kappa = kappa_unfrozen
      end if
      ake = kappa*sr/(1.0_dp + (kappa - 1.0_dp)*sr)
    else if (frozen) then
      ! Johansen Kersten number (no clamp to <= 1)
      ake = sr
    else if (sr > 0.1_dp) then
      if (present(log_sr)) then
        ake = log_sr*inv_ln10 + 1.0_dp
      else
        ake = flog(sr)*inv_ln10 + 1.0_dp
      end if
    else
      ake = 0.0_dp
    end if
    df = ake*(thksat - thkdry) + thkdry
  end function conductivity_from_saturated

  !> Stock Noah thermal conductivity (TDFCND, OPT_TCND = 1), spec 7.3.
  !>   smc    : total volumetric soil moisture [m3 m-3], > 0 (in)
  !>   qz     : quartz fraction of the solids [-] (in)
  !>   smcmax : porosity [m3 m-3] (in)
  !>   sh2o   : liquid volumetric soil moisture [m3 m-3] (in)
  !>   df     : thermal conductivity [W m-1 K-1] (result)
  elemental function tdfcnd_stock(smc, qz, smcmax, sh2o) result(df)
    real(dp), intent(in) :: smc, qz, smcmax, sh2o
    real(dp) :: df
    real(dp) :: solid_term, thkdry
    call tc_static_terms(tc_option_stock, qz, smcmax, tc_class_other, 0.0_dp, solid_term, thkdry)
    df = tc_from_static_terms(tc_option_stock, smc, smcmax, sh2o, tc_class_other, 0.0_dp, 0.0_dp, &
                              solid_term, thkdry)
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
    real(dp) :: solid_term, thkdry
    call tc_static_terms(tc_option_c05, qz, smcmax, tc_class, dry_coef, solid_term, thkdry)
    df = tc_from_static_terms(tc_option_c05, smc, smcmax, sh2o, tc_class, kappa_unfrozen, &
                              kappa_frozen, solid_term, thkdry)
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
