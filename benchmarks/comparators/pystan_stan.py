"""Stan (through PyStan 3 / httpstan): the same two models written in Stan.

``stan.build(code, data, random_seed)`` then ``posterior.sample(num_chains=2, num_warmup=1000,
num_samples=1000)``: Stan's NUTS defaults (diagonal mass matrix, adapt_delta 0.8, maximum tree
depth 10, inits uniform(-2, 2) on the unconstrained scale); httpstan runs the two chains in
parallel worker processes (fork).

PyStan binds the data at build time, so ``stan.build`` runs for every replication; it compiles
the C++ model only when httpstan's on-disk cache (~/.cache/httpstan) lacks it, otherwise it
loads it (about a second). ``compile_seconds`` is the build time; the note says whether the
model came from the cache. Observed cells enter in long format (missing cells absent); the
ordinal likelihood is Stan's built-in ``ordered_probit`` per item (``log_diff_exp`` of
``std_normal_lcdf``), the latent-score prior the multivariate normal density written via the
triangular solve of the K × K Cholesky factor.
"""

from __future__ import annotations

import contextlib
import io
import time

import httpstan.cache
import httpstan.models
import numpy as np
import stan

from comparators import FitResult
from comparators.models import CHAINS, DRAWS, LI_FREE, WARMUP, derive, long_format, spec

SETTINGS = (
    f"PyStan {stan.__version__} (httpstan {httpstan.__version__}), Stan NUTS defaults, {CHAINS} "
    f"chains × {WARMUP} warm-up + {DRAWS} draws, chains in parallel processes"
)

LATENT_INTERACTION = """
data {
  int<lower=1> N;
  int<lower=0> n_obs;
  array[n_obs] int<lower=1, upper=N> row;
  array[n_obs] int<lower=1, upper=9> col;
  vector[n_obs] y;
  real<lower=0> coef_sd;
  real<lower=0> var_shape;
  real<lower=0> var_scale;
  real<lower=-1> latent_var_shape;
  real<lower=0> latent_var_scale;
}
transformed data {
  array[9] int factor = {1, 1, 1, 2, 2, 2, 3, 3, 3};
  array[n_obs] int cell;  // position in append_row(eta_x, eta_m, eta_y)
  for (i in 1:n_obs) cell[i] = (factor[col[i]] - 1) * N + row[i];
}
parameters {
  vector[9] nu;
  vector[6] lam_free;
  vector<lower=0>[9] theta;
  real<lower=0> phi_x;
  real<lower=0> psi_m;
  real<lower=0> psi_y;
  real a1;
  vector[3] b;
  vector[N] eta_x;
  vector[N] eta_m;
  vector[N] eta_y;
}
model {
  vector[9] lam = [1, lam_free[1], lam_free[2], 1, lam_free[3], lam_free[4],
                   1, lam_free[5], lam_free[6]]';
  vector[3 * N] eta = append_row(eta_x, append_row(eta_m, eta_y));
  nu ~ normal(0, coef_sd);
  lam_free ~ normal(0, coef_sd);
  a1 ~ normal(0, coef_sd);
  b ~ normal(0, coef_sd);
  theta ~ inv_gamma(var_shape, var_scale);
  // latent variances: v^-(shape+1) exp(-scale/v), proper or not ((-1, 0): flat)
  target += -(latent_var_shape + 1) * (log(phi_x) + log(psi_m) + log(psi_y))
            - latent_var_scale * (inv(phi_x) + inv(psi_m) + inv(psi_y));
  eta_x ~ normal(0, sqrt(phi_x));
  eta_m ~ normal(a1 * eta_x, sqrt(psi_m));
  eta_y ~ normal(b[1] * eta_x + b[2] * eta_m + b[3] * (eta_x .* eta_m), sqrt(psi_y));
  y ~ normal(nu[col] + lam[col] .* eta[cell], sqrt(theta[col]));
}
"""

CFA_ORDINAL = """
data {
  int<lower=1> N;
  int<lower=1> P;
  int<lower=1> K;
  int<lower=2> C;
  array[P] int<lower=1, upper=K> factor;
  int<lower=0> n_free;
  array[n_free] int<lower=1, upper=P> free;
  int<lower=0> n_obs;
  array[n_obs] int<lower=1, upper=N> row;
  array[n_obs] int<lower=1, upper=P> col;
  array[n_obs] int<lower=1, upper=C> y;
  array[P] int<lower=1> start;  // cells of item j: start[j]..stop[j] (grouped by item)
  array[P] int<lower=0> stop;
  real<lower=0> coef_sd;
  real<lower=0> var_shape;
  real<lower=0> var_scale;
  real<lower=0> lkj_eta;
}
transformed data {
  array[n_obs] int cell;  // position in to_vector(eta) (column-major)
  for (i in 1:n_obs) cell[i] = (factor[col[i]] - 1) * N + row[i];
}
parameters {
  vector[n_free] lam_free;
  array[P] ordered[C - 1] tau;
  vector<lower=0>[K] var_f;
  cholesky_factor_corr[K] L_corr;
  matrix[N, K] eta;
}
model {
  vector[P] lam = rep_vector(1, P);
  lam[free] = lam_free;
  lam_free ~ normal(0, coef_sd);
  for (j in 1:P) tau[j] ~ normal(0, coef_sd);
  var_f ~ inv_gamma(var_shape, var_scale);
  L_corr ~ lkj_corr_cholesky(lkj_eta);
  {
    // rows of eta ~ N(0, L L'), L = diag(sd) L_corr
    matrix[K, K] L = diag_pre_multiply(sqrt(var_f), L_corr);
    target += -0.5 * dot_self(to_vector(mdivide_left_tri_low(L, eta'))) - N * sum(log(diagonal(L)));
  }
  {
    vector[n_obs] mu = lam[col] .* to_vector(eta)[cell];
    for (j in 1:P) y[start[j]:stop[j]] ~ ordered_probit(mu[start[j]:stop[j]], tau[j]);
  }
}
"""


def _stan_data(model_name: str, data: dict[str, np.ndarray]) -> dict:
    s = spec(model_name)
    lf = long_format(data)
    common = {
        "N": int(np.shape(data["y"])[0]),
        "n_obs": len(lf["row"]),
        "row": (lf["row"] + 1).tolist(),
        "col": (lf["col"] + 1).tolist(),
        "coef_sd": float(s.priors["coef_sd"]),
        "var_shape": float(s.priors["var_shape"]),
        "var_scale": float(s.priors["var_scale"]),
    }
    if model_name == "latent_interaction":
        latent = {k: float(s.priors[k]) for k in ("latent_var_shape", "latent_var_scale")}
        return {**common, **latent, "y": lf["value"].tolist()}
    lay = s.layout
    return {
        **common,
        "P": len(lay["items"]),
        "K": len(lay["factors"]),
        "C": lay["categories"],
        "factor": (lay["factor_of"] + 1).tolist(),
        "n_free": len(lay["free"]),
        "free": (lay["free"] + 1).tolist(),
        "y": (lf["value"].astype(int) + 1).tolist(),
        "start": (lf["start"] + 1).tolist(),
        "stop": lf["stop"].tolist(),
        "lkj_eta": float(s.priors.get("lkj_eta", 1.0)),
    }


def _by_chain(fit, name: str) -> np.ndarray:
    """Draws of ``name`` as (chains, draws, *dims).

    ``fit[name]`` is (*dims, draws*chains), (1, draws*chains) for a scalar, the flat index
    being draw * chains + chain.
    """
    values = np.asarray(fit[name])
    n_draws, n_chains = fit._draws.shape[1], fit._draws.shape[2]
    dims = tuple(fit.dims[fit.param_names.index(name)]) if name in fit.param_names else ()
    values = values.reshape((*dims, n_draws, n_chains))
    return np.moveaxis(np.moveaxis(values, -1, 0), -1, 1)


def forget_compiled(model_name: str) -> None:
    """Remove this model's compiled program from httpstan's cache (so compilation is timed)."""
    code = LATENT_INTERACTION if model_name == "latent_interaction" else CFA_ORDINAL
    name = httpstan.models.calculate_model_name(code)
    if httpstan.cache.model_directory(name).exists():
        httpstan.cache.delete_model_directory(name)


def fit(model_name: str, data: dict[str, np.ndarray], seed: int) -> FitResult:
    """Build (compile or load from cache) and sample one data set."""
    code = LATENT_INTERACTION if model_name == "latent_interaction" else CFA_ORDINAL
    cached = httpstan.cache.model_directory(httpstan.models.calculate_model_name(code)).exists()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        posterior = stan.build(code, data=_stan_data(model_name, data), random_seed=seed)
    compile_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = posterior.sample(num_chains=CHAINS, num_warmup=WARMUP, num_samples=DRAWS)
    sampling_seconds = time.perf_counter() - t1
    if model_name == "latent_interaction":
        lam_free = _by_chain(result, "lam_free")
        lam = np.ones((*lam_free.shape[:2], 9))
        lam[..., LI_FREE] = lam_free
        raw = {k: _by_chain(result, k) for k in ("a1", "b", "phi_x", "psi_m", "psi_y", "theta")}
        raw["lam"] = lam
    else:
        lay = spec(model_name).layout
        lam_free = _by_chain(result, "lam_free")
        lam = np.ones((*lam_free.shape[:2], len(lay["items"])))
        lam[..., lay["free"]] = lam_free
        l_corr = _by_chain(result, "L_corr")
        raw = {
            "lam": lam,
            "tau": _by_chain(result, "tau"),
            "var_f": _by_chain(result, "var_f"),
            "corr": l_corr @ np.swapaxes(l_corr, -1, -2),
        }
    return FitResult(
        draws=derive(model_name, raw),
        sampling_seconds=sampling_seconds,
        compile_seconds=compile_seconds,
        n_divergent=int(np.asarray(result["divergent__"]).sum()),
        note="model loaded from httpstan's cache" if cached else "model compiled",
    )
