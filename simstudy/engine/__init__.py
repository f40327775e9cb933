"""Fitting: samplers, compile-once caches, posterior summaries, replications."""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: Bytes the persistent cache keeps (least recently used entries go first).
CACHE_MAX_BYTES = 4 * 2**30


def configure_jax() -> None:
    """Turn on JAX's persistent compilation cache (shared by workers and later runs).

    The directory is under ``$SIMSTUDY_JAX_CACHE`` or ``~/.cache/simstudy/jax``; set
    ``SIMSTUDY_JAX_CACHE=off`` to disable it. The cache has a size limit: only then does JAX
    take its file lock around reads and writes, and without the lock a process (a Dask worker
    beside others, a second run) can read an entry another is still writing and crash in
    XLA deserialising it (a segfault).
    """
    where = os.environ.get("SIMSTUDY_JAX_CACHE", str(Path.home() / ".cache" / "simstudy" / "jax"))
    if where.lower() == "off" or jax.config.jax_compilation_cache_dir:
        return
    # entries of a cache without a size limit lack the access times eviction reads: a folder
    # of their own (per JAX version, whose entries another cannot read anyway)
    jax.config.update("jax_compilation_cache_dir", str(Path(where) / f"lru-jax{jax.__version__}"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


def persistent_cache_dir() -> str | None:
    """The persistent compilation cache's directory in this process; None when it is off."""
    return jax.config.jax_compilation_cache_dir or None


configure_jax()

from simstudy.engine import threefry  # noqa: E402,F401  the CPU's Threefry written out
