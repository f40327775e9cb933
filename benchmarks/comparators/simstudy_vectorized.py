"""simstudy's ``bayes`` estimator with replications fitted together (``sampler.vectorize``).

The same sampler and settings as :mod:`comparators.simstudy_gibbs`, but the condition's data
sets are fitted ``width`` at a time in one compiled program (vmap over replications × chains),
as a study with ``sampler.vectorize`` does: ``width`` is ``sampler.vectorize`` of
conf/sampler/gibbs.yaml, or the number of replications in the run when that is smaller (a
study pads the last group to the full width instead). Per replication the sampling and the
compile seconds are the group's divided by the replications in it.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from comparators import FitResult
from comparators.models import family, spec
from comparators.simstudy_gibbs import SAMPLER
from simstudy.engine import gibbs

SETTINGS = (
    f"simstudy bayes estimator as simstudy_gibbs ({SAMPLER.chains} chains × {SAMPLER.warmup} "
    f"warm-up + {SAMPLER.draws} draws, float32), replications fitted together: "
    f"min(sampler.vectorize = {SAMPLER.vectorize}, reps) per compiled program"
)


def fit_many(
    model_name: str, datas: list[dict[str, np.ndarray]], seeds: list[int]
) -> list[FitResult]:
    """Fit every data set of the condition, ``width`` at a time."""
    s = spec(model_name)
    estimator = family(s).estimators_for(s.structure)["bayes"]
    datasets = [{k: jnp.asarray(v) for k, v in d.items()} for d in datas]
    width = min(SAMPLER.vectorize, len(datasets))
    results: list[FitResult] = []
    for first in range(0, len(datasets), width):
        group = datasets[first : first + width]
        keys = [jax.random.key(seed) for seed in seeds[first : first + width]]
        t0 = time.perf_counter()
        run = gibbs.prepare_batch(estimator, group, SAMPLER, s.priors, width)
        t1 = time.perf_counter()
        draws = run(keys)
        t2 = time.perf_counter()
        for d in draws:
            results.append(
                FitResult(
                    draws={p: np.asarray(d.draws[p]) for p in s.parameters},
                    sampling_seconds=(t2 - t1) / len(group),
                    compile_seconds=(t1 - t0) / len(group),
                    n_divergent=-1,
                    note=f"fitted {len(group)} together ({width} lanes)",
                )
            )
    return results
