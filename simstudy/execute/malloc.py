"""Keeping freed memory in a worker process instead of handing it back to the kernel.

XLA's CPU runtime allocates and frees buffers of a few hundred kilobytes to megabytes while a
compiled program runs. Under glibc's default thresholds, in a Dask worker (tasks run on a
thread of their own) those blocks went back to the kernel when freed, so the latent
interaction sampler kept touching fresh pages: two workers took 160,000-190,000 minor page
faults a second and spent 18-20% of their CPU time in the kernel
(``benchmarks/malloc_workers.py``, ``benchmarks/results/malloc_workers.md``; 1.5-1.8% with
this setting, the batches 10-15% faster). Raising glibc's mmap and trim thresholds keeps the
blocks in the heap for reuse, at 40-100 MB more peak resident memory per worker there.
A worker applies it through :class:`~simstudy.execute.pinning.KeepFreedMemory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks below this come from the heap (glibc's largest allowed mmap threshold on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before trimming, and extra asked for when growing.
TRIM_THRESHOLD = 512 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process (see the module docstring).

    Returns whether every setting took (False off glibc, e.g. macOS or musl: nothing changes).
    """
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - no C library found
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False  # pragma: no cover - not glibc
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    settings += ((M_TOP_PAD, TOP_PAD),)
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
