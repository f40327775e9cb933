"""nutpie on the PyMC model: ``nutpie.compile_pymc_model`` (numba backend) + ``nutpie.sample``.

2 chains × 1000 tune + 1000 draws, nutpie's defaults otherwise (its diagonal mass matrix
adaptation from gradients, target acceptance 0.8, maximum tree depth 10), the chains in two
threads (``cores=2``). The model is compiled once per benchmark model (``compile_seconds`` of
the first replication: PyMC graph + numba compilation); later replications swap their data in
with ``CompiledModel.with_data`` (no recompilation; its small cost is their compile_seconds).
Only the parameters the estimands need are stored (``var_names``; the latent scores are
sampled but not kept).
"""

from __future__ import annotations

import time

import numpy as np
import nutpie

from comparators import FitResult
from comparators.models import CHAINS, DRAWS, WARMUP
from comparators.pymc_models import build, data_values, fit_result

CORES = 2
BACKEND = "numba"
SETTINGS = (
    f"nutpie {nutpie.__version__} ({BACKEND} backend) on the PyMC model, {CHAINS} chains × "
    f"{WARMUP} tune + {DRAWS} draws, defaults otherwise, cores={CORES} (threads)"
)
_KEEP = {
    "latent_interaction": ["a1", "b", "phi_x", "psi_m", "psi_y", "theta", "lam_free"],
    "cfa_ordinal": ["lam_free", "tau", "var_f", "corr"],
}
_COMPILED: dict[str, object] = {}


def fit(model_name: str, data: dict[str, np.ndarray], seed: int) -> FitResult:
    """Fit one data set (compiling on the first call per model)."""
    t0 = time.perf_counter()
    if model_name not in _COMPILED:
        model = build(model_name, data)
        _COMPILED[model_name] = nutpie.compile_pymc_model(
            model, backend=BACKEND, var_names=_KEEP[model_name]
        )
        compiled = _COMPILED[model_name]
    else:
        compiled = _COMPILED[model_name].with_data(**data_values(model_name, data))
    compile_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    idata = nutpie.sample(
        compiled,
        draws=DRAWS,
        tune=WARMUP,
        chains=CHAINS,
        cores=CORES,
        seed=seed,
        progress_bar=False,
    )
    sampling_seconds = time.perf_counter() - t1
    return fit_result(model_name, idata, sampling_seconds, compile_seconds)
