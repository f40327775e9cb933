"""The report's figures, drawn with matplotlib's object API (Agg; no pyplot, no global state).

Each function returns :class:`Plot` objects (name, caption, matplotlib figure) and draws
nothing to disk; :func:`save` writes a plot as PNG and PDF under ``figures/``. Figures are
paged so that hundreds of conditions stay readable: at most ``max_panels`` panels a figure and
``max_pages`` figures of a kind, the captions saying what was left out.

- :func:`factor_plots`: bias, relative bias, RMSE and coverage against each design factor,
  one panel per estimand (and combination of the other factors), a line per estimator, the
  panels of a measure on one y scale.
- :func:`nested_loop_plots`: all conditions in one nested-loop plot (Rücker & Schwarzer 2014).
- :func:`~simstudy.report.running.running_plots`: measures against replications (Monte Carlo
  convergence).

Error bars and bands are Monte Carlo 95% intervals: value ± 1.96 MCSE, and Wilson intervals
for proportions such as coverage, so that they stay inside [0, 1]
(:func:`simstudy.aggregate.measures.interval`). Each estimator has its colour, marker and line
style in every figure.
- :func:`zip_plots`: the intervals behind a coverage figure (Morris, White & Crowther 2019).
- :func:`diagnostic_plots`: ESS and R-hat distributions per MCMC estimator.
- :func:`failure_plots`: failures, exclusions and unconverged fits per condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colors, ticker
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from simstudy.aggregate.measures import interval
from simstudy.report.document import Figure, Paragraph, slug
from simstudy.report.records import PanelKey

Z95 = 1.959963984540054
MAX_PANELS = 12
MAX_PAGES = 4
MEASURES = {
    "bias": "Bias",
    "rel_bias": "Relative bias (%)",
    "rmse": "RMSE",
    "coverage": "Coverage",
}
#: Measures shown scaled (relative bias in %).
SCALE = {"rel_bias": 100.0}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
COVERED, NOT_COVERED, LIMITS = "#4477aa", "#cc3311", "#ee9922"


@dataclass
class Plot:
    """A drawn figure, not yet written: its file name (no suffix), caption and figure."""

    name: str
    caption: str
    figure: MplFigure


def colours(estimators: Sequence[str]) -> dict[str, str]:
    """One colour per estimator, the same in every figure (matplotlib's tab10 cycle)."""
    cycle = mpl.colormaps["tab10"].colors
    return {e: colors.to_hex(cycle[i % len(cycle)]) for i, e in enumerate(estimators)}


def styles(estimators: Sequence[str]) -> dict[str, dict[str, str]]:
    """Colour, marker and line style per estimator, the same in every figure.

    Markers and line styles tell estimators apart where their lines lie on top of each other.
    """
    colour = colours(estimators)
    return {
        e: {
            "color": colour[e],
            "marker": MARKERS[i % len(MARKERS)],
            "ls": LINESTYLES[i % len(LINESTYLES)],
        }
        for i, e in enumerate(estimators)
    }


def design_order(values: Sequence[object], levels: Sequence[object] | None) -> list[object]:
    """``values`` in the design's order of ``levels``, those not in it after them, sorted."""
    values = list(dict.fromkeys(values))
    if not levels:
        return sorted(values)
    known = [v for v in levels if v in values]
    return known + sorted(v for v in values if v not in known)


def in_design_order(
    frame: pd.DataFrame, columns: Sequence[str], levels: Mapping[str, Sequence[object]] | None
) -> pd.DataFrame:
    """Rows of ``frame`` sorted by ``columns`` (the first outermost), levels in design order."""
    keys = []
    for col in reversed(list(columns)):
        order = design_order(frame[col].dropna(), (levels or {}).get(col))
        keys.append(frame[col].map({v: i for i, v in enumerate(order)}).to_numpy(float))
    return frame.iloc[np.lexsort(keys)] if keys else frame


def share_y(axes: Sequence) -> None:
    """Give ``axes`` one y range, the union of theirs: one scale for one measure."""
    limits = [ax.get_ylim() for ax in axes if ax.get_visible()]
    if limits:
        lo, hi = min(lo for lo, _ in limits), max(hi for _, hi in limits)
        for ax in axes:
            ax.set_ylim(lo, hi)


def _level(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def condition_label(values: Mapping[str, object], vary: Sequence[str]) -> str:
    """``N=100, mechanism=MAR`` over the varying factors (``all`` when none varies)."""
    return ", ".join(f"{f}={_level(values[f])}" for f in vary) or "all"


def paginate(items: list, size: int, max_pages: int) -> tuple[list[list], int]:
    pages = [items[i : i + size] for i in range(0, len(items), size)]
    return pages[:max_pages], max(0, len(items) - size * max_pages)


def grid(
    n: int, ncols: int = 4, w: float = 3.3, h: float = 2.7, title_lines: int = 1
) -> tuple[MplFigure, list]:
    """``n`` panels of ``w`` × ``h`` inches on a fixed layout (margins in inches).

    A fixed layout, not matplotlib's constrained one: that costs a third of drawing a figure.
    """
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    left, right, top, bottom = 0.75, 0.15, 0.65, 0.55
    wspace, hspace = 0.75, 0.55 + 0.15 * title_lines
    width = left + right + ncols * w
    height = top + bottom + nrows * h
    fig = MplFigure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=wspace / (w - wspace / ncols),
        hspace=hspace / (h - hspace / nrows),
    )
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def figure_legend(fig: MplFigure, estimators: Sequence[str], style: Mapping[str, Mapping]) -> None:
    handles = [Line2D([], [], **style[e], label=e) for e in estimators]
    loc = "outside upper center" if fig.get_layout_engine() else "upper center"
    fig.legend(handles=handles, loc=loc, ncols=min(len(handles), 6), frameon=False)


def reference_line(ax, measure: str, level: float, n: float) -> None:
    if measure == "coverage":
        ax.axhline(level, color="0.3", lw=1, ls="--")
        if n and n > 0:
            band = Z95 * math.sqrt(level * (1 - level) / n)
            ax.axhspan(max(0.0, level - band), min(1.0, level + band), color="0.85", zorder=0)
    elif measure in ("bias", "rel_bias"):
        ax.axhline(0.0, color="0.3", lw=1, ls="--")


def _averaged(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of a measure over the other factors' levels; MCSE √(Σ MCSE²)/k (independent)."""
    g = rows.assign(_v=rows["mcse"] ** 2).groupby(by, sort=True, dropna=False)
    out = g.agg(value=("value", "mean"), _v=("_v", "sum"), k=("value", "size"))
    out["mcse"] = np.sqrt(out["_v"]) / out["k"]
    out["n_reps"] = g["n_reps"].sum()
    return out.reset_index()


def factor_plots(
    summary: pd.DataFrame,
    vary: Sequence[str],
    estimators: Sequence[str],
    level: float = 0.95,
    max_panels: int = MAX_PANELS,
    max_pages: int = MAX_PAGES,
    levels: Mapping[str, Sequence[object]] | None = None,
) -> list[Plot]:
    """Bias, relative bias, RMSE and coverage against each varying design factor.

    One panel per estimand, a line per estimator (dodged so the bars do not overlap), error
    bars the Monte Carlo 95% interval; every panel of a measure on one y scale. The other
    varying factors: a panel per estimand and combination of their levels when those fit on one
    figure (``max_panels``), else the measure averaged over their levels (MCSE √(Σ MCSE²)/k;
    the nested-loop plot shows every condition). Without a varying factor, one point per
    estimator. Coverage panels show the nominal level with its Monte Carlo band
    (±1.96 √(L(1−L)/n)). ``levels``: each factor's levels in design order (default sorted).
    """
    style = styles(estimators)
    params = list(dict.fromkeys(summary["parameter"]))
    plots = []
    for measure, title in MEASURES.items():
        data = summary[summary["measure"] == measure]
        if data.empty or data["value"].notna().sum() == 0:
            continue
        measure_axes = []
        for factor in list(vary) or [None]:
            others = [f for f in vary if f != factor]
            combos = [()]
            if others:
                unique = data[others].drop_duplicates()
                combos = [
                    tuple(c)
                    for c in in_design_order(unique, others, levels).itertuples(index=False)
                ]
            averaged = bool(others) and len(params) * len(combos) > max_panels
            if averaged:
                data_f = _averaged(data, [factor, "estimator", "parameter"])
                combos, shown = [()], []
            else:
                data_f, shown = data, others
            panels = [(p, c) for p in params for c in combos]
            pages, left = paginate(panels, max_panels, max_pages)
            order = (
                design_order(data_f[factor].dropna(), (levels or {}).get(factor))
                if factor
                else [None]
            )
            for k, page in enumerate(pages, 1):
                fig, axes = grid(len(page))
                for ax, (param, combo) in zip(axes, page, strict=True):
                    rows = data_f[data_f["parameter"] == param]
                    for f, v in zip(shown, combo, strict=True):
                        rows = rows[rows[f] == v]
                    _factor_panel(ax, rows, measure, factor, order, estimators, style)
                    reference_line(ax, measure, level, float(rows["n_reps"].median()))
                    label = condition_label(dict(zip(shown, combo, strict=True)), shown)
                    ax.set_title(param if not shown else f"{param} | {label}", fontsize=9)
                    ax.set_ylabel(title + (" (mean)" if averaged else ""), fontsize=8)
                measure_axes += axes
                figure_legend(fig, estimators, style)
                against = f"against {factor}" if factor else "per estimator"
                name = f"{measure}_{slug(factor) if factor else 'all'}_{k}"
                how = ""
                if averaged:
                    how = f", averaged over the levels of {', '.join(others)}"
                elif others:
                    how = f" and level of {', '.join(others)}"
                caption = (
                    f"{title} {against}, one panel per estimand{how}, all on one y scale; "
                    + (
                        "error bars: Wilson 95% intervals"
                        f"; dashed: nominal {level:g}, grey: its Monte Carlo band"
                        if measure == "coverage"
                        else "error bars ±1.96 MCSE" + ("" if measure == "rmse" else "; dashed: 0")
                    )
                    + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
                    + (f"; {left} panels not drawn, see the tables" if left and k == 1 else "")
                    + "."
                )
                plots.append(Plot(name, caption, fig))
        share_y(measure_axes)
    return plots


def _factor_panel(ax, rows, measure, factor, levels, estimators, style) -> None:
    width = 0.5 / max(1, len(estimators))
    scale = SCALE.get(measure, 1.0)
    for i, est in enumerate(estimators):
        r = rows[rows["estimator"] == est]
        if factor:
            r = r.drop_duplicates(factor).set_index(factor).reindex(levels)
        if r.empty or r["value"].isna().all():
            continue
        x = np.arange(len(levels)) + (i - (len(estimators) - 1) / 2) * width
        y = r["value"].to_numpy(float)
        lo, hi = interval(measure, y, r["mcse"].to_numpy(float), r["n_reps"].to_numpy(float))
        ax.errorbar(
            x,
            scale * y,
            yerr=scale * np.nan_to_num(np.vstack([y - lo, hi - y])),
            **{**style[est], "ls": style[est]["ls"] if factor else "none"},
            ms=4,
            capsize=2,
            lw=1.2,
        )
    ax.set_xticks(range(len(levels)), [_level(v) for v in levels] if factor else [""])
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_xlabel(factor or "", fontsize=8)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.tick_params(labelsize=8)


def _lower(title: str) -> str:
    """``Relative bias`` → ``relative bias``; ``RMSE`` stays."""
    return title if title[1:2].isupper() else title[:1].lower() + title[1:]


def nested_loop_plots(
    summary: pd.DataFrame,
    vary: Sequence[str],
    estimators: Sequence[str],
    level: float = 0.95,
    max_panels: int = 4,
    max_pages: int = MAX_PAGES,
    levels: Mapping[str, Sequence[object]] | None = None,
) -> list[Plot]:
    """Nested-loop plots (Rücker & Schwarzer 2014) of each measure: every condition.

    Conditions ordered by the varying factors (the first the outermost loop, each factor's
    levels in design order, ``levels``) along the x axis; a step line per estimator, in its
    colour and line style with its marker at each condition, and its Monte Carlo 95% band; the
    factors' levels as step lines beneath. The estimands of a measure share one y scale. Drawn
    only with two or more varying factors.
    """
    if len(vary) < 2:
        return []
    style = styles(estimators)
    params = list(dict.fromkeys(summary["parameter"]))
    orders = {f: design_order(summary[f].dropna(), (levels or {}).get(f)) for f in vary}
    conds = in_design_order(summary[[*vary]].drop_duplicates(), vary, levels)
    conds = conds.reset_index(drop=True)
    edges = np.arange(len(conds) + 1) - 0.5
    centres = np.arange(len(conds))
    plots = []
    for measure, title in MEASURES.items():
        data = summary[summary["measure"] == measure]
        if data.empty or data["value"].notna().sum() == 0:
            continue
        scale = SCALE.get(measure, 1.0)
        pages, left = paginate(params, max_panels, max_pages)
        measure_axes = []
        for k, page in enumerate(pages, 1):
            ratios = []
            for _ in page:
                ratios += [3.0, 0.35 * len(vary)]
            fig = MplFigure(figsize=(10, sum(ratios) * 0.9 + 0.6), layout="constrained")
            axes = fig.subplots(len(ratios), 1, gridspec_kw={"height_ratios": ratios})
            axes = np.atleast_1d(axes)
            for j, param in enumerate(page):
                ax, low = axes[2 * j], axes[2 * j + 1]
                measure_axes.append(ax)
                rows = data[data["parameter"] == param]
                for est in estimators:
                    r = rows[rows["estimator"] == est].set_index(list(vary))
                    r = r.reindex(pd.MultiIndex.from_frame(conds))
                    if r["value"].isna().all():
                        continue
                    y = r["value"].to_numpy(float)
                    lo, hi = interval(
                        measure, y, r["mcse"].to_numpy(float), r["n_reps"].to_numpy(float)
                    )
                    st = style[est]
                    ax.stairs(scale * y, edges, baseline=None, color=st["color"], ls=st["ls"])
                    ax.plot(
                        centres,
                        scale * y,
                        color=st["color"],
                        marker=st["marker"],
                        ls="none",
                        ms=4,
                        label=est,
                    )
                    ax.stairs(
                        scale * np.nan_to_num(hi, nan=y),
                        edges,
                        baseline=scale * np.nan_to_num(lo, nan=y),
                        fill=True,
                        color=st["color"],
                        alpha=0.15,
                    )
                reference_line(ax, measure, level, float(rows["n_reps"].median()))
                ax.set_xlim(-0.5, len(conds) - 0.5)
                ax.tick_params(axis="x", labelbottom=False, length=0)
                ax.set_title(f"{title}: {param}", fontsize=9)
                ax.set_ylabel(title, fontsize=8)
                ax.tick_params(labelsize=8)
                ax.sharex(low)
                for i, f in enumerate(vary):
                    code = conds[f].map({v: n for n, v in enumerate(orders[f])}).to_numpy(float)
                    y = len(vary) - 1 - i + 0.8 * code / max(1, len(orders[f]) - 1)
                    low.stairs(y, edges, baseline=None, color="0.25", lw=1)
                    text = f"{f}: " + ", ".join(_level(v) for v in orders[f])
                    low.text(
                        -0.5, len(vary) - 1 - i + 0.4, text, fontsize=7, ha="right", va="center"
                    )
                low.set_yticks([])
                low.set_xlim(-0.5, len(conds) - 0.5)
                low.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
                low.set_ylim(-0.2, len(vary))
                low.set_xlabel("condition (nested loops over " + ", ".join(vary) + ")", fontsize=8)
                low.tick_params(labelsize=7)
                for side in ("top", "right", "left"):
                    low.spines[side].set_visible(False)
            figure_legend(fig, estimators, style)
            band = "Wilson 95% bands" if measure == "coverage" else "bands ±1.96 MCSE"
            caption = (
                f"Nested-loop plot of {_lower(title)}: every condition along the x axis, "
                f"ordered by {', '.join(vary)} (outermost first, levels in design order); "
                f"{band}; the estimands on one y scale"
                + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
                + (f"; {left} estimands not drawn" if left and k == 1 else "")
                + "."
            )
            plots.append(Plot(f"nested_loop_{measure}_{k}", caption, fig))
        share_y(measure_axes)
    return plots


def zip_panels(summary: pd.DataFrame, level: float = 0.95, max_panels: int = 16) -> list[PanelKey]:
    """The coverage figures to draw zip plots of: all, or the ``max_panels`` furthest from nominal.

    Distance is ``|coverage − level| / √(level(1 − level)/n)``; ties keep the summary's order.
    """
    cov = coverage_distance(summary, level)
    keys = list(zip(cov["condition_id"], cov["estimator"], cov["parameter"], strict=True))
    if len(keys) <= max_panels:
        return keys
    order = np.argsort(-cov["distance"].to_numpy(), kind="stable")[:max_panels]
    return [keys[i] for i in sorted(order)]


def coverage_distance(summary: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The summary's coverage rows (with a value and replications) and their ``distance``.

    ``distance``: ``|coverage − level| / √(level(1 − level)/n)``; rows in the summary's order.
    """
    cov = summary[(summary["measure"] == "coverage") & summary["value"].notna()]
    cov = cov[cov["n_reps"] > 0]
    return cov.assign(
        distance=(cov["value"] - level).abs() / np.sqrt(level * (1 - level) / cov["n_reps"])
    )


def zip_plots(
    intervals: Mapping[PanelKey, pd.DataFrame],
    summary: pd.DataFrame,
    panels: Sequence[PanelKey],
    labels: Mapping[str, str],
    level: float = 0.95,
    max_reps: int = 100,
    max_panels: int = 16,
    total: int | None = None,
) -> list[Plot]:
    """Zip plots (Morris, White & Crowther 2019, Fig. 4) of the intervals behind coverage.

    Each panel ranks a condition × estimator × estimand's intervals by the fractional centile
    of ``|z| = |estimate − truth| / SE`` (intervals that miss the truth at the top, in red),
    with the truth as a vertical line, the nominal level dashed and the Monte Carlo 95%
    (Wilson) interval of the coverage figure in orange. With more than ``max_reps`` replications,
    ``max_reps`` intervals evenly spaced in rank are drawn (centiles over all of them).
    """
    cov = summary[summary["measure"] == "coverage"].set_index(
        ["condition_id", "estimator", "parameter"]
    )
    keys = [k for k in panels if k in intervals and len(intervals[k])]
    pages, _ = paginate(keys, max_panels, math.ceil(len(keys) / max_panels) or 1)
    plots = []
    thinned = False
    for k, page in enumerate(pages, 1):
        fig, axes = grid(len(page), ncols=4, w=3.3, h=2.8, title_lines=2)
        for ax, key in zip(axes, page, strict=True):
            rows = intervals[key]
            se = rows["se"].where(rows["se"] > 0)
            se = se.fillna((rows["upper"] - rows["lower"]) / (2 * Z95))
            z = ((rows["estimate"] - rows["truth"]) / se).abs().to_numpy(float)
            n = len(rows)
            centile = 100 * (pd.Series(z).rank(method="first").to_numpy() - 0.5) / n
            covered = (
                (rows["lower"] <= rows["truth"]) & (rows["truth"] <= rows["upper"])
            ).to_numpy()
            order = np.argsort(centile)
            if n > max_reps:
                order = order[np.unique(np.linspace(0, n - 1, max_reps).round().astype(int))]
                thinned = True
            lo, hi = rows["lower"].to_numpy(float), rows["upper"].to_numpy(float)
            lw = float(np.clip(120 / len(order), 0.6, 2.5))
            for mask, colour in ((covered, COVERED), (~covered, NOT_COVERED)):
                sel = order[mask[order]]
                ax.hlines(centile[sel], lo[sel], hi[sel], color=colour, lw=lw)
            ax.axvline(float(rows["truth"].mean()), color="0.2", lw=1)
            ax.axhline(100 * level, color="0.3", ls="--", lw=1)
            note = ""
            if key in cov.index:
                c, m = cov.loc[key, "value"], cov.loc[key, "mcse"]
                m = 0.0 if pd.isna(m) else m
                if not pd.isna(c):
                    bounds = interval("coverage", c, m, cov.loc[key, "n_reps"])
                    for y in bounds:
                        ax.axhline(100 * float(y), color=LIMITS, lw=1)
                    note = f": coverage {c:.3f} ({m:.3f})"
            cond, est, param = key
            where = labels.get(cond, cond)
            ax.set_title(f"{param} · {est}{note}" + (f"\n{where}" if where else ""), fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_ylabel("centile of |z|", fontsize=8)
            ax.tick_params(labelsize=7)
        handles = [
            Line2D([], [], color=COVERED, label="covers the truth"),
            Line2D([], [], color=NOT_COVERED, label="misses the truth"),
            Line2D([], [], color=LIMITS, label="coverage: Wilson 95% interval"),
            Line2D([], [], color="0.3", ls="--", label=f"nominal {level:g}"),
        ]
        fig.legend(handles=handles, loc="upper center", ncols=4, frameon=False)
        omitted = (total or len(keys)) - len(keys)
        caption = (
            "Zip plots: each replication's interval, ranked by the fractional centile of |z| "
            "(|estimate − truth| / SE); vertical line: the truth"
            + (f"; at most {max_reps} intervals a panel, evenly spaced in rank" if thinned else "")
            + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
            + (
                f"; the {len(keys)} coverage figures furthest from nominal of "
                f"{total} (the rest in the tables)"
                if omitted > 0 and k == 1
                else ""
            )
            + "."
        )
        plots.append(Plot(f"zip_{k}", caption, fig))
    return plots


def log_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """Round numbers to label a log axis from ``lo`` to ``hi``: at most ``max_ticks`` of them.

    The densest of 1, 1-3, 1-2-5, 1-2-3-5, 1-2-3-5-7 and 1…9 times a power of ten that fits (every
    other power of ten where not even the powers do); linear steps where fewer than two
    of those fall inside (a range within a decade's fraction).
    """
    lo, hi = max(lo, 1e-12), max(hi, 1e-12)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    best: list[float] = []
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5), (1, 2, 3, 5, 7), tuple(range(1, 10))):
        ticks = [
            float(m * 10.0**k)
            for k in range(first, last + 1)
            for m in mantissas
            if lo <= m * 10.0**k <= hi
        ]
        if len(ticks) > max_ticks:
            if not best:
                best = ticks[:: math.ceil(len(ticks) / max_ticks)]
            break
        best = ticks
    if len(best) < 2:
        steps = ticker.MaxNLocator(nbins=max(2, max_ticks - 2)).tick_values(lo, hi)
        best = [float(v) for v in steps if lo <= v <= hi]
    return best


def _plain(ax, which: str, max_ticks: int = 7) -> None:
    """Plain round numbers (200, 500, 1000) on a log axis, not crowded, instead of 2×10².

    The ticks are :func:`log_ticks` of the axis's range; the minor ticks stay, unlabelled.
    """
    get, set_lim = (ax.get_xlim, ax.set_xlim) if which == "x" else (ax.get_ylim, ax.set_ylim)
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = get()
    axis.set_major_locator(ticker.FixedLocator(log_ticks(lo, hi, max_ticks)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
    set_lim(lo, hi)


def diagnostic_plots(
    fits: pd.DataFrame,
    estimators: Sequence[str],
    rhat_max: float = 1.01,
    ess_min: float = 400.0,
) -> list[Plot]:
    """Distributions of each MCMC fit's smallest bulk ESS and largest R-hat, per estimator.

    Histograms (top) and box plots (bottom) over every successful fit of every condition, with
    the convergence thresholds dashed. Nothing when no estimator is MCMC.
    """
    ok = fits[~fits["failed"] & fits["estimator"].isin(estimators)]
    ok = ok[ok["ess"].notna() | ok["rhat"].notna()]
    present = [e for e in estimators if (ok["estimator"] == e).any()]
    if not present:
        return []
    colour = colours(estimators)
    fig = MplFigure(figsize=(11, 6.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for col, (what, label, threshold) in enumerate(
        (
            ("ess", "smallest bulk ESS of a fit", ess_min),
            ("rhat", "largest R-hat of a fit", rhat_max),
        )
    ):
        values = [ok.loc[ok["estimator"] == e, what].dropna().to_numpy(float) for e in present]
        allv = np.concatenate([v for v in values if len(v)]) if any(len(v) for v in values) else []
        hist = axes[0, col]
        if len(allv):
            if what == "ess":
                lo, hi = max(allv.min(), 1.0), max(allv.max(), 2.0)
                bins = np.geomspace(lo * 0.95, hi * 1.05, 30)
                hist.set_xscale("log")
            else:
                bins = np.linspace(min(allv.min(), 1.0), max(allv.max(), threshold) * 1.001, 30)
            for e, v in zip(present, values, strict=True):
                if len(v):
                    hist.hist(v, bins=bins, histtype="step", lw=1.5, color=colour[e], label=e)
        hist.axvline(threshold, color="0.3", ls="--", lw=1)
        hist.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        if what == "ess" and len(allv):
            _plain(hist, "x")
        hist.set_xlabel(label, fontsize=9)
        hist.set_ylabel("fits", fontsize=9)
        hist.legend(fontsize=7)
        box = axes[1, col]
        shown = [(e, v) for e, v in zip(present, values, strict=True) if len(v)]
        if shown:
            parts = box.boxplot(
                [v for _, v in shown], tick_labels=[e for e, _ in shown], patch_artist=True
            )
            for patch, (e, _) in zip(parts["boxes"], shown, strict=True):
                patch.set_facecolor(colour[e])
                patch.set_alpha(0.5)
        box.axhline(threshold, color="0.3", ls="--", lw=1)
        if what == "ess" and shown:
            box.set_yscale("log")
            _plain(box, "y", 6)
        box.set_ylabel(label, fontsize=9)
        box.tick_params(axis="x", labelsize=8, labelrotation=15)
    caption = (
        f"MCMC diagnostics over {len(ok)} successful fits: each fit's smallest bulk ESS and "
        f"largest R-hat over its estimands; dashed: ESS {ess_min:g}, R-hat {rhat_max:g}."
    )
    return [Plot("mcmc_diagnostics", caption, fig)]


#: The failure figure's panels: the share's column, its measure (for an interval), its title.
FAILURE_PANELS = (
    ("fail", "failure_rate", "failed"),
    ("excl_rate", None, "excluded by the policy"),
    ("unconv", "unconverged_rate", "not converged (MCMC)"),
)
#: What an empty panel says in the caption instead of being drawn.
NOTHING = {
    "fail": "no fit failed",
    "excl_rate": "no fit was excluded by the convergence policy",
    "unconv": "every MCMC fit converged",
}


def _and(items: Sequence[str]) -> str:
    """``a, b and c``."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def failure_plots(
    summary: pd.DataFrame,
    factors: Sequence[str],
    vary: Sequence[str],
    estimators: Sequence[str],
    max_conditions: int = 30,
    max_pages: int = MAX_PAGES,
) -> list[Plot | Paragraph]:
    """Per condition and estimator: share failed, excluded by the policy, and not converged.

    Horizontal bars with Wilson 95% intervals where the share has one, a panel for each share
    that is above 0 somewhere (the caption names the others). When nothing failed, was
    excluded or did not converge, a sentence says so instead of a figure. With more conditions
    than the pages hold, those with the most failures, exclusions and unconverged fits are
    drawn.
    """
    group = [*factors, "condition_id", "estimator"]

    def by(measure: str, field: str, how: str = "first") -> pd.Series:
        part = summary[summary["measure"] == measure]
        return part.groupby(group, sort=False, dropna=False)[field].agg(how)

    per = pd.DataFrame(
        {
            "fail": by("failure_rate", "value"),
            "n_all": by("failure_rate", "n_reps"),
            "excluded": by("bias", "n_excluded", "max"),
            "unconv": by("unconverged_rate", "value"),
            "unconv_n": by("unconverged_rate", "n_reps"),
        }
    ).reset_index()
    per["excl_rate"] = per["excluded"] / per["n_all"].where(per["n_all"] > 0)
    drawn = [p for p in FAILURE_PANELS if (per[p[0]].fillna(0) > 0).any()]
    empty = [NOTHING[col] for col, _, _ in FAILURE_PANELS if col not in {p[0] for p in drawn}]
    if per["unconv"].isna().all():
        empty = [e if e != NOTHING["unconv"] else "no fit was MCMC" for e in empty]
    if not drawn:
        return [Paragraph(f"No failure figure: {_and(empty)}.")]
    conds = per[[*factors, "condition_id"]].drop_duplicates("condition_id")
    conds = conds.sort_values([*factors, "condition_id"]).reset_index(drop=True)
    badness = per.assign(b=per[["fail", "excl_rate", "unconv"]].fillna(0).sum(axis=1))
    badness = badness.groupby("condition_id")["b"].sum()
    capacity = max_conditions * max_pages
    omitted = max(0, len(conds) - capacity)
    if omitted:
        worst = set(badness.sort_values(ascending=False, kind="stable").index[:capacity])
        conds = conds[conds["condition_id"].isin(worst)].reset_index(drop=True)
    pages, _ = paginate(list(conds.itertuples(index=False)), max_conditions, max_pages)
    colour = colours(estimators)
    plots: list[Plot | Paragraph] = []
    for k, page in enumerate(pages, 1):
        ids = [c.condition_id for c in page]
        labels = [condition_label(c._asdict(), vary or factors) for c in page]
        height = 0.8 / max(1, len(estimators))
        fig = MplFigure(
            figsize=(
                2.0 + 3.3 * len(drawn),
                1.4 + 0.22 * len(ids) * max(1, len(estimators)) ** 0.6,
            ),
            layout="constrained",
        )
        axes = np.atleast_1d(fig.subplots(1, len(drawn), sharey=True))
        y = np.arange(len(ids))
        for ax, (col, measure, title) in zip(axes, drawn, strict=True):
            top = 0.0
            for i, est in enumerate(estimators):
                r = per[per["estimator"] == est].set_index("condition_id").reindex(ids)
                v = r[col].to_numpy(float)
                xerr = None
                if measure:
                    n = r["n_all" if col == "fail" else "unconv_n"].to_numpy(float)
                    lo, hi = interval(measure, v, np.nan, n)
                    xerr = np.nan_to_num(np.vstack([v - lo, hi - v]))
                right = np.nan_to_num(v) + (0 if xerr is None else xerr[1])
                top = max(top, float(np.max(right, initial=0.0)))
                offset = (i - (len(estimators) - 1) / 2) * height
                ax.barh(
                    y + offset,
                    np.nan_to_num(v),
                    height=height,
                    color=colour[est],
                    xerr=xerr,
                    error_kw={"lw": 0.8, "capsize": 1.5},
                )
            ax.set_title(title, fontsize=9)
            ax.set_xlim(0, min(1.0, max(0.05, 1.1 * top)))
            ax.set_xlabel("share of replications", fontsize=8)
            ax.tick_params(labelsize=8)
        axes[0].set_yticks(y, labels)
        axes[0].invert_yaxis()
        figure_legend(fig, estimators, styles(estimators))
        caption = (
            "Failed fits, fits excluded by the convergence policy and MCMC fits not converged, "
            "per condition and estimator (share of replications; error bars: Wilson 95% "
            "intervals)"
            + (f"; not drawn: {_and(empty)}" if empty else "")
            + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
            + (
                f"; {omitted} conditions with the fewest problems not drawn (see the tables)"
                if omitted and k == 1
                else ""
            )
            + "."
        )
        plots.append(Plot(f"failures_{k}", caption, fig))
    return plots


def save(plot: Plot, directory: Path, dpi: int = 100) -> Figure:
    """Write ``<name>.png`` and ``<name>.pdf`` under ``directory``; the PNG's bytes come back."""
    directory.mkdir(parents=True, exist_ok=True)
    png = directory / f"{plot.name}.png"
    # Names and levels are the user's: a "$" in them is text, not mathtext to parse (or fail).
    with mpl.rc_context({"text.parse_math": False}):
        for text in plot.figure.findobj(Text):
            text.set_parse_math(False)
        plot.figure.savefig(png, dpi=dpi, metadata={"Software": None})
        # The layout is in inches, so the PNG's serves the PDF: not computed a second time.
        plot.figure.set_layout_engine("none")
        plot.figure.savefig(directory / f"{plot.name}.pdf", metadata={"CreationDate": None})
    return Figure(plot.name, plot.caption, png.read_bytes())


__all__ = [
    "Plot",
    "condition_label",
    "coverage_distance",
    "design_order",
    "diagnostic_plots",
    "factor_plots",
    "failure_plots",
    "nested_loop_plots",
    "save",
    "share_y",
    "styles",
    "zip_panels",
    "zip_plots",
]
