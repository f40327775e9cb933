"""Performance tables in the shape methodologists publish, each figure with its MCSE.

Per estimand: one row per condition × estimator with the truth, bias, proportional bias with
its 95% limits, coverage, empirical and model SE, RMSE and the RMSE ratio against the
reference estimator; MCMC efficiency (ESS, ESS per second and their ratios); and per condition
× estimator the fit time, failures and convergence. Tables are capped at ``max_rows`` rows and
say so: every row is in ``summary.parquet``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from simstudy.aggregate.tables import Z95, wide_table
from simstudy.report.ademp import estimator_order, mcmc_estimators, reference_of, varying
from simstudy.report.document import Block, Heading, Paragraph, Table

DASH = "–"
MAX_ROWS = 200
_THRESHOLDS = re.compile(r"R-hat > ([0-9.eE+-]+) or bulk ESS < ([0-9.eE+-]+)")


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def value_mcse(value: float, mcse: float = math.nan, digits: int = 3) -> str:
    """``value (MCSE)``; the value alone when there is no MCSE, a dash when no value."""
    if value is None or pd.isna(value):
        return DASH
    if mcse is None or pd.isna(mcse):
        return _num(value, digits)
    return f"{_num(value, digits)} ({_num(mcse, digits)})"


def with_limits(value: float, mcse: float, scale: float = 100.0, digits: int = 1) -> str:
    """``value [LCL, UCL]`` with the 95% limits value ± 1.96·MCSE (scaled, e.g. to %)."""
    if value is None or pd.isna(value):
        return DASH
    text = _num(value * scale, digits)
    if mcse is None or pd.isna(mcse):
        return text
    lo, hi = (value - Z95 * mcse) * scale, (value + Z95 * mcse) * scale
    return f"{text} [{_num(lo, digits)}, {_num(hi, digits)}]"


def thresholds(summary: pd.DataFrame, default: tuple[float, float] = (1.01, 400.0)):
    """``(rhat_max, ess_min)`` the summary's ``unconverged_rate`` was computed with."""
    notes = summary.loc[summary["measure"] == "unconverged_rate", "note"]
    for note in notes:
        m = _THRESHOLDS.search(str(note))
        if m:
            return float(m.group(1)), float(m.group(2))
    return default


def wide(summary: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Value, MCSE and counts of every measure as columns ``(field, measure)``.

    Rows: design factors, ``condition_id``, ``estimator``, ``parameter`` (as the index).
    """
    keys = [*factors, "condition_id", "estimator", "parameter"]
    return (
        summary.drop_duplicates([*keys, "measure"])
        .set_index([*keys, "measure"])[["value", "mcse", "n_reps", "n_excluded"]]
        .unstack("measure")
    )


def _get(row: dict, field: str, measure: str) -> float:
    return row.get((field, measure), math.nan)


def _ordered(frame: pd.DataFrame, factors: Sequence[str], estimators: Sequence[str]):
    """Rows of a wide frame sorted by condition (factor values), then the estimator order."""
    rank = {e: i for i, e in enumerate(estimators)}
    index = frame.index.to_frame(index=False)
    index["_rank"] = index["estimator"].map(rank).fillna(len(rank))
    order = index.sort_values([*factors, "condition_id", "_rank"], kind="stable").index
    return frame.iloc[order]


def _capped(
    caption: str,
    columns: list[str],
    rows: list[list[str]],
    max_rows: int,
    numeric: set[str],
    note: str = "",
) -> Table:
    """A table without all-dash columns, at most ``max_rows`` rows (the note saying so)."""
    keep = [i for i, c in enumerate(columns) if c in numeric and any(r[i] != DASH for r in rows)]
    keep = sorted(set(keep) | {i for i, c in enumerate(columns) if c not in numeric})
    cols = [columns[i] for i in keep]
    body = [tuple(r[i] for i in keep) for r in rows]
    notes = [note] if note else []
    if len(body) > max_rows:
        notes.append(
            f"Showing the first {max_rows} of {len(body)} rows; every row is in summary.parquet."
        )
        body = body[:max_rows]
    return Table(caption, tuple(cols), tuple(body), " ".join(notes), frozenset(numeric) & set(cols))


def _factor_cells(index: tuple, names: Sequence[str], vary: Sequence[str]) -> list[str]:
    values = dict(zip(names, index, strict=True))
    return [_level(values[f]) for f in vary]


def _level(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def constant_factors(summary: pd.DataFrame, factors: Sequence[str]) -> str:
    """``N = 100, mechanism = MAR`` for the factors with one level (shown once, not per row)."""
    one = [f for f in factors if summary[f].nunique(dropna=False) == 1]
    return ", ".join(f"{f} = {_level(summary[f].iloc[0])}" for f in one)


def performance_tables(
    summary: pd.DataFrame,
    factors: Sequence[str],
    truth: pd.DataFrame | None = None,
    estimators: Sequence[str] | None = None,
    max_rows: int = MAX_ROWS,
) -> list[Block]:
    """Per estimand: accuracy (bias, coverage, SEs, RMSE) and MCMC efficiency tables."""
    vary = varying(summary, factors)
    estimators = list(estimators or estimator_order(summary, None))
    ref = reference_of(summary)
    mcmc = set(mcmc_estimators(summary))
    w = _ordered(wide(summary, factors), factors, estimators)
    names = list(w.index.names)
    truths: dict[tuple[str, str, str], float] = {}
    if truth is not None:
        truths = {
            (r.condition_id, r.estimator, r.parameter): r.truth
            for r in truth.itertuples(index=False)
        }
    fixed = constant_factors(summary, factors)
    where = f" ({fixed})" if fixed else ""
    blocks: list[Block] = []
    for parameter in dict.fromkeys(summary["parameter"]):
        part = w[w.index.get_level_values("parameter") == parameter]
        acc, eff = [], []
        for index, row in zip(part.index, part.to_dict("records"), strict=True):
            values = dict(zip(names, index, strict=True))
            est = values["estimator"]
            head = [*_factor_cells(index, names, vary), est + (" (ref.)" if est == ref else "")]
            t = truths.get((values["condition_id"], est, parameter), math.nan)
            n = _get(row, "n_reps", "bias")
            ratio = (
                "ref."
                if est == ref
                else value_mcse(_get(row, "value", "rmse_ratio"), _get(row, "mcse", "rmse_ratio"))
            )
            acc.append(
                [
                    *head,
                    DASH if pd.isna(t) else f"{t:.4g}",
                    _cell(row, "bias"),
                    with_limits(_get(row, "value", "rel_bias"), _get(row, "mcse", "rel_bias")),
                    _cell(row, "coverage"),
                    _cell(row, "empse"),
                    _cell(row, "modelse"),
                    _cell(row, "rmse"),
                    ratio,
                    DASH if pd.isna(n) else str(int(n)),
                ]
            )
            if est in mcmc:
                eff.append(
                    [
                        *head,
                        _cell(row, "ess_bulk", 0),
                        value_mcse(_get(row, "value", "ess_bulk_min"), digits=0),
                        _cell(row, "ess_per_second", 1),
                        "ref." if est == ref else _cell(row, "ess_ratio", 2),
                        "ref." if est == ref else _cell(row, "ess_per_second_ratio", 2),
                        value_mcse(_get(row, "value", "rhat_max")),
                    ]
                )
        cols = [*vary, "estimator"]
        acc_cols = [
            "truth",
            "bias (MCSE)",
            "prop. bias % [95% limits]",
            "coverage (MCSE)",
            "EmpSE (MCSE)",
            "ModSE (MCSE)",
            "RMSE (MCSE)",
            "RMSE ratio (MCSE)",
            "n",
        ]
        blocks.append(Heading(3, f"Estimand {parameter}"))
        blocks.append(
            _capped(
                f"{parameter}: bias, coverage and precision{where}",
                [*cols, *acc_cols],
                acc,
                max_rows,
                set(acc_cols),
                f"Ratios against {ref}, paired by replication." if ref else "",
            )
        )
        if eff:
            eff_cols = [
                "ESS bulk (MCSE)",
                "ESS bulk min",
                "ESS/s (MCSE)",
                "ESS ratio (MCSE)",
                "ESS/s ratio (MCSE)",
                "max R-hat",
            ]
            blocks.append(
                _capped(
                    f"{parameter}: MCMC efficiency{where}",
                    [*cols, *eff_cols],
                    eff,
                    max_rows,
                    set(eff_cols),
                )
            )
    return blocks


def _cell(row: dict, measure: str, digits: int = 3) -> str:
    return value_mcse(_get(row, "value", measure), _get(row, "mcse", measure), digits)


def fit_table(
    summary: pd.DataFrame,
    factors: Sequence[str],
    fits: pd.DataFrame | None = None,
    estimators: Sequence[str] | None = None,
    max_rows: int = MAX_ROWS,
) -> Table:
    """Per condition × estimator: time per replication, failures, exclusions, convergence.

    ``fits`` (:attr:`~.records.Digest.fits`) adds why fits did not converge: how many had
    R-hat above, bulk ESS below the thresholds, or a divergent transition.
    """
    vary = varying(summary, factors)
    estimators = list(estimators or estimator_order(summary, None))
    rhat_max, ess_min = thresholds(summary)
    group = [*factors, "condition_id", "estimator"]
    s = summary
    per = pd.DataFrame(
        {
            "seconds": _by(s, "seconds", "value", "first", group),
            "seconds_mcse": _by(s, "seconds", "mcse", "first", group),
            "fail": _by(s, "failure_rate", "value", "first", group),
            "fail_mcse": _by(s, "failure_rate", "mcse", "first", group),
            "n_all": _by(s, "failure_rate", "n_reps", "first", group),
            "excluded": _by(s, "bias", "n_excluded", "max", group),
            "unconv": _by(s, "unconverged_rate", "value", "first", group),
            "unconv_n": _by(s, "unconverged_rate", "n_reps", "first", group),
            "rhat": _by(s, "rhat_max", "value", "max", group),
            "ess": _by(s, "ess_bulk_min", "value", "min", group),
        }
    )
    reasons = _reasons(fits, rhat_max, ess_min) if fits is not None else None
    per = _ordered(per, factors, estimators)
    names = list(per.index.names)
    rows = []
    for index, r in per.iterrows():
        values = dict(zip(names, index, strict=True))
        k_fail = 0 if pd.isna(r["fail"]) else round(r["fail"] * r["n_all"])
        unconv = DASH
        if not pd.isna(r["unconv"]) and r["unconv_n"] > 0:
            k = round(r["unconv"] * r["unconv_n"])
            unconv = f"{k}/{int(r['unconv_n'])}"
        why = DASH
        if reasons is not None:
            key = (values["condition_id"], values["estimator"])
            why = reasons.get(key, DASH)
        rows.append(
            [
                *_factor_cells(index, names, vary),
                values["estimator"],
                value_mcse(r["seconds"], r["seconds_mcse"], 4),
                DASH
                if pd.isna(r["fail"])
                else f"{k_fail}/{int(r['n_all'])}: {value_mcse(r['fail'], r['fail_mcse'])}",
                DASH if pd.isna(r["excluded"]) else str(int(r["excluded"])),
                unconv,
                why,
                value_mcse(r["rhat"]),
                value_mcse(r["ess"], digits=0),
            ]
        )
    cols = [
        "time per rep, s (MCSE)",
        "failed (rate, MCSE)",
        "excluded by policy",
        "not converged",
        "why not converged",
        "max R-hat",
        "min bulk ESS",
    ]
    return _capped(
        "Fit time, failures, exclusions and convergence per condition × estimator",
        [*vary, "estimator", *cols],
        rows,
        max_rows,
        set(cols) - {"why not converged"},
        f"A fit (one replication × estimator, all its estimands) is not converged when some "
        f"R-hat > {rhat_max:g} or bulk ESS < {ess_min:g}; 'excluded' counts the fits the "
        "convergence policy left out of the measures.",
    )


def _by(s: pd.DataFrame, measure: str, field: str, how: str, group: list[str]) -> pd.Series:
    part = s[s["measure"] == measure]
    return part.groupby(group, sort=False, dropna=False)[field].agg(how)


def _reasons(fits: pd.DataFrame, rhat_max: float, ess_min: float) -> dict[tuple[str, str], str]:
    ok = fits[~fits["failed"]]
    mcmc = ok[ok["rhat"].notna() | ok["ess"].notna()]
    out = {}
    flags = mcmc.assign(
        r=(mcmc["rhat"] > rhat_max), e=(mcmc["ess"] < ess_min), d=mcmc["divergent"].astype(bool)
    )
    for (cond, est), g in flags.groupby(["condition_id", "estimator"], sort=False):
        parts = [
            f"R-hat > {rhat_max:g}: {int(g['r'].sum())}",
            f"ESS < {ess_min:g}: {int(g['e'].sum())}",
            f"divergent: {int(g['d'].sum())}",
        ]
        out[(str(cond), str(est))] = "; ".join(parts)
    return out


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else "(no message)"


def failure_table(fits: pd.DataFrame, max_rows: int = 20) -> Table | None:
    """Why fits failed: each error message with its fits and conditions (None: no failures)."""
    failed = fits[fits["failed"]]
    if failed.empty:
        return None
    failed = failed.assign(message=failed["error"].map(_first_line))
    g = failed.groupby(["estimator", "message"], sort=False)
    counts = g.agg(fits=("rep", "size"), conditions=("condition_id", "nunique")).reset_index()
    counts = counts.sort_values("fits", ascending=False, kind="stable")
    rows = [
        [r.estimator, r.message, str(r.fits), str(r.conditions)]
        for r in counts.itertuples(index=False)
    ]
    return _capped(
        "Why fits failed (first line of each error)",
        ["estimator", "error", "fits", "conditions"],
        rows,
        max_rows,
        {"fits", "conditions"},
    )


def sbc_table(summary: pd.DataFrame, factors: Sequence[str], max_rows: int = MAX_ROWS):
    """Simulation-based calibration (rank uniformity) as a report table, or None."""
    if not summary["measure"].astype(str).str.startswith("sbc_").any():
        return None
    t = wide_table(summary, factors, "sbc")
    if t is None:
        return None
    cols = [*t.row_names, *(f"{e}: {c.title}" for e in t.estimators for c in t.columns)]
    rows = [[*names, *cells] for names, cells in zip(t.rows, t.cells, strict=True)]
    return _capped(t.title, cols, rows, max_rows, set(cols) - set(t.row_names))


def convergence_summary(summary: pd.DataFrame, fits: pd.DataFrame | None) -> Paragraph:
    """One paragraph: how many fits failed, did not converge, were excluded, and the thresholds."""
    rhat_max, ess_min = thresholds(summary)
    excluded = int(
        summary[summary["measure"] == "bias"]
        .groupby(["condition_id", "estimator"])["n_excluded"]
        .max()
        .sum()
    )
    if fits is None:
        fail = summary[summary["measure"] == "failure_rate"].drop_duplicates(
            ["condition_id", "estimator"]
        )
        n_fail = int((fail["value"] * fail["n_reps"]).round().sum())
        return Paragraph(
            f"{n_fail} failed fits, {excluded} excluded by the convergence policy "
            "(no replication records read: no per-fit diagnostics)."
        )
    n, n_fail = len(fits), int(fits["failed"].sum())
    ok = fits[~fits["failed"]]
    mcmc = ok[ok["rhat"].notna() | ok["ess"].notna()]
    bad = (mcmc["rhat"] > rhat_max) | (mcmc["ess"] < ess_min)
    text = (
        f"{n} fits (replication × estimator): {n_fail} failed, {int(bad.sum())} of "
        f"{len(mcmc)} MCMC fits not converged (some R-hat > {rhat_max:g} or bulk ESS < "
        f"{ess_min:g}), {excluded} excluded from the measures by the convergence policy."
    )
    if int(bad.sum()) and not excluded:
        text += (
            " Measures that include unconverged fits are not to be trusted: raise "
            "sampler.warmup and sampler.draws, or summarise converged fits only "
            "(simstudy aggregate DIR --policy converged)."
        )
    return Paragraph(text)
