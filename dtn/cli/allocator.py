"""Tune the C allocator for a node that moves large bundles (glibc only; elsewhere nothing happens).

A node allocates and frees buffers of about a bundle's size many times a second (request bodies, encoded
bundles, received segments). glibc serves such sizes with fresh ``mmap``s at first and, once its dynamic
threshold rises, from the heap, which it gives back to the kernel (trims) whenever enough of its top is free:
either way the next buffer of that size is fresh memory, and the kernel zeroes it page by page on first touch
(hundreds of page faults per 1 MiB bundle). Fixed thresholds keep such buffers in the heap and the freed space
in the process for reuse, at the cost of at most ``TRIM_THRESHOLD_BYTES`` of free memory held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # below this, allocations come from the heap (glibc's dynamic maximum)
TRIM_THRESHOLD_BYTES = 64 << 20  # free memory at the top of the heap kept for reuse


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (see the module's docstring); False when not on glibc or refused."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD_BYTES))
