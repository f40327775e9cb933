"""ChEES-HMC for NumPyro model functions: many chains, one trajectory length, Pathfinder starts.

NUTS picks a trajectory length per iteration and chain, so chains (and replications) vmapped
together wait for the slowest lane. Jittered HMC with a trajectory length tuned by the ChEES
criterion across chains (Hoffman, Radul & Sountsov 2021; BlackJAX's ``chees_adaptation``) uses
one step size and one (jittered) number of leapfrog steps per iteration for all chains of a
fit, so the chains of a replication run in lockstep, and replications fitted together
(``sampler.vectorize``) nearly so: their step counts differ only through their adapted step
sizes. The adaptation pools what all chains see (step size by dual averaging on the harmonic
mean of their acceptance rates, a diagonal mass matrix from their draws).

Each chain starts from a draw of a Pathfinder approximation (Zhang et al. 2022) found by
L-BFGS from a uniform point in Stan's box (-2, 2) on the unconstrained scale: dispersed
starts (so R-hat can see disagreement) that are already in the typical set. Started from the
box alone, a chain stuck in the tails made the shared step size collapse (0.09 against 0.45,
every draw of that chain divergent, R-hat 1.3) in 2 of 8 data sets of the default study's
condition, seen while this module was written (8 chains, 300 warm-up iterations).

Settings (``conf/sampler/chees.yaml``): ``chains`` (at least 2; the adaptation learns from
their spread), ``warmup`` and ``draws`` iterations, ``target_accept`` (ChEES's optimum is
0.651) and ``max_tree_depth``, read as at most ``2**max_tree_depth`` leapfrog steps per
trajectory (NUTS's bound at that depth).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from blackjax.adaptation.base import get_filter_adapt_info_fn

from simstudy.config import SamplerSettings
from simstudy.contract import SampledEstimator
from simstudy.engine.gibbs import stack, stack_keys
from simstudy.engine.nuts import INIT_RADIUS, Draws, _signature, flatten_model

#: Learning rate of the Adam steps on the log trajectory length (ChEES adaptation).
LEARNING_RATE = 0.05
#: Initial leapfrog step size; dual averaging moves it within a few iterations.
INITIAL_STEP_SIZE = 0.1
#: L-BFGS iterations of the Pathfinder start of each chain (BlackJAX's default).
PATHFINDER_ITERATIONS = 30
#: Draws of each Pathfinder approximation used for its ELBO (which picks the approximation).
PATHFINDER_SAMPLES = 50

#: XLA options of ChEES programs: LLVM's lighter optimization pipeline compiles them faster
#: and runs them no slower (benchmarks/results/compile_programs.md; not so for Gibbs sweeps).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}

_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


def pathfinder_start(
    rng_key: jax.Array, logdensity_fn: Callable[[jax.Array], jax.Array], position: jax.Array
) -> jax.Array:
    """One draw of the Pathfinder approximation found by L-BFGS from ``position``."""
    k_fit, k_draw = jax.random.split(rng_key)
    state, _ = blackjax.vi.pathfinder.approximate(
        k_fit,
        logdensity_fn,
        position,
        num_samples=PATHFINDER_SAMPLES,
        maxiter=PATHFINDER_ITERATIONS,
    )
    draw, _ = blackjax.vi.pathfinder.sample(k_draw, state)
    # an approximation that failed (non-finite) leaves the chain at its box start
    return jnp.where(jnp.all(jnp.isfinite(draw)), draw, position)


def build_fit(
    estimator: SampledEstimator, settings: SamplerSettings, template: Mapping[str, Any]
) -> Callable[[jax.Array, Mapping[str, Any]], tuple[dict[str, jax.Array], jax.Array]]:
    """The traceable ``(rng_key, data) -> (draws, n_divergent)`` of one replication.

    Draws are keyed by estimand with shape (chains, draws), as :func:`nuts.build_sampler`.
    """
    dim, logdensity_of, derive = flatten_model(estimator, template)
    chains = settings.chains

    def fit(rng_key: jax.Array, data: Mapping[str, Any]):
        logdensity_fn = logdensity_of(data)
        k_box, k_path, k_warm, k_draw = jax.random.split(rng_key, 4)
        box = jax.random.uniform(k_box, (chains, dim), minval=-INIT_RADIUS, maxval=INIT_RADIUS)
        # one chain after another: vmapped, L-BFGS's loops and branches become selects over
        # every lane, a larger program (benchmarks/compile_programs.py) for the same starts
        starts = jax.lax.map(
            lambda args: pathfinder_start(args[0], logdensity_fn, args[1]),
            (jax.random.split(k_path, chains), box),
        )
        warmup = blackjax.chees_adaptation(
            logdensity_fn,
            chains,
            target_acceptance_rate=settings.target_accept,
            max_leapfrog_steps=2**settings.max_tree_depth,
            mass_matrix_estimation="diagonal",
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )
        (states, params), _ = warmup.run(
            k_warm, starts, INITIAL_STEP_SIZE, optax.adam(LEARNING_RATE), settings.warmup
        )
        kernel = blackjax.dynamic_hmc(logdensity_fn, **params)

        def step(states, key):
            states, info = jax.vmap(kernel.step)(jax.random.split(key, chains), states)
            return states, (states.position, info.is_divergent)

        _, (positions, divergent) = jax.lax.scan(
            step, states, jax.random.split(k_draw, settings.draws)
        )
        return derive(data, positions.swapaxes(0, 1)), divergent.sum()

    return fit


def compile_fit(
    estimator: SampledEstimator,
    settings: SamplerSettings,
    data: Mapping[str, Any],
    width: int | None = None,
):
    """Compile (once per estimator, settings, shapes and width) the fit of ``data``.

    With ``width`` the program fits ``width`` replications: ``data`` has a leading axis of that
    length and the key is one key per replication.
    """
    if settings.chains < 2:
        raise ValueError("ChEES adapts from the spread of its chains: sampler.chains >= 2")
    arrays = {k: jnp.asarray(v) for k, v in data.items()}
    cache_key = (estimator.name, estimator.model, settings.program(), width, _signature(arrays))
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        template = arrays if width is None else {k: v[0] for k, v in arrays.items()}
        fit = build_fit(estimator, settings, template)
        if width is None:
            example = jax.random.key(0)
        else:
            example = jax.random.split(jax.random.key(0), width)
            fit = jax.vmap(fit)
        lowered = jax.jit(fit).lower(example, arrays)
        compiled = _COMPILED[cache_key] = lowered.compile(compiler_options=COMPILER_OPTIONS)
    return compiled


def prepare(
    estimator: SampledEstimator, data: Mapping[str, Any], settings: SamplerSettings
) -> Callable[[jax.Array, Mapping[str, Any]], Draws]:
    """Compiled fit of one replication for ``data``'s shapes: ``(rng_key, data) -> Draws``."""
    compiled = compile_fit(estimator, settings, data)

    def run(rng_key: jax.Array, data: Mapping[str, Any]) -> Draws:
        draws, divergent = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
        return Draws({k: np.asarray(v) for k, v in draws.items()}, int(divergent))

    return run


def prepare_batch(
    estimator: SampledEstimator,
    datasets: Sequence[Mapping[str, Any]],
    settings: SamplerSettings,
    width: int,
) -> Callable[[Sequence[jax.Array]], list[Draws]]:
    """Compiled fit of up to ``width`` data sets at once: ``keys -> [Draws]``, one per data set.

    The group is padded to ``width`` with its last data set and key (lanes computed and
    discarded), so every group runs the same program.
    """
    data = stack(datasets, width)
    compiled = compile_fit(estimator, settings, data, width)

    def run(keys: Sequence[jax.Array]) -> list[Draws]:
        draws, divergent = compiled(stack_keys(keys, width), data)
        host = {k: np.asarray(v) for k, v in draws.items()}
        divergent = np.asarray(divergent)
        return [
            Draws({k: v[i] for k, v in host.items()}, int(divergent[i]))
            for i in range(len(datasets))
        ]

    return run
