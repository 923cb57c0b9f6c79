"""Process-level parallelism: MPI through mpi4py when it is there, else one process.

Work is a list of columns in a canonical order (cells, or (member, cell)
pairs).  :func:`partition` gives every rank a contiguous, balanced slice of
that order; the kernel treats columns independently and gives bit-identical
results for a column whether it runs alone or in any batch, so results do not
depend on the number of ranks.  Rank 0 gathers what is written; outputs are
written once.

A failure on one rank must not hang the others: :func:`abort_on_error` prints
the error (with the failing cell and input named by the exception) and calls
``MPI_Abort`` so the whole job stops.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

import numpy as np


class SerialComm:
    """The communicator of a run without MPI: one rank."""

    rank = 0
    size = 1

    def gather(self, obj, root=0):
        return [obj]

    def bcast(self, obj, root=0):
        return obj

    def allreduce(self, value, op="sum"):
        return value

    def allgather(self, obj):
        return [obj]

    def barrier(self):
        pass

    def abort(self, code=1):
        raise SystemExit(code)


class MPIComm:
    """Thin wrapper of an mpi4py communicator with the same methods."""

    def __init__(self, comm):
        self._comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def gather(self, obj, root=0):
        return self._comm.gather(obj, root=root)

    def bcast(self, obj, root=0):
        return self._comm.bcast(obj, root=root)

    def allreduce(self, value, op="sum"):
        from mpi4py import MPI
        ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        return self._comm.allreduce(value, op=ops[op])

    def allgather(self, obj):
        return self._comm.allgather(obj)

    def barrier(self):
        self._comm.Barrier()

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)


def get_comm(use_mpi: bool | None = None):
    """MPI.COMM_WORLD when mpi4py is importable and MPI is wanted, else SerialComm.

    ``use_mpi=None`` uses MPI only when the process was started by an MPI
    launcher (it then sees a world of more than one rank, or PMI/OMPI
    variables), so a plain ``noahtibet run`` never needs an MPI library.
    """
    if use_mpi is False:
        return SerialComm()
    launched = any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE",
                                             "PMIX_RANK", "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD"))
    if use_mpi is None and not launched:
        return SerialComm()
    try:
        from mpi4py import MPI
    except ImportError:
        if use_mpi:
            raise RuntimeError("MPI was requested but mpi4py is not installed "
                               "(pip install mpi4py mpich)") from None
        return SerialComm()
    return MPIComm(MPI.COMM_WORLD)


MPI_CHOICES = ("auto", "on", "off")


def comm_from_option(choice: str = "auto"):
    """The communicator for the command-line option ``--mpi auto|on|off``."""
    return get_comm({"auto": None, "on": True, "off": False}[choice])


def partition(n: int, size: int, rank: int) -> np.ndarray:
    """Indices 0..n-1 owned by ``rank`` of ``size``: contiguous, sizes differ by at most one."""
    lo = (n * rank) // size
    hi = (n * (rank + 1)) // size
    return np.arange(lo, hi)


def gather_columns(comm, local: np.ndarray, n_total: int) -> np.ndarray | None:
    """Gather per-column arrays (ncol_local, ...) in canonical order on rank 0."""
    parts = comm.gather(local, root=0)
    if comm.rank != 0:
        return None
    out = np.concatenate(parts, axis=0)
    if out.shape[0] != n_total:
        raise RuntimeError(f"gathered {out.shape[0]} columns, expected {n_total}")
    return out


@contextmanager
def abort_on_error(comm):
    """Turn an exception on any rank into a clean stop of the whole job."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - everything must stop the job
        if comm.size == 1:
            raise
        sys.stderr.write(f"noahtibet: rank {comm.rank} of {comm.size} failed: {exc}\n")
        traceback.print_exc(file=sys.stderr)
        comm.abort(1)
