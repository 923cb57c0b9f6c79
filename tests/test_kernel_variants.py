"""The processor variants of the compiled kernel give bit-identical results, and
NOAHTIBET_KERNEL chooses among them (python/noahtibet/_dispatch.py).

Every variant the processor runs and the installation has (baseline, x86-64-v3,
x86-64-v4) runs the same problems in its own process (NOAHTIBET_KERNEL set);
every array of state, records and diagnostics must equal the baseline's byte
for byte.  The problems: the batch of benchmarks/column_speed.py (mixed soil
profiles, Tanggula 3-hourly forcing from April: every layer frozen at the
start) at three windows of the year, with the three surface-exchange schemes
and both conductivity / frozen-soil options, one of them 10 K warmer (thawing
columns); the cold start's supercooled water; the legacy daily point run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noahtibet import _dispatch

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import dataclasses, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {bench!r})
import column_speed as cs
from noahtibet import kernel, layout
from noahtibet.kernel import AnnualDiagnostics, Calendar, run_columns
from noahtibet.legacy_forcing import read_point_file
from noahtibet.parameters import PhysicsOptions
from noahtibet.point import options_for_case, run_point
from noahtibet.simulation import cold_start_state

out = {{}}
ncol, nstep = 8, 320
cases = {{
    # name: (first step, air temperature offset K, physics options)
    "frozen_yang08": (0, 0.0, PhysicsOptions(surface_exchange="yang08")),
    "warm_myj_stock": (0, 10.0, PhysicsOptions(surface_exchange="myj", iz0tlnd=1,
                                               thermal_conductivity="stock",
                                               frozen_soil_hydraulics="stock")),
    "summer_chen97": (800, 0.0, PhysicsOptions(surface_exchange="chen97",
                                               legacy_quirks=False)),
}}
for name, (s0, warming, opts) in cases.items():
    f, cal, mon, lp, cp, st, _, _ = cs.build(ncol, warming)
    w = slice(s0, s0 + nstep)
    cal = Calendar(cal.month_prev[w], cal.month_next[w], cal.month_weight[w])
    diag = AnnualDiagnostics.empty(ncol, lp.shape[1])
    rec = run_columns(f[w], cal, mon, lp, cp, st, 10800.0, opts.as_array(), diagnostics=diag,
                      record=True)
    for k in ("stc", "smc", "sh2o", "surface"):
        out[f"{{name}}.state.{{k}}"] = getattr(st, k)
    for k in ("stc", "smc", "sh2o", "out"):
        out[f"{{name}}.record.{{k}}"] = getattr(rec, k)
    for k in ("tmin", "tmax", "tsum", "thaw_depth_max", "count", "water"):
        out[f"{{name}}.diagnostics.{{k}}"] = getattr(diag, k)
    # per step: the fraction of layers (all columns) holding ice
    out[f"{{name}}.frozen_fraction"] = np.mean(rec.smc - rec.sh2o > 1e-3, axis=(1, 2))
    out[f"{{name}}.cold_start"] = cold_start_state(lp, cp, 0.6).sh2o

case = read_point_file(Path({ref!r}) / "forcing_daily_2007_2010.dat")
times, rec, diag = run_point(case, options_for_case(case, legacy_quirks=True))
for k in ("stc", "smc", "sh2o", "out"):
    out[f"point.record.{{k}}"] = getattr(rec, k)
np.savez({path!r}, **out)
print(kernel.KERNEL_VARIANT)
"""


def _run(variant: str, tmp_path: Path) -> dict[str, np.ndarray]:
    path = tmp_path / f"{variant}.npz"
    script = CHILD.format(bench=str(ROOT / "benchmarks"), path=str(path),
                          ref=str(ROOT / "validation" / "reference" / "tanggula"))
    env = {**os.environ, _dispatch.ENV: variant}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == variant        # the variant asked for ran
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return _run("baseline", tmp_path_factory.mktemp("baseline"))


def test_the_problems_cover_frozen_and_thawed_soil(baseline):
    frozen = baseline["frozen_yang08.frozen_fraction"]
    assert np.count_nonzero(frozen == 1.0) >= 50        # steps with every layer holding ice
    assert baseline["warm_myj_stock.frozen_fraction"][-1] < 0.75     # thawed layers
    assert np.all(baseline["summer_chen97.diagnostics.thaw_depth_max"] > 0.3)  # summer thaw


def _skip_reason(variant: str) -> str | None:
    flags = _dispatch.host_flags()
    if variant not in _dispatch.supported(flags):
        lacking = _dispatch.missing_flags(variant, flags)
        return (f"this processor does not run {variant} (missing: {', '.join(lacking)})"
                if flags is not None else f"processor flags unknown: {variant} not usable")
    if variant not in _dispatch.built():
        return f"{variant} kernel not built (meson option kernel_variants, or not x86_64)"
    return None


@pytest.mark.parametrize("variant", [v for v in _dispatch.MODULES if v != "baseline"])
def test_variant_is_bit_identical_to_baseline(variant, baseline, tmp_path):
    reason = _skip_reason(variant)
    if reason:
        pytest.skip(reason)
    result = _run(variant, tmp_path)
    assert result.keys() == baseline.keys()
    differ = []
    for name, ref in baseline.items():
        got = result[name]
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        if got.tobytes() != ref.tobytes():
            n = int(np.count_nonzero(got != ref))
            with np.errstate(invalid="ignore"):
                dmax = float(np.nanmax(np.abs(got.astype(float) - ref.astype(float))))
            differ.append(f"{name}: {n} of {ref.size} values differ, max |diff| {dmax:.3g}")
    assert not differ, f"{variant} differs from baseline:\n" + "\n".join(differ)


# --- choosing the variant ---------------------------------------------------------------------

V3 = _dispatch.REQUIRED["x86-64-v3"]
V4 = _dispatch.REQUIRED["x86-64-v4"]
ALL = list(_dispatch.MODULES)


def test_the_widest_built_and_supported_variant_is_chosen():
    assert _dispatch.choose({}, V4 | {"sse2"}, ALL) == "x86-64-v4"
    assert _dispatch.choose({}, V3, ALL) == "x86-64-v3"
    assert _dispatch.choose({}, V4 - {"avx512vl"}, ALL) == "x86-64-v3"
    assert _dispatch.choose({}, V3 - {"movbe"}, ALL) == "baseline"
    # LZCNT: listed as "abm" by Linux; "lzcnt" accepted too
    assert _dispatch.choose({}, (V3 - {"abm"}) | {"lzcnt"}, ALL) == "x86-64-v3"
    assert _dispatch.choose({}, None, ALL) == "baseline"               # flags unknown
    assert _dispatch.choose({}, V4, ["baseline"]) == "baseline"        # variants not built
    assert _dispatch.choose({}, V4, ["baseline", "x86-64-v3"]) == "x86-64-v3"
    assert _dispatch.choose({_dispatch.ENV: ""}, V4, ALL) == "x86-64-v4"


def test_environment_variable_forces_a_variant():
    for v in ALL:
        assert _dispatch.choose({_dispatch.ENV: v}, V4, ALL) == v


@pytest.mark.parametrize("value, flags, available, message", [
    ("avx512", V4, ALL, "NOAHTIBET_KERNEL='avx512' is not a kernel variant; use one of "
                        "baseline, x86-64-v3, x86-64-v4"),
    ("x86_64_v3", V4, ALL, "NOAHTIBET_KERNEL='x86_64_v3' is not a kernel variant"),
    ("x86-64-v4", V3, ALL, "NOAHTIBET_KERNEL='x86-64-v4': this processor does not support "
                           "x86-64-v4 (missing CPU flags: avx512bw, avx512cd, avx512dq, "
                           "avx512f, avx512vl)"),
    ("x86-64-v3", None, ALL, "NOAHTIBET_KERNEL='x86-64-v3': this processor does not support"),
    ("x86-64-v4", V4, ["baseline"], "NOAHTIBET_KERNEL='x86-64-v4': the x86-64-v4 kernel was "
                                    "not built with this installation"),
])
def test_bad_environment_variable_is_a_clear_error(value, flags, available, message):
    with pytest.raises(_dispatch.KernelSelectionError) as err:
        _dispatch.choose({_dispatch.ENV: value}, flags, available)
    assert message in str(err.value)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2\n\n")
    assert _dispatch.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2"}   # common to all
    assert _dispatch.cpu_flags(str(tmp_path / "missing")) is None
    cpuinfo.write_text("processor\t: 0\n")
    assert _dispatch.cpu_flags(str(cpuinfo)) is None


def test_an_unknown_variant_stops_the_import_and_the_command():
    env = {**os.environ, _dispatch.ENV: "fastest"}
    proc = subprocess.run([sys.executable, "-c", "import noahtibet.kernel"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "KernelSelectionError: NOAHTIBET_KERNEL='fastest' is not a kernel variant" \
        in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "noahtibet.cli", "--version"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("noahtibet: error: NOAHTIBET_KERNEL='fastest'")


def test_version_names_the_kernel_in_use():
    from noahtibet import __version__
    from noahtibet.kernel import KERNEL_VARIANT
    env = {k: v for k, v in os.environ.items() if k != _dispatch.ENV}
    proc = subprocess.run([sys.executable, "-m", "noahtibet.cli", "--version"], env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout == f"noahtibet {__version__} (kernel {_dispatch.choose(env)})\n"
    assert KERNEL_VARIANT == _dispatch.choose()
    env[_dispatch.ENV] = "baseline"
    proc = subprocess.run([sys.executable, "-m", "noahtibet.cli", "--version"], env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout == f"noahtibet {__version__} (kernel baseline)\n"


def test_small_batches_use_avx2_where_x86_64_v4_was_chosen_automatically():
    assert _dispatch.choose_small("x86-64-v4", {}, V4, ALL) == "x86-64-v3"
    assert _dispatch.choose_small("x86-64-v3", {}, V4, ALL) == "x86-64-v3"
    assert _dispatch.choose_small("baseline", {}, V4, ALL) == "baseline"
    # forced by NOAHTIBET_KERNEL: that variant for every batch
    assert _dispatch.choose_small("x86-64-v4", {_dispatch.ENV: "x86-64-v4"}, V4, ALL) == "x86-64-v4"
    # x86-64-v3 not built
    assert _dispatch.choose_small("x86-64-v4", {}, V4, ["baseline", "x86-64-v4"]) == "x86-64-v4"
