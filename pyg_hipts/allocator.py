"""Opt-in tuning of glibc's allocator for large systems on CPU.

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (at most 32 MiB) with a fresh ``mmap``
and returns it to the kernel when freed, so each of a large structure's per-pair tensors
(``[N, K, f]``, ~100 MiB at 10⁴ atoms) is page-faulted in again on every evaluation. That cost
grows the time per atom by ~1.7× between 1.5k and 12k water atoms
(``benchmarks/water_scaling.py``). :func:`keep_freed_memory` makes glibc serve all allocations
from its heap and keep freed memory for reuse, which removes the effect; the process then holds
on to its peak memory. It changes the whole process, so it is never called implicitly.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
LARGEST_TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and never trim it (glibc only).

    Returns ``True`` when glibc accepted both settings, ``False`` on other C libraries.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, LARGEST_TRIM_THRESHOLD))
