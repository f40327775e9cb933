"""PyMC's default sampler: ``pm.sample`` (NUTS) with its defaults, 2 chains on 2 cores.

``pm.sample(draws=1000, tune=1000, chains=2, cores=2, random_seed=seed)``: init
``"jitter+adapt_diag"``, target acceptance 0.8, maximum tree depth 10, convergence checks on,
the chains in two worker processes (``cores=2`` is PyMC's default on this 2-core machine).

The model is built anew for every replication (as a user would). ``compile_seconds`` is the
model build plus constructing a NUTS step, which compiles the log density and its gradient
into PyTensor's on-disk C cache; ``pm.sample`` then builds its own step and compiles the same
graph again, now mostly from that cache: that remainder (graph rewriting, loading the cached
modules, starting and pickling to the two chain processes) is inside ``sampling_seconds``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pymc as pm

from comparators import FitResult
from comparators.models import CHAINS, DRAWS, WARMUP
from comparators.pymc_models import build, fit_result

CORES = 2
SETTINGS = (
    f"PyMC {pm.__version__} pm.sample defaults (NUTS, init jitter+adapt_diag, target_accept 0.8), "
    f"{CHAINS} chains × {WARMUP} tune + {DRAWS} draws, cores={CORES} (chains in parallel processes)"
)

logging.getLogger("pymc").setLevel(logging.ERROR)


def fit(model_name: str, data: dict[str, np.ndarray], seed: int) -> FitResult:
    """Fit one data set with ``pm.sample``'s defaults."""
    t0 = time.perf_counter()
    model = build(model_name, data)
    pm.NUTS(model=model)  # compiles logp + gradient (filling PyTensor's cache)
    compile_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    idata = pm.sample(
        draws=DRAWS,
        tune=WARMUP,
        chains=CHAINS,
        cores=CORES,
        random_seed=seed,
        progressbar=False,
        model=model,
    )
    sampling_seconds = time.perf_counter() - t1
    return fit_result(model_name, idata, sampling_seconds, compile_seconds)
