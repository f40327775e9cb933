"""Paired comparisons of each estimator with a reference estimator, replication by replication.

Only replications in which both estimators succeeded (and were kept by the convergence policy)
enter a comparison. Ratios of means get delta-method MCSEs (first-order Taylor expansion, using
the paired covariance); the relative precision uses the correlation of the paired estimates, as
in Morris et al. (2019, Table 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from simstudy.aggregate.measures import Measures


def _moments(frame: pd.DataFrame, by: Sequence[str], x: str, y: str) -> pd.DataFrame:
    g = frame.assign(_xy=frame[x] * frame[y], _x2=frame[x] ** 2, _y2=frame[y] ** 2).groupby(
        list(by), dropna=False, sort=True
    )
    s = g[[x, y, "_xy", "_x2", "_y2"]].sum()
    n = g.size()
    out = pd.DataFrame({"n": n, "mx": s[x] / n, "my": s[y] / n})
    out["vx"] = (s["_x2"] - n * out["mx"] ** 2) / (n - 1)
    out["vy"] = (s["_y2"] - n * out["my"] ** 2) / (n - 1)
    out["cxy"] = (s["_xy"] - n * out["mx"] * out["my"]) / (n - 1)
    return out


def ratio_of_means(m: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``mean(y) / mean(x)`` and its delta-method MCSE from paired moments."""
    r = m["my"] / m["mx"]
    var = (m["vy"] - 2 * r * m["cxy"] + r**2 * m["vx"]) / (m["n"] * m["mx"] ** 2)
    return r, np.sqrt(var.clip(lower=0))


def comparisons(
    records: pd.DataFrame, used: pd.Series, keys: Sequence[str], out: Measures, reference: str
) -> None:
    """Add ``rmse_ratio``, ``rel_precision``, ``ess_ratio`` and ``ess_per_second_ratio``.

    Parameters
    ----------
    records
        Prepared records.
    used
        Rows that enter the measures (successful and kept by the policy).
    keys
        Group keys; ``estimator`` among them.
    out
        Where the measures go (rows of the compared estimator, ``reference`` set).
    reference
        The estimator compared against.
    """
    pair_keys = [k for k in keys if k != "estimator"]
    frame = records.loc[
        used, [*pair_keys, "rep", "estimator", "estimate", "truth", "ess_bulk", "seconds"]
    ]
    frame = frame.assign(
        sq=(frame["estimate"] - frame["truth"]) ** 2, ess_ps=frame["ess_bulk"] / frame["seconds"]
    )
    ref = frame[frame["estimator"] == reference].drop(columns="estimator")
    if ref.empty:
        return
    for name in sorted(set(frame["estimator"]) - {reference}):
        other = frame[frame["estimator"] == name].drop(columns="estimator")
        both = other.merge(ref, on=[*pair_keys, "rep"], suffixes=("", "_ref"))
        if both.empty:
            continue
        # RMSE ratio: sqrt of a ratio of mean squared errors, delta method.
        m = _moments(both, pair_keys, "sq_ref", "sq")
        r, se = ratio_of_means(m)
        index = _index(m.index, name, keys)
        rmse_ratio = np.sqrt(r)
        out.add(
            "rmse_ratio",
            _on(rmse_ratio, index),
            _on(se / (2 * rmse_ratio), index),
            n=_on(m["n"], index),
            reference=reference,
            only=index,
        )
        # Relative % increase in precision of this estimator over the reference.
        m = _moments(both, pair_keys, "estimate_ref", "estimate")
        ratio = m["vx"] / m["vy"]
        rho2 = m["cxy"] ** 2 / (m["vx"] * m["vy"])
        out.add(
            "rel_precision",
            _on(100 * (ratio - 1), index),
            _on(200 * ratio * np.sqrt((1 - rho2).clip(lower=0) / (m["n"] - 1)), index),
            n=_on(m["n"], index),
            reference=reference,
            only=index,
        )
        for measure, col in (("ess_ratio", "ess_bulk"), ("ess_per_second_ratio", "ess_ps")):
            pairs = both.dropna(subset=[col, f"{col}_ref"])
            if pairs.empty:
                continue
            m = _moments(pairs, pair_keys, f"{col}_ref", col)
            r, se = ratio_of_means(m)
            index = _index(m.index, name, keys)
            out.add(
                measure,
                _on(r, index),
                _on(se, index),
                n=_on(m["n"], index),
                reference=reference,
                only=index,
            )


def _index(pair_index: pd.Index, estimator: str, keys: Sequence[str]) -> pd.MultiIndex:
    frame = pair_index.to_frame(index=False)
    frame["estimator"] = estimator
    return pd.MultiIndex.from_frame(frame[list(keys)])


def _on(values: pd.Series, index: pd.MultiIndex) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=index)
