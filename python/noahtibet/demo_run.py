"""``noahtibet demo``: the whole pipeline on the built-in SYNTHETIC demo domain.

The product's protocol (500-year spin-up recycling 1979-1983, transient run
1979-2018 on 0.1 degree cells, 3-hourly steps) costs about 10^13 column-steps
for the plateau.  The demo keeps the protocol's structure and time step and
shortens what makes it expensive, so that it finishes in minutes on a 2-core
machine; it prints every shortening.
"""

from __future__ import annotations

import logging

from . import config
from .parallel import comm_from_option

log = logging.getLogger("noahtibet")

#: The demo configuration (everything else is the product default).
DEMO_SETTINGS = {
    "domain": {"kind": "demo", "spacing": 0.5},
    "forcing": {"provider": "demo", "cache_spinup": True},
    "spinup": {"start_year": 1979, "end_year": 1983, "cycles": 4, "tolerance": 0.0},
    "run": {"start_year": 1979, "end_year": 2018, "product_start_year": 1980},
    "output": {"points": []},
}

PRODUCT_PROTOCOL = {
    "spacing": 0.1,
    "spinup_cycles": 100,
}


def demo_config(out_dir: str, **overrides) -> config.Config:
    data = {k: dict(v) for k, v in DEMO_SETTINGS.items()}
    data["output"]["directory"] = str(out_dir)
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return config.from_dict(data, path="<built-in demo configuration>")


def shortenings(cfg: config.Config) -> list[str]:
    s = cfg.spinup
    years = s.end_year - s.start_year + 1
    lines = [
        "the domain is SYNTHETIC (generated, not real data)",
        f"grid spacing {cfg.domain.spacing} degree instead of {PRODUCT_PROTOCOL['spacing']}",
        f"spin-up {s.cycles} cycles x {years} years = {s.cycles * years} years instead of "
        f"{PRODUCT_PROTOCOL['spinup_cycles']} x 5 = 500 years",
    ]
    if cfg.domain.max_cells:
        lines.append(f"only the first {cfg.domain.max_cells} domain cells")
    return lines


def run_demo(args) -> int:
    from .simulation import Simulation

    cfg = demo_config(args.out)
    comm = comm_from_option(getattr(args, "mpi", "auto"))
    if comm.rank == 0:
        log.info("noahtibet demo -> %s", cfg.output.directory)
        for line in shortenings(cfg):
            log.info("shortened relative to the product's protocol: %s", line)
    from .demo_truth import TRUE_PARAMETERS, make_truth

    if comm.rank == 0:
        log.info("stage 1/2: the demo's truth (a run with hidden 'true' parameters, %d of them) "
                 "-> 2010 reference map and observation sites",
                 len(TRUE_PARAMETERS["column"]) + len(TRUE_PARAMETERS["layer"]))
    truth = make_truth(cfg, comm, resume=True)
    if comm.rank == 0:
        log.info("truth written to %s", truth)
        log.info("stage 2/2: the product run with the default parameters")
    sim = Simulation(cfg, comm)
    if comm.rank == 0:
        log.info("%d simulated cells, %d layers, %s", sim.ncol, sim.local.state.nlay,
                 sim.model.description)
    summary = sim.run(resume=getattr(args, "resume", False))
    if comm.rank == 0:
        years = sorted(summary.permafrost_area_km2)
        for y in (years[0], years[len(years) // 2], years[-1]) if years else ():
            log.info("permafrost area %d: %.0f km2", y, summary.permafrost_area_km2[y])
        log.info("products in %s/products", cfg.output.directory)
    from .calibration.demo import run_demo_calibration, run_demo_ensemble
    if comm.rank == 0:
        log.info("small CaliMAP calibration against the demo's 2010 reference map")
    run_demo_calibration(cfg, comm, resume=getattr(args, "resume", False))
    if comm.rank == 0:
        log.info("small ensemble of the best trials, under the calibration's protocol")
    run_demo_ensemble(cfg, comm, resume=getattr(args, "resume", False))
    if comm.rank == 0:
        from .report import build_report
        result = build_report(cfg.output.directory)
        log.info("validation report (against the demo's truth): %s",
                 getattr(result, "html", None) or f"{cfg.output.directory}/report")
    return 0
