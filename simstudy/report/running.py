"""Monte Carlo convergence: measures against the number of replications used.

The running estimate of a measure (bias, coverage) after the first ``n`` successful
replications (in replication order), with its Monte Carlo 95% interval, shows whether the
study ran enough replications: the line settles and the band narrows as ``1/√n``. Computed
from the replication records with :func:`simstudy.aggregate.measures.performance`, the same
formulas as the summary's, so the last point is the summary's value over every successful fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from simstudy.aggregate.measures import interval, performance
from simstudy.report.figures import (
    MEASURES,
    SCALE,
    Plot,
    coverage_distance,
    figure_legend,
    grid,
    paginate,
    reference_line,
    share_y,
    styles,
)
from simstudy.report.records import PanelKey

#: The measures drawn against replications.
RUNNING = ("bias", "coverage")
#: At most this many values of n a line (evenly spaced, the last always among them).
POINTS = 40


def checkpoints(total: int, points: int = POINTS) -> np.ndarray:
    """The numbers of replications ``n`` to compute a running measure at: 2 … ``total``."""
    if total < 2:
        return np.array([], dtype=int)
    return np.unique(np.linspace(2, total, min(points, total - 1)).round().astype(int))


def running_measures(
    intervals: Mapping[PanelKey, pd.DataFrame],
    measures: Sequence[str] = RUNNING,
    points: int = POINTS,
) -> pd.DataFrame:
    """Each measure after the first ``n`` successful replications, for each panel key.

    Parameters
    ----------
    intervals
        Per ``(condition_id, estimator, parameter)``: its successful replications' ``rep``,
        ``estimate``, ``se``, ``lower``, ``upper`` and ``truth``
        (:attr:`~simstudy.report.records.Digest.intervals`).
    measures, points
        Which measures (of :func:`~simstudy.aggregate.measures.performance`), at how many n.

    Returns
    -------
    pandas.DataFrame
        ``condition_id``, ``estimator``, ``parameter``, ``n``, ``measure``, ``value``,
        ``mcse`` and the Monte Carlo 95% interval ``lower``, ``upper``
        (:func:`~simstudy.aggregate.measures.interval`).
    """
    parts = []
    for (cond, est, par), rows in intervals.items():
        rows = rows.sort_values("rep", kind="stable").reset_index(drop=True)
        for n in checkpoints(len(rows), points):
            parts.append(rows.iloc[:n].assign(condition_id=cond, estimator=est, parameter=par, n=n))
    columns = ["condition_id", "estimator", "parameter", "n", "measure", "value", "mcse"]
    if not parts:
        return pd.DataFrame(columns=[*columns, "lower", "upper"])
    # ``n`` is the one column outside the record schema: performance groups by it as a factor.
    stacked = pd.concat(parts, ignore_index=True).assign(status="ok")
    with np.errstate(all="ignore"):
        out, _ = performance(stacked)
    frame = out.frame()
    frame = frame[frame["measure"].isin(measures)][columns].reset_index(drop=True)
    frame["n"] = frame["n"].astype(int)
    for measure, idx in frame.groupby("measure").groups.items():
        part = frame.loc[idx]
        lo, hi = interval(measure, part["value"], part["mcse"], part["n"])
        frame.loc[idx, "lower"], frame.loc[idx, "upper"] = lo, hi
    return frame


def running_keys(
    summary: pd.DataFrame, estimators: Sequence[str], level: float = 0.95, max_pairs: int = 4
) -> tuple[list[PanelKey], int]:
    """The keys to draw, and of how many (condition, estimand) pairs they are.

    The ``max_pairs`` (condition, estimand) pairs whose coverage is furthest from nominal (the
    largest distance over estimators, :func:`~.figures.coverage_distance`), in the summary's
    order, each with every estimator so that a panel compares them.
    """
    cov = coverage_distance(summary, level)
    distance = cov.groupby(["condition_id", "parameter"], sort=False)["distance"].max()
    top = set(distance.sort_values(ascending=False, kind="stable").index[:max_pairs])
    pairs = [p for p in distance.index if p in top]
    keys = [(cond, est, par) for cond, par in pairs for est in estimators]
    return keys, len(distance)


def running_plots(
    intervals: Mapping[PanelKey, pd.DataFrame],
    keys: Sequence[PanelKey],
    labels: Mapping[str, str],
    estimators: Sequence[str],
    level: float = 0.95,
    max_panels: int = 4,
    total: int | None = None,
) -> list[Plot]:
    """Bias and coverage against the replications used, a column per condition × estimand.

    A line per estimator with its Monte Carlo 95% band (±1.96 MCSE for bias, Wilson for
    coverage); each measure's row on one y scale; coverage with the nominal level dashed.
    """
    present = {k: intervals[k] for k in keys if k in intervals and len(intervals[k]) >= 2}
    running = running_measures(present)
    if running.empty:
        return []
    pairs = list(dict.fromkeys((c, p) for c, _, p in present))
    style = styles(estimators)
    pages, _ = paginate(pairs, max_panels, max(1, -(-len(pairs) // max_panels)))
    plots = []
    for k, page in enumerate(pages, 1):
        fig, axes = grid(len(RUNNING) * len(page), ncols=len(page), h=2.6, title_lines=2)
        rows = {m: axes[i * len(page) : (i + 1) * len(page)] for i, m in enumerate(RUNNING)}
        for measure, row in rows.items():
            scale = SCALE.get(measure, 1.0)
            for ax, (cond, par) in zip(row, page, strict=True):
                part = running[
                    (running["measure"] == measure)
                    & (running["condition_id"] == cond)
                    & (running["parameter"] == par)
                ]
                for est in estimators:
                    r = part[part["estimator"] == est]
                    if r.empty:
                        continue
                    st = style[est]
                    ax.fill_between(
                        r["n"],
                        scale * r["lower"],
                        scale * r["upper"],
                        color=st["color"],
                        alpha=0.15,
                    )
                    ax.plot(
                        r["n"],
                        scale * r["value"],
                        color=st["color"],
                        ls=st["ls"],
                        lw=1.3,
                        label=est,
                    )
                n_last = float(part["n"].max()) if len(part) else 0.0
                reference_line(ax, measure, level, n_last)
                where = labels.get(cond, cond)
                ax.set_title(f"{par}" + (f"\n{where}" if where else ""), fontsize=8)
                ax.set_ylabel(MEASURES[measure], fontsize=8)
                ax.set_xlabel("replications used", fontsize=8)
                ax.tick_params(labelsize=7)
            share_y(row)
        figure_legend(fig, estimators, {e: {**style[e], "marker": ""} for e in estimators})
        omitted = (total or len(pairs)) - len(pairs)
        caption = (
            "Monte Carlo convergence: bias and coverage after the first n successful "
            "replications, a line per estimator with its Monte Carlo 95% band (±1.96 MCSE; "
            "Wilson for coverage), over every successful fit whatever the convergence policy"
            + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
            + (
                f"; {len(pairs)} of {total} conditions × estimands, those whose coverage is "
                "furthest from nominal"
                if omitted > 0 and k == 1
                else ""
            )
            + "."
        )
        plots.append(Plot(f"running_{k}", caption, fig))
    return plots
