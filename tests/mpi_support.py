"""Whether MPI tests can run here: mpi4py importable and an mpiexec launcher on PATH."""

import shutil


def mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return shutil.which("mpiexec") is not None
