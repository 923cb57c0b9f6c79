"""Per-column parameters for the kernel, built from the Noah-Tibet tables.

A column is described by its layer thicknesses, the soil class of every layer
(``Soil_htype``), the namelist ``Soil_type_index`` class (only used when the
legacy quirks are reproduced), its vegetation and slope classes and a few site
values.  :func:`column_parameters` turns that into the two flat arrays the
Fortran kernel reads (rows named in :mod:`noahtibet.layout`).  Any parameter
can be overridden by name afterwards, which is how calibration trials and
ensemble members carry their own values without touching the Fortran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import layout
from .errors import ConfigError
from .tables import load_general_parameters, load_soil_table, load_veg_table

#: Soil classes of the STAS table with their own thermal-conductivity branch.
GRAVEL_CLASS = 13
BEDROCK_CLASS = 14
#: Urban class of the USGS table: the urban overrides of Noah are not supported.
URBAN_CLASS = 1

# Noah-Tibet constants that the legacy code hard-wires and that are exposed
# here as parameters (spec/physics.md sections 2.3, 3.3, 7.3).
GRAVEL_KAPPA_UNFROZEN = 4.60   # Cote & Konrad (2005) Kersten coefficient, unfrozen
GRAVEL_KAPPA_FROZEN = 1.70     # Cote & Konrad (2005), frozen
GRAVEL_DRY_CHI = 1.70          # dry conductivity chi * 10**(-1.80 n)
BEDROCK_DRY_COEF = 0.039       # dry conductivity c * n**(-2.2) (Johansen, crushed rock)
YANG08_Z0H_BETA = 7.2          # coefficient in Yang et al. (2008) z0h
SNOW_CONDUCTIVITY_MULTIPLIER = 2.0   # CSNOW doubles the Dyachkova (1960) value

def _error(reason: str, field: str, value=None) -> ConfigError:
    return ConfigError(reason, path="<column parameters>", field=field, value=value)


SURFACE_EXCHANGE = {"chen97": 0, "myj": 1, "yang08": 2}
THERMAL_CONDUCTIVITY = {"stock": 1, "noah_tibet": 2}
FROZEN_SOIL_HYDRAULICS = {"stock": 1, "ice_impedance": 2}


def fac2mit(smcmax: float) -> float:
    """Two-pass threshold FLIMIT of the soil-water solver (spec 8.2).

    The legacy code selects it by exact equality of the porosity with the
    table values of a few classes; any other porosity gives 0.90.
    """
    for values, limit in (((0.395,), 0.59), ((0.434, 0.404), 0.85), ((0.465, 0.406), 0.86),
                          ((0.476, 0.439), 0.74), ((0.200, 0.464), 0.80)):
        if any(smcmax == v for v in values):
            return limit
    return 0.90


@dataclass(frozen=True)
class PhysicsOptions:
    """Run-wide physics switches with readable names.

    surface_exchange: ``"chen97"`` (sfcdif_option 0), ``"myj"`` (1) or
        ``"yang08"`` (2, Yang et al. 2008 thermal roughness; Noah-Tibet's choice).
    iz0tlnd: 1 = vegetation-dependent Zilitinkevich coefficient (Chen & Zhang
        2009) for ``chen97`` / ``myj``.
    thermal_conductivity: ``"noah_tibet"`` (gravel / bedrock branches,
        Cote & Konrad 2005) or ``"stock"`` (Johansen / Peters-Lidard).
    frozen_soil_hydraulics: ``"ice_impedance"`` (Noah-Tibet) or ``"stock"``
        (Koren 1999 infiltration reduction).
    legacy_quirks: reproduce the legacy parameter routing Q1-Q5 (see README).
    """

    surface_exchange: str = "yang08"
    iz0tlnd: int = 0
    thermal_conductivity: str = "noah_tibet"
    frozen_soil_hydraulics: str = "ice_impedance"
    legacy_quirks: bool = True
    use_monthly_albedo: bool = False
    use_monthly_lai: bool = False

    def __post_init__(self):
        for name, allowed in (("surface_exchange", SURFACE_EXCHANGE),
                              ("thermal_conductivity", THERMAL_CONDUCTIVITY),
                              ("frozen_soil_hydraulics", FROZEN_SOIL_HYDRAULICS)):
            value = getattr(self, name)
            if value not in allowed:
                raise _error(f"must be one of {sorted(allowed)}", field=name, value=value)
        if self.iz0tlnd not in (0, 1):
            raise _error("must be 0 or 1", field="iz0tlnd", value=self.iz0tlnd)

    @classmethod
    def from_sfcdif_option(cls, sfcdif_option: int, **kwargs) -> "PhysicsOptions":
        """Options from the legacy namelist integer ``sfcdif_option``."""
        names = {v: k for k, v in SURFACE_EXCHANGE.items()}
        if sfcdif_option not in names:
            raise _error("must be 0, 1 or 2", field="sfcdif_option", value=sfcdif_option)
        return cls(surface_exchange=names[sfcdif_option], **kwargs)

    def as_array(self) -> np.ndarray:
        """The integer option vector of the kernel (layout.OPTIONS)."""
        values = {
            "sfcdif": SURFACE_EXCHANGE[self.surface_exchange],
            "iz0tlnd": self.iz0tlnd,
            "thermal_conductivity": THERMAL_CONDUCTIVITY[self.thermal_conductivity],
            "frozen_hydraulics": FROZEN_SOIL_HYDRAULICS[self.frozen_soil_hydraulics],
            "legacy_quirks": int(self.legacy_quirks),
            "use_monthly_albedo": int(self.use_monthly_albedo),
            "use_monthly_lai": int(self.use_monthly_lai),
        }
        return np.array([values[n] for n in layout.OPTIONS], dtype=np.int32)


@dataclass
class Tables:
    """The parameter tables (bundled by default, or from a directory of CSVs)."""

    soil: object
    veg: object
    general: dict

    @classmethod
    def load(cls, table_dir=None) -> "Tables":
        return cls(load_soil_table(table_dir), load_veg_table(table_dir),
                   load_general_parameters(table_dir))


@dataclass
class ColumnSpec:
    """What defines one column's parameters (classes and site values)."""

    layer_thickness: np.ndarray          # m, top to bottom
    soil_class: np.ndarray               # STAS class of each layer (Soil_htype)
    vegetation_class: int                # USGS class
    slope_class: int
    deep_soil_temperature: float         # TBOT at ZBOT, K
    green_fraction_min: float
    green_fraction_max: float
    max_snow_albedo: float
    air_temperature_level: float = 2.0   # m
    wind_level: float = 10.0             # m
    soil_type_index: int | None = None   # namelist Soil_type_index (P_S); default: layer 1 class
    overrides: dict = field(default_factory=dict)   # column parameter name -> value
    layer_overrides: dict = field(default_factory=dict)  # layer parameter name -> array(nlay)


def column_parameters(spec: ColumnSpec, tables: Tables | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Build ``(layer_par (nlay, nlpar), column_par (ncpar,))`` for one column."""
    tables = tables or Tables.load()
    soil, veg, gen = tables.soil, tables.veg, tables.general
    dz = np.asarray(spec.layer_thickness, dtype=np.float64)
    classes = np.asarray(spec.soil_class)
    nlay = dz.size
    if classes.shape != dz.shape:
        raise _error(f"has {classes.size} entries but there are {nlay} layers",
                          field="soil_class", value=classes.tolist())
    if np.any(~(dz > 0)):
        raise _error("every layer thickness must be positive", field="layer_thickness",
                          value=dz.tolist())
    if spec.vegetation_class == URBAN_CLASS:
        raise _error("the urban vegetation class is not supported", field="vegetation_class",
                          value=spec.vegetation_class)

    layer = np.zeros((nlay, len(layout.LAYER_PARAMETERS)))
    li = {n: i for i, n in enumerate(layout.LAYER_PARAMETERS)}
    layer[:, li["thickness"]] = dz
    for k, c in enumerate(classes):
        row = soil.row(int(c))
        layer[k, li["bexp"]] = row["BB"]
        layer[k, li["smcdry"]] = row["DRYSMC"]
        layer[k, li["smcmax"]] = row["MAXSMC"]
        layer[k, li["smcref"]] = row["REFSMC"]
        layer[k, li["psisat"]] = row["SATPSI"]
        layer[k, li["dksat"]] = row["SATDK"]
        layer[k, li["dwsat"]] = row["SATDW"]
        layer[k, li["smcwlt"]] = row["WLTSMC"]
        layer[k, li["quartz"]] = row["QTZ"]
        layer[k, li["csoil"]] = gen["CSOIL_DATA"]
        if c == GRAVEL_CLASS:
            layer[k, li["tc_class"]] = layout.TC_CLASS_GRAVEL
            layer[k, li["tc_dry_coef"]] = GRAVEL_DRY_CHI
        elif c == BEDROCK_CLASS:
            layer[k, li["tc_class"]] = layout.TC_CLASS_BEDROCK
            layer[k, li["tc_dry_coef"]] = BEDROCK_DRY_COEF
        else:
            layer[k, li["tc_class"]] = layout.TC_CLASS_OTHER
        layer[k, li["tc_kappa_unfrozen"]] = GRAVEL_KAPPA_UNFROZEN
        layer[k, li["tc_kappa_frozen"]] = GRAVEL_KAPPA_FROZEN
        # Consistent-physics ice impedance: the value the legacy formula yields
        # for this class's conductivity (about 17.25), now an explicit parameter.
        layer[k, li["ice_impedance"]] = 1.25 * (row["SATDK"] - 3.0) ** 2 + 6.0
    for name, values in spec.layer_overrides.items():
        if name not in li:
            raise _error("is not a layer parameter", field=name)
        layer[:, li[name]] = np.broadcast_to(np.asarray(values, dtype=np.float64), (nlay,))

    sfc_class = int(classes[0] if spec.soil_type_index is None else spec.soil_type_index)
    sfc = soil.row(sfc_class)
    v = veg.row(int(spec.vegetation_class))
    slopes = gen["SLOPE_DATA"]
    if not 1 <= spec.slope_class <= len(slopes):
        raise _error(f"must be 1..{len(slopes)}", field="slope_class", value=spec.slope_class)
    values = {
        "sfc_smcmax": sfc["MAXSMC"], "sfc_smcref": sfc["REFSMC"], "sfc_smcwlt": sfc["WLTSMC"],
        "sfc_smcdry": sfc["DRYSMC"], "sfc_quartz": sfc["QTZ"], "sfc_dksat": sfc["SATDK"],
        "sfc_psisat": sfc["SATPSI"],
        "nroot": float(v["NROOT"]), "rsmin": v["RS"], "rgl": v["RGL"], "hs": v["HS"],
        "snup": v["SNUP"], "laimin": v["LAIMIN"], "laimax": v["LAIMAX"],
        "emissmin": v["EMISSMIN"], "emissmax": v["EMISSMAX"], "albedomin": v["ALBEDOMIN"],
        "albedomax": v["ALBEDOMAX"], "z0min": v["Z0MIN"], "z0max": v["Z0MAX"],
        "bare": float(spec.vegetation_class == gen["BARE"]),
        "shdmin": spec.green_fraction_min, "shdmax": spec.green_fraction_max,
        "snoalb": spec.max_snow_albedo,
        "topt": gen["TOPT_DATA"], "rsmax": gen["RSMAX_DATA"], "cmcmax": gen["CMCMAX_DATA"],
        "cfactr": gen["CFACTR_DATA"], "slope": slopes[spec.slope_class - 1],
        "sbeta": gen["SBETA_DATA"], "fxexp": gen["FXEXP_DATA"], "salp": gen["SALP_DATA"],
        "refdk": gen["REFDK_DATA"], "refkdt": gen["REFKDT_DATA"], "frzk": gen["FRZK_DATA"],
        "zbot": gen["ZBOT_DATA"], "czil": gen["CZIL_DATA"], "lvcoef": gen["LVCOEF_DATA"],
        "tbot": spec.deep_soil_temperature, "zlvl": spec.air_temperature_level,
        "zlvl_wind": spec.wind_level, "z0h_beta": YANG08_Z0H_BETA,
        "snow_cond_mult": SNOW_CONDUCTIVITY_MULTIPLIER,
        "flimit": fac2mit(layer[0, li["smcmax"]]),
    }
    for name, value in spec.overrides.items():
        if name not in values:
            raise _error("is not a column parameter", field=name, value=value)
        values[name] = value
    if int(values["nroot"]) > nlay:
        raise _error(f"vegetation class {spec.vegetation_class} has {int(values['nroot'])} "
                          f"root layers but the column has only {nlay} layers",
                          field="vegetation_class", value=spec.vegetation_class)
    column = np.array([values[n] for n in layout.COLUMN_PARAMETERS], dtype=np.float64)
    return layer, column
