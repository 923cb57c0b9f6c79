"""The one interface through which the model receives meteorological forcing.

Every source of forcing (CMFD netCDF files, a legacy point-forcing file, the
synthetic demo generator) implements :class:`ForcingProvider`.  A provider
returns forcing **at the model step, in the kernel's variables and units**
(:data:`noahtibet.layout.FORCING`):

=====================  ===============
wind                   m s-1
air_temperature        K
specific_humidity      kg kg-1
pressure               Pa
shortwave              W m-2 (downward, mean over the step)
longwave               W m-2 (downward, mean over the step)
precipitation          kg m-2 s-1 (mean over the step)
=====================  ===============

Time convention: a model step is stamped with the time at its **end**; the
state after step ``t`` is the state at ``t`` (as in the legacy driver).
Providers read only the cells they are asked for, at most a month at a time,
so memory stays bounded by the cells a process owns.
"""

from __future__ import annotations

import abc

import numpy as np

from .grid import LatLonGrid
from .layout import FORCING


class ForcingProvider(abc.ABC):
    """Source of forcing on a grid, read by cells and time range."""

    #: grid the provider's (row, col) indices refer to
    grid: LatLonGrid
    #: model step [s]
    step_seconds: int

    @abc.abstractmethod
    def read(self, rows: np.ndarray, cols: np.ndarray, start: np.datetime64,
             end: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """Forcing of cells (rows[i], cols[i]) for the steps ending in (start, end].

        ``start`` and ``end`` are step-end times (numpy datetime64, UTC); the
        first returned step ends at ``start + step``, the last at ``end``.
        Returns ``(times, forcing)``: times datetime64[s] of shape (nstep,),
        forcing float64 of shape (nstep, len(FORCING), ncell) in the order and
        units of :data:`noahtibet.layout.FORCING`.  Raises InputError naming
        the file, variable and time of any gap, NaN or unknown unit.
        """

    def describe(self) -> str:
        """One line for logs and provenance."""
        return type(self).__name__

    @staticmethod
    def empty(nstep: int, ncell: int) -> np.ndarray:
        return np.empty((nstep, len(FORCING), ncell), dtype=np.float64)
