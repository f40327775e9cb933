"""NUTS for NumPyro model functions, compiled once per (estimator, settings, data shapes).

The whole fit -- random initial points, Stan-style window adaptation and sampling, for all
chains at once (``vmap``) -- is one jitted function of ``(rng_key, data)``. NumPyro supplies the
log density (``potential_energy``) and the constraining transforms as traceable functions of the
data, BlackJAX the adaptation and the NUTS kernel, so every replication of a condition reuses the
same compiled program.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import constrain_fn, initialize_model, potential_energy

from simstudy.config import SamplerSettings
from simstudy.contract import SampledEstimator

#: Half-width of the uniform box of initial points on the unconstrained scale (as Stan).
INIT_RADIUS = 2.0


class Draws(NamedTuple):
    """Posterior draws of one fit.

    Attributes
    ----------
    draws
        Estimand name to an array of shape (chains, draws).
    n_divergent
        Divergent transitions after warm-up, all chains together.
    """

    draws: dict[str, np.ndarray]
    n_divergent: int


_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _signature(data: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, np.shape(v), np.asarray(v).dtype.str) for k, v in data.items()))


def unconstrained_layout(model: Callable[..., None], template: Mapping[str, Any]) -> Any:
    """Zeros in the structure of a NumPyro model's unconstrained parameters.

    Found by tracing NumPyro's initialisation abstractly (``jax.eval_shape``): run eagerly, it
    dispatches and compiles each small operation of the model one by one, which cost more
    than tracing the whole sampler (benchmarks/compile_programs.py).
    """

    def sites(rng_key: jax.Array) -> Any:
        return initialize_model(rng_key, model, model_kwargs=dict(template)).param_info.z

    shapes = jax.eval_shape(sites, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def flatten_model(
    estimator: SampledEstimator, template: Mapping[str, Any]
) -> tuple[
    int,
    Callable[[Mapping[str, Any]], Callable[[jax.Array], jax.Array]],
    Callable[[Mapping[str, Any], jax.Array], dict[str, jax.Array]],
]:
    """A NumPyro model as a flat vector of unconstrained parameters.

    Returns
    -------
    dim, logdensity_of, derive
        The vector's length; ``data -> logdensity_fn`` (the log joint density of the flat
        vector, Jacobians included); and ``(data, positions) -> draws``, the estimands of
        positions of shape ``(chains, draws, dim)`` (constrained, then ``estimator.derive``).
    """
    model = estimator.model
    flat0, unravel = ravel_pytree(unconstrained_layout(model, template))

    def logdensity_of(data: Mapping[str, Any]) -> Callable[[jax.Array], jax.Array]:
        return lambda flat: -potential_energy(model, (), data, unravel(flat))

    def derive(data: Mapping[str, Any], positions: jax.Array) -> dict[str, jax.Array]:
        # deterministic sites too: a user's derived quantities, a PyMC model's variables
        constrain = lambda f: constrain_fn(model, (), data, unravel(f), True)  # noqa: E731
        return estimator.derive(jax.vmap(jax.vmap(constrain))(positions))

    return flat0.shape[0], logdensity_of, derive


def build_sampler(
    estimator: SampledEstimator, settings: SamplerSettings, template: Mapping[str, Any]
) -> Callable[[jax.Array, Mapping[str, Any]], tuple[dict[str, jax.Array], jax.Array]]:
    """Build the jitted ``(rng_key, data) -> (draws, n_divergent)`` for one data shape.

    Parameters
    ----------
    estimator
        The sampled estimator (its NumPyro model and ``derive``).
    settings
        Chains, warm-up and draws, target acceptance and maximum tree depth.
    template
        A data set of the shapes to compile for (its values are used only to find the
        structure of the unconstrained parameters).
    """
    dim, logdensity_of, derive = flatten_model(estimator, template)

    def one_chain(rng_key: jax.Array, data: Mapping[str, Any]):
        logdensity_fn = logdensity_of(data)
        k_init, k_warm, k_draw = jax.random.split(rng_key, 3)
        position = jax.random.uniform(k_init, (dim,), minval=-INIT_RADIUS, maxval=INIT_RADIUS)
        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity_fn,
            target_acceptance_rate=settings.target_accept,
            adaptation_info_fn=get_filter_adapt_info_fn(),
            max_num_doublings=settings.max_tree_depth,
        )
        (state, params), _ = warmup.run(k_warm, position, num_steps=settings.warmup)
        kernel = blackjax.nuts(logdensity_fn, **params)

        def step(state, key):
            state, step_info = kernel.step(key, state)
            return state, (state.position, step_info.is_divergent)

        _, (positions, divergent) = jax.lax.scan(
            step, state, jax.random.split(k_draw, settings.draws)
        )
        return positions, divergent.sum()

    @jax.jit
    def fit(rng_key: jax.Array, data: Mapping[str, Any]):
        keys = jax.random.split(rng_key, settings.chains)
        positions, divergent = jax.vmap(one_chain, in_axes=(0, None))(keys, data)
        return derive(data, positions), divergent.sum()

    return fit


def prepare(
    estimator: SampledEstimator, data: Mapping[str, Any], settings: SamplerSettings
) -> Callable[[jax.Array, Mapping[str, Any]], Draws]:
    """Return the compiled sampler for ``data``'s shapes, compiling it on first use.

    Compilation happens here, ahead of time, so that a fit's timing is the sampling alone.
    The program is cached per (estimator, settings, data shapes) for the life of the process.

    Parameters
    ----------
    estimator
        The sampled estimator.
    data
        The model's keyword arguments (from ``estimator.data``).
    settings
        Sampler settings.

    Returns
    -------
    callable
        ``(rng_key, data) -> Draws``.
    """
    arrays = {k: jnp.asarray(v) for k, v in data.items()}
    cache_key = (estimator.name, estimator.model, settings.program(), _signature(arrays))
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        fit = build_sampler(estimator, settings, arrays)
        compiled = fit.lower(jax.random.key(0), arrays).compile()
        _COMPILED[cache_key] = compiled

    def run(rng_key: jax.Array, data: Mapping[str, Any]) -> Draws:
        draws, divergent = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
        return Draws({k: np.asarray(v) for k, v in draws.items()}, int(divergent))

    return run
