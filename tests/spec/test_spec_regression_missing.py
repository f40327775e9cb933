"""The default study's model (conf/model/regression_missing.yaml): its data and estimators."""

import jax
import numpy as np
import pytest
from conftest import regression_missing

FAMILY, ESTIMATORS, SETTING = regression_missing(N=20_000)
PARAMETERS = ("y~1", "y~x", "y~z", "y~~y")


def test_the_default_study_s_estimators_keep_their_names_and_estimands():
    assert set(ESTIMATORS) == {"bayes_fiml", "bayes_fiml_marginal", "bayes_cc", "ols_cc", "bayes"}
    assert all(e.parameters == PARAMETERS for e in ESTIMATORS.values())


def test_truth():
    assert FAMILY.truth(SETTING) == {"y~1": 1.0, "y~x": 0.5, "y~z": 0.3, "y~~y": 1.0}
    assert FAMILY.truth({**SETTING, "sigma": 2.0})["y~~y"] == 4.0


@pytest.mark.parametrize("mechanism", ["MCAR", "MAR"])
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_missing_rate_is_as_declared(mechanism, rate):
    setting = {**SETTING, "mechanism": mechanism, "missing_rate": rate}
    observed = np.asarray(FAMILY.simulate(jax.random.key(1), setting)["observed:x"])
    assert abs((1 - observed.mean()) - rate) < 0.015


def test_mar_depends_on_y_and_mcar_does_not():
    mar = FAMILY.simulate(jax.random.key(2), SETTING)
    mcar = FAMILY.simulate(jax.random.key(2), {**SETTING, "mechanism": "MCAR"})

    def gap(d):
        y, obs = np.asarray(d["y"]), np.asarray(d["observed:x"])
        return y[~obs].mean() - y[obs].mean()

    assert gap(mar) > 0.8  # missing where y is high
    assert abs(gap(mcar)) < 0.06


def test_ols_cc_recovers_parameters_under_mcar_and_is_biased_under_mar():
    ols = ESTIMATORS["ols_cc"]
    mcar = ols.fit(FAMILY.simulate(jax.random.key(3), {**SETTING, "mechanism": "MCAR"}), 0.95)
    truth = FAMILY.truth(SETTING)
    for name, est in mcar.items():
        assert abs(est.estimate - truth[name]) < 4 * est.se, name
        assert est.lower < est.estimate < est.upper
    mar = ols.fit(FAMILY.simulate(jax.random.key(3), SETTING), 0.95)
    assert mar["y~x"].estimate < truth["y~x"] - 5 * mar["y~x"].se


def test_ols_cc_raises_with_too_few_complete_cases():
    data = FAMILY.simulate(jax.random.key(4), {**SETTING, "N": 3})
    with pytest.raises(ValueError, match="complete cases"):
        ESTIMATORS["ols_cc"].fit(data, 0.95)


@pytest.mark.slow
def test_integrating_out_the_missing_x_leaves_the_posterior_as_it_was():
    """bayes_fiml (missing x sampled) and bayes_fiml_marginal (integrated out): one posterior.

    The log densities differ by the normalising constant of the integrated x only (the exact
    check: tests/spec/test_spec_estimator_kinds.py), so the two posteriors of the 7 shared
    parameters agree up to Monte Carlo error."""
    from simstudy.config import SamplerSettings
    from simstudy.engine import chees
    from simstudy.engine.summary import summarise_draws

    priors = {"coef_sd": 10.0, "sigma_scale": 5.0}
    dataset = FAMILY.simulate(jax.random.key(4), {**SETTING, "N": 300})
    settings = SamplerSettings(name="chees", chains=4, warmup=200, draws=500)
    fits = {}
    for name in ("bayes_fiml", "bayes_fiml_marginal"):
        est = ESTIMATORS[name]
        data = est.data(dataset, priors)
        fits[name] = summarise_draws(
            chees.prepare(est, data, settings)(jax.random.key(5), data).draws, 0.95
        )
    for p in PARAMETERS:
        a, b = fits["bayes_fiml"][p], fits["bayes_fiml_marginal"][p]
        mcse = np.hypot(a.se / np.sqrt(a.ess_bulk), b.se / np.sqrt(b.ess_bulk))
        assert abs(a.estimate - b.estimate) < 5 * mcse, (p, a, b)
        assert b.se == pytest.approx(a.se, rel=0.15), (p, a, b)
