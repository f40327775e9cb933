"""The NumPyro back end of a spec: a marker-identified CFA's factors integrated out."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.infer import init_to_uniform
from scipy.stats import multivariate_normal

from simstudy.cli import main
from simstudy.spec import hmc, sweep
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.info import PRIOR_DEFAULTS
from simstudy.spec.ir import from_syntax

CFA = "f =~ y1 + y2 + y3; g =~ y4 + y5 + y6"
ITEMS = [f"y{i}" for i in range(1, 7)]
#: Population of the simulated CFA: loadings (markers 1), factor covariance, residual variances.
LOADINGS = {"y2": 0.7, "y3": 1.2, "y5": 0.8, "y6": 1.1}
PHI = np.array([[0.8, 0.3], [0.3, 0.5]])


def _cfa_data(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    eta = rng.multivariate_normal([0.0, 0.0], PHI, size=rows)
    out = {}
    for i, y in enumerate(ITEMS):
        factor = eta[:, 0] if i < 3 else eta[:, 1]
        out[y] = 3.0 + i * 0.5 + LOADINGS.get(y, 1.0) * factor + rng.normal(0, 0.6, rows)
    return out


def _model_data(values: dict[str, np.ndarray], seen: dict[str, np.ndarray]) -> dict:
    rows = len(values["y1"])
    data = {ROW_REAL: jnp.ones(rows, bool)}
    for y in ITEMS:
        data[y] = jnp.asarray(values[y])
        data[observed_key(y)] = jnp.asarray(seen.get(y, np.ones(rows, bool)))
    return hmc.model_data(data, PRIOR_DEFAULTS, sweep.layout(from_syntax(CFA)))


def test_only_models_linear_in_their_latents_are_marginal():
    assert hmc.marginal_nodes(sweep.layout(from_syntax(CFA + "; g ~ f"))) is not None
    # a latent product, a random effect: scores stay sampled
    assert hmc.marginal_nodes(sweep.layout(from_syntax(CFA + "; z ~ f + g + f:g"))) is None
    assert hmc.marginal_nodes(sweep.layout(from_syntax("y ~ 1 + x + (1 | c)"))) is None


def _implied_normal(data: dict, sites: dict, derive) -> tuple[np.ndarray, np.ndarray]:
    """lavaan's N(nu, Lambda Phi Lambda' + Theta) at the sites' values: mean, covariance."""
    p = derive(sites)
    lam = np.zeros((6, 2))
    for i, y in enumerate(ITEMS):
        lam[i, i // 3] = p.get(f"{'f' if i < 3 else 'g'}=~{y}", 1.0)
    fg = p.get("f~~g", p.get("g~~f"))
    phi = np.array([[p["f~~f"], fg], [fg, p["g~~g"]]])
    cov = lam @ phi @ lam.T + np.diag([p[f"{y}~~{y}"] for y in ITEMS])
    return np.array([p[f"{y}~1"] for y in ITEMS]), cov


@pytest.mark.parametrize("families", [("half_normal", "half_normal"), ("inverse_gamma",) * 2])
@pytest.mark.parametrize("missing", [False, True])
def test_cfa_density_is_the_implied_normal_of_the_observed_items(families, missing):
    """log p(data | parameters) = lavaan's N(nu, Lambda Phi Lambda' + Theta) per row."""
    spec = from_syntax(CFA)
    lay = sweep.layout(spec)
    model = hmc.make_model(lay, *families)
    rows = 5
    seen = {"y3": np.array([not missing, True, True, True, True])}
    data = _model_data(_cfa_data(rows), seen)
    # random values of every site, the improper ones (signed scales) included
    drawn = handlers.substitute(
        handlers.seed(model, jax.random.key(1)), substitute_fn=init_to_uniform
    )
    trace = handlers.trace(drawn).get_trace(**data)
    assert not any(name.startswith("z:") for name in trace)  # no factor score is sampled
    sites = {k: v["value"] for k, v in trace.items() if v["type"] == "sample"}
    nu, cov = _implied_normal(data, sites, hmc.make_derive(lay, spec, *families))
    y = np.column_stack([np.asarray(data[v]) for v in ITEMS])
    keep = [0, 1, 3, 4, 5] if missing else list(range(6))  # row 0 without y3
    expected = multivariate_normal(nu, cov).logpdf(y[1:]).sum()
    expected += multivariate_normal(nu[keep], cov[np.ix_(keep, keep)]).logpdf(y[0, keep])
    site = trace["obs:marginal"]
    got = site["fn"].log_prob(site["value"]).sum()
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.slow
def test_cfa_hmc_has_the_markers_sign_and_scale(tmp_path):
    """Short NUTS and ChEES chains from random starts land on the loadings' sign and scale.

    With factor scores sampled, chains started from random loadings and scores settled in
    sign-flipped or collapsed-factor modes (HS1939: ``visual=~x2`` -2.9, ``speed=~x9`` -19.5).
    """
    path = tmp_path / "cfa.csv"
    pd.DataFrame(_cfa_data(300, seed=3)).round(4).to_csv(path, index=False)
    for sampler in ("nuts", "chees"):
        out = tmp_path / f"{sampler}.parquet"
        argv = ["fit", "model=spec", f"model.syntax={CFA}", f"data={path}", f"out={out}"]
        settings = ["sampler.warmup=150", "sampler.draws=150", "sampler.chains=4"]
        assert main([*argv, "estimator=bayes_hmc", f"sampler={sampler}", *settings]) == 0
        table = pd.read_parquet(out).set_index("parameter")
        for y, value in LOADINGS.items():
            name = f"{'f' if y in ('y2', 'y3') else 'g'}=~{y}"
            assert abs(table.loc[name, "mean"] - value) < 0.2, (sampler, name, table)
            assert table.loc[name, "rhat"] < 1.05, (sampler, name, table)
        assert abs(table.loc["f~~f", "mean"] - PHI[0, 0]) < 0.25, (sampler, table)
        assert abs(table.loc["g~~g", "mean"] - PHI[1, 1]) < 0.25, (sampler, table)
