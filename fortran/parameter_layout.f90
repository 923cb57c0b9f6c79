!> Layout of the flat arrays that cross the Python/Fortran boundary.
!>
!> The kernel receives every per-column quantity as plain float64 / int32
!> arrays (f2py cannot wrap derived types).  This module is the single place
!> where the meaning of each row is defined; python/noahtibet/layout.py holds
!> the same names in the same order and tests/test_layout.py checks that both
!> agree, so a parameter can never be silently shifted.
!>
!> Arrays (Fortran shapes; NumPy sees the reverse with C order):
!>   forcing(ncol, nforc, nstep)     meteorology at the model step
!>   layer_par(nlpar, nlay, ncol)   per-layer parameters
!>   column_par(ncpar, ncol)        per-column scalar parameters
!>   monthly(12, nmon, ncol)        monthly climatologies (valid on the 15th)
!>   stc/smc/sh2o(nlay, ncol)       prognostic soil state
!>   surface_state(nsst, ncol)      prognostic surface/snow state
!>   options(nopt)                  run-wide physics switches
module nt_parameter_layout
  implicit none
  public

  ! ---- forcing variables (all at the model time step) ----------------------
  integer, parameter :: f_wind = 1        !< wind speed at wind_level [m s-1]
  integer, parameter :: f_air_temperature = 2  !< air temperature at air_temperature_level [K]
  integer, parameter :: f_specific_humidity = 3 !< specific humidity [kg kg-1]
  integer, parameter :: f_pressure = 4    !< surface pressure [Pa]
  integer, parameter :: f_shortwave = 5   !< downward shortwave radiation [W m-2]
  integer, parameter :: f_longwave = 6    !< downward longwave radiation [W m-2]
  integer, parameter :: f_precipitation = 7 !< precipitation rate [kg m-2 s-1]
  integer, parameter :: nforc = 7

  ! ---- per-layer parameters ---------------------------------------------------
  integer, parameter :: lp_thickness = 1        !< layer thickness dz [m]
  integer, parameter :: lp_bexp = 2             !< Clapp-Hornberger b [-]
  integer, parameter :: lp_smcdry = 3           !< air-dry moisture [m3 m-3]
  integer, parameter :: lp_smcmax = 4           !< porosity [m3 m-3]
  integer, parameter :: lp_smcref = 5           !< field capacity (transpiration stress onset) [m3 m-3]
  integer, parameter :: lp_psisat = 6           !< saturated matric suction [m]
  integer, parameter :: lp_dksat = 7            !< saturated hydraulic conductivity [m s-1]
  integer, parameter :: lp_dwsat = 8            !< saturated soil-water diffusivity [m2 s-1]
  integer, parameter :: lp_smcwlt = 9           !< wilting point [m3 m-3]
  integer, parameter :: lp_quartz = 10          !< quartz fraction of solids [-]
  integer, parameter :: lp_csoil = 11           !< heat capacity of soil solids [J m-3 K-1]
  integer, parameter :: lp_tc_class = 12        !< conductivity branch: 0 other, 1 gravel, 2 bedrock
  integer, parameter :: lp_tc_kappa_unfrozen = 13 !< Cote-Konrad kappa, unfrozen (gravel) [-]
  integer, parameter :: lp_tc_kappa_frozen = 14 !< Cote-Konrad kappa, frozen (gravel) [-]
  integer, parameter :: lp_tc_dry_coef = 15     !< dry-conductivity coefficient (gravel chi / bedrock c)
  integer, parameter :: lp_ice_impedance = 16   !< ice-impedance exponent E (consistent physics) [-]
  integer, parameter :: nlpar = 16

  ! ---- per-column parameters --------------------------------------------------
  ! "surface soil" class P_S = the namelist Soil_type_index: used by the legacy
  ! model in several places (quirks Q1-Q4); ignored when legacy quirks are off.
  integer, parameter :: cp_sfc_smcmax = 1
  integer, parameter :: cp_sfc_smcref = 2
  integer, parameter :: cp_sfc_smcwlt = 3
  integer, parameter :: cp_sfc_smcdry = 4
  integer, parameter :: cp_sfc_quartz = 5
  integer, parameter :: cp_sfc_dksat = 6
  integer, parameter :: cp_sfc_psisat = 7
  ! vegetation class (VEGPARM)
  integer, parameter :: cp_nroot = 8            !< number of root layers
  integer, parameter :: cp_rsmin = 9            !< minimum stomatal resistance [s m-1]
  integer, parameter :: cp_rgl = 10             !< radiation stress parameter [W m-2]
  integer, parameter :: cp_hs = 11              !< vapour-pressure-deficit parameter [-]
  integer, parameter :: cp_snup = 12            !< SWE for full snow cover [m]
  integer, parameter :: cp_laimin = 13
  integer, parameter :: cp_laimax = 14
  integer, parameter :: cp_emissmin = 15
  integer, parameter :: cp_emissmax = 16
  integer, parameter :: cp_albedomin = 17
  integer, parameter :: cp_albedomax = 18
  integer, parameter :: cp_z0min = 19           !< background roughness, sparse [m]
  integer, parameter :: cp_z0max = 20           !< background roughness, dense [m]
  integer, parameter :: cp_bare = 21            !< 1 if the vegetation class is bare soil (SHDFAC forced to 0)
  integer, parameter :: cp_shdmin = 22          !< minimum green fraction [-]
  integer, parameter :: cp_shdmax = 23          !< maximum green fraction [-]
  integer, parameter :: cp_snoalb = 24          !< maximum snow albedo [-]
  ! global table values (GENPARM / VEGPARM globals), per column so they can be calibrated
  integer, parameter :: cp_topt = 25
  integer, parameter :: cp_rsmax = 26
  integer, parameter :: cp_cmcmax = 27
  integer, parameter :: cp_cfactr = 28
  integer, parameter :: cp_slope = 29           !< drainage coefficient SLOPE_DATA(slope class)
  integer, parameter :: cp_sbeta = 30
  integer, parameter :: cp_fxexp = 31
  integer, parameter :: cp_salp = 32
  integer, parameter :: cp_refdk = 33
  integer, parameter :: cp_refkdt = 34
  integer, parameter :: cp_frzk = 35
  integer, parameter :: cp_zbot = 36            !< depth of the lower boundary [m, negative]
  integer, parameter :: cp_czil = 37
  integer, parameter :: cp_lvcoef = 38
  ! site
  integer, parameter :: cp_tbot = 39            !< lower-boundary temperature at zbot [K]
  integer, parameter :: cp_zlvl = 40            !< air temperature / humidity height [m]
  integer, parameter :: cp_zlvl_wind = 41       !< wind height [m]
  ! Noah-Tibet parameters exposed for calibration (legacy values in brackets)
  integer, parameter :: cp_z0h_beta = 42        !< Yang-2008 z0h coefficient [7.2]
  integer, parameter :: cp_snow_cond_mult = 43  !< snow conductivity multiplier [2.0]
  integer, parameter :: cp_flimit = 44          !< two-pass soil-water threshold FAC2MIT(MAXSMC of layer 1)
  integer, parameter :: ncpar = 44

  ! ---- monthly climatologies --------------------------------------------------
  integer, parameter :: mo_green_fraction = 1   !< SHDFAC, always used
  integer, parameter :: mo_lai = 2              !< used when opt_use_monthly_lai = 1
  integer, parameter :: mo_albedo = 3           !< used when opt_use_monthly_albedo = 1
  integer, parameter :: nmon = 3

  ! ---- surface state ----------------------------------------------------------
  integer, parameter :: ss_skin_temperature = 1 !< T1 [K]
  integer, parameter :: ss_canopy_water = 2     !< CMC [m]
  integer, parameter :: ss_snow_depth = 3       !< SNOWH [m]
  integer, parameter :: ss_snow_water = 4       !< SNEQV [m]
  integer, parameter :: ss_albedo = 5           !< albedo of the previous step [-]
  integer, parameter :: ss_emissivity = 6       !< emissivity of the previous step [-]
  integer, parameter :: ss_z0 = 7               !< roughness incl. snow [m]
  integer, parameter :: ss_z0brd = 8            !< background roughness [m]
  integer, parameter :: ss_ch = 9               !< heat exchange coefficient [m s-1]
  integer, parameter :: ss_cm = 10              !< momentum exchange coefficient [m s-1]
  integer, parameter :: ss_q1 = 11              !< effective surface specific humidity [kg kg-1]
  integer, parameter :: ss_snow_age = 12        !< time since last snowfall SNOTIME1 [s]
  integer, parameter :: ss_ribb = 13            !< bulk Richardson number [-]
  integer, parameter :: nsst = 13

  ! ---- per-step outputs (record mode) -----------------------------------------
  integer, parameter :: out_skin_temperature = 1   !< [K]
  integer, parameter :: out_snow_depth = 2         !< [m]
  integer, parameter :: out_snow_water = 3         !< [m]
  integer, parameter :: out_sensible_heat = 4      !< [W m-2], positive upward
  integer, parameter :: out_latent_heat = 5        !< [W m-2], positive upward
  integer, parameter :: out_ground_heat = 6        !< SSOIL [W m-2], positive downward
  integer, parameter :: out_soil_heat_top = 7      !< flux applied to the soil column top [W m-2], down
  integer, parameter :: out_soil_heat_bottom = 8   !< flux leaving the column bottom [W m-2], down
  integer, parameter :: out_precipitation = 9      !< [kg m-2 s-1]
  integer, parameter :: out_evaporation = 10       !< total water vapour flux [kg m-2 s-1], incl. dew (<0)
  integer, parameter :: out_surface_runoff = 11    !< [kg m-2 s-1]
  integer, parameter :: out_drainage = 12          !< [kg m-2 s-1] incl. excess at the bottom
  integer, parameter :: out_water_clamped = 13     !< net water created (<0: removed) by the legacy clamps [kg m-2 s-1]
  integer, parameter :: out_canopy_water = 14      !< [m]
  integer, parameter :: out_potential_evap = 15    !< [W m-2]
  integer, parameter :: out_edir = 16              !< [W m-2]
  integer, parameter :: out_ec = 17                !< [W m-2]
  integer, parameter :: out_ett = 18               !< [W m-2]
  integer, parameter :: out_albedo = 19            !< [-]
  integer, parameter :: out_snow_cover = 20        !< [-]
  integer, parameter :: out_ch = 21                !< [m s-1]
  integer, parameter :: nout = 21

  ! ---- water-balance sums of the diagnostics (m of water over the accumulated steps)
  integer, parameter :: wb_precipitation = 1     !< precipitation
  integer, parameter :: wb_evaporation = 2       !< evapotranspiration (dew negative)
  integer, parameter :: wb_surface_runoff = 3    !< surface runoff
  integer, parameter :: wb_drainage = 4          !< drainage at the column bottom
  integer, parameter :: wb_water_clamped = 5     !< water created (<0: removed) by the legacy clamps
  integer, parameter :: nwb = 5

  ! ---- options -----------------------------------------------------------------
  integer, parameter :: opt_sfcdif = 1           !< 0 Chen97, 1 MYJ, 2 Yang08
  integer, parameter :: opt_iz0tlnd = 2          !< 0 constant CZIL, 1 Chen-Zhang CZIL(z0)
  integer, parameter :: opt_thermal_conductivity = 3 !< 1 stock Johansen, 2 Noah-Tibet gravel/bedrock
  integer, parameter :: opt_frozen_hydraulics = 4    !< 1 stock (Koren FCR), 2 ice impedance
  integer, parameter :: opt_legacy_quirks = 5    !< 1 reproduce legacy quirks Q1-Q5, 0 consistent
  integer, parameter :: opt_use_monthly_albedo = 6
  integer, parameter :: opt_use_monthly_lai = 7
  integer, parameter :: nopt = 7

  ! ---- column status codes -------------------------------------------------------
  integer, parameter :: status_ok = 0
  integer, parameter :: status_nonfinite = 1      !< a state variable became NaN/Inf
  integer, parameter :: status_snow_density = 2   !< snow density > 1 (SNEQV > SNOWH)
  integer, parameter :: status_yang08 = 3         !< Yang-2008 Obukhov-length solution singular
  integer, parameter :: status_bad_parameter = 4  !< inconsistent parameters (e.g. nroot > nlay)
end module nt_parameter_layout
