"""The ordered variables' step: thresholds, latent responses, Pólya–Gamma precisions, scale move.

Each fit compiles its own program, so one model holds several ordered outcomes: lavaan's
parameterisation (``u ~ x``), glmer's (``v ~ 1 + x``, ``u|t1`` = 0) and a binary outcome with
a correlated random intercept and slope (the scale move with random effects; the effects'
Newton–Metropolis and scale moves with the responses integrated out).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.spec import dgm, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec import evaluate as ev
from simstudy.spec.info import PRIOR_DEFAULTS
from simstudy.spec.ir import from_syntax

FAMILIES = {"residual": "half_normal", "covariance": "half_normal"}
#: Three ordered outcomes, one of each kind the step distinguishes.
SYNTAX = "u ~ x\nv ~ 1 + x\nw ~ 1 + x + (1 + x | g)\n"
ORDERED = {"u": 3, "v": 3, "w": 2}


def _fit(spec, data, draws, seed, priors=PRIOR_DEFAULTS):
    est = kinds.build(spec, sweep.layout(spec), FAMILIES, {"bayes": {"kind": "gibbs"}})["bayes"]
    settings = SamplerSettings(name="gibbs", chains=2, warmup=300, draws=draws)
    return gibbs.prepare(est, data, settings, priors)(jax.random.key(seed), data).draws


def _data(n: int, j: int, **columns):
    out = {dgm.ROW_REAL: jnp.ones(n, bool), "g": jnp.repeat(jnp.arange(j), n // j)}
    out[dgm.cluster_key("g")] = jnp.ones(j, bool)
    for k, (v, seen) in columns.items():
        out[k], out[dgm.observed_key(k)] = jnp.asarray(v, dtype=float), jnp.asarray(seen)
    return out


# slow tier (default-tier time); the cheap check of the same: the threshold step keeps its
# prior (tests/blocks/test_ordinal.py), the logit fit below runs the whole step
@pytest.mark.slow
def test_with_nothing_observed_every_parameterisation_samples_its_prior():
    """No outcome observed: each ordered equation's parameters follow their priors.

    ``u``: (t1, t2) two N(0, 1) draws sorted; ``v``: t1 = 0, t2 half-normal; ``w``: its
    random effects' SDs half-normal(1), their correlation uniform (LKJ(1)); every coefficient
    N(0, 1). Fails with a missing Jacobian of the thresholds' coordinates, or a wrong
    covariance correction in a scale move.
    """
    spec = from_syntax(SYNTAX, ordered=ORDERED)
    assert spec.estimands() == (
        "u~x", "v~1", "v~x", "w~1", "w~x", "1|g~~1|g", "x|g~~x|g", "1|g~~x|g", "u|t1",
        "u|t2", "v|t2",
    )  # fmt: skip
    n, hidden = 24, (np.zeros(24), np.zeros(24, bool))
    data = _data(n, 6, u=hidden, v=hidden, w=hidden, x=(np.linspace(-1, 1, n), np.ones(n, bool)))
    draws = _fit(spec, data, 4000, 1, {**PRIOR_DEFAULTS, "coef_sd": 1.0, "cov_scale": 1.0})
    thin = slice(None, None, 8)  # the chain's draws are correlated; KS wants near-independent

    def v(name):
        return np.asarray(draws[name]).ravel()[thin]

    ref = np.sort(np.random.default_rng(0).normal(size=(100_000, 2)), axis=1)
    assert (v("u|t2") > v("u|t1")).all()
    assert stats.ks_2samp(v("u|t1"), ref[:, 0]).pvalue > 1e-3
    assert stats.ks_2samp(v("u|t2") - v("u|t1"), ref[:, 1] - ref[:, 0]).pvalue > 1e-3
    assert stats.kstest(v("v|t2"), "halfnorm").pvalue > 1e-3
    assert stats.kstest(np.sqrt(v("1|g~~1|g")), "halfnorm").pvalue > 1e-3
    assert stats.kstest(np.sqrt(v("x|g~~x|g")), "halfnorm").pvalue > 1e-3
    corr = v("1|g~~x|g") / np.sqrt(v("1|g~~1|g") * v("x|g~~x|g"))
    assert stats.kstest(corr, "uniform", args=(-1, 2)).pvalue > 1e-3
    for name in ("u~x", "v~1", "v~x", "w~1", "w~x"):
        assert stats.kstest(v(name), "norm").pvalue > 1e-3, name


def _ordinal_mle(u, x, k, cdf, intercept):
    """The cumulative-link maximum likelihood (slope, intercept or first cut, log gaps)."""

    def nll(theta):
        b, first, gaps = theta[0], theta[1], np.exp(theta[2:])
        cuts = np.cumsum(np.r_[0.0 if intercept else first, gaps])
        mean = b * x + (first if intercept else 0.0)
        edges = np.r_[-np.inf, cuts, np.inf]
        p = cdf(edges[u + 1] - mean) - cdf(edges[u] - mean)
        return -np.log(np.maximum(p, 1e-300)).sum()

    return optimize.minimize(nll, np.r_[0.0, -0.3, np.zeros(k - 2)], method="BFGS").x


def _agrees_with_the_mle(link, cdf, seed):
    spec = from_syntax("u ~ x\nv ~ 1 + z\n", ordered={"u": 3, "v": 2}, link=link)
    setting = {"N": 400, "u~x": 0.8, "u|t1": -0.5, "u|t2": 1.0, "v~1": -0.3, "v~z": 0.7}
    data = dgm.simulate(spec, jax.random.key(seed), setting)
    u, v = (np.asarray(data[k]).astype(int) for k in ("u", "v"))
    x, z = np.asarray(data["x"]), np.asarray(data["z"])
    assert set(np.unique(u)) == {0, 1, 2}
    fu, fv = _ordinal_mle(u, x, 3, cdf, False), _ordinal_mle(v, z, 2, cdf, True)
    mle = {"u~x": fu[0], "u|t1": fu[1], "u|t2": fu[1] + np.exp(fu[2])}
    mle |= {"v~z": fv[0], "v~1": fv[1]}
    draws = _fit(spec, data, 800, seed + 1)
    for name, value in mle.items():
        d = np.asarray(draws[name])
        # N = 400: posterior mean and MLE differ by ~1/sqrt(N) of an SD, plus Monte Carlo error
        assert abs(d.mean() - value) < 0.3 * d.std(), (name, d.mean(), value, d.std())


# slow tier (default-tier time), as the next; the cheap checks of the same: tests/engine/
# test_sweep.py sweeps every shipped spec (ordinal_regression, glmm_binary: this step), the
# Pólya–Gamma law (tests/blocks/test_polya_gamma.py), the NumPyro model's logit likelihood
@pytest.mark.slow
def test_a_logit_fit_agrees_with_the_logit_maximum_likelihood_on_the_same_data():
    """Pólya–Gamma precisions and logistic responses give the cumulative logit's posterior."""
    _agrees_with_the_mle("logit", stats.logistic.cdf, 8)


# slow tier (default-tier time); the cheap checks of the same: as above, and the truncated
# normal's law in tests/blocks/test_ordinal.py
@pytest.mark.slow
def test_a_probit_fit_agrees_with_the_probit_maximum_likelihood_on_the_same_data():
    _agrees_with_the_mle("probit", stats.norm.cdf, 5)


def test_the_simulator_cuts_the_latent_response_at_the_thresholds():
    spec = from_syntax("u ~ x\n", ordered={"u": 3})
    setting = {"N": 20_000, "u~x": 0.0, "u|t1": -0.5, "u|t2": 1.0}
    u = np.asarray(dgm.simulate(spec, jax.random.key(0), setting)["u"])
    expected = np.diff(stats.norm.cdf([-np.inf, -0.5, 1.0, np.inf]))
    share = np.bincount(u.astype(int), minlength=3) / u.size
    np.testing.assert_allclose(share, expected, atol=0.012)  # ~3.5 binomial SEs


MEDIATOR = "m ~ a*x\ny ~ c*x + b*m\ny ~~ s2*y\nind := a*b\n"
MEDIATOR_SETTING = {"a": 0.5, "b": 0.4, "c": 0.2, "y~1": 0.0, "s2": 0.64, "m|t1": 0.2}


def test_a_predictors_responses_are_drawn_from_its_equation_and_its_childrens():
    """The conditional of m* given m ~ x and y ~ x + m: precision 1 + w b^2 / s2 per row.

    Its mean is (a x + w b (y - y0 - c x) / s2) / precision (w: y observed); the step's
    scale move divides y's slope on m* by g (so b m* keeps its value) and nothing else of y's.
    """
    from simstudy.spec.steps.base import Context
    from simstudy.spec.steps.ordered import OrderedResponses

    spec = from_syntax(MEDIATOR, {"y": {}}, ordered={"m": 2})
    rng = np.random.default_rng(0)
    x, y, m = rng.normal(size=40), rng.normal(size=40), rng.integers(0, 2, 40)
    w = rng.random(40) < 0.7
    data = _data(40, 1, x=(x, np.ones(40, bool)), y=(y, w), m=(m, np.ones(40, bool)))
    lay = sweep.layout(spec)
    (step,) = lay.steps_of(OrderedResponses)
    assert step.children == (1,) and step.inverse == ((1, 2),) and step.scalable == (True,)
    y0, c, b, s2 = 0.1, 0.2, 0.4, 0.64
    state = {  # the parts the conditional reads
        "nodes": {"m": jnp.asarray(rng.normal(size=40))},
        "coef": {"m": jnp.array([0.5]), "y": jnp.array([y0, c, b])},
        "var": {"y": jnp.asarray(s2)},
        "re": {},
    }
    weights = {i: ev.weight(lay.equations[i], lay, data) for i in lay.general}
    ctx = Context(lay, sweep.Priors(), weights)
    centre, sd = (c[0] for c in jax.jit(lambda st: step._conditional(st, data, ctx))(state))
    precision = 1 + w * b**2 / s2
    assert 0 < w.sum() < w.size
    np.testing.assert_allclose(sd, 1 / np.sqrt(precision), rtol=1e-6)
    expected = (0.5 * x + w * b * (y - y0 - c * x) / s2) / precision
    np.testing.assert_allclose(centre, expected, rtol=1e-5, atol=1e-6)


def test_the_numpyro_responses_lie_in_their_intervals_with_their_density_and_jacobian():
    """``hmc._responses``: each observed row's u* in its category's interval; the factor is
    N(u*; mean, 1) plus log |du*/dv| (by autodiff), a missing row's u* = v."""
    from numpyro import handlers
    from scipy import stats

    from simstudy.spec import hmc

    lo = jnp.array([-jnp.inf, -0.5, 1.0, -jnp.inf, -jnp.inf])
    hi = jnp.array([-0.5, 1.0, jnp.inf, jnp.inf, 0.0])
    seen = jnp.array([True, True, True, False, True])
    real = jnp.array([True, True, True, True, False])
    mean, v = jnp.array([0.3, -0.2, 0.8, 0.1, 0.0]), jnp.array([1.5, -2.0, 0.7, -0.4, 0.9])

    def model():
        return hmc._responses("u", mean, lo, hi, seen, real)

    def ystar_at(z):
        return handlers.substitute(model, {"z:u": z})()

    @jax.jit
    def evaluate(z):  # u*, the factor's value, du*/dv per row (elementwise: the diagonal)
        site = handlers.trace(handlers.substitute(model, {"z:u": z})).get_trace()["obs:u"]
        return ystar_at(z), site["fn"].log_prob(site["value"]).sum(), jax.jacfwd(ystar_at)(z)

    ystar, logp, jac = evaluate(v)
    assert bool(jnp.all((ystar[:3] > lo[:3]) & (ystar[:3] < hi[:3])))
    assert float(ystar[3]) == float(v[3])
    slopes = np.diag(np.asarray(jac))
    expected = stats.norm.logpdf(np.asarray(ystar), np.asarray(mean)) + np.log(np.abs(slopes))
    expected = np.where(np.asarray(real), expected, -0.5 * np.asarray(v) ** 2)
    np.testing.assert_allclose(float(logp), expected.sum(), rtol=1e-5)


# slow tier (a compiled sweep each); the cheap checks of the same: the predictor's conditional
# above, the simulator's responses (tests/spec/test_spec_ordered.py), test_sweep.py's sweep of
# the shipped binary_mediator
@pytest.mark.slow
def test_a_binary_mediator_fit_recovers_its_paths():
    """N = 2000, y missing at random given x: a, b, c and a*b within 3 posterior SDs."""
    spec = from_syntax(MEDIATOR, {"y": {"given": ["x"], "strength": 0.8}}, ordered={"m": 2})
    setting = {"N": 2000, **MEDIATOR_SETTING, "missing_rate": 0.2, "mechanism": "MAR"}
    data = dgm.simulate(spec, jax.random.key(3), setting)
    draws = _fit(spec, data, 1000, 4)
    truth = {"m~x": 0.5, "y~m": 0.4, "y~x": 0.2, "ind": 0.2, "m|t1": 0.2}
    for name, value in truth.items():
        d = np.asarray(draws[name])
        assert abs(d.mean() - value) < 3 * d.std(), (name, d.mean(), d.std())


@pytest.mark.slow
def test_with_nothing_observed_a_mediators_parameters_sample_their_prior():
    """m and y unobserved: a, b, c, y's intercept N(0, 1), m|t1 N(0, 1), y's SD half-normal.

    A weak check of the scale move's terms for the children's coefficients (scaled by 1 / g):
    a Jacobian one power of g off (e = D - 1 instead of D - E - 1) passed it, with 24 rows and
    with 4 (the other steps pull the chain back); a direct test of the move is still to come.
    """
    spec = from_syntax(MEDIATOR, ordered={"m": 2})
    n, hidden = 24, (np.zeros(24), np.zeros(24, bool))
    data = _data(n, 1, m=hidden, y=hidden, x=(np.linspace(-1, 1, n), np.ones(n, bool)))
    draws = _fit(spec, data, 4000, 2, {**PRIOR_DEFAULTS, "coef_sd": 1.0, "sigma_scale": 1.0})
    thin = slice(None, None, 16)  # a's ESS is ~500 of the 8000 draws (through m*'s draws)

    def v(name):
        return np.asarray(draws[name]).ravel()[thin]

    for name in ("m~x", "y~m", "y~x", "y~1", "m|t1"):
        assert stats.kstest(v(name), "norm").pvalue > 1e-3, name
    assert stats.kstest(np.sqrt(v("y~~y")), "halfnorm").pvalue > 1e-3


def test_the_scale_move_of_ordered_indicators_is_the_log_joint_along_the_move(monkeypatch):
    """Indicators' scale move (``u* g``, thresholds ``g``, a free loading ``g``; a marker's
    ``1 * f`` kept): its target ``-a g^2 / 2 + b g + e log g`` is the log joint along the move
    written out here, plus the Jacobian ``g^D`` and Haar ``1 / g``. Fails without the
    marker's cross term ``b`` (its ``u* f``), or with a wrong count of scaled values.
    """
    from simstudy.blocks import ordinal
    from simstudy.spec.steps import ordered as step_module
    from simstudy.spec.steps.base import Context
    from simstudy.spec.steps.ordered import OrderedResponses

    spec = from_syntax("f =~ u1 + u2 + u3", ordered={"u1": 3, "u2": 3, "u3": 3})
    lay = sweep.layout(spec)
    (step,) = lay.steps_of(OrderedResponses)
    assert step.measured == (0, 1, 2) and lay.general == ()
    rng = np.random.default_rng(2)
    n = 25
    real = np.arange(n) < n - 2
    data = {dgm.ROW_REAL: jnp.asarray(real)}
    for v in ("u1", "u2", "u3"):
        data[v] = jnp.asarray(rng.integers(0, 3, n), dtype=float)
        data[dgm.observed_key(v)] = jnp.asarray(rng.random(n) < 0.8)
    data = sweep.prepare(data, lay)
    priors = sweep.Priors(coef_sd=1.5, loading_mean=0.5, loading_sd=0.8)
    state = sweep.init(jax.random.PRNGKey(3), data, lay, priors)
    state["meas"] = {**state["meas"], "lam": jnp.asarray([1.0, 0.7, -0.4])}
    ystar = jnp.asarray(rng.normal(size=(3, n)))  # the step's layout: items by rows
    f = state["nodes"]["f"]
    captured = {}

    def capture(key, a, b, c, e, extra=None, noise=None, d=None):
        captured.update(a=np.asarray(a), b=np.asarray(b), c=np.asarray(c), e=np.asarray(e))
        return jnp.ones_like(a)

    monkeypatch.setattr(step_module, "group_scale", capture)
    vals = ev.full_values(lay, state, data)
    coefs = {v.name: step._free(state, k, lay) for k, v in enumerate(step.variables)}
    mean = step._means(coefs, vals, lay, n)
    fixed = step._fixed(vals, lay, n)
    thr = step_module._stack([state["thr"][v] for v in ("u1", "u2", "u3")])
    ctx = Context(lay, priors, {})
    args = (ystar, mean, fixed, jnp.ones((3, n)), coefs, thr, state, data, ctx)
    step._scale((jnp.zeros(3), jnp.full(3, 0.5)), *args)  # a normal and a uniform per item
    tau = np.asarray(ordinal.thresholds(thr.u, step.mask))
    lam = np.asarray(state["meas"]["lam"])

    def log_joint(g, k):  # variable k's part along the move, with the Jacobian and Haar
        if k == 0:  # the marker: u* g - 1 * f, its thresholds
            resid, free = g * ystar[0] - f, 0
        else:  # u* g - lam g f, the loading's N(0.5, 0.8^2) prior
            resid, free = g * (ystar[k] - lam[k] * f), 1
        total = -0.5 * (np.where(real, resid, 0.0) ** 2).sum()
        total -= 0.5 * ((g * tau[k]) ** 2).sum() / 1.5**2
        if free:
            total -= 0.5 * (g * lam[k] - 0.5) ** 2 / 0.8**2
        return total + (real.sum() + 2 + free - 1) * np.log(g)

    for k in range(3):
        a, b, e = captured["a"][k], captured["b"][k], captured["e"][k]
        assert captured["c"][k] == 0.0
        for g in (0.7, 1.3, 2.0):
            target = -a * (g**2 - 1) / 2 + b * (g - 1) + e * np.log(g)
            np.testing.assert_allclose(target, log_joint(g, k) - log_joint(1.0, k), rtol=1e-4)
