"""The kinds' options: complete cases, incomplete predictors integrated out, OLS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import init_to_uniform
from scipy import stats

import simstudy.models  # noqa: F401  (registers the families before spec.family is imported)
from simstudy.errors import InputError
from simstudy.spec import estimators as kinds
from simstudy.spec import hmc, sweep
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.family import estimators
from simstudy.spec.info import PRIOR_DEFAULTS
from simstudy.spec.ir import from_syntax

#: The default study's model: y on x and z, x incomplete (its nuisance model x ~ 1 + z).
REGRESSION = "y ~ 1 + x + z; x ~~ z"
MISSING = {"x": {"given": ["y"], "strength": 0.8}}
FAMILIES = {"residual": "half_normal", "covariance": "half_normal"}


def _data(rows: int = 40, seed: int = 0) -> dict:
    """y, x, z with x missing in about a third of the rows (and row 0), one padding row."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=rows)
    x = 0.4 * z + rng.normal(size=rows)
    y = 1.0 + 0.5 * x + 0.3 * z + rng.normal(size=rows)
    seen = rng.uniform(size=rows) > 0.33
    seen[0] = False
    real = np.ones(rows, bool)
    real[-1] = False
    return {
        ROW_REAL: jnp.asarray(real),
        "y": jnp.asarray(y),
        "z": jnp.asarray(z),
        "x": jnp.asarray(np.where(seen, x, 0.0)),
        observed_key("y"): jnp.asarray(real),
        observed_key("z"): jnp.asarray(real),
        observed_key("x"): jnp.asarray(seen & real),
    }


def _built(mapping: dict, syntax: str = REGRESSION) -> dict:
    spec = from_syntax(syntax, MISSING)
    return estimators(spec, FAMILIES, kinds.normalise(mapping, spec))


def test_marginal_density_of_a_row_without_x_is_the_normal_of_y_given_z():
    """Integrated out, a missing x leaves N(y; b0 + b1 (g0 + g1 z) + b2 z, s^2 + b1^2 t^2)."""
    lay = sweep.layout(from_syntax(REGRESSION, MISSING))
    model = hmc.make_model(lay, "half_normal", "half_normal", marginal=True)
    data = hmc.model_data(_data(rows=8), PRIOR_DEFAULTS, lay)
    drawn = handlers.substitute(
        handlers.seed(model, jax.random.key(3)), substitute_fn=init_to_uniform
    )
    trace = handlers.trace(drawn).get_trace(**data)
    assert not any(name.startswith("z:") for name in trace)  # no missing x is sampled
    g0, g1 = np.asarray(trace["coef:x"]["value"])
    b0, b1, b2 = np.asarray(trace["coef:y"]["value"])
    tau, sigma = float(trace["sd:x"]["value"]), float(trace["sd:y"]["value"])
    y, x, z = (np.asarray(data[v]) for v in ("y", "x", "z"))
    seen, real = np.asarray(data[observed_key("x")]), np.asarray(data[ROW_REAL])
    full = stats.norm(g0 + g1 * z, tau).logpdf(x) + stats.norm(b0 + b1 * x + b2 * z, sigma).logpdf(
        y
    )
    sd = np.sqrt(sigma**2 + (b1 * tau) ** 2)
    without_x = stats.norm(b0 + b1 * (g0 + g1 * z) + b2 * z, sd).logpdf(y)
    expected = np.where(seen, full, without_x)[real].sum()
    site = trace["obs:marginal"]
    got = site["fn"].log_prob(site["value"]).sum()
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_marginal_is_refused_where_x_is_in_a_product():
    spec = from_syntax("y ~ 1 + x + z + x:z; x ~~ z", MISSING)
    with pytest.raises(InputError) as err:
        kinds.normalise({"m": {"kind": "hmc", "marginal": True}}, spec)
    assert err.value.field == "model.estimators.m.marginal"
    kinds.normalise({"s": {"kind": "hmc"}}, spec)  # sampled, the same model is fine
    # with x complete (simstudy fit on a complete table) there is nothing to integrate out
    complete = from_syntax("y ~ 1 + x + z + x:z")
    assert kinds.normalise({"m": {"kind": "hmc", "marginal": True}}, complete)["m"]["marginal"]


def test_complete_cases_keep_the_rows_with_every_variable_observed():
    data = _data()
    complete = np.asarray(data[ROW_REAL]) & np.asarray(data[observed_key("x")])
    built = _built(
        {
            "gibbs_cc": {"kind": "gibbs", "complete_cases": True},
            "hmc_cc": {"kind": "hmc", "complete_cases": True},
            "gibbs": {"kind": "gibbs"},
            "hmc": {"kind": "hmc"},
        }
    )
    assert np.array_equal(built["gibbs_cc"].prepare(data)[ROW_REAL], complete)
    assert np.array_equal(built["hmc_cc"].data(data, PRIOR_DEFAULTS)[ROW_REAL], complete)
    assert np.array_equal(built["gibbs"].prepare(data)[ROW_REAL], data[ROW_REAL])
    assert np.array_equal(built["hmc"].data(data, PRIOR_DEFAULTS)[ROW_REAL], data[ROW_REAL])
    # x's model factors out of the complete cases' posterior: nothing drawn per row, no x sites
    cc = built["hmc_cc"]
    drawn = handlers.substitute(
        handlers.seed(cc.model, jax.random.key(0)), substitute_fn=init_to_uniform
    )
    trace = handlers.trace(drawn).get_trace(**cc.data(data, PRIOR_DEFAULTS))
    sampled = {k for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]}
    assert sampled == {"coef:y", "sd:y"}
    gibbs_cc = built["gibbs_cc"]
    state = gibbs_cc.init(jax.random.key(0), gibbs_cc.prepare(data), PRIOR_DEFAULTS)
    assert "x" not in state["nodes"]


def test_ols_is_lstsq_on_the_complete_rows_with_classical_intervals():
    data = _data()
    fit = _built({"ols_cc": {"kind": "ols"}})["ols_cc"].fit(data, 0.9)
    keep = np.asarray(data[ROW_REAL]) & np.asarray(data[observed_key("x")])
    y = np.asarray(data["y"])[keep]
    design = np.column_stack([np.ones(keep.sum()), np.asarray(data["x"])[keep], data["z"][keep]])
    beta, ssr, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = keep.sum() - 3
    s2 = float(ssr[0]) / df
    se = np.sqrt(np.diag(s2 * np.linalg.inv(design.T @ design)))
    assert list(fit) == ["y~1", "y~x", "y~z", "y~~y"]  # the estimands; x's model not reported
    got = np.array([fit[k].estimate for k in ("y~1", "y~x", "y~z")])
    np.testing.assert_allclose(got, beta, rtol=1e-10)
    np.testing.assert_allclose([fit[k].se for k in ("y~1", "y~x", "y~z")], se, rtol=1e-10)
    t = stats.t.ppf(0.95, df)
    np.testing.assert_allclose(fit["y~x"].upper, beta[1] + t * se[1], rtol=1e-10)
    np.testing.assert_allclose(fit["y~~y"].estimate, s2, rtol=1e-10)
    np.testing.assert_allclose(fit["y~~y"].lower, df * s2 / stats.chi2.ppf(0.95, df), rtol=1e-10)


@pytest.mark.parametrize(
    ("syntax", "options", "field"),
    [
        ("f =~ y1 + y2 + y3", {"kind": "ols"}, "model.estimators.o.kind"),
        ("y ~ 1 + x + (1 | g)", {"kind": "ols"}, "model.estimators.o.kind"),
        (REGRESSION, {"kind": "ols", "complete_cases": False}, "model.estimators.o.complete_cases"),
        (REGRESSION, {"kind": "gibbs", "marginal": True}, "model.estimators.o.marginal"),
    ],
)
def test_a_model_or_option_a_kind_cannot_fit_is_refused_naming_it(syntax, options, field):
    spec = from_syntax(syntax, MISSING if syntax == REGRESSION else None)
    with pytest.raises(InputError) as err:
        kinds.normalise({"o": options}, spec)
    assert err.value.field == field


def test_the_density_per_missingness_pattern_is_the_density_per_row():
    """Few columns: summed per pattern (one factor each); many: per row. The same number."""
    rng = np.random.default_rng(5)
    root = rng.normal(size=(3, 3))
    cov, mean, y = root @ root.T + np.eye(3), rng.normal(size=(9, 3)), rng.normal(size=(9, 3))
    seen = rng.uniform(size=(9, 3)) > 0.4
    seen[0] = False  # a row with nothing observed adds nothing
    args = (jnp.asarray(y), jnp.asarray(mean), jnp.asarray(cov), jnp.asarray(seen))
    per_row = float(hmc._incomplete_loglik(*args))
    assert float(hmc._pattern_loglik(*args)) == pytest.approx(per_row, rel=1e-6)
