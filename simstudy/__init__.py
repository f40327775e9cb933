"""simstudy: Monte Carlo simulation studies of Bayesian latent-variable estimators."""

import os

__version__ = "0.1.0"

#: XLA's CPU flag that simstudy sets in every process that imports it, before JAX starts its
#: backend: XLA's concurrency-optimized scheduler deadlocked on Pathfinder's L-BFGS loops
#: vmapped over replications (benchmarks/README.md#xla-flags has the case and its cost).
XLA_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        # first: XLA stops reading flags at a token that is not one ("--" missing)
        os.environ["XLA_FLAGS"] = f"{XLA_SCHEDULER_FLAG} {flags}".strip()


_set_xla_flags()
