"""Factor scale moves: what each factor's move rescales, and that the moves keep the prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.config import SamplerSettings
from simstudy.engine.replicate import fit_estimator, key_from_seed
from simstudy.spec import dgm, sweep
from simstudy.spec.family import family
from simstudy.spec.info import normalise
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps.factor_scale import WALK_STEPS, FactorScale, _Marker, _walk
from simstudy.spec.steps.ordered import OrderedResponses

TWO_FACTORS = "f =~ y1 + y2 + y3\ng =~ y4 + l5*y5 + 0.5*y6\ng ~ b*f"


def _structure(syntax, kind):
    return normalise({"syntax": syntax, "prior_families": {"residual": kind, "covariance": kind}})


def test_an_ordered_marker_is_carried_and_ordered_items_are_one_step():
    """Probit ordered markers' responses are integrated out of their factor's move; items of
    the same categories and link are one ordered step, one with random effects its own."""
    syntax = "f =~ u1 + u2 + u3\ng =~ y4 + u5 + u6\nw ~ x + (1 | h)"
    ordered = {"u1": 3, "u2": 3, "u3": 4, "u5": 3, "u6": 3, "w": 3}
    lay = sweep.layout(from_syntax(syntax, ordered=ordered))
    moves = {s.factor: [o.name for o in s.collapsed] for s in lay.steps_of(FactorScale)}
    assert moves == {"f": ["u1"], "g": []}
    batches = [[v.name for v in s.variables] for s in lay.steps_of(OrderedResponses)]
    assert batches == [["u1", "u2", "u5", "u6"], ["u3"], ["w"]]


def test_factors_get_scale_moves():
    lay = sweep.layout(from_syntax(TWO_FACTORS))
    moves = {s.factor: s for s in lay.steps_of(FactorScale)}
    assert set(moves) == {"f", "g"}
    # f: its loadings and the path b shrink; its variance is the latent block's
    assert moves["f"].variance == ("block", "latent", 0)
    assert moves["f"].down == (("g", 0),) and sum(moves["f"].loadings_free) == 2
    # g: the path b grows with it; y4 (1) and y6 (0.5) pin its scale
    assert moves["g"].variance == ("equation", "g", 0) and moves["g"].up == (("g", 0),)
    assert moves["g"].loadings_fixed == (False, False, False, True, False, True)


# half-normal in the slow tier (default-tier time): the same move's powers of g are checked by
# the inverse-gamma case here and the half-normal scale draw by tests/blocks/test_blocks_geweke.py
@pytest.mark.parametrize(
    "kind", ["inverse_gamma", pytest.param("half_normal", marks=pytest.mark.slow)]
)
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


# slow tier (a compile for one assertion); the default tier checks the move's d / g term by
# tests/blocks/test_group_scale.py and the loading class's numbers by tests/spec/test_spec_priors.py
@pytest.mark.slow
def test_scale_moves_keep_a_loading_prior_away_from_zero():
    """Loadings N(1, 0.5^2) (``loading_mean``, ``loading_sd``), nothing observed: their prior.

    A free loading scaled by ``1 / g`` under a non-zero prior mean adds ``d / g`` to the move's
    target (``blocks.group.group_scale``'s ``d``); leaving it out pulls the loadings' draws
    toward 0.
    """
    structure = _structure(TWO_FACTORS, "inverse_gamma")
    est = family("loading_prior", structure).estimators_for(structure)["bayes"]
    n = 40
    data = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ("y1", "y2", "y3", "y4", "y5", "y6"):
        data[v], data[dgm.observed_key(v)] = jnp.zeros(n), jnp.zeros(n, bool)
    priors = {"coef_sd": 1.0, "var_shape": 4.0, "var_scale": 3.0}
    priors |= {"latent_var_shape": 4.0, "latent_var_scale": 3.0}
    priors |= {"loading_mean": 1.0, "loading_sd": 0.5}
    sampler = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=3000)
    summaries, _, _ = fit_estimator(est, data, key_from_seed(5), sampler, priors, 0.95)
    expected = {"f=~y2": (1, 0.5), "f=~y3": (1, 0.5), "g=~y5": (1, 0.5), "g~f": (0, 1)}
    expected |= {v: (1, 0.71) for v in ("f~~f", "g~~g")}
    for name, (mean, spread) in expected.items():
        s = summaries[name]
        mcse = s.se / np.sqrt(s.ess_bulk)
        assert abs(s.estimate - mean) < 4 * mcse + 0.02, (name, s)
        assert abs(s.se / spread - 1) < 0.1 + 4 / np.sqrt(s.ess_bulk), (name, s)


def _walk_chain(parts, coefs, info, steps, seed):
    """``log G`` of a chain of ordered-marker moves, each made at the state ``T_G x``."""
    w, lo, hi, moving = parts
    a, b, c, d, e = coefs

    def one(t, key):
        g = jnp.exp(t)
        noise = (jax.random.normal(key, (WALK_STEPS,)), jnp.log(jax.random.uniform(
            jax.random.fold_in(key, 1), (WALK_STEPS,))))  # fmt: skip
        marker = _Marker(((w, lo, hi, g * moving),), (), g**2 * info)
        step = _walk(marker, g**2 * a, g * b, c / g**2, d / g, e, noise)
        t = t + jnp.log(step)
        return t, t

    keys = jax.random.split(jax.random.key(seed), steps)
    return np.asarray(jax.jit(lambda k: jax.lax.scan(one, jnp.asarray(0.0), k)[1])(keys))


def test_an_ordered_markers_walk_samples_its_target():
    """The walk in ``log g`` with the categories' likelihood keeps its target (cheap check).

    Run as a chain, each move at the state the last one left (the coefficients of
    ``T_G x`` are ``(G^2 a, G b, c / G^2, d / G)``, the marker's moving part ``G f``), the
    draws of ``log G`` have the target's mean and SD by quadrature. A wrong Hastings term for
    the state-dependent step, or a wrong sign or power in the target, moves them.
    """
    rng = np.random.default_rng(0)
    n = 40
    f = rng.normal(size=n)
    cats = rng.integers(0, 3, n)
    tau = np.array([-0.5, 0.7])
    lo, hi = np.r_[-np.inf, tau][cats], np.r_[tau, np.inf][cats]
    w = (rng.uniform(size=n) < 0.8).astype(float)
    parts = tuple(jnp.asarray(x) for x in (w, lo, hi, f))
    coefs = (0.5, 0.2, 0.8, 0.1, -3.0)
    draws = _walk_chain(parts, coefs, float((w * f**2).sum()), 8_000, 1)
    t = np.linspace(-4, 3, 20_001)
    g = np.exp(t)
    a, b, c, d, e = coefs
    log_p = -a * g**2 / 2 + b * g - c / g**2 + d / g + (e + 1) * t
    cell = stats.norm.cdf(hi[:, None] - g * f[:, None]) - stats.norm.cdf(
        lo[:, None] - g * f[:, None]
    )
    log_p = log_p + (w[:, None] * np.log(np.maximum(cell, 1e-300))).sum(0)
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    mean, sd = (p * t).sum(), np.sqrt((p * t**2).sum() - (p * t).sum() ** 2)
    # batch means: 40 batches of 200 moves
    batches = draws.reshape(40, -1).mean(1)
    mcse = batches.std(ddof=1) / np.sqrt(40)
    assert abs(draws.mean() - mean) < 4 * mcse, (draws.mean(), mean, mcse)
    assert abs(draws.std() / sd - 1) < 0.05, (draws.std(), sd)


# slow tier (a compile for one fit); the cheap check of the same move: the walk's test above
@pytest.mark.slow
def test_an_ordered_marker_with_nothing_observed_samples_its_prior():
    """Ordered items, nothing observed: the moves carrying the marker keep the prior.

    The marker ``u1``'s factor scale move integrates its latent responses out and draws them
    again; a wrong power of ``g`` there shifts ``f~~f`` and the loadings from their priors.
    The items are updated from sums, with the items' scale moves (a marker's too) and the
    factors' location moves shifting every item's thresholds: a wrong threshold prior term in
    either shifts the thresholds' draws.
    """
    syntax = "f =~ u1 + u2 + u3\ng =~ u4 + u5 + u6"
    ordered = {f"u{j}": 3 for j in range(1, 7)}
    structure = normalise(
        {"syntax": syntax, "ordered": ordered, "prior_families": {"covariance": "inverse_gamma"}}
    )
    est = family("ordered_marker_prior", structure).estimators_for(structure)["bayes"]
    n = 40
    data = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for v in ordered:
        data[v], data[dgm.observed_key(v)] = jnp.zeros(n), jnp.zeros(n, bool)
    priors = {"coef_sd": 1.0, "var_shape": 4.0, "var_scale": 3.0}
    priors |= {"latent_var_shape": 4.0, "latent_var_scale": 3.0}
    sampler = SamplerSettings(name="gibbs", chains=2, warmup=200, draws=3000)
    summaries, _, _ = fit_estimator(est, data, key_from_seed(7), sampler, priors, 0.95)
    # loadings N(0, 1); InverseGamma(4, 3) variances: mean 1, SD 0.71; the marker's thresholds
    # two sorted N(0, 1): means -+0.564, SDs 0.826
    expected = {"f=~u2": (0, 1), "f=~u3": (0, 1), "g=~u5": (0, 1)}
    expected |= {"f~~f": (1, 0.71), "g~~g": (1, 0.71)}
    for u in ("u1", "u2", "u5"):
        expected |= {f"{u}|t1": (-0.564, 0.826), f"{u}|t2": (0.564, 0.826)}
    for name, (mean, spread) in expected.items():
        s = summaries[name]
        mcse = s.se / np.sqrt(s.ess_bulk)
        assert abs(s.estimate - mean) < 4 * mcse + 0.02, (name, s)
        assert abs(s.se / spread - 1) < 0.1 + 4 / np.sqrt(s.ess_bulk), (name, s)
