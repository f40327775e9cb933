"""The two benchmark models in one place: settings, data, estimand names, derived quantities.

Every comparator fits the same estimation model with the same priors:

``latent_interaction`` (simstudy's spec config conf/model/latent_interaction.yaml, its compiled
sweep and simulator, N = 500, no missing data): three factors with three indicators each, first loading of each
factor 1, all nine indicator intercepts free; ``eta_x ~ N(0, phi_x)``,
``eta_m = a1 eta_x + zeta_m`` (``Var = psi_m``),
``eta_y = b1 eta_x + b2 eta_m + b3 eta_x eta_m + zeta_y`` (``Var = psi_y``), structural
intercepts 0. Priors: intercepts, loadings and slopes ~ Normal(0, 10); ``phi_x``, ``psi_m``,
``psi_y`` and the nine residual variances ~ InverseGamma(2, 0.5). Latent scores are parameters
(centred: drawn from their structural equations).

``cfa_ordinal`` (simstudy's spec config conf/model/cfa_ordinal.yaml, its compiled sweep and
simulator, N = 1000, 20 % MAR missing): three factors × five 5-category items, probit link, theta
parameterisation (item intercept 0, residual variance 1), marker loadings 1, four free ordered
thresholds per item, factor covariance ``diag(sd) R diag(sd)``. Priors: free loadings
~ Normal(0, 10); thresholds ~ Normal(0, 10) restricted to increase; ``R ~ LKJ(1)``; factor
variances ~ InverseGamma(2, 0.5). The likelihood is marginal over the latent responses
(ordered probit), latent factor scores (N × 3, centred) are parameters; missing responses are
left out of the likelihood. Reported estimands are the completely standardized solution
(lavaan ``std.all``), as simstudy's :func:`simstudy.spec.standardized.std_all` computes them.

Comparators return the raw parameters under the names documented in :func:`derive` and this
module turns them into the estimands.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"
MODELS = ("latent_interaction", "cfa_ordinal")

#: NUTS settings of every NUTS comparator.
CHAINS = 2
WARMUP = 1000
DRAWS = 1000

# latent_interaction layout (conf/model/latent_interaction.yaml): items by factor, marker first.
LI_ITEMS = ("x1", "x2", "x3", "m1", "m2", "m3", "y1", "y2", "y3")
LI_FACTORS = ("eta_x", "eta_m", "eta_y")
LI_STRUCTURAL = ("eta_m~eta_x", "eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m")
LI_FACTOR_OF = np.repeat(np.arange(3), 3)
LI_MARKER = np.array([j % 3 == 0 for j in range(9)])
LI_FREE = np.flatnonzero(~LI_MARKER)  # indicators with a free loading


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model.

    Attributes
    ----------
    name
        Benchmark model name.
    family
        simstudy model: a spec config's name (:func:`family`).
    setting
        DGM setting passed to the family's ``simulate``.
    priors
        simstudy prior settings (from the model yaml).
    structure
        Normalised structure of the spec config.
    parameters
        Every reported estimand, in simstudy's order.
    structural
        The structural estimands (a subset of ``parameters``).
    items, factors
        Indicator and factor names.
    """

    name: str
    family: str
    setting: dict[str, Any]
    priors: dict[str, Any]
    structure: dict[str, Any]
    parameters: tuple[str, ...]
    structural: tuple[str, ...]
    items: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        """Number of indicators."""
        return 9 if self.name == "latent_interaction" else len(self.layout["items"])

    @functools.cached_property
    def layout(self) -> dict[str, Any]:
        """Indicator layout of the cfa model: items, factor of each item, markers, categories."""
        if "ordered" not in self.structure:  # not the cfa
            return {}
        factors, items = _measurement(self.structure, by_item=True)
        factor_of = np.array([factors.index(f) for f in items.values()])
        marker = np.r_[True, factor_of[1:] != factor_of[:-1]]  # items by factor, marker first
        categories = set(self.structure["ordered"].values())
        if len(categories) != 1:
            raise ValueError("the comparators implement one number of categories for every item")
        return {
            "factors": list(factors),
            "items": list(items),
            "factor_of": factor_of,
            "marker": marker,
            "free": np.flatnonzero(~marker),
            "categories": int(categories.pop()),
        }


def _yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONF / f"{name}.yaml").read_text())


_SPECS: dict[str, ModelSpec] = {}


def register(model: ModelSpec) -> None:
    """Use ``model`` for its name from now on (workers get their spec from the harness, so that
    samplers without JAX never import simstudy, whose import starts JAX's thread pool)."""
    _SPECS[model.name] = model


def spec(name: str) -> ModelSpec:
    """The benchmark model ``name`` (``latent_interaction`` or ``cfa_ordinal``)."""
    if name not in _SPECS:
        _SPECS[name] = _make_spec(name)
    return _SPECS[name]


def _make_spec(name: str) -> ModelSpec:
    if name == "latent_interaction":
        from simstudy.cli import compose_raw
        from simstudy.config import plan_from_dict
        from simstudy.engine.replicate import setting_of
        from simstudy.models import family_of, model_infos

        plan = plan_from_dict(compose_raw(["study=latent_interaction"]), model_infos())
        setting = setting_of(plan, {"N": 500, "missing_rate": 0.0, "mechanism": "MCAR"})
        bayes = family_of(plan.model).estimators_for(plan.model.structure)["bayes"]
        # the estimands the comparators' models have: all but the indicator intercepts
        parameters = tuple(p for p in bayes.parameters if not p.endswith("~1"))
        return ModelSpec(
            name=name,
            family=plan.model.name,
            setting=setting,
            priors=dict(plan.model.priors),
            structure=dict(plan.model.structure),
            parameters=parameters,
            structural=LI_STRUCTURAL,
            items=LI_ITEMS,
            factors=LI_FACTORS,
        )
    if name == "cfa_ordinal":
        from simstudy.cli import compose_raw
        from simstudy.config import plan_from_dict
        from simstudy.engine.replicate import setting_of
        from simstudy.models import family_of, model_infos

        plan = plan_from_dict(compose_raw(["study=cfa_ordinal"]), model_infos())
        structure = dict(plan.model.structure)
        if structure.get("link", "probit") != "probit" or structure.get("report") != "std.all":
            raise ValueError("the comparators implement the probit, std.all cfa_ordinal only")
        factors, items = _measurement(structure)
        if set(structure.get("ordered", {})) != set(items):
            raise ValueError("the comparators implement all-ordinal cfa_ordinal only")
        setting = setting_of(plan, {"N": 1000, "missing_rate": 0.2, "mechanism": "MAR"})
        bayes = family_of(plan.model).estimators_for(structure)["bayes"]
        parameters = tuple(bayes.parameters)
        structural = tuple(
            p
            for p in parameters
            if "=~" in p or ("~~" in p and p.split("~~")[0] != p.split("~~")[1])
        )
        return ModelSpec(
            name=name,
            family=plan.model.name,
            setting=setting,
            priors=dict(plan.model.priors),
            structure=structure,
            parameters=parameters,
            structural=structural,
            items=items,
            factors=factors,
        )
    raise ValueError(f"unknown benchmark model {name!r}; known: {', '.join(MODELS)}")


def _measurement(structure: dict[str, Any], by_item: bool = False) -> tuple[tuple[str, ...], Any]:
    """Factors and their indicators (by factor, marker first) of a spec measurement model.

    ``by_item``: the indicators as a mapping to their factor.
    """
    from simstudy.spec.info import spec_of

    spec = spec_of(structure)
    (block,) = [b for b in spec.blocks if b.level is None]
    loads = {e.target: c.factors[0] for e in spec.equations for c in e.coefficients if c.factors}
    items = {x: f for f in block.members for x in loads if loads[x] == f}
    return tuple(block.members), (items if by_item else tuple(items))


def family(s: ModelSpec) -> Any:
    """The simstudy family of ``s``: its spec config's compiled one."""
    from simstudy.spec.family import family as spec_family

    return spec_family(s.family, s.structure)


def simulate(name: str, seed: int) -> dict[str, np.ndarray]:
    """One data set from simstudy's own simulator, as NumPy arrays (every key it returns).

    ``y`` is N × p (0 where missing; category codes 0..K-1 for ordinal items), ``observed`` the
    N × p mask (built from a spec's per-variable columns). Data are simulated once per (model,
    rep) in the harness and handed to every sampler, so all samplers fit the very same data
    sets.
    """
    import jax

    s = spec(name)
    data = family(s).simulate(jax.random.key(seed), s.setting)
    out = {k: np.asarray(v) for k, v in data.items()}
    if "y" not in out:  # a spec's data: one column per indicator
        out["observed"] = np.stack([out[f"observed:{v}"] for v in s.items], 1)
        out["y"] = np.where(out["observed"], np.stack([out[v] for v in s.items], 1), 0.0)
    return out


def long_format(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Observed cells as (row, col, value), sorted by column then row (0-based indices).

    Also ``start``/``stop`` (p,): the slice of each column's cells (for per-item loops).
    """
    observed = np.asarray(data["observed"], bool)
    col, row = np.nonzero(observed.T)  # column-major: grouped by indicator
    value = np.asarray(data["y"], float)[row, col]
    counts = observed.sum(0)
    stop = np.cumsum(counts)
    return {"row": row, "col": col, "value": value, "start": stop - counts, "stop": stop}


# --- derived estimands ----------------------------------------------------------------------


def derive(name: str, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Estimands (chains, draws) from raw parameter draws (chains, draws, ...).

    ``latent_interaction`` raw names: ``a1``, ``b`` (3: eta_x, eta_m, eta_x*eta_m), ``phi_x``,
    ``psi_m``, ``psi_y``, ``lam`` (9, markers 1), ``theta`` (9 residual variances).

    ``cfa_ordinal`` raw names: ``lam`` (p, markers 1), ``tau`` (p, K-1 thresholds),
    ``var_f`` (k factor variances), ``corr`` (k, k factor correlation matrix).
    """
    raw = {k: np.asarray(v, float) for k, v in raw.items()}
    s = spec(name)
    if name == "latent_interaction":
        a1, b, lam, theta = raw["a1"], raw["b"], raw["lam"], raw["theta"]
        sd_m = np.sqrt(a1**2 * raw["phi_x"] + raw["psi_m"])  # as the spec's slope_lo, slope_hi
        out = {
            "eta_m~eta_x": a1,
            "eta_y~eta_x": b[..., 0],
            "eta_y~eta_m": b[..., 1],
            "eta_y~eta_x:eta_m": b[..., 2],
            "slope_lo": b[..., 0] - b[..., 2] * sd_m,
            "slope_hi": b[..., 0] + b[..., 2] * sd_m,
            "eta_x~~eta_x": raw["phi_x"],
            "eta_m~~eta_m": raw["psi_m"],
            "eta_y~~eta_y": raw["psi_y"],
        }
        for j, item in enumerate(s.items):
            if not LI_MARKER[j]:
                out[f"{s.factors[LI_FACTOR_OF[j]]}=~{item}"] = lam[..., j]
            out[f"{item}~~{item}"] = theta[..., j]
        return {p: out[p] for p in s.parameters}
    lay = s.layout
    fo = lay["factor_of"]
    lam, tau, var_f, corr = raw["lam"], raw["tau"], raw["var_f"], raw["corr"]
    sd_f = np.sqrt(var_f)
    # SD of each latent response (residual variance 1 under probit), as std.all's.
    sd_y = np.sqrt(lam**2 * var_f[..., fo] + 1.0)
    out = {}
    for j, (item, f) in enumerate(zip(lay["items"], fo, strict=True)):
        out[f"{lay['factors'][f]}=~{item}"] = lam[..., j] * sd_f[..., f] / sd_y[..., j]
        for c in range(lay["categories"] - 1):
            out[f"{item}|t{c + 1}"] = tau[..., j, c] / sd_y[..., j]
    k = len(lay["factors"])
    for a in range(k):
        for b_ in range(a + 1, k):
            out[f"{lay['factors'][a]}~~{lay['factors'][b_]}"] = corr[..., a, b_]
    return {p: out[p] for p in s.parameters}


def start_thresholds(data: dict[str, np.ndarray], categories: int) -> np.ndarray:
    """Probit quantiles of the observed cumulative proportions, increasing (p × (K-1)).

    Only used where a comparator needs an explicit ordered initial value for the thresholds
    (PyMC's ordered transform needs one); samplers otherwise start from their defaults.
    """
    from scipy.special import ndtri

    y, obs = np.asarray(data["y"]), np.asarray(data["observed"], bool)
    levels = np.arange(categories - 1)
    below = ((y[:, :, None] <= levels) & obs[:, :, None]).sum(0) / np.maximum(obs.sum(0), 1)[
        :, None
    ]
    tau = ndtri(np.clip(below, 0.02, 0.98))
    return np.maximum.accumulate(tau, axis=1) + 0.05 * levels
