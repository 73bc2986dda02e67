"""Process settings for the jobs that run torch: intra-op threads and the C allocator's reuse of freed memory."""

from __future__ import annotations

import ctypes
import functools
import logging
import os

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest dynamic threshold (64-bit): blocks up to this size come from the heap
TRIM_THRESHOLD = 2**30  # free memory kept at the heap's top before it is handed back
TOP_PAD = 64 * 2**20  # extra heap requested per extension (address space; pages count only once touched)
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
USER_TUNABLES = ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max")

log = logging.getLogger("clinxai.runtime")


def use_threads(threads: int) -> None:
    """What every torch stage sets first: `threads` intra-op threads and `keep_freed_memory`."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    keep_freed_memory()


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 32 MiB in the process instead of returning them to the kernel.

    A torch pass on CPU allocates and frees activations of a few MiB each; glibc hands such blocks back (munmap,
    heap trims) and the next batch faults the same memory in again page by page, zero-filled by the kernel: 0.4-1.3
    million page faults and 1-4 s of system time in a glioma demo job of feature removal or training. The same
    setting as glibc's environment variables in USER_SETTINGS; a user who sets any of them, or these tunables in
    `GLIBC_TUNABLES`, keeps theirs. Freed memory stays with the job until it ends (peak RSS measured unchanged on the
    demo's jobs; fragmentation could raise it in principle). Returns whether the setting was applied (False on
    another C library or platform)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(k in os.environ for k in USER_SETTINGS) or any(t in tunables for t in USER_TUNABLES):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version  # glibc only: the parameter numbers are glibc's
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.warning("glibc refused the allocator settings; freed memory is returned as usual")
    return ok
