"""Tables people paste into papers: markdown, LaTeX and CSV (the terminal: ``terminal``).

One table per measure group; conditions (design factors × parameter) as rows, estimators as
column groups, each cell ``value (MCSE)``. Proportional bias comes with its 95% limits
(``value ± 1.96·MCSE``), as in the Blimp/Mplus comparison tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simstudy.escape import markdown_text

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Column:
    """How one measure is shown."""

    measure: str
    title: str
    scale: float = 1.0
    digits: int = 3
    mcse: bool = True


GROUPS: dict[str, tuple[str, tuple[Column, ...]]] = {
    "bias": (
        "Bias and proportional bias (%, with 95% limits)",
        (
            Column("bias", "Bias"),
            Column("rel_bias", "Prop. bias %", 100, 1),
            Column("rel_bias:lcl", "LCL", 100, 1, False),
            Column("rel_bias:ucl", "UCL", 100, 1, False),
        ),
    ),
    "precision": (
        "Empirical and model SE, RMSE",
        (
            Column("empse", "EmpSE"),
            Column("modelse", "ModSE"),
            Column("rel_error_modelse", "ModSE err %", 1, 1),
            Column("rmse", "RMSE"),
        ),
    ),
    "coverage": (
        "Coverage, bias-eliminated coverage, power and interval width",
        (
            Column("coverage", "Coverage"),
            Column("be_coverage", "BE cov."),
            Column("power", "Power"),
            Column("width", "Width"),
        ),
    ),
    "comparison": (
        "Compared with the reference estimator (paired by replication)",
        (
            Column("rmse_ratio", "RMSE ratio"),
            Column("rel_precision", "Precision +%", 1, 1),
            Column("ess_ratio", "ESS ratio", 1, 2),
        ),
    ),
    "mcmc": (
        "MCMC efficiency and convergence",
        (
            Column("ess_bulk", "ESS bulk", 1, 0),
            Column("ess_bulk_min", "min", 1, 0, False),
            Column("ess_tail", "ESS tail", 1, 0),
            Column("ess_per_second", "ESS/s", 1, 1),
            Column("rhat_fail_rate", "R̂>1.01", 1, 3),
            Column("unconverged_rate", "Not conv.", 1, 3),
            Column("divergent_rate", "Div.", 1, 3),
            Column("seconds", "Seconds", 1, 3),
        ),
    ),
    "sbc": (
        "Simulation-based calibration: uniformity of the ranks of prior draws",
        (
            Column("sbc_p_value", "p (uniform)", 1, 3, False),
            Column("sbc_rank_mean", "rank/L"),
            Column("sbc_hist", "rank histogram", 1, 0, False),
            Column("sbc_converged", "Converged", 1, 3),
        ),
    ),
    "failures": (
        "Replications used, excluded by the convergence policy, and failure rate",
        (
            Column("n_reps", "n used", 1, 0, False),
            Column("n_excluded", "n excl.", 1, 0, False),
            Column("failure_rate", "Failed", 1, 3),
        ),
    ),
}


def _cell(value: float, mcse: float, col: Column) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value * col.scale:.{col.digits}f}"
    if col.mcse and mcse is not None and not math.isnan(mcse):
        text += f" ({mcse * col.scale:.{col.digits}f})"
    return text


@dataclass(frozen=True)
class Layout:
    """How tables are cut and ordered (none of it changes a number).

    Attributes
    ----------
    levels
        Design factors' levels in design order: rows follow it (default: sorted values).
    estimators
        Estimators in the order their column groups appear (default: the reference first,
        then the summary's order); also a filter.
    parameters
        Only these estimands (default all), in this order.
    measures
        Only these measures' columns (default all).
    """

    levels: dict[str, Sequence[Any]] | None = None
    estimators: Sequence[str] | None = None
    parameters: Sequence[str] | None = None
    measures: Sequence[str] | None = None


def _filtered(summary: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    out = summary
    if layout.estimators is not None:
        out = out[out["estimator"].isin(layout.estimators)]
    if layout.parameters is not None:
        out = out[out["parameter"].isin(layout.parameters)]
    return out


def _row_order(
    rows: list[tuple[Any, ...]], factors: Sequence[str], layout: Layout
) -> list[tuple[Any, ...]]:
    """Rows in design order: by each factor's level position, then the estimand order."""
    levels = layout.levels or {}
    params = list(layout.parameters or dict.fromkeys(r[len(factors)] for r in rows))

    def position(values: Sequence[Any], value: Any) -> tuple[int, Any]:
        values = list(values)
        if value in values:
            return (values.index(value), "")
        return (len(values), str(value))

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        parts = []
        for f, v in zip(factors, row, strict=False):
            parts.append(position(levels[f], v) if f in levels else (0, _sortable(v)))
        parts.append(position(params, row[len(factors)]))
        return tuple(parts)

    return sorted(rows, key=key)


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return (0, value)
    return (1, str(value))


@dataclass(frozen=True)
class WideTable:
    """A measure group laid out for printing."""

    title: str
    row_names: list[str]
    rows: list[list[str]]
    estimators: list[str]
    columns: list[Column]
    cells: list[list[str]]


def wide_table(
    summary: pd.DataFrame,
    factors: Sequence[str],
    group: str,
    layout: Layout | None = None,
    spec: tuple[str, tuple[Column, ...]] | None = None,
) -> WideTable | None:
    """Lay out one measure group; None when the summary has none of its measures.

    Rows are conditions × estimand in design order with the estimand's population value
    (``Population``, measure ``truth``), column groups the estimators (see :class:`Layout`).
    ``spec``: a title and columns other than those of ``GROUPS[group]``.
    """
    layout = layout or Layout()
    title, columns = spec or GROUPS[group]
    if layout.measures is not None:
        columns = tuple(c for c in columns if c.measure.split(":")[0] in layout.measures)
        if not columns:
            return None
    truths = _truths(summary, factors)
    summary = _filtered(summary, layout)
    measures = {c.measure.split(":")[0] for c in columns} - {"n_reps", "n_excluded"}
    if group == "failures":
        measures = {"failure_rate", "bias"}
    if group == "sbc":
        measures = {m for m in summary["measure"].unique() if m.startswith("sbc_")}
    part = summary[summary["measure"].isin(measures)]
    if part.empty or part["value"].notna().sum() == 0:
        return None
    keys = [*factors, "parameter"]
    # The reference estimator first, then the others in the summary's order.
    refs = [r for r in summary["reference"].dropna().unique() if r]
    estimators = list(
        dict.fromkeys([*(r for r in refs if r in set(summary["estimator"])), *part["estimator"]])
    )
    estimators = [e for e in estimators if e in set(part["estimator"])]
    if layout.estimators is not None:
        estimators = [e for e in layout.estimators if e in set(estimators)]
    # One wide frame: rows are conditions × parameter, columns (field, estimator, measure).
    wide = (
        part.drop_duplicates([*keys, "estimator", "measure"])
        .set_index([*keys, "estimator", "measure"])[["value", "mcse", "n_reps", "n_excluded"]]
        .unstack(["estimator", "measure"])
    )
    order = list(dict.fromkeys(tuple(r) for r in part[keys].itertuples(index=False, name=None)))
    order = _row_order(order, factors, layout)
    wide = wide.reindex(
        pd.MultiIndex.from_tuples(order, names=keys) if len(keys) > 1 else [o[0] for o in order]
    )
    available = set(wide.columns)
    cells = []
    for _, row in wide.iterrows():
        line = []
        for est in estimators:
            for col in columns:
                line.append(_wide_cell(row, available, est, col))
        cells.append(line)
    row_keys = [idx if isinstance(idx, tuple) else (idx,) for idx in wide.index]
    if all(c == "–" for line in cells for c in line):
        return None
    if group == "comparison":
        refs = sorted({r for r in part["reference"] if r})
        title += f" ({', '.join(refs)})" if refs else ""
    if group == "sbc":
        notes = part.loc[part["measure"] == "sbc_converged", "note"]
        title += f"; Converged: share of fits at {notes.iloc[0]}" if len(notes) else ""
    return WideTable(
        title,
        [*keys, "Population"],
        [[*(str(v) for v in rk), _number(truths.get(tuple(rk)))] for rk in row_keys],
        estimators,
        list(columns),
        cells,
    )


def _truths(summary: pd.DataFrame, factors: Sequence[str]) -> dict[tuple[Any, ...], float]:
    """Population value per (factors..., parameter), from the ``truth`` measure."""
    part = summary[summary["measure"] == "truth"]
    keys = [*factors, "parameter"]
    return {
        tuple(row[:-1]): row[-1]
        for row in part[[*keys, "value"]].itertuples(index=False, name=None)
    }


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}"


_BARS = " ▁▂▃▄▅▆▇█"


def _sparkline(counts: list[float]) -> str:
    top = max(counts) if counts else 0
    if not top:
        return "–"
    return "".join(_BARS[round(8 * c / top)] for c in counts)


def _wide_cell(row: pd.Series, available: set, estimator: str, col: Column) -> str:
    name, _, limit = col.measure.partition(":")
    if name == "sbc_hist":
        bins = sorted(
            m
            for f, e, m in available
            if f == "value" and e == estimator and m.startswith("sbc_bin_")
        )
        counts = [row[("value", estimator, m)] for m in bins]
        return _sparkline([0.0 if pd.isna(c) else float(c) for c in counts])
    if limit == "count":  # k/n fits, n = the measure's own n_reps
        return _count_cell(row, available, estimator, name)
    if name in ("n_reps", "n_excluded"):
        key = (name, estimator, "bias")
        return "–" if key not in available or pd.isna(row[key]) else str(int(row[key]))
    if ("value", estimator, name) not in available:
        return "–"
    value, mcse = row[("value", estimator, name)], row[("mcse", estimator, name)]
    if limit:
        value = value + (Z95 if limit == "ucl" else -Z95) * mcse
    return _cell(value, mcse, col)


def _count_cell(row: pd.Series, available: set, estimator: str, name: str) -> str:
    """``k/n`` from a rate and its ``n_reps``, ``!`` where k > 0; ``–`` where n is 0."""
    if ("value", estimator, name) not in available:
        return "–"
    n, rate = row[("n_reps", estimator, name)], row[("value", estimator, name)]
    if pd.isna(n) or n == 0 or pd.isna(rate):
        return "–"
    k = round(rate * n)
    return f"{k}/{int(n)}" + (" !" if k else "")


def to_markdown(t: WideTable) -> str:
    """A GitHub-flavoured markdown table (estimator groups spelled out in the header).

    Names and levels are escaped (:func:`simstudy.escape.markdown_text`).
    """
    header = t.row_names + [f"{e}: {c.title}" for e in t.estimators for c in t.columns]
    align = ["---"] * len(t.row_names) + ["---:"] * (len(header) - len(t.row_names))
    lines = [
        f"**{markdown_text(t.title)}**",
        "",
        "| " + " | ".join(markdown_text(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for names, cells in zip(t.rows, t.cells, strict=True):
        lines.append("| " + " | ".join(markdown_text(v) for v in [*names, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("~", r"\textasciitilde{}"),
        ("R̂", r"$\hat{R}$"),
    ):
        text = text.replace(a, b)
    return text


def to_latex(t: WideTable) -> str:
    """A booktabs LaTeX table with one column group per estimator."""
    k, m = len(t.row_names), len(t.columns)
    spec = "l" * k + "".join("r" * m for _ in t.estimators)
    lines = [
        "% produced by simstudy aggregate",
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_tex(t.title)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & " * k
        + " & ".join(rf"\multicolumn{{{m}}}{{c}}{{{_tex(e)}}}" for e in t.estimators)
        + r" \\",
        "".join(
            rf"\cmidrule(lr){{{k + 1 + i * m}-{k + (i + 1) * m}}}" for i in range(len(t.estimators))
        ),
        " & ".join(
            [_tex(n) for n in t.row_names]
            + [_tex(c.title) for _ in t.estimators for c in t.columns]
        )
        + r" \\",
        r"\midrule",
    ]
    for names, cells in zip(t.rows, t.cells, strict=True):
        lines.append(" & ".join([_tex(n) for n in names] + [_tex(c) for c in cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


#: What ``write_tables`` can write, by format name.
FORMATS = ("md", "tex", "csv")

#: Measures of the compact per-estimand tables (``compact.md``): what fits on a page.
COMPACT = (
    Column("bias", "Bias"),
    Column("coverage", "Cov."),
    Column("rmse", "RMSE"),
)


def compact_tables(
    summary: pd.DataFrame, factors: Sequence[str], layout: Layout | None = None
) -> list[WideTable]:
    """One narrow table per estimand: conditions as rows, bias, coverage and RMSE (MCSE)."""
    layout = layout or Layout()
    params = list(layout.parameters or dict.fromkeys(summary["parameter"]))
    out = []
    for param in params:
        one = Layout(layout.levels, layout.estimators, [param], layout.measures)
        spec = (f"{param}: bias, coverage and RMSE (MCSE)", COMPACT)
        t = wide_table(summary, factors, "compact", one, spec)
        if t is not None:
            out.append(t)
    return out


def to_csv(t: WideTable) -> str:
    """The table as CSV: one row per table row, a column per estimator × measure."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(t.row_names + [f"{e}: {c.title}" for e in t.estimators for c in t.columns])
    for names, cells in zip(t.rows, t.cells, strict=True):
        writer.writerow([*names, *cells])
    return buffer.getvalue()


def write_tables(
    summary: pd.DataFrame,
    factors: Sequence[str],
    directory: Path,
    layout: Layout | None = None,
    formats: Sequence[str] = ("md", "tex"),
) -> list[Path]:
    """Write ``<group>.<format>`` for every measure group present, and ``compact.<format>``.

    Files of groups that are not present any more are removed, so that the directory never
    mixes tables of two summaries.
    """
    directory.mkdir(parents=True, exist_ok=True)
    render = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
    written = []
    for group in GROUPS:
        t = wide_table(summary, factors, group, layout)
        for fmt in FORMATS:
            path = directory / f"{group}.{fmt}"
            if t is not None and fmt in formats:
                path.write_text(render[fmt](t))
                written.append(path)
            elif path.exists():
                path.unlink()
    compact = compact_tables(summary, factors, layout)
    for fmt in FORMATS:
        path = directory / f"compact.{fmt}"
        if compact and fmt in formats:
            path.write_text("\n".join(render[fmt](t) for t in compact))
            written.append(path)
        elif path.exists():
            path.unlink()
    return written


def convergence_notes(summary: pd.DataFrame, factors: Sequence[str], limit: int = 12) -> list[str]:
    """Lines naming each condition × estimator whose MCMC fits did not all converge.

    From ``unconverged_rate`` (k of n fits with some R-hat > ``rhat_max`` or bulk ESS <
    ``ess_min``, as its note says), with the largest R-hat and smallest bulk ESS over the
    estimands, and whether the convergence policy left those fits out of the measures. No
    lines when every fit converged (or none is MCMC).
    """
    rows = summary[summary["measure"] == "unconverged_rate"]
    rows = rows[(rows["n_reps"] > 0) & (rows["value"] > 0)]
    if rows.empty:
        return []
    group = [*factors, "condition_id", "estimator"]
    group = [g for g in group if g in summary.columns]
    first = rows.drop_duplicates(group)
    worst = summary[summary["measure"].isin(["rhat_max", "ess_bulk_min"])]
    worst = worst.groupby([*group, "measure"], dropna=False)["value"].agg(["max", "min"])
    excluded = summary[summary["measure"] == "bias"].groupby(group, dropna=False)["n_excluded"]
    excluded = excluded.max()
    lines, included = [], False
    for _, r in first.iterrows():
        key = tuple(r[g] for g in group)
        n, k = int(r["n_reps"]), round(r["value"] * r["n_reps"])
        where = ", ".join(f"{f}={r[f]}" for f in factors) or r["condition_id"]
        detail = []
        if (*key, "rhat_max") in worst.index:
            detail.append(f"max R-hat {worst.loc[(*key, 'rhat_max'), 'max']:.3g}")
        if (*key, "ess_bulk_min") in worst.index:
            detail.append(f"min bulk ESS {worst.loc[(*key, 'ess_bulk_min'), 'min']:.0f}")
        left_out = int(excluded.get(key, 0)) if len(excluded) else 0
        fate = "left out by the convergence policy" if left_out else "included in the measures"
        included = included or not left_out
        lines.append(
            f"  {r['estimator']} at {where}: {k} of {n} fits ({', '.join(detail)}), {fate}"
        )
    head = f"! fits that did not converge ({first['note'].iloc[0]} on some estimand)"
    if included:
        head += "; measures that include them are not to be trusted:"
        advice = (
            "  (raise sampler.warmup and sampler.draws, or summarise only converged fits: "
            "simstudy aggregate DIR --policy converged)"
        )
    else:
        head += ", left out of the measures by the convergence policy:"
        advice = "  (raise sampler.warmup and sampler.draws to keep more of them)"
    tail = []
    if len(lines) > limit:
        tail = [f"  ... and {len(lines) - limit} more condition × estimator pairs"]
    return [head, *lines[:limit], *tail, advice]
