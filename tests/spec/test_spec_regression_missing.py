import jax
import numpy as np
import pytest
from conftest import REGRESSION_PARAMS

from simstudy.models import MODELS
from simstudy.models import regression_missing as rm

SETTING = {**REGRESSION_PARAMS, "N": 20_000, "missing_rate": 0.3, "mechanism": "MAR"}


def test_registered_with_its_estimators():
    family = MODELS["regression_missing"]
    assert set(family.estimators) == {"bayes_fiml", "bayes_cc", "ols_cc", "bayes_fiml_marginal"}
    assert all(e.parameters == rm.PARAMETERS for e in family.estimators.values())


def test_shapes_and_masks():
    data = rm.simulate(jax.random.key(0), {**SETTING, "N": 37})
    assert {k: v.shape for k, v in data.items()} == {
        k: (37,) for k in ("y", "z", "x", "x_observed")
    }
    assert data["x_observed"].dtype == bool
    assert np.all(np.asarray(data["x"])[~np.asarray(data["x_observed"])] == 0.0)


def test_truth():
    assert rm.truth(SETTING) == {"y~1": 1.0, "y~x": 0.5, "y~z": 0.3, "y~~y": 1.0}
    assert rm.truth({**SETTING, "sigma": 2.0})["y~~y"] == 4.0


def test_same_key_same_data_other_key_other_data():
    a = rm.simulate(jax.random.key(5), {**SETTING, "N": 50})
    b = rm.simulate(jax.random.key(5), {**SETTING, "N": 50})
    c = rm.simulate(jax.random.key(6), {**SETTING, "N": 50})
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["y"], c["y"])


@pytest.mark.parametrize("mechanism", ["MCAR", "MAR"])
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_missing_rate_is_as_declared(mechanism, rate):
    data = rm.simulate(jax.random.key(1), {**SETTING, "mechanism": mechanism, "missing_rate": rate})
    observed = np.asarray(data["x_observed"])
    assert abs((1 - observed.mean()) - rate) < 0.015


def test_mar_depends_on_y_and_mcar_does_not():
    mar = rm.simulate(jax.random.key(2), SETTING)
    mcar = rm.simulate(jax.random.key(2), {**SETTING, "mechanism": "MCAR"})

    def gap(d):
        y, obs = np.asarray(d["y"]), np.asarray(d["x_observed"])
        return y[~obs].mean() - y[obs].mean()

    assert gap(mar) > 0.8  # missing where y is high
    assert abs(gap(mcar)) < 0.06


def test_ols_cc_recovers_parameters_under_mcar_and_is_biased_under_mar():
    mcar = rm.ols_complete_cases(
        rm.simulate(jax.random.key(3), {**SETTING, "mechanism": "MCAR"}), 0.95
    )
    truth = rm.truth(SETTING)
    for name, est in mcar.items():
        assert abs(est.estimate - truth[name]) < 4 * est.se, name
        assert est.lower < est.estimate < est.upper
    mar = rm.ols_complete_cases(rm.simulate(jax.random.key(3), SETTING), 0.95)
    assert mar["y~x"].estimate < truth["y~x"] - 5 * mar["y~x"].se


def test_ols_cc_raises_with_too_few_complete_cases():
    data = rm.simulate(jax.random.key(4), {**SETTING, "N": 3})
    with pytest.raises(ValueError, match="complete cases"):
        rm.ols_complete_cases(data, 0.95)


def test_marginal_density_is_the_augmented_density_with_the_missing_x_integrated_out():
    """The cheap, exact check behind bayes_fiml_marginal: for any parameters, its log density
    equals bayes_fiml's with the missing x's standard-normal x_raw integrated out (one missing
    value, Gauss-Hermite quadrature; the observed positions' x_raw held at 0, a N(0, 1) term
    each). Equal densities, so one posterior: the sampled version is the slow test below."""
    from numpyro.infer.util import log_density

    data = rm.simulate(jax.random.key(3), {**SETTING, "N": 6, "missing_rate": 0.0})
    observed = np.ones(6, bool)
    observed[2] = False  # x of row 2 is missing
    kwargs = {
        **rm.ESTIMATORS["bayes_fiml"].data(data, {"coef_sd": 10.0, "sigma_scale": 5.0}),
        "x_observed": jax.numpy.asarray(observed),
    }
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # weight exp(-t^2 / 2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = dict(zip(("b0", "b1", "b2", "g0", "g1"), rng.normal(0, 1, 5), strict=True))
        theta.update(sigma=rng.uniform(0.5, 2.0), tau=rng.uniform(0.5, 2.0))
        theta = {k: jax.numpy.float32(v) for k, v in theta.items()}
        marginal = float(log_density(rm.fiml_marginal_model, (), kwargs, theta)[0])

        def augmented(t, theta=theta):
            x_raw = jax.numpy.zeros(6).at[2].set(t)
            return float(log_density(rm.fiml_model, (), kwargs, {**theta, "x_raw": x_raw})[0])

        logs = np.array([augmented(t) + t**2 / 2 for t in nodes])
        integrated = np.log(np.sum(weights * np.exp(logs - logs.max()))) + logs.max()
        held = 5 * (-0.5 * np.log(2 * np.pi))  # x_raw = 0 at the five observed positions
        assert integrated - held == pytest.approx(marginal, abs=2e-3), theta


@pytest.mark.slow
def test_integrating_out_the_missing_x_leaves_the_posterior_as_it_was():
    """bayes_fiml (missing x sampled) and bayes_fiml_marginal (integrated out): one posterior.

    The log densities differ by the normalising constant of the integrated x only, so the two
    posteriors of the 7 shared parameters agree up to Monte Carlo error."""
    from simstudy.config import SamplerSettings
    from simstudy.engine import chees
    from simstudy.engine.summary import summarise_draws

    priors = {"coef_sd": 10.0, "sigma_scale": 5.0}
    dataset = rm.simulate(jax.random.key(4), {**SETTING, "N": 300})
    settings = SamplerSettings(name="chees", chains=4, warmup=200, draws=500)
    fits = {}
    for name in ("bayes_fiml", "bayes_fiml_marginal"):
        est = rm.ESTIMATORS[name]
        data = est.data(dataset, priors)
        fits[name] = summarise_draws(
            chees.prepare(est, data, settings)(jax.random.key(5), data).draws, 0.95
        )
    for p in rm.PARAMETERS:
        a, b = fits["bayes_fiml"][p], fits["bayes_fiml_marginal"][p]
        mcse = np.hypot(a.se / np.sqrt(a.ess_bulk), b.se / np.sqrt(b.ess_bulk))
        assert abs(a.estimate - b.estimate) < 5 * mcse, (p, a, b)
        assert b.se == pytest.approx(a.se, rel=0.15), (p, a, b)
