"""``noahtibet report RUN_DIR``: the validation report of a gridded run.

Writes, into ``RUN_DIR/report/`` (or ``--out``):

* ``report.html`` — one self-contained page (CSS inline, figures embedded as
  base64 PNG, no scripts, no external links), with the sections

  ====================  =====================================================
  id                    content
  ====================  =====================================================
  ``overview``          the run and its headline numbers
  ``maps``              class maps of chosen years and the change map
  ``area``              permafrost area per year (equal-area cells), trend
  ``reference``         agreement with a reference map: confusion matrices,
                        kappa, overall accuracy, quantity/allocation
                        disagreement, agreement map
  ``sites``             observed-vs-simulated scatter per variable; metrics
                        beside the published product's
  ``trends``            decadal trends per site, observed vs simulated; trend
                        RMSE beside the published
  ``calibration``       summary of a calibration's trials, when present
  ``ensemble``          ensemble spread (member areas, permafrost probability),
                        when present
  ``spinup``            spin-up convergence (``spinup_report.json``)
  ``provenance``        every input and setting: configuration, digests,
                        versions, input files with checksums
  ====================  =====================================================

  A section whose inputs are absent says so and how to supply them.
* ``metrics.json`` — every number of the report (NaN written as null);
* ``metrics.csv`` (site metrics beside the published figures),
  ``permafrost_area.csv``, ``site_pairs.csv``, ``site_trends.csv``,
  ``site_matches.csv`` and ``map_agreement.csv`` (when there is a reference map).

Every file is written to a temporary name and renamed when complete; the
HTML file is written last.

Inputs found automatically (each can be given explicitly):

* observations: ``RUN_DIR/truth/observations.csv`` or ``RUN_DIR/observations.csv``
  (the demo writes the first); any file :func:`noahtibet.observations.read_observations`
  reads (CSV or Zhao et al. 2021 workbooks);
* reference map: ``RUN_DIR/truth/reference_permafrost_<year>.tif`` or
  ``RUN_DIR/reference_permafrost_<year>.tif``; its year from the file name
  (default 2010); aggregated to the model grid by majority
  (:func:`noahtibet.masks.reference_map`);
* calibration: ``RUN_DIR/calibration/trials.csv`` (else any ``*trials*.csv``
  under ``calibration/``): a table with one row per trial and a ``kappa``
  column; other numeric columns are taken as parameters;
* ensemble: ``RUN_DIR/ensemble/`` as :mod:`noahtibet.calibration.ensemble`
  writes it: ``annual/ensemble_YYYY.nc`` (every member's class per cell,
  ``member_class (member, cell)``: the members' permafrost areas give the
  spread; the ensemble-mean class grid), netCDF files with a variable whose
  name contains ``probability`` (year, lat, lon), e.g.
  ``products/noahtibet_ensemble.nc`` (its last year is mapped), and
  ``*kappa*.csv`` / ``members.csv`` tables (shown as they are); member run
  directories ``member_*/annual/annual_YYYY.nc`` are read too.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import hashlib
import html
import io
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .classify import NODATA, PERMAFROST
from .errors import InputError
from .validation import (CLASS_LABELS, PUBLISHED, TREND_UNITS, UNITS, VARIABLES, RunData,
                         area_trend, map_agreement, open_run, permafrost_area_km2,
                         validate_sites)

log = logging.getLogger("noahtibet")

SECTIONS = (
    ("overview", "Overview"),
    ("maps", "Frozen-ground maps"),
    ("area", "Permafrost area"),
    ("reference", "Agreement with the reference map"),
    ("sites", "Observed vs simulated"),
    ("trends", "Decadal trends"),
    ("calibration", "Calibration"),
    ("ensemble", "Ensemble spread"),
    ("spinup", "Spin-up"),
    ("provenance", "Provenance"),
)

#: Colours of the classes (as the GeoTIFF colour table) and of no data.
CLASS_COLOURS = {1: "#2c7bb6", 2: "#abd9e9", 3: "#fdae61"}
NODATA_COLOUR = "#eeeeee"
CHANGE_CATEGORIES = (   # code, label, colour
    (1, "permafrost, unchanged", "#2c7bb6"),
    (2, "permafrost lost", "#d7191c"),
    (3, "permafrost gained", "#1a9641"),
    (4, "not permafrost, unchanged", "#f4e3c1"),
    (5, "seasonally frozen <-> non-frozen", "#fdae61"),
)
AGREEMENT_CATEGORIES = (
    (1, "both permafrost", "#2c7bb6"),
    (2, "both not permafrost", "#f4e3c1"),
    (3, "permafrost in the run only", "#d7191c"),
    (4, "permafrost in the reference only", "#7b3294"),
)


# ==========================================================================================
# HTML and file helpers (shared with noahtibet.compare)
# ==========================================================================================

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif;
 margin:0;background:#f4f5f7;color:#222;line-height:1.45;font-size:15px}
header{background:#1f3b57;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px 0;font-size:26px}
header p{margin:2px 0;color:#d5e2ee}
header code{background:rgba(255,255,255,0.15);color:#fff}
nav{background:#fff;border-bottom:1px solid #d8dde3;padding:8px 32px;position:sticky;top:0;z-index:2;
 display:flex;flex-wrap:wrap;gap:4px 18px}
nav a{color:#1f3b57;text-decoration:none;font-size:14px;white-space:nowrap}
main{max-width:1180px;margin:0 auto;padding:8px 24px 40px 24px}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:6px 24px 18px 24px;
 margin:18px 0}
section h2{border-bottom:2px solid #1f3b57;padding-bottom:4px;color:#1f3b57}
h3{color:#33506d;margin-bottom:6px}
table{border-collapse:collapse;margin:8px 0 14px 0;font-size:14px}
th,td{border:1px solid #d8dde3;padding:4px 10px;text-align:right;vertical-align:top}
th{background:#e9eef3;color:#1f3b57}
td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#f8f9fb}
td.good{background:#dff0d8 !important} td.bad{background:#f8d7da !important}
img{max-width:100%;height:auto;display:block;margin:10px 0;border:1px solid #eee}
.note{color:#555;font-size:14px}
.absent{color:#6c5300;background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px}
.warn{background:#fdecea;border-left:4px solid #d7191c;padding:8px 12px;color:#611a15}
.kv td:first-child{text-align:left;color:#33506d;font-weight:600;white-space:nowrap}
.kv td{text-align:left}
.scroll{max-height:420px;overflow:auto;border:1px solid #eee}
code{background:#f1f3f5;padding:1px 4px;border-radius:3px;font-size:13px}
footer{color:#666;font-size:13px;text-align:center;padding:20px}
"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def fmt(x, digits: int = 3) -> str:
    """A number for a table: fixed significant digits, '-' for missing."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if not math.isfinite(v):
        return "-"
    if v != 0 and (abs(v) >= 1e12 or abs(v) < 1e-3):
        return f"{v:.{digits}g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if abs(v) < 10 else f"{v:.{max(digits - 1, 1)}f}"


def table(header, rows, left_cols=(0,), cell_classes=None, caption=None) -> str:
    """An HTML table; ``rows`` hold preformatted (escaped) cell HTML."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption class='note'>{esc(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th class='{'l' if j in left_cols else ''}'>{h}</th>"
                                for j, h in enumerate(header)) + "</tr>")
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            cls = ["l"] if j in left_cols else []
            if cell_classes and (i, j) in cell_classes:
                cls.append(cell_classes[(i, j)])
            cells.append(f"<td class='{' '.join(cls)}'>{c}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def kv_table(pairs) -> str:
    return "<table class='kv'>" + "".join(
        f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def new_figure(width: float = 11.0, height: float = 4.0):
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_html(fig, alt: str) -> str:
    """The figure as an embedded PNG <img>."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


@dataclass
class Section:
    id: str
    title: str
    body: str
    present: bool = True


def absent(text: str) -> str:
    return f"<p class='absent'>{text}</p>"


def page(title: str, subtitle_lines, sections, banner: str = "") -> str:
    nav = "".join(f"<a href='#{s.id}'>{esc(s.title)}</a>" for s in sections)
    head = "".join(f"<p>{line}</p>" for line in subtitle_lines)
    body = "".join(f"<section id='{s.id}'><h2>{esc(s.title)}</h2>{s.body}</section>"
                   for s in sections)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1>{head}</header><nav>{nav}</nav><main>{banner}"
            f"{body}</main><footer>noahtibet {esc(__version__)} &middot; generated {now}"
            "</footer></body></html>\n")


def _atomic(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp creates 0600; give the usual permissions
    return Path(tmp)


def write_text_atomic(path, text: str) -> Path:
    path = Path(path)
    tmp = _atomic(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def jsonable(x):
    """Replace NaN/inf by None and numpy scalars/arrays by Python values, recursively."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json_atomic(path, data) -> Path:
    return write_text_atomic(path, json.dumps(jsonable(data), indent=1, sort_keys=False,
                                              allow_nan=False) + "\n")


def write_csv_atomic(path, header, rows) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else v for v in r])
    return write_text_atomic(path, buf.getvalue())


def file_fingerprint(path) -> dict:
    """Size, modification time and SHA-256 of a file (or a summary of a directory)."""
    p = Path(path)
    if not p.exists():
        return {"path": str(p), "exists": False}
    if p.is_dir():
        n = sum(1 for _ in p.rglob("*") if _.is_file())
        return {"path": str(p.resolve()), "exists": True, "files": n}
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    st = p.stat()
    return {"path": str(p.resolve()), "exists": True, "bytes": st.st_size,
            "modified": _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"), "sha256": h.hexdigest()}


# ==========================================================================================
# Map figures
# ==========================================================================================

def _crop(grid, maps, margin: int = 1):
    """Row/col slices of the bounding box of cells with data in any of ``maps``."""
    valid = np.zeros(grid.shape, dtype=bool)
    for m in maps:
        valid |= (m != NODATA) & (m != 0)
    if not valid.any():
        return slice(0, grid.nlat), slice(0, grid.nlon)
    rows, cols = np.nonzero(valid)
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, grid.nlat)
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, grid.nlon)
    return slice(int(r0), int(r1)), slice(int(c0), int(c1))


def _extent(grid, rs, cs):
    west, south = grid.bounds[0], grid.bounds[1]
    return (west + cs.start * grid.dlon, west + cs.stop * grid.dlon,
            south + rs.start * grid.dlat, south + rs.stop * grid.dlat)


def _categorical(ax, data, grid, rs, cs, categories, title):
    """Draw a categorical (codes -> colours) lat-lon map; 0 / missing in the no-data colour."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    codes = [0] + [c for c, _, _ in categories]
    colours = [NODATA_COLOUR] + [col for _, _, col in categories]
    lut = {c: i for i, c in enumerate(codes)}
    idx = np.zeros(data.shape, dtype=int)
    for c, i in lut.items():
        idx[data == c] = i
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, cmap.N)
    ext = _extent(grid, rs, cs)
    ax.imshow(idx[rs, cs], origin="lower", extent=ext, cmap=cmap, norm=norm,
              interpolation="nearest")
    ax.set_aspect(1.0 / _cos_mid(grid, ext))
    ax.set_title(title, fontsize=11)
    if getattr(grid, "geographic", True):
        ax.set_xlabel("longitude [deg E]", fontsize=9)
        ax.set_ylabel("latitude [deg N]", fontsize=9)
    else:
        ax.set_xlabel("x [m]", fontsize=9)
        ax.set_ylabel("y [m]", fontsize=9)
    ax.tick_params(labelsize=8)


def _legend(fig, categories, ncol=None):
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=col, edgecolor="#888", label=lab) for _, lab, col in categories]
    handles.append(Patch(facecolor=NODATA_COLOUR, edgecolor="#888", label="no data"))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol or len(handles),
               fontsize=9, frameon=False)


CLASS_CATEGORIES = tuple((c, CLASS_LABELS[c], CLASS_COLOURS[c]) for c in (1, 2, 3))


def class_maps_figure(grid, maps: dict, crop=None):
    """Small multiples of class maps {title: (nlat, nlon) classes}."""
    n = len(maps)
    ncol = n if n <= 4 else 3
    nrow = int(math.ceil(n / ncol))
    rs, cs = crop or _crop(grid, maps.values())
    w = 11.0
    fig = new_figure(w, _panel_height(grid, rs, cs, w / ncol) * nrow + 0.5)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax, (title, m) in zip(axes.ravel(), maps.items()):
        data = np.where(np.isin(m, (1, 2, 3)), m, 0)
        _categorical(ax, data, grid, rs, cs, CLASS_CATEGORIES, title)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    _legend(fig, CLASS_CATEGORIES)
    return fig


def change_codes(first, last) -> np.ndarray:
    """Change categories (see CHANGE_CATEGORIES) between two class maps; 0 where either has none."""
    a, b = np.asarray(first), np.asarray(last)
    ok = np.isin(a, (1, 2, 3)) & np.isin(b, (1, 2, 3))
    out = np.zeros(a.shape, dtype=np.uint8)
    out[ok & (a == 1) & (b == 1)] = 1
    out[ok & (a == 1) & (b != 1)] = 2
    out[ok & (a != 1) & (b == 1)] = 3
    out[ok & (a != 1) & (b != 1) & (a == b)] = 4
    out[ok & (a != 1) & (b != 1) & (a != b)] = 5
    return out


def agreement_codes(reference, simulated) -> np.ndarray:
    """Agreement categories (see AGREEMENT_CATEGORIES), permafrost vs not; 0 no data."""
    r, s = np.asarray(reference), np.asarray(simulated)
    ok = np.isin(r, (1, 2, 3)) & np.isin(s, (1, 2, 3))
    out = np.zeros(r.shape, dtype=np.uint8)
    out[ok & (r == 1) & (s == 1)] = 1
    out[ok & (r != 1) & (s != 1)] = 2
    out[ok & (r != 1) & (s == 1)] = 3
    out[ok & (r == 1) & (s != 1)] = 4
    return out


def _cos_mid(grid, ext) -> float:
    """East-west shrink of a lat-lon map at its middle latitude (1 for projected rasters)."""
    if not getattr(grid, "geographic", True):
        return 1.0
    return max(math.cos(math.radians(0.5 * (ext[2] + ext[3]))), 0.2)


def _panel_height(grid, rs, cs, panel_width) -> float:
    """Height [in] of a map panel of the given width: the map's shape plus title and labels."""
    ext = _extent(grid, rs, cs)
    shown = (ext[1] - ext[0]) * _cos_mid(grid, ext)
    aspect = shown / max(ext[3] - ext[2], 1e-9)    # width / height as drawn
    return min(max((panel_width - 0.7) / aspect + 1.0, 1.8), 7.0)


def single_map_figure(grid, data, categories, title, crop=None, width=8.0):
    rs, cs = crop or _crop(grid, [np.where(data == 0, NODATA, data)])
    fig = new_figure(width, _panel_height(grid, rs, cs, width) + 0.6)
    ax = fig.subplots()
    _categorical(ax, data, grid, rs, cs, categories, title)
    _legend(fig, categories, ncol=3)
    return fig


# ==========================================================================================
# Inputs found in the run directory
# ==========================================================================================

def _find_observations(run_dir: Path) -> list[Path]:
    for p in (run_dir / "truth" / "observations.csv", run_dir / "observations.csv"):
        if p.exists():
            return [p]
    return []


def _find_reference(run_dir: Path) -> Path | None:
    for d in (run_dir / "truth", run_dir):
        hits = sorted(d.glob("reference_permafrost_*.tif"))
        if hits:
            return hits[0]
    return None


def _year_in_name(path) -> int | None:
    m = re.findall(r"(?<!\d)(19\d\d|20\d\d)(?!\d)", Path(path).name)
    return int(m[-1]) if m else None


def _flatten(d, prefix="") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, json.dumps(v) if not isinstance(v, str) else v))
    return out


# ==========================================================================================
# The report
# ==========================================================================================

@dataclass
class ReportResult:
    html: Path
    json: Path
    csv: list
    sections: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def build_report(run_dir, out_dir=None, *, observations=None, reference=None,
                 reference_year: int | None = None, reference_mapping=None, map_years=None,
                 config=None, title: str | None = None, max_distance_km: float | None = None,
                 min_trend_years: int | None = None) -> ReportResult:
    """Build the report of the run in ``run_dir`` (see the module documentation).

    observations: list of observation files (None: found in the run directory;
    [] for none); reference: reference map path (None: found; "" for none);
    map_years: years to map (default: first, middle and last year with products
    and the reference year); config: a TOML file overriding the stored configuration.
    """
    from .validation import MIN_TREND_YEARS

    run_dir = Path(run_dir)
    run = open_run(run_dir, config=config)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    min_trend_years = MIN_TREND_YEARS if min_trend_years is None else int(min_trend_years)
    inputs: list[tuple[str, dict]] = []
    results: dict = {"run_dir": str(run_dir.resolve()), "years": run.years,
                     "simulated_cells": run.ncell}
    csv_files: list[Path] = []

    if map_years is not None:
        bad = [y for y in map_years if y not in run.years]
        if bad:
            raise InputError(f"the run has no year(s) {bad} (it has {run.years[0]}.."
                             f"{run.years[-1]})", path=str(run_dir), field="map years",
                             value=bad)
    cfg = run.config_dict or {}
    product_start = (cfg.get("run", {}) or {}).get("product_start_year", run.years[0])
    product_years = [y for y in run.years if y >= product_start] or run.years
    areas = {y: permafrost_area_km2(run.classes(y), run.grid) for y in run.years}
    trend = area_trend(product_years, [areas[y] for y in product_years])
    results["permafrost_area_km2"] = areas
    results["area_trend"] = trend
    csv_files.append(write_csv_atomic(out / "permafrost_area.csv", ["year", "permafrost_area_km2"],
                                      [(y, round(a, 3)) for y, a in areas.items()]))

    # ---- reference map ---------------------------------------------------------------------
    ref_path = _find_reference(run_dir) if reference is None else (Path(reference) if reference
                                                                    else None)
    ref_info = None
    if ref_path is not None:
        from .masks import reference_map

        ref_year = reference_year or _year_in_name(ref_path) or 2010
        inputs.append(("reference map", file_fingerprint(ref_path)))
        if ref_year in run.years:
            ref_grid = reference_map(str(ref_path), run.grid, reference_mapping).values
            sim = run.classes(ref_year)
            agr = map_agreement(ref_grid, sim)
            agr_area = map_agreement(ref_grid, sim, weights=run.grid.cell_area_km2())
            ref_info = {"path": str(ref_path), "year": ref_year, "agreement": agr,
                        "agreement_area_weighted": agr_area, "map": ref_grid}
            rows = []
            for scheme in ("classes", "binary"):
                a = agr[scheme]
                for i, rl in enumerate(a["labels"]):
                    for j, sl in enumerate(a["labels"]):
                        rows.append((scheme, rl, sl, a["confusion_matrix"][i][j]))
            csv_files.append(write_csv_atomic(out / "map_agreement.csv",
                                              ["scheme", "reference", "simulated", "cells"], rows))
        else:
            ref_info = {"path": str(ref_path), "year": ref_year, "agreement": None,
                        "note": f"the run has no year {ref_year}"}
    results["reference"] = {k: v for k, v in (ref_info or {}).items() if k != "map"} or None

    # ---- sites ---------------------------------------------------------------------------
    obs_paths = _find_observations(run_dir) if observations is None else [Path(p) for p in
                                                                          observations]
    site_val = None
    if obs_paths:
        from .observations import read_observations

        obs = read_observations(*obs_paths)
        for p in obs_paths:
            inputs.append(("observations", {**file_fingerprint(p),
                                            "rows": int((obs["source"].str.startswith(
                                                Path(p).name)).sum())}))
        if len(obs):
            site_val = validate_sites(run, obs, max_distance_km=max_distance_km,
                                      min_trend_years=min_trend_years)
            sv = site_val
            csv_files.append(write_csv_atomic(
                out / "site_pairs.csv", list(sv.pairs.columns),
                sv.pairs.itertuples(index=False)))
            csv_files.append(write_csv_atomic(
                out / "site_trends.csv", list(sv.trends.columns),
                sv.trends.itertuples(index=False)))
            csv_files.append(write_csv_atomic(
                out / "site_matches.csv", list(sv.matches.columns),
                sv.matches.itertuples(index=False)))
            rows = []
            for v in VARIABLES:
                m, t, pub = sv.metrics[v], sv.trend_metrics[v], PUBLISHED[v]
                rows.append((v, UNITS[v], m["n"], m["bias"], m["mae"], m["rmse"], m["r"],
                             pub["rmse"], pub["n"], t["n"], t["rmse"], pub["trend_rmse"]))
            csv_files.append(write_csv_atomic(
                out / "metrics.csv",
                ["variable", "unit", "n", "bias", "mae", "rmse", "r", "published_rmse",
                 "published_n", "trend_n", "trend_rmse", "published_trend_rmse"], rows))
            results["sites"] = {
                "observations": [str(p) for p in obs_paths],
                "n_sites": int(obs["site"].nunique()),
                "metrics": {v: {**sv.metrics[v], "unit": UNITS[v],
                                "published_rmse": PUBLISHED[v]["rmse"],
                                "published_n": PUBLISHED[v]["n"]} for v in VARIABLES},
                "trend_metrics": {v: {**sv.trend_metrics[v], "unit": TREND_UNITS[v],
                                      "published_trend_rmse": PUBLISHED[v]["trend_rmse"]}
                                  for v in VARIABLES},
                "min_trend_years": min_trend_years,
                "unmatched_sites": sv.unmatched,
                "sites_in_masked_cells": [r.site for r in sv.matches.itertuples() if r.masked],
            }
    if site_val is None:
        results["sites"] = None

    # ---- calibration and ensemble ---------------------------------------------------------------
    calib = _calibration(run_dir, inputs)
    results["calibration"] = calib and {k: v for k, v in calib.items() if k != "table"}
    ens = _ensemble(run_dir, run, inputs, product_years)
    results["ensemble"] = ens and {k: v for k, v in ens.items()
                                   if k not in ("probability_map",)}

    # ---- spin-up -------------------------------------------------------------------------------
    spin = None
    spin_path = run_dir / "spinup_report.json"
    if spin_path.exists():
        spin = json.loads(spin_path.read_text())
        inputs.append(("spin-up report", file_fingerprint(spin_path)))
    results["spinup"] = spin
    results["water_balance"] = run.water_balance()

    # ---- provenance ---------------------------------------------------------------------------
    prov = _provenance(run, inputs)
    results["provenance"] = prov

    # ---- sections -----------------------------------------------------------------------------
    if map_years is None:
        picks = [product_years[0], product_years[len(product_years) // 2], product_years[-1]]
        if ref_info and ref_info.get("agreement") is not None:
            picks.append(ref_info["year"])
        map_years = sorted(set(picks))
    sections = [
        _overview_section(run, results, trend, product_years),
        _maps_section(run, map_years, product_years),
        _area_section(areas, trend, product_years),
        _reference_section(run, ref_info, ref_path),
        _sites_section(site_val, obs_paths),
        _trends_section(site_val, min_trend_years),
        _calibration_section(calib),
        _ensemble_section(ens, run),
        _spinup_section(spin),
        _provenance_section(prov),
    ]
    assert [s.id for s in sections] == [s for s, _ in SECTIONS]
    results["sections"] = {s.id: s.present for s in sections}
    json_path = write_json_atomic(out / "metrics.json", results)
    synthetic = "SYNTHETIC" in str(run.product_attrs.get("domain", "")) or \
        (cfg.get("domain", {}) or {}).get("kind") == "demo"
    banner = ("<p class='warn'><b>Synthetic demo domain.</b> This run uses the built-in "
              "SYNTHETIC demo domain and synthetic 'observations' made by the model itself "
              "(a twin experiment). The numbers test the pipeline; they say nothing about the "
              "real plateau.</p>") if synthetic else ""
    subtitle = [f"Run directory <code>{esc(run_dir.resolve())}</code>",
                f"Years {run.years[0]}&ndash;{run.years[-1]} &middot; {run.ncell:,} simulated "
                f"cells &middot; grid {run.grid.dlon}&deg; &times; {run.grid.dlat}&deg;"]
    text = page(title or "noahtibet validation report", subtitle, sections, banner)
    html_path = write_text_atomic(out / "report.html", text)
    log.info("report written to %s", html_path)
    return ReportResult(html_path, json_path, csv_files, sections, jsonable(results))


# ---- section builders -------------------------------------------------------------------------

def _overview_section(run: RunData, results, trend, product_years) -> Section:
    areas = results["permafrost_area_km2"]
    y0, y1 = product_years[0], product_years[-1]
    rows = [("Years simulated", f"{run.years[0]}&ndash;{run.years[-1]} ({len(run.years)})"),
            ("Years with products", f"{y0}&ndash;{y1}"),
            ("Simulated cells", fmt(run.ncell)),
            ("Domain", esc(run.product_attrs.get("domain", "-"))),
            (f"Permafrost area {y0}", f"{fmt(areas[y0])} km&sup2;"),
            (f"Permafrost area {y1}", f"{fmt(areas[y1])} km&sup2;"),
            ("Area trend", f"{fmt(trend['km2_per_decade'])} km&sup2;/10a "
                           f"({fmt(trend['percent_per_decade'], 2)} %/10a)")]
    wb = results.get("water_balance")
    if wb:
        mean = {k: np.mean([w[k] for w in wb.values()]) * 1000.0 for k in
                ("precipitation", "evapotranspiration", "surface_runoff", "drainage",
                 "water_clamped")}
        rows.append(("Water balance (mean of cells and years)",
                     f"precipitation {fmt(mean['precipitation'])} mm/a, evapotranspiration "
                     f"{fmt(mean['evapotranspiration'])} mm/a, runoff and drainage "
                     f"{fmt(mean['surface_runoff'] + mean['drainage'])} mm/a, water created by "
                     f"the clamps (mostly the 0.02 soil-moisture floor) {fmt(mean['water_clamped'])} "
                     f"mm/a (largest "
                     f"{fmt(max(w['max_water_clamped'] for w in wb.values()) * 1000.0)} mm in a "
                     f"cell-year); largest residual of a cell-year "
                     f"{max(w['max_abs_residual'] for w in wb.values()):.2g} m"))
    ref = results.get("reference")
    if ref and ref.get("agreement"):
        b = ref["agreement"]["binary"]
        rows.append((f"Kappa vs reference {ref['year']} (permafrost / not)",
                     f"{fmt(b['kappa'])} (overall accuracy {fmt(b['overall_accuracy'])})"))
    sites = results.get("sites")
    if sites:
        for v in VARIABLES:
            m = sites["metrics"][v]
            rows.append((f"{v} RMSE (n)", f"{fmt(m['rmse'])} {UNITS[v]} ({m['n']}) &nbsp; "
                                          f"<span class='note'>published {PUBLISHED[v]['rmse']} "
                                          f"{UNITS[v]} (n={PUBLISHED[v]['n']})</span>"))
        tm = sites["trend_metrics"]
        rows.append(("Trend RMSE ALT / TTOP / GT10m",
                     " / ".join(f"{fmt(tm[v]['rmse'])} {TREND_UNITS[v]}" for v in VARIABLES)
                     + " &nbsp; <span class='note'>published " + " / ".join(
                         str(PUBLISHED[v]["trend_rmse"]) for v in VARIABLES) + "</span>"))
    return Section("overview", "Overview", kv_table(rows))


def _maps_section(run: RunData, map_years, product_years) -> Section:
    maps = {str(y): run.classes(y) for y in map_years}
    first, last = product_years[0], product_years[-1]
    crop = _crop(run.grid, [run.classes(first), run.classes(last)] + list(maps.values()))
    body = [f"<p class='note'>Frozen-ground class of every model cell (permafrost: a layer at or "
            f"below 0&nbsp;&deg;C throughout the year and the previous one). Years shown: "
            f"{', '.join(str(y) for y in map_years)}; the maps are cropped to the cells with "
            f"data.</p>", figure_html(class_maps_figure(run.grid, maps, crop),
                                      "class maps of chosen years")]
    if first != last:
        codes = change_codes(run.classes(first), run.classes(last))
        counts = {lab: int(np.sum(codes == c)) for c, lab, _ in CHANGE_CATEGORIES}
        body.append(f"<h3>Change {first} &rarr; {last}</h3>")
        body.append(figure_html(single_map_figure(run.grid, codes, CHANGE_CATEGORIES,
                                                  f"change of class {first} to {last}", crop),
                                "change map"))
        body.append(table(["change", "cells"], [(esc(k), fmt(v)) for k, v in counts.items()]))
    return Section("maps", "Frozen-ground maps", "".join(body))


def _area_section(areas, trend, product_years) -> Section:
    years = np.array(sorted(areas))
    a = np.array([areas[y] for y in years])
    fig = new_figure(11, 3.8)
    ax = fig.subplots()
    ax.plot(years, a / 1e3, "o-", color="#2c7bb6", ms=4, label="permafrost area")
    if np.isfinite(trend["km2_per_decade"]):
        py = np.array(product_years, dtype=float)
        pa = np.array([areas[y] for y in product_years])
        line = pa.mean() + trend["km2_per_decade"] / 10.0 * (py - py.mean())
        ax.plot(py, line / 1e3, "--", color="#d7191c",
                label=f"trend {fmt(trend['km2_per_decade'])} km² per decade "
                      f"({fmt(trend['percent_per_decade'], 2)} %)")
    ax.set_xlabel("year")
    ax.set_ylabel("area [10³ km²]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    rows = [(str(y), fmt(areas[y])) for y in years]
    body = ("<p class='note'>Sum of the areas of the permafrost cells on the authalic sphere "
            "(equal-area cell areas); the trend is the least-squares slope over the years with "
            "products.</p>" + figure_html(fig, "permafrost area time series")
            + "<details><summary>Area per year</summary><div class='scroll'>"
            + table(["year", "permafrost area [km²]"], rows) + "</div></details>")
    return Section("area", "Permafrost area", body)


def _confusion_html(a, title) -> str:
    labels = a["labels"]
    cm = a["confusion_matrix"]
    rows = []
    for i, lab in enumerate(labels):
        rows.append([f"<b>{esc(lab)}</b>"] + [fmt(int(v)) for v in cm[i]]
                    + [fmt(int(sum(cm[i])))])
    rows.append(["<b>total</b>"] + [fmt(int(sum(cm[i][j] for i in range(len(labels)))))
                                    for j in range(len(labels))]
                + [fmt(int(sum(map(sum, cm))))])
    hdr = ["reference &darr; / run &rarr;"] + [esc(x) for x in labels] + ["total"]
    stats = table(["kappa", "overall accuracy", "quantity disagreement",
                   "allocation disagreement", "cells"],
                  [(fmt(a["kappa"]), fmt(a["overall_accuracy"]),
                    fmt(a["quantity_disagreement"]), fmt(a["allocation_disagreement"]),
                    fmt(int(a["n"])))], left_cols=())
    return f"<h3>{esc(title)}</h3>" + table(hdr, rows) + stats


def _reference_section(run, ref_info, ref_path) -> Section:
    if ref_path is None:
        return Section("reference", "Agreement with the reference map", absent(
            "No reference map: give one with <code>--reference MAP.tif</code> (codes 1 "
            "permafrost, 2 seasonally frozen, 3 non-frozen, 0 no data) or put "
            "<code>reference_permafrost_YEAR.tif</code> in the run directory."), False)
    if ref_info.get("agreement") is None:
        return Section("reference", "Agreement with the reference map", absent(
            f"Reference map <code>{esc(ref_path)}</code> is for {ref_info['year']}, a year the "
            f"run did not simulate ({run.years[0]}&ndash;{run.years[-1]})."), False)
    y = ref_info["year"]
    agr = ref_info["agreement"]
    sim = run.classes(y)
    ref = ref_info["map"]
    ref_classes = np.where(np.isin(ref, (1, 2, 3)), ref, NODATA)
    crop = _crop(run.grid, [sim, ref_classes])
    codes = agreement_codes(ref, sim)
    body = [f"<p class='note'>Reference <code>{esc(ref_path)}</code> ({y}), aggregated to the "
            "model grid by majority; cells without data in either map are excluded. Kappa after "
            "Cohen (1960); quantity and allocation disagreement after Pontius &amp; Millones "
            "(2011); counts are cells. The area-weighted kappa (permafrost / not) is "
            f"{fmt(ref_info['agreement_area_weighted']['binary']['kappa'])}.</p>",
            figure_html(class_maps_figure(run.grid, {f"reference {y}": ref_classes,
                                                     f"run {y}": sim}, crop),
                        "reference and simulated classes"),
            figure_html(single_map_figure(run.grid, codes, AGREEMENT_CATEGORIES,
                                          f"agreement {y}: permafrost vs not", crop),
                        "agreement map"),
            _confusion_html(agr["binary"], "Permafrost / not permafrost"),
            _confusion_html(agr["classes"], "Three classes")]
    return Section("reference", "Agreement with the reference map", "".join(body))


def _metric_rows(metrics_by_var, published_key, unit_map):
    rows, classes = [], {}
    for i, v in enumerate(VARIABLES):
        m = metrics_by_var[v]
        pub = PUBLISHED[v][published_key]
        rows.append((v, esc(unit_map[v]), fmt(m["n"]), fmt(m["bias"]), fmt(m["mae"]),
                     f"<b>{fmt(m['rmse'])}</b>", fmt(m["r"]), fmt(pub)))
        if np.isfinite(m["rmse"]):
            classes[(i, 5)] = "good" if m["rmse"] <= pub else "bad"
    return rows, classes


def _scatter_figure(pairs, x, y, label_x, label_y, units, title_extra=None):
    fig = new_figure(11, 3.9)
    axes = fig.subplots(1, 3)
    for ax, v in zip(axes, VARIABLES):
        g = pairs[pairs["variable"] == v]
        ok = np.isfinite(g[x].to_numpy(float)) & np.isfinite(g[y].to_numpy(float))
        gx, gy = g[x].to_numpy(float)[ok], g[y].to_numpy(float)[ok]
        ax.set_title(f"{v} [{units[v]}]", fontsize=11)
        if gx.size:
            lo = float(min(gx.min(), gy.min()))
            hi = float(max(gx.max(), gy.max()))
            pad = 0.05 * (hi - lo) if hi > lo else 0.5
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="#888", lw=1)
            ax.scatter(gx, gy, s=14, alpha=0.7, color="#2c7bb6", edgecolor="none")
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
            if title_extra:
                ax.text(0.03, 0.97, title_extra[v], transform=ax.transAxes, va="top",
                        fontsize=8.5, bbox={"facecolor": "white", "alpha": 0.85,
                                            "edgecolor": "#ccc"})
        else:
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label_x, fontsize=9)
        ax.set_ylabel(label_y, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_aspect("equal", adjustable="box")
    return fig


def _sites_section(sv, obs_paths) -> Section:
    if sv is None:
        msg = ("No observations: give them with <code>--observations FILE</code> (plain CSV "
               "site, lat, lon, elevation, year, variable, value; or Zhao et al. 2021 "
               "workbooks) or put <code>observations.csv</code> in the run directory.")
        if obs_paths:
            msg = "The observation files hold no observations."
        return Section("sites", "Observed vs simulated", absent(msg), False)
    extra = {v: f"n = {m['n']}\nbias = {fmt(m['bias'])}\nRMSE = {fmt(m['rmse'])}\n"
                f"r = {fmt(m['r'])}" for v, m in sv.metrics.items()}
    rows, classes = _metric_rows(sv.metrics, "rmse", UNITS)
    hdr = ["variable", "unit", "n", "bias", "MAE", "RMSE", "r", "published RMSE"]
    pub_n = ", ".join(f"{v} n={PUBLISHED[v]['n']}" for v in VARIABLES)
    missing = [(v, sv.metrics[v]["n_sim_missing"]) for v in VARIABLES
               if sv.metrics[v]["n_sim_missing"]]
    body = [f"<p class='note'>Each observation (site, year) against the simulated value of the "
            f"site's cell that year: ALT and TTOP where the cell is permafrost, GT10m everywhere "
            f"(definitions in <code>noahtibet.validation</code>). Bias is simulated minus "
            f"observed. {len(sv.matches)} sites from {esc(', '.join(str(p) for p in obs_paths))}"
            f". Published product: {pub_n}. Green: RMSE at or below the published figure.</p>",
            figure_html(_scatter_figure(sv.pairs, "obs", "sim", "observed", "simulated", UNITS,
                                        extra), "observed vs simulated"),
            table(hdr, rows, cell_classes=classes)]
    if missing:
        body.append("<p class='note'>Observations without a simulated value (the cell is not "
                    "permafrost, or no data that year): "
                    + ", ".join(f"{v}: {n}" for v, n in missing) + ".</p>")
    notes = [(esc(r.site), esc(r.note)) for r in sv.matches.itertuples() if r.note]
    if notes:
        body.append("<h3>Site matching notes</h3>" + table(["site", "note"], notes,
                                                           left_cols=(0, 1)))
    return Section("sites", "Observed vs simulated", "".join(body))


def _trends_section(sv, min_years) -> Section:
    if sv is None or sv.trends.empty:
        why = ("no observations" if sv is None else
               f"no site has {min_years} or more years with both an observation and a "
               "simulated value")
        return Section("trends", "Decadal trends", absent(f"No trends: {why}."), False)
    extra = {v: f"sites = {m['n']}\nRMSE = {fmt(m['rmse'])}\nbias = {fmt(m['bias'])}"
             for v, m in sv.trend_metrics.items()}
    rows, classes = _metric_rows(sv.trend_metrics, "trend_rmse", TREND_UNITS)
    hdr = ["variable", "unit", "sites", "bias", "MAE", "RMSE", "r", "published RMSE"]
    t = sv.trends
    listing = [(esc(r.site), esc(r.variable), fmt(r.n_years), f"{r.first_year}&ndash;"
                f"{r.last_year}", fmt(r.obs_trend), fmt(r.sim_trend))
               for r in t.itertuples()]
    body = [f"<p class='note'>Least-squares trend per site over the years with both an "
            f"observation and a simulated value (at least {min_years} years), per decade. The "
            f"trend RMSE is over sites.</p>",
            figure_html(_scatter_figure(t.rename(columns={"obs_trend": "obs",
                                                          "sim_trend": "sim"}),
                                        "obs", "sim", "observed trend", "simulated trend",
                                        TREND_UNITS, extra), "trend comparison"),
            table(hdr, rows, cell_classes=classes),
            "<details><summary>Trends per site</summary><div class='scroll'>"
            + table(["site", "variable", "years", "span", "observed", "simulated"], listing,
                    left_cols=(0, 1)) + "</div></details>"]
    return Section("trends", "Decadal trends", "".join(body))


# ---- calibration -----------------------------------------------------------------------------

_NON_PARAMETER = {"trial", "tid", "kappa", "loss", "status", "batch", "rank", "seconds", "time",
                  "overall_accuracy", "overall_agreement", "quantity_disagreement",
                  "allocation_disagreement", "seed", "iteration", "cells", "n_cells",
                  "best_kappa_so_far", "reference_permafrost", "simulated_permafrost",
                  "message"}


def _calibration(run_dir: Path, inputs) -> dict | None:
    cdir = run_dir / "calibration"
    path = cdir / "trials.csv"
    if not path.exists():
        hits = sorted(cdir.glob("*trials*.csv")) if cdir.is_dir() else []
        if not hits:
            return None
        path = hits[0]
    import pandas as pd

    try:
        df = pd.read_csv(path, comment="#")
    except Exception as exc:  # noqa: BLE001 - pandas raises several kinds
        raise InputError(f"cannot be read as CSV ({exc})", path=str(path)) from None
    kcol = next((c for c in df.columns if c.lower() == "kappa"), None) or next(
        (c for c in df.columns if "kappa" in c.lower()), None)
    if kcol is None:
        raise InputError("has no 'kappa' column", path=str(path), field="header",
                         value=list(df.columns))
    inputs.append(("calibration trials", file_fingerprint(path)))
    kappa = pd.to_numeric(df[kcol], errors="coerce").to_numpy(float)
    params = [c for c in df.columns if c.lower() not in _NON_PARAMETER and c != kcol
              and pd.api.types.is_numeric_dtype(df[c])]
    order = np.argsort(-np.where(np.isfinite(kappa), kappa, -np.inf), kind="stable")
    tcol = next((c for c in df.columns if c.lower() in ("trial", "tid")
                 and pd.api.types.is_integer_dtype(df[c])), None)
    best = int(order[0]) if kappa.size else None
    for extra in sorted(cdir.glob("*.toml")) + sorted(cdir.glob("*.json")):
        inputs.append(("calibration output", file_fingerprint(extra)))
    return {"path": str(path), "trials": int(len(df)), "kappa_column": kcol,
            "best_kappa": float(kappa[best]) if best is not None else None,
            "best_trial": (int(df[tcol].iloc[best]) if tcol is not None else int(best))
            if best is not None else None,
            "first_kappa": float(kappa[0]) if kappa.size else None,
            "parameters": params,
            "best_parameters": {p: float(df[p].iloc[best]) for p in params}
            if best is not None else {},
            "kappa": kappa.tolist(), "table": df, "order": order.tolist()}


def _calibration_section(calib) -> Section:
    if calib is None:
        return Section("calibration", "Calibration", absent(
            "No calibration in this run directory (looked for "
            "<code>calibration/trials.csv</code>)."), False)
    k = np.array(calib["kappa"], dtype=float)
    fig = new_figure(11, 3.6)
    ax = fig.subplots()
    n = np.arange(1, k.size + 1)
    ax.scatter(n, k, s=12, color="#5e9ccf", label="trial")
    best = np.fmax.accumulate(np.where(np.isfinite(k), k, -np.inf))
    ax.plot(n, np.where(np.isfinite(best), best, np.nan), "-", color="#d7191c",
            label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("kappa")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    df = calib["table"]
    top = calib["order"][:13]
    cols = [calib["kappa_column"]] + calib["parameters"]
    rows = [[str(i + 1)] + [fmt(df[c].iloc[j], 4) for c in cols] for i, j in enumerate(top)]
    body = [f"<p class='note'>{calib['trials']} trials from <code>{esc(calib['path'])}</code>; "
            f"best kappa {fmt(calib['best_kappa'])} (trial {calib['best_trial']}), first trial "
            f"{fmt(calib['first_kappa'])}.</p>", figure_html(fig, "calibration convergence"),
            "<h3>Best trials</h3><div class='scroll'>"
            + table(["rank"] + [esc(c) for c in cols], rows) + "</div>"]
    return Section("calibration", "Calibration", "".join(body))


# ---- ensemble ---------------------------------------------------------------------------------

def _ensemble(run_dir: Path, run: RunData, inputs, product_years) -> dict | None:
    import netCDF4

    edir = run_dir / "ensemble"
    if not edir.is_dir():
        return None
    out: dict = {"path": str(edir)}
    members: dict = {}
    mean_area: dict = {}
    cell_area = run.grid.cell_area_km2()
    # layout of noahtibet.calibration.ensemble: annual/ensemble_YYYY.nc with every member's
    # class per cell (member_class (member, cell), cell_row, cell_col) and the ensemble-mean
    # class grid (frozen_ground_class (lat, lon), 255 no data)
    for f in sorted((edir / "annual").glob("ensemble_*.nc")):
        try:
            y = int(f.stem.split("_")[-1])
        except ValueError:
            continue
        with netCDF4.Dataset(f) as nc:
            nc.set_auto_mask(False)
            if "member_class" not in nc.variables:
                continue
            mc = np.array(nc["member_class"][:])
            rows = np.array(nc["cell_row"][:], dtype=int)
            cols = np.array(nc["cell_col"][:], dtype=int)
            grid_cls = np.array(nc["frozen_ground_class"][:])
        if grid_cls.shape != run.grid.shape:
            raise InputError(f"ensemble class map {grid_cls.shape} does not match the run's "
                             f"grid {run.grid.shape}", path=str(f), field="frozen_ground_class")
        valid = grid_cls[rows, cols] != NODATA          # lakes and the like that year
        w = cell_area[rows, cols] * valid
        for m in range(mc.shape[0]):
            members.setdefault(f"member {m + 1}", {})[y] = float(np.sum(w * (mc[m] == PERMAFROST)))
        mean_area[y] = permafrost_area_km2(grid_cls, run.grid)
    # alternative layout: one run directory per member, member_*/annual/annual_YYYY.nc
    for mdir in sorted(p for p in edir.glob("member_*") if p.is_dir()):
        files = sorted((mdir / "annual").glob("annual_*.nc"))
        areas = {}
        for f in files:
            y = int(f.stem.split("_")[-1])
            with netCDF4.Dataset(f) as nc:
                nc.set_auto_mask(False)
                cls = np.array(nc["frozen_ground_class"][:])
            if cls.shape != run.grid.shape:
                raise InputError(f"member class map {cls.shape} does not match the run's grid "
                                 f"{run.grid.shape}", path=str(f), field="frozen_ground_class")
            areas[y] = permafrost_area_km2(cls, run.grid)
        if areas:
            members[mdir.name] = areas
    if members:
        inputs.append(("ensemble members", file_fingerprint(edir)))
        years = sorted(set.intersection(*(set(a) for a in members.values())))
        stack = np.array([[members[m][y] for y in years] for m in sorted(members)])
        out["members"] = members
        out["spread"] = {"years": years, "min": stack.min(axis=0).tolist(),
                         "max": stack.max(axis=0).tolist(), "mean": stack.mean(axis=0).tolist(),
                         "std": stack.std(axis=0).tolist()}
        if mean_area:
            out["ensemble_mean_area"] = mean_area
    for f in sorted(edir.rglob("*.nc")):
        if "annual" in f.parts:
            continue
        with netCDF4.Dataset(f) as nc:
            names = [v for v in nc.variables if "probab" in v.lower()]
            if not names:
                continue
            nc.set_auto_mask(False)
            var = nc[names[0]]
            data = np.array(var[:], dtype=float)
            years = (np.array(nc["year"][:]).tolist() if "year" in nc.variables
                     else list(range(data.shape[0])) if data.ndim == 3 else [None])
        if data.ndim == 2:
            data = data[None]
        if data.shape[-2:] != run.grid.shape:
            continue
        inputs.append(("ensemble probability", file_fingerprint(f)))
        last = data[-1]
        valid = np.isfinite(last) & (last >= 0) & (last <= 1)
        out["probability_file"] = str(f)
        out["probability_variable"] = names[0]
        out["probability_year"] = years[-1]
        out["probability_map"] = np.where(valid, last, np.nan)
        out["uncertain_cells"] = int(np.sum(valid & (last > 0) & (last < 1)))
        out["certain_permafrost_cells"] = int(np.sum(valid & (last >= 1)))
        break
    for j in sorted(edir.glob("*.json")):
        inputs.append(("ensemble summary", file_fingerprint(j)))
    tables = sorted(set(edir.glob("*kappa*.csv")) | set(edir.glob("members.csv")))
    if tables:
        import pandas as pd

        out["tables"] = {}
        for t in tables:
            inputs.append(("ensemble table", file_fingerprint(t)))
            out["tables"][t.name] = pd.read_csv(t, comment="#").to_dict(orient="list")
    if len(out) == 1:
        return None
    return out


def _ensemble_section(ens, run) -> Section:
    if ens is None:
        return Section("ensemble", "Ensemble spread", absent(
            "No ensemble in this run directory (looked for <code>ensemble/annual/"
            "ensemble_YYYY.nc</code>, <code>ensemble/member_*/annual/</code>, probability "
            "netCDF files and member tables under <code>ensemble/</code>)."), False)
    body = []
    if "members" in ens:
        sp = ens["spread"]
        fig = new_figure(11, 3.8)
        ax = fig.subplots()
        yrs = np.array(sp["years"])
        ax.fill_between(yrs, np.array(sp["min"]) / 1e3, np.array(sp["max"]) / 1e3,
                        color="#abd9e9", alpha=0.6, label="member range")
        for name, areas in sorted(ens["members"].items()):
            ax.plot(yrs, [areas[y] / 1e3 for y in yrs], "-", lw=0.7, color="#7f9fbf")
        ax.plot(yrs, np.array(sp["mean"]) / 1e3, "-", lw=2, color="#1f3b57",
                label="mean of the members' areas")
        if ens.get("ensemble_mean_area"):
            ya = sorted(ens["ensemble_mean_area"])
            ax.plot(ya, [ens["ensemble_mean_area"][y] / 1e3 for y in ya], "--", lw=1.6,
                    color="#d7191c", label="area of the ensemble-mean classes")
        ax.set_xlabel("year")
        ax.set_ylabel("permafrost area [10³ km²]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
        body.append(f"<p class='note'>{len(ens['members'])} members.</p>")
        body.append(figure_html(fig, "ensemble spread of the permafrost area"))
        rows = [(str(y), fmt(sp["mean"][i]), fmt(sp["std"][i]), fmt(sp["min"][i]),
                 fmt(sp["max"][i])) for i, y in enumerate(sp["years"])]
        body.append("<details><summary>Member areas per year [km²]</summary><div "
                    "class='scroll'>" + table(["year", "mean", "std", "min", "max"], rows)
                    + "</div></details>")
    if "probability_map" in ens:
        from matplotlib.colors import LinearSegmentedColormap

        p = ens["probability_map"]
        rs, cs = _crop(run.grid, [np.where(np.isfinite(p), 1, NODATA)])
        fig = new_figure(9, _panel_height(run.grid, rs, cs, 7.5) + 0.3)
        ax = fig.subplots()
        cmap = LinearSegmentedColormap.from_list("pp", ["#fdae61", "#ffffbf", "#2c7bb6"])
        cmap.set_bad(NODATA_COLOUR)
        im = ax.imshow(np.ma.masked_invalid(p[rs, cs]), origin="lower",
                       extent=_extent(run.grid, rs, cs), cmap=cmap, vmin=0, vmax=1,
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, label="fraction of members\nwith permafrost", shrink=0.9)
        ax.set_aspect(1.0 / _cos_mid(run.grid, _extent(run.grid, rs, cs)))
        ax.set_title(f"permafrost probability {ens.get('probability_year')}", fontsize=11)
        body.append(figure_html(fig, "permafrost probability"))
        body.append(f"<p class='note'>From <code>{esc(ens['probability_file'])}</code> "
                    f"(variable <code>{esc(ens['probability_variable'])}</code>): "
                    f"{ens['uncertain_cells']} cells where the members disagree (0 &lt; p &lt; "
                    f"1), {ens['certain_permafrost_cells']} where all members have "
                    f"permafrost.</p>")
    for name, tab in ens.get("tables", {}).items():
        cols = list(tab)
        rows = [[fmt(tab[c][i], 4) if not isinstance(tab[c][i], str) else esc(tab[c][i])
                 for c in cols] for i in range(len(tab[cols[0]]) if cols else 0)]
        body.append(f"<h3>{esc(name)}</h3><div class='scroll'>"
                    + table([esc(c) for c in cols], rows) + "</div>")
    return Section("ensemble", "Ensemble spread", "".join(body))


# ---- spin-up and provenance ----------------------------------------------------------------------

def _spinup_section(spin) -> Section:
    if spin is None:
        return Section("spinup", "Spin-up", absent("No <code>spinup_report.json</code> in the "
                                                   "run directory."), False)
    cycles = spin.get("cycles", [])
    body = []
    c = [x["cycle"] for x in cycles if x.get("max_change") is not None]
    if c:
        fig = new_figure(11, 3.4)
        ax = fig.subplots()
        ax.semilogy(c, [x["max_change"] for x in cycles if x.get("max_change") is not None],
                    "o-", ms=4, color="#d7191c", label="largest change of a cell")
        ax.semilogy(c, [x["mean_change"] for x in cycles if x.get("max_change") is not None],
                    "o-", ms=4, color="#2c7bb6", label="mean change")
        if spin.get("tolerance"):
            ax.axhline(spin["tolerance"], color="#555", ls="--", label="tolerance")
        ax.set_xlabel("spin-up cycle")
        ax.set_ylabel("change of the cycle-mean soil temperature [K]")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
        body.append(figure_html(fig, "spin-up convergence"))
    last = cycles[-1] if cycles else {}
    body.append(kv_table([("cycles run", fmt(len(cycles))),
                          ("tolerance [K]", fmt(spin.get("tolerance"))),
                          ("largest change in the last cycle [K]", fmt(last.get("max_change"))),
                          ("cells not converged", fmt(len(spin.get("unconverged_cells", []))))]))
    return Section("spinup", "Spin-up", "".join(body))


def _provenance(run: RunData, inputs) -> dict:
    digests = {}
    for y in run.years:
        d = run.annual_attrs(y).get("config_digest")
        digests.setdefault(str(d), []).append(y)
    cfg = run.config_dict or {}
    forcing = cfg.get("forcing", {})
    static = {k: v for k, v in (cfg.get("static", {}) or {}).items() if v}
    products = sorted((run.run_dir / "products").glob("*")) if (run.run_dir / "products").is_dir() \
        else []
    return {
        "run_dir": str(run.run_dir.resolve()),
        "configuration_source": run.config_source or None,
        "configuration": run.config_dict,
        "product_attributes": {k: v for k, v in run.product_attrs.items()
                               if k not in ("configuration", "provenance_json")},
        "annual_config_digests": digests,
        "digests_consistent": len(digests) == 1 and (
            not run.product_attrs.get("config_digest")
            or str(run.product_attrs.get("config_digest")) in digests),
        "forcing": forcing,
        "static_inputs": static,
        "inputs": [{"role": r, **f} for r, f in inputs],
        "products": [p.name for p in products if p.is_file()],
        "report": {"noahtibet_version": __version__,
                   "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def _provenance_section(prov) -> Section:
    body = []
    run_rows = [("run directory", f"<code>{esc(prov['run_dir'])}</code>"),
                ("configuration read from", esc(prov["configuration_source"] or "-"))]
    for k, v in prov["product_attributes"].items():
        run_rows.append((f"product attribute {k}", esc(v)))
    dig = prov["annual_config_digests"]
    run_rows.append(("configuration digest of the annual files",
                     "; ".join(f"<code>{esc(d)}</code>: {len(ys)} years ({ys[0]}&ndash;{ys[-1]})"
                               for d, ys in dig.items())))
    run_rows.append(("digests consistent", "yes" if prov["digests_consistent"] else
                     "<b>NO: the files come from different configurations</b>"))
    run_rows.append(("report written by", f"noahtibet {esc(prov['report']['noahtibet_version'])}"
                                          f" at {esc(prov['report']['generated'])}"))
    body.append("<h3>Run</h3>" + kv_table(run_rows))
    irows = []
    for f in prov["inputs"]:
        detail = (f"{fmt(f.get('bytes'))} bytes, modified {esc(f.get('modified', '-'))}, "
                  f"sha256 <code>{esc(f.get('sha256', '-')[:16])}</code>&hellip;"
                  if "sha256" in f else (f"{fmt(f.get('files'))} files" if "files" in f
                                         else "missing"))
        if "rows" in f:
            detail += f", {fmt(f['rows'])} observations"
        irows.append((esc(f["role"]), f"<code>{esc(f['path'])}</code>", detail))
    if prov["forcing"]:
        irows.append(("forcing", esc(json.dumps(prov["forcing"], sort_keys=True)), ""))
    for k, v in prov["static_inputs"].items():
        irows.append((f"static: {esc(k)}", f"<code>{esc(v)}</code>", ""))
    body.append("<h3>Inputs</h3>" + (table(["input", "path", "details"], irows,
                                            left_cols=(0, 1, 2)) if irows else
                                      "<p class='note'>none recorded</p>"))
    if prov["configuration"]:
        rows = [(esc(k), f"<code>{esc(v)}</code>") for k, v in _flatten(prov["configuration"])]
        body.append("<h3>Configuration (every setting)</h3><div class='scroll'>"
                    + table(["setting", "value"], rows, left_cols=(0, 1)) + "</div>")
    else:
        body.append(absent("The run's configuration was not found (no netCDF product); pass "
                           "it with <code>--config</code>."))
    if prov["products"]:
        body.append(f"<h3>Products</h3><p class='note'>{len(prov['products'])} files in "
                    f"<code>products/</code>: {esc(', '.join(prov['products'][:6]))}"
                    f"{' &hellip;' if len(prov['products']) > 6 else ''}</p>")
    return Section("provenance", "Provenance", "".join(body))
