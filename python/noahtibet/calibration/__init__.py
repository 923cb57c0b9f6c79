"""CaliMAP: map-based Bayesian calibration and the calibrated parameter ensemble.

The model's parameters are tuned so that its permafrost map of a reference year
(2010) agrees with a trusted reference map, and the best parameter sets form an
ensemble whose mean, probability and spread are the product.

Modules:

* :mod:`~noahtibet.calibration.space`: the parameter space (26 named parameters
  by default, ``noahtibet/data/parameter_space.toml``), its validation and how a
  set of values becomes the kernel's per-column arrays;
* :mod:`~noahtibet.calibration.settings`: the ``[calibration]`` / ``[ensemble]``
  tables of the configuration file and the spin-up protocols of the trials and
  of the ensemble (:class:`~noahtibet.calibration.settings.Protocol`);
* :mod:`~noahtibet.calibration.agreement`: confusion matrix, Cohen's kappa,
  overall agreement, quantity and allocation disagreement;
* :mod:`~noahtibet.calibration.engine`: (parameter set, cell) pairs run in one
  kernel pass, forcing read once per cell and month;
* :mod:`~noahtibet.calibration.trials`: the default run, the sensitive cells and
  the evaluation of a batch of trials over MPI ranks;
* :mod:`~noahtibet.calibration.optimizer`: hyperopt TPE in batches, checkpoint /
  resume, trial table, ranking, ensemble file, convergence plot;
* :mod:`~noahtibet.calibration.ensemble`: the ensemble run and its products;
* :mod:`~noahtibet.calibration.restarts`: restarts every rank writes and reads for
  its own columns;
* :mod:`~noahtibet.calibration.common`: atomic files and rank-0 work.

The choice of protocols and the demo's figures: ``docs/calibration.md``.

Commands: ``noahtibet calibrate CONFIG`` and ``noahtibet ensemble CONFIG``
(:mod:`noahtibet.cli_calibration`).
"""

from .agreement import confusion, map_agreement, scores
from .space import KNOWN, ParameterSpace, load_space

__all__ = ["KNOWN", "ParameterSpace", "load_space", "confusion", "map_agreement", "scores",
           "calibrate", "run_ensemble"]


def calibrate(*args, **kwargs):
    """See :func:`noahtibet.calibration.optimizer.calibrate`."""
    from .optimizer import calibrate as _calibrate

    return _calibrate(*args, **kwargs)


def run_ensemble(*args, **kwargs):
    """See :func:`noahtibet.calibration.ensemble.run_ensemble`."""
    from .ensemble import run_ensemble as _run

    return _run(*args, **kwargs)
