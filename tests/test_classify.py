"""The classification rule on hand-made temperature series."""

import numpy as np
import pytest

from noahtibet.classify import (NODATA, NON_FROZEN, PERMAFROST, SEASONALLY_FROZEN, classify,
                                permafrost_area_km2)
from noahtibet.kernel import AnnualDiagnostics

T0 = 273.15


def extremes(series):
    """(tmin, tmax) per layer of a (nstep, nlay) temperature series."""
    series = np.asarray(series, dtype=float)
    return series.min(axis=0), series.max(axis=0)


def year(base, amplitude, n=365):
    """A year of daily temperatures per layer: base + amplitude * sin."""
    t = np.arange(n) / n
    return np.asarray(base)[None, :] + np.asarray(amplitude)[None, :] * np.sin(2 * np.pi * t)[:, None]


def test_deep_layer_frozen_both_years_is_permafrost():
    prev = year([T0 + 5, T0 - 2], [10, 0.5])
    cur = year([T0 + 5, T0 - 2], [10, 0.5])
    tmin, tmax = extremes(cur)
    assert classify(tmin, tmax, extremes(prev)[1]) == PERMAFROST


def test_exactly_zero_counts_as_frozen():
    # layer 2 reaches exactly 0 C at its warmest, both years: permafrost
    cur = np.array([[T0 + 3, T0 - 1.0], [T0 - 4, T0]])
    tmin, tmax = extremes(cur)
    assert tmax[1] == T0
    assert classify(tmin, tmax, tmax) == PERMAFROST
    # a layer whose coldest value is exactly 0 C freezes: seasonally frozen
    warm = np.array([[T0 + 3, T0 + 2], [T0, T0 + 1]])
    assert classify(*extremes(warm)) == SEASONALLY_FROZEN


def test_layer_thawing_in_previous_year_only_is_not_permafrost():
    prev = year([T0 + 5, T0 - 0.2], [10, 0.5])   # layer 2 thaws in the previous year
    cur = year([T0 + 5, T0 - 2], [10, 0.5])      # frozen all of this year
    tmin, tmax = extremes(cur)
    assert extremes(prev)[1][1] > T0 and tmax[1] <= T0
    assert classify(tmin, tmax, extremes(prev)[1]) == SEASONALLY_FROZEN


def test_first_year_without_previous_year_uses_current_year():
    cur = year([T0 + 5, T0 - 2], [10, 0.5])
    tmin, tmax = extremes(cur)
    assert classify(tmin, tmax, None) == PERMAFROST


def test_never_below_zero_is_non_frozen_and_masks_are_nodata():
    warm = year([T0 + 8, T0 + 6], [6, 1])
    cold = year([T0 - 8, T0 - 6], [6, 1])
    tmin = np.stack([extremes(warm)[0], extremes(cold)[0], extremes(cold)[0]])
    tmax = np.stack([extremes(warm)[1], extremes(cold)[1], extremes(cold)[1]])
    classes = classify(tmin, tmax, tmax, nodata_mask=np.array([False, False, True]))
    assert classes.tolist() == [NON_FROZEN, PERMAFROST, NODATA]
    assert classes.dtype == np.uint8


def test_classes_from_kernel_diagnostics_shape():
    diag = AnnualDiagnostics.empty(4, 3)
    diag.tmin[:] = T0 - 1
    diag.tmax[:] = T0 + 1
    diag.tmax[2, 1] = T0 - 0.5
    classes = classify(diag.tmin, diag.tmax, diag.tmax)
    assert classes.tolist() == [SEASONALLY_FROZEN, SEASONALLY_FROZEN, PERMAFROST,
                                SEASONALLY_FROZEN]
    assert permafrost_area_km2(classes, np.array([1.0, 2.0, 4.0, 8.0])) == 4.0


def test_missing_temperatures_are_nodata_and_shapes_checked():
    tmin = np.full((2, 3), np.nan)
    assert classify(tmin, tmin).tolist() == [NODATA, NODATA]
    with pytest.raises(ValueError):
        classify(np.zeros((2, 3)), np.zeros((2, 4)))
