"""The nominal predictor's step: its discrete conditional, its prior, and a small recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.spec import dgm, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec import evaluate as ev
from simstudy.spec.info import PRIOR_DEFAULTS
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps.nominal import NominalPredictor

FAMILIES = {"residual": "half_normal", "covariance": "half_normal"}


def _bayes(spec):
    return kinds.build(spec, sweep.layout(spec), FAMILIES, {"bayes": {"kind": "gibbs"}})["bayes"]


def _log_joint(lay, state, data, weights) -> jax.Array:
    """Every general equation's normal log density over the rows, plus log P(d) of each row."""
    vals = ev.full_values(lay, state, data)
    total = jnp.asarray(0.0)
    for i in lay.general:
        eq = lay.equations[i]
        coefs = ev.coef_vector(eq, state["coef"][eq.target], lay.free_coefs[i])
        sd = jnp.sqrt(ev.variance(lay, state, i))
        density = norm.logpdf(vals[eq.target], ev.equation_mean(eq, coefs, vals), sd)
        total = total + (weights[i] * density).sum()
    codes = vals["d"].astype(int)
    return total + jnp.log(state["prob"]["d"])[codes - 1].sum()


def test_the_discrete_conditional_is_the_enumerated_log_joint_normalised():
    spec = from_syntax("f =~ x1 + x2 + x3\nf ~ d\ny ~ f + f:x1 + d\n", nominal={"d": 3})
    lay = sweep.layout(spec)
    (step,) = lay.steps_of(NominalPredictor)
    assert [lay.equations[i].target for i in step.involved] == ["f", "y"]
    n = 5
    rng = np.random.default_rng(4)
    data = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ("x1", "x2", "x3", "y"):
        data[v], data[dgm.observed_key(v)] = jnp.asarray(rng.normal(size=n)), jnp.ones(n, bool)
    seen = jnp.asarray([True, False, True, False, False])
    data["d"], data[dgm.observed_key("d")] = jnp.where(seen, 2.0, 0.0), seen
    data = sweep.prepare(data, lay)
    state = sweep.init(jax.random.key(0), data, lay, sweep.Priors())
    state["coef"] = {t: jnp.asarray(rng.normal(size=c.shape)) for t, c in state["coef"].items()}
    state["var"] = {t: jnp.asarray(0.5 + rng.uniform()) for t in state["var"]}
    state["nodes"]["d"] = jnp.asarray([2.0, 3.0, 2.0, 1.0, 3.0])
    state["prob"]["d"] = jnp.asarray([0.5, 0.2, 0.3])
    weights = {i: ev.weight(lay.equations[i], lay, data) for i in lay.general}

    conditional = jax.nn.softmax(step.log_conditional(state, data, weights, lay), axis=-1)
    for row in range(n):
        joint = []
        for k in (1.0, 2.0, 3.0):
            nodes = {**state["nodes"], "d": state["nodes"]["d"].at[row].set(k)}
            joint.append(_log_joint(lay, {**state, "nodes": nodes}, data, weights))
        expected = jax.nn.softmax(jnp.stack(joint))
        np.testing.assert_allclose(conditional[row], expected, rtol=1e-4, atol=1e-6)


def test_with_nothing_observed_the_chain_samples_the_dirichlet_prior():
    """No d and no outcome observed: pi ~ Dirichlet(1, 1, 1), d | pi ~ pi, nothing else."""
    spec = from_syntax("y ~ d\n", nominal={"d": 3})
    n = 8
    hidden = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ("y", "d"):
        hidden[v], hidden[dgm.observed_key(v)] = jnp.zeros(n), jnp.zeros(n, bool)
    settings = SamplerSettings(name="gibbs", chains=1, warmup=200, draws=6000)
    fit = gibbs.prepare(_bayes(spec), hidden, settings, PRIOR_DEFAULTS)
    draws = fit(jax.random.key(1), hidden).draws
    for name in ("P(d=2)", "P(d=3)"):
        v = np.asarray(draws[name]).ravel()
        # batch means: 30 batches of 200 sweeps, far longer than the chain's memory here
        mcse = np.asarray(v).reshape(30, -1).mean(1).std(ddof=1) / np.sqrt(30)
        assert abs(v.mean() - 1 / 3) < 4 * mcse, (name, v.mean(), mcse)
        assert v.var() == pytest.approx(2 / 36, rel=0.15), name  # Dirichlet(1,1,1): 2/(9*4)
    first = 1 - np.asarray(draws["P(d=2)"]) - np.asarray(draws["P(d=3)"])
    assert first.min() > 0


# slow tier (default-tier time); the cheap check of the same: the conditional: the enumeration
# test; the prior: the nothing-observed test
@pytest.mark.slow
def test_a_short_fit_recovers_the_probabilities_and_the_effects_of_d():
    spec = from_syntax("y ~ x + d\n", {"d": {}}, nominal={"d": 3})
    values = {"y~1": 0.5, "y~x": 0.4, "y~d2": 1.0, "y~d3": -0.5, "y~~y": 1.0}
    values |= {"P(d=2)": 0.3, "P(d=3)": 0.2}
    setting = {**values, "N": 1500, "missing_rate": 0.3, "mechanism": "MCAR"}
    data = dgm.simulate(spec, jax.random.key(2), setting)
    assert 0.25 < 1 - float(np.asarray(data[dgm.observed_key("d")]).mean()) < 0.35
    settings = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=400)
    draws = gibbs.prepare(_bayes(spec), data, settings, PRIOR_DEFAULTS)(jax.random.key(3), data)
    for name in ("P(d=2)", "P(d=3)", "y~d2", "y~d3", "y~x"):
        v = np.asarray(draws.draws[name])
        assert abs(v.mean() - values[name]) < 3 * v.std(), (name, v.mean(), v.std())
