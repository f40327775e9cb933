"""One sweep from exact draws of the prior (nothing observed) leaves them draws of the prior.

Geweke's (2004) check in its one-step form: every step and move of the compiled sweep leaves
the posterior invariant, so one sweep from states drawn exactly from it keeps their law. With
nothing observed the posterior is the prior, drawn directly here (vmapped, no chain, no
autocorrelation), which makes a move's wrong term show after one sweep: a Jacobian, a prior
term's sign, a value a move forgets to carry.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks import ordinal
from simstudy.spec import dgm, sweep
from simstudy.spec.ir import from_syntax

#: Two factors of three probit items of 3 categories (ordered items updated from sums).
SYNTAX = "f =~ u1 + u2 + u3\ng =~ u4 + u5 + u6"
ITEMS = ("u1", "u2", "u3", "u4", "u5", "u6")
#: InverseGamma(4, 3) factor variances, LKJ(1) (uniform) correlation, N(0, 3^2) coefficients
#: (a wide prior: the thresholds pin the factors' location little, so its moves are long).
PRIORS = sweep.Priors(coef_sd=3.0, cov_prior="inverse_gamma", var_shape=4.0, var_scale=3.0)


def _prior_state(key, base, lay, rows):
    """``base`` with every unknown drawn from the prior (nothing observed)."""
    k_var, k_corr, k_eta, k_lam, k_tau, k_y = jax.random.split(key, 6)
    variance = 3.0 / jax.random.gamma(k_var, 4.0, (2,))
    sd = jnp.sqrt(variance)
    r = jax.random.uniform(k_corr, minval=-1.0, maxval=1.0)
    phi = jnp.array([[variance[0], r * sd[0] * sd[1]], [r * sd[0] * sd[1], variance[1]]])
    scores = jax.random.normal(k_eta, (rows, 2)) @ jnp.linalg.cholesky(phi).T
    m = lay.measurement
    lam = jnp.where(m.marker, 1.0, 3.0 * jax.random.normal(k_lam, (6,)))
    tau = jnp.sort(3.0 * jax.random.normal(k_tau, (6, 2)), axis=1)
    mean = lam * scores[:, np.asarray(m.factor_of)]
    ystar = mean + jax.random.normal(k_y, (rows, 6))
    nodes = {"f": scores[:, 0], "g": scores[:, 1]}
    nodes |= {u: ystar[:, j] for j, u in enumerate(ITEMS)}
    thr = {
        u: base["thr"][u]._replace(u=ordinal.unconstrain(tau[j : j + 1]))
        for j, u in enumerate(ITEMS)
    }
    return {
        **base,
        "nodes": {**base["nodes"], **nodes},
        "meas": {**base["meas"], "lam": lam},
        "cov": {**base["cov"], "latent": phi},
        "thr": {**base["thr"], **thr},
    }


# slow tier (a vmapped sweep's compile, ~20 s); the cheap checks of the same moves: their
# targets against the log joint (tests/engine/steps/test_factor_location.py, test_ordered.py)
@pytest.mark.slow
def test_one_sweep_of_the_ordinal_cfa_keeps_its_prior():
    """Every estimand, and each item's residual ``u* - lam f`` in a row, after one sweep has the
    prior's law (two-sample KS against independent prior draws, 4000 each).

    Covers the ordered items' thresholds, responses and scale moves (a marker's too), the
    indicators' loadings from sums, the factor block, the factors' scale moves (the ordered
    markers' walk) and location moves (thresholds and responses shifted). Fails (checked by
    hand) with the location move's threshold prior of the wrong sign, with the responses not
    shifted, and with the marker's scale move without its ``u* f`` term.
    """
    spec = from_syntax(SYNTAX, ordered=dict.fromkeys(ITEMS, 3))
    lay = sweep.layout(spec)
    rows = 2
    data = {dgm.ROW_REAL: jnp.ones(rows, bool)}
    for u in ITEMS:
        data[u], data[dgm.observed_key(u)] = jnp.zeros(rows), jnp.zeros(rows, bool)
    data = sweep.prepare(data, lay)
    base = sweep.init(jax.random.key(0), data, lay, PRIORS)

    m = lay.measurement

    def law(state):  # the estimands, and each item's first response's residual
        out = sweep.collect(state, lay, spec)
        for j, u in enumerate(ITEMS):
            score = state["nodes"][m.factors[m.factor_of[j]]][0]
            out[f"{u}*"] = state["nodes"][u][0] - state["meas"]["lam"][j] * score
        return out

    def prior(key):
        return law(_prior_state(key, base, lay, rows))

    def one(key):
        k_state, k_sweep = jax.random.split(key)
        state = _prior_state(k_state, base, lay, rows)
        return law(sweep.sweep(k_sweep, state, data, lay, PRIORS))

    draws = 4000
    fresh = jax.jit(jax.vmap(prior))(jax.random.split(jax.random.key(1), draws))
    after = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(2), draws))
    assert set(fresh) >= {"f=~u2", "g=~u6", "f~~f", "f~~g", "u1|t1", "u5|t2"}
    for name in fresh:
        a, b = np.asarray(fresh[name]), np.asarray(after[name])
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name
