"""Which build of the compiled kernel to import.

On x86_64 the kernel is built three times from the same sources and flags (see
meson.build): the baseline ``_kernel`` (SSE2), ``_kernel_x86_64_v3`` (AVX2) and
``_kernel_x86_64_v4`` (AVX-512).  On one machine all give bit-identical results
(tests/test_kernel_variants.py); the wider ones can be faster.  The widest
variant the processor runs is used, read from the flags of /proc/cpuinfo; where
they cannot be read (another system, a restricted container), the baseline.

The environment variable ``NOAHTIBET_KERNEL`` (``baseline``, ``x86-64-v3`` or
``x86-64-v4``) forces one; a value that is not one of these, a variant the
processor lacks or one that was not built is an error.  A variant that was not
built (``-Dkernel_variants=false``, other processors) is otherwise skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
from types import ModuleType

ENV = "NOAHTIBET_KERNEL"

#: variant -> extension module (in the noahtibet package), narrowest first
MODULES = {
    "baseline": "_kernel",
    "x86-64-v3": "_kernel_x86_64_v3",
    "x86-64-v4": "_kernel_x86_64_v4",
}

# /proc/cpuinfo flags of the x86-64 micro-architecture levels (x86-64 psABI);
# each level includes the ones below.  Linux lists LZCNT as "abm".
_V2 = {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}
_V3 = _V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
REQUIRED = {"baseline": frozenset(), "x86-64-v3": frozenset(_V3), "x86-64-v4": frozenset(_V4)}


class KernelSelectionError(RuntimeError):
    """NOAHTIBET_KERNEL names a kernel variant that is unknown, not built or not
    supported by this processor."""


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The processor's feature flags (those every listed processor has), or None
    if they cannot be read."""
    try:
        with open(path) as f:
            sets = [frozenset(line.split(":", 1)[1].split()) for line in f
                    if line.startswith("flags") and ":" in line]
    except OSError:
        return None
    if not sets:
        return None
    return frozenset.intersection(*sets)


def missing_flags(variant: str, flags: frozenset[str] | None) -> list[str]:
    """The flags ``variant`` needs that ``flags`` lacks (all of them if unknown)."""
    need = REQUIRED[variant]
    if flags is None:
        return sorted(need)
    have = set(flags) | ({"abm"} if "lzcnt" in flags else set())
    return sorted(need - have)


def host_flags() -> frozenset[str] | None:
    """This processor's flags, or None if unknown (not x86_64, or unreadable)."""
    return cpu_flags() if _is_x86_64() else None


def supported(flags: frozenset[str] | None) -> list[str]:
    """The variants a processor with ``flags`` (None: unknown) runs, narrowest first."""
    return [v for v in MODULES if not missing_flags(v, flags)]


def built() -> list[str]:
    """The variants installed with the package, narrowest first."""
    return [v for v, m in MODULES.items()
            if importlib.util.find_spec(f"{__package__}.{m}") is not None]


_HOST = object()


def choose(environ=None, flags=_HOST, available: list[str] | None = None) -> str:
    """The variant to use: ``NOAHTIBET_KERNEL`` if set, else the widest variant
    both built and supported by the processor (defaults: this process's
    environment, this processor, this installation)."""
    environ = os.environ if environ is None else environ
    flags = host_flags() if flags is _HOST else flags
    available = built() if available is None else available
    runs = supported(flags)
    forced = environ.get(ENV, "").strip()
    if forced:
        if forced not in MODULES:
            raise KernelSelectionError(
                f"{ENV}={forced!r} is not a kernel variant; use one of "
                f"{', '.join(MODULES)} (or leave {ENV} unset to choose automatically)")
        if forced not in runs:
            why = (f"missing CPU flags: {', '.join(missing_flags(forced, flags))}"
                   if flags is not None else
                   "the processor's flags could not be read from /proc/cpuinfo"
                   if _is_x86_64() else f"a {platform.machine()} processor")
            raise KernelSelectionError(
                f"{ENV}={forced!r}: this processor does not support {forced} ({why})")
        if forced not in available:
            raise KernelSelectionError(
                f"{ENV}={forced!r}: the {forced} kernel was not built with this installation "
                f"(built: {', '.join(available) or 'none'}; meson option kernel_variants)")
        return forced
    usable = [v for v in runs if v in available]
    return usable[-1] if usable else "baseline"


#: batches of fewer columns than this run on the x86-64-v3 build when x86-64-v4 was
#: chosen automatically: the 512-bit loops of the x86-64-v4 build are faster for
#: blocks of many columns but slower for a few (one column a call: 3.5 against
#: 2.8 us per column-step, benchmarks/column_speed.py).  The variants give the
#: same bits, so this changes no result.
SMALL_BATCH = 8


def choose_small(variant: str, environ=None, flags=_HOST, available: list[str] | None = None) -> str:
    """The variant for batches of fewer than SMALL_BATCH columns, given ``variant``
    (that of choose()): x86-64-v3 instead of an automatically chosen x86-64-v4 if
    it is built and supported; otherwise ``variant`` (in particular when
    ``NOAHTIBET_KERNEL`` forces a variant)."""
    environ = os.environ if environ is None else environ
    flags = host_flags() if flags is _HOST else flags
    available = built() if available is None else available
    if (variant == "x86-64-v4" and not environ.get(ENV, "").strip()
            and "x86-64-v3" in available and "x86-64-v3" in supported(flags)):
        return "x86-64-v3"
    return variant


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


_loaded: tuple[str, ModuleType] | None = None


def load() -> tuple[str, ModuleType]:
    """(variant, extension module) of the kernel in use; chosen and imported once
    per process."""
    global _loaded
    if _loaded is None:
        variant = choose()
        module = importlib.import_module(f"{__package__}.{MODULES[variant]}")
        _loaded = (variant, module)
    return _loaded


_loaded_small: tuple[str, ModuleType] | None = None


def load_small() -> tuple[str, ModuleType]:
    """(variant, extension module) for batches of fewer than SMALL_BATCH columns
    (choose_small); imported once per process."""
    global _loaded_small
    if _loaded_small is None:
        variant = choose_small(load()[0])
        _loaded_small = (variant, importlib.import_module(f"{__package__}.{MODULES[variant]}"))
    return _loaded_small


def kernel_variant() -> str:
    """The name of the kernel variant in use: baseline, x86-64-v3 or x86-64-v4."""
    return load()[0]
