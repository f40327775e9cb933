"""The indicators' step: equations picked for updates from sums, and the sums' information."""

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.spec import dgm, sweep
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps import measurement

TWO_FACTORS = "f =~ y1 + y2 + y3\ng =~ y4 + l5*y5 + 0.5*y6\ng ~ b*f"


def test_indicator_equations_are_updated_from_sums():
    lay = sweep.layout(from_syntax(TWO_FACTORS))
    m = lay.measurement
    assert m.targets == ("y1", "y2", "y3", "y4", "y5", "y6")
    assert m.fixed == (1.0, None, None, 1.0, None, 0.5)
    assert [lay.equations[i].target for i in lay.general] == ["g"]
    assert [s.targets for s in lay.steps_of(measurement.Measurement)] == [m.targets]


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


def test_sums_per_indicator_follow_each_indicators_factor():
    """The sums read each indicator's own factor, also where a factor's indicators interleave."""
    lay = sweep.layout(from_syntax("f =~ y1 + y2\ng =~ y3 + y4\nf =~ y5\ng ~ b*f"))
    m = lay.measurement
    assert m.factor_of == (0, 0, 1, 1, 0)  # y5 measures f after g's indicators
    rng = np.random.default_rng(3)
    n = 20
    data = {dgm.ROW_REAL: jnp.asarray(np.arange(n) < n - 2)}
    for t in m.targets:
        data[t] = jnp.asarray(rng.normal(size=n))
        data[dgm.observed_key(t)] = jnp.asarray(rng.random(n) < 0.7)
    data = sweep.prepare(data, lay)
    eta = jnp.asarray(rng.normal(size=(2, n)))
    s = measurement.sums(m, eta, data)
    for j, t in enumerate(m.targets):
        o = np.asarray(data[dgm.observed_key(t)] & data[dgm.ROW_REAL])
        e, y = np.asarray(eta[m.factor_of[j]])[o], np.asarray(data[t])[o]
        np.testing.assert_allclose(s.e[j], e.sum(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s.ee[j], (e**2).sum(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s.ye[j], ((y - y.mean()) * e).sum(), rtol=1e-5, atol=1e-5)


def test_probit_ordered_indicators_join_the_sums_logit_ones_stay_general():
    """Probit ordered items are indicators with a fixed intercept (0) and variance (1); under
    the logit (a Pólya–Gamma weight per row) they keep their general coefficient steps."""
    syntax = "f =~ u1 + u2 + y3"
    ordered = {"u1": 3, "u2": 4}
    probit = sweep.layout(from_syntax(syntax, ordered=ordered)).measurement
    assert probit.targets == ("u1", "u2", "y3")
    assert probit.intercepts == (0.0, 0.0, None) and probit.variances == (1.0, 1.0, None)
    assert probit.ordered == (True, True, False)
    logit = sweep.layout(from_syntax(syntax, ordered=ordered, link="logit"))
    assert logit.measurement.targets == ("y3",)
    assert [logit.equations[i].target for i in logit.general] == ["u1", "u2"]


def test_ordered_indicators_sums_are_their_responses_and_loadings_draw_given_the_intercept():
    """An ordered item's sums are taken over every real row at the current responses; its
    loading is drawn alone given its fixed intercept 0: N((sum u* f + m p) / (sum f^2 + p),
    1 / (sum f^2 + p)) with the loading prior's mean m and precision p."""
    lay = sweep.layout(from_syntax("f =~ u1 + u2 + y3", ordered={"u1": 3, "u2": 3}))
    m = lay.measurement
    rng = np.random.default_rng(5)
    n = 20
    real = np.arange(n) < n - 3
    data = {dgm.ROW_REAL: jnp.asarray(real)}
    for t in m.targets:
        data[t] = jnp.asarray(rng.integers(0, 3, n), dtype=float)
        data[dgm.observed_key(t)] = jnp.asarray(rng.random(n) < 0.7)
    data = sweep.prepare(data, lay)
    state = {"nodes": {u: jnp.asarray(rng.normal(size=n)) for u in ("u1", "u2")}}
    f = jnp.asarray(rng.normal(size=n))
    s = measurement.sums(m, f[None, :], measurement.current(m, state, data))
    for j, t in enumerate(("u1", "u2")):
        u, e = np.asarray(state["nodes"][t])[real], np.asarray(f)[real]
        np.testing.assert_allclose(s.n[j], real.sum())
        np.testing.assert_allclose(s.ee[j], (e**2).sum(), rtol=1e-5)
        np.testing.assert_allclose(s.ye[j], ((u - u.mean()) * e).sum(), rtol=1e-5, atol=1e-5)
    y = np.asarray(data["y3"])[np.asarray(data[dgm.observed_key("y3")]) & real]
    np.testing.assert_allclose(s.ybar[2], y.mean(), rtol=1e-5)  # a continuous one's, as before
    params = {"nu": jnp.zeros(3), "lam": jnp.ones(3), "theta": jnp.ones(3)}
    prior = ((jnp.zeros(3), jnp.full(3, 2.0)), (jnp.full(3, 0.5), jnp.full(3, 0.8)))
    draws = [
        measurement.draw_coefficients(m, s, params, (jnp.full((3, 2), z), jnp.zeros(3)), prior)
        for z in (0.0, 1.0)
    ]
    u, e = np.asarray(state["nodes"]["u2"])[real], np.asarray(f)[real]
    precision = (e**2).sum() + 1 / 0.8**2
    mean = ((u * e).sum() + 0.5 / 0.8**2) / precision
    assert float(draws[0][0][1]) == 0.0 and float(draws[0][1][0]) == 1.0  # u1: the marker
    np.testing.assert_allclose(draws[0][1][1], mean, rtol=1e-4)
    np.testing.assert_allclose(draws[1][1][1] - draws[0][1][1], precision**-0.5, rtol=1e-4)
