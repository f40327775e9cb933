"""The NumPyro back end: the same posterior as the Gibbs sweep, as a model for NUTS/ChEES.

A model that is linear and Gaussian in its latent variables (factors measured and regressed
on linearly, no product of a factor with anything, no random effects, no incomplete
predictor: a CFA or SEM) has its factor scores integrated out, as blavaan's Stan models do:
the observed outcomes of a row are multivariate normal with mean ``S (I - B)^-1 a`` and
covariance ``S (I - B)^-1 Psi (I - B)^-T S'``, so HMC samples the parameters alone; a row's
missing outcomes drop out of its density exactly. With ``marginal`` (the ``hmc`` kind's
option, :mod:`simstudy.spec.estimators`) an incomplete predictor with a linear-Gaussian
equation (an exogenous one's nuisance model) is integrated out the same way: it joins the
jointly normal nodes, and where it is missing it drops out of its row's density.

Exogenous factors have a signed scale ``s`` (SD ``|s|``, the engine's prior on ``|s|``), and
their free loadings and paths are sampled as ``lambda * s`` (the engine's prior on
``lambda``), both offset by :data:`START` so that random starts begin with one sign. With the
marker-scale loadings and a positive SD sampled directly, chains from random starts settled
where a factor's variance went to 0 and its other loadings to -10 or -20, in the marker's
opposite direction (Holzinger-Swineford: ``visual~~visual`` 0.001, ``visual=~x2`` -13, R-hat
1.8 on NUTS with the scores integrated out): ``(s, lambda * s)`` and ``(-s, -lambda * s)``
are one model, so a chain on the wrong side can pass to the other instead of being pinned at
a variance of 0.

Other models keep their latents and random effects non-centred (``u = L z`` with
``z ~ N(0, I)``); each missing value of a predictor is a standard-normal latent ``z`` with
``x = mean + sd * z`` where missing and the datum where observed (the observed ones add
their likelihood), so the shapes are those of the data set whatever the pattern. An ordered
predictor's latent responses are sites too, each mapped into its category's interval
(:func:`_responses`), and its children read them. Priors are
the sweep's (:class:`~simstudy.spec.sweep.Priors`, read through its per-equation accessors):
normal coefficients, half-normal residual SDs (or inverse-gamma variances), LKJ correlations
with half-normal SDs (or inverse-gamma variances) in covariance blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from simstudy.blocks import ordinal
from simstudy.spec import linear
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.evaluate import coef_vector, equation_mean
from simstudy.spec.ir import CovBlock, Equation, ModelSpec, Ordered, with_derived
from simstudy.spec.standardized import reported
from simstudy.spec.sweep import Layout, Priors

#: The numeric prior settings the model reads from its data (kinds are fixed per model).
PRIOR_NUMBERS = ("lkj_eta", "coef_sd")


def _inverse_gamma(data: Mapping[str, Any], latent: bool) -> Any:
    """The inverse-gamma prior of a latent or a residual variance (``Priors.variance_ig``)."""
    which = "latent" if latent else "residual"
    return dist.InverseGamma(data[f"prior:var_shape:{which}"], data[f"prior:var_scale:{which}"])


def _variance_site(
    name: str, kind: str, data: Mapping[str, Any], target: str, latent: bool, shape=()
) -> Any:
    if kind == "half_normal":
        scale = data[f"prior:sigma_scale:{target}"]
        d = dist.HalfNormal(scale)
        sd = numpyro.sample(name, d.expand(shape).to_event(len(shape)) if shape else d)
        return sd**2
    d = _inverse_gamma(data, latent)
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
            _inverse_gamma(data, block.level is None).expand([k]).to_event(1),
        )
        sd = jnp.sqrt(var)
    if k == 1:
        return sd[:, None]
    corr = numpyro.sample(f"corr:{block.name}", dist.LKJCholesky(k, data["prior:lkj_eta"]))
    return sd[:, None] * corr


#: Where the signed scales and standardised loadings sit when their sampled coordinate is 0:
#: random starts drawn from Stan's box (-2, 2) then start them positive, like the sweep's
#: loadings of 1 (a translation: the posterior is unchanged).
START = 2.0


def signed_factors(lay: Layout) -> dict[str, tuple[str, int]]:
    """Exogenous factor -> (its block, its position): the factors sampled with a signed scale."""
    return {m: (b.name, i) for b in lay.blocks if b.level is None for i, m in enumerate(b.members)}


def _scaled(lay: Layout, i: int) -> tuple[str | None, ...]:
    """Per free coefficient of equation ``i``: the signed factor it multiplies alone, or None."""
    signed = signed_factors(lay)
    factors = [lay.equations[i].coefficients[pos].factors for pos in lay.free_coefs[i]]
    return tuple(f[0] if len(f) == 1 and f[0] in signed else None for f in factors)


def _factor_block(block: CovBlock, kind: str, data: Mapping[str, Any]) -> tuple[Any, Any]:
    """A block of factors: signed scales ``s`` (SD ``|s|``) and its correlations' Cholesky.

    ``(s, loadings * s)`` and ``(-s, -loadings * s)`` are one model (:func:`_coefficients`),
    so a chain may settle in either sign; the prior is the engine's, on ``|s|``.
    """
    k = len(block.members)
    s = START + numpyro.sample(
        f"scale:{block.name}", dist.ImproperUniform(constraints.real, (), (k,))
    )
    if kind == "half_normal":  # HalfNormal on |s|: both signs share its density
        logp = dist.Normal(0.0, data[f"prior:cov_scale:{block.name}"]).log_prob(s)
    else:  # InverseGamma on s^2, times |d s^2 / d s| / 2
        gamma = _inverse_gamma(data, True)
        logp = gamma.log_prob(s**2) + jnp.log(jnp.abs(s))
    numpyro.factor(f"logprior:scale:{block.name}", logp.sum())
    if k == 1:
        return s, jnp.ones((1, 1))
    return s, numpyro.sample(f"corr:{block.name}", dist.LKJCholesky(k, data["prior:lkj_eta"]))


def marginal_nodes(lay: Layout, *, incomplete: bool = False) -> tuple[str, ...] | None:
    """The variables a marginal model of ``lay`` treats jointly (:func:`linear.marginal_nodes`).

    ``incomplete``: incomplete predictors are integrated out too (the ``marginal`` option).
    """
    return linear.marginal_nodes(
        lay.equations, lay.latents, lay.imputed, lay.blocks, incomplete=incomplete
    )


def _coefficients(
    eq: Equation, i: int, lay: Layout, data: Mapping[str, Any], scales: Mapping[str, Any]
) -> list[Any]:
    """An equation's coefficients; one of a signed factor is sampled times its scale.

    A loading or path ``b`` of factor ``f`` is sampled as ``b * s_f`` (its effect per unit
    of the standardised factor), with the engine's N(0, coef_sd^2) prior on ``b`` (Jacobian
    ``1 / |s_f|``): the marker's loading stays 1, and a flipped sign of ``s_f`` flips the
    loadings with it instead of pinning the factor's variance at 0.
    """
    p = len(lay.free_coefs[i])
    prior = dist.Normal(data[f"prior:coef_mean:{eq.target}"], data[f"prior:coef_sd:{eq.target}"])
    scaled = _scaled(lay, i)
    if not p:
        free = jnp.zeros(0)
    elif not any(scaled):
        free = numpyro.sample(f"coef:{eq.target}", prior.to_event(1))
    else:
        raw = numpyro.sample(
            f"coef_std:{eq.target}", dist.ImproperUniform(constraints.real, (), (p,))
        )
        per = jnp.stack([scales[f] if f else jnp.ones(()) for f in scaled])
        free = (raw + START * jnp.array([f is not None for f in scaled])) / per
        logp = prior.log_prob(free).sum() - jnp.log(jnp.abs(per)).sum()
        numpyro.factor(f"logprior:coef:{eq.target}", logp)
    return coef_vector(eq, free, lay.free_coefs[i])


def _residual_variance(i: int, lay: Layout, resvar_prior: str, data: Mapping[str, Any]) -> Any:
    eq = lay.equations[i]
    if not lay.free_var[i]:
        return eq.variance.fixed
    name = f"sd:{eq.target}" if resvar_prior == "half_normal" else f"var:{eq.target}"
    return _variance_site(name, resvar_prior, data, eq.target, eq.target in lay.latents)


def _marginal_model(
    lay: Layout, nodes: tuple[str, ...], resvar_prior: str, cov_prior: str
) -> Callable[..., None]:
    """The model with the nodes integrated out (:func:`marginal_nodes` gave ``nodes``).

    Every non-latent node (an outcome, an incomplete predictor) is a column of the row's
    normal vector, observed where its mask says.
    """
    index = {name: i for i, name in enumerate(nodes)}
    observed = tuple(e.target for e in lay.equations if e.target not in lay.latents)
    picked = np.array([index[o] for o in observed])
    n = len(nodes)

    def model(**data: Any) -> None:
        real = data[ROW_REAL]
        rows = real.shape[0]
        vals: dict[str, Any] = {
            k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:", "prior:"))
        }
        # every node at 0: an equation's mean is then its intercept and exogenous terms
        vals |= {name: jnp.zeros(rows) for name in nodes}
        root = jnp.zeros((n, n))  # Psi = root root': the disturbances' covariance
        scales: dict[str, Any] = {}
        for b in lay.blocks:
            s, corr = _factor_block(b, cov_prior, data)
            scales |= {m: s[i] for i, m in enumerate(b.members)}
            at = np.array([index[m] for m in b.members])
            root = root.at[np.ix_(at, at)].set(s[:, None] * corr)
        paths = jnp.zeros((n, n))  # B: node = B node + a + disturbance
        offset = jnp.zeros((rows, n))  # a, per row
        for i, eq in enumerate(lay.equations):
            coefs = _coefficients(eq, i, lay, data, scales)
            t = index[eq.target]
            root = root.at[t, t].set(jnp.sqrt(_residual_variance(i, lay, resvar_prior, data)))
            offset = offset.at[:, t].set(equation_mean(eq, coefs, vals))
            for c, coef in zip(eq.coefficients, coefs, strict=True):
                if len(c.factors) == 1 and c.factors[0] in index:
                    paths = paths.at[t, index[c.factors[0]]].add(coef)
        total = jnp.linalg.inv(jnp.eye(n) - paths)  # (I - B)^-1
        mean = (offset @ total.T)[:, picked]
        loading = (total @ root)[picked]
        cov = loading @ loading.T
        seen = jnp.stack([data[observed_key(o)] for o in observed], -1) & real[:, None]
        y = jnp.stack([data[o] for o in observed], -1)
        incomplete = _pattern_loglik if len(observed) <= PATTERN_COLUMNS else _incomplete_loglik
        loglik = jax.lax.cond(
            jnp.all(seen | ~real[:, None]), _complete_loglik, incomplete, y, mean, cov, seen
        )
        numpyro.factor("obs:marginal", loglik)

    return model


def _complete_loglik(y: Any, mean: Any, cov: Any, seen: Any) -> Any:
    """Normal log density of the real rows, all outcomes observed: one Cholesky factor."""
    real = seen.any(-1)
    chol = jnp.linalg.cholesky(cov)
    white = jax.scipy.linalg.solve_triangular(chol, (y - mean).T, lower=True)
    logdet = 2.0 * jnp.log(jnp.diagonal(chol)).sum() + cov.shape[0] * jnp.log(2.0 * jnp.pi)
    return -0.5 * (jnp.where(real, (white**2).sum(0), 0.0).sum() + real.sum() * logdet)


#: Up to this many observed columns, the marginal density is summed per missingness pattern.
PATTERN_COLUMNS = 6


def _pattern_loglik(y: Any, mean: Any, cov: Any, seen: Any) -> Any:
    """:func:`_incomplete_loglik` per missingness pattern: one Cholesky factor a pattern.

    The same density; for few columns ``2^k - 1`` small factors cost less than one per row.
    """
    k = cov.shape[0]
    total = jnp.zeros(())
    for pattern in itertools.product((False, True), repeat=k):
        if not any(pattern):
            continue  # a row with nothing observed (or not real) adds nothing
        at = np.flatnonzero(pattern)
        rows = jnp.all(seen == jnp.asarray(pattern), axis=-1)
        chol = jnp.linalg.cholesky(cov[np.ix_(at, at)])
        white = jax.scipy.linalg.solve_triangular(chol, (y[:, at] - mean[:, at]).T, lower=True)
        logdet = 2.0 * jnp.log(jnp.diagonal(chol)).sum() + len(at) * jnp.log(2.0 * jnp.pi)
        total = total - 0.5 * jnp.where(rows, (white**2).sum(0) + logdet, 0.0).sum()
    return total


def _incomplete_loglik(y: Any, mean: Any, cov: Any, seen: Any) -> Any:
    """Normal log density of each row's observed outcomes (a factor per row)."""
    # a missing outcome: its row and column of the covariance become the identity's and its
    # value the mean, a constant factor of the observed outcomes' marginal density
    cov_rows = jnp.where(seen[:, :, None] & seen[:, None, :], cov, jnp.eye(cov.shape[0]))
    y = jnp.where(seen, y, mean)
    logp = dist.MultivariateNormal(mean, covariance_matrix=cov_rows).log_prob(y)
    missing = (~seen).sum(-1) * 0.5 * jnp.log(2.0 * jnp.pi)
    return jnp.where(seen.any(-1), logp + missing, 0.0).sum()


def make_model(
    lay: Layout, resvar_prior: str, cov_prior: str, *, marginal: bool = False
) -> Callable[..., None]:
    """The NumPyro model function of a compiled spec (data as keyword arguments).

    Latents integrated out where :func:`marginal_nodes` allows, else sampled non-centred.
    ``marginal``: incomplete predictors integrated out too (where a missing one drops out of
    its row's density, as a missing outcome does); the caller has checked that it can be.
    """
    nodes = marginal_nodes(lay, incomplete=marginal)
    if nodes is not None and not lay.ordered:  # an ordered variable's density is no normal
        return _marginal_model(lay, nodes, resvar_prior, cov_prior)
    ordered = {o.name: o for o in lay.ordered}
    # ordered predictors: their latent responses are sites, as their children read them
    responses = {t for t in ordered if any(t in e.variables() for e in lay.equations)}

    def model(**data: Any) -> None:
        real = data[ROW_REAL]
        rows = real.shape[0]
        vals: dict[str, Any] = {
            k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:", "prior:"))
        }
        scales: dict[str, Any] = {}
        for b in lay.blocks:
            if b.level is None:
                s, corr = _factor_block(b, cov_prior, data)
                scales |= {m: s[i] for i, m in enumerate(b.members)}
                chol = s[:, None] * corr
                z = numpyro.sample(
                    f"z:{b.name}", dist.Normal(0.0, 1.0).expand([rows, len(b.members)]).to_event(2)
                )
                values = z @ chol.T
            else:
                chol = _cov_chol(b, cov_prior, data)
                j = data[cluster_key(b.level)].shape[0]
                z = numpyro.sample(
                    f"z:{b.name}", dist.Normal(0.0, 1.0).expand([j, len(b.members)]).to_event(2)
                )
                values = (z @ chol.T)[data[b.level]]
            for i, m in enumerate(b.members):
                vals[m] = values[:, i]
        for i, eq in enumerate(lay.equations):
            coefs = _coefficients(eq, i, lay, data, scales)
            var = _residual_variance(i, lay, resvar_prior, data)
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
            elif t in ordered:
                tau = _thresholds(ordered[t], data)
                lo, hi = ordinal.bounds(tau[None, :], data[t][:, None])
                seen = data[observed_key(t)] & real
                if t in responses:
                    vals[t] = _responses(t, mean, lo[:, 0], hi[:, 0], seen, real)
                else:
                    loglik = ordinal.log_interval(ordered[t].link, lo[:, 0] - mean, hi[:, 0] - mean)
                    numpyro.factor(f"obs:{t}", jnp.where(seen, loglik, 0).sum())
            else:
                with numpyro.handlers.mask(mask=data[observed_key(t)] & real):
                    numpyro.sample(f"obs:{t}", dist.Normal(mean, sd), obs=data[t])

    return model


def _responses(name: str, mean: Any, lo: Any, hi: Any, seen: Any, real: Any) -> Any:
    """An ordered predictor's latent responses (probit), each inside its category's interval.

    One unconstrained ``v`` per row: ``lo + (hi - lo) sigmoid(v)`` between two thresholds,
    ``lo + softplus(v)`` above the last, ``hi - softplus(v)`` below the first, ``v`` itself
    where the category is missing; their density N(mean, 1) with the map's Jacobian (a padding
    row's ``v`` is N(0, 1), so the density stays proper).
    """
    v = numpyro.sample(f"z:{name}", dist.ImproperUniform(constraints.real, (), real.shape))
    low, high = seen & jnp.isfinite(lo), seen & jnp.isfinite(hi)
    both = low & high
    lo_, hi_ = jnp.where(low, lo, 0.0), jnp.where(high, hi, 0.0)
    gap = jnp.where(both, hi_ - lo_, 1.0)
    ystar = jnp.where(
        both,
        lo_ + gap * jax.nn.sigmoid(v),
        jnp.where(low, lo_ + jax.nn.softplus(v), jnp.where(high, hi_ - jax.nn.softplus(v), v)),
    )
    log_jac = jnp.where(
        both,
        jnp.log(gap) + jax.nn.log_sigmoid(v) + jax.nn.log_sigmoid(-v),
        jnp.where(low | high, jax.nn.log_sigmoid(v), 0.0),
    )
    density = jnp.where(real, dist.Normal(mean, 1.0).log_prob(ystar) + log_jac, -0.5 * v**2)
    numpyro.factor(f"obs:{name}", density.sum())
    return ystar


def _free_thresholds(o: Ordered, u: Any) -> tuple[Any, Any]:
    """The free thresholds from their site ``u`` (leading dims kept), and the gaps' logs.

    ``u``: the first free threshold and the logs of the gaps above it; where the intercept is
    free the first threshold is 0 and ``u`` is every gap's log.
    """
    first = jnp.zeros_like(u[..., :1]) if o.intercept else u[..., :1]
    logs = u if o.intercept else u[..., 1:]
    tau = jnp.cumsum(jnp.concatenate([first, jnp.exp(logs)], -1), -1)
    return (tau[..., 1:] if o.intercept else tau), logs


def _thresholds(o: Ordered, data: Mapping[str, Any]) -> Any:
    """An ordered variable's thresholds, all of them (the first 0 where its intercept is free).

    Sampled by :func:`_free_thresholds`' site with the sweep's prior: N(0, coef_sd^2) on each
    free threshold, kept increasing (the gaps' Jacobian added).
    """
    free = sum(t.free for t in o.thresholds())
    u = numpyro.sample(f"thr:{o.name}", dist.ImproperUniform(constraints.real, (), (free,)))
    tau, logs = _free_thresholds(o, u)
    prior = dist.Normal(0.0, data["prior:coef_sd"]).log_prob(tau)
    numpyro.factor(f"logprior:thr:{o.name}", prior.sum() + logs.sum())
    return jnp.concatenate([jnp.zeros(1), tau]) if o.intercept else tau


def make_derive(
    lay: Layout, spec: ModelSpec, resvar_prior: str, cov_prior: str
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``samples -> estimands`` for the sites of :func:`make_model` (leading dims kept)."""
    signed = signed_factors(lay)

    def marker_scale(sites: Mapping[str, Any]) -> dict[str, Any]:
        """The sites of signed factors as the marker scale's: coefficients, SDs, correlations."""
        out = dict(sites)
        for b in lay.blocks:
            if b.level is not None:
                continue
            s = START + sites[f"scale:{b.name}"]
            out[f"sd:{b.name}"], out[f"var:{b.name}"] = jnp.abs(s), s**2
            if len(b.members) > 1:
                sign = jnp.sign(s)
                corr = sites[f"corr:{b.name}"]
                out[f"corr:{b.name}"] = sign[..., :, None] * corr * sign[..., None, :]
        for i, eq in enumerate(lay.equations):
            scaled = _scaled(lay, i)
            if any(scaled):
                per = [
                    START + sites[f"scale:{signed[f][0]}"][..., signed[f][1]] if f else 1.0
                    for f in scaled
                ]
                shift = START * np.array([f is not None for f in scaled])
                raw = sites[f"coef_std:{eq.target}"] + shift
                out[f"coef:{eq.target}"] = raw / jnp.stack(jnp.broadcast_arrays(*per), -1)
        return out

    def derive(sites: Mapping[str, Any]) -> dict[str, Any]:
        samples = marker_scale(sites)
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
        for o in lay.ordered:
            tau, _ = _free_thresholds(o, samples[f"thr:{o.name}"])
            for k, t in enumerate(t for t in o.thresholds() if t.free):
                out[t.name] = tau[..., k]
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
        return reported(spec, with_derived(spec, out))

    return derive


def model_data(
    dataset: Mapping[str, Any], priors: Mapping[str, Any], lay: Layout
) -> dict[str, Any]:
    """The model's keyword arguments: the data set plus the numeric prior settings.

    Per equation and block, the settings :class:`~simstudy.spec.sweep.Priors` gives the sweep
    (``prior:coef_mean:<target>``, ``prior:coef_sd:<target>``, ``prior:sigma_scale:<target>``,
    ``prior:cov_scale:<block>``, inverse-gamma numbers of latent and residual variances), as
    data: one compiled program serves any values.
    """
    p = Priors.of(priors)
    out = dict(dataset)
    for k in PRIOR_NUMBERS:
        out[f"prior:{k}"] = float(getattr(p, k))
    for which, latent in (("latent", True), ("residual", False)):
        shape, scale = p.variance_ig(latent)
        out[f"prior:var_shape:{which}"], out[f"prior:var_scale:{which}"] = (
            float(shape),
            float(scale),
        )
    for i, eq in enumerate(lay.equations):
        means, sds = p.equation_prior(eq, lay.free_coefs[i])
        out[f"prior:coef_mean:{eq.target}"] = jnp.asarray(means, dtype=float)
        out[f"prior:coef_sd:{eq.target}"] = jnp.asarray(sds, dtype=float)
        out[f"prior:sigma_scale:{eq.target}"] = float(p.sigma_scale_of(eq.target))
    for b in lay.blocks:
        out[f"prior:cov_scale:{b.name}"] = float(p.cov_scale_of(b.name))
    return out
