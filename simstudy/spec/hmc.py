"""The NumPyro back end: the same posterior as the Gibbs sweep, as a model for NUTS/ChEES.

Random effects and latent scores are non-centred (``u = L z`` with ``z ~ N(0, I)``); each
missing value of a predictor is a standard-normal latent ``z`` with
``x = mean + sd * z`` where missing and the datum where observed (the observed ones add
their likelihood), so the shapes are those of the data set whatever the pattern. Priors are
the sweep's (:class:`~simstudy.spec.sweep.Priors`, read through its per-equation accessors):
normal coefficients, half-normal residual SDs (or inverse-gamma variances), LKJ correlations
with half-normal SDs (or inverse-gamma variances) in covariance blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import CovBlock, ModelSpec, with_derived
from simstudy.spec.sweep import Layout, Priors, coef_vector, equation_mean

#: The numeric prior settings the model reads from its data (kinds are fixed per model).
PRIOR_NUMBERS = ("var_shape", "var_scale", "lkj_eta")


def _variance_site(name: str, kind: str, data: Mapping[str, Any], target: str, shape=()) -> Any:
    if kind == "half_normal":
        scale = data[f"prior:sigma_scale:{target}"]
        d = dist.HalfNormal(scale)
        sd = numpyro.sample(name, d.expand(shape).to_event(len(shape)) if shape else d)
        return sd**2
    d = dist.InverseGamma(data["prior:var_shape"], data["prior:var_scale"])
    return numpyro.sample(name, d.expand(shape).to_event(len(shape)) if shape else d)


def _cov_chol(block: CovBlock, kind: str, data: Mapping[str, Any]) -> Any:
    k = len(block.members)
    if kind == "half_normal":
        sd = numpyro.sample(
            f"sd:{block.name}",
            dist.HalfNormal(data[f"prior:cov_scale:{block.name}"]).expand([k]).to_event(1),
        )
    else:
        var = numpyro.sample(
            f"var:{block.name}",
            dist.InverseGamma(data["prior:var_shape"], data["prior:var_scale"])
            .expand([k])
            .to_event(1),
        )
        sd = jnp.sqrt(var)
    if k == 1:
        return sd[:, None]
    corr = numpyro.sample(f"corr:{block.name}", dist.LKJCholesky(k, data["prior:lkj_eta"]))
    return sd[:, None] * corr


def make_model(lay: Layout, resvar_prior: str, cov_prior: str) -> Callable[..., None]:
    """The NumPyro model function of a compiled spec (data as keyword arguments)."""

    def model(**data: Any) -> None:
        real = data[ROW_REAL]
        rows = real.shape[0]
        vals: dict[str, Any] = {
            k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:", "prior:"))
        }
        for b in lay.blocks:
            chol = _cov_chol(b, cov_prior, data)
            if b.level is None:
                z = numpyro.sample(
                    f"z:{b.name}", dist.Normal(0.0, 1.0).expand([rows, len(b.members)]).to_event(2)
                )
                values = z @ chol.T
            else:
                j = data[cluster_key(b.level)].shape[0]
                z = numpyro.sample(
                    f"z:{b.name}", dist.Normal(0.0, 1.0).expand([j, len(b.members)]).to_event(2)
                )
                values = (z @ chol.T)[data[b.level]]
            for i, m in enumerate(b.members):
                vals[m] = values[:, i]
        for i, eq in enumerate(lay.equations):
            p = len(lay.free_coefs[i])
            free = (
                numpyro.sample(
                    f"coef:{eq.target}",
                    dist.Normal(
                        data[f"prior:coef_mean:{eq.target}"], data[f"prior:coef_sd:{eq.target}"]
                    ).to_event(1),
                )
                if p
                else jnp.zeros(0)
            )
            coefs = coef_vector(eq, free, lay.free_coefs[i])
            var = (
                _variance_site(
                    f"sd:{eq.target}" if resvar_prior == "half_normal" else f"var:{eq.target}",
                    resvar_prior,
                    data,
                    eq.target,
                )
                if lay.free_var[i]
                else eq.variance.fixed
            )
            mean = equation_mean(eq, coefs, vals)
            sd = jnp.sqrt(var)
            t = eq.target
            if t in lay.latents or t in lay.imputed:
                z = numpyro.sample(f"z:{t}", dist.Normal(0.0, 1.0).expand([rows]).to_event(1))
                drawn = mean + sd * z
                if t in lay.imputed:
                    obs = data[observed_key(t)]
                    with numpyro.handlers.mask(mask=obs & real):
                        numpyro.sample(f"obs:{t}", dist.Normal(mean, sd), obs=data[t])
                    drawn = jnp.where(obs, data[t], drawn)
                vals[t] = drawn
            else:
                with numpyro.handlers.mask(mask=data[observed_key(t)] & real):
                    numpyro.sample(f"obs:{t}", dist.Normal(mean, sd), obs=data[t])

    return model


def make_derive(
    lay: Layout, spec: ModelSpec, resvar_prior: str, cov_prior: str
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``samples -> estimands`` for the sites of :func:`make_model` (leading dims kept)."""

    def derive(samples: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, eq in enumerate(lay.equations):
            for k, pos in enumerate(lay.free_coefs[i]):
                p = eq.coefficients[pos].parameter
                if not p.nuisance:
                    out[p.name] = samples[f"coef:{eq.target}"][..., k]
            if lay.free_var[i] and not eq.variance.nuisance:
                if resvar_prior == "half_normal":
                    out[eq.variance.name] = samples[f"sd:{eq.target}"] ** 2
                else:
                    out[eq.variance.name] = samples[f"var:{eq.target}"]
        for b in lay.blocks:
            if cov_prior == "half_normal":
                sd = samples[f"sd:{b.name}"]
            else:
                sd = jnp.sqrt(samples[f"var:{b.name}"])
            k = len(b.members)
            if k == 1:
                chol = sd[..., :, None]
            else:
                chol = sd[..., :, None] * samples[f"corr:{b.name}"]
            cov = chol @ jnp.swapaxes(chol, -1, -2)
            for i, p in enumerate(b.variances):
                out[p.name] = cov[..., i, i]
            it = iter(b.covariances)
            for i in range(1, k):
                for j in range(i):
                    out[next(it).name] = cov[..., i, j]
        return with_derived(spec, out)

    return derive


def model_data(
    dataset: Mapping[str, Any], priors: Mapping[str, Any], lay: Layout
) -> dict[str, Any]:
    """The model's keyword arguments: the data set plus the numeric prior settings.

    Per equation and block, the settings :class:`~simstudy.spec.sweep.Priors` gives the sweep
    (``prior:coef_mean:<target>``, ``prior:coef_sd:<target>``, ``prior:sigma_scale:<target>``,
    ``prior:cov_scale:<block>``), as data: one compiled program serves any values.
    """
    out = dict(dataset)
    p = Priors.of(priors)
    for k in PRIOR_NUMBERS:
        out[f"prior:{k}"] = float(getattr(p, k))
    for i, eq in enumerate(lay.equations):
        means, sds = p.coef_prior(eq.target, lay.free_coefs[i])
        out[f"prior:coef_mean:{eq.target}"] = jnp.asarray(means, dtype=float)
        out[f"prior:coef_sd:{eq.target}"] = jnp.asarray(sds, dtype=float)
        out[f"prior:sigma_scale:{eq.target}"] = float(p.sigma_scale_of(eq.target))
    for b in lay.blocks:
        out[f"prior:cov_scale:{b.name}"] = float(p.cov_scale_of(b.name))
    return out
