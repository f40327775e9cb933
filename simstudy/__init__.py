"""simstudy: Monte Carlo simulation studies of Bayesian latent-variable estimators."""

import os

__version__ = "0.1.0"

#: XLA's CPU flag that simstudy sets in every process that imports it, before JAX starts its
#: backend: XLA's concurrency-optimized scheduler deadlocked on Pathfinder's L-BFGS loops
#: vmapped over replications (benchmarks/README.md#xla-flags has the case and its cost).
XLA_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
#: Single-threaded Eigen kernels in every process, workers, the synchronous executor, replay
#: and fit alike: multi-threaded ones split sums by the number of threads, so a replication's
#: draws differed (at 1e-3) between a worker and the driver.
XLA_EIGEN_FLAG = "--xla_cpu_multi_thread_eigen=false"


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in (XLA_EIGEN_FLAG, XLA_SCHEDULER_FLAG):
        if flag.split("=")[0] not in flags:
            # first: XLA stops reading flags at a token that is not one ("--" missing)
            flags = f"{flag} {flags}".strip()
    os.environ["XLA_FLAGS"] = flags


_set_xla_flags()

from simstudy.api import FitResult, Study, fit  # noqa: E402  (after the flags: no JAX yet)
from simstudy.errors import InputError  # noqa: E402

__all__ = ["FitResult", "InputError", "Study", "__version__", "fit"]
