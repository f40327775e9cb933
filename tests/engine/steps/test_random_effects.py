"""Random-effect blocks: the shear move's draw against the likelihood written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import compiled_simulate, setting_of
from simstudy.models import family_of, model_infos
from simstudy.spec import dgm, evaluate, sweep
from simstudy.spec.info import spec_of
from simstudy.spec.steps.base import Context
from simstudy.spec.steps.random_effects import RandomEffects

GLMM = [
    "study=glmm",
    "study.factors={J: [9], cluster_size: [5], icc: [0.2], slope_var: [0.1], "
    "missing_rate: [0.2], mechanism: [MAR]}",
]


def test_shear_draws_from_the_likelihood_along_the_shear():
    """``u_row + a u_col``: the proposal is the normal of the log likelihood in ``a``.

    The likelihood ``y ~ N(b0 + b1 x + u0[g] + u1[g] x, s2)`` is written out here, over
    observed outcomes of real rows (unequal clusters are padded); with every proposal
    accepted (log u = -inf) the draw at z = 0 is its mode and at z = 1 one SD further.
    """
    plan = plan_from_dict(compose_raw(GLMM), model_infos())
    family = family_of(plan.model)
    setting = setting_of(plan, expand_grid(plan.factors)[0])
    data = dict(compiled_simulate(family, setting)(jax.random.key(4)))
    lay = sweep.layout(spec_of(plan.model.structure))
    data = sweep.prepare(data, lay)
    priors = sweep.Priors.of(plan.model.priors)
    state = sweep.init(jax.random.PRNGKey(5), data, lay, priors)
    (step,) = lay.steps_of(RandomEffects)
    name = step.block.name
    rng = np.random.default_rng(6)
    state["re"] = {name: jnp.asarray(rng.normal(size=state["re"][name].shape))}
    state["cov"] = {**state["cov"], name: jnp.asarray([[0.5, 0.1], [0.1, 0.2]])}
    weights = {i: evaluate.weight(lay.equations[i], lay, data) for i in lay.general}
    ctx = Context(lay, priors, weights)
    real = np.asarray(data[dgm.ROW_REAL]) & np.asarray(data[dgm.observed_key("y")])
    x = jnp.where(data[dgm.observed_key("x")], data["x"], state["nodes"]["x"])
    (b0, b1), s2 = state["coef"]["y"], state["var"]["y"]
    assert step.shears == ((0, 1), (1, 0))
    shears = jax.jit(lambda st, z, log_u: step._shears(st, data, z, log_u, ctx))  # op by op: 15 s
    for n, (row, col) in enumerate(step.shears):

        def log_lik(a, row=row, col=col):
            u = state["re"][name].at[:, row].add(a * state["re"][name][:, col])[data["g"]]
            r = data["y"] - b0 - b1 * x - u[:, 0] - u[:, 1] * x
            return -0.5 * jnp.where(real, r**2, 0.0).sum() / s2

        log_u = np.full(2, np.inf)  # the other shear refuses: a = 0
        log_u[n] = -np.inf
        drawn = []
        for value in (0.0, 1.0):
            z = np.zeros(2)
            z[n] = value
            moved = shears(state, jnp.asarray(z), jnp.asarray(log_u))
            diff = moved["re"][name][:, row] - state["re"][name][:, row]
            a = float(diff[0] / state["re"][name][0, col])
            np.testing.assert_allclose(diff, a * state["re"][name][:, col], rtol=1e-4, atol=1e-6)
            drawn.append(a)
        assert abs(float(jax.grad(log_lik)(drawn[0]))) < 1e-3 * abs(
            float(jax.hessian(log_lik)(0.0))
        )
        sd = float((-jax.hessian(log_lik)(drawn[0])) ** -0.5)
        np.testing.assert_allclose(drawn[1] - drawn[0], sd, rtol=1e-4)
