"""A driver for conditional-update (Gibbs) samplers: all chains, warm-up and draws in one program.

The model supplies pure ``init``/``step``/``collect`` functions (see
:class:`~simstudy.contract.GibbsEstimator`); this module vmaps them over chains, scans over
iterations and compiles the whole fit once per (estimator, settings, data shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.config import SamplerSettings
from simstudy.contract import Estimate, GibbsEstimator, ImputationEstimator
from simstudy.engine.nuts import Draws, _signature

_COMPILED: dict[tuple[Any, ...], Any] = {}

#: JAX's ``jax_threefry_partitionable`` setting under which Gibbs programs are traced: their
#: random streams depend on it, so it is fixed here, not left to the process; ``False`` was
#: not slower on the CPU (benchmarks/results/profile_gibbs_sweep.md).
THREEFRY_PARTITIONABLE = False


def _chain(
    estimator: GibbsEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    record: Callable[[Any, Mapping[str, Any]], Any] | None = None,
    n_record: int = 0,
    draws: bool = True,
):
    """One chain: warm-up, then ``settings.draws`` sampling sweeps.

    ``draws``: record ``estimator.collect`` after every sampling sweep. ``record``: record
    ``record(state, data)`` after every ``settings.draws // n_record``-th sweep, ``n_record``
    times (e.g. latent scores for imputation). Sampling sweep ``i`` has the same key whatever is
    recorded, so a chain that records the estimands, one that records M analysed states and one
    that records both visit the same states: factor-score imputation can analyse the states of
    the ``bayes`` chain it shares a program with, or rerun that chain on its own.
    """

    def one_chain(rng_key: jax.Array, data: Mapping[str, Any]):
        if estimator.prepare is not None:
            data = estimator.prepare(data)
        k_init, k_warm, k_draw = jax.random.split(rng_key, 3)
        state = estimator.init(k_init, data, priors)

        warm_step = estimator.warmup_step or estimator.step

        def warm(state, key):
            return warm_step(key, state, data, priors), None

        def sweep(state, key):
            state = estimator.step(key, state, data, priors)
            return state, (estimator.collect(state, data) if draws else None)

        warm_keys = jax.random.split(k_warm, settings.warmup)
        # the key of sampling sweep i: split(k_i, 1)[0] with k_i = split(k_draw, draws)[i]
        keys = jax.vmap(lambda k: jax.random.split(k, 1)[0])(
            jax.random.split(k_draw, settings.draws)
        )
        if record is None and estimator.warmup_step is None and draws:
            # One loop over warm-up and sampling sweeps (the same sweep), so XLA compiles its
            # body once, not twice; the warm-up sweeps' estimands are computed and dropped.
            # Same keys, so the same chain as two loops.
            collected = jax.lax.scan(sweep, state, jnp.concatenate([warm_keys, keys]))[1]
            return jax.tree.map(lambda a: a[settings.warmup :], collected)
        state, _ = jax.lax.scan(warm, state, warm_keys)
        if record is None:
            return jax.lax.scan(sweep, state, keys)[1]
        thin = settings.draws // n_record
        used = n_record * thin

        def block(state, block_keys):
            state, collected = jax.lax.scan(sweep, state, block_keys)
            return state, (collected, record(state, data))

        blocks = keys[:used].reshape(n_record, thin)
        state, (collected, recorded) = jax.lax.scan(block, state, blocks)
        if not draws:
            return recorded
        _, tail = jax.lax.scan(sweep, state, keys[used:])
        collected = jax.tree.map(
            lambda a, b: jnp.concatenate([a.reshape(used, *a.shape[2:]), b]), collected, tail
        )
        return collected, recorded

    return one_chain


def compile_fit(
    estimator: GibbsEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    data: Mapping[str, Any],
    record: Callable[[Any, Mapping[str, Any]], Any] | None = None,
    n_record: int = 0,
    draws: bool = True,
    width: int | None = None,
):
    """Compile (once per shapes) ``(rng_key, data) -> recorded values, chains first``.

    By default every sweep after warm-up records ``estimator.collect``; with ``record`` and
    ``n_record`` the chain also records ``record`` every ``draws // n_record`` sweeps (the
    result is then ``(draws, recorded)``), or only that with ``draws=False`` (see
    :func:`_chain`). With ``width`` the program fits ``width`` replications at once: ``data``
    has a leading axis of that length, the key is one key per replication, and so are the
    results' leading axis (vmap over replications × chains: every lane runs the same number of
    sweeps, so nothing waits for a slow lane).
    """
    arrays = {k: jnp.asarray(v) for k, v in data.items()}
    key = (
        estimator,  # its functions, not just its name: one name can serve several structures
        record,
        settings.program(),
        tuple(sorted(priors.items())),
        n_record,
        draws,
        width,
        _signature(arrays),
    )
    compiled = _COMPILED.get(key)
    if compiled is None:
        lowered = lower_fit(estimator, settings, priors, arrays, record, n_record, draws, width)
        compiled = _COMPILED[key] = lowered.compile()
    return compiled


def lower_fit(
    estimator: GibbsEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    arrays: Mapping[str, jax.Array],
    record: Callable[[Any, Mapping[str, Any]], Any] | None = None,
    n_record: int = 0,
    draws: bool = True,
    width: int | None = None,
):
    """The program :func:`compile_fit` compiles, lowered (traced) but not yet compiled."""
    one_chain = _chain(estimator, settings, priors, record, n_record, draws)

    def fit_one(rng_key, data):
        return jax.vmap(one_chain, in_axes=(0, None))(
            jax.random.split(rng_key, settings.chains), data
        )

    if width is None:
        example = jax.random.key(0)
        fit = jax.jit(fit_one)
    else:
        example = jax.random.split(jax.random.key(0), width)
        fit = jax.jit(jax.vmap(fit_one))
    with jax.threefry_partitionable(THREEFRY_PARTITIONABLE):
        return fit.lower(example, arrays)


def prepare(
    estimator: GibbsEstimator,
    data: Mapping[str, Any],
    settings: SamplerSettings,
    priors: Mapping[str, float],
) -> Callable[[jax.Array, Mapping[str, Any]], Draws]:
    """Compiled Gibbs fit for ``data``'s shapes: ``(rng_key, data) -> Draws`` (chains × draws)."""
    compiled = compile_fit(estimator, settings, priors, data)

    def run(rng_key: jax.Array, data: Mapping[str, Any]) -> Draws:
        draws = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
        return Draws({k: np.asarray(v) for k, v in draws.items()}, 0)

    return run


def stack(datasets: Sequence[Mapping[str, Any]], width: int) -> dict[str, jax.Array]:
    """Stack data sets of one shape along a new axis, padded to ``width`` with the last one.

    Padding lanes are computed and thrown away, so every call compiles to, and runs, the same
    program: a replication's numbers do not depend on which batch it is in.
    """
    padded = list(datasets) + [datasets[-1]] * (width - len(datasets))
    return {k: jnp.stack([jnp.asarray(d[k]) for d in padded]) for k in datasets[0]}


def stack_keys(keys: Sequence[jax.Array], width: int) -> jax.Array:
    """Stack replication keys, padded to ``width`` with the last one (as :func:`stack`)."""
    return jnp.stack(list(keys) + [keys[-1]] * (width - len(keys)))


def prepare_batch(
    estimator: GibbsEstimator,
    datasets: Sequence[Mapping[str, Any]],
    settings: SamplerSettings,
    priors: Mapping[str, float],
    width: int,
) -> Callable[[Sequence[jax.Array]], list[Draws]]:
    """Compiled fit of up to ``width`` data sets at once: ``keys -> [Draws]``, one per data set."""
    data = stack(datasets, width)
    compiled = compile_fit(estimator, settings, priors, data, width=width)

    def run(keys: Sequence[jax.Array]) -> list[Draws]:
        draws = compiled(stack_keys(keys, width), data)
        host = {k: np.asarray(v) for k, v in draws.items()}
        return [Draws({k: v[i] for k, v in host.items()}, 0) for i in range(len(datasets))]

    return run


def imputation_program(
    estimator: ImputationEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    data: Mapping[str, Any],
    width: int | None = None,
    draws: bool = False,
):
    """The compiled run that records ``estimator.analyse`` of M states spread over the chains.

    With ``draws`` it also records the sampler's estimands after every sweep (one program for
    the sampler's estimator and the imputation estimator): ``(draws, (estimates, variances))``.
    """
    per_chain = -(-estimator.imputations // settings.chains)
    if per_chain > settings.draws:
        raise ValueError(
            f"{estimator.name} analyses {per_chain} states per chain, more than the "
            f"{settings.draws} sampling sweeps (sampler.draws)"
        )
    return compile_fit(
        estimator.sampler,
        settings,
        priors,
        data,
        record=estimator.analyse,
        n_record=per_chain,
        draws=draws,
        width=width,
    )


def prepare_imputation_batch(
    estimator: ImputationEstimator,
    datasets: Sequence[Mapping[str, Any]],
    settings: SamplerSettings,
    priors: Mapping[str, float],
    width: int | None,
    draws: bool = False,
) -> Callable[[Sequence[jax.Array]], list[tuple[Draws | None, tuple[dict, dict]]]]:
    """The imputation estimator's M analyses (and with ``draws`` its sampler's draws) per data set.

    With ``draws`` one program records both (:func:`_chain`): when a study fits the Gibbs
    estimator and an imputation estimator of its states, the imputations come from the
    sampler's chains instead of chains of their own. ``width=None`` fits one data set with the
    unbatched program. Returns ``keys -> [(draws or None, (estimates, variances))]``, one per
    data set, for :func:`pool`; compiled on return.
    """
    if width is None:
        if len(datasets) != 1:
            raise ValueError("width=None fits exactly one data set")
        data = {k: jnp.asarray(v) for k, v in datasets[0].items()}
    else:
        data = stack(datasets, width)
    compiled = imputation_program(estimator, settings, priors, data, width, draws=draws)

    def run(keys: Sequence[jax.Array]) -> list[tuple[Draws | None, tuple[dict, dict]]]:
        out = compiled(keys[0] if width is None else stack_keys(keys, width), data)
        recorded, (estimates, variances) = out if draws else ({}, out)
        recorded, estimates, variances = (
            {k: np.asarray(v) for k, v in d.items()} for d in (recorded, estimates, variances)
        )
        lanes = [None] if width is None else range(len(datasets))

        def lane(d: dict, i: int | None) -> dict:
            return d if i is None else {k: v[i] for k, v in d.items()}

        return [
            (
                Draws(lane(recorded, i), 0) if draws else None,
                (lane(estimates, i), lane(variances, i)),
            )
            for i in lanes
        ]

    return run


def pool(estimator: ImputationEstimator, estimates, variances, level: float):
    """Rubin's rules over the first M of the recorded analyses (chains first)."""
    out = {}
    for name in estimator.parameters:
        q = np.asarray(estimates[name]).reshape(-1)[: estimator.imputations]
        u = np.asarray(variances[name]).reshape(-1)[: estimator.imputations]
        out[name] = rubin(q, u, level)
    return out


def impute_and_pool(
    estimator: ImputationEstimator,
    data: Mapping[str, Any],
    rng_key: jax.Array,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    level: float,
) -> dict[str, Estimate]:
    """Analyse M posterior states of ``estimator.sampler`` and pool them by Rubin's rules.

    The M states are spread evenly over the chains and over the sampling run (warm-up as in
    ``settings``), so they are close to independent draws of the latent scores.
    """
    compiled = imputation_program(estimator, settings, priors, data)
    estimates, variances = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
    return pool(estimator, estimates, variances, level)


def rubin(q: np.ndarray, u: np.ndarray, level: float) -> Estimate:
    """Pool M estimates ``q`` with within-imputation variances ``u`` (Rubin 1987).

    Total variance ``T = W + (1 + 1/M) B``; t reference with Rubin's degrees of freedom
    ``(M - 1) (1 + W / ((1 + 1/M) B))^2``.
    """
    m = q.shape[0]
    qbar, w, b = q.mean(), u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    dof = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2 if b > 0 else np.inf
    return Estimate.t_interval(float(qbar), float(np.sqrt(t)), dof, level)
