"""The demo domain written as real-format CMFD files reads back through the CMFD provider.

Checks the data layer end to end: generator -> CMFD files (packed, latitude
descending, mm/hr) -> CMFDProvider -> kernel forcing, against the demo's own
provider.  Instantaneous variables and precipitation must agree to the packing
precision; radiation differs only by the documented timing convention (the CMFD
provider averages the two 3-h means centred on the step's ends), so daily means
must agree.
"""

import numpy as np
import pytest

from noahtibet import layout
from noahtibet.demo import DemoDomain, DemoForcingProvider
from noahtibet.forcing import CMFDProvider, open_cmfd, write_cmfd

BBOX = (90.0, 33.0, 90.6, 33.4)   # a small patch of 0.1 degree cells on the plateau


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    demo = DemoDomain(spacing=0.1, extent=(89.0, 32.0, 92.0, 35.0))
    ds = demo.cmfd_dataset("1990-06", "1990-07", bbox=BBOX)
    d = tmp_path_factory.mktemp("cmfd")
    write_cmfd(ds, d, scheme="V0106", packed=True, lat_descending=True, precip_units="mm/hr")
    return demo, ds, d


def test_files_read_back_to_the_generated_values(files):
    demo, ds, d = files
    back = open_cmfd(d, "1990-06", "1990-07")
    for var in ("temp", "pres", "shum", "wind", "srad", "lrad", "prec"):
        a, b = ds[var].values, back[var].values
        scale = max(np.nanmax(np.abs(a)), 1e-12)
        assert np.nanmax(np.abs(a - b)) <= 1e-4 * scale + 1e-9, var


def test_cmfd_provider_matches_the_demo_provider(files):
    demo, ds, d = files
    sub, rs, cs = demo.grid.subgrid(BBOX)
    rows, cols = np.meshgrid(np.arange(rs.start, rs.stop), np.arange(cs.start, cs.stop),
                             indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    start = np.datetime64("1990-07-01T00:00", "s")
    end = np.datetime64("1990-07-31T00:00", "s")
    t1, f1 = DemoForcingProvider(demo).read(rows, cols, start, end)
    cmfd = CMFDProvider(d, grid=demo.grid)
    t2, f2 = cmfd.read(rows, cols, start, end)
    assert np.array_equal(t1, t2)
    for name in ("wind", "air_temperature", "specific_humidity", "pressure", "precipitation"):
        i = layout.index(layout.FORCING, name)
        scale = np.abs(f1[:, i]).max()
        assert np.abs(f1[:, i] - f2[:, i]).max() <= 2e-4 * scale + 1e-12, name
    for name in ("shortwave", "longwave"):
        i = layout.index(layout.FORCING, name)
        daily1 = f1[:, i].reshape(-1, 8, f1.shape[2]).mean(axis=1)
        daily2 = f2[:, i].reshape(-1, 8, f2.shape[2]).mean(axis=1)
        assert np.abs(daily1 - daily2).max() < 0.02 * np.abs(daily1).max(), name
        # but step values differ: the conventions are not silently identical
        assert np.abs(f1[:, i] - f2[:, i]).max() > 0
