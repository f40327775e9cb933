"""Complete-data analyses of a spec model's structural equations: OLS, plug-ins, delta method.

Shared by the ``fs_imputation`` kind (OLS on each recorded Gibbs state's latent scores and
imputed values, pooled by Rubin's rules) and the ``sum_score_ols`` kind (OLS once, each factor
replaced by the mean of its observed indicators), see :mod:`simstudy.spec.estimators`.

A **structural equation** is one whose target is a latent variable, or an observed variable
that is not an indicator (no ``f =~ y`` coefficient) and not an incomplete predictor's
nuisance model. Each is fitted by OLS with an intercept (sum scores and imputed scores have
means of their own) on the monomials of its free coefficients, after subtracting its fixed
terms. A nominal predictor enters as its dummies (its imputed categories in a Gibbs state; sum
scores leave out the rows where it is missing). Reported: the free coefficients by lavaan
name, and the syntax's derived quantities (``:=``) evaluated at the plug-ins — OLS
coefficients, OLS residual variances, an exogenous factor block's sample (co)variances and a
nominal predictor's category shares — with delta-method variances from the OLS coefficient
covariance (``jax.jacobian`` of the expression), the variance plug-ins held fixed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.ir import RANDOM, Equation, ModelSpec, with_derived


def is_indicator(eq: Equation) -> bool:
    """Whether ``eq`` is a measurement equation (``y ~ nu + lambda f``)."""
    return any("=~" in c.parameter.name for c in eq.coefficients)


def structural(spec: ModelSpec) -> tuple[Equation, ...]:
    """The structural equations, in dependency order."""
    return tuple(e for e in spec.order() if not is_indicator(e) and not e.variance.nuisance)


def indicators(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    """Each factor's indicators (targets of its ``f =~ y`` coefficients)."""
    out: dict[str, list[str]] = {}
    for e in spec.equations:
        for c in e.coefficients:
            if "=~" in c.parameter.name:
                out.setdefault(c.factors[0], []).append(e.target)
    return {f: tuple(v) for f, v in out.items()}


def estimands(spec: ModelSpec) -> tuple[str, ...]:
    """What the analyses report: structural free coefficients, then derived quantities."""
    coefs = [
        c.parameter.name
        for e in structural(spec)
        for c in e.coefficients
        if c.parameter.free and not c.parameter.nuisance
    ]
    return (*coefs, *(d.name for d in spec.derived))


def unsupported(spec: ModelSpec) -> str | None:
    """Why the analyses cannot take ``spec`` (None when they can)."""
    if spec.groups or any(v.kind == RANDOM for v in spec.variables):
        return "a single-level model (OLS has no random effects)"
    if not structural(spec):
        return "a model with structural equations (regressions among latent or observed variables)"
    return None


def _terms(eq: Equation) -> tuple[list[tuple[str, ...]], list[int], bool]:
    """Free monomials, positions of the free coefficients, and whether one is the intercept."""
    free = [i for i, c in enumerate(eq.coefficients) if c.parameter.free]
    monomials = [eq.coefficients[i].factors for i in free]
    return monomials, free, () in monomials


def _product(vals: Mapping[str, jax.Array], factors: tuple[str, ...], rows: int) -> jax.Array:
    out = jnp.ones(rows)
    for f in factors:
        out = out * vals[f]
    return out


def ols(
    design: jax.Array, target: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """OLS on the rows with ``w = 1``: coefficients, their covariance, s^2, residual dof."""
    xw = design * w[:, None]
    xtx = xw.T @ design
    beta = jnp.linalg.solve(xtx, xw.T @ target)
    dof = w.sum() - design.shape[1]
    s2 = (w * (target - design @ beta) ** 2).sum() / dof
    return beta, s2 * jnp.linalg.inv(xtx), s2, dof


def _sample_moments(spec: ModelSpec, vals, w) -> dict[str, jax.Array]:
    """Exogenous level-1 blocks' (co)variances from the rows with ``w = 1`` (n - 1 divisor).

    And each nominal predictor's category shares ``P(d=k)`` among those rows.
    """
    out: dict[str, jax.Array] = {}
    n = w.sum()
    for nom in spec.nominal:
        for p, dummy in zip(nom.probabilities(), nom.dummies, strict=True):
            out[p.name] = (w * vals[dummy]).sum() / n
    for b in spec.blocks:
        if b.level is not None:
            continue
        centred = [vals[m] - (w * vals[m]).sum() / n for m in b.members]
        for i, p in enumerate(b.variances):
            out[p.name] = (w * centred[i] ** 2).sum() / (n - 1)
        it = iter(b.covariances)
        for i in range(1, len(b.members)):
            for j in range(i):
                out[next(it).name] = (w * centred[i] * centred[j]).sum() / (n - 1)
    return out


def analyse(
    spec: ModelSpec, vals: Mapping[str, jax.Array], weights: Mapping[str, jax.Array]
) -> tuple[dict[str, jax.Array], dict[str, jax.Array], dict[str, jax.Array]]:
    """OLS of every structural equation, derived quantities at the plug-ins (traceable).

    ``vals``: per-row values of every variable the equations read; ``weights``: each
    equation's 0/1 rows by target, and ``"moments"``'s for the exogenous blocks.

    Returns
    -------
    estimates, variances, dof
        By estimand name (:func:`estimands`); ``dof`` the residual degrees of freedom of the
        coefficient's equation (the smallest of all for a derived quantity).
    """
    est: dict[str, jax.Array] = {}
    var: dict[str, jax.Array] = {}
    dof: dict[str, jax.Array] = {}
    values = _sample_moments(spec, vals, weights["moments"])
    flat, blocks, names = [], [], []
    for eq in structural(spec):
        w = weights[eq.target]
        rows = w.shape[0]
        monomials, free, has_intercept = _terms(eq)
        columns = ([] if has_intercept else [()]) + monomials  # OLS always has an intercept
        design = jnp.stack([_product(vals, m, rows) for m in columns], 1)
        offset = sum(
            (
                c.parameter.fixed * _product(vals, c.factors, rows)
                for c in eq.coefficients
                if not c.parameter.free and c.parameter.fixed != 0.0
            ),
            jnp.zeros(rows),
        )
        beta, cov, s2, d = ols(design, vals[eq.target] - offset, w)
        skip = 0 if has_intercept else 1
        for k, pos in enumerate(free):
            p = eq.coefficients[pos].parameter
            values[p.name] = beta[skip + k]
            if not p.nuisance:
                est[p.name], var[p.name], dof[p.name] = beta[skip + k], cov[skip + k, skip + k], d
            flat.append(p.name)
        blocks.append(cov[skip:, skip:])
        names.append(d)
        if eq.variance.free:
            values[eq.variance.name] = s2
    if spec.derived:
        joint = jax.scipy.linalg.block_diag(*blocks)
        point = jnp.stack([values[n] for n in flat])

        def derived(theta: jax.Array) -> jax.Array:
            at = {**values, **dict(zip(flat, list(theta), strict=True))}
            out = with_derived(spec, at)
            return jnp.stack([jnp.asarray(out[d.name], float) for d in spec.derived])

        grad = jax.jacobian(derived)(point)
        spread = jnp.einsum("ij,jk,ik->i", grad, joint, grad)
        smallest = jnp.min(jnp.stack(names))
        for i, d in enumerate(spec.derived):
            est[d.name], var[d.name], dof[d.name] = derived(point)[i], spread[i], smallest
    return est, var, dof


def state_values(
    spec: ModelSpec, lay: Any, state: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """One Gibbs state's per-row values (latent scores, imputed values) and rows per equation."""
    from simstudy.spec import evaluate

    vals = evaluate.full_values(lay, state, data)
    weights = {"moments": data[ROW_REAL].astype(float)}
    for eq in structural(spec):
        weights[eq.target] = evaluate.weight(eq, lay, data)
    return vals, weights


def sum_score_values(
    spec: ModelSpec, data: Mapping[str, Any]
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """Each factor as the mean of its observed indicators; one row set for every equation.

    A row enters when it is real and every variable the structural equations read is known:
    an observed variable observed, a factor with at least one observed indicator.
    """
    vals = {k: v for k, v in data.items() if not k.startswith("observed:")}
    keep = data[ROW_REAL].astype(bool)
    for factor, items in indicators(spec).items():
        seen = jnp.stack([data[observed_key(y)].astype(float) for y in items], 1)
        total = jnp.stack([data[y] for y in items], 1) * seen
        count = seen.sum(1)
        vals[factor] = total.sum(1) / jnp.maximum(count, 1.0)
        keep = keep & (count > 0)
    used = {v for e in structural(spec) for v in (e.target, *e.variables())}
    for nom in spec.nominal:
        vals |= nom.dummy_values(data[nom.name])
        if set(nom.dummies) & used:  # a row with a missing category is left out
            used.add(nom.name)
    for v in used:
        if observed_key(v) in data:
            keep = keep & data[observed_key(v)].astype(bool)
    w = keep.astype(float)
    return vals, {"moments": w, **{e.target: w for e in structural(spec)}}


@functools.lru_cache(maxsize=16)
def _compiled(spec: ModelSpec) -> Any:
    """:func:`analyse` of one spec compiled once (eagerly it dispatches hundreds of small ops)."""
    return jax.jit(functools.partial(analyse, spec))


def sum_score_ols(spec: ModelSpec, data: Mapping[str, Any], level: float) -> dict[str, Any]:
    """OLS on sum scores with t intervals (the ``sum_score_ols`` kind's fit).

    Raises
    ------
    ValueError
        When too few rows have every score and variable for the largest equation.
    """
    from simstudy.contract import Estimate

    data = {k: jnp.asarray(v) for k, v in data.items()}
    vals, weights = sum_score_values(spec, data)
    rows = int(weights["moments"].sum())
    widest = max(len(_terms(e)[0]) + (0 if _terms(e)[2] else 1) for e in structural(spec))
    if rows < widest + 2:
        raise ValueError(
            f"sum_score_ols needs at least {widest + 2} rows with every score, got {rows}"
        )
    est, var, dof = _compiled(spec)(vals, weights)
    return {
        name: Estimate.t_interval(
            float(est[name]), float(jnp.sqrt(var[name])), float(dof[name]), level
        )
        for name in estimands(spec)
    }
