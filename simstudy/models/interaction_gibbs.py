"""The conditionally conjugate Gibbs sampler of the latent interaction model.

One sweep (:func:`sampler` builds it for a layout): a missing ``d`` from its discrete full
conditional; the latent scores, each normal given the other two factors (the product term is
linear in each); intercepts, loadings and residual variances of the indicators; the
structural coefficients and variances from their conjugate conditionals; then a scale move per
factor (:mod:`simstudy.models.interaction_moves`). Only observed indicators enter, so missing
ones are marginalised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.models import interaction_moves
from simstudy.models.conjugate import (
    inv_gamma,
    marker_signs,
    measurement_draw,
    normal_from_precision,
)
from simstudy.models.interaction_layout import FACTORS, Layout, regressions, score_means


class State(NamedTuple):
    """One state of the chain."""

    eta: jax.Array  # (N, 3) latent scores (eta_m = w where w is observed)
    nu: jax.Array  # (p,) indicator intercepts
    lam: jax.Array  # (p,) loadings (markers fixed at 1)
    theta: jax.Array  # (p,) indicator residual variances
    phi_x: jax.Array  # Var(eta_x | d)
    a1: jax.Array
    psi_m: jax.Array
    b: jax.Array  # slopes of eta_y on eta_x, eta_m, eta_x * eta_m (and d2, d3)
    psi_y: jax.Array
    alpha_m: jax.Array  # intercept of the moderator's regression (0 when latent)
    d: jax.Array  # (N,) categories of d, imputed where missing (0 without d)
    prob: jax.Array  # (3,) category probabilities of d
    shift: jax.Array  # (3,) mean of eta_x per category of d (first 0)


def onehot_d(d: jax.Array) -> jax.Array:
    """Indicator columns of the three categories of d."""
    return jax.nn.one_hot(d, 3)


def d_effect(s: State) -> jax.Array | float:
    """Each person's effect of d on eta_y (0 without a nominal predictor)."""
    if s.b.shape[0] == 3:
        return 0.0
    return onehot_d(s.d)[:, 1:] @ s.b[3:]


def mean_y(s: State, ex, em) -> jax.Array:
    """Structural mean of eta_y given the scores (and d)."""
    return s.b[0] * ex + s.b[1] * em + s.b[2] * ex * em + d_effect(s)


class Sampler(NamedTuple):
    """The pieces of a :class:`~simstudy.models.base.GibbsEstimator` for one layout."""

    init: Callable[..., State]
    step: Callable[..., State]
    collect: Callable[..., dict[str, jax.Array]]
    analyse_scores: Callable[..., tuple[dict, dict]]


def sampler(layout: Layout) -> Sampler:
    """Start, sweep, estimands and score regressions of the sampler for ``layout``."""
    p = len(layout.items)
    onehot = jnp.asarray(layout.onehot)
    marker = jnp.asarray(layout.marker)
    n_b = 5 if layout.nominal else 3
    marker_of_item = np.array([layout.items.index(f"{x[0]}1") for x in layout.items])

    def init(rng_key: jax.Array, data: Mapping[str, Any], priors: Mapping[str, float]) -> State:
        """A dispersed start: jittered sum scores and parameters near their data-based values."""
        k_eta, k_lam, k_b, k_a = jax.random.split(rng_key, 4)
        obs = data["observed"].astype(float)
        n_obs = jnp.maximum(obs.sum(axis=0), 1.0)
        mean_y = (data["y"] * obs).sum(axis=0) / n_obs
        var_y = (((data["y"] - mean_y) * obs) ** 2).sum(axis=0) / n_obs
        sign = marker_signs(data["y"], data["observed"], marker_of_item)
        signed = dict(data, y=(data["y"] - mean_y) * sign)
        scores = score_means(signed, layout)
        scores = scores - scores.mean(axis=0)
        eta = scores + 0.3 * jnp.std(scores, axis=0) * jax.random.normal(k_eta, scores.shape)
        jitter = 1.0 + 0.3 * jax.random.uniform(k_lam, (p,), minval=-1, maxval=1)
        lam = jnp.where(marker, 1.0, sign * jitter)
        b = jax.random.uniform(k_b, (3,), minval=-0.5, maxval=0.5)
        alpha_m = jnp.asarray(0.0)
        if layout.observed_moderator:  # w keeps its own location; observed values are data
            w_obs = data["w_observed"]
            alpha_m = (data["w"] * w_obs).sum() / jnp.maximum(w_obs.sum(), 1)
            eta = eta.at[:, 1].set(jnp.where(w_obs, data["w"], alpha_m + eta[:, 1]))
        d = jnp.zeros(eta.shape[0], dtype=jnp.int32)
        if layout.nominal:
            d = data["d"]  # missing codes start at the first category
            b = jnp.concatenate([b, jnp.zeros(2)])
        return State(
            eta=eta,
            nu=mean_y,
            lam=lam,
            theta=0.5 * var_y,
            phi_x=jnp.var(eta[:, 0]),
            a1=jax.random.uniform(k_a, (), minval=-0.5, maxval=0.5),
            psi_m=jnp.asarray(1.0),
            b=b,
            psi_y=jnp.asarray(1.0),
            alpha_m=alpha_m,
            d=d,
            prob=jnp.full(3, 1 / 3),
            shift=jnp.zeros(3),
        )

    def update_eta(key, s: State, data, obs) -> jax.Array:
        # Measurement information per person and factor from the observed indicators.
        a = obs * s.lam**2 / s.theta
        r = obs * s.lam * (data["y"] - s.nu) / s.theta
        prec_meas = a @ onehot
        rhs_meas = r @ onehot
        b1, b2, b3 = s.b[0], s.b[1], s.b[2]
        ex, em, ey = s.eta[:, 0], s.eta[:, 1], s.eta[:, 2]
        ey_rest = ey - d_effect(s)
        kx, km, ky = jax.random.split(key, 3)
        # eta_x | eta_m, eta_y: prior N(shift_d, phi_x); eta_m = alpha + a1 eta_x + ...;
        # eta_y linear in eta_x given eta_m.
        dd = b1 + b3 * em
        prec = 1 / s.phi_x + prec_meas[:, 0] + s.a1**2 / s.psi_m + dd**2 / s.psi_y
        rhs = (
            rhs_meas[:, 0] + s.a1 * (em - s.alpha_m) / s.psi_m + dd * (ey_rest - b2 * em) / s.psi_y
        )
        if layout.nominal:
            rhs = rhs + s.shift[s.d] / s.phi_x
        ex = rhs / prec + jax.random.normal(kx, ex.shape) / jnp.sqrt(prec)
        # eta_m | eta_x, eta_y: prior N(alpha + a1 eta_x, psi_m); eta_y linear in eta_m.
        c = b2 + b3 * ex
        prec = 1 / s.psi_m + prec_meas[:, 1] + c**2 / s.psi_y
        rhs = (s.alpha_m + s.a1 * ex) / s.psi_m + rhs_meas[:, 1] + c * (ey_rest - b1 * ex) / s.psi_y
        em = rhs / prec + jax.random.normal(km, em.shape) / jnp.sqrt(prec)
        if layout.observed_moderator:
            em = jnp.where(data["w_observed"], data["w"], em)
        # eta_y | eta_x, eta_m: prior from the structural equation.
        prec = 1 / s.psi_y + prec_meas[:, 2]
        rhs = mean_y(s, ex, em) / s.psi_y + rhs_meas[:, 2]
        ey = rhs / prec + jax.random.normal(ky, ey.shape) / jnp.sqrt(prec)
        return jnp.stack([ex, em, ey], axis=1)

    def update_d(key, s: State, data) -> jax.Array:
        """Missing categories of d from their discrete full conditional."""
        ex, em, ey = s.eta[:, 0], s.eta[:, 1], s.eta[:, 2]
        base = s.b[0] * ex + s.b[1] * em + s.b[2] * ex * em
        effect = jnp.concatenate([jnp.zeros(1), s.b[3:]])
        logits = (
            jnp.log(s.prob)
            - (ex[:, None] - s.shift) ** 2 / (2 * s.phi_x)
            - (ey[:, None] - base[:, None] - effect) ** 2 / (2 * s.psi_y)
        )
        drawn = jax.random.categorical(key, logits).astype(data["d"].dtype)
        return jnp.where(data["d_observed"], data["d"], drawn)

    def step(
        rng_key: jax.Array, s: State, data: Mapping[str, Any], priors: Mapping[str, float]
    ) -> State:
        """One sweep: d, latent scores, measurement, structural parameters, scale moves."""
        c2 = priors["coef_sd"] ** 2
        a0, b0 = priors["var_shape"], priors["var_scale"]
        la0, lb0 = priors["latent_var_shape"], priors["latent_var_scale"]
        keys = jax.random.split(rng_key, 9)
        extra = jax.random.split(jax.random.fold_in(rng_key, 1), 4)
        obs = data["observed"].astype(float)
        y = data["y"]
        if layout.nominal:
            s = s._replace(d=update_d(extra[0], s, data))
        eta = update_eta(keys[0], s, data, obs)

        # Measurement: (nu, lambda) | theta per indicator (markers keep lambda = 1), then theta.
        nu, lam, theta = measurement_draw(
            (keys[1], keys[2], keys[3]),
            y,
            data["observed"],
            eta[:, layout.factor_of],
            marker,
            s.theta,
            c2,
            a0,
            b0,
        )

        # Structural parameters given the latent scores.
        n = eta.shape[0]
        ex, em, ey = eta[:, 0], eta[:, 1], eta[:, 2]
        prob, shift, dummies = s.prob, s.shift, None
        if layout.nominal:
            dummies = onehot_d(s.d)
            prob = jax.random.dirichlet(extra[1], 1.0 + dummies.sum(0))
            free = dummies[:, 1:]
            prec_s = free.T @ free / s.phi_x + jnp.eye(2) / c2
            shift = jnp.concatenate(
                [jnp.zeros(1), normal_from_precision(extra[2], prec_s, free.T @ ex / s.phi_x)]
            )
        phi_x = inv_gamma(keys[4], la0 + n / 2, lb0 + ((ex - shift[s.d]) ** 2).sum() / 2)
        alpha_m = s.alpha_m
        if layout.observed_moderator:
            design = jnp.stack([jnp.ones_like(ex), ex], axis=1)
            prec_a = design.T @ design / s.psi_m + jnp.eye(2) / c2
            alpha_m, a1 = normal_from_precision(keys[5], prec_a, design.T @ em / s.psi_m)
        else:
            prec_a = (ex**2).sum() / s.psi_m + 1 / c2
            a1 = (ex * em).sum() / s.psi_m / prec_a
            a1 = a1 + jax.random.normal(keys[5], ()) / jnp.sqrt(prec_a)
        psi_m = inv_gamma(keys[6], la0 + n / 2, lb0 + ((em - alpha_m - a1 * ex) ** 2).sum() / 2)
        z = jnp.stack([ex, em, ex * em], axis=1)
        if layout.nominal:
            z = jnp.concatenate([z, dummies[:, 1:]], axis=1)
        prec_b = z.T @ z / s.psi_y + jnp.eye(n_b) / c2
        b = normal_from_precision(keys[7], prec_b, z.T @ ey / s.psi_y)
        psi_y = inv_gamma(keys[8], la0 + n / 2, lb0 + ((ey - z @ b) ** 2).sum() / 2)
        s = State(eta, nu, lam, theta, phi_x, a1, psi_m, b, psi_y, alpha_m, s.d, prob, shift)
        return interaction_moves.scale_move(extra[3], s, data, obs, layout, priors)

    def collect(s: State, data: Mapping[str, Any]) -> dict[str, jax.Array]:
        """The estimands of one state, derived quantities included."""
        mean_x = s.prob @ s.shift
        var_x = s.phi_x + s.prob @ s.shift**2 - mean_x**2
        mean_m = s.alpha_m + s.a1 * mean_x  # model-implied mean and SD of the moderator
        sd_m = jnp.sqrt(s.a1**2 * var_x + s.psi_m)
        m = layout.mod
        out = {
            f"{m}~eta_x": s.a1,
            "eta_y~eta_x": s.b[0],
            f"eta_y~{m}": s.b[1],
            f"eta_y~eta_x:{m}": s.b[2],
            f"eta_y~eta_x@{m}=-1SD": s.b[0] + s.b[2] * (mean_m - sd_m),
            f"eta_y~eta_x@{m}=+1SD": s.b[0] + s.b[2] * (mean_m + sd_m),
            "eta_x~~eta_x": s.phi_x,
            f"{m}~~{m}": s.psi_m,
            "eta_y~~eta_y": s.psi_y,
            "w~1": s.alpha_m,
        }
        if layout.nominal:
            out |= {"eta_y~d2": s.b[3], "eta_y~d3": s.b[4]}
            out |= {"eta_x~d2": s.shift[1], "eta_x~d3": s.shift[2]}
            out |= {"P(d=2)": s.prob[1], "P(d=3)": s.prob[2]}
        for j, name in enumerate(layout.items):
            if not layout.marker[j]:
                out[f"{FACTORS[layout.factor_of[j]]}=~{name}"] = s.lam[j]
            out[f"{name}~~{name}"] = s.theta[j]
        return {k: out[k] for k in layout.bayes}

    def analyse_scores(s: State, data: Mapping[str, Any]) -> tuple[dict, dict]:
        """OLS of the structural regressions on one draw of the latent scores (and d)."""
        dummies = onehot_d(s.d)[:, 1:] if layout.nominal else None
        return regressions(layout, s.eta[:, 0], s.eta[:, 1], s.eta[:, 2], dummies)

    return Sampler(init, step, collect, analyse_scores)
