"""simstudy: Monte Carlo simulation studies of Bayesian latent-variable estimators."""

import os

__version__ = "0.1.0"

#: XLA's CPU flag that simstudy sets in every process that imports it, before JAX starts its
#: backend. XLA 0.10's concurrency-optimized scheduler deadlocks (every thread waiting, none
#: computing) on Pathfinder's L-BFGS loops vmapped over replications: ChEES fits of 8 data
#: sets of the default study at once hung, and ran with the flag (benchmarks/hmc_batched.md).
#: Measured cost on the latent interaction Gibbs sweep: within 3% (144 vs 148 us per sweep).
XLA_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        # first: XLA stops reading flags at a token that is not one ("--" missing)
        os.environ["XLA_FLAGS"] = f"{XLA_SCHEDULER_FLAG} {flags}".strip()


_set_xla_flags()
