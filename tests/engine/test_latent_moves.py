"""The compiled sweep's latent-variable steps: indicators from sums, factor scale moves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simstudy.config import SamplerSettings
from simstudy.engine.replicate import fit_estimator, key_from_seed
from simstudy.spec import dgm, measurement, sweep
from simstudy.spec.family import family
from simstudy.spec.info import normalise
from simstudy.spec.ir import from_syntax

TWO_FACTORS = "f =~ y1 + y2 + y3\ng =~ y4 + l5*y5 + 0.5*y6\ng ~ b*f"


def _structure(syntax, kind):
    return normalise({"syntax": syntax, "prior_families": {"residual": kind, "covariance": kind}})


def test_indicator_equations_are_updated_from_sums_and_factors_get_scale_moves():
    lay = sweep.layout(from_syntax(TWO_FACTORS))
    m = lay.measurement
    assert m.targets == ("y1", "y2", "y3", "y4", "y5", "y6")
    assert m.fixed == (1.0, None, None, 1.0, None, 0.5)
    assert [lay.equations[i].target for i in lay.general] == ["g"]
    moves = {s.factor: s for s in lay.scales}
    assert set(moves) == {"f", "g"}
    # f: its loadings and the path b shrink; its variance is the latent block's
    assert moves["f"].variance == ("block", "latent", 0)
    assert moves["f"].down == (("g", 0),) and sum(moves["f"].loadings_free) == 2
    # g: the path b grows with it; y4 (1) and y6 (0.5) pin its scale
    assert moves["g"].variance == ("equation", "g", 0) and moves["g"].up == (("g", 0),)
    assert moves["g"].loadings_fixed == (False, False, False, True, False, True)
    # location moves: f's prior is the latent block's, and g's equation moves with it; g's
    # own equation is its prior; each moves its own indicators' intercepts
    shifts = {s.factor: s for s in lay.locations}
    assert (
        shifts["f"].block == ("latent", 0) and shifts["f"].indicators == (True,) * 3 + (False,) * 3
    )
    assert shifts["g"].block is None and shifts["g"].indicators == (False,) * 3 + (True,) * 3
    assert [lay.equations[i].target for i in shifts["f"].equations] == ["g"]
    assert [lay.equations[i].target for i in shifts["g"].equations] == ["g"]


@pytest.mark.parametrize("kind", ["inverse_gamma", "half_normal"])
def test_latent_sweep_with_nothing_observed_samples_its_prior(kind):
    """No indicator observed: the posterior is the prior, which the moves must keep.

    A wrong power of ``g`` (Jacobian, Haar measure, variance prior) or a prior term missing
    from a scale move shifts the loadings' and variances' draws away from their priors.
    """
    structure = _structure(TWO_FACTORS, kind)
    est = family(f"nothing_observed_{kind}", structure).estimators_for(structure)["bayes"]
    n = 40
    data = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ("y1", "y2", "y3", "y4", "y5", "y6"):
        data[v], data[dgm.observed_key(v)] = jnp.zeros(n), jnp.zeros(n, bool)
    priors = {"coef_sd": 1.0, "var_shape": 4.0, "var_scale": 3.0, "sigma_scale": 1.0}
    priors |= {"cov_scale": 1.0, "latent_var_shape": 4.0, "latent_var_scale": 3.0}
    # intercepts N(2, 1): a location move that forgets their prior or its sign moves them
    priors |= {"coef_means": tuple((f"y{j}", (2.0, 0.0)) for j in range(1, 7))}
    sampler = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=3000)
    summaries, _, _ = fit_estimator(est, data, key_from_seed(3), sampler, priors, 0.95)
    # loadings and paths N(0, 1); InverseGamma(4, 3) variances: mean 1, SD 0.71; a
    # half-normal(1) SD: variance mean 1, SD 1.41
    sd = 0.71 if kind == "inverse_gamma" else 1.41
    expected = {"f=~y2": (0, 1), "f=~y3": (0, 1), "g=~y5": (0, 1), "g~f": (0, 1)}
    expected |= {v: (1, sd) for v in ("f~~f", "g~~g", "y1~~y1", "y5~~y5")}
    expected |= {v: (2, 1) for v in ("y1~1", "y4~1", "y6~1")}
    for name, (mean, spread) in expected.items():
        s = summaries[name]
        mcse = s.se / np.sqrt(s.ess_bulk)
        assert abs(s.estimate - mean) < 4 * mcse + 0.02, (name, s)
        assert abs(s.se / spread - 1) < 0.1 + 4 / np.sqrt(s.ess_bulk), (name, s)


def test_sums_give_the_linearised_conditional():
    """The indicators' information on a factor read from sums equals the jvp linearisation."""
    spec = from_syntax(TWO_FACTORS)
    lay = sweep.layout(spec)
    rng = np.random.default_rng(0)
    n = 25
    data = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ("y1", "y2", "y3", "y4", "y5", "y6"):
        data[v] = jnp.asarray(rng.normal(size=n))
        data[dgm.observed_key(v)] = jnp.asarray(rng.random(n) < 0.8)
    data = sweep.prepare(data, lay)
    params = {
        "nu": jnp.asarray(rng.normal(size=6)),
        "lam": jnp.asarray([1.0, 0.7, -0.4, 1.0, 1.3, 0.5]),
        "theta": jnp.asarray(rng.uniform(0.5, 2.0, 6)),
    }
    info, linear = measurement.node_terms(lay.measurement, params, data)
    for k in range(2):
        rows = [j for j in range(6) if lay.measurement.factor_of[j] == k]

        def loglik(score, rows=rows):
            total = 0.0
            for j in rows:
                t = lay.measurement.targets[j]
                o = data[dgm.observed_key(t)]
                r = data[t] - params["nu"][j] - params["lam"][j] * score
                total = total - 0.5 * jnp.where(o, r**2 / params["theta"][j], 0.0)
            return total

        at = jnp.asarray(rng.normal(size=n))
        grad = jax.grad(lambda s, rows=rows: loglik(s, rows).sum())
        # per row the log likelihood is -P s^2 / 2 + h s: gradient h - P s, curvature -P
        np.testing.assert_allclose(grad(at), linear[k] - info[k] * at, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(grad(at) - grad(at + 1.0), info[k], rtol=1e-4, atol=1e-4)


def test_location_move_draws_the_exact_conditional_of_the_shift():
    """The move's normal for ``c`` equals the log joint along ``f -> f + c``, ``nu -> nu - lam c``.

    The log joint is written out here (indicators, intercept priors, the factors' block, the
    structural equation with a product term); it is quadratic in ``c``, so three points give
    its precision and mean exactly. Missing indicators and a padded row are included.
    """
    syntax = "f =~ y1 + y2 + y3\nh =~ y4 + y5\ng =~ y6 + y7\ng ~ b*f + c*h + d*f:h"
    spec = from_syntax(syntax)
    lay = sweep.layout(spec)
    rng = np.random.default_rng(1)
    n, names = 30, [f"y{j}" for j in range(1, 8)]
    real = np.arange(n) < n - 1
    data = {dgm.ROW_REAL: jnp.asarray(real)}
    for v in names:
        data[v] = jnp.asarray(rng.normal(size=n))
        data[dgm.observed_key(v)] = jnp.asarray(rng.random(n) < 0.8)
    data = sweep.prepare(data, lay)
    means = tuple((v, (0.7, 0.0)) for v in names)
    priors = sweep.Priors(coef_sd=0.8, coef_means=means)
    state = sweep.init(jax.random.PRNGKey(2), data, lay, priors)
    state["cov"] = {"latent": jnp.asarray([[1.3, 0.4], [0.4, 0.8]])}
    state["coef"] = {"g": jnp.asarray([0.5, -0.3, 0.6])}
    state["var"] = {"g": jnp.asarray(0.7)}
    state["meas"] = {**state["meas"], "nu": jnp.asarray(rng.normal(size=7))}
    m = lay.measurement
    weights = {i: sweep.weight(lay.equations[i], lay, data) for i in lay.general}

    def log_joint(st):
        p = st["meas"]
        total = -0.5 * ((p["nu"] - 0.7) ** 2).sum() / 0.8**2
        for j, v in enumerate(m.targets):
            score = st["nodes"][m.factors[m.factor_of[j]]]
            r = data[v] - p["nu"][j] - p["lam"][j] * score
            total -= (
                0.5 * jnp.where(data[dgm.observed_key(v)] & real, r**2 / p["theta"][j], 0).sum()
            )
        f, h, g = (st["nodes"][k] for k in ("f", "h", "g"))
        fh = jnp.stack([f, h], -1)
        quad = jnp.einsum("ni,ij,nj->n", fh, jnp.linalg.inv(st["cov"]["latent"]), fh)
        total -= 0.5 * jnp.where(real, quad, 0).sum()
        b, c, d = st["coef"]["g"]
        total -= (
            0.5 * jnp.where(real, (g - b * f - c * h - d * f * h) ** 2, 0).sum() / st["var"]["g"]
        )
        return total

    for move in lay.locations:
        lam = np.where(move.indicators, state["meas"]["lam"], 0.0)

        def shifted(c, move=move, lam=lam):
            nodes = {**state["nodes"], move.factor: state["nodes"][move.factor] + c * real}
            meas_ = {**state["meas"], "nu": state["meas"]["nu"] - lam * c}
            return log_joint({**state, "nodes": nodes, "meas": meas_})

        lo, mid, hi = (float(shifted(c)) for c in (-1.0, 0.0, 1.0))
        precision, linear = 2 * mid - lo - hi, (hi - lo) / 2
        draws = [
            sweep._shift_factor(lay, state, data, move, weights, priors, jnp.asarray(z))
            for z in (0.0, 1.0)
        ]
        c0, c1 = (float((d["nodes"][move.factor] - state["nodes"][move.factor])[0]) for d in draws)
        np.testing.assert_allclose(c0, linear / precision, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c1 - c0, precision**-0.5, rtol=1e-4)
        # the padded row stays; the intercepts move by -lam c
        assert float(draws[0]["nodes"][move.factor][-1]) == float(state["nodes"][move.factor][-1])
        np.testing.assert_allclose(
            draws[0]["meas"]["nu"], state["meas"]["nu"] - lam * c0, rtol=1e-5
        )
    assert {s.factor for s in lay.locations} == {"f", "h", "g"}
