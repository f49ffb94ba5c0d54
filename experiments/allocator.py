"""Keep large CPU tensors in the heap instead of fresh ``mmap`` pages.

glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a new ``mmap`` and
returns it on free, so each (B, T, 56, 256) logits tensor of a DPO or SFT step is page-faulted in anew; on
2 cores that fault traffic costs about a quarter of a DPO step (``dyadic bench dpo``). Raising the thresholds
keeps freed blocks for reuse; the price is a higher resident peak (+26 % in that benchmark). The
``dyadic`` CLI calls :func:`keep_large_allocations` before any command runs.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)
LIMIT = 2**31 - 1  # the largest value mallopt's int takes: 2 GiB
OPT_OUT = "DYADIC_DEFAULT_MALLOC"
"""Set to 1 to keep glibc's defaults."""
_OWN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # the user set glibc's own knobs: theirs win


def keep_large_allocations() -> bool:
    """Raise glibc's mmap and trim thresholds to 2 GiB for this process; True when set. A no-op (False) off
    glibc Linux, with ``DYADIC_DEFAULT_MALLOC=1``, or when the user set glibc's own environment variables."""
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT) == "1":
        return False
    if any(name in os.environ for name in _OWN):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc: no mallopt
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, LIMIT)) and bool(libc.mallopt(M_TRIM_THRESHOLD, LIMIT))
