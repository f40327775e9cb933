"""The CFA models as specs (conf/model/cfa.yaml, cfa_ordinal.yaml): configs, DGM, truths, prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.covariance import inverse_wishart_covariance
from simstudy.cli import load_plan
from simstudy.config import SamplerSettings
from simstudy.design import expand_grid
from simstudy.engine.replicate import fit_estimator, key_from_seed, setting_of
from simstudy.errors import InputError
from simstudy.models import family_of
from simstudy.spec import dgm
from simstudy.spec.family import family
from simstudy.spec.info import normalise


def _setting(plan, **factors):
    return setting_of(plan, {**expand_grid(plan.factors, plan.exclude)[0], **factors})


def test_the_cfa_reports_the_marker_parameterisation_of_standardized_loadings():
    plan = load_plan(["model=cfa", "study.estimators=[bayes]"])
    truth = family_of(plan.model).truth(_setting(plan))
    assert truth["visual=~x2"] == 1.0 and "visual=~x1" not in truth
    assert truth["visual~~visual"] == pytest.approx(0.49)
    assert truth["visual~~textual"] == pytest.approx(0.147)
    assert truth["x9~~x9"] == pytest.approx(0.51)


def test_the_ordinal_cfa_reports_std_all_of_the_population():
    plan = load_plan(["study=cfa_ordinal"])
    fam = family_of(plan.model)
    truth = fam.truth(_setting(plan))
    cuts = stats.norm.ppf([0.2, 0.4, 0.6, 0.8])
    assert len(truth) == 15 + 3 + 60  # loadings (markers' too), correlations, thresholds
    assert all(truth[f"f{1 + j // 5}=~x{j + 1}"] == pytest.approx(0.7) for j in range(15))
    assert truth["f1~~f3"] == pytest.approx(0.3) and "f1~~f1" not in truth
    assert [truth[f"x7|t{k}"] for k in range(1, 5)] == pytest.approx(cuts)
    for name in ("bayes", "bayes_hmc"):  # both back ends report the same estimands
        assert fam.estimators_for(plan.model.structure)[name].parameters == tuple(truth)


# logit in the slow tier (default-tier time): the link's draw of categories is the simulator's,
# tested by tests/spec/test_spec_ordered.py
@pytest.mark.parametrize("link", ["probit", pytest.param("logit", marks=pytest.mark.slow)])
def test_the_ordinal_dgm_cuts_equiprobable_categories_with_x1_complete(link):
    logit = ["model.link=logit", "model.params.resvar=3.2898681336964524"]
    extra = [] if link == "probit" else logit
    plan = load_plan(["study=cfa_ordinal", *extra])
    setting = _setting(plan, N=20_000, missing_rate=0.3)
    data = family_of(plan.model).simulate(jax.random.key(0), setting)
    assert np.asarray(data[dgm.observed_key("x1")]).all()
    seen = np.asarray(data[dgm.observed_key("x9")])
    assert abs(1 - seen.mean() - 0.3) < 0.02
    codes = np.asarray(data["x9"])[seen]
    share = np.bincount(codes.astype(int), minlength=5) / codes.size
    # MAR given x1 takes more of x9's high categories out: the complete x1 shows the DGM
    x1 = np.bincount(np.asarray(data["x1"]).astype(int), minlength=5) / 20_000
    assert np.abs(x1 - 0.2).max() < 0.015, x1
    assert share.min() > 0.1, share


def test_the_continuous_dgm_has_the_standardized_correlations():
    plan = load_plan(["model=cfa", "study.estimators=[bayes]"])
    data = family_of(plan.model).simulate(
        jax.random.key(1), _setting(plan, N=20_000, missing_rate=0.0)
    )
    y = np.column_stack([np.asarray(data[f"x{j}"]) for j in (1, 2, 4)])
    r = np.corrcoef(y.T)
    assert r[0, 1] == pytest.approx(0.49, abs=0.02) and r[0, 2] == pytest.approx(0.147, abs=0.02)
    assert y.var(0) == pytest.approx([1, 1, 1], abs=0.04)


def test_a_bad_key_of_the_cfa_exits_2_naming_it(run_cli):
    rc, out = run_cli("model=cfa", "+model.structure.factors={f:[a,b]}")
    assert rc == 2 and "model.structure.factors" in out and "one of syntax" in out
    rc, out = run_cli("study=cfa_ordinal", "model.link=probits")
    assert rc == 2 and "model.link = 'probits'" in out


def test_the_inverse_wishart_update_is_its_conjugate_draw():
    """Nothing observed (no scatter, n = 0): InverseWishart(k + 2, s I), whose inverse has the
    Wishart mean (k + 2) / s I."""
    k, s = 3, 0.5
    draws = jax.jit(
        jax.vmap(lambda key: inverse_wishart_covariance(key, jnp.zeros((k, k)), 0.0, s))
    )(jax.random.split(jax.random.key(0), 4000))
    mean_inverse = np.linalg.inv(np.asarray(draws)).mean(0)
    np.testing.assert_allclose(mean_inverse, (k + 2) / s * np.eye(k), atol=0.4)


@pytest.mark.parametrize(
    ("syntax", "said"),
    [
        ("f =~ y1 + y2 + y3\n", "one-factor block latent"),
        ("y ~ x + (1 + x | g)\n", "random-effect block"),
    ],
)
def test_the_inverse_wishart_takes_blocks_of_two_or_more_factors_only(syntax, said):
    families = {"residual": "inverse_gamma", "covariance": "inverse_wishart"}
    with pytest.raises(InputError) as err:
        normalise({"syntax": syntax, "prior_families": families})
    assert err.value.field == "model.prior_families.covariance"
    assert said in str(err.value)


def test_factor_covariance_priors_are_checked_where_the_config_is(run_cli):
    iw = "model.prior_families.covariance=inverse_wishart"
    plan = load_plan(["model=cfa", "study.estimators=[bayes]", iw])
    assert plan.model.structure["prior_families"]["covariance"] == "inverse_wishart"
    rc, out = run_cli("model=cfa", "study.estimators=[bayes_hmc]", iw)
    assert rc == 2 and "model.estimators.bayes_hmc.kind = 'hmc'" in out
    rc, out = run_cli("model=cfa", "model.prior_families.covariance=wishart")
    assert rc == 2 and "inverse_wishart" in out
    # flat factor variances (Mplus's default): the latent class's (-1, 0), gibbs only
    flat = ["+model.priors.latent_var_shape=-1", "+model.priors.latent_var_scale=0"]
    assert (
        load_plan(["model=cfa", "study.estimators=[bayes]", *flat]).model.priors["latent_var_shape"]
        == -1
    )
    rc, out = run_cli("model=cfa", "study.estimators=[bayes_hmc]", *flat)
    assert rc == 2 and "model.priors.latent_var_shape = -1" in out


# slow tier (a compile); the default tier checks the covariance block's update keeps its LKJ
# prior in tests/blocks/test_blocks_geweke.py::test_lkj_covariance_keeps_its_prior
@pytest.mark.slow
@pytest.mark.parametrize("covariance", ["inverse_gamma", "inverse_wishart"])
def test_a_cfa_with_nothing_observed_samples_its_factor_correlations_prior(covariance):
    """No item observed: std.all's factor correlations are the prior's through every move of
    the sweep: for three factors both LKJ(1) and InverseWishart(5, s I) give (r + 1) / 2 ~
    Beta(1.5, 1.5) (density (1 - r^2)^(1/2)), mean 0 and SD 0.5."""
    syntax = "f =~ u1 + u2 + u3\ng =~ u4 + u5 + u6\nh =~ u7 + u8 + u9\n"
    items = [f"u{j}" for j in range(1, 10)]
    structure = normalise(
        {
            "syntax": syntax,
            "report": "std.all",
            "prior_families": {"residual": "inverse_gamma", "covariance": covariance},
        }
    )
    est = family(f"nothing_observed_cfa_{covariance}", structure).estimators_for(structure)["bayes"]
    n = 40
    data = {dgm.ROW_REAL: np.ones(n, bool)}
    for v in items:
        data[v], data[dgm.observed_key(v)] = np.zeros(n), np.zeros(n, bool)
    priors = {"coef_sd": 1.0, "var_shape": 4.0, "var_scale": 3.0, "lkj_eta": 1.0}
    sampler = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=3000)
    summaries, _, _ = fit_estimator(est, data, key_from_seed(3), sampler, priors, 0.95)
    for name in ("f~~g", "f~~h", "g~~h"):
        s = summaries[name]
        mcse = s.se / np.sqrt(s.ess_bulk)
        assert abs(s.estimate) < 4 * mcse + 0.02, (name, s)
        assert abs(s.se / 0.5 - 1) < 0.1 + 4 / np.sqrt(s.ess_bulk), (name, s)


# slow tier (two compiles and a NUTS run); the cheap checks of the same moves: the location
# move's and the items' scale move's targets against the log joint (tests/engine/steps/
# test_factor_location.py, test_ordered.py), the indicators' sums (test_measurement.py)
@pytest.mark.slow
def test_the_ordinal_cfa_sweep_agrees_with_nuts_on_one_data_set():
    """Two factors, six 4-category probit items, N = 400: the sweep (ordered items from sums,
    items' and factors' scale and location moves) and NUTS on the NumPyro model (categories'
    probabilities, no latent responses) give the same posterior means within 4 combined
    MCSE + 0.02 posterior SD, and SDs within 10% + 3 / sqrt(ESS) (the smaller ESS)."""
    from simstudy.spec import estimators as kinds
    from simstudy.spec import sweep
    from simstudy.spec.info import PRIOR_DEFAULTS
    from simstudy.spec.ir import from_syntax

    syntax = "f =~ u1 + u2 + u3\ng =~ u4 + u5 + u6"
    spec = from_syntax(syntax, ordered={f"u{j}": 4 for j in range(1, 7)})
    setting = {"N": 400, "f~~f": 1.0, "g~~g": 0.8, "f~~g": 0.3}
    for j in range(1, 7):
        setting |= {f"u{j}|t1": -0.8, f"u{j}|t2": 0.1, f"u{j}|t3": 0.9}
        if j not in (1, 4):
            setting[f"{'f' if j < 4 else 'g'}=~u{j}"] = 0.6 + 0.15 * j
    data = dgm.simulate(spec, jax.random.key(11), setting)
    families = {"residual": "inverse_gamma", "covariance": "inverse_gamma"}
    mapping = {"bayes": {"kind": "gibbs"}, "bayes_hmc": {"kind": "hmc"}}
    est = kinds.build(spec, sweep.layout(spec), families, mapping)
    priors = {**PRIOR_DEFAULTS, "coef_sd": 3.0}
    fits = {
        name: fit_estimator(est[name], data, key_from_seed(4), sampler, priors, 0.95)[0]
        for name, sampler in (
            ("bayes", SamplerSettings(name="gibbs", chains=2, warmup=500, draws=4000)),
            ("bayes_hmc", SamplerSettings(name="nuts", chains=2, warmup=500, draws=1000)),
        )
    }
    assert set(fits["bayes"]) == set(fits["bayes_hmc"])
    for name, a in fits["bayes"].items():
        b = fits["bayes_hmc"][name]
        mcse = np.hypot(a.se / np.sqrt(a.ess_bulk), b.se / np.sqrt(b.ess_bulk))
        assert abs(a.estimate - b.estimate) < 4 * mcse + 0.02 * b.se, (name, a, b)
        ess = min(a.ess_bulk, b.ess_bulk)
        assert abs(a.se / b.se - 1) < 0.1 + 3 / np.sqrt(ess), (name, a, b)
