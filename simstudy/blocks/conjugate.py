"""Draws from the conjugate full conditionals that Gibbs-type estimators share."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


def inv_gamma(key: jax.Array, shape: jax.Array | float, scale: jax.Array | float) -> jax.Array:
    """Inverse-gamma draws with the given shape and scale (broadcast).

    The gamma variates come from :func:`unit_gamma`, never from ``jax.random.gamma``, whose
    rejection loops can run forever in a compiled program (see :func:`unit_gamma`); a shape
    that is not a positive number gives NaN.
    """
    shape, scale = jnp.asarray(shape), jnp.asarray(scale)
    out = jnp.broadcast_shapes(shape.shape, scale.shape)
    return scale / unit_gamma(key, jnp.broadcast_to(shape, out))


def dirichlet(key: jax.Array, alpha: jax.Array) -> jax.Array:
    """A Dirichlet(``alpha``) draw over the last axis: normalised :func:`unit_gamma` variates.

    For ``alpha >= 1`` (a posterior with a uniform prior); for small ``alpha`` every variate
    can underflow to 0 in float32 and the draw is NaN. Replaces ``jax.random.dirichlet``, which
    draws through ``jax.random.gamma`` (see :func:`unit_gamma`).
    """
    g = unit_gamma(key, jnp.asarray(alpha))
    return g / g.sum(-1, keepdims=True)


#: Rounds of further candidates before :func:`unit_gamma` gives up on a variate (returns NaN):
#: at acceptance >= 0.95 a finite shape needs more than 4 + 60 candidates with probability
#: below 1e-80; only a shape that is not a positive finite number gets there.
GAMMA_MAX_ROUNDS = 60


def unit_gamma(
    key: jax.Array,
    alpha: jax.Array,
    tries: int = 4,
    noise: tuple[jax.Array, jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """Gamma(alpha, 1) draws by Marsaglia & Tsang's (2000) rejection method, for any ``alpha > 0``.

    Exact, and built for XLA's CPU code, where each ``jax.random`` call (and each iteration of
    ``jax.random.gamma``'s per-variate loop) has a large fixed cost: ``tries`` candidates per
    variate come from one normal and one uniform array, and the first accepted one is kept.
    The acceptance rate is at least 0.95 (``alpha >= 1``; above 0.999 at the shapes of a
    variance's conditional with data), so the loop that draws further candidates, one at a time
    from ``key``, for variates with none accepted almost never runs; candidates form one i.i.d.
    sequence per variate, so the first accepted one has the gamma law whichever batch it came
    from. Shapes below 1 use ``Gamma(alpha) = Gamma(alpha + 1) U^(1 / alpha)``.

    ``noise``: ``(normal, uniform, uniform)`` draws of shapes ``(tries, *alpha.shape)`` twice and
    ``alpha.shape``, drawn beforehand (a sampler that draws a sweep's noise in one call);
    without it they are drawn from ``key``.

    Every loop ends: the loop runs at most :data:`GAMMA_MAX_ROUNDS` rounds, and it continues
    on carried flags, never on a recomputed float test. A shape that is NaN, infinite, 0 or
    negative gives NaN (a failed fit downstream, not a hang). ``jax.random.gamma`` is not safe
    inside a compiled sampler: its rejection loops are unbounded and vmapped over variates,
    and a batched ``while_loop`` evaluates the accept test twice, in the loop's condition and
    again in its body, in separately compiled XLA computations; for a candidate at the edge
    of acceptance the two can disagree in float32 (``1 - V + log V`` cancels), and then the
    condition keeps the loop going while the body leaves every lane unchanged: a loop that
    never ends, at valid shapes (seen in the ordinal CFA's SBC at shapes 152, 151.5, 151).
    """
    alpha = jnp.asarray(alpha)
    boost = alpha < 1
    a = jnp.where(boost, alpha + 1, alpha)
    d = a - 1 / 3
    c = 1 / jnp.sqrt(9 * d)
    k_more = key  # feeds only the rare loop below when the noise is given
    if noise is None:
        k_more, k_x, k_u, k_boost = jax.random.split(key, 4)
        shape = (tries, *alpha.shape)
        noise = (
            jax.random.normal(k_x, shape),
            jax.random.uniform(k_u, shape),
            jax.random.uniform(k_boost, alpha.shape),
        )
    x, u, u_boost = noise

    def candidates(x, u):
        v = (1 + c * x) ** 3
        safe_v = jnp.where(v > 0, v, 1.0)
        ok = (v > 0) & (jnp.log(u) < x**2 / 2 + d - d * safe_v + d * jnp.log(safe_v))
        return ok, d * safe_v

    ok, value = candidates(x, u)
    first = jnp.argmax(ok, axis=0)
    value = jnp.take_along_axis(value, first[None], axis=0)[0]
    done = ok.any(axis=0)

    def more(carry):
        value, done, i = carry
        k_xi, k_ui = jax.random.split(jax.random.fold_in(k_more, i))
        ok, v = candidates(
            jax.random.normal(k_xi, alpha.shape), jax.random.uniform(k_ui, alpha.shape)
        )
        return jnp.where(done, value, v), done | ok, i + 1

    # bounded: a NaN shape accepts no candidate, and an unbounded loop would never end
    value, done, _ = jax.lax.while_loop(
        lambda c: ~c[1].all() & (c[2] < GAMMA_MAX_ROUNDS), more, (value, done, 0)
    )
    value = jnp.where(done & (alpha > 0), value, jnp.nan)
    u_boost = jnp.maximum(u_boost, jnp.finfo(value.dtype).tiny)
    safe_alpha = jnp.where(boost & (alpha > 0), alpha, 1.0)
    return jnp.where(boost, value * u_boost ** (1 / safe_alpha), value)


def normal_from_precision(
    key: jax.Array | None, precision: jax.Array, rhs: jax.Array, z: jax.Array | None = None
) -> jax.Array:
    """Draw from N(P^-1 r, P^-1) for a batch of small precision matrices ``P`` and vectors ``r``.

    ``z``: standard normal noise of ``rhs``'s shape, drawn beforehand (then ``key`` is unused);
    a sampler that draws all of a sweep's noise in one call passes it here.
    """
    if z is None:
        z = jax.random.normal(key, rhs.shape)
    if precision.shape[-1] <= UNROLLED_MAX:
        return _unrolled_draw(precision, rhs, z)
    chol = jnp.linalg.cholesky(precision)
    mean = jax.scipy.linalg.cho_solve((chol, True), rhs[..., None])[..., 0]
    # mean + L^-T z has covariance (L L^T)^-1
    upper = jnp.swapaxes(chol, -1, -2)
    return mean + jax.scipy.linalg.solve_triangular(upper, z[..., None], lower=False)[..., 0]


#: Precision matrices up to this size are factored by :func:`_unrolled_draw`.
UNROLLED_MAX = 4


def _unrolled_cholesky(matrix: jax.Array) -> list[list[Any]]:
    """The lower Cholesky factor of small ``k x k`` matrices, entry by entry (upper: None)."""
    k = matrix.shape[-1]
    low: list[list[Any]] = [[None] * k for _ in range(k)]
    for j in range(k):
        diag = matrix[..., j, j] - sum((low[j][m] ** 2 for m in range(j)), 0.0)
        low[j][j] = jnp.sqrt(diag)
        for i in range(j + 1, k):
            off = matrix[..., i, j] - sum((low[i][m] * low[j][m] for m in range(j)), 0.0)
            low[i][j] = off / low[j][j]
    return low


def _unrolled_forward(low: list[list[Any]], rhs: jax.Array) -> list[Any]:
    """``y`` with ``L y = r`` for :func:`_unrolled_cholesky`'s ``L``, entry by entry."""
    y: list[Any] = []
    for i in range(len(low)):
        y.append((rhs[..., i] - sum((low[i][m] * y[m] for m in range(i)), 0.0)) / low[i][i])
    return y


def _unrolled_draw(precision: jax.Array, rhs: jax.Array, z: jax.Array) -> jax.Array:
    """:func:`normal_from_precision` for small ``k``: Cholesky and substitutions written out.

    ``L^-T (L^-1 r + z)`` with ``P = L L^T``: the mean ``P^-1 r`` plus ``L^-T z``. Elementwise
    operations over the batch instead of LAPACK calls (on the CPU, one call per matrix; a
    sampler's sweep has hundreds of 2 x 2 and 3 x 3 systems per replication) or XLA's
    expanded loops; a matrix that is not positive definite gives NaN, as LAPACK's does.
    """
    k = precision.shape[-1]
    low = _unrolled_cholesky(precision)
    y = _unrolled_forward(low, rhs)  # L y = r, then x = L^-T (y + z)
    x: list[Any] = [None] * k
    for i in reversed(range(k)):
        rest = sum((low[m][i] * x[m] for m in range(i + 1, k)), 0.0)
        x[i] = (y[i] + z[..., i] - rest) / low[i][i]
    return jnp.stack(x, axis=-1)


def inverse_cholesky(cov: jax.Array) -> jax.Array:
    """``L^-1`` for ``cov = L L'`` (batched); written out elementwise up to :data:`UNROLLED_MAX`.

    As in :func:`_unrolled_draw`: under ``vmap`` LAPACK factors one small matrix per call.
    """
    k = cov.shape[-1]
    if k > UNROLLED_MAX:
        return jnp.linalg.inv(jnp.linalg.cholesky(cov))
    low = _unrolled_cholesky(cov)
    zero = jnp.zeros_like(cov[..., 0, 0])
    inv: list[list[Any]] = [[zero] * k for _ in range(k)]
    for c in range(k):  # column c of L^-1: forward substitution of e_c
        for i in range(c, k):
            rest = sum((low[i][m] * inv[m][c] for m in range(c, i)), 0.0)
            inv[i][c] = ((1.0 if i == c else 0.0) - rest) / low[i][i]
    return jnp.stack([jnp.stack(row, -1) for row in inv], -2)


def small_cholesky(matrix: jax.Array) -> jax.Array:
    """The lower Cholesky factor (batched); written out elementwise up to :data:`UNROLLED_MAX`.

    As in :func:`_unrolled_draw`: under ``vmap`` LAPACK factors one small matrix per call.
    """
    k = matrix.shape[-1]
    if k > UNROLLED_MAX:
        return jnp.linalg.cholesky(matrix)
    low = _unrolled_cholesky(matrix)
    zero = jnp.zeros_like(matrix[..., 0, 0])
    rows = [[low[i][j] if j <= i else zero for j in range(k)] for i in range(k)]
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def small_logdet(matrix: jax.Array) -> jax.Array:
    """``log det`` of positive definite matrices (batched); written out up to :data:`UNROLLED_MAX`.

    As in :func:`_unrolled_draw`: ``slogdet`` factors one small matrix per LAPACK call.
    """
    k = matrix.shape[-1]
    if k > UNROLLED_MAX:
        return jnp.linalg.slogdet(matrix)[1]
    low = _unrolled_cholesky(matrix)
    return 2.0 * sum(jnp.log(low[i][i]) for i in range(k))


def log_normal_from_precision(x: jax.Array, precision: jax.Array, rhs: jax.Array) -> jax.Array:
    """``log N(x; P^-1 r, P^-1)`` up to a constant, batched: :func:`normal_from_precision`'s.

    Written out up to :data:`UNROLLED_MAX`. With ``P = L L'``:
    ``(x - P^-1 r)' P (x - P^-1 r) = |L' x|^2 - 2 x'r + |L^-1 r|^2``.
    """
    k = precision.shape[-1]
    if k > UNROLLED_MAX:
        mean = jnp.linalg.solve(precision, rhs[..., None])[..., 0]
        quad = jnp.einsum("...i,...ij,...j->...", x - mean, precision, x - mean)
        return 0.5 * jnp.linalg.slogdet(precision)[1] - 0.5 * quad
    low = _unrolled_cholesky(precision)
    white = [sum(low[m][i] * x[..., m] for m in range(i, k)) for i in range(k)]  # L' x
    y = _unrolled_forward(low, rhs)
    quad = sum(w**2 for w in white) - 2 * (x * rhs).sum(-1) + sum(v**2 for v in y)
    return sum(jnp.log(low[i][i]) for i in range(k)) - 0.5 * quad


def small_inverse(matrix: jax.Array) -> jax.Array:
    """The inverse of positive definite matrices (batched): ``L^-T L^-1``.

    ``L^-1`` from :func:`inverse_cholesky` (written out for small matrices).
    """
    inv_low = inverse_cholesky(matrix)
    k = matrix.shape[-1]
    if k > UNROLLED_MAX:
        return jnp.swapaxes(inv_low, -1, -2) @ inv_low
    # written out: a batched dot of tiny matrices is slow on XLA's CPU backend
    entry = [[inv_low[..., m, i] for m in range(k)] for i in range(k)]  # column i of L^-1
    rows = [
        [sum(a * b for a, b in zip(entry[i], entry[j], strict=True)) for j in range(k)]
        for i in range(k)
    ]
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def inverse_wishart(key: jax.Array, df: jax.Array | float, scale: jax.Array) -> jax.Array:
    """An inverse-Wishart(df, scale) draw (k × k), by Bartlett's decomposition of its inverse."""
    k = scale.shape[-1]
    k_chi, k_norm = jax.random.split(key)
    dof = df - jnp.arange(k)
    diag = jnp.sqrt(2.0 * unit_gamma(k_chi, dof / 2.0))  # chi-square(dof): bounded loop
    lower = jnp.tril(jax.random.normal(k_norm, (k, k)), -1)
    bartlett = lower + jnp.diag(diag)
    # W = L_inv A A' L_inv' ~ Wishart(df, scale^-1), with scale^-1 = L_inv L_inv'
    chol_inv = small_cholesky(small_inverse(scale))
    factor = chol_inv @ bartlett
    return small_inverse(factor @ factor.T)


def loading_draw(
    keys: tuple[jax.Array, jax.Array],
    y: jax.Array,
    weight: jax.Array,
    scores: jax.Array,
    marker: jax.Array,
    intercept: jax.Array | bool,
    coef_var: float,
) -> tuple[jax.Array, jax.Array]:
    """Intercepts and loadings of indicators that each load on one factor, given their weights.

    Per indicator ``j`` the regression of ``y_j`` on its factor's scores with per-cell precision
    ``weight`` (``1 / theta_j`` where observed, 0 where missing) and N(0, coef_var) priors:
    ``(nu_j, lambda_j)`` jointly; marker indicators keep ``lambda_j = 1`` and draw only the
    intercept; indicators without a free ``intercept`` (ordinal ones) keep ``nu_j = 0``.

    Parameters
    ----------
    keys
        Two keys: loadings and intercepts, marker intercepts.
    y
        Indicators or latent responses (N × p, any value where the weight is 0).
    weight
        Precision of each cell (N × p).
    scores
        Each indicator's factor score per person (N × p).
    marker
        Boolean (p,): loading fixed at 1.
    intercept
        Boolean (p,) or scalar: the intercept is free (else fixed at 0).

    Returns
    -------
    nu, lam
    """
    n_w = weight.sum(0)
    s_e, s_ee = (weight * scores).sum(0), (weight * scores**2).sum(0)
    s_y, s_ye = (weight * y).sum(0), (weight * y * scores).sum(0)
    noise = (jax.random.normal(keys[0], (*n_w.shape, 2)), jax.random.normal(keys[1], n_w.shape))
    return loading_draw_from_sums(noise, (n_w, s_e, s_ee, s_y, s_ye), marker, intercept, coef_var)


def loading_draw_from_sums(
    noise: tuple[jax.Array, jax.Array],
    sums: tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array],
    marker: jax.Array,
    intercept: jax.Array | bool,
    coef_var: float,
) -> tuple[jax.Array, jax.Array]:
    """:func:`loading_draw` from its weighted sums, for samplers that keep them.

    ``sums``: per indicator (each ``(p,)``) the sums over persons of ``w``, ``w e``, ``w e^2``,
    ``w y`` and ``w y e``, with ``w`` the cell precision and ``e`` the indicator's factor score.
    ``noise``: standard normal draws, ``(p, 2)`` for ``(nu, lambda)`` and ``(p,)`` for the
    markers' intercepts.
    """
    z_coef, z_nu = noise
    n_w, s_e, s_ee, s_y, s_ye = sums
    free = jnp.broadcast_to(jnp.asarray(intercept, bool), marker.shape)
    off = jnp.where(free, s_e, 0.0)
    prec = jnp.stack(
        [
            jnp.stack([jnp.where(free, n_w, 0.0) + 1 / coef_var, off], -1),
            jnp.stack([off, s_ee + 1 / coef_var], -1),
        ],
        -2,
    )
    rhs = jnp.stack([jnp.where(free, s_y, 0.0), s_ye], -1)
    coef = normal_from_precision(None, prec, rhs, z_coef)
    prec_nu = n_w + 1 / coef_var  # markers: intercept of y - score
    nu_marker = (s_y - s_e) / prec_nu + z_nu / jnp.sqrt(prec_nu)
    nu = jnp.where(free, jnp.where(marker, nu_marker, coef[:, 0]), 0.0)
    lam = jnp.where(marker, 1.0, coef[:, 1])
    return nu, lam


def measurement_draw(
    keys: tuple[jax.Array, jax.Array, jax.Array],
    y: jax.Array,
    observed: jax.Array,
    scores: jax.Array,
    marker: jax.Array,
    theta: jax.Array,
    coef_var: float,
    var_shape: float,
    var_scale: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Intercepts, loadings and residual variances of continuous single-factor indicators.

    ``(nu_j, lambda_j) | theta_j`` by :func:`loading_draw` (all intercepts free), then
    ``theta_j | nu_j, lambda_j`` from InverseGamma(var_shape + n_j / 2, var_scale + SSR_j / 2).

    Parameters
    ----------
    keys
        Three keys: loadings and intercepts, marker intercepts, residual variances.
    y, observed
        Indicators (N × p, any value where missing) and their mask.
    scores
        Each indicator's factor score per person (N × p).
    marker
        Boolean (p,): loading fixed at 1.
    theta
        Current residual variances (p,).

    Returns
    -------
    nu, lam, theta
    """
    obs = observed.astype(float)
    nu, lam = loading_draw(keys[:2], y, obs / theta, scores, marker, True, coef_var)
    ssr = (obs * (y - nu - lam * scores) ** 2).sum(0)
    return nu, lam, inv_gamma(keys[2], var_shape + obs.sum(0) / 2, var_scale + ssr / 2)


class IndicatorSums(NamedTuple):
    """Per indicator (each ``(p,)``), sums over the persons who answered it.

    The indicator enters centred at its observed mean ``ybar`` (``y - ybar``), so that the
    residual sum of squares expanded from these sums loses no precision in float32 to a large
    mean. ``e`` is each indicator's factor score.
    """

    n: jax.Array  # persons answering
    e: jax.Array  # sum of e
    ee: jax.Array  # sum of e^2
    y: jax.Array  # sum of (y - ybar)
    yy: jax.Array  # sum of (y - ybar)^2
    ye: jax.Array  # sum of (y - ybar) e
    ybar: jax.Array  # observed means


def indicator_ssr(sums: IndicatorSums, nu: jax.Array, lam: jax.Array) -> jax.Array:
    """Per indicator, the sum of squared residuals ``y - nu - lam e`` over its answered rows."""
    nu_c = nu - sums.ybar
    ssr = (
        sums.yy
        - 2 * nu_c * sums.y
        - 2 * lam * sums.ye
        + sums.n * nu_c**2
        + 2 * nu_c * lam * sums.e
        + lam**2 * sums.ee
    )
    return jnp.maximum(ssr, 0.0)  # rounding can take a tiny sum below 0


def inverse_wishart_log_prior(phi: jax.Array, df: float, scale: float):
    """Log density (up to a constant) of InverseWishart(df, scale * I) at ``Phi``."""
    k = phi.shape[-1]
    trace = scale * jnp.trace(small_inverse(phi), axis1=-2, axis2=-1)
    return -(df + k + 1) / 2 * small_logdet(phi) - trace / 2


def marker_signs(y: jax.Array, observed: jax.Array, marker_of_item: Any) -> jax.Array:
    """+1 or -1 per indicator: the sign of its covariance with its factor's marker.

    Start values for loadings: a chain started with every loading positive stays in that
    basin when a true loading is negative (the marker fixes the factor's sign, but a factor can
    also be "taken over" by its other indicators: a local mode where every chain agrees).
    """
    obs = observed.astype(float)
    both = obs * obs[:, marker_of_item]
    n = jnp.maximum(both.sum(0), 1.0)
    marker = y[:, marker_of_item]
    centred = y - (y * both).sum(0) / n
    centred_marker = marker - (marker * both).sum(0) / n
    return jnp.where((both * centred * centred_marker).sum(0) < 0, -1.0, 1.0)
