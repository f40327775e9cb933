"""Has a condition enough replications? A precision target's check on its records."""

from __future__ import annotations

from typing import Any

import pandas as pd

from simstudy.aggregate.policy import ConvergencePolicy


def target_reached(
    records: pd.DataFrame,
    target: Any,
    reference: str | None = None,
    policy: ConvergencePolicy | None = None,
) -> tuple[bool, str]:
    """Whether one condition's records reach ``target`` (a :class:`PrecisionTarget`), and why.

    The target is reached when the condition has at least ``target.min_reps`` replications
    and the MCSE of ``target.measure`` is at most ``target.mcse`` for every chosen estimand
    and estimator (all, when none are named). Returns ``(reached, sentence)``; the sentence
    names the largest MCSE and the replications it is based on either way.
    """
    from simstudy.aggregate import summarise

    n = int(records["rep"].nunique()) if len(records) else 0
    if n < target.min_reps:
        return False, f"{n} reps, fewer than target.min_reps={target.min_reps}"
    # only the targeted rows (and the reference a comparison needs) are summarised: the check
    # runs after every batch; a policy that drops whole fits needs all of a fit's parameters
    if records.empty:
        return False, f"no {target.measure} MCSE yet after {n} reps"
    reference = reference or str(records["estimator"].iloc[0])
    if target.parameters and (policy is None or policy.kind == "all"):
        records = records[records["parameter"].isin(target.parameters)]
    if target.estimators:
        records = records[records["estimator"].isin([*target.estimators, reference])]
    summary = summarise(records, reference, policy)
    rows = summary[summary["measure"] == target.measure]
    if target.parameters:
        rows = rows[rows["parameter"].isin(target.parameters)]
    if target.estimators:
        rows = rows[rows["estimator"].isin(target.estimators)]
    if rows.empty or rows["mcse"].isna().all():
        return False, f"no {target.measure} MCSE yet after {n} reps"
    worst = rows.loc[rows["mcse"].idxmax()] if rows["mcse"].notna().all() else None
    if worst is None:  # some MCSE undefined (e.g. a zero variance): not yet
        return False, f"a {target.measure} MCSE is undefined after {n} reps"
    where = f"{worst['estimator']} {worst['parameter']}"
    if worst["mcse"] <= target.mcse:
        return True, (
            f"{target.measure} MCSE at most {worst['mcse']:.4g} ({where}) <= "
            f"{target.mcse:g} after {n} reps"
        )
    return False, (
        f"{target.measure} MCSE {worst['mcse']:.4g} ({where}) > {target.mcse:g} after {n} reps"
    )
