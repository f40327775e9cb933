"""``simstudy check ESTIMATOR``: whether an estimator keeps the contract, before a study runs it.

The study's first condition is simulated twice (replications 0 and 1, the seeds a study
would use) and the estimator fits each, the first twice with the same key. It passes when
every fit returns exactly its declared estimands, finite estimates and standard errors
(``se >= 0``, ``lower <= upper``), the same numbers for the same data and key, and other
numbers for other data. Any estimator can be checked (a built-in one too); it is meant for
one's own (:mod:`simstudy.usercode`). Prints nothing: :func:`check_estimator` returns the fits
and the problems, the CLI prints them.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Sequence
from typing import Any

import pandas as pd

from simstudy.usercode import UserCodeError

#: The replications a check simulates (the second tells whether the estimator reads its data).
REPS = (0, 1)


def _fit(plan: Any, estimator: Any, rep: Any) -> dict[str, Any]:
    from simstudy.engine.dispatch import chain_name
    from simstudy.engine.replicate import estimator_key, fit_estimator

    key = estimator_key(rep.key, chain_name(estimator))
    sampler = plan.sampler_of(chain_name(estimator))
    settings = (sampler, plan.model.priors, plan.level, plan.point_estimate)
    return fit_estimator(estimator, rep.dataset, key, *settings)[0]


def _problems_of(summaries: dict[str, Any], parameters: Sequence[str], label: str) -> list[str]:
    out = []
    missing = [p for p in parameters if p not in summaries]
    extra = [p for p in summaries if p not in parameters]
    if missing or extra:
        out.append(f"{label}: estimands {sorted(summaries)}, declared {list(parameters)}")
    for name in parameters:
        s = summaries.get(name)
        if s is None:
            continue
        if not (math.isfinite(s.estimate) and math.isfinite(s.se) and s.se >= 0):
            out.append(f"{label}: {name} has estimate {s.estimate} and se {s.se}")
        elif not s.lower <= s.upper:
            out.append(f"{label}: {name}'s interval [{s.lower}, {s.upper}] is upside down")
    return out


def check_estimator(plan: Any, name: str) -> tuple[pd.DataFrame, list[str]]:
    """Fit estimator ``name`` of ``plan``'s model to two simulated data sets (module docstring).

    Returns the fits (a row per replication, run and estimand) and the problems found (empty:
    the estimator passes). What the estimator raises is a problem with its traceback, never an
    exception.
    """
    from simstudy.design import expand_grid
    from simstudy.engine.replicate import _Rep, _simulate
    from simstudy.models import family_of

    estimator = family_of(plan.model).estimators_for(plan.model.structure)[name]
    condition = expand_grid(plan.factors)[0]
    rows, problems, fits = [], [], {}
    for rep, run in [(REPS[0], 1), (REPS[0], 2), (REPS[1], 1)]:
        label = f"rep {rep}" + (" again" if run == 2 else "")
        simulated = _simulate(plan, condition, rep)
        if not isinstance(simulated, _Rep):
            return pd.DataFrame(), [f"{label}: simulating failed: {simulated[0]['error']}"]
        try:
            summaries = _fit(plan, estimator, simulated)
        except UserCodeError as exc:  # its message holds the user's own traceback
            problems.append(f"{label}: {exc}")
            continue
        except Exception as exc:
            problems.append(f"{label}: raised\n{''.join(traceback.format_exception(exc))}")
            continue
        fits[label] = summaries
        problems += _problems_of(summaries, estimator.parameters, label)
        for parameter, s in summaries.items():
            rows.append({"run": label, "parameter": parameter, **s._asdict()})
    first, again, other = (fits.get(k) for k in ("rep 0", "rep 0 again", "rep 1"))
    if first is not None and again is not None and _numbers(first) != _numbers(again):
        problems.append("rep 0 again: other numbers for the same data and key (not reproducible)")
    if first is not None and other is not None and _numbers(first) == _numbers(other):
        problems.append("rep 1: the same numbers as rep 0 for other data (does it read them?)")
    return pd.DataFrame(rows), problems


def _numbers(summaries: dict[str, Any]) -> list[tuple[float, ...]]:
    return [(s.estimate, s.se, s.lower, s.upper) for _, s in sorted(summaries.items())]
