"""Naive NumPyro NUTS: the whole model, latent scores as parameters, per replication.

``MCMC(NUTS(model, init_strategy=init_to_median), num_warmup=1000, num_samples=1000,
num_chains=2, chain_method="sequential")`` with NumPyro's default adaptation (step size and
diagonal mass matrix), target acceptance 0.8 and maximum tree depth 10, in JAX's default
single precision like simstudy's own samplers (PyMC, nutpie and Stan use double precision;
``BENCH_NUMPYRO_X64=1`` switches NumPyro to double; ``log_ndtr``, the bulk of the ordinal
likelihood, is about 8× slower in double on this CPU).

One ``MCMC`` object per model is reused across replications with ``jit_model_args=True`` (the
data are arguments of the jitted sampler and every replication has the same shapes, missing
cells being masked out of the likelihood). NumPyro still re-traces and re-compiles its
initialisation and collection loop on every ``run``: about 9-12 s per later replication here,
counted as compile time. Compilation is measured from JAX's own monitoring events (tracing,
lowering and XLA compilation: the union of their time spans during the fit); the rest of the
fit's wall time is sampling.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax

X64 = os.environ.get("BENCH_NUMPYRO_X64", "0") == "1"
jax.config.update("jax_enable_x64", X64)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from jax import monitoring  # noqa: E402
from jax.scipy.special import log_ndtr  # noqa: E402
from numpyro.distributions import constraints  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median  # noqa: E402

from comparators import FitResult  # noqa: E402
from comparators.models import CHAINS, DRAWS, LI_FACTOR_OF, LI_FREE, WARMUP, derive, spec  # noqa: E402

CHAIN_METHOD = "sequential"
SETTINGS = (
    f"NumPyro {numpyro.__version__} NUTS, {CHAINS} chains ({CHAIN_METHOD}) × {WARMUP} warm-up + "
    f"{DRAWS} draws, init_to_median, target_accept 0.8, max_tree_depth 10, "
    f"{'float64' if X64 else 'float32 (NumPyro default)'}"
)

_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
}


class _CompileClock:
    """Collects the time spans of JAX's tracing/lowering/compilation events."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        monitoring.register_event_time_span_listener(self._listen)

    def _listen(self, event: str, start: float, end: float, **kwargs: Any) -> None:
        if event in _COMPILE_EVENTS:
            self.spans.append((start, end))

    def take(self) -> float:
        """Seconds covered by the spans recorded since the last call (nested spans once)."""
        spans, self.spans = sorted(self.spans), []
        total, cur_start, cur_end = 0.0, None, None
        for s, e in spans:
            if cur_end is None or s > cur_end:
                if cur_end is not None:
                    total += cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        if cur_end is not None:
            total += cur_end - cur_start
        return total


_CLOCK = _CompileClock()


# --- models ---------------------------------------------------------------------------------


def _variance(name: str, shape: float, scale: float):
    """A variance with density ``v^-(shape+1) exp(-scale/v)``: InverseGamma, or improper.

    Always written as a density term (unnormalised), because the priors are traced arguments
    of the reused model (``jit_model_args``): no Python branch on their values.
    """
    v = numpyro.sample(name, dist.ImproperUniform(dist.constraints.positive, (), ()))
    numpyro.factor(f"{name}_prior", -(shape + 1) * jnp.log(v) - scale / v)
    return v


def latent_interaction_model(
    y, observed, coef_sd, var_shape, var_scale, latent_var_shape, latent_var_scale
):
    """The latent interaction model (see comparators.models), latent scores centred."""
    n = y.shape[0]
    nu = numpyro.sample("nu", dist.Normal(0.0, coef_sd).expand([9]).to_event(1))
    lam_free = numpyro.sample("lam_free", dist.Normal(0.0, coef_sd).expand([6]).to_event(1))
    theta = numpyro.sample("theta", dist.InverseGamma(var_shape, var_scale).expand([9]).to_event(1))
    phi_x = _variance("phi_x", latent_var_shape, latent_var_scale)
    psi_m = _variance("psi_m", latent_var_shape, latent_var_scale)
    psi_y = _variance("psi_y", latent_var_shape, latent_var_scale)
    a1 = numpyro.sample("a1", dist.Normal(0.0, coef_sd))
    b = numpyro.sample("b", dist.Normal(0.0, coef_sd).expand([3]).to_event(1))
    eta_x = numpyro.sample("eta_x", dist.Normal(0.0, jnp.sqrt(phi_x)).expand([n]).to_event(1))
    eta_m = numpyro.sample("eta_m", dist.Normal(a1 * eta_x, jnp.sqrt(psi_m)).to_event(1))
    mean_y = b[0] * eta_x + b[1] * eta_m + b[2] * eta_x * eta_m
    eta_y = numpyro.sample("eta_y", dist.Normal(mean_y, jnp.sqrt(psi_y)).to_event(1))
    lam = jnp.ones(9).at[LI_FREE].set(lam_free)
    eta = jnp.stack([eta_x, eta_m, eta_y], axis=1) @ jnp.asarray(np.eye(3)[LI_FACTOR_OF].T)
    mu = nu + lam * eta
    numpyro.sample("y", dist.Normal(mu, jnp.sqrt(theta)).mask(observed).to_event(2), obs=y)


def log_interval(lo, hi):
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi``, stable in both tails (finite inputs)."""
    flip = lo + hi > 0  # mostly in the upper tail: Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)
    a = jnp.where(flip, -hi, lo)
    b = jnp.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    return lb + jnp.log1p(-jnp.exp(jnp.minimum(la - lb, 0.0)))


def ordered_probit_loglik(y, observed, mu, tau):
    """Sum over observed cells of log P(y | mu, tau) under the ordered probit (theta param.).

    The cuts below and above each response are picked by masked sums over the K-1 thresholds
    rather than a gather (on CPU the gather's gradient, a scatter-add, or an einsum made the
    likelihood's gradient 4× slower).
    """
    k = tau.shape[-1] + 1
    cat = y.astype(jnp.int32)
    levels = jnp.arange(k - 1)
    lower = ((cat[..., None] - 1 == levels) * tau).sum(-1) - mu  # 0 - mu for the lowest category
    upper = ((cat[..., None] == levels) * tau).sum(-1) - mu
    # The open ends: finite stand-ins, selected by where (so they never enter a gradient).
    lower = jnp.where(cat == 0, -40.0, lower)
    upper = jnp.where(cat == k - 1, 40.0, upper)
    return jnp.where(observed, log_interval(lower, upper), 0.0).sum()


class ZeroMeanMVN(dist.Distribution):
    """``n`` iid rows ~ N(0, L L^T) for a small Cholesky factor ``L``, as one (n, k) event.

    The same density as ``dist.MultivariateNormal(0, scale_tril=L).expand([n]).to_event(1)``,
    but through the explicit inverse of the k × k factor: XLA's CPU triangular solve with n
    right-hand sides takes ~9 ms at n = 1000 (17 ms with its gradient), ~90 % of the model's
    gradient time, where the matrix product takes 0.04 ms.
    """

    support = constraints.independent(constraints.real, 2)

    def __init__(self, scale_tril, n):
        self.scale_tril, self.n = scale_tril, n
        k = scale_tril.shape[-1]
        super().__init__(batch_shape=(), event_shape=(n, k))

    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, sample_shape + self.event_shape)
        return z @ self.scale_tril.T

    def log_prob(self, value):
        k = self.scale_tril.shape[-1]
        inv = jax.scipy.linalg.solve_triangular(self.scale_tril, jnp.eye(k), lower=True)
        z = value @ inv.T
        log_det = jnp.log(jnp.diagonal(self.scale_tril)).sum()
        return -0.5 * (z**2).sum((-2, -1)) - self.n * (log_det + 0.5 * k * jnp.log(2 * jnp.pi))


def make_cfa_model(factor_of: np.ndarray, free: np.ndarray, n_factors: int, n_cuts: int):
    """The ordinal CFA model for one layout (``n_cuts`` = categories - 1 thresholds per item)."""
    onehot = jnp.asarray(np.eye(n_factors)[factor_of])

    def cfa_model(y, observed, coef_sd, var_shape, var_scale, lkj_eta):
        n, p = y.shape
        lam_free = numpyro.sample(
            "lam_free", dist.Normal(0.0, coef_sd).expand([len(free)]).to_event(1)
        )
        tau = numpyro.sample(
            "tau", dist.ImproperUniform(constraints.ordered_vector, (p,), (n_cuts,))
        )
        numpyro.factor("tau_prior", dist.Normal(0.0, coef_sd).log_prob(tau).sum())
        var_f = numpyro.sample(
            "var_f", dist.InverseGamma(var_shape, var_scale).expand([n_factors]).to_event(1)
        )
        l_corr = numpyro.sample("l_corr", dist.LKJCholesky(n_factors, lkj_eta))
        scale_tril = jnp.sqrt(var_f)[:, None] * l_corr
        eta = numpyro.sample("eta", ZeroMeanMVN(scale_tril, n))
        lam = jnp.ones(p).at[free].set(lam_free)
        mu = lam * (eta @ onehot.T)  # eta[:, factor_of], as a product (a gather's gradient is slow)
        numpyro.factor("y", ordered_probit_loglik(y, observed, mu, tau))

    return cfa_model


_MCMC: dict[str, MCMC] = {}


def _mcmc(model_name: str) -> MCMC:
    if model_name not in _MCMC:
        if model_name == "latent_interaction":
            model = latent_interaction_model
        else:
            lay = spec(model_name).layout
            model = make_cfa_model(
                lay["factor_of"], lay["free"], len(lay["factors"]), lay["categories"] - 1
            )
        kernel = NUTS(
            model, init_strategy=init_to_median, target_accept_prob=0.8, max_tree_depth=10
        )
        _MCMC[model_name] = MCMC(
            kernel,
            num_warmup=WARMUP,
            num_samples=DRAWS,
            num_chains=CHAINS,
            chain_method=CHAIN_METHOD,
            progress_bar=False,
            jit_model_args=True,
        )
    return _MCMC[model_name]


def fit(model_name: str, data: dict[str, np.ndarray], seed: int) -> FitResult:
    """Fit one data set; see the module docstring for the settings."""
    s = spec(model_name)
    t0 = time.perf_counter()
    mcmc = _mcmc(model_name)
    kwargs: dict[str, Any] = {
        "y": jnp.asarray(data["y"], jnp.float64 if X64 else jnp.float32),
        "observed": jnp.asarray(data["observed"], bool),
        "coef_sd": float(s.priors["coef_sd"]),
        "var_shape": float(s.priors["var_shape"]),
        "var_scale": float(s.priors["var_scale"]),
    }
    if model_name == "cfa_ordinal":
        kwargs["lkj_eta"] = float(s.priors.get("lkj_eta", 1.0))
    else:
        kwargs |= {k: float(s.priors[k]) for k in ("latent_var_shape", "latent_var_scale")}
    _CLOCK.take()
    mcmc.run(jax.random.key(seed), **kwargs, extra_fields=("diverging",))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    total = time.perf_counter() - t0
    compile_seconds = _CLOCK.take()
    divergent = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    samples = {k: np.asarray(v) for k, v in samples.items()}
    if model_name == "latent_interaction":
        lam = np.ones((*samples["lam_free"].shape[:2], 9))
        lam[..., LI_FREE] = samples["lam_free"]
        raw = {k: samples[k] for k in ("a1", "b", "phi_x", "psi_m", "psi_y", "theta")}
        raw["lam"] = lam
    else:
        lay = s.layout
        lam = np.ones((*samples["lam_free"].shape[:2], len(lay["items"])))
        lam[..., lay["free"]] = samples["lam_free"]
        l_corr = samples["l_corr"]
        raw = {
            "lam": lam,
            "tau": samples["tau"],
            "var_f": samples["var_f"],
            "corr": l_corr @ np.swapaxes(l_corr, -1, -2),
        }
    return FitResult(
        draws=derive(model_name, raw),
        sampling_seconds=total - compile_seconds,
        compile_seconds=compile_seconds,
        n_divergent=divergent,
    )
