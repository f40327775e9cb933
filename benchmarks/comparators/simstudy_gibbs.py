"""simstudy's own estimator: the ``bayes`` conditional-update (Gibbs-type) sampler.

This is the hook for the simstudy engine: the estimator of the simstudy model family
(``family(spec).estimators_for(structure)["bayes"]``) run by
``simstudy.engine.replicate.posterior_draws`` with the sampler settings of
conf/sampler/gibbs.yaml (2 chains × 500 warm-up + 4000 draws) and the priors of the model's
yaml. ``posterior_draws`` compiles outside its timing (once per data shape, cached for the life
of the process) and returns the sampling seconds; the rest of the call is compilation.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from comparators import FitResult
from comparators.models import family, spec
from simstudy.config import SamplerSettings
from simstudy.engine.replicate import posterior_draws

_CONF = Path(__file__).resolve().parents[2] / "conf" / "sampler" / "gibbs.yaml"
_FIELDS = {f.name for f in dataclasses.fields(SamplerSettings)}
SAMPLER = SamplerSettings(
    **{k: v for k, v in yaml.safe_load(_CONF.read_text()).items() if k in _FIELDS}
)
SETTINGS = (
    f"simstudy bayes estimator, {SAMPLER.name} sampler (conf/sampler/gibbs.yaml): "
    f"{SAMPLER.chains} chains × {SAMPLER.warmup} warm-up + {SAMPLER.draws} draws, float32"
)


def fit(model_name: str, data: dict[str, np.ndarray], seed: int) -> FitResult:
    """Fit one data set with simstudy's ``bayes`` estimator."""
    s = spec(model_name)
    estimator = family(s).estimators_for(s.structure)["bayes"]
    dataset = {k: jnp.asarray(v) for k, v in data.items()}
    t0 = time.perf_counter()
    draws, seconds = posterior_draws(estimator, dataset, jax.random.key(seed), SAMPLER, s.priors)
    total = time.perf_counter() - t0
    return FitResult(
        draws={p: np.asarray(draws.draws[p]) for p in s.parameters},
        sampling_seconds=seconds,
        compile_seconds=total - seconds,
        n_divergent=-1,
    )
