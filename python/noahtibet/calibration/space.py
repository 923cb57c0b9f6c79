"""The calibration parameter space: named parameters, their scopes, bounds and constraints.

A space is an editable TOML file (the default is ``noahtibet/data/parameter_space.toml``,
the 26-parameter proposal of the physics specification, section 15).  Each
``[[parameter]]`` entry is one dimension of the search:

``name``
    unique label of the dimension (the trial table's column name);
``parameter``
    the model parameter it perturbs, one of :data:`KNOWN` (defaults to ``name``);
``scope``
    where the value applies: ``global`` (every column), ``soil_class`` (the
    layers whose soil class is in ``classes``; all classes when ``classes`` is
    absent), ``vegetation_class`` (the columns whose vegetation class is in
    ``classes``) or ``layer`` (the layers listed in ``layers``, 1-based);
``mode``
    ``multiplier`` (value x the column's default, which keeps the class
    heterogeneity of the tables), ``absolute`` (value replaces the default) or
    ``offset`` (value + default);
``bounds``
    ``[lower, upper]`` of the value, lower < upper;
``log``
    sample uniformly in log(value) (needs lower > 0);
``description``
    free text.

Several entries may perturb the same parameter when their classes (or layers)
are disjoint, e.g. one ``BB`` multiplier for loams and one for sands.

``constraints`` is a list of inequalities between *parameters* (code names of
:data:`KNOWN`, meaning the value the kernel receives) and numbers, chains
allowed: ``"WLTSMC < REFSMC < MAXSMC"``, ``"DRYSMC <= WLTSMC"``, ``"QTZ <= 1"``.
A space is accepted only if its constraints hold **everywhere in the box of
bounds** for every column considered: every candidate the optimiser can propose
is then physically valid, none is wasted.  Because each kernel value is
monotonic in the one dimension that sets it, the check evaluates the two
corners of the box column by column (exact, not sampled).  Without a domain
the check uses one column per soil class of :data:`DEFAULT_SOIL_CLASSES`, per
vegetation class of :data:`DEFAULT_VEGETATION_CLASSES` and per slope class of
:data:`DEFAULT_SLOPE_CLASSES`; a calibration checks again on the classes of
its domain and on the cells it calibrates.

How a set of values reaches the model: :meth:`ParameterSpace.apply` rewrites
rows of the kernel's per-column arrays (``layer_par`` / ``column_par``, rows
named in :mod:`noahtibet.layout`); nothing in the Fortran changes per trial.
Soil parameters also rewrite the ``sfc_*`` column rows (the soil class of the
namelist ``Soil_type_index``, used by the legacy routing) with the value of that
class (``soil_class`` scope), of layer 1 (``layer`` scope) or everywhere
(``global``).

Decisions worth knowing:

* ``flimit`` (FAC2MIT, spec 8.2) stays at the value of the *unperturbed* class:
  the legacy exact-equality test on MAXSMC would otherwise switch it to 0.90 for
  any multiplier other than 1 and put a step into the objective;
* EMISS perturbs EMISSMIN and EMISSMAX by the same multiplier (their order is
  kept by construction);
* GRAVEL_DRY_CHI and BEDROCK_DRY_COEF share the kernel row ``tc_dry_coef``; they
  are restricted to soil classes 13 and 14;
* Z0H_BETA acts only with ``physics.surface_exchange = "yang08"``, CZIL only
  with the other two schemes (a warning names an inactive parameter).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import ConfigError

log = logging.getLogger("noahtibet")

SCOPES = ("global", "soil_class", "vegetation_class", "layer")
MODES = ("multiplier", "absolute", "offset")

#: Soil classes a space is checked against when no domain is given: the STAS
#: texture classes, gravel, bedrock and organic material (not glacier, lake,
#: playa, lava).
DEFAULT_SOIL_CLASSES = tuple(range(1, 15)) + (17,)
#: Vegetation classes checked without a domain: the USGS land classes a column
#: can have (not urban, which the model refuses, nor water or snow/ice).
DEFAULT_VEGETATION_CLASSES = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20,
                              21, 22, 23)
#: Slope classes checked without a domain: every class of GENPARM's SLOPE_DATA.
DEFAULT_SLOPE_CLASSES = tuple(range(1, 10))

DEFAULT_SPACE = Path(__file__).resolve().parent.parent / "data" / "parameter_space.toml"


@dataclass(frozen=True)
class Known:
    """A model parameter a space can perturb."""

    name: str
    rows: tuple            # (("layer" | "column", kernel row name), ...); first = primary
    kind: str              # "soil" (per layer, by soil class), "vegetation", "column"
    description: str
    classes: tuple = ()    # soil classes it is restricted to (empty: any)
    surface_exchange: tuple = ()   # schemes in which it acts (empty: all)


def _soil(name, row, sfc, text, classes=()):
    rows = (("layer", row),) + ((("column", sfc),) if sfc else ())
    return Known(name, rows, "soil", text, classes)


#: Every parameter a space may name (spec/physics.md section 15; # = its row there).
KNOWN: dict[str, Known] = {k.name: k for k in (
    _soil("BB", "bexp", None, "#1 Clapp-Hornberger b"),
    _soil("MAXSMC", "smcmax", "sfc_smcmax", "#2 porosity [m3 m-3]"),
    _soil("SATPSI", "psisat", "sfc_psisat", "#3 saturated suction [m]"),
    _soil("SATDK", "dksat", "sfc_dksat", "#4 saturated hydraulic conductivity [m s-1]"),
    _soil("SATDW", "dwsat", None, "#5 saturated soil-water diffusivity [m2 s-1]"),
    _soil("QTZ", "quartz", "sfc_quartz", "#6 quartz fraction [-]"),
    _soil("WLTSMC", "smcwlt", "sfc_smcwlt", "#7 wilting point [m3 m-3]"),
    _soil("REFSMC", "smcref", "sfc_smcref", "#8 field capacity [m3 m-3]"),
    _soil("DRYSMC", "smcdry", "sfc_smcdry", "#9 air-dry limit [m3 m-3]"),
    _soil("CSOIL", "csoil", None, "#10 heat capacity of soil solids [J m-3 K-1]"),
    _soil("ICE_IMPEDANCE", "ice_impedance", None, "#11 ice-impedance exponent E (WDFCND_NY06)"),
    _soil("GRAVEL_KAPPA", "tc_kappa_unfrozen", None,
          "#12 gravel Kersten coefficient, unfrozen (Cote & Konrad 2005)", (13,)),
    _soil("GRAVEL_DRY_CHI", "tc_dry_coef", None,
          "#13 gravel dry conductivity chi in chi*10^(-1.8 n)", (13,)),
    _soil("BEDROCK_DRY_COEF", "tc_dry_coef", None,
          "#14 bedrock dry conductivity coefficient c in c*n^(-2.2)", (14,)),
    Known("TBOT", (("column", "tbot"),), "column", "#15 lower-boundary temperature [K]"),
    Known("SLOPE", (("column", "slope"),), "column", "#16 drainage coefficient SLOPE [-]"),
    Known("ALBEDOMIN", (("column", "albedomin"),), "vegetation",
          "#17 snow-free albedo, dense vegetation"),
    Known("ALBEDOMAX", (("column", "albedomax"),), "vegetation",
          "#18 snow-free albedo, sparse vegetation"),
    Known("Z0MIN", (("column", "z0min"),), "vegetation", "#19 roughness length, sparse [m]"),
    Known("Z0MAX", (("column", "z0max"),), "vegetation", "#20 roughness length, dense [m]"),
    Known("EMISS", (("column", "emissmin"), ("column", "emissmax")), "vegetation",
          "#21 surface emissivity (EMISSMIN and EMISSMAX together)"),
    Known("Z0H_BETA", (("column", "z0h_beta"),), "column",
          "#22 Yang et al. (2008) thermal-roughness coefficient beta", (), ("yang08",)),
    Known("SBETA", (("column", "sbeta"),), "column", "#23 vegetation attenuation of G"),
    Known("SALP", (("column", "salp"),), "column", "#24 snow-cover shape parameter"),
    Known("SNUP", (("column", "snup"),), "vegetation", "#25 SWE for full snow cover [m]"),
    Known("SNOW_COND_MULT", (("column", "snow_cond_mult"),), "column",
          "#26 snow thermal-conductivity multiplier"),
    # reserve candidates of section 15 (not in the default space)
    Known("CZIL", (("column", "czil"),), "column",
          "#22 alternative: Zilitinkevich coefficient (chen97 / myj)", (), ("chen97", "myj")),
    Known("RSMIN", (("column", "rsmin"),), "vegetation", "reserve: minimum stomatal resistance"),
    Known("FXEXP", (("column", "fxexp"),), "column", "reserve: bare-soil evaporation exponent"),
    Known("REFKDT", (("column", "refkdt"),), "column", "reserve: infiltration parameter"),
)}

_ENTRY_KEYS = {"name", "parameter", "scope", "classes", "layers", "mode", "bounds", "log",
               "description"}
_TOP_KEYS = {"version", "constraints", "parameter", "description"}


@dataclass(frozen=True)
class Entry:
    """One dimension of the space."""

    name: str
    parameter: str
    scope: str
    mode: str
    lower: float
    upper: float
    log: bool = False
    classes: tuple = ()
    layers: tuple = ()
    description: str = ""

    @property
    def known(self) -> Known:
        return KNOWN[self.parameter]

    def transform(self, base: np.ndarray, value: float) -> np.ndarray:
        if self.mode == "multiplier":
            return base * value
        if self.mode == "offset":
            return base + value
        return np.full_like(base, value)

    def as_dict(self) -> dict:
        return {"name": self.name, "parameter": self.parameter, "scope": self.scope,
                "mode": self.mode, "bounds": [self.lower, self.upper], "log": self.log,
                "classes": list(self.classes), "layers": list(self.layers)}


@dataclass
class ColumnClasses:
    """Classes of a set of columns: soil class per layer, vegetation class, Soil_type_index."""

    soil: np.ndarray        # (n, nlay) int
    vegetation: np.ndarray  # (n,) int
    surface_soil: np.ndarray  # (n,) int, class of the sfc_* rows
    slope: np.ndarray       # (n,) int

    def take(self, idx) -> "ColumnClasses":
        return ColumnClasses(self.soil[idx], self.vegetation[idx], self.surface_soil[idx],
                             self.slope[idx])

    @classmethod
    def from_specs(cls, specs) -> "ColumnClasses":
        soil = np.array([np.asarray(s.soil_class, dtype=np.int64) for s in specs])
        veg = np.array([int(s.vegetation_class) for s in specs], dtype=np.int64)
        sfc = np.array([int(s.soil_class[0] if s.soil_type_index is None else s.soil_type_index)
                        for s in specs], dtype=np.int64)
        slope = np.array([int(s.slope_class) for s in specs], dtype=np.int64)
        return cls(soil.reshape(len(specs), -1), veg, sfc, slope)


@dataclass
class Constraint:
    text: str
    terms: list            # [parameter name or float, op, parameter or float, op, ...]

    def pairs(self):
        for i in range(0, len(self.terms) - 2, 2):
            yield self.terms[i], self.terms[i + 1], self.terms[i + 2]


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


@dataclass
class ParameterSpace:
    """A validated parameter space (see the module documentation)."""

    entries: list
    constraints: list = field(default_factory=list)
    path: str = "<space>"
    text: str = ""

    # ---- properties ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def entry(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def digest(self) -> str:
        d = {"entries": [e.as_dict() for e in self.entries],
             "constraints": [c.text for c in self.constraints]}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def subset(self, names) -> "ParameterSpace":
        """The space restricted to the named dimensions (others keep their defaults)."""
        names = list(names)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ConfigError(f"is not a dimension of the parameter space {self.path} "
                              f"(dimensions: {', '.join(self.names)})", path=self.path,
                              field="calibration.parameters", value=unknown[0])
        return ParameterSpace([e for e in self.entries if e.name in names], self.constraints,
                              self.path, self.text)

    def hyperopt_space(self) -> dict:
        """A hyperopt search space: one ``uniform`` / ``loguniform`` per entry."""
        from hyperopt import hp

        out = {}
        for e in self.entries:
            if e.log:
                out[e.name] = hp.loguniform(e.name, math.log(e.lower), math.log(e.upper))
            else:
                out[e.name] = hp.uniform(e.name, e.lower, e.upper)
        return out

    def corner(self, which: str) -> dict:
        return {e.name: (e.lower if which == "lower" else e.upper) for e in self.entries}

    def check_values(self, values: dict, where: str = "parameter set") -> dict:
        """Validate a set of values (every dimension present, within bounds); return floats."""
        out = {}
        for e in self.entries:
            if e.name not in values:
                raise ConfigError("has no value for this dimension", path=where, field=e.name)
            v = float(values[e.name])
            if not (e.lower <= v <= e.upper) or not math.isfinite(v):
                raise ConfigError(f"is outside the bounds [{e.lower}, {e.upper}]", path=where,
                                  field=e.name, value=v)
            out[e.name] = v
        extra = sorted(set(values) - set(self.names))
        if extra:
            raise ConfigError("is not a dimension of the parameter space", path=where,
                              field=extra[0], value=values[extra[0]])
        return out

    # ---- applying values to columns ----------------------------------------------------------
    def _masks(self, e: Entry, classes: ColumnClasses, nlay: int):
        """Where entry ``e`` applies: one boolean mask per row of its parameter."""
        n = classes.vegetation.shape[0]
        masks = []
        for group, _ in e.known.rows:
            if group == "layer":
                if e.scope == "global":
                    m = np.ones((n, nlay), bool)
                elif e.scope == "soil_class":
                    m = _in(classes.soil, e.classes)
                else:   # layer
                    m = np.zeros((n, nlay), bool)
                    m[:, [k - 1 for k in e.layers if k <= nlay]] = True
            else:
                if e.known.kind == "soil":
                    if e.scope == "global":
                        m = np.ones(n, bool)
                    elif e.scope == "soil_class":
                        m = _in(classes.surface_soil, e.classes)
                    else:
                        m = np.full(n, 1 in e.layers)
                elif e.scope == "vegetation_class":
                    m = _in(classes.vegetation, e.classes)
                else:
                    m = np.ones(n, bool)
            masks.append(m)
        return masks

    def apply(self, values: dict, layer_par: np.ndarray, column_par: np.ndarray,
              classes: ColumnClasses) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the kernel arrays with the values of ``values`` applied.

        ``layer_par`` (n, nlay, nlpar) and ``column_par`` (n, ncpar) are the default
        (unperturbed) arrays of the columns, ``classes`` their classes.  Dimensions
        missing from ``values`` keep their defaults.
        """
        lp, cp = layer_par.copy(), column_par.copy()
        nlay = lp.shape[1]
        for e in self.entries:
            if e.name not in values:
                continue
            v = float(values[e.name])
            for (group, row), mask in zip(e.known.rows, self._masks(e, classes, nlay)):
                if group == "layer":
                    i = layout.index(layout.LAYER_PARAMETERS, row)
                    lp[:, :, i] = np.where(mask, e.transform(layer_par[:, :, i], v), lp[:, :, i])
                else:
                    i = layout.index(layout.COLUMN_PARAMETERS, row)
                    cp[:, i] = np.where(mask, e.transform(column_par[:, i], v), cp[:, i])
        return lp, cp

    def parameter_values(self, name: str, layer_par, column_par) -> list[np.ndarray]:
        """The kernel values of a known parameter, one array per row."""
        out = []
        for group, row in KNOWN[name].rows:
            if group == "layer":
                out.append(layer_par[:, :, layout.index(layout.LAYER_PARAMETERS, row)])
            else:
                out.append(column_par[:, layout.index(layout.COLUMN_PARAMETERS, row)])
        return out

    # ---- constraints -------------------------------------------------------------------------
    def check_constraints(self, layer_par: np.ndarray, column_par: np.ndarray,
                          classes: ColumnClasses, what: str = "the columns") -> None:
        """Raise ConfigError if a constraint can fail anywhere in the box on these columns."""
        lo_lp, lo_cp = self.apply(self.corner("lower"), layer_par, column_par, classes)
        hi_lp, hi_cp = self.apply(self.corner("upper"), layer_par, column_par, classes)
        ranges = {}

        def rng(name):
            if name not in ranges:
                a = self.parameter_values(name, lo_lp, lo_cp)
                b = self.parameter_values(name, hi_lp, hi_cp)
                ranges[name] = [(np.minimum(x, y), np.maximum(x, y)) for x, y in zip(a, b)]
            return ranges[name]

        for c in self.constraints:
            for left, op, right in c.pairs():
                self._check_pair(c, left, op, right, rng, classes, what)

    def _check_pair(self, c, left, op, right, rng, classes, what):
        less = op in ("<", "<=")
        # worst case: the left side as large as possible, the right side as small (for <)
        sides = []
        for term, want_max in ((left, less), (right, not less)):
            if isinstance(term, float):
                sides.append([(term, None)])
            else:
                sides.append([(hi if want_max else lo, term) for lo, hi in rng(term)])
        lrows, rrows = sides
        if len(lrows) == len(rrows):
            pairs = list(zip(lrows, rrows))
        else:
            pairs = [(lrows[0], rrows[0])] if len(lrows) > 1 and len(rrows) > 1 else \
                [(a, b) for a in lrows for b in rrows]
        for (a, an), (b, bn) in pairs:
            a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
            if a_arr.ndim == 1 and b_arr.ndim == 2:
                a_arr = a_arr[:, None]
            if b_arr.ndim == 1 and a_arr.ndim == 2:
                b_arr = b_arr[:, None]
            a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
            ok = _OPS[op](a_arr, b_arr)
            if np.all(ok):
                continue
            bad = tuple(int(x[0]) for x in np.nonzero(~ok))
            where = _where(bad, classes)
            def side(name, value, high):
                if not name:
                    return f"{value:.6g}"
                return f"{name} {'up to' if high else 'down to'} {value:.6g}"
            reason = (f"can be violated within the bounds of the space on {what}: {where} "
                      f"{side(an, a_arr[bad], less)} {op} {side(bn, b_arr[bad], not less)} "
                      "is false")
            involved = [t for t in (an, bn) if t]
            names = [e.name for e in self.entries if e.parameter in involved]
            value = ", ".join(f"{e.name} in [{e.lower}, {e.upper}]" for e in self.entries
                              if e.name in names) or "(defaults)"
            pos = self.text.find(c.text) if self.text else -1
            line = self.text.count("\n", 0, pos) + 1 if pos >= 0 else None
            raise ConfigError(f"{reason}; narrow the bounds of {', '.join(names) or involved}",
                              path=self.path, line=line, field=f"constraint {c.text}",
                              value=value)


def _where(bad, classes: ColumnClasses) -> str:
    col = bad[0]
    parts = [f"column {col}"]
    if len(bad) > 1:
        parts.append(f"layer {bad[1] + 1} (soil class {int(classes.soil[col, bad[1]])})")
    else:
        parts.append(f"(vegetation class {int(classes.vegetation[col])}, "
                     f"Soil_type_index class {int(classes.surface_soil[col])}, "
                     f"slope class {int(classes.slope[col])})")
    return " ".join(parts) + ":"


# --------------------------------------------------------------------------------------------
# Reading a space file
# --------------------------------------------------------------------------------------------

def _line_of(text: str, name: str) -> int | None:
    pat = re.compile(r'^\s*name\s*=\s*["\']' + re.escape(str(name)) + r'["\']', re.M)
    m = pat.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _num(path, line, fld, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError("is not a finite number", path=path, line=line, field=fld, value=value)
    return float(value)


def _parse_entry(path: str, text: str, i: int, raw) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError("must be a table ([[parameter]])", path=path, field=f"parameter[{i}]",
                          value=raw)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("has no 'name' (a non-empty string)", path=path,
                          field=f"parameter[{i}].name", value=name)
    line = _line_of(text, name)
    where = f"parameter {name}"
    for key in raw:
        if key not in _ENTRY_KEYS:
            raise ConfigError(f"is not a known key of a parameter (known: "
                              f"{', '.join(sorted(_ENTRY_KEYS))})", path=path, line=line,
                              field=f"{where}.{key}", value=raw[key])
    pname = raw.get("parameter", name)
    if pname not in KNOWN:
        import difflib

        hint = difflib.get_close_matches(str(pname), sorted(KNOWN), n=1)
        extra = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"is not a known parameter{extra}; known: {', '.join(KNOWN)}",
                          path=path, line=line,
                          field=f"{where}.{'parameter' if 'parameter' in raw else 'name'}",
                          value=pname)
    known = KNOWN[pname]
    scope = raw.get("scope", "global")
    allowed = {"soil": ("global", "soil_class", "layer"),
               "vegetation": ("global", "vegetation_class"), "column": ("global",)}[known.kind]
    if scope not in allowed:
        raise ConfigError(f"is not a scope of {pname} (a {known.kind} parameter: "
                          f"{', '.join(allowed)})", path=path, line=line, field=f"{where}.scope",
                          value=scope)
    mode = raw.get("mode", "multiplier")
    if mode not in MODES:
        raise ConfigError(f"must be one of {', '.join(MODES)}", path=path, line=line,
                          field=f"{where}.mode", value=mode)
    b = raw.get("bounds")
    if not isinstance(b, list) or len(b) != 2:
        raise ConfigError("must be [lower, upper]", path=path, line=line,
                          field=f"{where}.bounds", value=b)
    lo, hi = (_num(path, line, f"{where}.bounds", v) for v in b)
    if not lo < hi:
        raise ConfigError("are reversed or empty: the lower bound must be below the upper "
                          "bound", path=path, line=line, field=f"{where}.bounds", value=b)
    use_log = raw.get("log", False)
    if not isinstance(use_log, bool):
        raise ConfigError("must be true or false", path=path, line=line, field=f"{where}.log",
                          value=use_log)
    if use_log and lo <= 0:
        raise ConfigError("must be positive for a log-scaled parameter", path=path, line=line,
                          field=f"{where}.bounds", value=b)
    if mode == "multiplier" and lo <= 0:
        raise ConfigError("must be positive for a multiplier", path=path, line=line,
                          field=f"{where}.bounds", value=b)
    classes, layers = (), ()
    if "classes" in raw:
        if scope not in ("soil_class", "vegetation_class"):
            raise ConfigError(f"is only allowed with scope soil_class or vegetation_class "
                              f"(scope is {scope})", path=path, line=line,
                              field=f"{where}.classes", value=raw["classes"])
        cl = raw["classes"]
        if not isinstance(cl, list) or not cl or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in cl):
            raise ConfigError("must be a non-empty list of class numbers (>= 1)", path=path,
                              line=line, field=f"{where}.classes", value=cl)
        classes = tuple(sorted(set(cl)))
    if known.classes:
        if scope != "soil_class":
            raise ConfigError(f"must be soil_class: {pname} exists only for soil class(es) "
                              f"{list(known.classes)}", path=path, line=line,
                              field=f"{where}.scope", value=scope)
        if not classes:
            classes = known.classes
        if not set(classes) <= set(known.classes):
            raise ConfigError(f"{pname} exists only for soil class(es) {list(known.classes)}",
                              path=path, line=line, field=f"{where}.classes", value=list(classes))
    if scope == "layer":
        ly = raw.get("layers")
        if not isinstance(ly, list) or not ly or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ly):
            raise ConfigError("must be a non-empty list of 1-based layer numbers", path=path,
                              line=line, field=f"{where}.layers", value=ly)
        layers = tuple(sorted(set(ly)))
    elif "layers" in raw:
        raise ConfigError(f"is only allowed with scope layer (scope is {scope})", path=path,
                          line=line, field=f"{where}.layers", value=raw["layers"])
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise ConfigError("must be a string", path=path, line=line,
                          field=f"{where}.description", value=desc)
    return Entry(name, pname, scope, mode, lo, hi, use_log, classes, layers, desc)


def _in(values: np.ndarray, classes: tuple) -> np.ndarray:
    """Membership in a class list; an empty list means every class."""
    return np.isin(values, classes) if classes else np.ones(values.shape, bool)


_TOKEN = re.compile(r"\s*(<=|>=|<|>|[A-Za-z_][A-Za-z0-9_]*"
                    r"|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _parse_constraint(path: str, i: int, text) -> Constraint:
    fld = f"constraints[{i}]"
    if not isinstance(text, str):
        raise ConfigError("must be a string such as 'WLTSMC < REFSMC'", path=path, field=fld,
                          value=text)
    pos, tokens = 0, []
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ConfigError(f"cannot be read at '{text[pos:].strip()}'", path=path, field=fld,
                              value=text)
        tokens.append(m.group(1))
        pos = m.end()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise ConfigError("must alternate operands and operators (<, <=, >, >=), e.g. "
                          "'WLTSMC < REFSMC < MAXSMC'", path=path, field=fld, value=text)
    terms = []
    for j, tok in enumerate(tokens):
        if j % 2:
            if tok not in _OPS:
                raise ConfigError(f"'{tok}' is not a comparison (<, <=, >, >=)", path=path,
                                  field=fld, value=text)
            terms.append(tok)
        elif re.match(r"[A-Za-z_]", tok):
            if tok not in KNOWN:
                raise ConfigError(f"'{tok}' is not a known parameter", path=path, field=fld,
                                  value=text)
            terms.append(tok)
        else:
            terms.append(float(tok))
    if all(isinstance(t, float) for t in terms[::2]):
        raise ConfigError("compares only numbers", path=path, field=fld, value=text)
    return Constraint(text, terms)


def load_space(path: str | Path | None = None, *, soil_classes=None, vegetation_classes=None,
               slope_classes=None, overrides=None, nlay: int = 20,
               check: bool = True) -> ParameterSpace:
    """Read and validate a parameter-space file (default: the bundled 26-parameter space).

    An unknown key or parameter, reversed bounds, a scope the parameter does not
    have, overlapping entries of one parameter, or a constraint that can be
    violated inside the bounds (for the given soil / vegetation / slope classes,
    by default :data:`DEFAULT_SOIL_CLASSES` / :data:`DEFAULT_VEGETATION_CLASSES` /
    :data:`DEFAULT_SLOPE_CLASSES`, with the run's ``[parameters]`` ``overrides``
    = (column, layer) dicts, on ``nlay`` layers) raise
    :class:`~noahtibet.errors.ConfigError` naming the file, the parameter and the
    value.
    """
    import tomllib

    path = Path(path) if path else DEFAULT_SPACE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", path=str(path)) from None
    p = str(path)
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"is not a known key (known: {', '.join(sorted(_TOP_KEYS))})",
                              path=p, field=key, value=data[key])
    raw_entries = data.get("parameter", [])
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ConfigError("the space has no [[parameter]] entries", path=p, field="parameter")
    entries = [_parse_entry(p, text, i, r) for i, r in enumerate(raw_entries)]
    seen = {}
    for e in entries:
        if e.name in seen:
            raise ConfigError("is defined twice", path=p, line=_line_of(text, e.name),
                              field=f"parameter {e.name}.name", value=e.name)
        seen[e.name] = e
    by_param: dict = {}
    for e in entries:
        for other in by_param.get(e.parameter, []):
            if not _disjoint(e, other):
                raise ConfigError(f"perturbs {e.parameter} where entry '{other.name}' already "
                                  "does (entries of one parameter need disjoint classes or "
                                  "layers and the same scope)", path=p,
                                  line=_line_of(text, e.name), field=f"parameter {e.name}",
                                  value=e.parameter)
        by_param.setdefault(e.parameter, []).append(e)
    cons = data.get("constraints", [])
    if not isinstance(cons, list):
        raise ConfigError("must be a list of strings", path=p, field="constraints", value=cons)
    constraints = [_parse_constraint(p, i, c) for i, c in enumerate(cons)]
    space = ParameterSpace(entries, constraints, p, text)
    if check:
        lp, cp, classes = class_columns(soil_classes or DEFAULT_SOIL_CLASSES,
                                        vegetation_classes or DEFAULT_VEGETATION_CLASSES,
                                        slope_classes or DEFAULT_SLOPE_CLASSES, overrides,
                                        nlay)
        space.check_constraints(lp, cp, classes, what="the table classes")
    return space


def _disjoint(a: Entry, b: Entry) -> bool:
    if a.scope != b.scope or a.scope in ("global",):
        return False
    if a.scope == "layer":
        return not set(a.layers) & set(b.layers)
    if not a.classes or not b.classes:    # an empty list is every class
        return False
    return not set(a.classes) & set(b.classes)


def class_columns(soil_classes, vegetation_classes, slope_classes=DEFAULT_SLOPE_CLASSES,
                  overrides=None, nlay: int = 20):
    """One synthetic column per soil class, per vegetation class and per slope class (each
    layer the same soil class), with the default kernel arrays and the run's
    ``overrides`` = (column, layer) dicts of ``[parameters]``: what a space is checked on
    (every value a column's class selects from the tables)."""
    from ..parameters import ColumnSpec, Tables, column_parameters

    soil_classes, veg, slope = list(soil_classes), list(vegetation_classes), list(slope_classes)
    combos = [(s, veg[i % len(veg)], slope[i % len(slope)])
              for i, s in enumerate(soil_classes)]
    combos += [(soil_classes[i % len(soil_classes)], v, slope[i % len(slope)])
               for i, v in enumerate(veg)]
    combos += [(soil_classes[i % len(soil_classes)], veg[i % len(veg)], k)
               for i, k in enumerate(slope)]
    tables = Tables.load()
    lps, cps, specs = [], [], []
    for s, v, k in combos:
        spec = ColumnSpec(layer_thickness=np.full(nlay, 0.5), soil_class=np.full(nlay, s),
                          vegetation_class=v, slope_class=k, deep_soil_temperature=272.0,
                          green_fraction_min=0.1, green_fraction_max=0.5, max_snow_albedo=0.75)
        if overrides:
            spec.overrides, spec.layer_overrides = dict(overrides[0]), dict(overrides[1])
        lp, cp = column_parameters(spec, tables)
        lps.append(lp)
        cps.append(cp)
        specs.append(spec)
    return np.array(lps), np.array(cps), ColumnClasses.from_specs(specs)


def warn_inactive(space: ParameterSpace, surface_exchange: str) -> list[str]:
    """Names of dimensions that do nothing with this surface-exchange scheme (logged)."""
    out = []
    for e in space.entries:
        schemes = e.known.surface_exchange
        if schemes and surface_exchange not in schemes:
            out.append(e.name)
            log.warning("parameter %s (%s) has no effect with physics.surface_exchange = %s",
                        e.name, e.parameter, surface_exchange)
    return out
