"""The two benchmark models in PyMC (shared by ``pymc_default`` and ``nutpie``).

Same models and priors as :mod:`comparators.models` describes. Observed cells enter in long
format (row, column, value of each observed cell; missing cells are simply absent), held in
``pm.Data`` containers so that nutpie can swap data sets without recompiling. Latent scores are
centred parameters. The ordinal likelihood is written out (``pm.Potential``) as the log of
``Phi(tau_k - mu) - Phi(tau_{k-1} - mu)`` with the stable log-difference used by every
comparator. The factor correlation matrix is ``pm.LKJCorr(n=3, eta=1)`` (PyMC's elementwise
(-1, 1) interval transform; non-positive-definite proposals get log density -inf), the factor
SDs the square roots of InverseGamma(2, 0.5) variances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf

from comparators import FitResult
from comparators.models import LI_FACTOR_OF, LI_FREE, derive, long_format, spec, start_thresholds


def data_values(model_name: str, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of one data set (names as in the models below)."""
    lf = long_format(data)
    return {
        "row": lf["row"].astype("int64"),
        "col": lf["col"].astype("int64"),
        "y": lf["value"].astype("int64" if model_name == "cfa_ordinal" else "float64"),
    }


def log_interval(lo, hi):
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi``, stable in both tails (finite inputs)."""
    flip = pt.gt(lo + hi, 0)  # mostly in the upper tail: use Phi(-lo) - Phi(-hi)
    a = pt.switch(flip, -hi, lo)
    b = pt.switch(flip, -lo, hi)
    la, lb = normal_lcdf(0.0, 1.0, a), normal_lcdf(0.0, 1.0, b)
    return lb + pt.log1p(-pt.exp(pt.minimum(la - lb, 0.0)))


def _variance(name: str, shape: float, scale: float):
    """A variance with density ``v^-(shape+1) exp(-scale/v)``: InverseGamma, or improper."""
    if shape > 0 and scale > 0:
        return pm.InverseGamma(name, alpha=shape, beta=scale)
    v = pm.HalfFlat(name)
    pm.Potential(f"{name}_prior", -(shape + 1) * pt.log(v) - scale / v)
    return v


def build(model_name: str, data: dict[str, np.ndarray]) -> pm.Model:
    """The PyMC model of ``model_name`` with ``data`` in its ``pm.Data`` containers."""
    s = spec(model_name)
    c, a0, b0 = (float(s.priors[k]) for k in ("coef_sd", "var_shape", "var_scale"))
    n = int(np.shape(data["y"])[0])
    values = data_values(model_name, data)
    with pm.Model() as model:
        row = pm.Data("row", values["row"])
        col = pm.Data("col", values["col"])
        y = pm.Data("y", values["y"])
        if model_name == "latent_interaction":
            nu = pm.Normal("nu", 0.0, c, shape=9)
            lam_free = pm.Normal("lam_free", 0.0, c, shape=6)
            theta = pm.InverseGamma("theta", alpha=a0, beta=b0, shape=9)
            la0, lb0 = (float(s.priors[k]) for k in ("latent_var_shape", "latent_var_scale"))
            phi_x, psi_m, psi_y = (_variance(v, la0, lb0) for v in ("phi_x", "psi_m", "psi_y"))
            a1 = pm.Normal("a1", 0.0, c)
            b = pm.Normal("b", 0.0, c, shape=3)
            eta_x = pm.Normal("eta_x", 0.0, pt.sqrt(phi_x), shape=n)
            eta_m = pm.Normal("eta_m", a1 * eta_x, pt.sqrt(psi_m), shape=n)
            mean_y = b[0] * eta_x + b[1] * eta_m + b[2] * eta_x * eta_m
            eta_y = pm.Normal("eta_y", mean_y, pt.sqrt(psi_y), shape=n)
            lam = pt.set_subtensor(pt.ones(9)[LI_FREE], lam_free)
            eta = pt.stack([eta_x, eta_m, eta_y], axis=1)
            factor = pt.as_tensor(LI_FACTOR_OF)[col]
            mu = nu[col] + lam[col] * eta[row, factor]
            pm.Normal("y_obs", mu, pt.sqrt(theta)[col], observed=y, shape=y.shape)
        else:
            lay = s.layout
            p, k = len(lay["items"]), len(lay["factors"])
            n_cuts = lay["categories"] - 1
            lam_free = pm.Normal("lam_free", 0.0, c, shape=len(lay["free"]))
            tau = pm.Normal(
                "tau",
                0.0,
                c,
                shape=(p, n_cuts),
                transform=pm.distributions.transforms.ordered,
                initval=start_thresholds(data, lay["categories"]),
            )
            var_f = pm.InverseGamma("var_f", alpha=a0, beta=b0, shape=k)
            corr = pm.LKJCorr(
                "corr", n=k, eta=float(s.priors.get("lkj_eta", 1.0)), return_matrix=True
            )
            chol = pt.sqrt(var_f)[:, None] * pt.linalg.cholesky(corr, on_error="nan")
            eta = pm.MvNormal("eta", mu=pt.zeros(k), chol=chol, shape=(n, k))
            lam = pt.set_subtensor(pt.ones(p)[lay["free"]], lam_free)
            factor = pt.as_tensor(lay["factor_of"])[col]
            mu = lam[col] * eta[row, factor]
            below = pt.clip(y - 1, 0, n_cuts - 1)
            above = pt.clip(y, 0, n_cuts - 1)
            lower = pt.switch(pt.eq(y, 0), -40.0, tau[col, below] - mu)
            upper = pt.switch(pt.eq(y, n_cuts), 40.0, tau[col, above] - mu)
            pm.Potential("y_loglik", log_interval(lower, upper).sum())
    return model


def raw_extractor(model_name: str) -> Callable[[Any], dict[str, np.ndarray]]:
    """``posterior dataset -> raw draws`` in the names :func:`comparators.models.derive` reads."""

    def extract(posterior) -> dict[str, np.ndarray]:
        get = {
            name: np.asarray(posterior[name].values)
            for name in posterior.data_vars
            if name not in ("eta", "eta_x", "eta_m", "eta_y")
        }
        if model_name == "latent_interaction":
            lam = np.ones((*get["lam_free"].shape[:2], 9))
            lam[..., LI_FREE] = get["lam_free"]
            raw = {k: get[k] for k in ("a1", "b", "phi_x", "psi_m", "psi_y", "theta")}
            raw["lam"] = lam
            return raw
        lay = spec(model_name).layout
        p, k = len(lay["items"]), len(lay["factors"])
        lam = np.ones((*get["lam_free"].shape[:2], p))
        lam[..., lay["free"]] = get["lam_free"]
        corr = np.broadcast_to(np.eye(k), (*get["var_f"].shape[:2], k, k)).copy()
        iu = np.triu_indices(k, 1)
        corr[(..., *iu)] = get["corr"]
        corr[(..., iu[1], iu[0])] = get["corr"]
        return {"lam": lam, "tau": get["tau"], "var_f": get["var_f"], "corr": corr}

    return extract


def draws_from_posterior(model_name: str, posterior) -> dict[str, np.ndarray]:
    """Estimand draws (chains, draws) from an InferenceData ``posterior`` group."""
    return derive(model_name, raw_extractor(model_name)(posterior))


def fit_result(model_name: str, idata, sampling_seconds: float, compile_seconds: float):
    """The :class:`~comparators.FitResult` of an ArviZ InferenceData from PyMC or nutpie."""
    return FitResult(
        draws=draws_from_posterior(model_name, idata.posterior),
        sampling_seconds=sampling_seconds,
        compile_seconds=compile_seconds,
        n_divergent=int(np.asarray(idata.sample_stats["diverging"]).sum()),
    )
