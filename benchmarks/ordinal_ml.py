"""The full-information ML-probit of an ordinal CFA, by Gauss-Hermite quadrature (a reference).

The model `compare_lavaan_ordinal.py` fits, in lavaan's theta parameterisation: item j of factor
f(j) has the latent response ``lambda_j eta_f(j) + e``, ``e ~ N(0, 1)``, cut at its thresholds;
``eta ~ N(0, Psi)``; each factor's first item's loading is 1. The marginal likelihood of a row
integrates the factors out on an adaptive product Gauss-Hermite rule (``nodes`` per factor,
centred and scaled per row at its factors' posterior mode), and its
maximum is found by BFGS from a start (lavaan's WLSMV estimates) in unconstrained coordinates
(thresholds: the first and log gaps; Psi: its Cholesky factor, log diagonal). Standard errors:
the observed information's inverse, carried to lavaan's parameters by the delta method.

Why: under misfit WLSMV (polychorics) and the full likelihood aim at different values, and the
posterior at the full likelihood's; this separates the two gaps. lavaan 0.6's ``estimator =
"MML"`` is experimental (on these data it returned a factor variance of 0.1 and no SEs).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from scipy.optimize import minimize

#: Double precision for BFGS, set around each fit (not for the process: the tests share it).
X64 = jax.enable_x64


@dataclass(frozen=True)
class Layout:
    """Which factor each item measures, whose loading is the marker's, how many categories."""

    factors: list[str]
    items: list[str]
    factor_of: list[int]
    marker: list[bool]
    categories: int


def layout_of(factors: dict[str, list[str]], categories: int) -> Layout:
    """The layout of a simple-structure CFA, first item of each factor its marker."""
    names = list(factors)
    items = [i for f in names for i in factors[f]]
    factor_of = [names.index(f) for f in names for _ in factors[f]]
    marker = [k == 0 for f in names for k in range(len(factors[f]))]
    return Layout(names, items, factor_of, marker, categories)


def _unpack(u: jnp.ndarray, lay: Layout) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Loadings (m,), thresholds (m, K-1) and Psi (F, F) from unconstrained coordinates."""
    m, k, nf = len(lay.items), lay.categories - 1, len(lay.factors)
    free = np.flatnonzero(~np.asarray(lay.marker))
    lam = jnp.ones(m).at[free].set(u[: free.size])
    at = free.size
    raw = u[at : at + m * k].reshape(m, k)
    tau = jnp.cumsum(jnp.concatenate([raw[:, :1], jnp.exp(raw[:, 1:])], axis=1), axis=1)
    at += m * k
    rows, cols = np.tril_indices(nf)
    chol = jnp.zeros((nf, nf)).at[rows, cols].set(u[at:])
    chol = chol.at[np.diag_indices(nf)].set(jnp.exp(jnp.diag(chol)))
    return lam, tau, chol @ chol.T


def _pack(lam: np.ndarray, tau: np.ndarray, psi: np.ndarray, lay: Layout) -> np.ndarray:
    """The unconstrained coordinates of loadings, thresholds and Psi (``_unpack``'s inverse)."""
    free = ~np.asarray(lay.marker)
    gaps = np.log(np.diff(tau, axis=1))
    chol = np.linalg.cholesky(psi)
    chol[np.diag_indices_from(chol)] = np.log(np.diag(chol))
    rows, cols = np.tril_indices(len(lay.factors))
    return np.concatenate(
        [lam[free], np.column_stack([tau[:, :1], gaps]).ravel(), chol[rows, cols]]
    )


def _rule(nf: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite nodes (Q, F) and log weights (Q,) for a standard normal."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    grid = np.array(list(itertools.product(x, repeat=nf)))
    logw = np.log(np.array(list(itertools.product(w, repeat=nf)))).sum(1) - nf * np.log(
        np.sqrt(2 * np.pi)
    )
    return grid, logw


def _natural(u: jnp.ndarray, lay: Layout) -> jnp.ndarray:
    """lavaan's free parameters in the order of :func:`names`: loadings, thresholds, Psi."""
    lam, tau, psi = _unpack(u, lay)
    rows, cols = np.tril_indices(len(lay.factors))
    diag, off = rows == cols, rows != cols
    return jnp.concatenate(
        [
            lam[~np.asarray(lay.marker)],
            tau.ravel(),
            psi[rows[diag], cols[diag]],
            psi[rows[off], cols[off]],
        ]
    )


def names(lay: Layout) -> list[str]:
    """lavaan's names of the free parameters, in :func:`_natural`'s order."""
    out = [
        f"{lay.factors[f]}=~{i}"
        for i, f, mk in zip(lay.items, lay.factor_of, lay.marker, strict=True)
        if not mk
    ]
    out += [f"{i}|t{k + 1}" for i in lay.items for k in range(lay.categories - 1)]
    rows, cols = np.tril_indices(len(lay.factors))
    out += [
        f"{lay.factors[r]}~~{lay.factors[c]}" for r, c in zip(rows, cols, strict=True) if r == c
    ]
    out += [
        f"{lay.factors[c]}~~{lay.factors[r]}" for r, c in zip(rows, cols, strict=True) if r != c
    ]
    return out


def _log_interval(lo: jnp.ndarray, hi: jnp.ndarray) -> jnp.ndarray:
    """``log(Phi(hi) - Phi(lo))`` without cancellation: the upper tail where ``lo > 0``."""
    flip = lo > 0
    a, b = jnp.where(flip, -hi, lo), jnp.where(flip, -lo, hi)
    return log_ndtr(b) + jnp.log1p(-jnp.exp(log_ndtr(a) - log_ndtr(b)))


def _row_log_posterior(eta, lam, lo, hi, prec, factor_of):
    """A row's ``log p(y | eta) - eta' Psi^-1 eta / 2`` (``lo``, ``hi``: its categories' cuts)."""
    mu = eta[factor_of] * lam
    return _log_interval(lo - mu, hi - mu).sum() - eta @ prec @ eta / 2


def log_likelihood(codes: np.ndarray, lay: Layout, nodes: int, newton: int = 25):
    """``u -> log L(u)``: the marginal probit log likelihood of ``codes`` (N, m), jitted.

    Build and call it under ``X64(True)`` for double precision (:func:`ml_probit` does).

    Adaptive Gauss-Hermite: each row's nodes are centred at the mode of its factors' posterior
    and scaled by its curvature there (``newton`` Newton steps from 0; the log posterior is
    concave), so that a loading large enough to make an item near-deterministic still falls
    between nodes. The mode and scale enter as constants (``stop_gradient``): the integral
    does not depend on them, so the gradient is the integral's up to quadrature error.
    """
    nf = len(lay.factors)
    z, logw = _rule(nf, nodes)
    logw = logw + (z**2).sum(1) / 2 + nf * np.log(np.sqrt(2 * np.pi))  # divide by phi(z)
    codes = jnp.asarray(codes)
    factor_of = np.asarray(lay.factor_of)
    post = jax.vmap(_row_log_posterior, (0, None, 0, 0, None, None))  # over rows

    def mode(eta, lam, lo, hi, prec):
        def step(e, _):
            g = jax.grad(_row_log_posterior)(e, lam, lo, hi, prec, factor_of)
            h = jax.hessian(_row_log_posterior)(e, lam, lo, hi, prec, factor_of)
            return e - jnp.linalg.solve(h, g), None

        eta, _ = jax.lax.scan(step, eta, None, length=newton)
        h = jax.hessian(_row_log_posterior)(eta, lam, lo, hi, prec, factor_of)
        return eta, jnp.linalg.cholesky(jnp.linalg.inv(-h))

    modes = jax.vmap(mode, (None, None, 0, 0, None))

    @jax.jit
    def value(u: jnp.ndarray) -> jnp.ndarray:
        lam, tau, psi = _unpack(u, lay)
        # the outer cuts finite, so that no gradient meets an infinity (Phi(-1e3) is 0 here)
        edge = jnp.full((len(lay.items), 1), 1e3)
        cuts = jnp.concatenate([-edge, tau, edge], axis=1)  # (m, K+1)
        items = np.arange(len(lay.items))
        lo, hi = cuts[items, codes], cuts[items, codes + 1]  # (N, m)
        prec = jnp.linalg.inv(psi)
        centre, scale = modes(jnp.zeros(nf), lam, lo, hi, prec)
        eta = centre[:, None, :] + jnp.einsum("nfg,qg->nqf", scale, z)  # (N, Q, F)
        rows = jax.vmap(post, (1, None, None, None, None, None), 1)  # over nodes
        logf = rows(eta, lam, lo, hi, prec, factor_of)  # (N, Q)
        logdet = jnp.log(jnp.diagonal(scale, axis1=1, axis2=2)).sum(1)  # (N,)
        norm = -jnp.linalg.slogdet(psi)[1] / 2 - nf * np.log(np.sqrt(2 * np.pi))
        return (jax.scipy.special.logsumexp(logf + logw, axis=1) + logdet).sum() + len(codes) * norm

    return value


def _hessian(f, u: jnp.ndarray) -> jnp.ndarray:
    """``f``'s Hessian at ``u``, one Hessian-vector product at a time (a row's memory only)."""
    grad = jax.grad(f)

    @jax.jit
    def column(v: jnp.ndarray) -> jnp.ndarray:
        return jax.jvp(grad, (u,), (v,))[1]

    return jax.lax.map(column, jnp.eye(u.size))


def start_of(values: dict[str, float], lay: Layout) -> np.ndarray:
    """Unconstrained coordinates of estimates named as lavaan names them (``names``)."""
    lam = np.array(
        [
            1.0 if mk else values[f"{lay.factors[f]}=~{i}"]
            for i, f, mk in zip(lay.items, lay.factor_of, lay.marker, strict=True)
        ]
    )
    k = lay.categories - 1
    tau = np.array([[values[f"{i}|t{j + 1}"] for j in range(k)] for i in lay.items])
    nf = len(lay.factors)
    psi = np.empty((nf, nf))
    for r, c in itertools.product(range(nf), repeat=2):
        a, b = lay.factors[r], lay.factors[c]
        psi[r, c] = values.get(f"{a}~~{b}", values.get(f"{b}~~{a}"))
    return _pack(lam, tau, psi, lay)


def ml_probit(
    codes: np.ndarray, lay: Layout, start: dict[str, float], nodes: int = 7
) -> tuple[dict[str, float], dict[str, float], dict]:
    """ML estimates and SEs by lavaan's names, and the fit's facts (log likelihood, status).

    ``codes``: (N, m) categories 0..K-1, complete rows, items in ``lay.items``' order;
    ``start``: estimates by lavaan's names (lavaan's WLSMV ones).
    """
    with X64(True):
        value = log_likelihood(np.asarray(codes, int), lay, nodes)
        loss = jax.jit(jax.value_and_grad(lambda u: -value(u)))
        res = minimize(
            lambda u: tuple(np.asarray(x, float) for x in loss(jnp.asarray(u))),
            start_of(start, lay),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-6, "maxiter": 2000},
        )
        u = jnp.asarray(res.x)
        info = np.asarray(_hessian(lambda v: -value(v), u))
        jac = np.asarray(jax.jacfwd(lambda v: _natural(v, lay))(u))
        cov = jac @ np.linalg.inv(info) @ jac.T
        est = np.asarray(_natural(u, lay))
        keys = names(lay)
        facts = {
            "loglik": -float(res.fun),
            "converged": bool(res.success),
            "message": str(res.message),
            "iterations": int(res.nit),
            "max_gradient": float(np.abs(res.jac).max()),
            "nodes": nodes,
            "min_information_eigenvalue": float(np.linalg.eigvalsh(info).min()),
        }
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    return (
        dict(zip(keys, est.tolist(), strict=True)),
        dict(zip(keys, se.tolist(), strict=True)),
        facts,
    )
