"""JAX's Threefry generator lowered without its loop on the CPU.

JAX lowers ``threefry2x32`` on the CPU as a loop of five iterations (smaller programs to
compile) and elsewhere written out. In a sweep, whose steps draw a few hundred numbers at a
time, each iteration's dispatch costs more than the hash itself: the written-out form is the
same function (the same bits: tested against Random123's known answers and against the loop)
at a fraction of the time (``benchmarks/threefry_lowering.py``). :func:`unroll_on_cpu` makes
the CPU take the form every other platform takes; ``SIMSTUDY_THREEFRY=loop`` leaves JAX's.
"""

from __future__ import annotations

import os

import jax

#: The environment variable that keeps JAX's own (looped) CPU lowering when set to ``loop``.
ENV = "SIMSTUDY_THREEFRY"


def unroll_on_cpu() -> bool:
    """Register the written-out Threefry lowering for the CPU; True where it took effect.

    It reaches into JAX's private modules: where they have moved (another JAX version), JAX's
    own lowering stays, which draws the same numbers more slowly.
    """
    if os.environ.get(ENV, "").lower() == "loop":
        return False
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as tf

        hash_fn, primitive = tf._threefry2x32_lowering, tf.threefry2x32_p
    except (ImportError, AttributeError):
        return False

    def written_out(key1, key2, x1, x2):
        bits = hash_fn(key1, key2, x1, x2, use_rolled_loops=False)
        # computed once: else XLA may fuse the elementwise hash into every consumer of its
        # bits and redo it there (a sweep measured 1.8x slower that way)
        return list(jax.lax.optimization_barrier(tuple(bits)))

    mlir.register_lowering(primitive, mlir.lower_fun(written_out, multiple_results=True), "cpu")
    return True


UNROLLED = unroll_on_cpu()
