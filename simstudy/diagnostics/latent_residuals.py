"""Residuals of the latent interaction model's structural regression, from imputed latent scores.

The seeds' check for a missing latent interaction: draw M imputations of the latent scores
from the posterior of the model's Gibbs sweep (states of its chains, spread over the chains
and the run as ``fs_imputation`` spreads them), fit the structural regression of ``eta_y`` by
OLS to each imputation without and with the product of its predictors, and plot, per person,
the residual against the predicted value, both averaged over the imputations, with binned
means. A model without the product, on data with an interaction, shows curvature (and a fan);
the model with it does not.

Curvature statistic: in each imputation the residuals are regressed (OLS) on the standardised
predicted value ``z`` and ``z²``; the coefficient of ``z²`` (in units of ``eta_y``) and its OLS
variance are pooled over the imputations by Rubin's rules. With jointly normal ``eta_x`` and
``eta_m``, the no-product model's linear predictor ``f`` and ``eta_y = ... + b3 eta_x eta_m``,
``E[eta_x eta_m | f]`` is quadratic in ``f``: the coefficient is about ``b3 Cov(eta_x, f)
Cov(eta_m, f) / Var(f)`` (0.33 at the seeds' slopes 0.3 and ``a1 = 0.3`` with ``b3 = 0.5``);
with the product it is about 0.

The model is one in the syntax (``ModelSettings.kind == "spec"``), checked on its compiled
Gibbs chain: the regression is its structural equation with a product of two variables
(``y ~ x + m + x:m`` plus any further single terms), the scores are that equation's variables
in the sweep's states (:func:`spec_score_imputations`), drawn from the chain
``fs_imputation`` analyses (else the first ``gibbs`` estimator's); :func:`imputer_of` says why
another model cannot be checked.

Pieces, each usable alone: :func:`spec_score_imputations` (the sweep's states, as an array),
:func:`residual_diagnostics` (numpy and pandas only), :func:`residual_figure` (matplotlib's
object API, two panels), :func:`write_diagnostics` (PNG, PDF, Parquet) and
:func:`diagnose_replication` (all of them for one replication of a study:
``simstudy diagnose``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure as MplFigure

from simstudy.config import SamplerSettings, StudyPlan
from simstudy.contract import GibbsEstimator
from simstudy.design import condition_id, rep_seed
from simstudy.engine import gibbs
from simstudy.engine.replicate import (
    compiled_simulate,
    estimator_key,
    key_from_seed,
    setting_of,
    simulate_key,
)
from simstudy.models import family_of
from simstudy.spec import analyses, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec import info as spec_info
from simstudy.spec.dgm import ROW_REAL
from simstudy.spec.ir import ModelSpec

__all__ = [
    "MODELS",
    "Imputer",
    "Interaction",
    "ResidualDiagnostics",
    "binned_means",
    "diagnose_replication",
    "imputer_of",
    "interaction_of",
    "residual_diagnostics",
    "residual_figure",
    "spec_score_imputations",
    "write_diagnostics",
]

#: The two structural models: without and with the product of the predictors.
MODELS = ("linear", "product")
#: Metadata key of the Parquet file :func:`write_diagnostics` writes.
METADATA_KEY = b"simstudy.residuals"


def recorded_states(
    estimator: GibbsEstimator,
    dataset: Mapping[str, Any],
    rng_key: jax.Array,
    sampler: SamplerSettings,
    priors: Mapping[str, float],
    imputations: int,
    record: Any,
) -> Any:
    """``record(state, data)`` of M states of the chains, leading axis M (chains first).

    ``ceil(M / chains)`` states per chain, evenly over its sampling run, as an
    :class:`~simstudy.contract.ImputationEstimator` takes them.

    Raises
    ------
    ValueError
        When M < 2 or more states per chain are asked for than ``sampler.draws`` sweeps.
    """
    if imputations < 2:
        raise ValueError(f"at least 2 imputations are needed, got {imputations}")
    per_chain = -(-imputations // sampler.chains)
    if per_chain > sampler.draws:
        raise ValueError(
            f"{imputations} imputations over {sampler.chains} chains take {per_chain} states "
            f"per chain, more than the {sampler.draws} sampling sweeps (sampler.draws)"
        )
    data = {k: jnp.asarray(v) for k, v in dataset.items()}
    compiled = gibbs.compile_fit(
        estimator, sampler, priors, data, record=record, n_record=per_chain, draws=False
    )
    out = compiled(rng_key, data)  # leaves (chains, per_chain, ...)
    return jax.tree.map(lambda v: np.asarray(v).reshape(-1, *v.shape[2:])[:imputations], out)


@dataclass(frozen=True)
class Interaction:
    """A spec model's structural equation ``y ~ x + m + x:m (+ covariates)``, by variable.

    ``product``: the lavaan name of the product's coefficient.
    """

    x: str
    m: str
    y: str
    covariates: tuple[str, ...]
    product: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The score columns, in the order :func:`residual_diagnostics` reads them."""
        return (self.x, self.m, self.y, *self.covariates)


def interaction_of(spec: ModelSpec) -> Interaction | None:
    """The first structural equation with one product of two variables (None without one)."""
    for eq in analyses.structural(spec):
        products = [c for c in eq.coefficients if len(c.factors) == 2]
        if len(products) != 1 or any(len(c.factors) > 2 for c in eq.coefficients):
            continue
        x, m = products[0].factors
        singles = [c.factors[0] for c in eq.coefficients if len(c.factors) == 1]
        covariates = tuple(v for v in singles if v not in (x, m))
        return Interaction(x, m, eq.target, covariates, products[0].parameter.name)
    return None


def spec_score_imputations(
    estimator: GibbsEstimator,
    spec: ModelSpec,
    columns: Sequence[str],
    dataset: Mapping[str, Any],
    rng_key: jax.Array,
    sampler: SamplerSettings,
    priors: Mapping[str, float],
    imputations: int,
) -> np.ndarray:
    """M states of a spec model's compiled Gibbs chain as scores ``(M, N, k)`` of ``columns``.

    Each variable's per-row value in the state (a latent score, an imputed value where missing,
    data where observed), the states ``fs_imputation`` analyses (same key, same M). Real rows
    only.
    """
    lay = sweep.layout(spec)

    def record(state: Any, data: Mapping[str, Any]) -> jax.Array:
        values, _ = analyses.state_values(spec, lay, state, data)
        return jnp.stack([values[c] for c in columns], axis=-1)

    out = recorded_states(estimator, dataset, rng_key, sampler, priors, imputations, record)
    real = np.asarray(dataset[ROW_REAL], dtype=bool)
    return np.asarray(out, dtype=float)[:, real, :]


def _gibbs_chain(structure: Mapping[str, Any]) -> str | None:
    """The gibbs estimator whose states are imputed: ``fs_imputation``'s, else the first one."""
    mapping = kinds.mapping_of(structure)
    for entry in mapping.values():
        if entry["kind"] == "fs_imputation":
            return str(entry["of"])
    whole = [n for n, e in mapping.items() if e["kind"] == "gibbs" and not e["complete_cases"]]
    return whole[0] if whole else None


@dataclass(frozen=True)
class Imputer:
    """Where a study's latent scores come from.

    ``sampler``: the Gibbs estimator whose states are imputed (its key is the study's);
    ``columns``: the score columns; ``product``: the interaction's parameter name;
    ``scores``: ``(estimator, dataset, key, sampler settings, priors, M) -> (M, N, k)``.
    """

    sampler: str
    columns: tuple[str, ...]
    product: str
    scores: Any


def _spec_imputer(plan: StudyPlan) -> Imputer | str:
    spec = spec_info.spec_of(plan.model.structure)
    found = interaction_of(spec)
    if found is None:
        return (
            "a model with a latent interaction: a structural equation with a product of two "
            "variables (y ~ x + m + x:m)"
        )
    chain = _gibbs_chain(plan.model.structure)
    if chain is None:
        return (
            "a model with a gibbs estimator (not on complete cases) under model.estimators: "
            "its chain's states are the imputed scores"
        )

    def scores(estimator, dataset, key, sampler, priors, imputations):
        return spec_score_imputations(
            estimator, spec, found.columns, dataset, key, sampler, priors, imputations
        )

    return Imputer(chain, found.columns, found.product, scores)


#: How latent scores are imputed, by the model's kind (``ModelSettings.kind``).
IMPUTERS = {"spec": _spec_imputer}


def imputer_of(plan: StudyPlan) -> Imputer | str:
    """How ``plan``'s latent scores are imputed, or why they cannot be (a sentence)."""
    imputer = IMPUTERS.get(plan.model.kind)
    if imputer is None:
        return (
            "a model in the syntax with a latent interaction: the hand-written families have no "
            "imputation of latent scores"
        )
    return imputer(plan)


@dataclass(frozen=True)
class ResidualDiagnostics:
    """What :func:`residual_diagnostics` computes.

    ``persons``: one row per model and person: ``model``, ``person``, ``predicted`` and
    ``residual`` (means over the imputations), ``predicted_sd`` and ``residual_sd`` (their
    SDs over the imputations). ``models``: one row per model: ``model``, ``formula``, ``r2``
    (mean over the imputations), ``curvature`` (Rubin-pooled coefficient of z²),
    ``curvature_se``, ``curvature_lower``, ``curvature_upper`` (interval at ``level``),
    ``imputations``, ``persons``.
    """

    persons: pd.DataFrame
    models: pd.DataFrame


def _ols(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched OLS over the leading axis: coefficients, residuals, coefficient covariances."""
    xtx = np.einsum("mnp,mnq->mpq", design, design)
    beta = np.linalg.solve(xtx, np.einsum("mnp,mn->mp", design, target)[..., None])[..., 0]
    resid = target - np.einsum("mnp,mp->mn", design, beta)
    dof = design.shape[1] - design.shape[2]
    s2 = (resid**2).sum(axis=1) / dof
    return beta, resid, s2[:, None, None] * np.linalg.inv(xtx)


def _formula(columns: Sequence[str], product: bool) -> str:
    x, m, y = columns[0], columns[1], columns[2]
    terms = [x, m] + ([f"{x}:{m}"] if product else []) + list(columns[3:])
    return f"{y} ~ " + " + ".join(terms)


def residual_diagnostics(
    scores: np.ndarray, columns: Sequence[str] | None = None, level: float = 0.95
) -> ResidualDiagnostics:
    """Structural regressions without and with the product term on each imputation.

    ``scores``: ``(M, N, k)`` imputed scores, columns ``eta_x``, moderator, ``eta_y`` and any
    further covariates (entering both models), as :func:`spec_score_imputations` returns
    them. Each imputation is fitted by OLS with an intercept; per person the predicted values
    and residuals are averaged over the imputations; R² is averaged, the curvature statistic
    (module docstring) pooled by Rubin's rules.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 3 or scores.shape[2] < 3:
        raise ValueError(f"scores must be (M, N, k >= 3), got shape {scores.shape}")
    n_imp, n, k = scores.shape
    if n_imp < 2:
        raise ValueError(f"at least 2 imputations are needed, got {n_imp}")
    columns = tuple(columns or ("eta_x", "eta_m", "eta_y", *(f"c{j}" for j in range(3, k))))
    x, m, y = scores[..., 0], scores[..., 1], scores[..., 2]
    ones = np.ones_like(x)
    covariates = [scores[..., j] for j in range(3, k)]
    persons, models = [], []
    for model in MODELS:
        terms = [ones, x, m] + ([x * m] if model == "product" else []) + covariates
        design = np.stack(terms, axis=2)
        if n <= design.shape[2] + 3:
            raise ValueError(f"{n} persons are too few for {design.shape[2]} coefficients")
        _, resid, _ = _ols(design, y)
        fitted = y - resid
        sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        r2 = 1 - (resid**2).sum(axis=1) / sst
        sd = fitted.std(axis=1, ddof=1, keepdims=True)
        z = (fitted - fitted.mean(axis=1, keepdims=True)) / sd
        curve, _, cov = _ols(np.stack([ones, z, z**2], axis=2), resid)
        pooled = gibbs.rubin(curve[:, 2], cov[:, 2, 2], level)
        persons.append(
            pd.DataFrame(
                {
                    "model": model,
                    "person": np.arange(n),
                    "predicted": fitted.mean(axis=0),
                    "residual": resid.mean(axis=0),
                    "predicted_sd": fitted.std(axis=0, ddof=1),
                    "residual_sd": resid.std(axis=0, ddof=1),
                }
            )
        )
        models.append(
            {
                "model": model,
                "formula": _formula(columns, model == "product"),
                "r2": float(r2.mean()),
                "curvature": pooled.estimate,
                "curvature_se": pooled.se,
                "curvature_lower": pooled.lower,
                "curvature_upper": pooled.upper,
                "imputations": n_imp,
                "persons": n,
            }
        )
    return ResidualDiagnostics(pd.concat(persons, ignore_index=True), pd.DataFrame(models))


def binned_means(predicted: np.ndarray, residual: np.ndarray, bins: int) -> pd.DataFrame:
    """Mean residual (and its SE) in ``bins`` bins of equal counts of the predicted values."""
    predicted, residual = np.asarray(predicted, float), np.asarray(residual, float)
    order = np.argsort(predicted, kind="stable")
    rows = []
    for part in np.array_split(order, max(1, min(bins, predicted.size))):
        r = residual[part]
        se = r.std(ddof=1) / np.sqrt(r.size) if r.size > 1 else np.nan
        rows.append({"predicted": predicted[part].mean(), "residual": r.mean(), "se": se})
    return pd.DataFrame(rows)


_TITLES = {"linear": "without the product term", "product": "with the product term"}


def residual_figure(diagnostics: ResidualDiagnostics, title: str = "") -> MplFigure:
    """Two panels, without and with the product term: residual against predicted value.

    Each point is a person (both values averaged over the imputations); the line joins the
    mean residuals of bins of equal counts (about 25 persons each, 5 to 20 bins), ±2 SE.
    """
    width, height = 10.0, 4.3
    fig = MplFigure(figsize=(width, height))
    axes = fig.subplots(1, 2, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.78 if title else 0.84)
    stats = diagnostics.models.set_index("model")
    for ax, model in zip(axes, MODELS, strict=True):
        rows = diagnostics.persons[diagnostics.persons["model"] == model]
        s = stats.loc[model]
        ax.scatter(
            rows["predicted"], rows["residual"], s=7, alpha=0.35, color="#4477aa", linewidths=0
        )
        bins = int(np.clip(len(rows) // 25, 5, 20))
        means = binned_means(rows["predicted"].to_numpy(), rows["residual"].to_numpy(), bins)
        ax.errorbar(
            means["predicted"],
            means["residual"],
            yerr=2 * means["se"],
            color="#cc3311",
            marker="o",
            ms=3.5,
            lw=1.6,
            capsize=2,
        )
        ax.axhline(0.0, color="0.3", lw=1, ls="--")
        ax.set_title(
            f"{_TITLES[model]}: {s['formula']}\nR² = {s['r2']:.3f}; curvature "
            f"{s['curvature']:+.3f} (SE {s['curvature_se']:.3f})",
            fontsize=9.5,
        )
        ax.set_xlabel(f"predicted value (mean over {int(s['imputations'])} imputations)")
    axes[0].set_ylabel("residual (mean over imputations)")
    if title:
        fig.suptitle(title, fontsize=10.5)
    return fig


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_diagnostics(
    diagnostics: ResidualDiagnostics,
    directory: Path,
    stem: str,
    title: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> tuple[Path, Path, Path]:
    """Write ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.parquet`` under ``directory``.

    The Parquet file holds :attr:`ResidualDiagnostics.persons` with the model columns joined
    on (each row repeats its model's R² and curvature), ``metadata`` as JSON in its schema
    metadata (``simstudy.residuals``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, pdf, parquet = (directory / f"{stem}{s}" for s in (".png", ".pdf", ".parquet"))
    table = diagnostics.persons.merge(diagnostics.models, on="model", how="left")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    text = json.dumps(metadata or {}, default=str)
    meta = {**(arrow.schema.metadata or {}), METADATA_KEY: text.encode()}
    arrow = arrow.replace_schema_metadata(meta)
    _atomic(parquet, lambda p: pq.write_table(arrow, p))
    fig = residual_figure(diagnostics, title)
    _atomic(png, lambda p: fig.savefig(p, format="png", dpi=100, metadata={"Software": None}))
    _atomic(pdf, lambda p: fig.savefig(p, format="pdf", metadata={"CreationDate": None}))
    return png, pdf, parquet


def read_diagnostics(path: Path) -> tuple[ResidualDiagnostics, dict[str, Any]]:
    """A Parquet file of :func:`write_diagnostics` back: the diagnostics and its metadata."""
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    frame = table.to_pandas()
    person_cols = ["model", "person", "predicted", "residual", "predicted_sd", "residual_sd"]
    models = frame.drop(columns=person_cols[1:]).drop_duplicates("model").reset_index(drop=True)
    return ResidualDiagnostics(frame[person_cols], models), meta


@dataclass(frozen=True)
class Diagnosed:
    """What :func:`diagnose_replication` wrote and computed."""

    paths: tuple[Path, Path, Path]
    diagnostics: ResidualDiagnostics
    metadata: dict[str, Any]
    seconds: float


def diagnose_replication(
    plan: StudyPlan,
    condition: Mapping[str, Any],
    rep: int,
    imputations: int,
    directory: Path,
) -> Diagnosed:
    """Residual diagnostics of replication ``rep`` of ``condition``, written under ``directory``.

    The data set is the replication's (same seed, same numbers as the study's); the scores are
    states of the Gibbs estimator :func:`imputer_of` names with the key the study's fit of it
    has, on the study's sampler settings (with ``sampler.vectorize`` the study's program fitted
    several replications at once, which can change the last bits). Files:
    ``residuals-<condition>-<rep>.png``, ``.pdf``, ``.parquet``.
    """
    started = time.perf_counter()
    imputer = imputer_of(plan)
    if isinstance(imputer, str):
        raise ValueError(f"model {plan.model.name}: diagnostics need {imputer}")
    family = family_of(plan.model)
    cid = condition_id(condition)
    setting = setting_of(plan, condition)
    seed = rep_seed(plan.seed, cid, rep)
    key = key_from_seed(seed)
    truth: dict[str, float] = {}
    if plan.kind == "sbc":
        dataset, truth = family.simulate_prior(simulate_key(key), setting, plan.model.priors)
    else:
        dataset = compiled_simulate(family, setting)(simulate_key(key))
        truth = family.truth(setting)
    estimator = family.estimators_for(plan.model.structure)[imputer.sampler]
    sampler = plan.sampler_of(imputer.sampler)
    scores = imputer.scores(
        estimator,
        dataset,
        estimator_key(key, imputer.sampler),
        sampler,
        plan.model.priors,
        imputations,
    )
    columns = imputer.columns
    diagnostics = residual_diagnostics(scores, columns, plan.level)
    product = imputer.product
    metadata = {
        "study": plan.name,
        "condition_id": cid,
        "condition": {k: condition[k] for k in condition},
        "rep": rep,
        "seed": seed,
        "imputations": imputations,
        "sampler": imputer.sampler,
        "sampler_settings": {
            "chains": sampler.chains,
            "warmup": sampler.warmup,
            "draws": sampler.draws,
        },
        "level": plan.level,
        "true_interaction": truth.get(product),
    }
    levels = ", ".join(f"{k}={v}" for k, v in condition.items())
    known = metadata["true_interaction"] is not None
    true_b3 = f"; true {product} = {truth[product]:g}" if known else ""
    title = f"{plan.name}, condition {cid} ({levels}), rep {rep}{true_b3}"
    paths = write_diagnostics(diagnostics, directory, f"residuals-{cid}-{rep}", title, metadata)
    return Diagnosed(paths, diagnostics, metadata, time.perf_counter() - started)
