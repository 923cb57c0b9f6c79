"""Noah-Tibet parameter tables (SOILPARM / VEGPARM / GENPARM) as numpy float64.

The packaged tables live in ``noahtibet/data/tables/*.csv`` (see PROVENANCE.md there); they hold
the literal strings of the legacy ``*.TBL`` files, which are parsed with ``float()`` here.  For
these decimal literals ``float()`` gives the correctly rounded IEEE double, i.e. the same value as
the legacy REAL(8) list-directed read.

Every loader takes an optional ``table_dir``: a directory holding CSV files with the same names and
layout, to run with user-modified tables.  Malformed content raises
:class:`noahtibet.errors.InputError` naming file, line and column; a missing file raises
:class:`noahtibet.errors.ConfigError`.

Table arrays are stored 0-based (class ``k`` at position ``k - 1``); use :meth:`SoilTable.get` /
:meth:`SoilTable.row` (and the same on :class:`VegTable`) for 1-based class access.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InputError

__all__ = [
    "SoilTable",
    "VegTable",
    "load_soil_table",
    "load_veg_table",
    "load_general_parameters",
    "SOIL_COLUMNS",
    "VEG_COLUMNS",
    "GENPARM_NAMES",
    "VEGPARM_GLOBAL_NAMES",
]

SOIL_COLUMNS = (
    "BB", "DRYSMC", "F11", "MAXSMC", "REFSMC", "SATPSI", "SATDK", "SATDW", "WLTSMC", "QTZ",
)
VEG_COLUMNS = (
    "SHDFAC", "NROOT", "RS", "RGL", "HS", "SNUP", "MAXALB", "LAIMIN", "LAIMAX",
    "EMISSMIN", "EMISSMAX", "ALBEDOMIN", "ALBEDOMAX", "Z0MIN", "Z0MAX",
)
_VEG_INT_COLUMNS = frozenset({"NROOT"})
# Scalar GENPARM entries (SLOPE_DATA(1..n) is handled separately).
GENPARM_NAMES = (
    "SBETA_DATA", "FXEXP_DATA", "CSOIL_DATA", "SALP_DATA", "REFDK_DATA", "REFKDT_DATA",
    "FRZK_DATA", "ZBOT_DATA", "CZIL_DATA", "SMLOW_DATA", "SMHIGH_DATA", "LVCOEF_DATA",
)
VEGPARM_GLOBAL_NAMES = ("TOPT_DATA", "CMCMAX_DATA", "CFACTR_DATA", "RSMAX_DATA", "BARE", "NATURAL")
_INT_GLOBALS = frozenset({"BARE", "NATURAL"})

# A Fortran real literal (no NaN/Inf; D exponent allowed).  Python's float() alone would also
# accept "nan", "inf" and digit separators "1_0", which a Fortran read would not.
_REAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_SLOPE_RE = re.compile(r"SLOPE_DATA\((\d+)\)")

_FILES = {
    "soil": "soilparm.csv",
    "veg": "vegparm.csv",
    "gen": "genparm.csv",
    "vegglobal": "vegparm_globals.csv",
}


# --------------------------------------------------------------------------------------------
# Table containers
# --------------------------------------------------------------------------------------------


class _ClassTable:
    """Shared 1-based access helpers for per-class tables."""

    path: str
    NAME: tuple[str, ...]
    _columns: tuple[str, ...] = ()
    _class_field: str = "class"

    @property
    def nclasses(self) -> int:
        return len(self.NAME)

    def __len__(self) -> int:
        return self.nclasses

    def _check_class(self, k: int) -> int:
        try:
            ki = int(k)
        except (TypeError, ValueError):
            ki = None
        if ki is None or ki != k or not 1 <= ki <= self.nclasses:
            raise ConfigError(
                f"is not a class of this table (valid: 1..{self.nclasses})",
                path=self.path, line=None, field=self._class_field, value=k,
            )
        return ki

    def get(self, column: str, k: int):
        """Value of ``column`` for 1-based class ``k`` (np.float64, or int for integer columns)."""
        ki = self._check_class(k)
        if column == "NAME":
            return self.NAME[ki - 1]
        if column not in self._columns:
            raise KeyError(f"unknown column {column!r}; columns are {self._columns + ('NAME',)}")
        return getattr(self, column)[ki - 1]

    def row(self, k: int) -> dict[str, Any]:
        """All columns of 1-based class ``k`` as a dict (column name -> value)."""
        ki = self._check_class(k)
        out: dict[str, Any] = {c: getattr(self, c)[ki - 1] for c in self._columns}
        out["NAME"] = self.NAME[ki - 1]
        return out


@dataclass(frozen=True, eq=False)
class SoilTable(_ClassTable):
    """SOILPARM block ``STAS``: one entry per soil class (arrays are 0-based, class k at k-1)."""

    path: str
    BB: np.ndarray
    DRYSMC: np.ndarray
    F11: np.ndarray
    MAXSMC: np.ndarray
    REFSMC: np.ndarray
    SATPSI: np.ndarray
    SATDK: np.ndarray
    SATDW: np.ndarray
    WLTSMC: np.ndarray
    QTZ: np.ndarray
    NAME: tuple[str, ...]

    _columns = SOIL_COLUMNS
    _class_field = "SOILTYP"


@dataclass(frozen=True, eq=False)
class VegTable(_ClassTable):
    """VEGPARM block ``USGS``: one entry per vegetation class (0-based arrays; NROOT is int64)."""

    path: str
    SHDFAC: np.ndarray
    NROOT: np.ndarray
    RS: np.ndarray
    RGL: np.ndarray
    HS: np.ndarray
    SNUP: np.ndarray
    MAXALB: np.ndarray
    LAIMIN: np.ndarray
    LAIMAX: np.ndarray
    EMISSMIN: np.ndarray
    EMISSMAX: np.ndarray
    ALBEDOMIN: np.ndarray
    ALBEDOMAX: np.ndarray
    Z0MIN: np.ndarray
    Z0MAX: np.ndarray
    NAME: tuple[str, ...]

    _columns = VEG_COLUMNS
    _class_field = "VEGTYP"


# --------------------------------------------------------------------------------------------
# CSV reading
# --------------------------------------------------------------------------------------------


def _read_table_text(key: str, table_dir: str | os.PathLike[str] | None) -> tuple[str, str]:
    """Return (display path, text) of one table file, packaged or from ``table_dir``."""
    name = _FILES[key]
    if table_dir is None:
        res = resources.files("noahtibet").joinpath("data", "tables", name)
        path = str(res)
        try:
            return path, res.read_text(encoding="utf-8")
        except (FileNotFoundError, OSError) as exc:  # broken installation
            raise ConfigError(f"packaged table cannot be read ({exc})", path=path) from exc
    p = Path(table_dir) / name
    if not p.is_file():
        raise ConfigError(
            f"table file missing in the user table directory {str(table_dir)!r}", path=p
        )
    try:
        return str(p), p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"table file cannot be read ({exc})", path=p) from exc


def _csv_rows(path: str, text: str):
    """Yield (line number, list of cells) for non-comment, non-blank lines."""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        try:
            cells = next(csv.reader([raw], skipinitialspace=False, strict=True))
        except csv.Error as exc:
            raise InputError(f"is not a valid CSV line ({exc})", path=path, line=lineno,
                             field=None, value=raw) from exc
        yield lineno, [c.strip() for c in cells]


def _parse_real(path: str, line: int, column: str, text: str) -> np.float64:
    if not _REAL_RE.fullmatch(text):
        raise InputError("is not a number", path=path, line=line, field=column, value=text)
    value = float(text.replace("d", "e").replace("D", "e"))
    if not np.isfinite(value):
        raise InputError("is not a finite number", path=path, line=line, field=column, value=text)
    return np.float64(value)


def _parse_int(path: str, line: int, column: str, text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise InputError("is not an integer", path=path, line=line, field=column, value=text)
    return int(text)


def _read_class_table(key: str, index_col: str, columns: tuple[str, ...], int_columns,
                      table_dir) -> tuple[str, dict[str, np.ndarray], tuple[str, ...]]:
    path, text = _read_table_text(key, table_dir)
    expected = (index_col,) + columns + ("NAME",)
    rows = _csv_rows(path, text)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise InputError("table has no header line", path=path, line=None, field=None) from None
    if tuple(h.upper() for h in header) != expected:
        missing = [c for c in expected if c not in (h.upper() for h in header)]
        raise InputError(
            f"header must be {','.join(expected)}"
            + (f" (missing: {', '.join(missing)})" if missing
               else " (wrong order or extra columns)"),
            path=path, line=header_line, field=missing[0] if missing else None,
            value=",".join(header),
        )
    values: dict[str, list] = {c: [] for c in columns}
    names: list[str] = []
    for lineno, cells in rows:
        if len(cells) != len(expected):
            field = expected[len(cells)] if len(cells) < len(expected) else "NAME"
            raise InputError(
                f"has {len(cells)} columns, {len(expected)} expected",
                path=path, line=lineno, field=field, value=",".join(cells),
            )
        idx = _parse_int(path, lineno, index_col, cells[0])
        if idx != len(names) + 1:
            raise InputError(
                "is out of sequence (class indices must run 1, 2, 3, ...; "
                f"expected {len(names) + 1})",
                path=path, line=lineno, field=index_col, value=cells[0],
            )
        for col, cell in zip(columns, cells[1:-1]):
            if col in int_columns:
                values[col].append(_parse_int(path, lineno, col, cell))
            else:
                values[col].append(_parse_real(path, lineno, col, cell))
        if not cells[-1]:
            raise InputError("class name is empty", path=path, line=lineno, field="NAME")
        names.append(cells[-1])
    if not names:
        raise InputError("table has no rows", path=path, line=header_line, field=index_col)
    arrays = {}
    for col in columns:
        arr = np.array(values[col], dtype=np.int64 if col in int_columns else np.float64)
        arr.setflags(write=False)
        arrays[col] = arr
    return path, arrays, tuple(names)


def load_soil_table(table_dir: str | os.PathLike[str] | None = None) -> SoilTable:
    """Load SOILPARM (``soilparm.csv``): columns BB ... QTZ as float64 arrays, NAME as a tuple."""
    path, arrays, names = _read_class_table("soil", "SOILTYP", SOIL_COLUMNS, frozenset(), table_dir)
    return SoilTable(path=path, NAME=names, **arrays)


def load_veg_table(table_dir: str | os.PathLike[str] | None = None) -> VegTable:
    """Load VEGPARM (``vegparm.csv``): float64 arrays (NROOT int64), NAME as a tuple."""
    path, arrays, names = _read_class_table("veg", "VEGTYP", VEG_COLUMNS, _VEG_INT_COLUMNS,
                                            table_dir)
    return VegTable(path=path, NAME=names, **arrays)


def _read_name_value(key: str, table_dir) -> tuple[str, dict[str, tuple[int, str]]]:
    """Read a NAME,VALUE,... table into {NAME: (line, value text)}."""
    path, text = _read_table_text(key, table_dir)
    rows = _csv_rows(path, text)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise InputError("table has no header line", path=path, line=None, field=None) from None
    if len(header) < 2 or header[0].upper() != "NAME" or header[1].upper() != "VALUE":
        raise InputError("header must start with NAME,VALUE", path=path, line=header_line,
                         field="NAME", value=",".join(header))
    out: dict[str, tuple[int, str]] = {}
    for lineno, cells in rows:
        if len(cells) < 2:
            raise InputError("has no VALUE column", path=path, line=lineno, field="VALUE",
                             value=",".join(cells))
        name = cells[0].upper()
        if name in out:
            raise InputError(f"is defined twice (first at line {out[name][0]})", path=path,
                             line=lineno, field="NAME", value=cells[0])
        out[name] = (lineno, cells[1])
    return path, out


def load_general_parameters(table_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load GENPARM (``genparm.csv``) plus the VEGPARM globals (``vegparm_globals.csv``).

    Returns a dict with ``SLOPE_DATA`` (float64 array of NUM_SLOPE values, class k at k-1),
    ``NUM_SLOPE`` (int), the scalar GENPARM entries (``SBETA_DATA`` ... ``LVCOEF_DATA``,
    np.float64) and ``TOPT_DATA``, ``CMCMAX_DATA``, ``CFACTR_DATA``, ``RSMAX_DATA``
    (np.float64), ``BARE``, ``NATURAL`` (int).
    """
    result: dict[str, Any] = {}

    path, entries = _read_name_value("gen", table_dir)
    slopes: dict[int, np.float64] = {}
    for name, (lineno, text) in entries.items():
        m = _SLOPE_RE.fullmatch(name)
        if m:
            slopes[int(m.group(1))] = _parse_real(path, lineno, name, text)
        elif name in GENPARM_NAMES:
            result[name] = _parse_real(path, lineno, name, text)
        else:
            raise InputError("is not a known GENPARM entry", path=path, line=lineno,
                             field="NAME", value=name)
    last_line = max((ln for ln, _ in entries.values()), default=None)
    if not slopes:
        raise InputError("no SLOPE_DATA(i) entries", path=path, line=last_line, field="SLOPE_DATA")
    n = max(slopes)
    for i in range(1, n + 1):
        if i not in slopes:
            raise InputError(f"SLOPE_DATA({i}) is missing (entries must run 1..{n})", path=path,
                             line=last_line, field=f"SLOPE_DATA({i})")
    slope = np.array([slopes[i] for i in range(1, n + 1)], dtype=np.float64)
    slope.setflags(write=False)
    result["SLOPE_DATA"] = slope
    result["NUM_SLOPE"] = n
    for name in GENPARM_NAMES:
        if name not in result:
            raise InputError("required entry is missing", path=path, line=last_line, field=name)

    path, entries = _read_name_value("vegglobal", table_dir)
    last_line = max((ln for ln, _ in entries.values()), default=None)
    for name, (lineno, text) in entries.items():
        if name not in VEGPARM_GLOBAL_NAMES:
            raise InputError("is not a known VEGPARM global", path=path, line=lineno,
                             field="NAME", value=name)
        if name in _INT_GLOBALS:
            result[name] = _parse_int(path, lineno, name, text)
        else:
            result[name] = _parse_real(path, lineno, name, text)
    for name in VEGPARM_GLOBAL_NAMES:
        if name not in result:
            raise InputError("required entry is missing", path=path, line=last_line, field=name)
    return result


# Make sure the dataclass fields and the column lists agree (cheap import-time guard).
assert tuple(f.name for f in fields(SoilTable))[1:-1] == SOIL_COLUMNS
assert tuple(f.name for f in fields(VegTable))[1:-1] == VEG_COLUMNS
