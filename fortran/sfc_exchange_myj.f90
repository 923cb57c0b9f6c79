!> Surface exchange coefficients, option 1 (sfcdif_option = 1).
!>
!> Mellor-Yamada-Janjic surface layer in the "KWM" variant of the legacy
!> SFCDIF_MYJ: Paulson (1970) functions for unstable and Holtslag & De Bruin
!> (1988) functions for stable stratification, both tabulated on a uniform
!> zeta grid and interpolated linearly; Zilitinkevich thermal roughness
!> computed from the background roughness Z0BRD with a Richardson-number
!> dependent coefficient in stable conditions.
!> Specification: spec/physics.md section 2.2 (and trap 17 of section 13).
!>
!> Module state: only the two stability-function tables and their upper
!> bound, built once by myj_init().  myj_init() MUST be called once before
!> the first call of sfcdif_myj() (sfcdif_myj does not call it).
module nt_sfc_exchange_myj
  use nt_kinds, only: dp
  implicit none
  private

  public :: myj_init, sfcdif_myj

  ! Constants of module_model_constants as used by the legacy code (spec 2.2)
  real(dp), parameter :: r_d   = 287.0_dp              !< gas constant of dry air [J kg-1 K-1] (MYJ value)
  real(dp), parameter :: cp    = 7.0_dp*r_d/2.0_dp     !< = 1004.5 [J kg-1 K-1]
  real(dp), parameter :: r_v   = 461.6_dp              !< gas constant of water vapour [J kg-1 K-1]
  real(dp), parameter :: grav  = 9.81_dp               !< gravity [m s-2] (MYJ value)
  real(dp), parameter :: p0    = 1.0e5_dp              !< reference pressure [Pa]
  real(dp), parameter :: rcp   = r_d/cp                !< R_d/cp
  real(dp), parameter :: p608  = r_v/r_d - 1.0_dp      !< virtual temperature factor
  ! Scheme constants (spec 2.2)
  real(dp), parameter :: excml   = 1.0e-4_dp           !< exchange-coefficient floor times height [m2 s-1]
  real(dp), parameter :: vkarman = 0.4_dp              !< von Karman constant
  real(dp), parameter :: epsu2   = 1.0e-6_dp           !< floor of U**2 [m2 s-2]
  real(dp), parameter :: epsust  = 1.0e-9_dp           !< floor of u* [m s-1]
  real(dp), parameter :: sqvisc  = 258.2_dp            !< sqrt(1/nu) [s^0.5 m-1]
  real(dp), parameter :: ric     = 0.505_dp            !< critical Richardson number
  real(dp), parameter :: epszt   = 1.0e-28_dp          !< floor of the thermal roughness [m]
  real(dp), parameter :: wwst2   = 1.44_dp             !< (Beljaars factor 1.2)**2 as given in spec 2.2
  real(dp), parameter :: pblh    = 1000.0_dp           !< boundary-layer height in BTGH = 1000*BTGX [m]
  integer,  parameter :: itrmx   = 5                   !< fixed number of iterations
  ! Stability-function table (spec 2.2, MYJSFCINIT)
  integer,  parameter :: kztm   = 10001                !< number of table points
  real(dp), parameter :: ztmin2 = -5.0_dp              !< first table abscissa / lower zeta bound
  real(dp), parameter :: ztmax_nominal = 1.0_dp        !< nominal last abscissa (used for the spacing only)
  real(dp), parameter :: dzeta2 = (ztmax_nominal - ztmin2)/real(kztm - 1, dp) !< spacing, 6e-4
  real(dp), parameter :: pihf   = 3.1415926_dp/2.0_dp  !< pi/2 as coded in the table build (spec 2.2)
  real(dp), parameter :: zeta_eps = 1.0e-6_dp          !< ZTMAX2 = last accumulated abscissa - 1e-6

  logical,  save :: initialised = .false.
  real(dp), save :: psim_table(kztm) = 0.0_dp          !< psi_m at zeta_k, k = 1..KZTM
  real(dp), save :: psih_table(kztm) = 0.0_dp          !< psi_h at zeta_k, k = 1..KZTM
  real(dp), save :: ztmax2 = 0.0_dp                    !< upper zeta bound (set by myj_init)

contains

  !> Build the tabulated stability functions (legacy MYJSFCINIT), spec 2.2.
  !> zeta_1 = -5, zeta_{k+1} = zeta_k + 6e-4 accumulated in double precision;
  !> zeta < 0: Paulson (pi/2 = 3.1415926/2); zeta >= 0: Holtslag & De Bruin
  !> (identical for momentum and heat).  ZTMAX2 = zeta_KZTM - 1e-6.
  !> Idempotent: does nothing after the first call.  No arguments.
  subroutine myj_init()
    real(dp) :: zeta, x, psi
    integer  :: k

    if (initialised) return
    zeta = ztmin2
    do k = 1, kztm
      if (zeta < 0.0_dp) then
        x = (1.0_dp - 16.0_dp*zeta)**0.25_dp
        psim_table(k) = -2.0_dp*log((x + 1.0_dp)/2.0_dp) - log((x*x + 1.0_dp)/2.0_dp) &
                        + 2.0_dp*atan(x) - pihf
        psih_table(k) = -2.0_dp*log((x*x + 1.0_dp)/2.0_dp)
      else
        psi = 0.7_dp*zeta + 0.75_dp*zeta*(6.0_dp - 0.35_dp*zeta)*exp(-0.35_dp*zeta)
        psim_table(k) = psi
        psih_table(k) = psi
      end if
      if (k == kztm) ztmax2 = zeta - zeta_eps
      zeta = zeta + dzeta2
    end do
    initialised = .true.
  end subroutine myj_init

  !> Surface exchange coefficients of the KWM SFCDIF_MYJ (spec 2.2).
  !> Requires a prior call of myj_init().  Exactly 5 iterations.
  !>   zlvl      : height of air temperature/humidity [m] (in)
  !>   zlvl_wind : height of wind [m] (in)
  !>   z0        : momentum roughness incl. snow (previous SFLX) [m] (in)
  !>   z0brd     : background (snow-free) roughness, used for z0h [m] (in)
  !>   sfcprs    : surface pressure [Pa] (in)
  !>   t1        : skin temperature of the previous step [K] (in)
  !>   sfctmp    : air temperature [K] (in)
  !>   q1        : specific humidity at the surface (previous step) [kg kg-1] (in)
  !>   q2        : specific humidity of the air [kg kg-1] (in)
  !>   wind      : wind speed [m s-1] (in)
  !>   czil      : Zilitinkevich coefficient, chosen by the caller [-] (in)
  !>   ribb      : bulk Richardson number RIB [-] (out)
  !>   akms      : CM [m s-1] (inout: previous in, new out)
  !>   akhs      : CH [m s-1] (inout: previous in, new out)
  subroutine sfcdif_myj(zlvl, zlvl_wind, z0, z0brd, sfcprs, t1, sfctmp, q1, q2, wind, czil, &
                        ribb, akms, akhs)
    real(dp), intent(in)    :: zlvl, zlvl_wind, z0, z0brd, sfcprs, t1, sfctmp, q1, q2, wind, czil
    real(dp), intent(out)   :: ribb
    real(dp), intent(inout) :: akms, akhs

    real(dp) :: thlow, thz0      ! potential temperature of air / skin [K]
    real(dp) :: btgx, elfc, btgh
    real(dp) :: cxchl            ! floor of AKMS/AKHS [m s-1]
    real(dp) :: thm, a_coef      ! mean potential temperature, A = THM*P608
    real(dp) :: dthv             ! virtual potential temperature difference [K]
    real(dp) :: du2, rib
    real(dp) :: zu, zt, zslu, zslt, rzsu, rzst, rlogu, rlogt
    real(dp) :: zilfc, zzil
    real(dp) :: wstar2, ustar, rlmo
    real(dp) :: zetalu, zetalt, zetau, zetat
    real(dp) :: simm, simh
    integer  :: itr

    thlow = sfctmp*(p0/sfcprs)**rcp
    thz0  = t1*(p0/sfcprs)**rcp
    btgx  = grav/thlow
    elfc  = vkarman*btgx
    btgh  = pblh*btgx
    cxchl = excml/zlvl

    thm    = (thlow + thz0)/2.0_dp
    a_coef = thm*p608
    ! (TEM and B of the legacy only multiply the cloud water, which is 0)
    dthv = (thlow - thz0)*((q2 + q1)*(0.5_dp*p608) + 1.0_dp) + (q2 - q1)*a_coef

    du2  = max(wind*wind, epsu2)
    rib  = btgx*dthv*zlvl_wind*zlvl_wind/du2/zlvl
    ribb = rib

    zu    = z0
    zslu  = zlvl_wind + zu
    rzsu  = zslu/zu
    rlogu = log(rzsu)
    zslt  = zlvl + zu

    zilfc = -czil*vkarman*sqvisc
    if (dthv > 0.0_dp) then
      if (rib < ric) then
        zzil = zilfc*(1.0_dp + 10.0_dp*(rib/ric)**2)
      else
        zzil = zilfc*(1.0_dp + 10.0_dp)
      end if
    else
      zzil = zilfc
    end if

    if (abs(btgh*akhs*dthv) > 0.0_dp) then   ! exactly-zero product gives 0
      wstar2 = wwst2*abs(btgh*akhs*dthv)**(2.0_dp/3.0_dp)
    else
      wstar2 = 0.0_dp
    end if
    ustar = max(sqrt(akms*sqrt(du2 + wstar2)), epsust)

    do itr = 1, itrmx
      zt    = max(exp(zzil*sqrt(ustar*z0brd))*z0brd, epszt)
      rzst  = zslt/zt
      rlogt = log(rzst)
      rlmo  = elfc*akhs*dthv/ustar**3

      zetalu = min(max(zslu*rlmo, ztmin2), ztmax2)
      zetalt = min(max(zslt*rlmo, ztmin2), ztmax2)
      zetau  = min(max(zu*rlmo, ztmin2/rzsu), ztmax2/rzsu)
      zetat  = min(max(zt*rlmo, ztmin2/rzst), ztmax2/rzst)

      simm = psi_lookup(psim_table, zetalu) - psi_lookup(psim_table, zetau) + rlogu
      simh = psi_lookup(psih_table, zetalt) - psi_lookup(psih_table, zetat) + rlogt

      akms = max(vkarman*ustar/simm, cxchl)
      akhs = max(vkarman*ustar/simh, cxchl)

      if (dthv <= 0.0_dp) then
        wstar2 = wwst2*abs(btgh*akhs*dthv)**(2.0_dp/3.0_dp)
      else
        wstar2 = 0.0_dp
      end if
      ustar = max(sqrt(akms*sqrt(du2 + wstar2)), epsust)
    end do
  end subroutine sfcdif_myj

  !> Linear interpolation in a stability table: RZ = (zeta - ZTMIN2)/DZETA,
  !> K = int(RZ) (truncation), r = RZ - K, K clamped to [0, KZTM-2],
  !> psi = (T(K+2) - T(K+1)) r + T(K+1).
  pure function psi_lookup(table, zeta) result(psi)
    real(dp), intent(in) :: table(kztm)
    real(dp), intent(in) :: zeta
    real(dp) :: psi
    real(dp) :: rz, rdz
    integer  :: k
    rz  = (zeta - ztmin2)/dzeta2
    k   = int(rz)
    rdz = rz - real(k, dp)
    k   = min(max(k, 0), kztm - 2)
    psi = (table(k + 2) - table(k + 1))*rdz + table(k + 1)
  end function psi_lookup

end module nt_sfc_exchange_myj
