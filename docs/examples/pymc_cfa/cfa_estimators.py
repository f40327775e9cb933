"""Two estimators of the three-factor CFA beside the engine's Gibbs sweep.

``pymc_cfa`` is the PyMC model a methodologist writes (LKJ factor correlations through
``pm.LKJCholeskyCov``, non-centred factor scores ``eta = z @ chol.T``, normal loadings,
half-normal residual SDs), identified as the engine's model is (first loading of each factor
1, factor covariance matrix free). ``ml_cfa`` is maximum likelihood with standard errors from
the expected information (lavaan's defaults for complete data). Both report lavaan's names.
"""

import numpy as np
import pymc as pm
from scipy import optimize

FACTORS = {"visual": ["x1", "x2", "x3"], "textual": ["x4", "x5", "x6"], "speed": ["x7", "x8", "x9"]}
ITEMS = [x for items in FACTORS.values() for x in items]
NAMES = list(FACTORS)
#: Loadings estimated (the first item of each factor is its marker, loading 1).
FREE = [(f, x) for f, items in FACTORS.items() for x in items[1:]]
PAIRS = [(i, j) for i in range(3) for j in range(i, 3)]


def pymc_cfa(data, centred=False):
    """The PyMC model of one replication's table (its items in ``pm.Data``)."""
    rows = len(data)
    with pm.Model(coords={"factor": NAMES, "item": ITEMS}) as model:
        x = pm.Data("x", data[ITEMS].to_numpy(float))
        chol, _, _ = pm.LKJCholeskyCov(
            "chol", n=3, eta=1.0, sd_dist=pm.HalfNormal.dist(1.0), compute_corr=True
        )
        if centred:
            eta = pm.MvNormal("eta", np.zeros(3), chol=chol, shape=(rows, 3))
        else:
            z = pm.Normal("z", 0.0, 1.0, shape=(rows, 3))
            eta = z @ chol.T
        loading = pm.Normal("loading", 0.0, 10.0, shape=len(FREE))
        intercept = pm.Normal("intercept", 0.0, 10.0, dims="item")
        sd = pm.HalfNormal("sd", 1.0, dims="item")
        columns = []
        for f, items in enumerate(FACTORS.values()):
            columns.append(eta[:, f])  # the marker
            for item in items[1:]:
                columns.append(eta[:, f] * loading[FREE.index((NAMES[f], item))])
        mean = intercept + pm.math.stack(columns, axis=1)
        pm.Normal("x_obs", mean, sd, observed=x)
        pm.Deterministic("phi", chol @ chol.T)
    return model


def pymc_cfa_centred(data):
    """The same model with centred factor scores ``eta ~ MvNormal(0, chol @ chol.T)``."""
    return pymc_cfa(data, centred=True)


def derive(draws):
    """Lavaan's names of the PyMC model's variables, per draw."""
    out = {f"{f}=~{x}": draws["loading"][..., k] for k, (f, x) in enumerate(FREE)}
    for i, j in PAIRS:
        out[f"{NAMES[i]}~~{NAMES[j]}"] = draws["phi"][..., i, j]
    for k, x in enumerate(ITEMS):
        out[f"{x}~1"] = draws["intercept"][..., k]
        out[f"{x}~~{x}"] = draws["sd"][..., k] ** 2
    return out


def _implied(theta):
    """The model-implied covariance of the parameter vector (loadings, phi, residuals)."""
    lam = np.zeros((9, 3))
    for f, items in enumerate(FACTORS.values()):
        lam[ITEMS.index(items[0]), f] = 1.0
    for k, (f, x) in enumerate(FREE):
        lam[ITEMS.index(x), NAMES.index(f)] = theta[k]
    phi = np.zeros((3, 3))
    for k, (i, j) in enumerate(PAIRS):
        phi[i, j] = phi[j, i] = theta[len(FREE) + k]
    return lam @ phi @ lam.T + np.diag(theta[len(FREE) + len(PAIRS) :])


def ml_cfa(data, level):
    """Maximum likelihood, standard errors from the expected information."""
    x = data[ITEMS].to_numpy(float)
    n = len(x)
    s = np.cov(x, rowvar=False, bias=True)
    _, logdet_s = np.linalg.slogdet(s)

    def discrepancy(theta):
        sigma = _implied(theta)
        sign, logdet = np.linalg.slogdet(sigma)
        if sign <= 0:
            return 1e10
        return logdet + np.trace(s @ np.linalg.inv(sigma)) - logdet_s - 9

    start = np.concatenate(
        [np.ones(len(FREE)), [0.5 if i == j else 0.0 for i, j in PAIRS], np.diag(s) / 2]
    )
    fit = optimize.minimize(discrepancy, start, method="BFGS", options={"gtol": 1e-8})
    theta = fit.x
    sigma_inv = np.linalg.inv(_implied(theta))
    step = 1e-6
    jac = np.stack(
        [
            (_implied(theta + step * e) - _implied(theta - step * e)).ravel() / (2 * step)
            for e in np.eye(len(theta))
        ],
        axis=1,
    )
    info = 0.5 * n * jac.T @ np.kron(sigma_inv, sigma_inv) @ jac
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    names = [f"{f}=~{x}" for f, x in FREE]
    names += [f"{NAMES[i]}~~{NAMES[j]}" for i, j in PAIRS]
    names += [f"{x}~~{x}" for x in ITEMS]
    out = {name: (theta[k], se[k]) for k, name in enumerate(names)}
    means, sds = x.mean(axis=0), np.sqrt(np.diag(_implied(theta)) / n)
    out.update({f"{x}~1": (means[k], sds[k]) for k, x in enumerate(ITEMS)})
    return out
