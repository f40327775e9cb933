"""Whether a study's fits failed: counts per estimator, and the conditions that failed.

A run whose fits failed must say so, whatever its early-stop rule did: a condition with no
successful fit of an estimator, or more failed fits than ``max_failure_rate``, fails the run.
"""

from __future__ import annotations

import pandas as pd


def failure_report(failures: pd.DataFrame, max_failure_rate: float) -> tuple[list[str], list[str]]:
    """Lines for the end of a run, and why each failing condition fails it.

    Parameters
    ----------
    failures
        ``condition_id``, ``estimator``, ``fits``, ``failed`` (see
        :func:`simstudy.store.fit_failures`).
    max_failure_rate
        Largest tolerated share of failed fits of a condition (all its estimators).

    Returns
    -------
    (list of str, list of str)
        One line per estimator with failed fits (``"bayes_cc: 3 of 40 fits failed (7.5%)"``);
        one line per condition that fails the run, with the reason.
    """
    lines, failing = [], []
    if failures.empty:
        return lines, failing
    per_estimator = failures.groupby("estimator", sort=False)[["fits", "failed"]].sum()
    for name, row in per_estimator.iterrows():
        if row["failed"]:
            share = row["failed"] / row["fits"]
            lines.append(f"{name}: {row['failed']} of {row['fits']} fits failed ({share:.1%})")
    for cid, rows in failures.groupby("condition_id", sort=False):
        dead = rows.loc[rows["failed"] == rows["fits"], "estimator"].tolist()
        share = rows["failed"].sum() / rows["fits"].sum()
        if dead:
            failing.append(f"condition {cid}: no successful fit of {', '.join(dead)}")
        elif share > max_failure_rate:
            failing.append(
                f"condition {cid}: {rows['failed'].sum()} of {rows['fits'].sum()} fits failed, "
                f"more than study.max_failure_rate={max_failure_rate:g}"
            )
    return lines, failing
