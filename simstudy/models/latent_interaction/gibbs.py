"""The conditionally conjugate Gibbs sampler of the latent interaction model.

One sweep (:func:`sampler` builds it for a layout): a missing ``d`` from its discrete full
conditional; the latent scores, each normal given the other two factors (the product term is
linear in each); intercepts, loadings and residual variances of the indicators; the
structural coefficients and variances from their conjugate conditionals; then a scale move per
factor (:mod:`simstudy.models.latent_interaction.moves`). Only observed indicators enter, so missing
ones are marginalised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.conjugate import (
    IndicatorSums,
    dirichlet,
    marker_signs,
    measurement_draw_from_sums,
    normal_from_precision,
    overrelaxed,
    unit_gamma,
)
from simstudy.models.latent_interaction import moves as interaction_moves
from simstudy.models.latent_interaction.layout import FACTORS, Layout, regressions, score_means


class State(NamedTuple):
    """One state of the chain."""

    eta: jax.Array  # (3, N) latent scores, factors by persons (eta_m = w where w is observed)
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


#: Over-relaxation of the latent scores' updates (:func:`~simstudy.blocks.conjugate.overrelaxed`;
#: 0 is the plain Gibbs draw, bit for bit). Off: it mixed faster but failed SBC, with chains
#: stuck near a variance of 0 (benchmarks/README.md#over-relaxed-latent-scores).
SCORE_OVERRELAXATION = 0.0


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


#: Candidates per gamma variate drawn with a sweep's noise (see :func:`unit_gamma`).
GAMMA_TRIES = 4


def _total(sizes: Mapping[str, tuple[int, ...]]) -> int:
    return sum(int(np.prod(shape)) for shape in sizes.values())


def _split(flat: jax.Array, sizes: Mapping[str, tuple[int, ...]]) -> dict[str, jax.Array]:
    """Consecutive pieces of ``flat``, reshaped to ``sizes``."""
    out, at = {}, 0
    for name, shape in sizes.items():
        size = int(np.prod(shape))
        out[name], at = flat[at : at + size].reshape(shape), at + size
    return out


class Sampler(NamedTuple):
    """The pieces of a :class:`~simstudy.contract.GibbsEstimator` for one layout."""

    init: Callable[..., State]
    prepare: Callable[..., dict[str, Any]]
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
        eta = eta.T  # persons on the minor axis: the sweep's sums over persons are contiguous
        d = jnp.zeros(eta.shape[1], dtype=jnp.int32)
        if layout.nominal:
            d = data["d"]  # missing codes start at the first category
            b = jnp.concatenate([b, jnp.zeros(2)])
        return State(
            eta=eta,
            nu=mean_y,
            lam=lam,
            theta=0.5 * var_y,
            phi_x=jnp.var(eta[0]),
            a1=jax.random.uniform(k_a, (), minval=-0.5, maxval=0.5),
            psi_m=jnp.asarray(1.0),
            b=b,
            psi_y=jnp.asarray(1.0),
            alpha_m=alpha_m,
            d=d,
            prob=jnp.full(3, 1 / 3),
            shift=jnp.zeros(3),
        )

    def prepare(data: Mapping[str, Any]) -> dict[str, Any]:
        """Constants of the data that every sweep uses, indicators by persons (``(p, N)``).

        The mask as numbers (``obs_t``), the indicators centred at their observed means and 0
        where missing (``y_c_t``), those means and the sums over persons that do not change.
        XLA's CPU code reduces over the minor axis several times faster than over the major
        one, so the sweep keeps persons minor (and the latent scores as ``(3, N)``).
        """
        obs_t = data["observed"].T.astype(float)
        n_obs = obs_t.sum(axis=1)
        ybar = (data["y"].T * obs_t).sum(axis=1) / jnp.maximum(n_obs, 1.0)
        y_c_t = jnp.where(data["observed"].T, data["y"].T - ybar[:, None], 0.0)
        derived = {"obs_t": obs_t, "y_c_t": y_c_t, "y_bar": ybar, "n_obs": n_obs}
        derived |= {"y_c_sum": y_c_t.sum(axis=1), "y_c_ss": (y_c_t**2).sum(axis=1)}
        return dict(data, **derived)

    def update_eta(z: jax.Array, s: State, data) -> jax.Array:
        """New latent scores, one factor after another; ``z``: (3, N) standard normal noise."""
        # Measurement information per factor and person from the observed indicators, as
        # (p x 3)' @ (p x N) products of per-indicator weights with the data.
        lam_w = s.lam / s.theta
        to_factor = onehot * lam_w[:, None]
        from_mask = (
            jnp.concatenate(
                [to_factor * s.lam[:, None], to_factor * (s.nu - data["y_bar"])[:, None]], axis=1
            ).T
            @ data["obs_t"]
        )
        prec_meas = from_mask[:3]
        rhs_meas = to_factor.T @ data["y_c_t"] - from_mask[3:]
        b1, b2, b3 = s.b[0], s.b[1], s.b[2]
        ex, em, ey = s.eta
        ey_rest = ey - d_effect(s)
        # eta_x | eta_m, eta_y: prior N(shift_d, phi_x); eta_m = alpha + a1 eta_x + ...;
        # eta_y linear in eta_x given eta_m.
        dd = b1 + b3 * em
        prec = 1 / s.phi_x + prec_meas[0] + s.a1**2 / s.psi_m + dd**2 / s.psi_y
        rhs = rhs_meas[0] + s.a1 * (em - s.alpha_m) / s.psi_m + dd * (ey_rest - b2 * em) / s.psi_y
        if layout.nominal:
            rhs = rhs + s.shift[s.d] / s.phi_x
        ex = overrelaxed(ex, rhs / prec, z[0] / jnp.sqrt(prec), SCORE_OVERRELAXATION)
        # eta_m | eta_x, eta_y: prior N(alpha + a1 eta_x, psi_m); eta_y linear in eta_m.
        c = b2 + b3 * ex
        prec = 1 / s.psi_m + prec_meas[1] + c**2 / s.psi_y
        rhs = (s.alpha_m + s.a1 * ex) / s.psi_m + rhs_meas[1] + c * (ey_rest - b1 * ex) / s.psi_y
        em = overrelaxed(em, rhs / prec, z[1] / jnp.sqrt(prec), SCORE_OVERRELAXATION)
        if layout.observed_moderator:
            em = jnp.where(data["w_observed"], data["w"], em)
        # eta_y | eta_x, eta_m: prior from the structural equation.
        prec = 1 / s.psi_y + prec_meas[2]
        rhs = mean_y(s, ex, em) / s.psi_y + rhs_meas[2]
        ey = overrelaxed(ey, rhs / prec, z[2] / jnp.sqrt(prec), SCORE_OVERRELAXATION)
        return jnp.stack([ex, em, ey])

    def indicator_sums(eta: jax.Array, data) -> IndicatorSums:
        """Sums over persons per indicator of its factor's scores (two small products)."""
        mask_sums = data["obs_t"] @ jnp.concatenate([eta, eta**2]).T  # (p, 6)
        own = jnp.asarray(layout.factor_of)
        pick = jnp.arange(p)
        return IndicatorSums(
            n=data["n_obs"],
            e=mask_sums[pick, own],
            ee=mask_sums[pick, 3 + own],
            y=data["y_c_sum"],
            yy=data["y_c_ss"],
            ye=(data["y_c_t"] @ eta.T)[pick, own],
            ybar=data["y_bar"],
        )

    def update_d(key, s: State, data) -> jax.Array:
        """Missing categories of d from their discrete full conditional."""
        ex, em, ey = s.eta
        base = s.b[0] * ex + s.b[1] * em + s.b[2] * ex * em
        effect = jnp.concatenate([jnp.zeros(1), s.b[3:]])
        logits = (
            jnp.log(s.prob)
            - (ex[:, None] - s.shift) ** 2 / (2 * s.phi_x)
            - (ey[:, None] - base[:, None] - effect) ** 2 / (2 * s.psi_y)
        )
        drawn = jax.random.categorical(key, logits).astype(data["d"].dtype)
        return jnp.where(data["d_observed"], data["d"], drawn)

    def sweep_noise(rng_key: jax.Array, n: int, data, priors) -> dict[str, jax.Array]:
        """Every random draw of one sweep, from one normal and one uniform call.

        On the CPU each ``jax.random`` call is a loop of its own in XLA's program, and their
        fixed cost dominated the sweep (about 30 calls, ``jax.random.gamma``'s loops above
        all); the gamma shapes of every variance's conditional are known in advance (``shape
        + n / 2``), so their unit-scale variates are drawn together (:func:`unit_gamma`) and
        divided into the scales later.
        """
        k_normal, k_uniform, k_gamma = jax.random.split(rng_key, 3)
        n_gamma = p + 3
        normal_sizes = {"eta": (3, n), "coef": (p, 2), "nu": (p,), "a": (2,), "b": (n_b,)}
        normal_sizes |= {"shift": (2,), "scale": (3,), "gamma_x": (GAMMA_TRIES, n_gamma)}
        uniform_sizes = {"log_u": (3,), "gamma_u": (GAMMA_TRIES, n_gamma), "boost": (n_gamma,)}
        out = _split(jax.random.normal(k_normal, (_total(normal_sizes),)), normal_sizes)
        out |= _split(jax.random.uniform(k_uniform, (_total(uniform_sizes),)), uniform_sizes)
        out["log_u"] = jnp.log(out["log_u"])
        la0 = priors["latent_var_shape"]
        shapes = jnp.concatenate(
            [priors["var_shape"] + data["n_obs"] / 2, jnp.full(3, la0 + n / 2)]
        )
        noise = (out.pop("gamma_x"), out.pop("gamma_u"), out.pop("boost"))
        gammas = unit_gamma(k_gamma, shapes, GAMMA_TRIES, noise)
        out["theta"], out["latent"] = gammas[:p], gammas[p:]
        return out

    def step(
        rng_key: jax.Array, s: State, data: Mapping[str, Any], priors: Mapping[str, float]
    ) -> State:
        """One sweep: d, latent scores, measurement, structural parameters, scale moves."""
        c2 = priors["coef_sd"] ** 2
        b0, lb0 = priors["var_scale"], priors["latent_var_scale"]
        n = s.eta.shape[1]
        k_noise, k_nominal = jax.random.split(rng_key)
        noise = sweep_noise(k_noise, n, data, priors)
        if layout.nominal:
            nominal_keys = jax.random.split(k_nominal, 2)
            s = s._replace(d=update_d(nominal_keys[0], s, data))
        eta = update_eta(noise["eta"], s, data)

        # Measurement: (nu, lambda) | theta per indicator (markers keep lambda = 1), then theta,
        # from sums over persons of the new scores.
        sums = indicator_sums(eta, data)
        nu, lam, theta = measurement_draw_from_sums(
            (noise["coef"], noise["nu"], noise["theta"]), sums, marker, s.theta, c2, b0
        )

        # Structural parameters given the latent scores; variance_k = scale / Gamma(shape_k, 1).
        ex, em, ey = eta
        g_phi, g_m, g_y = noise["latent"]
        prob, shift, dummies = s.prob, s.shift, None
        if layout.nominal:
            dummies = onehot_d(s.d)
            prob = dirichlet(nominal_keys[1], 1.0 + dummies.sum(0))  # bounded loop
            free = dummies[:, 1:]
            prec_s = free.T @ free / s.phi_x + jnp.eye(2) / c2
            drawn = normal_from_precision(None, prec_s, free.T @ ex / s.phi_x, noise["shift"])
            shift = jnp.concatenate([jnp.zeros(1), drawn])
        phi_x = (lb0 + ((ex - shift[s.d]) ** 2).sum() / 2) / g_phi
        alpha_m = s.alpha_m
        if layout.observed_moderator:
            design = jnp.stack([jnp.ones_like(ex), ex])
            prec_a = design @ design.T / s.psi_m + jnp.eye(2) / c2
            alpha_m, a1 = normal_from_precision(None, prec_a, design @ em / s.psi_m, noise["a"])
        else:
            prec_a = (ex**2).sum() / s.psi_m + 1 / c2
            a1 = (ex * em).sum() / s.psi_m / prec_a + noise["a"][0] / jnp.sqrt(prec_a)
        psi_m = (lb0 + ((em - alpha_m - a1 * ex) ** 2).sum() / 2) / g_m
        z = jnp.stack([ex, em, ex * em])  # (n_b, N)
        if layout.nominal:
            z = jnp.concatenate([z, dummies[:, 1:].T])
        prec_b = z @ z.T / s.psi_y + jnp.eye(n_b) / c2
        b = normal_from_precision(None, prec_b, z @ ey / s.psi_y, noise["b"])
        psi_y = (lb0 + ((ey - b @ z) ** 2).sum() / 2) / g_y
        s = State(eta, nu, lam, theta, phi_x, a1, psi_m, b, psi_y, alpha_m, s.d, prob, shift)
        moves = (noise["scale"], noise["log_u"])
        return interaction_moves.scale_move(moves, s, sums, layout, priors)

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
        return regressions(layout, s.eta[0], s.eta[1], s.eta[2], dummies)

    return Sampler(init, prepare, step, collect, analyse_scores)
