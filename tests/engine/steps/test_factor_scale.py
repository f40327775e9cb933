"""Factor scale moves: what each factor's move rescales, and that the moves keep the prior."""

import jax.numpy as jnp
import numpy as np
import pytest

from simstudy.config import SamplerSettings
from simstudy.engine.replicate import fit_estimator, key_from_seed
from simstudy.spec import dgm, sweep
from simstudy.spec.family import family
from simstudy.spec.info import normalise
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps.factor_scale import FactorScale

TWO_FACTORS = "f =~ y1 + y2 + y3\ng =~ y4 + l5*y5 + 0.5*y6\ng ~ b*f"


def _structure(syntax, kind):
    return normalise({"syntax": syntax, "prior_families": {"residual": kind, "covariance": kind}})


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
