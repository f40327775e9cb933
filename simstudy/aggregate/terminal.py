"""Tables on the terminal: one per estimand, cut to the console's width.

Rows are conditions (design order) × estimator, columns the population value and the measures,
each cell as in ``tables/*.md``. A factor or population value that is the same on every row of
a table goes into its title. When the columns do not fit the width, the measure columns are
split over several tables (the row labels repeated), so that no value is dropped or cut short.
"""

from __future__ import annotations

import itertools
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from simstudy.aggregate.tables import (
    GROUPS,
    Column,
    Layout,
    WideTable,
    convergence_notes,
    wide_table,
)

#: Width of piped output when ``COLUMNS`` is not set (a file or pager can scroll sideways).
PIPE_WIDTH = 250

#: Title of the column of fits that did not converge (``unconverged_rate`` as ``k/n``).
UNCONVERGED = "not conv."

#: Measures of the table ``simstudy run`` prints at its end.
RUN_COLUMNS = (
    Column("bias", "Bias"),
    Column("rel_bias", "Prop. bias %", 100, 1),
    Column("coverage", "Coverage"),
    Column("rmse", "RMSE"),
    Column("ess_bulk", "ESS bulk", 1, 0, False),
    Column("failure_rate", "Failed", 1, 3, False),
    Column("unconverged_rate:count", UNCONVERGED, mcse=False),
)

POPULATION = "Population"
EMPTY = "–"


@dataclass(frozen=True)
class EstimandTable:
    """One estimand's rows (condition × estimator) before it is cut to a width.

    Attributes
    ----------
    title
        The title, constant factors and population value included.
    key_names, keys
        Row labels: the factors that vary over the rows, then ``estimator``.
    columns, cells
        ``Population`` (when it varies) and the measure columns that have some value.
    conditions
        Per row, the index of its condition (a rule is drawn where it changes).
    """

    title: str
    key_names: list[str]
    keys: list[list[str]]
    columns: list[str]
    cells: list[list[str]]
    conditions: list[int]


def by_estimand(t: WideTable, n_factors: int) -> list[EstimandTable]:
    """Turn a wide table (estimators as column groups) into one long table per estimand.

    Rows of an estimator with no value in the table are left out, and so are columns with no
    value; a factor or population value shared by every row is named in the title instead.
    """
    m = len(t.columns)
    params = list(dict.fromkeys(row[n_factors] for row in t.rows))
    out = []
    for param in params:
        labels, cells, conditions = [], [], []
        for i, (row, line) in enumerate(zip(t.rows, t.cells, strict=True)):
            if row[n_factors] != param:
                continue
            for j, est in enumerate(t.estimators):
                part = line[j * m : (j + 1) * m]
                if any(c != EMPTY for c in part):
                    labels.append([*row[:n_factors], est, row[n_factors + 1]])
                    cells.append(part)
                    conditions.append(i)
        if not cells:
            continue
        names = [*t.row_names[:n_factors], "estimator", POPULATION]
        # labels: factors, estimator, population value; all but the estimator may be constant
        constant = [
            k for k in range(n_factors + 2) if k != n_factors and len({r[k] for r in labels}) == 1
        ]
        kept = [k for k in range(n_factors + 2) if k not in constant]
        shown = [j for j in range(m) if any(c[j] != EMPTY for c in cells)]
        notes = [f"{names[k]} = {labels[0][k]}" for k in constant]
        title = f"{param} — {t.title}" + (f" ({', '.join(notes)})" if notes else "")
        out.append(
            EstimandTable(
                title,
                [names[k] for k in kept if k <= n_factors],
                [[r[k] for k in kept if k <= n_factors] for r in labels],
                [POPULATION] * (n_factors + 1 in kept) + [t.columns[j].title for j in shown],
                [
                    [r[n_factors + 1]] * (n_factors + 1 in kept) + [c[j] for j in shown]
                    for r, c in zip(labels, cells, strict=True)
                ],
                conditions,
            )
        )
    return out


def _rich(t: EstimandTable, columns: Sequence[int]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in t.key_names:
        # fold rather than ellipsise, should even the row labels be wider than the console
        table.add_column(Text(name), style="cyan", overflow="fold")
    for j in columns:
        table.add_column(Text(t.columns[j]), justify="right", overflow="fold")
    previous = None
    for keys, cells, condition in zip(t.keys, t.cells, t.conditions, strict=True):
        if previous is not None and condition != previous:
            table.add_section()
        previous = condition
        table.add_row(*(Text(k) for k in keys), *(Text(cells[j]) for j in columns))
    return table


def fitted(t: EstimandTable, console: Console) -> list[tuple[str, Table]]:
    """The table as one or more (title, rich table) no wider than the console.

    Measure columns are split, in order, over as few tables as fit ``console.width`` (as
    evenly as fits), each repeating the row labels; a single column too wide to fit with them
    is folded by rich, never cut.
    """
    parts = _parts(t, console)
    n = len(parts)
    return [
        (t.title + (f" [{i} of {n}]" if n > 1 else ""), _rich(t, part))
        for i, part in enumerate(parts, 1)
    ]


def _parts(t: EstimandTable, console: Console) -> list[list[int]]:
    # measured without the console's limit, which would cap the widths it reports
    unlimited = console.options.update_width(1_000_000)

    def fits(part: list[int]) -> bool:
        return Measurement.get(console, unlimited, _rich(t, part)).maximum <= console.width

    greedy: list[list[int]] = [[]]
    for j in range(len(t.columns)):
        if greedy[-1] and not fits([*greedy[-1], j]):
            greedy.append([])
        greedy[-1].append(j)
    n, m = len(greedy), len(t.columns)
    # the same number of tables with (nearly) equal numbers of columns, where that fits
    bounds = [round(i * m / n) for i in range(n + 1)]
    even = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
    return even if all(part and fits(part) for part in even) else greedy


def _console() -> Console:
    """A console on standard output: the terminal's width, else ``COLUMNS``, else wide."""
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH)


def _print(console: Console, t: WideTable | None, n_factors: int, max_rows: int) -> None:
    if t is None:
        return
    for one in by_estimand(t, n_factors):
        shown = EstimandTable(
            one.title,
            one.key_names,
            one.keys[:max_rows],
            one.columns,
            one.cells[:max_rows],
            one.conditions[:max_rows],
        )
        for title, table in fitted(shown, console):
            # a title of its own wraps at the console's width, not at the table's
            console.print(Text(title, style="bold"))
            console.print(table)
        if len(one.keys) > max_rows:
            console.print(
                f"... {len(one.keys) - max_rows} more rows in the markdown/LaTeX tables",
                markup=False,
                highlight=False,
            )


def print_tables(
    summary: pd.DataFrame,
    factors: Sequence[str],
    groups: Sequence[str] = tuple(GROUPS),
    max_rows: int = 40,
    layout: Layout | None = None,
) -> None:
    """Print the measure groups, one table per estimand (at most ``max_rows`` rows each)."""
    console = _console()
    for group in groups:
        _print(console, wide_table(summary, factors, group, layout), len(factors), max_rows)


def print_notes(summary: pd.DataFrame, factors: Sequence[str]) -> None:
    """Print :func:`convergence_notes`, wrapped to the console's width."""
    console = _console()
    for line in convergence_notes(summary, factors):
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        text = textwrap.fill(line, console.width, subsequent_indent=indent, break_long_words=False)
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_summary(
    summary: pd.DataFrame,
    factors: Sequence[str],
    title: str = "",
    layout: Layout | None = None,
    max_rows: int = 40,
) -> None:
    """Print the main measures per estimand (``simstudy run``), then the convergence notes.

    Column ``not conv.``: of the condition's MCMC fits of the estimator, how many had some
    R-hat above or bulk ESS below the thresholds (``unconverged_rate`` × its ``n_reps``),
    ``k/n`` with a ``!`` where k > 0; :func:`convergence_notes` says it in words.
    """
    spec = (title or "performance (MCSE)", RUN_COLUMNS)
    t = wide_table(summary, factors, "run", layout, spec)
    _print(_console(), t, len(factors), max_rows)
    print_notes(summary, factors)
