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


class PointFileProvider(ForcingProvider):
    """A legacy point-forcing file as a provider of one cell.

    The file's records are interpolated to its model step exactly as the legacy
    driver does (:func:`noahtibet.legacy_forcing.model_forcing`); the provider's
    grid is the single cell (row 0, col 0) containing the file's latitude and
    longitude at the given spacing.  Steps are stamped with the forcing time the
    legacy driver uses for them.
    """

    def __init__(self, path, spacing: float = 0.1):
        from .legacy_forcing import model_forcing, read_point_file

        self.path = str(path)
        self.case = read_point_file(path)
        self.forcing = model_forcing(self.case)
        self.step_seconds = int(self.case.model_timestep)
        lon, lat = float(self.case.longitude), float(self.case.latitude)
        lon0 = (np.floor(lon / spacing) + 0.5) * spacing
        lat0 = (np.floor(lat / spacing) + 0.5) * spacing
        self.grid = LatLonGrid(lon0, lat0, spacing, spacing, 1, 1)
        self._times = np.asarray(self.forcing.time, dtype="datetime64[s]")
        self._values = np.stack([np.asarray(getattr(self.forcing, n), dtype=np.float64)
                                 for n in FORCING], axis=1)

    def read(self, rows, cols, start, end):
        from .errors import InputError

        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.size and (np.any(rows != 0) or np.any(cols != 0)):
            raise InputError("a point-forcing file has only the cell (0, 0)", path=self.path,
                             field="cell", value=(rows.tolist(), cols.tolist()))
        start = np.datetime64(start, "s")
        end = np.datetime64(end, "s")
        sel = (self._times > start) & (self._times <= end)
        first, last = self._times[0], self._times[-1]
        if start + np.timedelta64(self.step_seconds, "s") < first or end > last:
            raise InputError(f"covers {first} .. {last}, the request is ({start}, {end}]",
                             path=self.path, field="time", value=str(end if end > last else start))
        values = self._values[sel]
        return self._times[sel], np.repeat(values[:, :, None], rows.size, axis=2)

    def describe(self) -> str:
        return f"legacy point-forcing file {self.path}"


def mean_annual_air_temperature(provider: ForcingProvider, rows, cols, first_year: int,
                                last_year: int) -> np.ndarray:
    """Long-term mean annual air temperature [K] of cells (rows[i], cols[i]) in the forcing.

    The mean over the years ``first_year`` .. ``last_year`` of each year's mean air
    temperature over the model steps of that year (steps ending in (Jan 1 00:00 of the
    year, Jan 1 00:00 of the next year], the forcing exactly as the model receives it).
    Read a month at a time (memory bounded by the cells asked for).  A cell's value
    depends only on its own forcing: it is bit-for-bit the same whatever other cells
    are asked for at the same time (so for any number of MPI ranks).
    """
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    i = FORCING.index("air_temperature")
    total = np.zeros(rows.size)
    for year in range(int(first_year), int(last_year) + 1):
        year_sum = np.zeros(rows.size)
        nstep = 0
        for month in range(1, 13):
            start = np.datetime64(f"{year:04d}-{month:02d}-01T00:00", "s")
            end = (np.datetime64(f"{year:04d}-{month:02d}", "M") + 1).astype("datetime64[s]")
            _, forcing = provider.read(rows, cols, start, end)
            # one row per cell, summed along its own contiguous series: the same
            # summation for a cell whatever the other rows are
            year_sum += np.ascontiguousarray(forcing[:, i, :].T).sum(axis=1)
            nstep += forcing.shape[0]
        total += year_sum / nstep
    return total / (int(last_year) - int(first_year) + 1)
