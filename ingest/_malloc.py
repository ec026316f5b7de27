"""Keep MLX's large CPU temporaries in the process heap instead of fresh pages from the kernel (glibc only).

MLX allocates every intermediate array with malloc. glibc serves blocks above its mmap threshold (128 KB,
raised dynamically to the largest block freed so far) with mmap and returns freed heap tops above twice
that to the kernel, so the attention scores of a long batch (~6 MB) came back as new zero-filled pages on
almost every layer, and the page faults cost more than the softmax itself (the README's speed section).
Fixed thresholds (32 MB, the largest glibc accepts; 64 MB kept before trimming) reuse those blocks.
Does nothing off glibc, or when the user set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ themselves.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024


def tune() -> bool:
    """Set the thresholds (process-wide, idempotent); True if glibc accepted them."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
