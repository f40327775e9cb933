"""Fitting: samplers, compile-once caches, posterior summaries, replications."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def configure_jax() -> None:
    """Turn on JAX's persistent compilation cache (shared by workers and later runs).

    The directory is ``$SIMSTUDY_JAX_CACHE`` or ``~/.cache/simstudy/jax``; set
    ``SIMSTUDY_JAX_CACHE=off`` to disable it.
    """
    where = os.environ.get("SIMSTUDY_JAX_CACHE", str(Path.home() / ".cache" / "simstudy" / "jax"))
    if where.lower() == "off" or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def persistent_cache_dir() -> str | None:
    """The persistent compilation cache's directory in this process; None when it is off."""
    return jax.config.jax_compilation_cache_dir or None


configure_jax()
