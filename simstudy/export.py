"""A replication's data set and posterior draws as files other programs read.

``simstudy simulate`` writes the data sets of a study as a table (CSV or Parquet, as Mplus's
REPSAVE does), ``simstudy replay --save`` a replication's data set and the posterior draws of
its MCMC estimators as ArviZ InferenceData (NetCDF). The data are the study's own: simulated
by :func:`simstudy.engine.replicate._simulate`, the seed path every replication takes, and the
draws come from the program the study fitted them with (:func:`replication_draws`).

A data set is written in the columns the model's ``from_frame`` reads (``simstudy fit``): a
masked value is NaN (an empty CSV cell), ordinal items and the nominal predictor are codes
``1..K``, a two-level model's padding rows are left out and its cluster column holds the
cluster's index. Reading the table back with ``from_frame`` gives the data set again (float32
values are written with the digits that read back to the same float32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.errors import InputError

#: The columns every written data set starts with.
KEY_COLUMNS = ("condition_id", "rep", "seed")

#: The formats a data set is written in, by the output file's suffix.
SUFFIXES = (".csv", ".parquet")


def _spec(dataset: Mapping[str, Any], structure: Mapping[str, Any]) -> pd.DataFrame:
    from simstudy.spec.dgm import dataset_table
    from simstudy.spec.info import spec_of

    return dataset_table(dataset, spec_of(structure))


#: Table writers of hand-written families by name (none left: every model is a spec).
_WRITERS: dict[str, Any] = {}


def dataset_frame(model: Any, dataset: Mapping[str, Any]) -> pd.DataFrame:
    """A simulated data set as the table ``simstudy fit`` reads (the model's ``from_frame``).

    ``model`` is the plan's model section (:class:`~simstudy.config.ModelSettings`).
    """
    structure = model.structure
    if model.kind == "spec":
        return _spec(dataset, structure)
    writer = _WRITERS.get(model.name)
    if writer is None:
        raise InputError(
            "model",
            model.name,
            "a model whose data sets simstudy can write as a table: "
            + ", ".join([*_WRITERS, "models declared in the syntax"]),
        )
    return writer(dataset, structure)


def keyed_frame(model: Any, dataset: Mapping[str, Any], base: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`dataset_frame` after the columns ``condition_id``, ``rep``, ``seed`` of ``base``."""
    frame = dataset_frame(model, dataset)
    clash = [c for c in KEY_COLUMNS if c in frame.columns]
    if clash:
        raise InputError(
            "model variables",
            ", ".join(clash),
            "variables not named " + ", ".join(KEY_COLUMNS) + " (the columns that say which "
            "replication a row belongs to)",
        )
    keys = pd.DataFrame(
        {
            "condition_id": pd.Series([base["condition_id"]] * len(frame), dtype=object),
            "rep": np.full(len(frame), int(base["rep"]), dtype=np.int64),
            "seed": np.full(len(frame), int(base["seed"]), dtype=np.int64),
        }
    )
    return pd.concat([keys, frame.reset_index(drop=True)], axis=1)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV or Parquet by ``path``'s suffix (missing values: empty, null)."""
    path = Path(path)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)  # float32 columns print their shortest exact digits
    else:
        frame.to_parquet(path, index=False)


def replication_draws(plan: Any, rep: Any) -> dict[str, Any]:
    """Posterior draws of each MCMC estimator of one simulated replication, by estimator.

    ``rep`` is what :func:`~simstudy.engine.replicate._simulate` returns for it. The draws
    come from the program the study fitted the estimator with (:func:`replicate.run_batch`):
    batched with ``sampler.vectorize`` (its lane padded), shared with an imputation
    estimator of the same chains, or alone. Closed-form and imputation estimators have none.
    """
    from simstudy.config import BATCHED_SAMPLERS
    from simstudy.engine import gibbs
    from simstudy.engine import replicate as r
    from simstudy.engine.dispatch import chain_name, kind_of
    from simstudy.models import family_of

    available = family_of(plan.model).estimators_for(plan.model.structure)
    priors = plan.model.priors
    sbc = plan.kind == "sbc"
    if sbc:  # every estimator on its own, unbatched (replicate._sbc_records)
        units: Sequence[tuple[str, str | None]] = [(n, None) for n in plan.estimators]
    else:
        units = r.fitting_units(plan)
    out: dict[str, Any] = {}
    for name, partner in units:
        estimator = available[name]
        kind = kind_of(estimator)
        if kind.draws is None:
            continue
        key = r.estimator_key(rep.key, chain_name(estimator))
        sampler = r.sampler_for(plan, name)
        width = 1 if sbc else sampler.vectorize
        data, draws = rep.dataset, None
        try:
            if partner:
                lanes = width if width > 1 else None
                run = gibbs.prepare_imputation_batch(
                    available[partner], [data], sampler, priors, lanes, True
                )
                draws = run([key])[0][0]
            elif width > 1 and sampler.name in BATCHED_SAMPLERS:
                draws, _ = kind.draws(estimator, data, key, sampler, priors, width)
        except Exception:  # the study fitted such a replication on its own too (run_batch)
            draws = None
        if draws is None:
            draws, _ = kind.draws(estimator, data, key, sampler, priors)
        out[name] = draws
    return out


def inference_data(
    draws: Any, frame: pd.DataFrame | None = None, attrs: Mapping[str, Any] | None = None
) -> Any:
    """ArviZ InferenceData: ``posterior`` (chain × draw per estimand), ``observed_data``.

    ``draws`` is a :class:`~simstudy.engine.nuts.Draws`; ``frame`` the data set's table (its
    columns besides ``condition_id``, ``rep``, ``seed`` become ``observed_data``, one ``row``
    dimension, NaN where missing); ``attrs`` go on every group.
    """
    import warnings

    import arviz as az

    posterior = {name: np.asarray(value) for name, value in draws.draws.items()}
    observed = None
    if frame is not None:
        observed = {
            c: frame[c].to_numpy(dtype=float, na_value=np.nan)
            if isinstance(frame[c].dtype, pd.Int64Dtype)
            else frame[c].to_numpy()
            for c in frame.columns
            if c not in KEY_COLUMNS
        }
    with warnings.catch_warnings():  # e.g. more chains than draws: the study's settings
        warnings.simplefilter("ignore")
        idata = az.from_dict(
            posterior=posterior,
            observed_data=observed,
            dims={c: ["row"] for c in observed or {}},
        )
    info = {k: v if isinstance(v, int | float | str) else str(v) for k, v in (attrs or {}).items()}
    info["n_divergent"] = int(draws.n_divergent)
    for group in idata.groups():
        idata[group].attrs.update(info)
    return idata
