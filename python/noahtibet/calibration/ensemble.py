"""The calibrated ensemble: every member over the whole domain, ensemble mean and probability.

``run_ensemble(cfg, cal, ens, comm)`` reads the members (the best trials,
``ensemble_parameters.toml`` of the calibration) and runs each of them over the
whole simulated domain with the run configuration's own protocol: cold start,
``spinup.cycles`` spin-up cycles, transient years ``run.start_year ..
run.end_year`` (1979-2018 in the product, products from 1980).  The columns are
(cell, member) pairs; each rank owns a contiguous block of **cells with all
their members** (:func:`noahtibet.parallel.partition` over cells), reads each
cell's forcing once per month for all members, and reduces over members
locally in a fixed order, so the results do not depend on the number of ranks.

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
probability, margin mean and spread as extra fields), ``member_kappa.csv`` (each
member's calibration kappa and its kappa over the whole domain at the reference
year) and ``ensemble_summary.json``.  Restarts after every spin-up cycle and year
(``restart/``) allow ``resume``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..classify import NODATA, PERMAFROST, classify
from ..parallel import SerialComm, abort_on_error, gather_columns, partition
from ..simulation import (_atomic_target, build_model, config_digest, latest_restart,
                          physics_options, read_restart, write_restart)
from ..kernel import ColumnState
from .agreement import REFERENCE_NODATA, confusion, map_agreement, scores
from .engine import CellBlock, build_pairs, cold_start, run_year
from .optimizer import _share, _write_json, read_ensemble_file
from .space import load_space

log = logging.getLogger("noahtibet")

T0 = 273.15


@dataclass
class EnsembleResult:
    directory: Path
    members: list = field(default_factory=list)
    years: list = field(default_factory=list)
    member_kappa: list = field(default_factory=list)
    ensemble_kappa: dict = field(default_factory=dict)
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


def run_ensemble(cfg, cal, ens, comm=None, *, resume: bool = False, model=None,
                 members: list | None = None) -> EnsembleResult:
    """Run the ensemble (see the module documentation).  Collective over ``comm``."""
    comm = comm or SerialComm()
    t0 = time.perf_counter()
    with abort_on_error(comm):
        out = Path(ens.directory)
        model = model or build_model(cfg)

        def read_members():
            if members is not None:
                space = load_space(cal.parameter_space or None, check=False)
                if cal.parameters:
                    space = space.subset(cal.parameters)
                ms = [{"member": i + 1, "trial": m.get("trial"), "kappa": m.get("kappa"),
                       "values": space.check_values(m["values"], where="members")}
                      for i, m in enumerate(members)]
                return ms, space
            ms, space = read_ensemble_file(ens.parameter_file)
            return ms[:ens.members], space

        mlist, space = _share(comm, read_members)
        M = len(mlist)
        result = EnsembleResult(out, members=mlist)
        digest = {"config": config_digest(cfg), "members": _members_digest(mlist),
                  "space": space.digest()}
        digest_text = json.dumps(digest, sort_keys=True)
        ncell = model.ncol
        my_cells = partition(ncell, comm.size, comm.rank)
        sp = cfg.spinup
        spin_years = list(range(sp.start_year, sp.end_year + 1))
        block = CellBlock(cfg, model, my_cells,
                          cache_years=spin_years if cfg.forcing.cache_spinup else ())
        nloc = my_cells.size
        set_index = np.tile(np.arange(M), nloc)
        cell_pos = np.repeat(np.arange(nloc), M)
        pair = my_cells[cell_pos] * M + set_index
        labels = [f"member {m['member']} (trial {m['trial']})" for m in mlist]
        pc = build_pairs(block, space, [m["values"] for m in mlist], pair, set_index, cell_pos,
                         labels)
        cold_start(pc, sp.initial_moisture_fraction)
        options = physics_options(cfg).as_array()
        dt = float(cfg.physics.timestep)
        restart_dir = out / "restart"
        reference = _share(comm, lambda: _reference(cfg, cal, model))

        # ---- resume ------------------------------------------------------------------------
        start = {"stage": "cold"}
        if resume:
            def read_latest():
                path = latest_restart(restart_dir)
                if path is None:
                    return None
                state, prev, info, _ = read_restart(path)
                if info.get("digest") != digest_text:
                    raise RuntimeError(f"{path}: ensemble restart of a different configuration "
                                       "or member list; refusing to resume")
                log.info("resuming the ensemble from %s", path)
                return state, prev, info
            payload = _share(comm, read_latest)
            if payload is not None:
                state, prev, info = payload
                idx = np.arange(my_cells[0] * M, (my_cells[-1] + 1) * M) if nloc else \
                    np.zeros(0, int)
                pc.state = ColumnState(state.stc[idx].copy(), state.smc[idx].copy(),
                                       state.sh2o[idx].copy(), state.surface[idx].copy())
                pc.prev_tmax = None if prev is None else prev[idx].copy()
                pc.cold = False
                start = info
        if comm.rank == 0:
            log.info("ensemble: %d members x %d cells = %d columns on %d rank(s)", M, ncell,
                     M * ncell, comm.size)

        def save_restart(name, info):
            st = pc.state
            parts = [gather_columns(comm, a, ncell * M) for a in (st.stc, st.smc, st.sh2o,
                                                                  st.surface)]
            prev = gather_columns(comm, pc.prev_tmax, ncell * M) \
                if pc.prev_tmax is not None else None
            if comm.rank == 0:
                write_restart(restart_dir / name, ColumnState(*parts), prev,
                              {**info, "digest": digest_text})

        column_years = 0
        # ---- spin-up -----------------------------------------------------------------------
        first_cycle = int(start["cycle"]) + 1 if start.get("stage") == "spinup" else 1
        if start.get("stage") == "transient":
            first_cycle = sp.cycles + 1
        for cycle in range(first_cycle, sp.cycles + 1):
            for year in spin_years:
                diag = run_year(block, pc, year, dt, options, on_failure="raise")
                column_years += pc.n
            pc.prev_tmax = diag.tmax.copy()
            save_restart(f"spinup_cycle_{cycle:04d}.nc", {"stage": "spinup", "cycle": cycle})
            if comm.rank == 0:
                log.info("ensemble spin-up cycle %d/%d", cycle, sp.cycles)

        # ---- transient ---------------------------------------------------------------------
        first_year = int(start["year"]) + 1 if start.get("stage") == "transient" \
            else cfg.run.start_year
        ref_year = cal.reference_year
        for year in range(first_year, cfg.run.end_year + 1):
            ty = time.perf_counter()
            diag = run_year(block, pc, year, dt, options, on_failure="raise")
            column_years += pc.n
            nlay = diag.tmax.shape[1] if pc.n else 0
            shape = (nloc, M, nlay)
            red = reduce_members(diag.tmin.reshape(shape), diag.tmax.reshape(shape),
                                 diag.tsum.reshape(shape), diag.count.reshape(nloc, M),
                                 None if pc.prev_tmax is None else pc.prev_tmax.reshape(shape))
            member_cm = np.zeros((M, 2, 2), dtype=np.int64)
            if reference is not None and year == ref_year and nloc:
                rows, cols = model.simulated.cell_rows_cols
                r, c = rows[my_cells], cols[my_cells]
                ok = (reference[r, c] != REFERENCE_NODATA) & ~model.lake_mask(year)[r, c]
                rp = reference[r, c] == PERMAFROST
                for m in range(M):
                    member_cm[m] = confusion(rp, red["member_class"][:, m] == PERMAFROST, ok)
            member_cm = comm.allreduce(member_cm, op="sum")
            gathered = {k: gather_columns(comm, red[k], ncell)
                        for k in ("tmin", "tmax", "tmean", "ensemble_class", "probability",
                                  "margin_mean", "margin_spread", "member_class")}
            pc.prev_tmax = diag.tmax.copy()
            if comm.rank == 0:
                _write_year(out, cfg, model, year, gathered, digest_text, mlist)
                if year == ref_year and reference is not None:
                    _write_json(out / f"member_confusion_{year}.json",
                                {"digest": digest_text, "confusion": member_cm.tolist()})
            save_restart(f"transient_{year:04d}.nc", {"stage": "transient", "year": year})
            if comm.rank == 0:
                log.info("ensemble year %d done (%.1f s)", year, time.perf_counter() - ty)
        result.column_years = comm.allreduce(column_years, op="sum")
        result.seconds = time.perf_counter() - t0
        if comm.rank == 0:
            _finish(out, cfg, cal, model, mlist, result, reference, digest)
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


def _provenance(cfg, mlist, digest_text):
    return {"configuration": json.dumps(cfg.to_dict(), sort_keys=True),
            "parameter_set": json.dumps([{"member": m["member"], "trial": m["trial"],
                                          "values": m["values"]} for m in mlist], sort_keys=True),
            "ensemble": f"mean of {len(mlist)} calibrated members (mean annual extremes, "
                        "then classified)",
            "ensemble_digest": digest_text}


def _write_year(out: Path, cfg, model, year, gathered, digest_text, mlist) -> None:
    import netCDF4

    grids = _year_grids(model, year, gathered)
    path = out / "annual" / f"ensemble_{year:04d}.nc"
    tmp = _atomic_target(path)
    rows, cols = model.simulated.cell_rows_cols
    try:
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
            nc.ensemble_digest = digest_text
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    if cfg.output.geotiff and year >= cfg.run.product_start_year:
        from ..products import write_class_geotiff
        kwargs = {"cell_size_m": cfg.output.cell_size_m} if cfg.output.cell_size_m > 0 else {}
        write_class_geotiff(grids["ensemble_class"], model.grid, year,
                            out / "products" / f"noahtibet_ensemble_mean_{year}.tif",
                            provenance=_provenance(cfg, mlist, digest_text), **kwargs)


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


def _finish(out, cfg, cal, model, mlist, result, reference, digest) -> None:
    years = [y for y in range(cfg.run.product_start_year, cfg.run.end_year + 1)
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
            provenance=_provenance(cfg, mlist, json.dumps(digest, sort_keys=True)),
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
    cm_path = out / f"member_confusion_{ref_year}.json"
    if reference is not None and cm_path.exists():
        cms = json.loads(cm_path.read_text())["confusion"]
        result.member_kappa = [scores(np.array(cm)) for cm in cms]
    ens_scores = None
    if reference is not None and (out / "annual" / f"ensemble_{ref_year:04d}.nc").exists():
        g = read_year(out, ref_year)
        ens_scores = map_agreement(g["ensemble_class"], reference)
        result.ensemble_kappa = ens_scores
    path = out / "member_kappa.csv"
    tmp = _atomic_target(path)
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["member", "trial", "calibration_kappa_sensitive_cells",
                    f"kappa_domain_{ref_year}", f"overall_agreement_domain_{ref_year}",
                    "quantity_disagreement", "allocation_disagreement", "n_cells"])
        for i, m in enumerate(mlist):
            s = result.member_kappa[i] if result.member_kappa else {}
            w.writerow([m["member"], m["trial"], m["kappa"], s.get("kappa", ""),
                        s.get("overall_agreement", ""), s.get("quantity_disagreement", ""),
                        s.get("allocation_disagreement", ""), s.get("n_cells", "")])
        if ens_scores:
            w.writerow(["ensemble_mean", "", "", ens_scores["kappa"],
                        ens_scores["overall_agreement"], ens_scores["quantity_disagreement"],
                        ens_scores["allocation_disagreement"], ens_scores["n_cells"]])
    os.replace(tmp, path)
    _write_json(out / "ensemble_summary.json", {
        "members": mlist, "years": years, "member_kappa": result.member_kappa,
        "ensemble_mean_kappa": ens_scores, "reference_year": ref_year,
        "column_years": result.column_years, "seconds": result.seconds,
        "noahtibet_version": __version__,
        "averaging": "per cell, year and layer: mean over members of the annual minimum, "
                     "maximum and mean soil temperature and of the previous year's maximum; "
                     "the ensemble class is classify(mean tmin, mean tmax, mean previous tmax)"})
    log.info("ensemble done: %d members, years %s, products in %s", len(mlist),
             f"{years[0]}-{years[-1]}" if years else "-", out / "products")
    if ens_scores:
        log.info("ensemble-mean kappa over the domain in %d: %.4f", ref_year, ens_scores["kappa"])
