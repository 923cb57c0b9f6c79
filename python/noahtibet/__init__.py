"""noahtibet: a modern-Fortran re-implementation of the Noah-Tibet land-surface column model
(modified Noah LSM 3.4.1), driven from Python."""

__version__ = "0.1.0"
