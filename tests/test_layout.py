"""The Python mirror of the flat-array layout agrees with the Fortran source."""

import re
from pathlib import Path

from noahtibet import layout

FORTRAN = Path(__file__).parents[1] / "fortran" / "parameter_layout.f90"

GROUPS = {
    "f_": (layout.FORCING, "nforc"),
    "lp_": (layout.LAYER_PARAMETERS, "nlpar"),
    "cp_": (layout.COLUMN_PARAMETERS, "ncpar"),
    "mo_": (layout.MONTHLY, "nmon"),
    "ss_": (layout.SURFACE_STATE, "nsst"),
    "out_": (layout.OUTPUTS, "nout"),
    "opt_": (layout.OPTIONS, "nopt"),
    "wb_": (layout.WATER_BALANCE, "nwb"),
}


def fortran_parameters():
    text = FORTRAN.read_text()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"integer, parameter :: (\w+) = (\d+)", text)}


def test_every_group_matches_fortran_names_order_and_count():
    params = fortran_parameters()
    for prefix, (names, count_name) in GROUPS.items():
        fortran_names = sorted((v, k[len(prefix):]) for k, v in params.items()
                               if k.startswith(prefix) and k != count_name)
        assert [n for _, n in fortran_names] == list(names), prefix
        assert [v for v, _ in fortran_names] == list(range(1, len(names) + 1)), prefix
        assert params[count_name] == len(names), count_name


def test_status_codes_match():
    params = fortran_parameters()
    fortran_status = {v for k, v in params.items() if k.startswith("status_")}
    assert fortran_status == set(layout.STATUS)


def test_compiled_kernel_reports_the_same_sizes():
    """Every installed build of the kernel (processor variants), the one in use first."""
    import importlib

    from noahtibet import _dispatch
    variants = [_dispatch.choose(), *_dispatch.built()]
    for variant in variants:
        _kernel = importlib.import_module(f"noahtibet.{_dispatch.MODULES[variant]}")
        sizes = list(_kernel.nt_layout_sizes())
        assert sizes == [len(layout.FORCING), len(layout.LAYER_PARAMETERS),
                         len(layout.COLUMN_PARAMETERS), len(layout.MONTHLY),
                         len(layout.SURFACE_STATE), len(layout.OUTPUTS), len(layout.OPTIONS),
                         len(layout.WATER_BALANCE)], variant
