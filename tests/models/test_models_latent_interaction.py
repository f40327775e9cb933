import jax
import numpy as np
import pytest
from conftest import LATENT_PARAMS, LATENT_PRIORS, primitives
from scipy import stats

from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.engine.summary import summarise_draws
from simstudy.models import MODELS
from simstudy.models import latent_interaction as li

SETTING = {**LATENT_PARAMS, "N": 300, "missing_rate": 0.0, "mechanism": "MCAR"}
PRIORS = LATENT_PRIORS


def test_registered_with_its_estimators():
    family = MODELS["latent_interaction"]
    assert list(family.estimators) == ["bayes", "fs_imputation", "sum_score_ols", "bayes_engine"]
    # the compiled sweep reports every estimand both samplers have, under the same names
    engine = set(family.estimators["bayes_engine"].parameters)
    assert set(li.REGRESSION_PARAMETERS) <= engine <= set(li.BAYES_PARAMETERS)
    assert set(li.REGRESSION_PARAMETERS) <= set(li.BAYES_PARAMETERS)


def test_shapes_masks_and_same_seed_same_data():
    a = li.simulate(jax.random.key(0), {**SETTING, "missing_rate": 0.2})
    b = li.simulate(jax.random.key(0), {**SETTING, "missing_rate": 0.2})
    assert a["y"].shape == (300, 9) and a["observed"].dtype == bool
    assert all(np.array_equal(a[k], b[k]) for k in a)
    obs = np.asarray(a["observed"])
    assert obs[:, :3].all()  # x indicators always observed
    assert abs((1 - obs[:, 3:].mean()) - 0.2) < 0.03
    assert (np.asarray(a["y"])[~obs] == 0).all()


def test_truths_follow_the_dgm():
    t = li.truth(SETTING)
    assert t["eta_y~eta_x:eta_m"] == 0.2 and t["eta_x=~x2"] == 0.8 and t["eta_y=~y3"] == 0.7
    assert t["eta_y~eta_x@eta_m=+1SD"] == pytest.approx(0.5)
    assert t["eta_m~~eta_m"] == pytest.approx(0.91)
    assert t["eta_y~~eta_y"] == pytest.approx(1 - (0.09 + 0.09 + 2 * 0.09 * 0.3 + 0.04 * 1.09))
    assert t["x1~~x1"] == pytest.approx(0.3 / 0.7)
    with pytest.raises(ValueError, match="explain"):
        li.truth({**SETTING, "b1": 0.9, "b2": 0.9})


def test_dgm_moments_at_large_n():
    data = li.simulate(jax.random.key(1), {**SETTING, "N": 200_000})
    y = np.asarray(data["y"])
    r = SETTING["reliability"]
    assert np.var(y[:, 0]) == pytest.approx(1 / r, rel=0.02)  # Var(x1) = 1 + theta_1
    assert np.var(y[:, 6]) == pytest.approx(1 / r, rel=0.02)  # eta_y has unit variance too
    assert np.corrcoef(y[:, 0], y[:, 3])[0, 1] == pytest.approx(0.3 * r, abs=0.01)


def test_mar_missingness_depends_on_x1():
    data = li.simulate(
        jax.random.key(2), {**SETTING, "N": 20_000, "missing_rate": 0.3, "mechanism": "MAR"}
    )
    y, obs = np.asarray(data["y"]), np.asarray(data["observed"])
    assert y[~obs[:, 6], 0].mean() - y[obs[:, 6], 0].mean() > 0.5


def test_sum_scores_are_attenuated():
    data = li.simulate(jax.random.key(3), {**SETTING, "N": 50_000})
    est = li.ESTIMATORS["sum_score_ols"].fit(data, 0.95)
    assert est["eta_y~eta_x"].estimate < 0.3 - 5 * est["eta_y~eta_x"].se
    assert est["eta_y~eta_x"].lower < est["eta_y~eta_x"].estimate < est["eta_y~eta_x"].upper


# slow tier: recovery needs a long chain; by default the sampler runs in
# test_nominal_sweep_has_no_unbounded_gamma_loop and in the compiled model's tests (tests/engine)
@pytest.mark.slow
def test_gibbs_recovers_parameters_with_missing_indicators():
    setting = {**SETTING, "N": 4000, "missing_rate": 0.2, "mechanism": "MAR"}
    data = li.simulate(jax.random.key(4), setting)
    settings = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=600)
    draws = gibbs.prepare(li.BAYES, data, settings, PRIORS)(jax.random.key(5), data)
    summary = summarise_draws(draws.draws, 0.95)
    truth = li.truth(setting)
    z = {k: (summary[k].estimate - truth[k]) / summary[k].se for k in li.BAYES_PARAMETERS}
    assert max(abs(v) for v in z.values()) < 4.5, z
    assert all(summary[k].rhat < 1.05 for k in li.STRUCTURAL)
    assert draws.draws["eta_y~eta_x:eta_m"].shape == (2, 600)


def test_rubin_pooling_by_hand():
    q = np.array([0.30, 0.34, 0.28, 0.31, 0.33])
    u = np.array([0.010, 0.012, 0.011, 0.009, 0.010]) ** 2
    pooled = gibbs.rubin(q, u, 0.95)
    m, w, b = 5, u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    dof = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2
    assert pooled.estimate == pytest.approx(q.mean())
    assert pooled.se == pytest.approx(np.sqrt(t))
    half = stats.t.ppf(0.975, dof) * np.sqrt(t)
    assert pooled.upper - pooled.estimate == pytest.approx(half)


# slow tier: Rubin pooling by hand and test_vectorize's fs_imputation study run by default
@pytest.mark.slow
def test_fs_imputation_pools_m_draws():
    setting = {**SETTING, "N": 3000}
    data = li.simulate(jax.random.key(6), setting)
    settings = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=400)
    est = gibbs.impute_and_pool(
        li.ESTIMATORS["fs_imputation"], data, jax.random.key(7), settings, PRIORS, 0.95
    )
    assert set(est) == set(li.REGRESSION_PARAMETERS)
    for name in li.STRUCTURAL:
        assert abs(est[name].estimate - li.truth(setting)[name]) < 4 * est[name].se, name
        assert est[name].lower < est[name].estimate < est[name].upper


VARIANTS = [
    {"moderator": "observed", "nominal": False},
    {"moderator": "latent", "nominal": True},
    {"moderator": "observed", "nominal": True},
]


# slow tier: the latent-moderator recovery above and the nominal sweep check run by default
@pytest.mark.slow
@pytest.mark.parametrize("structure", VARIANTS)
def test_variants_recover_their_parameters(structure):
    """Observed moderator (w) and incomplete nominal predictor (d): every estimand recovered."""
    setting = {**SETTING, "N": 4000, "missing_rate": 0.2, "mechanism": "MAR"}
    setting["structure"] = structure
    data = li.simulate(jax.random.key(8), setting)
    layout = li.Layout(structure)
    if structure["moderator"] == "observed":
        assert data["y"].shape == (4000, 6) and "w" in data
        assert abs(1 - np.asarray(data["w_observed"]).mean() - 0.2) < 0.03
    if structure["nominal"]:
        d = np.asarray(data["d"])[np.asarray(data["d_observed"])]
        assert set(np.unique(d)) == {0, 1, 2}
    estimators = li.make_estimators(structure)
    settings = SamplerSettings(name="gibbs", chains=2, warmup=300, draws=800)
    draws = gibbs.prepare(estimators["bayes"], data, settings, PRIORS)(jax.random.key(9), data)
    summary = summarise_draws(draws.draws, 0.95)
    truth = li.truth(setting)
    assert set(truth) == set(layout.bayes)
    z = {k: (summary[k].estimate - truth[k]) / summary[k].se for k in layout.bayes}
    assert max(abs(v) for v in z.values()) < 4.5, z
    assert all(summary[k].rhat < 1.05 for k in layout.structural)
    naive = estimators["sum_score_ols"].fit(data, 0.95)
    assert set(naive) == set(layout.regression)


# slow tier: test_nominal_sweep_has_no_unbounded_gamma_loop runs the nominal sweep by default
@pytest.mark.slow
def test_nominal_predictor_imputation_uses_its_relations():
    """Missing d are drawn given eta_x and eta_y: complete-case estimates of P(d=2) would be
    biased under MAR, the model's are not (d is missing more often where x1 is high, and eta_x
    is higher in category 2)."""
    structure = {"moderator": "latent", "nominal": True}
    setting = {**SETTING, "N": 6000, "missing_rate": 0.4, "mechanism": "MAR"}
    setting |= {"structure": structure, "d_on_x2": 0.8, "d_on_x3": -0.8, "mar_strength": 0.9}
    data = li.simulate(jax.random.key(10), setting)
    observed = np.asarray(data["d_observed"])
    complete_case = (np.asarray(data["d"])[observed] == 1).mean()
    bayes = li.make_estimators(structure)["bayes"]
    settings = SamplerSettings(name="gibbs", chains=2, warmup=300, draws=600)
    draws = gibbs.prepare(bayes, data, settings, PRIORS)(jax.random.key(11), data)
    s = summarise_draws(draws.draws, 0.95)["P(d=2)"]
    assert abs(s.estimate - 0.3333) < 4 * s.se
    assert complete_case < 0.3333 - 8 * s.se  # the naive share is visibly off


def test_structure_is_validated():
    from simstudy.errors import InputError

    with pytest.raises(InputError, match="moderator"):
        li.check_structure({"moderator": "manifest"})
    with pytest.raises(InputError, match="nominal"):
        li.check_structure({"nominal": "yes"})


def test_nominal_sweep_has_no_unbounded_gamma_loop():
    """P(d) is drawn from normalised bounded gamma variates, not ``jax.random.dirichlet``
    (``jax.random.gamma``'s rejection loop can run forever in a compiled program)."""

    structure = {"moderator": "latent", "nominal": True}
    data = li.simulate(jax.random.key(0), {**SETTING, "N": 60, "structure": structure})
    est = li.make_estimators(structure)["bayes"]
    prepare = est.prepare or (lambda d: d)

    def sweep(key, data):
        data = prepare(data)
        return est.step(key, est.init(key, data, PRIORS), data, PRIORS)

    names = primitives(jax.make_jaxpr(sweep)(jax.random.key(1), data))
    assert "while" in names and "random_gamma" not in names
