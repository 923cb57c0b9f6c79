"""Reader for the legacy Noah-Tibet point-forcing file and the legacy driver's forcing preparation.

File layout (physics spec section 1.2/1.3)::

    &METADATA_NAMELIST            <- Fortran namelist with the site set-up and initial state
     startdate = "200704010000"
     ...
    /
    (any header lines)
    <Forcing> ...                 <- first line starting with "<Forcing>" (case-insensitive)
    2007 04 01 00 00     4.1889973491   249.0000000000 ...   <- fixed-width records

Records use the Fortran format ``(I4.4, 4(1x,I2.2), 8(F17.10))``: the date in columns 1-16,
then eight 17-character fields (wind speed m/s, wind direction deg, air temperature K, relative
humidity %, pressure hPa, downward shortwave W/m2, downward longwave W/m2, precipitation
kg m-2 s-1).  Characters after column 152 are ignored, exactly as the legacy reader does.

Public API
----------
``read_point_file(path) -> PointCase``
    Parse and validate a file.  Any problem raises :class:`noahtibet.errors.InputError` whose
    message names the file, the line and the field.
``model_forcing(case) -> PointForcing``
    The forcing of every model step, computed exactly as the legacy driver does (record used
    as-is on a time match, otherwise linear interpolation with integer-minute weights,
    precipitation carried forward, RH -> specific humidity with the NCEP formula, clamps
    included), plus the ``month_d`` interpolation indices/weights of every step.
``simulation_times(case)``, ``month_interpolation(times)``, ``month_d(a12, prev, next, f)``,
``specific_humidity_from_rh(T, P, rhf)``
    The building blocks, usable on their own.

If the model step is longer than the record spacing, the legacy reader's bookkeeping can
interpolate between non-adjacent records; :func:`model_forcing` reproduces this by default (and
warns), ``legacy_reader=False`` gives the clean interpolation.

Differences from the legacy reader (deliberate; none changes the numbers of a file the legacy
program handles correctly):

* numeric forcing fields must contain a decimal point (F17.10 reads ``548`` as 5.48e-8),
  must not be blank (the legacy reader reads blanks as 0) and must be finite;
* record times must be strictly increasing, the first record must be at or before startdate
  and the records must reach the last simulated time (the legacy driver silently stops early);
* ``enddate - startdate`` must be a positive multiple of ``Noahlsm_Timestep``;
* keys the legacy driver would leave uninitialised are required (initial state, class indices,
  levels, ``Albedo_monthly``, ``Shdfac_monthly``, ``Z0brd_monthly``; ``lai_monthly`` only with
  ``Rdlai2d = .TRUE.``, otherwise ``PointCase.lai_monthly`` may be None); a non-empty snow pack
  (SWE > 1e-7 m) must have a density Snow_equivalent/Snow_depth <= 1 (fatal in SFLX);
* ``Soil_htype`` may be omitted (stock Noah 3.4.1 files such as Bondville): every layer then
  gets ``Soil_type_index`` and a warning is issued (the legacy Noah-Tibet driver stops);
* ``sfcdif_option`` must be 0, 1 or 2 and ``iz0tlnd`` 0 or 1 (other values silently skip the
  exchange-coefficient update in the legacy driver); ``Sea_ice_point = .TRUE.`` and
  ``use_urban_module = .TRUE.`` are refused (the legacy driver stops).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "PointCase",
    "PointForcing",
    "read_point_file",
    "model_forcing",
    "simulation_times",
    "month_interpolation",
    "month_d",
    "specific_humidity_from_rh",
    "RECORD_FIELDS",
    "NAMELIST_KEYS",
]

# Names of the eight numeric record fields, in file order (used in error messages too).
RECORD_FIELDS = (
    "wind_speed",
    "wind_direction",
    "air_temperature",
    "relative_humidity",
    "pressure",
    "shortwave",
    "longwave",
    "precipitation",
)
DATE_WIDTH = 16
FIELD_WIDTH = 17
RECORD_WIDTH = DATE_WIDTH + len(RECORD_FIELDS) * FIELD_WIDTH  # 152

MAX_LAYERS = 100  # dimension of the legacy namelist arrays
SNOW_ZERO_THRESHOLD = 1.0e-7  # SFLX zeroes SNEQV <= 1e-7 before checking SNEQV/SNOWH

_REAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_BOOL_RE = re.compile(r"\.?([TtFf])[^\s,/=]*")
_NAME_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\(\s*(\d+)\s*(?::\s*(\d+)\s*)?\))?")
_REPEAT_RE = re.compile(r"(\d+)\*(.*)")
_DATE_RE = re.compile(r"\d{12}")


# --------------------------------------------------------------------------------------------
# Namelist keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    name: str  # spelling used in messages (as in the spec / example files)
    attr: str  # PointCase attribute
    kind: str  # "int" | "float" | "bool" | "str" | "date"
    shape: object = None  # None (scalar), "layers" (1..MAX_LAYERS) or an int (fixed length)
    required: bool = False


_KEY_LIST = (
    _Key("output_dir", "output_dir", "str"),
    _Key("startdate", "startdate", "date", required=True),
    _Key("enddate", "enddate", "date", required=True),
    _Key("loop_for_a_while", "loop_for_a_while", "int"),
    _Key("Latitude", "latitude", "float"),
    _Key("Longitude", "longitude", "float"),
    _Key("Forcing_Timestep", "forcing_timestep", "int"),
    _Key("Noahlsm_Timestep", "model_timestep", "int", required=True),
    _Key("Sea_ice_point", "sea_ice_point", "bool"),
    _Key("Soil_layer_thickness", "layer_thickness", "float", "layers", True),
    _Key("Soil_Temperature", "initial_soil_temperature", "float", "layers", True),
    _Key("Soil_Moisture", "initial_soil_moisture", "float", "layers", True),
    _Key("Soil_Liquid", "initial_soil_liquid", "float", "layers", True),
    _Key("Soil_htype", "soil_class", "int", "layers"),  # see module docstring
    _Key("Skin_Temperature", "skin_temperature", "float", required=True),
    _Key("Canopy_water", "canopy_water", "float", required=True),
    _Key("Snow_depth", "snow_depth", "float", required=True),
    _Key("Snow_equivalent", "snow_water_equivalent", "float", required=True),
    _Key("Deep_Soil_Temperature", "deep_soil_temperature", "float", required=True),
    _Key("dynamic_vegetation", "dynamic_vegetation", "int"),
    _Key("Soil_type_index", "soil_type_index", "int", required=True),
    _Key("Vegetation_type_index", "vegetation_type_index", "int", required=True),
    _Key("Slope_type_index", "slope_type_index", "int", required=True),
    _Key("Max_snow_albedo", "max_snow_albedo", "float", required=True),
    _Key("Air_temperature_level", "air_temperature_level", "float", required=True),
    _Key("Wind_level", "wind_level", "float", required=True),
    _Key("Albedo_monthly", "albedo_monthly", "float", 12, True),
    _Key("Shdfac_monthly", "shdfac_monthly", "float", 12, True),
    _Key("Z0brd_monthly", "z0brd_monthly", "float", 12, True),
    _Key("lai_monthly", "lai_monthly", "float", 12),  # required only with Rdlai2d
    _Key("use_urban_module", "use_urban_module", "bool"),
    _Key("Urban_veg_category", "urban_veg_category", "int", required=True),
    _Key("Green_Vegetation_Min", "green_vegetation_min", "float", required=True),
    _Key("Green_Vegetation_Max", "green_vegetation_max", "float", required=True),
    _Key("Usemonalb", "use_monthly_albedo", "bool"),
    _Key("Rdlai2d", "read_monthly_lai", "bool"),
    _Key("Landuse_dataset", "landuse_dataset", "str"),
    _Key("glacial_veg_category", "glacial_veg_category", "int", required=True),
    _Key("iz0tlnd", "iz0tlnd", "int"),
    _Key("sfcdif_option", "sfcdif_option", "int"),
)
#: All keys of the ``&METADATA_NAMELIST`` group (lower-case name -> description).
NAMELIST_KEYS = {k.name.lower(): k for k in _KEY_LIST}


# --------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class PointCase:
    """Contents of a legacy point-forcing file (namelist + records), validated.

    Arrays are numpy float64 (int64 for class indices).  Dates are ``numpy.datetime64[m]``.
    ``records`` has one row per forcing record and the columns of :data:`RECORD_FIELDS` in file
    units (m/s, deg, K, %, hPa, W/m2, W/m2, kg m-2 s-1).
    """

    path: str
    # run control
    startdate: np.datetime64
    enddate: np.datetime64
    model_timestep: int
    loop_for_a_while: int = 0
    forcing_timestep: int | None = None
    output_dir: str = "."
    latitude: float | None = None
    longitude: float | None = None
    landuse_dataset: str = ""
    sea_ice_point: bool = False
    use_urban_module: bool = False
    dynamic_vegetation: int = 2
    # soil column and initial state
    layer_thickness: np.ndarray
    initial_soil_temperature: np.ndarray
    initial_soil_moisture: np.ndarray
    initial_soil_liquid: np.ndarray
    soil_class: np.ndarray
    soil_class_given: bool = True  # False: Soil_htype absent, filled with soil_type_index
    skin_temperature: float
    canopy_water: float
    snow_depth: float
    snow_water_equivalent: float
    deep_soil_temperature: float
    # classes and site parameters
    soil_type_index: int
    vegetation_type_index: int
    slope_type_index: int
    urban_veg_category: int
    glacial_veg_category: int
    max_snow_albedo: float
    air_temperature_level: float
    wind_level: float
    green_vegetation_min: float
    green_vegetation_max: float
    # options
    use_monthly_albedo: bool = False
    read_monthly_lai: bool = False
    sfcdif_option: int = 0
    iz0tlnd: int = 0
    # monthly climatologies (valid on the 15th of each month)
    albedo_monthly: np.ndarray
    shdfac_monthly: np.ndarray
    z0brd_monthly: np.ndarray
    lai_monthly: np.ndarray | None = None
    # forcing records
    records_time: np.ndarray
    records: np.ndarray
    record_lines: np.ndarray
    records_truncated: int = 0  # records with characters after column 152 (ignored)
    # bookkeeping for messages
    header_lines: list[str] = field(default_factory=list)  # lines 1 .. the <Forcing> line
    forcing_tag_line: int = 0
    namelist_end_line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)  # attribute -> line of its key

    @property
    def n_layers(self) -> int:
        return int(self.layer_thickness.size)

    @property
    def ice_flag(self) -> int:
        """Legacy ICE: 1 sea ice, -1 glacial vegetation category, 0 land."""
        if self.sea_ice_point:
            return 1
        return -1 if self.vegetation_type_index == self.glacial_veg_category else 0

    @property
    def model_step(self) -> np.timedelta64:
        return np.timedelta64(self.model_timestep // 60, "m")

    def line_of(self, attr: str) -> int | None:
        """Line where the namelist key for PointCase attribute ``attr`` was set (or None)."""
        return self.key_lines.get(attr)


@dataclass(kw_only=True, eq=False)
class PointForcing:
    """Forcing of every model step of one pass, as the legacy driver computes it.

    All arrays have shape (nsteps,).  ``record_before``/``record_after`` index
    ``PointCase.records``; on an exact time match both are that record and ``weight`` is 1.
    ``weight`` is the legacy ``fraction`` (weight of ``record_before``).
    Month interpolation: ``value = a12[month_prev-1]*(1-month_weight)
    + a12[month_next-1]*month_weight``
    (see :meth:`month_d`).
    """

    time: np.ndarray  # datetime64[m]
    wind: np.ndarray  # m/s
    wind_direction: np.ndarray  # deg (not used by the physics)
    air_temperature: np.ndarray  # K
    relative_humidity: np.ndarray  # fraction (legacy rhf = RH% * 1e-2)
    specific_humidity: np.ndarray  # kg/kg (legacy Q2)
    pressure: np.ndarray  # Pa
    shortwave: np.ndarray  # W/m2
    longwave: np.ndarray  # W/m2
    precipitation: np.ndarray  # kg m-2 s-1
    record_before: np.ndarray
    record_after: np.ndarray
    weight: np.ndarray
    exact: np.ndarray  # bool: a record has exactly this time
    month_prev: np.ndarray  # 1..12
    month_next: np.ndarray  # 1..12
    month_weight: np.ndarray
    model_timestep: int
    passes: int = 1  # loop_for_a_while + 1: the legacy run repeats this forcing `passes` times

    @property
    def nsteps(self) -> int:
        return int(self.time.size)

    def month_d(self, a12) -> np.ndarray:
        """Legacy ``month_d`` of a 12-value climatology at every step."""
        return month_d(a12, self.month_prev, self.month_next, self.month_weight)


# --------------------------------------------------------------------------------------------
# Namelist parsing
# --------------------------------------------------------------------------------------------


@dataclass
class _Tok:
    kind: str  # "word" | "str" | "eq" | "comma"
    text: str
    line: int
    col: int
    end: int  # column just after the token


@dataclass
class _Assign:
    written: str  # key as written in the file
    line: int
    scalar: tuple | None = None  # (value, line, text)
    elements: dict = field(default_factory=dict)  # 1-based index -> (value, line, text)


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", path=path, line=None,
                         field=None) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _tokenize_namelist(path: str, lines: list[str], start: int) -> tuple[list[_Tok], int]:
    """Tokens of the namelist group starting on 0-based line ``start``.

    Returns (tokens, 1-based line number of the group end).
    """
    toks: list[_Tok] = []
    first = lines[start]
    pos0 = first.lower().index("&metadata_namelist") + len("&metadata_namelist")
    for i in range(start, len(lines)):
        ln = lines[i]
        lineno = i + 1
        p = pos0 if i == start else 0
        n = len(ln)
        while p < n:
            c = ln[p]
            if c.isspace():
                p += 1
            elif c == "!":
                break
            elif c in "\"'":
                q = c
                p2 = p + 1
                buf = []
                while True:
                    if p2 >= n:
                        raise InputError("is a string not terminated on this line", path=path,
                                         line=lineno, field="METADATA_NAMELIST", value=ln[p:])
                    if ln[p2] == q:
                        if p2 + 1 < n and ln[p2 + 1] == q:  # doubled quote = literal quote
                            buf.append(q)
                            p2 += 2
                            continue
                        break
                    buf.append(ln[p2])
                    p2 += 1
                toks.append(_Tok("str", "".join(buf), lineno, p, p2 + 1))
                p = p2 + 1
            elif c == "=":
                toks.append(_Tok("eq", c, lineno, p, p + 1))
                p += 1
            elif c == ",":
                toks.append(_Tok("comma", c, lineno, p, p + 1))
                p += 1
            elif c == "/":
                return toks, lineno
            else:
                p2 = p
                while p2 < n and not ln[p2].isspace() and ln[p2] not in ",=/!\"'":
                    p2 += 1
                word = ln[p:p2]
                if word.lower() in ("&end", "$end"):
                    return toks, lineno
                if word.startswith(("&", "$")):
                    raise InputError("namelist group is not terminated before a new group starts",
                                     path=path, line=lineno, field="METADATA_NAMELIST", value=word)
                toks.append(_Tok("word", word, lineno, p, p2))
                p = p2
    raise InputError("namelist group &METADATA_NAMELIST is not terminated by '/'", path=path,
                     line=len(lines), field="METADATA_NAMELIST")


def _convert(path: str, key: _Key, written: str, tok: _Tok, text: str):
    """Convert one namelist value token to the key's type."""
    kind = key.kind
    if kind in ("str", "date"):
        return text
    if tok.kind == "str":
        what = {"int": "an integer", "float": "a number",
                "bool": "a logical (.TRUE./.FALSE.)"}[kind]
        raise InputError(f"is a quoted string, expected {what}", path=path, line=tok.line,
                         field=written, value=text)
    if kind == "int":
        if not _INT_RE.fullmatch(text):
            raise InputError("is not an integer", path=path, line=tok.line, field=written,
                             value=text)
        return int(text)
    if kind == "float":
        if not _REAL_RE.fullmatch(text):
            raise InputError("is not a number", path=path, line=tok.line, field=written, value=text)
        v = float(text.replace("d", "e").replace("D", "e"))
        if not np.isfinite(v):
            raise InputError("is not a finite number", path=path, line=tok.line, field=written,
                             value=text)
        return v
    if kind == "bool":
        m = _BOOL_RE.fullmatch(text)
        if not m:
            raise InputError("is not a logical (.TRUE./.FALSE./T/F)", path=path, line=tok.line,
                             field=written, value=text)
        return m.group(1).upper() == "T"
    raise AssertionError(kind)


def _parse_namelist(path: str, toks: list[_Tok]) -> dict[str, _Assign]:
    """Turn tokens into assignments {lower-case key: _Assign} (Fortran namelist semantics)."""
    out: dict[str, _Assign] = {}
    i = 0
    nt = len(toks)
    while i < nt:
        t = toks[i]
        if t.kind == "comma":
            i += 1
            continue
        if not (t.kind == "word" and i + 1 < nt and toks[i + 1].kind == "eq"):
            raise InputError("is not of the form 'name = value'", path=path, line=t.line,
                             field="METADATA_NAMELIST", value=t.text)
        m = _NAME_RE.fullmatch(t.text)
        if not m:
            raise InputError("is not a valid namelist name", path=path, line=t.line,
                             field=t.text)
        written = m.group(1)
        key = NAMELIST_KEYS.get(written.lower())
        if key is None:
            raise InputError("is not a key of &METADATA_NAMELIST", path=path, line=t.line,
                             field=written, value=None)
        lo = int(m.group(2)) if m.group(2) else None
        hi = int(m.group(3)) if m.group(3) else None
        # collect the value tokens up to the next "name =" (or the end of the group)
        j = i + 2
        vals: list[tuple[_Tok, str]] = []
        prev_comma = True  # a comma right after '=' would be a null value
        while j < nt and not (toks[j].kind == "word" and j + 1 < nt and toks[j + 1].kind == "eq"):
            tk = toks[j]
            if tk.kind == "eq":
                raise InputError("unexpected '='", path=path, line=tk.line, field=written)
            if tk.kind == "comma":
                if prev_comma:
                    raise InputError("null values (empty entries between commas) are not "
                                     "supported", path=path, line=tk.line, field=written)
                prev_comma = True
                j += 1
                continue
            prev_comma = False
            rep = _REPEAT_RE.fullmatch(tk.text) if tk.kind == "word" else None
            if rep:
                count = int(rep.group(1))
                rest = rep.group(2)
                if rest == "":
                    # r*"string" written without a blank: the string token follows directly
                    if j + 1 < nt and toks[j + 1].kind == "str" and toks[j + 1].line == tk.line \
                            and toks[j + 1].col == tk.end:
                        j += 1
                        rest_tok = toks[j]
                        vals.extend([(rest_tok, rest_tok.text)] * count)
                        j += 1
                        continue
                    raise InputError("null values ('r*' without a value) are not supported",
                                     path=path, line=tk.line, field=written, value=tk.text)
                if count < 1:
                    raise InputError("has a repeat count < 1", path=path, line=tk.line,
                                     field=written, value=tk.text)
                vals.extend([(tk, rest)] * count)
            else:
                vals.append((tk, tk.text))
            j += 1
        if not vals:
            raise InputError("has no value", path=path, line=t.line, field=written)
        converted = [(_convert(path, key, written, tk, txt), tk.line, txt) for tk, txt in vals]

        asg = out.get(written.lower())
        if asg is None:
            asg = out[written.lower()] = _Assign(written, t.line)
        else:
            asg.line = t.line  # the last assignment wins (Fortran semantics)
        if key.shape is None:
            if lo is not None:
                raise InputError("is a scalar and cannot be subscripted", path=path, line=t.line,
                                 field=written, value=t.text)
            if len(converted) != 1:
                raise InputError(f"expects a single value, {len(converted)} given", path=path,
                                 line=t.line, field=written,
                                 value=" ".join(v[2] for v in converted))
            asg.scalar = converted[0]
        else:
            maxlen = MAX_LAYERS if key.shape == "layers" else int(key.shape)
            start = lo if lo is not None else 1
            stop = hi if hi is not None else maxlen
            if start < 1 or stop > maxlen or stop < start:
                raise InputError(f"subscript out of range 1..{maxlen}", path=path, line=t.line,
                                 field=written, value=t.text)
            if start + len(converted) - 1 > stop:
                where = f"section {start}:{stop}" if lo is not None else f"at most {maxlen} values"
                raise InputError(f"is one value too many ({len(converted)} given, {where})",
                                 path=path, line=converted[stop - start + 1][1], field=written,
                                 value=converted[stop - start + 1][2])
            for k, v in enumerate(converted):
                asg.elements[start + k] = v
        i = j
    return out


# --------------------------------------------------------------------------------------------
# Forcing records
# --------------------------------------------------------------------------------------------

_DATE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15])
_ALLOWED = np.zeros(256, dtype=bool)
for _c in b"0123456789.+-eEdD ":
    _ALLOWED[_c] = True
_D_TO_E = np.arange(256, dtype=np.uint8)
_D_TO_E[ord("d")] = ord("E")
_D_TO_E[ord("D")] = ord("E")
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _is_leap(year):
    return ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)


def _days_in_month(year, month):
    """Days in month (arrays or scalars), Gregorian leap rule as kwm_date_utilities.nfeb."""
    year = np.asarray(year)
    month = np.asarray(month)
    return np.where(month == 2, np.where(_is_leap(year), 29, 28), _DAYS[month - 1])


def _record_error(path: str, line: str, lineno: int) -> InputError | None:
    """Thorough check of one record line; returns the first problem or None."""
    if line.strip() == "":
        return InputError("blank line inside the forcing records", path=path, line=lineno,
                          field="date")
    used = line[:RECORD_WIDTH]  # characters after column 152 are ignored
    if not used.isascii():
        col = next(i for i, ch in enumerate(used) if not ch.isascii()) + 1
        fld = "date" if col <= DATE_WIDTH else RECORD_FIELDS[(col - DATE_WIDTH - 1) // FIELD_WIDTH]
        return InputError(f"contains the non-ASCII character {used[col - 1]!r} (column {col})",
                          path=path, line=lineno, field=fld, value=used.strip())
    padded = line[:RECORD_WIDTH].ljust(RECORD_WIDTH)
    date = padded[:DATE_WIDTH]
    if not all(date[k].isdigit() for k in _DATE_DIGITS):
        return InputError("is not a date 'YYYY MM DD hh mm' in columns 1-16", path=path,
                          line=lineno, field="date", value=date.rstrip())
    y, mo, d, h, mi = (int(date[a:b]) for a, b in ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16)))
    if not (1 <= mo <= 12 and 1 <= d <= int(_days_in_month(y, mo)) and h <= 23 and mi <= 59):
        return InputError("is not a valid date/time", path=path, line=lineno, field="date",
                          value=date)
    for k, name in enumerate(RECORD_FIELDS):
        a = DATE_WIDTH + k * FIELD_WIDTH
        raw = padded[a:a + FIELD_WIDTH]
        s = raw.strip()
        if s == "":
            return InputError(
                f"is missing (columns {a + 1}-{a + FIELD_WIDTH} are blank; the legacy reader "
                "would silently use 0)", path=path, line=lineno, field=name)
        if not _REAL_RE.fullmatch(s):
            return InputError(f"is not a number (columns {a + 1}-{a + FIELD_WIDTH})", path=path,
                              line=lineno, field=name, value=s)
        if "." not in s:
            return InputError(
                "has no decimal point: the legacy format F17.10 would read it scaled by 1e-10; "
                "write it with a decimal point", path=path, line=lineno, field=name, value=s)
        v = float(s.replace("d", "e").replace("D", "e"))
        if not np.isfinite(v):
            return InputError("is not a finite number", path=path, line=lineno, field=name,
                              value=s)
    return None


def _parse_records(path: str, lines: list[str], first_lineno: int):
    """Parse record lines (fixed width, vectorised).

    Returns (times, values (n, 8), 1-based line numbers, number of records longer than 152).
    """
    while lines and lines[-1].strip() == "":
        lines = lines[:-1]
    n = len(lines)
    lineno = np.arange(first_lineno, first_lineno + n)
    if n == 0:
        return (np.array([], dtype="datetime64[m]"), np.zeros((0, len(RECORD_FIELDS))), lineno, 0)

    def fail():
        for k, ln in enumerate(lines):
            err = _record_error(path, ln, first_lineno + k)
            if err is not None:
                raise err
        raise InputError("cannot be parsed", path=path, line=first_lineno, field="date")

    if not all(ln[:RECORD_WIDTH].isascii() for ln in lines):
        fail()
    buf = "".join(ln[:RECORD_WIDTH].ljust(RECORD_WIDTH) for ln in lines).encode("ascii")
    ntrunc = sum(1 for ln in lines if len(ln.rstrip()) > RECORD_WIDTH)
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(n, RECORD_WIDTH)

    # date columns
    dig = arr[:, _DATE_DIGITS].astype(np.int64) - 48
    if ((dig < 0) | (dig > 9)).any():
        fail()
    year = dig[:, 0] * 1000 + dig[:, 1] * 100 + dig[:, 2] * 10 + dig[:, 3]
    month = dig[:, 4] * 10 + dig[:, 5]
    day = dig[:, 6] * 10 + dig[:, 7]
    hour = dig[:, 8] * 10 + dig[:, 9]
    minute = dig[:, 10] * 10 + dig[:, 11]
    ok_month = (month >= 1) & (month <= 12)
    if not ok_month.all():
        fail()
    ok_day = (day >= 1) & (day <= _days_in_month(year, month))
    if not (ok_day & (hour <= 23) & (minute <= 59)).all():
        fail()

    # numeric fields
    block = arr[:, DATE_WIDTH:].reshape(n, len(RECORD_FIELDS), FIELD_WIDTH)
    if (block == 32).all(axis=2).any():  # blank field
        fail()
    if not _ALLOWED[block].all():
        fail()
    if not (block == 46).any(axis=2).all():  # '.' in every field
        fail()
    conv = np.ascontiguousarray(_D_TO_E[block]).view(f"S{FIELD_WIDTH}")
    conv = conv.reshape(n, len(RECORD_FIELDS))
    values = np.empty((n, len(RECORD_FIELDS)), dtype=np.float64)
    converted = True
    try:
        for k in range(len(RECORD_FIELDS)):
            values[:, k] = np.fromiter(map(float, conv[:, k].tolist()), dtype=np.float64, count=n)
    except ValueError:
        converted = False
    if not converted:
        fail()  # outside the except block: no chained ValueError in the traceback
    if not np.isfinite(values).all():
        fail()

    ym = (year - 1970) * 12 + (month - 1)
    times = (ym.astype("datetime64[M]").astype("datetime64[D]") + (day - 1)).astype("datetime64[m]")
    times = times + (hour * 60 + minute).astype("timedelta64[m]")
    return times, values, lineno, ntrunc


# --------------------------------------------------------------------------------------------
# read_point_file
# --------------------------------------------------------------------------------------------


def _parse_date(path: str, written: str, value: tuple) -> np.datetime64:
    text, line = value[0], value[1]
    s = text.strip()
    if not _DATE_RE.fullmatch(s):
        raise InputError("is not a date YYYYMMDDhhmm (12 digits)", path=path, line=line,
                         field=written, value=text)
    y, mo, d, h, mi = int(s[0:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12])
    if not (1 <= mo <= 12 and 1 <= d <= int(_days_in_month(y, mo)) and h <= 23 and mi <= 59):
        raise InputError("is not a valid date/time", path=path, line=line, field=written,
                         value=text)
    return np.datetime64(f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}", "m")


def _fmt_time(t: np.datetime64) -> str:
    return str(np.datetime64(t, "m")).replace("T", " ")


def read_point_file(path: str | os.PathLike[str]) -> PointCase:
    """Read and validate a legacy point-forcing file (namelist + ``<Forcing>`` records).

    Raises :class:`~noahtibet.errors.InputError` (message names file, line, field and value)
    for any malformed or inconsistent content; see the module docstring for the checks.
    """
    p = Path(path)
    spath = str(path)
    lines = _read_lines(p)

    # ---- namelist --------------------------------------------------------------------------
    start = next((i for i, ln in enumerate(lines)
                  if ln.lstrip().lower().startswith("&metadata_namelist")), None)
    if start is None:
        raise InputError("no '&METADATA_NAMELIST' group found", path=spath,
                         line=len(lines) or None, field="METADATA_NAMELIST")
    toks, nl_end = _tokenize_namelist(spath, lines, start)
    assigns = _parse_namelist(spath, toks)

    vals: dict[str, object] = {}
    key_lines: dict[str, int] = {}
    written: dict[str, str] = {}
    elem_lines: dict[str, list[int]] = {}
    for lname, key in NAMELIST_KEYS.items():
        asg = assigns.get(lname)
        written[key.attr] = asg.written if asg else key.name
        if asg is None:
            if key.required:
                raise InputError("required key is missing from &METADATA_NAMELIST", path=spath,
                                 line=nl_end, field=key.name)
            continue
        key_lines[key.attr] = asg.line
        if key.shape is None:
            if key.kind == "date":
                vals[key.attr] = _parse_date(spath, asg.written, asg.scalar)
            else:
                vals[key.attr] = asg.scalar[0]
            continue
        idx = sorted(asg.elements)
        for pos, k in enumerate(idx, start=1):
            if k != pos:
                raise InputError(f"element {pos} is not set (elements must run 1, 2, 3, ...)",
                                 path=spath, line=asg.line, field=asg.written)
        if isinstance(key.shape, int) and len(idx) != key.shape:
            raise InputError(f"is the number of values given, {key.shape} are required",
                             path=spath, line=asg.line, field=asg.written, value=len(idx))
        dtype = np.int64 if key.kind == "int" else np.float64
        vals[key.attr] = np.array([asg.elements[k][0] for k in idx], dtype=dtype)
        elem_lines[key.attr] = [asg.elements[k][1] for k in idx]

    def err(attr, reason, value=None, line=None):
        if line is None:
            line = key_lines.get(attr, nl_end)
        return InputError(reason, path=spath, line=line, field=written[attr], value=value)

    # layer arrays
    thick = vals["layer_thickness"]
    nlay = thick.size
    for attr in ("initial_soil_temperature", "initial_soil_moisture", "initial_soil_liquid",
                 "soil_class"):
        if attr not in vals:
            continue
        if vals[attr].size != nlay:
            raise err(attr, f"is the number of values given, but {written['layer_thickness']} "
                      f"has {nlay}", value=vals[attr].size)
    for k in range(nlay):
        if not thick[k] > 0.0:
            raise err("layer_thickness", f"is not a positive thickness (layer {k + 1})",
                      value=thick[k], line=elem_lines["layer_thickness"][k])
    soil_class_given = "soil_class" in vals
    if not soil_class_given:
        vals["soil_class"] = np.full(nlay, vals["soil_type_index"], dtype=np.int64)
        warnings.warn(
            f"{spath}: Soil_htype is not given; all {nlay} layers use Soil_type_index = "
            f"{vals['soil_type_index']} (the legacy Noah-Tibet driver requires Soil_htype)",
            stacklevel=2,
        )
    else:
        for k, c in enumerate(vals["soil_class"]):
            if c < 1:
                raise err("soil_class", f"is not a valid soil class (layer {k + 1})", value=int(c),
                          line=elem_lines["soil_class"][k])
    for attr in ("soil_type_index", "vegetation_type_index", "slope_type_index"):
        if vals[attr] < 1:
            raise err(attr, "is not a valid class index (must be >= 1)", value=vals[attr])

    # time step and dates
    dt = vals["model_timestep"]
    if dt <= 0 or dt % 60 != 0:
        raise err("model_timestep", "is not a positive multiple of 60 s (the legacy driver "
                  "works in whole minutes)", value=dt)
    loop = vals.get("loop_for_a_while", 0)
    if loop < 0:
        raise err("loop_for_a_while", "must be >= 0", value=loop)
    t0, t1 = vals["startdate"], vals["enddate"]
    if not t1 > t0:
        raise err("enddate", f"is not after startdate {_fmt_time(t0)}", value=_fmt_time(t1))
    step_min = dt // 60
    span = int((t1 - t0) / np.timedelta64(1, "m"))
    if span % step_min != 0:
        raise err("enddate", f"is not startdate + a whole number of model steps of {dt} s",
                  value=_fmt_time(t1))

    # initial state and parameters
    sneqv, snowh = vals["snow_water_equivalent"], vals["snow_depth"]
    if snowh < 0.0:
        raise err("snow_depth", "is negative", value=snowh)
    if sneqv < 0.0:
        raise err("snow_water_equivalent", "is negative", value=sneqv)
    if sneqv > SNOW_ZERO_THRESHOLD and (snowh <= 0.0 or sneqv / snowh > 1.0):
        raise err("snow_water_equivalent",
                  f"gives a snow density Snow_equivalent/Snow_depth > 1 (Snow_depth = {snowh})",
                  value=sneqv)
    if vals["skin_temperature"] < 150.0:
        raise err("skin_temperature", "is below 150 K (the skin temperature is in K)",
                  value=vals["skin_temperature"])
    if vals["green_vegetation_max"] < vals["green_vegetation_min"]:
        raise err("green_vegetation_max",
                  f"is lower than {written['green_vegetation_min']} = "
                  f"{vals['green_vegetation_min']}",
                  value=vals["green_vegetation_max"])
    if vals.get("sfcdif_option", 0) not in (0, 1, 2):
        raise err("sfcdif_option", "is not 0, 1 or 2", value=vals["sfcdif_option"])
    if vals.get("iz0tlnd", 0) not in (0, 1):
        raise err("iz0tlnd", "is not 0 or 1", value=vals["iz0tlnd"])
    if vals.get("sea_ice_point", False):
        raise err("sea_ice_point", "is not supported (the legacy driver stops for sea ice)",
                  value=".TRUE.")
    if vals.get("use_urban_module", False):
        raise err("use_urban_module", "is not supported (no urban module)", value=".TRUE.")
    if vals.get("read_monthly_lai", False) and "lai_monthly" not in vals:
        raise InputError(f"is required because {written['read_monthly_lai']} = .TRUE.",
                         path=spath, line=nl_end, field="lai_monthly")

    # ---- forcing records ---------------------------------------------------------------------
    tag = next((i for i in range(nl_end, len(lines))
                if lines[i].lstrip(" ").upper().startswith("<FORCING>")), None)
    if tag is None:
        raise InputError("no line starting with '<Forcing>' (case-insensitive) after the "
                         "namelist", path=spath, line=len(lines), field="<Forcing>")
    times, records, rec_lines, ntrunc = _parse_records(spath, lines[tag + 1:], tag + 2)
    if times.size == 0:
        raise InputError("no forcing records after the '<Forcing>' line", path=spath,
                         line=tag + 1, field="date")
    rec_min = times.astype(np.int64)
    d = np.diff(rec_min)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        k = int(bad[0]) + 1
        what = "duplicate time" if d[k - 1] == 0 else "time going backwards"
        raise InputError(
            f"is not later than the previous record ({_fmt_time(times[k - 1])}, line "
            f"{rec_lines[k - 1]}): {what}", path=spath, line=int(rec_lines[k]), field="date",
            value=_fmt_time(times[k]))
    if times[0] > t0:
        raise InputError(f"(first record) is after startdate {_fmt_time(t0)}: a record at or "
                         "before startdate is needed", path=spath, line=int(rec_lines[0]),
                         field="date", value=_fmt_time(times[0]))
    t_last = t1 if loop == 0 else t1 - np.timedelta64(step_min, "m")
    if times[-1] < t_last:
        raise InputError(
            f"(last record) is before the last simulated time {_fmt_time(t_last)}"
            + (f" (enddate - Noahlsm_Timestep, loop_for_a_while = {loop})" if loop
               else " (enddate)"),
            path=spath, line=int(rec_lines[-1]), field="date", value=_fmt_time(times[-1]))
    if loop > 0:
        j = int(np.searchsorted(times, t_last, side="left"))
        if j < times.size - 1:
            raise InputError(
                f"follows the record needed for the last simulated time {_fmt_time(t_last)}: with "
                "loop_for_a_while > 0 the legacy driver requires the forcing to end there "
                "(it stops with 'Wrong input for looping a year.')", path=spath,
                line=int(rec_lines[j + 1]), field="date", value=_fmt_time(times[j + 1]))

    return PointCase(
        path=spath,
        startdate=t0,
        enddate=t1,
        model_timestep=int(dt),
        loop_for_a_while=int(loop),
        forcing_timestep=vals.get("forcing_timestep"),
        output_dir=vals.get("output_dir", "."),
        latitude=vals.get("latitude"),
        longitude=vals.get("longitude"),
        landuse_dataset=vals.get("landuse_dataset", ""),
        sea_ice_point=bool(vals.get("sea_ice_point", False)),
        use_urban_module=bool(vals.get("use_urban_module", False)),
        dynamic_vegetation=int(vals.get("dynamic_vegetation", 2)),
        layer_thickness=thick,
        initial_soil_temperature=vals["initial_soil_temperature"],
        initial_soil_moisture=vals["initial_soil_moisture"],
        initial_soil_liquid=vals["initial_soil_liquid"],
        soil_class=vals["soil_class"],
        soil_class_given=soil_class_given,
        skin_temperature=vals["skin_temperature"],
        canopy_water=vals["canopy_water"],
        snow_depth=snowh,
        snow_water_equivalent=sneqv,
        deep_soil_temperature=vals["deep_soil_temperature"],
        soil_type_index=vals["soil_type_index"],
        vegetation_type_index=vals["vegetation_type_index"],
        slope_type_index=vals["slope_type_index"],
        urban_veg_category=vals["urban_veg_category"],
        glacial_veg_category=vals["glacial_veg_category"],
        max_snow_albedo=vals["max_snow_albedo"],
        air_temperature_level=vals["air_temperature_level"],
        wind_level=vals["wind_level"],
        green_vegetation_min=vals["green_vegetation_min"],
        green_vegetation_max=vals["green_vegetation_max"],
        use_monthly_albedo=bool(vals.get("use_monthly_albedo", False)),
        read_monthly_lai=bool(vals.get("read_monthly_lai", False)),
        sfcdif_option=int(vals.get("sfcdif_option", 0)),
        iz0tlnd=int(vals.get("iz0tlnd", 0)),
        albedo_monthly=vals["albedo_monthly"],
        shdfac_monthly=vals["shdfac_monthly"],
        z0brd_monthly=vals["z0brd_monthly"],
        lai_monthly=vals.get("lai_monthly"),
        records_time=times,
        records=records,
        record_lines=rec_lines,
        records_truncated=ntrunc,
        header_lines=lines[: tag + 1],
        forcing_tag_line=tag + 1,
        namelist_end_line=nl_end,
        key_lines=key_lines,
    )


# --------------------------------------------------------------------------------------------
# Legacy driver computations
# --------------------------------------------------------------------------------------------


def simulation_times(case: PointCase) -> np.ndarray:
    """Model times of one pass (datetime64[m]).

    ``loop_for_a_while == 0``: startdate ... enddate inclusive (the legacy loop tests
    ``nowdate < enddate`` on the previous date, so both ends are simulated).
    ``loop_for_a_while = L > 0`` (spin-up): each of the L+1 passes covers startdate ...
    enddate - Noahlsm_Timestep (the pass ends when the new date equals enddate, without
    simulating it); the model state is carried from one pass to the next and the legacy
    driver writes each pass to its own file ``OUTPUT.nnnn.txt`` (nnnn = 0 ... L).
    """
    step = case.model_timestep // 60
    n = int((case.enddate - case.startdate) / np.timedelta64(step, "m"))
    if case.loop_for_a_while == 0:
        n += 1
    return case.startdate + np.arange(n, dtype=np.int64) * np.timedelta64(step, "m")


def specific_humidity_from_rh(temperature, pressure, rh_fraction) -> np.ndarray:
    """Legacy RH -> specific humidity (NCEP Noah v2.7.1 ``EsFuncT`` path), element-wise.

    ``temperature`` K, ``pressure`` Pa, ``rh_fraction`` = RH% * 1e-2.  Evaluated in the order
    of the legacy code, including the two clamps (q >= 1e-6; q >= QS -> 0.99 QS).
    """
    t = np.asarray(temperature, dtype=np.float64)
    p = np.asarray(pressure, dtype=np.float64)
    rhf = np.asarray(rh_fraction, dtype=np.float64)
    # EsFuncT: LW = LVH2O - (CW - CPV)*(T - TO); E = ESO*EXP(LW*(1/TO - 1/T)/RV)
    lw = 2.501e6 - (4187.0 - 1870.0) * (t - 273.15)
    svp = 611.2 * np.exp(lw * (1.0 / 273.15 - 1.0 / t) / 461.5)
    eps = 0.622
    qs = eps * svp / (p - (1.0 - eps) * svp)
    e = (p * svp * rhf) / (p - svp * (1.0 - rhf))
    q = (eps * e) / (p - (1.0 - eps) * e)
    q = np.where(q < 0.1e-5, 0.1e-5, q)
    q = np.where(q >= qs, qs * 0.99, q)
    return q


def month_interpolation(times):
    """Indices and weight of the legacy ``month_d`` for each time (only the calendar day matters).

    Returns ``(prev, next, f)`` (int64, int64, float64 arrays) such that the legacy value is
    ``a12[prev-1]*(1-f) + a12[next-1]*f``.  Day d of month m, year y (February length from the
    leap rule of y): d == 15 -> prev = next = m, f = 0; d < 15 -> prev = m-1 (0 -> 12),
    next = m, f = (ndays(prev) - 15 + d)/ndays(prev); d > 15 -> prev = m, next = m+1 (13 -> 1),
    f = (d - 15)/ndays(prev).
    """
    t = np.atleast_1d(np.asarray(times, dtype="datetime64[m]"))
    months = t.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (t.astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64) + 1
    before = day < 15
    after = day > 15
    prev = np.where(before, np.where(month == 1, 12, month - 1), month)
    nxt = np.where(after, np.where(month == 12, 1, month + 1), month)
    nd = _days_in_month(year, prev).astype(np.float64)
    f = np.zeros(t.shape, dtype=np.float64)
    f = np.where(before, (nd - 15.0 + day) / nd, f)  # exact integers, then one division
    f = np.where(after, (day - 15.0) / nd, f)
    return prev.astype(np.int64), nxt.astype(np.int64), f


def month_d(a12, prev, nxt, f) -> np.ndarray:
    """Legacy ``month_d`` value ``a12(prev)*(1-f) + a12(next)*f`` (1-based month indices)."""
    a = np.asarray(a12, dtype=np.float64)
    if a.shape != (12,):
        raise ValueError(f"a12 must have 12 values, got shape {a.shape}")
    prev = np.asarray(prev)
    nxt = np.asarray(nxt)
    f = np.asarray(f, dtype=np.float64)
    return a[prev - 1] * (1.0 - f) + a[nxt - 1] * f


def _clean_reader_indices(rt: np.ndarray, t: np.ndarray):
    """(before, after, exact) with before/after the records adjacent to each time (vectorised)."""
    idx = np.searchsorted(rt, t, side="left")
    if (idx >= rt.size).any():  # guaranteed by read_point_file; guard against edited cases
        raise ValueError("forcing records do not cover the simulation period")
    exact = rt[idx] == t
    if ((~exact) & (idx == 0)).any():
        raise ValueError("the first forcing record is after the first model time")
    before = np.where(exact, idx, idx - 1)
    return before, idx, exact


def _sequential_reader_indices(rt: np.ndarray, t: np.ndarray):
    """(before, after, exact) following the legacy READ_FORCING_TEXT state machine step by step.

    The legacy reader keeps ``before``/``after`` between calls and reads records sequentially.
    When a call consumes a record earlier than (or equal to) the model time while ``after`` still
    holds an older record, that stale ``after`` later becomes ``before`` ("after becomes before"),
    so the interpolation can use non-adjacent records.  This only happens when more than one
    record falls between two consecutive model times (model step longer than the record
    spacing); :func:`model_forcing` calls this function only then.
    """
    rtl = rt.tolist()
    nrec = len(rtl)
    nt = t.size
    out_b = np.empty(nt, dtype=np.int64)
    out_a = np.empty(nt, dtype=np.int64)
    out_e = np.empty(nt, dtype=bool)
    before = after = -1  # -1: the legacy "000000000000" placeholder
    nxt = 0
    for k, now in enumerate(t.tolist()):
        while not (before >= 0 and after >= 0 and rtl[before] <= now <= rtl[after]):
            if nxt >= nrec:
                raise ValueError("forcing records do not cover the simulation period")
            r = nxt
            nxt += 1
            if rtl[r] > now:
                if after >= 0:
                    before = after  # the legacy "after becomes before", even if stale
                after = r
                break
            before = r
            if rtl[r] == now:
                break
        if before >= 0 and rtl[before] == now:
            out_b[k] = out_a[k] = before
            out_e[k] = True
        elif after >= 0 and rtl[after] == now:
            out_b[k] = out_a[k] = after
            out_e[k] = True
            before, after = after, -1
        elif before >= 0 and after >= 0 and rtl[before] < now < rtl[after]:
            out_b[k], out_a[k], out_e[k] = before, after, False
        else:  # the legacy program stops here
            raise ValueError("Problem in the logic of read_forcing_text (legacy reader state)")
    return out_b, out_a, out_e


def model_forcing(case: PointCase, *, legacy_reader: bool = True) -> PointForcing:
    """Forcing of every model step of one pass, exactly as the legacy driver computes it.

    For each model time t (:func:`simulation_times`): if a record has time t it is used as is;
    otherwise, with ``before`` the last record earlier than t and ``after`` the next one,
    ``w = real(dab - dnb)/real(dab)`` (integer minutes; dnb = t - before, dab = after - before)
    and ``X = X_before*w + X_after*(1 - w)`` for wind speed and direction, T, RH (in %),
    pressure (hPa, then *1e2), SW and LW.  Precipitation is carried forward from ``before``.
    Then rhf = RH*1e-2 and q = :func:`specific_humidity_from_rh`.

    If more than one record lies between two consecutive model times (model step longer than
    the record spacing), the legacy reader can pick a stale ``before`` record (see
    :func:`_sequential_reader_indices`).  ``legacy_reader=True`` (default) reproduces that and
    warns when it changes the result; ``legacy_reader=False`` always uses the adjacent records.

    With ``loop_for_a_while = L > 0`` the legacy run is ``passes = L + 1`` repetitions of exactly
    this forcing (see :func:`simulation_times`).
    """
    times = simulation_times(case)
    t = times.astype(np.int64)
    rt = case.records_time.astype(np.int64)
    before, after, exact = _clean_reader_indices(rt, t)
    if legacy_reader and t.size > 1:
        # number of records in (t[k-1], t[k]]; the legacy state machine equals the clean
        # indexing whenever this never exceeds 1 (proof by induction over the steps)
        consumed = np.diff(np.searchsorted(rt, t, side="right"))
        if consumed.max() > 1:
            lb, la, le = _sequential_reader_indices(rt, t)
            differ = (lb != before) | (la != after) | (le != exact)
            if differ.any():
                k = int(np.flatnonzero(differ)[0])
                warnings.warn(
                    f"{case.path}: the model step ({case.model_timestep} s) is longer than the "
                    f"record spacing; as in the legacy reader, {int(differ.sum())} step(s) "
                    f"interpolate between non-adjacent records (first at {_fmt_time(times[k])})",
                    stacklevel=2,
                )
            before, after, exact = lb, la, le
    idts = t - rt[before]  # minutes now - before
    idts2 = rt[after] - rt[before]  # minutes after - before
    # legacy: fraction = real(idts2 - idts)/real(idts2); 1 on an exact match
    safe = np.where(exact, 1, idts2)
    w = np.where(exact, 1.0, (idts2 - idts).astype(np.float64) / safe.astype(np.float64))

    rec = case.records
    xb = rec[before]
    xa = rec[after]

    def interp(col):
        return np.where(exact, xb[:, col], xb[:, col] * w + xa[:, col] * (1.0 - w))

    wind = interp(0)
    wdir = interp(1)
    temp = interp(2)
    rh_pct = interp(3)
    pres = interp(4) * 1.0e2
    sw = interp(5)
    lw = interp(6)
    prcp = xb[:, 7].copy()  # before == the record itself on exact match
    rhf = rh_pct * 1.0e-2
    q = specific_humidity_from_rh(temp, pres, rhf)
    mprev, mnext, mf = month_interpolation(times)
    return PointForcing(
        time=times,
        wind=wind,
        wind_direction=wdir,
        air_temperature=temp,
        relative_humidity=rhf,
        specific_humidity=q,
        pressure=pres,
        shortwave=sw,
        longwave=lw,
        precipitation=prcp,
        record_before=before,
        record_after=after,
        weight=w,
        exact=exact,
        month_prev=mprev,
        month_next=mnext,
        month_weight=mf,
        model_timestep=case.model_timestep,
        passes=case.loop_for_a_while + 1,
    )
