"""The simulator back end: a data set drawn from a :class:`~simstudy.spec.ir.ModelSpec`.

Level 2 before level 1: the random effects of each cluster, then per row the nominal
predictors (codes 1..K with their category probabilities), the exogenous observed variables
(jointly normal with the moments the population values give), the exogenous latents, and
every equation in dependency order; then the declared missingness.
Clusters have sizes drawn uniformly from ``[m (1 - s), m (1 + s)]`` (``m = cluster_size``,
``s = size_spread``) and are padded to the largest size, so every replication of a condition
has the same shapes; ``row_real`` marks the rows that exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from simstudy.spec import distributions
from simstudy.spec.ir import LATENT, ModelSpec, Nominal, Ordered, covariance_pair
from simstudy.spec.population import population

#: Keys of the data set besides the observed variables (``observed:<v>`` masks them).
ROW_REAL = "row_real"


def observed_key(name: str) -> str:
    """Key of the 0/1 mask of where variable ``name`` is observed."""
    return f"observed:{name}"


def cluster_key(group: str) -> str:
    """Key of the 0/1 mask of which clusters of grouping factor ``group`` exist."""
    return f"clusters:{group}"


def complete_cases(data: Mapping[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """The data set with ``row_real`` kept only where every observed variable is observed.

    Shapes stay as they are (one compiled program per condition); a dropped row drops out of
    every fit as a padding row does. Traceable.
    """
    keep = data[ROW_REAL]
    for v in spec.variables:
        if v.kind not in (LATENT, "random_effect"):
            keep = keep & data[observed_key(v.name)]
    return {**data, ROW_REAL: keep}


def dataset_table(data: Mapping[str, Any], spec: ModelSpec) -> Any:
    """A data set as the table ``simstudy fit`` reads: a pandas DataFrame, a row per real row.

    One column per observed variable (NaN where masked; float32 kept, so values print with
    their own digits; ordered and nominal variables as their codes) and one per grouping
    factor (the cluster's index); a two-level model's padding rows left out.
    """
    import numpy as np
    import pandas as pd

    from simstudy.spec.ir import RANDOM

    real = np.asarray(data[ROW_REAL], bool)
    frame = pd.DataFrame()
    for v in spec.variables:
        if v.kind not in (LATENT, RANDOM):
            values = np.asarray(data[v.name])
            kind = np.float32 if values.dtype == np.float32 else np.float64
            seen = np.asarray(data[observed_key(v.name)], bool)
            frame[v.name] = np.where(seen, values.astype(kind), np.nan).astype(kind)[real]
    for g in spec.groups:
        frame[g] = np.asarray(data[g]).astype(np.int64)[real]
    return frame


def shape_of(spec: ModelSpec, setting: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """``(rows, clusters, smallest size, largest size)`` of a condition's data sets."""
    if not spec.groups:
        n = int(setting["N"])
        return n, 1, n, n
    j, m = int(setting["J"]), float(setting["cluster_size"])
    s = float(setting.get("structure", {}).get("design", {}).get("size_spread", 0.0))
    low, high = max(1, round(m * (1 - s))), max(1, round(m * (1 + s)))
    return j * high, j, low, high


def _cov(sd_pairs: list[list[float]]) -> jax.Array:
    return jnp.asarray(sd_pairs, dtype=float)


def block_covariance(block, values: Mapping[str, float]) -> list[list[float]]:
    """A covariance block's matrix from population values (lower triangle given by name)."""
    k = len(block.members)
    cov = [[0.0] * k for _ in range(k)]
    for i, p in enumerate(block.variances):
        cov[i][i] = values[p.name]
    it = iter(block.covariances)
    for i in range(1, k):
        for j in range(i):
            p = next(it)
            cov[i][j] = cov[j][i] = values[p.name] if p.fixed is None else p.fixed
    return cov


#: Where a non-normal variable's key folds in (the normal draws of the others stay as they were).
SHAPE_KEY = 3000


def _shapes_of(members: Any, shapes: Mapping[str, Any]) -> list[Any]:
    """Each member's distribution (None: normal) of ``model.design.distributions``."""
    return [shapes.get(m) for m in members]


def _mvn(key: jax.Array, cov: list[list[float]], n: int, shapes: Any = ()) -> jax.Array:
    """``n`` draws with covariance ``cov``: standardized innovations times its Cholesky factor.

    ``shapes``: per column a non-normal family of :mod:`.distributions` (None: normal), whose
    innovation is drawn with its own key.
    """
    k = len(cov)
    chol = jnp.linalg.cholesky(_cov(cov)) if k else jnp.zeros((0, 0))
    z = jax.random.normal(key, (n, k))
    for column, shape in enumerate(shapes):
        if shape is not None:
            own = jax.random.fold_in(key, SHAPE_KEY + column)
            z = z.at[:, column].set(distributions.draw(own, shape, (n,)))
    return z @ chol.T


#: Keys of a setting that are design, not population values.
DESIGN_KEYS = ("N", "J", "cluster_size", "missing_rate", "mechanism", "structure")


def population_of(spec: ModelSpec, setting: Mapping[str, Any]) -> dict[str, float]:
    """Population values by lavaan name from a setting (design keys set aside)."""
    return population(spec, {k: v for k, v in setting.items() if k not in DESIGN_KEYS})


def simulate(
    spec: ModelSpec,
    rng_key: jax.Array,
    setting: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    fitted: bool = False,
) -> dict:
    """Simulate one data set under ``setting``.

    ``setting``: population values, ``N`` or ``J`` and ``cluster_size``, ``missing_rate`` and
    ``mechanism``, and ``structure.design.size_spread``. ``values``: population values by
    lavaan name instead of the setting's (e.g. drawn from the prior). ``fitted``: simulate an
    incomplete exogenous predictor from the model a fit gives it (its nuisance equation,
    whose parameters ``values`` then holds), not from the exogenous moments.
    """
    values = population_of(spec, setting) if values is None else values
    rows, j, low, high = shape_of(spec, setting)
    k_size, k_re, k_exo, _k_lat, k_eq, k_mis = jax.random.split(rng_key, 6)
    if spec.groups:
        sizes = jax.random.randint(k_size, (j,), low, high + 1)
        cluster = jnp.repeat(jnp.arange(j), high)
        position = jnp.tile(jnp.arange(high), j)
        real = position < sizes[cluster]
    else:
        cluster = jnp.zeros(rows, dtype=jnp.int32)
        real = jnp.ones(rows, dtype=bool)
    current: dict[str, jax.Array] = {}
    shapes = setting.get("structure", {}).get("design", {}).get("distributions", {})
    re_keys = jax.random.split(k_re, max(1, len(spec.blocks)))
    for key, block in zip(re_keys, spec.blocks, strict=False):
        cov = block_covariance(block, values)
        if block.level is None:
            draws = _mvn(key, cov, rows, _shapes_of(block.members, shapes))
        else:
            draws = _mvn(key, cov, j, _shapes_of(block.members, shapes))[cluster]
        for i, m in enumerate(block.members):
            current[m] = draws[:, i]
    for index, nom in enumerate(spec.nominal):
        current |= nominal_draw(nom, jax.random.fold_in(rng_key, NOMINAL_KEY + index), values, rows)
    exo = list(spec.simulated_exogenous if not fitted else spec.exogenous)
    if exo:
        moments = {p.name: values[p.name] for p in spec.exogenous_moments}
        named = {covariance_pair(p.name): p.name for p in spec.exogenous_moments}
        cov = [[0.0] * len(exo) for _ in exo]
        for a, va in enumerate(exo):
            for b, vb in enumerate(exo):
                if a == b:
                    cov[a][a] = moments[f"{va}~~{va}"]
                else:
                    name = named.get(frozenset((va, vb)))
                    cov[a][b] = moments[name] if name else 0.0
        draws = _mvn(k_exo, cov, rows, _shapes_of(exo, shapes))
        for a, v in enumerate(exo):
            current[v] = moments[f"{v}~1"] + draws[:, a]
    eq_noise = jax.random.normal(k_eq, (rows, max(1, len(spec.equations))))
    ordered = {o.name: o for o in spec.ordered}
    responses: dict[str, jax.Array] = {}  # ordered variables' latent responses
    simulated_exo = set(spec.simulated_exogenous)
    for i, eq in enumerate(spec.order()):
        if eq.target in simulated_exo and not fitted:
            continue  # an incomplete exogenous predictor: simulated above, modelled in fits
        mean = jnp.zeros(rows)
        drivers = {**current, **responses}  # an ordered predictor enters as its response
        for c in eq.coefficients:
            coef = values[c.parameter.name] if c.parameter.fixed is None else c.parameter.fixed
            mean = mean + coef * _product(drivers, c.factors, rows)
        for r in eq.random:
            mean = mean + current[r.effect] * _product(drivers, r.factors, rows)
        sd = jnp.sqrt(values[eq.variance.name] if eq.variance.fixed is None else eq.variance.fixed)
        noise = eq_noise[:, i]
        if eq.target in shapes:  # a non-normal residual, standardized (its own key)
            key = jax.random.fold_in(k_eq, SHAPE_KEY + i)
            noise = distributions.draw(key, shapes[eq.target], (rows,))
        if eq.target in ordered and ordered[eq.target].link == "logit":  # the same draw, logistic
            tail = jax.scipy.special.ndtr(-jnp.abs(noise))  # the accurate side in float32
            noise = -jnp.sign(noise) * jax.scipy.special.logit(tail)
        current[eq.target] = mean + sd * noise
        if eq.target in ordered:  # the category of the latent response, which children read
            responses[eq.target] = current[eq.target]
            current[eq.target] = ordered_category(current[eq.target], ordered[eq.target], values)
    data = {ROW_REAL: real}
    if spec.groups:
        data[spec.groups[0]] = cluster
        data[cluster_key(spec.groups[0])] = jnp.ones(j, dtype=bool)
    observed = [v.name for v in spec.variables if v.kind not in (LATENT, "random_effect")]
    mis_keys = jax.random.split(k_mis, max(1, len(spec.missing)))
    masks = {}
    for key, m in zip(mis_keys, spec.missing, strict=False):
        masks[m.variable] = _observed_mask(key, m, current, real, setting)
    for v in observed:
        mask = masks.get(v, jnp.ones(rows, dtype=bool)) & real
        data[v] = jnp.where(mask, current[v], 0.0)
        data[observed_key(v)] = mask
    return data


def ordered_category(ystar: jax.Array, o: Ordered, values: Mapping[str, Any]) -> jax.Array:
    """Codes 0..K-1 of latent responses ``ystar``: how many thresholds lie at or below each."""
    taus = jnp.stack(
        [jnp.asarray(values[p.name] if p.free else p.fixed, dtype=float) for p in o.thresholds()]
    )
    return (ystar[:, None] >= taus[None, :]).sum(-1).astype(ystar.dtype)


#: Where a nominal predictor's key folds in (other models' keys stay as they were).
NOMINAL_KEY = 1000


def nominal_draw(
    nom: Nominal, key: jax.Array, values: Mapping[str, Any], rows: int
) -> dict[str, jax.Array]:
    """Codes 1..K of a nominal predictor with probabilities ``P(d=k)``, and its dummies."""
    probs = jnp.asarray([values[p.name] for p in nom.probabilities()], dtype=float)
    log_p = jnp.log(jnp.concatenate([1.0 - probs.sum(keepdims=True), probs]))
    codes = (1 + jax.random.categorical(key, log_p, shape=(rows,))).astype(float)
    return {nom.name: codes, **nom.dummy_values(codes)}


def _product(current: Mapping[str, jax.Array], factors: tuple[str, ...], rows: int) -> jax.Array:
    out = jnp.ones(rows)
    for f in factors:
        out = out * current[f]
    return out


def _observed_mask(key, m, current, real, setting) -> jax.Array:
    """The observed mask of one variable under MCAR or MAR.

    MCAR: missing with probability ``missing_rate``; MAR: a probit selection on the
    standardised sum of ``m.given`` of strength ``m.strength`` (expected rate ``missing_rate``).
    """
    rate = float(setting["missing_rate"])
    rows = real.shape[0]
    k_u, k_v = jax.random.split(key)
    if setting.get("mechanism", "MCAR") == "MAR" and m.given:
        score = sum(current[v] for v in m.given)
        w = real.astype(float)
        mean = (score * w).sum() / w.sum()
        sd = jnp.sqrt((((score - mean) ** 2) * w).sum() / w.sum())
        s = m.strength
        r = s * (score - mean) / sd + math.sqrt(1 - s**2) * jax.random.normal(k_v, (rows,))
        missing = r > jax.scipy.stats.norm.ppf(1.0 - rate)
    else:
        missing = jax.random.uniform(k_u, (rows,)) < rate
    return ~missing
