"""MPI entry point: ``mpirun -n N python mpi/run_noahtibet.py CONFIG [--resume] [--stage run|spinup|transient]``.

Equivalent to ``mpirun -n N noahtibet run CONFIG --mpi on``; kept as a plain
script so job systems can call it without the console-script wrapper.  Every
rank reads only its own cells' forcing; rank 0 writes all files.  Results are
identical for any number of ranks.  A failure on one rank stops the whole job
with the failing cell named (no hang).
"""

import argparse
import logging
import sys

from noahtibet import config
from noahtibet.parallel import get_comm
from noahtibet.simulation import Simulation

STAGES = {"run": ("spinup", "transient"), "spinup": ("spinup",), "transient": ("transient",)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stage", choices=sorted(STAGES), default="run")
    args = ap.parse_args(argv)
    comm = get_comm(True)
    logging.basicConfig(level=logging.INFO if comm.rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {comm.rank}] %(levelname)s %(message)s")
    cfg = config.load(args.config)
    Simulation(cfg, comm).run(resume=args.resume, stages=STAGES[args.stage])
    return 0


if __name__ == "__main__":
    sys.exit(main())
