"""ChEES-HMC: recovers the regression, compiles once, and gives a replication the same draws in
any batch and lane."""

import jax
import numpy as np
import pytest
from conftest import BACKEND_COMPILE, JAXPR_TRACE, compile_events, regression_missing

from simstudy.cli import load_plan, main
from simstudy.config import SamplerSettings
from simstudy.engine import chees
from simstudy.engine.summary import summarise_draws
from simstudy.errors import InputError

FAMILY, ESTIMATORS, SETTING = regression_missing()
PARAMETERS = ESTIMATORS["bayes_cc"].parameters
PRIORS = {"coef_sd": 10.0, "sigma_scale": 5.0}
FAST = SamplerSettings(name="chees", chains=4, warmup=100, draws=100, target_accept=0.651)


def _data(name: str, seed: int, n: int) -> dict:
    return ESTIMATORS[name].data(FAMILY.simulate(jax.random.key(seed), {**SETTING, "N": n}), PRIORS)


# slow tier: the batch/lane test below compares ChEES posteriors by default
@pytest.mark.slow
def test_chees_recovers_parameters_at_large_n():
    estimator = ESTIMATORS["bayes_fiml"]  # 1,507 dimensions: the missing x are sampled
    setting = {**SETTING, "N": 1500, "mechanism": "MCAR"}
    data = estimator.data(FAMILY.simulate(jax.random.key(0), setting), PRIORS)
    draws = chees.prepare(estimator, data, FAST)(jax.random.key(1), data)
    assert draws.draws["y~x"].shape == (4, 100)
    summary = summarise_draws(draws.draws, 0.95)
    for parameter, true in FAMILY.truth(setting).items():
        s = summary[parameter]
        assert abs(s.estimate - true) < 4 * s.se + 0.01, (parameter, s)
        assert s.rhat < 1.05 and s.ess_bulk > 100, (parameter, s)


# slow tier: three ChEES programs; by default lane invariance is checked on the Gibbs driver
# (tests/test_vectorize.py) and a padded ChEES lane replays (test_a_study_on_chees_...)
@pytest.mark.slow
def test_a_replication_gets_the_same_draws_in_any_batch_and_lane():
    est = ESTIMATORS["bayes_cc"]
    data = [_data("bayes_cc", r, 80) for r in range(4)]
    keys = [jax.random.key(100 + r) for r in range(4)]
    first = chees.prepare_batch(est, data[:3], FAST, 3)(keys[:3])
    alone = chees.prepare_batch(est, data[2:3], FAST, 3)(keys[2:3])  # padded lanes
    other = chees.prepare_batch(est, [data[2], data[3]], FAST, 3)(keys[2:])
    for name in PARAMETERS:
        assert np.array_equal(first[2].draws[name], alone[0].draws[name])
        assert np.array_equal(first[2].draws[name], other[0].draws[name])
    assert not np.array_equal(first[0].draws["y~x"], first[1].draws["y~x"])
    # the batched program is the single program vmapped: the same posterior (to rounding)
    single = chees.prepare(est, data[2], FAST)(keys[2], data[2])
    got, want = summarise_draws(first[2].draws, 0.95), summarise_draws(single.draws, 0.95)
    for name in PARAMETERS:
        assert abs(got[name].estimate - want[name].estimate) < 0.2 * want[name].se
    # a second replication of the condition runs the single program again, compiling nothing
    with compile_events(BACKEND_COMPILE, JAXPR_TRACE) as events:
        chees.prepare(est, data[3], FAST)(keys[3], data[3])
        assert not events, events
        jax.jit(lambda x: x + 1)(np.arange(3.0))
        assert events  # the listener sees a new program


def test_chees_needs_two_chains_and_a_numpyro_estimator(tmp_path):
    with pytest.raises(InputError, match=r"sampler\.chains"):
        load_plan(["sampler=chees", "sampler.chains=1"])
    with pytest.raises(InputError, match=r"sampler\.name.*'gibbs'"):
        load_plan(["study=latent_interaction", "sampler=chees"])
    assert load_plan(["sampler=chees"]).sampler.name == "chees"
    assert load_plan(["study=latent_interaction"]).sampler.name == "gibbs"  # picked for it
    assert main(["run", "sampler=chees", "sampler.chains=1", f"results_dir={tmp_path}"]) == 2
    assert not any(tmp_path.iterdir())  # refused before any work


# slow tier (default-tier time); the cheap check of the same: the same draws in any batch and
# lane: test_a_replication_gets_the_same_draws_in_any_batch_and_lane
@pytest.mark.slow
def test_a_study_on_chees_vectorized_replays_a_padded_lane(run_cli, tmp_path, capsys):
    rc, out = run_cli(
        "sampler=chees",
        "study.reps=4",
        "study.estimators=[bayes_cc,ols_cc]",
        "study.factors.N=[80]",  # the width-3 program of the batch-and-lane test above
        "study.factors.mechanism=[MCAR]",
        "executor=synchronous",
        "executor.batch_size=3",
        "sampler.vectorize=3",
        "sampler.warmup=100",
        "sampler.draws=100",
    )
    assert rc == 0, out
    assert "2 padded lanes per condition" in out
    study = tmp_path / "results" / "missing_x"
    cid = next((study / "replications").iterdir()).name.split("=", 1)[1]
    capsys.readouterr()
    saved = tmp_path / "saved"
    assert main(["replay", str(study), "--condition", cid, "--rep", "1", "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "identical to the stored replication" in out
    # the saved posterior comes from the same width-3 program: its summary is the lane's
    assert "bayes_cc: 4 chains x 100 draws of 4 estimands; their summary is the replayed" in out


HANG = """
import jax
from simstudy.cli import compose_raw
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.engine import chees
from simstudy.engine.replicate import setting_of
from simstudy.models import family_of, model_infos
plan = plan_from_dict(compose_raw(["study=missing_x"]), model_infos())
family = family_of(plan.model)
setting = setting_of(plan, {"N": 250, "missing_rate": 0.3, "mechanism": "MAR"})
est = family.estimators_for(plan.model.structure)["bayes_fiml"]
data = [est.data(family.simulate(jax.random.key(20261201 + r), setting), %r) for r in range(8)]
keys = [jax.random.key(20261211 + r) for r in range(8)]
settings = SamplerSettings(name="chees", chains=4, warmup=20, draws=20)
fits = chees.prepare_batch(est, data, settings, 8)(keys)
print("fitted", len(fits))
"""


def test_importing_simstudy_turns_the_deadlocking_scheduler_off_in_a_worker():
    """The cheap check of the property below: a process with a Dask worker's XLA_FLAGS that
    imports simstudy has the scheduler flag first, before any flag XLA might stop at."""
    import os
    import subprocess
    import sys

    from simstudy import XLA_SCHEDULER_FLAG
    from simstudy.execute.pools import WORKER_ENV

    code = "import os, simstudy; print(os.environ['XLA_FLAGS'])"
    env = {**os.environ, **WORKER_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == XLA_SCHEDULER_FLAG
    assert WORKER_ENV["XLA_FLAGS"] in out.stdout


@pytest.mark.slow
def test_vmapped_pathfinder_starts_do_not_deadlock_xla():
    """These 8 data sets, fitted together, hung XLA's CPU runtime (all threads waiting) under
    its concurrency-optimized scheduler; importing simstudy turns that scheduler off (also in
    a worker, whose XLA_FLAGS are set)."""
    import os
    import subprocess
    import sys

    from simstudy.execute.pools import WORKER_ENV

    env = {**os.environ, **WORKER_ENV, "SIMSTUDY_JAX_CACHE": "off"}  # as a Dask worker
    code = HANG % (PRIORS,)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fitted 8" in out.stdout
