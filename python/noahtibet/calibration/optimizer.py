"""CaliMAP: map-based Bayesian calibration with hyperopt's TPE, batched over MPI ranks.

``calibrate(cfg, cal, comm)`` does, in ``cal.directory``:

1. the default run to the reference year and the sensitive cells
   (:mod:`noahtibet.calibration.trials`; ``sensitive_cells.csv`` / ``.json``);
2. batches of trials until ``cal.trials`` are done.  Rank 0 asks hyperopt's
   Tree-structured Parzen Estimator (Bergstra et al. 2011, "Algorithms for
   hyper-parameter optimization", NeurIPS) for ``batch_size`` candidates, one at
   a time through ``tpe.suggest`` with a seed drawn from one
   ``numpy.random.Generator`` (seeded by ``cal.seed``), exactly as
   ``hyperopt.fmin`` does.  Candidates already asked but not yet evaluated are
   in the history as pending trials, which TPE scores as infinitely bad, so a
   batch spreads out instead of repeating one point.  The batch is evaluated by
   all ranks in one kernel pass and the results are told back (loss = -kappa;
   a failed trial has no loss, which TPE also treats as infinitely bad).  Because the batch size does not depend on the
   number of ranks and kappa is bit-identical on any number of ranks, the same
   seed gives the same history on 1 or N ranks;
3. after every batch, ``trials.json`` (every trial, the generator state, the
   digests of the configuration and space) is written atomically, with the trial
   table ``trials.csv``.  ``resume=True`` restores both and continues exactly
   where the last complete batch left: a batch interrupted by a kill is asked
   again from the same generator state and gives the same candidates;
4. at the end: ranking (kappa descending, then trial number), the best
   ``members`` as ``ensemble_parameters.toml`` (with the settings of the trials'
   protocol, which the ensemble repeats), ``convergence.png`` (best kappa against
   the number of trials) and ``calibration_summary.json``.

The first batch also evaluates the default parameters under the trial protocol
(the "baseline", not told to TPE), so the improvement is measured against the
default run under exactly the trials' protocol.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError
from ..parallel import SerialComm, abort_on_error
from ..simulation import build_model, config_digest
from . import settings as settings_mod
from .common import atomic_output, on_root, write_json
from .space import (DEFAULT_SPACE, ParameterSpace, class_columns, load_space,
                    warn_inactive)
from .trials import (TrialEvaluator, check_space_on_cells, default_run, default_start_state,
                     read_annual_classes, reference_classes, reference_path, sensitive_cells,
                     write_sensitive)

log = logging.getLogger("noahtibet")

CHECKPOINT = "trials.json"
TRIAL_TABLE = "trials.csv"
ENSEMBLE_FILE = "ensemble_parameters.toml"
CONVERGENCE_PLOT = "convergence.png"
SUMMARY = "calibration_summary.json"
CHECKPOINT_VERSION = 1


class CalibrationInterrupted(RuntimeError):
    """Raised by the test hook ``stop_after_batches`` in the middle of a batch."""


@dataclass
class CalibrationResult:
    directory: Path
    trials: list = field(default_factory=list)
    sensitive: dict = field(default_factory=dict)
    baseline: dict | None = None
    ranking: list = field(default_factory=list)
    column_years: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# hyperopt ask / tell
# --------------------------------------------------------------------------------------------

def _domain(space: ParameterSpace):
    from hyperopt.base import Domain

    return Domain(lambda _: 0.0, space.hyperopt_space())


def _trials_from(records: list, pending: list, domain, names: list):
    """A fresh hyperopt Trials holding the evaluated trials and the pending candidates."""
    from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Trials

    trials = Trials()
    docs = []
    for rec, done in [(r, True) for r in records] + [(p, False) for p in pending]:
        tid = int(rec["tid"])
        misc = {"tid": tid, "cmd": domain.cmd, "workdir": domain.workdir,
                "idxs": {n: [tid] for n in names}, "vals": {n: [rec["values"][n]] for n in names}}
        if not done:
            result = {"status": "new"}
        elif rec["status"] == "ok":
            result = {"status": STATUS_OK, "loss": -float(rec["kappa"])}
        else:
            result = {"status": STATUS_FAIL}
        doc = trials.new_trial_docs([tid], [None], [result], [misc])[0]
        if done:
            doc["state"] = JOB_STATE_DONE
        docs.append(doc)
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials


def ask(space: ParameterSpace, records: list, rng: np.random.Generator, n: int,
        startup_trials: int) -> list:
    """``n`` new candidates from TPE (rank 0); advances ``rng`` by one draw per candidate."""
    import functools

    from hyperopt import tpe

    algo = functools.partial(tpe.suggest, n_startup_jobs=startup_trials, verbose=False)
    domain = _domain(space)
    names = space.names
    pending: list = []
    first = len(records)
    for j in range(n):
        trials = _trials_from(records, pending, domain, names)
        tid = first + j
        seed = int(rng.integers(2**31 - 1))
        docs = algo([tid], domain, trials, seed)
        vals = docs[0]["misc"]["vals"]
        values = {name: float(vals[name][0]) for name in names}
        pending.append({"tid": tid, "values": values})
    return pending


# --------------------------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------------------------

def run_digest(cfg, cal, space: ParameterSpace, sens=None) -> dict:
    """What must not change between a checkpoint and its resumption."""
    cells = "" if sens is None else hashlib.sha256(
        np.ascontiguousarray(sens.cells, dtype=np.int64).tobytes()
        + np.ascontiguousarray(sens.reference_permafrost, dtype=np.uint8).tobytes()
    ).hexdigest()[:16]
    return {
        "sensitive_cells": cells,
        "config": config_digest(cfg), "space": space.digest(), "seed": cal.seed,
        "batch_size": cal.batch_size, "startup_trials": cal.startup_trials,
        "protocol": cal.protocol, "spinup_cycles": cal.spinup_cycles,
        "continue_from_year": cal.continue_from_year,
        "reference_year": cal.reference_year, "buffer_cells": cal.buffer_cells,
        "reference_map": Path(cal.reference_map).name if cal.reference_map else "<demo truth>",
        "parameters": space.names,
    }


def save_checkpoint(path: Path, digest: dict, records: list, rng, batches: int,
                    baseline, sensitive: dict) -> None:
    import hyperopt

    write_json(path, {"version": CHECKPOINT_VERSION, "noahtibet_version": __version__,
                       "hyperopt_version": hyperopt.__version__,
                      "digest": digest, "batches": batches, "trials": records,
                      "rng_state": rng.bit_generator.state, "baseline": baseline,
                      "sensitive": sensitive})


def load_checkpoint(path: Path, digest: dict):
    data = json.loads(path.read_text())
    if data.get("version") != CHECKPOINT_VERSION:
        raise ConfigError("was written by an incompatible version", path=str(path),
                          field="version", value=data.get("version"))
    old = data["digest"]
    for key, value in digest.items():
        if old.get(key) != value:
            raise ConfigError(f"was written with a different {key} ({old.get(key)!r} != "
                              f"{value!r}); refusing to resume (use a new calibration "
                              "directory or start without --resume)", path=str(path),
                              field=key, value=value)
    import hyperopt

    if data.get("hyperopt_version") != hyperopt.__version__:
        log.warning("%s was written with hyperopt %s, this is %s: TPE may propose other "
                    "candidates than an uninterrupted run would have", path,
                    data.get("hyperopt_version"), hyperopt.__version__)
    rng = np.random.default_rng()
    rng.bit_generator.state = data["rng_state"]
    return data["trials"], rng, int(data["batches"]), data.get("baseline")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def ranking(records: list) -> list:
    """Successful trials ordered by kappa (descending), ties by trial number."""
    ok = [r for r in records if r["status"] == "ok" and math.isfinite(r["kappa"])]
    return sorted(ok, key=lambda r: (-r["kappa"], r["tid"]))


def write_trial_table(path: Path, records: list, names: list) -> None:
    ranks = {r["tid"]: i + 1 for i, r in enumerate(ranking(records))}
    best = -math.inf
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "batch", "rank", "status", "kappa", "best_kappa_so_far",
                    "overall_agreement", "quantity_disagreement", "allocation_disagreement",
                    "n_cells", "reference_permafrost", "simulated_permafrost"] + names
                   + ["message"])
        for r in records:
            if r["status"] == "ok" and math.isfinite(r["kappa"]):
                best = max(best, r["kappa"])
            w.writerow([r["tid"], r["batch"], ranks.get(r["tid"], ""), r["status"],
                        repr(r["kappa"]), repr(best) if math.isfinite(best) else "",
                        repr(r["overall_agreement"]), repr(r["quantity_disagreement"]),
                        repr(r["allocation_disagreement"]), r["n_cells"],
                        r["reference_permafrost"], r["simulated_permafrost"]]
                       + [repr(r["values"][n]) for n in names] + [r.get("message", "")])


def _toml_str(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_ensemble_file(path: Path, members: list, space: ParameterSpace, info: dict) -> None:
    """The ensemble's parameter sets as TOML (read back by :func:`read_ensemble_file`)."""
    lines = ["# noahtibet calibration ensemble: the best trials by kappa on the sensitive cells",
             f"# written by noahtibet {__version__}", ""]
    bundled = Path(space.path).resolve() == DEFAULT_SPACE.resolve()
    lines.append(f"parameter_space = {_toml_str('' if bundled else space.path)}"
                 + ("   # the bundled default space" if bundled else ""))
    lines.append(f"space_digest = {_toml_str(space.digest())}")
    lines.append("dimensions = [" + ", ".join(_toml_str(n) for n in space.names) + "]")
    for key, value in info.items():
        lines.append(f"{key} = {_toml_str(value) if isinstance(value, str) else repr(value)}"
                     if not (isinstance(value, float) and not math.isfinite(value))
                     else f"# {key} = {value}")
    for i, r in enumerate(members, start=1):
        lines += ["", "[[member]]", f"member = {i}", f"trial = {r['tid']}",
                  f"kappa = {r['kappa']!r}", f"overall_agreement = {r['overall_agreement']!r}",
                  "[member.values]"]
        lines += [f"{n} = {r['values'][n]!r}" for n in space.names]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def protocol_keys(cal) -> dict:
    """The calibration settings that define its trials' protocol (kept in the ensemble file)."""
    return {"protocol": cal.protocol, "spinup_cycles": cal.spinup_cycles,
            "continue_from_year": cal.continue_from_year}


def read_ensemble_file(path: str | Path, space: ParameterSpace | None = None):
    """(members, space, info): members = [{"member", "trial", "kappa", "values"}], validated;
    info = the file's top-level keys (protocol, reference year, ...)."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror}); run 'noahtibet calibrate' first",
                          path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", path=str(path)) from None
    if space is None:
        space = load_space(data.get("parameter_space") or None, check=False)
        if data.get("dimensions"):
            space = space.subset(data["dimensions"])
    if data.get("space_digest") not in (None, space.digest()):
        raise ConfigError("was written for a different parameter space", path=str(path),
                          field="space_digest", value=data.get("space_digest"))
    members = data.pop("member", [])
    if not members:
        raise ConfigError("holds no [[member]]", path=str(path), field="member")
    out = []
    for i, m in enumerate(members):
        values = space.check_values(m.get("values", {}), where=f"{path} member {i + 1}")
        out.append({"member": int(m.get("member", i + 1)), "trial": m.get("trial"),
                    "kappa": m.get("kappa"), "values": values})
    return out, space, data


def write_convergence_plot(path: Path, records: list, baseline: dict | None,
                           sensitive: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(1, len(records) + 1)
    k = np.array([r["kappa"] if r["status"] == "ok" else np.nan for r in records], float)
    best = np.fmax.accumulate(np.where(np.isfinite(k), k, -np.inf))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(x, k, ".", color="0.6", label="trial")
    ax.step(x, np.where(np.isfinite(best), best, np.nan), where="post", color="C0",
            label="best so far")
    if baseline and math.isfinite(baseline.get("kappa", math.nan)):
        ax.axhline(baseline["kappa"], color="C3", ls="--",
                   label=f"default parameters ({baseline['kappa']:.3f})")
    ax.set_xlabel("number of trials")
    ax.set_ylabel("Cohen's kappa on the sensitive cells")
    ax.set_title(f"CaliMAP convergence ({sensitive.get('sensitive_cells', '?')} sensitive cells, "
                 f"{sensitive.get('year', '')})")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# The calibration
# --------------------------------------------------------------------------------------------

def prepare_space(cfg, cal, model) -> ParameterSpace:
    """The calibrated space: the file, checked on the domain's classes, then the subset."""
    rows, cols = model.simulated.cell_rows_cols
    soil, veg, slope = set(), set(), set()
    for r, c in zip(rows, cols):
        spec = model.column_spec(int(r), int(c))
        soil.update(int(x) for x in np.asarray(spec.soil_class))
        veg.add(int(spec.vegetation_class))
        slope.add(int(spec.slope_class))
    classes = dict(soil_classes=sorted(soil), vegetation_classes=sorted(veg),
                   slope_classes=sorted(slope),
                   overrides=(cfg.parameters.column, cfg.parameters.layer),
                   nlay=len(spec.layer_thickness))
    space = load_space(cal.parameter_space or None, **classes)
    if cal.parameters:   # the others stay at their defaults: check that corner too
        space = space.subset(cal.parameters)
        lp, cp, cls = class_columns(*classes.values())
        space.check_constraints(lp, cp, cls, what="the domain's classes")
    warn_inactive(space, cfg.physics.surface_exchange)
    return space


def calibrate(cfg, cal, comm=None, *, members: int = 13, resume: bool = False, model=None,
              stop_after_batches: int | None = None) -> CalibrationResult:
    """Run (or resume) a calibration; see the module documentation.  Collective.

    ``members``: size of the ensemble written at the end (``ensemble.members``).
    ``stop_after_batches`` is a test hook: after that many batches of this call
    the next batch is evaluated and :class:`CalibrationInterrupted` raised before
    its results are saved, as a kill during the batch would.
    """
    comm = comm or SerialComm()
    t0 = time.perf_counter()
    with abort_on_error(comm):
        out = Path(cal.directory)
        model = model or build_model(cfg)
        if comm.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        space = on_root(comm, lambda: prepare_space(cfg, cal, model))
        ref_path = reference_path(cfg, cal, comm)
        sim = default_run(cfg, cal, comm, model)

        def select():
            ref = reference_classes(ref_path, model.grid, cal.reference_mapping)
            dcl = read_annual_classes(sim, cal.reference_year)
            sens = sensitive_cells(model, dcl, ref, cal.buffer_cells, cal.reference_year)
            sens.summary["reference_map"] = str(ref_path)
            write_sensitive(out, model, sens, ref, dcl)
            check_space_on_cells(space, cfg, model, sens.cells)
            log.info("sensitive cells: %d (%d where the default run's %d permafrost disagrees "
                     "with the reference map, buffer %d cells); default kappa %.4f on them, "
                     "%.4f on the %d valid cells", sens.n, sens.disagreeing, cal.reference_year,
                     cal.buffer_cells, sens.summary["default_kappa_sensitive"],
                     sens.summary["default_kappa_domain"], sens.summary["valid_cells"])
            return sens

        sens = on_root(comm, select)
        result = CalibrationResult(out, sensitive=sens.summary)
        if sens.n == 0:
            if comm.rank == 0:
                log.warning("no sensitive cells: the default run agrees with the reference "
                            "map everywhere; nothing to calibrate")
            return result
        start = None
        protocol = settings_mod.trial_protocol(cfg, cal)
        if comm.rank == 0:
            log.info("trial protocol %s", protocol.describe())
        if protocol.start != "cold":
            start = on_root(comm, lambda: default_start_state(sim, sens.cells, protocol))
        digest = run_digest(cfg, cal, space, sens)
        ckpt = out / CHECKPOINT

        def restore():
            if resume and ckpt.exists():
                records, rng, batches, baseline = load_checkpoint(ckpt, digest)
                log.info("resuming the calibration after %d trials (%d batches) from %s",
                         len(records), batches, ckpt)
                return records, rng, batches, baseline
            if ckpt.exists() and not resume:
                log.info("starting a new calibration (overwriting %s)", ckpt)
            return [], np.random.default_rng(cal.seed), 0, None

        records, rng, batches, baseline = on_root(comm, restore)
        evaluator = TrialEvaluator(cfg, cal, model, space, sens, comm, start)
        done_here = 0
        while len(records) < cal.trials:
            n = min(cal.batch_size, cal.trials - len(records))
            candidates = ask(space, records, rng, n, cal.startup_trials) \
                if comm.rank == 0 else None
            candidates = comm.bcast(candidates, root=0)
            sets = [c["values"] for c in candidates]
            labels = [f"trial {c['tid']}" for c in candidates]
            with_baseline = baseline is None
            if with_baseline:
                sets, labels = sets + [{}], labels + ["default parameters"]
            tb = time.perf_counter()
            results, _ = evaluator.evaluate(sets, labels)
            if stop_after_batches is not None and done_here >= stop_after_batches:
                raise CalibrationInterrupted(f"test hook: stopped during batch {batches + 1}")
            if with_baseline:
                baseline = results.pop()
            for c, r in zip(candidates, results):
                records.append({"tid": c["tid"], "batch": batches + 1, "values": c["values"],
                                **{k: r[k] for k in ("kappa", "overall_agreement",
                                                     "quantity_disagreement",
                                                     "allocation_disagreement", "n_cells",
                                                     "reference_permafrost",
                                                     "simulated_permafrost", "status",
                                                     "message", "confusion")}})
            batches += 1
            done_here += 1
            if comm.rank == 0:
                save_checkpoint(ckpt, digest, records, rng, batches, baseline, sens.summary)
                write_trial_table(out / TRIAL_TABLE, records, space.names)
                best = ranking(records)
                log.info("batch %d: %d trials in %.1f s; best kappa %.4f (trial %s), default "
                         "%.4f", batches, len(candidates), time.perf_counter() - tb,
                         best[0]["kappa"] if best else math.nan,
                         best[0]["tid"] if best else "-", baseline["kappa"])
        result.trials, result.baseline = records, baseline
        result.ranking = ranking(records)
        result.column_years = comm.allreduce(evaluator.column_years, op="sum")
        result.seconds = time.perf_counter() - t0
        if comm.rank == 0:
            finish(out, cal, space, records, baseline, sens.summary, result, members, protocol)
        comm.barrier()
    return result


def finish(out: Path, cal, space, records, baseline, sensitive, result, n_members,
           protocol) -> None:
    """Ranking, ensemble file, convergence plot and summary (rank 0)."""
    ranked = ranking(records)
    members = ranked[:n_members]
    write_trial_table(out / TRIAL_TABLE, records, space.names)
    write_ensemble_file(out / ENSEMBLE_FILE, members, space, {
        "reference_year": cal.reference_year, "sensitive_cells": sensitive["sensitive_cells"],
        "default_kappa": baseline["kappa"] if baseline else math.nan, "trials": len(records),
        **protocol_keys(cal)})
    write_convergence_plot(out / CONVERGENCE_PLOT, records, baseline, sensitive)
    summary = {
        "trials": len(records), "failed_trials": sum(r["status"] != "ok" for r in records),
        "best": ranked[0] if ranked else None, "baseline": baseline, "sensitive": sensitive,
        "members": [{"member": i + 1, "trial": r["tid"], "kappa": r["kappa"]}
                    for i, r in enumerate(members)],
        "column_years": result.column_years, "seconds": result.seconds,
        "settings": settings_mod.as_dict(cal), "protocol": protocol.as_dict(),
    }
    write_json(out / SUMMARY, summary)
    if ranked:
        log.info("calibration done: %d trials, best kappa %.4f (trial %d) vs default %.4f; "
                 "ensemble of %d in %s", len(records), ranked[0]["kappa"], ranked[0]["tid"],
                 baseline["kappa"] if baseline else math.nan, len(members), out / ENSEMBLE_FILE)
