"""Factor location moves: what each factor's move shifts, and its exact conditional."""

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.spec import dgm, evaluate, sweep
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps.base import Context, Noise
from simstudy.spec.steps.factor_location import FactorLocation

TWO_FACTORS = "f =~ y1 + y2 + y3\ng =~ y4 + l5*y5 + 0.5*y6\ng ~ b*f"


def test_factors_get_location_moves():
    lay = sweep.layout(from_syntax(TWO_FACTORS))
    # f's prior is the latent block's, and g's equation moves with it; g's own equation is
    # its prior; each moves its own indicators' intercepts
    shifts = {s.factor: s for s in lay.steps_of(FactorLocation)}
    assert (
        shifts["f"].block == ("latent", 0) and shifts["f"].indicators == (True,) * 3 + (False,) * 3
    )
    assert shifts["g"].block is None and shifts["g"].indicators == (False,) * 3 + (True,) * 3
    assert [lay.equations[i].target for i in shifts["f"].equations] == ["g"]
    assert [lay.equations[i].target for i in shifts["g"].equations] == ["g"]


def test_location_move_draws_the_exact_conditional_of_the_shift():
    """The move's normal for ``c`` equals the log joint along ``f -> f + c``, ``nu -> nu - lam c``.

    The log joint is written out here (indicators, intercept priors, the factors' block, the
    structural equation with a product term); it is quadratic in ``c``, so three points give
    its precision and mean exactly. Missing indicators and a padded row are included.
    """
    syntax = "f =~ y1 + y2 + y3\nh =~ y4 + y5\ng =~ y6 + y7\ng ~ b*f + c*h + d*f:h"
    spec = from_syntax(syntax)
    lay = sweep.layout(spec)
    rng = np.random.default_rng(1)
    n, names = 30, [f"y{j}" for j in range(1, 8)]
    real = np.arange(n) < n - 1
    data = {dgm.ROW_REAL: jnp.asarray(real)}
    for v in names:
        data[v] = jnp.asarray(rng.normal(size=n))
        data[dgm.observed_key(v)] = jnp.asarray(rng.random(n) < 0.8)
    data = sweep.prepare(data, lay)
    means = tuple((v, (0.7, 0.0)) for v in names)
    priors = sweep.Priors(coef_sd=0.8, coef_means=means)
    state = sweep.init(jax.random.PRNGKey(2), data, lay, priors)
    state["cov"] = {"latent": jnp.asarray([[1.3, 0.4], [0.4, 0.8]])}
    state["coef"] = {"g": jnp.asarray([0.5, -0.3, 0.6])}
    state["var"] = {"g": jnp.asarray(0.7)}
    state["meas"] = {**state["meas"], "nu": jnp.asarray(rng.normal(size=7))}
    m = lay.measurement
    weights = {i: evaluate.weight(lay.equations[i], lay, data) for i in lay.general}
    ctx = Context(lay, priors, weights)

    def log_joint(st):
        p = st["meas"]
        total = -0.5 * ((p["nu"] - 0.7) ** 2).sum() / 0.8**2
        for j, v in enumerate(m.targets):
            score = st["nodes"][m.factors[m.factor_of[j]]]
            r = data[v] - p["nu"][j] - p["lam"][j] * score
            total -= (
                0.5 * jnp.where(data[dgm.observed_key(v)] & real, r**2 / p["theta"][j], 0).sum()
            )
        f, h, g = (st["nodes"][k] for k in ("f", "h", "g"))
        fh = jnp.stack([f, h], -1)
        quad = jnp.einsum("ni,ij,nj->n", fh, jnp.linalg.inv(st["cov"]["latent"]), fh)
        total -= 0.5 * jnp.where(real, quad, 0).sum()
        b, c, d = st["coef"]["g"]
        total -= (
            0.5 * jnp.where(real, (g - b * f - c * h - d * f * h) ** 2, 0).sum() / st["var"]["g"]
        )
        return total

    for move in lay.steps_of(FactorLocation):
        lam = np.where(move.indicators, state["meas"]["lam"], 0.0)

        def shifted(c, move=move, lam=lam):
            nodes = {**state["nodes"], move.factor: state["nodes"][move.factor] + c * real}
            meas_ = {**state["meas"], "nu": state["meas"]["nu"] - lam * c}
            return log_joint({**state, "nodes": nodes, "meas": meas_})

        draws, (c0, _) = _draws_at_the_shifts_conditional(move, state, data, ctx, shifted)
        # the padded row stays; the intercepts move by -lam c
        assert float(draws[0]["nodes"][move.factor][-1]) == float(state["nodes"][move.factor][-1])
        np.testing.assert_allclose(
            draws[0]["meas"]["nu"], state["meas"]["nu"] - lam * c0, rtol=1e-5
        )
    assert {s.factor for s in lay.steps_of(FactorLocation)} == {"f", "h", "g"}


def test_location_move_of_ordered_items_shifts_thresholds_and_responses_exactly():
    """Ordered items (theta parameterisation): ``tau + lam c`` and ``u* + lam c``, exactly.

    The move's normal for ``c`` equals the log joint along the move written out here (the
    factors' block, the thresholds' N(0, coef_sd^2) priors, a continuous indicator's
    likelihood and intercept prior, the responses' normal density, which the move keeps);
    every response stays in its category. Fails with a threshold prior's sign or factor
    wrong, or with the responses left behind.
    """
    from simstudy.blocks import ordinal

    syntax = "f =~ u1 + u2 + y3\ng =~ u4 + u5 + u6"
    ordered = {"u1": 3, "u2": 3, "u4": 4, "u5": 3, "u6": 3}
    lay = sweep.layout(from_syntax(syntax, ordered=ordered))
    m = lay.measurement
    assert m.targets == ("u1", "u2", "y3", "u4", "u5", "u6") and m.responses.sum() == 5
    rng = np.random.default_rng(4)
    n = 30
    real = np.arange(n) < n - 1
    data = {dgm.ROW_REAL: jnp.asarray(real)}
    for v in m.targets:
        k = ordered.get(v)
        value = rng.integers(0, k, n) if k else rng.normal(size=n)
        data[v] = jnp.asarray(value, dtype=float)
        data[dgm.observed_key(v)] = jnp.asarray(rng.random(n) < 0.8)
    data = sweep.prepare(data, lay)
    priors = sweep.Priors(coef_sd=1.5)
    state = sweep.init(jax.random.PRNGKey(5), data, lay, priors)
    state["cov"] = {"latent": jnp.asarray([[1.3, 0.4], [0.4, 0.8]])}
    state["meas"] = {**state["meas"], "lam": jnp.asarray([1.0, 0.7, -0.4, 1.0, 1.3, 0.5])}
    weights = {i: evaluate.weight(lay.equations[i], lay, data) for i in lay.general}
    ctx = Context(lay, priors, weights)

    def tau_of(st, v):
        return ordinal.thresholds(st["thr"][v].u, np.ones((1, ordered[v] - 1), bool))[0]

    def log_joint(st):
        p = st["meas"]
        total = -0.5 * (p["nu"][2] / 1.5) ** 2
        r = data["y3"] - p["nu"][2] - p["lam"][2] * st["nodes"]["f"]
        total -= 0.5 * jnp.where(data[dgm.observed_key("y3")] & real, r**2 / p["theta"][2], 0).sum()
        for j, v in enumerate(m.targets):
            if v in ordered:
                score = st["nodes"][m.factors[m.factor_of[j]]]
                r = st["nodes"][v] - p["lam"][j] * score
                total -= 0.5 * jnp.where(real, r**2, 0).sum()
                total -= 0.5 * (tau_of(st, v) ** 2).sum() / 1.5**2
        fg = jnp.stack([st["nodes"]["f"], st["nodes"]["g"]], -1)
        quad = jnp.einsum("ni,ij,nj->n", fg, jnp.linalg.inv(st["cov"]["latent"]), fg)
        return total - 0.5 * jnp.where(real, quad, 0).sum()

    for move in lay.steps_of(FactorLocation):
        mine = np.asarray(m.factor_of) == m.factors.index(move.factor)
        lam = np.where(mine, state["meas"]["lam"], 0.0)

        def shifted(c, move=move, lam=lam):
            nodes = {**state["nodes"], move.factor: state["nodes"][move.factor] + c * real}
            thr = dict(state["thr"])
            for j, v in enumerate(m.targets):
                if v in ordered and lam[j] != 0:
                    nodes[v] = nodes[v] + lam[j] * c * real
                    thr[v] = thr[v]._replace(u=thr[v].u.at[:, 0].add(lam[j] * c))
            meas_ = {**state["meas"], "nu": state["meas"]["nu"] - (lam * ~m.responses) * c}
            return log_joint({**state, "nodes": nodes, "meas": meas_, "thr": thr})

        draws, (_, c1) = _draws_at_the_shifts_conditional(move, state, data, ctx, shifted)
        for j, v in enumerate(m.targets):
            if v not in ordered or not mine[j]:
                continue
            moved = draws[1]
            np.testing.assert_allclose(tau_of(moved, v), tau_of(state, v) + lam[j] * c1, rtol=1e-5)
            shift = np.asarray(moved["nodes"][v] - state["nodes"][v])
            np.testing.assert_allclose(shift, lam[j] * c1 * real, rtol=1e-4, atol=1e-6)
    assert {s.factor for s in lay.steps_of(FactorLocation)} == {"f", "g"}


def _draws_at_the_shifts_conditional(move, state, data, ctx, shifted):
    """The move's draws at z = 0 and 1, checked against the log joint along the shift.

    ``shifted(c)``: the log joint at shift ``c``, quadratic in ``c``, so three points give its
    precision and mean exactly: the draw at z = 0 is the mean, at z = 1 one SD further.
    Returns the two states and their shifts.
    """
    lo, mid, hi = (float(shifted(c)) for c in (-1.0, 0.0, 1.0))
    precision, linear = 2 * mid - lo - hi, (hi - lo) / 2
    draws = [
        move.update(state, data, Noise({move.name: jnp.asarray([z])}, {}), ctx) for z in (0.0, 1.0)
    ]
    c0, c1 = (float((d["nodes"][move.factor] - state["nodes"][move.factor])[0]) for d in draws)
    np.testing.assert_allclose(c0, linear / precision, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(c1 - c0, precision**-0.5, rtol=1e-4)
    return draws, (c0, c1)
