"""Names and order of the flat arrays exchanged with the Fortran kernel.

This mirrors ``fortran/parameter_layout.f90`` (the single definition on the
Fortran side); ``tests/test_layout.py`` parses that file and checks that the
names, order and counts here agree, so a row can never be silently shifted.
Index ``i`` of a tuple below is Fortran index ``i + 1``.
"""

from __future__ import annotations

FORCING = (
    "wind",               # m s-1, at wind_level
    "air_temperature",    # K, at air_temperature_level
    "specific_humidity",  # kg kg-1
    "pressure",           # Pa
    "shortwave",          # W m-2, downward
    "longwave",           # W m-2, downward
    "precipitation",      # kg m-2 s-1
)

LAYER_PARAMETERS = (
    "thickness", "bexp", "smcdry", "smcmax", "smcref", "psisat", "dksat", "dwsat",
    "smcwlt", "quartz", "csoil", "tc_class", "tc_kappa_unfrozen", "tc_kappa_frozen",
    "tc_dry_coef", "ice_impedance",
)

COLUMN_PARAMETERS = (
    # soil class of the namelist Soil_type_index (used only with legacy quirks)
    "sfc_smcmax", "sfc_smcref", "sfc_smcwlt", "sfc_smcdry", "sfc_quartz", "sfc_dksat",
    "sfc_psisat",
    # vegetation class
    "nroot", "rsmin", "rgl", "hs", "snup", "laimin", "laimax", "emissmin", "emissmax",
    "albedomin", "albedomax", "z0min", "z0max", "bare", "shdmin", "shdmax", "snoalb",
    # general tables
    "topt", "rsmax", "cmcmax", "cfactr", "slope", "sbeta", "fxexp", "salp", "refdk",
    "refkdt", "frzk", "zbot", "czil", "lvcoef",
    # site
    "tbot", "zlvl", "zlvl_wind",
    # Noah-Tibet parameters exposed for calibration
    "z0h_beta", "snow_cond_mult", "flimit",
)

MONTHLY = ("green_fraction", "lai", "albedo")

SURFACE_STATE = (
    "skin_temperature", "canopy_water", "snow_depth", "snow_water", "albedo", "emissivity",
    "z0", "z0brd", "ch", "cm", "q1", "snow_age", "ribb",
)

OUTPUTS = (
    "skin_temperature", "snow_depth", "snow_water", "sensible_heat", "latent_heat",
    "ground_heat", "soil_heat_top", "soil_heat_bottom", "precipitation", "evaporation",
    "surface_runoff", "drainage", "water_clamped", "canopy_water", "potential_evap",
    "edir", "ec", "ett", "albedo", "snow_cover", "ch",
)

#: Water-balance sums of the diagnostics [m of water over the accumulated steps]
#: (evaporation includes dew as negative; water_clamped: water created (<0 removed) by the
#: legacy clamps).  Storage change = precipitation - evaporation - surface_runoff - drainage
#: + water_clamped.
WATER_BALANCE = ("precipitation", "evaporation", "surface_runoff", "drainage", "water_clamped")

OPTIONS = (
    "sfcdif", "iz0tlnd", "thermal_conductivity", "frozen_hydraulics", "legacy_quirks",
    "use_monthly_albedo", "use_monthly_lai",
)

STATUS = {
    0: "ok",
    1: "a state variable became NaN or infinite",
    2: "snow density above 1 (snow water equivalent exceeds snow depth)",
    3: "Yang-2008 Obukhov-length solution is singular",
    4: "inconsistent parameters (e.g. more root layers than soil layers)",
}

#: Thermal-conductivity branch of a soil class (lp tc_class).
TC_CLASS_OTHER, TC_CLASS_GRAVEL, TC_CLASS_BEDROCK = 0, 1, 2


def index(group: tuple[str, ...], name: str) -> int:
    """Zero-based row of ``name`` in ``group``; KeyError naming the group if absent."""
    try:
        return group.index(name)
    except ValueError:
        raise KeyError(f"{name!r} is not one of {group}") from None
