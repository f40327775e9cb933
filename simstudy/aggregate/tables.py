"""Readable tables of a summary, for the terminal."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table

#: Measures shown in the terminal table, in order, with their column titles.
SHOWN = {
    "bias": "bias (MCSE)",
    "rel_bias": "rel. bias",
    "coverage": "coverage (MCSE)",
    "rmse": "RMSE",
    "ess_bulk": "ESS bulk",
    "failure_rate": "failed",
}


def _fmt(value: float, mcse: float | None = None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.{digits}f}"
    if mcse is not None and not math.isnan(mcse):
        text += f" ({mcse:.{digits}f})"
    return text


def summary_table(summary: pd.DataFrame, factors: list[str], title: str = "") -> Table:
    """One row per condition × parameter × estimator with the main measures and MCSEs."""
    keys = [*factors, "parameter", "estimator"]
    wide = summary.pivot_table(
        index=keys, columns="measure", values=["value", "mcse"], aggfunc="first", dropna=False
    )
    table = Table(title=title or None, show_lines=False)
    for i, col in enumerate(keys):
        width = max([len(col), *(len(str(idx[i])) for idx in wide.index)])
        table.add_column(col, style="cyan" if col in factors else None, min_width=width)
    measures = [m for m in SHOWN if ("value", m) in wide.columns]
    for m in measures:
        table.add_column(SHOWN[m], justify="right", no_wrap=True)
    previous = None
    for index, row in wide.iterrows():
        group = index[: len(factors) + 1]
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        cells = [str(v) for v in index]
        for m in measures:
            with_mcse = m in ("bias", "coverage")
            digits = 0 if m == "ess_bulk" else 3
            cells.append(_fmt(row[("value", m)], row[("mcse", m)] if with_mcse else None, digits))
        table.add_row(*cells)
    return table


def print_summary(summary: pd.DataFrame, factors: list[str], title: str = "") -> None:
    """Print :func:`summary_table` to standard output."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a file or pipe: never fold the table
    console.print(summary_table(summary, factors, title))
