"""The calibrated ensemble: every member over the whole domain, ensemble mean and probability.

``run_ensemble(cfg, cal, ens, comm)`` reads the members (the best trials,
``ensemble_parameters.toml`` of the calibration) and runs each of them over the
whole simulated domain under the ensemble's protocol
(:func:`noahtibet.calibration.settings.ensemble_protocol`, ``[ensemble]
protocol``): by default the protocol of the calibration's trials, continued to
``run.end_year``, so that a member's reference-year map of the sensitive cells
is exactly the map its trial was ranked by; ``protocol = "full"`` runs the
product's protocol (cold start, ``spinup.cycles`` cycles, ``run.start_year ..
run.end_year``) instead.  The protocol is logged and written into every output.

The columns are (cell, member) pairs; each rank owns a contiguous block of
**cells with all their members** (:func:`noahtibet.parallel.partition` over
cells), reads each cell's forcing once per month for all members, reduces over
members locally in a fixed order, and writes and reads its own restarts
(:class:`noahtibet.calibration.restarts.RestartSet`): memory per rank is bounded
by its own columns and the results do not depend on the number of ranks, also
across a resume on another number of ranks.

What is averaged (per cell, year and layer): the members' annual minimum,
maximum and mean soil temperature, and the previous year's maximum.  The
ensemble-mean class is :func:`noahtibet.classify.classify` of the mean minimum,
mean maximum and mean previous-year maximum.  This is the mean of the members'
annual extremes, not the extremes of a member-mean temperature series (the
kernel accumulates extremes per column; a per-step member mean would need every
step recorded); the mean of maxima is >= the maximum of the mean series, so the
ensemble-mean class is, if anything, slightly less often permafrost than the
class of a per-step mean.

Beside it, per cell and year:

* ``permafrost_probability``: the fraction of members whose own class is permafrost;
* ``permafrost_margin_mean`` / ``permafrost_margin_spread``: mean and standard
  deviation (over members, ddof 0) of the member's permafrost margin
  ``min over layers of max(Tmax this year, Tmax previous year) - 273.15 K``
  (<= 0 means permafrost): how far, in kelvin, the members are from the
  permafrost threshold and how much they disagree.

Outputs in ``ens.directory``: ``annual/ensemble_YYYY.nc`` (per cell: the mean
tmin / tmax / tmean per layer and every member's class; the grids of the
ensemble-mean class, probability, margin mean and spread),
``products/noahtibet_ensemble_mean_YYYY.tif`` (the ensemble-mean classes from
``run.product_start_year``, Cloud-Optimized GeoTIFF in Albers via
:func:`noahtibet.products.write_class_geotiff`),
``products/noahtibet_ensemble.nc`` (all years' ensemble-mean classes with the
probability, margin mean and spread as extra fields), ``member_kappa.csv`` (for
the default run, each member and the ensemble mean: kappa on the sensitive cells
and over the whole domain at the reference year, beside each member's
calibration kappa) and ``ensemble_summary.json``.  Restart points after every
spin-up cycle and year (``restart/``, the last two kept) allow ``resume``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..classify import NODATA, PERMAFROST, classify
from ..errors import ConfigError
from ..parallel import SerialComm, abort_on_error, gather_columns, partition
from ..simulation import build_model, config_digest, physics_options
from . import settings as settings_mod
from .agreement import map_agreement
from .common import atomic_output, on_root, write_json
from .engine import CellBlock, build_pairs, run_spinup, run_year, start_pairs
from .optimizer import protocol_keys, read_ensemble_file
from .restarts import RestartSet, read_restart_rows
from .space import load_space
from .trials import (default_restart, default_run_location, read_annual_classes,
                     read_sensitive_columns)

log = logging.getLogger("noahtibet")

T0 = 273.15


class EnsembleInterrupted(RuntimeError):
    """Raised by the test hook ``stop_after_year`` once that year's restart is written."""


@dataclass
class EnsembleResult:
    directory: Path
    members: list = field(default_factory=list)
    protocol: dict = field(default_factory=dict)
    years: list = field(default_factory=list)
    agreement: list = field(default_factory=list)   # rows of member_kappa.csv
    column_years: int = 0
    seconds: float = 0.0


def member_margin(tmax: np.ndarray, prev_tmax: np.ndarray | None) -> np.ndarray:
    """Permafrost margin [K]: min over layers of max(tmax, previous tmax) - 273.15."""
    m = tmax if prev_tmax is None else np.maximum(tmax, prev_tmax)
    return m.min(axis=-1) - T0


def reduce_members(tmin, tmax, tsum, count, prev_tmax):
    """Per-cell ensemble statistics from (ncell, M, nlay) member diagnostics."""
    tmean = tsum / np.maximum(count, 1)[..., None]
    cls = classify(tmin, tmax, prev_tmax)                       # (ncell, M)
    margin = member_margin(tmax, prev_tmax)                     # (ncell, M)
    mean_tmin, mean_tmax = tmin.mean(axis=1), tmax.mean(axis=1)
    mean_prev = None if prev_tmax is None else prev_tmax.mean(axis=1)
    return {
        "member_class": cls,
        "tmin": mean_tmin, "tmax": mean_tmax, "tmean": tmean.mean(axis=1),
        "ensemble_class": classify(mean_tmin, mean_tmax, mean_prev),
        "probability": (cls == PERMAFROST).mean(axis=1),
        "margin_mean": margin.mean(axis=1), "margin_spread": margin.std(axis=1),
    }


def _members_digest(members: list) -> str:
    d = [m["values"] for m in members]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _reference(cfg, cal, model):
    """The reference map on the grid, or None (rank 0; never starts the demo truth run)."""
    from .trials import reference_classes

    path = cal.reference_map
    if not path and cfg.domain.kind == "demo":
        from ..demo_truth import REFERENCE_MAP
        p = Path(cfg.output.directory) / "truth" / REFERENCE_MAP
        path = str(p) if p.exists() else ""
    if not path:
        return None
    return reference_classes(path, model.grid, cal.reference_mapping)


def read_members(cal, ens, members: list | None = None):
    """(members, space): the given list (validated) or the ensemble file's best ``members``.

    With ``ensemble.protocol = "calibration"`` the file's calibration protocol must
    be the configuration's (the ensemble repeats it).
    """
    if members is not None:
        space = load_space(cal.parameter_space or None, check=False)
        if cal.parameters:
            space = space.subset(cal.parameters)
        return [{"member": i + 1, "trial": m.get("trial"), "kappa": m.get("kappa"),
                 "values": space.check_values(m["values"], where="members")}
                for i, m in enumerate(members)], space
    ms, space, info = read_ensemble_file(ens.parameter_file)
    if ens.protocol == "calibration":
        for key, value in protocol_keys(cal).items():
            if key in info and info[key] != value:
                raise ConfigError(f"was calibrated with {key} = {info[key]!r}, the "
                                  f"configuration has {value!r}; the ensemble repeats the "
                                  "calibration's protocol (or set ensemble.protocol = "
                                  "\"full\")", path=ens.parameter_file, field=key,
                                  value=info[key])
    if len(ms) < ens.members:
        log.warning("%s holds %d members, fewer than ensemble.members = %d",
                    ens.parameter_file, len(ms), ens.members)
    return ms[:ens.members], space


def run_ensemble(cfg, cal, ens, comm=None, *, resume: bool = False, model=None,
                 members: list | None = None,
                 stop_after_year: int | None = None) -> EnsembleResult:
    """Run the ensemble (see the module documentation).  Collective over ``comm``.

    ``stop_after_year`` is a test hook: :class:`EnsembleInterrupted` is raised once
    the restart of that year is written, as a kill would stop the run.
    """
    comm = comm or SerialComm()
    t0 = time.perf_counter()
    with abort_on_error(comm):
        out = Path(ens.directory)
        model = model or build_model(cfg)
        protocol = settings_mod.ensemble_protocol(cfg, cal, ens)
        mlist, space = on_root(comm, lambda: read_members(cal, ens, members))
        M = len(mlist)
        result = EnsembleResult(out, members=mlist, protocol=protocol.as_dict())
        # what the restarts depend on (not the last year: a run can be extended)
        digest = {"config": config_digest(cfg), "members": _members_digest(mlist),
                  "space": space.digest(),
                  "protocol": {k: v for k, v in protocol.as_dict().items()
                               if k not in ("last_year", "description")}}
        digest_text = json.dumps(digest, sort_keys=True)
        ncell = model.ncol
        my_cells = partition(ncell, comm.size, comm.rank)
        lo, hi = (int(my_cells[0]), int(my_cells[-1]) + 1) if my_cells.size else (0, 0)
        nloc = my_cells.size
        cache = cfg.forcing.cache_spinup and protocol.cycles > 1
        block = CellBlock(cfg, model, my_cells,
                          cache_years=protocol.spinup_years if cache else ())
        set_index = np.tile(np.arange(M), nloc)
        cell_pos = np.repeat(np.arange(nloc), M)
        pair = my_cells[cell_pos] * M + set_index
        labels = [f"member {m['member']} (trial {m['trial']})" for m in mlist]
        pc = build_pairs(block, space, [m["values"] for m in mlist], pair, set_index, cell_pos,
                         labels)
        options = physics_options(cfg).as_array()
        dt = float(cfg.physics.timestep)
        restarts = RestartSet(out / "restart", comm, M, digest_text)
        reference = on_root(comm, lambda: _reference(cfg, cal, model))
        if comm.rank == 0:
            log.info("ensemble: %d members x %d cells = %d columns on %d rank(s); protocol %s",
                     M, ncell, M * ncell, comm.size, protocol.describe())

        # ---- start: a restart point of this ensemble, or the protocol's start --------------
        manifest = restarts.latest() if resume else None
        start = {"stage": "start"}
        if manifest is not None:
            if comm.rank == 0:
                log.info("resuming the ensemble from %s", restarts.directory / manifest["name"])
            state, prev = restarts.read(manifest, lo, hi)
            if nloc:
                pc.state, pc.prev_tmax, pc.cold = state, prev, False
            start = manifest["info"]
        elif protocol.start == "cold":
            start_pairs(pc, protocol, cfg.spinup.initial_moisture_fraction)
        else:
            path = on_root(comm, lambda: default_restart(default_run_location(cfg, cal),
                                                           protocol))
            state, prev = read_restart_rows(path, slice(lo, hi))
            start_pairs(pc, protocol, 0.0, state, prev)

        def save_restart(name, info):
            restarts.write(name, lo, hi, pc.state, pc.prev_tmax, info)

        # ---- spin-up -----------------------------------------------------------------------
        first_cycle = 1
        if start["stage"] == "spinup":
            first_cycle = int(start["cycle"]) + 1
        elif start["stage"] == "transient":
            first_cycle = protocol.cycles + 1

        def after_cycle(cycle):
            save_restart(f"spinup_cycle_{cycle:04d}", {"stage": "spinup", "cycle": cycle})
            if comm.rank == 0:
                log.info("ensemble spin-up cycle %d/%d", cycle, protocol.cycles)
        column_years = run_spinup(block, pc, protocol, dt, options, first_cycle,
                                  on_failure="raise", after_cycle=after_cycle)
        block.forcing.clear_cache()     # the transient run reads each month once

        # ---- transient ---------------------------------------------------------------------
        first_year = int(start["year"]) + 1 if start["stage"] == "transient" \
            else protocol.first_year
        for year in range(first_year, protocol.last_year + 1):
            ty = time.perf_counter()
            diag = run_year(block, pc, year, dt, options, on_failure="raise")
            column_years += pc.n
            shape = (nloc, M, diag.tmax.shape[1])
            red = reduce_members(diag.tmin.reshape(shape), diag.tmax.reshape(shape),
                                 diag.tsum.reshape(shape), diag.count.reshape(nloc, M),
                                 None if pc.prev_tmax is None else pc.prev_tmax.reshape(shape))
            gathered = {k: gather_columns(comm, red[k], ncell)
                        for k in ("tmin", "tmax", "tmean", "ensemble_class", "probability",
                                  "margin_mean", "margin_spread", "member_class")}
            pc.prev_tmax = diag.tmax.copy()
            if comm.rank == 0:
                _write_year(out, cfg, model, year, gathered, digest_text, mlist, protocol)
            save_restart(f"transient_{year:04d}", {"stage": "transient", "year": year})
            if comm.rank == 0:
                log.info("ensemble year %d done (%.1f s)", year, time.perf_counter() - ty)
            if stop_after_year == year:
                raise EnsembleInterrupted(f"test hook: stopped after {year}")
        result.column_years = comm.allreduce(column_years, op="sum")
        result.seconds = time.perf_counter() - t0
        if comm.rank == 0:
            _finish(out, cfg, cal, model, mlist, result, reference, protocol, digest_text)
        comm.barrier()
    return result


def _year_grids(model, year, gathered):
    mask = model.static_nodata | model.lake_mask(year)
    cls = np.full(model.grid.shape, NODATA, dtype=np.uint8)
    cls[model.simulated.active] = gathered["ensemble_class"]
    cls[mask] = NODATA
    grids = {"ensemble_class": cls}
    for k in ("probability", "margin_mean", "margin_spread"):
        g = np.full(model.grid.shape, np.nan)
        g[model.simulated.active] = gathered[k]
        g[mask] = np.nan
        grids[k] = g
    return grids


def _provenance(cfg, mlist, digest_text, protocol):
    return {"configuration": json.dumps(cfg.to_dict(), sort_keys=True),
            "parameter_set": json.dumps([{"member": m["member"], "trial": m["trial"],
                                          "values": m["values"]} for m in mlist], sort_keys=True),
            "ensemble": f"mean of {len(mlist)} calibrated members (mean annual extremes, "
                        "then classified)",
            "ensemble_protocol": protocol.describe(),
            "ensemble_digest": digest_text}


def _write_year(out: Path, cfg, model, year, gathered, digest_text, mlist, protocol) -> None:
    import netCDF4

    grids = _year_grids(model, year, gathered)
    rows, cols = model.simulated.cell_rows_cols
    with atomic_output(out / "annual" / f"ensemble_{year:04d}.nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("cell", rows.size)
            nc.createDimension("layer", gathered["tmin"].shape[1])
            nc.createDimension("lat", model.grid.nlat)
            nc.createDimension("lon", model.grid.nlon)
            for name, text in (("tmin", "minimum"), ("tmax", "maximum"), ("tmean", "mean")):
                v = nc.createVariable(name, "f8", ("cell", "layer"))
                v[:] = gathered[name]
                v.units = "K"
                v.long_name = f"ensemble mean of the members' annual {text} soil temperature"
            nc.createDimension("member", gathered["member_class"].shape[1])
            v = nc.createVariable("member_class", "u1", ("member", "cell"))
            v[:] = gathered["member_class"].T
            v.long_name = "class of each member (1 permafrost, 2 seasonally frozen, 3 non-frozen)"
            nc.createVariable("cell_row", "i4", ("cell",))[:] = rows
            nc.createVariable("cell_col", "i4", ("cell",))[:] = cols
            v = nc.createVariable("frozen_ground_class", "u1", ("lat", "lon"))
            v[:] = grids["ensemble_class"]
            v.long_name = "class of the ensemble-mean annual extremes (255 no data)"
            for k, units, text in (
                    ("probability", "1", "fraction of members classifying permafrost"),
                    ("margin_mean", "K", "member mean of the permafrost margin"),
                    ("margin_spread", "K", "member standard deviation of the permafrost margin")):
                v = nc.createVariable(f"permafrost_{k}" if k != "probability" else
                                      "permafrost_probability", "f8", ("lat", "lon"),
                                      fill_value=np.nan)
                v[:] = grids[k]
                v.units, v.long_name = units, text
            nc.year = year
            nc.members = len(mlist)
            nc.ensemble_protocol = protocol.describe()
            nc.ensemble_digest = digest_text
    if cfg.output.geotiff and year >= cfg.run.product_start_year:
        from ..products import write_class_geotiff
        kwargs = {"cell_size_m": cfg.output.cell_size_m} if cfg.output.cell_size_m > 0 else {}
        write_class_geotiff(grids["ensemble_class"], model.grid, year,
                            out / "products" / f"noahtibet_ensemble_mean_{year}.tif",
                            provenance=_provenance(cfg, mlist, digest_text, protocol),
                            **kwargs)


def read_year(out: Path, year: int) -> dict:
    """The grids of one ensemble year (class, probability, margin mean and spread)."""
    import netCDF4

    with netCDF4.Dataset(Path(out) / "annual" / f"ensemble_{year:04d}.nc") as nc:
        nc.set_auto_mask(False)
        return {"ensemble_class": np.array(nc["frozen_ground_class"][:]),
                "probability": np.array(nc["permafrost_probability"][:]),
                "margin_mean": np.array(nc["permafrost_margin_mean"][:]),
                "margin_spread": np.array(nc["permafrost_margin_spread"][:]),
                "tmin": np.array(nc["tmin"][:]), "tmax": np.array(nc["tmax"][:]),
                "tmean": np.array(nc["tmean"][:]), "member_class": np.array(nc["member_class"][:])}


def agreement_rows(model, reference, year: int, g: dict, mlist: list, sensitive=None,
                   default_classes=None) -> list[dict]:
    """Kappa etc. of the default run, each member and the ensemble mean at ``year``:
    on the sensitive cells (column indices, when given) and over the whole domain."""
    rows_, cols_ = model.simulated.cell_rows_cols
    nodata = model.static_nodata | model.lake_mask(year)
    cells = None
    if sensitive is not None:
        cells = np.zeros(model.grid.shape, bool)
        cells[rows_[sensitive], cols_[sensitive]] = True

    def row(name, trial, calibration_kappa, grid):
        d = map_agreement(grid, reference)
        out = {"member": name, "trial": trial, "calibration_kappa_sensitive_cells":
               calibration_kappa, f"kappa_sensitive_cells_{year}":
               map_agreement(grid, reference, cells)["kappa"] if cells is not None else None}
        out.update({f"kappa_domain_{year}": d["kappa"],
                    f"overall_agreement_domain_{year}": d["overall_agreement"],
                    "quantity_disagreement": d["quantity_disagreement"],
                    "allocation_disagreement": d["allocation_disagreement"],
                    "n_cells": d["n_cells"]})
        return out

    out = []
    if default_classes is not None:
        out.append(row("default", "", None, default_classes))
    for i, m in enumerate(mlist):
        grid = np.full(model.grid.shape, NODATA, dtype=np.uint8)
        grid[rows_, cols_] = g["member_class"][i]
        grid[nodata] = NODATA
        out.append(row(str(m["member"]), m["trial"], m["kappa"], grid))
    out.append(row("ensemble_mean", "", None, g["ensemble_class"]))
    return out


def _finish(out, cfg, cal, model, mlist, result, reference, protocol, digest_text) -> None:
    """Netcdf product, agreement table and summary from the annual files (rank 0)."""
    years = [y for y in range(max(cfg.run.product_start_year, protocol.first_year),
                              protocol.last_year + 1)
             if (out / "annual" / f"ensemble_{y:04d}.nc").exists()]
    result.years = years
    if cfg.output.netcdf and years:
        from ..products import write_class_netcdf
        stack = {k: [] for k in ("ensemble_class", "probability", "margin_mean", "margin_spread")}
        for y in years:
            g = read_year(out, y)
            for k in stack:
                stack[k].append(g[k])
        write_class_netcdf(
            np.array(stack["ensemble_class"]), years, model.grid,
            out / "products" / "noahtibet_ensemble.nc",
            provenance=_provenance(cfg, mlist, digest_text, protocol),
            extra_fields={
                "permafrost_probability": (np.array(stack["probability"]), {
                    "units": "1", "long_name": "fraction of ensemble members classifying "
                                               "permafrost"}),
                "permafrost_margin_mean": (np.array(stack["margin_mean"]), {
                    "units": "K", "long_name": "member mean of min over layers of max(Tmax, "
                                               "previous Tmax) - 273.15 K (<= 0: permafrost)"}),
                "permafrost_margin_spread": (np.array(stack["margin_spread"]), {
                    "units": "K", "long_name": "member standard deviation of the permafrost "
                                               "margin"}),
            })
    ref_year = cal.reference_year
    if reference is not None and (out / "annual" / f"ensemble_{ref_year:04d}.nc").exists():
        default = default_run_location(cfg, cal)
        default_classes = read_annual_classes(default, ref_year) \
            if (default.annual_dir / f"annual_{ref_year:04d}.nc").exists() else None
        result.agreement = agreement_rows(model, reference, ref_year, read_year(out, ref_year),
                                          mlist, read_sensitive_columns(cal.directory),
                                          default_classes)
        with atomic_output(out / "member_kappa.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(result.agreement[0]))
            w.writeheader()
            w.writerows(result.agreement)
    write_json(out / "ensemble_summary.json", {
        "members": mlist, "years": years, "protocol": protocol.as_dict(),
        "agreement": result.agreement, "reference_year": ref_year,
        "column_years": result.column_years, "seconds": result.seconds,
        "noahtibet_version": __version__,
        "averaging": "per cell, year and layer: mean over members of the annual minimum, "
                     "maximum and mean soil temperature and of the previous year's maximum; "
                     "the ensemble class is classify(mean tmin, mean tmax, mean previous tmax)"})
    log.info("ensemble done: %d members, years %s, products in %s", len(mlist),
             f"{years[0]}-{years[-1]}" if years else "-", out / "products")
    for r in result.agreement:
        log.info("kappa %d of %-13s sensitive cells %s, domain %.4f", ref_year, r["member"],
                 _fmt(r[f"kappa_sensitive_cells_{ref_year}"]), r[f"kappa_domain_{ref_year}"])


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"
