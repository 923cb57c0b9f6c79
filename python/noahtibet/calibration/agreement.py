"""Agreement of a simulated permafrost map with a reference map (permafrost vs not).

Everything derives from the 2 x 2 confusion matrix ``cm[r, s]`` of cell counts,
``r`` the reference (0 not permafrost, 1 permafrost) and ``s`` the simulation.
Counts are integers, so matrices of different MPI ranks add up exactly.

With ``n`` cells, ``p = cm / n``, row sums ``p_r+`` and column sums ``p_+s``:

* overall agreement ``p_o = p_00 + p_11``;
* Cohen's (1960) kappa ``(p_o - p_e) / (1 - p_e)`` with the chance agreement
  ``p_e = sum_j p_j+ p_+j``.  When both maps hold one and the same class
  (``p_e = 1``) kappa is undefined: reported as 1 if the maps agree
  everywhere, else NaN (never happens with p_e = 1); with no cell, NaN;
* quantity and allocation disagreement (Pontius & Millones 2011, Int. J. Remote
  Sens. 32, 4407): ``Q = 1/2 sum_j |p_j+ - p_+j|`` and
  ``A = sum_j min(p_j+ - p_jj, p_+j - p_jj)``; ``Q + A = 1 - p_o``.

Cells are excluded (masked) where the reference has no data (0) or the
simulation has none (255: glacier, lake, outside the domain).
"""

from __future__ import annotations

import math

import numpy as np

from ..classify import NODATA, PERMAFROST

REFERENCE_NODATA = 0


def confusion(reference_permafrost, simulated_permafrost, valid=None) -> np.ndarray:
    """2 x 2 integer confusion matrix (rows reference, columns simulation)."""
    r = np.asarray(reference_permafrost, dtype=bool).ravel()
    s = np.asarray(simulated_permafrost, dtype=bool).ravel()
    if r.shape != s.shape:
        raise ValueError(f"reference has {r.size} cells, simulation {s.size}")
    if valid is not None:
        v = np.asarray(valid, dtype=bool).ravel()
        r, s = r[v], s[v]
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (r.astype(int), s.astype(int)), 1)
    return cm


def scores(cm) -> dict:
    """Kappa, overall agreement, quantity and allocation disagreement of a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    n = int(cm.sum())
    out = {"n_cells": n, "kappa": math.nan, "overall_agreement": math.nan,
           "quantity_disagreement": math.nan, "allocation_disagreement": math.nan,
           "reference_permafrost": int(cm[1].sum()), "simulated_permafrost": int(cm[:, 1].sum())}
    if n == 0:
        return out
    p = cm / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po = float(np.trace(p))
    pe = float(np.dot(rows, cols))
    if pe < 1.0:
        kappa = (po - pe) / (1.0 - pe)
    else:
        kappa = 1.0 if po == 1.0 else math.nan
    diag = np.diag(p)
    out.update(kappa=float(kappa), overall_agreement=po,
               quantity_disagreement=float(0.5 * np.abs(rows - cols).sum()),
               allocation_disagreement=float(np.minimum(rows - diag, cols - diag).sum()))
    return out


def map_agreement(simulated_classes, reference_classes, cells=None) -> dict:
    """Scores of two class maps (same shape) over ``cells`` (bool mask, default all).

    ``simulated_classes``: 1/2/3 with 255 = no data; ``reference_classes``: 1/2/3
    with 0 = no data.  Masked cells of either map are excluded.
    """
    sim = np.asarray(simulated_classes)
    ref = np.asarray(reference_classes)
    if sim.shape != ref.shape:
        raise ValueError(f"simulated map {sim.shape} and reference map {ref.shape} differ")
    valid = (sim != NODATA) & (ref != REFERENCE_NODATA)
    if cells is not None:
        valid &= np.asarray(cells, dtype=bool)
    cm = confusion(ref == PERMAFROST, sim == PERMAFROST, valid)
    return {**scores(cm), "confusion": cm.tolist()}
