# Per-replication time of the latent interaction Gibbs fit (N = 500, 2 x (500 + 4000) sweeps)
# one at a time (width 1) or w at a time in one program:
#   .venv/bin/python benchmarks/vectorize_gibbs.py 8
import sys
import time

import jax

sys.path.insert(0, "tests")
from conftest import LATENT_PARAMS

from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.models import latent_interaction as li

setting = {**LATENT_PARAMS, "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
priors = {"coef_sd": 10.0, "var_shape": 2.0, "var_scale": 0.5}
settings = SamplerSettings(name="gibbs", chains=2, warmup=500, draws=4000)
width = int(sys.argv[1])
datasets = [li.simulate(jax.random.key(r), setting) for r in range(width)]
keys = [jax.random.key(100 + r) for r in range(width)]
if width == 1:
    run = gibbs.prepare(li.BAYES, datasets[0], settings, priors)
    t = time.perf_counter()
    run(keys[0], datasets[0])
    t = time.perf_counter() - t
else:
    run = gibbs.prepare_batch(li.BAYES, datasets, settings, priors, width)
    t = time.perf_counter()
    run(keys)
    t = time.perf_counter() - t
print(f"width {width}: {t:.2f} s total, {t / width:.3f} s per replication")
